"""Turning a model's next-token scores into sequences: sampling, greedy decoding, beam search.

One implementation of each idea, for every model of the course:

- ``sampling_probs`` / ``sample_next_token`` / ``sample``: temperature and top-k sampling
  (the character language model, GPT);
- ``greedy_decode`` and ``beam_search``: the most likely output of a sequence-to-sequence
  model (``rnn.Seq2Seq``, ``attention.AttentionSeq2Seq``, ``transformer.Transformer``);
- ``Seq2SeqDecoding``: the ``generate`` method those three models share;
- ``translate``, ``exact_match``, ``exact_match_ids``, ``accuracy_by_length``: running a
  seq2seq model on strings and scoring its outputs.

A decoder is described by a *step function* ``step(tokens [N], state) -> (logits [N, V],
state)``: given the previous token of each of N sequences and the decoder's state, it
returns the next token's scores and the new state. The state is any nesting of tuples,
lists, dicts and dataclasses of tensors whose first dimension is N (plus plain Python
values, and objects with a ``reorder(index)`` method such as a key/value cache), so that
``reorder_state`` can select, repeat and shuffle sequences for beam search.

Shape letters: ``B`` batch, ``K`` beam size, ``N`` sequences decoded in parallel (B or
B * K), ``V`` vocabulary size, ``T`` generated length, ``S`` source length.
"""

from __future__ import annotations

import dataclasses
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from torch import Tensor, nn

from course_lib.utils import evaluating
from course_lib.validation import (
    MAX_STEPS,
    check_float,
    check_instance,
    check_int,
    check_lengths,
    check_size,
    check_tensor,
    check_token_ids,
)

if TYPE_CHECKING:
    from course_lib.data import DatePair, EncodedDates, Vocab

__all__ = [
    "Seq2SeqDecoding",
    "accuracy_by_length",
    "beam_search",
    "check_prompt",
    "check_sampling",
    "check_source",
    "check_special_ids",
    "check_target",
    "check_vocabularies",
    "exact_match",
    "exact_match_ids",
    "greedy_decode",
    "reorder_state",
    "sample",
    "sample_next_token",
    "sampling_probs",
    "translate",
]

State = Any
StepFn = Callable[[Tensor, State], Tuple[Tensor, State]]


# ----------------------------------------------------------------------------------------
# Sampling the next token: temperature and top-k
# ----------------------------------------------------------------------------------------


def sampling_probs(logits: Tensor, temperature: float = 1.0, top_k: Optional[int] = None) -> Tensor:
    """The distribution to sample the next token from: ``softmax(logits / temperature)``.

    Args:
        logits: [..., V] unnormalised scores of the next token (finite).
        temperature: > 0 sharpens (< 1) or flattens (> 1) the distribution; 0 is the limit
            T -> 0: the mass shared equally by the tied maxima (a one-hot when unique).
        top_k: keep only the ``top_k`` largest logits (every logit equal to the k-th
            largest is kept too), renormalise over them; None keeps all.

    Returns:
        Probabilities [..., V] that sum to 1 over the last dimension.
    """
    check_tensor("logits", logits, "..., V", dtype="floating")
    if logits.shape[-1] < 1:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got {list(logits.shape)}")
    temperature = check_float("temperature", temperature, 0.0)
    if top_k is not None:
        top_k = check_size("top_k", top_k)
    # Reading the values synchronises with a GPU: checked where it is free (the CPU). -inf
    # masks a token out; NaN, +inf or a row with every token masked has no distribution.
    if logits.device.type == "cpu" and logits.numel():
        if bool((logits.isnan() | logits.isposinf()).any()):
            raise ValueError("logits must not hold NaN or +inf (-inf masks a token out)")
        if bool(logits.isneginf().all(dim=-1).any()):
            raise ValueError("logits must leave at least one token per row above -inf")
    if top_k is not None and top_k < logits.shape[-1]:
        kth_largest = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if temperature == 0:
        best = (logits == logits.amax(dim=-1, keepdim=True)).to(logits.dtype)
        return best / best.sum(dim=-1, keepdim=True)
    # Shifted so the largest logit is 0: a tiny temperature then sends the others to -inf
    # (a one-hot) instead of overflowing to +inf (NaN).
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    return torch.softmax(shifted / temperature, dim=-1)


