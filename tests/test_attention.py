"""course_lib.attention against PyTorch and against slow, obviously-correct references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib import attention as A


def randn(*shape, seed=0, device="cpu", dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype).to(device)


def random_bool(*shape, seed=0, device="cpu", p=0.7):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=generator) < p).to(device)


# ----------------------------------------------------------------------------------------
# scaled_dot_product_attention
# ----------------------------------------------------------------------------------------


def _masks(lq, lk, device):
    """Mask kinds: none, bool, float (additive), causal, key padding [B, 1, 1, Lk]."""
    float_mask = randn(lq, lk, seed=5, device=device)
    float_mask[0, 0] = float("-inf")
    return {
        "none": None,
        "bool": random_bool(lq, lk, seed=3, device=device)
        | torch.eye(lq, lk, dtype=torch.bool, device=device),
        "float": float_mask,
        "causal": torch.ones(lq, lk, dtype=torch.bool, device=device).tril(),
        "padding": A.padding_mask(torch.tensor([lk, max(lk - 2, 1)], device=device), lk),
    }


@pytest.mark.parametrize("mask_kind", ["none", "bool", "float", "causal", "padding"])
@pytest.mark.parametrize("shape", [(2, 3, 5, 5, 8, 8), (2, 1, 4, 7, 6, 3), (2, 4, 1, 9, 16, 16)])
def test_sdpa_matches_pytorch(device, mask_kind, shape):
    batch, heads, lq, lk, e, ev = shape
    q = randn(batch, heads, lq, e, seed=0, device=device)
    k = randn(batch, heads, lk, e, seed=1, device=device)
    v = randn(batch, heads, lk, ev, seed=2, device=device)
    mask = _masks(lq, lk, device)[mask_kind]
    ours, weights = A.scaled_dot_product_attention(q, k, v, mask)
    theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)
    assert weights.shape == (batch, heads, lq, lk)
    torch.testing.assert_close(weights @ v, ours)


def test_sdpa_float32_and_custom_scale_match_pytorch(device):
    q, k, v = (randn(3, 6, 8, seed=s, device=device, dtype=torch.float32) for s in range(3))
    for scale in (None, 0.1, 1.0):
        ours, _ = A.scaled_dot_product_attention(q, k, v, scale=scale)
        theirs = F.scaled_dot_product_attention(q, k, v, scale=scale)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_sdpa_causal_mask_equals_is_causal():
    q, k, v = (randn(2, 7, 4, seed=s) for s in range(3))
    ours, _ = A.scaled_dot_product_attention(q, k, v, A.causal_mask(7))
    theirs = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, theirs)


def test_sdpa_weights_sum_to_one_and_masked_keys_get_zero():
    q, k, v = randn(4, 5, 3, seed=0), randn(4, 6, 3, seed=1), randn(4, 6, 2, seed=2)
    mask = random_bool(4, 5, 6, seed=7) | torch.eye(5, 6, dtype=torch.bool)
    _, weights = A.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 5, dtype=torch.float64))
    assert (weights[~mask] == 0).all()
    assert (weights >= 0).all()


def test_sdpa_fully_masked_row_gives_zero_weights_and_output_not_nan():
    """Behaviour: a query that may attend to nothing gets zero weights and a zero output."""
    q, k, v = randn(2, 3, 4, seed=0), randn(2, 5, 4, seed=1), randn(2, 5, 4, seed=2)
    mask = torch.ones(2, 3, 5, dtype=torch.bool)
    mask[0, 1] = False
    for m in (mask, torch.zeros(2, 3, 5, dtype=torch.float64).masked_fill(~mask, float("-inf"))):
        out, weights = A.scaled_dot_product_attention(q, k, v, m)
        assert not out.isnan().any() and not weights.isnan().any()
        assert (weights[0, 1] == 0).all() and (out[0, 1] == 0).all()
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=m))
    # Gradients stay finite too.
    q.requires_grad_(True)
    A.scaled_dot_product_attention(q, k, v, mask)[0].sum().backward()
    assert torch.isfinite(q.grad).all()


def test_sdpa_does_not_hide_nan_inputs():
    q, k, v = randn(1, 2, 3, seed=0), randn(1, 4, 3, seed=1), randn(1, 4, 3, seed=2)
    q[0, 0, 0] = float("nan")
    out, _ = A.scaled_dot_product_attention(q, k, v, torch.ones(2, 4, dtype=torch.bool))
    assert out[0, 0].isnan().all() and not out[0, 1].isnan().any()


def test_sdpa_empty_inputs():
    q, k, v = randn(2, 3, 4), randn(2, 0, 4), randn(2, 0, 5)
    out, weights = A.scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5) and weights.shape == (2, 3, 0)
    assert (out == 0).all()
    out, weights = A.scaled_dot_product_attention(randn(0, 0, 4), randn(0, 3, 4), randn(0, 3, 2))
    assert out.shape == (0, 0, 2) and weights.shape == (0, 0, 3)


def test_sdpa_gradcheck_with_mask():
    q = randn(2, 3, 4, seed=0).requires_grad_(True)
    k = randn(2, 5, 4, seed=1).requires_grad_(True)
    v = randn(2, 5, 3, seed=2).requires_grad_(True)
    mask = random_bool(3, 5, seed=4) | torch.eye(3, 5, dtype=torch.bool)
    assert torch.autograd.gradcheck(
        lambda q, k, v: A.scaled_dot_product_attention(q, k, v, mask)[0], (q, k, v)
    )


def test_sdpa_dropout_zeroes_weights_in_expectation_unbiased():
    q, k, v = randn(1, 4, 8, seed=0), randn(1, 16, 8, seed=1), randn(1, 16, 8, seed=2)
    torch.manual_seed(0)
    out, weights = A.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert (weights == 0).any()
    torch.testing.assert_close(out, weights @ v)
    clean = A.scaled_dot_product_attention(q, k, v)[1]
    kept = weights != 0
    torch.testing.assert_close(weights[kept], 2 * clean[kept])  # survivors scaled by 1/(1-p)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((torch.zeros(4), torch.zeros(3, 4), torch.zeros(3, 4)), ValueError, "q must have shape"),
        (
            (torch.zeros(2, 4), torch.zeros(3, 5), torch.zeros(3, 4)),
            ValueError,
            r"k must have shape \[\.\.\., Lk, E\] with E = 4 \(from q\), got \[3, 5\]",
        ),
        (
            (torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(2, 4)),
            ValueError,
            r"v must have shape \[\.\.\., Lk, Ev\] with Lk = 3 \(from k\)",
        ),
        ((torch.zeros(2, 4, dtype=torch.long),) + (torch.zeros(3, 4),) * 2, TypeError, "floating"),
        (("q", torch.zeros(3, 4), torch.zeros(3, 4)), TypeError, "q must be a Tensor"),
    ],
)
def test_sdpa_bad_inputs(args, error, match):
    with pytest.raises(error, match=match):
        A.scaled_dot_product_attention(*args)


def test_sdpa_bad_masks():
    q, k, v = torch.zeros(2, 3, 4), torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)
    with pytest.raises(ValueError, match=r"does not broadcast to the scores"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"does not broadcast"):  # would add a batch dimension
        A.scaled_dot_product_attention(q, k, v, torch.ones(7, 2, 3, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        A.scaled_dot_product_attention(q, k, v, torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="mask must be a Tensor"):
        A.scaled_dot_product_attention(q, k, v, [[True]])
    with pytest.raises(ValueError, match="dropout_p"):
        A.scaled_dot_product_attention(q, k, v, dropout_p=1.0)


# ----------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------


def test_causal_mask(device):
    for length in (0, 1, 2, 6):
        mask = A.causal_mask(length, device=device)
        assert mask.dtype == torch.bool and mask.device.type == device
        expected = torch.tensor(
            [[j <= i for j in range(length)] for i in range(length)], dtype=torch.bool
        ).reshape(length, length)
        assert torch.equal(mask.cpu(), expected)
    for bad, error in ((-1, ValueError), (2.0, TypeError), (True, TypeError), ("3", TypeError)):
        with pytest.raises(error, match="length must be an int"):
            A.causal_mask(bad)


def test_padding_mask():
    mask = A.padding_mask(torch.tensor([3, 1, 0]))
    assert mask.shape == (3, 1, 1, 3)
    expected = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)
    assert torch.equal(mask[:, 0, 0], expected)
    assert A.padding_mask(torch.tensor([2]), max_length=5).shape == (1, 1, 1, 5)
    assert A.padding_mask(torch.zeros(0, dtype=torch.long)).shape == (0, 1, 1, 0)
    with pytest.raises(ValueError, match="max_length"):
        A.padding_mask(torch.tensor([4]), max_length=2)
    with pytest.raises(ValueError, match=r"lengths must have shape \[B\], got \[1, 2\]"):
        A.padding_mask(torch.tensor([[1, 2]]))
    with pytest.raises(TypeError, match="integer"):
        A.padding_mask(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="non-negative"):
        A.padding_mask(torch.tensor([-1, 2]))


# ----------------------------------------------------------------------------------------
# Heads and multi-head attention
# ----------------------------------------------------------------------------------------


def test_split_and_merge_heads():
    x = randn(2, 5, 12)
    heads = A.split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    for h in range(3):
        torch.testing.assert_close(heads[:, h], x[..., 4 * h : 4 * (h + 1)])
    torch.testing.assert_close(A.merge_heads(heads), x)
    # Non-contiguous input (a transposed tensor) works too.
    y = randn(2, 12, 5).transpose(1, 2)
    torch.testing.assert_close(A.merge_heads(A.split_heads(y, 4)), y)
    assert A.split_heads(randn(0, 0, 6), 2).shape == (0, 2, 0, 3)
    with pytest.raises(ValueError, match="D divisible by num_heads=5, got D = 12"):
        A.split_heads(x, 5)
    with pytest.raises(ValueError, match=r"\[B, L, D\]"):
        A.split_heads(randn(5, 12), 3)
    with pytest.raises(ValueError, match="num_heads"):
        A.split_heads(x, 0)
    with pytest.raises(ValueError, match=r"x must have shape \[B, H, L, Dh\]"):
        A.merge_heads(x)


def _pair(embed_dim=16, num_heads=4, bias=True, seed=0, dtype=torch.float64, device="cpu"):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True)
    ours = A.MultiHeadAttention(embed_dim, num_heads, bias=bias)
    with torch.no_grad():  # non-zero biases so that they are tested too
        for parameter in theirs.parameters():
            parameter.normal_(0, 0.3)
    ours.load_state_dict(theirs.state_dict())
    return ours.to(device, dtype).eval(), theirs.to(device, dtype).eval()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("self_attention", [True, False])
def test_mha_matches_pytorch(device, bias, self_attention):
    ours, theirs = _pair(bias=bias, device=device)
    query = randn(3, 5, 16, seed=1, device=device)
    key = query if self_attention else randn(3, 7, 16, seed=2, device=device)
    value = query if self_attention else randn(3, 7, 16, seed=3, device=device)
    out, weights = ours(query, key, value)
    ref, ref_weights = theirs(query, key, value, average_attn_weights=False)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(weights, ref_weights)
    fused, none = ours(query, key, value, need_weights=False)
    assert none is None
    torch.testing.assert_close(fused, ref)


def test_mha_masks_match_pytorch(device):
    ours, theirs = _pair(device=device)
    x = randn(2, 6, 16, seed=1, device=device)
    causal = A.causal_mask(6, device=device)
    # torch.nn.MultiheadAttention's bool masks mean "blocked": convert at the boundary.
    ref, _ = theirs(x, x, x, attn_mask=~causal)
    for need_weights in (True, False):
        torch.testing.assert_close(ours(x, x, x, causal, need_weights=need_weights)[0], ref)
    lengths = torch.tensor([6, 3], device=device)
    pad = A.padding_mask(lengths, 6)
    ref, ref_w = theirs(x, x, x, key_padding_mask=~pad[:, 0, 0], average_attn_weights=False)
    out, w = ours(x, x, x, pad)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(w, ref_w)
    additive = randn(6, 6, seed=9, device=device)
    torch.testing.assert_close(ours(x, x, x, additive)[0], theirs(x, x, x, attn_mask=additive)[0])


def test_mha_gradients_match_pytorch():
    ours, theirs = _pair()
    x1 = randn(2, 4, 16, seed=1).requires_grad_(True)
    x2 = x1.detach().clone().requires_grad_(True)
    ours(x1, x1, x1)[0].square().sum().backward()
    theirs(x2, x2, x2)[0].square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 4
    for (name, p1), p2 in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p1.grad, p2.grad, msg=name)


def test_mha_init_parameter_names_and_shapes_like_pytorch():
    ours, theirs = A.MultiHeadAttention(8, 2), nn.MultiheadAttention(8, 2, batch_first=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()
    }
    assert (ours.in_proj_bias == 0).all() and (ours.out_proj.bias == 0).all()
    no_bias = A.MultiHeadAttention(8, 2, bias=False)
    assert no_bias.in_proj_bias is None and no_bias.out_proj.bias is None


def test_mha_dropout_only_in_training():
    mha = A.MultiHeadAttention(8, 2, dropout=0.5)
    x = randn(1, 10, 8, dtype=torch.float32)
    mha.eval()
    torch.testing.assert_close(mha(x, x, x)[0], mha(x, x, x)[0])
    mha.train()
    torch.manual_seed(0)
    _, weights = mha(x, x, x)
    assert (weights == 0).any()


def test_mha_bad_inputs():
    with pytest.raises(ValueError, match=r"num_heads \(3\) must divide embed_dim \(10\)"):
        A.MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="embed_dim must be an int in"):
        A.MultiHeadAttention(0, 1)
    with pytest.raises(ValueError, match="dropout must be a finite number"):
        A.MultiHeadAttention(8, 2, dropout=1.5)
    mha = A.MultiHeadAttention(8, 2)
    x = torch.zeros(2, 3, 8)
    with pytest.raises(ValueError, match=r"query must have shape \[B, Lq, D\]"):
        mha(torch.zeros(3, 8), x, x)
    with pytest.raises(ValueError, match=r"D = 8 \(embed_dim\), got \[2, 3, 4\]"):
        mha(torch.zeros(2, 3, 4), x, x)
    with pytest.raises(ValueError, match=r"value must have shape \[B, Lk, D\] with Lk = 4"):
        mha(x, torch.zeros(2, 4, 8), x)
    with pytest.raises(TypeError, match=r"query is torch.float64 but the model's parameters"):
        mha(x.double(), x.double(), x.double())
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(x, x, x, torch.ones(4, 4, dtype=torch.bool), need_weights=False)


# ----------------------------------------------------------------------------------------
# Self-attention: permutation equivariance, positional encodings, causality
# ----------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 3),
    length=st.integers(1, 8),
    heads=st.sampled_from([1, 2, 4]),
    seed=st.integers(0, 10_000),
)
def test_self_attention_is_permutation_equivariant(batch, length, heads, seed):
    torch.manual_seed(seed)
    mha = A.MultiHeadAttention(8, heads).double()
    x = randn(batch, length, 8, seed=seed)
    permutation = torch.randperm(length)
    assert A.is_permutation_equivariant(lambda t: mha(t, t, t), x, permutation, atol=1e-12)
    single = A.SelfAttention(8).double()
    assert A.is_permutation_equivariant(single, x, permutation, atol=1e-12)


def test_positions_and_masks_break_equivariance():
    torch.manual_seed(0)
    mha = A.MultiHeadAttention(8, 2).double()
    x = randn(2, 6, 8)
    permutation = torch.tensor([1, 0, 2, 3, 5, 4])
    encoding = A.sinusoidal_positional_encoding(6, 8, dtype=torch.float64)
    assert not A.is_permutation_equivariant(
        lambda t: mha(t + encoding, t + encoding, t + encoding), x, permutation
    )
    causal = A.causal_mask(6)
    assert not A.is_permutation_equivariant(lambda t: mha(t, t, t, causal), x, permutation)
    gru = nn.GRU(8, 8, batch_first=True).double()
    assert not A.is_permutation_equivariant(gru, x, permutation)
    assert A.is_permutation_equivariant(nn.Linear(8, 3).double(), x, permutation)
    with pytest.raises(ValueError, match="permutation"):
        A.is_permutation_equivariant(gru, x, torch.arange(5))


def test_causal_self_attention_ignores_the_future():
    torch.manual_seed(0)
    mha = A.MultiHeadAttention(8, 2).double()
    x = randn(2, 7, 8)
    changed = x.clone()
    changed[:, 4:] = randn(2, 3, 8, seed=1)
    mask = A.causal_mask(7)
    for need_weights in (True, False):
        y1 = mha(x, x, x, mask, need_weights=need_weights)[0]
        y2 = mha(changed, changed, changed, mask, need_weights=need_weights)[0]
        torch.testing.assert_close(y1[:, :4], y2[:, :4], atol=0, rtol=0)
        assert not torch.allclose(y1[:, 4:], y2[:, 4:])
    # The same as a gradient: output 3 does not depend on inputs 4..6 at all.
    x.requires_grad_(True)
    mha(x, x, x, mask)[0][:, 3].sum().backward()
    assert (x.grad[:, 4:] == 0).all() and (x.grad[:, :4] != 0).any()
    tagger = A.SelfAttentionTagger(10, dim=8, num_heads=2, causal=True).double()
    tokens = torch.randint(0, 10, (2, 7))
    other = tokens.clone()
    other[:, 5:] = (other[:, 5:] + 1) % 10
    torch.testing.assert_close(tagger(tokens)[0][:, :5], tagger(other)[0][:, :5])


def test_sinusoidal_positional_encoding_matches_formula():
    for length, dim in [(7, 8), (5, 7), (3, 1), (0, 4), (4, 0)]:
        pe = A.sinusoidal_positional_encoding(length, dim, dtype=torch.float64)
        assert pe.shape == (length, dim)
        for p in range(length):
            for j in range(dim):
                angle = p / 10000 ** ((j - j % 2) / dim)
                expected = math.sin(angle) if j % 2 == 0 else math.cos(angle)
                assert abs(pe[p, j].item() - expected) < 1e-12
    with pytest.raises(ValueError, match="length"):
        A.sinusoidal_positional_encoding(-1, 4)


def test_sinusoidal_offset_is_a_fixed_rotation():
    pe = A.sinusoidal_positional_encoding(40, 16, dtype=torch.float64)
    offset = 5
    # One least-squares linear map sends PE[p] to PE[p + offset] for every p.
    source, target = pe[:-offset], pe[offset:]
    # gelsd (SVD based): the rank-revealing default (gelsy) was flaky here on torch 2.5.
    solution = torch.linalg.lstsq(source, target, driver="gelsd").solution
    torch.testing.assert_close(source @ solution, target, atol=1e-8, rtol=0)


def test_learned_positional_embedding():
    embedding = A.LearnedPositionalEmbedding(5, 4)
    x = torch.zeros(2, 3, 4)
    torch.testing.assert_close(embedding(x), embedding.weight[:3].expand(2, 3, 4))
    with pytest.raises(ValueError, match="x must have at most max_length = 5 positions"):
        embedding(torch.zeros(1, 6, 4))


def test_attention_layer_and_self_attention_match_manual_computation():
    torch.manual_seed(0)
    layer = A.AttentionLayer(query_dim=4, input_dim=6, value_dim=3).double()
    query, inputs = randn(2, 5, 4, seed=1), randn(2, 7, 6, seed=2)
    out, weights = layer(query, inputs)
    keys, values = inputs @ layer.key.weight.T, inputs @ layer.value.weight.T
    expected_weights = torch.softmax(query @ keys.transpose(1, 2) / 2.0, dim=-1)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(out, expected_weights @ values)
    attention = A.SelfAttention(6, key_dim=4, value_dim=2).double()
    y, w = attention(inputs)
    q, k = inputs @ attention.query.weight.T, inputs @ attention.key.weight.T
    torch.testing.assert_close(w, torch.softmax(q @ k.transpose(1, 2) / 2.0, dim=-1))
    assert y.shape == (2, 7, 2)


# ----------------------------------------------------------------------------------------
# Additive attention and seq2seq with attention
# ----------------------------------------------------------------------------------------


def _additive_reference(query, keys, values, w_query, w_key, w_score, mask):
    batch, length = keys.shape[:2]
    contexts, all_weights = [], []
    for b in range(batch):
        scores = torch.stack(
            [w_score @ torch.tanh(w_query @ query[b] + w_key @ keys[b, i]) for i in range(length)]
        )
        if mask is not None:
            scores = scores.masked_fill(~mask[b], float("-inf"))
        weights = torch.softmax(scores, 0) if length else scores
        contexts.append(
            sum(
                (weights[i] * values[b, i] for i in range(length)),
                values.new_zeros(values.shape[2]),
            )
        )
        all_weights.append(weights)
    return torch.stack(contexts), torch.stack(all_weights)


def test_additive_attention_matches_loop_reference(device):
    query, keys, values = randn(3, 5, seed=0), randn(3, 6, 4, seed=1), randn(3, 6, 2, seed=2)
    w_query, w_key, w_score = randn(7, 5, seed=3), randn(7, 4, seed=4), randn(7, seed=5)
    mask = torch.ones(3, 6, dtype=torch.bool)
    mask[1, 3:] = False
    for m in (None, mask):
        args = [t.to(device) for t in (query, keys, values, w_query, w_key, w_score)]
        context, weights = A.additive_attention(*args, None if m is None else m.to(device))
        ref_context, ref_weights = _additive_reference(
            query, keys, values, w_query, w_key, w_score, m
        )
        torch.testing.assert_close(context.cpu(), ref_context)
        torch.testing.assert_close(weights.cpu(), ref_weights)
    projected = keys @ w_key.T
    again = A.additive_attention(
        query, keys, values, w_query, w_key, w_score, mask, projected_keys=projected
    )
    torch.testing.assert_close(
        again[0], A.additive_attention(query, keys, values, w_query, w_key, w_score, mask)[0]
    )


def test_additive_attention_module_and_edge_cases():
    torch.manual_seed(0)
    module = A.AdditiveAttention(5, 4, 7).double()
    query, keys = randn(2, 5), randn(2, 3, 4)
    context, weights = module(query, keys, keys)
    ref = A.additive_attention(
        query, keys, keys, module.query_proj.weight, module.key_proj.weight, module.score.weight[0]
    )
    torch.testing.assert_close(context, ref[0])
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, dtype=torch.float64))
    blocked = torch.zeros(2, 3, dtype=torch.bool)
    context, weights = module(query, keys, keys, blocked)
    assert (weights == 0).all() and (context == 0).all()
    with pytest.raises(ValueError, match=r"mask must have shape \[B, S\] with S = 3 \(from keys\)"):
        module(query, keys, keys, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"query must have shape \[B, 5\], got \[2, 1, 5\]"):
        module(randn(2, 1, 5), keys, keys)
    with pytest.raises(ValueError, match="w_query"):
        A.additive_attention(query, keys, keys, randn(7, 4), randn(7, 4), randn(7))


def test_reverse_padded_matches_loop():
    x = randn(3, 5, 2)
    lengths = torch.tensor([5, 2, 0])
    out = A.reverse_padded(x, lengths)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(out[b, :n], x[b, :n].flip(0))
        torch.testing.assert_close(out[b, n:], x[b, n:])


def _dates_model(bidirectional=True, seed=0):
    from course_lib import data

    torch.manual_seed(seed)
    dates = data.load_dates(64, 8, 8, seed=1)
    model = A.AttentionSeq2Seq(
        len(dates.source_vocab), len(dates.target_vocab), embed_dim=8, hidden_size=16,
        bidirectional=bidirectional,
    )  # fmt: skip
    return model, dates


@pytest.mark.parametrize("bidirectional", [True, False])
def test_attention_seq2seq_shapes_and_padding_invariance(bidirectional):
    from course_lib import data

    model, dates = _dates_model(bidirectional)
    batch = data.encode_dates(dates.train[:6], dates.source_vocab, dates.target_vocab)
    logits, loss = model(batch.source, batch.source_lengths, batch.target)
    assert logits.shape == (6, batch.target.shape[1] - 1, len(dates.target_vocab))
    assert loss.dim() == 0 and torch.isfinite(loss)
    weights = model.attention_weights(batch.source, batch.source_lengths, batch.target)
    assert weights.shape == (6, batch.target.shape[1] - 1, batch.source.shape[1])
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:2]))
    padding = ~A.padding_mask(batch.source_lengths, batch.source.shape[1])[:, 0]  # [B, 1, S]
    assert (weights.masked_select(padding) == 0).all()
    # One example alone (no padding) gives the same logits as inside the padded batch.
    shortest = int(batch.source_lengths.argmin())
    n = int(batch.source_lengths[shortest])
    alone, _ = model(
        batch.source[shortest : shortest + 1, :n],
        batch.source_lengths[shortest : shortest + 1],
        batch.target[shortest : shortest + 1],
    )
    torch.testing.assert_close(alone[0], logits[shortest], atol=1e-5, rtol=1e-5)


def test_attention_seq2seq_generate():
    from course_lib import data

    model, dates = _dates_model()
    batch = data.encode_dates(dates.train[:5], dates.source_vocab, dates.target_vocab)
    tokens = model.generate(batch.source, batch.source_lengths, max_length=7)
    assert tokens.shape == (5, 7) and tokens.dtype == torch.long
    tokens, weights = model.generate(batch.source, batch.source_lengths, 7, return_attention=True)
    assert weights.shape == (5, 7, batch.source.shape[1])
    is_end = (tokens == model.end_id).long()
    after_end = (is_end.cumsum(1) - is_end) > 0
    torch.testing.assert_close(weights.sum(-1)[~after_end], torch.ones(int((~after_end).sum())))
    assert (weights[after_end] == 0).all()
    # Make <end> the most likely token at every step: each row ends at step 0, then padding
    # follows and attends nowhere.
    with torch.no_grad():
        model.decoder.output.bias[model.end_id] += 1e4
    tokens, weights = model.generate(batch.source, batch.source_lengths, 7, return_attention=True)
    assert (tokens[:, 0] == model.end_id).all() and (tokens[:, 1:] == model.pad_id).all()
    assert (weights[:, 0].sum(-1) > 0.99).all() and (weights[:, 1:] == 0).all()
    with torch.no_grad():
        model.decoder.output.bias[model.end_id] -= 1e4
    assert model.generate(batch.source, batch.source_lengths, 0).shape == (5, 0)
    # Greedy decoding is consistent with teacher forcing on its own output.
    model.eval()
    tokens = model.generate(batch.source, batch.source_lengths, max_length=7)
    fed = torch.cat([torch.full((5, 1), model.start_id), tokens], dim=1)
    logits, _ = model(batch.source, batch.source_lengths, fed)
    before_end = (tokens == model.end_id).long().cumsum(1) - (tokens == model.end_id).long() == 0
    assert torch.equal(logits.argmax(-1)[before_end], tokens[before_end])


def test_attention_seq2seq_learns_and_works_with_rnn_helpers():
    from course_lib import data
    from course_lib.train import fit

    model, dates = _dates_model()
    encoded = data.encode_dates(dates.train, dates.source_vocab, dates.target_vocab)
    history = fit(
        model,
        A.length_bucketed_batches(encoded, 16),
        steps=30,
        lr=1e-2,
        device="cpu",
        progress=False,
        live_plot=False,
    )
    assert sum(history.losses[-5:]) < 0.7 * sum(history.losses[:5])
    from course_lib import rnn

    texts = rnn.translate(
        model, [p.source for p in dates.test[:4]], dates.source_vocab, dates.target_vocab
    )
    assert len(texts) == 4 and all(isinstance(t, str) for t in texts)
    correct = rnn.exact_match(model, dates.test, dates.source_vocab, dates.target_vocab)
    assert correct.shape == (len(dates.test),) and correct.dtype == torch.bool


def test_attention_seq2seq_bad_inputs():
    model, _ = _dates_model()
    source = torch.ones(2, 5, dtype=torch.long)
    target = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"source_lengths must lie in \[1, 5\]"):
        model(source, torch.tensor([0, 5]), target)
    with pytest.raises(TypeError, match=r"source must be an integer tensor"):
        model(source.float(), torch.tensor([5, 5]), target)
    with pytest.raises(ValueError, match=r"target must have shape"):
        model(source, torch.tensor([5, 5]), target[:, :1])
    with pytest.raises(ValueError, match="hidden_size"):
        A.AttentionSeq2Seq(10, 10, hidden_size=0)


def test_length_bucketed_batches_trim_and_repeat():
    from course_lib import data

    dates = data.load_dates(300, 0, 0, seed=2)
    encoded = data.encode_dates(dates.train, dates.source_vocab, dates.target_vocab)
    first = A.length_bucketed_batches(encoded, 32, seed=5)
    second = A.length_bucketed_batches(encoded, 32, seed=5)
    for _ in range(5):
        source, lengths, target = first()
        assert source.shape == (32, int(lengths.max())) and target.shape == (32, 12)
        assert int(lengths.max()) - int(lengths.min()) <= int(encoded.source_lengths.max())
        other = second()
        assert torch.equal(source, other[0])


def test_accuracy_by_length():
    correct = torch.tensor([True, False, True, True])
    lengths = torch.tensor([3, 4, 10, 30])
    labels, accuracy, counts = A.accuracy_by_length(correct, lengths, [0, 5, 20, 25])
    assert labels == ["0-4", "5-19", "20-24"]
    torch.testing.assert_close(accuracy[:2], torch.tensor([0.5, 1.0], dtype=torch.float64))
    assert accuracy[2].isnan() and counts.tolist() == [2, 1, 0]
    with pytest.raises(ValueError, match="increasing"):
        A.accuracy_by_length(correct, lengths, [5, 5])


def test_softmax_saturation():
    dims = [4, 64, 1024]
    scaled = A.softmax_saturation(dims, num_samples=500)
    unscaled = A.softmax_saturation(dims, num_samples=500, scaled=False)
    assert ((scaled["score_std"] - 1).abs() < 0.1).all()
    torch.testing.assert_close(
        unscaled["score_std"], torch.tensor(dims, dtype=torch.float64).sqrt(), rtol=0.1, atol=0
    )
    assert (unscaled["max_weight"].diff() > 0).all() and unscaled["max_weight"][-1] > 0.9
    assert (unscaled["jacobian_norm"].diff() < 0).all()
    assert scaled["jacobian_norm"].max() / scaled["jacobian_norm"].min() < 1.3


# ----------------------------------------------------------------------------------------
# Captioning, CNN self-attention, toy tasks
# ----------------------------------------------------------------------------------------


def test_make_digit_sequences_places_the_digits():
    from course_lib.data import load_digits

    digits = load_digits()
    seqs = A.make_digit_sequences(digits.test_images, digits.test_labels, 20, 2, 4, seed=3)
    assert seqs.images.shape == (20, 1, 10, 44)
    again = A.make_digit_sequences(digits.test_images, digits.test_labels, 20, 2, 4, seed=3)
    assert torch.equal(seqs.images, again.images) and torch.equal(seqs.targets, again.targets)
    vocab = seqs.vocab
    for n in range(20):
        text = seqs.text(n)
        assert 2 <= len(text) <= 4
        assert vocab.decode(seqs.targets[n, 1:]) == text and seqs.targets[n, 0] == vocab.start_id
        covered = torch.zeros(10, 44, dtype=torch.bool)
        for k, label in enumerate(text):
            top, left = int(seqs.top[n, k]), int(seqs.left[n, k])
            crop = seqs.images[n, 0, top : top + 8, left : left + 8]
            same_label = digits.test_images[digits.test_labels == int(label), 0]
            assert (same_label == crop).flatten(1).all(1).any()
            covered[top : top + 8, left : left + 8] = True
        assert (seqs.images[n, 0][~covered] == 0).all()
        lefts = seqs.left[n, : len(text)]
        assert (lefts.diff() >= 8).all()  # left to right, no overlap
    with pytest.raises(ValueError, match="min_digits"):
        A.make_digit_sequences(digits.test_images, digits.test_labels, 5, 3, 2)
    assert len(A.make_digit_sequences(digits.test_images, digits.test_labels, 0)) == 0


def test_attention_captioner_shapes_and_learning():
    from course_lib.data import load_digits
    from course_lib.train import fit

    torch.manual_seed(0)
    digits = load_digits()
    seqs = A.make_digit_sequences(digits.train_images, digits.train_labels, 32, 1, 3, seed=0)
    model = A.AttentionCaptioner(
        len(seqs.vocab), tuple(seqs.images.shape[2:]), channels=8, hidden_size=16
    )
    logits, _ = model(seqs.images, seqs.targets)
    assert logits.shape == (32, seqs.targets.shape[1] - 1, len(seqs.vocab))
    tokens, weights = model.generate(seqs.images[:3], max_length=5, return_attention=True)
    assert tokens.shape == (3, 5) and weights.shape == (3, 5, *model.grid)
    history = fit(
        model,
        lambda: (seqs.images, seqs.targets),
        steps=20,
        lr=1e-2,
        device="cpu",
        progress=False,
        live_plot=False,
    )
    assert history.losses[-1] < 0.7 * history.losses[0]
    with pytest.raises(ValueError, match="size the model was built for"):
        model(torch.zeros(1, 1, 10, 20), seqs.targets[:1])


def test_self_attention_2d(device):
    torch.manual_seed(0)
    block = A.SelfAttention2d(16).double().to(device)
    x = randn(2, 16, 3, 5, device=device)
    torch.testing.assert_close(block(x), x)  # gamma starts at 0: the identity
    with torch.no_grad():
        block.gamma.fill_(0.7)
    y, weights = block(x, return_weights=True)
    assert weights.shape == (2, 15, 15)
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(2, 15, dtype=torch.float64, device=device)
    )
    torch.testing.assert_close(block(x), y)  # fused path == explicit path
    # 1x1 convolutions and attention know nothing of where a pixel is: shuffling pixels
    # shuffles the output the same way.
    permutation = torch.randperm(15, device=device)
    shuffled = x.flatten(2)[..., permutation].view_as(x)
    torch.testing.assert_close(block(shuffled).flatten(2), y.flatten(2)[..., permutation])
    with pytest.raises(ValueError, match=r"x must have shape \[B, 16, Hf, Wf\]"):
        block(randn(1, 8, 3, 3, device=device))


def test_self_attention_classifier():
    model = A.SelfAttentionClassifier(10, channels=8)
    logits, loss = model(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3]))
    assert logits.shape == (4, 10) and loss.dim() == 0
    assert model(torch.rand(2, 1, 8, 8))[1] is None
    assert A.SelfAttentionClassifier(10, 8, attention=False).attention is None


def test_sequence_task_and_tagger():
    tokens, targets = A.sequence_task("previous", 4, 6, 10, seed=1)
    assert torch.equal(targets[:, 1:], tokens[:, :-1]) and torch.equal(targets[:, 0], tokens[:, -1])
    tokens, targets = A.sequence_task("neighbour_sum", 4, 6, 7, seed=1)
    assert torch.equal(targets[:, 2], (tokens[:, 1] + tokens[:, 3]) % 7)
    tokens, targets = A.sequence_task("neighbour_difference", 4, 6, 7, seed=1)
    assert torch.equal(targets[:, 2], (tokens[:, 1] - tokens[:, 3]) % 7)
    assert torch.equal(targets[:, 0], (tokens[:, 5] - tokens[:, 1]) % 7)
    with pytest.raises(ValueError, match="task"):
        A.sequence_task("sort", 1, 4)
    for positional in ("none", "sinusoidal", "learned"):
        tagger = A.SelfAttentionTagger(10, dim=8, num_heads=2, max_length=6, positional=positional)
        logits, loss = tagger(tokens % 10, targets % 10)
        assert logits.shape == (4, 6, 10) and loss.dim() == 0
        assert tagger.attention_weights(tokens % 10).shape == (4, 2, 6, 6)
    plain = A.SelfAttentionTagger(10, dim=8, positional="none").double()
    embedded = lambda ids: plain(ids)[0]  # noqa: E731
    permutation = torch.tensor([2, 0, 1, 5, 4, 3])
    torch.testing.assert_close(
        embedded(tokens[:, permutation] % 10), embedded(tokens % 10)[:, permutation]
    )


# ----------------------------------------------------------------------------------------
# Three ways to process a sequence
# ----------------------------------------------------------------------------------------


def test_receptive_field_and_layers_to_cover():
    assert A.receptive_field(0, 3) == 1
    assert A.receptive_field(4, 3) == 9
    assert A.receptive_field(4, 3, dilation_growth=2) == 1 + 2 * (1 + 2 + 4 + 8)
    assert A.conv_layers_to_cover(1, 3) == 0
    assert A.conv_layers_to_cover(100, 3) == 50
    assert A.conv_layers_to_cover(1024, 3, dilation_growth=2) == 10
    for length in range(1, 60):
        layers = A.conv_layers_to_cover(length, 5)
        assert A.receptive_field(layers, 5) >= length
        assert layers == 0 or A.receptive_field(layers - 1, 5) < length


def test_input_influence_shows_each_receptive_field():
    torch.manual_seed(0)
    length, position = 15, 7
    rnn = A.input_influence(A.SequenceMixer("rnn", 4), length, 4, position)
    assert (rnn[: position + 1] > 0).all() and (rnn[position + 1 :] == 0).all()
    conv = A.input_influence(
        A.SequenceMixer("conv", 4, num_layers=2, kernel_size=3), length, 4, position
    )
    reach = (conv > 0).nonzero().flatten()
    assert reach.min() == position - 2 and reach.max() == position + 2
    attention = A.input_influence(A.SequenceMixer("attention", 4), length, 4, position)
    assert (attention > 0).all()


def test_sequence_mixers_shapes_and_cost():
    for kind in ("rnn", "conv", "attention"):
        mixer = A.SequenceMixer(kind, 8, num_layers=2)
        assert mixer(torch.randn(2, 5, 8)).shape == (2, 5, 8)
    cost = A.measure_cost(A.SequenceMixer("conv", 8), [4, 8], batch_size=2, dim=8, repeats=1)
    assert (
        cost["length"] == [4.0, 8.0]
        and len(cost["ms"]) == 2
        and all(m > 0 for m in cost["megabytes"])
    )
    with pytest.raises(ValueError, match="kind"):
        A.SequenceMixer("transformer", 8)


def test_saved_tensor_bytes():
    a = torch.randn(100, requires_grad=True)
    b = torch.randn(100, requires_grad=True)
    assert A.saved_tensor_bytes(lambda: (a * b).sum()) == 2 * 100 * 4
    assert A.saved_tensor_bytes(lambda: a.detach() * 2) == 0
    # The explicit softmax keeps the L x L weights for backward; the fused kernel does not.
    explicit = A.SequenceMixer("attention", 16, fused=False)
    fused = A.SequenceMixer("attention", 16, fused=True)
    x = torch.randn(1, 256, 16)
    assert A.saved_tensor_bytes(lambda: explicit(x)) > 256 * 256 * 4
    assert A.saved_tensor_bytes(lambda: fused(x)) < 256 * 256 * 4


def test_text_explorer_is_static_outside_a_notebook():
    import matplotlib.pyplot as plt

    drawn = []

    def draw(text):
        drawn.append(text)
        figure, ax = plt.subplots(figsize=(1, 1))
        ax.set_title(text)
        return figure

    widget = A.text_explorer(draw, ["a", "bb"])
    assert drawn == ["a", "bb"] and "<img" in widget._repr_html_()
    with pytest.raises(ValueError, match="examples"):
        A.text_explorer(draw, [])


# ----------------------------------------------------------------------------------------
# is_causal, the key/value cache and the one way to record attention weights
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_is_causal_matches_torch_with_a_causal_mask(need_weights, device):
    ours, theirs = _pair(device=device)
    x = randn(3, 7, 16, seed=4, device=device)
    expected, _ = theirs(x, x, x, attn_mask=~A.causal_mask(7, device=device), need_weights=False)
    output, weights = ours(x, x, x, need_weights=need_weights, is_causal=True)
    torch.testing.assert_close(output, expected)
    if need_weights:
        assert (weights.triu(1) == 0).all()


def test_mha_with_a_cache_equals_one_causal_pass():
    mha = A.MultiHeadAttention(16, 4).double().eval()
    x = randn(2, 9, 16, seed=5)
    full, _ = mha(x, x, x, need_weights=False, is_causal=True)
    cache = A.KeyValueCache(2, 4, 4, max_length=9, dtype=torch.float64)
    pieces = []
    for start, end in ((0, 3), (3, 4), (4, 9)):  # a prompt, one token, then the rest
        part = x[:, start:end]
        pieces.append(mha(part, part, part, need_weights=False, is_causal=True, cache=cache)[0])
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)
    assert cache.length == 9
    with pytest.raises(ValueError, match="at most 9"):
        part = x[:, :1]
        mha(part, part, part, cache=cache)


def test_key_value_cache_grows_and_reorders():
    cache = A.KeyValueCache(2, 1, 3, max_length=None)
    assert cache.max_length is None
    keys = [torch.full((2, 1, 1, 3), float(t)) for t in range(40)]
    for key in keys:
        stored, _ = cache.append(key, key)
    assert stored.shape == (2, 1, 40, 3) and torch.equal(stored[0, 0, :, 0], torch.arange(40.0))
    cache.reorder(torch.tensor([1, 1, 0]))
    assert cache.keys.shape[0] == 3
    stored, _ = cache.append(torch.zeros(3, 1, 1, 3), torch.zeros(3, 1, 1, 3))
    assert stored.shape == (3, 1, 41, 3)


class _TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = A.MultiHeadAttention(8, 2)
        self.second = A.SelfAttention(8)

    def forward(self, x):
        y, _ = self.first(x, x, x, need_weights=False)
        return self.second(y)[0]


def test_attention_maps_records_every_layer_even_on_the_fused_path():
    model = _TwoLayers()
    x = randn(2, 5, 8, dtype=torch.float32)
    maps = A.attention_maps(model, x)
    assert set(maps) == {"first", "second"}
    assert maps["first"].shape == (2, 2, 5, 5) and maps["second"].shape == (2, 5, 5)
    expected = model.first(x, x, x)[1]
    torch.testing.assert_close(maps["first"], expected)
    torch.testing.assert_close(maps["first"].sum(-1), torch.ones(2, 2, 5))
    # Outside record_attention nothing is kept and the fused path returns no weights.
    assert model.first(x, x, x, need_weights=False)[1] is None
    assert model.first._attention_record is None and model.second._attention_record is None
    with pytest.raises(RuntimeError), A.record_attention(model):
        raise RuntimeError("the recording stops even when the block fails")
    assert model.first._attention_record is None


def test_model_attention_methods_are_attention_maps():
    tagger = A.SelfAttentionTagger(10, dim=8, num_heads=2, max_length=6, causal=True).eval()
    tokens = torch.randint(0, 10, (3, 6))
    weights = tagger.attention_weights(tokens)
    assert torch.equal(weights, A.attention_maps(tagger, tokens)["attention"])
    assert weights.shape == (3, 2, 6, 6) and (weights.triu(1) == 0).all()
