"""Batches for ``course_lib.train.fit``: one module for sequences and images.

Every chapter feeds ``fit`` through one of these helpers:

- ``random_batches``: shuffled minibatches of tensors (and lists, such as detection
  targets) that share their first dimension, one seeded permutation per pass, with an
  optional per-batch ``transform`` (augmentation); ``replacement=True`` draws each batch
  independently instead.
- ``pad_sequences``: lists of token ids padded into one [N, L] tensor.
- ``batchify``, ``TBPTTChunks``: a long text as parallel streams cut into chunks, for
  truncated backpropagation through time (the recurrent-networks chapter).
- ``random_windows``: random windows of a token stream with their next tokens (GPT).
- ``length_bucketed_batches``: similar-length seq2seq examples per batch, padding trimmed.

Shape letters: ``N`` items, ``B`` batch, ``M`` steps per stream, ``L`` sequence length,
``S`` source length, ``T`` target length.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Tuple

import torch
from torch import Tensor

from course_lib.validation import (
    check_callable,
    check_instance,
    check_int,
    check_size,
    check_tensor,
)

if TYPE_CHECKING:
    from course_lib.data import EncodedDates

__all__ = [
    "TBPTTChunks",
    "batchify",
    "length_bucketed_batches",
    "pad_sequences",
    "random_batches",
    "random_windows",
    "seeded_generator",
]

Transform = Callable[[Tuple[Any, ...], torch.Generator], Tuple[Any, ...]]


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``seed`` (a non-negative int), checked."""
    return torch.Generator().manual_seed(check_int("seed", seed, 0, 2**63 - 1))


def _take(item: Any, index: Tensor) -> Any:
    """Rows ``index`` of a tensor (on its device) or items of a list."""
    if isinstance(item, Tensor):
        return item[index.to(item.device)]
    return [item[i] for i in index.tolist()]


def random_batches(
    *data: Any,
    batch_size: int,
    seed: int = 0,
    replacement: bool = False,
    transform: Optional[Transform] = None,
) -> Callable[[], Tuple[Any, ...]]:
    """Endless random minibatches of ``data`` (tensors [N, ...] or lists of N items).

    Returns a function; each call gives the next ``(data[0][idx], data[1][idx], ...)``
    (lists stay lists). Without ``replacement`` the N items are visited in a seeded random
    permutation, a new one every pass (an epoch), and a pass ends when fewer than
    ``batch_size`` items are left (``batch_size`` larger than N gives the whole data set);
    with ``replacement`` every batch draws its ``batch_size`` indices independently.
    ``transform(batch, generator)`` (optional) maps each batch to another, drawing any
    randomness from ``generator`` (the batches' own, so runs are reproducible). This is
    the ``data`` that ``course_lib.train.fit`` expects.
    """
    if not data:
        raise TypeError("random_batches needs data: one or more tensors or lists")
    for position, item in enumerate(data):
        check_instance(
            f"data[{position}]", item, (Tensor, list, tuple), "a Tensor [N, ...] or a list"
        )
        if isinstance(item, Tensor) and item.dim() == 0:
            raise ValueError(f"data[{position}] must have shape [N, ...], got []")
    count = len(data[0])
    if count == 0 or any(len(item) != count for item in data):
        sizes = [len(item) for item in data]
        raise ValueError(f"data must share a non-zero first dimension N, got lengths {sizes}")
    batch_size = check_size("batch_size", batch_size)
    if not isinstance(replacement, bool):
        raise TypeError(f"replacement must be True or False, got {replacement!r}")
    if not replacement:
        batch_size = min(batch_size, count)
    if transform is not None:
        check_callable("transform", transform)
    generator = seeded_generator(seed)
    state = {"position": 0}
    if not replacement:  # with replacement no permutation is drawn (the draws stay the same)
        state["order"] = torch.randperm(count, generator=generator)

    def next_indices() -> Tensor:
        if replacement:
            return torch.randint(0, count, (batch_size,), generator=generator)
        if state["position"] + batch_size > count:
            state["order"], state["position"] = torch.randperm(count, generator=generator), 0
        index = state["order"][state["position"] : state["position"] + batch_size]
        state["position"] += batch_size
        return index

    def next_batch() -> Tuple[Any, ...]:
        index = next_indices()
        batch = tuple(_take(item, index) for item in data)
        return batch if transform is None else transform(batch, generator)

    return next_batch


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> Tensor:
    """Token id lists of lengths L_i -> int64 [N, max L_i], padded on the right with ``pad_id``."""
    check_instance("sequences", sequences, (list, tuple), "a list of token id lists")
    check_int("pad_id", pad_id)
    length = 0
    for position, sequence in enumerate(sequences):
        check_instance(f"sequences[{position}]", sequence, (list, tuple), "a list of token ids")
        length = max(length, len(sequence))
    out = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if sequence:
            out[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.long)
    return out


