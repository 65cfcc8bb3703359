"""Bad input to course_lib.attention: every public function and class answers with a clear
error (TypeError for a wrong type or dtype, ValueError for a wrong shape or value) naming
the argument. ``text_explorer`` (a widget) is left to its own tests."""

from __future__ import annotations

import torch
from torch import nn

from course_lib import attention as A
from course_lib import data
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
B, L, E, D, HEADS = 2, 5, 8, 8, 2
Q, K, V = torch.randn(B, L, E), torch.randn(B, L + 1, E), torch.randn(B, L + 1, E)
CASES: list[Bad] = []

# ---------------------------------------------------------------------------- masks
CASES += int_arg("causal_mask", "length", A.causal_mask, minimum=0)
CASES += values(
    "causal_mask",
    "device",
    lambda v: A.causal_mask(3, device=v),
    ("= 'gpu9'", "gpu9"),
    ("= 3.5", 3.5),
)
CASES += values(
    "padding_mask",
    "lengths",
    A.padding_mask,
    ("as a list", [1, 2]),
    ("as floats", torch.tensor([1.0, 2.0])),
    ("holding -1", torch.tensor([-1, 2])),
    ("of shape [2, 1]", torch.tensor([[1], [2]])),
)
CASES += int_arg(
    "padding_mask", "max_length", lambda v: A.padding_mask(torch.tensor([1, 2]), v), minimum=2
)

# ---------------------------------------------------------------------------- scaled dot-product
sdpa = A.scaled_dot_product_attention
CASES += float_tensor(
    "scaled_dot_product_attention",
    "q",
    lambda v: sdpa(v, K, V),
    Q,
    shapes=[(B, L, E + 1), (E,)],
    double=False,
)
CASES += float_tensor(
    "scaled_dot_product_attention",
    "k",
    lambda v: sdpa(Q, v, V),
    K,
    shapes=[(B, L, E + 1), (B + 1, L + 1, E)],
)
CASES += float_tensor(
    "scaled_dot_product_attention", "v", lambda v: sdpa(Q, K, v), V, shapes=[(B, L, E), (E,)]
)
CASES += values(
    "scaled_dot_product_attention",
    "mask",
    lambda v: sdpa(Q, K, V, v),
    ("of shape [L, L]", torch.ones(L, L, dtype=torch.bool)),
    ("as ints", torch.ones(L, L + 1, dtype=torch.long)),
    ("with an extra batch dimension", torch.ones(3, B, L, L + 1, dtype=torch.bool)),
    ("as a list", [[True] * (L + 1)] * L),
    ("holding nan", torch.full((L, L + 1), float("nan"))),
)
CASES += float_arg(
    "scaled_dot_product_attention",
    "dropout_p",
    lambda v: sdpa(Q, K, V, dropout_p=v),
    outside=(-0.1, 1.0),
)
CASES += float_arg("scaled_dot_product_attention", "scale", lambda v: sdpa(Q, K, V, scale=v))
CASES += values(
    "softmax_saturation",
    "dims",
    A.softmax_saturation,
    ("holding 0", [0]),
    ("a number", 8),
    ("holding a float", [2.5]),
    ("absurd", [10**12]),
)
CASES += int_arg("softmax_saturation", "num_keys", lambda v: A.softmax_saturation([4], num_keys=v))
CASES += int_arg(
    "softmax_saturation", "num_samples", lambda v: A.softmax_saturation([4], num_samples=v)
)

