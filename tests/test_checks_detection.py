"""Proofs that the detection chapter's exercise checks pass right answers and fail wrong ones.

The wrong answers are the classic mistakes, written the way a student would write them.
"""

import math

import pytest
import torch

from course_lib import detection
from course_lib.checks import detection as checks
from course_lib.checks.detection import evaluation, roi
from tests.checkproof import Proof, Wrong, parametrize_proofs

torchvision = pytest.importorskip("torchvision")

# ----------------------------------------------------------------------------- IoU


def iou_student(boxes1, boxes2):
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    return inter / (area1[:, None] + area2[None, :] - inter)


def iou_no_clamp(boxes1, boxes2):
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).prod(dim=-1)
    return inter / (area1[:, None] + area2[None, :] - inter)


def iou_union_double_counts(boxes1, boxes2):
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    return inter / (area1[:, None] + area2[None, :])


def iou_elementwise(boxes1, boxes2):  # pairs box i with box i only: [N], not [N, M]
    top_left = torch.max(boxes1[:, :2], boxes2[: len(boxes1), :2])
    bottom_right = torch.min(boxes1[:, 2:], boxes2[: len(boxes1), 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    area1 = (boxes1[:, 2:] - boxes1[:, :2]).prod(-1)
    area2 = (boxes2[: len(boxes1), 2:] - boxes2[: len(boxes1), :2]).prod(-1)
    return inter / (area1 + area2 - inter)


# ----------------------------------------------------------------------------- encode / decode


def centres(boxes):
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w, h


def encode_student(reference, target):
    x, y, w, h = centres(reference)
    tx, ty, tw, th = centres(target)
    return torch.stack([(tx - x) / w, (ty - y) / h, torch.log(tw / w), torch.log(th / h)], dim=1)


def encode_no_log(reference, target):
    x, y, w, h = centres(reference)
    tx, ty, tw, th = centres(target)
    return torch.stack([(tx - x) / w, (ty - y) / h, tw / w, th / h], dim=1)


def encode_corners(reference, target):
    _, _, w, h = centres(reference)
    _, _, tw, th = centres(target)
    dx = (target[:, 0] - reference[:, 0]) / w
    dy = (target[:, 1] - reference[:, 1]) / h
    return torch.stack([dx, dy, torch.log(tw / w), torch.log(th / h)], dim=1)


def encode_swapped(reference, target):
    return encode_student(target, reference)


def decode_student(reference, deltas):
    x, y, w, h = centres(reference)
    cx, cy = x + deltas[:, 0] * w, y + deltas[:, 1] * h
    nw, nh = w * torch.exp(deltas[:, 2]), h * torch.exp(deltas[:, 3])
    return torch.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], dim=1)


def decode_no_exp(reference, deltas):
    x, y, w, h = centres(reference)
    cx, cy = x + deltas[:, 0] * w, y + deltas[:, 1] * h
    nw, nh = w * deltas[:, 2], h * deltas[:, 3]
    return torch.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], dim=1)


def decode_returns_centres(reference, deltas):
    x, y, w, h = centres(reference)
    return torch.stack(
        [
            x + deltas[:, 0] * w,
            y + deltas[:, 1] * h,
            w * deltas[:, 2].exp(),
            h * deltas[:, 3].exp(),
        ],
        dim=1,
    )


# ----------------------------------------------------------------------------- NMS


def pairwise_iou(boxes):
    return iou_student(boxes, boxes)


