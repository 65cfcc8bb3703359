"""Evaluation: precision, recall, average precision and COCO mAP, as pycocotools computes them.

Shape letters: ``N`` detections, ``M`` ground-truth boxes, ``L`` classes, ``T`` IoU
thresholds, ``R`` recall points of the COCO evaluation, ``S`` its object-size ranges, ``G``
its (image, class) groups and ``D`` detections per group. Everything runs on the CPU in
float64 (the curves are small; MPS has no float64).
"""

from __future__ import annotations

import math
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from course_lib.detection.boxes import areas, pairwise_iou
from course_lib.validation import (
    check_choice,
    check_int,
    check_probability,
    check_same_device,
    check_tensor,
)

__all__ = [
    "AP_METHODS",
    "COCO_AREA_RANGES",
    "COCO_IOU_THRESHOLDS",
    "COCO_MAX_DETECTIONS",
    "COCO_RECALL_THRESHOLDS",
    "average_precision",
    "evaluate_detections",
    "match_detections",
    "precision_recall_curve",
]

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
#: Interpolations of ``average_precision``.
AP_METHODS = ("coco", "voc11", "all")


def _check_curve_args(
    scores: Tensor, matched: Tensor, num_ground_truth: int
) -> Tuple[Tensor, Tensor, int]:
    """Scores [N] (finite), matched [N] (bool, or 0/1 numbers) and a count of objects >= 0."""
    sizes: Dict[str, int] = {}
    check_tensor("scores", scores, "N", dtype="real", sizes=sizes, finite=True)
    check_tensor("matched", matched, "N", sizes=sizes)
    if matched.is_complex():
        raise TypeError(f"matched must be a bool tensor (or 0/1 numbers), got {matched.dtype}")
    check_same_device(scores=scores, matched=matched)
    if matched.dtype != torch.bool:
        if not bool(((matched == 0) | (matched == 1)).all()):
            raise ValueError(
                "matched must hold True/False (or 0/1) per detection, got other values: "
                f"{matched[(matched != 0) & (matched != 1)][:3].tolist()}"
            )
        matched = matched != 0
    num_ground_truth = check_int("num_ground_truth", num_ground_truth, 0)
    true_positives = int(matched.sum())
    if num_ground_truth < true_positives:  # each true positive used up its own object
        raise ValueError(
            f"num_ground_truth must be at least the number of true positives in matched "
            f"({true_positives}): recall would exceed 1; got {num_ground_truth}"
        )
    return scores.detach().cpu().double(), matched.detach().cpu(), num_ground_truth


def precision_recall_curve(
    scores: Tensor, matched: Tensor, num_ground_truth: int
) -> Tuple[Tensor, Tensor]:
    """Precision and recall after each detection of one class, by decreasing score.

    ``scores`` [N] and ``matched`` [N] (True = true positive, False = false positive, or 1
    and 0; see ``match_detections``); ``num_ground_truth`` objects of the class exist (at
    least as many as there are true positives, else ValueError). Equal scores
    keep their input order (a stable sort, as COCO). Returns ``(precision, recall)``, each
    [N] float64 on the CPU: ``precision = TP / (TP + FP)`` and ``recall = TP / (TP + FN) =
    TP / num_ground_truth`` counted over the detections so far.
    """
    scores, matched, num_ground_truth = _check_curve_args(scores, matched, num_ground_truth)
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = matched.to(torch.float64)[order]
    tp = hits.cumsum(0)
    fp = (1 - hits).cumsum(0)
    precision = tp / (tp + fp)
    recall = tp / num_ground_truth if num_ground_truth > 0 else torch.zeros_like(tp)
    return precision, recall


def _envelope(precision: Tensor) -> Tensor:
    """Interpolated precision [..., N]: the best precision at this recall or any higher one."""
    return precision.flip(-1).cummax(-1).values.flip(-1)


def _coco_points(precision: Tensor, recall: Tensor) -> Tensor:
    """Interpolated precision at COCO's 101 recall points for curves [..., N]: [..., R].

    Each point takes the envelope where the recall first reaches it (0 if it never does).
    """
    n = precision.shape[-1]
    if n == 0:
        return precision.new_zeros(*precision.shape[:-1], COCO_RECALL_THRESHOLDS.numel())
    points = COCO_RECALL_THRESHOLDS.to(recall).expand(*recall.shape[:-1], -1).contiguous()
    first = torch.searchsorted(recall.contiguous(), points, side="left")
    values = _envelope(precision).gather(-1, first.clamp(max=n - 1))
    return torch.where(first < n, values, torch.zeros_like(values))