# ---------------------------------------------------------------------------- additive attention
S, DQ, DK, DV, AS = 6, 5, 4, 3, 7
_query, _keys, _values = torch.randn(B, DQ), torch.randn(B, S, DK), torch.randn(B, S, DV)
_wq, _wk, _ws = torch.randn(AS, DQ), torch.randn(AS, DK), torch.randn(AS)
add = A.additive_attention
CASES += float_tensor(
    "additive_attention",
    "query",
    lambda v: add(v, _keys, _values, _wq, _wk, _ws),
    _query,
    shapes=[(B + 1, DQ), (B, DQ + 1), (DQ,)],
    double=False,
)
CASES += float_tensor(
    "additive_attention",
    "keys",
    lambda v: add(_query, v, _values, _wq, _wk, _ws),
    _keys,
    shapes=[(B, S, DK + 1), (B, S)],
    double=False,
)
CASES += float_tensor(
    "additive_attention",
    "values",
    lambda v: add(_query, _keys, v, _wq, _wk, _ws),
    _values,
    shapes=[(B, S + 1, DV), (B, S)],
    double=False,
)
CASES += values(
    "additive_attention",
    "w_query",
    lambda v: add(_query, _keys, _values, v, _wk, _ws),
    ("of shape [A, Dq+1]", torch.randn(AS, DQ + 1)),
    ("as a list", _wq.tolist()),
)
CASES += values(
    "additive_attention",
    "w_key",
    lambda v: add(_query, _keys, _values, _wq, v, _ws),
    ("of shape [A+1, Dk]", torch.randn(AS + 1, DK)),
    ("as a list", _wk.tolist()),
)
CASES += values(
    "additive_attention",
    "w_score",
    lambda v: add(_query, _keys, _values, _wq, _wk, v),
    ("of shape [A, 1]", torch.randn(AS, 1)),
    ("as a list", _ws.tolist()),
)
CASES += values(
    "additive_attention",
    "mask",
    lambda v: add(_query, _keys, _values, _wq, _wk, _ws, v),
    ("as floats", torch.ones(B, S)),
    ("of shape [B, S+1]", torch.ones(B, S + 1, dtype=torch.bool)),
    ("as a list", [[True] * S] * B),
)
CASES += values(
    "additive_attention",
    "projected_keys",
    lambda v: add(_query, _keys, _values, _wq, _wk, _ws, projected_keys=v),
    ("of shape [B, S, A+1]", torch.randn(B, S, AS + 1)),
    ("as a list", [1.0]),
)
for arg, position in (("query_size", 0), ("key_size", 1), ("attention_size", 2)):
    CASES += int_arg(
        "AdditiveAttention",
        arg,
        lambda v, p=position: A.AdditiveAttention(*[v if i == p else 4 for i in range(3)]),
    )
_additive = A.AdditiveAttention(DQ, DK, AS)
CASES += float_tensor(
    "AdditiveAttention.forward",
    "query",
    lambda v: _additive(v, _keys, _values),
    _query,
    shapes=[(B, DQ + 1)],
)
CASES += float_tensor(
    "AdditiveAttention.forward",
    "keys",
    lambda v: _additive(_query, v, _values),
    _keys,
    shapes=[(B, S, DK + 1)],
)
_decoder = A.AttentionDecoder(10, 4, 6, DK, 5)
_tokens = torch.randint(0, 10, (B, 3))
CASES += int_arg("AttentionDecoder", "vocab_size", lambda v: A.AttentionDecoder(v, 4, 6, DK, 5))
CASES += int_arg("AttentionDecoder", "hidden_size", lambda v: A.AttentionDecoder(10, 4, v, DK, 5))
CASES += values(
    "AttentionDecoder",
    "pad_id",
    lambda v: A.AttentionDecoder(10, 4, 6, DK, 5, v),
    ("= 10 (= vocab size)", 10),
    ("= -1", -1),
)
CASES += token_tensor(
    "AttentionDecoder.forward",
    "tokens",
    lambda v: _decoder(v, torch.zeros(B, 6), _keys),
    _tokens,
    10,
    shapes=[(B + 1, 3), (B,)],
)
CASES += float_tensor(
    "AttentionDecoder.forward",
    "state",
    lambda v: _decoder(_tokens, v, _keys),
    torch.zeros(B, 6),
    shapes=[(B, 7), (B + 1, 6)],
)
CASES += float_tensor(
    "AttentionDecoder.forward",
    "memory",
    lambda v: _decoder(_tokens, torch.zeros(B, 6), v),
    _keys,
    shapes=[(B, S, DK + 1), (B + 1, S, DK), (B, S)],
)
CASES += values(
    "AttentionDecoder.forward",
    "memory_mask",
    lambda v: _decoder(_tokens, torch.zeros(B, 6), _keys, v),
    ("of shape [B, S+1]", torch.ones(B, S + 1, dtype=torch.bool)),
    ("as floats", torch.ones(B, S)),
)
CASES += int_arg(
    "AttentionDecoder.greedy",
    "max_length",
    lambda v: _decoder.greedy(torch.zeros(B, 6), _keys, None, v, 1, 2, 0),
    minimum=0,
)
CASES += values(
    "AttentionDecoder.greedy",
    "start_id",
    lambda v: _decoder.greedy(torch.zeros(B, 6), _keys, None, 3, v, 2, 0),
    ("= 10 (= vocab size)", 10),
    ("= 'a'", "a"),
)
CASES += float_tensor(
    "reverse_padded",
    "x",
    lambda v: A.reverse_padded(v, torch.tensor([2, 3])),
    torch.randn(B, 4, 3),
    shapes=[(B, 4), (B + 1, 4, 3)],
    double=False,
    integer=False,
)
CASES += values(
    "reverse_padded",
    "lengths",
    lambda v: A.reverse_padded(torch.randn(B, 4, 3), v),
    ("as a list", [2, 3]),
    ("holding 5 > L", torch.tensor([5, 1])),
    ("holding -1", torch.tensor([-1, 1])),
    ("as floats", torch.tensor([1.0, 2.0])),
)

