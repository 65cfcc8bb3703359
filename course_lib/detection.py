"""Object detection: boxes, NMS, RoI pooling, anchors, COCO evaluation and small detectors.

Read it top to bottom beside the chapter: box operations → non-maximum suppression → RoI
Pool / RoI Align → anchors and matching → evaluation (AP, COCO mAP) → the detectors
(single object, R-CNN, Fast R-CNN, Faster R-CNN, a one-stage detector).

The ops keep the signatures and results of ``torchvision.ops`` of the same name, written
in plain, vectorised PyTorch that runs on the CPU, CUDA and MPS. Boxes are float
``(x1, y1, x2, y2)`` in pixels with continuous coordinates (no +1), as in torchvision.

Shape letters used in this module: ``N``, ``M`` boxes; ``K`` regions of interest (RoIs);
``B`` images in a batch; ``C`` channels of a feature map; ``H``, ``W`` height and width;
``P``, ``Q`` output height and width of a RoI op; ``A`` anchors per feature-map position;
``L`` object classes (region heads add a background class 0); ``T`` IoU thresholds and
``R`` recall points of the COCO evaluation, ``S`` its object-size ranges, ``G`` its
(image, class) groups and ``D`` detections per group.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "RCNN",
    "ConvBackbone",
    "FastRCNN",
    "FasterRCNN",
    "OneStageDetector",
    "RegionHead",
    "RegionProposalNetwork",
    "SingleObjectDetector",
    "average_precision",
    "batched_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes_to_image",
    "decode_boxes",
    "encode_boxes",
    "evaluate_detections",
    "generate_anchors",
    "match_anchors",
    "match_detections",
    "nms",
    "postprocess_regions",
    "precision_recall_curve",
    "predict",
    "random_batches",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "sample_labels",
    "shapes_tensors",
    "sigmoid_focal_loss",
    "sliding_window_proposals",
]

BoxList = Union[Tensor, Sequence[Tensor]]
Size2 = Union[int, Tuple[int, int], Sequence[int]]

# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _check_boxes(name: str, boxes: object, floating: bool = True) -> Tensor:
    if not isinstance(boxes, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape [N, 4], got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4], got {tuple(boxes.shape)}")
    if floating and not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {boxes.dtype}")
    if boxes.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise TypeError(f"{name} must hold real numbers, got {boxes.dtype}")
    return boxes


def _check_vector(name: str, values: object, length: int, what: str = "N") -> Tensor:
    if not isinstance(values, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape [{what}], got {type(values).__name__}")
    if values.dim() != 1 or values.shape[0] != length:
        raise ValueError(
            f"{name} must have shape [{what}] = [{length}] (one per box), got {tuple(values.shape)}"
        )
    return values


def _pair(name: str, value: Size2) -> Tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair (height, width), got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return pair


def _upcast(t: Tensor) -> Tensor:
    """Half precision to float32 and small integers to int32, as torchvision does."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


# --------------------------------------------------------------------------------------
# 1. Boxes: area, IoU, formats and the R-CNN box transform
# --------------------------------------------------------------------------------------


def box_area(boxes: Tensor) -> Tensor:
    """Areas ``(x2 - x1) * (y2 - y1)`` of ``boxes`` [N, 4] in (x1, y1, x2, y2): [N]."""
    boxes = _upcast(_check_boxes("boxes", boxes, floating=False))
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Intersection over union of every pair: ``boxes1`` [N, 4], ``boxes2`` [M, 4] -> [N, M].

    ``IoU = area(A ∩ B) / area(A ∪ B)``. Same values as ``torchvision.ops.box_iou``, except
    that two empty boxes (union 0) have IoU 0 here instead of NaN.
    """
    boxes1 = _upcast(_check_boxes("boxes1", boxes1, floating=False))
    boxes2 = _upcast(_check_boxes("boxes2", boxes2, floating=False))
    area1, area2 = box_area(boxes1), box_area(boxes2)
    # Width and height of every intersection, [N, M] each; no [N, M, 2] temporaries.
    width = torch.min(boxes1[:, None, 2], boxes2[:, 2]) - torch.max(
        boxes1[:, None, 0], boxes2[:, 0]
    )
    height = torch.min(boxes1[:, None, 3], boxes2[:, 3]) - torch.max(
        boxes1[:, None, 1], boxes2[:, 1]
    )
    inter = width.clamp_(min=0) * height.clamp_(min=0)
    union = area1[:, None] + area2 - inter
    iou = inter / union
    if iou.is_floating_point():
        iou = iou.nan_to_num_(nan=0.0, posinf=math.inf, neginf=-math.inf)  # 0 / 0 -> 0
    return iou


_BOX_FORMATS = ("xyxy", "xywh", "cxcywh")


def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes [..., 4] between ``"xyxy"``, ``"xywh"`` (corner, size) and ``"cxcywh"``.

    ``xyxy`` = (x1, y1, x2, y2); ``xywh`` = (x1, y1, width, height); ``cxcywh`` = (centre x,
    centre y, width, height). The formulas are those of ``torchvision.ops.box_convert``.
    """
    if not isinstance(boxes, Tensor):
        raise TypeError(f"boxes must be a Tensor of shape [..., 4], got {type(boxes).__name__}")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [..., 4], got {tuple(boxes.shape)}")
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _BOX_FORMATS:
            raise ValueError(f"{name} must be one of {_BOX_FORMATS}, got {fmt!r}")
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


