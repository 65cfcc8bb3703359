"""Additive (Bahdanau) attention and the sequence-to-sequence model with attention, plus the
copying task that exposes the bottleneck of seq2seq without attention.

Shape letters: ``B`` batch, ``S`` source length (positions of the memory), ``T`` target
length, ``N`` memory items, ``Dq`` query features, ``Dk`` key features, ``Dv`` value
features, ``Dm`` memory features, ``A`` attention (alignment) hidden size, ``H`` decoder
hidden units, ``E`` embedding size, ``V`` vocabulary size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, NamedTuple, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention.core import padding_mask
from course_lib.attention.maps import RecordsAttention, record_attention
from course_lib.decoding import (
    Seq2SeqDecoding,
    check_source,
    check_special_ids,
    check_target,
    check_vocabularies,
    greedy_decode,
)
from course_lib.rnn import GRU, GRUCell
from course_lib.validation import (
    MAX_STEPS,
    check_bool,
    check_elements,
    check_int,
    check_lengths,
    check_like,
    check_size,
    check_tensor,
    check_token_ids,
)

if TYPE_CHECKING:
    from course_lib.data import EncodedDates, Vocab

__all__ = [
    "AdditiveAttention",
    "AttentionDecoder",
    "AttentionSeq2Seq",
    "DecoderState",
    "additive_attention",
    "copy_task",
    "reverse_padded",
]


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
    sizes: dict = {}
    check_tensor("query", query, "B, Dq", dtype="floating", sizes=sizes)
    check_tensor("keys", keys, "B, S, Dk", dtype="floating", sizes=sizes)
    check_tensor("values", values, "B, S, Dv", dtype="floating", sizes=sizes)
    check_tensor("w_score", w_score, "A", dtype="floating", sizes=sizes)
    check_tensor("w_query", w_query, "A, Dq", dtype="floating", sizes=sizes)
    for name, tensor in (("keys", keys), ("values", values), ("w_query", w_query),
                         ("w_score", w_score)):  # fmt: skip
        check_like(name, tensor, query, what="the query")
    if projected_keys is None:
        check_tensor("w_key", w_key, "A, Dk", dtype="floating", sizes=sizes)
        check_like("w_key", w_key, query, what="the query")
        projected_keys = keys @ w_key.T  # [B, S, A]
    else:
        check_tensor("projected_keys", projected_keys, "B, S, A", dtype="floating", sizes=sizes)
    projected_query = query @ w_query.T  # [B, A]
    scores = torch.tanh(projected_keys + projected_query.unsqueeze(1)) @ w_score  # [B, S]
    if mask is not None:
        check_tensor("mask", mask, "B, S", dtype=torch.bool, sizes=sizes)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    context = (weights.unsqueeze(1) @ values).squeeze(1)  # [B, Dv]
    return context, weights


class AdditiveAttention(RecordsAttention, nn.Module):
    """Additive attention with learned ``W_query`` [A, Dq], ``W_key`` [A, Dk], ``w_score`` [A].

    ``forward(query [B, Dq], keys [B, S, Dk], values [B, S, Dv], mask=None,
    projected_keys=None) -> (context [B, Dv], weights [B, S])``; see
    ``additive_attention``. ``project_keys(keys)`` gives the [B, S, A] projection once for
    all decoder steps.
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int) -> None:
        super().__init__()
        query_size = check_size("query_size", query_size)
        key_size = check_size("key_size", key_size)
        attention_size = check_size("attention_size", attention_size)
        check_elements("attention_size x (query_size + key_size)",
                       attention_size * (query_size + key_size))  # fmt: skip
        self.query_proj = nn.Linear(query_size, attention_size, bias=False)
        self.key_proj = nn.Linear(key_size, attention_size, bias=False)
        self.score = nn.Linear(attention_size, 1, bias=False)

    def project_keys(self, keys: Tensor) -> Tensor:
        """``W_key h_i`` for every position: [B, S, Dk] -> [B, S, A]."""
        check_tensor("keys", keys, f"B, S, {self.key_proj.in_features}", dtype="floating")
        check_like("keys", keys, self.key_proj.weight)
        return self.key_proj(keys)

    def forward(
        self,
        query: Tensor,
        keys: Tensor,
        values: Tensor,
        mask: Optional[Tensor] = None,
        projected_keys: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor]:
        check_tensor("query", query, f"B, {self.query_proj.in_features}", dtype="floating")
        check_tensor("keys", keys, f"B, S, {self.key_proj.in_features}", dtype="floating")
        check_like("query", query, self.query_proj.weight)
        context, weights = additive_attention(
            query, keys, values, self.query_proj.weight, self.key_proj.weight,
            self.score.weight[0], mask, projected_keys=projected_keys,
        )  # fmt: skip
        self.keep(weights)
        return context, weights


