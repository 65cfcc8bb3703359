"""Proof that every exercise check of the attention chapter can fail, with a useful hint."""

from __future__ import annotations

import math

import torch

from course_lib import attention
from course_lib.checks import attention as checks
from tests.checkproof import Proof, Wrong, parametrize_proofs

# ----------------------------------------------------------------------------------------
# Scaled dot-product attention
# ----------------------------------------------------------------------------------------


def sdpa(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        )
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)
    return weights @ v, weights


def sdpa_torch_free_nan_guard(q, k, v, mask=None):
    """Also right: the blocked rows zeroed by hand instead of nan_to_num."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, float("-inf"))
    elif mask is not None:
        scores = scores + mask
    top = scores.amax(dim=-1, keepdim=True)
    weights = (scores - torch.where(top.isinf(), torch.zeros_like(top), top)).exp()
    total = weights.sum(dim=-1, keepdim=True)
    weights = torch.where(total > 0, weights / total.clamp_min(1e-300), torch.zeros_like(weights))
    return weights @ v, weights


def sdpa_unscaled(q, k, v, mask=None):
    return sdpa(q * math.sqrt(q.shape[-1]), k, v, mask)


def sdpa_divides_by_e(q, k, v, mask=None):
    return sdpa(q / math.sqrt(q.shape[-1]), k, v, mask)


def sdpa_mask_reversed(q, k, v, mask=None):
    if mask is not None and mask.dtype == torch.bool:
        mask = ~mask
    return sdpa(q, k, v, mask)


def sdpa_softmax_over_queries(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        )
    weights = torch.softmax(scores, dim=-2)
    return weights @ v, weights


def sdpa_nan_on_blocked_rows(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        )
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_ignores_float_masks(q, k, v, mask=None):
    return sdpa(q, k, v, mask if mask is not None and mask.dtype == torch.bool else None)


def sdpa_output_only(q, k, v, mask=None):
    return sdpa(q, k, v, mask)[0]


# ----------------------------------------------------------------------------------------
# Additive attention
# ----------------------------------------------------------------------------------------


def additive(query, keys, values, w_query, w_key, w_score, mask=None):
    scores = torch.tanh((query @ w_query.T).unsqueeze(1) + keys @ w_key.T) @ w_score
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return (weights.unsqueeze(-1) * values).sum(dim=1), weights


def additive_without_tanh(query, keys, values, w_query, w_key, w_score, mask=None):
    scores = ((query @ w_query.T).unsqueeze(1) + keys @ w_key.T) @ w_score
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
    return (weights.unsqueeze(-1) * values).sum(dim=1), weights


def additive_sums_keys(query, keys, values, w_query, w_key, w_score, mask=None):
    return additive(query, keys, keys, w_query, w_key, w_score, mask)


def additive_mask_reversed(query, keys, values, w_query, w_key, w_score, mask=None):
    return additive(query, keys, values, w_query, w_key, w_score, None if mask is None else ~mask)


def additive_nan_when_all_masked(query, keys, values, w_query, w_key, w_score, mask=None):
    scores = torch.tanh((query @ w_query.T).unsqueeze(1) + keys @ w_key.T) @ w_score
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(-1) * values).sum(dim=1), weights


# ----------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------


def split_heads(x, num_heads):
    batch, length, dim = x.shape
    return x.reshape(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def split_heads_wrong_order(x, num_heads):
    batch, length, dim = x.shape
    return x.reshape(batch, num_heads, length, dim // num_heads)


def merge_heads(x):
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


def merge_heads_without_transpose(x):
    batch, heads, length, head_dim = x.shape
    return x.reshape(batch, length, heads * head_dim)


def merge_heads_by_sum(x):
    return x.sum(dim=1).repeat(1, 1, x.shape[1])


# ----------------------------------------------------------------------------------------
# Causal mask
# ----------------------------------------------------------------------------------------


def causal_mask(length):
    return torch.ones(length, length, dtype=torch.bool).tril()


def causal_mask_upper(length):
    return torch.ones(length, length, dtype=torch.bool).triu()


def causal_mask_strict(length):
    return torch.ones(length, length, dtype=torch.bool).tril(-1)


def causal_mask_blocked_is_true(length):
    return ~torch.ones(length, length, dtype=torch.bool).tril()


def causal_mask_float(length):
    return torch.ones(length, length).tril()


# ----------------------------------------------------------------------------------------
# The permutation test
# ----------------------------------------------------------------------------------------


def permutation_test(layer, x, permutation):
    return bool(torch.allclose(layer(x[:, permutation]), layer(x)[:, permutation], atol=1e-5))


def permutation_test_output_not_permuted(layer, x, permutation):
    return bool(torch.allclose(layer(x[:, permutation]), layer(x), atol=1e-5))


def permutation_test_batch_dim(layer, x, permutation):
    return bool(torch.allclose(layer(x[permutation]), layer(x)[permutation], atol=1e-5))


def permutation_test_exact_equality(layer, x, permutation):
    return torch.equal(layer(x[:, permutation]), layer(x)[:, permutation])


def permutation_test_returns_tensor(layer, x, permutation):
    return torch.isclose(layer(x[:, permutation]), layer(x)[:, permutation], atol=1e-5).all()


# ----------------------------------------------------------------------------------------
# Sinusoidal positional encoding
# ----------------------------------------------------------------------------------------


def positional_encoding(length, dim):
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return encoding


def positional_encoding_float64(length, dim):
    position = torch.arange(length, dtype=torch.float64)[:, None]
    angle = position / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    encoding = torch.zeros(length, dim, dtype=torch.float64)
    encoding[:, 0::2] = angle.sin()
    encoding[:, 1::2] = angle[:, : dim // 2].cos()
    return encoding


def positional_encoding_halves(length, dim):
    angle = torch.arange(length)[:, None] / 10000 ** (torch.arange(0, dim, 2) / dim)
    return torch.cat([angle.sin(), angle.cos()], dim=1)[:, :dim]


def positional_encoding_cos_first(length, dim):
    encoding = positional_encoding(length, dim)
    columns = torch.arange(dim)
    angle = torch.arange(length)[:, None] / 10000 ** ((2 * (columns // 2)) / dim)
    return torch.where(columns % 2 == 0, angle.cos(), angle.sin()) + 0 * encoding


def positional_encoding_exponent_i(length, dim):
    position = torch.arange(length).unsqueeze(1)
    frequency = 1 / 10000 ** (torch.arange(0, (dim + 1) // 2) / dim)
    encoding = torch.zeros(length, dim)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return encoding


def positional_encoding_from_one(length, dim):
    return positional_encoding(length + 1, dim)[1:]


def positional_encoding_odd_dims_crash(length, dim):
    position = torch.arange(length).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency)
    return encoding


def test_positional_encoding_odd_dim_crash_gets_the_odd_dim_hint(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    result = checks.check_positional_encoding(positional_encoding_odd_dims_crash)
    printed = capsys.readouterr().out
    assert result.status == "error" and "是奇数" in printed, printed


PROOFS = [
    Proof(
        checks.check_scaled_dot_product_attention,
        correct=sdpa,
        wrong=[
            Wrong(sdpa_unscaled, "忘了除以 sqrt(E)"),
            Wrong(sdpa_divides_by_e, "除以的是 E"),
            Wrong(sdpa_mask_reversed, "掩码用反了"),
            Wrong(sdpa_softmax_over_queries, "softmax 的维度不对"),
            Wrong(sdpa_nan_on_blocked_rows, "NaN"),
            Wrong(sdpa_ignores_float_masks, "浮点掩码"),
            Wrong(sdpa_output_only, "应返回 tuple"),
        ],
        delegate=lambda q, k, v, mask=None: attention.scaled_dot_product_attention(q, k, v, mask),
        also_correct=[sdpa_torch_free_nan_guard],
    ),
    Proof(
        checks.check_additive_attention,
        correct=additive,
        wrong=[
            Wrong(additive_without_tanh, "漏了 tanh"),
            Wrong(additive_sums_keys, "values"),
            Wrong(additive_mask_reversed, "掩码用反了"),
            Wrong(additive_nan_when_all_masked, "NaN"),
        ],
        delegate=attention.additive_attention,
    ),
    Proof(
        checks.check_split_heads,
        correct=split_heads,
        wrong=[Wrong(split_heads_wrong_order, "transpose(1, 2)")],
        delegate=attention.split_heads,
        float64_required=True,
    ),
    Proof(
        checks.check_merge_heads,
        correct=merge_heads,
        wrong=[
            Wrong(merge_heads_without_transpose, "先交换 H 和 L"),
            Wrong(merge_heads_by_sum, "拼接"),
        ],
        delegate=attention.merge_heads,
        float64_required=True,
    ),
    Proof(
        checks.check_causal_mask,
        correct=causal_mask,
        wrong=[
            Wrong(causal_mask_upper, "方向反了"),
            Wrong(causal_mask_strict, "对角线"),
            Wrong(causal_mask_blocked_is_true, "可以关注"),
            Wrong(causal_mask_float, "类型不对"),
        ],
        delegate=attention.causal_mask,
        float32_inputs=False,
    ),
    Proof(
        checks.check_permutation_test,
        correct=permutation_test,
        wrong=[
            Wrong(permutation_test_output_not_permuted, "同一个排列"),
            Wrong(permutation_test_batch_dim, "序列维"),
            Wrong(permutation_test_exact_equality, "allclose"),
            Wrong(permutation_test_returns_tensor, "bool"),
        ],
        delegate=attention.is_permutation_equivariant,
        float32_inputs=False,
    ),
    Proof(
        checks.check_positional_encoding,
        correct=positional_encoding,
        also_correct=[positional_encoding_float64],
        wrong=[
            Wrong(positional_encoding_halves, "交错排列"),
            Wrong(positional_encoding_cos_first, "偶数列"),
            Wrong(positional_encoding_exponent_i, "2i/d"),
            Wrong(positional_encoding_from_one, "位置从 0 开始"),
        ],
        delegate=attention.sinusoidal_positional_encoding,
        float32_inputs=False,
        dtype_map={torch.float32: torch.float16},
    ),
]

globals().update(parametrize_proofs(PROOFS))
