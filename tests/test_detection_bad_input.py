"""Bad input to every public function and class of course_lib.detection (and of the shapes data
it trains on): each case must raise the right exception class with a message that names the
argument, or, for absurd but legal input, finish quickly with a result of the right shape.

The cases were written as a systematic probe: for every argument, the wrong type, the wrong
dtype, the wrong shape, empty where that is impossible, non-finite values, values out of
range, mismatched lengths and absurd sizes. Run this file as a script to count, per module,
how many cases get a clear answer (each case in a forked child with a time limit, so that a
hang or a crash is counted instead of stopping the run)::

    python tests/test_detection_bad_input.py
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple, Type

import pytest
import torch

from course_lib import detection as det
from course_lib.data import ShapesDataset, collate_detection


@dataclass
class Case:
    """``call()`` must raise ``error`` naming ``argument`` (``error=None``: must return
    quickly, and ``check(result)`` must hold)."""

    module: str
    label: str
    call: Callable[[], Any]
    error: Optional[Type[Exception]]
    argument: str = ""
    check: Optional[Callable[[Any], bool]] = None


CASES: List[Case] = []


def case(module: str, label: str, call: Callable[[], Any], error, argument: str = "", check=None):
    CASES.append(Case(module, label, call, error, argument, check))


def boxes(n: int = 2, dtype=torch.float32) -> torch.Tensor:
    corner = torch.arange(n, dtype=torch.float64)[:, None].repeat(1, 2) * 3
    return torch.cat([corner, corner + 10], 1).to(dtype)


def with_value(tensor: torch.Tensor, value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor.view(-1)[0] = value
    return tensor


NAN, INF = math.nan, math.inf
B2, S2 = boxes(2), torch.tensor([0.9, 0.8])

# --------------------------------------------------------------------------------------
# boxes
# --------------------------------------------------------------------------------------
M = "boxes"
case(M, "box_area list", lambda: det.box_area([[0, 0, 1, 1]]), TypeError, "boxes")
case(M, "box_area [4]", lambda: det.box_area(torch.zeros(4)), ValueError, "boxes")
case(M, "box_area [3, 5]", lambda: det.box_area(torch.zeros(3, 5)), ValueError, "boxes")
case(M, "box_area bool", lambda: det.box_area(B2 > 1), TypeError, "boxes")
case(M, "box_area complex", lambda: det.box_area(B2.to(torch.complex64)), TypeError, "boxes")
case(M, "box_area None", lambda: det.box_area(None), TypeError, "boxes")
case(M, "box_iou boxes1 list", lambda: det.box_iou([[0, 0, 1, 1]], B2), TypeError, "boxes1")
case(M, "box_iou boxes2 [2, 3]", lambda: det.box_iou(B2, torch.zeros(2, 3)), ValueError, "boxes2")
case(M, "box_iou boxes1 3-d", lambda: det.box_iou(B2[None], B2), ValueError, "boxes1")
case(M, "box_iou boxes2 bool", lambda: det.box_iou(B2, B2 > 1), TypeError, "boxes2")
case(M, "box_iou boxes1 str", lambda: det.box_iou("boxes", B2), TypeError, "boxes1")
case(
    M,
    "box_convert list",
    lambda: det.box_convert([[0, 0, 1, 1]], "xyxy", "xywh"),
    TypeError,
    "boxes",
)
case(
    M,
    "box_convert 0-d",
    lambda: det.box_convert(torch.tensor(1.0), "xyxy", "xywh"),
    ValueError,
    "boxes",
)
case(
    M,
    "box_convert [.., 5]",
    lambda: det.box_convert(torch.zeros(2, 5), "xyxy", "xywh"),
    ValueError,
    "boxes",
)
case(M, "box_convert in_fmt", lambda: det.box_convert(B2, "yolo", "xyxy"), ValueError, "in_fmt")
case(M, "box_convert out_fmt", lambda: det.box_convert(B2, "xyxy", "XYWH"), ValueError, "out_fmt")
case(M, "box_convert in_fmt None", lambda: det.box_convert(B2, None, "xyxy"), ValueError, "in_fmt")
case(M, "box_convert bool", lambda: det.box_convert(B2 > 1, "xyxy", "xywh"), TypeError, "boxes")
case(M, "clip list", lambda: det.clip_boxes_to_image([[0, 0, 1, 1]], (8, 8)), TypeError, "boxes")
case(M, "clip [3]", lambda: det.clip_boxes_to_image(torch.zeros(3), (8, 8)), ValueError, "boxes")
case(M, "clip size int", lambda: det.clip_boxes_to_image(B2, 64), TypeError, "size")
case(M, "clip size (64,)", lambda: det.clip_boxes_to_image(B2, (64,)), ValueError, "size")
case(M, "clip size 0", lambda: det.clip_boxes_to_image(B2, (0, 64)), ValueError, "size")
case(M, "clip size float", lambda: det.clip_boxes_to_image(B2, (64.5, 64)), TypeError, "size")
case(M, "clip size str", lambda: det.clip_boxes_to_image(B2, "64x64"), TypeError, "size")
case(
    M, "remove_small [4]", lambda: det.remove_small_boxes(torch.zeros(4), 1.0), ValueError, "boxes"
)
case(M, "remove_small min_size str", lambda: det.remove_small_boxes(B2, "1"), TypeError, "min_size")
case(
    M, "remove_small min_size nan", lambda: det.remove_small_boxes(B2, NAN), ValueError, "min_size"
)
case(
    M, "remove_small min_size < 0", lambda: det.remove_small_boxes(B2, -1.0), ValueError, "min_size"
)
case(
    M, "encode reference list", lambda: det.encode_boxes([[0, 0, 1, 1]], B2), TypeError, "reference"
)
case(
    M, "encode target [2, 5]", lambda: det.encode_boxes(B2, torch.ones(2, 5)), ValueError, "target"
)
case(M, "encode reference int", lambda: det.encode_boxes(B2.long(), B2), TypeError, "reference")
case(M, "encode no broadcast", lambda: det.encode_boxes(boxes(3), B2), ValueError, "target")
case(
    M, "encode weights 3", lambda: det.encode_boxes(B2, B2, (1.0, 1.0, 1.0)), ValueError, "weights"
)
case(M, "encode weights str", lambda: det.encode_boxes(B2, B2, "abcd"), TypeError, "weights")
case(
    M,
    "encode weight 0",
    lambda: det.encode_boxes(B2, B2, (1.0, 0.0, 1.0, 1.0)),
    ValueError,
    "weights",
)
case(
    M, "decode deltas [2, 3]", lambda: det.decode_boxes(B2, torch.zeros(2, 3)), ValueError, "deltas"
)
case(
    M,
    "decode deltas int",
    lambda: det.decode_boxes(B2, torch.zeros(2, 4, dtype=torch.long)),
    TypeError,
    "deltas",
)
case(
    M,
    "decode max_log_scale str",
    lambda: det.decode_boxes(B2, B2 * 0, max_log_scale="big"),
    TypeError,
    "max_log_scale",
)
case(
    M,
    "decode max_log_scale nan",
    lambda: det.decode_boxes(B2, B2 * 0, max_log_scale=NAN),
    ValueError,
    "max_log_scale",
)
case(
    M,
    "decode weight < 0",
    lambda: det.decode_boxes(B2, B2 * 0, (1.0, 1.0, 1.0, -5.0)),
    ValueError,
    "weights",
)

# --------------------------------------------------------------------------------------
# nms
# --------------------------------------------------------------------------------------
M = "nms"
B3, S3 = boxes(3), torch.tensor([0.9, 0.8, 0.7])
case(M, "nms boxes list", lambda: det.nms(B3.tolist(), S3, 0.5), TypeError, "boxes")
case(M, "nms boxes [3, 5]", lambda: det.nms(torch.zeros(3, 5), S3, 0.5), ValueError, "boxes")
case(M, "nms boxes int", lambda: det.nms(B3.long(), S3, 0.5), TypeError, "boxes")
case(M, "nms scores too short", lambda: det.nms(B3, S2, 0.5), ValueError, "scores")
case(M, "nms scores [3, 1]", lambda: det.nms(B3, S3[:, None], 0.5), ValueError, "scores")
case(M, "nms scores int", lambda: det.nms(B3, torch.tensor([3, 2, 1]), 0.5), TypeError, "scores")
case(M, "nms scores list", lambda: det.nms(B3, [0.9, 0.8, 0.7], 0.5), TypeError, "scores")
case(M, "nms threshold str", lambda: det.nms(B3, S3, "0.5"), TypeError, "iou_threshold")
case(M, "nms threshold None", lambda: det.nms(B3, S3, None), TypeError, "iou_threshold")
case(M, "nms threshold nan", lambda: det.nms(B3, S3, NAN), ValueError, "iou_threshold")
case(M, "nms boxes nan", lambda: det.nms(with_value(B3, NAN), S3, 0.5), ValueError, "boxes")
case(M, "nms scores inf", lambda: det.nms(B3, with_value(S3, INF), 0.5), ValueError, "scores")
case(
    M,
    "nms threshold tensor[2]",
    lambda: det.nms(B3, S3, torch.tensor([0.5, 0.6])),
    TypeError,
    "iou_threshold",
)
I3 = torch.tensor([0, 1, 0])
case(M, "batched idxs float", lambda: det.batched_nms(B3, S3, I3.float(), 0.5), TypeError, "idxs")
case(M, "batched idxs short", lambda: det.batched_nms(B3, S3, I3[:2], 0.5), ValueError, "idxs")
case(M, "batched idxs list", lambda: det.batched_nms(B3, S3, [0, 1, 0], 0.5), TypeError, "idxs")
case(M, "batched idxs bool", lambda: det.batched_nms(B3, S3, I3 > 0, 0.5), TypeError, "idxs")
case(
    M, "batched idxs [3, 1]", lambda: det.batched_nms(B3, S3, I3[:, None], 0.5), ValueError, "idxs"
)
case(
    M,
    "batched boxes [3, 5]",
    lambda: det.batched_nms(torch.zeros(3, 5), S3, I3, 0.5),
    ValueError,
    "boxes",
)
case(
    M, "batched threshold str", lambda: det.batched_nms(B3, S3, I3, "x"), TypeError, "iou_threshold"
)

# --------------------------------------------------------------------------------------
# roi
# --------------------------------------------------------------------------------------
M = "roi"
X = torch.zeros(2, 3, 8, 8)
R1 = torch.tensor([[0.0, 1.0, 1.0, 5.0, 6.0]])


def roi_rows(*rows: List[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def shaped(*shape: int) -> Callable[[Any], bool]:
    return lambda out: tuple(out.shape) == shape and bool(torch.isfinite(out).all())


for name, op in (("roi_align", det.roi_align), ("roi_pool", det.roi_pool)):
    case(M, f"{name} input list", lambda op=op: op(X.tolist(), R1, 2), TypeError, "input")
    case(M, f"{name} input 3-d", lambda op=op: op(X[0], R1, 2), ValueError, "input")
    case(M, f"{name} input int", lambda op=op: op(X.long(), R1, 2), TypeError, "input")
    case(
        M,
        f"{name} input empty map",
        lambda op=op: op(torch.zeros(1, 3, 0, 8), R1, 2),
        ValueError,
        "input",
    )
    case(M, f"{name} boxes [1, 4]", lambda op=op: op(X, torch.zeros(1, 4), 2), ValueError, "boxes")
    case(M, f"{name} boxes int", lambda op=op: op(X, R1.long(), 2), TypeError, "boxes")
    case(M, f"{name} boxes str", lambda op=op: op(X, "boxes", 2), TypeError, "boxes")
    case(
        M,
        f"{name} boxes[0] [1, 5]",
        lambda op=op: op(X, [torch.zeros(1, 5)], 2),
        ValueError,
        "boxes[0]",
    )
    case(
        M,
        f"{name} boxes list too long",
        lambda op=op: op(X, [boxes(1)] * 3, 2),
        ValueError,
        "boxes",
    )
    case(
        M, f"{name} boxes[0] int", lambda op=op: op(X, [boxes(1).long()], 2), TypeError, "boxes[0]"
    )
    case(
        M,
        f"{name} boxes[0] list",
        lambda op=op: op(X, [[[0.0, 0, 1, 1]]], 2),
        TypeError,
        "boxes[0]",
    )
    case(
        M,
        f"{name} batch index 2",
        lambda op=op: op(X, roi_rows([2, 0, 0, 2, 2]), 2),
        ValueError,
        "boxes",
    )
    case(
        M,
        f"{name} batch index 0.5",
        lambda op=op: op(X, roi_rows([0.5, 0, 0, 2, 2]), 2),
        ValueError,
        "boxes",
    )
    case(
        M,
        f"{name} batch index -1",
        lambda op=op: op(X, roi_rows([-1, 0, 0, 2, 2]), 2),
        ValueError,
        "boxes",
    )
    case(
        M,
        f"{name} boxes nan",
        lambda op=op: op(X, roi_rows([0, NAN, 0, 2, 2]), 2),
        ValueError,
        "boxes",
    )
    case(
        M,
        f"{name} boxes inf",
        lambda op=op: op(X, roi_rows([0, 0, 0, INF, 2]), 2),
        ValueError,
        "boxes",
    )
    case(M, f"{name} output_size 0", lambda op=op: op(X, R1, 0), ValueError, "output_size")
    case(M, f"{name} output_size (2,)", lambda op=op: op(X, R1, (2,)), ValueError, "output_size")
    case(M, f"{name} output_size 2.5", lambda op=op: op(X, R1, 2.5), TypeError, "output_size")
    case(M, f"{name} output_size str", lambda op=op: op(X, R1, "2"), TypeError, "output_size")
    case(
        M,
        f"{name} output_size (2, -1)",
        lambda op=op: op(X, R1, (2, -1)),
        ValueError,
        "output_size",
    )
    case(
        M, f"{name} spatial_scale str", lambda op=op: op(X, R1, 2, "1"), TypeError, "spatial_scale"
    )
    case(M, f"{name} spatial_scale 0", lambda op=op: op(X, R1, 2, 0.0), ValueError, "spatial_scale")
    case(
        M,
        f"{name} spatial_scale < 0",
        lambda op=op: op(X, R1, 2, -1.0),
        ValueError,
        "spatial_scale",
    )
    case(
        M, f"{name} spatial_scale nan", lambda op=op: op(X, R1, 2, NAN), ValueError, "spatial_scale"
    )
    for label, box in (
        ("absurd box", [0, -1e9, -1e9, 1e9, 1e9]),
        ("absurd far box", [0, 1e12, 1e12, 3e12, 3e12]),
        ("huge box", [0, 0, 0, 1e30, 1e30]),
    ):
        case(
            M,
            f"{name} {label}",
            lambda op=op, box=box: op(X, roi_rows(box), 7),
            None,
            check=shaped(1, 3, 7, 7),
        )
case(
    M,
    "roi_align sampling_ratio 2.5",
    lambda: det.roi_align(X, R1, 2, 1.0, 2.5),
    TypeError,
    "sampling_ratio",
)
case(
    M,
    "roi_align sampling_ratio True",
    lambda: det.roi_align(X, R1, 2, 1.0, True),
    TypeError,
    "sampling_ratio",
)
case(
    M, "roi_align aligned str", lambda: det.roi_align(X, R1, 2, 1.0, 2, "yes"), TypeError, "aligned"
)
case(M, "roi_align aligned 1", lambda: det.roi_align(X, R1, 2, 1.0, 2, 1), TypeError, "aligned")
case(
    M,
    "roi_align absurd box, sampling 2",
    lambda: det.roi_align(X, roi_rows([0, -1e9, -1e9, 1e9, 1e9]), 7, 1.0, 2, True),
    None,
    check=shaped(1, 3, 7, 7),
)

# --------------------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------------------
M = "anchors"
ga = det.generate_anchors
case(M, "feature_size str", lambda: ga("8", 8, (16,)), TypeError, "feature_size")
case(M, "feature_size 0", lambda: ga((0, 4), 8, (16,)), ValueError, "feature_size")
case(M, "feature_size float", lambda: ga((2.5, 3), 8, (16,)), TypeError, "feature_size")
case(M, "feature_size 3 values", lambda: ga((2, 3, 4), 8, (16,)), ValueError, "feature_size")
case(M, "feature_size True", lambda: ga(True, 8, (16,)), TypeError, "feature_size")
case(M, "stride str", lambda: ga((2, 2), "8", (16,)), TypeError, "stride")
case(M, "stride 0", lambda: ga((2, 2), 0, (16,)), ValueError, "stride")
case(M, "stride nan", lambda: ga((2, 2), NAN, (16,)), ValueError, "stride")
case(M, "stride (8,)", lambda: ga((2, 2), (8,), (16,)), ValueError, "stride")
case(M, "sizes empty", lambda: ga((2, 2), 8, ()), ValueError, "sizes")
case(M, "sizes negative", lambda: ga((2, 2), 8, (-1,)), ValueError, "sizes")
case(M, "sizes str", lambda: ga((2, 2), 8, "abc"), TypeError, "sizes")
case(M, "sizes with None", lambda: ga((2, 2), 8, (16, None)), TypeError, "sizes")
case(M, "sizes True", lambda: ga((2, 2), 8, True), TypeError, "sizes")
case(M, "aspect_ratios 0", lambda: ga((2, 2), 8, (16,), (0.0,)), ValueError, "aspect_ratios")
case(M, "aspect_ratios empty", lambda: ga((2, 2), 8, (16,), []), ValueError, "aspect_ratios")
case(M, "dtype int64", lambda: ga((2, 2), 8, (16,), dtype=torch.int64), TypeError, "dtype")
case(M, "dtype str", lambda: ga((2, 2), 8, (16,), dtype="float32"), TypeError, "dtype")
A4 = det.generate_anchors((2, 2), 8, (12,)) if hasattr(det, "generate_anchors") else None
case(
    M,
    "match anchors list",
    lambda: det.match_anchors(A4.tolist(), B2, 0.7, 0.3),
    TypeError,
    "anchors",
)
case(
    M,
    "match gt_boxes [2, 5]",
    lambda: det.match_anchors(A4, torch.ones(2, 5), 0.7, 0.3),
    ValueError,
    "gt_boxes",
)
case(M, "match high str", lambda: det.match_anchors(A4, B2, "0.7", 0.3), TypeError, "high")
case(M, "match high 1.5", lambda: det.match_anchors(A4, B2, 1.5, 0.3), ValueError, "high")
case(M, "match low < 0", lambda: det.match_anchors(A4, B2, 0.7, -0.1), ValueError, "low")
case(M, "match low > high", lambda: det.match_anchors(A4, B2, 0.3, 0.7), ValueError, "low")
case(
    M,
    "match anchors nan",
    lambda: det.match_anchors(with_value(A4, NAN), B2, 0.7, 0.3),
    ValueError,
    "anchors",
)
case(
    M,
    "match allow_low_quality str",
    lambda: det.match_anchors(A4, B2, 0.7, 0.3, "yes"),
    TypeError,
    "allow_low_quality",
)
case(
    M, "match gt_boxes bool", lambda: det.match_anchors(A4, B2 > 1, 0.7, 0.3), TypeError, "gt_boxes"
)
L4 = torch.tensor([1, 0, 0, -1])
case(M, "sample labels list", lambda: det.sample_labels([1, 0], 4, 0.5), TypeError, "labels")
case(
    M, "sample labels [4, 1]", lambda: det.sample_labels(L4[:, None], 4, 0.5), ValueError, "labels"
)
case(M, "sample labels float", lambda: det.sample_labels(L4.float(), 4, 0.5), TypeError, "labels")
case(M, "sample num_samples < 0", lambda: det.sample_labels(L4, -1, 0.5), ValueError, "num_samples")
case(
    M, "sample num_samples float", lambda: det.sample_labels(L4, 2.5, 0.5), TypeError, "num_samples"
)
case(
    M, "sample fraction 1.5", lambda: det.sample_labels(L4, 4, 1.5), ValueError, "positive_fraction"
)
case(
    M, "sample fraction str", lambda: det.sample_labels(L4, 4, "a"), TypeError, "positive_fraction"
)
case(M, "sample generator str", lambda: det.sample_labels(L4, 4, 0.5, "x"), TypeError, "generator")

# --------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------
M = "evaluation"
SC, MA = torch.tensor([0.9, 0.3, 0.6]), torch.tensor([True, False, True])
prc, ap = det.precision_recall_curve, det.average_precision
case(M, "curve scores list", lambda: prc([0.9, 0.3, 0.6], MA, 3), TypeError, "scores")
case(M, "curve scores [3, 1]", lambda: prc(SC[:, None], MA, 3), ValueError, "scores")
case(M, "curve matched short", lambda: prc(SC, MA[:2], 3), ValueError, "matched")
case(
    M, "curve matched 0.5", lambda: prc(SC, torch.tensor([0.5, 0.0, 1.0]), 3), ValueError, "matched"
)
case(M, "curve matched 2", lambda: prc(SC, torch.tensor([2, 0, 1]), 3), ValueError, "matched")
case(M, "curve num_ground_truth str", lambda: prc(SC, MA, "3"), TypeError, "num_ground_truth")
case(M, "curve num_ground_truth < 0", lambda: prc(SC, MA, -1), ValueError, "num_ground_truth")
case(M, "curve num_ground_truth float", lambda: prc(SC, MA, 2.5), TypeError, "num_ground_truth")
case(M, "curve fewer objects than TPs", lambda: prc(SC, MA, 1), ValueError, "num_ground_truth")
case(M, "ap fewer objects than TPs", lambda: ap(SC, MA, 1), ValueError, "num_ground_truth")
case(M, "ap no objects but a TP", lambda: ap(SC, MA, 0), ValueError, "num_ground_truth")
case(M, "curve scores nan", lambda: prc(with_value(SC, NAN), MA, 3), ValueError, "scores")
case(M, "curve matched complex", lambda: prc(SC, MA.to(torch.complex64), 3), TypeError, "matched")
case(M, "ap method voc12", lambda: ap(SC, MA, 3, "voc12"), ValueError, "method")
case(M, "ap method 3", lambda: ap(SC, MA, 3, 3), ValueError, "method")
case(M, "ap matched 0.3", lambda: ap(SC, torch.tensor([0.3, 0.0, 1.0]), 3), ValueError, "matched")
case(M, "ap matched short, no objects", lambda: ap(SC, MA[:1], 0), ValueError, "matched")
case(M, "ap scores str", lambda: ap("scores", MA, 3), TypeError, "scores")
case(M, "ap num_ground_truth None", lambda: ap(SC, MA, None), TypeError, "num_ground_truth")
md = det.match_detections
case(M, "match boxes list", lambda: md(B2.tolist(), S2, B2), TypeError, "boxes")
case(M, "match scores short", lambda: md(B2, S2[:1], B2), ValueError, "scores")
case(M, "match gt_boxes [2, 5]", lambda: md(B2, S2, torch.ones(2, 5)), ValueError, "gt_boxes")
case(M, "match threshold str", lambda: md(B2, S2, B2, "0.5"), TypeError, "iou_threshold")
case(M, "match threshold 1.5", lambda: md(B2, S2, B2, 1.5), ValueError, "iou_threshold")
case(M, "match boxes nan", lambda: md(with_value(B2, NAN), S2, B2), ValueError, "boxes")
case(M, "match gt_boxes nan", lambda: md(B2, S2, with_value(B2, NAN)), ValueError, "gt_boxes")


def prediction(**change: Any) -> dict:
    item = {"boxes": B2, "scores": S2, "labels": torch.tensor([0, 1])}
    item.update(change)
    return {k: v for k, v in item.items() if v is not None}


def target(**change: Any) -> dict:
    item = {"boxes": B2, "labels": torch.tensor([0, 1])}
    item.update(change)
    return {k: v for k, v in item.items() if v is not None}


ev = det.evaluate_detections
case(M, "eval predictions dict", lambda: ev(prediction(), [target()]), TypeError, "predictions")
case(M, "eval predictions[0] list", lambda: ev([[B2, S2]], [target()]), TypeError, "predictions[0]")
case(
    M,
    "eval no scores",
    lambda: ev([prediction(scores=None)], [target()]),
    ValueError,
    "predictions[0]",
)
case(
    M, "eval no labels", lambda: ev([prediction()], [target(labels=None)]), ValueError, "targets[0]"
)
case(
    M,
    "eval lengths differ",
    lambda: ev([prediction()], [target(), target()]),
    ValueError,
    "predictions",
)
case(
    M,
    "eval boxes [2, 5]",
    lambda: ev([prediction(boxes=torch.ones(2, 5))], [target()]),
    ValueError,
    "predictions[0]['boxes']",
)
case(
    M,
    "eval labels float",
    lambda: ev([prediction(labels=torch.tensor([0.0, 1.0]))], [target()]),
    TypeError,
    "predictions[0]['labels']",
)
case(
    M,
    "eval scores short",
    lambda: ev([prediction(scores=S2[:1])], [target()]),
    ValueError,
    "predictions[0]['scores']",
)
case(
    M,
    "eval boxes nan",
    lambda: ev([prediction(boxes=with_value(B2, NAN))], [target()]),
    ValueError,
    "predictions[0]['boxes']",
)
case(
    M,
    "eval scores nan",
    lambda: ev([prediction(scores=with_value(S2, NAN))], [target()]),
    ValueError,
    "predictions[0]['scores']",
)
case(
    M,
    "eval inverted box",
    lambda: ev([prediction()], [target(boxes=B2[:, [2, 3, 0, 1]])]),
    ValueError,
    "targets[0]['boxes']",
)
case(
    M,
    "eval boxes list",
    lambda: ev([prediction()], [target(boxes=B2.tolist())]),
    TypeError,
    "targets[0]['boxes']",
)
case(M, "eval targets str", lambda: ev([prediction()], "targets"), TypeError, "targets")

# --------------------------------------------------------------------------------------
# targets (shapes_tensors, random_batches)
# --------------------------------------------------------------------------------------
M = "targets"
IMG = torch.zeros(2, 3, 16, 16)
TG = [target(), target()]
case(M, "shapes_tensors int", lambda: det.shapes_tensors(5), TypeError, "dataset")
case(M, "shapes_tensors str", lambda: det.shapes_tensors("abc"), TypeError, "dataset")
case(M, "shapes_tensors empty", lambda: det.shapes_tensors([]), ValueError, "dataset")
case(
    M,
    "shapes_tensors target int",
    lambda: det.shapes_tensors([(IMG[0], 5)]),
    TypeError,
    "dataset[0]",
)
case(
    M,
    "shapes_tensors sizes differ",
    lambda: det.shapes_tensors([(IMG[0], target()), (torch.zeros(3, 8, 8), target())]),
    ValueError,
    "dataset",
)
rb = det.random_batches
case(M, "batches images list", lambda: rb(IMG.tolist(), TG, 2), TypeError, "images")
case(M, "batches images 3-d", lambda: rb(IMG[0], TG, 2), ValueError, "images")
case(M, "batches targets short", lambda: rb(IMG, TG[:1], 2), ValueError, "targets")
case(M, "batches batch_size 0", lambda: rb(IMG, TG, 0), ValueError, "batch_size")
case(M, "batches batch_size float", lambda: rb(IMG, TG, 2.5), TypeError, "batch_size")
case(M, "batches flip str", lambda: rb(IMG, TG, 2, flip="yes"), TypeError, "flip")
case(M, "batches seed < 0", lambda: rb(IMG, TG, 2, seed=-1), ValueError, "seed")
case(
    M,
    "batches target without boxes",
    lambda: rb(IMG, [target(boxes=None)] * 2, 2),
    ValueError,
    "targets[0]",
)
case(M, "batches no images", lambda: rb(IMG[:0], [], 2), ValueError, "images")
case(M, "batches targets dict", lambda: rb(IMG, {"boxes": B2}, 2), TypeError, "targets")
case(
    M,
    "batches labels float",
    lambda: rb(IMG, [target(labels=torch.zeros(2))] * 2, 2),
    TypeError,
    "targets[0]['labels']",
)

# --------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------
M = "models"
IM64 = torch.zeros(1, 3, 64, 64)
WINDOWS = torch.tensor([[0.0, 0, 16, 16], [8, 8, 40, 40]])
T1 = [target(boxes=torch.tensor([[4.0, 4, 20, 20]]), labels=torch.tensor([1]))]


def small(factory: Callable[..., torch.nn.Module], *args: Any, **kwargs: Any) -> torch.nn.Module:
    return factory(*args, channels=8, **kwargs)


case(M, "predict model str", lambda: det.predict("model", IM64), TypeError, "model")
case(
    M,
    "predict images 3-d",
    lambda: det.predict(small(det.OneStageDetector), IM64[0]),
    ValueError,
    "images",
)
case(
    M,
    "predict batch_size 0",
    lambda: det.predict(small(det.OneStageDetector), IM64, 0),
    ValueError,
    "batch_size",
)
case(M, "backbone channels 0", lambda: det.ConvBackbone(0), ValueError, "channels")
case(M, "backbone channels str", lambda: det.ConvBackbone("a"), TypeError, "channels")
case(
    M,
    "backbone images 1 channel",
    lambda: det.ConvBackbone(8)(torch.zeros(2, 1, 16, 16)),
    ValueError,
    "images",
)
case(M, "backbone images float64", lambda: det.ConvBackbone(8)(IM64.double()), TypeError, "images")
so = det.SingleObjectDetector
case(M, "single num_classes 0", lambda: so(num_classes=0), ValueError, "num_classes")
case(M, "single image_size 60", lambda: so(image_size=60), ValueError, "image_size")
case(M, "single box_weight < 0", lambda: so(box_weight=-1.0), ValueError, "box_weight")
case(M, "single unknown keyword", lambda: so(chanels=8), TypeError, "chanels")
case(
    M,
    "single images 32x32",
    lambda: so(channels=8)(torch.zeros(1, 3, 32, 32)),
    ValueError,
    "images",
)
case(M, "single two objects", lambda: so(channels=8)(IM64, [target()]), ValueError, "targets")
case(
    M,
    "single label 5",
    lambda: so(channels=8)(IM64, [target(labels=torch.tensor([5, 0]))]),
    ValueError,
    "targets[0]['labels']",
)
swp = det.sliding_window_proposals
case(M, "windows image_size str", lambda: swp("64"), TypeError, "image_size")
case(M, "windows image_size 0", lambda: swp(0), ValueError, "image_size")
case(M, "windows sizes empty", lambda: swp(64, ()), ValueError, "sizes")
case(M, "windows size > image", lambda: swp(64, (100,)), ValueError, "sizes")
case(M, "windows stride 0", lambda: swp(64, (12,), 0), ValueError, "stride")
case(M, "windows stride tiny", lambda: swp(64, (12,), 1e-6), ValueError, "stride")
case(M, "windows stride nan", lambda: swp(64, (12,), NAN), ValueError, "stride")
case(M, "head in_features 0", lambda: det.RegionHead(0, 3), ValueError, "in_features")
case(M, "head num_classes 0", lambda: det.RegionHead(8, 0), ValueError, "num_classes")
case(
    M, "head features size", lambda: det.RegionHead(8, 3)(torch.zeros(2, 5)), ValueError, "features"
)
LG, DL = torch.zeros(2, 4), torch.zeros(2, 3, 4)
pr = det.postprocess_regions
case(M, "post logits [2]", lambda: pr(LG[:, 0], DL, [B2], (64, 64)), ValueError, "logits")
case(M, "post deltas K", lambda: pr(LG, DL[:1], [B2], (64, 64)), ValueError, "deltas")
case(M, "post logits L", lambda: pr(LG[:, :3], DL, [B2], (64, 64)), ValueError, "logits")
case(M, "post regions total", lambda: pr(LG, DL, [B2[:1]], (64, 64)), ValueError, "regions")
case(M, "post regions tensor", lambda: pr(LG, DL, B2, (64, 64)), TypeError, "regions")
case(M, "post image_size 0", lambda: pr(LG, DL, [B2], (0, 64)), ValueError, "image_size")
case(
    M,
    "post score_threshold str",
    lambda: pr(LG, DL, [B2], (64, 64), "a"),
    TypeError,
    "score_threshold",
)
case(
    M,
    "post max_detections < 0",
    lambda: pr(LG, DL, [B2], (64, 64), 0.05, 0.5, -1),
    ValueError,
    "max_detections",
)
case(M, "rcnn proposals list", lambda: small(det.RCNN, WINDOWS.tolist()), TypeError, "proposals")
case(M, "rcnn proposals [2, 5]", lambda: small(det.RCNN, torch.ones(2, 5)), ValueError, "proposals")
case(M, "rcnn proposals empty", lambda: small(det.RCNN, torch.zeros(0, 4)), ValueError, "proposals")
case(
    M,
    "rcnn proposals nan",
    lambda: small(det.RCNN, with_value(WINDOWS, NAN)),
    ValueError,
    "proposals",
)
case(
    M,
    "rcnn num_classes 0",
    lambda: small(det.RCNN, WINDOWS, num_classes=0),
    ValueError,
    "num_classes",
)
case(
    M,
    "rcnn targets short",
    lambda: small(det.RCNN, WINDOWS)(IM64.repeat(2, 1, 1, 1), T1),
    ValueError,
    "targets",
)
case(
    M,
    "rcnn label 3",
    lambda: small(det.RCNN, WINDOWS)(IM64, [target(labels=torch.tensor([3, 0]))]),
    ValueError,
    "targets[0]['labels']",
)
case(M, "rcnn images 3-d", lambda: small(det.RCNN, WINDOWS)(IM64[0]), ValueError, "images")
case(M, "fast pool max", lambda: small(det.FastRCNN, WINDOWS, pool="max"), ValueError, "pool")
case(
    M,
    "fast pool_size 0",
    lambda: small(det.FastRCNN, WINDOWS, pool_size=0),
    ValueError,
    "pool_size",
)
case(M, "fast no proposals", lambda: small(det.FastRCNN)(IM64), ValueError, "proposals")
case(
    M,
    "fast regions_per_image 0",
    lambda: small(det.FastRCNN, WINDOWS, regions_per_image=0),
    ValueError,
    "regions_per_image",
)
case(
    M,
    "fast boxes nan",
    lambda: small(det.FastRCNN, WINDOWS)(IM64, [target(boxes=with_value(B2, NAN))]),
    ValueError,
    "targets[0]['boxes']",
)
rpn = det.RegionProposalNetwork
case(M, "rpn channels 0", lambda: rpn(0, 16, 4), ValueError, "channels")
case(M, "rpn feature_size 0", lambda: rpn(8, (0, 4), 4), ValueError, "feature_size")
case(M, "rpn stride 0", lambda: rpn(8, 16, 0), ValueError, "stride")
case(
    M,
    "rpn features other grid",
    lambda: rpn(8, 16, 4)(torch.zeros(1, 8, 8, 8), (32, 32)),
    ValueError,
    "features",
)
case(
    M,
    "rpn features 3-d",
    lambda: rpn(8, 16, 4)(torch.zeros(8, 16, 16), (64, 64)),
    ValueError,
    "features",
)
case(
    M,
    "rpn image_size str",
    lambda: rpn(8, 16, 4)(torch.zeros(1, 8, 16, 16), "64"),
    TypeError,
    "image_size",
)
case(
    M,
    "faster image_size 62",
    lambda: small(det.FasterRCNN, image_size=62),
    ValueError,
    "image_size",
)
case(
    M,
    "faster images 32x32",
    lambda: small(det.FasterRCNN)(torch.zeros(1, 3, 32, 32)),
    ValueError,
    "images",
)
case(
    M,
    "faster target boxes [1, 3]",
    lambda: small(det.FasterRCNN)(IM64, [target(boxes=torch.zeros(2, 3))]),
    ValueError,
    "targets[0]['boxes']",
)
os_ = det.OneStageDetector
case(M, "one prior 0", lambda: small(os_, prior=0.0), ValueError, "prior")
case(M, "one prior 1", lambda: small(os_, prior=1.0), ValueError, "prior")
case(M, "one num_classes 0", lambda: small(os_, num_classes=0), ValueError, "num_classes")
case(M, "one channels 1", lambda: os_(channels=1), ValueError, "channels")
case(M, "one images 32x32", lambda: small(os_)(torch.zeros(1, 3, 32, 32)), ValueError, "images")
case(M, "one targets [{}]", lambda: small(os_)(IM64, [{}]), ValueError, "targets[0]")
case(M, "one images int", lambda: small(os_)(IM64.long()), TypeError, "images")
fl = det.sigmoid_focal_loss
case(M, "focal logits list", lambda: fl([0.0, 1.0], torch.zeros(2)), TypeError, "logits")
case(
    M,
    "focal targets shape",
    lambda: fl(torch.zeros(2, 3), torch.zeros(3, 2)),
    ValueError,
    "targets",
)
case(
    M,
    "focal targets int",
    lambda: fl(torch.zeros(2), torch.zeros(2, dtype=torch.long)),
    TypeError,
    "targets",
)
case(M, "focal alpha str", lambda: fl(torch.zeros(2), torch.zeros(2), "a"), TypeError, "alpha")
case(
    M,
    "focal gamma < 0",
    lambda: fl(torch.zeros(2), torch.zeros(2), 0.25, -1.0),
    ValueError,
    "gamma",
)
case(M, "focal alpha 2", lambda: fl(torch.zeros(2), torch.zeros(2), 2.0), ValueError, "alpha")

# --------------------------------------------------------------------------------------
# data: ShapesDataset and collate_detection (the data the detectors train on)
# --------------------------------------------------------------------------------------
M = "data (shapes)"
case(M, "num_images str", lambda: ShapesDataset("3"), TypeError, "num_images")
case(M, "num_images < 0", lambda: ShapesDataset(-1), ValueError, "num_images")
case(M, "image_size 8", lambda: ShapesDataset(3, image_size=8), ValueError, "image_size")
case(
    M,
    "min_objects > max",
    lambda: ShapesDataset(3, min_objects=4, max_objects=3),
    ValueError,
    "min_objects",
)
case(M, "min_size 0", lambda: ShapesDataset(3, min_size=0.0), ValueError, "min_size")
case(M, "min_size str", lambda: ShapesDataset(3, min_size="a"), TypeError, "min_size")
case(M, "max_size 2", lambda: ShapesDataset(3, max_size=2.0), ValueError, "max_size")
case(M, "max_iou 2", lambda: ShapesDataset(3, max_iou=2.0), ValueError, "max_iou")
case(M, "max_iou nan", lambda: ShapesDataset(3, max_iou=NAN), ValueError, "max_iou")
case(M, "noise < 0", lambda: ShapesDataset(3, noise=-1.0), ValueError, "noise")
case(M, "noise str", lambda: ShapesDataset(3, noise="a"), TypeError, "noise")
case(M, "noise nan", lambda: ShapesDataset(3, noise=NAN), ValueError, "noise")
case(M, "noise inf", lambda: ShapesDataset(3, noise=INF), ValueError, "noise")
case(M, "seed < 0", lambda: ShapesDataset(3, seed=-1), ValueError, "seed")
case(
    M,
    "shapes below 4 pixels",
    lambda: ShapesDataset(3, image_size=16, min_size=0.2),
    ValueError,
    "min_size",
)
case(M, "index 3 of 3", lambda: ShapesDataset(3)[3], IndexError, "index")
case(M, "index str", lambda: ShapesDataset(3)["a"], TypeError, "index")
case(M, "index float", lambda: ShapesDataset(3)[1.5], TypeError, "index")
case(M, "collate empty", lambda: collate_detection([]), ValueError, "batch")
case(M, "collate int", lambda: collate_detection(5), TypeError, "batch")
case(M, "collate not pairs", lambda: collate_detection([IMG[0]]), TypeError, "batch[0]")
case(
    M,
    "collate sizes differ",
    lambda: collate_detection([(IMG[0], target()), (torch.zeros(3, 8, 8), target())]),
    ValueError,
    "batch",
)

MODULES = sorted({c.module for c in CASES})


def cases_of(module: str) -> List[Any]:
    return [pytest.param(c, id=c.label) for c in CASES if c.module == module]


def run_case(c: Case) -> None:
    if c.error is None:
        result = c.call()
        assert c.check is None or c.check(result), f"{c.label}: unexpected result"
        return
    with pytest.raises(c.error) as info:
        c.call()
    assert c.argument in str(info.value), f"the message does not name {c.argument!r}"


@pytest.mark.parametrize("c", cases_of("boxes"))
def test_bad_input_boxes(c: Case) -> None:
    run_case(c)


@pytest.mark.parametrize("c", cases_of("nms"))
def test_bad_input_nms(c: Case) -> None:
    run_case(c)


@pytest.mark.parametrize("c", cases_of("roi"))
def test_bad_input_roi(c: Case) -> None:
    run_case(c)


@pytest.mark.parametrize("c", cases_of("anchors"))
def test_bad_input_anchors(c: Case) -> None:
    run_case(c)


@pytest.mark.parametrize("c", cases_of("evaluation"))
def test_bad_input_evaluation(c: Case) -> None:
    run_case(c)


@pytest.mark.parametrize("c", cases_of("targets"))
def test_bad_input_targets(c: Case) -> None:
    run_case(c)


@pytest.mark.parametrize("c", cases_of("models"))
def test_bad_input_models(c: Case) -> None:
    run_case(c)


@pytest.mark.parametrize("c", cases_of("data (shapes)"))
def test_bad_input_shapes_data(c: Case) -> None:
    run_case(c)


def test_every_module_is_probed() -> None:
    assert MODULES == [
        "anchors",
        "boxes",
        "data (shapes)",
        "evaluation",
        "models",
        "nms",
        "roi",
        "targets",
    ]
    assert len(CASES) >= 250


# --------------------------------------------------------------------------------------
# Counting (python tests/test_detection_bad_input.py)
# --------------------------------------------------------------------------------------


def classify(c: Case, seconds: float = 20.0) -> Tuple[str, str]:
    """("clear" | "obscure" | "silent" | "hang", detail), the case run in a forked child."""
    import multiprocessing
    import resource

    def child(conn) -> None:  # type: ignore[no-untyped-def]
        resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
        try:
            result = c.call()
        except Exception as error:  # the point is to see what comes out
            conn.send(("raised", type(error).__name__, str(error)[:200]))
            return
        ok = c.check is None or bool(c.check(result))
        conn.send(("returned", "ok" if ok else "bad", repr(result)[:120]))

    context = multiprocessing.get_context("fork")
    parent, other = context.Pipe()
    process = context.Process(target=child, args=(other,))
    process.start()
    if not parent.poll(seconds):
        process.kill()
        process.join()
        return "hang", f"no answer in {seconds:g} s"
    kind, what, text = parent.recv()
    process.join()
    if kind == "returned":
        return ("clear" if c.error is None and what == "ok" else "silent"), text
    expected = c.error.__name__ if c.error else "a result"
    named = c.argument in text
    clear = c.error is not None and what == expected and named
    return ("clear" if clear else "obscure"), f"{what}: {text}"


if __name__ == "__main__":
    import collections
    import sys

    torch.set_num_threads(1)  # forked children must not inherit a busy thread pool
    verbose = "-v" in sys.argv
    counts: dict = collections.defaultdict(collections.Counter)
    for c in CASES:
        verdict, detail = classify(c)
        counts[c.module][verdict] += 1
        if verbose and verdict != "clear":
            print(f"  {verdict:8s} {c.module}: {c.label}: {detail}")
    print(f"{'module':15s} {'tried':>6s} {'clear':>6s} {'obscure':>8s} {'silent':>7s} {'hang':>5s}")
    total: collections.Counter = collections.Counter()
    for module in MODULES:
        row = counts[module]
        total.update(row)
        print(
            f"{module:15s} {sum(row.values()):6d} {row['clear']:6d} {row['obscure']:8d} "
            f"{row['silent']:7d} {row['hang']:5d}"
        )
    print(
        f"{'all':15s} {sum(total.values()):6d} {total['clear']:6d} {total['obscure']:8d} "
        f"{total['silent']:7d} {total['hang']:5d}"
    )
