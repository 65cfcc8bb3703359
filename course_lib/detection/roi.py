"""RoI Pool (Fast R-CNN) and RoI Align (Mask R-CNN): crop a fixed-size grid from a feature map.

Shape letters: ``B`` images, ``C`` channels, ``H`` and ``W`` the feature map's height and
width, ``K`` regions of interest (RoIs), ``P`` and ``Q`` the output's height and width, ``G``
samples per bin along one axis, ``L`` cells of a window along one axis.

Both ops gather, for every RoI, only the window of feature-map cells it touches (channels
last, so one gather fetches all C values of a cell), in chunks small enough to stay in the
processor's cache, with RoIs of similar size chunked together so that little padding is
gathered. The work therefore grows with the size of the RoIs inside the map, never with the
size of the boxes themselves: an absurdly large box costs no more than one covering the map.
"""

from __future__ import annotations

from functools import partial
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.detection.boxes import check_pair
from course_lib.validation import (
    check_bool,
    check_float,
    check_int,
    check_same_device,
    check_tensor,
)

__all__ = ["roi_align", "roi_pool"]

BoxList = Union[Tensor, Sequence[Tensor]]
Size2 = Union[int, Tuple[int, int], Sequence[int]]

#: Values gathered at once (about 1 MiB in float32, so that they stay in the L2 cache).
_CHUNK_VALUES = 1 << 18
#: Values per bucket of RoIs of similar size (the gather indices and the interpolation
#: weights are built once per bucket, then used chunk by chunk).
_BUCKET_VALUES = 1 << 22


# --------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------


def _as_rois(boxes: BoxList, input: Tensor) -> Tensor:
    """RoIs [K, 5] = (batch index, x1, y1, x2, y2) from a [K, 5] tensor or a list of [L, 4]."""
    num_images = input.shape[0]
    if isinstance(boxes, (list, tuple)):
        if len(boxes) > num_images:
            raise ValueError(
                f"boxes must hold at most one Tensor[L, 4] per image ({num_images}), "
                f"got {len(boxes)}"
            )
        parts = []
        for index, item in enumerate(boxes):
            check_tensor(f"boxes[{index}]", item, "L, 4", dtype="floating", finite=True)
            item = item.to(device=input.device, dtype=input.dtype)
            parts.append(torch.cat([torch.full_like(item[:, :1], index), item], dim=1))
        return torch.cat(parts) if parts else input.new_zeros(0, 5)
    check_tensor("boxes", boxes, dtype="floating", finite=True)
    if boxes.dim() != 2 or boxes.shape[1] != 5:
        raise ValueError(
            "boxes must have shape [K, 5] (batch index, x1, y1, x2, y2) or be a list of "
            f"Tensor[L, 4] (one per image), got {list(boxes.shape)}"
        )
    rois = boxes.to(device=input.device, dtype=input.dtype)
    batch = rois[:, 0]
    if rois.shape[0] and not bool(
        ((batch >= 0) & (batch <= num_images - 1) & (batch == batch.floor())).all()
    ):
        raise ValueError(
            f"boxes[:, 0] (the batch index of each RoI) must hold integers in "
            f"[0, {num_images - 1}], got values from {float(batch.min()):g} to "
            f"{float(batch.max()):g}"
        )
    return rois


def _check_roi_args(
    input: Tensor, boxes: BoxList, output_size: Size2, spatial_scale: float
) -> Tuple[Tensor, int, int, float]:
    check_tensor("input", input, "B, C, H, W", dtype="floating")
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(f"input must have a non-empty feature map, got {list(input.shape)}")
    if isinstance(boxes, Tensor):
        check_same_device(input=input, boxes=boxes)
    rois = _as_rois(boxes, input)
    p, q = check_pair("output_size", output_size, partial(check_int, minimum=1))
    scale = check_float("spatial_scale", spatial_scale, 0.0, include_minimum=False)
    return rois.detach(), p, q, scale  # like torchvision: no gradient for the coordinates


# --------------------------------------------------------------------------------------
# Shared machinery: chunks of similar RoIs, windows, channels-last gathers
# --------------------------------------------------------------------------------------


def _buckets(cost: Tensor) -> List[Tensor]:
    """Split RoIs [K] into buckets whose summed ``cost`` (values to gather) stays near
    ``_BUCKET_VALUES``, small costs first, so that a bucket is padded only to sizes close
    to its own."""
    if int(cost.sum()) <= _BUCKET_VALUES:
        return [torch.arange(cost.numel(), device=cost.device)]
    order = torch.argsort(cost, stable=True)
    group = torch.cumsum(cost[order], 0).div_(_BUCKET_VALUES, rounding_mode="floor")
    counts = torch.unique_consecutive(group, return_counts=True)[1]
    return list(order.split(counts.tolist()))


