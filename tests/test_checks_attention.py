"""Proof that every exercise check of the attention chapter can fail, with a useful hint."""

from __future__ import annotations

import math

import torch

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
    ),
    Proof(
        checks.check_split_heads,
        correct=split_heads,
        wrong=[Wrong(split_heads_wrong_order, "transpose(1, 2)")],
    ),
    Proof(
        checks.check_merge_heads,
        correct=merge_heads,
        wrong=[
            Wrong(merge_heads_without_transpose, "先交换 H 和 L"),
            Wrong(merge_heads_by_sum, "拼接"),
        ],
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
    ),
]

globals().update(parametrize_proofs(PROOFS))
