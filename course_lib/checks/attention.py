"""Checks for the exercises of the attention chapter.

Each check runs the student's function and ``course_lib.attention``'s reference on the same
inputs (float64, then float32; edge cases included) and prints a verdict; hints name the
classic mistakes (a forgotten ``sqrt(E)``, a mask read the wrong way round, softmax over the
wrong axis, heads split in the wrong order, ...), recognised by recomputing those wrong
variants. Calling the library's (or torch's) version of the exercise is rejected.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import attention as A
from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    forbid,
    randn,
)
from course_lib.checks.hints import Mistakes, diagnose, same

__all__ = [
    "check_additive_attention",
    "check_causal_mask",
    "check_merge_heads",
    "check_permutation_test",
    "check_positional_encoding",
    "check_scaled_dot_product_attention",
    "check_split_heads",
]


def _same_as(mismatch: Mismatch, variant: Any) -> bool:
    """Whether the student's failing output equals the same part of a wrong ``variant``.

    ``mismatch.where`` is ``输出`` for a single output or ``输出[i]`` for item i of a tuple.
    """
    if isinstance(variant, (tuple, list)):
        index = mismatch.where.rsplit("[", 1)[-1].rstrip("]")
        if not index.isdigit() or int(index) >= len(variant):
            return False
        variant = variant[int(index)]
    actual = mismatch.actual
    return isinstance(actual, Tensor) and actual.is_floating_point() and same(variant, actual)


def _has_nan(value: Any) -> bool:
    return isinstance(value, Tensor) and value.is_floating_point() and bool(value.isnan().any())


def _bool(shape: tuple, seed: int, device: torch.device, p: float = 0.6) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=generator) < p).to(device)


# ----------------------------------------------------------------------------------------
# Scaled dot-product attention with a mask
# ----------------------------------------------------------------------------------------


def _sdpa_cases(device: torch.device) -> List[Case]:
    def qkv(b: int, lq: int, lk: int, e: int, ev: int, seed: int, heads: Optional[int] = None):
        lead = (b,) if heads is None else (b, heads)
        return (
            randn(*lead, lq, e, seed=seed, device=device),
            randn(*lead, lk, e, seed=seed + 1, device=device),
            randn(*lead, lk, ev, seed=seed + 2, device=device),
        )

    keep = _bool((2, 4, 6), 7, device) | torch.eye(4, 6, dtype=torch.bool, device=device)
    additive = randn(4, 6, seed=8, device=device)
    blocked = torch.ones(2, 3, 5, dtype=torch.bool, device=device)
    blocked[1, 2] = False  # query 2 of example 1 may attend to nothing
    return [
        Case("no mask, B=2, Lq=3, Lk=5, E=Ev=4", qkv(2, 3, 5, 4, 4, 0)),
        Case("bool mask [B, Lq, Lk] (True = may attend)", (*qkv(2, 4, 6, 8, 8, 10), keep)),
        Case("float mask [Lq, Lk] (added to the scores)", (*qkv(2, 4, 6, 8, 3, 20), additive)),
        Case(
            "causal mask with heads: q, k, v [2, 2, 5, 4]",
            (*qkv(2, 5, 5, 4, 4, 30, heads=2), A.causal_mask(5, device=device)),
        ),
        Case("E = 64, so the scaling by sqrt(E) matters", qkv(1, 3, 7, 64, 2, 40)),
        Case("batch of 1, a single query", qkv(1, 1, 4, 3, 5, 50)),
        Case("a query that may attend to nothing", (*qkv(2, 3, 5, 4, 4, 60), blocked)),
        Case("empty batch B=0", qkv(0, 3, 4, 2, 2, 70)),
    ]  # fmt: skip


def _reference_sdpa(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor] = None) -> Any:
    return A.scaled_dot_product_attention(q, k, v, mask)


def _sdpa_hint(mismatch: Mismatch, case: Case) -> str:
    q, k, v = case.args[:3]
    mask = case.args[3] if len(case.args) > 3 else None
    if _has_nan(mismatch.actual):
        return (
            "输出里有 NaN：一个查询的所有键都被遮住时，softmax 的分子分母都是 0。"
            "约定这样的行权重全为 0（例如 softmax 之后把这些行置 0）。"
        )
    for scale, text in (
        (1.0, "忘了除以 sqrt(E)"),
        (1.0 / q.shape[-1], "除以的是 E 而不是 sqrt(E)"),
    ):
        if _same_as(mismatch, A.scaled_dot_product_attention(q, k, v, mask, scale=scale)):
            return f"{text}：分数应当是 q·k / sqrt(E)，E 是查询/键的特征数 q.shape[-1]。"
    if (
        mask is not None
        and mask.dtype == torch.bool
        and _same_as(mismatch, A.scaled_dot_product_attention(q, k, v, ~mask))
    ):
        return "掩码用反了：布尔掩码里 True 表示“可以关注”，应把 False 的位置设为 -inf。"
    if (
        mask is not None
        and mask.dtype != torch.bool
        and _same_as(mismatch, A.scaled_dot_product_attention(q, k, v))
    ):
        return "浮点掩码没有用上：它要加到分数上（-inf 的位置权重为 0）。"
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    over_queries = torch.softmax(scores, dim=-2)
    if mask is None and _same_as(mismatch, (over_queries @ v, over_queries)):
        return "softmax 的维度不对：应沿最后一维（键的维度 Lk）归一化，每个查询的权重和为 1。"
    return (
        "按顺序检查：scores = q @ k.transpose(-2, -1) / sqrt(E)；布尔掩码 False 处填 -inf，"
        "浮点掩码直接相加；softmax(dim=-1)；输出 = weights @ v；返回 (output, weights)。"
    )


@exercise_check
def check_scaled_dot_product_attention(student: Callable[..., Any]) -> CheckResult:
    """Check ``student(q, k, v, mask=None) -> (output, weights)`` against the library.

    Contract: q [..., Lq, E], k [..., Lk, E], v [..., Lk, Ev]; ``mask`` None, bool (True =
    may attend) or float (added to the scores), broadcast to [..., Lq, Lk]. Returns
    ``(weights @ v [..., Lq, Ev], weights [..., Lq, Lk])`` with ``weights = softmax(q k^T
    / sqrt(E) + mask)``; a query that may attend to nothing gets all-zero weights.
    """
    return check_function(
        "缩放点积注意力",
        student,
        _reference_sdpa,
        _sdpa_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_sdpa_hint,
        forbidden=[
            forbid(A.scaled_dot_product_attention, A.MultiHeadAttention, A.SelfAttention),
            forbid(
                F.scaled_dot_product_attention,
                F.multi_head_attention_forward,
                nn.MultiheadAttention,
                name="torch.nn.functional.scaled_dot_product_attention",
            ),
        ],
    )


# ----------------------------------------------------------------------------------------
# Additive (Bahdanau) attention
# ----------------------------------------------------------------------------------------


def _additive_cases(device: torch.device) -> List[Case]:
    def args(b: int, s: int, dq: int, dk: int, dv: int, a: int, seed: int) -> tuple:
        return (
            randn(b, dq, seed=seed, device=device),
            randn(b, s, dk, seed=seed + 1, device=device),
            randn(b, s, dv, seed=seed + 2, device=device),
            randn(a, dq, seed=seed + 3, device=device),
            randn(a, dk, seed=seed + 4, device=device),
            randn(a, seed=seed + 5, device=device),
        )

    padded = torch.ones(3, 6, dtype=torch.bool, device=device)
    padded[1, 4:] = False
    padded[2, 2:] = False
    nothing = torch.ones(2, 4, dtype=torch.bool, device=device)
    nothing[0] = False
    return [
        Case("B=2, S=5, Dq=3, Dk=4, Dv=2, A=6", args(2, 5, 3, 4, 2, 6, 0)),
        Case("padding mask [B, S] (True = real token)", (*args(3, 6, 4, 4, 4, 8, 10), padded)),
        Case("batch of 1, one source position", args(1, 1, 2, 3, 4, 5, 20)),
        Case("all positions masked in one example (zeros)", (*args(2, 4, 3, 3, 3, 4, 30), nothing)),
        Case("empty batch B=0", args(0, 3, 2, 2, 2, 3, 40)),
    ]


def _reference_additive(
    query: Tensor, keys: Tensor, values: Tensor, w_query: Tensor, w_key: Tensor,
    w_score: Tensor, mask: Optional[Tensor] = None,
) -> Any:  # fmt: skip
    return A.additive_attention(query, keys, values, w_query, w_key, w_score, mask)


def _additive_hint(mismatch: Mismatch, case: Case) -> str:
    query, keys, values, w_query, w_key, w_score = case.args[:6]
    mask = case.args[6] if len(case.args) > 6 else None
    if _has_nan(mismatch.actual):
        return "出现了 NaN：某个样本的所有位置都被遮住时，约定权重全为 0、上下文为零向量。"
    if _same_as(mismatch, A.additive_attention(query, keys, keys, w_query, w_key, w_score, mask)):
        return "上下文是对 values 加权求和，而不是对 keys。"
    linear = (keys @ w_key.T + (query @ w_query.T).unsqueeze(1)) @ w_score
    if mask is not None:
        linear = linear.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(linear, dim=-1)
    if _same_as(mismatch, ((weights.unsqueeze(1) @ values).squeeze(1), weights)):
        return "漏了 tanh：分数是 w_score · tanh(W_query s + W_key h_i)，非线性不能省。"
    if mask is not None and _same_as(
        mismatch, A.additive_attention(query, keys, values, w_query, w_key, w_score, ~mask)
    ):
        return "掩码用反了：True 表示真实的词，应把 False（填充）的位置设为 -inf。"
    return (
        "按顺序检查：W_query s 的形状 [B, A]，W_key h_i 的形状 [B, S, A]，相加（广播）后取 tanh，"
        "再与 w_score 做点积得到分数 [B, S]；softmax 沿 S；上下文 = 权重加权的 values，[B, Dv]。"
    )


@exercise_check
def check_additive_attention(student: Callable[..., Any]) -> CheckResult:
    """Check ``student(query, keys, values, w_query, w_key, w_score, mask=None)`` ->
    ``(context [B, Dv], weights [B, S])`` against ``course_lib.attention.additive_attention``."""
    return check_function(
        "加性注意力",
        student,
        _reference_additive,
        _additive_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_additive_hint,
        forbidden=[forbid(A.additive_attention, A.AdditiveAttention)],
    )


# ----------------------------------------------------------------------------------------
# Splitting and merging heads
# ----------------------------------------------------------------------------------------


_REARRANGING = "拆分或合并注意力头只是重新排列元素，不做任何运算：每个数都应原样保留。"


def _split_cases(device: torch.device) -> List[Case]:
    return [
        Case("x [2, 5, 12], H=3", (randn(2, 5, 12, seed=0, device=device), 3)),
        Case("one head, H=1", (randn(2, 4, 6, seed=1, device=device), 1)),
        Case("one feature per head, H=D=4", (randn(1, 3, 4, seed=2, device=device), 4)),
        Case(
            "non-contiguous input (a transposed tensor)",
            (randn(2, 8, 3, seed=3, device=device).transpose(1, 2), 2),
        ),
        Case("empty sequence L=0", (randn(2, 0, 6, seed=4, device=device), 2)),
    ]


def _split_hint(mismatch: Mismatch, case: Case) -> str:
    x, heads = case.args
    batch, length, dim = x.shape
    if _same_as(mismatch, x.reshape(batch, heads, length, dim // heads)):
        return (
            "直接 reshape 成 [B, H, L, D/H] 会把不同位置的特征混在一起。先 reshape 成 "
            "[B, L, H, D/H]（把特征维拆开），再交换 L 和 H 两维（transpose(1, 2)）。"
        )
    return "头 h 应得到特征 x[..., h*D/H:(h+1)*D/H]；输出形状 [B, H, L, D/H]。"


@exercise_check
def check_split_heads(student: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Check ``student(x [B, L, D], num_heads) -> [B, H, L, D / H]``."""
    return check_function(
        "拆分注意力头",
        student,
        A.split_heads,
        _split_cases,
        atol=0.0,
        rtol=0.0,
        hint=_split_hint,
        forbidden=[forbid(A.split_heads)],
        float64_reason=_REARRANGING,
    )