# ----------------------------------------------------------------------------------------
# A long text as parallel streams (truncated backpropagation through time)
# ----------------------------------------------------------------------------------------


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """Lay a long sequence ``ids`` [N] out as ``batch_size`` parallel streams [B, N // B].

    Stream ``b`` is the ``b``-th contiguous slice of the text, so reading the columns left
    to right reads every stream forward in time; the last ``N mod B`` items are dropped
    (all of them when B > N: the streams are then empty).
    """
    check_tensor("ids", ids, "N", dtype="integer")
    batch_size = check_size("batch_size", batch_size)
    length = ids.shape[0] // batch_size
    return ids[: length * batch_size].reshape(batch_size, length)


class TBPTTChunks:
    """Consecutive ``(inputs, targets)`` chunks of parallel streams, for truncated BPTT.

    ``streams`` [B, M] (from ``batchify``) is cut along time into chunks of ``seq_len``
    steps: chunk k is ``streams[:, k*seq_len : (k+1)*seq_len]`` and its targets are the
    same window shifted by one step. Iterating yields the chunks in order (the last one
    may be shorter); the object can be iterated again (one pass per epoch), and
    ``len()`` is the number of chunks per pass.
    """

    def __init__(self, streams: Tensor, seq_len: int) -> None:
        check_tensor("streams", streams, "B, M", dtype="integer")
        self.streams, self.seq_len = streams, check_size("seq_len", seq_len)

    def __len__(self) -> int:
        return max(0, math.ceil((self.streams.shape[1] - 1) / self.seq_len))

    def __iter__(self) -> Iterator[Tuple[Tensor, Tensor]]:
        last = self.streams.shape[1] - 1  # the final step has no next character to predict
        for start in range(0, last, self.seq_len):
            end = min(start + self.seq_len, last)
            yield self.streams[:, start:end], self.streams[:, start + 1 : end + 1]

    def __repr__(self) -> str:
        batch, steps = self.streams.shape
        return (
            f"TBPTTChunks({batch} streams x {steps} steps, seq_len={self.seq_len}, "
            f"{len(self)} chunks)"
        )


# ----------------------------------------------------------------------------------------
# Windows of a token stream (decoder-only language models)
# ----------------------------------------------------------------------------------------


def random_windows(
    ids: Tensor, block_size: int, batch_size: int, generator: Optional[torch.Generator] = None
) -> Tuple[Tensor, Tensor]:
    """A batch of random windows of a token stream ``ids`` [N]: inputs and next tokens.

    Returns ``(x, y)``, both int64 [batch_size, block_size], with ``y[:, t] = x[:, t + 1]``
    inside the stream (``y`` is ``x`` shifted left by one).
    """
    check_tensor("ids", ids, "N", dtype="integer")
    block_size = check_size("block_size", block_size)
    batch_size = check_size("batch_size", batch_size)
    if generator is not None:
        check_instance("generator", generator, torch.Generator, "a torch.Generator")
    if len(ids) <= block_size:
        raise ValueError(f"ids must be longer than block_size={block_size}, got {len(ids)}")
    device = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator, device=device)
    offsets = starts.to(ids.device)[:, None] + torch.arange(block_size + 1, device=ids.device)
    windows = ids[offsets]  # [B, block_size + 1]
    return windows[:, :-1], windows[:, 1:]


# ----------------------------------------------------------------------------------------
# Sequence-to-sequence batches
# ----------------------------------------------------------------------------------------


def length_bucketed_batches(
    encoded: EncodedDates, batch_size: int, seed: int = 0, window: int = 4
) -> Callable[[], Tuple[Tensor, Tensor, Tensor]]:
    """A batch function for ``course_lib.train.fit``: similar-length examples per batch.

    Each call picks a random window of ``window * batch_size`` examples in order of source
    length, draws ``batch_size`` of them and trims the padding to the longest source in the
    batch, so a recurrent encoder does not step through columns of padding. Returns
    ``(source [B, S'], source_lengths [B], target [B, T])``.
    """
    from course_lib.data import EncodedDates

    check_instance("encoded", encoded, EncodedDates, "EncodedDates (see data.encode_dates)")
    batch_size = check_size("batch_size", batch_size)
    window = check_size("window", window)
    count = len(encoded)
    if count == 0:
        raise ValueError("encoded must hold at least one example")
    order = torch.argsort(encoded.source_lengths, stable=True)
    span = min(count, window * batch_size)
    generator = seeded_generator(seed)

    def batch() -> Tuple[Tensor, Tensor, Tensor]:
        start = int(torch.randint(0, count - span + 1, (1,), generator=generator))
        chosen = torch.randperm(span, generator=generator)[: min(batch_size, span)]
        index = order[start + chosen]
        lengths = encoded.source_lengths[index]
        return encoded.source[index, : int(lengths.max())], lengths, encoded.target[index]

    return batch
