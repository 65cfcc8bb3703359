"""Box helpers shared by the detection checks."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from course_lib.checks.hints import diagnose

_diagnose = diagnose


def _random_boxes(n: int, seed: int, device: torch.device, size: float = 50.0) -> Tensor:
    """Seeded float64 boxes [n, 4] inside [0, size]², sides between 1 and size / 2."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size / 2
    sides = 1 + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (size / 2 - 1)
    return torch.cat([corner, corner + sides], dim=1).to(device)


def _boxes(rows: Sequence[Sequence[float]], device: torch.device) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64, device=device).reshape(-1, 4)


# --------------------------------------------------------------------------------------
# IoU of all pairs
# --------------------------------------------------------------------------------------