def _interpolated_ap(precision: Tensor, recall: Tensor, method: str) -> Tensor:
    """AP from precision/recall curves [..., N] (batched), with the chosen interpolation."""
    if method == "coco":  # 101 recall points 0, 0.01, ..., 1
        return _coco_points(precision, recall).mean(-1)
    if precision.shape[-1] == 0:
        return precision.new_zeros(precision.shape[:-1])
    if method == "voc11":  # PASCAL VOC 2007: 11 recall points 0, 0.1, ..., 1
        points = torch.linspace(0, 1, 11, dtype=recall.dtype, device=recall.device)
        reached = recall[..., None, :] >= points[:, None]  # [..., 11, N]
        best = torch.where(
            reached, precision[..., None, :], torch.zeros_like(reached, dtype=recall.dtype)
        )
        return best.amax(-1).mean(-1)
    # "all", PASCAL VOC 2010+: area under the envelope, summed where recall rises
    previous = torch.cat([torch.zeros_like(recall[..., :1]), recall[..., :-1]], dim=-1)
    return ((recall - previous) * _envelope(precision)).sum(-1)


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
    check_choice("method", method, AP_METHODS)
    _check_curve_args(scores, matched, num_ground_truth)
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
    sizes: Dict[str, int] = {}
    check_tensor("boxes", boxes, "N, 4", dtype="real", sizes=sizes, finite=True)
    check_tensor("scores", scores, "N", dtype="real", sizes=sizes, finite=True)
    check_tensor("gt_boxes", gt_boxes, "M, 4", dtype="real", finite=True)
    check_same_device(boxes=boxes, scores=scores, gt_boxes=gt_boxes)
    iou_threshold = check_probability("iou_threshold", iou_threshold)
    n, m = boxes.shape[0], gt_boxes.shape[0]
    # On the CPU in float64, as evaluate_detections (and pycocotools) do.
    order = torch.sort(scores.detach().cpu().double(), descending=True, stable=True).indices
    iou = pairwise_iou(boxes.detach().cpu().double()[order], gt_boxes.detach().cpu().double())
    matched, _ = _greedy_match(
        iou[None],
        torch.ones(1, n, dtype=torch.bool),
        torch.ones(1, m, dtype=torch.bool),
        torch.zeros(1, 1, m, dtype=torch.bool),
        torch.tensor([iou_threshold], dtype=torch.float64),
    )
    result = torch.zeros(n, dtype=torch.bool)
    result[order] = matched[0, 0, 0]
    return result.to(boxes.device)


def _flatten_detections(
    items: Sequence[Dict[str, Tensor]], name: str, with_scores: bool
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Concatenate per-image dicts into boxes [N, 4] float64, labels, image index, scores (CPU)."""
    if not isinstance(items, (list, tuple)):
        raise TypeError(
            f"{name} must be a list of dicts (one per image), got {type(items).__name__}"
        )
    keys = ("boxes", "labels", "scores") if with_scores else ("boxes", "labels")
    boxes, labels, images, scores = [], [], [], []
    for index, item in enumerate(items):
        where = f"{name}[{index}]"
        if not isinstance(item, dict):
            raise TypeError(
                f"{where} must be a dict with keys {list(keys)}, got {type(item).__name__}"
            )
        missing = [key for key in keys if key not in item]
        if missing:
            raise ValueError(f"{where} must be a dict with keys {list(keys)}, missing {missing}")
        sizes: Dict[str, int] = {}
        b = check_tensor(
            f"{where}['boxes']", item["boxes"], "N, 4", dtype="real", sizes=sizes, finite=True
        )
        if bool((b[:, 2:] < b[:, :2]).any()):
            raise ValueError(
                f"{where}['boxes'] must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2, got "
                f"{b[(b[:, 2:] < b[:, :2]).any(1)][0].tolist()}"
            )
        label = check_tensor(
            f"{where}['labels']", item["labels"], "N", dtype="integer", sizes=sizes
        )
        boxes.append(b.detach().cpu().double())
        labels.append(label.detach().cpu().long())
        images.append(torch.full((b.shape[0],), index, dtype=torch.long))
        if with_scores:
            score = check_tensor(
                f"{where}['scores']", item["scores"], "N", dtype="real", sizes=sizes, finite=True
            )
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
    det_boxes, det_labels, det_image, det_scores = _flatten_detections(
        predictions, "predictions", True
    )
    gt_boxes, gt_labels, gt_image, _ = _flatten_detections(targets, "targets", False)
    if len(predictions) != len(targets):
        raise ValueError(
            f"predictions and targets must have one entry per image, got {len(predictions)} "
            f"and {len(targets)}"
        )
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
    iou = pairwise_iou(table_boxes_d, table_boxes_g)  # [G, D, M]
    iou = torch.where(det_valid[:, :, None] & gt_valid[:, None, :], iou, torch.zeros_like(iou))

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
