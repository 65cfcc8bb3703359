"""The character-level language model and truncated backpropagation through time.

A long text is laid out as parallel streams and cut into chunks (``course_lib.batching``:
``batchify``, ``TBPTTChunks``); the state flows from one chunk to the next, the gradient
does not (``detach_state``, ``TruncatedBPTT``). Sampling is ``course_lib.decoding``'s.

Shape letters: ``B`` batch (streams), ``T`` time steps, ``V`` vocabulary size, ``N``
characters, ``L`` layers, ``H`` hidden units, ``P`` prompt length.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.batching import TBPTTChunks, batchify
from course_lib.decoding import check_prompt, check_sampling, sample
from course_lib.rnn.layers import State, make_recurrent
from course_lib.utils import evaluating
from course_lib.validation import (
    check_callable,
    check_choice,
    check_elements,
    check_instance,
    check_size,
    check_token_ids,
)

__all__ = ["CharLanguageModel", "TruncatedBPTT", "detach_state", "evaluate_bits_per_char"]


def detach_state(state: Any) -> Any:
    """The same state (a Tensor, a tuple/list of Tensors, or None) cut from the graph.

    The values are kept, so the next chunk starts where this one ended, but no gradient
    will flow back through them into the previous chunk.
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(item) for item in state)
    raise TypeError(
        f"state must be a Tensor, a tuple of Tensors or None, got {type(state).__name__}"
    )


class TruncatedBPTT:
    """A ``loss_fn`` for ``course_lib.train.fit`` that carries the state across chunks.

    Each call runs ``model.logits_and_state(inputs, state)`` on one ``(inputs, targets)``
    chunk [B, T], keeps the final state *detached* for the next chunk and returns the mean
    cross-entropy (nats per character). The state is reset to None every
    ``chunks_per_pass`` calls (give ``len(chunks)``, so each pass starts fresh) and whenever
    the batch size changes.
    """

    def __init__(self, chunks_per_pass: Optional[int] = None) -> None:
        if chunks_per_pass is not None:
            chunks_per_pass = check_size("chunks_per_pass", chunks_per_pass)
        self.chunks_per_pass = chunks_per_pass
        self.state: Any = None
        self.calls = 0

    def reset(self) -> None:
        """Forget the carried state (the next chunk starts from zeros)."""
        self.state, self.calls = None, 0

    def __call__(self, model: nn.Module, batch: Tuple[Tensor, Tensor]) -> Tensor:
        check_callable("model.logits_and_state", getattr(model, "logits_and_state", None),
                       "a method of the model (a CharLanguageModel)")  # fmt: skip
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise TypeError(f"batch must be a pair (inputs, targets), got {type(batch).__name__}")
        inputs, targets = batch
        if not isinstance(targets, Tensor) or not isinstance(inputs, Tensor):
            raise TypeError("batch must be a pair of tensors (inputs [B, T], targets [B, T])")
        if targets.shape != inputs.shape:
            raise ValueError(
                f"batch targets must have the shape of the inputs {list(inputs.shape)}, "
                f"got {list(targets.shape)}"
            )
        new_pass = self.chunks_per_pass is not None and self.calls % self.chunks_per_pass == 0
        if new_pass or _state_batch(self.state) not in (None, inputs.shape[0]):
            self.state = None
        logits, state = model.logits_and_state(inputs, self.state)
        self.state = detach_state(state)
        self.calls += 1
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _state_batch(state: Any) -> Optional[int]:
    if state is None:
        return None
    first = state if isinstance(state, Tensor) else state[0]
    return first.shape[-2]


