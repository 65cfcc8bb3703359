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
    shifted = (x - x.amax(dim=0, keepdim=True)).exp()
    return shifted / shifted.sum(dim=0, keepdim=True)


def unnormalised(x):
    return (x - x.amax(dim=-1, keepdim=True)).exp()


def float32_result(x):
    return stable_softmax(x.float())


def library_softmax(x):
    return torch.softmax(x, dim=-1)


PROOFS = [
    Proof(
        intro.check_softmax,
        correct=stable_softmax,
        wrong=[
            Wrong(naive_softmax, "NaN"),
            Wrong(softmax_over_first_dim, "最后一维"),
            Wrong(unnormalised, "和为 1"),
            Wrong(float32_result, "期望 dtype float64，实际是 float32"),
        ],
        delegate=library_softmax,
    )
]

globals().update(parametrize_proofs(PROOFS))
