"""Checks for the exercises of the object-detection chapter.

Each check compares the student's function with ``course_lib.detection`` on random inputs
and edge cases (empty inputs, one box, identical boxes, ties, an IoU exactly at the
threshold, boxes outside the feature map), in float64 and then float32. When a check
fails, the hint names the classic mistake if the student's output matches it: each
``_MISTAKES`` entry is a known wrong version of the function, run on the failing case.
Calling the library's or torchvision's version of the exercise is rejected.
"""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

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
from course_lib.checks.hints import Mistakes, diagnose

_diagnose = diagnose


def _random_boxes(n: int, seed: int, device: torch.device, size: float = 50.0) -> Tensor:
    """Seeded float64 boxes [n, 4] inside [0, size]², sides between 1 and size / 2."""
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=generator, dtype=torch.float64) * size / 2
    sides = 1 + torch.rand(n, 2, generator=generator, dtype=torch.float64) * (size / 2 - 1)
    return torch.cat([corner, corner + sides], dim=1).to(device)


def _boxes(rows: Sequence[Sequence[float]], device: torch.device) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64, device=device).reshape(-1, 4)


# --------------------------------------------------------------------------------------
# IoU of all pairs
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# RoI Pool for one region
# --------------------------------------------------------------------------------------


def _roi_pool_loop(
    features: Tensor,
    box: Tensor,
    output_size: Tuple[int, int],
    spatial_scale: float,
    rounding: str = "half_away",
    plus_one: bool = True,
    reduce: str = "max",
) -> Tensor:
    """RoI Pool of one region, written as loops over bins (mistakes switchable)."""
    channels, height, width = features.shape
    pooled_h, pooled_w = output_size
    scaled = (box.double() * spatial_scale).tolist()
    if rounding == "half_away":
        x1, y1, x2, y2 = (int(math.copysign(math.floor(abs(v) + 0.5), v)) for v in scaled)
    else:
        x1, y1, x2, y2 = (int(torch.round(torch.tensor(v))) for v in scaled)
    extra = 1 if plus_one else 0
    roi_w, roi_h = max(x2 - x1 + extra, 1), max(y2 - y1 + extra, 1)
    bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
    out = features.new_zeros(channels, pooled_h, pooled_w)
    for i in range(pooled_h):
        h0 = min(max(math.floor(i * bin_h) + y1, 0), height)
        h1 = min(max(math.ceil((i + 1) * bin_h) + y1, 0), height)
        for j in range(pooled_w):
            w0 = min(max(math.floor(j * bin_w) + x1, 0), width)
            w1 = min(max(math.ceil((j + 1) * bin_w) + x1, 0), width)
            if h1 <= h0 or w1 <= w0:
                continue
            cell = features[:, h0:h1, w0:w1].reshape(channels, -1)
            out[:, i, j] = cell.amax(1) if reduce == "max" else cell.mean(1)
    return out


def _roi_pool_reference(
    features: Tensor, box: Tensor, output_size: Tuple[int, int], spatial_scale: float
) -> Tensor:
    return detection.roi_pool(features[None], [box[None]], output_size, spatial_scale)[0]


def _roi_pool_cases(device: torch.device) -> List[Case]:
    generator = torch.Generator().manual_seed(40)

    def features(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device)

    def box(*values: float) -> Tensor:
        return torch.tensor(values, dtype=torch.float64, device=device)

    return [
        Case(
            "7×7 特征图上的一个框，输出 2×2",
            (features(3, 7, 7), box(1.0, 1.3, 5.2, 6.1), (2, 2), 1.0),
        ),
        Case(
            "spatial_scale = 0.5（框在原图坐标中）",
            (features(2, 8, 8), box(2.4, 3.0, 12.6, 14.2), (3, 3), 0.5),
        ),
        Case("坐标恰好落在 .5 上", (features(2, 8, 8), box(1.5, 2.5, 4.5, 5.5), (2, 2), 1.0)),
        Case("框超出特征图边界", (features(2, 6, 6), box(-3.0, -2.0, 9.0, 10.0), (2, 3), 1.0)),
        Case("比输出网格还小的框", (features(1, 6, 6), box(2.0, 2.0, 3.0, 3.0), (3, 3), 1.0)),
        Case("一个通道，输出 1×1", (features(1, 5, 5), box(0.0, 0.0, 4.0, 4.0), (1, 1), 1.0)),
        Case(
            "完全在特征图外的框（输出全 0）",
            (features(2, 5, 5), box(20.0, 20.0, 30.0, 30.0), (2, 2), 1.0),
        ),
    ]


