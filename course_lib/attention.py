"""Attention from first principles, in the order the chapter builds it up.

1. masks and scaled dot-product attention (``scaled_dot_product_attention``), and why the
   scores are scaled (``softmax_saturation``);
2. additive (Bahdanau) attention and the sequence-to-sequence model with attention
   (``additive_attention``, ``AdditiveAttention``, ``AttentionDecoder``,
   ``AttentionSeq2Seq``), with the batching and evaluation helpers of the chapter and the
   copying task that exposes the bottleneck of seq2seq without attention (``copy_task``);
3. image captioning with attention over a CNN feature grid (``make_digit_sequences``,
   ``AttentionCaptioner``);
4. the general attention layer with key and value projections (``AttentionLayer``) and
   self-attention (``SelfAttention``), its permutation equivariance
   (``is_permutation_equivariant``) and positional encodings
   (``sinusoidal_positional_encoding``, ``LearnedPositionalEmbedding``);
5. multi-head attention (``split_heads``, ``merge_heads``, ``MultiHeadAttention``, equal to
   ``torch.nn.MultiheadAttention``) and a small self-attention tagger;
6. self-attention inside a CNN (``SelfAttention2d``, ``SelfAttentionClassifier``);
7. three ways to mix a sequence - RNN, 1-D convolution, self-attention - and what each
   costs (``SequenceMixer``, ``measure_cost``, ``input_influence``).

Boolean masks follow ``torch.nn.functional.scaled_dot_product_attention``: **True means
"may attend"**. A float mask is added to the scores (use ``-inf`` to block). A query whose
every key is blocked gets all-zero weights and a zero output (no NaN), which is also what
PyTorch (2.5 and later) returns.

Shape letters: ``B`` batch, ``H`` heads, ``Lq`` queries, ``Lk`` keys/values, ``L`` sequence
length, ``S`` source length, ``T`` target length, ``E`` query/key features, ``Ev`` value
features, ``D`` model (embedding) dimension, ``A`` attention (alignment) hidden size,
``V`` vocabulary size, ``C`` channels, ``N`` items; ``Hf``/``Wf`` the height and width of
a feature map.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.rnn import GRU, GRUCell

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from course_lib.data import EncodedDates, Vocab

__all__ = [
    "AdditiveAttention",
    "AttentionCaptioner",
    "AttentionDecoder",
    "AttentionLayer",
    "AttentionSeq2Seq",
    "DigitSequences",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "SelfAttention",
    "SelfAttention2d",
    "SelfAttentionClassifier",
    "SelfAttentionTagger",
    "SequenceMixer",
    "accuracy_by_length",
    "additive_attention",
    "causal_mask",
    "conv_layers_to_cover",
    "copy_task",
    "exact_match_ids",
    "input_influence",
    "is_permutation_equivariant",
    "length_bucketed_batches",
    "make_digit_sequences",
    "measure_cost",
    "merge_heads",
    "padding_mask",
    "receptive_field",
    "reverse_padded",
    "saved_tensor_bytes",
    "scaled_dot_product_attention",
    "sequence_task",
    "sinusoidal_positional_encoding",
    "softmax_saturation",
    "split_heads",
    "text_explorer",
]

Device = Optional[Union[str, torch.device]]


# ----------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------


def _shape(value: Any) -> str:
    return str(list(value.shape)) if isinstance(value, Tensor) else type(value).__name__


def _check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_tensor(name: str, value: Any, dims: int, what: str, floating: bool = True) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape {what}, got {type(value).__name__}")
    if value.dim() != dims:
        raise ValueError(f"{name} must have shape {what}, got {list(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")


def _check_mask(mask: Any, scores_shape: Tuple[int, ...]) -> None:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"mask must be bool (True = may attend) or float, got {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    # The mask may be smaller than the scores, never larger: it must not add batch dimensions.
    if broadcast != torch.Size(scores_shape):
        raise ValueError(
            f"mask of shape {list(mask.shape)} does not broadcast to the scores "
            f"[..., Lq, Lk] = {list(scores_shape)}"
        )


# ----------------------------------------------------------------------------------------
# 1. Masks and scaled dot-product attention
# ----------------------------------------------------------------------------------------


def causal_mask(length: int, device: Device = None) -> Tensor:
    """Bool mask [L, L], True on and below the diagonal: position i may attend to j <= i."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Tensor, max_length: Optional[int] = None) -> Tensor:
    """Bool key mask [B, 1, 1, Lk] from sequence lengths [B]: True on real tokens.

    ``Lk`` is ``max_length`` (default: the longest length). The mask broadcasts against
    scores [B, H, Lq, Lk]; use ``[:, 0]`` for [B, 1, Lk] (scores without heads) or
    ``[:, 0, 0]`` for [B, Lk].
    """
    if not isinstance(lengths, Tensor) or lengths.dim() != 1:
        raise ValueError(f"lengths must be a 1-D tensor [B], got {_shape(lengths)}")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    longest = int(lengths.max()) if lengths.numel() else 0
    if lengths.numel() and int(lengths.min()) < 0:
        raise ValueError("lengths must be non-negative")
    if max_length is None:
        max_length = longest
    elif isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < longest:
        raise ValueError(
            f"max_length must be an int >= the longest length ({longest}), got {max_length!r}"
        )
    positions = torch.arange(max_length, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1))[:, None, None, :]


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor] = None,
    dropout_p: float = 0.0,
    scale: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + mask) v`` and the attention weights.

    Args:
        q: queries [..., Lq, E]. k: keys [..., Lk, E]. v: values [..., Lk, Ev].
        mask: bool (True = may attend) or float (added to the scores), broadcastable to
            [..., Lq, Lk]; None attends everywhere.
        dropout_p: dropout probability on the weights (use 0 at evaluation time).
        scale: multiplies the scores; default ``1 / sqrt(E)``.

    Returns:
        ``(output [..., Lq, Ev], weights [..., Lq, Lk])``; each row of the weights sums to 1,
        except fully blocked rows, which are all zero (and so is their output).
    """
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(tensor).__name__}")
        if tensor.dim() < 2:
            raise ValueError(f"{name} must have shape [..., L, E], got {list(tensor.shape)}")
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {tensor.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "q and k must have the same feature size E, "
            f"got q {list(q.shape)} and k {list(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same length Lk, got k {list(k.shape)} and v {list(v.shape)}"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # [..., Lq, Lk]
    if mask is not None:
        _check_mask(mask, tuple(scores.shape))
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        # softmax of a row that is all -inf is 0/0 = NaN: define it as "attends to nothing".
        # The rows are found from the (small, broadcast) mask, and only they are touched, so
        # a NaN that comes in with q, k or v still shows.
        if mask.dtype == torch.bool:
            blocked = ~mask.any(dim=-1, keepdim=True)
        else:
            blocked = torch.isneginf(mask).all(dim=-1, keepdim=True)
        weights = weights.masked_fill(blocked, 0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p, training=True)
    return weights @ v, weights


def softmax_saturation(
    dims: Sequence[int],
    num_keys: int = 32,
    num_samples: int = 2000,
    scaled: bool = True,
    seed: int = 0,
) -> Dict[str, Tensor]:
    """How peaked the attention softmax gets as the feature size E grows.

    For each E in ``dims``, draws ``num_samples`` queries and sets of ``num_keys`` keys with
    i.i.d. N(0, 1) entries, so a dot product ``q . k`` has variance E, and applies the
    softmax to the scores (divided by ``sqrt(E)`` when ``scaled``).

    Returns:
        A dict of float64 tensors [len(dims)]: ``score_std`` (standard deviation of the
        scores fed to the softmax), ``max_weight`` (mean largest weight; 1 means one-hot)
        and ``jacobian_norm`` (mean Frobenius norm of the softmax Jacobian
        ``diag(p) - p p^T``, the factor every gradient into the scores is multiplied by).
    """
    _check_positive_int("num_keys", num_keys)
    _check_positive_int("num_samples", num_samples)
    generator = torch.Generator().manual_seed(seed)
    out: Dict[str, List[float]] = {"score_std": [], "max_weight": [], "jacobian_norm": []}
    for dim in dims:
        _check_positive_int("dims[i]", dim)
        q = torch.randn(num_samples, 1, dim, generator=generator, dtype=torch.float64)
        k = torch.randn(num_samples, num_keys, dim, generator=generator, dtype=torch.float64)
        scores = (q @ k.transpose(1, 2)).squeeze(1)  # [N, Lk], variance E
        if scaled:
            scores = scores / math.sqrt(dim)
        p = torch.softmax(scores, dim=-1)
        jacobian = torch.diag_embed(p) - p.unsqueeze(-1) * p.unsqueeze(-2)  # [N, Lk, Lk]
        out["score_std"].append(float(scores.std()))
        out["max_weight"].append(float(p.max(dim=-1).values.mean()))
        out["jacobian_norm"].append(float(jacobian.flatten(1).norm(dim=-1).mean()))
    return {key: torch.tensor(values, dtype=torch.float64) for key, values in out.items()}


# ----------------------------------------------------------------------------------------
# 2. Additive (Bahdanau) attention and sequence-to-sequence with attention
# ----------------------------------------------------------------------------------------


def additive_attention(
    query: Tensor,
    keys: Tensor,
    values: Tensor,
    w_query: Tensor,
    w_key: Tensor,
    w_score: Tensor,
    mask: Optional[Tensor] = None,
    *,
    projected_keys: Optional[Tensor] = None,
) -> Tuple[Tensor, Tensor]:
    """One step of additive attention (Bahdanau et al.): alignment scores from an MLP.

    ``e_i = w_score . tanh(W_query s + W_key h_i)``, ``a = softmax(e)`` over the S
    positions, context ``c = sum_i a_i v_i``.

    Args:
        query: the decoder state ``s`` [B, Dq]. keys: ``h_i`` [B, S, Dk].
        values: [B, S, Dv] (the encoder states again in Bahdanau's model).
        w_query: [A, Dq]. w_key: [A, Dk]. w_score: [A].
        mask: bool [B, S], True = may attend (real tokens), or None.
        projected_keys: ``keys @ w_key.T`` [B, S, A] if already computed (a decoder reuses it
            at every step, since the keys do not change).

    Returns:
        ``(context [B, Dv], weights [B, S])``; the weights of a row sum to 1 (all zero if
        every position is masked).
    """
    _check_tensor("query", query, 2, "[B, Dq]")
    _check_tensor("keys", keys, 3, "[B, S, Dk]")
    _check_tensor("values", values, 3, "[B, S, Dv]")
    batch, length = keys.shape[:2]
    if query.shape[0] != batch or values.shape[:2] != keys.shape[:2]:
        raise ValueError(
            f"query [B, Dq], keys [B, S, Dk] and values [B, S, Dv] disagree: "
            f"{list(query.shape)}, {list(keys.shape)}, {list(values.shape)}"
        )
    if w_score.dim() != 1 or w_query.shape != (w_score.shape[0], query.shape[1]):
        raise ValueError(
            f"w_query must be [A, Dq] and w_score [A], got {list(w_query.shape)} and "
            f"{list(w_score.shape)} for query {list(query.shape)}"
        )
    if projected_keys is None:
        if w_key.shape != (w_score.shape[0], keys.shape[2]):
            raise ValueError(
                f"w_key must be [A, Dk] = {[w_score.shape[0], keys.shape[2]]}, "
                f"got {list(w_key.shape)}"
            )
        projected_keys = keys @ w_key.T  # [B, S, A]
    projected_query = query @ w_query.T  # [B, A]
    scores = torch.tanh(projected_keys + projected_query.unsqueeze(1)) @ w_score  # [B, S]
    if mask is not None:
        if mask.dtype != torch.bool or mask.shape != (batch, length):
            raise ValueError(
                f"mask must be bool [B, S] = {[batch, length]}, got {mask.dtype} {_shape(mask)}"
            )
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    context = (weights.unsqueeze(1) @ values).squeeze(1)  # [B, Dv]
    return context, weights


class AdditiveAttention(nn.Module):
    """Additive attention with learned ``W_query`` [A, Dq], ``W_key`` [A, Dk], ``w_score`` [A].

    ``forward(query [B, Dq], keys [B, S, Dk], values [B, S, Dv], mask=None,
    projected_keys=None) -> (context [B, Dv], weights [B, S])``; see
    ``additive_attention``. ``project_keys(keys)`` gives the [B, S, A] projection once for
    all decoder steps.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        for name, value in (
            ("query_size", query_size), ("key_size", key_size),
            ("attention_size", attention_size),
        ):  # fmt: skip
            _check_positive_int(name, value)
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)
        self.key_proj = nn.Linear(key_size, attention_size, bias=False)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """``W_key h_i`` for every position: [B, S, Dk] -> [B, S, A]."""
        return self.key_proj(keys)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Optional[Tensor] = None,
        projected_keys: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        return additive_attention(
            query, keys, values, self.query_proj.weight, self.key_proj.weight,
            self.score.weight[0], mask, projected_keys=projected_keys,
        )  # fmt: skip