def _chunk_slices(count: int, values_each: int) -> List[slice]:
    """Consecutive slices of ``count`` items, each gathering about ``_CHUNK_VALUES`` values."""
    step = max(1, _CHUNK_VALUES // max(values_each, 1))
    return [slice(start, start + step) for start in range(0, count, step)]


def _channels_last(input: Tensor) -> Tensor:
    """The feature map as rows of C values, one per cell: [B * H * W, C]."""
    return input.permute(0, 2, 3, 1).reshape(-1, input.shape[1])


def _window_index(batch: Tensor, rows: Tensor, cols: Tensor, height: int, width: int) -> Tensor:
    """Row numbers in ``_channels_last`` of cells ``(rows [k, R], cols [k, S])``: [k, R, S]."""
    return (batch[:, None, None] * height + rows[:, :, None]) * width + cols[:, None, :]


# --------------------------------------------------------------------------------------
# RoI Pool
# --------------------------------------------------------------------------------------


def _round_half_away(x: Tensor) -> Tensor:
    """C's ``round``: halves go away from zero (``torch.round`` rounds them to even)."""
    half = (x - x.trunc()).abs() == 0.5  # the fractional part is exact in floating point
    return torch.where(half, x.trunc() + x.sign(), x.round())


def _pool_bins(start: Tensor, size: Tensor, bins: int, limit: int) -> Tuple[Tensor, Tensor]:
    """First cell and number of cells [K, bins] of RoI Pool's bins along one axis.

    Bin ``b`` covers ``[floor(b * step), ceil((b + 1) * step))`` cells from ``start``,
    ``step = size / bins`` in the input's precision (like the kernel), clipped to the map.
    """
    step = size / bins
    index = torch.arange(bins, device=start.device, dtype=size.dtype)
    low = (torch.floor(index * step[:, None]) + start[:, None]).clamp(0, limit)
    high = (torch.ceil((index + 1) * step[:, None]) + start[:, None]).clamp(0, limit)
    return low.long(), (high - low).long()


class _BinMax(torch.autograd.Function):
    """``cells[index].amax(1)`` for ``cells`` [M, C] and ``index`` [N, n]: [N, C], gathered in
    cache-sized chunks, with the gradient going to the first maximal cell of each bin, as in
    RoI Pool's kernel.

    (``torch.max(dim)`` also returns the first maximal index but is several times slower
    than ``amax``, whose own gradient would be shared among equal values.)
    """

    @staticmethod
    def forward(ctx, cells: Tensor, index: Tensor) -> Tensor:  # type: ignore[override]
        n, channels = index.shape[1], cells.shape[1]
        best = cells.new_empty(index.shape[0], channels)
        winner = index.new_empty(best.shape) if ctx.needs_input_grad[0] else None
        rank_dtype = torch.uint8 if n < 2**8 else torch.int32
        rank = torch.arange(n, 0, -1, device=index.device).to(rank_dtype)  # n .. 1
        for part in _chunk_slices(index.shape[0], n * channels):
            values = F.embedding(index[part], cells)  # [N, n, C]
            torch.amax(values, 1, out=best[part])
            if winner is not None:  # the first maximal cell has the highest rank
                hits = (values == best[part, None]) * rank[:, None]
                torch.gather(index[part], 1, n - hits.amax(1).long(), out=winner[part])
        if winner is not None:
            ctx.save_for_backward(winner)
            ctx.num_cells = cells.shape[0]
        return best

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (winner,) = ctx.saved_tensors  # [N, C]: the cell each output value came from
        grad_cells = grad.new_zeros(ctx.num_cells, grad.shape[1])
        return grad_cells.scatter_add_(0, winner, grad), None


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
    rois, p, q, scale = _check_roi_args(input, boxes, output_size, spatial_scale)
    _, channels, height, width = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros(0, channels, p, q)
    # Scale in the input's precision (like the kernel), then round to whole cells. The kernel
    # keeps them in 32-bit ints; the clamp keeps absurd boxes from overflowing ours.
    corners = _round_half_away((rois[:, 1:] * scale).clamp(-(2.0**31), 2.0**31))
    x1, y1, x2, y2 = corners.unbind(1)
    row_lo, rows_per_bin = _pool_bins(y1, (y2 - y1 + 1).clamp(min=1), p, height)  # [K, P]
    col_lo, cols_per_bin = _pool_bins(x1, (x2 - x1 + 1).clamp(min=1), q, width)  # [K, Q]
    cells = _channels_last(input)
    batch = rois[:, 0].long()
    out = input.new_empty(k, channels, p, q)
    tall, wide = rows_per_bin.amax(1).clamp(min=1), cols_per_bin.amax(1).clamp(min=1)
    for part in _buckets(tall * wide * (p * q * channels)):
        most_rows, most_cols = int(tall[part].max()), int(wide[part].max())
        steps_r = torch.arange(most_rows, device=input.device)
        steps_c = torch.arange(most_cols, device=input.device)
        # Cells past the end of a bin repeat its first cell: they never change the maximum,
        # and they come after it in row-major order, where the first maximum takes the
        # gradient.
        rows = row_lo[part, :, None] + steps_r * (steps_r < rows_per_bin[part, :, None])
        cols = col_lo[part, :, None] + steps_c * (steps_c < cols_per_bin[part, :, None])
        rows = (batch[part, None, None] * height + rows.clamp_(max=height - 1)) * width
        # [k, P, Q, r, c]: the cells of every bin in row-major order, one row of cells each
        index = rows[:, :, None, :, None] + cols.clamp_(max=width - 1)[:, None, :, None, :]
        result = _BinMax.apply(cells, index.view(-1, most_rows * most_cols))
        out.index_copy_(0, part, result.view(-1, p, q, channels).permute(0, 3, 1, 2))
    empty = (rows_per_bin == 0)[:, :, None] | (cols_per_bin == 0)[:, None, :]
    return out.masked_fill_(empty[:, None], 0.0) if bool(empty.any()) else out


# --------------------------------------------------------------------------------------
# RoI Align
# --------------------------------------------------------------------------------------


def _sample_taps(
    start: Tensor, length: Tensor, bins: int, grid: Tensor, size: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """The bilinear taps of RoI Align's samples along one axis.

    Bin ``b`` of region ``k`` averages ``grid[k]`` samples at ``start + b * length / bins +
    (i + 0.5) * (length / bins) / grid`` (``grid`` [K] in the input's dtype). A sample
    beyond -1 or ``size`` reads 0 (it only counts in the average), one in [-1, 0] or
    [size - 1, size] is clamped to the border, as in the kernel. Only the samples that can
    land inside are enumerated, so ``G`` stays near ``size / step`` however large the box.
    Returns ``low`` [K, bins, G] (the cell below each sample; the one above is ``low + 1``)
    and the weights of ``low`` and ``low + 1``, each [K, bins, G] (0 for samples that read
    nothing).
    """
    dtype, device = start.dtype, start.device
    bin_size = length / bins
    grid_1 = grid.clamp(min=1)
    step = (bin_size / grid_1)[:, None]
    base = start[:, None] + torch.arange(bins, device=device, dtype=dtype) * bin_size[:, None]
    # Sample numbers i that can land in [-1, size], with a spare on each side for rounding;
    # the exact test is done on the positions below. A zero step puts every sample at base.
    low_end, high_end = (-1.0 - base) / step - 0.5, (size - base) / step - 0.5
    flat = (step == 0).expand_as(base)
    first = torch.where(flat, 0.0, torch.minimum(low_end, high_end).floor_() - 1).clamp_(min=0)
    last = torch.where(flat, grid[:, None] - 1, torch.maximum(low_end, high_end).ceil_() + 1)
    last = torch.minimum(last, grid[:, None] - 1)
    most = int((last - first + 1).amax()) if last.numel() else 0
    i = first[..., None] + torch.arange(max(most, 0), device=device, dtype=dtype)  # [K, bins, G]
    pos = base[..., None] + (i + 0.5) * bin_size[:, None, None] / grid_1[:, None, None]
    inside = (i <= last[..., None]) & (pos >= -1.0) & (pos <= size)
    pos = pos.clamp(min=0)
    low = pos.floor().clamp_(max=size - 1)
    frac = torch.where(low >= size - 1, torch.zeros_like(pos), pos - low)
    used = inside.to(dtype)
    return low.long(), (1 - frac) * used, frac * used


def _sampling_weights(
    low: Tensor, weight_low: Tensor, weight_high: Tensor, first: Tensor, length: int
) -> Tensor:
    """Interpolation matrix of one axis on a window of ``length`` cells from ``first`` [k].

    Row ``(k, b)`` of the result [k, bins, length] holds the weight that each cell of region
    ``k``'s window gets in the average of bin ``b`` (taps from ``_sample_taps``). RoI Align
    is then ``Wy @ window @ Wx^T`` per region and channel: bilinear sampling is linear in
    the feature map and factorises along y and x.
    """
    k, bins, _ = low.shape
    offset = (low - first[:, None, None]).clamp_(0, length - 1)
    weights = weight_low.new_zeros(k, bins, length)
    weights.scatter_add_(2, offset, weight_low)
    return weights.scatter_add_(2, (offset + 1).clamp_(max=length - 1), weight_high)


def _window(low: Tensor, weight: Tensor, size: int) -> Tuple[Tensor, Tensor]:
    """First cell [K] and number of cells [K] that one axis of each RoI reads (0: none)."""
    used = weight > 0
    far = torch.full_like(low, size)
    first = torch.where(used, low, far).flatten(1).amin(1)
    last = torch.where(used, low + 1, -far).flatten(1).amax(1).clamp(max=size - 1)
    span = (last - first + 1).clamp(min=0)
    return first.clamp(max=size - 1), span


def _separable(weight_y: Tensor, window: Tensor, weight_x: Tensor) -> Tensor:
    """``Wy @ window @ Wx^T`` per region and channel: weight_y [k, P, R], window
    [k, R, S * C] (channels last), weight_x [k, Q, S] -> [k, C, P, Q]."""
    k, p, _ = weight_y.shape
    q, wide = weight_x.shape[1:]
    channels = window.shape[2] // wide
    along_y = torch.bmm(weight_y, window).view(k, p, wide, channels)  # [k, P, S, C]
    if channels >= 8:  # rows of C values: batched products [Q, S] @ [S, C]
        return torch.matmul(weight_x[:, None], along_y).permute(0, 3, 1, 2)
    # few channels: one product [P * C, S] @ [S, Q] per region
    along_y = along_y.transpose(2, 3).reshape(k, p * channels, wide)
    return torch.bmm(along_y, weight_x.transpose(1, 2)).view(k, p, channels, q).permute(0, 2, 1, 3)


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
    each region's output is ``Wy @ window @ Wx^T`` with interpolation matrices Wy [P, R]
    and Wx [Q, S] over the R x S window of cells the region touches: two matrix products
    per region (batched) instead of a loop over samples.
    """
    rois, p, q, scale = _check_roi_args(input, boxes, output_size, spatial_scale)
    sampling_ratio = check_int("sampling_ratio", sampling_ratio)
    offset = 0.5 if check_bool("aligned", aligned) else 0.0
    _, channels, height, width = input.shape
    k = rois.shape[0]
    if k == 0:
        return input.new_zeros(0, channels, p, q)
    x1, y1, x2, y2 = (rois[:, 1:] * scale - offset).unbind(1)
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # the legacy version forces regions to be at least one cell
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    if sampling_ratio > 0:
        grid_h = grid_w = torch.full_like(roi_h, sampling_ratio)
    else:  # samples per bin, as floats: whole numbers, and no overflow for absurd boxes
        grid_h, grid_w = torch.ceil(roi_h / p).clamp_(min=0), torch.ceil(roi_w / q).clamp_(min=0)
    taps_y = _sample_taps(y1, roi_h, p, grid_h, height)
    taps_x = _sample_taps(x1, roi_w, q, grid_w, width)
    if taps_y[0].shape[2] == 0 or taps_x[0].shape[2] == 0:  # no sample anywhere
        return input.new_zeros(k, channels, p, q)
    top, rows = _window(taps_y[0], taps_y[1] + taps_y[2], height)
    left, cols = _window(taps_x[0], taps_x[1] + taps_x[2], width)
    count = (grid_h * grid_w).clamp(min=1)
    cells = _channels_last(input)
    batch = rois[:, 0].long()
    out = input.new_empty(k, channels, p, q)
    for part in _buckets(rows.clamp(min=1) * cols.clamp(min=1) * channels):
        tall, wide = max(int(rows[part].max()), 1), max(int(cols[part].max()), 1)
        top_k, left_k = top[part].clamp(max=height - tall), left[part].clamp(max=width - wide)
        weight_y = _sampling_weights(*(t[part] for t in taps_y), top_k, tall)  # [k, P, R]
        weight_x = _sampling_weights(*(t[part] for t in taps_x), left_k, wide)  # [k, Q, S]
        weight_y = weight_y / count[part, None, None]
        steps_r = torch.arange(tall, device=input.device)
        steps_c = torch.arange(wide, device=input.device)
        index = _window_index(
            batch[part], top_k[:, None] + steps_r, left_k[:, None] + steps_c, height, width
        )
        for chunk in _chunk_slices(part.numel(), tall * wide * channels):
            window = F.embedding(index[chunk].view(-1), cells).view(-1, tall, wide * channels)
            out.index_copy_(0, part[chunk], _separable(weight_y[chunk], window, weight_x[chunk]))
    return out
