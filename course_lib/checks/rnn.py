"""Checks for the exercises of the recurrent-networks chapter.

Each check compares the student's function with ``course_lib.rnn`` on seeded random inputs
(float64, then the same inputs in float32) and edge cases: a batch of one, an empty batch,
saturating inputs, non-square weights, ties, a length that does not divide. When a check
fails, the hint names the classic mistake if the student's output matches it: each
``_MISTAKES`` entry is a known wrong version of the function, run on the failing case.
Calling the library's (or torch's) version of the exercise is rejected.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import rnn
from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    forbid,
    randn,
)
from course_lib.checks.hints import Mistakes, diagnose

_diagnose = diagnose

_NO_CELLS = [
    forbid(
        torch.rnn_tanh_cell, torch.rnn_relu_cell, name="torch.rnn_tanh_cell（nn.RNNCell 的内核）"
    ),
    forbid(torch.lstm_cell, name="torch.lstm_cell（nn.LSTMCell 的内核）"),
    forbid(torch.gru_cell, name="torch.gru_cell（nn.GRUCell 的内核）"),
    forbid(
        nn.RNN,
        nn.LSTM,
        nn.GRU,
        nn.RNNCell,
        nn.LSTMCell,
        nn.GRUCell,
        name="torch.nn 的循环层（nn.RNN、nn.LSTMCell 等）",
    ),
]


def _weights(rows: int, cols: int, seed: int, device: torch.device, scale: float = 0.5) -> Tensor:
    return scale * randn(rows, cols, seed=seed, device=device)


# --------------------------------------------------------------------------------------
# Exercise 1: one step of a vanilla RNN
# --------------------------------------------------------------------------------------


def _reference_rnn_step(x: Tensor, h: Tensor, W_xh: Tensor, W_hh: Tensor, b_h: Tensor) -> Tensor:
    return rnn.rnn_step(F.linear(x, W_xh), h, W_hh, b_h, "tanh")


def _rnn_cases(device: torch.device) -> List[Case]:
    def case(name: str, batch: int, d: int, h: int, seed: int, scale: float = 1.0) -> Case:
        return Case(
            name,
            (
                scale * randn(batch, d, seed=seed, device=device),
                randn(batch, h, seed=seed + 1, device=device).tanh(),
                _weights(h, d, seed + 2, device),
                _weights(h, h, seed + 3, device),
                randn(h, seed=seed + 4, device=device),
            ),
        )

    return [
        case("batch of 3, D = H = 4", 3, 4, 4, seed=10),
        case("batch of 1", 1, 4, 4, seed=20),
        case("D = 5 != H = 3 (non-square W_xh)", 2, 5, 3, seed=30),
        case("large inputs (tanh saturates)", 4, 3, 3, seed=40, scale=30.0),
        case("empty batch [0, D]", 0, 4, 4, seed=50),
    ]


_RNN_MISTAKES: Mistakes = {
    "no tanh": (
        lambda x, h, W_xh, W_hh, b_h: x @ W_xh.T + h @ W_hh.T + b_h,
        "结果超出了 [-1, 1]：别忘了最后的 tanh 非线性。",
    ),
    "sigmoid": (
        lambda x, h, W_xh, W_hh, b_h: torch.sigmoid(x @ W_xh.T + h @ W_hh.T + b_h),
        "Vanilla RNN 用的是 tanh，不是 sigmoid。",
    ),
    "transposed": (
        lambda x, h, W_xh, W_hh, b_h: torch.tanh(x @ W_xh.T + h @ W_hh + b_h),
        "W_hh 的形状是 [H, H]，按 torch.nn 的约定要写 h @ W_hh.T（即 W_hh h_{t-1}），"
        "你似乎没有转置。",
    ),
    "no bias": (
        lambda x, h, W_xh, W_hh, b_h: torch.tanh(x @ W_xh.T + h @ W_hh.T),
        "漏掉了偏置 b_h。",
    ),
    "no recurrence": (
        lambda x, h, W_xh, W_hh, b_h: torch.tanh(x @ W_xh.T + b_h),
        "结果与上一步的隐藏状态 h 无关：递推项 W_hh h_{t-1} 去哪儿了？",
    ),
}


@exercise_check
def check_rnn_step(student_rnn_step: Callable[..., Tensor]) -> CheckResult:
    """Check ``rnn_step(x [B, D], h [B, H], W_xh [H, D], W_hh [H, H], b_h [H]) -> [B, H]``.

    Contract: ``h' = tanh(x W_xh^T + h W_hh^T + b_h)``, same dtype and device as ``x``.
    The library's ``rnn.rnn_step`` / ``RNNCell`` and torch's RNN cells are off limits.
    """
    return check_function(
        "Vanilla RNN 的一步",
        student_rnn_step,
        _reference_rnn_step,
        _rnn_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_diagnose(
            _RNN_MISTAKES,
            "h_t = tanh(x W_xh^T + h_{t-1} W_hh^T + b_h)，对一批输入逐行计算，输出形状 [B, H]。",
        ),
        forbidden=[forbid(rnn.rnn_step, rnn.RNNCell, rnn.RNN), *_NO_CELLS],
    )


# --------------------------------------------------------------------------------------
# Exercise 2: one step of an LSTM
# --------------------------------------------------------------------------------------


def _reference_lstm_step(
    x: Tensor, h: Tensor, c: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> Tuple[Tensor, Tensor]:
    return rnn.lstm_step(F.linear(x, W_ih, b_ih), h, c, W_hh, b_hh)


def _lstm_cases(device: torch.device) -> List[Case]:
    def case(name: str, batch: int, d: int, h: int, seed: int, scale: float = 1.0) -> Case:
        return Case(
            name,
            (
                scale * randn(batch, d, seed=seed, device=device),
                randn(batch, h, seed=seed + 1, device=device).tanh(),
                randn(batch, h, seed=seed + 2, device=device),
                _weights(4 * h, d, seed + 3, device),
                _weights(4 * h, h, seed + 4, device),
                randn(4 * h, seed=seed + 5, device=device),
                randn(4 * h, seed=seed + 6, device=device),
            ),
        )

    return [
        case("batch of 3, D = H = 4", 3, 4, 4, seed=100),
        case("batch of 1", 1, 3, 5, seed=110),
        case("D = 6 != H = 2", 2, 6, 2, seed=120),
        case("large inputs (gates saturate)", 3, 3, 3, seed=130, scale=20.0),
        case("empty batch [0, D]", 0, 4, 4, seed=140),
    ]


def _lstm_variant(
    order: str = "ifgo", g_act: str = "tanh", tanh_c: bool = True, swap: bool = False
) -> Callable[..., Tuple[Tensor, Tensor]]:
    def step(x, h, c, W_ih, W_hh, b_ih, b_hh):  # a known mistake
        parts = dict(zip(order, (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)))
        i, f, o = torch.sigmoid(parts["i"]), torch.sigmoid(parts["f"]), torch.sigmoid(parts["o"])
        g = torch.tanh(parts["g"]) if g_act == "tanh" else torch.sigmoid(parts["g"])
        c_next = f * c + i * g
        h_next = o * (torch.tanh(c_next) if tanh_c else c_next)
        return (c_next, h_next) if swap else (h_next, c_next)

    return step


_LSTM_MISTAKES: Mistakes = {
    "order ifog": (
        _lstm_variant(order="ifog"),
        "门的顺序不对：PyTorch 的权重按 i, f, g, o 排列（g 是第三块，o 是第四块）。",
    ),
    "order fiog": (
        _lstm_variant(order="figo"),
        "门的顺序不对：第一块是输入门 i，第二块才是遗忘门 f（顺序 i, f, g, o）。",
    ),
    "sigmoid g": (
        _lstm_variant(g_act="sigmoid"),
        "候选值 g 要用 tanh（取值 -1 到 1），只有 i、f、o 三个门用 sigmoid。",
    ),
    "no tanh on c": (
        _lstm_variant(tanh_c=False),
        "隐藏状态是 h' = o ⊙ tanh(c')：对新的单元状态还要再过一次 tanh。",
    ),
    "swapped": (
        _lstm_variant(swap=True),
        "返回顺序应为 (h', c')：先隐藏状态，后单元状态。",
    ),
}


@exercise_check
def check_lstm_step(student_lstm_step: Callable[..., Tuple[Tensor, Tensor]]) -> CheckResult:
    """Check ``lstm_step(x, h, c, W_ih [4H, D], W_hh [4H, H], b_ih, b_hh) -> (h', c')``.

    Contract: x [B, D], h and c [B, H], biases [4H]; gates in torch's order i, f, g, o;
    returns ``(h', c')``, each [B, H] in the input's dtype. Library and torch cells are off
    limits.
    """
    return check_function(
        "LSTM 的一步",
        student_lstm_step,
        _reference_lstm_step,
        _lstm_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_diagnose(
            _LSTM_MISTAKES,
            "先算 gates = x W_ih^T + b_ih + h W_hh^T + b_hh，按 i, f, g, o 切成四块；"
            "c' = σ(f)⊙c + σ(i)⊙tanh(g)，h' = σ(o)⊙tanh(c')。",
        ),
        forbidden=[forbid(rnn.lstm_step, rnn.LSTMCell, rnn.LSTM), *_NO_CELLS],
    )


# --------------------------------------------------------------------------------------
# Exercise 3: one step of a GRU
# --------------------------------------------------------------------------------------


def _reference_gru_step(
    x: Tensor, h: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> Tensor:
    return rnn.gru_step(F.linear(x, W_ih, b_ih), h, W_hh, b_hh)


def _gru_cases(device: torch.device) -> List[Case]:
    def case(name: str, batch: int, d: int, h: int, seed: int, scale: float = 1.0) -> Case:
        return Case(
            name,
            (
                scale * randn(batch, d, seed=seed, device=device),
                randn(batch, h, seed=seed + 1, device=device).tanh(),
                _weights(3 * h, d, seed + 2, device),
                _weights(3 * h, h, seed + 3, device),
                randn(3 * h, seed=seed + 4, device=device),
                randn(3 * h, seed=seed + 5, device=device),
            ),
        )

    return [
        case("batch of 3, D = H = 4", 3, 4, 4, seed=200),
        case("batch of 1", 1, 3, 5, seed=210),
        case("D = 6 != H = 2", 2, 6, 2, seed=220),
        case("large inputs (gates saturate)", 3, 3, 3, seed=230, scale=20.0),
        case("empty batch [0, D]", 0, 4, 4, seed=240),
    ]


def _gru_variant(
    reset_before: bool = False, swap_update: bool = False, bias_outside: bool = False
) -> Callable[..., Tensor]:
    def step(x, h, W_ih, W_hh, b_ih, b_hh):  # a known mistake
        x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
        W_hr, W_hz, W_hn = W_hh.chunk(3, dim=0)
        b_hr, b_hz, b_hn = b_hh.chunk(3)
        r = torch.sigmoid(x_r + h @ W_hr.T + b_hr)
        z = torch.sigmoid(x_z + h @ W_hz.T + b_hz)
        if reset_before:
            n = torch.tanh(x_n + (r * h) @ W_hn.T + b_hn)
        elif bias_outside:
            n = torch.tanh(x_n + r * (h @ W_hn.T) + b_hn)
        else:
            n = torch.tanh(x_n + r * (h @ W_hn.T + b_hn))
        return z * n + (1 - z) * h if swap_update else (1 - z) * n + z * h

    return step


_GRU_MISTAKES: Mistakes = {
    "swapped update": (
        _gru_variant(swap_update=True),
        "z 与 1 - z 用反了：PyTorch 中 h' = (1 - z) ⊙ n + z ⊙ h，z 大时保留旧状态。",
    ),
    "reset before matmul": (
        _gru_variant(reset_before=True),
        "这是 Cho 等人论文里的写法 W_hn (r ⊙ h)；PyTorch/cuDNN 的写法是 "
        "r ⊙ (W_hn h + b_hn)，重置门乘在矩阵乘积之后。",
    ),
    "bias outside reset": (
        _gru_variant(bias_outside=True),
        "b_hn 也要被重置门 r 相乘：n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))。",
    ),
}


@exercise_check
def check_gru_step(student_gru_step: Callable[..., Tensor]) -> CheckResult:
    """Check ``gru_step(x, h, W_ih [3H, D], W_hh [3H, H], b_ih, b_hh) -> h'`` (PyTorch's GRU).

    Contract: x [B, D], h [B, H], biases [3H]; gates in torch's order r, z, n with the
    reset gate applied to ``W_hn h + b_hn``; returns h' [B, H] in the input's dtype.
    """
    return check_function(
        "GRU 的一步",
        student_gru_step,
        _reference_gru_step,
        _gru_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_diagnose(
            _GRU_MISTAKES,
            "按 r, z, n 切分 x W_ih^T + b_ih 与 h W_hh^T + b_hh；r、z 用 sigmoid，"
            "n = tanh(x_n + r ⊙ h_n)，h' = (1 - z) ⊙ n + z ⊙ h。",
        ),
        forbidden=[forbid(rnn.gru_step, rnn.GRUCell, rnn.GRU), *_NO_CELLS],
    )


# --------------------------------------------------------------------------------------
# Exercise 4: laying out a long sequence as parallel streams
# --------------------------------------------------------------------------------------


def _batchify_cases(device: torch.device) -> List[Case]:
    return [
        Case("N = 24, 4 streams", (torch.arange(24, device=device), 4)),
        Case("N = 23 (the tail is dropped)", (torch.arange(100, 123, device=device), 4)),
        Case("one stream", (torch.arange(7, device=device), 1)),
        Case("more streams than items", (torch.arange(3, device=device), 5)),
        Case("empty text", (torch.arange(0, device=device), 2)),
        Case("character ids (repeats)", (torch.tensor([5, 1, 5, 2, 2, 9, 0, 1], device=device), 3)),
    ]


_BATCHIFY_MISTAKES: Mistakes = {
    "interleaved": (
        lambda ids, b: ids[: len(ids) // b * b].reshape(-1, b).T,
        "每一行应是原文中连续的一段（第 b 行是 ids[b*n:(b+1)*n]），"
        "而不是每隔 B 个取一个的交错序列。",
    ),
    "time major": (
        lambda ids, b: ids[: len(ids) // b * b].reshape(b, -1).T,
        "形状应为 [batch_size, N // batch_size]：一行是一条流，时间沿第二维。",
    ),
}


@exercise_check
def check_batchify(student_batchify: Callable[[Tensor, int], Tensor]) -> CheckResult:
    """Check ``batchify(ids [N], batch_size) -> [batch_size, N // batch_size]``.

    Contract: row b is the contiguous stretch ``ids[b*n:(b+1)*n]`` with ``n = N //
    batch_size`` (the tail is dropped); same dtype (int64 ids) and device as ``ids``.
    """
    return check_function(
        "batchify：把长序列排成并行的流",
        student_batchify,
        rnn.batchify,
        _batchify_cases,
        atol=0,
        rtol=0,
        hint=_diagnose(
            _BATCHIFY_MISTAKES,
            "n = N // batch_size；丢掉末尾多余的 N mod batch_size 个，再 reshape 成 "
            "[batch_size, n]（N < batch_size 时 n = 0）。",
        ),
        forbidden=[forbid(rnn.batchify)],
    )


# --------------------------------------------------------------------------------------
# Exercise 5: cutting the state from the graph between chunks
# --------------------------------------------------------------------------------------


def _attached(seed: int, device: torch.device, *shape: int) -> Tensor:
    leaf = randn(*shape, seed=seed, device=device).requires_grad_(True)
    return leaf


def _detach_cases(device: torch.device) -> List[Case]:
    return [
        Case("a GRU state h [L, B, H]", (_attached(300, device, 2, 3, 4),)),
        Case(
            "an LSTM state (h, c)",
            ((_attached(310, device, 1, 2, 5), _attached(311, device, 1, 2, 5)),),
        ),
        Case("no state yet (None)", (None,)),
        Case("batch of 1", ((_attached(320, device, 1, 1, 3), _attached(321, device, 1, 1, 3)),)),
    ]


def _detach_comparator(
    expected: Any, actual: Any, compare: Callable[..., Optional[Mismatch]]
) -> Optional[Mismatch]:
    mismatch = compare(expected, actual)
    if mismatch is not None:
        return mismatch
    if expected is not None and type(actual) is not type(expected):
        return Mismatch(
            "输出", f"应返回 {type(expected).__name__}，实际返回了 {type(actual).__name__}"
        )
    parts = [actual] if isinstance(actual, Tensor) else list(actual or [])
    for index, part in enumerate(parts):
        if part.requires_grad or part.grad_fn is not None:
            where = "输出" if isinstance(actual, Tensor) else f"输出[{index}]"
            return Mismatch(where, "这个张量仍然连在计算图上（requires_grad=True）", None, None)
    return None


def _detach_hint(mismatch: Mismatch, case: Case) -> str:
    if "计算图" in mismatch.reason:
        return (
            "数值要保留，但要切断与上一段计算图的联系：对张量调用 .detach()；"
            "LSTM 的状态是 (h, c) 两个张量，两个都要 detach。"
        )
    actual = mismatch.actual
    if "数值不同" in mismatch.reason and isinstance(actual, Tensor) and not actual.any():
        return "不要把状态清零：下一段要接着上一段的状态继续读，只是梯度不再往回传。"
    if "数值不同" in mismatch.reason:
        return "数值要原样保留（包括 dtype）：detach 只切断计算图，不改变任何一个数。"
    if "tuple" in mismatch.reason or "应返回" in mismatch.reason:
        return "保持状态原来的结构：张量返回张量，(h, c) 返回同样顺序的 tuple，None 返回 None。"
    return "对每个张量调用 .detach()，保持原来的结构。"


@exercise_check
def check_detach_state(student_detach_state: Callable[[Any], Any]) -> CheckResult:
    """Check ``detach_state(state)`` for a Tensor, a tuple ``(h, c)`` and None.

    Contract: the same structure (Tensor -> Tensor, tuple -> tuple, None -> None) with the
    same values, every tensor cut from the graph (``requires_grad`` False).
    """
    return check_function(
        "detach_state：截断时间反向传播",
        student_detach_state,
        rnn.detach_state,
        _detach_cases,
        atol=0,
        rtol=0,
        hint=_detach_hint,
        comparator=_detach_comparator,
        forbidden=[forbid(rnn.detach_state)],
        float64_reason="detach 只切断计算图，状态的数值必须原样保留，一位都不能变。",
    )


# --------------------------------------------------------------------------------------
# Exercise 6: temperature and top-k
# --------------------------------------------------------------------------------------


def _sampling_cases(device: torch.device) -> List[Case]:
    logits = randn(3, 7, seed=400, device=device)
    ties = torch.tensor(
        [[2.0, 1.0, 2.0, 0.5, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0, 3.0, 0.0]],
        dtype=torch.float64,
        device=device,
    )
    return [
        Case("temperature 1", (logits, 1.0)),
        Case("temperature 0.5 (sharper)", (logits, 0.5)),
        Case("temperature 2 (flatter)", (logits, 2.0)),
        Case("temperature 0 (greedy)", (logits, 0.0)),
        Case("temperature 0 with tied maxima (they share the mass)", (ties, 0.0)),
        Case("temperature 0 with top_k = 2 and ties", (ties, 0.0), {"top_k": 2}),
        Case("top_k = 3", (logits, 1.0), {"top_k": 3}),
        Case("top_k = 2 with temperature 0.7", (logits, 0.7), {"top_k": 2}),
        Case("top_k = 2 with ties at the k-th value", (ties, 1.0), {"top_k": 2}),
        Case("top_k larger than V", (logits, 1.0), {"top_k": 50}),
        Case("large logits (around 1000)", (1000 + 10 * logits, 1.0)),
        Case("one row [1, V]", (randn(1, 5, seed=410, device=device), 0.8)),
        Case("[B, T, V] logits", (randn(2, 3, 4, seed=420, device=device), 1.3)),
        Case("empty batch [0, V]", (torch.zeros(0, 5, dtype=torch.float64, device=device), 1.0)),
    ]


def _masked_top_k(logits: Tensor, top_k: Optional[int]) -> Tensor:
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    return logits


def _sampling_reference(logits: Tensor, temperature: float, top_k: Optional[int] = None) -> Tensor:
    """``rnn.sampling_probs``: at temperature 0 tied maxima share the mass (the T -> 0 limit)."""
    return rnn.sampling_probs(logits, temperature, top_k)


def _first_argmax(logits: Tensor, temperature: float, top_k: Optional[int] = None) -> Tensor:
    if temperature != 0:
        return _sampling_reference(logits, temperature, top_k)
    index = _masked_top_k(logits, top_k).argmax(dim=-1, keepdim=True)
    return torch.zeros_like(logits).scatter(-1, index, 1.0)


def _topk_exact(logits: Tensor, temperature: float, top_k: Optional[int] = None) -> Tensor:
    if top_k is not None and top_k < logits.shape[-1]:
        values, indices = logits.topk(top_k, dim=-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, indices, values)
    return torch.softmax(logits / temperature, dim=-1)


_SAMPLING_MISTAKES: Mistakes = {
    "first argmax at T = 0": (
        _first_argmax,
        "温度为 0 时若有几个并列的最大值，概率在它们之间平分（这是 T → 0 时 softmax(l / T) "
        "的极限）；只给第一个 argmax 概率 1 是另一种分布。用 logits == 最大值 得到并列的位置。",
    ),
    "no top-k": (
        lambda logits, temperature, top_k=None: torch.softmax(logits / temperature, dim=-1),
        "没有做 top-k：只保留最大的 k 个 logit，其余设为 -inf 后再 softmax。",
    ),
    "multiply": (
        lambda logits, temperature, top_k=None: torch.softmax(logits * temperature, dim=-1),
        "温度要除：softmax(logits / T)。T < 1 应让分布更尖锐，T > 1 更平坦。",
    ),
    "top-k without ties": (
        _topk_exact,
        "与第 k 大的值相等的 logit 也要保留（用阈值 logits < 第 k 大的值 来屏蔽，"
        "而不是只留 topk 的下标）。",
    ),
    "top-k not renormalised": (
        lambda logits, temperature, top_k=None: (
            torch.softmax(logits / temperature, -1)
            * (logits >= logits.topk(top_k, -1).values[..., -1:])
        ),
        "先屏蔽再 softmax：只把 softmax 之后的概率置零，剩下的概率之和就不是 1 了。",
    ),
}


def _sampling_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.actual
    if isinstance(actual, Tensor) and actual.is_floating_point() and actual.isnan().any():
        if case.args[1] == 0:
            return (
                "温度为 0 时不能除以 0：单独处理，把概率平分给最大值所在的位置"
                "（最大值唯一时就是 argmax 处为 1 的 one-hot 分布）。"
            )
        return "出现了 NaN：logits 很大时用 torch.softmax（它会先减去最大值），不要手写 exp。"
    return _diagnose(
        _SAMPLING_MISTAKES,
        "步骤：(1) top_k 不为 None 时把小于第 k 大值的 logit 设为 -inf；(2) 温度为 0 时"
        "把概率平分给最大值所在的位置（只有一个最大值时就是 one-hot）；(3) 否则返回 "
        "softmax(logits / T)，沿最后一维。",
    )(mismatch, case)


@exercise_check
def check_sampling_probs(student_sampling_probs: Callable[..., Tensor]) -> CheckResult:
    """Check ``sampling_probs(logits [..., V], temperature, top_k=None) -> probs [..., V]``.

    Contract: with ``top_k`` set, logits below the k-th largest become -inf (logits equal
    to it are kept); temperature > 0 gives ``softmax(logits / T)`` over the last dimension;
    temperature 0 gives the greedy distribution, with tied maxima sharing the mass equally
    (the limit T -> 0; a one-hot when the maximum is unique). Same shape, dtype, device.
    """
    return check_function(
        "温度与 top-k 采样分布",
        student_sampling_probs,
        _sampling_reference,
        _sampling_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_sampling_hint,
        forbidden=[forbid(rnn.sampling_probs, rnn.sample_next_token)],
    )


# --------------------------------------------------------------------------------------
# Exercise 7: backpropagation through time, by hand
# --------------------------------------------------------------------------------------

Gradients = Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


def _rnn_forward(
    x: Tensor, h0: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor
) -> Tensor:
    """All hidden states h_1..h_T [T, B, H] of a vanilla tanh RNN (time-major x [T, B, D])."""
    h, states = h0, []
    for x_t in x:
        h = torch.tanh(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        states.append(h)
    return torch.stack(states) if states else h0.new_zeros(0, *h0.shape)


def _bptt_reference(
    x: Tensor, h0: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
    grad_h: Tensor,
) -> Gradients:  # fmt: skip
    """The six gradients by autograd: the loss is any L with dL/dh_t = grad_h[t]."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (x, h0, W_ih, W_hh, b_ih, b_hh)]
    with torch.enable_grad():
        states = _rnn_forward(*leaves)
        grads = torch.autograd.grad((states * grad_h).sum(), leaves, allow_unused=True)
    return tuple(
        torch.zeros_like(leaf) if grad is None else grad.detach()
        for grad, leaf in zip(grads, leaves)
    )  # type: ignore[return-value]


def _bptt_by_hand(
    x: Tensor, h0: Tensor, W_ih: Tensor, W_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
    grad_h: Tensor, *, carry: bool = True, derivative: str = "h_t", transpose_w_hh: bool = False,
    back_through: str = "W_hh", accumulate: bool = True, first_state: bool = True,
) -> Gradients:  # fmt: skip
    """The backward loop with switchable mistakes (to name a student's mistake)."""
    states = _rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh)
    previous = torch.cat([h0[None], states[:-1]]) if len(states) else states
    grad_x = torch.zeros_like(x)
    grad_W_ih, grad_W_hh = torch.zeros_like(W_ih), torch.zeros_like(W_hh)
    grad_b = torch.zeros_like(b_ih)
    dh = torch.zeros_like(h0)
    for t in reversed(range(x.shape[0])):
        dh = dh + grad_h[t] if carry else grad_h[t]
        if derivative == "h_t":
            da = dh * (1 - states[t] ** 2)
        elif derivative == "h_prev":
            da = dh * (1 - previous[t] ** 2)
        else:  # no derivative of tanh
            da = dh
        grad_x[t] = da @ W_ih
        h_prev = previous[t] if (first_state or t > 0) else torch.zeros_like(h0)
        if accumulate or t == x.shape[0] - 1:
            grad_W_ih = grad_W_ih + da.T @ x[t]
            grad_W_hh = grad_W_hh + (h_prev.T @ da if transpose_w_hh else da.T @ h_prev)
            grad_b = grad_b + da.sum(dim=0)
        dh = da @ (W_hh if back_through == "W_hh" else W_hh.T)
    return grad_x, dh, grad_W_ih, grad_W_hh, grad_b, grad_b.clone()


