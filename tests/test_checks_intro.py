"""Proof that the demonstration exercise's check (softmax) can fail."""

import torch

from course_lib.checks import intro
from tests.checkproof import Proof, Wrong, parametrize_proofs


def stable_softmax(x):
    shifted = x - x.amax(dim=-1, keepdim=True)
    return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)


def naive_softmax(x):
    return x.exp() / x.exp().sum(dim=-1, keepdim=True)


def softmax_over_first_dim(x):
    return torch.softmax(x, dim=0)


def unnormalised(x):
    return (x - x.amax(dim=-1, keepdim=True)).exp()


def float32_result(x):
    return torch.softmax(x.float(), dim=-1)


PROOFS = [
    Proof(
        intro.check_softmax,
        correct=stable_softmax,
        wrong=[
            Wrong(naive_softmax, "NaN"),
            Wrong(softmax_over_first_dim, "最后一维"),
            Wrong(unnormalised, "和为 1"),
            Wrong(float32_result, "数值不同"),
        ],
    )
]

(
    test_check_passes_correct_answer,
    test_check_fails_wrong_answers,
    test_check_reports_stub_as_not_done,
    test_check_reports_crash_as_student_error,
    test_check_raises_in_strict_mode_on_wrong_answer,
) = parametrize_proofs(PROOFS)