# -------------------------------------------------------------------- seq2seq with attention
_dates = data.load_dates(40, 4, 8, seed=0)
_sv, _tv = _dates.source_vocab, _dates.target_vocab
_batch = data.encode_dates(_dates.train[:4], _sv, _tv)
_model = A.AttentionSeq2Seq(len(_sv), len(_tv), 8, 16)
CASES += int_arg("AttentionSeq2Seq", "source_vocab_size", lambda v: A.AttentionSeq2Seq(v, 5))
CASES += int_arg("AttentionSeq2Seq", "embed_dim", lambda v: A.AttentionSeq2Seq(5, 5, v))
CASES += int_arg(
    "AttentionSeq2Seq", "attention_size", lambda v: A.AttentionSeq2Seq(5, 5, attention_size=v)
)
CASES += values(
    "AttentionSeq2Seq",
    "pad_id",
    lambda v: A.AttentionSeq2Seq(5, 5, pad_id=v),
    ("= 5 (= vocab size)", 5),
    ("= -1", -1),
)
CASES += values(
    "AttentionSeq2Seq",
    "bidirectional",
    lambda v: A.AttentionSeq2Seq(5, 5, bidirectional=v),
    ("= 'no'", "no"),
)
CASES += token_tensor(
    "AttentionSeq2Seq.forward",
    "source",
    lambda v: _model(v, torch.full((4,), 3), _batch.target),
    _batch.source[:, :3],
    len(_sv),
    shapes=[(4,)],
)
CASES += values(
    "AttentionSeq2Seq.forward",
    "source_lengths",
    lambda v: _model(_batch.source, v, _batch.target),
    ("holding 0", torch.zeros(4, dtype=torch.long)),
    ("as floats", _batch.source_lengths.float()),
    ("as a list", [3] * 4),
    ("of shape [3]", _batch.source_lengths[:3]),
)
CASES += token_tensor(
    "AttentionSeq2Seq.forward",
    "target",
    lambda v: _model(_batch.source, _batch.source_lengths, v),
    _batch.target,
    len(_tv),
    shapes=[(4, 1), (3, 12)],
)
CASES += token_tensor(
    "AttentionSeq2Seq.attention_weights",
    "target",
    lambda v: _model.attention_weights(_batch.source, _batch.source_lengths, v),
    _batch.target,
    len(_tv),
    shapes=[(4, 1), (3, 12)],
)
CASES += int_arg(
    "AttentionSeq2Seq.generate",
    "max_length",
    lambda v: _model.generate(_batch.source, _batch.source_lengths, v),
    minimum=0,
)
CASES += values(
    "length_bucketed_batches",
    "encoded",
    lambda v: A.length_bucketed_batches(v, 2),
    ("a list of pairs", _dates.train[:4]),
    ("a tensor", _batch.source),
)
CASES += int_arg(
    "length_bucketed_batches",
    "batch_size",
    lambda v: A.length_bucketed_batches(_batch, v)(),
    absurd=False,
)
CASES += int_arg(
    "length_bucketed_batches",
    "window",
    lambda v: A.length_bucketed_batches(_batch, 2, window=v)(),
    absurd=False,
)
CASES += values(
    "length_bucketed_batches",
    "seed",
    lambda v: A.length_bucketed_batches(_batch, 2, v),
    ("= 'a'", "a"),
    ("= -1", -1),
)
CASES += values(
    "accuracy_by_length",
    "correct",
    lambda v: A.accuracy_by_length(v, torch.tensor([3, 5]), [0, 5, 10]),
    ("as a list", [True, False]),
    ("as floats 0.5", torch.full((2,), 0.5)),
)
CASES += values(
    "accuracy_by_length",
    "edges",
    lambda v: A.accuracy_by_length(torch.tensor([True, False]), torch.tensor([3, 5]), v),
    ("decreasing", [10, 0]),
    ("holding nan", [0, float("nan")]),
)
CASES += int_arg("copy_task", "count", lambda v: A.copy_task(v), minimum=0)
CASES += int_arg("copy_task", "max_length", lambda v: A.copy_task(3, 1, v))
CASES += values("copy_task", "min_length", lambda v: A.copy_task(3, v, 4), ("> max_length", 5))
CASES += values(
    "exact_match_ids",
    "model",
    lambda v: A.exact_match_ids(v, _batch),
    ("without generate", nn.Linear(2, 2)),
)
CASES += values(
    "exact_match_ids",
    "encoded",
    lambda v: A.exact_match_ids(_model, v),
    ("a list of pairs", _dates.train[:2]),
)
CASES += int_arg(
    "exact_match_ids", "batch_size", lambda v: A.exact_match_ids(_model, _batch, v), absurd=False
)

