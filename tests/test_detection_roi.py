"""course_lib.detection.roi against torchvision.ops.roi_align / roi_pool: values and gradients,
on every device, with property tests over random regions and absurd boxes."""

from __future__ import annotations

import time

import pytest
import torch
import torchvision.ops as tv_ops
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import detection as det


def random_rois(k: int, num_images: int, seed: int, dtype=torch.float64, device="cpu", extent=40.0):
    """RoIs [k, 5]; some start outside the map, a fifth are degenerate (zero size)."""
    g = torch.Generator().manual_seed(seed)
    corner = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent - 5
    size = torch.rand(k, 2, generator=g, dtype=torch.float64) * extent / 2
    size[: k // 5] = 0.0
    batch = torch.randint(0, num_images, (k, 1), generator=g).double()
    return torch.cat([batch, corner, corner + size], 1).to(dtype=dtype, device=device)


def tolerance(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-12


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
    assert ours.is_contiguous() and ours.device == x.device
    torch.testing.assert_close(ours, theirs, rtol=0, atol=tolerance(dtype))


@pytest.mark.parametrize("channels", [1, 3, 16])  # both products of roi_align
@pytest.mark.parametrize("size", [(5, 5), (7, 3), (20, 20)])
def test_roi_align_book_shapes_match_torchvision(device, channels, size):
    x = torch.randn(4, channels, 16, 16, generator=torch.Generator().manual_seed(3)).to(device)
    rois = random_rois(200, 4, 2, torch.float32, device, extent=64.0)
    ours = det.roi_align(x, rois, size, 0.25, 2, True)
    theirs = tv_ops.roi_align(x, rois, size, 0.25, 2, True)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.3, 1 / 16])
def test_roi_pool_matches_torchvision(device, dtype, scale):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 5, 11, 14, generator=g, dtype=dtype).to(device)
    rois = random_rois(50, 2, 3, dtype, device, extent=40 / scale if scale < 0.5 else 40)
    rois[:5, 1:] = torch.tensor([1.5, 2.5, 6.5, 8.5], dtype=dtype) / scale  # halves: C rounding
    for size in [(2, 2), (3, 5), 7]:
        ours = det.roi_pool(x, rois, size, scale)
        assert ours.is_contiguous()
        torch.testing.assert_close(ours, tv_ops.roi_pool(x, rois, size, scale), rtol=0, atol=0)


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
@pytest.mark.parametrize("ties", [False, True])
def test_roi_op_gradients_match_torchvision(device, op, ties):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 10, 12, generator=g, dtype=torch.float64)
    if ties:  # whole cells equal, as after a ReLU: RoI Pool sends the gradient to the first
        x = x.relu().round()
    x = x.to(device).requires_grad_()
    rois = random_rois(25, 2, 5, device=device)
    upstream = torch.randn(25, 3, 3, 4, generator=g, dtype=torch.float64).to(device)
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


def test_roi_ops_accept_lists_and_empty_inputs(device):
    x = torch.randn(2, 3, 8, 8).to(device)
    boxes = [torch.tensor([[1.0, 1, 5, 6]]).to(device), torch.zeros(0, 4).to(device)]
    for ours, theirs in [(det.roi_align, tv_ops.roi_align), (det.roi_pool, tv_ops.roi_pool)]:
        torch.testing.assert_close(ours(x, boxes, 2), theirs(x, boxes, 2))
        assert ours(x, torch.zeros(0, 5).to(device), 2).shape == (0, 3, 2, 2)
        assert ours(x, [torch.zeros(0, 4).to(device)], (2, 3)).shape == (0, 3, 2, 3)
        assert ours(x, [], 2).shape == (0, 3, 2, 2)


@pytest.mark.parametrize("aligned", [False, True])
def test_roi_align_inverted_and_zero_size_boxes_match_torchvision(aligned):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    rois = torch.tensor([[0, 9.0, 9, 3, 2], [0, 5, 5, 5, 5], [0, 5.5, 2, 5.5, 9]])
    for sampling_ratio in (-1, 2):
        torch.testing.assert_close(
            det.roi_align(x, rois, 3, 1.0, sampling_ratio, aligned),
            tv_ops.roi_align(x, rois, 3, 1.0, sampling_ratio, aligned),
            rtol=0,
            atol=1e-6,
        )


@pytest.mark.parametrize("op", ["roi_align", "roi_pool"])
def test_absurd_boxes_finish_quickly(op):
    """The work is bounded by the map: a box a billion cells wide costs no more than the map."""
    x = torch.randn(1, 4, 16, 16)
    boxes = torch.tensor([[0, -1e9, -1e9, 1e9, 1e9], [0, 0, 0, 1e30, 1e30], [0, 3, 3, 9, 9]])
    start = time.perf_counter()
    out = getattr(det, op)(x, boxes, 7, 1.0)
    assert time.perf_counter() - start < 5.0
    assert out.shape == (3, 4, 7, 7) and torch.isfinite(out).all()
    torch.testing.assert_close(out[2], getattr(tv_ops, op)(x, boxes[2:], 7, 1.0)[0])


roi_strategy = st.tuples(
    st.integers(0, 1),
    st.floats(-8, 40),
    st.floats(-8, 40),
    st.floats(0, 30),
    st.floats(0, 30),
).map(lambda t: [float(t[0]), t[1], t[2], t[1] + t[3], t[2] + t[4]])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(roi_strategy, min_size=1, max_size=12),
    st.integers(1, 5),
    st.integers(1, 5),
    st.sampled_from([1.0, 0.5, 0.25]),
    st.integers(-1, 3),
    st.booleans(),
    st.integers(1, 9),
)
def test_roi_ops_match_torchvision_on_random_regions(
    rois, out_h, out_w, scale, sampling_ratio, aligned, channels
):
    x = torch.randn(2, channels, 9, 11, generator=torch.Generator().manual_seed(len(rois)))
    rois = torch.tensor(rois, dtype=torch.float32)
    torch.testing.assert_close(
        det.roi_align(x, rois, (out_h, out_w), scale, sampling_ratio, aligned),
        tv_ops.roi_align(x, rois, (out_h, out_w), scale, sampling_ratio, aligned),
        rtol=0,
        atol=1e-5,
    )
    torch.testing.assert_close(
        det.roi_pool(x, rois, (out_h, out_w), scale),
        tv_ops.roi_pool(x, rois, (out_h, out_w), scale),
        rtol=0,
        atol=0,
    )


@settings(max_examples=30, deadline=None)
@given(st.integers(-3, 3), st.sampled_from(["roi_align", "roi_pool"]))
def test_roi_batch_index_out_of_range_raises_naming_boxes(index, op):
    if index in (0, 1):
        return
    rois = torch.tensor([[float(index), 0, 0, 4, 4]])
    with pytest.raises(ValueError, match="boxes"):
        getattr(det, op)(torch.zeros(2, 3, 8, 8), rois, 2)
