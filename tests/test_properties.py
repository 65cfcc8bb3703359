"""Property-based tests (hypothesis) over the sequence library's public API.

Valid random inputs keep the documented invariants (shapes, finiteness, agreement with
``torch.nn`` after ``load_state_dict``); invalid random inputs raise TypeError or ValueError
naming the argument. Every test has a bounded number of examples so the file runs in CI in
well under a minute.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from course_lib import attention, batching, decoding, rnn, transformer

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _randn(*shape, seed, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------
# Valid inputs: agreement with torch.nn and documented invariants
# ----------------------------------------------------------------------------------------


@FAST
@given(
    batch=st.integers(1, 3), queries=st.integers(1, 6), keys=st.integers(1, 6),
    heads=st.sampled_from([1, 2, 4]), need_weights=st.booleans(), masked=st.booleans(),
    seed=st.integers(0, 10_000),
)  # fmt: skip
def test_multi_head_attention_equals_torch(batch, queries, keys, heads, need_weights, masked, seed):
    torch.manual_seed(seed)
    reference = nn.MultiheadAttention(8, heads, batch_first=True).double().eval()
    ours = attention.MultiHeadAttention(8, heads).double().eval()
    ours.load_state_dict(reference.state_dict())
    q, kv = _randn(batch, queries, 8, seed=seed), _randn(batch, keys, 8, seed=seed + 1)
    allowed = None
    if masked:
        allowed = torch.rand(queries, keys, generator=torch.Generator().manual_seed(seed)) < 0.7
        allowed[:, 0] = True  # every query may attend somewhere (torch gives NaN otherwise)
    expected, expected_weights = reference(
        q, kv, kv, attn_mask=None if allowed is None else ~allowed, average_attn_weights=False
    )
    output, weights = ours(q, kv, kv, allowed, need_weights=need_weights)
    torch.testing.assert_close(output, expected)
    if need_weights:
        torch.testing.assert_close(weights, expected_weights)
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    else:
        assert weights is None


@FAST
@given(
    length=st.integers(1, 7), norm_first=st.booleans(),
    activation=st.sampled_from(["relu", "gelu"]), causal=st.booleans(),
    seed=st.integers(0, 10_000),
)  # fmt: skip
def test_transformer_blocks_equal_torch_layers(length, norm_first, activation, causal, seed):
    torch.manual_seed(seed)
    options = {"dim_feedforward": 16, "activation": activation, "norm_first": norm_first}
    ref_encoder = nn.TransformerEncoderLayer(8, 2, batch_first=True, **options).double().eval()
    ref_decoder = nn.TransformerDecoderLayer(8, 2, batch_first=True, **options).double().eval()
    encoder = transformer.TransformerBlock(8, 2, **options).double().eval()
    decoder = transformer.TransformerDecoderBlock(8, 2, **options).double().eval()
    encoder.load_state_dict(ref_encoder.state_dict())
    decoder.load_state_dict(ref_decoder.state_dict())
    x, memory = _randn(2, length, 8, seed=seed), _randn(2, 3, 8, seed=seed + 1)
    blocked = ~attention.causal_mask(length) if causal else None
    with torch.no_grad():
        torch.testing.assert_close(
            encoder(x, is_causal=causal), ref_encoder(x, src_mask=blocked, is_causal=causal)
        )
        torch.testing.assert_close(
            decoder(x, memory, is_causal=causal),
            ref_decoder(x, memory, tgt_mask=blocked, tgt_is_causal=causal),
        )


@FAST
@given(
    kind=st.sampled_from(["RNN", "LSTM", "GRU"]), steps=st.integers(1, 6), batch=st.integers(1, 4),
    hidden=st.integers(1, 6), seed=st.integers(0, 10_000),
)  # fmt: skip
def test_layers_with_lengths_equal_packed_torch_layers(kind, steps, batch, hidden, seed):
    torch.manual_seed(seed)
    reference = getattr(nn, kind)(3, hidden, batch_first=True).double()
    ours = getattr(rnn, kind)(3, hidden, batch_first=True).double()
    ours.load_state_dict(reference.state_dict())
    x = _randn(batch, steps, 3, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    expected, expected_state = reference(packed)
    expected, _ = nn.utils.rnn.pad_packed_sequence(expected, batch_first=True, total_length=steps)
    output, state = ours(x, lengths=lengths)
    torch.testing.assert_close(output, expected)
    for got, want in zip(
        state if kind == "LSTM" else (state,),
        expected_state if kind == "LSTM" else (expected_state,),
        strict=True,
    ):
        torch.testing.assert_close(got, want)


@FAST
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), vocab=st.integers(1, 9),
    temperature=st.floats(0.0, 5.0), top_k=st.one_of(st.none(), st.integers(1, 12)),
    seed=st.integers(0, 10_000),
)  # fmt: skip
def test_sampling_probs_is_a_distribution(shape, vocab, temperature, top_k, seed):
    logits = _randn(*shape, vocab, seed=seed) * 3
    probs = decoding.sampling_probs(logits, temperature, top_k)
    assert probs.shape == logits.shape and torch.isfinite(probs).all() and (probs >= 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(shape, dtype=torch.float64))
    if top_k is not None and top_k < vocab:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        assert (probs[logits < kth] == 0).all()
    token = decoding.sample_next_token(logits.reshape(-1, vocab), temperature, top_k)
    assert token.shape == (math.prod(shape),) and ((0 <= token) & (token < vocab)).all()


@FAST
@given(length=st.integers(0, 50), dim=st.integers(0, 33))
def test_sinusoidal_encoding_is_bounded_and_starts_at_sin0_cos0(length, dim):
    encoding = attention.sinusoidal_positional_encoding(length, dim)
    assert encoding.shape == (length, dim) and (encoding.abs() <= 1.0 + 1e-6).all()
    if length and dim:
        assert torch.equal(encoding[0, 0::2], torch.zeros((dim + 1) // 2))
        assert torch.equal(encoding[0, 1::2], torch.ones(dim // 2))


@FAST
@given(lengths=st.lists(st.integers(0, 9), min_size=0, max_size=6), extra=st.integers(0, 3))
def test_padding_mask_marks_exactly_the_real_tokens(lengths, extra):
    lengths_tensor = torch.tensor(lengths, dtype=torch.long)
    longest = max(lengths, default=0)
    mask = attention.padding_mask(lengths_tensor, longest + extra)[:, 0, 0]
    assert mask.shape == (len(lengths), longest + extra)
    assert mask.sum(1).tolist() == lengths
    assert (mask.long().diff(dim=1) <= 0).all()  # True then False: no holes


@FAST
@given(
    batch=st.integers(1, 3), prompt=st.integers(1, 4), length=st.integers(0, 6),
    seed=st.integers(0, 10_000),
)  # fmt: skip
def test_gpt_logits_are_finite_and_the_cache_changes_nothing(batch, prompt, length, seed):
    torch.manual_seed(seed)
    model = transformer.GPT(13, block_size=8, d_model=8, nhead=2, num_layers=2).eval()
    tokens = torch.randint(0, 13, (batch, prompt), generator=torch.Generator().manual_seed(seed))
    logits, loss = model(tokens, tokens)
    assert logits.shape == (batch, prompt, 13) and torch.isfinite(logits).all()
    assert torch.isfinite(loss)
    cached = model.generate(tokens, length, temperature=0, use_cache=True)
    recomputed = model.generate(tokens, length, temperature=0, use_cache=False)
    assert cached.shape == (batch, prompt + length) and torch.equal(cached, recomputed)


@settings(max_examples=10, deadline=None)
@given(
    batch=st.integers(1, 3), source=st.integers(1, 6), steps=st.integers(0, 5),
    beam=st.integers(1, 3), seed=st.integers(0, 10_000),
)  # fmt: skip
def test_transformer_decodes_valid_token_ids(batch, source, steps, beam, seed):
    torch.manual_seed(seed)
    model = transformer.Transformer(
        9, 9, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=16
    ).eval()
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(3, 9, (batch, source), generator=generator)
    lengths = torch.randint(1, source + 1, (batch,), generator=generator)
    out = model.generate(tokens, lengths, steps, beam_size=beam)
    assert out.shape == (batch, steps) and ((0 <= out) & (out < 9)).all()
    ended = (out == model.end_id).long().cumsum(1) - (out == model.end_id).long() > 0
    assert (out[ended] == model.pad_id).all()  # padding after <end>


@FAST
@given(count=st.integers(1, 30), batch_size=st.integers(1, 40), seed=st.integers(0, 999))
def test_random_windows_and_batches_keep_their_shapes(count, batch_size, seed):
    ids = torch.arange(count + 1)
    x, y = batching.random_windows(ids, count, batch_size, torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch_size, count) and torch.equal(y, x + 1)
    draw = batching.random_batches(ids, batch_size=batch_size, seed=seed)
    assert draw()[0].shape == (min(batch_size, count + 1),)


# ----------------------------------------------------------------------------------------
# Invalid inputs: TypeError or ValueError, naming the argument
# ----------------------------------------------------------------------------------------

BAD_SIZES = st.one_of(
    st.integers(max_value=0),
    st.integers(min_value=2**40, max_value=2**62),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.booleans(),
    st.none(),
)

SIZE_ARGUMENTS = [
    ("hidden_size", lambda v: rnn.LSTM(3, v)),
    ("input_size", lambda v: rnn.GRUCell(v, 4)),
    ("vocab_size", lambda v: rnn.CharLanguageModel(v)),
    ("embed_dim", lambda v: attention.MultiHeadAttention(v, 1)),
    ("num_heads", lambda v: attention.MultiHeadAttention(8, v)),
    ("d_model", lambda v: transformer.GPT(10, d_model=v, nhead=1)),
    ("block_size", lambda v: transformer.GPT(10, block_size=v)),
    ("batch_size", lambda v: batching.random_batches(torch.arange(5), batch_size=v)),
    ("max_length", lambda v: attention.KeyValueCache(1, 1, 1, v)),
    ("length", lambda v: attention.causal_mask(v)),
    ("beam_size", lambda v: decoding.beam_search(
        lambda t, s: (torch.zeros(len(t), 4), s), None, 1, 2, beam_size=v, start_id=1,
        end_id=2, pad_id=0)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build"), SIZE_ARGUMENTS, ids=[n for n, _ in SIZE_ARGUMENTS])
@settings(max_examples=15, deadline=None)
@given(value=BAD_SIZES)
def test_bad_sizes_raise_a_clear_error(name, build, value):
    if value is None and name == "max_length":
        return  # a key/value cache without a maximum grows as needed
    if value == 0 and not isinstance(value, bool) and name == "length":
        return  # an empty causal mask is fine
    with pytest.raises((TypeError, ValueError)) as error:
        build(value)
    assert name in str(error.value)


TENSOR_ARGUMENTS = [
    ("input", lambda v: rnn.LSTM(3, 4)(v)),
    ("x", lambda v: transformer.TransformerBlock(8, 2, 16)(v)),
    ("query", lambda v: attention.MultiHeadAttention(8, 2)(v, v, v)),
    ("logits", lambda v: decoding.sampling_probs(v)),
]


@pytest.mark.parametrize(("name", "call"), TENSOR_ARGUMENTS, ids=[n for n, _ in TENSOR_ARGUMENTS])
@settings(max_examples=15, deadline=None)
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=4),
    dtype=st.sampled_from([torch.int64, torch.bool, torch.float64, torch.float16]),
)
def test_wrong_dtypes_and_shapes_raise_a_clear_error(name, call, shape, dtype):
    value = torch.zeros(shape, dtype=dtype)
    if name == "logits" and dtype.is_floating_point and shape and shape[-1] >= 1:
        return  # logits of any floating dtype are fine (the modules' inputs must be float32)
    with pytest.raises((TypeError, ValueError)) as error:
        call(value)
    assert name in str(error.value)


@FAST
@given(vocab=st.integers(2, 20), offset=st.integers(0, 100), negative=st.booleans())
def test_token_ids_outside_the_vocabulary_raise_value_error(vocab, offset, negative):
    model = rnn.CharLanguageModel(vocab, 4, 8)
    bad = -1 - offset if negative else vocab + offset
    tokens = torch.tensor([[0, bad]])
    with pytest.raises(ValueError, match=r"x must hold token ids in \[0, "):
        model(tokens)
    gpt = transformer.GPT(vocab, block_size=4, d_model=8, nhead=2, num_layers=1)
    with pytest.raises(ValueError, match="x must hold token ids"):
        gpt(tokens)


@FAST
@given(value=st.sampled_from([float("nan"), float("inf"), -1.0, 1.0, 2.5]))
def test_dropout_outside_zero_one_is_refused(value):
    for build in (lambda: rnn.GRU(3, 4, dropout=value),
                  lambda: attention.MultiHeadAttention(8, 2, dropout=value),
                  lambda: transformer.TransformerBlock(8, 2, 16, dropout=value)):  # fmt: skip
        with pytest.raises(ValueError, match="dropout"):
            build()


def test_non_finite_logits_are_refused_before_sampling():
    logits = torch.tensor([[0.0, float("nan"), 1.0]])
    with pytest.raises(ValueError, match="logits"):
        decoding.sample_next_token(logits)
    assert F.softmax(torch.tensor([0.0, 1.0]), -1).sum() == pytest.approx(1.0)