# ---------------------------------------------------------------------------- captioning
_images, _labels = torch.rand(6, 1, 8, 8), torch.arange(6)
CASES += float_tensor(
    "make_digit_sequences",
    "images",
    lambda v: A.make_digit_sequences(v, _labels, 2),
    _images,
    shapes=[(6, 8, 8), (6, 1, 7, 8)],
    double=False,
    nonfinite=True,
)
CASES += values(
    "make_digit_sequences",
    "labels",
    lambda v: A.make_digit_sequences(_images, v, 2),
    ("of shape [5]", torch.arange(5)),
    ("holding 10", torch.full((6,), 10)),
    ("as floats", torch.zeros(6)),
    ("as a list", [1] * 6),
)
CASES += int_arg(
    "make_digit_sequences",
    "count",
    lambda v: A.make_digit_sequences(_images, _labels, v),
    minimum=0,
)
CASES += int_arg(
    "make_digit_sequences",
    "max_digits",
    lambda v: A.make_digit_sequences(_images, _labels, 2, 1, v),
)
CASES += int_arg(
    "make_digit_sequences",
    "max_gap",
    lambda v: A.make_digit_sequences(_images, _labels, 2, max_gap=v),
    minimum=0,
)
_captioner = A.AttentionCaptioner(
    13, (10, 32), channels=8, embed_dim=4, hidden_size=8, attention_size=4
)
CASES += int_arg("AttentionCaptioner", "vocab_size", lambda v: A.AttentionCaptioner(v, (10, 32)))
CASES += int_arg(
    "AttentionCaptioner", "channels", lambda v: A.AttentionCaptioner(13, (10, 32), channels=v)
)
CASES += values(
    "AttentionCaptioner",
    "image_size",
    lambda v: A.AttentionCaptioner(13, v),
    ("= 10", 10),
    ("= (0, 32)", (0, 32)),
    ("= (10, 'a')", (10, "a")),
)
_canvas = torch.rand(2, 1, 10, 32)
_targets = torch.randint(0, 13, (2, 6))
CASES += float_tensor(
    "AttentionCaptioner.forward",
    "images",
    lambda v: _captioner(v, _targets),
    _canvas,
    shapes=[(2, 1, 12, 32), (2, 3, 10, 32), (2, 10, 32)],
)
CASES += token_tensor(
    "AttentionCaptioner.forward",
    "targets",
    lambda v: _captioner(_canvas, v),
    _targets,
    13,
    shapes=[(3, 6), (2, 1)],
)
CASES += int_arg(
    "AttentionCaptioner.generate",
    "max_length",
    lambda v: _captioner.generate(_canvas, v),
    minimum=0,
)