_PLUS_ONE = (
    "torchvision 的 roi_pool 沿用了 Fast R-CNN（Caffe）的旧约定：取整后的 x1、x2 被当作"
    "包含两端的格子下标，所以区域宽 x2 - x1 + 1 个格子（高同理），且至少为 1。这与本课程别处的"
    "连续坐标（宽 = x2 - x1，不加 1）不同，是为了与已训练的模型兼容而保留的历史遗留；"
    "RoI Align 没有这个 +1。"
)

_ROI_POOL_MISTAKES: Mistakes = {
    "mean": (
        lambda f, b, s, k: _roi_pool_loop(f, b, s, k, reduce="mean"),
        "RoI Pool 在每个格子里取最大值（max），不是平均值。",
    ),
    "round to even": (
        lambda f, b, s, k: _roi_pool_loop(f, b, s, k, rounding="even"),
        "坐标取整用“四舍五入、.5 远离 0”（C 语言的 round，torchvision 的内核就是这样）："
        "torch.round 和 Python 的 round 会把 2.5 舍成 2，可以写成 sign(x) * floor(|x| + 0.5)。",
    ),
    "no +1": (
        lambda f, b, s, k: _roi_pool_loop(f, b, s, k, plus_one=False),
        "区域的宽高是 x2 - x1 + 1 个格子（两端的格子都算在内），且至少为 1。" + _PLUS_ONE,
    ),
}


@exercise_check
def check_roi_pool_one(
    student_roi_pool_one: Callable[[Tensor, Tensor, Tuple[int, int], float], Tensor],
) -> CheckResult:
    """Check ``student_roi_pool_one(features [C, H, W], box [4], (P, Q), scale) -> [C, P, Q]``.

    Contract (``torchvision.ops.roi_pool`` exactly, legacy quirks included):
    ``x1, y1, x2, y2 = round_half_away(box * spatial_scale)``; the region is ``x2 - x1 + 1``
    by ``y2 - y1 + 1`` cells (at least 1): Fast R-CNN treated the rounded corners as
    inclusive cell indices, a convention kept for compatibility (RoI Align has no +1);
    bin i covers rows ``[floor(i * h / P), ceil((i + 1) * h / P)) + y1``, clipped to the map;
    a bin's output is the max over its cells, 0 for an empty bin. Same dtype as features.
    The verdict explains the +1 and the rounding when a student leaves them out.
    """
    return check_function(
        "roi_pool_one",
        student_roi_pool_one,
        _roi_pool_reference,
        _roi_pool_cases,
        atol=1e-12,
        rtol=0.0,
        hint=_diagnose(
            _ROI_POOL_MISTAKES,
            "先把 box * spatial_scale 取整到格子，再把区域分成 P×Q 个格子：第 i 行覆盖 "
            "[floor(i * h / P), ceil((i + 1) * h / P)) 行，裁剪到特征图内，空格子输出 0。",
        ),
        forbidden=[
            forbid(detection.roi_pool, detection.roi_align),
            forbid("torchvision.ops.roi_pool", "torchvision.ops.RoIPool"),
        ],
    )


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


# --------------------------------------------------------------------------------------
# RoI Align for one region
# --------------------------------------------------------------------------------------


def _bilinear(features: Tensor, y: float, x: float, mode: str = "bilinear",
              outside: str = "zero") -> Tensor:  # fmt: skip
    """torchvision's bilinear sample at (y, x) in cell coordinates, all channels: [C]."""
    channels, height, width = features.shape
    if outside == "zero" and (y < -1.0 or y > height or x < -1.0 or x > width):
        return features.new_zeros(channels)
    y, x = max(y, 0.0), max(x, 0.0)
    if mode == "nearest":
        row, col = min(round(y), height - 1), min(round(x), width - 1)
        return features[:, row, col]
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * features[:, y_low, x_low]
        + hy * lx * features[:, y_low, x_high]
        + ly * hx * features[:, y_high, x_low]
        + ly * lx * features[:, y_high, x_high]
    )