class AttentionDecoder(nn.Module):
    """A GRU decoder that attends over a memory (encoder states or image features) each step.

    At step t, with previous state ``s_{t-1}`` and previous token ``y_{t-1}``:
    ``c_t, a_t = attention(s_{t-1}, memory)``; ``s_t = GRU([embed(y_{t-1}); c_t], s_{t-1})``;
    ``logits_t = W_out [s_t; c_t; embed(y_{t-1})]``. The context is used by the *decoder*
    to compute its next state (as in Bahdanau et al.).

    ``forward(tokens [B, T], state [B, H], memory [B, N, Dm], memory_mask [B, N] or None)``
    returns ``(logits [B, T, V], weights [B, T, N])`` with teacher forcing (``tokens`` are
    the inputs ``y_0..y_{T-1}``); ``greedy`` decodes from ``<start>``.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        memory_size: int,
        attention_size: int,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size), ("embed_dim", embed_dim), ("hidden_size", hidden_size),
            ("memory_size", memory_size), ("attention_size", attention_size),
        ):  # fmt: skip
            _check_positive_int(name, value)
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.attention = AdditiveAttention(hidden_size, memory_size, attention_size)
        self.cell = GRUCell(embed_dim + memory_size, hidden_size)
        self.output = nn.Linear(hidden_size + memory_size + embed_dim, vocab_size)

    def _steps(
        self,
        first_token: Tensor,
        state: Tensor,
        memory: Tensor,
        memory_mask: Optional[Tensor],
        steps: int,
        teacher_tokens: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Run ``steps`` steps from ``first_token`` [B]; return logits [B, T, V] and weights
        [B, T, N]. The input of step t + 1 is ``teacher_tokens[:, t + 1]`` (teacher forcing)
        or, without them, the most likely token of step t (greedy decoding)."""
        projected = self.attention.project_keys(memory)  # once, not at every step
        token, features, weights, step_logits = first_token, [], [], []
        for t in range(steps):
            embedded = self.embedding(token)  # [B, E]
            context, alignment = self.attention(state, memory, memory, memory_mask, projected)
            state = self.cell(torch.cat([embedded, context], dim=-1), state)  # s_t
            features.append(torch.cat([state, context, embedded], dim=-1))
            weights.append(alignment)
            if teacher_tokens is None:
                step_logits.append(self.output(features[-1]))
                token = step_logits[-1].argmax(dim=-1)
            elif t + 1 < steps:
                token = teacher_tokens[:, t + 1]
        if not features:
            batch = memory.shape[0]
            return (
                memory.new_zeros(batch, 0, self.output.out_features),
                memory.new_zeros(batch, 0, memory.shape[1]),
            )
        if teacher_tokens is None:
            logits = torch.stack(step_logits, dim=1)
        else:  # all steps' outputs in one matrix product
            logits = self.output(torch.stack(features, dim=1))
        return logits, torch.stack(weights, dim=1)

    def forward(
        self, tokens: Tensor, state: Tensor, memory: Tensor, memory_mask: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        self._check(state, memory)
        if tokens.dim() != 2 or tokens.shape[0] != memory.shape[0]:
            raise ValueError(
                f"tokens must have shape [B={memory.shape[0]}, T], got {list(tokens.shape)}"
            )
        first = tokens[:, 0] if tokens.shape[1] else tokens.new_zeros(tokens.shape[0])
        return self._steps(first, state, memory, memory_mask, tokens.shape[1], tokens)

    def _check(self, state: Tensor, memory: Tensor) -> None:
        _check_tensor("memory", memory, 3, "[B, N, Dm]")
        if state.shape != (memory.shape[0], self.hidden_size):
            raise ValueError(
                f"state must have shape [B, H] = {[memory.shape[0], self.hidden_size]}, "
                f"got {list(state.shape)}"
            )

    def greedy(
        self,
        state: Tensor,
        memory: Tensor,
        memory_mask: Optional[Tensor],
        max_length: int,
        start_id: int,
        end_id: int,
        pad_id: int,
    ) -> Tuple[Tensor, Tensor]:
        """Greedy decoding: ``(tokens [B, max_length], weights [B, max_length, N])``.

        Tokens after ``<end>`` are ``pad_id`` and their weights are zero.
        """
        self._check(state, memory)
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0:
            raise ValueError(f"max_length must be a non-negative int, got {max_length!r}")
        start = torch.full((memory.shape[0],), start_id, dtype=torch.long, device=memory.device)
        logits, weights = self._steps(start, state, memory, memory_mask, max_length)
        tokens = logits.argmax(dim=-1)  # [B, T]: the tokens the loop fed back
        # Everything after the first <end> is padding (computed on the device: no host sync).
        is_end = (tokens == end_id).long()
        after_end = (is_end.cumsum(dim=1) - is_end) > 0
        tokens = tokens.masked_fill(after_end, pad_id)
        return tokens, weights.masked_fill(after_end.unsqueeze(-1), 0.0)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of x [B, L, D] within its length [B]; padding stays in place."""
    _check_tensor("x", x, 3, "[B, L, D]", floating=False)
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths must have shape [B] = [{x.shape[0]}], got {_shape(lengths)}")
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # [1, L]
    lengths = lengths.to(x.device).unsqueeze(1)  # [B, 1]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # [B, L]
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class AttentionSeq2Seq(nn.Module):
    """GRU encoder-decoder with additive attention (Bahdanau et al.), same interface as
    ``course_lib.rnn.Seq2Seq``.

    The encoder (bidirectional by default) turns the source into states ``h_i`` [B, S, Dm]
    (Dm = 2H, or H when not bidirectional); the decoder starts from
    ``tanh(W [h_last_forward; h_first_backward])`` and, at every step, attends over all
    ``h_i`` (padding masked out) to build its context ``c_t``.

    ``forward(source [B, S], source_lengths [B], target [B, T]) -> (logits [B, T-1, V],
    loss)`` with teacher forcing, where ``target`` starts with ``<start>`` and ends with
    ``<end>`` then padding (as ``course_lib.data.encode_dates`` gives); the loss is the
    mean cross-entropy over non-padding positions. ``generate`` decodes greedily
    (``return_attention=True`` also returns the weights [B, T, S]);
    ``attention_weights`` gives the teacher-forced weights [B, T-1, S].
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        embed_dim: int = 32,
        hidden_size: int = 128,
        pad_id: int = 0,
        start_id: int = 1,
        end_id: int = 2,
        *,
        attention_size: Optional[int] = None,
        bidirectional: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("source_vocab_size", source_vocab_size), ("target_vocab_size", target_vocab_size),
            ("embed_dim", embed_dim), ("hidden_size", hidden_size),
        ):  # fmt: skip
            _check_positive_int(name, value)
        attention_size = hidden_size if attention_size is None else attention_size
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        self.bidirectional = bidirectional
        memory_size = hidden_size * (2 if bidirectional else 1)
        self.source_embedding = nn.Embedding(source_vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = GRU(embed_dim, hidden_size, batch_first=True)
        self.encoder_backward = (
            GRU(embed_dim, hidden_size, batch_first=True) if bidirectional else None
        )
        self.bridge = nn.Linear(memory_size, hidden_size)
        self.decoder = AttentionDecoder(
            target_vocab_size, embed_dim, hidden_size, memory_size, attention_size, pad_id
        )

    def _check(self, source: Tensor, source_lengths: Tensor) -> None:
        if not isinstance(source, Tensor) or source.dim() != 2 or source.dtype != torch.long:
            raise ValueError(
                f"source must be int64 of shape [B, S], got "
                f"{getattr(source, 'dtype', type(source).__name__)} {_shape(source)}"
            )
        if not isinstance(source_lengths, Tensor) or source_lengths.shape != (source.shape[0],):
            raise ValueError(
                f"source_lengths must have shape [B] = [{source.shape[0]}], "
                f"got {_shape(source_lengths)}"
            )
        if source.shape[0] and (
            int(source_lengths.min()) < 1 or int(source_lengths.max()) > source.shape[1]
        ):
            raise ValueError(f"source_lengths must be in [1, S={source.shape[1]}]")

    def encode(self, source: Tensor, source_lengths: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``(memory [B, S, Dm], memory_mask [B, S], initial decoder state [B, H])``."""
        self._check(source, source_lengths)
        embedded = self.source_embedding(source)  # [B, S, E]
        outputs, last = self.encoder(embedded, lengths=source_lengths)  # last [1, B, H]
        summary = last[0]
        if self.encoder_backward is not None:
            reversed_input = reverse_padded(embedded, source_lengths)
            backward, first = self.encoder_backward(reversed_input, lengths=source_lengths)
            outputs = torch.cat([outputs, reverse_padded(backward, source_lengths)], dim=-1)
            summary = torch.cat([summary, first[0]], dim=-1)
        mask = padding_mask(source_lengths, source.shape[1]).view(source.shape[0], -1)
        return outputs, mask, torch.tanh(self.bridge(summary))

    def forward(
        self, source: Tensor, source_lengths: Tensor, target: Tensor
    ) -> Tuple[Tensor, Tensor]:
        if target.dim() != 2 or target.shape[0] != source.shape[0] or target.shape[1] < 2:
            raise ValueError(
                f"target must have shape [B={source.shape[0]}, T>=2], got {list(target.shape)}"
            )
        memory, mask, state = self.encode(source, source_lengths)
        logits, _ = self.decoder(target[:, :-1], state, memory, mask)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target[:, 1:].reshape(-1),
            ignore_index=self.pad_id,
        )  # fmt: skip
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, source: Tensor, source_lengths: Tensor, target: Tensor) -> Tensor:
        """Teacher-forced attention weights [B, T-1, S]: row t is where output t looked."""
        memory, mask, state = self.encode(source, source_lengths)
        return self.decoder(target[:, :-1], state, memory, mask)[1]

    @torch.no_grad()
    def generate(
        self,
        source: Tensor,
        source_lengths: Tensor,
        max_length: int = 12,
        return_attention: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Greedy decoding: [B, S] -> token ids [B, max_length] (after ``<start>``; ends at
        ``<end>``, then padding), and with ``return_attention`` the weights [B, T, S]."""
        memory, mask, state = self.encode(source, source_lengths)
        tokens, weights = self.decoder.greedy(
            state, memory, mask, max_length, self.start_id, self.end_id, self.pad_id
        )
        return (tokens, weights) if return_attention else tokens


def length_bucketed_batches(
    encoded: EncodedDates, batch_size: int, seed: int = 0, window: int = 4
) -> Callable[[], Tuple[Tensor, Tensor, Tensor]]:
    """A batch function for ``course_lib.train.fit``: similar-length examples per batch.

    Each call picks a random window of ``window * batch_size`` examples in order of source
    length, draws ``batch_size`` of them and trims the padding to the longest source in the
    batch, so a recurrent encoder does not step through columns of padding. Returns
    ``(source [B, S'], source_lengths [B], target [B, T])``.
    """
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("window", window)
    count = len(encoded)
    if count == 0:
        raise ValueError("encoded must hold at least one example")
    order = torch.argsort(encoded.source_lengths, stable=True)
    span = min(count, window * batch_size)
    generator = torch.Generator().manual_seed(seed)

    def batch() -> Tuple[Tensor, Tensor, Tensor]:
        start = int(torch.randint(0, count - span + 1, (1,), generator=generator))
        chosen = torch.randperm(span, generator=generator)[: min(batch_size, span)]
        index = order[start + chosen]
        lengths = encoded.source_lengths[index]
        return encoded.source[index, : int(lengths.max())], lengths, encoded.target[index]

    return batch


def accuracy_by_length(
    correct: Tensor, lengths: Tensor, edges: Sequence[int]
) -> Tuple[List[str], Tensor, Tensor]:
    """Group bool results [N] by length [N] into bins ``[edges[i], edges[i+1])``.

    Returns ``(labels, accuracy [K], counts [K])`` for the K = len(edges) - 1 bins; an empty
    bin has accuracy NaN.
    """
    if correct.shape != lengths.shape or correct.dim() != 1:
        raise ValueError(
            f"correct and lengths must both have shape [N], got {_shape(correct)} and "
            f"{_shape(lengths)}"
        )
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must be at least two increasing numbers, got {list(edges)}")
    edge_tensor = torch.as_tensor(list(edges), device=lengths.device)
    bins = torch.bucketize(lengths, edge_tensor, right=True) - 1  # [N], -1 or K = outside
    inside = (bins >= 0) & (bins < len(edges) - 1)
    counts = torch.bincount(bins[inside], minlength=len(edges) - 1).double()
    hits = torch.bincount(bins[inside], weights=correct[inside].double(), minlength=len(edges) - 1)
    labels = [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:])]
    return labels, hits / counts, counts.long()