# --------------------------------------------------------------- general and self-attention
CASES += int_arg("AttentionLayer", "query_dim", lambda v: A.AttentionLayer(v, 4))
CASES += int_arg("AttentionLayer", "value_dim", lambda v: A.AttentionLayer(4, 4, v))
_layer = A.AttentionLayer(E, 3)
CASES += float_tensor(
    "AttentionLayer.forward",
    "query",
    lambda v: _layer(v, torch.randn(B, 4, 3)),
    Q,
    shapes=[(B, L, E + 1), (B + 1, L, E), (L, E)],
)
CASES += float_tensor(
    "AttentionLayer.forward",
    "inputs",
    lambda v: _layer(Q, v),
    torch.randn(B, 4, 3),
    shapes=[(B, 4, 4), (B, 4)],
)
CASES += values(
    "AttentionLayer.forward",
    "mask",
    lambda v: _layer(Q, torch.randn(B, 4, 3), v),
    ("of shape [L, L]", torch.ones(L, L, dtype=torch.bool)),
)
CASES += int_arg("SelfAttention", "dim", lambda v: A.SelfAttention(v))
CASES += int_arg("SelfAttention", "key_dim", lambda v: A.SelfAttention(4, v))
_self = A.SelfAttention(D)
CASES += float_tensor(
    "SelfAttention.forward", "x", lambda v: _self(v), Q, shapes=[(B, L, D + 1), (L, D)]
)
CASES += values(
    "is_permutation_equivariant",
    "layer",
    lambda v: A.is_permutation_equivariant(v, Q, torch.arange(L)),
    ("a string", "layer"),
)
CASES += float_tensor(
    "is_permutation_equivariant",
    "x",
    lambda v: A.is_permutation_equivariant(_self, v, torch.arange(L)),
    Q,
    shapes=[(L, D)],
    double=False,
)
CASES += values(
    "is_permutation_equivariant",
    "permutation",
    lambda v: A.is_permutation_equivariant(_self, Q, v),
    ("not a permutation", torch.zeros(L, dtype=torch.long)),
    ("as floats", torch.arange(L).float()),
    ("of length L+1", torch.arange(L + 1)),
    ("as a list", list(range(L))),
)
CASES += float_arg(
    "is_permutation_equivariant",
    "atol",
    lambda v: A.is_permutation_equivariant(_self, Q, torch.arange(L), atol=v),
    outside=(-1.0,),
)
CASES += int_arg(
    "sinusoidal_positional_encoding",
    "length",
    lambda v: A.sinusoidal_positional_encoding(v, 8),
    minimum=0,
)
CASES += int_arg(
    "sinusoidal_positional_encoding",
    "dim",
    lambda v: A.sinusoidal_positional_encoding(8, v),
    minimum=0,
)
CASES += values(
    "sinusoidal_positional_encoding",
    "dtype",
    lambda v: A.sinusoidal_positional_encoding(4, 4, dtype=v),
    ("= torch.long", torch.long),
    ("= 'float'", "float"),
)
CASES += int_arg(
    "LearnedPositionalEmbedding", "max_length", lambda v: A.LearnedPositionalEmbedding(v, 4)
)
_positions = A.LearnedPositionalEmbedding(L, D)
CASES += float_tensor(
    "LearnedPositionalEmbedding.forward",
    "x",
    _positions,
    Q,
    shapes=[(B, L + 1, D), (B, L, D + 1), (L, D)],
)