def _roi_align_loop(
    features: Tensor, box: Tensor, output_size: Tuple[int, int], spatial_scale: float,
    sampling_ratio: int, aligned: bool, *, offset: Optional[float] = None, min_size: bool = True,
    grid: str = "ceil", at: str = "centre", reduce: str = "mean", mode: str = "bilinear",
    outside: str = "zero",
) -> Tensor:  # fmt: skip
    """RoI Align of one region as loops over bins and samples (mistakes switchable)."""
    channels = features.shape[0]
    pooled_h, pooled_w = output_size
    shift = (0.5 if aligned else 0.0) if offset is None else offset
    x1, y1, x2, y2 = (float(v) * spatial_scale - shift for v in box.tolist())
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned and min_size:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
    round_up = math.ceil if grid == "ceil" else math.floor
    grid_h = sampling_ratio if sampling_ratio > 0 else round_up(roi_h / pooled_h)
    grid_w = sampling_ratio if sampling_ratio > 0 else round_up(roi_w / pooled_w)
    count = max(grid_h * grid_w, 1)
    place = 0.5 if at == "centre" else 0.0
    out = features.new_zeros(channels, pooled_h, pooled_w)
    for i in range(pooled_h):
        for j in range(pooled_w):
            samples = [
                _bilinear(
                    features,
                    y1 + i * bin_h + (iy + place) * bin_h / grid_h,
                    x1 + j * bin_w + (ix + place) * bin_w / grid_w,
                    mode,
                    outside,
                )
                for iy in range(grid_h)
                for ix in range(grid_w)
            ]
            if not samples:
                continue
            stacked = torch.stack(samples)
            out[:, i, j] = stacked.amax(0) if reduce == "max" else stacked.sum(0) / count
    return out


def _roi_align_reference(
    features: Tensor, box: Tensor, output_size: Tuple[int, int], spatial_scale: float,
    sampling_ratio: int, aligned: bool,
) -> Tensor:  # fmt: skip
    return detection.roi_align(
        features[None], [box[None]], output_size, spatial_scale, sampling_ratio, aligned
    )[0]


def _roi_align_cases(device: torch.device) -> List[Case]:
    generator = torch.Generator().manual_seed(60)

    def features(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device)

    def box(*values: float) -> Tensor:
        return torch.tensor(values, dtype=torch.float64, device=device)

    f7, f8 = features(3, 7, 7), features(2, 8, 8)
    return [
        Case("7×7 特征图上的一个框，输出 2×2，sampling_ratio 2，aligned=True",
             (f7, box(1.3, 0.7, 5.2, 6.1), (2, 2), 1.0, 2, True)),
        Case("同一个框，aligned=False（旧版，差半个格子）",
             (f7, box(1.3, 0.7, 5.2, 6.1), (2, 2), 1.0, 2, False)),
        Case("自适应采样 sampling_ratio=-1（每格 ceil(区域/输出) 个点）",
             (f7, box(0.4, 1.1, 6.3, 5.7), (3, 2), 1.0, -1, True)),
        Case("spatial_scale = 0.5（框在原图坐标中）",
             (f8, box(2.6, 3.4, 12.2, 14.6), (2, 3), 0.5, 2, True)),
        Case("框超出特征图（采样点在 -1 之外记 0，-1 到 0 之间贴边）",
             (features(2, 6, 6), box(-3.3, -1.7, 4.1, 7.9), (3, 3), 1.0, 2, False)),
        Case("比一个格子还小的框（aligned=False 时宽高至少为 1）",
             (features(1, 6, 6), box(2.2, 2.6, 2.5, 2.9), (2, 2), 1.0, 2, False)),
        Case("采样点落到最后一行、最后一列", (features(2, 5, 5), box(2.1, 2.3, 5.4, 5.6), (2, 2),
             1.0, 2, True)),
        Case("完全在特征图外的框（输出全 0）", (features(2, 5, 5), box(20.0, 20.0, 30.0, 30.0),
             (2, 2), 1.0, 2, True)),
        Case("宽高为 0 的框，sampling_ratio 2（所有采样点重合）",
             (features(1, 5, 5), box(2.3, 1.7, 2.3, 1.7), (1, 2), 1.0, 2, True)),
        Case("一个通道，输出 1×1，自适应采样，aligned=False",
             (features(1, 6, 6), box(0.6, 0.9, 4.7, 5.2), (1, 1), 1.0, 0, False)),
    ]  # fmt: skip


