"""Box operations: area, IoU, formats, clipping and the R-CNN box transform.

Boxes are float ``(x1, y1, x2, y2)`` in pixels with continuous coordinates (no +1), as in
``torchvision.ops``. Shape letters: ``N`` and ``M`` numbers of boxes; ``...`` any leading
dimensions. The element-wise functions here follow IEEE arithmetic like any torch op (a NaN
coordinate gives a NaN result); the functions that take decisions from boxes (NMS, RoI ops,
matching, evaluation) reject non-finite boxes.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Tuple, TypeVar

import torch
from torch import Tensor

from course_lib.validation import check_choice, check_float, check_int, check_sequence, check_tensor

__all__ = [
    "BOX_FORMATS",
    "BOX_SCALE_CLAMP",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes_to_image",
    "decode_boxes",
    "encode_boxes",
    "generalized_box_iou",
    "remove_small_boxes",
]

T = TypeVar("T")

#: The three box formats of ``box_convert``.
BOX_FORMATS = ("xyxy", "xywh", "cxcywh")
#: Largest log-scale change ``decode_boxes`` applies (as in torchvision): exp(4.135) ≈ 62.5.
BOX_SCALE_CLAMP = math.log(1000.0 / 16)


def upcast(t: Tensor) -> Tensor:
    """Half precision to float32 and small integers to int32, as torchvision does."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def areas(boxes: Tensor) -> Tensor:
    """``(x2 - x1) * (y2 - y1)`` of boxes [..., 4], without checks: [...]."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def pairwise_intersection(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Area of the intersection of every pair, without checks: [..., N, 4], [..., M, 4] ->
    [..., N, M]."""
    # Width and height of every intersection, [..., N, M] each; no [..., N, M, 2] temporaries.
    width = torch.min(boxes1[..., :, None, 2], boxes2[..., None, :, 2]) - torch.max(
        boxes1[..., :, None, 0], boxes2[..., None, :, 0]
    )
    height = torch.min(boxes1[..., :, None, 3], boxes2[..., None, :, 3]) - torch.max(
        boxes1[..., :, None, 1], boxes2[..., None, :, 1]
    )
    return width.clamp_(min=0) * height.clamp_(min=0)


def pairwise_iou(
    boxes1: Tensor,
    boxes2: Tensor,
    area1: Optional[Tensor] = None,
    area2: Optional[Tensor] = None,
) -> Tensor:
    """IoU of every pair, the one IoU of the library: [..., N, 4] and [..., M, 4] -> [..., N, M].

    No checks (callers validate). The arithmetic is that of torchvision's ``box_iou`` and of
    its NMS kernel (``inter / (area1 + area2 - inter)`` in the boxes' precision), so that
    ``nms`` can compare it with a threshold and keep exactly the same boxes; two boxes with
    union 0 have IoU 0 instead of NaN. ``area1`` / ``area2`` may be passed when known.
    """
    area1 = areas(boxes1) if area1 is None else area1
    area2 = areas(boxes2) if area2 is None else area2
    inter = pairwise_intersection(boxes1, boxes2)
    iou = inter / (area1[..., :, None] + area2[..., None, :] - inter)
    if iou.is_floating_point():
        iou = iou.nan_to_num_(nan=0.0, posinf=math.inf, neginf=-math.inf)  # 0 / 0 -> 0
    return iou


