"""Checks for the evaluation exercises: matching detections to objects, average precision."""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple

import torch
from torch import Tensor

from course_lib import detection
from course_lib.checks.core import (
    Case,
    CheckResult,
    check_function,
    exercise_check,
    forbid,
)
from course_lib.checks.detection._common import _boxes, _diagnose
from course_lib.checks.hints import Mistakes

# --------------------------------------------------------------------------------------
# Average precision of one class
# --------------------------------------------------------------------------------------


def _ap_reference(scores: Tensor, matched: Tensor, num_ground_truth: int) -> float:
    return detection.average_precision(scores, matched, num_ground_truth, method="coco")


def _ap_without_envelope(scores: Tensor, matched: Tensor, num_ground_truth: int) -> float:
    precision, recall = detection.precision_recall_curve(scores, matched, num_ground_truth)
    points = torch.linspace(0, 1, 101, dtype=torch.float64)
    first = torch.searchsorted(recall.contiguous(), points, side="left")
    n = precision.numel()
    if n == 0:
        return 0.0
    values = precision[first.clamp(max=n - 1)]
    return float(torch.where(first < n, values, torch.zeros_like(values)).mean())


def _ap_recall_over_detections(scores: Tensor, matched: Tensor, num_ground_truth: int) -> float:
    return detection.average_precision(scores, matched, max(int(matched.numel()), 1), method="coco")


def _ap_ties_reversed(scores: Tensor, matched: Tensor, num_ground_truth: int) -> float:
    order = torch.sort(scores, stable=True).indices.flip(0)  # ascending, flipped: ties reversed
    return detection.average_precision(scores[order], matched[order], num_ground_truth)


def _ap_cases(device: torch.device) -> List[Case]:
    generator = torch.Generator().manual_seed(50)
    # Numbers of boxes (21, 17, 7, 3) for which no recall k / n lands on a grid point
    # 0.01 * i: the result then does not depend on how the 101 points are computed.
    # 15 of the 21 random detections are true positives: at most 17 objects are found.
    scores = torch.rand(21, generator=generator, dtype=torch.float64)
    matched = torch.rand(21, generator=generator) < 0.6

    def tensor(values: Sequence[float], dtype: torch.dtype = torch.float64) -> Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    return [
        Case("21 个随机检测、17 个真实框", (scores.to(device), matched.to(device), 17)),
        Case("完美的检测器（AP = 1）", (tensor([0.9, 0.8, 0.7]), tensor([1, 1, 1], torch.bool), 3)),
        Case("全是误检（AP = 0）", (tensor([0.9, 0.8]), tensor([0, 0], torch.bool), 3)),
        Case(
            "有漏检：召回率到不了 1",
            (tensor([0.9, 0.7, 0.5, 0.3]), tensor([1, 0, 1, 0], torch.bool), 7),
        ),
        Case(
            "分数并列（按输入顺序）",
            (tensor([0.5, 0.5, 0.5, 0.2]), tensor([1, 0, 0, 1], torch.bool), 3),
        ),
        Case("只有一个检测", (tensor([0.3]), tensor([1], torch.bool), 3)),
        Case("没有检测（AP = 0）", (tensor([]), tensor([], torch.bool), 3)),
    ]


_AP_MISTAKES: Mistakes = {
    "recall denominator": (
        _ap_recall_over_detections,
        "召回率 = TP / (TP + FN) = TP / 真实框的个数，不是除以检测的个数"
        "（常见的错误是把召回率也写成精确率的公式 TP / (TP + FP)）。",
    ),
    "no envelope": (
        _ap_without_envelope,
        "先把曲线变成单调的：召回率 r 处的精确率取“召回率 ≥ r 的所有点中精确率的最大值”，"
        "再取 101 个点。",
    ),
    "voc11": (
        lambda s, m, n: detection.average_precision(s, m, n, method="voc11"),
        "COCO 用 101 个召回率点 0, 0.01, ..., 1，不是 VOC 2007 的 11 个点。",
    ),
    "all points": (
        lambda s, m, n: detection.average_precision(s, m, n, method="all"),
        "这是 VOC 2010 的“全部点”面积；本题要求 COCO 的 101 点平均。",
    ),
    "unstable": (
        _ap_ties_reversed,
        "分数相同时保持输入顺序：排序用 torch.sort(scores, descending=True, stable=True)。",
    ),
}