def _merge_cases(device: torch.device) -> List[Case]:
    return [
        Case("x [2, 3, 5, 4] (H=3)", (randn(2, 3, 5, 4, seed=0, device=device),)),
        Case("one head", (randn(2, 1, 4, 6, seed=1, device=device),)),
        Case("batch of 1, one position", (randn(1, 4, 1, 2, seed=2, device=device),)),
        Case("empty sequence L=0", (randn(2, 2, 0, 3, seed=3, device=device),)),
    ]


def _merge_hint(mismatch: Mismatch, case: Case) -> str:
    (x,) = case.args
    batch, heads, length, head_dim = x.shape
    if _same_as(mismatch, x.reshape(batch, length, heads * head_dim)):
        return (
            "直接 reshape 会把不同头、不同位置的数混在一起。先交换 H 和 L 两维得到 "
            "[B, L, H, D/H]，再 reshape 成 [B, L, D]（这就是把各头的输出按特征维拼接）。"
        )
    return "位置 l 的输出应是各头在位置 l 的输出按头的顺序拼接：[head_0, head_1, ...]。"


@exercise_check
def check_merge_heads(student: Callable[[Tensor], Tensor]) -> CheckResult:
    """Check ``student(x [B, H, L, D / H]) -> [B, L, D]``."""
    return check_function(
        "合并注意力头",
        student,
        A.merge_heads,
        _merge_cases,
        atol=0.0,
        rtol=0.0,
        hint=_merge_hint,
        forbidden=[forbid(A.merge_heads)],
        float64_reason=_REARRANGING,
    )