def _bptt_cases(device: torch.device) -> List[Case]:
    def case(
        name: str, steps: int, batch: int, d: int, h: int, seed: int,
        scale: float = 1.0, last_only: bool = False, recurrent: float = 0.5,
    ) -> Case:  # fmt: skip
        grad_h = randn(steps, batch, h, seed=seed + 6, device=device)
        if last_only:
            grad_h[:-1] = 0
        return Case(
            name,
            (
                scale * randn(steps, batch, d, seed=seed, device=device),
                randn(batch, h, seed=seed + 1, device=device).tanh(),
                _weights(h, d, seed + 2, device),
                _weights(h, h, seed + 3, device, scale=recurrent),
                randn(h, seed=seed + 4, device=device),
                randn(h, seed=seed + 5, device=device),
                grad_h,
            ),
        )

    return [
        case("T = 4, B = 3, D = 5, H = 3", 4, 3, 5, 3, seed=500),
        case("one time step (T = 1)", 1, 2, 3, 4, seed=510),
        case("batch of 1, T = 6", 6, 1, 2, 3, seed=520),
        case("loss only on the last state (dL/dh_t = 0 for t < T)", 5, 2, 3, 3, seed=530,
             last_only=True),
        case("large inputs (tanh saturates)", 3, 2, 3, 3, seed=540, scale=20.0),
        case("T = 12 with a large W_hh (gradients grow)", 12, 2, 2, 4, seed=550, recurrent=1.5),
        case("empty batch (B = 0)", 3, 0, 2, 3, seed=560),
    ]  # fmt: skip


