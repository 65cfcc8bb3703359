"""Bad input to course_lib.transformer: every public function and class answers with a clear
error (TypeError for a wrong type or dtype, ValueError for a wrong shape or value) naming
the argument."""

from __future__ import annotations

import torch
from torch import nn

from course_lib import transformer as T
from tests.badinput import (
    Bad,
    assert_clear,
    choice_arg,
    float_arg,
    float_tensor,
    int_arg,
    parametrize_bad,
    token_tensor,
    values,
)

torch.manual_seed(0)
B, L, D, HEADS, V = 2, 5, 8, 2, 11
X = torch.randn(B, L, D)
CASES: list[Bad] = []

# ---------------------------------------------------------------------------- blocks
for cls in (T.TransformerBlock, T.TransformerDecoderBlock):
    name = cls.__name__
    CASES += int_arg(name, "d_model", lambda v, c=cls: c(v, 1, 8))
    CASES += int_arg(name, "nhead", lambda v, c=cls: c(8, v, 8))
    CASES += values(name, "nhead", lambda v, c=cls: c(8, v, 8), ("not dividing d_model", 3))
    CASES += int_arg(name, "dim_feedforward", lambda v, c=cls: c(8, 2, v))
    CASES += float_arg(name, "dropout", lambda v, c=cls: c(8, 2, 8, v), outside=(1.0, -0.1))
    CASES += choice_arg(name, "activation", lambda v, c=cls: c(8, 2, 8, activation=v))
    CASES += float_arg(
        name, "layer_norm_eps", lambda v, c=cls: c(8, 2, 8, layer_norm_eps=v), outside=(-1.0,)
    )