def clip_boxes_to_image(boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """Clamp ``boxes`` [..., 4] (x1, y1, x2, y2) into an image of ``size`` = (height, width)."""
    if not isinstance(boxes, Tensor) or boxes.dim() == 0 or boxes.shape[-1] != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
        raise ValueError(f"boxes must be a Tensor of shape [..., 4], got {shape}")
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices [K] of the boxes [N, 4] whose width and height are both at least ``min_size``."""
    boxes = _check_boxes("boxes", boxes)
    keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return keep.nonzero().squeeze(1)


def _check_pair_shapes(reference: Tensor, other: Tensor, other_name: str) -> None:
    for name, t in (("reference", reference), (other_name, other)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a Tensor of shape [..., 4], got {type(t).__name__}")
        if t.dim() == 0 or t.shape[-1] != 4:
            raise ValueError(f"{name} must have shape [..., 4], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    try:
        torch.broadcast_shapes(reference.shape, other.shape)
    except RuntimeError as error:
        raise ValueError(
            f"reference {tuple(reference.shape)} and {other_name} {tuple(other.shape)} "
            "must broadcast against each other"
        ) from error


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
    _check_pair_shapes(reference, target, "target")
    wx, wy, ww, wh = weights
    ref_w = reference[..., 2] - reference[..., 0]
    ref_h = reference[..., 3] - reference[..., 1]
    ref_x = reference[..., 0] + 0.5 * ref_w
    ref_y = reference[..., 1] + 0.5 * ref_h
    tgt_w = target[..., 2] - target[..., 0]
    tgt_h = target[..., 3] - target[..., 1]
    tgt_x = target[..., 0] + 0.5 * tgt_w
    tgt_y = target[..., 1] + 0.5 * tgt_h
    return torch.stack(
        (
            wx * (tgt_x - ref_x) / ref_w,
            wy * (tgt_y - ref_y) / ref_h,
            ww * torch.log(tgt_w / ref_w),
            wh * torch.log(tgt_h / ref_h),
        ),
        dim=-1,
    )


#: Largest log-scale change ``decode_boxes`` applies (as in torchvision): exp(4.135) ≈ 62.5.
BOX_SCALE_CLAMP = math.log(1000.0 / 16)


def decode_boxes(
    reference: Tensor,
    deltas: Tensor,
    weights: Tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0),
    max_log_scale: float = BOX_SCALE_CLAMP,
) -> Tensor:
    """Apply deltas (tx, ty, tw, th) [..., 4] to ``reference`` boxes [..., 4]: boxes [..., 4].

    The inverse of ``encode_boxes``: centre ``x = x_r + (tx / wx) * w_r``, width
    ``w = w_r * exp(tw / ww)`` and so on; ``tw`` and ``th`` are clamped at
    ``max_log_scale`` so that an untrained network cannot produce infinite boxes.
    Same results as torchvision's ``BoxCoder.decode_single``.
    """
    _check_pair_shapes(reference, deltas, "deltas")
    wx, wy, ww, wh = weights
    ref_w = reference[..., 2] - reference[..., 0]
    ref_h = reference[..., 3] - reference[..., 1]
    ref_x = reference[..., 0] + 0.5 * ref_w
    ref_y = reference[..., 1] + 0.5 * ref_h
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw = (deltas[..., 2] / ww).clamp(max=max_log_scale)
    dh = (deltas[..., 3] / wh).clamp(max=max_log_scale)
    x = dx * ref_w + ref_x
    y = dy * ref_h + ref_y
    half_w = 0.5 * (torch.exp(dw) * ref_w)
    half_h = 0.5 * (torch.exp(dh) * ref_h)
    return torch.stack((x - half_w, y - half_h, x + half_w, y + half_h), dim=-1)


# --------------------------------------------------------------------------------------
# 2. Non-maximum suppression
# --------------------------------------------------------------------------------------

#: Boxes per block of the CPU NMS (see ``_nms_sorted``); GPUs take larger blocks.
_NMS_BLOCK = {"cpu": 512}
_NMS_BLOCK_DEFAULT = 4096


def _threshold_below(threshold: float, dtype: torch.dtype) -> float:
    """Largest value of ``dtype`` not above ``threshold``: ``iou > t`` in ``dtype`` is then
    exactly the kernel's comparison of a ``dtype`` IoU with the double ``threshold``."""
    if dtype == torch.float64:
        return float(threshold)
    as_float = np.float32(threshold)
    if float(as_float) > threshold:
        as_float = np.nextafter(as_float, np.float32(-np.inf))
    return float(as_float)


def _overlaps(boxes1: Tensor, area1: Tensor, boxes2: Tensor, area2: Tensor, t: float) -> Tensor:
    """``IoU > t`` for every pair, [N, M] bool, with the arithmetic of torchvision's kernel."""
    width = torch.min(boxes1[:, None, 2], boxes2[:, 2]) - torch.max(
        boxes1[:, None, 0], boxes2[:, 0]
    )
    height = torch.min(boxes1[:, None, 3], boxes2[:, 3]) - torch.max(
        boxes1[:, None, 1], boxes2[:, 1]
    )
    inter = width.clamp_(min=0).mul_(height.clamp_(min=0))
    union = area1[:, None] + area2 - inter
    return inter.div_(union) > t


def _nms_sorted(boxes: Tensor, threshold: float, groups: Optional[Tensor] = None) -> Tensor:
    """Greedy NMS of ``boxes`` [N, 4] sorted by decreasing score: kept positions [K], ascending.

    Exact, without a loop over boxes. Boxes are taken in blocks (in score order). A block's
    boxes are first tested against every box kept so far; inside the block the greedy
    decisions are then found as the fixed point of ``keep = not any(keep[i] and
    IoU(i, j) > t for i < j)`` ("Cluster-NMS", Zheng et al.): the equations are triangular,
    so the fixed point is unique and equal to the greedy result, and it is reached in a few
    matrix steps. With ``groups`` [N], boxes only suppress boxes of the same group.
    """
    n = boxes.shape[0]
    t = _threshold_below(threshold, boxes.dtype)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    block = _NMS_BLOCK.get(boxes.device.type, _NMS_BLOCK_DEFAULT)
    kept_parts: List[Tensor] = []
    kept: Optional[Tensor] = None  # positions kept so far, ascending
    for start in range(0, n, block):
        stop = min(start + block, n)
        index: Optional[Tensor] = None  # None: every box of the block is still in play
        if kept is not None:
            if groups is not None:  # sorted by group: earlier groups cannot suppress this block
                kept = kept[groups[kept] >= groups[start]]
            if kept.numel():
                # 1. Drop the boxes suppressed by a box kept in an earlier block.
                hit = _overlaps(boxes[start:stop], area[start:stop], boxes[kept], area[kept], t)
                if groups is not None:
                    hit &= groups[start:stop, None] == groups[kept]
                index = (~hit.any(dim=1)).nonzero().squeeze(1) + start
                if index.numel() == 0:
                    continue
        part = slice(start, stop) if index is None else index
        block_boxes, block_area = boxes[part], area[part]
        # 2. Inside the block: S[i, j] = "i comes first and would suppress j".
        suppress = _overlaps(block_boxes, block_area, block_boxes, block_area, t)
        if groups is not None:
            suppress &= groups[part, None] == groups[part]
        suppress.triu_(diagonal=1)
        keep = ~suppress.any(dim=0)  # one step from "keep everything"
        if not keep.all():
            # Iterate keep[j] = no kept i suppresses j; a matrix-vector product per step.
            weights = suppress.to(block_boxes.dtype)
            while True:
                new_keep = (keep.to(weights.dtype) @ weights) == 0
                if torch.equal(new_keep, keep):
                    break
                keep = new_keep
        chosen = keep.nonzero().squeeze(1)
        chosen = chosen + start if index is None else index[chosen]
        kept_parts.append(chosen)
        kept = chosen if kept is None else torch.cat([kept, chosen])
    if not kept_parts:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    return kept_parts[0] if len(kept_parts) == 1 else torch.cat(kept_parts)


def _check_nms_inputs(boxes: Tensor, scores: Tensor, iou_threshold: float) -> None:
    _check_boxes("boxes", boxes)
    _check_vector("scores", scores, boxes.shape[0])
    if not scores.is_floating_point():
        raise TypeError(f"scores must be a floating-point tensor, got {scores.dtype}")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"iou_threshold must be a float, got {type(iou_threshold).__name__}")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression: indices [K] of the kept boxes, by decreasing score.

    Greedy rule: take the highest-scoring box, drop every box whose IoU with it is greater
    than ``iou_threshold``, repeat with the remaining boxes. ``boxes`` [N, 4] (x1, y1, x2,
    y2), ``scores`` [N]. Keeps exactly the indices of ``torchvision.ops.nms`` (equal
    scores are taken in index order, like torchvision's CPU kernel).
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    boxes = _upcast(boxes)
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[_nms_sorted(boxes[order], float(iou_threshold))]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS done separately for each category ``idxs`` [N]: kept indices [K] by decreasing score.

    A box only suppresses boxes with the same ``idxs`` value. ``boxes`` [N, 4], ``scores``
    [N]. Same result as ``torchvision.ops.batched_nms``.
    """
    _check_nms_inputs(boxes, scores, iou_threshold)
    _check_vector("idxs", idxs, boxes.shape[0])
    if idxs.is_floating_point():
        raise TypeError(f"idxs must be an integer tensor, got {idxs.dtype}")
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    boxes = _upcast(boxes)
    # Sort by category, then by score: a block then meets only a few categories.
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(idxs[order], stable=True).indices]
    kept = order[_nms_sorted(boxes[order], float(iou_threshold), idxs[order])].sort().values
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]


# --------------------------------------------------------------------------------------
# 3. RoI Pool and RoI Align
# --------------------------------------------------------------------------------------


def _as_rois(boxes: BoxList, input: Tensor) -> Tensor:
    """RoIs [K, 5] = (batch index, x1, y1, x2, y2) from a [K, 5] tensor or a list of [L, 4]."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                "boxes must be a Tensor [K, 5] (batch index, x1, y1, x2, y2) or a list of "
                f"Tensor[L, 4] (one per image), got a tensor of shape {tuple(boxes.shape)}"
            )
        rois = boxes
    elif isinstance(boxes, (list, tuple)):
        if len(boxes) > input.shape[0]:
            raise ValueError(
                f"boxes has {len(boxes)} entries but input holds {input.shape[0]} images"
            )
        parts = []
        for index, item in enumerate(boxes):
            _check_boxes(f"boxes[{index}]", item)
            column = torch.full_like(item[:, :1], index)
            parts.append(torch.cat([column, item], dim=1))
        rois = torch.cat(parts) if parts else input.new_zeros(0, 5)
    else:
        raise TypeError(f"boxes must be a Tensor [K, 5] or a list of Tensor[L, 4], got {boxes!r}")
    if not rois.is_floating_point():
        raise TypeError(f"boxes must be a floating-point tensor, got {rois.dtype}")
    rois = rois.to(device=input.device, dtype=input.dtype)
    if rois.shape[0]:
        batch = rois[:, 0]
        if (
            (batch < 0).any()
            or (batch > input.shape[0] - 1).any()
            or (batch != batch.floor()).any()
        ):
            raise ValueError(
                f"the batch index of every RoI must be an integer in [0, {input.shape[0] - 1}]"
            )
    return rois


def _check_feature_map(input: object) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor [B, C, H, W], got {type(input).__name__}")
    if input.dim() != 4:
        raise ValueError(f"input must have shape [B, C, H, W], got {tuple(input.shape)}")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {input.dtype}")
    return input


def _round_half_away(x: Tensor) -> Tensor:
    """C's ``round``: halves go away from zero (``torch.round`` rounds them to even)."""
    half = (x - x.trunc()).abs() == 0.5  # the fractional part is exact in floating point
    return torch.where(half, x.trunc() + x.sign(), x.round())


