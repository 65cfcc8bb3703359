"""Checks for the demonstration exercise of the appendix "how exercises work"."""

from __future__ import annotations

from typing import Callable, List

import torch
from torch import Tensor

from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    forbid,
    randn,
)


def _softmax_cases(device: torch.device) -> List[Case]:
    return [
        Case("a 3x4 batch", (randn(3, 4, seed=0, device=device),)),
        Case("one row (batch of 1)", (randn(1, 5, seed=1, device=device),)),
        Case("large logits (1000 ± noise)", (1000 + randn(2, 6, seed=2, device=device),)),
        Case("a row of ties", (torch.zeros(2, 3, dtype=torch.float64, device=device),)),
        Case(
            "-inf entries (masked positions)",
            (torch.tensor([[0.0, float("-inf"), 1.0]], dtype=torch.float64, device=device),),
        ),
        Case("3-D input [2, 3, 4]", (randn(2, 3, 4, seed=3, device=device),)),
        Case("empty batch [0, 4]", (torch.zeros(0, 4, dtype=torch.float64, device=device),)),
    ]


def _softmax_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.actual
    if isinstance(actual, Tensor) and actual.is_floating_point() and actual.isnan().any():
        return "结果里出现了 NaN：exp(1000) 会溢出。先减去每一行的最大值，再做指数。"
    if isinstance(actual, Tensor) and actual.shape != getattr(mismatch.expected, "shape", None):
        return "softmax 只沿最后一维归一化，输出形状应与输入相同（keepdim=True 有帮助）。"
    return "每一行（最后一维）的结果应当是非负数且和为 1：exp(x - max) / sum(exp(x - max))。"


@exercise_check
def check_softmax(student_softmax: Callable[[Tensor], Tensor]) -> CheckResult:
    """Check ``student_softmax(x)`` [..., C] against ``torch.softmax(x, dim=-1)``.

    Contract: ``x`` is a floating tensor [..., C]; return a tensor of the same shape and
    dtype whose last dimension is non-negative and sums to 1. Calling torch's softmax is
    not allowed (the point is to write it).
    """
    return check_function(
        "softmax",
        student_softmax,
        lambda x: torch.softmax(x, dim=-1),
        _softmax_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_softmax_hint,
        forbidden=[
            forbid(
                torch.softmax,
                torch.Tensor.softmax,
                torch.nn.functional.softmax,
                torch.nn.Softmax,
                torch.special.softmax,
                name="torch.softmax",
            ),
            forbid(
                torch.log_softmax,
                torch.Tensor.log_softmax,
                torch.nn.functional.log_softmax,
                name="torch.log_softmax",
            ),
        ],
    )
