"""Tests of course_lib.transformer: agreement with torch.nn's Transformer layers, the base
model's parameter count, key/value caching, causality, the ViT patch embedding."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.attention import causal_mask, padding_mask
from course_lib.transformer import (
    GPT,
    KeyValueCache,
    Transformer,
    TransformerBlock,
    TransformerClassifier,
    TransformerDecoderBlock,
    ViT,
    causal_lm_loss,
    count_parameters,
    embed_patches,
    make_palindromes,
    parameter_table,
    patchify,
    random_windows,
)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, device: str = "cpu", dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=_seeded(seed), dtype=dtype).to(device)


def _tol(device: str, dtype: torch.dtype) -> dict:
    if dtype == torch.float64:
        return {"atol": 1e-10, "rtol": 1e-8}
    # CUDA matmuls may use TF32; CPU float32 agrees to rounding error.
    return {"atol": 1e-5, "rtol": 1e-4} if device == "cpu" else {"atol": 2e-3, "rtol": 2e-3}


# ----------------------------------------------------------------------------------------
# Blocks against torch.nn
# ----------------------------------------------------------------------------------------

MASKS = ["none", "causal", "padding", "causal+padding", "float"]


def _encoder_masks(kind: str, batch: int, length: int, device: str):
    """Our mask (True = may attend) and torch's (src_mask, src_key_padding_mask)."""
    lengths = torch.randint(1, length + 1, (batch,), generator=_seeded(3)).to(device)
    lengths[0] = length
    causal = causal_mask(length, device=device)
    padding = padding_mask(lengths, length)  # [B, 1, 1, L]
    if kind == "none":
        return None, None, None
    if kind == "causal":
        return causal, ~causal, None
    if kind == "padding":
        return padding, None, ~padding[:, 0, 0]
    if kind == "causal+padding":
        return causal & padding, ~causal, ~padding[:, 0, 0]
    additive = _randn(length, length, seed=4, device=device)
    return additive, additive, None


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_matches_torch(device, norm_first, mask_kind, activation) -> None:
    torch.manual_seed(0)
    batch, length, d_model = 3, 7, 16
    reference = torch.nn.TransformerEncoderLayer(
        d_model, 4, 24, dropout=0.1, activation=activation, batch_first=True,
        norm_first=norm_first,
    ).to(device).eval()  # fmt: skip
    ours = TransformerBlock(d_model, 4, 24, activation=activation, norm_first=norm_first)
    ours.load_state_dict(reference.state_dict())
    ours.to(device).eval()
    x = _randn(batch, length, d_model, seed=1, device=device)
    mask, src_mask, key_padding = _encoder_masks(mask_kind, batch, length, device)
    expected = reference(x, src_mask=src_mask, src_key_padding_mask=key_padding)
    actual = ours(x, mask)
    if key_padding is not None:  # torch's fast paths may zero padded rows: compare real ones
        real = ~key_padding
        expected, actual = expected[real], actual[real]
    torch.testing.assert_close(actual, expected, **_tol(device, torch.float32))


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_encoder_block_fast_path_and_gradients_match_torch(norm_first) -> None:
    """Under no_grad torch takes its fused fast path; with grad we also compare gradients."""
    torch.manual_seed(1)
    reference = torch.nn.TransformerEncoderLayer(
        8, 2, 16, batch_first=True, norm_first=norm_first, dtype=torch.float64
    ).eval()
    ours = TransformerBlock(8, 2, 16, norm_first=norm_first).double().eval()
    ours.load_state_dict(reference.state_dict())
    x = _randn(2, 5, 8, seed=2, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), atol=1e-10, rtol=1e-8)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ours(x_ours) ** 2).sum().backward()
    (reference(x_ref) ** 2).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=1e-10, rtol=1e-8)
    ours_grads = dict(ours.named_parameters())
    for name, parameter in reference.named_parameters():
        torch.testing.assert_close(ours_grads[name].grad, parameter.grad, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
@pytest.mark.parametrize("with_masks", [False, True], ids=["no-masks", "masks"])
def test_decoder_block_matches_torch(device, norm_first, with_masks) -> None:
    torch.manual_seed(2)
    batch, target_length, source_length, d_model = 3, 6, 5, 16
    reference = torch.nn.TransformerDecoderLayer(
        d_model, 4, 32, batch_first=True, norm_first=norm_first
    ).to(device).eval()  # fmt: skip
    ours = TransformerDecoderBlock(d_model, 4, 32, norm_first=norm_first)
    ours.load_state_dict(reference.state_dict())
    ours.to(device).eval()
    x = _randn(batch, target_length, d_model, seed=5, device=device)
    memory = _randn(batch, source_length, d_model, seed=6, device=device)
    if with_masks:
        self_mask = causal_mask(target_length, device=device)
        memory_mask = padding_mask(torch.tensor([5, 2, 4], device=device), source_length)
        expected = reference(
            x, memory, tgt_mask=~self_mask, memory_key_padding_mask=~memory_mask[:, 0, 0]
        )
        actual = ours(x, memory, self_mask, memory_mask)
    else:
        expected, actual = reference(x, memory), ours(x, memory)
    torch.testing.assert_close(actual, expected, **_tol(device, torch.float32))


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_is_causal_equals_an_explicit_causal_mask(norm_first) -> None:
    torch.manual_seed(3)
    block = TransformerBlock(8, 2, 16, norm_first=norm_first).eval()
    decoder = TransformerDecoderBlock(8, 2, 16, norm_first=norm_first).eval()
    x, memory = _randn(2, 6, 8, seed=20), _randn(2, 4, 8, seed=21)
    mask = causal_mask(6)
    torch.testing.assert_close(block(x, is_causal=True), block(x, mask), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(
        decoder(x, memory, is_causal=True), decoder(x, memory, mask), atol=1e-6, rtol=1e-5
    )
    output, weights = block.forward_with_attention(x, is_causal=True)
    assert (weights.triu(1) == 0).all()
    torch.testing.assert_close(output, block(x, mask), atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="not both"):
        block(x, mask, is_causal=True)
    # With a cache, new positions continue after the cached ones: feeding the sequence in
    # pieces gives what one causal pass over the whole sequence gives.
    cache = KeyValueCache(2, 2, 4, max_length=10)
    pieces = [block(x[:, :2], cache=cache, is_causal=True)]
    pieces += [
        block(x[:, 2:3], cache=cache, is_causal=True),
        block(x[:, 3:], cache=cache, is_causal=True),
    ]
    torch.testing.assert_close(torch.cat(pieces, 1), block(x, is_causal=True), atol=1e-6, rtol=1e-5)


def test_blocks_have_torch_parameter_names() -> None:
    encoder = torch.nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    decoder = torch.nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)
    assert TransformerBlock(8, 2, 16).state_dict().keys() == encoder.state_dict().keys()
    assert TransformerDecoderBlock(8, 2, 16).state_dict().keys() == decoder.state_dict().keys()
    for ours, theirs in ((TransformerBlock(8, 2, 16), encoder),):
        assert len(ours.state_dict()) == len(theirs.state_dict()) > 0
        for (name, a), (_, b) in zip(
            ours.state_dict().items(), theirs.state_dict().items(), strict=True
        ):
            assert a.shape == b.shape, name


def test_block_in_train_mode_without_dropout_equals_eval() -> None:
    block = TransformerBlock(8, 2, 16, dropout=0.0)
    x = _randn(2, 4, 8, seed=7)
    torch.testing.assert_close(block.train()(x), block.eval()(x))


def test_block_attention_weights_are_rows_of_probabilities() -> None:
    block = TransformerBlock(8, 2, 16).eval()
    x = _randn(2, 5, 8, seed=8)
    output, weights = block.forward_with_attention(x, causal_mask(5))
    torch.testing.assert_close(output, block(x, causal_mask(5)))
    assert weights.shape == (2, 2, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 5))
    assert (weights.triu(1) == 0).all()


