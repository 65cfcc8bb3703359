"""Anchors, matching anchors (or proposals) to objects, and sampling them for the loss.

Shape letters: ``H`` and ``W`` the feature map's height and width, ``A`` anchors per
position, ``N`` anchors or proposals, ``M`` ground-truth boxes.
"""

from __future__ import annotations

import numbers
from functools import partial
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from course_lib.detection.boxes import check_pair, pairwise_iou, upcast
from course_lib.validation import (
    check_bool,
    check_float,
    check_int,
    check_probability,
    check_same_device,
    check_sequence,
    check_tensor,
)

__all__ = ["generate_anchors", "match_anchors", "sample_labels"]

Size2 = Union[int, Tuple[int, int], Sequence[int]]
Numbers = Union[float, Sequence[float]]


def _positive(name: str, value: object) -> float:
    return check_float(name, value, 0.0, include_minimum=False)


def positive_numbers(name: str, value: Numbers) -> Tuple[float, ...]:
    """A positive number or a non-empty list of them (a single number is a list of one)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (_positive(name, value),)
    check_sequence(name, value)
    if len(value) == 0:
        raise ValueError(f"{name} must hold at least one positive number, got an empty list")
    return tuple(_positive(f"{name}[{i}]", v) for i, v in enumerate(value))


def generate_anchors(
    feature_size: Size2,
    stride: Union[float, Tuple[float, float]],
    sizes: Numbers,
    aspect_ratios: Numbers = (1.0,),
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Anchor boxes at every position of a feature map: [H * W * A, 4] in (x1, y1, x2, y2).

    Position (i, j) of an H x W feature map (``feature_size``: an int or (H, W)) with
    ``stride`` pixels per cell (a number or (stride_y, stride_x)) gets ``A =
    len(aspect_ratios) * len(sizes)`` anchors centred on its cell, ``((j + 0.5) * stride,
    (i + 0.5) * stride)``. An anchor of size ``s`` and aspect ratio ``r = h / w`` has area
    ``s**2``: ``w = s / sqrt(r)``, ``h = s * sqrt(r)``. ``sizes`` and ``aspect_ratios`` are
    positive numbers or lists of them; ``dtype`` a floating dtype. Rows are ordered by
    position (row-major), then ratio, then size, as in torchvision's ``AnchorGenerator``
    (which centres anchors on the cell's corner and rounds them; this version does not).
    """
    height, width = check_pair("feature_size", feature_size, partial(check_int, minimum=1))
    stride_y, stride_x = check_pair("stride", stride, _positive)
    scales = torch.tensor(positive_numbers("sizes", sizes), dtype=torch.float64)
    ratios = torch.tensor(positive_numbers("aspect_ratios", aspect_ratios), dtype=torch.float64)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    half_w = (scales[None, :] / ratios.sqrt()[:, None]).reshape(-1) / 2  # [A]
    half_h = (scales[None, :] * ratios.sqrt()[:, None]).reshape(-1) / 2
    base = torch.stack([-half_w, -half_h, half_w, half_h], dim=1)  # [A, 4], centred at 0
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) * stride_y
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) * stride_x
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # [H * W, 1, 4]
    return (centres + base).reshape(-1, 4).to(device=device, dtype=dtype)


def match_anchors(
    anchors: Tensor,
    gt_boxes: Tensor,
    high: float,
    low: float,
    allow_low_quality: bool = True,
) -> Tensor:
    """Match each anchor (or proposal) [N, 4] to a ground-truth box [M, 4] by IoU: [N] int64.

    Entry ``n`` is the index of the ground-truth box with the largest IoU when that IoU is
    at least ``high``, ``-1`` (background) when it is below ``low`` and ``-2`` (ignored)
    in between (``0 <= low <= high <= 1``). With ``allow_low_quality`` every ground-truth
    box also claims the anchors that overlap it best, even below ``high``, so no object is
    left without an anchor (as in Faster R-CNN). Behaves like torchvision's ``Matcher``.
    With no ground-truth box every anchor is background.
    """
    check_tensor("anchors", anchors, "N, 4", dtype="real", finite=True)
    check_tensor("gt_boxes", gt_boxes, "M, 4", dtype="real", finite=True)
    check_same_device(anchors=anchors, gt_boxes=gt_boxes)
    high, low = check_probability("high", high), check_probability("low", low)
    if low > high:
        raise ValueError(
            f"low must not exceed high (0 <= low <= high <= 1), got low={low}, high={high}"
        )
    allow_low_quality = check_bool("allow_low_quality", allow_low_quality)
    n = anchors.shape[0]
    if gt_boxes.shape[0] == 0 or n == 0:
        return torch.full((n,), -1, dtype=torch.long, device=anchors.device)
    iou = pairwise_iou(upcast(gt_boxes), upcast(anchors))  # [M, N]
    best_iou, matches = iou.max(dim=0)
    all_matches = matches.clone()
    matches[best_iou < high] = -2
    matches[best_iou < low] = -1
    if allow_low_quality:
        best_per_gt = iou.max(dim=1, keepdim=True).values
        claimed = ((iou == best_per_gt) & (best_per_gt > 0)).any(dim=0)
        matches[claimed] = all_matches[claimed]
    return matches


def sample_labels(
    labels: Tensor,
    num_samples: int,
    positive_fraction: float,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    """Pick a random, balanced subset of anchors or proposals for the loss.

    ``labels`` [N] (integers): ``> 0`` positive, ``0`` negative, ``< 0`` ignored. Draws up
    to ``num_samples * positive_fraction`` positives and fills the rest with negatives.
    ``generator`` (a CPU ``torch.Generator``) makes the draw reproducible. Returns boolean
    masks ``(positive, negative)``, each [N].
    """
    check_tensor("labels", labels, "N", dtype="integer")
    num_samples = check_int("num_samples", num_samples, 0)
    positive_fraction = check_probability("positive_fraction", positive_fraction)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    positive, negative = labels > 0, labels == 0
    num_pos = min(int(positive.sum()), int(num_samples * positive_fraction))
    num_neg = min(int(negative.sum()), num_samples - num_pos)
    keys = torch.rand(labels.shape, generator=generator, device="cpu").to(labels.device)

    def take(mask: Tensor, count: int) -> Tensor:
        ranked = torch.where(mask, keys, torch.full_like(keys, 2.0)).argsort()
        chosen = torch.zeros_like(mask)
        chosen[ranked[:count]] = True
        return chosen & mask

    return take(positive, num_pos), take(negative, num_neg)
