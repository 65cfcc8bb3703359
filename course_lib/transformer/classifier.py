"""An encoder-only (BERT-like) sequence classifier and its generated task (palindromes).

Shape letters: ``B`` batch, ``L`` sequence length, ``N`` sequences, ``D`` model width,
``H`` heads, ``K`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import attention_maps
from course_lib.transformer.blocks import FromConfig, TransformerBlock
from course_lib.validation import (
    check_elements,
    check_float,
    check_instance,
    check_int,
    check_size,
    check_token_ids,
)

__all__ = ["ClassifierConfig", "PalindromeData", "TransformerClassifier", "make_palindromes"]


class PalindromeData:
    """Token sequences and labels for "is this sequence a palindrome?".

    ``tokens`` int64 [N, max_length] (letters are ids 1..alphabet, 0 is padding after
    the end), ``lengths`` int64 [N], ``labels`` int64 [N] (1 = palindrome).
    """

    def __init__(self, tokens: Tensor, lengths: Tensor, labels: Tensor, alphabet: str) -> None:
        self.tokens, self.lengths, self.labels, self.alphabet = tokens, lengths, labels, alphabet

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"PalindromeData({len(self)} sequences of length <= {self.tokens.shape[1]}, "
            f"{int(self.labels.sum())} palindromes)"
        )

    def text(self, index: int) -> str:
        """Sequence ``index`` as letters."""
        ids = self.tokens[index, : int(self.lengths[index])].tolist()
        return "".join(self.alphabet[i - 1] for i in ids)


def make_palindromes(
    count: int,
    min_length: int = 6,
    max_length: int = 16,
    alphabet: str = "abcd",
    seed: int = 0,
) -> PalindromeData:
    """Generate a balanced palindrome-detection task (half palindromes, half not).

    Each non-palindrome is a palindrome with one to three letters changed, so that
    telling them apart needs comparing letters at mirrored positions across the whole
    sequence: a task for bidirectional self-attention. Deterministic given ``seed``.
    """
    from course_lib.batching import seeded_generator

    count = check_size("count", count, minimum=0)
    min_length = check_size("min_length", min_length, minimum=2)
    max_length = check_size("max_length", max_length, minimum=2, maximum=2**16)
    if min_length > max_length:
        raise ValueError(f"min_length ({min_length}) must not exceed max_length ({max_length})")
    check_elements("count x max_length", count * max_length)
    check_instance("alphabet", alphabet, str, "a string of distinct letters")
    if len(alphabet) < 2 or len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet must have at least 2 distinct letters, got {alphabet!r}")
    generator = seeded_generator(seed)
    size = len(alphabet)
    lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator)
    letters = torch.randint(1, size + 1, (count, max_length), generator=generator)
    positions = torch.arange(max_length)
    inside = positions < lengths[:, None]
    mirrored = (lengths[:, None] - 1 - positions).clamp_min(0)  # mirror of each position
    first_half = positions < (lengths[:, None] + 1) // 2
    palindrome = torch.where(first_half, letters, letters.gather(1, mirrored))
    labels = (torch.rand(count, generator=generator) < 0.5).long()
    # Change 1-3 letters of the non-palindromes, each to a different letter.
    changes = torch.randint(1, 4, (count,), generator=generator)
    noise_rank = torch.rand(count, max_length, generator=generator).masked_fill(~inside, 2.0)
    order = noise_rank.argsort(dim=1).argsort(dim=1)  # rank of each position's draw
    change = (order < changes[:, None]) & inside & (labels == 0)[:, None]
    shift = torch.randint(1, size, (count, max_length), generator=generator)
    tokens = torch.where(change, (palindrome - 1 + shift) % size + 1, palindrome)
    # A change may be undone by a mirrored change, or hit the middle letter of an odd
    # length: label by what the sequence really is.
    reversed_tokens = tokens.gather(1, mirrored)
    is_palindrome = ((tokens == reversed_tokens) | ~inside).all(dim=1)
    tokens = tokens.masked_fill(~inside, 0)
    return PalindromeData(tokens, lengths, is_palindrome.long(), alphabet)


@dataclass
class ClassifierConfig:
    """Sizes and options of ``TransformerClassifier``. ``dim_feedforward`` None means
    ``4 * d_model``; ``init_std`` (BERT: 0.02) is the standard deviation of the token and
    position embeddings at initialisation, so that neither drowns the other."""

    vocab_size: int
    num_classes: int
    max_length: int
    d_model: int = 64
    nhead: int = 4
    num_layers: int = 2
    dim_feedforward: Optional[int] = None
    dropout: float = 0.0
    pad_id: int = 0
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_classes", "d_model", "nhead"):
            check_size(name, getattr(self, name))
        check_size("max_length", self.max_length, maximum=2**20)
        check_size("num_layers", self.num_layers, maximum=10_000)
        if self.d_model % self.nhead:
            raise ValueError(f"nhead ({self.nhead}) must divide d_model ({self.d_model})")
        if self.dim_feedforward is None:
            self.dim_feedforward = 4 * self.d_model
        check_size("dim_feedforward", self.dim_feedforward)
        check_float("dropout", self.dropout, 0.0, 1.0, include_maximum=False)
        check_float("init_std", self.init_std, 0.0, include_minimum=False)
        check_int("pad_id", self.pad_id, 0, self.vocab_size - 1)
        check_elements("(vocab_size + max_length) x d_model + num_layers x d_model x "
                       "dim_feedforward", (self.vocab_size + self.max_length) * self.d_model
                       + self.num_layers * 2 * self.d_model * (self.dim_feedforward
                       + 2 * self.d_model))  # fmt: skip


class TransformerClassifier(FromConfig, nn.Module):
    """An encoder-only (BERT-like) sequence classifier.

    A learnable ``[CLS]`` vector is put in front of the token embeddings (plus learned
    position embeddings); pre-LN blocks let every position attend to every real position
    in both directions (padding, id ``pad_id``, is masked out); a final LayerNorm and a
    linear head read the ``[CLS]`` output.

    ``forward(tokens [B, L], targets=None)`` returns ``(logits [B, K], loss)``. The sizes
    live in a ``ClassifierConfig`` (``model.config``).
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        d_model: int = ClassifierConfig.d_model,
        nhead: int = ClassifierConfig.nhead,
        num_layers: int = ClassifierConfig.num_layers,
        dim_feedforward: Optional[int] = ClassifierConfig.dim_feedforward,
        dropout: float = ClassifierConfig.dropout,
        pad_id: int = ClassifierConfig.pad_id,
        init_std: float = ClassifierConfig.init_std,
    ) -> None:
        super().__init__()
        self.config = config = ClassifierConfig(
            vocab_size, num_classes, max_length, d_model, nhead, num_layers, dim_feedforward,
            dropout, pad_id, init_std,
        )  # fmt: skip
        self.vocab_size, self.num_classes = vocab_size, num_classes
        self.pad_id, self.max_length = pad_id, max_length
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position_embedding = nn.Parameter(torch.randn(1, max_length + 1, d_model) * init_std)
        # As in BERT: tokens and positions start at the same small scale, so that neither
        # drowns the other (the default N(0, 1) embedding would hide the positions).
        nn.init.normal_(self.token_embedding.weight, std=init_std)
        with torch.no_grad():
            self.token_embedding.weight[pad_id].zero_()
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model, nhead, config.dim_feedforward, dropout, "gelu", norm_first=True
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def _embed(self, tokens: Tensor) -> Tuple[Tensor, Tensor]:
        check_token_ids("tokens", tokens, self.vocab_size, "B, L", cpu_only=True)
        batch, length = tokens.shape
        if length > self.max_length:
            raise ValueError(
                f"tokens has {length} positions, more than max_length={self.max_length}"
            )
        x = self.token_embedding(tokens)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        x = x + self.position_embedding[:, : length + 1]
        real = torch.cat(
            [tokens.new_ones(batch, 1, dtype=torch.bool), tokens != self.pad_id], dim=1
        )
        return x, real[:, None, None, :]  # mask [B, 1, 1, L + 1]: attend to real tokens

    def forward(
        self, tokens: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Class logits [B, K] for tokens [B, L] and, given ``targets`` [B], the loss."""
        x, mask = self._embed(tokens)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.head(self.norm(x[:, 0]))
        if targets is None:
            return logits, None
        check_token_ids("targets", targets, self.num_classes, f"{tokens.shape[0]}", cpu_only=True)
        return logits, F.cross_entropy(logits, targets)

    @torch.no_grad()
    def attention_maps(self, tokens: Tensor) -> Tensor:
        """Attention weights of every block: [layers, B, H, L + 1, L + 1] (index 0 = [CLS])."""
        maps = attention_maps(self, tokens)
        return torch.stack([maps[f"blocks.{k}.self_attn"] for k in range(len(self.blocks))])
