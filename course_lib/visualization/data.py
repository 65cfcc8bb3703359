"""The chapter's data: one coloured shape per image, and digits that pixel-space
neighbours cannot read (scikit-learn's 8x8 digits at random positions and scales)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.validation import check_float, check_int, check_tensor

#: The most float32 values (images x channels x height x width) one call generates: 1 GiB.
MAX_PIXELS = 2**28


def _check_pixels(names: str, images: int, channels: int, size: int) -> None:
    """Refuse a data set too large for memory before generating any of it."""
    pixels = images * channels * size * size
    if pixels > MAX_PIXELS:
        raise ValueError(
            f"{names} ask for {images} images of {channels}x{size}x{size}: {pixels} float32 "
            f"values ({pixels * 4 / 2**30:.1f} GiB), more than the {MAX_PIXELS} (1 GiB) one "
            "call generates; ask for fewer or smaller images"
        )


@dataclass
class ShapesClassification:
    """RGB images with exactly one shape each: ``images`` float32 [N, 3, H, W] in [0, 1],
    ``shapes`` int64 [N] (index into ``course_lib.data.SHAPE_CLASSES``), ``colors``
    int64 [N] (index into ``course_lib.data.SHAPE_COLORS``) and the shape's box
    ``boxes`` float32 [N, 4] (x1, y1, x2, y2 in pixels)."""

    images: Tensor
    shapes: Tensor
    colors: Tensor
    boxes: Tensor

    @property
    def targets(self) -> Tensor:
        """Both labels side by side, [N, 2]: the targets of a two-head ``SmallCNN``."""
        return torch.stack([self.shapes, self.colors], dim=1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"ShapesClassification({len(self)} images, {tuple(self.images.shape[1:])})"


def load_shapes_classification(
    num_images: int, image_size: int = 32, seed: int = 0
) -> ShapesClassification:
    """Render ``num_images`` images of one circle, square or triangle in one of six colours.

    Built on ``course_lib.data.ShapesDataset`` (seeded, deterministic); returns a
    ``ShapesClassification`` with images [N, 3, H, W] (H = W = ``image_size``, at least 16).
    """
    from course_lib.data import ShapesDataset

    num_images = check_int("num_images", num_images, 0)
    image_size = check_int("image_size", image_size, 16)
    seed = check_int("seed", seed, 0)
    _check_pixels("num_images and image_size", num_images, 3, image_size)
    dataset = ShapesDataset(
        num_images, image_size=image_size, min_objects=1, max_objects=1,
        min_size=0.35, max_size=0.7, seed=seed,
    )  # fmt: skip
    items = [dataset[index] for index in range(num_images)]
    if not items:
        empty = torch.zeros(0, dtype=torch.int64)
        return ShapesClassification(
            torch.zeros(0, 3, image_size, image_size), empty, empty.clone(), torch.zeros(0, 4)
        )
    return ShapesClassification(
        images=torch.stack([image for image, _ in items]),
        shapes=torch.cat([target["labels"] for _, target in items]),
        colors=torch.cat([target["colors"] for _, target in items]),
        boxes=torch.cat([target["boxes"] for _, target in items]),
    )


@dataclass
class HardDigits:
    """Digits placed at random positions and scales on a noisy canvas.

    Images are float32 [N, 1, S, S] in [0, 1] (S = ``canvas_size``), labels int64 [N].
    Training and test images are drawn from disjoint sets of the original 8x8 digits
    (``course_lib.data.load_digits``' split), so a test digit never appears in training.
    ``train_source``/``test_source`` give the index of each image's original digit and
    ``train_boxes``/``test_boxes`` [N, 4] where its 8x8 square landed (x1, y1, x2, y2 in
    pixels).
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    train_source: Tensor
    test_source: Tensor
    train_boxes: Tensor
    test_boxes: Tensor

    def __repr__(self) -> str:
        return (
            f"HardDigits(train={len(self.train_labels)}, test={len(self.test_labels)}, "
            f"image shape={tuple(self.train_images.shape[1:])})"
        )


def _check_scales(min_scale: float, max_scale: float, noise: float) -> Tuple[float, float, float]:
    min_scale = check_float("min_scale", min_scale, 0.0, 1.0, include_minimum=False)
    max_scale = check_float("max_scale", max_scale, 0.0, 1.0, include_minimum=False)
    if min_scale > max_scale:
        raise ValueError(
            f"min_scale must not exceed max_scale, got min_scale={min_scale}, max_scale={max_scale}"
        )
    return min_scale, max_scale, check_float("noise", noise, 0.0)


def place_digits(
    digits: Tensor,
    canvas_size: int,
    min_scale: float,
    max_scale: float,
    noise: float,
    generator: Optional[torch.Generator],
) -> Tuple[Tensor, Tensor]:
    """Paste images [N, 1, h, w] onto [N, 1, S, S] canvases at random scales and positions.

    Each digit is resized (bilinear) to a side of ``min_scale``..``max_scale`` times the
    canvas (0 < min_scale <= max_scale <= 1), placed uniformly at random where it fits,
    and Gaussian noise of standard deviation ``noise`` is added; values are clipped to
    [0, 1]. One ``grid_sample`` call does the whole batch. Returns the canvases and the
    boxes [N, 4] (x1, y1, x2, y2 in pixels) that the digits now fill.
    """
    check_tensor("digits", digits, "N, 1, h, w", dtype="floating", finite=True)
    canvas_size = check_int("canvas_size", canvas_size, 1)
    min_scale, max_scale, noise = _check_scales(min_scale, max_scale, noise)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    _check_pixels("digits and canvas_size", digits.shape[0], 1, canvas_size)
    count = digits.shape[0]
    side = min_scale + (max_scale - min_scale) * torch.rand(count, generator=generator)
    # In normalised coordinates the canvas spans [-1, 1]; a digit of relative size s
    # fits when its centre lies in [-(1 - s), 1 - s].
    centre = (torch.rand(count, 2, generator=generator) * 2 - 1) * (1 - side)[:, None]
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / side
    theta[:, :, 2] = -centre / side[:, None]
    grid = F.affine_grid(theta, [count, 1, canvas_size, canvas_size], align_corners=False)
    canvas = F.grid_sample(digits.float().cpu(), grid, mode="bilinear", align_corners=False)
    canvas = canvas + noise * torch.randn(canvas.shape, generator=generator)
    centre_pixels = (centre + 1) / 2 * canvas_size  # [N, 2] as (x, y)
    half = (side * canvas_size / 2)[:, None]
    boxes = torch.cat([centre_pixels - half, centre_pixels + half], dim=1)
    return canvas.clamp(0, 1).to(digits), boxes


def load_hard_digits(
    canvas_size: int = 32,
    train_copies: int = 3,
    test_copies: int = 2,
    min_scale: float = 0.3,
    max_scale: float = 0.6,
    noise: float = 0.2,
    seed: int = 0,
) -> HardDigits:
    """The harder digits: each original digit pasted ``train_copies`` (or ``test_copies``)
    times at a random scale and position on a ``canvas_size`` square with noise.

    With the defaults: 4311 training and 720 test images [1, 32, 32]. Deterministic for
    a given ``seed``. See ``HardDigits`` for the fields.
    """
    from course_lib.data import load_digits

    canvas_size = check_int("canvas_size", canvas_size, 8)
    train_copies = check_int("train_copies", train_copies, 1)
    test_copies = check_int("test_copies", test_copies, 1)
    min_scale, max_scale, noise = _check_scales(min_scale, max_scale, noise)
    seed = check_int("seed", seed, 0)
    digits = load_digits()
    _check_pixels(
        "train_copies and canvas_size", train_copies * len(digits.train_labels), 1, canvas_size
    )
    _check_pixels(
        "test_copies and canvas_size", test_copies * len(digits.test_labels), 1, canvas_size
    )
    generator = torch.Generator().manual_seed(seed)

    def make(images: Tensor, labels: Tensor, copies: int) -> Tuple[Tensor, ...]:
        source = torch.arange(len(labels)).repeat(copies)
        placed, boxes = place_digits(
            images[source], canvas_size, min_scale, max_scale, noise, generator
        )
        return placed, labels[source], source, boxes

    train = make(digits.train_images, digits.train_labels, train_copies)
    test = make(digits.test_images, digits.test_labels, test_copies)
    return HardDigits(train[0], train[1], test[0], test[1], train[2], test[2], train[3], test[3])