def test_feed_forward_acts_on_each_position_independently() -> None:
    block = TransformerBlock(8, 2, 16).eval()
    x = _randn(2, 5, 8, seed=9)
    one_at_a_time = torch.cat([block.feed_forward(x[:, i : i + 1]) for i in range(5)], dim=1)
    torch.testing.assert_close(block.feed_forward(x), one_at_a_time)


def test_block_is_permutation_equivariant_without_positions() -> None:
    block = TransformerBlock(8, 2, 16).eval()
    x = _randn(1, 6, 8, seed=10)
    order = torch.randperm(6, generator=_seeded(0))
    torch.testing.assert_close(block(x)[:, order], block(x[:, order]), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: TransformerBlock(10, 3, 16), "nhead (3) must divide d_model (10)"),
        (lambda: TransformerBlock(8, 2, 16, dropout=1.5), "dropout"),
        (lambda: TransformerBlock(8, 2, 16, activation="tanh"), "activation"),
        (lambda: TransformerBlock(8, 2, 0), "dim_feedforward"),
        (lambda: TransformerBlock(8, 2, 16)(torch.zeros(2, 3, 4)), "x must have shape [B, L, 8]"),
        (lambda: TransformerBlock(8, 2, 16)(torch.zeros(3, 8)), "x must have shape [B, L, 8]"),
        (lambda: TransformerBlock(8, 2, 16)(torch.zeros(1, 3, 8), torch.ones(4, 4).bool()), "mask"),
        (
            lambda: TransformerDecoderBlock(8, 2, 16)(torch.zeros(2, 3, 8), torch.zeros(3, 4, 8)),
            "memory must have shape [B, S, 8] with B = 2 (from x)",
        ),
    ],
)
def test_blocks_reject_bad_input(call, message) -> None:
    with pytest.raises((ValueError, TypeError), match=None) as error:
        call()
    assert message in str(error.value)


