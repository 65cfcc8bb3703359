"""Non-maximum suppression, exact and without a loop over boxes.

Shape letters: ``N`` boxes, ``K`` kept boxes. Boxes are (x1, y1, x2, y2) as in ``boxes``.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from course_lib.detection.boxes import areas, pairwise_iou, upcast
from course_lib.validation import check_float, check_same_device, check_tensor

__all__ = ["batched_nms", "nms"]

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
    area = areas(boxes)
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
                iou = pairwise_iou(boxes[start:stop], boxes[kept], area[start:stop], area[kept])
                hit = iou > t
                if groups is not None:
                    hit &= groups[start:stop, None] == groups[kept]
                index = (~hit.any(dim=1)).nonzero().squeeze(1) + start
                if index.numel() == 0:
                    continue
        part = slice(start, stop) if index is None else index
        block_boxes, block_area = boxes[part], area[part]
        # 2. Inside the block: S[i, j] = "i comes first and would suppress j".
        suppress = pairwise_iou(block_boxes, block_boxes, block_area, block_area) > t
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


def _check_nms_args(
    boxes: Tensor, scores: Tensor, iou_threshold: float
) -> Tuple[float, Dict[str, int]]:
    sizes: Dict[str, int] = {}
    check_tensor("boxes", boxes, "N, 4", dtype="floating", sizes=sizes, finite=True)
    check_tensor("scores", scores, "N", dtype="floating", sizes=sizes, finite=True)
    check_same_device(boxes=boxes, scores=scores)
    return check_float("iou_threshold", iou_threshold), sizes


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Non-maximum suppression: indices [K] of the kept boxes, by decreasing score.

    Greedy rule: take the highest-scoring box, drop every box whose IoU with it is greater
    than ``iou_threshold``, repeat with the remaining boxes. ``boxes`` [N, 4] (x1, y1, x2,
    y2), ``scores`` [N], both finite. Keeps exactly the indices of ``torchvision.ops.nms``
    (equal scores are taken in index order, like torchvision's CPU kernel). A threshold
    above 1 keeps every box.
    """
    threshold, _ = _check_nms_args(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[_nms_sorted(upcast(boxes)[order], threshold)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS done separately for each category ``idxs`` [N]: kept indices [K] by decreasing score.

    A box only suppresses boxes with the same ``idxs`` value (an integer tensor). ``boxes``
    [N, 4], ``scores`` [N]. Same result as ``torchvision.ops.batched_nms``.
    """
    threshold, sizes = _check_nms_args(boxes, scores, iou_threshold)
    check_tensor("idxs", idxs, "N", dtype="integer", sizes=sizes)
    check_same_device(boxes=boxes, idxs=idxs)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # Sort by category, then by score: a block then meets only a few categories.
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[torch.sort(idxs[order], stable=True).indices]
    kept = order[_nms_sorted(upcast(boxes)[order], threshold, idxs[order])].sort().values
    return kept[torch.sort(scores[kept], descending=True, stable=True).indices]
