"""course_lib.detection.anchors against torchvision's AnchorGenerator and Matcher."""

from __future__ import annotations

import pytest
import torch
import torchvision.ops as tv_ops
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import Matcher
from torchvision.models.detection.anchor_utils import AnchorGenerator

from course_lib import detection as det
from tests.test_detection_boxes import random_boxes


def test_generate_anchors_shape_order_and_sizes():
    anchors = det.generate_anchors((3, 5), 8, sizes=(16, 32), aspect_ratios=(0.5, 1.0, 2.0))
    assert anchors.shape == (3 * 5 * 6, 4) and anchors.dtype == torch.float32
    width, height = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    torch.testing.assert_close(width * height, torch.tensor([16.0**2, 32**2] * 45))  # area s²
    torch.testing.assert_close(height / width, torch.tensor([0.5, 0.5, 1, 1, 2, 2] * 15))
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    torch.testing.assert_close(centres[6 * 6], torch.tensor([1.5 * 8, 1.5 * 8]))  # row 1, col 1


def test_generate_anchors_agree_with_torchvision_up_to_centre_and_rounding():
    sizes, ratios = (32, 64, 128), (0.5, 1.0, 2.0)
    generator = AnchorGenerator((sizes,), (ratios,))
    base = generator.generate_anchors(list(sizes), list(ratios))  # centred at 0, rounded
    ours = det.generate_anchors((1, 1), 16, sizes, ratios) - 8.0  # cell centre (8, 8) -> 0
    torch.testing.assert_close(ours.round(), base)


def test_generate_anchors_single_numbers_strides_and_dtype(device):
    one = det.generate_anchors(4, 8, 16, device=device, dtype=torch.float64)
    assert one.shape == (16, 4) and one.dtype == torch.float64 and one.device.type == device
    torch.testing.assert_close(one.cpu(), det.generate_anchors((4, 4), (8, 8), (16.0,)).double())
    wide = det.generate_anchors((2, 3), (4, 10), (6,))
    torch.testing.assert_close(wide[1, [0, 1]], torch.tensor([15.0 - 3, 2.0 - 3]))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(1, 6),
    st.floats(0.5, 32),
    st.lists(st.floats(1, 64), min_size=1, max_size=3),
    st.lists(st.floats(0.25, 4), min_size=1, max_size=3),
)
def test_generate_anchors_properties(height, width, stride, sizes, ratios):
    anchors = det.generate_anchors((height, width), stride, sizes, ratios, dtype=torch.float64)
    per_position = len(sizes) * len(ratios)
    assert anchors.shape == (height * width * per_position, 4)
    w, h = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    expected_area = torch.tensor(sizes, dtype=torch.float64).repeat(len(ratios)) ** 2
    torch.testing.assert_close(w * h, expected_area.repeat(height * width))
    centres = ((anchors[:, :2] + anchors[:, 2:]) / 2).view(height, width, per_position, 2)
    assert torch.allclose(centres[..., 0], ((torch.arange(width) + 0.5) * stride)[None, :, None]
                          .double())  # fmt: skip


@pytest.mark.parametrize("allow_low_quality", [False, True])
def test_match_anchors_matches_torchvision_matcher(device, allow_low_quality):
    anchors = det.generate_anchors((8, 8), 8, sizes=(12, 24), aspect_ratios=(0.5, 1.0, 2.0))
    gt = random_boxes(5, 12) * 0.5
    matcher = Matcher(0.7, 0.3, allow_low_quality_matches=allow_low_quality)
    expected = matcher(tv_ops.box_iou(gt, anchors))
    ours = det.match_anchors(anchors.to(device), gt.to(device), 0.7, 0.3, allow_low_quality)
    assert torch.equal(ours.cpu(), expected)


def test_match_anchors_with_no_objects_or_no_anchors():
    anchors = det.generate_anchors((2, 2), 8, (12,))
    assert (det.match_anchors(anchors, torch.zeros(0, 4), 0.7, 0.3) == -1).all()
    assert det.match_anchors(torch.zeros(0, 4), random_boxes(3, 0), 0.7, 0.3).shape == (0,)


def test_sample_labels_counts_and_reproducibility():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    pos, neg = det.sample_labels(labels, 32, 0.25, torch.Generator().manual_seed(0))
    assert pos.sum() == 8 and neg.sum() == 24
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    again = det.sample_labels(labels, 32, 0.25, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], pos) and torch.equal(again[1], neg)
    pos, neg = det.sample_labels(torch.tensor([1, 0, 0]), 32, 0.5)
    assert pos.sum() == 1 and neg.sum() == 2
    pos, neg = det.sample_labels(torch.zeros(0, dtype=torch.long), 8, 0.5)
    assert pos.shape == neg.shape == (0,)