# ---------------------------------------------------------------------------- multi-head attention
CASES += float_tensor(
    "split_heads",
    "x",
    lambda v: A.split_heads(v, 2),
    Q,
    shapes=[(B, L, 7), (L, E)],
    double=False,
    integer=False,
)
CASES += int_arg("split_heads", "num_heads", lambda v: A.split_heads(Q, v))
CASES += float_tensor(
    "merge_heads",
    "x",
    A.merge_heads,
    torch.randn(B, 2, L, 4),
    shapes=[(B, L, 4)],
    double=False,
    integer=False,
)
CASES += int_arg("MultiHeadAttention", "embed_dim", lambda v: A.MultiHeadAttention(v, 1))
CASES += int_arg("MultiHeadAttention", "num_heads", lambda v: A.MultiHeadAttention(8, v))
CASES += values(
    "MultiHeadAttention",
    "num_heads",
    lambda v: A.MultiHeadAttention(8, v),
    ("not dividing embed_dim", 3),
)
CASES += float_arg(
    "MultiHeadAttention", "dropout", lambda v: A.MultiHeadAttention(8, 2, v), outside=(1.0, -0.1)
)
_mha = A.MultiHeadAttention(D, HEADS)
for arg, position in (("query", 0), ("key", 1), ("value", 2)):

    def _call(v, p=position, weights=True):
        args = [Q, K, V]
        args[p] = v
        return _mha(*args, need_weights=weights)

    CASES += float_tensor(
        "MultiHeadAttention.forward",
        arg,
        _call,
        [Q, K, V][position],
        shapes=[(B, L + 1, D + 1), (B + 1, L + 1, D), (L, D)],
    )
CASES += values(
    "MultiHeadAttention.forward",
    "mask",
    lambda v: _mha(Q, K, V, v),
    ("of shape [L, L]", torch.ones(L, L, dtype=torch.bool)),
    ("as ints", torch.ones(L, L + 1, dtype=torch.long)),
    ("of shape [3, 1, L, L+1]", torch.ones(3, 1, L, L + 1, dtype=torch.bool)),
)
CASES += values(
    "MultiHeadAttention.forward (fused)",
    "mask",
    lambda v: _mha(Q, K, V, v, need_weights=False),
    ("of shape [L, L]", torch.ones(L, L, dtype=torch.bool)),
    ("as ints", torch.ones(L, L + 1, dtype=torch.long)),
)
CASES += values(
    "MultiHeadAttention.forward",
    "need_weights",
    lambda v: _mha(Q, K, V, need_weights=v),
    ("= 'no'", "no"),
)
CASES += choice_arg("sequence_task", "task", lambda v: A.sequence_task(v, 2, 4))
CASES += int_arg("sequence_task", "count", lambda v: A.sequence_task("previous", v, 4), minimum=0)
CASES += int_arg("sequence_task", "length", lambda v: A.sequence_task("previous", 2, v), minimum=2)
CASES += int_arg(
    "sequence_task", "vocab_size", lambda v: A.sequence_task("previous", 2, 4, v), minimum=2
)
CASES += int_arg("SelfAttentionTagger", "vocab_size", lambda v: A.SelfAttentionTagger(v))
CASES += int_arg("SelfAttentionTagger", "dim", lambda v: A.SelfAttentionTagger(10, v))
CASES += choice_arg(
    "SelfAttentionTagger", "positional", lambda v: A.SelfAttentionTagger(10, positional=v)
)
_tagger = A.SelfAttentionTagger(10, 8, 2, max_length=6)
_tag_tokens = torch.randint(0, 10, (B, 6))
CASES += token_tensor(
    "SelfAttentionTagger.forward", "tokens", _tagger, _tag_tokens, 10, shapes=[(B, 7), (6,)]
)
CASES += token_tensor(
    "SelfAttentionTagger.forward",
    "targets",
    lambda v: _tagger(_tag_tokens, v),
    _tag_tokens,
    10,
    shapes=[(B, 5)],
)
CASES += token_tensor(
    "SelfAttentionTagger.attention_weights",
    "tokens",
    _tagger.attention_weights,
    _tag_tokens,
    10,
    shapes=[(B, 7)],
)