def copy_task(
    count: int, min_length: int = 1, max_length: int = 20, seed: int = 0
) -> Tuple[EncodedDates, Vocab]:
    """Random digit strings to copy: the information to carry grows with the length.

    Returns ``(encoded, vocab)``: ``encoded.source`` [N, S] holds ``min_length`` to
    ``max_length`` random digits (padded), ``encoded.target`` [N, max_length + 2] is
    ``<start>``, the same digits, ``<end>``, padding; ``vocab`` is ``Vocab("0123456789")``
    for both sides.
    """
    from course_lib.data import EncodedDates, Vocab

    _check_positive_int("count", count, minimum=0)
    _check_positive_int("min_length", min_length)
    _check_positive_int("max_length", max_length)
    if min_length > max_length:
        raise ValueError(f"min_length ({min_length}) must not exceed max_length ({max_length})")
    vocab = Vocab("0123456789")
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator)
    digits = torch.randint(0, 10, (count, max_length), generator=generator) + vocab.stoi["0"]
    real = torch.arange(max_length).unsqueeze(0) < lengths.unsqueeze(1)  # [N, S]
    source = digits.masked_fill(~real, vocab.pad_id)
    target = torch.full((count, max_length + 2), vocab.pad_id, dtype=torch.long)
    target[:, 0] = vocab.start_id
    target[:, 1:-1] = source
    target[torch.arange(count), lengths + 1] = vocab.end_id
    return EncodedDates(source, lengths, target), vocab


