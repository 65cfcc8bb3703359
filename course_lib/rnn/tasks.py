"""The task types as models: many-to-one (classify a sequence) and many-to-many (one label
per step), two small generated data sets and a figure of the five input/output patterns.

Shape letters: ``B`` batch, ``T`` time steps, ``D`` input features, ``C`` classes, ``N``
sequences, ``K`` symbols.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.batching import seeded_generator
from course_lib.rnn.layers import make_recurrent
from course_lib.validation import (
    MAX_ELEMENTS,
    MAX_STEPS,
    check_int,
    check_lengths,
    check_like,
    check_size,
    check_tensor,
    check_token_ids,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "SequenceClassifier",
    "SequenceTagger",
    "bracket_depth_task",
    "first_symbol_task",
    "plot_task_types",
]


def _check_sequences(module: nn.Module, x: Tensor) -> None:
    check_tensor("x", x, f"B, T, {module.rnn.input_size}", dtype="floating")
    check_like("x", x, module.rnn.weight_ih_l0)


class SequenceClassifier(nn.Module):
    """Many-to-one: read a sequence, classify it from the last layer's final hidden state.

    ``forward(x [B, T, D], targets [B] or None, lengths [B] or None) -> (logits [B, C],
    loss or None)``; with ``lengths`` the state at each sequence's last real step is used.
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        self.num_classes = check_size("num_classes", num_classes)
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None, lengths: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        _check_sequences(self, x)
        if lengths is not None:  # a sequence of length 0 has no last step to classify from
            check_lengths("lengths", lengths, x.shape[0], x.shape[1], minimum=1)
        _, state = self.rnn(x, lengths=lengths)
        h_n = state[0] if isinstance(state, tuple) else state
        logits = self.head(h_n[-1])
        if targets is None:
            return logits, None
        check_token_ids("targets", targets, self.num_classes, f"{x.shape[0]}", cpu_only=True)
        return logits, F.cross_entropy(logits, targets)


class SequenceTagger(nn.Module):
    """Many-to-many (one output per input step): a label for every step.

    ``forward(x [B, T, D], targets [B, T] or None) -> (logits [B, T, C], loss or None)``.
    As in the notes, the loss is the cross-entropy **summed over the time steps** (and
    averaged over the batch); targets equal to -100 (padding) are ignored.
    """

    def __init__(
        self,
        input_size: int,
        num_tags: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        self.num_tags = check_size("num_tags", num_tags)
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, num_tags)

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        _check_sequences(self, x)
        output, _ = self.rnn(x)
        logits = self.head(output)
        if targets is None:
            return logits, None
        shape = f"{x.shape[0]}, {x.shape[1]}"
        check_tensor("targets", targets, shape, dtype="integer")
        real = targets[targets != -100]  # -100 marks padding
        check_token_ids("targets", real, self.num_tags, cpu_only=True)
        per_step = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
            ignore_index=-100,
        )  # fmt: skip
        return logits, per_step / max(x.shape[0], 1)


def _check_task_sizes(num_sequences: int, length: int, per_item: int) -> Tuple[int, int]:
    num_sequences = check_size("num_sequences", num_sequences)
    length = check_int("length", length, 1, MAX_STEPS)
    if num_sequences * length * per_item > MAX_ELEMENTS:
        raise ValueError(
            f"num_sequences x length = {num_sequences * length:,} steps is too large for "
            "a generated task; choose smaller sizes"
        )
    return num_sequences, length


def first_symbol_task(
    num_sequences: int, length: int, num_symbols: int = 4, seed: int = 0
) -> Tuple[Tensor, Tensor]:
    """A memory test: remember the first of ``length`` random symbols.

    Returns one-hot inputs [N, T, K] (float32, K = ``num_symbols``) and labels [N]: the
    symbol at step 0. Every later step is a random symbol too, so the network must keep the
    first one in its state for ``length - 1`` steps while ignoring the rest.
    """
    num_symbols = check_size("num_symbols", num_symbols, maximum=100_000)
    num_sequences, length = _check_task_sizes(num_sequences, length, num_symbols)
    generator = seeded_generator(seed)
    symbols = torch.randint(num_symbols, (num_sequences, length), generator=generator)
    return F.one_hot(symbols, num_symbols).float(), symbols[:, 0].clone()