class DecoderState(NamedTuple):
    """What an ``AttentionDecoder`` carries from one step to the next: its hidden state
    ``hidden`` [B, H], the ``memory`` [B, N, Dm] it attends over, the ``memory_mask`` [B, N]
    (or None) and the memory's key projection ``projected`` [B, N, A] (computed once)."""

    hidden: Tensor
    memory: Tensor
    memory_mask: Optional[Tensor]
    projected: Tensor


class AttentionDecoder(nn.Module):
    """A GRU decoder that attends over a memory (encoder states or image features) each step.

    At step t, with previous state ``s_{t-1}`` and previous token ``y_{t-1}``:
    ``c_t, a_t = attention(s_{t-1}, memory)``; ``s_t = GRU([embed(y_{t-1}); c_t], s_{t-1})``;
    ``logits_t = W_out [s_t; c_t; embed(y_{t-1})]``. The context is used by the *decoder*
    to compute its next state (as in Bahdanau et al.).

    ``forward(tokens [B, T], state [B, H], memory [B, N, Dm], memory_mask [B, N] or None)``
    returns ``(logits [B, T, V], weights [B, T, N])`` with teacher forcing (``tokens`` are
    the inputs ``y_0..y_{T-1}``). ``start(state, memory, memory_mask)`` and ``step(tokens,
    state)`` are the decoder's interface for ``course_lib.decoding`` (greedy and beam
    search); ``greedy`` decodes from ``<start>``.
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
        self.vocab_size = check_size("vocab_size", vocab_size)
        embed_dim = check_size("embed_dim", embed_dim)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.memory_size = check_size("memory_size", memory_size)
        check_size("attention_size", attention_size)
        check_special_ids(vocab_size, pad_id=pad_id)
        check_elements("vocab_size x (embed_dim + hidden_size + memory_size)",
                       vocab_size * (2 * embed_dim + hidden_size + memory_size))  # fmt: skip
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.attention = AdditiveAttention(hidden_size, memory_size, attention_size)
        self.cell = GRUCell(embed_dim + memory_size, hidden_size)
        self.output = nn.Linear(hidden_size + memory_size + embed_dim, vocab_size)

    def _check(self, state: Tensor, memory: Tensor, memory_mask: Optional[Tensor]) -> None:
        sizes: dict = {}
        check_tensor("memory", memory, f"B, N, {self.memory_size}", dtype="floating", sizes=sizes)
        check_tensor("state", state, f"B, {self.hidden_size}", dtype="floating", sizes=sizes)
        check_like("memory", memory, self.output.weight)
        check_like("state", state, self.output.weight)
        if memory_mask is not None:
            check_tensor("memory_mask", memory_mask, "B, N", dtype=torch.bool, sizes=sizes)

    def start(self, state: Tensor, memory: Tensor, memory_mask: Optional[Tensor]) -> DecoderState:
        """The state before the first step: the memory's key projection is computed once."""
        self._check(state, memory, memory_mask)
        return DecoderState(state, memory, memory_mask, self.attention.project_keys(memory))

    def _advance(self, tokens: Tensor, state: DecoderState) -> Tuple[DecoderState, Tensor, Tensor]:
        """One step: the new state, the output features [B, H + Dm + E] and the weights [B, N]."""
        embedded = self.embedding(tokens)  # [B, E]
        context, weights = self.attention(
            state.hidden, state.memory, state.memory, state.memory_mask, state.projected
        )
        hidden = self.cell(torch.cat([embedded, context], dim=-1), state.hidden)  # s_t
        features = torch.cat([hidden, context, embedded], dim=-1)
        return state._replace(hidden=hidden), features, weights

    def step(self, tokens: Tensor, state: DecoderState) -> Tuple[Tensor, DecoderState]:
        """Previous tokens [B] and the state -> (logits of the next token [B, V], new state)."""
        state, features, _ = self._advance(tokens, state)
        return self.output(features), state

    def _steps(self, tokens: Tensor, state: DecoderState) -> Tuple[Tensor, Tensor]:
        """Teacher forcing: feed ``tokens`` [B, T] one step at a time; return logits
        [B, T, V] (all steps' outputs in one matrix product) and weights [B, T, N]."""
        features: List[Tensor] = []
        weights: List[Tensor] = []
        for t in range(tokens.shape[1]):
            state, step_features, step_weights = self._advance(tokens[:, t], state)
            features.append(step_features)
            weights.append(step_weights)
        if not features:
            batch, items = state.memory.shape[:2]
            empty = state.memory.new_zeros(batch, 0, self.output.out_features)
            return empty, state.memory.new_zeros(batch, 0, items)
        return self.output(torch.stack(features, dim=1)), torch.stack(weights, dim=1)

    def forward(
        self, tokens: Tensor, state: Tensor, memory: Tensor, memory_mask: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        start = self.start(state, memory, memory_mask)
        check_token_ids("tokens", tokens, self.vocab_size, f"{memory.shape[0]}, T", cpu_only=True)
        return self._steps(tokens, start)

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
        max_length = check_int("max_length", max_length, 0, MAX_STEPS)
        check_special_ids(self.vocab_size, start_id=start_id, end_id=end_id, pad_id=pad_id)
        start = self.start(state, memory, memory_mask)
        with record_attention(self) as records:
            tokens = greedy_decode(
                self.step, start, memory.shape[0], max_length, start_id=start_id,
                end_id=end_id, pad_id=pad_id, device=memory.device,
            )  # fmt: skip
        return tokens, _weights_until_end(records["attention"], tokens, end_id, memory.shape[1])


def _weights_until_end(calls: List[Tensor], tokens: Tensor, end_id: int, items: int) -> Tensor:
    """Per-step weights [B, T, N], zero for the steps after each sequence's ``<end>``."""
    if not calls:
        return torch.zeros(tokens.shape[0], 0, items, device=tokens.device)
    weights = torch.stack(calls, dim=1)
    is_end = (tokens == end_id).long()
    after_end = (is_end.cumsum(dim=1) - is_end) > 0  # computed on the device: no host sync
    return weights.masked_fill(after_end.unsqueeze(-1), 0.0)


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """Reverse each sequence of x [B, L, D] within its length [B]; padding stays in place."""
    check_tensor("x", x, "B, L, D")
    check_lengths("lengths", lengths, x.shape[0], x.shape[1], origin="from x")
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # [1, L]
    lengths = lengths.to(x.device).unsqueeze(1)  # [B, 1]
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)  # [B, L]
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class AttentionSeq2Seq(Seq2SeqDecoding, nn.Module):
    """GRU encoder-decoder with additive attention (Bahdanau et al.), same interface as
    ``course_lib.rnn.Seq2Seq``.

    The encoder (bidirectional by default) turns the source into states ``h_i`` [B, S, Dm]
    (Dm = 2H, or H when not bidirectional); the decoder starts from
    ``tanh(W [h_last_forward; h_first_backward])`` and, at every step, attends over all
    ``h_i`` (padding masked out) to build its context ``c_t``.

    ``forward(source [B, S], source_lengths [B], target [B, T]) -> (logits [B, T-1, V],
    loss)`` with teacher forcing, where ``target`` starts with ``<start>`` and ends with
    ``<end>`` then padding (as ``course_lib.data.encode_dates`` gives); the loss is the
    mean cross-entropy over non-padding positions. ``generate`` decodes greedily or with a
    beam (``return_attention=True``, greedy only, also returns the weights [B, T, S]);
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
        self.source_vocab_size, self.target_vocab_size = check_vocabularies(
            source_vocab_size, target_vocab_size, pad_id, start_id, end_id
        )
        embed_dim = check_size("embed_dim", embed_dim)
        hidden_size = check_size("hidden_size", hidden_size)
        attention_size = hidden_size if attention_size is None else attention_size
        check_size("attention_size", attention_size)
        check_elements("source_vocab_size x embed_dim", source_vocab_size * embed_dim)
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        self.bidirectional = check_bool("bidirectional", bidirectional)
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

    def encode(self, source: Tensor, source_lengths: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """``(memory [B, S, Dm], memory_mask [B, S], initial decoder state [B, H])``."""
        check_source(source, source_lengths, self.source_vocab_size)
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
        memory, mask, state = self.encode(source, source_lengths)
        check_target(target, source.shape[0], self.target_vocab_size)
        logits, _ = self.decoder(target[:, :-1], state, memory, mask)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target[:, 1:].reshape(-1),
            ignore_index=self.pad_id,
        )  # fmt: skip
        return logits, loss

    @torch.no_grad()
    def attention_weights(self, source: Tensor, source_lengths: Tensor, target: Tensor) -> Tensor:
        """Teacher-forced attention weights [B, T-1, S]: row t is where output t looked."""
        from course_lib.attention.maps import attention_maps

        maps = attention_maps(self, source, source_lengths, target)
        if "decoder.attention" not in maps:  # T = 1 step of teacher forcing: nothing attended
            return torch.zeros(source.shape[0], 0, source.shape[1])
        return maps["decoder.attention"]

    def start_decoding(self, source: Tensor, source_lengths: Tensor) -> DecoderState:
        memory, mask, state = self.encode(source, source_lengths)
        return self.decoder.start(state, memory, mask)

    def decode_step(self, tokens: Tensor, state: DecoderState) -> Tuple[Tensor, DecoderState]:
        return self.decoder.step(tokens, state)

    @torch.no_grad()
    def generate(
        self,
        source: Tensor,
        source_lengths: Tensor,
        max_length: int = 12,
        return_attention: bool = False,
        *,
        beam_size: int = 1,
        length_penalty: float = 0.6,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Decode ``source`` [B, S] into token ids [B, max_length] (after ``<start>``; ends at
        ``<end>``, then padding); with ``return_attention`` (greedy only) also the weights
        [B, T, S] of every step (zero after ``<end>``)."""
        if not check_bool("return_attention", return_attention):
            return super().generate(
                source, source_lengths, max_length, beam_size=beam_size,
                length_penalty=length_penalty,
            )  # fmt: skip
        if beam_size != 1:
            raise ValueError("return_attention=True needs beam_size=1 (greedy decoding)")
        with record_attention(self) as records:
            tokens = super().generate(source, source_lengths, max_length)
        return tokens, _weights_until_end(
            records["decoder.attention"], tokens, self.end_id, source.shape[1]
        )