_block = T.TransformerBlock(D, HEADS, 16, 0.0)
CASES += float_tensor(
    "TransformerBlock.forward", "x", _block, X, shapes=[(B, L, D + 1), (L, D), (B, L, D, 1)]
)
CASES += values(
    "TransformerBlock.forward",
    "mask",
    lambda v: _block(X, v),
    ("of shape [L+1, L+1]", torch.ones(L + 1, L + 1, dtype=torch.bool)),
    ("as ints", torch.ones(L, L, dtype=torch.long)),
    ("as a list", [[True] * L] * L),
)
CASES += values(
    "TransformerBlock.forward", "is_causal", lambda v: _block(X, is_causal=v), ("= 'yes'", "yes")
)
CASES += values(
    "TransformerBlock.forward",
    "mask",
    lambda v: _block(X, v, is_causal=True),
    ("with is_causal=True", torch.ones(L, L, dtype=torch.bool)),
)
_cache_block = T.KeyValueCache(B, HEADS, D // HEADS, 3)
CASES += values(
    "TransformerBlock.forward",
    "cache",
    lambda v: _block(X, cache=v),
    ("too short for the input", _cache_block),
    ("a list", []),
    ("of another batch size", T.KeyValueCache(B + 1, HEADS, D // HEADS, 8)),
)
_decoder_block = T.TransformerDecoderBlock(D, HEADS, 16, 0.0)
_memory = torch.randn(B, 7, D)
CASES += float_tensor(
    "TransformerDecoderBlock.forward",
    "x",
    lambda v: _decoder_block(v, _memory),
    X,
    shapes=[(B, L, D + 1), (B + 1, L, D), (L, D)],
)
CASES += float_tensor(
    "TransformerDecoderBlock.forward",
    "memory",
    lambda v: _decoder_block(X, v),
    _memory,
    shapes=[(B, 7, D + 1), (B + 1, 7, D), (7, D)],
)
CASES += values(
    "TransformerDecoderBlock.forward",
    "self_mask",
    lambda v: _decoder_block(X, _memory, v),
    ("of shape [L, 7]", torch.ones(L, 7, dtype=torch.bool)),
    ("as ints", torch.ones(L, L, dtype=torch.long)),
)
CASES += values(
    "TransformerDecoderBlock.forward",
    "memory_mask",
    lambda v: _decoder_block(X, _memory, None, v),
    ("of shape [L, L]", torch.ones(L, L, dtype=torch.bool)),
    ("as ints", torch.ones(L, 7, dtype=torch.long)),
)
CASES += values(
    "count_parameters",
    "model",
    T.count_parameters,
    ("a tensor", torch.zeros(3)),
    ("a list of modules", [nn.Linear(2, 2)]),
)
CASES += values(
    "count_parameters",
    "trainable_only",
    lambda v: T.count_parameters(nn.Linear(2, 2), v),
    ("= 'yes'", "yes"),
)
CASES += values("parameter_table", "model", T.parameter_table, ("a tensor", torch.zeros(3)))

# ---------------------------------------------------------------------------- encoder-decoder
small = {
    "d_model": 8,
    "nhead": 2,
    "num_encoder_layers": 1,
    "num_decoder_layers": 1,
    "dim_feedforward": 16,
    "dropout": 0.0,
}
CASES += int_arg(
    "Transformer", "src_vocab_size", lambda v: T.Transformer(v, 5, share_embeddings=False, **small)
)
CASES += int_arg(
    "Transformer", "tgt_vocab_size", lambda v: T.Transformer(5, v, share_embeddings=False, **small)
)
CASES += int_arg("Transformer", "d_model", lambda v: T.Transformer(5, 5, d_model=v, nhead=1))
CASES += values(
    "Transformer",
    "nhead",
    lambda v: T.Transformer(5, 5, d_model=8, nhead=v),
    ("not dividing d_model", 3),
    ("= 0", 0),
)
CASES += int_arg(
    "Transformer",
    "num_encoder_layers",
    lambda v: T.Transformer(5, 5, **{**small, "num_encoder_layers": v}),
    minimum=0,
)
CASES += int_arg("Transformer", "max_length", lambda v: T.Transformer(5, 5, max_length=v, **small))
CASES += float_arg(
    "Transformer",
    "dropout",
    lambda v: T.Transformer(5, 5, **{**small, "dropout": v}),
    outside=(1.0, -0.1),
)
CASES += float_arg(
    "Transformer",
    "label_smoothing",
    lambda v: T.Transformer(5, 5, label_smoothing=v, **small),
    outside=(1.0, -0.1),
)
CASES += values(
    "Transformer",
    "share_embeddings",
    lambda v: T.Transformer(5, 6, share_embeddings=v, **small),
    ("with different vocabularies", True),
)
CASES += values(
    "Transformer",
    "pad_id",
    lambda v: T.Transformer(5, 5, pad_id=v, **small),
    ("= 5 (= vocab size)", 5),
    ("= -1", -1),
    ("= 'x'", "x"),
)
CASES += values(
    "Transformer", "start_id", lambda v: T.Transformer(5, 5, start_id=v, **small), ("= 7", 7)
)
_model = T.Transformer(V, V, **small)
_source = torch.randint(3, V, (B, 6))
_lengths = torch.tensor([6, 4])
_target = torch.randint(3, V, (B, 5))
CASES += token_tensor(
    "Transformer.forward",
    "source",
    lambda v: _model(v, torch.tensor([2, 2]), _target),
    _source[:, :2],
    V,
    shapes=[(B,)],
)
CASES += values(
    "Transformer.forward",
    "source_lengths",
    lambda v: _model(_source, v, _target),
    ("holding 0", torch.tensor([0, 2])),
    ("holding 7 > S", torch.tensor([7, 2])),
    ("as floats", torch.tensor([6.0, 4.0])),
    ("of shape [3]", torch.tensor([1, 2, 3])),
    ("as a list", [6, 4]),
)
CASES += token_tensor(
    "Transformer.forward",
    "target",
    lambda v: _model(_source, _lengths, v),
    _target,
    V,
    shapes=[(B, 1), (B + 1, 5), (5,)],
)
CASES += values(
    "Transformer.forward",
    "target",
    lambda v: _model(_source, _lengths, v),
    ("longer than max_length", torch.ones(B, 1100, dtype=torch.long)),
)
CASES += int_arg(
    "Transformer.generate", "max_length", lambda v: _model.generate(_source, _lengths, v), minimum=0
)
CASES += token_tensor(
    "Transformer.cross_attention",
    "target_input",
    lambda v: _model.cross_attention(_source, _lengths, v),
    _target,
    V,
    shapes=[(B + 1, 5), (5,)],
)
CASES += values(
    "Transformer.decode",
    "memory",
    lambda v: _model.decode(_target, v, torch.ones(B, 1, 1, 6, dtype=torch.bool)),
    ("of width D+1", torch.randn(B, 6, D + 1)),
    ("as a list", [[0.0]]),
)

# ---------------------------------------------------------------------------- GPT
CASES += values(
    "causal_lm_loss",
    "logits",
    lambda v: T.causal_lm_loss(v, torch.zeros(B, L, dtype=torch.long)),
    ("of shape [B, L]", torch.randn(B, L)),
    ("as a list", [[0.0]]),
    ("of shape [B, L+1, V]", torch.randn(B, L + 1, V)),
    ("as ints", torch.zeros(B, L, V, dtype=torch.long)),
)
CASES += token_tensor(
    "causal_lm_loss",
    "tokens",
    lambda v: T.causal_lm_loss(torch.randn(B, L, V), v),
    torch.zeros(B, L, dtype=torch.long),
    V,
    shapes=[(B, L + 1)],
)
_stream = torch.arange(50) % V
CASES += values(
    "random_windows",
    "ids",
    lambda v: T.random_windows(v, 4, 2),
    ("as a list", list(range(50))),
    ("of shape [5, 10]", torch.zeros(5, 10, dtype=torch.long)),
    ("as floats", torch.zeros(50)),
    ("shorter than block_size", torch.arange(3)),
)
CASES += int_arg("random_windows", "block_size", lambda v: T.random_windows(_stream, v, 2))
CASES += int_arg("random_windows", "batch_size", lambda v: T.random_windows(_stream, 4, v))
CASES += values(
    "random_windows", "generator", lambda v: T.random_windows(_stream, 4, 2, v), ("a seed", 3)
)
CASES += int_arg("GPT", "vocab_size", lambda v: T.GPT(v, 8, 8, 2, 1))
CASES += int_arg("GPT", "block_size", lambda v: T.GPT(V, v, 8, 2, 1))
CASES += int_arg("GPT", "d_model", lambda v: T.GPT(V, 8, v, 1, 1))
CASES += int_arg("GPT", "num_layers", lambda v: T.GPT(V, 8, 8, 2, v))
CASES += int_arg("GPT", "dim_feedforward", lambda v: T.GPT(V, 8, 8, 2, 1, v))
CASES += float_arg("GPT", "dropout", lambda v: T.GPT(V, 8, 8, 2, 1, dropout=v), outside=(1.0,))
_gpt = T.GPT(V, 8, 8, 2, 1)
_x = torch.randint(0, V, (B, L))
CASES += token_tensor("GPT.forward", "x", _gpt, _x, V, shapes=[(L,), (B, 9)])
CASES += token_tensor("GPT.forward", "targets", lambda v: _gpt(_x, v), _x, V, shapes=[(B, L + 1)])
CASES += values(
    "GPT.forward",
    "cache",
    lambda v: _gpt(_x, cache=v),
    ("a single cache", _gpt.new_cache(B)[0]),
    ("one cache per batch row instead of per layer", _gpt.new_cache(B) * 2),
    ("of the wrong batch size", _gpt.new_cache(B + 1)),
)
CASES += token_tensor("GPT.attention_maps", "x", _gpt.attention_maps, _x, V, shapes=[(B, 9)])
CASES += token_tensor(
    "GPT.generate", "prompt_ids", lambda v: _gpt.generate(v, 2), _x, V, shapes=[(B, 0), (B, L, 1)]
)
CASES += int_arg("GPT.generate", "length", lambda v: _gpt.generate(_x, v), minimum=0)
CASES += float_arg(
    "GPT.generate", "temperature", lambda v: _gpt.generate(_x, 2, v), outside=(-1.0,)
)
CASES += int_arg("GPT.generate", "top_k", lambda v: _gpt.generate(_x, 2, top_k=v), absurd=False)
CASES += int_arg("GPT.new_cache", "batch_size", _gpt.new_cache, minimum=0)
CASES += int_arg("KeyValueCache", "batch_size", lambda v: T.KeyValueCache(v, 2, 4, 8), minimum=0)
CASES += int_arg("KeyValueCache", "max_length", lambda v: T.KeyValueCache(2, 2, 4, v))
_cache = T.KeyValueCache(B, HEADS, 4, 8)
CASES += float_tensor(
    "KeyValueCache.append",
    "k",
    lambda v: _cache.append(v, torch.randn(B, HEADS, 1, 4)),
    torch.randn(B, HEADS, 1, 4),
    shapes=[(B, HEADS, 1, 5), (B, 1, 4)],
)
CASES += float_tensor(
    "KeyValueCache.append",
    "v",
    lambda v: _cache.append(torch.randn(B, HEADS, 1, 4), v),
    torch.randn(B, HEADS, 1, 4),
    shapes=[(B, HEADS, 2, 4), (B, HEADS, 1, 5)],
)

# ---------------------------------------------------------------------------- classifier and data
CASES += int_arg("make_palindromes", "count", T.make_palindromes, minimum=0)
CASES += values(
    "make_palindromes",
    "min_length",
    lambda v: T.make_palindromes(4, v, 8),
    ("= 1", 1),
    ("> max_length", 9),
    ("= 2.5", 2.5),
    ("= 'a'", "a"),
)
CASES += values(
    "make_palindromes", "max_length", lambda v: T.make_palindromes(4, 2, v), ("absurd", 10**12)
)
CASES += values(
    "make_palindromes",
    "alphabet",
    lambda v: T.make_palindromes(4, alphabet=v),
    ("= 'a'", "a"),
    ("= 'aab'", "aab"),
    ("= 3", 3),
)
CASES += values("make_palindromes", "seed", lambda v: T.make_palindromes(4, seed=v), ("= 'a'", "a"))
CASES += int_arg("TransformerClassifier", "vocab_size", lambda v: T.TransformerClassifier(v, 2, 8))
CASES += int_arg("TransformerClassifier", "num_classes", lambda v: T.TransformerClassifier(5, v, 8))
CASES += int_arg("TransformerClassifier", "max_length", lambda v: T.TransformerClassifier(5, 2, v))
CASES += values(
    "TransformerClassifier",
    "pad_id",
    lambda v: T.TransformerClassifier(5, 2, 8, pad_id=v),
    ("= 5 (= vocab size)", 5),
    ("= -1", -1),
)
_classifier = T.TransformerClassifier(5, 2, 8, d_model=8, nhead=2, num_layers=1)
_pal = torch.randint(0, 5, (B, 6))
CASES += token_tensor(
    "TransformerClassifier.forward", "tokens", _classifier, _pal, 5, shapes=[(B, 9), (6,)]
)
CASES += token_tensor(
    "TransformerClassifier.forward",
    "targets",
    lambda v: _classifier(_pal, v),
    torch.tensor([0, 1]),
    2,
    shapes=[(B + 1,)],
)

# ---------------------------------------------------------------------------- ViT
_images = torch.rand(B, 1, 8, 8)
CASES += float_tensor(
    "patchify",
    "images",
    lambda v: T.patchify(v, 2),
    _images,
    shapes=[(B, 8, 8), (B, 1, 7, 8)],
    double=False,
    integer=False,
)
CASES += int_arg("patchify", "patch_size", lambda v: T.patchify(_images, v))
_w, _b = torch.randn(D, 4), torch.randn(D)
_cls, _pos = torch.randn(D), torch.randn(17, D)
CASES += float_tensor(
    "embed_patches",
    "images",
    lambda v: T.embed_patches(v, 2, _w, _b, _cls, _pos),
    _images,
    shapes=[(B, 1, 6, 6)],
    double=False,
)
CASES += values(
    "embed_patches",
    "weight",
    lambda v: T.embed_patches(_images, 2, v, _b, _cls, _pos),
    ("of shape [D, 5]", torch.randn(D, 5)),
    ("as a list", _w.tolist()),
)
CASES += values(
    "embed_patches",
    "bias",
    lambda v: T.embed_patches(_images, 2, _w, v, _cls, _pos),
    ("of shape [D+1]", torch.randn(D + 1)),
    ("as a list", _b.tolist()),
)
CASES += values(
    "embed_patches",
    "cls_token",
    lambda v: T.embed_patches(_images, 2, _w, _b, v, _pos),
    ("of shape [D+1]", torch.randn(D + 1)),
    ("as a list", _cls.tolist()),
)
CASES += values(
    "embed_patches",
    "position_embedding",
    lambda v: T.embed_patches(_images, 2, _w, _b, _cls, v),
    ("of shape [16, D]", torch.randn(16, D)),
    ("as a list", [[0.0]]),
)
CASES += int_arg("ViT", "image_size", lambda v: T.ViT(v, 1, d_model=8, nhead=2, num_layers=1))
CASES += values(
    "ViT",
    "patch_size",
    lambda v: T.ViT(8, v, d_model=8, nhead=2, num_layers=1),
    ("not dividing image_size", 3),
    ("= 0", 0),
)
CASES += int_arg(
    "ViT", "num_classes", lambda v: T.ViT(num_classes=v, d_model=8, nhead=2, num_layers=1)
)
CASES += float_arg(
    "ViT", "dropout", lambda v: T.ViT(dropout=v, d_model=8, nhead=2, num_layers=1), outside=(1.0,)
)
_vit = T.ViT(8, 2, 1, 10, d_model=8, nhead=2, num_layers=1)
CASES += float_tensor(
    "ViT.forward", "images", _vit, _images, shapes=[(B, 3, 8, 8), (B, 1, 6, 6), (B, 8, 8)]
)
CASES += token_tensor(
    "ViT.forward",
    "targets",
    lambda v: _vit(_images, v),
    torch.tensor([1, 2]),
    10,
    shapes=[(B + 1,)],
)
CASES += float_tensor(
    "ViT.attention_maps", "images", _vit.attention_maps, _images, shapes=[(B, 3, 8, 8)]
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