@exercise_check
def check_average_precision(
    student_average_precision: Callable[[Tensor, Tensor, int], float],
) -> CheckResult:
    """Check ``student_average_precision(scores [N], matched [N], num_ground_truth) -> float``.

    Contract: matched [N] bool (true positives); COCO's 101-point interpolated AP of one
    class as a Python float (a one-element tensor is accepted); equal scores keep their
    input order. The library's ``average_precision`` / ``precision_recall_curve`` /
    ``evaluate_detections`` are off limits.
    """
    return check_function(
        "average_precision",
        student_average_precision,
        _ap_reference,
        _ap_cases,
        atol=1e-10,
        rtol=0.0,
        hint=_diagnose(
            _AP_MISTAKES,
            "按分数从高到低累计 TP 和 FP，得到每一步的精确率 TP/(TP+FP) 和召回率 TP/真实框数；"
            "取单调包络后，在 101 个召回率点上取值并平均（到不了的点记 0）。",
        ),
        forbidden=[
            forbid(
                detection.average_precision,
                detection.precision_recall_curve,
                detection.evaluate_detections,
            ),
            forbid("pycocotools.cocoeval.COCOeval", name="pycocotools"),
        ],
    )


# --------------------------------------------------------------------------------------
# Greedy matching of detections to ground truth (the heart of AP)
# --------------------------------------------------------------------------------------


def _greedy_match(
    boxes: Tensor, scores: Tensor, gt_boxes: Tensor, iou_threshold: float,
    order: str = "score", rule: str = "coco", ties: str = "last", compare: str = ">=",
    used_up: bool = True, output: str = "input",
) -> Tensor:  # fmt: skip
    """The textbook loop, with switchable mistakes (used to name a student's mistake)."""
    if order == "score":
        ranking = torch.sort(scores, descending=True, stable=True).indices.tolist()
    elif order == "unstable":  # ascending then flipped: equal scores in reverse order
        ranking = torch.sort(scores, stable=True).indices.flip(0).tolist()
    else:
        ranking = list(range(len(scores)))
    iou = detection.box_iou(boxes, gt_boxes).tolist() if len(gt_boxes) else [[]] * len(boxes)
    taken = [False] * len(gt_boxes)
    matched = [False] * len(boxes)
    for d in ranking:
        best, best_iou = -1, iou_threshold
        for g, value in enumerate(iou[d]):
            if taken[g] and used_up:
                continue
            good = value >= best_iou if compare == ">=" else value > best_iou
            better = value >= best_iou if (ties == "last" and best >= 0) else value > best_iou
            if rule == "first" and good:
                best, best_iou = g, value
                break
            if (best < 0 and good) or (best >= 0 and better):
                best, best_iou = g, value
        if rule == "voc":  # the best box overall; a false positive if it is taken
            values = iou[d]
            best = max(range(len(values)), key=lambda g: (values[g], g)) if values else -1
            good = best >= 0 and (
                values[best] >= iou_threshold if compare == ">=" else values[best] > iou_threshold
            )
            if not good or taken[best]:
                best = -1
        if best >= 0:
            matched[d] = True
            taken[best] = True
    result = torch.tensor(matched, dtype=torch.bool, device=boxes.device)
    return result[ranking] if output == "sorted" else result


def _score(*values: float, device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float64, device=device)


