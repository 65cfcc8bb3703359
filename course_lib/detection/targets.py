"""Detection targets (one dict per image) and training batches of the shapes images.

A target is a dict with ``boxes`` [K, 4] (x1, y1, x2, y2, finite floats) and ``labels`` [K]
(integer classes); other keys (``colors``) ride along. K may be 0: an image with no object is
a normal training image. Shape letters: ``N`` images, ``B`` a batch, ``C``, ``H``, ``W``
channels, height and width, ``K`` objects in one image.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from course_lib.validation import check_bool, check_int, check_sequence, check_tensor

__all__ = ["check_targets", "random_batches", "shapes_tensors"]

Target = Dict[str, Tensor]


def check_targets(
    targets: object, num_images: int, num_classes: Optional[int] = None, name: str = "targets"
) -> List[Target]:
    """Check a list of ``num_images`` target dicts; labels in ``[0, num_classes)`` if given."""
    check_sequence(name, targets)
    if len(targets) != num_images:
        raise ValueError(f"{name} must hold one dict per image ({num_images}), got {len(targets)}")
    for index, target in enumerate(targets):
        where = f"{name}[{index}]"
        if not isinstance(target, dict):
            raise TypeError(
                f"{where} must be a dict with 'boxes' [K, 4] and 'labels' [K], got "
                f"{type(target).__name__}"
            )
        missing = [key for key in ("boxes", "labels") if key not in target]
        if missing:
            raise ValueError(
                f"{where} must have 'boxes' [K, 4] and 'labels' [K], missing {missing}"
            )
        sizes: Dict[str, int] = {}
        check_tensor(f"{where}['boxes']", target["boxes"], "K, 4", dtype="floating",
                     sizes=sizes, finite=True)  # fmt: skip
        labels = check_tensor(f"{where}['labels']", target["labels"], "K", dtype="integer",
                              sizes=sizes)  # fmt: skip
        if num_classes is not None and labels.numel():
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= num_classes:
                raise ValueError(
                    f"{where}['labels'] must be classes in [0, {num_classes - 1}], got values "
                    f"from {low} to {high}"
                )
    return list(targets)


def shapes_tensors(dataset: torch.utils.data.Dataset) -> Tuple[Tensor, List[Target]]:
    """Render every item of a ``ShapesDataset`` once: images [N, 3, H, W] and N target dicts."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise TypeError(
            f"dataset must be a Dataset of (image, target) pairs, got {type(dataset).__name__}"
        )
    if len(dataset) == 0:
        raise ValueError("dataset must contain at least one image, got an empty dataset")
    items = [dataset[index] for index in range(len(dataset))]
    for index, item in enumerate(items):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"dataset[{index}] must be an (image, target) pair, got {item!r:.60}")
        check_tensor(f"dataset[{index}] image", item[0], "C, H, W", sizes={}, dtype="floating")
    shapes = {tuple(image.shape) for image, _ in items}
    if len(shapes) > 1:
        raise ValueError(f"dataset images must all have one shape, got {sorted(shapes)}")
    images = torch.stack([image for image, _ in items])
    return images, check_targets([target for _, target in items], len(items), name="dataset")


def _flip_targets(targets: List[Target], width: int) -> List[Target]:
    flipped = []
    for target in targets:
        boxes = target["boxes"]
        mirrored = torch.stack(
            [width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1
        )
        flipped.append({**target, "boxes": mirrored})
    return flipped


def random_batches(
    images: Tensor,
    targets: Sequence[Target],
    batch_size: int,
    flip: bool = True,
    seed: int = 0,
) -> Callable[[], Tuple[Tensor, List[Target]]]:
    """A function returning a random training batch ``(images [B, 3, H, W], targets)`` per call.

    ``images`` [N, C, H, W] and their N ``targets``; each call draws ``batch_size`` of them
    with replacement (seeded by ``seed``). With ``flip`` each batch is mirrored left-right
    with probability 1/2 (the shapes stay valid: circles, squares and upright triangles are
    symmetric). Pass it to ``course_lib.train.fit`` as ``data``.
    """
    check_tensor("images", images, "N, C, H, W", dtype="floating")
    if images.shape[0] == 0:
        raise ValueError("images must hold at least one image, got [0, ...]")
    targets = check_targets(targets, images.shape[0])
    batch_size = check_int("batch_size", batch_size, 1)
    flip = check_bool("flip", flip)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0))

    def next_batch() -> Tuple[Tensor, List[Target]]:
        index = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        batch_images = images[index.to(images.device)]
        batch_targets = [targets[i] for i in index.tolist()]
        if flip and bool(torch.rand((), generator=generator) < 0.5):
            batch_images = batch_images.flip(-1)
            batch_targets = _flip_targets(batch_targets, images.shape[-1])
        return batch_images, batch_targets

    return next_batch
