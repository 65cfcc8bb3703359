"""Plumbing shared by the generative models: seeds, devices, input checks, size limits."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from course_lib.validation import check_int, check_like, check_sequence, check_tensor

#: The most sequential steps one call runs (EM iterations, pixels sampled one by one,
#: sampling passes): an absurd count fails at once instead of running for days.
MAX_STEPS = 10**6
#: The most values one call allocates (64 GiB of float32, more than the course ever needs).
MAX_ELEMENTS = 2**34
#: The widest layer or latent code a model of this module may have.
MAX_WIDTH = 2**16


def check_elements(names: str, count: int) -> int:
    """Raise ValueError when the sizes named in ``names`` multiply to an absurd allocation."""
    if count > MAX_ELEMENTS:
        raise ValueError(
            f"{names} = {count:,} values (about {count * 4 / 2**30:,.0f} GiB in float32) is more "
            f"than the {MAX_ELEMENTS:,} this module allocates; choose smaller sizes"
        )
    return count


def check_data_shape(data_shape: object) -> Tuple[int, ...]:
    """The shape of one data item, e.g. ``(1, 8, 8)``: a non-empty tuple of positive ints."""
    sizes = check_sequence("data_shape", data_shape)
    if not sizes:
        raise ValueError("data_shape must hold at least one size, such as (1, 8, 8), got ()")
    shape = tuple(check_int("data_shape", size, 1, MAX_WIDTH**2) for size in sizes)
    check_elements("the product of data_shape", math.prod(shape))
    return shape


def first_parameter(module: nn.Module) -> Tensor:
    """The first parameter of ``module``: its device and dtype are the model's."""
    return next(module.parameters())


def check_data(name: str, x: object, data_shape: Tuple[int, ...], module: nn.Module) -> Tensor:
    """Data ``[B, *data_shape]`` in the floating dtype, and on the device, of ``module``."""
    wanted = "B, " + ", ".join(map(str, data_shape))
    x = check_tensor(name, x, wanted, dtype="floating")
    return check_like(name, x, first_parameter(module))


def cpu_generator(seed: Optional[int]) -> Optional[torch.Generator]:
    """A CPU generator for ``seed`` (None: use the global RNG).

    Noise is drawn on the CPU and then moved, so a seed gives the same samples on every
    device (CPU, CUDA, MPS).
    """
    if seed is None:
        return None
    return torch.Generator().manual_seed(check_int("seed", seed, 0, 2**63 - 1))


def check_count(name: str, count: object, per_item: int = 1) -> int:
    """A number of samples or images (>= 0) whose values, ``per_item`` each, fit in memory."""
    count = check_int(name, count, 0, MAX_ELEMENTS)
    check_elements(f"{name} x the values of one item", count * per_item)
    return count


def precise_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Evaluate without dropout, then restore the module's training flag."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def mlp(sizes: Sequence[int], activation: type = nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none at the end)."""
    layers: List[nn.Module] = []
    for index, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(size_in, size_out))
        if index < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def check_targets(targets: object, x: Tensor) -> Tensor:
    """What a loss compares with: ``x`` itself (``targets=None``) or a tensor of x's shape."""
    if targets is None:
        return x
    targets = check_tensor("targets", targets, dtype="real", device=x.device)
    if targets.shape != x.shape:
        raise ValueError(
            f"targets must have the shape of x, {list(x.shape)}, got {list(targets.shape)}"
        )
    return targets


def check_latent(z: object, latent_dim: int, module: nn.Module) -> Tensor:
    """Latent codes z [B, Z] in the floating dtype, and on the device, of ``module``."""
    z = check_tensor("z", z, f"B, {latent_dim}", dtype="floating")
    return check_like("z", z, first_parameter(module))