def copy_task(
    count: int, min_length: int = 1, max_length: int = 20, seed: int = 0
) -> Tuple[EncodedDates, Vocab]:
    """Random digit strings to copy: the information to carry grows with the length.

    Returns ``(encoded, vocab)``: ``encoded.source`` [N, S] holds ``min_length`` to
    ``max_length`` random digits (padded), ``encoded.target`` [N, max_length + 2] is
    ``<start>``, the same digits, ``<end>``, padding; ``vocab`` is ``Vocab("0123456789")``
    for both sides.
    """
    from course_lib.batching import seeded_generator
    from course_lib.data import EncodedDates, Vocab

    count = check_size("count", count, minimum=0)
    min_length = check_size("min_length", min_length)
    max_length = check_size("max_length", max_length, maximum=MAX_STEPS)
    if min_length > max_length:
        raise ValueError(f"min_length ({min_length}) must not exceed max_length ({max_length})")
    check_elements("count x max_length", count * max_length)
    vocab = Vocab("0123456789")
    generator = seeded_generator(seed)
    lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator)
    digits = torch.randint(0, 10, (count, max_length), generator=generator) + vocab.stoi["0"]
    real = torch.arange(max_length).unsqueeze(0) < lengths.unsqueeze(1)  # [N, S]
    source = digits.masked_fill(~real, vocab.pad_id)
    target = torch.full((count, max_length + 2), vocab.pad_id, dtype=torch.long)
    target[:, 0] = vocab.start_id
    target[:, 1:-1] = source
    target[torch.arange(count), lengths + 1] = vocab.end_id
    return EncodedDates(source, lengths, target), vocab