# ----------------------------------------------------------------------------------------
# The causal mask
# ----------------------------------------------------------------------------------------


def _causal_cases(device: torch.device) -> List[Case]:
    return [Case(f"length {n}", (n,)) for n in (4, 1, 2, 7, 0)]


def _causal_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.actual
    (length,) = case.args
    if not isinstance(actual, Tensor) or actual.dtype != torch.bool:
        return (
            "返回布尔张量（dtype=torch.bool），True 表示可以关注，"
            "例如从 torch.ones(L, L, dtype=torch.bool) 出发。"
        )
    reference = A.causal_mask(length)
    if actual.shape == reference.shape:
        if torch.equal(actual.cpu(), ~reference | torch.eye(length, dtype=torch.bool)):
            return "方向反了：位置 i 只能看 j <= i（下三角，tril），不是未来（上三角）。"
        if torch.equal(actual.cpu(), reference.tril(-1)):
            return "对角线也应为 True：位置 i 可以关注它自己（tril 而不是 tril(-1)）。"
        if torch.equal(actual.cpu(), ~reference):
            return (
                "True 表示“可以关注”（与 PyTorch 的 scaled_dot_product_attention 一致），"
                "你给出的是“被遮住”。"
            )
    return "形状 [L, L]，第 i 行第 j 列在 j <= i 时为 True。"