def _crowd(seed: int, device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """6 overlapping objects and 20 jittered detections of them (and of nothing)."""
    generator = torch.Generator().manual_seed(seed)
    objects = torch.tensor(
        [
            [10, 10, 30, 30],
            [18, 12, 38, 32],
            [14, 20, 34, 40],
            [40, 40, 60, 55],
            [44, 42, 64, 58],
            [5, 45, 20, 60],
        ],
        dtype=torch.float64,
    )
    pick = torch.randint(0, 6, (20,), generator=generator)
    boxes = objects[pick] + torch.randn(20, 4, generator=generator, dtype=torch.float64) * 3
    boxes[:, 2:] = torch.max(boxes[:, 2:], boxes[:, :2] + 2)
    scores = torch.rand(20, generator=generator, dtype=torch.float64)
    return boxes.to(device), scores.to(device), objects.to(device)


def _match_cases(device: torch.device) -> List[Case]:
    crowd_boxes, crowd_scores, crowd_objects = _crowd(90, device)
    one = _boxes([[0, 0, 10, 10]], device)
    return [
        Case("a crowd: 20 detections of 6 overlapping objects, threshold 0.5",
             (crowd_boxes, crowd_scores, crowd_objects, 0.5)),
        Case("the same crowd, threshold 0.75", (crowd_boxes, crowd_scores, crowd_objects, 0.75)),
        Case("the same crowd, threshold 0.3", (crowd_boxes, crowd_scores, crowd_objects, 0.3)),
        Case("two detections of one object (the lower score is a false positive)",
             (_boxes([[1, 0, 11, 10], [0, 1, 10, 11]], device), _score(0.6, 0.9, device=device),
              one, 0.5)),
        Case("the best object is taken: the next best one above the threshold is matched",
             (_boxes([[0, 0, 10, 10], [2, 0, 12, 10]], device), _score(0.9, 0.8, device=device),
              _boxes([[0, 0, 10, 10], [4, 0, 14, 10]], device), 0.5)),
        Case("equal scores (the earlier detection goes first)",
             (_boxes([[0, 0, 10, 9], [0, 0, 10, 10]], device), _score(0.7, 0.7, device=device),
              one, 0.5)),
        Case("IoU exactly at the threshold 0.5 (a match)",
             (_boxes([[0, 0, 2, 1]], device), _score(0.5, device=device),
              _boxes([[0, 0, 1, 1]], device), 0.5)),
        Case("equal IoU with two free objects (the later object is taken, as pycocotools)",
             (_boxes([[0, 0, 2, 1], [1, 0, 2, 1]], device), _score(0.9, 0.8, device=device),
              _boxes([[0, 0, 1, 1], [1, 0, 2, 1]], device), 0.5)),
        Case("no ground truth: every detection is a false positive",
             (crowd_boxes[:4], crowd_scores[:4], _boxes([], device), 0.5)),
        Case("no detections", (_boxes([], device), _score(device=device), crowd_objects, 0.5)),
    ]  # fmt: skip


_MATCH_MISTAKES: Mistakes = {
    "first of equal IoUs": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, ties="first"),
        "两个未匹配的真实框 IoU 相等时，取后面的那个（pycocotools 的规则：遍历时用 >=，"
        "后面相等的值会替换前面的），这样结果与 COCO 的评测一致。",
    ),
    "not sorted": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, order="input"),
        "按分数从高到低处理检测（分数高的先挑真实框），不是按输入顺序。",
    ),
    "not used up": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, used_up=False),
        "一个真实框只能匹配一次：被匹配过的框要标记为已用，同一目标的第二个检测是误检（FP）。",
    ),
    "VOC rule": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, rule="voc"),
        "在还没被匹配的真实框中找 IoU 最大的那个（COCO 的规则）：如果 IoU 最大的框已经被占用，"
        "就看下一个（PASCAL VOC 的旧规则会直接判为误检）。",
    ),
    "first above threshold": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, rule="first"),
        "要选 IoU 最大的真实框，而不是第一个超过阈值的框。",
    ),
    "greater than": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, compare=">"),
        "IoU 等于阈值也算匹配：条件是 IoU >= threshold。",
    ),
    "unstable sort": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, order="unstable"),
        "分数相同时先出现的检测优先：torch.sort(scores, descending=True, stable=True)。",
    ),
    "sorted output": (
        lambda b, s, g, t: _greedy_match(b, s, g, t, output="sorted"),
        "matched[i] 对应输入中的第 i 个检测：按分数排序只是处理的顺序，结果要放回原来的位置。",
    ),
}


@exercise_check
def check_match_detections(
    student_match_detections: Callable[[Tensor, Tensor, Tensor, float], Tensor],
) -> CheckResult:
    """Check the greedy matching of one class's detections to its ground truth (COCO's rule).

    Contract::

        match_detections(boxes [N, 4], scores [N], gt_boxes [M, 4], iou_threshold)
            -> matched [N] bool

    In order of decreasing score (equal scores: input order), each detection takes the
    still unmatched ground-truth box with which its IoU is largest, if that IoU is >=
    ``iou_threshold`` (between equal IoUs the later box, as pycocotools); the box is then
    used up. ``matched[i]`` is True when detection i (input order) is a true positive.
    M = 0 gives all False; N = 0 an empty bool tensor. Same device as ``boxes``. The
    library's ``match_detections`` / ``evaluate_detections`` are off limits (``box_iou``
    is fine).
    """
    return check_function(
        "match_detections：把检测匹配到真实框",
        student_match_detections,
        detection.match_detections,
        _match_cases,
        atol=0.0,
        rtol=0.0,
        hint=_diagnose(
            _MATCH_MISTAKES,
            "按分数从高到低遍历检测；对每个检测，在还没被用掉的真实框中找 IoU 最大的一个，"
            "IoU >= 阈值就匹配（TP）并把该框标为已用，否则是误检（FP）；返回按输入顺序的布尔张量。",
        ),
        dtype_hint="这个练习返回每个检测是否为真阳性的布尔张量 [N]（True = TP），不是下标。",
        forbidden=[
            forbid(detection.match_detections, detection.evaluate_detections),
            forbid("pycocotools.cocoeval.COCOeval", name="pycocotools"),
        ],
    )