def sample_next_token(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Draw one token id per row of ``logits`` [B, V] (or [V]) -> [B] (or a 0-d tensor).

    Uses ``sampling_probs``; temperature 0 returns the arg-max without drawing. ``generator``
    makes the draw reproducible (it may live on another device than ``logits``).
    """
    if generator is not None:
        check_instance("generator", generator, torch.Generator, "a torch.Generator")
    probs = sampling_probs(logits, temperature, top_k)
    flat = probs.reshape(-1, probs.shape[-1])
    if temperature == 0:
        ids = flat.argmax(dim=-1)
    elif generator is not None and generator.device != flat.device:
        ids = torch.multinomial(flat.to(generator.device), 1, generator=generator)
        ids = ids.squeeze(-1).to(flat.device)
    else:
        ids = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    return ids.reshape(probs.shape[:-1])


def sample(
    step: StepFn,
    logits: Tensor,
    state: State,
    length: int,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Sample ``length`` tokens one at a time, feeding each back: [B, length].

    ``logits`` [B, V] are the scores of the first token to draw (from reading the prompt)
    and ``step(token [B], state) -> (logits [B, V], state)`` advances the model by one
    token. The last token drawn is not fed back (its scores are never needed).
    """
    length = check_int("length", length, 0, MAX_STEPS)
    tokens: List[Tensor] = []
    for position in range(length):
        token = sample_next_token(logits, temperature, top_k, generator)
        tokens.append(token)
        if position + 1 < length:
            logits, state = step(token, state)
    if not tokens:
        return logits.new_zeros(logits.shape[0], 0, dtype=torch.long)
    return torch.stack(tokens, dim=1)


# ----------------------------------------------------------------------------------------
# Decoder states: select, repeat and reorder the sequences they describe
# ----------------------------------------------------------------------------------------


def reorder_state(state: State, index: Tensor) -> State:
    """The decoder state of sequences ``index`` [N'] (rows may repeat): tensors are indexed
    along their first dimension, containers recursively, objects with ``reorder(index)``
    reorder themselves, other values (ints, strings, None) are kept."""
    if isinstance(state, Tensor):
        if not state.dim():
            return state
        on_cpu = index.device.type == "cpu"  # reading values from a GPU would synchronise
        if on_cpu and index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(state)):
            raise ValueError(
                f"index must hold rows in [0, {state.shape[0] - 1}] of the state, got "
                f"{index.tolist()}"
            )
        return state.index_select(0, index.to(state.device))
    if hasattr(state, "reorder") and callable(state.reorder):
        return state.reorder(index)
    if isinstance(state, dict):
        return {key: reorder_state(value, index) for key, value in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a named tuple
        return type(state)(*(reorder_state(value, index) for value in state))
    if isinstance(state, (list, tuple)):
        return type(state)(reorder_state(value, index) for value in state)
    if dataclasses.is_dataclass(state) and not isinstance(state, type):
        changes = {
            field.name: reorder_state(getattr(state, field.name), index)
            for field in dataclasses.fields(state)
        }
        return dataclasses.replace(state, **changes)
    return state


# ----------------------------------------------------------------------------------------
# Greedy decoding and beam search
# ----------------------------------------------------------------------------------------


def check_special_ids(vocab_size: Optional[int], **ids: int) -> None:
    """Each keyword (``pad_id=0, start_id=1, ...``) must be an int id in ``[0, vocab_size)``."""
    for name, value in ids.items():
        check_int(name, value, 0, None if vocab_size is None else vocab_size - 1)


def check_vocabularies(
    source_vocab_size: int, target_vocab_size: int, pad_id: int, start_id: int, end_id: int
) -> Tuple[int, int]:
    """A seq2seq model's vocabulary sizes and special ids: ``pad_id`` in both vocabularies,
    ``start_id`` and ``end_id`` in the target's. Returns the two sizes."""
    source_vocab_size = check_size("source_vocab_size", source_vocab_size)
    target_vocab_size = check_size("target_vocab_size", target_vocab_size)
    check_special_ids(min(source_vocab_size, target_vocab_size), pad_id=pad_id)
    check_special_ids(target_vocab_size, start_id=start_id, end_id=end_id)
    return source_vocab_size, target_vocab_size


def check_prompt(prompt_ids: Tensor, vocab_size: int) -> Tuple[Tensor, bool]:
    """Token ids [P] or [B, P] (P >= 1) to continue: returns them as [B, P] and whether they
    came batched."""
    check_token_ids("prompt_ids", prompt_ids, vocab_size)
    if prompt_ids.dim() not in (1, 2) or prompt_ids.shape[-1] < 1:
        raise ValueError(
            f"prompt_ids must have shape [P] or [B, P] with P >= 1, got {list(prompt_ids.shape)}"
        )
    batched = prompt_ids.dim() == 2
    return (prompt_ids if batched else prompt_ids.unsqueeze(0)), batched


def check_sampling(
    length: int,
    temperature: float,
    top_k: Optional[int],
    generator: Optional[torch.Generator],
) -> int:
    """The arguments of sampling ``length`` tokens (see ``sample``); returns ``length``."""
    length = check_int("length", length, 0, MAX_STEPS)
    check_float("temperature", temperature, 0.0)
    if top_k is not None:
        check_size("top_k", top_k)
    if generator is not None:
        check_instance("generator", generator, torch.Generator, "a torch.Generator")
    return length


def check_source(source: Tensor, source_lengths: Tensor, vocab_size: int) -> None:
    """The input of a seq2seq model: token ids [B, S] and true lengths [B] in [1, S]."""
    check_token_ids("source", source, vocab_size, "B, S", cpu_only=True)
    check_lengths("source_lengths", source_lengths, source.shape[0], source.shape[1], minimum=1,
                  origin="from source")  # fmt: skip


def check_target(target: Tensor, batch_size: int, vocab_size: int, name: str = "target") -> None:
    """Teacher-forcing targets of a seq2seq model: token ids [B, T] with T >= 2
    (``<start>``, ..., ``<end>``, padding)."""
    check_token_ids(name, target, vocab_size, f"{batch_size}, T", cpu_only=True)
    if target.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape [B, T] with T >= 2 (<start> ... <end>), "
            f"got {list(target.shape)}"
        )


