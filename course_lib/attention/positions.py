"""Positional encodings: the fixed sinusoids of "Attention Is All You Need" and learned
position vectors.

Shape letters: ``B`` batch, ``L`` sequence length, ``D`` features.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn

from course_lib.validation import (
    check_device,
    check_elements,
    check_instance,
    check_like,
    check_size,
    check_tensor,
)

__all__ = ["LearnedPositionalEmbedding", "sinusoidal_positional_encoding"]


def sinusoidal_positional_encoding(
    length: int,
    dim: int,
    *,
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The fixed encodings of "Attention Is All You Need": [length, dim].

    ``PE[p, 2i] = sin(p / 10000^(2i/dim))`` and ``PE[p, 2i+1] = cos(p / 10000^(2i/dim))``:
    each pair of features is a rotation at its own frequency, so ``PE[p + k]`` is a fixed
    linear function of ``PE[p]`` for every offset k.
    """
    length = check_size("length", length, minimum=0)
    dim = check_size("dim", dim, minimum=0)
    check_elements("length x dim", length * dim)
    device = check_device("device", device)
    check_instance("dtype", dtype, torch.dtype, "a torch.dtype")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
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
        max_length = check_size("max_length", max_length)
        dim = check_size("dim", dim)
        check_elements("max_length x dim", max_length * dim)
        self.weight = nn.Parameter(torch.randn(max_length, dim) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        max_length, dim = self.weight.shape
        check_tensor("x", x, f"B, L, {dim}", dtype="floating")
        check_like("x", x, self.weight)
        if x.shape[1] > max_length:
            raise ValueError(
                f"x must have at most max_length = {max_length} positions, got {list(x.shape)}"
            )
        return x + self.weight[: x.shape[1]]