def roi_pool(
    input: Tensor, boxes: BoxList, output_size: Size2, spatial_scale: float = 1.0
) -> Tensor:
    """RoI Pool (Fast R-CNN): max over a P x Q grid of bins in each region: [K, C, P, Q].

    ``input`` [B, C, H, W] is a feature map; ``boxes`` is a Tensor [K, 5] (batch index,
    x1, y1, x2, y2) or a list of B Tensors [L, 4], in image coordinates that
    ``spatial_scale`` maps onto the feature map. The box is rounded to whole feature-map
    cells and cut into bins whose edges are rounded again (floor for the start, ceil for the
    end): two quantisations. A bin holding no cell gives 0. Same values and gradients as
    ``torchvision.ops.roi_pool``.
    """
    input = _check_feature_map(input)
    rois = _as_rois(boxes, input)
    p, q = _pair("output_size", output_size)
    num_images, channels, height, width = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros(0, channels, p, q)
    # Scale in the input's precision (like the kernel), then round to whole cells.
    corners = _round_half_away(rois[:, 1:] * spatial_scale).long()
    x1, y1, x2, y2 = corners.unbind(1)
    roi_w = (x2 - x1 + 1).clamp(min=1).to(input.dtype)
    roi_h = (y2 - y1 + 1).clamp(min=1).to(input.dtype)

    def bin_edges(start: Tensor, size: Tensor, bins: int, limit: int) -> Tuple[Tensor, Tensor]:
        step = size / bins  # bin size in the input's precision, like the kernel
        index = torch.arange(bins, device=input.device, dtype=input.dtype)
        low = torch.floor(index * step[:, None]).long() + start[:, None]
        high = torch.ceil((index + 1) * step[:, None]).long() + start[:, None]
        return low.clamp(0, limit), high.clamp(0, limit)  # [K, bins] each

    row_lo, row_hi = bin_edges(y1, roi_h, p, height)
    col_lo, col_hi = bin_edges(x1, roi_w, q, width)
    rows_per_bin, cols_per_bin = row_hi - row_lo, col_hi - col_lo
    max_rows, max_cols = int(rows_per_bin.max()), int(cols_per_bin.max())
    max_rows, max_cols = max(max_rows, 1), max(max_cols, 1)  # all-empty bins still work
    # Every cell of every bin, padded to the largest bin: [K, P, max_rows] and [K, Q, max_cols].
    steps_r = torch.arange(max_rows, device=input.device)
    steps_c = torch.arange(max_cols, device=input.device)
    rows = (row_lo[..., None] + steps_r).clamp(max=height - 1)
    cols = (col_lo[..., None] + steps_c).clamp(max=width - 1)
    row_ok = steps_r < rows_per_bin[..., None]
    col_ok = steps_c < cols_per_bin[..., None]
    batch = rois[:, 0].long()
    # Channels-last rows of the feature map, so one gather fetches all C values of a cell,
    # plus one row of -inf that the padding points to (it never wins a max).
    cells = input.permute(0, 2, 3, 1).reshape(num_images * height * width, channels)
    cells = torch.cat([cells, cells.new_full((1, channels), -math.inf)])
    padding = num_images * height * width
    outputs = []
    chunk = max(1, (1 << 24) // (p * q * max_rows * max_cols * channels))
    for s in range(0, k, chunk):
        part = slice(s, s + chunk)
        index = (
            batch[part, None, None, None, None] * height + rows[part, :, None, :, None]
        ) * width
        index = index + cols[part, None, :, None, :]  # [k, P, Q, max_rows, max_cols]
        ok = row_ok[part, :, None, :, None] & col_ok[part, None, :, None, :]
        index = torch.where(ok, index, torch.full_like(index, padding))
        values = cells[index.reshape(-1)].view(*index.shape[:3], -1, channels)
        outputs.append(values.max(dim=3).values)  # [k, P, Q, C]; the gradient goes to one cell
    out = torch.cat(outputs).permute(0, 3, 1, 2)
    empty = (rows_per_bin <= 0)[:, :, None] | (cols_per_bin <= 0)[:, None, :]
    return out.masked_fill(empty[:, None], 0.0)


def _sampling_weights(start: Tensor, length: Tensor, bins: int, grid: Tensor, size: int) -> Tensor:
    """Bilinear weights of RoI Align along one axis: [K, bins, size].

    Bin ``b`` of region ``k`` averages ``grid[k]`` samples at ``start + (b + (i + 0.5) /
    grid) * length / bins``. Row ``(k, b)`` of the result holds the weight each of the
    ``size`` input positions gets in that average (the interpolation rule of the RoI Align
    kernel: a sample beyond -1 or ``size`` is 0, a sample in [-1, 0] or [size - 1, size] is
    clamped to the border).
    """
    k = start.shape[0]
    dtype, device = start.dtype, start.device
    bin_size = length / bins
    most = max(int(grid.max()), 0)
    b = torch.arange(bins, device=device, dtype=dtype)
    i = torch.arange(most, device=device, dtype=dtype)
    pos = (
        start[:, None, None]
        + b[:, None] * bin_size[:, None, None]
        + (i + 0.5) * bin_size[:, None, None] / grid.clamp(min=1)[:, None, None].to(dtype)
    )  # [K, bins, most]; regions with no samples (grid <= 0) are masked out below
    used = (i < grid[:, None, None]) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor()
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    frac = torch.where(at_edge, torch.zeros_like(pos), pos - low)
    weights = torch.zeros(k, bins, size, device=device, dtype=dtype)
    used = used.to(dtype)
    weights.scatter_add_(2, low.long(), (1 - frac) * used)
    weights.scatter_add_(2, high.long(), frac * used)
    return weights


def roi_align(
    input: Tensor,
    boxes: BoxList,
    output_size: Size2,
    spatial_scale: float = 1.0,
    sampling_ratio: int = -1,
    aligned: bool = False,
) -> Tensor:
    """RoI Align (Mask R-CNN): average of bilinear samples in a P x Q grid of bins: [K, C, P, Q].

    Arguments as ``roi_pool``. No rounding: each bin averages ``sampling_ratio`` x
    ``sampling_ratio`` bilinearly interpolated points (adaptive ``ceil(roi_size / bins)``
    when ``sampling_ratio <= 0``). With ``aligned=True`` the box is shifted by half a cell
    so that a cell's centre sits at its integer coordinate plus 0.5 (continuous
    coordinates); ``aligned=False`` is the original, slightly misaligned version. Same
    values and gradients as ``torchvision.ops.roi_align``.

    Bilinear sampling is linear in the feature map, and along x and y it factorises, so
    each region's output is ``Wy @ features @ Wx^T`` with interpolation matrices Wy [P, H]
    and Wx [Q, W]: two matrix products per image instead of a loop over samples.
    """
    input = _check_feature_map(input)
    rois = _as_rois(boxes, input)
    p, q = _pair("output_size", output_size)
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, (int, np.integer)):
        raise TypeError(f"sampling_ratio must be an int, got {sampling_ratio!r}")
    num_images, channels, height, width = input.shape
    k = rois.shape[0]
    out = input.new_zeros(k, channels, p, q)
    if k == 0:
        return out
    rois = rois.detach()  # like torchvision: no gradient flows into the box coordinates
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, 1:] * spatial_scale - offset).unbind(1)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # the legacy version forces regions to be at least one cell
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = torch.full_like(roi_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(roi_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h, grid_w = torch.ceil(roi_h / p).long(), torch.ceil(roi_w / q).long()
    count = (grid_h * grid_w).clamp(min=1).to(input.dtype)
    weight_y = _sampling_weights(y1, roi_h, p, grid_h, height)  # [K, P, H]
    weight_x = _sampling_weights(x1, roi_w, q, grid_w, width)  # [K, Q, W]
    weight_y = weight_y / count[:, None, None]
    batch = rois[:, 0].long()
    order = torch.argsort(batch, stable=True)
    counts = torch.bincount(batch, minlength=num_images).tolist()
    pieces = []
    for image, part in zip(range(num_images), order.split(counts)):
        if part.numel() == 0:
            continue
        rows = torch.einsum("kph,chw->kcpw", weight_y[part], input[image])
        pieces.append(torch.einsum("kcpw,kqw->kcpq", rows, weight_x[part]))
    return out.index_copy(0, order, torch.cat(pieces))


# --------------------------------------------------------------------------------------
# 4. Anchors, matching and sampling
# --------------------------------------------------------------------------------------


def generate_anchors(
    feature_size: Size2,
    stride: Union[float, Tuple[float, float]],
    sizes: Sequence[float],
    aspect_ratios: Sequence[float] = (1.0,),
    device: Optional[Union[str, torch.device]] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Anchor boxes at every position of a feature map: [H * W * A, 4] in (x1, y1, x2, y2).

    Position (i, j) of an H x W feature map with ``stride`` pixels per cell gets
    ``A = len(aspect_ratios) * len(sizes)`` anchors centred on its cell, ``((j + 0.5) *
    stride, (i + 0.5) * stride)``. An anchor of size ``s`` and aspect ratio ``r = h / w``
    has area ``s**2``: ``w = s / sqrt(r)``, ``h = s * sqrt(r)``. Rows are ordered by
    position (row-major), then ratio, then size, as in torchvision's ``AnchorGenerator``
    (which centres anchors on the cell's corner and rounds them; this version does not).
    """
    height, width = _pair("feature_size", feature_size)
    stride_y, stride_x = (stride, stride) if not isinstance(stride, (tuple, list)) else stride
    if min(stride_y, stride_x) <= 0:
        raise ValueError(f"stride must be positive, got {stride!r}")
    if len(sizes) == 0 or min(sizes) <= 0:
        raise ValueError(f"sizes must be a non-empty list of positive numbers, got {sizes!r}")
    if len(aspect_ratios) == 0 or min(aspect_ratios) <= 0:
        raise ValueError(f"aspect_ratios must be positive numbers, got {aspect_ratios!r}")
    ratios = torch.as_tensor(aspect_ratios, dtype=torch.float64)
    scales = torch.as_tensor(sizes, dtype=torch.float64)
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
    in between. With ``allow_low_quality`` every ground-truth box also claims the anchors
    that overlap it best, even below ``high``, so no object is left without an anchor (as
    in Faster R-CNN). Behaves like torchvision's ``Matcher``.
    """
    _check_boxes("anchors", anchors)
    _check_boxes("gt_boxes", gt_boxes)
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(f"need 0 <= low <= high <= 1, got low={low}, high={high}")
    n = anchors.shape[0]
    if gt_boxes.shape[0] == 0 or n == 0:
        return torch.full((n,), -1, dtype=torch.long, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # [M, N]
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

    ``labels`` [N]: ``> 0`` positive, ``0`` negative, ``< 0`` ignored. Draws up to
    ``num_samples * positive_fraction`` positives and fills the rest with negatives.
    Returns boolean masks ``(positive, negative)``, each [N].
    """
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape [N], got {tuple(labels.shape)}")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}")
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


# --------------------------------------------------------------------------------------
# 5. Evaluation: precision, recall, AP and COCO mAP
# --------------------------------------------------------------------------------------

#: COCO's IoU thresholds 0.50:0.05:0.95 and recall points 0:0.01:1 (values of np.linspace).
COCO_IOU_THRESHOLDS = torch.from_numpy(np.linspace(0.5, 0.95, 10))
COCO_RECALL_THRESHOLDS = torch.from_numpy(np.linspace(0.0, 1.0, 101))
#: COCO's object-size ranges (area in pixels²) and their names.
COCO_AREA_RANGES = {
    "all": (0.0, 1e10),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}
COCO_MAX_DETECTIONS = (1, 10, 100)
_EPS = float(np.spacing(1))  # COCO adds it to tp + fp before dividing


def precision_recall_curve(
    scores: Tensor, matched: Tensor, num_ground_truth: int
) -> Tuple[Tensor, Tensor]:
    """Precision and recall after each detection of one class, by decreasing score.

    ``scores`` [N] and ``matched`` [N] (True = true positive, False = false positive; see
    ``match_detections``); ``num_ground_truth`` objects of the class exist. Equal scores
    keep their input order (a stable sort, as COCO). Returns ``(precision, recall)``, each
    [N] float64 on the CPU: ``precision = TP / (TP + FP)`` and ``recall = TP / (TP + FN) =
    TP / num_ground_truth`` counted over the detections so far.
    """
    if not isinstance(scores, Tensor) or scores.dim() != 1:
        shape = tuple(scores.shape) if isinstance(scores, Tensor) else type(scores).__name__
        raise ValueError(f"scores must be a Tensor of shape [N], got {shape}")
    _check_vector("matched", matched, scores.shape[0])
    if num_ground_truth < 0:
        raise ValueError(f"num_ground_truth must be >= 0, got {num_ground_truth}")
    # On the CPU in float64 (MPS has no float64); the curve is small.
    order = torch.sort(scores.detach().cpu().double(), descending=True, stable=True).indices
    hits = matched.detach().cpu().to(torch.float64)[order]
    tp = hits.cumsum(0)
    fp = (1 - hits).cumsum(0)
    precision = tp / (tp + fp)
    recall = tp / num_ground_truth if num_ground_truth > 0 else torch.zeros_like(tp)
    return precision, recall


def _interpolated_ap(precision: Tensor, recall: Tensor, method: str) -> Tensor:
    """AP from precision/recall curves [..., N] (batched), with the chosen interpolation."""
    n = precision.shape[-1]
    if n == 0:
        return precision.new_zeros(precision.shape[:-1])
    # Interpolated precision: the best precision at this recall or any higher one.
    envelope = precision.flip(-1).cummax(-1).values.flip(-1)
    if method == "coco":  # 101 recall points; each takes the envelope where recall first reaches it
        points = COCO_RECALL_THRESHOLDS.to(recall.device).expand(*recall.shape[:-1], -1)
        first = torch.searchsorted(recall.contiguous(), points.contiguous(), side="left")
        values = envelope.gather(-1, first.clamp(max=n - 1))
        return torch.where(first < n, values, torch.zeros_like(values)).mean(-1)
    if method == "voc11":  # PASCAL VOC 2007: 11 recall points 0, 0.1, ..., 1
        points = torch.linspace(0, 1, 11, dtype=recall.dtype, device=recall.device)
        reached = recall[..., None, :] >= points[:, None]  # [..., 11, N]
        best = torch.where(
            reached, precision[..., None, :], torch.zeros_like(reached, dtype=recall.dtype)
        )
        return best.amax(-1).mean(-1)
    if method == "all":  # PASCAL VOC 2010+: area under the envelope, summed where recall rises
        previous = torch.cat([torch.zeros_like(recall[..., :1]), recall[..., :-1]], dim=-1)
        return ((recall - previous) * envelope).sum(-1)
    raise ValueError(f"method must be 'coco', 'voc11' or 'all', got {method!r}")


def average_precision(
    scores: Tensor, matched: Tensor, num_ground_truth: int, method: str = "coco"
) -> float:
    """Average precision of one class: the area under its precision-recall curve.

    ``scores`` [N], ``matched`` [N] bool (true positives) and ``num_ground_truth`` as in
    ``precision_recall_curve``. The curve is first made monotone (precision at recall r
    becomes the best precision at any recall >= r), then ``method`` integrates it:

    - ``"coco"``: mean of the interpolated precision at the 101 recalls 0, 0.01, ..., 1
      (COCO, and this course's default);
    - ``"voc11"``: mean at the 11 recalls 0, 0.1, ..., 1 (PASCAL VOC 2007);
    - ``"all"``: exact area under the monotone curve (PASCAL VOC 2010 and later).

    Returns -1.0 when the class has no ground truth (AP is undefined; COCO's convention).
    """
    if num_ground_truth == 0:
        return -1.0
    precision, recall = precision_recall_curve(scores, matched, num_ground_truth)
    return float(_interpolated_ap(precision, recall, method))


def _greedy_match(
    iou: Tensor,
    det_valid: Tensor,
    gt_valid: Tensor,
    gt_ignore: Tensor,
    thresholds: Tensor,
) -> Tuple[Tensor, Tensor]:
    """COCO's greedy matching for many (image, class) groups at once.

    ``iou`` [G, D, M] between the D detections (sorted by score) and M ground-truth boxes of
    G groups; ``det_valid`` [G, D], ``gt_valid`` [G, M]; ``gt_ignore`` [S, G, M] for S
    settings (area ranges); ``thresholds`` [T]. Each detection in turn takes the unmatched
    box with the highest IoU >= threshold, preferring boxes that are not ignored (ties go to
    the later box, as in pycocotools). Returns ``matched`` [S, T, G, D] and
    ``matched_ignored`` [S, T, G, D] (matched to an ignored box). The loop runs over
    detection ranks (the greedy order), every group and setting in parallel.
    """
    s, t = gt_ignore.shape[0], thresholds.shape[0]
    g, d, m = iou.shape
    matched = torch.zeros(s, t, g, d, dtype=torch.bool, device=iou.device)
    matched_ignored = torch.zeros_like(matched)
    if g == 0 or d == 0 or m == 0:
        return matched, matched_ignored
    # Groups with many detections first, so that the groups still matching at rank r
    # are a prefix [:active] and every step works on views.
    order = torch.argsort(det_valid.sum(1) * gt_valid.any(1), descending=True, stable=True)
    iou, det_valid, gt_valid = iou[order], det_valid[order], gt_valid[order]
    gt_ignore = gt_ignore[:, order]
    counts = det_valid.sum(1) * gt_valid.any(1)  # detections that can match, per group
    active_per_rank = (
        (counts[None, :] > torch.arange(d, device=iou.device)[:, None]).sum(1).tolist()
    )
    taken = (~gt_valid).expand(s, t, g, m).clone()
    out_matched = torch.zeros(s, t, g, d, dtype=torch.bool, device=iou.device)
    out_ignored = torch.zeros_like(out_matched)
    thresholds = thresholds.to(iou)[:, None, None]
    flip_index = torch.arange(m - 1, -1, -1, device=iou.device)
    for rank, active in enumerate(active_per_rank):
        if active == 0:
            break
        overlap = iou[:active, rank]  # [a, M]
        free = (overlap >= thresholds) & ~taken[:, :, :active]  # [S, T, a, M]
        ignore = gt_ignore[:, None, :active]
        regular = free & ~ignore
        pool = torch.where(regular.any(-1, keepdim=True), regular, free)
        score = torch.where(pool, overlap, torch.full_like(overlap, -1.0))
        best = flip_index[score.flip(-1).argmax(-1)]  # last index among equal IoUs
        hit = pool.any(-1, keepdim=True)  # [S, T, a, 1]
        best = best[..., None]
        view = taken[:, :, :active]  # a view: the update below lands in ``taken``
        view.scatter_(-1, best, hit | view.gather(-1, best))
        out_matched[:, :, :active, rank] = hit[..., 0]
        out_ignored[:, :, :active, rank] = (hit & ignore.expand_as(pool).gather(-1, best))[..., 0]
    matched[:, :, order] = out_matched
    matched_ignored[:, :, order] = out_ignored
    return matched, matched_ignored


def match_detections(
    boxes: Tensor, scores: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5
) -> Tensor:
    """Mark the detections of one class in one image as true or false positives: [N] bool.

    In order of decreasing score, each detection ``boxes`` [N, 4] takes the still unmatched
    ground-truth box [M, 4] with which it has the highest IoU, if that IoU is at least
    ``iou_threshold``; the box is then used up. Detections left without a box are false
    positives (a second detection of the same object is one too). COCO's rule.
    """
    _check_boxes("boxes", boxes)
    _check_vector("scores", scores, boxes.shape[0])
    _check_boxes("gt_boxes", gt_boxes)
    n, m = boxes.shape[0], gt_boxes.shape[0]
    # On the CPU in float64, as evaluate_detections (and pycocotools) do.
    order = torch.sort(scores.detach().cpu().double(), descending=True, stable=True).indices
    iou = _coco_iou(boxes.detach().cpu().double()[order], gt_boxes.detach().cpu().double())
    matched, _ = _greedy_match(
        iou[None],
        torch.ones(1, n, dtype=torch.bool),
        torch.ones(1, m, dtype=torch.bool),
        torch.zeros(1, 1, m, dtype=torch.bool),
        torch.tensor([float(iou_threshold)], dtype=torch.float64),
    )
    result = torch.zeros(n, dtype=torch.bool)
    result[order] = matched[0, 0, 0]
    return result.to(boxes.device)


def _coco_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU [..., N, M] of float64 boxes [..., N, 4] and [..., M, 4], 0 when boxes do not meet."""
    width = torch.min(boxes1[..., :, None, 2], boxes2[..., None, :, 2]) - torch.max(
        boxes1[..., :, None, 0], boxes2[..., None, :, 0]
    )
    height = torch.min(boxes1[..., :, None, 3], boxes2[..., None, :, 3]) - torch.max(
        boxes1[..., :, None, 1], boxes2[..., None, :, 1]
    )
    inter = width.clamp(min=0) * height.clamp(min=0)
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    union = area1[..., :, None] + area2[..., None, :] - inter
    return torch.where(inter > 0, inter / union, torch.zeros_like(inter))


def _flatten_detections(
    items: Sequence[Dict[str, Tensor]], name: str, with_scores: bool
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Concatenate per-image dicts into boxes [N, 4] float64, labels, image index, scores (CPU)."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of dicts (one per image), got {type(items).__name__}"
        )
    boxes, labels, images, scores = [], [], [], []
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise TypeError(
                f"{where} must be a dict with 'boxes' and 'labels', got {type(item).__name__}"
            )
        keys = ("boxes", "labels", "scores") if with_scores else ("boxes", "labels")
        missing = [key for key in keys if key not in item]
        if missing:
            raise ValueError(f"{where} is missing {missing}")
        b = _check_boxes(f"{where}['boxes']", item["boxes"], floating=False)
        count = b.shape[0]
        label = _check_vector(f"{where}['labels']", item["labels"], count)
        if label.is_floating_point():
            raise TypeError(f"{where}['labels'] must be an integer tensor, got {label.dtype}")
        boxes.append(b.detach().cpu().double())
        labels.append(label.detach().cpu().long())
        images.append(torch.full((count,), index, dtype=torch.long))
        if with_scores:
            score = _check_vector(f"{where}['scores']", item["scores"], count)
            scores.append(score.detach().cpu().double())
    if not boxes:
        empty = torch.zeros(0, dtype=torch.long)
        return torch.zeros(0, 4, dtype=torch.float64), empty, empty, empty.double()
    cat_scores = torch.cat(scores) if with_scores else torch.zeros(0, dtype=torch.float64)
    return torch.cat(boxes), torch.cat(labels), torch.cat(images), cat_scores


def _pad_groups(group: Tensor, num_groups: int) -> Tuple[Tensor, Tensor]:
    """Slot of each item within its group and the padded index table [G, L] (-1 = empty)."""
    counts = torch.bincount(group, minlength=num_groups)
    starts = torch.cumsum(counts, 0) - counts
    order = torch.argsort(group, stable=True)
    slot = torch.empty_like(group)
    slot[order] = torch.arange(group.numel()) - starts[group[order]]
    width = int(counts.max()) if counts.numel() else 0
    table = torch.full((num_groups, width), -1, dtype=torch.long)
    table[group, slot] = torch.arange(group.numel())
    return slot, table


def evaluate_detections(
    predictions: Sequence[Dict[str, Tensor]], targets: Sequence[Dict[str, Tensor]]
) -> Dict[str, Union[float, Tensor]]:
    """COCO box evaluation of detections; the numbers of pycocotools' ``COCOeval``.

    ``predictions``: one dict per image with ``boxes`` [N, 4] (x1, y1, x2, y2), ``scores``
    [N] and ``labels`` [N]; ``targets``: one dict per image with ``boxes`` [M, 4] and
    ``labels`` [M] (other keys are ignored; there are no crowd regions). Per class and
    image the 100 best-scoring detections are kept; each is matched greedily (see
    ``match_detections``) at the IoU thresholds 0.50, 0.55, ..., 0.95; AP is COCO's
    101-point interpolated AP.

    Returns floats ``map`` (AP averaged over classes and the ten IoU thresholds), ``map_50``,
    ``map_75``, ``map_small``, ``map_medium``, ``map_large`` (objects below 32², between 32²
    and 96², above 96² pixels), ``mar_1``, ``mar_10``, ``mar_100`` (recall with at most 1,
    10, 100 detections per image and class), ``mar_small``, ``mar_medium``, ``mar_large``;
    tensors ``classes`` [L] (the labels seen), ``map_per_class`` [L], ``map_50_per_class``
    [L], ``mar_100_per_class`` [L], ``precision`` [T, R, L] (interpolated precision at the
    101 recall points, all areas, 100 detections) and ``recall`` [T, L]. A value of -1 means
    "undefined" (no ground truth), as in pycocotools. Runs on the CPU in float64.
    """
    if len(predictions) != len(targets):
        raise ValueError(
            f"predictions and targets must have one entry per image, got {len(predictions)} "
            f"and {len(targets)}"
        )
    det_boxes, det_labels, det_image, det_scores = _flatten_detections(
        predictions, "predictions", True
    )
    gt_boxes, gt_labels, gt_image, _ = _flatten_detections(targets, "targets", False)
    classes = torch.unique(torch.cat([gt_labels, det_labels]))
    num_classes, num_images = classes.numel(), len(targets)
    if num_classes == 0:  # nothing to evaluate: every number is undefined
        empty = torch.zeros(len(COCO_IOU_THRESHOLDS), len(COCO_RECALL_THRESHOLDS), 0, 4, 3)
        return _summaries(empty.double(), empty[:, 0].double(), classes)
    thresholds, recall_points = COCO_IOU_THRESHOLDS, COCO_RECALL_THRESHOLDS
    num_t, num_r = thresholds.numel(), recall_points.numel()
    ranges = torch.tensor(list(COCO_AREA_RANGES.values()), dtype=torch.float64)  # [S, 2]
    num_s = ranges.shape[0]
    max_dets = COCO_MAX_DETECTIONS
    precision = torch.full(
        (num_t, num_r, num_classes, num_s, len(max_dets)), -1.0, dtype=torch.float64
    )
    recall = torch.full((num_t, num_classes, num_s, len(max_dets)), -1.0, dtype=torch.float64)

    # Group detections and boxes by (image, class); rank detections by score in each group.
    det_class = torch.searchsorted(classes, det_labels)
    gt_class = torch.searchsorted(classes, gt_labels)
    det_group = det_image * num_classes + det_class
    gt_group = gt_image * num_classes + gt_class
    by_score = torch.sort(det_scores, descending=True, stable=True).indices
    by_group = by_score[torch.sort(det_group[by_score], stable=True).indices]
    rank = torch.empty_like(det_group)
    group_counts = torch.bincount(det_group, minlength=num_images * num_classes)
    starts = torch.cumsum(group_counts, 0) - group_counts
    rank[by_group] = torch.arange(by_group.numel()) - starts[det_group[by_group]]
    kept = rank < max_dets[-1]
    # Dense [G, D] / [G, M] tables over the groups that have anything in them.
    used_groups, inverse = torch.unique(torch.cat([det_group[kept], gt_group]), return_inverse=True)
    num_groups = used_groups.numel()
    det_slot_group = inverse[: int(kept.sum())]
    gt_slot_group = inverse[int(kept.sum()) :]
    kept_index = kept.nonzero().squeeze(1)
    width = int(rank[kept_index].max()) + 1 if kept_index.numel() else 0
    det_table = torch.full((num_groups, width), -1, dtype=torch.long)
    det_table[det_slot_group, rank[kept_index]] = kept_index
    _, gt_table = _pad_groups(gt_slot_group, num_groups)
    det_valid, gt_valid = det_table >= 0, gt_table >= 0
    table_boxes_d = det_boxes[det_table.clamp(min=0)]
    table_boxes_g = gt_boxes[gt_table.clamp(min=0)]
    iou = _coco_iou(table_boxes_d, table_boxes_g)  # [G, D, M]
    iou = torch.where(det_valid[:, :, None] & gt_valid[:, None, :], iou, torch.zeros_like(iou))

    def areas(boxes: Tensor) -> Tensor:
        return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])

    def outside(area: Tensor) -> Tensor:  # [S, ...]: area outside each range
        low = ranges[:, 0].view(-1, *([1] * area.dim()))
        high = ranges[:, 1].view(-1, *([1] * area.dim()))
        return (area < low) | (area > high)

    gt_ignore = outside(areas(table_boxes_g)) & gt_valid  # [S, G, M]
    matched, matched_ignored = _greedy_match(iou, det_valid, gt_valid, gt_ignore, thresholds)
    det_outside = outside(areas(table_boxes_d))  # [S, G, D]
    # Per detection, for each setting and threshold: true positive / counted at all.
    ignored = matched_ignored | (~matched & det_outside[:, None])
    flat_valid = det_valid.reshape(-1)
    det_index = det_table.reshape(-1)[flat_valid]
    tp_all = (matched & ~ignored).reshape(num_s, num_t, -1)[..., flat_valid]  # [S, T, Nk]
    counted_all = (~ignored).reshape(num_s, num_t, -1)[..., flat_valid]
    det_rank = rank[det_index]
    # Ground truth that counts (not ignored) per class and setting.
    gt_counts = torch.zeros(num_s, num_classes, dtype=torch.float64)
    gt_counts.index_add_(1, gt_class, (~outside(areas(gt_boxes))).double())
    group_class = used_groups % num_classes
    class_of_det = group_class[
        torch.arange(num_groups)[:, None].expand_as(det_table).reshape(-1)[flat_valid]
    ]
    # Within a class: by decreasing score; ties keep image order (pycocotools' mergesort).
    # (det_index runs over images, then classes, then ranks, so a stable sort does it.)
    order = torch.sort(det_scores[det_index], descending=True, stable=True).indices
    order = order[torch.sort(class_of_det[order], stable=True).indices]
    class_counts = torch.bincount(class_of_det, minlength=num_classes).tolist()
    limits = torch.tensor(max_dets)[None, :, None, None]  # [1, Mx, 1, 1]
    for k, part in enumerate(order.split(class_counts)):
        has_gt = gt_counts[:, k] > 0  # [S]
        if not has_gt.any():
            continue
        within = det_rank[part][None, None, None, :] < limits  # [1, Mx, 1, n]
        tp = (tp_all[:, None, :, part] & within).double()  # [S, Mx, T, n]
        counted = (counted_all[:, None, :, part] & within).double()
        tp_sum = tp.cumsum(-1)
        fp_sum = (counted - tp).cumsum(-1)
        num_gt = gt_counts[:, k].clamp(min=1)[:, None, None, None]
        rc = tp_sum / num_gt
        pr = tp_sum / (fp_sum + tp_sum + _EPS)
        ap_points = _coco_points(pr, rc)  # [S, Mx, T, R]
        final_recall = (
            rc[..., -1] if part.numel() else torch.zeros(rc.shape[:-1], dtype=torch.float64)
        )
        for s in range(num_s):
            if has_gt[s]:
                precision[:, :, k, s, :] = ap_points[s].permute(1, 2, 0)
                recall[:, k, s, :] = final_recall[s].permute(1, 0)
    return _summaries(precision, recall, classes)


def _coco_points(pr: Tensor, rc: Tensor) -> Tensor:
    """Interpolated precision at COCO's 101 recall points for curves [..., n]: [..., R]."""
    n = pr.shape[-1]
    if n == 0:
        return torch.zeros(*pr.shape[:-1], COCO_RECALL_THRESHOLDS.numel(), dtype=torch.float64)
    envelope = pr.flip(-1).cummax(-1).values.flip(-1)
    points = COCO_RECALL_THRESHOLDS.expand(*rc.shape[:-1], -1).contiguous()
    first = torch.searchsorted(rc.contiguous(), points, side="left")
    values = envelope.gather(-1, first.clamp(max=n - 1))
    return torch.where(first < n, values, torch.zeros_like(values))


def _mean_defined(values: Tensor) -> float:
    defined = values[values > -1]
    return float(defined.mean()) if defined.numel() else -1.0


def _summaries(
    precision: Tensor, recall: Tensor, classes: Tensor
) -> Dict[str, Union[float, Tensor]]:
    """COCOeval.summarize's twelve numbers plus per-class values."""
    names = list(COCO_AREA_RANGES)
    top = len(COCO_MAX_DETECTIONS) - 1
    result: Dict[str, Union[float, Tensor]] = {
        "map": _mean_defined(precision[:, :, :, 0, top]),
        "map_50": _mean_defined(precision[0, :, :, 0, top]),
        "map_75": _mean_defined(precision[5, :, :, 0, top]),
    }
    for s, name in enumerate(names[1:], start=1):
        result[f"map_{name}"] = _mean_defined(precision[:, :, :, s, top])
    for m, limit in enumerate(COCO_MAX_DETECTIONS):
        result[f"mar_{limit}"] = _mean_defined(recall[:, :, 0, m])
    for s, name in enumerate(names[1:], start=1):
        result[f"mar_{name}"] = _mean_defined(recall[:, :, s, top])

    def per_class(values: Tensor) -> Tensor:  # values [..., L] -> mean over the rest
        flat = values.reshape(math.prod(values.shape[:-1]), values.shape[-1])
        defined = (flat > -1).all(0)
        means = flat.mean(0)
        return torch.where(defined, means, torch.full_like(means, -1.0))

    result["classes"] = classes
    result["map_per_class"] = per_class(precision[:, :, :, 0, top])
    result["map_50_per_class"] = per_class(precision[0, :, :, 0, top])
    result["mar_100_per_class"] = per_class(recall[:, :, 0, top])
    result["precision"] = precision[:, :, :, 0, top].clone()
    result["recall"] = recall[:, :, 0, top].clone()
    return result


# --------------------------------------------------------------------------------------
# 6. Data helpers for the shapes images
# --------------------------------------------------------------------------------------


def shapes_tensors(dataset: torch.utils.data.Dataset) -> Tuple[Tensor, List[Dict[str, Tensor]]]:
    """Render every item of a ``ShapesDataset`` once: images [N, 3, H, W] and N target dicts."""
    items = [dataset[index] for index in range(len(dataset))]
    if not items:
        raise ValueError("dataset must contain at least one image")
    images = torch.stack([image for image, _ in items])
    return images, [target for _, target in items]


def _flip_targets(targets: List[Dict[str, Tensor]], width: int) -> List[Dict[str, Tensor]]:
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
    targets: Sequence[Dict[str, Tensor]],
    batch_size: int,
    flip: bool = True,
    seed: int = 0,
):
    """A function returning a random training batch ``(images [B, 3, H, W], targets)`` per call.

    With ``flip`` each batch is mirrored left-right with probability 1/2 (the shapes stay
    valid: circles, squares and upright triangles are symmetric). Pass it to
    ``course_lib.train.fit`` as ``data``.
    """
    if images.dim() != 4 or images.shape[0] != len(targets):
        raise ValueError(
            f"images must have shape [N, C, H, W] with one target per image, got "
            f"{tuple(images.shape)} and {len(targets)} targets"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    generator = torch.Generator().manual_seed(seed)
    targets = list(targets)

    def next_batch() -> Tuple[Tensor, List[Dict[str, Tensor]]]:
        index = torch.randint(0, images.shape[0], (batch_size,), generator=generator)
        batch_images = images[index]
        batch_targets = [targets[i] for i in index.tolist()]
        if flip and bool(torch.rand((), generator=generator) < 0.5):
            batch_images = batch_images.flip(-1)
            batch_targets = _flip_targets(batch_targets, images.shape[-1])
        return batch_images, batch_targets

    return next_batch


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 64) -> List[Dict[str, Tensor]]:
    """Detections of ``model`` on ``images`` [N, 3, H, W]: N dicts of CPU tensors
    (``boxes`` [K, 4], ``scores`` [K], ``labels`` [K]), computed in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: List[Dict[str, Tensor]] = []
    for start in range(0, images.shape[0], batch_size):
        detections, _ = model(images[start : start + batch_size].to(device))
        results.extend({key: value.cpu() for key, value in d.items()} for d in detections)
    model.train(was_training)
    return results


# --------------------------------------------------------------------------------------
# 7. Detectors
# --------------------------------------------------------------------------------------


def _conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvBackbone(nn.Module):
    """A small CNN: images [B, 3, H, W] -> feature map [B, C, H / 4, W / 4] (C = ``channels``)."""

    stride = 4

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.out_channels = channels
        self.layers = nn.Sequential(
            _conv_block(3, channels // 2, stride=2),
            _conv_block(channels // 2, channels // 2),
            _conv_block(channels // 2, channels, stride=2),
            _conv_block(channels, channels),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(images)


def _check_images(images: object) -> Tensor:
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape [B, 3, H, W], got {shape}")
    return images


def _check_targets(targets: object, batch: int) -> List[Dict[str, Tensor]]:
    if not isinstance(targets, (list, tuple)) or len(targets) != batch:
        raise ValueError(
            f"targets must be a list of {batch} dicts (one per image), got {targets!r:.80}"
        )
    for index, target in enumerate(targets):
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            raise ValueError(
                f"targets[{index}] must be a dict with 'boxes' [K, 4] and 'labels' [K]"
            )
    return list(targets)


class SingleObjectDetector(nn.Module):
    """One object per image: a CNN with a class head and a box head.

    ``forward(images [B, 3, H, W], targets=None)`` returns ``(output, loss)``: ``output``
    holds ``logits`` [B, L] (L = ``num_classes``) and ``boxes`` [B, 4] in pixels; with
    ``targets`` (one box per image) ``loss = cross_entropy + box_weight * L2``, the L2 loss
    being the mean squared error of the box corners divided by the image size.
    """

    def __init__(
        self,
        num_classes: int = 3,
        image_size: int = 64,
        box_weight: float = 1.0,
        channels: int = 32,
    ) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.image_size, self.box_weight = image_size, box_weight
        self.features = nn.Sequential(
            _conv_block(3, channels, stride=2),
            _conv_block(channels, channels),
            _conv_block(channels, 2 * channels, stride=2),
            _conv_block(2 * channels, 2 * channels, stride=2),
        )
        cells = (image_size // 8) ** 2
        self.hidden = nn.Sequential(nn.Flatten(), nn.Linear(2 * channels * cells, 128), nn.ReLU())
        self.class_head = nn.Linear(128, num_classes)
        self.box_head = nn.Linear(128, 4)

    def forward(
        self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None
    ) -> Tuple[Dict[str, Tensor], Optional[Tensor]]:
        hidden = self.hidden(self.features(_check_images(images)))
        logits = self.class_head(hidden)
        boxes = torch.sigmoid(self.box_head(hidden)) * self.image_size
        output = {"logits": logits, "boxes": boxes}
        if targets is None:
            return output, None
        targets = _check_targets(targets, images.shape[0])
        if any(t["boxes"].shape[0] != 1 for t in targets):
            raise ValueError("SingleObjectDetector needs exactly one object per image")
        labels = torch.cat([t["labels"] for t in targets])
        gt_boxes = torch.cat([t["boxes"] for t in targets])
        class_loss = F.cross_entropy(logits, labels)
        box_loss = F.mse_loss(boxes / self.image_size, gt_boxes / self.image_size)
        output.update(class_loss=class_loss.detach(), box_loss=box_loss.detach())
        return output, class_loss + self.box_weight * box_loss


def sliding_window_proposals(
    image_size: int, sizes: Sequence[float] = (12, 18, 26), stride: float = 4.0
) -> Tensor:
    """Our stand-in for Selective Search: square windows of each size at every ``stride``
    pixels, inside an ``image_size`` x ``image_size`` image: [N, 4]."""
    windows = []
    for size in sizes:
        if not 0 < size <= image_size:
            raise ValueError(f"window sizes must be in (0, image_size], got {size}")
        starts = torch.arange(0, image_size - size + 1e-6, stride, dtype=torch.float32)
        y, x = torch.meshgrid(starts, starts, indexing="ij")
        corner = torch.stack([x.reshape(-1), y.reshape(-1)], 1)
        windows.append(torch.cat([corner, corner + size], 1))
    return torch.cat(windows)


class RegionHead(nn.Module):
    """Per-region classifier and box regressor: features [K, D] ->
    logits [K, L + 1] (class 0 = background) and class-specific deltas [K, L, 4]."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, num_classes + 1)
        self.regressor = nn.Linear(hidden, 4 * num_classes)
        nn.init.normal_(self.regressor.weight, std=0.001)
        nn.init.zeros_(self.regressor.bias)

    def forward(self, features: Tensor) -> Tuple[Tensor, Tensor]:
        hidden = self.mlp(features)
        return self.classifier(hidden), self.regressor(hidden).view(-1, self.num_classes, 4)


#: Weights of the second-stage box transform (Fast/Faster R-CNN): (10, 10, 5, 5).
REGION_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def _region_targets(
    proposals: List[Tensor],
    targets: List[Dict[str, Tensor]],
    num_samples: int,
    positive_fraction: float,
    generator: Optional[torch.Generator],
) -> Tuple[List[Tensor], Tensor, Tensor]:
    """Sample regions per image and label them: a region with IoU >= 0.5 with a ground-truth
    box takes its class (1..L) and regresses onto it; the others are background (0).
    Returns the sampled boxes per image, labels [K] and box-transform targets [K, 4]."""
    sampled, labels, regression = [], [], []
    for boxes, target in zip(proposals, targets):
        gt_boxes = target["boxes"].to(boxes)
        boxes = torch.cat([boxes, gt_boxes])  # the true boxes are always good proposals
        match = match_anchors(boxes, gt_boxes, 0.5, 0.5, allow_low_quality=False)
        label = torch.where(
            match >= 0, target["labels"][match.clamp(min=0)] + 1, torch.zeros_like(match)
        )
        positive, negative = sample_labels(label, num_samples, positive_fraction, generator)
        chosen = positive | negative
        sampled.append(boxes[chosen])
        labels.append(label[chosen])
        if gt_boxes.shape[0]:
            matched_gt = gt_boxes[match.clamp(min=0)[chosen]]
        else:
            matched_gt = boxes[chosen]
        regression.append(encode_boxes(boxes[chosen], matched_gt, REGION_BOX_WEIGHTS))
    return sampled, torch.cat(labels), torch.cat(regression)


def _region_loss(
    logits: Tensor, deltas: Tensor, labels: Tensor, regression: Tensor
) -> Dict[str, Tensor]:
    """Cross-entropy over L + 1 classes and smooth L1 on the deltas of the true class."""
    positive = labels > 0
    chosen = deltas[positive, labels[positive] - 1]
    box_loss = F.smooth_l1_loss(chosen, regression[positive], beta=1 / 9, reduction="sum")
    return {
        "region_class": F.cross_entropy(logits, labels),
        "region_box": box_loss / max(labels.numel(), 1),
    }


def postprocess_regions(
    logits: Tensor,
    deltas: Tensor,
    regions: List[Tensor],
    image_size: Tuple[int, int],
    score_threshold: float = 0.05,
    nms_threshold: float = 0.5,
    max_detections: int = 100,
) -> List[Dict[str, Tensor]]:
    """Turn the scores of regions into detections (the last step of R-CNN and its successors).

    ``logits`` [K, L + 1] and class-specific ``deltas`` [K, L, 4] belong to the regions of
    each image (``regions``: one tensor [n_b, 4] per image, K in total). For every class the
    region is moved by its deltas, clipped to the image, dropped below ``score_threshold``,
    and NMS (``nms_threshold``; pass a value above 1 to switch it off) removes duplicates;
    the ``max_detections`` best per image remain. One ``batched_nms`` call serves the whole
    batch. Returns one dict per image with ``boxes`` [D, 4], ``scores`` [D], ``labels`` [D].
    """
    counts = [r.shape[0] for r in regions]
    num_classes = deltas.shape[1]
    boxes = decode_boxes(torch.cat(regions)[:, None], deltas, REGION_BOX_WEIGHTS)  # [K, L, 4]
    boxes = clip_boxes_to_image(boxes, image_size).reshape(-1, 4)
    scores = torch.softmax(logits, dim=1)[:, 1:].reshape(-1)
    labels = torch.arange(num_classes, device=logits.device).repeat(sum(counts))
    image = torch.repeat_interleave(
        torch.arange(len(counts), device=logits.device),
        torch.tensor(counts, device=logits.device) * num_classes,
    )
    return _select_detections(
        boxes, scores, labels, image, len(counts), score_threshold, nms_threshold, max_detections
    )


def _select_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    image: Tensor,
    num_images: int,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
) -> List[Dict[str, Tensor]]:
    """Threshold, NMS per (image, class) and keep the best ``max_detections`` per image."""
    keep = (scores > score_threshold) & ((boxes[:, 2:] - boxes[:, :2]) > 1e-2).all(1)
    boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
    kept = batched_nms(
        boxes,
        scores,
        image * (int(labels.max()) + 1 if labels.numel() else 1) + labels,
        nms_threshold,
    )
    kept = kept[torch.sort(image[kept], stable=True).indices]  # by image, then by score
    counts = torch.bincount(image[kept], minlength=num_images)
    rank = (
        torch.arange(kept.numel(), device=kept.device)
        - (torch.cumsum(counts, 0) - counts)[image[kept]]
    )
    kept = kept[rank < max_detections]
    counts = torch.bincount(image[kept], minlength=num_images).tolist()
    return [
        {"boxes": box, "scores": score, "labels": label}
        for box, score, label in zip(
            boxes[kept].split(counts), scores[kept].split(counts), labels[kept].split(counts)
        )
    ]


class RCNN(nn.Module):
    """R-CNN: crop and warp every proposal to ``crop_size`` pixels, then run a CNN on each.

    ``proposals`` [N, 4] are fixed windows (the same for every image). ``forward(images [B,
    3, H, W], targets=None)`` returns ``(losses, loss)`` with targets, else
    ``(detections, None)`` (a list of B dicts). Each crop runs through a ``ConvBackbone``
    and a ``RegionHead``: the network of ``FastRCNN``, but once per region.
    """

    def __init__(
        self,
        proposals: Tensor,
        num_classes: int = 3,
        channels: int = 32,
        pool_size: int = 5,
        regions_per_image: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.register_buffer("proposals", _check_boxes("proposals", proposals).float().clone())
        self.crop_size = pool_size * ConvBackbone.stride
        self.backbone = ConvBackbone(channels)
        self.head = RegionHead(channels * pool_size * pool_size, num_classes)
        self.regions_per_image = regions_per_image
        self.generator = torch.Generator().manual_seed(seed)

    def classify_regions(
        self, images: Tensor, regions: List[Tensor], chunk: int = 2048
    ) -> Tuple[Tensor, Tensor]:
        """Warp each region of each image to crop_size² pixels and classify it: logits, deltas."""
        # Warping is bilinear resampling of the box: RoI Align on the pixels does exactly that.
        crops = roi_align(images, regions, self.crop_size, 1.0, sampling_ratio=2, aligned=True)
        outputs = [self.head(self.backbone(part)) for part in crops.split(chunk)]
        return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])

    def forward(
        self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None
    ) -> Tuple[Union[Dict[str, Tensor], List[Dict[str, Tensor]]], Optional[Tensor]]:
        images = _check_images(images)
        regions = [self.proposals] * images.shape[0]
        if targets is None:
            logits, deltas = self.classify_regions(images, regions)
            return postprocess_regions(logits, deltas, regions, tuple(images.shape[-2:])), None
        targets = _check_targets(targets, images.shape[0])
        regions, labels, regression = _region_targets(
            regions, targets, self.regions_per_image, 0.25, self.generator
        )
        logits, deltas = self.classify_regions(images, regions)
        losses = _region_loss(logits, deltas, labels, regression)
        return losses, sum(losses.values())


class FastRCNN(nn.Module):
    """Fast R-CNN: run the backbone once per image, then crop each region from the feature map.

    Same interface as ``RCNN``. Regions are pooled with RoI Align (``pool="align"``, aligned
    corners) or RoI Pool (``pool="pool"``) to ``pool_size`` x ``pool_size`` cells and
    classified by a ``RegionHead``. ``propose`` supplies the regions: here the fixed
    ``proposals``; ``FasterRCNN`` overrides it with a region proposal network.
    """

    def __init__(
        self,
        proposals: Optional[Tensor] = None,
        num_classes: int = 3,
        channels: int = 32,
        pool_size: int = 5,
        pool: str = "align",
        regions_per_image: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if pool not in ("align", "pool"):
            raise ValueError(f"pool must be 'align' or 'pool', got {pool!r}")
        if proposals is not None:
            self.register_buffer("proposals", _check_boxes("proposals", proposals).float().clone())
        self.backbone = ConvBackbone(channels)
        self.head = RegionHead(channels * pool_size * pool_size, num_classes)
        self.pool, self.pool_size = pool, pool_size
        self.regions_per_image = regions_per_image
        self.generator = torch.Generator().manual_seed(seed)

    def propose(
        self, images: Tensor, features: Tensor, targets: Optional[List[Dict[str, Tensor]]]
    ) -> Tuple[List[Tensor], Dict[str, Tensor]]:
        """Regions per image and the losses of proposing them (none for fixed windows)."""
        if not hasattr(self, "proposals"):
            raise ValueError("FastRCNN needs proposals: pass a Tensor [N, 4] of windows")
        return [self.proposals] * images.shape[0], {}

    def pool_regions(self, features: Tensor, regions: List[Tensor]) -> Tensor:
        """Crop every region from the feature map: [K, C, pool_size, pool_size]."""
        scale = 1.0 / self.backbone.stride
        if self.pool == "pool":
            return roi_pool(features, regions, self.pool_size, scale)
        return roi_align(features, regions, self.pool_size, scale, sampling_ratio=2, aligned=True)

    def forward(
        self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None
    ) -> Tuple[Union[Dict[str, Tensor], List[Dict[str, Tensor]]], Optional[Tensor]]:
        images = _check_images(images)
        if targets is not None:
            targets = _check_targets(targets, images.shape[0])
        features = self.backbone(images)
        regions, losses = self.propose(images, features, targets)
        if targets is None:
            logits, deltas = self.head(self.pool_regions(features, regions))
            return postprocess_regions(logits, deltas, regions, tuple(images.shape[-2:])), None
        regions, labels, regression = _region_targets(
            regions, targets, self.regions_per_image, 0.25, self.generator
        )
        logits, deltas = self.head(self.pool_regions(features, regions))
        losses.update(_region_loss(logits, deltas, labels, regression))
        return losses, sum(losses.values())


class RegionProposalNetwork(nn.Module):
    """RPN: at every anchor, an objectness score and a box transform, from a feature map.

    ``forward(features [B, C, H, W], image_size, targets=None)`` returns the proposals (a
    list of B tensors [n, 4], best first) and a dict with the two RPN losses when
    ``targets`` are given: binary cross-entropy on sampled anchors (IoU >= 0.7 object,
    < 0.3 background) and smooth L1 on the transforms of the object anchors.
    """

    def __init__(
        self,
        channels: int,
        feature_size: Size2,
        stride: int,
        anchor_sizes: Sequence[float] = (12, 18, 26),
        aspect_ratios: Sequence[float] = (1.0,),
        pre_nms: int = 300,
        post_nms_train: int = 64,
        post_nms_test: int = 32,
        nms_threshold: float = 0.7,
        anchors_per_image: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_anchors = len(anchor_sizes) * len(aspect_ratios)
        self.register_buffer(
            "anchors", generate_anchors(feature_size, stride, anchor_sizes, aspect_ratios)
        )
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.objectness = nn.Conv2d(channels, self.num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * self.num_anchors, 1)
        for layer in (self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)
        self.pre_nms, self.nms_threshold = pre_nms, nms_threshold
        self.post_nms = {True: post_nms_train, False: post_nms_test}
        self.anchors_per_image = anchors_per_image
        self.generator = torch.Generator().manual_seed(seed)

    def forward(
        self,
        features: Tensor,
        image_size: Tuple[int, int],
        targets: Optional[List[Dict[str, Tensor]]] = None,
    ) -> Tuple[List[Tensor], Dict[str, Tensor]]:
        b = features.shape[0]
        hidden = self.conv(features)
        # Channels to the last axis so rows follow generate_anchors: position, then anchor.
        objectness = self.objectness(hidden).permute(0, 2, 3, 1).reshape(b, -1)  # [B, HWA]
        deltas = self.deltas(hidden).view(b, self.num_anchors, 4, *hidden.shape[-2:])
        deltas = deltas.permute(0, 3, 4, 1, 2).reshape(b, -1, 4)  # [B, HWA, 4]
        if objectness.shape[1] != self.anchors.shape[0]:
            raise ValueError(
                f"the feature map gives {objectness.shape[1]} anchors per image but the RPN "
                f"was built for {self.anchors.shape[0]}: check feature_size"
            )
        proposals = self._proposals(objectness.detach(), deltas.detach(), image_size)
        losses = {} if targets is None else self._losses(objectness, deltas, targets)
        return proposals, losses

    def _proposals(
        self, objectness: Tensor, deltas: Tensor, image_size: Tuple[int, int]
    ) -> List[Tensor]:
        b = objectness.shape[0]
        top = min(self.pre_nms, objectness.shape[1])
        scores, index = objectness.topk(top, dim=1)  # [B, top]
        boxes = decode_boxes(
            self.anchors[index], deltas.gather(1, index[..., None].expand(-1, -1, 4))
        )
        boxes = clip_boxes_to_image(boxes, image_size).reshape(-1, 4)
        image = torch.arange(b, device=boxes.device).repeat_interleave(top)
        return [
            d["boxes"]
            for d in _select_detections(
                boxes, scores.reshape(-1), torch.zeros_like(image), image, b,
                -math.inf, self.nms_threshold, self.post_nms[self.training],
            )
        ]  # fmt: skip

    def _losses(
        self, objectness: Tensor, deltas: Tensor, targets: List[Dict[str, Tensor]]
    ) -> Dict[str, Tensor]:
        labels, regression = [], []
        for target in targets:
            gt_boxes = target["boxes"].to(self.anchors)
            match = match_anchors(self.anchors, gt_boxes, 0.7, 0.3)
            labels.append(
                (match >= 0).long() - (match == -2).long()
            )  # 1 object, 0 background, -1 ignore
            matched = gt_boxes[match.clamp(min=0)] if gt_boxes.shape[0] else self.anchors
            regression.append(encode_boxes(self.anchors, matched))
        labels_t, regression_t = torch.stack(labels), torch.stack(regression)
        sampled_pos, sampled_neg = zip(
            *(sample_labels(row, self.anchors_per_image, 0.5, self.generator) for row in labels_t)
        )
        positive, negative = torch.stack(sampled_pos), torch.stack(sampled_neg)
        sampled = positive | negative
        count = max(int(sampled.sum()), 1)
        object_loss = F.binary_cross_entropy_with_logits(
            objectness[sampled], positive[sampled].to(objectness.dtype), reduction="sum"
        )
        box_loss = F.smooth_l1_loss(
            deltas[positive], regression_t[positive], beta=1 / 9, reduction="sum"
        )
        return {"rpn_objectness": object_loss / count, "rpn_box": box_loss / count}


class FasterRCNN(FastRCNN):
    """Faster R-CNN: Fast R-CNN whose regions come from a region proposal network.

    Trained jointly with four losses: RPN objectness, RPN box transform, region
    classification and region box transform. ``image_size`` fixes the anchor grid.
    """

    def __init__(
        self,
        num_classes: int = 3,
        image_size: int = 64,
        channels: int = 64,
        pool_size: int = 5,
        anchor_sizes: Sequence[float] = (12, 18, 26),
        aspect_ratios: Sequence[float] = (1.0,),
        regions_per_image: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(None, num_classes, channels, pool_size, "align", regions_per_image, seed)
        stride = self.backbone.stride
        self.rpn = RegionProposalNetwork(
            channels, image_size // stride, stride, anchor_sizes, aspect_ratios, seed=seed
        )

    def propose(
        self, images: Tensor, features: Tensor, targets: Optional[List[Dict[str, Tensor]]]
    ) -> Tuple[List[Tensor], Dict[str, Tensor]]:
        return self.rpn(features, tuple(images.shape[-2:]), targets)


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Focal loss (RetinaNet), summed: ``-alpha_t (1 - p_t)**gamma log(p_t)`` for logits and
    0/1 targets of the same shape. Easy examples (p_t near 1) are down-weighted, so the
    thousands of easy background anchors do not swamp the few objects."""
    probability = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probability * targets + (1 - probability) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum()


class OneStageDetector(nn.Module):
    """A one-stage detector (RetinaNet/SSD style): classes and boxes straight from anchors.

    At each anchor of the feature map a convolutional head predicts L class scores
    (sigmoid, focal loss) and a box transform (smooth L1), with no proposal stage.
    Anchors match objects at IoU >= 0.5 and are background below 0.4. Same interface as
    ``FasterRCNN``.
    """

    def __init__(
        self,
        num_classes: int = 3,
        image_size: int = 64,
        channels: int = 64,
        anchor_sizes: Sequence[float] = (12, 18, 26),
        aspect_ratios: Sequence[float] = (1.0,),
        prior: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ConvBackbone(channels)
        stride = self.backbone.stride
        self.num_anchors = len(anchor_sizes) * len(aspect_ratios)
        self.register_buffer(
            "anchors", generate_anchors(image_size // stride, stride, anchor_sizes, aspect_ratios)
        )
        self.head = nn.Sequential(_conv_block(channels, channels), _conv_block(channels, channels))
        self.classifier = nn.Conv2d(channels, self.num_anchors * num_classes, 3, padding=1)
        self.regressor = nn.Conv2d(channels, self.num_anchors * 4, 3, padding=1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.constant_(
            self.classifier.bias, -math.log((1 - prior) / prior)
        )  # start at p = prior
        nn.init.normal_(self.regressor.weight, std=0.01)
        nn.init.zeros_(self.regressor.bias)

    def forward(
        self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None
    ) -> Tuple[Union[Dict[str, Tensor], List[Dict[str, Tensor]]], Optional[Tensor]]:
        images = _check_images(images)
        b = images.shape[0]
        hidden = self.head(self.backbone(images))
        logits = self.classifier(hidden).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes)
        deltas = self.regressor(hidden).permute(0, 2, 3, 1).reshape(b, -1, 4)  # [B, HWA, 4]
        if logits.shape[1] != self.anchors.shape[0]:
            raise ValueError(
                f"images of size {tuple(images.shape[-2:])} do not fit the anchor grid"
            )
        if targets is None:
            return self._detect(logits, deltas, tuple(images.shape[-2:])), None
        losses = self._losses(logits, deltas, _check_targets(targets, b))
        return losses, sum(losses.values())

    def _losses(
        self, logits: Tensor, deltas: Tensor, targets: List[Dict[str, Tensor]]
    ) -> Dict[str, Tensor]:
        class_targets, regression, matches = [], [], []
        for target in targets:
            gt_boxes = target["boxes"].to(self.anchors)
            match = match_anchors(self.anchors, gt_boxes, 0.5, 0.4)
            one_hot = torch.zeros(match.shape[0], self.num_classes, device=logits.device)
            positive = match >= 0
            one_hot[positive, target["labels"][match[positive]]] = 1.0
            class_targets.append(one_hot)
            matched = gt_boxes[match.clamp(min=0)] if gt_boxes.shape[0] else self.anchors
            regression.append(encode_boxes(self.anchors, matched))
            matches.append(match)
        match_t = torch.stack(matches)
        positive, counted = match_t >= 0, match_t != -2  # ignored anchors do not count
        num_positive = max(int(positive.sum()), 1)
        class_loss = sigmoid_focal_loss(logits[counted], torch.stack(class_targets)[counted])
        box_loss = F.smooth_l1_loss(
            deltas[positive], torch.stack(regression)[positive], beta=1 / 9, reduction="sum"
        )
        return {"class": class_loss / num_positive, "box": box_loss / num_positive}

    def _detect(
        self, logits: Tensor, deltas: Tensor, image_size: Tuple[int, int], candidates: int = 300
    ) -> List[Dict[str, Tensor]]:
        b, _, num_classes = logits.shape
        scores = torch.sigmoid(logits).reshape(b, -1)  # [B, N * L]
        top_scores, index = scores.topk(min(candidates, scores.shape[1]), dim=1)
        anchor, label = index // num_classes, index % num_classes
        boxes = decode_boxes(
            self.anchors[anchor], deltas.gather(1, anchor[..., None].expand(-1, -1, 4))
        )
        boxes = clip_boxes_to_image(boxes, image_size).reshape(-1, 4)
        image = torch.arange(b, device=logits.device).repeat_interleave(anchor.shape[1])
        return _select_detections(
            boxes, top_scores.reshape(-1), label.reshape(-1), image, b, 0.05, 0.5, 100
        )