_BPTT_MISTAKES: Mistakes = {
    "no carry": (
        lambda *args: _bptt_by_hand(*args, carry=False),
        "h_t 的梯度有两部分：损失直接给的 grad_h[t]，加上从 h_{t+1} 传回来的那部分"
        "（dh_next = da_{t+1} @ W_hh）。你只用了第一部分。",
    ),
    "no tanh derivative": (
        lambda *args: _bptt_by_hand(*args, derivative="none"),
        "别忘了 tanh 的导数：da_t = dh_t ⊙ (1 - h_t²)，其中 h_t 是这一步的输出。",
    ),
    "derivative of the previous state": (
        lambda *args: _bptt_by_hand(*args, derivative="h_prev"),
        "tanh 的导数要用这一步的输出 h_t：1 - h_t²，不是上一步的 h_{t-1}。",
    ),
    "W_hh gradient transposed": (
        lambda *args: _bptt_by_hand(*args, transpose_w_hh=True),
        "grad_W_hh 的形状与 W_hh 相同 [H_out, H_in]：累加 da_t^T @ h_{t-1}"
        "（不是 h_{t-1}^T @ da_t）。",
    ),
    "back through W_hh^T": (
        lambda *args: _bptt_by_hand(*args, back_through="W_hh^T"),
        "前向是 a_t = ... + h_{t-1} @ W_hh^T，所以传回 h_{t-1} 的梯度是 da_t @ W_hh（不转置）。",
    ),
    "last step only": (
        lambda *args: _bptt_by_hand(*args, accumulate=False),
        "同一组权重在每个时间步都用到了：权重和偏置的梯度要对所有时间步求和。",
    ),
    "h0 left out": (
        lambda *args: _bptt_by_hand(*args, first_state=False),
        "第一步也用到了 W_hh：grad_W_hh 要加上 da_1^T @ h0（h0 不是零）。",
    ),
}