def test_blocks_accept_empty_batches() -> None:
    block, decoder = TransformerBlock(8, 2, 16).eval(), TransformerDecoderBlock(8, 2, 16).eval()
    assert block(torch.zeros(0, 4, 8)).shape == (0, 4, 8)
    assert decoder(torch.zeros(0, 3, 8), torch.zeros(0, 4, 8)).shape == (0, 3, 8)


# ----------------------------------------------------------------------------------------
# The encoder-decoder
# ----------------------------------------------------------------------------------------


def _formula(vocab: int, d: int, f: int, n_enc: int, n_dec: int) -> int:
    attention = 4 * d * d + 4 * d  # W_q, W_k, W_v, W_o and their biases
    feed_forward = 2 * d * f + f + d
    norm = 2 * d
    encoder_layer = attention + feed_forward + 2 * norm
    decoder_layer = 2 * attention + feed_forward + 3 * norm
    return vocab * d + n_enc * encoder_layer + n_dec * decoder_layer


def test_base_model_parameter_count_matches_formula() -> None:
    with torch.device("meta"):  # count without allocating 250 MB
        model = Transformer()
    assert count_parameters(model) == _formula(37000, 512, 2048, 6, 6) == 63_082_496
    assert len(model.encoder_layers) == len(model.decoder_layers) == 6
    assert model.d_model == 512 and model.nhead == 8
    assert model.decoder_layers[0].linear1.out_features == 2048
    assert model.encoder_layers[0].dropout.p == 0.1
    assert model.output.weight is model.target_embedding.weight is model.source_embedding.weight
    table = parameter_table(model)
    assert table == {
        "source_embedding": 37000 * 512,
        "encoder_layers": 6 * 3_152_384,
        "decoder_layers": 6 * 4_204_032,
    }


@pytest.mark.parametrize(
    "options, extra",
    [
        ({"share_embeddings": False}, lambda v, d: v * d),
        ({"tie_output": False}, lambda v, d: v * d + v),
        ({"share_embeddings": False, "tie_output": False}, lambda v, d: 2 * v * d + v),
        ({"norm_first": True}, lambda v, d: 4 * d),
    ],
)
def test_parameter_count_with_and_without_sharing(options, extra) -> None:
    vocab, d = 50, 16
    model = Transformer(vocab, vocab, d, 2, 2, 2, 32, **options)
    assert count_parameters(model) == _formula(vocab, d, 32, 2, 2) + extra(vocab, d)


def test_count_parameters_trainable_only() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    assert count_parameters(model) == 16 + 10
    assert count_parameters(model, trainable_only=True) == 10
    with pytest.raises(TypeError, match="Module"):
        count_parameters("model")


def _tiny_transformer(**options) -> Transformer:
    torch.manual_seed(3)
    return Transformer(20, 12, 16, 2, 2, 2, 32, dropout=0.0, share_embeddings=False, **options)


