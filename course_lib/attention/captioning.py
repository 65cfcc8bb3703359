"""Image captioning with attention: digit strings pasted side by side, and a CNN feature
grid read by the attention decoder ("Show, Attend and Tell", Xu et al.).

Shape letters: ``N`` images, ``M`` source digits, ``K`` digits per image, ``B`` batch,
``Hc``/``Wc`` canvas height and width, ``Hf``/``Wf`` feature grid height and width, ``C``
channels, ``T`` caption length, ``V`` vocabulary size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention.additive import AttentionDecoder
from course_lib.attention.positions import LearnedPositionalEmbedding
from course_lib.decoding import check_special_ids
from course_lib.validation import (
    check_bool,
    check_elements,
    check_like,
    check_sequence,
    check_size,
    check_tensor,
    check_token_ids,
)

if TYPE_CHECKING:
    from course_lib.data import Vocab

__all__ = ["AttentionCaptioner", "DigitSequences", "make_digit_sequences"]


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
    from course_lib.batching import seeded_generator
    from course_lib.data import Vocab

    check_tensor("images", images, "M, 1, 8, 8", dtype="floating", finite=True)
    check_token_ids("labels", labels, 10, f"{images.shape[0]}")
    count = check_size("count", count, minimum=0)
    min_digits = check_size("min_digits", min_digits)
    max_digits = check_size("max_digits", max_digits, maximum=1000)
    max_gap = check_size("max_gap", max_gap, minimum=0, maximum=1000)
    max_shift = check_size("max_shift", max_shift, minimum=0, maximum=1000)
    if min_digits > max_digits:
        raise ValueError(f"min_digits ({min_digits}) must not exceed max_digits ({max_digits})")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one digit (M >= 1)")
    height, width = 8 + max_shift, max_digits * (8 + max_gap)
    check_elements("count x canvas height x canvas width", count * height * width)
    vocab = Vocab("0123456789")
    generator = seeded_generator(seed)
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
        self.vocab_size = check_size("vocab_size", vocab_size)
        channels = check_size("channels", channels, minimum=2)
        check_sequence("image_size", image_size, 2)
        height, width = (
            check_size(f"image_size[{k}]", v, maximum=2**16) for k, v in enumerate(image_size)
        )
        check_special_ids(vocab_size, pad_id=pad_id, start_id=start_id, end_id=end_id)
        self.image_size = (height, width)
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
        check_tensor("images", images, "B, 1, Hc, Wc", dtype="floating")
        check_like("images", images, self.init_state.weight)
        if ((images.shape[2] + 1) // 2, (images.shape[3] + 1) // 2) != self.grid:
            raise ValueError(
                f"images must have the size the model was built for, [B, 1, "
                f"{self.image_size[0]}, {self.image_size[1]}], got {list(images.shape)}"
            )
        features = self.cnn(images)  # [B, C, Hf, Wf]
        memory = self.position(features.flatten(2).transpose(1, 2))  # [B, Hf * Wf, C]
        return memory, torch.tanh(self.init_state(memory.mean(dim=1)))

    def forward(self, images: Tensor, targets: Tensor) -> Tuple[Tensor, Tensor]:
        memory, state = self.encode(images)
        check_token_ids("targets", targets, self.vocab_size, f"{images.shape[0]}, T", cpu_only=True)
        if targets.shape[1] < 2:
            raise ValueError(
                f"targets must have shape [B, T] with T >= 2 (<start> ... <end>), "
                f"got {list(targets.shape)}"
            )
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
        return_attention = check_bool("return_attention", return_attention)
        memory, state = self.encode(images)
        tokens, weights = self.decoder.greedy(
            state, memory, None, max_length, self.start_id, self.end_id, self.pad_id
        )
        if not return_attention:
            return tokens
        return tokens, weights.view(*weights.shape[:2], *self.grid)