class CharLanguageModel(nn.Module):
    """Embedding -> recurrent layers -> linear head: predicts the next character.

    ``forward(x [B, T] int64, targets [B, T] or None, state=None) -> (logits [B, T, V],
    loss or None)``: the loss is the mean cross-entropy in nats per character (divide by
    ``ln 2`` for bits). ``logits_and_state(x, state)`` also returns the final state (for
    truncated BPTT, see ``TruncatedBPTT``); ``generate`` samples text.

    Args:
        vocab_size: V, the number of distinct characters.
        embed_dim: size of the learned character vectors.
        hidden_size: H of every recurrent layer.
        num_layers: stacked recurrent layers.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (the course's layers).
        dropout: between recurrent layers and before the head (training only).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.vocab_size = check_size("vocab_size", vocab_size)
        embed_dim = check_size("embed_dim", embed_dim)
        hidden_size = check_size("hidden_size", hidden_size)
        check_elements("vocab_size x (embed_dim + hidden_size)",
                       vocab_size * (embed_dim + hidden_size))  # fmt: skip
        self.cell = check_choice("cell", cell, ("lstm", "gru", "rnn"))
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = make_recurrent(cell, embed_dim, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def logits_and_state(self, x: Tensor, state: Optional[State] = None) -> Tuple[Tensor, State]:
        """Logits [B, T, V] for inputs [B, T] and the final state (``h`` [L, B, H], or
        ``(h, c)`` for an LSTM) to pass to the next chunk."""
        check_token_ids("x", x, self.vocab_size, "B, T", cpu_only=True)
        try:
            output, state = self.rnn(self.embedding(x), state)
        except (TypeError, ValueError) as error:
            if state is None:
                raise
            raise type(error)(f"state does not fit this model: {error}") from error
        return self.head(self.dropout(output)), state

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None, state: Optional[State] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        logits, _ = self.logits_and_state(x, state)
        if targets is None:
            return logits, None
        check_token_ids("targets", targets, self.vocab_size, f"{x.shape[0]}, {x.shape[1]}",
                        cpu_only=True)  # fmt: skip
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """Continue ``prompt_ids`` [P] or [B, P] (P >= 1) by ``length`` sampled ids.

        Returns the prompt followed by the new ids, [P + length] or [B, P + length]. The
        prompt is read once; each new character is fed back as the next input, carrying
        the state (no re-reading). Temperature 0 is greedy decoding.
        """
        ids, batched = check_prompt(prompt_ids, self.vocab_size)
        length = check_sampling(length, temperature, top_k, generator)
        ids = ids.to(self.head.weight.device)

        def step(token: Tensor, state: State) -> Tuple[Tensor, State]:
            logits, state = self.logits_and_state(token.unsqueeze(1), state)
            return logits[:, -1], state

        with evaluating(self):
            logits, state = self.logits_and_state(ids)
            new_ids = sample(step, logits[:, -1], state, length, temperature, top_k, generator)
        out = torch.cat([ids, new_ids], dim=1)
        return out if batched else out.squeeze(0)


@torch.no_grad()
def evaluate_bits_per_char(
    model: nn.Module, ids: Tensor, batch_size: int = 16, seq_len: int = 256
) -> float:
    """Cross-entropy of ``model`` on the text ``ids`` [N], in bits per character.

    The text is laid out as ``batch_size`` streams (``batchify``) and read in chunks of
    ``seq_len``. A model with ``logits_and_state`` carries its state from chunk to chunk
    (every character is predicted from everything before it in its stream); any other
    model is called as ``model(x)`` returning ``(logits, _)`` on each chunk alone.
    """
    check_instance("model", model, nn.Module, "a torch.nn.Module")
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise ValueError("model must have parameters (they give the device to run on)")
    seq_len = check_size("seq_len", seq_len)
    vocab_size = getattr(model, "vocab_size", None)
    if isinstance(vocab_size, int):
        check_token_ids("ids", ids, vocab_size, "N")
    streams = batchify(ids, batch_size)
    if streams.shape[1] < 2:
        raise ValueError(
            f"ids are too short for batch_size={batch_size} streams: got N={ids.shape[0]}, "
            "need at least 2 per stream"
        )
    device = parameter.device
    total, count, state = torch.zeros((), dtype=torch.float64, device=device), 0, None
    stateful = hasattr(model, "logits_and_state")
    with evaluating(model):
        for inputs, targets in TBPTTChunks(streams.to(device), seq_len):
            if stateful:
                logits, state = model.logits_and_state(inputs, state)
            else:
                logits, _ = model(inputs)
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
            ).double()  # summed on the device: no host synchronisation per chunk
            count += targets.numel()
    return float(total) / count / math.log(2)