def test_transformer_forward_and_generate_shapes(device) -> None:
    model = _tiny_transformer().to(device).eval()
    source = torch.randint(3, 20, (4, 9), generator=_seeded(1)).to(device)
    lengths = torch.tensor([9, 3, 5, 1], device=device)
    target = torch.randint(3, 12, (4, 7), generator=_seeded(2)).to(device)
    logits, loss = model(source, lengths, target)
    assert logits.shape == (4, 6, 12) and loss.dim() == 0 and torch.isfinite(loss)
    generated = model.generate(source, lengths, max_length=5)
    assert generated.shape == (4, 5) and generated.dtype == torch.long
    maps = model.cross_attention(source, lengths, target[:, :-1])
    assert maps.shape == (2, 4, 2, 6, 9)
    # Cross-attention never looks at source padding and every row sums to 1.
    blocked = ~padding_mask(lengths, 9)[:, 0, 0]  # [B, S]
    assert (maps.permute(0, 2, 3, 1, 4)[..., blocked] == 0).all()
    torch.testing.assert_close(maps.sum(-1), torch.ones_like(maps.sum(-1)))


def test_transformer_loss_ignores_padding_and_is_cross_entropy() -> None:
    model = _tiny_transformer().eval()
    source = torch.randint(3, 20, (2, 6), generator=_seeded(3))
    lengths = torch.tensor([6, 4])
    target = torch.tensor([[1, 5, 6, 7, 2], [1, 8, 2, 0, 0]])
    logits, loss = model(source, lengths, target)
    flat, goal = logits.reshape(-1, 12), target[:, 1:].reshape(-1)
    keep = goal != 0
    assert model.label_smoothing == 0.1  # the paper's eps_ls, the default
    expected = F.cross_entropy(flat[keep], goal[keep], label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)
    model.label_smoothing = 0.0
    torch.testing.assert_close(
        model(source, lengths, target)[1], F.cross_entropy(flat[keep], goal[keep])
    )


def test_transformer_decoder_is_causal_and_encoder_ignores_padding() -> None:
    model = _tiny_transformer().eval()
    source = torch.randint(3, 20, (2, 8), generator=_seeded(4))
    lengths = torch.tensor([8, 5])
    target = torch.randint(3, 12, (2, 7), generator=_seeded(5))
    logits, _ = model(source, lengths, target)
    changed_target = target.clone()
    changed_target[:, 4] = (changed_target[:, 4] + 1) % 12
    changed_source = source.clone()
    changed_source[1, 5:] = 7  # only padding of sequence 1 changes
    logits_target, _ = model(source, lengths, changed_target)
    logits_source, _ = model(changed_source, lengths, target)
    torch.testing.assert_close(logits_target[:, :4], logits[:, :4])  # positions before 4
    assert not torch.allclose(logits_target[:, 4:], logits[:, 4:])
    torch.testing.assert_close(logits_source, logits, atol=1e-6, rtol=1e-5)


def test_transformer_generate_pads_after_end() -> None:
    model = _tiny_transformer(tie_output=False).eval()
    with torch.no_grad():  # make <end> (id 2) the most likely token everywhere
        model.output.weight.zero_()
        model.output.bias.zero_()
        model.output.bias[2] = 100.0
    out = model.generate(torch.randint(3, 20, (3, 4)), torch.tensor([4, 2, 3]), max_length=4)
    assert out[:, 0].eq(2).all() and out[:, 1:].eq(model.pad_id).all()