# ---------------------------------------------------------------------------- attention in a CNN
CASES += int_arg("SelfAttention2d", "channels", lambda v: A.SelfAttention2d(v))
CASES += int_arg("SelfAttention2d", "key_channels", lambda v: A.SelfAttention2d(8, v))
_sa2d = A.SelfAttention2d(8)
CASES += float_tensor(
    "SelfAttention2d.forward", "x", _sa2d, torch.randn(B, 8, 3, 3), shapes=[(B, 7, 3, 3), (8, 3, 3)]
)
CASES += int_arg("SelfAttentionClassifier", "num_classes", lambda v: A.SelfAttentionClassifier(v))
CASES += int_arg("SelfAttentionClassifier", "channels", lambda v: A.SelfAttentionClassifier(10, v))
_cnn = A.SelfAttentionClassifier(10, 8)
CASES += float_tensor(
    "SelfAttentionClassifier.forward",
    "images",
    _cnn,
    torch.rand(B, 1, 8, 8),
    shapes=[(B, 3, 8, 8), (B, 8, 8)],
)
CASES += token_tensor(
    "SelfAttentionClassifier.forward",
    "labels",
    lambda v: _cnn(torch.rand(B, 1, 8, 8), v),
    torch.tensor([1, 2]),
    10,
    shapes=[(B + 1,)],
)

# ---------------------------------------------------------------------------- sequence mixers
CASES += choice_arg("SequenceMixer", "kind", lambda v: A.SequenceMixer(v, 8))
CASES += int_arg("SequenceMixer", "dim", lambda v: A.SequenceMixer("conv", v))
CASES += int_arg("SequenceMixer", "num_layers", lambda v: A.SequenceMixer("conv", 8, v))
CASES += values(
    "SequenceMixer",
    "kernel_size",
    lambda v: A.SequenceMixer("conv", 8, 1, v),
    ("= 2 (even)", 2),
    ("= 0", 0),
    ("= 2.5", 2.5),
    ("= '3'", "3"),
)
CASES += int_arg(
    "SequenceMixer", "num_heads", lambda v: A.SequenceMixer("attention", 8, num_heads=v)
)
_mixer = A.SequenceMixer("conv", 8)
CASES += float_tensor("SequenceMixer.forward", "x", _mixer, Q, shapes=[(B, L, 9), (L, 8)])
CASES += int_arg("receptive_field", "num_layers", lambda v: A.receptive_field(v, 3), minimum=0)
CASES += int_arg("receptive_field", "kernel_size", lambda v: A.receptive_field(2, v))
CASES += int_arg("receptive_field", "dilation_growth", lambda v: A.receptive_field(2, 3, v))
CASES += int_arg(
    "conv_layers_to_cover", "length", lambda v: A.conv_layers_to_cover(v, 3), absurd=False
)
CASES += values(
    "conv_layers_to_cover",
    "length",
    lambda v: A.conv_layers_to_cover(v, 3),
    ("= 2**70 (absurd)", 2**70),
)
CASES += int_arg(
    "conv_layers_to_cover", "kernel_size", lambda v: A.conv_layers_to_cover(9, v), minimum=2
)
CASES += int_arg(
    "conv_layers_to_cover", "dilation_growth", lambda v: A.conv_layers_to_cover(9, 3, v)
)
CASES += values(
    "input_influence",
    "mixer",
    lambda v: A.input_influence(v, 5, 8, 2),
    ("a string", "conv"),
    ("a module of another width", A.SequenceMixer("conv", 4)),
)
CASES += int_arg("input_influence", "length", lambda v: A.input_influence(_mixer, v, 8, 0))
CASES += int_arg("input_influence", "dim", lambda v: A.input_influence(_mixer, 5, v, 0))
CASES += values(
    "input_influence",
    "position",
    lambda v: A.input_influence(_mixer, 5, 8, v),
    ("= 5 (= length)", 5),
    ("= -1", -1),
    ("= 1.5", 1.5),
)
CASES += values(
    "saved_tensor_bytes", "function", A.saved_tensor_bytes, ("a tensor", torch.zeros(2))
)
CASES += values(
    "measure_cost", "mixer", lambda v: A.measure_cost(v, [4], 2, 8, 1), ("a string", "conv")
)
CASES += values(
    "measure_cost",
    "lengths",
    lambda v: A.measure_cost(_mixer, v, 2, 8, 1),
    ("a number", 4),
    ("holding 0", [0]),
    ("holding 2.5", [2.5]),
)
CASES += int_arg("measure_cost", "batch_size", lambda v: A.measure_cost(_mixer, [4], v, 8, 1))
CASES += int_arg("measure_cost", "repeats", lambda v: A.measure_cost(_mixer, [4], 2, 8, v))


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
