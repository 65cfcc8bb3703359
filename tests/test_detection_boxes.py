"""course_lib.detection.boxes against torchvision.ops (area, IoU, formats, clipping, the box
transform of torchvision's BoxCoder), with property tests over random boxes."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.ops as tv_ops
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.models.detection._utils import BoxCoder

from course_lib import detection as det


def random_boxes(n: int, seed: int, kind: str = "dense", dtype=torch.float32, device="cpu"):
    """Boxes [n, 4] of several kinds: dense (heavy overlap), sparse, duplicates, degenerate."""
    g = torch.Generator().manual_seed(seed)
    if kind == "dense":
        boxes = torch.rand(n, 4, generator=g, dtype=torch.float64) * 100
        boxes[:, 2:] += boxes[:, :2]
    elif kind == "sparse":
        corner = torch.rand(n, 2, generator=g, dtype=torch.float64) * 1000
        size = 10 + torch.rand(n, 2, generator=g, dtype=torch.float64) * 40
        boxes = torch.cat([corner, corner + size], 1)
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


@pytest.mark.parametrize("kind", ["dense", "sparse", "duplicates", "integer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_generalized_box_iou_matches_torchvision(device, kind, dtype):
    a = random_boxes(37, 4, kind, dtype, device)
    b = random_boxes(23, 5, kind, dtype, device)
    ours = det.generalized_box_iou(a, b)
    expected = tv_ops.generalized_box_iou(a, b)
    assert ours.shape == (37, 23) and ours.dtype == expected.dtype and ours.device == a.device
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, expected, rtol=tolerance, atol=tolerance)
    assert bool((ours <= det.box_iou(a, b) + tolerance).all()) and bool((ours >= -1).all())
    assert det.generalized_box_iou(a[:0], b).shape == (0, 23)


def test_generalized_box_iou_tells_how_far_apart_disjoint_boxes_are():
    a = torch.tensor([[0.0, 0, 2, 2]])
    near_far = torch.tensor([[2.0, 0, 4, 2], [8, 0, 10, 2]])  # IoU 0 for both
    giou = det.generalized_box_iou(a, near_far)[0]
    assert det.box_iou(a, near_far).eq(0).all()
    assert giou.tolist() == pytest.approx([0.0, -0.6])  # enclosing boxes 4x2 and 10x2
    with pytest.raises(ValueError, match="boxes2"):
        det.generalized_box_iou(a, torch.ones(3, 5))


#: Valid boxes (x1, y1, x2, y2) with positive width and height, as lists for hypothesis.
box_strategy = st.tuples(
    st.floats(-100, 100), st.floats(-100, 100), st.floats(0.01, 50), st.floats(0.01, 50)
).map(lambda t: [t[0], t[1], t[0] + t[2], t[1] + t[3]])
box_lists = st.lists(box_strategy, min_size=1, max_size=8)


@pytest.mark.parametrize("kind", ["dense", "sparse", "duplicates", "degenerate", "integer"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_area_and_iou_match_torchvision(device, kind, dtype):
    a = random_boxes(37, 0, kind, dtype, device)
    b = random_boxes(23, 1, kind, dtype, device)
    assert torch.equal(det.box_area(a), tv_ops.box_area(a))
    expected = tv_ops.box_iou(a, b)
    ours = det.box_iou(a, b)
    assert ours.shape == (37, 23) and ours.dtype == expected.dtype and ours.device == a.device
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
def test_box_iou_and_area_of_no_boxes(n, m):
    assert det.box_iou(torch.zeros(n, 4), random_boxes(m, 0)).shape == (n, m)
    assert det.box_area(torch.zeros(n, 4)).shape == (n,)


@settings(max_examples=60, deadline=None)
@given(box_lists, box_lists)
def test_box_iou_properties(first, second):
    a = torch.tensor(first, dtype=torch.float64)
    b = torch.tensor(second, dtype=torch.float64)
    iou = det.box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert torch.all((iou >= 0) & (iou <= 1 + 1e-12))  # in [0, 1]
    torch.testing.assert_close(iou, det.box_iou(b, a).T)  # symmetric
    torch.testing.assert_close(det.box_iou(a, a).diagonal(), torch.ones(len(a), dtype=a.dtype))
    torch.testing.assert_close(iou, tv_ops.box_iou(a, b), rtol=0, atol=1e-12)


@pytest.mark.parametrize("in_fmt", ["xyxy", "xywh", "cxcywh"])
@pytest.mark.parametrize("out_fmt", ["xyxy", "xywh", "cxcywh"])
def test_box_convert_matches_torchvision(device, in_fmt, out_fmt):
    boxes = random_boxes(20, 5, dtype=torch.float64, device=device)
    ours = det.box_convert(boxes, in_fmt, out_fmt)
    torch.testing.assert_close(ours, tv_ops.box_convert(boxes, in_fmt, out_fmt), rtol=0, atol=0)


@settings(max_examples=50, deadline=None)
@given(box_lists, st.sampled_from(det.BOX_FORMATS), st.sampled_from(det.BOX_FORMATS))
def test_box_convert_round_trips(boxes, in_fmt, out_fmt):
    boxes = torch.tensor(boxes, dtype=torch.float64)
    back = det.box_convert(det.box_convert(boxes, in_fmt, out_fmt), out_fmt, in_fmt)
    torch.testing.assert_close(back, boxes, rtol=1e-12, atol=1e-9)


def test_box_convert_keeps_leading_dimensions():
    boxes = random_boxes(12, 6).view(3, 4, 4)
    assert det.box_convert(boxes, "xyxy", "cxcywh").shape == (3, 4, 4)


def test_clip_and_remove_small_boxes_match_torchvision(device):
    boxes = random_boxes(50, 7, device=device) - 20
    torch.testing.assert_close(
        det.clip_boxes_to_image(boxes, (60, 80)), tv_ops.clip_boxes_to_image(boxes, (60, 80))
    )
    assert torch.equal(det.remove_small_boxes(boxes, 30.0), tv_ops.remove_small_boxes(boxes, 30.0))
    assert det.clip_boxes_to_image(boxes, torch.Size([60, 80])).shape == boxes.shape


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_match_torchvision_box_coder(device, weights):
    coder = BoxCoder(weights)
    reference = random_boxes(30, 8, dtype=torch.float64, device=device) + 1
    target = random_boxes(30, 9, dtype=torch.float64, device=device) + 1
    torch.testing.assert_close(
        det.encode_boxes(reference, target, weights),
        coder.encode_single(target, reference),
        rtol=0,
        atol=1e-12,
    )
    deltas = torch.randn(30, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    deltas[0, 2] = 20.0  # beyond the clamp
    deltas = deltas.to(device)
    torch.testing.assert_close(
        det.decode_boxes(reference, deltas, weights),
        coder.decode_single(deltas, reference),
        rtol=0,
        atol=1e-12,
    )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(box_strategy, box_strategy), min_size=1, max_size=8))
def test_encode_decode_are_inverse(pairs):
    reference = torch.tensor([p[0] for p in pairs], dtype=torch.float64)
    target = torch.tensor([p[1] for p in pairs], dtype=torch.float64)
    deltas = det.encode_boxes(reference, target, (10.0, 10.0, 5.0, 5.0))
    decoded = det.decode_boxes(reference, deltas, (10.0, 10.0, 5.0, 5.0), max_log_scale=math.inf)
    torch.testing.assert_close(decoded, target, rtol=1e-9, atol=1e-9)


def test_encode_decode_broadcast_class_specific_deltas():
    proposals = random_boxes(6, 10) + 1
    deltas = torch.randn(6, 3, 4) * 0.1
    assert det.decode_boxes(proposals[:, None], deltas).shape == (6, 3, 4)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=3).filter(lambda s: s[-1] != 4),
    st.sampled_from(["box_area", "box_iou", "box_convert", "encode_boxes", "clip"]),
)
def test_boxes_of_a_wrong_shape_raise_naming_the_argument(shape, function):
    bad = torch.zeros(*shape)
    good = torch.zeros(2, 4)
    call = {
        "box_area": lambda: det.box_area(bad),
        "box_iou": lambda: det.box_iou(good, bad),
        "box_convert": lambda: det.box_convert(bad, "xyxy", "xywh"),
        "encode_boxes": lambda: det.encode_boxes(bad, good),
        "clip": lambda: det.clip_boxes_to_image(bad, (8, 8)),
    }[function]
    name = {"box_iou": "boxes2", "encode_boxes": "reference"}.get(function, "boxes")
    with pytest.raises(ValueError, match=name):
        call()


@settings(max_examples=30, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=3), st.lists(st.floats(), max_size=4), st.floats()))
def test_boxes_that_are_not_tensors_raise_type_error(value):
    with pytest.raises(TypeError, match="boxes1"):
        det.box_iou(value, torch.zeros(1, 4))
