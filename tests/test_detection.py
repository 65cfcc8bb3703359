"""course_lib.detection against its peers: torchvision.ops (boxes, NMS, RoI ops, anchors,
matching, focal loss) and pycocotools (COCO evaluation), plus properties and bad input."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import detection as det

tv_ops = pytest.importorskip("torchvision.ops")

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
]


def random_boxes(
    n: int, seed: int, kind: str = "dense", dtype=torch.float32, device="cpu"
) -> torch.Tensor:
    """Boxes [n, 4] of several kinds: dense (heavy overlap), sparse, duplicates, degenerate."""
    g = torch.Generator().manual_seed(seed)
    if kind == "dense":
        boxes = torch.rand(n, 4, generator=g, dtype=torch.float64) * 100
        boxes[:, 2:] += boxes[:, :2]
    elif kind == "sparse":
        corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * 1000
        boxes = torch.cat(
            [corner, corner + 10 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 40], 1
        )
    elif kind == "duplicates":  # few distinct boxes, each repeated
        base = random_boxes(max(n // 4, 1), seed + 1, "dense", torch.float64)
        boxes = base[torch.randint(0, len(base), (n,), generator=g)]
    elif kind == "degenerate":  # zero width or height, some points
        boxes = random_boxes(n, seed + 2, "dense", torch.float64)
        flat = torch.rand(n, generator=g) < 0.5
        boxes[flat, 2] = boxes[flat, 0]
        boxes[~flat, 3] = boxes[~flat, 1]
    elif kind == "integer":
        boxes = random_boxes(n, seed + 3, "dense", torch.float64).round()
    else:
        raise ValueError(kind)
    return boxes.to(dtype=dtype, device=device)


# --------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["dense", "sparse", "duplicates", "degenerate", "integer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_area_and_iou_match_torchvision(device, kind, dtype):
    a = random_boxes(37, 0, kind, dtype, device)
    b = random_boxes(23, 1, kind, dtype, device)
    assert torch.equal(det.box_area(a), tv_ops.box_area(a))
    expected = tv_ops.box_iou(a, b)
    ours = det.box_iou(a, b)
    assert ours.shape == (37, 23) and ours.dtype == expected.dtype
    # torchvision gives NaN for two empty boxes (0 / 0); ours defines that IoU as 0.
    torch.testing.assert_close(ours, expected.nan_to_num(0.0), rtol=0, atol=0)


def test_box_iou_integer_and_half_inputs_upcast_like_torchvision():
    a = random_boxes(9, 2, "integer").long()
    b = random_boxes(7, 3, "integer").long()
    torch.testing.assert_close(det.box_iou(a, b), tv_ops.box_iou(a, b).nan_to_num(0.0))
    h = random_boxes(9, 4).half()
    assert det.box_iou(h, h).dtype == tv_ops.box_iou(h, h).dtype == torch.float32


def test_box_iou_of_two_empty_boxes_is_zero():
    point = torch.tensor([[3.0, 3.0, 3.0, 3.0]])
    assert det.box_iou(point, point).item() == 0.0


@pytest.mark.parametrize("n, m", [(0, 5), (5, 0), (0, 0)])
def test_box_iou_empty_inputs(n, m):
    out = det.box_iou(torch.zeros(n, 4), random_boxes(m, 0))
    assert out.shape == (n, m)


box_strategy = st.tuples(
    st.floats(-100, 100), st.floats(-100, 100), st.floats(0.01, 50), st.floats(0.01, 50)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(box_strategy, min_size=1, max_size=6), st.lists(box_strategy, min_size=1, max_size=6)
)
def test_box_iou_properties(first, second):
    a = torch.tensor(first, dtype=torch.float64)
    b = torch.tensor(second, dtype=torch.float64)
    iou = det.box_iou(a, b)
    assert torch.all((iou >= 0) & (iou <= 1 + 1e-12))  # in [0, 1]
    torch.testing.assert_close(iou, det.box_iou(b, a).T)  # symmetric
    torch.testing.assert_close(
        det.box_iou(a, a).diagonal(), torch.ones(len(a), dtype=torch.float64)
    )


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_matches_torchvision_and_round_trips(in_fmt, out_fmt):
    boxes = random_boxes(20, 5, dtype=torch.float64)
    torch.testing.assert_close(
        det.box_convert(boxes, in_fmt, out_fmt),
        tv_ops.box_convert(boxes, in_fmt, out_fmt),
        rtol=0,
        atol=0,
    )
    back = det.box_convert(det.box_convert(boxes, in_fmt, out_fmt), out_fmt, in_fmt)
    torch.testing.assert_close(back, boxes)


def test_box_convert_keeps_leading_dimensions():
    boxes = random_boxes(12, 6).view(3, 4, 4)
    assert det.box_convert(boxes, "xyxy", "cxcywh").shape == (3, 4, 4)


def test_clip_and_remove_small_boxes_match_torchvision():
    boxes = random_boxes(50, 7) - 20
    torch.testing.assert_close(
        det.clip_boxes_to_image(boxes, (60, 80)), tv_ops.clip_boxes_to_image(boxes, (60, 80))
    )
    assert torch.equal(det.remove_small_boxes(boxes, 30.0), tv_ops.remove_small_boxes(boxes, 30.0))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_match_torchvision_box_coder(weights):
    from torchvision.models.detection._utils import BoxCoder

    coder = BoxCoder(weights)
    reference = random_boxes(30, 8, dtype=torch.float64) + 1
    target = random_boxes(30, 9, dtype=torch.float64) + 1
    torch.testing.assert_close(
        det.encode_boxes(reference, target, weights),
        coder.encode_single(target, reference),
        rtol=0,
        atol=1e-12,
    )
    deltas = torch.randn(30, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    deltas[0, 2] = 20.0  # beyond the clamp
    torch.testing.assert_close(
        det.decode_boxes(reference, deltas, weights),
        coder.decode_single(deltas, reference),
        rtol=0,
        atol=1e-12,
    )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(box_strategy, box_strategy), min_size=1, max_size=8))
def test_encode_decode_round_trip(pairs):
    reference = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    target = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    decoded = det.decode_boxes(
        reference, det.encode_boxes(reference, target), max_log_scale=math.inf
    )
    torch.testing.assert_close(decoded, target, rtol=1e-9, atol=1e-9)


def test_encode_decode_broadcast_class_specific_deltas():
    proposals = random_boxes(6, 10) + 1
    deltas = torch.randn(6, 3, 4) * 0.1
    assert det.decode_boxes(proposals[:, None], deltas).shape == (6, 3, 4)


# --------------------------------------------------------------------------------------
# NMS
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [0, 1, 2, 10, 300, 2500])
@pytest.mark.parametrize("kind", ["dense", "sparse", "duplicates", "degenerate"])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_keeps_exactly_what_torchvision_keeps(device, n, kind, threshold):
    boxes = random_boxes(n, n, kind, device=device)
    scores = torch.rand(n, generator=torch.Generator().manual_seed(n + 1)).to(device)  # distinct
    assert torch.equal(det.nms(boxes, scores, threshold), tv_ops.nms(boxes, scores, threshold))


@pytest.mark.parametrize("n", [5, 200, 1500])
def test_nms_with_score_ties_matches_torchvision_cpu(n):
    boxes = random_boxes(n, 3, "duplicates")
    scores = torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(0)).float()
    assert torch.equal(det.nms(boxes, scores, 0.5), tv_ops.nms(boxes, scores, 0.5))


def test_nms_float64_and_iou_exactly_at_threshold():
    boxes = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    kept = det.nms(boxes, scores, 0.5)  # IoU(0, 1) = 0.5 exactly: not suppressed
    assert kept.tolist() == [0, 1] == tv_ops.nms(boxes, scores, 0.5).tolist()


def test_nms_threshold_not_representable_in_float32():
    # IoU equal to float32(0.3) > 0.3: torchvision's kernel compares in double and suppresses.
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        boxes = (torch.rand(400, 4, generator=g) * 20).round()
        boxes[:, 2:] += boxes[:, :2] + 1
        scores = torch.rand(400, generator=g)
        for t in (0.3, 0.1, 0.7):
            assert torch.equal(det.nms(boxes, scores, t), tv_ops.nms(boxes, scores, t))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [0, 1, 50, 1000, 5000])
@pytest.mark.parametrize("num_classes", [1, 3, 40])
def test_batched_nms_matches_torchvision(device, n, num_classes):
    boxes = random_boxes(n, n + 7, "dense", device=device)
    g = torch.Generator().manual_seed(n)
    scores = torch.rand(n, generator=g).to(device)
    idxs = torch.randint(0, num_classes, (n,), generator=g).to(device)
    assert torch.equal(
        det.batched_nms(boxes, scores, idxs, 0.5), tv_ops.batched_nms(boxes, scores, idxs, 0.5)
    )


def test_nms_block_boundaries_do_not_change_the_result(monkeypatch):
    boxes, scores = (
        random_boxes(700, 11),
        torch.rand(700, generator=torch.Generator().manual_seed(1)),
    )
    expected = tv_ops.nms(boxes, scores, 0.4)
    for block in (1, 7, 64, 10_000):
        monkeypatch.setitem(__import__("course_lib.detection.nms", fromlist=["x"])._NMS_BLOCK, "cpu", block)
        assert torch.equal(det.nms(boxes, scores, 0.4), expected)


# --------------------------------------------------------------------------------------
# RoI Pool and RoI Align
# --------------------------------------------------------------------------------------


def random_rois(k: int, num_images: int, seed: int, dtype=torch.float64, device="cpu", extent=40.0):
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent - 5  # some start outside
    size = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent / 2
    size[: k // 5] = 0.0  # degenerate regions
    batch = torch.randint(0, num_images, (k, 1), generator=g).double()
    return torch.cat([batch, corner, corner + size], 1).to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 1, 2])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_roi_align_matches_torchvision(device, dtype, aligned, sampling_ratio, scale):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 13, 17, generator=g, dtype=dtype).to(device)
    rois = random_rois(60, 3, 1, dtype, device)
    ours = det.roi_align(x, rois, (4, 3), scale, sampling_ratio, aligned)
    theirs = tv_ops.roi_align(x, rois, (4, 3), scale, sampling_ratio, aligned)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.3, 1 / 16])
def test_roi_pool_matches_torchvision(device, dtype, scale):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 11, 14, generator=g, dtype=dtype).to(device)
    rois = random_rois(50, 2, 3, dtype, device, extent=40 / scale if scale < 0.5 else 40)
    rois[:5, 1:] = torch.tensor([1.5, 2.5, 6.5, 8.5], dtype=dtype) / scale  # halves: C rounding
    for size in [(2, 2), (3, 5), 7]:
        torch.testing.assert_close(
            det.roi_pool(x, rois, size, scale),
            tv_ops.roi_pool(x, rois, size, scale),
            rtol=0,
            atol=0,
        )


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_roi_op_gradients_match_torchvision(op):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 10, 12, generator=g, dtype=torch.float64, requires_grad=True)
    rois = random_rois(25, 2, 5)
    upstream = torch.randn(25, 3, 3, 4, generator=g, dtype=torch.float64)
    if op == "roi_align":
        ours = det.roi_align(x, rois, (3, 4), 0.5, -1, True)
        theirs = tv_ops.roi_align(x, rois, (3, 4), 0.5, -1, True)
    else:
        ours = det.roi_pool(x, rois, (3, 4), 0.5)
        theirs = tv_ops.roi_pool(x, rois, (3, 4), 0.5)
    (grad_ours,) = torch.autograd.grad(ours, x, upstream)
    (grad_theirs,) = torch.autograd.grad(theirs, x, upstream)
    torch.testing.assert_close(grad_ours, grad_theirs, rtol=0, atol=1e-12)


def test_roi_align_gradcheck():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(1, 2, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.7, 1.2, 4.9, 5.3], [0, 2.0, 0.5, 3.1, 2.2]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: det.roi_align(t, rois, 3, 1.0, 2, True), (x,))


def test_roi_ops_accept_lists_and_empty_inputs():
    x = torch.randn(2, 3, 8, 8)
    boxes = [torch.tensor([[1.0, 1, 5, 6]]), torch.zeros(0, 4)]
    for ours, theirs in [(det.roi_align, tv_ops.roi_align), (det.roi_pool, tv_ops.roi_pool)]:
        torch.testing.assert_close(ours(x, boxes, 2), theirs(x, boxes, 2))
        assert ours(x, torch.zeros(0, 5), 2).shape == (0, 3, 2, 2)
        assert ours(x, [torch.zeros(0, 4)], (2, 3)).shape == (0, 3, 2, 3)


# --------------------------------------------------------------------------------------
# Anchors, matching, sampling, focal loss
# --------------------------------------------------------------------------------------


def test_generate_anchors_shape_order_and_sizes():
    anchors = det.generate_anchors((3, 5), 8, sizes=(16, 32), aspect_ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (3 * 5 * 6, 4)
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    torch.testing.assert_close(width * height, torch.tensor([16.0**2, 32**2] * 45))  # area s²
    torch.testing.assert_close(height / width, torch.tensor([0.5, 0.5, 1, 1, 2, 2] * 15))
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    torch.testing.assert_close(
        centres[6 * 6], torch.tensor([(1 + 0.5) * 8, (1 + 0.5) * 8])
    )  # row 1, col 1


def test_generate_anchors_agree_with_torchvision_up_to_centre_and_rounding():
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    sizes, ratios = (32, 64, 128), (0.5, 1.0, 2.0)
    generator = AnchorGenerator((sizes,), (ratios,))
    base = generator.generate_anchors(list(sizes), list(ratios))  # centred at 0, rounded
    ours = det.generate_anchors((1, 1), 16, sizes, ratios) - 8.0  # cell centre (8, 8) -> 0
    torch.testing.assert_close(ours.round(), base)


@pytest.mark.parametrize("allow_low_quality", [False, True])
def test_match_anchors_matches_torchvision_matcher(allow_low_quality):
    from torchvision.models.detection._utils import Matcher

    anchors = det.generate_anchors((8, 8), 8, sizes=(12, 24), aspect_ratios=(0.5, 1.0, 2.0))
    gt = random_boxes(5, 12) * 0.5
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=allow_low_quality)
    expected = matcher(tv_ops.box_iou(gt, anchors))
    assert torch.equal(det.match_anchors(anchors, gt, 0.7, 0.3, allow_low_quality), expected)
    assert (det.match_anchors(anchors, torch.zeros(0, 4), 0.7, 0.3) == -1).all()


def test_sample_labels_counts():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    pos, neg = det.sample_labels(labels, 32, 0.25, torch.Generator().manual_seed(0))
    assert pos.sum() == 8 and neg.sum() == 24
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    pos, neg = det.sample_labels(torch.tensor([1, 0, 0]), 32, 0.5)
    assert pos.sum() == 1 and neg.sum() == 2


def test_sigmoid_focal_loss_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 3, generator=g, dtype=torch.float64)
    targets = (torch.rand(40, 3, generator=g) < 0.3).double()
    torch.testing.assert_close(
        det.sigmoid_focal_loss(logits, targets),
        tv_ops.sigmoid_focal_loss(logits, targets, reduction="sum"),
    )


# --------------------------------------------------------------------------------------
# Evaluation against pycocotools
# --------------------------------------------------------------------------------------

STAT_NAMES = [
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
]  # fmt: skip


def coco_evaluate(predictions, targets):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(boxes):
        return det.box_convert(boxes.double(), "xyxy", "xywh").tolist()

    annotations, results, categories = [], [], set()
    for image_id, (prediction, target) in enumerate(zip(predictions, targets), start=1):
        for box, label in zip(xywh(target["boxes"]), target["labels"].tolist()):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
            categories.add(label)
        scores, labels = prediction["scores"].double().tolist(), prediction["labels"].tolist()
        for box, score, label in zip(xywh(prediction["boxes"]), scores, labels):
            results.append(
                {"image_id": image_id, "category_id": label, "bbox": box, "score": score}
            )
            categories.add(label)
    coco = COCO()
    coco.dataset = {
        "images": [{"id": i} for i in range(1, len(targets) + 1)],
        "annotations": annotations,
        "categories": [{"id": c} for c in sorted(categories)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def random_detection_set(seed: int):
    """Images with or without boxes and predictions; several classes, ties, > 100 per class."""
    rng = np.random.default_rng(seed)
    num_images, num_classes = int(rng.integers(1, 9)), int(rng.integers(1, 5))
    predictions, targets = [], []
    for _ in range(num_images):
        m = int(rng.integers(0, 6))
        n = int(rng.choice([0, 3, 20, 140])) if rng.uniform() < 0.9 else 0
        corner = rng.uniform(0, 300, (m, 2))
        gt = np.concatenate([corner, corner + rng.uniform(3, 150, (m, 2))], 1)
        gt_labels = rng.integers(0, num_classes, m)
        source = rng.integers(0, max(m, 1), n)
        boxes = gt[source] + rng.normal(0, 6, (n, 4)) if m else rng.uniform(0, 300, (n, 4))
        wild = rng.uniform(size=n) < 0.3
        corner = rng.uniform(0, 300, (n, 2))
        boxes[wild] = np.concatenate([corner, corner + rng.uniform(3, 150, (n, 2))], 1)[wild]
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.5)
        labels = gt_labels[source] if m else rng.integers(0, num_classes, n)
        labels = np.where(rng.uniform(size=n) < 0.2, rng.integers(0, num_classes, n), labels)
        scores = rng.uniform(size=n)
        if seed % 3 == 0:
            scores = np.round(scores * 5) / 5  # many ties
        predictions.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32),
                "scores": torch.tensor(scores, dtype=torch.float32),
                "labels": torch.tensor(labels),
            }
        )
        # "colors": extra keys in a target are ignored
        targets.append(
            {
                "boxes": torch.tensor(gt, dtype=torch.float32),
                "labels": torch.tensor(gt_labels),
                "colors": torch.zeros(m, dtype=torch.long),
            }
        )
    return predictions, targets


@pytest.mark.parametrize("seed", range(40))
def test_evaluate_detections_equals_pycocotools(seed):
    predictions, targets = random_detection_set(seed)
    if sum(len(p["scores"]) for p in predictions) == 0:
        pytest.skip("pycocotools cannot load an empty result list")
    evaluator = coco_evaluate(predictions, targets)
    ours = det.evaluate_detections(predictions, targets)
    for name, value in zip(STAT_NAMES, evaluator.stats):
        assert abs(ours[name] - value) < 1e-6, (name, ours[name], value)
    # Per-class precision table (IoU thresholds x recall points, all areas, 100 detections).
    classes = ours["classes"].tolist()
    columns = [classes.index(c) for c in evaluator.params.catIds]
    np.testing.assert_allclose(
        ours["precision"][:, :, columns].numpy(),
        evaluator.eval["precision"][:, :, :, 0, 2],
        atol=1e-9,
    )


def test_evaluate_detections_edge_cases():
    target = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1])}
    nothing = {
        "boxes": torch.zeros(0, 4),
        "scores": torch.zeros(0),
        "labels": torch.zeros(0, dtype=torch.long),
    }
    perfect = {
        "boxes": torch.tensor([[0.0, 0, 10, 10]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([1]),
    }
    assert det.evaluate_detections([nothing], [target])["map"] == 0.0  # objects, no detections
    assert det.evaluate_detections([perfect], [target])["map"] == pytest.approx(1.0)
    empty_target = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    assert det.evaluate_detections([perfect], [empty_target])["map"] == -1.0  # no ground truth
    assert det.evaluate_detections([nothing], [empty_target])["map"] == -1.0
    assert det.evaluate_detections([], [])["map"] == -1.0


def test_average_precision_methods_against_reference_formulas():
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(30, generator=g, dtype=torch.float64)
    matched = torch.rand(30, generator=g) < 0.5
    num_gt = 21
    order = np.argsort(-scores.numpy(), kind="mergesort")
    tp = np.cumsum(matched.numpy()[order])
    fp = np.cumsum(~matched.numpy()[order])
    recall, precision = tp / num_gt, tp / (tp + fp)
    # VOC 2007 11-point, VOC 2010 all-point (py-faster-rcnn's voc_ap)
    eleven = np.mean(
        [precision[recall >= t].max() if (recall >= t).any() else 0 for t in np.linspace(0, 1, 11)]
    )
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    changed = np.where(mrec[1:] != mrec[:-1])[0]
    all_points = np.sum((mrec[changed + 1] - mrec[changed]) * mpre[changed + 1])
    assert det.average_precision(scores, matched, num_gt, "voc11") == pytest.approx(
        eleven, abs=1e-12
    )
    assert det.average_precision(scores, matched, num_gt, "all") == pytest.approx(
        all_points, abs=1e-12
    )
    assert det.average_precision(scores, matched, 0) == -1.0


def test_average_precision_coco_equals_pycocotools_ap50_for_one_class():
    predictions, targets = random_detection_set(7)
    for p, t in zip(predictions, targets):
        p["labels"].zero_()
        t["labels"].zero_()
    ours = det.evaluate_detections(predictions, targets)
    scores, matched = [], []
    for p, t in zip(predictions, targets):
        keep = torch.sort(p["scores"], descending=True, stable=True).indices[:100]
        scores.append(p["scores"][keep])
        matched.append(det.match_detections(p["boxes"][keep], p["scores"][keep], t["boxes"], 0.5))
    num_gt = sum(len(t["boxes"]) for t in targets)
    ap = det.average_precision(torch.cat(scores), torch.cat(matched), num_gt)
    assert ap == pytest.approx(ours["map_50"], abs=1e-9)


def brute_force_matches(boxes, scores, gt, threshold):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    iou = det.box_iou(boxes.double(), gt.double())
    used, flags = set(), [False] * len(scores)
    for i in order:
        best, best_iou = None, threshold
        for j in range(len(gt)):
            if j not in used and iou[i, j] >= best_iou:
                best, best_iou = j, iou[i, j]
        if best is not None:
            used.add(best)
            flags[i] = True
    return flags


@pytest.mark.parametrize("seed", range(10))
def test_match_detections_against_a_plain_loop(seed):
    g = torch.Generator().manual_seed(seed)
    gt = random_boxes(6, seed, "dense")
    boxes = torch.cat([gt + torch.randn(6, 4, generator=g) * 5, random_boxes(10, seed + 50)])
    scores = torch.rand(16, generator=g)
    for threshold in (0.3, 0.5, 0.75):
        assert det.match_detections(boxes, scores, gt, threshold).tolist() == brute_force_matches(
            boxes, scores, gt, threshold
        )


def test_precision_recall_curve_small_example():
    precision, recall = det.precision_recall_curve(
        torch.tensor([0.9, 0.3, 0.6]), torch.tensor([True, True, False]), 4
    )
    torch.testing.assert_close(precision, torch.tensor([1.0, 0.5, 2 / 3], dtype=torch.float64))
    torch.testing.assert_close(recall, torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))


# --------------------------------------------------------------------------------------
# Models: shapes, losses, training signal
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_batch():
    from course_lib.data import ShapesDataset

    return det.shapes_tensors(ShapesDataset(8, seed=0))


@pytest.mark.parametrize("name", ["rcnn", "fast", "faster", "one"])
def test_detectors_train_and_detect(name, shapes_batch):
    torch.manual_seed(0)
    images, targets = shapes_batch
    windows = det.sliding_window_proposals(64)
    model = {
        "rcnn": lambda: det.RCNN(windows, channels=8),
        "fast": lambda: det.FastRCNN(windows, channels=8, pool="pool"),
        "faster": lambda: det.FasterRCNN(channels=16),
        "one": lambda: det.OneStageDetector(channels=16),
    }[name]()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        parts, loss = model(images, targets)
        assert loss.dim() == 0 and torch.isfinite(loss)
        assert all(torch.isfinite(v) for v in parts.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    detections = det.predict(model, images)
    assert len(detections) == len(images)
    for d in detections:
        assert (
            d["boxes"].shape[1] == 4
            and d["boxes"].shape[0] == d["scores"].shape[0] == d["labels"].shape[0]
        )
        assert d["boxes"].shape[0] <= 100
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 64).all()


def test_single_object_detector(shapes_batch):
    from course_lib.data import ShapesDataset

    images, targets = det.shapes_tensors(ShapesDataset(4, min_objects=1, max_objects=1, seed=0))
    model = det.SingleObjectDetector(box_weight=10.0, channels=8)
    output, loss = model(images, targets)
    assert output["logits"].shape == (4, 3) and output["boxes"].shape == (4, 4)
    assert loss.dim() == 0
    with pytest.raises(ValueError, match="exactly one object"):
        model(*shapes_batch)


def test_random_batches_flip_keeps_boxes_on_the_shapes(shapes_batch):
    images, targets = shapes_batch
    next_batch = det.random_batches(images, targets, 4, flip=True, seed=0)
    for _ in range(4):
        batch_images, batch_targets = next_batch()
        for image, target in zip(batch_images, batch_targets):
            for box in target["boxes"].round().long().tolist():
                x1, y1, x2, y2 = box
                inside = image[:, y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
                outside_mean = image.mean()
                assert (inside - outside_mean).abs().amax() > 0.1  # the shape is under its box


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, message",
    [
        (
            lambda: det.box_iou(torch.zeros(3, 5), torch.zeros(2, 4)),
            ValueError,
            r"boxes1 must have shape \[N, 4\]",
        ),
        (
            lambda: det.box_iou([[0, 0, 1, 1]], torch.zeros(2, 4)),
            TypeError,
            "boxes1 must be a Tensor",
        ),
        (lambda: det.box_area(torch.zeros(4)), ValueError, r"\[N, 4\], got \(4,\)"),
        (
            lambda: det.box_convert(torch.zeros(2, 4), "xyxy", "yolo"),
            ValueError,
            "out_fmt must be one of",
        ),
        (
            lambda: det.nms(torch.zeros(3, 4), torch.zeros(2), 0.5),
            ValueError,
            r"scores must have shape \[N\]",
        ),
        (
            lambda: det.nms(torch.zeros(3, 4), torch.zeros(3), "0.5"),
            TypeError,
            "iou_threshold must be a float",
        ),
        (
            lambda: det.nms(torch.zeros(3, 4, dtype=torch.long), torch.zeros(3), 0.5),
            TypeError,
            "floating",
        ),
        (
            lambda: det.batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5),
            TypeError,
            "idxs",
        ),
        (lambda: det.encode_boxes(torch.zeros(3, 4), torch.zeros(2, 4)), ValueError, "broadcast"),
        (
            lambda: det.roi_align(torch.zeros(3, 8, 8), torch.zeros(1, 5), 2),
            ValueError,
            r"\[B, C, H, W\]",
        ),
        (
            lambda: det.roi_align(torch.zeros(1, 3, 8, 8), torch.zeros(1, 4), 2),
            ValueError,
            r"\[K, 5\]",
        ),
        (
            lambda: det.roi_pool(torch.zeros(1, 3, 8, 8), torch.tensor([[1.0, 0, 0, 2, 2]]), 2),
            ValueError,
            "batch index",
        ),
        (
            lambda: det.roi_pool(torch.zeros(1, 3, 8, 8), torch.zeros(1, 5), 0),
            ValueError,
            "output_size",
        ),
        (lambda: det.generate_anchors((2, 2), 8, sizes=()), ValueError, "sizes"),
        (
            lambda: det.match_anchors(torch.zeros(2, 4), torch.zeros(1, 4), 0.3, 0.7),
            ValueError,
            "low <= high",
        ),
        (lambda: det.evaluate_detections([{}], []), ValueError, "one entry per image"),
        (
            lambda: det.evaluate_detections(
                [{"boxes": torch.zeros(1, 4), "labels": torch.zeros(1)}], [{}]
            ),
            ValueError,
            "missing",
        ),
        (
            lambda: det.evaluate_detections(
                [
                    {
                        "boxes": torch.zeros(2, 4),
                        "scores": torch.zeros(1),
                        "labels": torch.zeros(2, dtype=torch.long),
                    }
                ],
                [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}],
            ),
            ValueError,
            r"predictions\[0\]\['scores'\] must have shape",
        ),
        (
            lambda: det.average_precision(torch.zeros(2), torch.zeros(2), 1, "voc12"),
            ValueError,
            "method",
        ),
        (lambda: det.OneStageDetector()(torch.zeros(2, 1, 64, 64)), ValueError, r"\[B, 3, H, W\]"),
        (lambda: det.OneStageDetector()(torch.zeros(1, 3, 64, 64), [{}]), ValueError, "targets"),
    ],
)
def test_bad_input_gives_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()