@torch.no_grad()
def exact_match_ids(model: nn.Module, encoded: EncodedDates, batch_size: int = 512) -> Tensor:
    """Bool [N]: whether ``model.generate`` reproduces each target [N, T] exactly.

    Works on id tensors (no strings), for any model with ``generate(source, source_lengths,
    max_length)``; the comparison covers every position up to and including ``<end>``.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results = []
    for start in range(0, len(encoded), batch_size):
        rows = slice(start, start + batch_size)
        lengths = encoded.source_lengths[rows]
        source = encoded.source[rows, : int(lengths.max())].to(device)
        target = encoded.target[rows, 1:].to(device)
        generated = model.generate(source, lengths.to(device), target.shape[1])
        results.append((generated == target).all(dim=1).cpu())
    model.train(was_training)
    return torch.cat(results) if results else torch.zeros(0, dtype=torch.bool)


# ----------------------------------------------------------------------------------------
# 3. Image captioning with attention: digit strings and a CNN + attention decoder
# ----------------------------------------------------------------------------------------


@dataclass
class DigitSequences:
    """Images of 8x8 digits side by side and the digit strings they show.

    ``images`` [N, 1, Hc, Wc] in [0, 1]; ``targets`` [N, K + 2] = ``<start>``, the digits'
    token ids, ``<end>``, padding (ids of ``vocab``); ``digits`` [N, K] the digit labels
    (-1 after the last digit); ``left`` and ``top`` [N, K] the pixel column and row of each
    digit's top-left corner (-1 likewise).
    """

    images: Tensor
    targets: Tensor
    digits: Tensor
    left: Tensor
    top: Tensor
    vocab: Vocab

    def __len__(self) -> int:
        return self.images.shape[0]

    def text(self, index: int) -> str:
        """The digit string shown by image ``index``."""
        return "".join(str(int(d)) for d in self.digits[index] if d >= 0)


def make_digit_sequences(
    images: Tensor,
    labels: Tensor,
    count: int,
    min_digits: int = 2,
    max_digits: int = 4,
    max_gap: int = 3,
    max_shift: int = 2,
    seed: int = 0,
) -> DigitSequences:
    """Paste ``min_digits``..``max_digits`` random digits left to right on a blank canvas.

    Args:
        images: digits [M, 1, 8, 8] in [0, 1]. labels: [M] (0-9).
        count: number of canvases N.
        max_gap: each digit starts 0..``max_gap`` pixels after the previous one ends.
        max_shift: each digit is shifted down by 0..``max_shift`` pixels.
        seed: the draws depend only on the arguments.

    Returns:
        ``DigitSequences`` with canvases of shape [N, 1, 8 + max_shift,
        max_digits * (8 + max_gap)]; see its docstring.
    """
    from course_lib.data import Vocab

    _check_tensor("images", images, 4, "[M, 1, 8, 8]")
    if images.shape[1:] != (1, 8, 8) or labels.shape != (images.shape[0],):
        raise ValueError(
            f"images must be [M, 1, 8, 8] and labels [M], got {list(images.shape)} and "
            f"{_shape(labels)}"
        )
    _check_positive_int("count", count, minimum=0)
    _check_positive_int("min_digits", min_digits)
    _check_positive_int("max_digits", max_digits)
    _check_positive_int("max_gap", max_gap, minimum=0)
    _check_positive_int("max_shift", max_shift, minimum=0)
    if min_digits > max_digits:
        raise ValueError(f"min_digits ({min_digits}) must not exceed max_digits ({max_digits})")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one digit")
    vocab = Vocab("0123456789")
    generator = torch.Generator().manual_seed(seed)
    height, width = 8 + max_shift, max_digits * (8 + max_gap)
    n_digits = torch.randint(min_digits, max_digits + 1, (count,), generator=generator)
    source = torch.randint(0, images.shape[0], (count, max_digits), generator=generator)
    gaps = torch.randint(0, max_gap + 1, (count, max_digits), generator=generator)
    shifts = torch.randint(0, max_shift + 1, (count, max_digits), generator=generator)
    slot = torch.arange(max_digits)
    used = slot.unsqueeze(0) < n_digits.unsqueeze(1)  # [N, K]
    left = (gaps + 8).cumsum(dim=1) - 8  # digit k starts after k digits and k + 1 gaps
    # Paste every used (canvas, slot) at once: row and column indices of its 8x8 pixels.
    canvas_index, slot_index = used.nonzero(as_tuple=True)
    rows = shifts[canvas_index, slot_index].view(-1, 1, 1) + torch.arange(8).view(1, 8, 1)
    cols = left[canvas_index, slot_index].view(-1, 1, 1) + torch.arange(8).view(1, 1, 8)
    canvases = torch.zeros(count, height, width, dtype=images.dtype)
    canvases[canvas_index.view(-1, 1, 1), rows, cols] = images[source[canvas_index, slot_index], 0]
    digits = torch.where(used, labels[source], torch.full_like(source, -1))
    tokens = torch.where(used, digits + vocab.stoi["0"], torch.full_like(source, vocab.pad_id))
    targets = torch.full((count, max_digits + 2), vocab.pad_id, dtype=torch.long)
    targets[:, 0] = vocab.start_id
    targets[:, 1:-1] = tokens
    targets[torch.arange(count), n_digits + 1] = vocab.end_id
    return DigitSequences(
        images=canvases.unsqueeze(1),
        targets=targets,
        digits=digits,
        left=torch.where(used, left, torch.full_like(left, -1)),
        top=torch.where(used, shifts, torch.full_like(shifts, -1)),
        vocab=vocab,
    )


class AttentionCaptioner(nn.Module):
    """Reads an image left to right: a small CNN feature grid plus an attention decoder.

    The CNN turns images [B, 1, Hc, Wc] into a grid of feature vectors [B, Hf * Wf, C]
    (stride 2, so Hf = ceil(Hc / 2)); a learned positional embedding per grid cell tells
    the decoder where each vector sits. The ``AttentionDecoder`` attends over the grid at
    every step, as in "Show, Attend and Tell" (Xu et al.).

    ``forward(images, targets [B, T]) -> (logits [B, T-1, V], loss)`` (targets as in
    ``DigitSequences``); ``generate(images, max_length, return_attention=False)`` returns
    tokens [B, T] and, with ``return_attention``, weights [B, T, Hf, Wf].
    """

    def __init__(
        self,
        vocab_size: int,
        image_size: Tuple[int, int],
        channels: int = 32,
        embed_dim: int = 16,
        hidden_size: int = 64,
        attention_size: int = 32,
        pad_id: int = 0,
        start_id: int = 1,
        end_id: int = 2,
    ) -> None:
        super().__init__()
        _check_positive_int("channels", channels)
        height, width = image_size
        self.grid = ((height + 1) // 2, (width + 1) // 2)
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        self.cnn = nn.Sequential(
            nn.Conv2d(1, channels // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels // 2, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.position = LearnedPositionalEmbedding(self.grid[0] * self.grid[1], channels)
        self.init_state = nn.Linear(channels, hidden_size)
        self.decoder = AttentionDecoder(
            vocab_size, embed_dim, hidden_size, channels, attention_size, pad_id
        )

    def encode(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """``(memory [B, Hf * Wf, C], initial state [B, H])`` for images [B, 1, Hc, Wc]."""
        _check_tensor("images", images, 4, "[B, 1, Hc, Wc]")
        features = self.cnn(images)  # [B, C, Hf, Wf]
        if tuple(features.shape[2:]) != self.grid:
            raise ValueError(
                f"images must have the size the model was built for, got {list(images.shape)}"
            )
        memory = self.position(features.flatten(2).transpose(1, 2))  # [B, Hf * Wf, C]
        return memory, torch.tanh(self.init_state(memory.mean(dim=1)))

    def forward(self, images: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        memory, state = self.encode(images)
        logits, _ = self.decoder(targets[:, :-1], state, memory)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets[:, 1:].reshape(-1),
            ignore_index=self.pad_id,
        )  # fmt: skip
        return logits, loss

    @torch.no_grad()
    def generate(
        self, images: Tensor, max_length: int = 6, return_attention: bool = False
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Greedy captions [B, max_length] (and the weights [B, max_length, Hf, Wf])."""
        memory, state = self.encode(images)
        tokens, weights = self.decoder.greedy(
            state, memory, None, max_length, self.start_id, self.end_id, self.pad_id
        )
        if not return_attention:
            return tokens
        return tokens, weights.view(*weights.shape[:2], *self.grid)