def _bptt_hint(mismatch: Mismatch, case: Case) -> str:
    if mismatch.where == "输出[1]" and isinstance(mismatch.actual, Tensor):
        if mismatch.actual.numel() and not mismatch.actual.abs().sum():
            return "grad_h0 是循环结束时剩下的 dh（从 h_1 传回 h0 的梯度），不是 0。"
    return diagnose(
        _BPTT_MISTAKES,
        "从 t = T 往回：dh = grad_h[t] + dh_next；da = dh ⊙ (1 - h_t²)；grad_x[t] = da @ W_ih；"
        "grad_W_ih += da^T @ x_t；grad_W_hh += da^T @ h_{t-1}；"
        "grad_b_ih、grad_b_hh += da 按批求和；"
        "dh_next = da @ W_hh。最后 grad_h0 = dh_next。",
    )(mismatch, case)


@exercise_check
def check_rnn_bptt(student_rnn_bptt: Callable[..., Gradients]) -> CheckResult:
    """Check backpropagation through time for a vanilla tanh RNN, written by hand.

    Contract (``torch.nn.RNN``'s names, time-major)::

        rnn_bptt(x, h0, W_ih, W_hh, b_ih, b_hh, grad_h)
            -> (grad_x, grad_h0, grad_W_ih, grad_W_hh, grad_b_ih, grad_b_hh)

    x [T, B, D], h0 [B, H], W_ih [H, D], W_hh [H, H], b_ih [H], b_hh [H]; the forward pass
    is ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` for t = 1..T with h_0 = h0.
    ``grad_h`` [T, B, H] holds dL/dh_t, the gradient the loss sends to each output h_t
    directly (not the part that flows back from later steps). Returns the gradients of L
    with respect to each input, each with that input's shape, dtype and device. Checked
    against autograd; autograd itself (``.backward()``, ``torch.autograd.grad``) is off
    limits.
    """
    return check_function(
        "手写 RNN 的时间反向传播（BPTT）",
        student_rnn_bptt,
        _bptt_reference,
        _bptt_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_bptt_hint,
        forbidden=[
            forbid(
                torch.autograd.grad,
                torch.autograd.backward,
                torch.Tensor.backward,
                "torch.func.vjp",
                "torch.func.jvp",
                name="autograd（.backward() / torch.autograd.grad）",
            ),
        ],
    )