def nms_student(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    iou = pairwise_iou(boxes)
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if iou[best, i] <= iou_threshold]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_greater_equal(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    iou = pairwise_iou(boxes)
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if iou[best, i] < iou_threshold]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_suppressed_boxes_suppress(boxes, scores, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    iou = pairwise_iou(boxes)
    keep = []
    for rank, i in enumerate(order):
        if all(iou[j, i] <= iou_threshold for j in order[:rank]):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def nms_sorted_indices(boxes, scores, iou_threshold):
    return nms_student(boxes, scores, iou_threshold).sort().values


def nms_ties_reversed(boxes, scores, iou_threshold):
    order = torch.sort(scores, stable=True).indices.flip(0).tolist()
    iou = pairwise_iou(boxes)
    keep = []
    while order:
        best = order.pop(0)
        keep.append(best)
        order = [i for i in order if iou[best, i] <= iou_threshold]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


# ----------------------------------------------------------------------------- RoI Pool


def c_round(value):
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def roi_pool_student(
    features, box, output_size, spatial_scale, rounding=c_round, plus_one=1, pool="max"
):
    channels, height, width = features.shape
    out_h, out_w = output_size
    x1, y1, x2, y2 = (rounding(float(v) * spatial_scale) for v in box)
    roi_w, roi_h = max(x2 - x1 + plus_one, 1), max(y2 - y1 + plus_one, 1)
    bin_h, bin_w = roi_h / out_h, roi_w / out_w
    out = features.new_zeros(channels, out_h, out_w)
    for i in range(out_h):
        top = min(max(math.floor(i * bin_h) + y1, 0), height)
        bottom = min(max(math.ceil((i + 1) * bin_h) + y1, 0), height)
        for j in range(out_w):
            left = min(max(math.floor(j * bin_w) + x1, 0), width)
            right = min(max(math.ceil((j + 1) * bin_w) + x1, 0), width)
            if bottom > top and right > left:
                cell = features[:, top:bottom, left:right].reshape(channels, -1)
                out[:, i, j] = cell.max(dim=1).values if pool == "max" else cell.mean(dim=1)
    return out


def roi_pool_exact_fractions(features, box, output_size, spatial_scale):
    """Also correct: bin edges from exact fractions floor(i * h / P) instead of i * (h / P)."""
    channels, height, width = features.shape
    out_h, out_w = output_size
    x1, y1, x2, y2 = (c_round(float(v) * spatial_scale) for v in box)
    roi_w, roi_h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
    out = features.new_zeros(channels, out_h, out_w)
    for i in range(out_h):
        top = min(max((i * roi_h) // out_h + y1, 0), height)
        bottom = min(max(-((-(i + 1) * roi_h) // out_h) + y1, 0), height)
        for j in range(out_w):
            left = min(max((j * roi_w) // out_w + x1, 0), width)
            right = min(max(-((-(j + 1) * roi_w) // out_w) + x1, 0), width)
            if bottom > top and right > left:
                out[:, i, j] = features[:, top:bottom, left:right].amax(dim=(1, 2))
    return out


def roi_pool_average(features, box, output_size, spatial_scale):
    return roi_pool_student(features, box, output_size, spatial_scale, pool="mean")


def roi_pool_torch_round(features, box, output_size, spatial_scale):
    return roi_pool_student(features, box, output_size, spatial_scale, rounding=round)


def roi_pool_without_plus_one(features, box, output_size, spatial_scale):
    return roi_pool_student(features, box, output_size, spatial_scale, plus_one=0)


# ----------------------------------------------------------------------------- AP


def ap_student(scores, matched, num_ground_truth):
    if num_ground_truth == 0:
        return -1.0
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = matched[order].double()
    tp, fp = hits.cumsum(0), (1 - hits).cumsum(0)
    precision = tp / (tp + fp)
    recall = tp / num_ground_truth
    envelope = precision.flip(0).cummax(0).values.flip(0)
    total = 0.0
    for r in torch.linspace(0, 1, 101, dtype=torch.float64):
        reached = (recall >= r).nonzero()
        if len(reached):
            total += float(envelope[reached[0, 0]])
    return total / 101


def ap_recall_over_detections(scores, matched, num_ground_truth):
    return ap_student(scores, matched, max(len(scores), 1))


def ap_no_envelope(scores, matched, num_ground_truth):
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = matched[order].double()
    tp, fp = hits.cumsum(0), (1 - hits).cumsum(0)
    precision, recall = tp / (tp + fp), tp / num_ground_truth
    total = 0.0
    for r in torch.linspace(0, 1, 101, dtype=torch.float64):
        reached = (recall >= r).nonzero()
        if len(reached):
            total += float(precision[reached[0, 0]])
    return total / 101


def ap_eleven_points(scores, matched, num_ground_truth):
    order = torch.sort(scores, descending=True, stable=True).indices
    hits = matched[order].double()
    tp, fp = hits.cumsum(0), (1 - hits).cumsum(0)
    precision, recall = tp / (tp + fp), tp / num_ground_truth
    total = 0.0
    for r in torch.linspace(0, 1, 11, dtype=torch.float64):
        mask = recall >= r
        total += float(precision[mask].max()) if mask.any() else 0.0
    return total / 11


def ap_ties_reversed(scores, matched, num_ground_truth):
    order = scores.argsort(stable=True).flip(0)
    return ap_student(scores[order], matched[order], num_ground_truth)


def nms_matrix(boxes, scores, iou_threshold):
    """Also right, vectorised: suppression decided row by row on the sorted IoU matrix."""
    order = torch.sort(scores, descending=True, stable=True).indices
    over = pairwise_iou(boxes[order]) > iou_threshold
    keep = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1 :] &= ~over[i, i + 1 :]
    return order[keep]


def nms_keep_mask(boxes, scores, iou_threshold):
    keep = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    keep[nms_student(boxes, scores, iou_threshold)] = True
    return keep


def nms_int32(boxes, scores, iou_threshold):
    return nms_student(boxes, scores, iou_threshold).int()


# ----------------------------------------------------------------------------- matching


def match_student(boxes, scores, gt_boxes, iou_threshold, later_of_equal_ious=True):
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = iou_student(boxes, gt_boxes)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool, device=boxes.device)
    matched = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for d in order.tolist():
        candidates = iou[d].masked_fill(taken, -1.0)
        if candidates.numel() == 0:
            continue
        if later_of_equal_ious:  # pycocotools' rule
            best = len(candidates) - 1 - int(candidates.flip(0).argmax())
        else:
            best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            matched[d] = True
            taken[best] = True
    return matched


def match_in_input_order(boxes, scores, gt_boxes, iou_threshold):
    return match_student(boxes, torch.arange(len(boxes), 0, -1, device=boxes.device).double(),
                         gt_boxes, iou_threshold)  # fmt: skip


def match_without_using_up(boxes, scores, gt_boxes, iou_threshold):
    if len(gt_boxes) == 0:
        return torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    return iou_student(boxes, gt_boxes).amax(dim=1) >= iou_threshold


def match_voc_rule(boxes, scores, gt_boxes, iou_threshold):
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = iou_student(boxes, gt_boxes)
    taken = torch.zeros(len(gt_boxes), dtype=torch.bool)
    matched = torch.zeros(len(boxes), dtype=torch.bool, device=boxes.device)
    for d in order.tolist():
        if len(gt_boxes) == 0:
            break
        best = len(gt_boxes) - 1 - int(iou[d].flip(0).argmax())
        if iou[d, best] >= iou_threshold and not taken[best]:
            matched[d] = taken[best] = True
    return matched


def match_strictly_greater(boxes, scores, gt_boxes, iou_threshold):
    return match_student(boxes, scores, gt_boxes, iou_threshold + 1e-12)


def match_first_of_equal_ious(boxes, scores, gt_boxes, iou_threshold):
    return match_student(boxes, scores, gt_boxes, iou_threshold, later_of_equal_ious=False)


def match_returns_indices(boxes, scores, gt_boxes, iou_threshold):
    return match_student(boxes, scores, gt_boxes, iou_threshold).nonzero().squeeze(1)


# ----------------------------------------------------------------------------- RoI Align


def bilinear(features, y, x):
    channels, height, width = features.shape
    if y < -1 or y > height or x < -1 or x > width:
        return features.new_zeros(channels)
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = min(int(y), height - 1), min(int(x), width - 1)
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    y, x = min(y, height - 1), min(x, width - 1)
    dy, dx = y - y0, x - x0
    return ((1 - dy) * (1 - dx) * features[:, y0, x0] + (1 - dy) * dx * features[:, y0, x1]
            + dy * (1 - dx) * features[:, y1, x0] + dy * dx * features[:, y1, x1])  # fmt: skip


def roi_align_student(features, box, output_size, spatial_scale, sampling_ratio, aligned,
                      offset=None, at=0.5, pool="mean"):  # fmt: skip
    shift = (0.5 if aligned else 0.0) if offset is None else offset
    x1, y1, x2, y2 = (float(v) * spatial_scale - shift for v in box)
    width, height = x2 - x1, y2 - y1
    if not aligned:
        width, height = max(width, 1.0), max(height, 1.0)
    out_h, out_w = output_size
    grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(height / out_h)
    grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(width / out_w)
    out = features.new_zeros(features.shape[0], out_h, out_w)
    for i in range(out_h):
        for j in range(out_w):
            total = []
            for iy in range(grid_h):
                y = y1 + (i + (iy + at) / grid_h) * height / out_h
                for ix in range(grid_w):
                    x = x1 + (j + (ix + at) / grid_w) * width / out_w
                    total.append(bilinear(features, y, x))
            if total:
                stack = torch.stack(total)
                out[:, i, j] = stack.amax(0) if pool == "max" else stack.sum(0) / len(total)
    return out


def roi_align_without_offset(features, box, output_size, spatial_scale, sampling_ratio, aligned):
    return roi_align_student(features, box, output_size, spatial_scale, sampling_ratio, aligned,
                             offset=0.0)  # fmt: skip


def roi_align_at_corners(features, box, output_size, spatial_scale, sampling_ratio, aligned):
    return roi_align_student(features, box, output_size, spatial_scale, sampling_ratio, aligned,
                             at=0.0)  # fmt: skip


def roi_align_max(features, box, output_size, spatial_scale, sampling_ratio, aligned):
    return roi_align_student(features, box, output_size, spatial_scale, sampling_ratio, aligned,
                             pool="max")  # fmt: skip


def roi_align_by_torchvision(features, box, output_size, spatial_scale, sampling_ratio, aligned):
    return torchvision.ops.roi_align(features[None], [box[None]], output_size, spatial_scale,
                                     sampling_ratio, aligned)[0]  # fmt: skip


PROOFS = [
    Proof(
        checks.check_box_iou,
        correct=iou_student,
        wrong=[
            Wrong(iou_no_clamp, "clamp(min=0)"),
            Wrong(iou_union_double_counts, "并集面积"),
            Wrong(iou_elementwise, "[N, M]"),
        ],
        delegate=detection.box_iou,
    ),
    Proof(
        checks.check_encode_boxes,
        correct=encode_student,
        wrong=[
            Wrong(encode_no_log, "取对数"),
            Wrong(encode_corners, "中心点"),
            Wrong(encode_swapped, "方向反了"),
        ],
        delegate=detection.encode_boxes,
    ),
    Proof(
        checks.check_decode_boxes,
        correct=decode_student,
        wrong=[Wrong(decode_no_exp, "exp(tw)"), Wrong(decode_returns_centres, "角点格式")],
        delegate=detection.decode_boxes,
    ),
    Proof(
        checks.check_nms,
        correct=nms_student,
        wrong=[
            Wrong(nms_greater_equal, "严格大于"),
            Wrong(nms_suppressed_boxes_suppress, "已经被抑制的框"),
            Wrong(nms_sorted_indices, "按分数从高到低排列"),
            Wrong(nms_ties_reversed, "stable=True"),
            Wrong(nms_keep_mask, "期望 dtype int64，实际是 bool"),
            Wrong(nms_int32, "期望 dtype int64，实际是 int32"),
        ],
        delegate=detection.nms,
        also_correct=[nms_matrix],
    ),
    Proof(
        checks.check_roi_pool_one,
        correct=roi_pool_student,
        wrong=[
            Wrong(roi_pool_average, "最大值"),
            Wrong(roi_pool_torch_round, "远离 0"),
            Wrong(roi_pool_without_plus_one, "Fast R-CNN（Caffe）的旧约定"),
        ],
        delegate=lambda f, b, k, s: detection.roi_pool(f[None], [b[None]], k, s)[0],
        also_correct=[roi_pool_exact_fractions],
    ),
    Proof(
        checks.check_average_precision,
        correct=ap_student,
        wrong=[
            Wrong(ap_recall_over_detections, "TP / 真实框的个数"),
            Wrong(ap_no_envelope, "单调"),
            Wrong(ap_eleven_points, "101 个召回率点"),
            Wrong(ap_ties_reversed, "stable=True"),
        ],
        delegate=detection.average_precision,
    ),
    Proof(
        checks.check_match_detections,
        correct=match_student,
        wrong=[
            Wrong(match_in_input_order, "按分数从高到低"),
            Wrong(match_without_using_up, "只能匹配一次"),
            Wrong(match_voc_rule, "PASCAL VOC"),
            Wrong(match_strictly_greater, "IoU >= threshold"),
            Wrong(match_first_of_equal_ious, "取后面的那个"),
            Wrong(match_returns_indices, "期望 dtype bool，实际是 int64"),
        ],
        delegate=detection.match_detections,
    ),
    Proof(
        checks.check_roi_align_one,
        correct=roi_align_student,
        wrong=[
            Wrong(roi_align_without_offset, "平移 -0.5"),
            Wrong(roi_align_at_corners, "小块的中心"),
            Wrong(roi_align_max, "取平均"),
        ],
        delegate=roi_align_by_torchvision,
    ),
]

globals().update(parametrize_proofs(PROOFS))


def test_roi_align_reference_loop_matches_torchvision():
    """The check's loop (used to name mistakes) is torchvision's kernel, case by case."""
    for case in roi._roi_align_cases(torch.device("cpu")):
        features, box, size, scale, ratio, aligned = case.args
        peer = torchvision.ops.roi_align(features[None], [box[None]], size, scale, ratio, aligned)
        torch.testing.assert_close(roi._roi_align_loop(*case.args), peer[0])


def test_match_reference_loop_matches_the_library():
    for case in evaluation._match_cases(torch.device("cpu")):
        assert torch.equal(
            evaluation._greedy_match(*case.args), detection.match_detections(*case.args)
        )