def greedy_decode(
    step: StepFn,
    state: State,
    batch_size: int,
    max_length: int,
    *,
    start_id: int,
    end_id: int,
    pad_id: int,
    device: Union[str, torch.device, None] = None,
    record: Optional[Callable[[State], Tensor]] = None,
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The most likely token at every step, fed back as the next input.

    Starts every sequence from ``start_id``; once a sequence has produced ``end_id`` its
    later tokens are ``pad_id``. Returns token ids [B, max_length] (the ``<start>`` is
    not included). With ``record``, also returns ``record(state)`` after every step,
    stacked along dimension 1 ([B, max_length, ...]) and zero after each sequence's end
    (for example the attention weights of each step).
    """
    batch_size = check_size("batch_size", batch_size, minimum=0)
    max_length = check_int("max_length", max_length, 0, MAX_STEPS)
    check_special_ids(None, start_id=start_id, end_id=end_id, pad_id=pad_id)
    tokens = torch.full((batch_size,), start_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    outputs: List[Tensor] = []
    recorded: List[Tensor] = []
    for _ in range(max_length):
        logits, state = step(tokens, state)
        tokens = logits.argmax(dim=-1).masked_fill(finished, pad_id)
        outputs.append(tokens)
        if record is not None:
            values = record(state)
            shape = (batch_size,) + (1,) * (values.dim() - 1)
            recorded.append(values.masked_fill(finished.view(shape), 0))
        finished = finished | (tokens == end_id)
    generated = (
        torch.stack(outputs, dim=1)
        if outputs
        else torch.zeros(batch_size, 0, dtype=torch.long, device=device)
    )
    if record is None:
        return generated
    return generated, torch.stack(recorded, dim=1) if recorded else torch.zeros(batch_size, 0)


def _length_penalty(lengths: Tensor, alpha: float) -> Tensor:
    """GNMT's ``((5 + length) / 6) ** alpha`` (Wu et al. 2016); alpha 0 is no penalty."""
    return ((5.0 + lengths) / 6.0) ** alpha


def beam_search(
    step: StepFn,
    state: State,
    batch_size: int,
    max_length: int,
    *,
    beam_size: int,
    start_id: int,
    end_id: int,
    pad_id: int,
    device: Union[str, torch.device, None] = None,
    length_penalty: float = 0.6,
    return_scores: bool = False,
) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Beam search: keep the ``beam_size`` most likely partial outputs of each sequence.

    At every step each of the K beams of a sequence is extended by every token; the K
    extensions with the highest total log-probability survive. A beam that has produced
    ``end_id`` is finished: it continues with ``pad_id`` at no cost, so its score stays
    fixed while it competes with the others. At the end the beam with the highest
    ``score / ((5 + length) / 6) ** length_penalty`` wins (Wu et al. 2016; the Transformer
    paper used K = 4 and 0.6), where ``length`` counts the tokens up to and including
    ``end_id``. ``beam_size=1`` is greedy decoding; a beam as large as all V^T outputs
    is exhaustive search.

    ``state`` describes B sequences; it is repeated K times (``reorder_state``), so the
    step function sees N = B * K rows, beam k of sequence b at row ``b * K + k``.
    Returns token ids [B, max_length] (and, with ``return_scores``, the winners' total
    log-probabilities [B]).
    """
    batch_size = check_size("batch_size", batch_size, minimum=0)
    max_length = check_int("max_length", max_length, 0, MAX_STEPS)
    beam_size = check_size("beam_size", beam_size, maximum=10_000)
    length_penalty = check_float("length_penalty", length_penalty, 0.0)
    check_special_ids(None, start_id=start_id, end_id=end_id, pad_id=pad_id)
    rows = batch_size * beam_size
    state = reorder_state(
        state, torch.arange(batch_size, device=device).repeat_interleave(beam_size)
    )
    tokens = torch.full((rows,), start_id, dtype=torch.long, device=device)
    scores = torch.full((batch_size, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: only the first one may be extended
    finished = torch.zeros(rows, dtype=torch.bool, device=device)
    lengths = torch.zeros(rows, device=device)
    history = torch.zeros(rows, 0, dtype=torch.long, device=device)
    offsets = torch.arange(batch_size, device=device).unsqueeze(1) * beam_size  # [B, 1]
    for _ in range(max_length):
        logits, state = step(tokens, state)
        precise = logits if logits.dtype == torch.float64 else logits.float()
        log_probs = torch.log_softmax(precise, dim=-1)  # [N, V], at least float32
        scores, lengths = scores.to(log_probs.dtype), lengths.to(log_probs.dtype)
        vocab_size = log_probs.shape[-1]
        frozen = torch.full_like(log_probs[:1], float("-inf"))
        frozen[0, pad_id] = 0.0
        log_probs = torch.where(finished.unsqueeze(1), frozen, log_probs)
        candidates = (scores.view(rows, 1) + log_probs).view(batch_size, -1)  # [B, K * V]
        scores, flat_index = candidates.topk(beam_size, dim=1)  # [B, K]
        source_rows = (offsets + torch.div(flat_index, vocab_size, rounding_mode="floor")).view(-1)
        tokens = (flat_index % vocab_size).view(-1)
        state = reorder_state(state, source_rows)
        history = torch.cat([history[source_rows], tokens.unsqueeze(1)], dim=1)
        was_finished = finished[source_rows]
        lengths = lengths[source_rows] + (~was_finished).float()
        finished = was_finished | (tokens == end_id)
    normalised = scores / _length_penalty(lengths.view(batch_size, beam_size), length_penalty)
    best = normalised.argmax(dim=1)  # [B]
    winners = history.view(batch_size, beam_size, -1)[torch.arange(batch_size, device=device), best]
    if return_scores:
        return winners, scores.gather(1, best.unsqueeze(1)).squeeze(1)
    return winners


class Seq2SeqDecoding:
    """``generate`` for a sequence-to-sequence model (a mixin for ``nn.Module`` classes).

    The model provides ``start_decoding(source, source_lengths) -> state`` (encode the
    source; the decoder state for B sequences), ``decode_step(tokens [N], state) ->
    (logits [N, V], state)`` and the attributes ``start_id``, ``end_id``, ``pad_id``.
    """

    start_id: int
    end_id: int
    pad_id: int

    def start_decoding(self, source: Tensor, source_lengths: Tensor) -> State:
        raise NotImplementedError

    def decode_step(self, tokens: Tensor, state: State) -> Tuple[Tensor, State]:
        raise NotImplementedError

    @torch.no_grad()
    def generate(
        self,
        source: Tensor,
        source_lengths: Tensor,
        max_length: int = 12,
        *,
        beam_size: int = 1,
        length_penalty: float = 0.6,
    ) -> Tensor:
        """Decode ``source`` [B, S] (true lengths [B]) into token ids [B, max_length].

        The output starts after ``<start>``; after ``<end>`` it is padding. ``beam_size=1``
        is greedy decoding, larger beams run ``beam_search`` with ``length_penalty``.
        """
        max_length = check_int("max_length", max_length, 0, MAX_STEPS)
        beam_size = check_size("beam_size", beam_size, maximum=10_000)
        state = self.start_decoding(source, source_lengths)
        options = {
            "start_id": self.start_id, "end_id": self.end_id, "pad_id": self.pad_id,
            "device": source.device,
        }  # fmt: skip
        if beam_size == 1:
            return greedy_decode(self.decode_step, state, source.shape[0], max_length, **options)
        return beam_search(
            self.decode_step, state, source.shape[0], max_length, beam_size=beam_size,
            length_penalty=length_penalty, **options,
        )  # fmt: skip


# ----------------------------------------------------------------------------------------
# Running a seq2seq model on strings, and scoring its outputs
# ----------------------------------------------------------------------------------------


def _check_generator_model(model: Any) -> nn.Module:
    check_instance("model", model, nn.Module, "a torch.nn.Module with generate()")
    if not callable(getattr(model, "generate", None)):
        raise TypeError(f"model must have a generate() method, got {type(model).__name__}")
    if next(model.parameters(), None) is None:
        raise ValueError("model must have parameters (they give the device to run on)")
    return model


@torch.no_grad()
def translate(
    model: nn.Module,
    sources: Sequence[str],
    source_vocab: Vocab,
    target_vocab: Vocab,
    max_length: int = 12,
    batch_size: int = 512,
    beam_size: int = 1,
) -> List[str]:
    """Translations of ``sources`` (strings) by ``model.generate``, as strings.

    Works with any model whose ``generate(source [B, S], source_lengths [B], max_length)``
    returns token ids; ``beam_size`` > 1 asks it for beam search.
    """
    from course_lib.batching import pad_sequences
    from course_lib.data import Vocab

    _check_generator_model(model)
    if isinstance(sources, str) or not isinstance(sources, (list, tuple)):
        raise TypeError(f"sources must be a list of strings, got {type(sources).__name__}")
    check_instance("source_vocab", source_vocab, Vocab, "a course_lib.data.Vocab")
    check_instance("target_vocab", target_vocab, Vocab, "a course_lib.data.Vocab")
    max_length = check_int("max_length", max_length, 0, MAX_STEPS)
    batch_size = check_size("batch_size", batch_size)
    beam_size = check_size("beam_size", beam_size, maximum=10_000)
    for position, text in enumerate(sources):
        check_instance(f"sources[{position}]", text, str, "a string")
        if not text:
            raise ValueError(f"sources must not contain empty strings (sources[{position}])")
    device = next(model.parameters()).device
    options = {} if beam_size == 1 else {"beam_size": beam_size}
    results: List[str] = []
    with evaluating(model):
        for start in range(0, len(sources), batch_size):
            ids = [source_vocab.encode(text) for text in sources[start : start + batch_size]]
            lengths = torch.tensor([len(seq) for seq in ids], device=device)
            source = pad_sequences(ids, source_vocab.pad_id).to(device)
            generated = model.generate(source, lengths, max_length, **options).cpu()
            results.extend(target_vocab.decode(row) for row in generated)
    return results


def exact_match(
    model: nn.Module,
    pairs: Sequence[DatePair],
    source_vocab: Vocab,
    target_vocab: Vocab,
    batch_size: int = 512,
    beam_size: int = 1,
) -> Tensor:
    """Bool [N]: whether the translation of each pair equals its target exactly."""
    from course_lib.data import DatePair

    if isinstance(pairs, str) or not isinstance(pairs, (list, tuple)):
        raise TypeError(f"pairs must be a list of DatePair, got {type(pairs).__name__}")
    for position, pair in enumerate(pairs):
        check_instance(f"pairs[{position}]", pair, DatePair, "a DatePair")
    if len(pairs) == 0:
        return torch.zeros(0, dtype=torch.bool)
    predictions = translate(
        model, [pair.source for pair in pairs], source_vocab, target_vocab,
        max_length=max(len(pair.target) for pair in pairs) + 1, batch_size=batch_size,
        beam_size=beam_size,
    )  # fmt: skip
    return torch.tensor([p == pair.target for p, pair in zip(predictions, pairs)])


@torch.no_grad()
def exact_match_ids(
    model: nn.Module, encoded: EncodedDates, batch_size: int = 512, beam_size: int = 1
) -> Tensor:
    """Bool [N]: whether ``model.generate`` reproduces each target [N, T] exactly.

    Works on id tensors (no strings), for any model with ``generate(source, source_lengths,
    max_length)``; the comparison covers every position up to and including ``<end>``.
    """
    from course_lib.data import EncodedDates

    _check_generator_model(model)
    check_instance("encoded", encoded, EncodedDates, "EncodedDates (see data.encode_dates)")
    batch_size = check_size("batch_size", batch_size)
    beam_size = check_size("beam_size", beam_size, maximum=10_000)
    options = {} if beam_size == 1 else {"beam_size": beam_size}
    device = next(model.parameters()).device
    results = []
    with evaluating(model):
        for start in range(0, len(encoded), batch_size):
            rows = slice(start, start + batch_size)
            lengths = encoded.source_lengths[rows]
            source = encoded.source[rows, : int(lengths.max())].to(device)
            target = encoded.target[rows, 1:].to(device)
            generated = model.generate(source, lengths.to(device), target.shape[1], **options)
            results.append((generated == target).all(dim=1).cpu())
    return torch.cat(results) if results else torch.zeros(0, dtype=torch.bool)


def accuracy_by_length(
    correct: Tensor, lengths: Tensor, edges: Sequence[int]
) -> Tuple[List[str], Tensor, Tensor]:
    """Group bool results ``correct`` [N] by ``lengths`` [N] into bins ``[edges[i], edges[i+1])``.

    Returns ``(labels, accuracy [K], counts [K])`` for the K = len(edges) - 1 bins
    (accuracy float64, NaN for an empty bin; counts int64); lengths outside every bin are
    left out.
    """
    sizes: dict = {}
    check_tensor("correct", correct, "N", dtype=torch.bool, sizes=sizes)
    check_tensor("lengths", lengths, "N", dtype="integer", sizes=sizes)
    if isinstance(edges, (str, bytes)) or not isinstance(edges, (list, tuple, range)):
        raise TypeError(f"edges must be a list of increasing ints, got {type(edges).__name__}")
    edges = [check_int(f"edges[{i}]", edge) for i, edge in enumerate(edges)]
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must be at least two increasing numbers, got {list(edges)}")
    edge_tensor = torch.as_tensor(edges, device=lengths.device)
    bins = torch.bucketize(lengths, edge_tensor, right=True) - 1  # [N], -1 or K = outside
    inside = (bins >= 0) & (bins < len(edges) - 1)
    counts = torch.bincount(bins[inside], minlength=len(edges) - 1).double()
    hits = torch.bincount(bins[inside], weights=correct[inside].double(), minlength=len(edges) - 1)
    labels = [f"{a}-{b - 1}" for a, b in zip(edges, edges[1:])]
    return labels, hits / counts, counts.long()