# ----------------------------------------------------------------------------------------
# 4. The general attention layer, self-attention and positional encodings
# ----------------------------------------------------------------------------------------


class AttentionLayer(nn.Module):
    """Queries attend over input vectors through learned key and value projections.

    ``keys = X W_K^T`` [B, Lx, Dq] decide *where* each query looks (compared with the
    queries by scaled dot products); ``values = X W_V^T`` [B, Lx, Dv] decide *what* comes
    back. ``forward(query [B, Lq, Dq], inputs [B, Lx, Dx], mask=None) -> (output
    [B, Lq, Dv], weights [B, Lq, Lx])``; ``mask`` is bool (True = may attend) or float,
    broadcastable to [B, Lq, Lx].
    """

    def __init__(self, query_dim: int, input_dim: int, value_dim: Optional[int] = None) -> None:
        super().__init__()
        _check_positive_int("query_dim", query_dim)
        _check_positive_int("input_dim", input_dim)
        value_dim = input_dim if value_dim is None else _check_positive_int("value_dim", value_dim)
        self.key = nn.Linear(input_dim, query_dim, bias=False)  # W_K
        self.value = nn.Linear(input_dim, value_dim, bias=False)  # W_V

    def forward(
        self, query: Tensor, inputs: Tensor, mask: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        _check_tensor("query", query, 3, "[B, Lq, Dq]")
        _check_tensor("inputs", inputs, 3, "[B, Lx, Dx]")
        return scaled_dot_product_attention(query, self.key(inputs), self.value(inputs), mask)


class SelfAttention(nn.Module):
    """Single-head self-attention: queries, keys and values are all projections of X.

    ``forward(x [B, L, D], mask=None) -> (y [B, L, Dv], weights [B, L, L])`` with
    ``Q = X W_Q^T``, ``K = X W_K^T`` (both [B, L, Dk]) and ``V = X W_V^T`` [B, L, Dv];
    ``mask`` (bool, True = may attend, or float) broadcasts to [B, L, L], for example
    ``causal_mask(L)``.
    """

    def __init__(
        self, dim: int, key_dim: Optional[int] = None, value_dim: Optional[int] = None
    ) -> None:
        super().__init__()
        _check_positive_int("dim", dim)
        key_dim = dim if key_dim is None else _check_positive_int("key_dim", key_dim)
        value_dim = dim if value_dim is None else _check_positive_int("value_dim", value_dim)
        self.query = nn.Linear(dim, key_dim, bias=False)  # W_Q
        self.key = nn.Linear(dim, key_dim, bias=False)  # W_K
        self.value = nn.Linear(dim, value_dim, bias=False)  # W_V

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        _check_tensor("x", x, 3, "[B, L, D]")
        return scaled_dot_product_attention(self.query(x), self.key(x), self.value(x), mask)


def is_permutation_equivariant(
    layer: Callable[[Tensor], Tensor],
    x: Tensor,
    permutation: Tensor,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> bool:
    """Whether ``layer(x[:, perm]) == layer(x)[:, perm]`` for x [B, L, D] (within tolerance).

    ``layer`` maps [B, L, D] to [B, L, D'] (a tuple output's first item is used);
    ``permutation`` [L] reorders the sequence positions. Equal up to rounding counts as
    equal: attention sums in a different order after the shuffle.
    """
    _check_tensor("x", x, 3, "[B, L, D]")
    if permutation.shape != (x.shape[1],):
        raise ValueError(
            f"permutation must have shape [L] = [{x.shape[1]}], got {_shape(permutation)}"
        )

    def run(inputs: Tensor) -> Tensor:
        output = layer(inputs)
        return output[0] if isinstance(output, (tuple, list)) else output

    permuted_then_layer = run(x[:, permutation])
    layer_then_permuted = run(x)[:, permutation]
    return bool(torch.allclose(permuted_then_layer, layer_then_permuted, atol=atol, rtol=rtol))


def sinusoidal_positional_encoding(
    length: int, dim: int, *, device: Device = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The fixed encodings of "Attention Is All You Need": [length, dim].

    ``PE[p, 2i] = sin(p / 10000^(2i/dim))`` and ``PE[p, 2i+1] = cos(p / 10000^(2i/dim))``:
    each pair of features is a rotation at its own frequency, so ``PE[p + k]`` is a fixed
    linear function of ``PE[p]`` for every offset k.
    """
    for name, value in (("length", length), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    position = torch.arange(length, dtype=torch.float64, device=device).unsqueeze(1)  # [L, 1]
    frequencies = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float64, device=device)
        * (-math.log(10000.0) / max(dim, 1))
    )  # [ceil(dim / 2)]
    encoding = torch.zeros(length, dim, dtype=torch.float64, device=device)
    encoding[:, 0::2] = torch.sin(position * frequencies)
    encoding[:, 1::2] = torch.cos(position * frequencies[: dim // 2])
    return encoding.to(dtype)


class LearnedPositionalEmbedding(nn.Module):
    """One learned vector per position, added to the input: x [B, L, D] -> x + P[:L].

    ``weight`` is [max_length, D], initialised N(0, 0.02^2) (as in GPT); positions beyond
    ``max_length`` have no vector, which is the price of learning them.
    """

    def __init__(self, max_length: int, dim: int) -> None:
        super().__init__()
        _check_positive_int("max_length", max_length)
        _check_positive_int("dim", dim)
        self.weight = nn.Parameter(torch.randn(max_length, dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        _check_tensor("x", x, 3, "[B, L, D]")
        length = x.shape[1]
        if length > self.weight.shape[0] or x.shape[2] != self.weight.shape[1]:
            raise ValueError(
                f"x must be [B, L <= {self.weight.shape[0]}, D = {self.weight.shape[1]}], "
                f"got {list(x.shape)}"
            )
        return x + self.weight[:length]


# ----------------------------------------------------------------------------------------
# 5. Multi-head attention
# ----------------------------------------------------------------------------------------


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """[B, L, D] -> [B, H, L, D / H]: each head gets its own slice of the features."""
    _check_tensor("x", x, 3, "[B, L, D]", floating=False)
    _check_positive_int("num_heads", num_heads)
    batch, length, dim = x.shape
    if dim % num_heads != 0:
        raise ValueError(f"feature size {dim} is not divisible by num_heads={num_heads}")
    return x.reshape(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, L, D / H] -> [B, L, D]: concatenate the heads' outputs feature-wise."""
    _check_tensor("x", x, 4, "[B, H, L, D / H]", floating=False)
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch-first, with ``torch.nn.MultiheadAttention``'s parameters.

    Queries, keys and values are projected by the three row blocks of ``in_proj_weight``
    [3D, D] (and ``in_proj_bias`` [3D]), split into ``num_heads`` heads of D / H features,
    attended in parallel, concatenated and projected by ``out_proj``. After
    ``load_state_dict(torch_mha.state_dict())`` it computes what
    ``torch.nn.MultiheadAttention(D, H, batch_first=True)`` computes.

    ``forward(query [B, Lq, D], key [B, Lk, D], value [B, Lk, D], mask=None,
    need_weights=True)`` returns ``(output [B, Lq, D], weights [B, H, Lq, Lk])``; ``mask``
    is bool (True = may attend) or float, broadcastable to [B, H, Lq, Lk] (a per-example
    mask is [B, 1, Lq, Lk] or, for padding, ``padding_mask(lengths)`` [B, 1, 1, Lk]). With
    ``need_weights=False`` the fused ``torch.nn.functional.scaled_dot_product_attention``
    kernel does the work and the weights are None.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections and zero biases, as in ``torch.nn.MultiheadAttention``."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> Tuple[Tensor, ...]:
        """Q, K, V [B, L, D]; self-attention uses one matrix product for all three."""
        if query is key and key is value:
            return F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        weights = self.in_proj_weight.chunk(3)
        biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        return tuple(F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Optional[Tensor] = None,
        need_weights: bool = True,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        for name, tensor in (("query", query), ("key", key), ("value", value)):
            if not isinstance(tensor, Tensor) or tensor.dim() != 3:
                raise ValueError(f"{name} must have shape [B, L, D], got {_shape(tensor)}")
            if tensor.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"{name} must have D = embed_dim = {self.embed_dim} features, "
                    f"got {list(tensor.shape)}"
                )
        if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
            raise ValueError(
                "query [B, Lq, D], key [B, Lk, D] and value [B, Lk, D] disagree: "
                f"{list(query.shape)}, {list(key.shape)}, {list(value.shape)}"
            )
        q, k, v = (split_heads(x, self.num_heads) for x in self._project(query, key, value))
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:
            if mask is not None:
                _check_mask(mask, (q.shape[0], self.num_heads, q.shape[2], k.shape[2]))
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            weights = None
        return self.out_proj(merge_heads(heads)), weights


def sequence_task(
    task: str, count: int, length: int, vocab_size: int = 10, seed: int = 0
) -> Tuple[Tensor, Tensor]:
    """Toy tagging tasks where the answer depends on *positions*: ``(tokens, targets)`` [N, L].

    ``"previous"``: ``y_i = x_{i-1}`` (cyclic: ``y_0 = x_{L-1}``).
    ``"neighbour_sum"``: ``y_i = (x_{i-1} + x_{i+1}) mod V`` (cyclic).
    ``"neighbour_difference"``: ``y_i = (x_{i-1} - x_{i+1}) mod V`` (cyclic); unlike the sum
    it is not symmetric, so one attention distribution spread over both neighbours cannot
    solve it.
    Tokens are uniform in 0..V-1.
    """
    tasks = ("previous", "neighbour_sum", "neighbour_difference")
    if task not in tasks:
        raise ValueError(f"task must be one of {tasks}, got {task!r}")
    _check_positive_int("count", count, minimum=0)
    _check_positive_int("length", length, minimum=2)
    _check_positive_int("vocab_size", vocab_size, minimum=2)
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab_size, (count, length), generator=generator)
    previous = tokens.roll(1, dims=1)
    following = tokens.roll(-1, dims=1)
    if task == "previous":
        return tokens, previous
    if task == "neighbour_sum":
        return tokens, (previous + following) % vocab_size
    return tokens, (previous - following) % vocab_size


class SelfAttentionTagger(nn.Module):
    """Embedding, optional positional encoding, one multi-head self-attention layer with a
    residual connection, and a per-position MLP: tokens [B, L] -> logits [B, L, V].

    ``positional`` is ``"none"``, ``"sinusoidal"`` or ``"learned"``; ``causal`` masks the
    future. ``forward(tokens, targets=None) -> (logits, loss or None)``;
    ``attention_weights(tokens)`` returns the per-head weights [B, H, L, L].
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 32,
        num_heads: int = 1,
        max_length: int = 16,
        positional: str = "learned",
        causal: bool = False,
    ) -> None:
        super().__init__()
        if positional not in ("none", "sinusoidal", "learned"):
            raise ValueError(
                f"positional must be 'none', 'sinusoidal' or 'learned', got {positional!r}"
            )
        _check_positive_int("vocab_size", vocab_size)
        _check_positive_int("max_length", max_length)
        self.positional, self.causal = positional, causal
        self.embedding = nn.Embedding(vocab_size, dim)
        self.position = (
            LearnedPositionalEmbedding(max_length, dim) if positional == "learned" else None
        )
        fixed = (
            sinusoidal_positional_encoding(max_length, dim) if positional == "sinusoidal" else None
        )
        self.register_buffer("encoding", fixed)
        self.attention = MultiHeadAttention(dim, num_heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, vocab_size))

    def _attend(self, tokens: Tensor, need_weights: bool) -> Tuple[Tensor, Optional[Tensor]]:
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.is_floating_point():
            raise ValueError(f"tokens must be integer ids [B, L], got {_shape(tokens)}")
        x = self.embedding(tokens)
        if self.position is not None:
            x = self.position(x)
        elif self.encoding is not None:
            if tokens.shape[1] > self.encoding.shape[0]:
                raise ValueError(f"tokens are longer than max_length={self.encoding.shape[0]}")
            x = x + self.encoding[: tokens.shape[1]]
        mask = causal_mask(tokens.shape[1], device=tokens.device) if self.causal else None
        mixed, weights = self.attention(x, x, x, mask, need_weights=need_weights)
        return x + mixed, weights

    def forward(
        self, tokens: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        hidden, _ = self._attend(tokens, need_weights=False)
        logits = self.mlp(hidden)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    @torch.no_grad()
    def attention_weights(self, tokens: Tensor) -> Tensor:
        """Per-head attention weights [B, H, L, L]."""
        return self._attend(tokens, need_weights=True)[1]


# ----------------------------------------------------------------------------------------
# 6. Self-attention inside a CNN
# ----------------------------------------------------------------------------------------


class SelfAttention2d(nn.Module):
    """Self-attention over the positions of a feature map, with a residual connection.

    The Hf x Wf grid is a set of Hf * Wf vectors of C features. 1x1 convolutions give
    queries and keys (``key_channels``, default C / 8 as in SAGAN, at least 1) and values
    (C); every position attends to every position; a final 1x1 convolution maps back to C
    channels and the result is added to the input, scaled by ``gamma`` (initialised to 0,
    so the block starts as the identity; Zhang et al.).

    ``forward(x [B, C, Hf, Wf], return_weights=False)`` returns y [B, C, Hf, Wf] and, with
    ``return_weights``, also the weights [B, Hf * Wf, Hf * Wf] (row = query position).
    """

    def __init__(self, channels: int, key_channels: Optional[int] = None) -> None:
        super().__init__()
        _check_positive_int("channels", channels)
        key_channels = max(channels // 8, 1) if key_channels is None else key_channels
        _check_positive_int("key_channels", key_channels)
        self.channels = channels
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(
        self, x: Tensor, return_weights: bool = False
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        _check_tensor("x", x, 4, "[B, C, Hf, Wf]")
        if x.shape[1] != self.channels:
            raise ValueError(f"x must have C = {self.channels} channels, got {list(x.shape)}")
        batch, channels, height, width = x.shape

        def as_vectors(feature_map: Tensor) -> Tensor:  # [B, C', Hf, Wf] -> [B, Hf * Wf, C']
            return feature_map.flatten(2).transpose(1, 2)

        q, k, v = as_vectors(self.query(x)), as_vectors(self.key(x)), as_vectors(self.value(x))
        if return_weights:
            attended, weights = scaled_dot_product_attention(q, k, v)
        else:
            attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(batch, channels, height, width)
        y = x + self.gamma * self.out(attended)
        return (y, weights) if return_weights else y


class SelfAttentionClassifier(nn.Module):
    """Two 3x3 convolutions, optionally ``SelfAttention2d``, global average pooling, a linear
    classifier: images [B, 1, Hc, Wc] -> logits [B, num_classes].

    ``forward(images, labels=None) -> (logits, loss or None)``.
    """

    def __init__(self, num_classes: int = 10, channels: int = 32, attention: bool = True) -> None:
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        _check_positive_int("channels", channels)
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.attention = SelfAttention2d(channels) if attention else None
        self.classifier = nn.Linear(channels, num_classes)

    def feature_map(self, images: Tensor) -> Tensor:
        """Features [B, C, Hc, Wc] after the convolutions (and self-attention)."""
        _check_tensor("images", images, 4, "[B, 1, Hc, Wc]")
        features = self.features(images)
        return self.attention(features) if self.attention is not None else features

    def forward(
        self, images: Tensor, labels: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        logits = self.classifier(self.feature_map(images).mean(dim=(2, 3)))
        return logits, None if labels is None else F.cross_entropy(logits, labels)


# ----------------------------------------------------------------------------------------
# 7. Three ways to process a sequence: RNN, 1-D convolution, self-attention
# ----------------------------------------------------------------------------------------


class SequenceMixer(nn.Module):
    """One of three ways to let positions of x [B, L, D] exchange information -> [B, L, D].

    ``"rnn"``: a GRU (``torch.nn.GRU``), which must walk the L steps one after another;
    ``"conv"``: ``num_layers`` 1-D convolutions of width ``kernel_size`` (same padding,
    GELU between layers), each output sees only a window of the input; ``"attention"``:
    multi-head self-attention, every output sees every input (``fused`` picks the fused
    kernel, which never stores the L x L weights, over the explicit softmax).
    """

    def __init__(
        self,
        kind: str,
        dim: int,
        num_layers: int = 1,
        kernel_size: int = 3,
        num_heads: int = 1,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if kind not in ("rnn", "conv", "attention"):
            raise ValueError(f"kind must be 'rnn', 'conv' or 'attention', got {kind!r}")
        _check_positive_int("dim", dim)
        _check_positive_int("num_layers", num_layers)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size!r}")
        self.kind, self.fused = kind, fused
        if kind == "rnn":
            self.layer: nn.Module = nn.GRU(dim, dim, num_layers, batch_first=True)
        elif kind == "conv":
            layers: List[nn.Module] = []
            for index in range(num_layers):
                layers.append(nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2))
                if index < num_layers - 1:
                    layers.append(nn.GELU())
            self.layer = nn.Sequential(*layers)
        else:
            self.layer = MultiHeadAttention(dim, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        _check_tensor("x", x, 3, "[B, L, D]")
        if self.kind == "rnn":
            return self.layer(x)[0]
        if self.kind == "conv":
            return self.layer(x.transpose(1, 2)).transpose(1, 2)
        return self.layer(x, x, x, need_weights=not self.fused)[0]


def receptive_field(num_layers: int, kernel_size: int, dilation_growth: int = 1) -> int:
    """Input positions one output of a stack of 1-D convolutions sees.

    Layer l (from 0) has dilation ``dilation_growth ** l``, so the field is
    ``1 + (kernel_size - 1) * sum_l dilation_growth ** l``.
    """
    _check_positive_int("num_layers", num_layers, minimum=0)
    _check_positive_int("kernel_size", kernel_size)
    _check_positive_int("dilation_growth", dilation_growth)
    return 1 + (kernel_size - 1) * sum(dilation_growth**layer for layer in range(num_layers))


def conv_layers_to_cover(length: int, kernel_size: int, dilation_growth: int = 1) -> int:
    """Fewest convolution layers whose receptive field spans ``length`` positions.

    Plain convolutions need ``ceil((L - 1) / (k - 1))`` layers (linear in L); doubling the
    dilation every layer needs about ``log2(L)``.
    """
    _check_positive_int("length", length)
    if kernel_size < 2:
        raise ValueError(f"kernel_size must be >= 2 to grow the field, got {kernel_size!r}")
    layers = 0
    while receptive_field(layers, kernel_size, dilation_growth) < length:
        layers += 1
    return layers


def input_influence(
    mixer: nn.Module, length: int, dim: int, position: int, seed: int = 0
) -> Tensor:
    """Which inputs affect output ``position``: gradient norms [L] of one output vector.

    Entry j is ``|| d (g . y_position) / d x_j ||`` for random x [1, L, D] and a random
    direction g; it is exactly zero where input j cannot reach the output.
    """
    _check_positive_int("length", length)
    if not 0 <= position < length:
        raise ValueError(f"position must be in [0, {length}), got {position}")
    generator = torch.Generator().manual_seed(seed)
    parameter = next(mixer.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x = torch.randn(1, length, dim, generator=generator).to(device).requires_grad_(True)
    direction = torch.randn(dim, generator=generator).to(device)
    output = mixer(x)
    (output[0, position] @ direction).backward()
    return x.grad[0].norm(dim=-1).detach().cpu()


def saved_tensor_bytes(function: Callable[[], Tensor]) -> int:
    """Bytes of activations autograd keeps for the backward pass of ``function()``.

    Counts each tensor saved for backward once (by storage), leaving out parameters; this is
    the memory a training step needs beyond the weights, on any device.
    """
    storages: Dict[int, int] = {}

    def pack(tensor: Tensor) -> Tensor:
        if not isinstance(tensor, nn.Parameter):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return sum(storages.values())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def measure_cost(
    mixer: nn.Module,
    lengths: Sequence[int],
    batch_size: int = 8,
    dim: int = 64,
    repeats: int = 3,
    device: Device = None,
) -> Dict[str, List[float]]:
    """Forward + backward time and saved-activation memory of ``mixer`` on x [B, L, D].

    Returns ``{"length": [...], "ms": [...], "megabytes": [...]}``: the median time of
    ``repeats`` runs after one warm-up (synchronised on a GPU) and ``saved_tensor_bytes``
    in MB, for each L in ``lengths``.
    """
    _check_positive_int("repeats", repeats)
    device = torch.device(device) if device is not None else next(mixer.parameters()).device
    mixer = mixer.to(device)
    result: Dict[str, List[float]] = {"length": [], "ms": [], "megabytes": []}
    for length in lengths:
        x = torch.randn(batch_size, length, dim, device=device, requires_grad=True)

        def step(x: Tensor = x) -> None:
            mixer(x).sum().backward()

        step()
        times = []
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            step()
            _synchronize(device)
            times.append((time.perf_counter() - start) * 1000.0)
        mixer.zero_grad(set_to_none=True)
        result["length"].append(float(length))
        result["ms"].append(sorted(times)[len(times) // 2])
        result["megabytes"].append(saved_tensor_bytes(lambda x=x: mixer(x)) / 2**20)
    return result


# ----------------------------------------------------------------------------------------
# A knob for text input (a live text box in Jupyter, a static slider in the book)
# ----------------------------------------------------------------------------------------


def text_explorer(draw: Callable[[str], Figure], examples: Sequence[str]) -> Optional[Any]:
    """Let the reader type an input and see ``draw(text)`` (a matplotlib Figure).

    In a live notebook this is an ipywidgets text box (redrawn on Enter) starting at
    ``examples[0]``; in the rendered book (no kernel) it falls back to
    ``course_lib.plotting.figure_slider`` over the ``examples``. Like ``figure_slider`` it
    returns None in a notebook (the knob is displayed, so a last-line call shows nothing
    else) and the static HTML object in a plain script.
    """
    from course_lib.plotting import figure_slider, static_widgets

    examples = list(examples)
    if not examples or not all(isinstance(text, str) for text in examples):
        raise ValueError("examples must be a non-empty list of strings")
    if static_widgets():
        return figure_slider(lambda text: draw(text), initial={"text": examples[0]}, text=examples)
    import ipywidgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    def show(text: str) -> None:
        figure = draw(text)
        display(figure)
        plt.close(figure)

    box = ipywidgets.Text(value=examples[0], description="input", continuous_update=False)
    ipywidgets.interact(show, text=box)
    return None