@exercise_check
def check_causal_mask(student: Callable[[int], Tensor]) -> CheckResult:
    """Check ``student(length) -> bool [L, L]`` (True on and below the diagonal)."""
    return check_function(
        "因果掩码",
        student,
        A.causal_mask,
        _causal_cases,
        atol=0.0,
        rtol=0.0,
        hint=_causal_hint,
        devices=[torch.device("cpu")],
        forbidden=[forbid(A.causal_mask)],
    )


# ----------------------------------------------------------------------------------------
# The permutation test of self-attention
# ----------------------------------------------------------------------------------------


class _Cumsum(nn.Module):
    """Running sum along the sequence: depends on order, acts on each example alone."""

    def forward(self, x: Tensor) -> Tensor:
        return x.cumsum(dim=1)


def _first(module: nn.Module) -> Callable[[Tensor], Tensor]:
    def run(x: Tensor) -> Tensor:
        output = module(x)
        return output[0] if isinstance(output, tuple) else output

    run.__name__ = type(module).__name__
    return run


def _permutation_cases(device: torch.device) -> List[Case]:
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        attention = A.SelfAttention(8).to(device)
        mha = A.MultiHeadAttention(8, 2).to(device)
        gru = nn.GRU(8, 8, batch_first=True).to(device)
        linear = nn.Linear(8, 3).to(device)
    encoding = A.sinusoidal_positional_encoding(6, 8, device=device)
    mask = A.causal_mask(6, device=device)

    def with_positions(x: Tensor) -> Tensor:
        return attention(x + encoding)[0]

    def causal(x: Tensor) -> Tensor:
        return mha(x, x, x, mask)[0]

    def self_mha(x: Tensor) -> Tensor:
        return mha(x, x, x)[0]

    def x_of(batch: int, length: int, seed: int) -> Tensor:
        return randn(batch, length, 8, seed=seed, device=device, dtype=torch.float32)

    def perm(length: int) -> Tensor:
        return torch.randperm(length, generator=generator).to(device)

    shift = torch.tensor([1, 2, 3, 4, 5, 0], device=device)
    identity = torch.arange(6, device=device)
    # B = L in every case, so permuting the batch instead of the sequence runs (and is wrong).
    return [
        Case("single-head self-attention (equivariant)", (_first(attention), x_of(6, 6, 1), shift)),
        Case("multi-head self-attention, L=24", (self_mha, x_of(24, 24, 2), perm(24))),
        Case("running sum along the sequence", (_Cumsum(), x_of(6, 6, 7), shift)),
        Case("self-attention after positional encodings", (with_positions, x_of(6, 6, 3), shift)),
        Case("causal (masked) self-attention", (causal, x_of(6, 6, 4), shift)),
        Case("a GRU", (_first(gru), x_of(6, 6, 5), shift)),
        Case("a per-position linear layer (equivariant)", (linear, x_of(6, 6, 6), shift)),
        Case("the identity permutation", (_Cumsum(), x_of(6, 6, 8), identity)),
    ]  # fmt: skip