def test_transformer_learns_to_copy() -> None:
    """A tiny end-to-end run: the model must learn to copy a short sequence."""
    torch.manual_seed(0)
    model = Transformer(10, 10, 32, 4, 1, 1, 64, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = _seeded(0)
    for _ in range(300):
        source = torch.randint(3, 10, (64, 4), generator=generator)
        target = torch.cat([torch.ones(64, 1).long(), source, 2 * torch.ones(64, 1).long()], 1)
        _, loss = model(source, torch.full((64,), 4), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    source = torch.randint(3, 10, (32, 4), generator=generator)
    generated = model.generate(source, torch.full((32,), 4), max_length=5)
    assert (generated[:, :4] == source).float().mean() > 0.95
    assert (generated[:, 4] == 2).float().mean() > 0.95


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: Transformer(10, 12, 8, 2, 1, 1, 16), "share_embeddings"),
        (lambda: Transformer(10, 10, 8, 3, 1, 1, 16), "nhead (3) must divide d_model (8)"),
        (lambda: Transformer(10, 10, 8, 2, -1, 1, 16), "num_encoder_layers"),
        (lambda: Transformer(10, 10, 8, 2, 1, 1, 16, label_smoothing=1.0), "label_smoothing"),
        (
            lambda: Transformer(10, 10, 8, 2, 1, 1, 16)(
                torch.zeros(2, 3).long(), torch.tensor([3]), torch.zeros(2, 4).long()
            ),
            "source_lengths",
        ),
        (
            lambda: Transformer(10, 10, 8, 2, 1, 1, 16)(
                torch.zeros(2, 3).long(), torch.tensor([3, 0]), torch.zeros(2, 4).long()
            ),
            "source_lengths must lie in [1, 3]",
        ),
        (
            lambda: Transformer(10, 10, 8, 2, 1, 1, 16)(
                torch.zeros(2, 3), torch.tensor([3, 3]), torch.zeros(2, 4).long()
            ),
            "source must be an integer tensor",
        ),
        (
            lambda: Transformer(10, 10, 8, 2, 1, 1, 16)(
                torch.zeros(2, 3).long(), torch.tensor([3, 3]), torch.zeros(2, 1).long()
            ),
            "T >= 2",
        ),
        (
            lambda: Transformer(10, 10, 8, 2, 1, 1, 16, max_length=4)(
                torch.zeros(1, 6).long(), torch.tensor([6]), torch.zeros(1, 3).long()
            ),
            "max_length",
        ),
    ],
)
def test_transformer_rejects_bad_input(call, message) -> None:
    with pytest.raises((ValueError, TypeError)) as error:
        call()
    assert message in str(error.value)


# ----------------------------------------------------------------------------------------
# GPT: causality, loss, key/value cache
# ----------------------------------------------------------------------------------------


def _tiny_gpt(block_size: int = 16, dtype=torch.float32) -> GPT:
    torch.manual_seed(4)
    return GPT(30, block_size=block_size, d_model=32, nhead=4, num_layers=2).to(dtype).eval()


def test_gpt_is_causal() -> None:
    model = _tiny_gpt()
    x = torch.randint(30, (2, 12), generator=_seeded(6))
    logits, _ = model(x)
    for t in range(12):
        changed = x.clone()
        changed[:, t:] = (changed[:, t:] + 7) % 30
        changed_logits, _ = model(changed)
        torch.testing.assert_close(changed_logits[:, :t], logits[:, :t])
        assert not torch.allclose(changed_logits[:, t], logits[:, t])


def test_gpt_gradient_never_flows_from_the_future() -> None:
    model = _tiny_gpt()
    x = torch.randint(30, (1, 8), generator=_seeded(7))
    embeddings = model.token_embedding(x).detach().requires_grad_()
    h = embeddings + model.position_embedding(torch.arange(8))
    for block in model.blocks:
        h = block(h, causal_mask(8))
    h[0, 3].sum().backward()
    assert embeddings.grad[0, 4:].abs().max() == 0
    assert embeddings.grad[0, :4].abs().min() > 0


def test_gpt_loss_is_causal_lm_loss_of_shifted_targets() -> None:
    model = _tiny_gpt()
    tokens = torch.randint(30, (3, 10), generator=_seeded(8))
    _, loss = model(tokens[:, :-1], tokens[:, 1:])
    logits, none = model(tokens)
    assert none is None
    torch.testing.assert_close(loss, causal_lm_loss(logits, tokens)[()], atol=1e-6, rtol=1e-5)


def test_gpt_ties_embedding_and_output() -> None:
    model = _tiny_gpt()
    assert model.lm_head.weight is model.token_embedding.weight
    untied = GPT(30, 16, 32, 4, 2, tie_weights=False)
    assert count_parameters(untied) == count_parameters(model) + 30 * 32
    post_ln = GPT(30, 16, 32, 4, 2, norm_first=False)  # no final LayerNorm: 2D fewer
    assert count_parameters(post_ln) == count_parameters(model) - 2 * 32
    assert all(not block.norm_first for block in post_ln.blocks)


