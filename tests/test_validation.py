"""The shared argument checks: the right exception, the argument named, expected vs given."""

import numpy as np
import pytest
import torch

from course_lib import validation as v


def test_tensor_type_shape_dtype_and_device_messages():
    with pytest.raises(TypeError, match=r"boxes must be a Tensor of shape \[N, 4\], got list"):
        v.check_tensor("boxes", [[0, 0, 1, 1]], "N, 4")
    with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\], got \[3, 5\]"):
        v.check_tensor("boxes", torch.zeros(3, 5), "N, 4")
    with pytest.raises(ValueError, match=r"got \[4\]"):
        v.check_tensor("boxes", torch.zeros(4), "N, 4")
    with pytest.raises(TypeError, match=r"boxes must be a floating-point tensor, got torch\.int64"):
        v.check_tensor("boxes", torch.zeros(3, 4, dtype=torch.long), "N, 4", dtype="floating")
    with pytest.raises(TypeError, match=r"must be a tensor of dtype torch\.bool"):
        v.check_tensor("mask", torch.zeros(3), "N", dtype=torch.bool)
    with pytest.raises(TypeError, match="an integer tensor"):
        v.check_tensor("ids", torch.zeros(3), dtype="integer")
    with pytest.raises(TypeError, match="real-valued"):
        v.check_tensor("x", torch.zeros(3, dtype=torch.bool), dtype="real")
    with pytest.raises(ValueError, match="must be on meta"):
        v.check_tensor("x", torch.zeros(3), device=torch.device("meta"))
    t = torch.zeros(2, 4)
    assert v.check_tensor("boxes", t, "N, 4", dtype="floating") is t


def test_sizes_bind_letters_across_arguments():
    sizes = {}
    v.check_tensor("boxes", torch.zeros(3, 4), "N, 4", sizes=sizes)
    v.check_tensor("scores", torch.zeros(3), "N", sizes=sizes)
    with pytest.raises(
        ValueError, match=r"scores must have shape \[N\] with N = 3 \(from boxes\), got \[4\]"
    ):
        v.check_tensor("scores", torch.zeros(4), "N", sizes=sizes)


def test_leading_ellipsis_allows_any_batch_dimensions():
    v.check_tensor("x", torch.zeros(2, 3, 5, 8), "..., 8")
    v.check_tensor("x", torch.zeros(8), "..., 8")
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\]"):
        v.check_tensor("x", torch.zeros(2, 7), "..., 8")


def test_finite_and_like():
    with pytest.raises(ValueError, match="x must be finite, got 1 NaN"):
        v.check_tensor("x", torch.tensor([1.0, float("nan")]), finite=True)
    weight = torch.zeros(2)
    with pytest.raises(
        TypeError,
        match=r"x is torch.float64 but the model's parameters are torch.float32: pass x.float\(\)",
    ):
        v.check_like("x", torch.zeros(2, dtype=torch.float64), weight)
    v.check_like("ids", torch.zeros(2, dtype=torch.long), weight)  # integer inputs are not cast


def test_token_ids_out_of_vocabulary():
    with pytest.raises(
        ValueError,
        match=r"tokens must hold token ids in \[0, 9\] \(vocab_size = 10\), got values from 0 to 12",  # noqa: E501,
    ):
        v.check_token_ids("tokens", torch.tensor([[0, 12]]), 10, "B, T")
    with pytest.raises(ValueError, match="from -1"):
        v.check_token_ids("tokens", torch.tensor([-1, 2]), 10)
    with pytest.raises(TypeError, match="integer tensor"):
        v.check_token_ids("tokens", torch.tensor([0.0]), 10)
    v.check_token_ids("tokens", torch.zeros(0, 3, dtype=torch.long), 10, "B, T")


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [(True, TypeError, "must be an int, got bool"), (2.0, TypeError, "got float"),
     ("3", TypeError, "got str"), (0, ValueError, "must be an int >= 1, got 0"),
     (11, ValueError, r"in \[1, 10\], got 11")],
)  # fmt: skip
def test_int(value, error, match):
    with pytest.raises(error, match=match):
        v.check_int("k", value, 1, 10 if value == 11 else None)


def test_int_accepts_numpy_and_zero_dim_tensors():
    assert v.check_int("k", np.int64(3), 1) == 3
    assert v.check_int("k", torch.tensor(4), 1) == 4


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [(float("nan"), ValueError, "finite number"), (None, TypeError, "got NoneType"),
     (1.5, ValueError, r"in \[0.0, 1.0\], got 1.5"), (False, TypeError, "got bool")],
)  # fmt: skip
def test_probability(value, error, match):
    with pytest.raises(error, match=match):
        v.check_probability("iou_threshold", value)


def test_open_bounds_and_choices():
    with pytest.raises(ValueError, match=r"> 0.0, got 0.0"):
        v.check_float("temperature", 0.0, 0.0, include_minimum=False)
    assert v.check_float("temperature", 2, 0.0) == 2.0
    with pytest.raises(ValueError, match=r"in_fmt must be one of \['xyxy', 'xywh'\], got 'xy'"):
        v.check_choice("in_fmt", "xy", ["xyxy", "xywh"])
    with pytest.raises(TypeError, match="must be True or False"):
        v.check_bool("aligned", 1)
    with pytest.raises(TypeError, match="list or tuple"):
        v.check_sequence("sizes", "abc")
    with pytest.raises(ValueError, match="must have 2 items, got 3"):
        v.check_sequence("size", (1, 2, 3), 2)


def test_same_device():
    v.check_same_device(a=torch.zeros(1), b=None, c=torch.zeros(2))
    with pytest.raises(ValueError, match="b is on meta but a is on cpu"):
        v.check_same_device(a=torch.zeros(1), b=torch.zeros(1, device="meta"))
