"""Checks for the box exercises: IoU, encoding and decoding, non-maximum suppression."""

from __future__ import annotations

import math
from typing import Callable, List, Tuple

import torch
from torch import Tensor

from course_lib import detection
from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    forbid,
)
from course_lib.checks.detection._common import _boxes, _diagnose, _random_boxes
from course_lib.checks.hints import Mistakes


def _iou_parts(boxes1: Tensor, boxes2: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    return area1, area2, lt, rb


def _iou_without_clamp(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    area1, area2, lt, rb = _iou_parts(boxes1, boxes2)
    inter = (rb - lt).prod(-1)
    return inter / (area1[:, None] + area2[None, :] - inter)


def _iou_union_without_overlap(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    area1, area2, lt, rb = _iou_parts(boxes1, boxes2)
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area1[:, None] + area2[None, :])


def _iou_over_smaller(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    area1, area2, lt, rb = _iou_parts(boxes1, boxes2)
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / torch.min(area1[:, None], area2[None, :])


def _iou_width_height_clamped_together(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    area1, area2, lt, rb = _iou_parts(boxes1, boxes2)
    inter = (rb - lt).prod(-1).clamp(min=0)
    return inter / (area1[:, None] + area2[None, :] - inter)


def _iou_cases(device: torch.device) -> List[Case]:
    return [
        Case("5 个框 × 7 个框", (_random_boxes(5, 0, device), _random_boxes(7, 1, device))),
        Case(
            "一个框 × 一个框（批大小 1）",
            (_random_boxes(1, 2, device), _random_boxes(1, 3, device)),
        ),
        Case(
            "完全相同的框（对角线 IoU = 1）",
            (_random_boxes(4, 4, device), _random_boxes(4, 4, device)),
        ),
        Case(
            "互不相交、只在边上相接、错开的框",
            (
                _boxes([[0, 0, 10, 10], [40, 40, 50, 50]], device),
                _boxes([[20, 0, 30, 10], [10, 0, 20, 10], [12, 12, 20, 30]], device),
            ),
        ),
        Case(
            "一个框包含另一个",
            (_boxes([[0, 0, 20, 20]], device), _boxes([[5, 5, 10, 10], [0, 0, 20, 20]], device)),
        ),
        Case("空输入 [0, 4] × [3, 4]", (_boxes([], device), _random_boxes(3, 5, device))),
        Case("[3, 4] × 空输入 [0, 4]", (_random_boxes(3, 6, device), _boxes([], device))),
    ]


_IOU_MISTAKES: Mistakes = {
    "no clamp": (
        _iou_without_clamp,
        "不相交的框得到了非零 IoU：交集的宽和高可能是负数，要先 clamp(min=0) 再相乘。",
    ),
    "clamp after product": (
        _iou_width_height_clamped_together,
        "宽和高都为负时乘积是正数：要分别对宽和高 clamp(min=0)，不能只对乘积 clamp。",
    ),
    "union": (
        _iou_union_without_overlap,
        "并集面积 = area1 + area2 - 交集面积：两个面积相加时重叠部分被算了两次。",
    ),
    "over smaller": (
        _iou_over_smaller,
        "IoU 的分母是并集面积，不是较小框的面积。",
    ),
}


def _iou_hint(mismatch: Mismatch, case: Case) -> str:
    expected, actual = mismatch.expected, mismatch.actual
    if (
        isinstance(actual, Tensor)
        and isinstance(expected, Tensor)
        and actual.shape != expected.shape
    ):
        return (
            "输出形状应为 [N, M]（每一对框一个 IoU）：用 boxes1[:, None, :] 与 boxes2[None, :, :] "
            "广播出所有配对。"
        )
    return _diagnose(
        _IOU_MISTAKES,
        "IoU = 交集面积 / 并集面积；交集的左上角取两框左上角的最大值，右下角取最小值。",
    )(mismatch, case)


@exercise_check
def check_box_iou(student_box_iou: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``student_box_iou(boxes1 [N, 4], boxes2 [M, 4]) -> [N, M]`` against ``box_iou``.

    Contract: boxes (x1, y1, x2, y2), continuous coordinates (no +1); returns the IoU of
    every pair [N, M] in the boxes' dtype; empty inputs give [0, M] / [N, 0].
    """
    return check_function(
        "box_iou",
        student_box_iou,
        detection.box_iou,
        _iou_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_iou_hint,
        forbidden=[
            forbid(detection.box_iou),
            forbid("torchvision.ops.box_iou", "torchvision.ops.generalized_box_iou"),
        ],
    )


# --------------------------------------------------------------------------------------
# Box transform: encode and decode
# --------------------------------------------------------------------------------------


def _centres(boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def _encode_corners(reference: Tensor, target: Tensor) -> Tensor:
    _, _, w, h = _centres(reference)
    _, _, tw, th = _centres(target)
    return torch.stack(
        [
            (target[:, 0] - reference[:, 0]) / w,
            (target[:, 1] - reference[:, 1]) / h,
            (tw / w).log(),
            (th / h).log(),
        ],
        dim=1,
    )


def _encode_without_log(reference: Tensor, target: Tensor) -> Tensor:
    x, y, w, h = _centres(reference)
    tx, ty, tw, th = _centres(target)
    return torch.stack([(tx - x) / w, (ty - y) / h, tw / w, th / h], dim=1)


def _encode_by_target_size(reference: Tensor, target: Tensor) -> Tensor:
    x, y, w, h = _centres(reference)
    tx, ty, tw, th = _centres(target)
    return torch.stack([(tx - x) / tw, (ty - y) / th, (tw / w).log(), (th / h).log()], dim=1)


def _encode_swapped(reference: Tensor, target: Tensor) -> Tensor:
    return detection.encode_boxes(target, reference)


def _encode_cases(device: torch.device) -> List[Case]:
    reference = _random_boxes(6, 10, device)
    return [
        Case("6 对随机框", (reference, _random_boxes(6, 11, device))),
        Case("一对框（批大小 1）", (_random_boxes(1, 12, device), _random_boxes(1, 13, device))),
        Case("目标就是参考框本身（变换应全为 0）", (reference, reference.clone())),
        Case(
            "只平移不缩放",
            (_boxes([[10, 10, 30, 20]], device), _boxes([[15, 8, 35, 18]], device)),
        ),
        Case(
            "只缩放不平移",
            (_boxes([[10, 10, 30, 20]], device), _boxes([[0, 5, 40, 25]], device)),
        ),
        Case("空输入 [0, 4]", (_boxes([], device), _boxes([], device))),
    ]


_ENCODE_MISTAKES: Mistakes = {
    "corners": (_encode_corners, "tx、ty 比较的是两个框的中心点 (x1 + x2) / 2，不是左上角。"),
    "no log": (_encode_without_log, "tw = log(w_target / w_reference)：宽高的变换要取对数。"),
    "target size": (
        _encode_by_target_size,
        "tx、ty 要除以参考框（候选区域）的宽和高，不是目标框的。",
    ),
    "swapped": (
        _encode_swapped,
        "方向反了：变换是把 reference 移到 target 上，参数的顺序是 (reference, target)。",
    ),
}


@exercise_check
def check_encode_boxes(student_encode_boxes: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``student_encode_boxes(reference [N, 4], target [N, 4]) -> [N, 4]``.

    Contract: the R-CNN transform (tx, ty, tw, th) of each pair, centres and sizes of
    xyxy boxes, in the boxes' dtype.
    """
    return check_function(
        "encode_boxes",
        student_encode_boxes,
        detection.encode_boxes,
        _encode_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_diagnose(
            _ENCODE_MISTAKES,
            "tx = (x_t - x_r) / w_r，ty = (y_t - y_r) / h_r，"
            "tw = log(w_t / w_r)，th = log(h_t / h_r)，其中 (x, y) 是框的中心。",
        ),
        forbidden=[forbid(detection.encode_boxes, detection.decode_boxes)],
    )


def _decode_without_exp(reference: Tensor, deltas: Tensor) -> Tensor:
    x, y, w, h = _centres(reference)
    cx, cy = x + deltas[:, 0] * w, y + deltas[:, 1] * h
    nw, nh = w * deltas[:, 2], h * deltas[:, 3]
    return torch.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], dim=1)


def _decode_to_cxcywh(reference: Tensor, deltas: Tensor) -> Tensor:
    return detection.box_convert(detection.decode_boxes(reference, deltas), "xyxy", "cxcywh")


def _decode_from_corner(reference: Tensor, deltas: Tensor) -> Tensor:
    _, _, w, h = _centres(reference)
    x1, y1 = reference[:, 0] + deltas[:, 0] * w, reference[:, 1] + deltas[:, 1] * h
    nw, nh = w * deltas[:, 2].exp(), h * deltas[:, 3].exp()
    return torch.stack([x1, y1, x1 + nw, y1 + nh], dim=1)


def _decode_cases(device: torch.device) -> List[Case]:
    generator = torch.Generator().manual_seed(20)
    deltas = (torch.randn(6, 4, generator=generator, dtype=torch.float64) * 0.5).to(device)
    return [
        Case("6 个框和随机变换", (_random_boxes(6, 21, device), deltas)),
        Case("一个框（批大小 1）", (_random_boxes(1, 22, device), deltas[:1])),
        Case(
            "零变换（应原样返回参考框）",
            (_random_boxes(3, 23, device), torch.zeros_like(deltas[:3])),
        ),
        Case(
            "只缩放：tw = log 2, th = -log 2",
            (
                _boxes([[10, 10, 30, 20]], device),
                _boxes([[0, 0, math.log(2), -math.log(2)]], device),
            ),
        ),
        Case("空输入 [0, 4]", (_boxes([], device), _boxes([], device))),
    ]


_DECODE_MISTAKES: Mistakes = {
    "no exp": (_decode_without_exp, "宽高要乘以 exp(tw)、exp(th)：tw、th 是对数尺度上的变化。"),
    "cxcywh": (_decode_to_cxcywh, "返回的应是角点格式 (x1, y1, x2, y2)，不是 (cx, cy, w, h)。"),
    "corner": (_decode_from_corner, "平移作用在中心点上：先求新中心，再向两边各延伸半个宽/高。"),
}


@exercise_check
def check_decode_boxes(student_decode_boxes: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``student_decode_boxes(reference [N, 4], deltas [N, 4]) -> boxes [N, 4]``.

    Contract: the inverse of ``encode_boxes``; returns xyxy boxes in the inputs' dtype.
    """
    return check_function(
        "decode_boxes",
        student_decode_boxes,
        detection.decode_boxes,
        _decode_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_diagnose(
            _DECODE_MISTAKES,
            "x = x_r + tx * w_r，y = y_r + ty * h_r，w = w_r * exp(tw)，h = h_r * exp(th)，"
            "再换回 (x - w/2, y - h/2, x + w/2, y + h/2)。",
        ),
        forbidden=[forbid(detection.decode_boxes, detection.encode_boxes)],
    )


# --------------------------------------------------------------------------------------
# Greedy NMS
# --------------------------------------------------------------------------------------


def _greedy(
    boxes: Tensor, scores: Tensor, threshold: float, rule: str = "strict", ties: str = "first"
) -> Tensor:
    """The textbook loop, with switchable mistakes (used to name a student's mistake)."""
    if ties == "first":
        order = torch.sort(scores, descending=True, stable=True).indices
    else:  # sorting ascending and flipping puts equal scores in reverse order
        order = torch.sort(scores, stable=True).indices.flip(0)
    iou = detection.box_iou(boxes, boxes)
    alive = torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    keep = []
    for i in order.tolist():
        if not alive[i]:
            continue
        keep.append(i)
        over = iou[i] >= threshold if rule == "greater_equal" else iou[i] > threshold
        alive &= ~over
        alive[i] = False
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def _nms_suppressed_still_suppress(boxes: Tensor, scores: Tensor, threshold: float) -> Tensor:
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = detection.box_iou(boxes, boxes)[order][:, order]
    earlier = torch.ones_like(iou, dtype=torch.bool).triu(diagonal=1)
    suppressed = ((iou > threshold) & earlier).any(dim=0)
    return order[~suppressed]


def _nms_index_order(boxes: Tensor, scores: Tensor, threshold: float) -> Tensor:
    return detection.nms(boxes, scores, threshold).sort().values


def _clustered_boxes(seed: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """30 boxes jittered around 3 objects, with distinct scores."""
    generator = torch.Generator().manual_seed(seed)
    objects = torch.tensor(
        [[10, 10, 40, 40], [30, 25, 70, 60], [60, 5, 90, 30]], dtype=torch.float64
    )
    pick = torch.randint(0, 3, (30,), generator=generator)
    boxes = objects[pick] + torch.randn(30, 4, generator=generator, dtype=torch.float64) * 4
    boxes[:, 2:] = torch.max(boxes[:, 2:], boxes[:, :2] + 2)
    scores = torch.rand(30, generator=generator, dtype=torch.float64)
    return boxes.to(device), scores.to(device)


def _nms_cases(device: torch.device) -> List[Case]:
    boxes, scores = _clustered_boxes(30, device)
    chain = _boxes(
        [[0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]], device
    )  # A~B, B~C, A and C apart
    return [
        Case("3 个目标周围的 30 个框，阈值 0.5", (boxes, scores, 0.5)),
        Case("同样的框，阈值 0.3", (boxes, scores, 0.3)),
        Case("同样的框，阈值 0.7", (boxes, scores, 0.7)),
        Case(
            "链：A 压 B、B 压 C，但 A 与 C 不重叠",
            (chain, torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64, device=device), 0.3),
        ),
        Case(
            "IoU 恰好等于阈值 0.5（不应抑制）",
            (
                _boxes([[0, 0, 2, 1], [0, 0, 1, 1]], device),
                torch.tensor([0.9, 0.8], dtype=torch.float64, device=device),
                0.5,
            ),
        ),
        Case(
            "分数相同（先出现的框优先）",
            (
                _boxes([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], device),
                torch.tensor([0.5, 0.5, 0.5, 0.9], dtype=torch.float64, device=device),
                0.5,
            ),
        ),
        Case(
            "只有一个框",
            (
                _boxes([[1, 2, 3, 4]], device),
                torch.tensor([0.3], dtype=torch.float64, device=device),
                0.5,
            ),
        ),
        Case(
            "空输入", (_boxes([], device), torch.zeros(0, dtype=torch.float64, device=device), 0.5)
        ),
    ]


_NMS_MISTAKES: Mistakes = {
    "index order": (
        _nms_index_order,
        "返回的下标要按分数从高到低排列（与 torchvision.ops.nms 一致），不是按下标排序。",
    ),
    "suppressed suppress": (
        _nms_suppressed_still_suppress,
        "已经被抑制的框不能再去抑制别的框：只有被保留下来的框才参与后面的比较。",
    ),
    ">=": (
        lambda b, s, t: _greedy(b, s, t, rule="greater_equal"),
        "抑制条件是 IoU 严格大于阈值（IoU > threshold），等于阈值时保留。",
    ),
    "unstable sort": (
        lambda b, s, t: _greedy(b, s, t, ties="last"),
        "分数相同时先出现的框优先：排序用 torch.sort(scores, descending=True, stable=True)。",
    ),
}


@exercise_check
def check_nms(student_nms: Callable[[Tensor, Tensor, float], Tensor]) -> CheckResult:
    """Check ``student_nms(boxes [N, 4], scores [N], iou_threshold) -> kept indices [K]``.

    Contract: greedy NMS as ``torchvision.ops.nms``: by decreasing score (equal scores in
    input order), keep a box and drop every other box whose IoU with it is > the
    threshold; returns the kept indices as int64 [K], by decreasing score, on the boxes'
    device. The library's and torchvision's ``nms`` / ``batched_nms`` are off limits.
    """
    return check_function(
        "nms",
        student_nms,
        detection.nms,
        _nms_cases,
        atol=0.0,
        rtol=0.0,
        hint=_diagnose(
            _NMS_MISTAKES,
            "按分数从高到低遍历；保留当前框，并删除与它 IoU > 阈值的其余框；"
            "返回保留框的下标（int64）。",
        ),
        dtype_hint="这个练习返回保留框的下标（int64，按分数从高到低），不是每个框是否保留的掩码。",
        forbidden=[
            forbid(detection.nms, detection.batched_nms),
            forbid("torchvision.ops.nms", "torchvision.ops.batched_nms"),
        ],
    )