def test_cached_forward_equals_full_forward() -> None:
    model = _tiny_gpt(dtype=torch.float64)
    x = torch.randint(30, (2, 11), generator=_seeded(9))
    full, _ = model(x)
    cache = model.new_cache(2)
    pieces = [model(x[:, :4], cache=cache)[0]]  # a prompt of 4, then one token at a time
    pieces += [model(x[:, t : t + 1], cache=cache)[0] for t in range(4, 11)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-10, rtol=1e-8)
    assert cache[0].length == 11


@pytest.mark.parametrize("length", [1, 10, 40], ids=["one", "within-block", "past-block"])
@pytest.mark.parametrize("sampling", ["greedy", "top-k", "sample"])
def test_kv_cache_generation_gives_the_same_tokens(device, length, sampling) -> None:
    model = _tiny_gpt(block_size=16, dtype=torch.float64).to(device)
    prompt = torch.randint(30, (3, 5), generator=_seeded(10)).to(device)
    options = {
        "greedy": {"temperature": 0.0},
        "top-k": {"top_k": 5, "temperature": 0.8},
        "sample": {"temperature": 1.0},
    }[sampling]
    cached = model.generate(prompt, length, generator=_seeded(11), use_cache=True, **options)
    uncached = model.generate(prompt, length, generator=_seeded(11), use_cache=False, **options)
    assert cached.shape == (3, 5 + length)
    assert torch.equal(cached[:, :5], prompt)
    assert torch.equal(cached, uncached)


def test_generate_accepts_one_prompt_and_restores_training_mode() -> None:
    model = _tiny_gpt().train()
    out = model.generate(torch.tensor([1, 2, 3]), 6, generator=_seeded(0))
    assert out.shape == (9,) and model.training
    assert torch.equal(out[:3], torch.tensor([1, 2, 3]))
    assert torch.equal(model.generate(torch.tensor([[1, 2]]), 0), torch.tensor([[1, 2]]))


def test_kv_cache_rejects_overflow_and_bad_shapes() -> None:
    cache = KeyValueCache(2, 4, 8, max_length=3)
    cache.append(torch.zeros(2, 4, 2, 8), torch.zeros(2, 4, 2, 8))
    with pytest.raises(ValueError, match="at most 3"):
        cache.append(torch.zeros(2, 4, 2, 8), torch.zeros(2, 4, 2, 8))
    with pytest.raises(ValueError, match=r"k must have shape \[2, 4, n, 8\], got \[2, 4, 1, 7\]"):
        cache.append(torch.zeros(2, 4, 1, 7), torch.zeros(2, 4, 1, 7))
    model = _tiny_gpt(block_size=8)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9).long())


def test_causal_lm_loss_matches_a_manual_computation() -> None:
    logits = _randn(2, 5, 7, seed=12, dtype=torch.float64)
    tokens = torch.randint(7, (2, 5), generator=_seeded(13))
    log_probs = logits.log_softmax(-1)
    manual = -torch.stack(
        [log_probs[b, t, tokens[b, t + 1]] for b in range(2) for t in range(4)]
    ).mean()
    torch.testing.assert_close(causal_lm_loss(logits, tokens), manual)
    uniform = causal_lm_loss(torch.zeros(1, 3, 7), torch.zeros(1, 3).long())
    assert math.isclose(uniform.item(), math.log(7), rel_tol=1e-6)
    with pytest.raises(ValueError, match=r"T = 5 \(from logits\), got \[2, 4\]"):
        causal_lm_loss(logits, tokens[:, :4])


def test_random_windows_are_shifted_by_one() -> None:
    ids = torch.arange(100)
    x, y = random_windows(ids, 10, 6, generator=_seeded(0))
    assert x.shape == y.shape == (6, 10)
    assert torch.equal(y, x + 1)
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)
    with pytest.raises(ValueError, match="longer than block_size"):
        random_windows(torch.arange(5), 5, 2)


# ----------------------------------------------------------------------------------------
# Encoder-only classifier and its data
# ----------------------------------------------------------------------------------------


