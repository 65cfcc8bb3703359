"""course_lib.detection.evaluation against pycocotools' COCOeval (within 1e-6; the COCO side is
``coco_evaluator`` of the benchmarks, shared so the two cannot drift) and reference
formulas of PASCAL VOC's AP, plus properties of the precision-recall curve."""

from __future__ import annotations

import numpy as np
import pycocotools  # noqa: F401  a required test dependency: missing, the file fails to load
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_detection import coco_evaluator
from course_lib import detection as det
from tests.test_detection_boxes import random_boxes

STAT_NAMES = [
    "map", "map_50", "map_75", "map_small", "map_medium", "map_large",
    "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large",
]  # fmt: skip


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
        targets.append(  # "colors": extra keys in a target are ignored
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
    evaluator = coco_evaluator(predictions, targets)
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


def test_evaluate_detections_on_any_device_equals_the_cpu(device):
    predictions, targets = random_detection_set(4)
    moved = [{k: v.to(device) for k, v in p.items()} for p in predictions]
    ours, cpu = (
        det.evaluate_detections(moved, targets),
        det.evaluate_detections(predictions, targets),
    )
    assert all(ours[name] == cpu[name] for name in STAT_NAMES)


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


def reference_aps(scores, matched, num_gt):
    """VOC 2007 11-point and VOC 2010 all-point AP (py-faster-rcnn's voc_ap), in numpy."""
    order = np.argsort(-scores.numpy(), kind="mergesort")
    tp = np.cumsum(matched.numpy()[order])
    fp = np.cumsum(~matched.numpy()[order])
    recall, precision = tp / num_gt, tp / (tp + fp)
    eleven = np.mean(
        [precision[recall >= t].max() if (recall >= t).any() else 0 for t in np.linspace(0, 1, 11)]
    )
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    changed = np.where(mrec[1:] != mrec[:-1])[0]
    return eleven, np.sum((mrec[changed + 1] - mrec[changed]) * mpre[changed + 1])


def test_average_precision_methods_against_reference_formulas():
    g = torch.Generator().manual_seed(3)
    scores = torch.rand(30, generator=g, dtype=torch.float64)
    matched = torch.rand(30, generator=g) < 0.5
    eleven, all_points = reference_aps(scores, matched, 21)
    assert det.average_precision(scores, matched, 21, "voc11") == pytest.approx(eleven, abs=1e-12)
    assert det.average_precision(scores, matched, 21, "all") == pytest.approx(all_points, abs=1e-12)
    assert det.average_precision(scores, matched & False, 0) == -1.0  # no object: undefined
    as_numbers = det.average_precision(scores, matched.long(), 21)
    assert as_numbers == det.average_precision(scores, matched, 21)  # 0/1 numbers work too


def test_more_true_positives_than_objects_is_rejected():
    scores = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    matched = torch.tensor([True, True, False])
    for call in (det.precision_recall_curve, det.average_precision):
        with pytest.raises(ValueError, match=r"num_ground_truth must be at least .* \(2\)"):
            call(scores, matched, 1)
    precision, recall = det.precision_recall_curve(scores, matched, 2)  # the boundary is fine
    assert recall.tolist() == [0.5, 1.0, 1.0] and precision[-1].item() == pytest.approx(2 / 3)


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


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), max_size=30), st.integers(0, 10))
def test_average_precision_properties(detections, extra_objects):
    scores = torch.tensor([s for s, _ in detections], dtype=torch.float64)
    matched = torch.tensor([m for _, m in detections], dtype=torch.bool)
    num_gt = int(matched.sum()) + extra_objects
    precision, recall = det.precision_recall_curve(scores, matched, num_gt)
    assert precision.shape == recall.shape == scores.shape
    assert bool(((precision >= 0) & (precision <= 1)).all())
    assert bool((recall[1:] >= recall[:-1]).all()) and bool((recall <= 1).all())
    for method in det.AP_METHODS:
        ap = det.average_precision(scores, matched, num_gt, method)
        assert ap == -1.0 if num_gt == 0 else 0.0 <= ap <= 1.0 + 1e-12
    if num_gt and extra_objects == 0 and matched.all():  # every detection right, every object
        assert det.average_precision(scores, matched, num_gt) == pytest.approx(1.0)


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


def test_match_detections_with_no_detections_or_no_objects(device):
    boxes, scores = random_boxes(4, 1, device=device), torch.rand(4).to(device)
    none = det.match_detections(boxes, scores, torch.zeros(0, 4, device=device))
    assert none.tolist() == [False] * 4 and none.device == boxes.device
    assert det.match_detections(boxes[:0], scores[:0], boxes).shape == (0,)


def test_precision_recall_curve_small_example():
    precision, recall = det.precision_recall_curve(
        torch.tensor([0.9, 0.3, 0.6]), torch.tensor([True, True, False]), 4
    )
    torch.testing.assert_close(precision, torch.tensor([1.0, 0.5, 2 / 3], dtype=torch.float64))
    torch.testing.assert_close(recall, torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))
