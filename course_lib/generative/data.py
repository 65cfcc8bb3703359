"""Data helpers: binarising images, nats to bits per dimension, batches, non-digit shapes."""

from __future__ import annotations

import math
from typing import Iterator, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.generative._common import MAX_STEPS, cpu_generator
from course_lib.validation import check_float, check_int, check_tensor


def binarize(images: Tensor, threshold: float = 0.5) -> Tensor:
    """Binary images: 1.0 where ``images > threshold``, else 0.0 (same shape, float).

    The density models of the chapter model binary 8x8 digits; ``threshold=0.5`` on
    digits scaled to [0, 1] keeps the strokes and drops the faint anti-aliased edges.
    """
    images = check_tensor("images", images, dtype="real")
    threshold = check_float("threshold", threshold)
    dtype = images.dtype if images.is_floating_point() else torch.float32
    return (images > threshold).to(dtype)


def nats_to_bits_per_dim(nats: Union[float, Tensor], num_dims: int) -> Union[float, Tensor]:
    """Convert a negative log-likelihood in nats per item to bits per dimension.

    ``bits/dim = nats / (num_dims * ln 2)``: for 8x8 images ``num_dims = 64``. ``nats`` is a
    number or a floating-point tensor (any shape).
    """
    if isinstance(nats, Tensor):
        check_tensor("nats", nats, dtype="floating")
    else:
        check_float("nats", nats)
    num_dims = check_int("num_dims", num_dims, 1)
    return nats / (num_dims * math.log(2.0))


def shuffled_batches(data: Tensor, batch_size: int = 64, seed: int = 0) -> Iterator[Tuple[Tensor]]:
    """Endless mini-batches ``(x,)`` of the rows of ``data`` [N, ...], for ``fit``.

    Every epoch is a fresh seeded permutation; the last incomplete batch of an epoch is
    dropped (unless N < ``batch_size``, when each batch is the whole data set). The
    arguments are checked at once, not at the first batch.
    """
    check_tensor("data", data)
    if data.dim() == 0 or len(data) == 0:
        raise ValueError(f"data must have shape [N, ...] with N >= 1, got {list(data.shape)}")
    batch_size = check_int("batch_size", batch_size, 1)
    generator = cpu_generator(check_int("seed", seed, 0))
    size = min(batch_size, len(data))

    def batches() -> Iterator[Tuple[Tensor]]:
        while True:
            order = torch.randperm(len(data), generator=generator).to(data.device)
            for start in range(0, len(data) - size + 1, size):
                yield (data[order[start : start + size]],)

    return batches()


def shapes_as_digits(num_images: int, seed: int = 0) -> Tensor:
    """Images that are not digits: the course's shapes data as 8x8 grey images [N, 1, 8, 8].

    One or two filled circles, squares or triangles (``course_lib.data.ShapesDataset``
    at 16x16, averaged over colour and 2x2 pooled), each image scaled to a maximum of 1:
    the same format as the digits, for testing whether a model notices the difference.
    """
    from course_lib.data import ShapesDataset

    num_images = check_int("num_images", num_images, 0, MAX_STEPS)  # rendered one by one
    shapes = ShapesDataset(
        max(num_images, 1), image_size=16, min_objects=1, max_objects=2,
        min_size=0.3, max_size=0.7, seed=check_int("seed", seed, 0),
    )  # fmt: skip
    items = [shapes[index][0] for index in range(num_images)]
    images = torch.stack(items) if items else torch.zeros(0, 3, 16, 16)
    grey = F.avg_pool2d(images.mean(1, keepdim=True), 2)
    return grey / grey.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)