def test_make_palindromes_labels_are_correct_and_balanced() -> None:
    data = make_palindromes(400, min_length=3, max_length=9, seed=1)
    assert data.tokens.shape == (400, 9)
    texts = [data.text(i) for i in range(len(data))]
    assert all(3 <= len(text) <= 9 for text in texts)
    assert [int(text == text[::-1]) for text in texts] == data.labels.tolist()
    assert 0.4 < data.labels.float().mean() < 0.6
    assert (data.tokens[torch.arange(9) >= data.lengths[:, None]] == 0).all()
    again = make_palindromes(400, min_length=3, max_length=9, seed=1)
    assert torch.equal(again.tokens, data.tokens)
    # Non-palindromes are near misses: at most 3 letters differ from their mirror image.
    for text, label in zip(texts, data.labels.tolist()):
        if not label:
            assert 0 < sum(a != b for a, b in zip(text, text[::-1])) <= 6


def test_classifier_ignores_padding() -> None:
    torch.manual_seed(5)
    model = TransformerClassifier(5, 2, max_length=12, d_model=16, nhead=2, num_layers=2).eval()
    tokens = torch.tensor([[1, 2, 3, 0, 0], [4, 4, 1, 2, 3]])
    longer = torch.cat([tokens, torch.zeros(2, 4).long()], dim=1)
    torch.testing.assert_close(model(tokens)[0], model(longer)[0], atol=1e-6, rtol=1e-5)
    maps = model.attention_maps(tokens)
    assert maps.shape == (2, 2, 2, 6, 6)
    assert (maps[:, 0, :, :, 4:] == 0).all()  # sequence 0 never attends to its padding


# ----------------------------------------------------------------------------------------
# Vision Transformer
# ----------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(0, 3),
    channels=st.integers(1, 3),
    rows=st.integers(1, 4),
    cols=st.integers(1, 4),
    patch=st.integers(1, 3),
)
def test_patchify_matches_unfold(batch, channels, rows, cols, patch) -> None:
    images = torch.randn(batch, channels, rows * patch, cols * patch)
    expected = F.unfold(images, patch, stride=patch).transpose(1, 2)
    assert torch.equal(patchify(images, patch), expected)


@pytest.mark.parametrize("channels, size, patch", [(1, 8, 2), (1, 8, 4), (3, 12, 3)])
def test_patch_embedding_equals_strided_convolution(device, channels, size, patch) -> None:
    torch.manual_seed(6)
    model = ViT(size, patch, channels, 10, d_model=16, nhead=2, num_layers=1).to(device)
    images = torch.rand(4, channels, size, size, generator=_seeded(14)).to(device)
    conv = model.patch_conv()
    assert conv.kernel_size == (patch, patch) and conv.stride == (patch, patch)
    from_conv = conv(images).flatten(2).transpose(1, 2)  # [B, N, D]
    from_linear = model.patch_embedding(patchify(images, patch))
    torch.testing.assert_close(from_linear, from_conv, **_tol(device, torch.float32))
    # ... and a freshly built Conv2d given the reshaped weights agrees as well.
    fresh = torch.nn.Conv2d(channels, 16, patch, stride=patch).to(device)
    fresh.load_state_dict(
        {"weight": model.patch_embedding.weight.reshape(16, channels, patch, patch),
         "bias": model.patch_embedding.bias}
    )  # fmt: skip
    torch.testing.assert_close(
        fresh(images).flatten(2).transpose(1, 2), from_linear, **_tol(device, torch.float32)
    )


def test_embed_patches_puts_cls_first_with_its_position() -> None:
    images = _randn(2, 1, 4, 4, seed=15)
    weight, bias = _randn(5, 4, seed=16), _randn(5, seed=17)
    cls, positions = _randn(5, seed=18), _randn(5, 5, seed=19)
    tokens = embed_patches(images, 2, weight, bias, cls, positions)
    assert tokens.shape == (2, 5, 5)
    torch.testing.assert_close(tokens[:, 0], (cls + positions[0]).expand(2, 5))
    top_right = images[:, 0, :2, 2:].reshape(2, 4)  # patch 1 (row 0, column 1)
    torch.testing.assert_close(tokens[:, 2], top_right @ weight.T + bias + positions[2])
    with pytest.raises(ValueError, match=r"N \+ 1"):
        embed_patches(images, 2, weight, bias, cls, positions[:4])