def _permutation_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.actual
    if isinstance(actual, Tensor):
        return "返回 Python 的 bool（例如 bool(torch.allclose(...))），而不是张量。"
    if not isinstance(actual, bool):
        return f"应返回 True 或 False，实际返回了 {type(actual).__name__}。"
    if mismatch.expected is True:
        return (
            "这一层是置换等变的，你却判为否。两种常见原因：只打乱了输入、没有用同一个排列"
            "打乱输出再比较；或者用 == / torch.equal 判断相等——求和顺序改变会带来 1e-7 量级的"
            "舍入误差，应该用 torch.allclose。"
        )
    return (
        "这一层依赖顺序，你却判为等变。检查打乱的是不是序列维（dim=1，x[:, perm]），而不是批维；"
        "以及比较的是 layer(x[:, perm]) 与 layer(x)[:, perm]。"
    )


@exercise_check
def check_permutation_test(student: Callable[..., Any]) -> CheckResult:
    """Check ``student(layer, x [B, L, D], permutation [L]) -> bool`` (permutation equivariance)."""
    return check_function(
        "置换等变检验",
        student,
        lambda layer, x, permutation: A.is_permutation_equivariant(layer, x, permutation),
        _permutation_cases,
        atol=0.0,
        rtol=0.0,
        hint=_permutation_hint,
        forbidden=[forbid(A.is_permutation_equivariant)],
    )


# ----------------------------------------------------------------------------------------
# Sinusoidal positional encoding
# ----------------------------------------------------------------------------------------


def _encoding_reference(length: int, dim: int) -> Tensor:
    return A.sinusoidal_positional_encoding(length, dim, dtype=torch.float64)


def _encoding_cases(device: torch.device) -> List[Case]:
    return [
        Case("length 50, dim 16", (50, 16)),
        Case("length 100, dim 64 (low frequencies)", (100, 64)),
        Case("one position (length 1)", (1, 8)),
        Case("one pair of features (dim 2)", (10, 2)),
        Case("odd dim 5 (3 sin columns, 2 cos columns)", (7, 5)),
        Case("dim 1 (a single sin column)", (9, 1)),
        Case("no positions (length 0)", (0, 4)),
    ]


