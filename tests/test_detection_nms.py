"""course_lib.detection.nms against torchvision.ops.nms / batched_nms: identical kept indices."""

from __future__ import annotations

import importlib

import pytest
import torch
import torchvision.ops as tv_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import detection as det
from tests.test_detection_boxes import box_strategy, random_boxes

# The package's ``nms`` attribute is the function; the module is reached through importlib.
nms_module = importlib.import_module("course_lib.detection.nms")


@pytest.mark.parametrize("n", [0, 1, 2, 10, 300, 2500])
@pytest.mark.parametrize("kind", ["dense", "sparse", "duplicates", "degenerate"])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_keeps_exactly_what_torchvision_keeps(device, n, kind, threshold):
    boxes = random_boxes(n, n, kind, device=device)
    scores = torch.rand(n, generator=torch.Generator().manual_seed(n + 1)).to(device)  # distinct
    kept = det.nms(boxes, scores, threshold)
    assert kept.device == boxes.device and kept.dtype == torch.int64
    assert torch.equal(kept, tv_ops.nms(boxes, scores, threshold))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(box_strategy, min_size=1, max_size=40),
    st.floats(0.0, 1.0),
    st.randoms(use_true_random=False),
)
def test_nms_keeps_what_torchvision_keeps_for_distinct_scores(boxes, threshold, rng):
    boxes = torch.tensor(boxes, dtype=torch.float32)
    order = list(range(len(boxes)))
    rng.shuffle(order)
    scores = torch.tensor(order, dtype=torch.float32) / len(order)  # distinct
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


def test_nms_threshold_above_one_keeps_every_box():
    boxes, scores = random_boxes(50, 1, "duplicates"), torch.rand(50)
    assert det.nms(boxes, scores, 1.5).sort().values.tolist() == list(range(50))


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
    boxes = random_boxes(700, 11)
    scores = torch.rand(700, generator=torch.Generator().manual_seed(1))
    expected = tv_ops.nms(boxes, scores, 0.4)
    for block in (1, 7, 64, 10_000):
        monkeypatch.setitem(nms_module._NMS_BLOCK, "cpu", block)
        assert torch.equal(det.nms(boxes, scores, 0.4), expected)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 5), st.integers(0, 5))
def test_nms_length_mismatch_raises_naming_scores(n, m):
    if n == m:
        return
    with pytest.raises(ValueError, match="scores"):
        det.nms(random_boxes(n, 0), torch.rand(m), 0.5)