def box_area(boxes: Tensor) -> Tensor:
    """Areas ``(x2 - x1) * (y2 - y1)`` of ``boxes`` [N, 4] in (x1, y1, x2, y2): [N]."""
    check_tensor("boxes", boxes, "N, 4", dtype="real")
    return areas(upcast(boxes))


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair: ``boxes1`` [N, 4], ``boxes2`` [M, 4] -> [N, M].

    ``IoU = area(A ∩ B) / area(A ∪ B)``. Same values as ``torchvision.ops.box_iou``, except
    that two empty boxes (union 0) have IoU 0 here instead of NaN.
    """
    check_tensor("boxes1", boxes1, "N, 4", dtype="real")
    check_tensor("boxes2", boxes2, "M, 4", dtype="real")
    return pairwise_iou(upcast(boxes1), upcast(boxes2))


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Generalized IoU of every pair: ``boxes1`` [N, 4], ``boxes2`` [M, 4] -> [N, M] in [-1, 1].

    ``GIoU = IoU - area(C \\ (A ∪ B)) / area(C)`` with C the smallest box enclosing A and B
    (Rezatofighi et al., 2019): equal to the IoU when C is the union, and still telling how
    far apart two disjoint boxes are (IoU is 0 for all of them). DETR's matching cost and
    loss use it. Same values as ``torchvision.ops.generalized_box_iou``.
    """
    check_tensor("boxes1", boxes1, "N, 4", dtype="real")
    check_tensor("boxes2", boxes2, "M, 4", dtype="real")
    boxes1, boxes2 = upcast(boxes1), upcast(boxes2)
    inter = pairwise_intersection(boxes1, boxes2)
    union = areas(boxes1)[:, None] + areas(boxes2)[None, :] - inter
    iou = inter / union
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    enclosing = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    return iou - (enclosing - union) / enclosing


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes [..., 4] between ``"xyxy"``, ``"xywh"`` (corner, size) and ``"cxcywh"``.

    ``xyxy`` = (x1, y1, x2, y2); ``xywh`` = (x1, y1, width, height); ``cxcywh`` = (centre x,
    centre y, width, height). The formulas are those of ``torchvision.ops.box_convert``.
    """
    check_tensor("boxes", boxes, "..., 4", dtype="real")
    check_choice("in_fmt", in_fmt, BOX_FORMATS)
    check_choice("out_fmt", out_fmt, BOX_FORMATS)
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    if in_fmt == "xywh":  # -> xyxy
        a, b, c, d = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        a, b, c, d = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    if out_fmt == "xywh":
        a, b, c, d = a, b, c - a, d - b
    elif out_fmt == "cxcywh":
        a, b, c, d = (a + c) / 2, (b + d) / 2, c - a, d - b
    return torch.stack((a, b, c, d), dim=-1)


def check_pair(name: str, value: object, check: Callable[[str, Any], T]) -> Tuple[T, T]:
    """One value or a pair (height, width) / (y, x), each checked by ``check(name, value)``.

    For the detection package's size and stride arguments (``output_size=7`` or ``(7, 5)``).
    """
    if isinstance(value, (list, tuple)):
        check_sequence(name, value, length=2)
        return check(f"{name}[0]", value[0]), check(f"{name}[1]", value[1])
    single = check(name, value)
    return single, single


def check_image_size(name: str, size: object) -> Tuple[int, int]:
    """An image size ``(height, width)``: two positive ints (a ``torch.Size`` works)."""
    check_sequence(name, size, length=2)
    return check_int(f"{name}[0]", size[0], 1), check_int(f"{name}[1]", size[1], 1)


def clip_boxes_to_image(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Clamp ``boxes`` [..., 4] (x1, y1, x2, y2) into an image of ``size`` = (height, width)."""
    check_tensor("boxes", boxes, "..., 4", dtype="real")
    height, width = check_image_size("size", size)
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices [K] of the boxes [N, 4] whose width and height are both at least ``min_size``."""
    check_tensor("boxes", boxes, "N, 4", dtype="real")
    min_size = check_float("min_size", min_size, 0.0)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return keep.nonzero().squeeze(1)


def _check_transform_args(
    reference: Tensor, other: Tensor, other_name: str, weights: Sequence[float]
) -> Tuple[float, float, float, float]:
    check_tensor("reference", reference, "..., 4", dtype="floating")
    check_tensor(other_name, other, "..., 4", dtype="floating")
    try:
        torch.broadcast_shapes(reference.shape, other.shape)
    except RuntimeError as error:
        raise ValueError(
            f"reference {list(reference.shape)} and {other_name} {list(other.shape)} must "
            "broadcast against each other"
        ) from error
    check_sequence("weights", weights, length=4)
    wx, wy, ww, wh = (
        check_float(f"weights[{i}]", w, 0.0, include_minimum=False) for i, w in enumerate(weights)
    )
    return wx, wy, ww, wh


def _centres_and_sizes(boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    width = boxes[..., 2] - boxes[..., 0]
    height = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * width, boxes[..., 1] + 0.5 * height, width, height


def encode_boxes(
    reference: Tensor,
    target: Tensor,
    weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
) -> Tensor:
    """The R-CNN transform (tx, ty, tw, th) that moves ``reference`` onto ``target``.

    ``reference`` (a proposal or anchor) and ``target`` (a ground-truth box) are [..., 4] in
    (x1, y1, x2, y2) and broadcast together. With centres ``(x, y)`` and sizes ``(w, h)``::

        tx = (x_t - x_r) / w_r    ty = (y_t - y_r) / h_r
        tw = log(w_t / w_r)       th = log(h_t / h_r)

    each multiplied by its entry of ``weights`` (Fast/Faster R-CNN use (10, 10, 5, 5) in
    the second stage). Returns deltas [..., 4]. Inverse of ``decode_boxes``.
    """
    wx, wy, ww, wh = _check_transform_args(reference, target, "target", weights)
    ref_x, ref_y, ref_w, ref_h = _centres_and_sizes(reference)
    tgt_x, tgt_y, tgt_w, tgt_h = _centres_and_sizes(target)
    return torch.stack(
        (
            wx * (tgt_x - ref_x) / ref_w,
            wy * (tgt_y - ref_y) / ref_h,
            ww * torch.log(tgt_w / ref_w),
            wh * torch.log(tgt_h / ref_h),
        ),
        dim=-1,
    )


def decode_boxes(
    reference: Tensor,
    deltas: Tensor,
    weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    max_log_scale: float = BOX_SCALE_CLAMP,
) -> Tensor:
    """Apply deltas (tx, ty, tw, th) [..., 4] to ``reference`` boxes [..., 4]: boxes [..., 4].

    The inverse of ``encode_boxes``: centre ``x = x_r + (tx / wx) * w_r``, width
    ``w = w_r * exp(tw / ww)`` and so on; ``tw`` and ``th`` are clamped at
    ``max_log_scale`` (``math.inf`` turns the clamp off) so that an untrained network cannot
    produce infinite boxes. Same results as torchvision's ``BoxCoder.decode_single``.
    """
    wx, wy, ww, wh = _check_transform_args(reference, deltas, "deltas", weights)
    if max_log_scale != math.inf:
        max_log_scale = check_float("max_log_scale", max_log_scale)
    ref_x, ref_y, ref_w, ref_h = _centres_and_sizes(reference)
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw = (deltas[..., 2] / ww).clamp(max=max_log_scale)
    dh = (deltas[..., 3] / wh).clamp(max=max_log_scale)
    x = dx * ref_w + ref_x
    y = dy * ref_h + ref_y
    half_w = 0.5 * (torch.exp(dw) * ref_w)
    half_h = 0.5 * (torch.exp(dh) * ref_h)
    return torch.stack((x - half_w, y - half_h, x + half_w, y + half_h), dim=-1)