def _encoding_variant(
    layout: str = "interleaved", exponent: str = "2i", first: int = 0, sin_first: bool = True
) -> Callable[[int, int], Tensor]:
    def encode(length: int, dim: int) -> Tensor:  # a known mistake
        position = torch.arange(first, first + length, dtype=torch.float64)[:, None]
        columns = torch.arange(dim, dtype=torch.float64)
        pair = (
            2 * (columns // 2)
            if exponent == "2i"
            else (columns // 2 if exponent == "i" else columns)
        )
        angle = position / 10000 ** (pair / max(dim, 1))
        if layout == "halves":
            half = (dim + 1) // 2
            pair_h = 2 * torch.arange(half, dtype=torch.float64)
            angle_h = position / 10000 ** (pair_h / max(dim, 1))
            return torch.cat([angle_h.sin(), angle_h[:, : dim - half].cos()], dim=1)
        even = (columns % 2 == 0)[None]
        if sin_first:
            return torch.where(even, angle.sin(), angle.cos())
        return torch.where(even, angle.cos(), angle.sin())

    return encode


_ENCODING_MISTAKES: Mistakes = {
    "halves": (
        _encoding_variant(layout="halves"),
        "sin 和 cos 是交错排列的：第 2i 列是 sin，第 2i+1 列是 cos"
        "（用 pe[:, 0::2] 和 pe[:, 1::2]），"
        "不是前一半 sin、后一半 cos。",
    ),
    "cos first": (
        _encoding_variant(sin_first=False),
        "偶数列（0, 2, 4, …）放 sin，奇数列放 cos，你的正好反了。",
    ),
    "exponent i": (
        _encoding_variant(exponent="i"),
        "频率是 1 / 10000^(2i/d)：第 i 对特征（第 2i 和 2i+1 列）的指数是 2i/d，不是 i/d。",
    ),
    "exponent per column": (
        _encoding_variant(exponent="column"),
        "同一对的两列（2i 和 2i+1）用同一个频率 1 / 10000^(2i/d)；你给每一列用了各自的频率 "
        "1 / 10000^(j/d)。",
    ),
    "positions from 1": (
        _encoding_variant(first=1),
        "位置从 0 开始：第一行是 PE[0] = [0, 1, 0, 1, …]。",
    ),
}


def _encoding_hint(mismatch: Mismatch, case: Case) -> str:
    return diagnose(
        _ENCODING_MISTAKES,
        "PE[p, 2i] = sin(p / 10000^(2i/d))，PE[p, 2i+1] = cos(p / 10000^(2i/d))，p = 0, …, L-1；"
        "输出形状 [L, d]。",
    )(mismatch, case)


def _encoding_error_hint(error: BaseException, case: Case) -> str:
    _, dim = case.args
    if dim % 2 == 1 and isinstance(error, RuntimeError):
        return (
            f"dim = {dim} 是奇数：sin 占 {(dim + 1) // 2} 列（0, 2, …），cos 只占 {dim // 2} 列，"
            "所以给 pe[:, 1::2] 赋值时只用前 dim // 2 个频率。"
        )
    return ""


@exercise_check
def check_positional_encoding(student: Callable[[int, int], Tensor]) -> CheckResult:
    """Check the sinusoidal positional encoding of "Attention Is All You Need".

    Contract: ``positional_encoding(length: int, dim: int) -> Tensor [length, dim]`` on the
    CPU, float32 (torch's default) or float64, with ``PE[p, 2i] = sin(p / 10000^(2i/dim))``
    and ``PE[p, 2i+1] = cos(p / 10000^(2i/dim))`` for positions p = 0..length-1. An odd
    ``dim`` has one more sin column than cos columns; length 0 gives an empty [0, dim].
    Checked against ``attention.sinusoidal_positional_encoding`` computed in float64 (a
    float32 answer at float32 tolerance); calling it is off limits.
    """
    return check_function(
        "正弦位置编码",
        student,
        _encoding_reference,
        _encoding_cases,
        atol=1e-10,
        rtol=1e-8,
        atol32=3e-5,
        rtol32=1e-4,
        dtypes={torch.float64: (torch.float64, torch.float32)},
        hint=_encoding_hint,
        error_hint=_encoding_error_hint,
        devices=[torch.device("cpu")],
        forbidden=[forbid(A.sinusoidal_positional_encoding)],
    )
