"""Checks for the RoI exercises: RoI Pool and RoI Align for one region."""

from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

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
from course_lib.checks.detection._common import _diagnose
from course_lib.checks.hints import Mistakes

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