def bracket_depth_task(
    num_sequences: int, length: int, max_depth: int = 4, seed: int = 0
) -> Tuple[Tensor, Tensor, List[str]]:
    """A tagging task: label every character of a bracket string with the nesting depth.

    Each string of ``length`` characters mixes ``(``, ``)`` and ``x`` (no bracket) and never
    closes more than it opened nor nests deeper than ``max_depth``. Returns one-hot inputs
    [N, T, 3] (float32; order ``(``, ``)``, ``x``), tags [N, T] (int64, the depth after
    each character, 0..max_depth) and the strings themselves.
    """
    num_sequences, length = _check_task_sizes(num_sequences, length, 3)
    max_depth = check_size("max_depth", max_depth)
    generator = seeded_generator(seed)
    draws = torch.rand(num_sequences, length, generator=generator)
    codes = torch.empty(num_sequences, length, dtype=torch.long)
    tags = torch.empty(num_sequences, length, dtype=torch.long)
    depth = torch.zeros(num_sequences, dtype=torch.long)
    for t in range(length):  # a loop over time steps, vectorised over sequences
        opening = (draws[:, t] < 0.4) & (depth < max_depth)
        closing = ~opening & (draws[:, t] < 0.75) & (depth > 0)
        codes[:, t] = torch.where(opening, 0, torch.where(closing, 1, 2))
        depth = depth + opening.long() - closing.long()
        tags[:, t] = depth
    texts = ["".join("()x"[code] for code in row) for row in codes.tolist()]
    return F.one_hot(codes, 3).float(), tags, texts


def _lighter(color: str, amount: float = 0.65) -> Tuple[float, float, float]:
    """``color`` mixed with white (``amount`` of white), for a box's fill."""
    from matplotlib.colors import to_rgb

    red, green, blue = to_rgb(color)
    return tuple(channel + (1 - channel) * amount for channel in (red, green, blue))


def plot_task_types() -> Figure:
    """The five input/output patterns of sequence tasks, as boxes and arrows.

    Red boxes are inputs, green the recurrent state, blue the outputs; time runs left to
    right (the layout of Karpathy's "The Unreasonable Effectiveness of RNNs").
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from course_lib.plotting import PALETTE

    # (input steps, state steps, output steps) for each pattern
    layouts = {
        "one to one\n(image -> class)": ([0], [0], [0]),
        "one to many\n(image -> caption)": ([0], [0, 1, 2], [0, 1, 2]),
        "many to one\n(video/text -> class)": ([0, 1, 2], [0, 1, 2], [2]),
        "many to many\n(translation, seq2seq)": ([0, 1, 2], [0, 1, 2, 3, 4], [3, 4]),
        "many to many\n(a label per frame)": ([0, 1, 2], [0, 1, 2], [0, 1, 2]),
    }
    edges = [PALETTE["input"], PALETTE["state"], PALETTE["output"]]
    figure, axes = plt.subplots(1, len(layouts), figsize=(15, 3.6))
    for ax, (title, rows) in zip(axes, layouts.items()):
        shift = (4 - max(rows[1])) / 2  # centre each diagram in its panel
        rows = tuple([t + shift for t in steps] for steps in rows)
        for level, steps in enumerate(rows):
            for t in steps:
                box = FancyBboxPatch((t - 0.3, 1.3 * level - 0.3), 0.6, 0.6,
                                     boxstyle="round,pad=0.02", fc=_lighter(edges[level]),
                                     ec=edges[level], lw=1.5)  # fmt: skip
                ax.add_patch(box)
        arrow = {"arrowstyle": "-|>", "mutation_scale": 10, "lw": 1.2, "color": "#444444"}
        for t in rows[0]:  # input -> state
            ax.add_patch(FancyArrowPatch((t, 0.32), (t, 0.98), **arrow))
        for t in rows[2]:  # state -> output
            ax.add_patch(FancyArrowPatch((t, 1.62), (t, 2.28), **arrow))
        for t in rows[1][:-1]:  # state -> next state (the recurrence)
            ax.add_patch(FancyArrowPatch((t + 0.32, 1.3), (t + 0.68, 1.3), **arrow))
        ax.set_xlim(-0.6, 4.6)
        ax.set_ylim(-0.5, 3.0)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(title, fontsize=10)
    figure.suptitle("Sequence tasks: inputs (red), recurrent state (green), outputs (blue)")
    figure.tight_layout()
    return figure