_ROI_ALIGN_MISTAKES: Mistakes = {
    "no offset": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, offset=0.0),
        "aligned=True 时先把框平移 -0.5 个格子（box * spatial_scale - 0.5）：格子 j 的中心在 "
        "j + 0.5，第 j 个特征值对应连续坐标 j + 0.5。",
    ),
    "offset always": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, offset=0.5),
        "只有 aligned=True 才减 0.5；aligned=False 是最初的版本，不做平移。",
    ),
    "no min size": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, min_size=False),
        "aligned=False 时区域的宽和高至少为 1（torchvision 为兼容旧模型保留的规则）；"
        "aligned=True 时不做这个截断。",
    ),
    "floor grid": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, grid="floor"),
        "sampling_ratio <= 0 时每个格子的采样点数是 ceil(区域高 / P) × ceil(区域宽 / Q)"
        "（向上取整）。",
    ),
    "corners": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, at="corner"),
        "采样点在每个小块的中心：y = y1 + i * bin_h + (iy + 0.5) * bin_h / grid_h，"
        "不是小块的角上。",
    ),
    "max": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, reduce="max"),
        "RoI Align 对一个格子里的采样点取平均（RoI Pool 才取最大值）。",
    ),
    "nearest": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, mode="nearest"),
        "采样点的值要用双线性插值，由周围 4 个格子按 (1 - |dx|)(1 - |dy|) 加权，不是取最近的格子。",
    ),
    "no cut-off": (
        lambda f, b, k, s, r, a: _roi_align_loop(f, b, k, s, r, a, outside="clamp"),
        "y < -1 或 y > H（x 同理）的采样点贡献 0；只有 -1 到 0 之间的点才贴到边上（y = 0）。",
    ),
}


@exercise_check
def check_roi_align_one(student_roi_align_one: Callable[..., Tensor]) -> CheckResult:
    """Check RoI Align of one region with bilinear sampling (``torchvision.ops.roi_align``).

    Contract::

        roi_align_one(features [C, H, W], box [4], output_size (P, Q), spatial_scale,
                      sampling_ratio, aligned) -> [C, P, Q]

    ``box`` (x1, y1, x2, y2) is in image coordinates; ``x1 * spatial_scale - offset`` etc.
    with offset 0.5 when ``aligned`` (a cell's centre is at j + 0.5) and 0 otherwise; when
    not aligned the region's width and height are at least 1. Each of the P x Q bins
    averages ``grid_h x grid_w`` samples at the centres of a regular grid inside the bin
    (``grid = sampling_ratio`` if > 0, else ``ceil(roi_size / bins)`` per axis; an empty
    grid gives 0). A sample at (y, x) is 0 if y < -1, y > H, x < -1 or x > W; otherwise
    clamped to >= 0 and interpolated bilinearly from its four neighbouring cells (the last
    row/column repeats at the border). Same dtype and device as ``features``. The
    library's and torchvision's ``roi_align`` are off limits (``F.grid_sample`` is fine).
    """
    return check_function(
        "roi_align_one：双线性采样的 RoI Align",
        student_roi_align_one,
        _roi_align_reference,
        _roi_align_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_diagnose(
            _ROI_ALIGN_MISTAKES,
            "步骤：框乘以 spatial_scale（aligned 时再减 0.5）；不取整地把区域分成 P×Q 个格子；"
            "每个格子里放 grid_h×grid_w 个均匀的采样点（小块中心）；每个点双线性插值；对点取平均。",
        ),
        forbidden=[
            forbid(detection.roi_align, detection.roi_pool),
            forbid(
                "torchvision.ops.roi_align",
                "torchvision.ops.RoIAlign",
                "torchvision.ops.ps_roi_align",
            ),
        ],
    )