def test_vit_shapes_attention_and_position_similarity() -> None:
    torch.manual_seed(7)
    model = ViT(8, 2, 1, 10, d_model=16, nhead=2, num_layers=3).eval()
    images = torch.rand(5, 1, 8, 8)
    logits, loss = model(images, torch.arange(5))
    assert logits.shape == (5, 10) and loss.dim() == 0
    maps = model.attention_maps(images)
    assert maps.shape == (3, 5, 2, 17, 17)
    torch.testing.assert_close(maps.sum(-1), torch.ones(3, 5, 2, 17))
    similarity = model.position_similarity()
    assert similarity.shape == (16, 16)
    torch.testing.assert_close(similarity.diagonal(), torch.ones(16))
    linear_head = ViT(8, 2, 1, 10, d_model=16, nhead=2, num_layers=3, mlp_head=False)
    assert count_parameters(model) - count_parameters(linear_head) == 16 * 16 + 16
    with pytest.raises(ValueError, match=r"\[B, 1, 8, 8\]"):
        model(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match=r"patch_size \(3\) must divide image_size \(8\)"):
        ViT(8, 3)
    with pytest.raises(ValueError, match="multiples of patch_size"):
        patchify(torch.rand(1, 1, 7, 8), 2)


# ----------------------------------------------------------------------------------------
# Configs: one place for each model's constants
# ----------------------------------------------------------------------------------------


def test_transformer_defaults_are_the_papers_base_model() -> None:
    from course_lib.transformer import TransformerConfig

    base = TransformerConfig()
    # Vaswani et al. 2017, Table 3 ("base") and sections 3.4, 5.4.
    assert (base.d_model, base.nhead, base.dim_feedforward) == (512, 8, 2048)
    assert (base.num_encoder_layers, base.num_decoder_layers) == (6, 6)
    assert base.dropout == 0.1 and base.label_smoothing == 0.1
    assert base.share_embeddings and base.tie_output and not base.norm_first
    assert base.src_vocab_size == base.tgt_vocab_size == 37000
    with torch.device("meta"):
        model = Transformer()
    assert model.config == base and model.label_smoothing == 0.1
    assert model.output.weight is model.source_embedding.weight  # one shared matrix


def test_models_round_trip_through_their_configs() -> None:
    from course_lib.transformer import ClassifierConfig, GPTConfig, TransformerConfig, ViTConfig

    pairs = [
        (Transformer(11, 11, d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                     dim_feedforward=16), TransformerConfig),
        (GPT(11, block_size=8, d_model=8, nhead=2, num_layers=1), GPTConfig),
        (TransformerClassifier(5, 2, 8, d_model=8, nhead=2, num_layers=1), ClassifierConfig),
        (ViT(8, 2, d_model=8, nhead=2, num_layers=1), ViTConfig),
    ]  # fmt: skip
    for model, config_class in pairs:
        assert isinstance(model.config, config_class)
        rebuilt = type(model).from_config(model.config)
        assert rebuilt.config == model.config
        assert count_parameters(rebuilt) == count_parameters(model)
    assert GPT(11, d_model=8, nhead=2).config.dim_feedforward == 32  # 4 * d_model (GPT-2)


def test_config_errors_name_the_field() -> None:
    from course_lib.transformer import GPTConfig, TransformerConfig

    with pytest.raises(ValueError, match="label_smoothing"):
        TransformerConfig(label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"nhead \(3\) must divide d_model \(512\)"):
        TransformerConfig(nhead=3)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        GPTConfig(vocab_size="10")
    with pytest.raises(ValueError, match="init_std"):
        GPTConfig(vocab_size=10, init_std=0.0)


def test_transformer_generate_with_a_cache_equals_recomputing_the_prefix() -> None:
    model = _tiny_transformer().eval()
    with torch.no_grad():
        model.output.weight.mul_(5)  # clear-cut choices
    source = torch.randint(3, 20, (4, 6), generator=_seeded(8))
    lengths = torch.tensor([6, 5, 3, 1])
    memory, mask = model.encode(source, lengths)
    tokens = torch.full((4, 1), model.start_id)
    finished = torch.zeros(4, dtype=torch.bool)
    for _ in range(6):  # the decoder re-run on the whole prefix, no cache
        token = model.output(model.decode(tokens, memory, mask)[:, -1]).argmax(-1)
        token = token.masked_fill(finished, model.pad_id)
        finished |= token == model.end_id
        tokens = torch.cat([tokens, token[:, None]], dim=1)
    assert torch.equal(model.generate(source, lengths, 6), tokens[:, 1:])
