"""Naming a student's mistake by reproducing it.

A check lists known wrong versions of the exercise (``Mistakes``: a function and the hint
for it). When the student's output fails, ``diagnose`` runs each wrong version on the
failing case and returns the hint of the first one whose output equals the student's. The
comparison follows the dtype: float32 outputs are matched at float32 precision.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Dict, Tuple

import torch
from torch import Tensor

from course_lib.checks.compare import Mismatch
from course_lib.checks.guard import clone

__all__ = ["Mistakes", "diagnose", "same"]

#: A known mistake: (a wrong version of the student's function, the hint that names it).
Mistakes = Dict[str, Tuple[Callable[..., Any], str]]

_LOW = (torch.float32, torch.float16, torch.bfloat16)


def same(expected: Any, actual: Any) -> bool:
    """Whether two outputs agree (nested), at the precision of the lower-precision side."""
    if isinstance(expected, Tensor) and isinstance(actual, Tensor):
        if expected.shape != actual.shape:
            return False
        if not expected.is_floating_point() or not actual.is_floating_point():
            if expected.is_floating_point() != actual.is_floating_point():
                return False
            return torch.equal(expected.detach().cpu().long(), actual.detach().cpu().long())
        low = expected.dtype in _LOW or actual.dtype in _LOW
        return torch.allclose(
            expected.detach().cpu().double(),
            actual.detach().cpu().double(),
            atol=1e-5 if low else 1e-9,
            rtol=1e-4 if low else 1e-7,
            equal_nan=True,
        )
    if isinstance(expected, (tuple, list)) and isinstance(actual, (tuple, list)):
        return len(expected) == len(actual) and all(map(same, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            same(expected[k], actual[k]) for k in expected
        )
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float, Tensor)):
        if isinstance(actual, Tensor):
            if actual.numel() != 1:
                return False
            actual = actual.item()
        return math.isclose(float(expected), float(actual), rel_tol=1e-6, abs_tol=1e-9)
    return False


def _part(output: Any, where: str) -> Any:
    """The part of ``output`` that ``where`` (``输出[1]['key']``...) names."""
    for index in re.findall(r"\[([^\]]+)\]", where):
        if index.isdigit() and isinstance(output, (tuple, list)) and int(index) < len(output):
            output = output[int(index)]
        elif isinstance(output, dict):
            key = index.strip("'\"")
            if key not in output:
                raise KeyError(key)
            output = output[key]
        else:
            raise KeyError(index)
    return output


def diagnose(mistakes: Mistakes, default: str) -> Callable[[Mismatch, Any], str]:
    """A hint function: the hint of the first known mistake that reproduces the output.

    The whole output is compared when the mismatch carries it; otherwise (or when nothing
    matches the whole output) the failing part alone.
    """

    def hint(mismatch: Mismatch, case: Any) -> str:
        outputs = []
        for wrong, text in mistakes.values():
            try:
                args, kwargs = clone((case.args, case.kwargs))
                output = wrong(*args, **kwargs)
            except Exception:  # a mistake that cannot run on this case is not the one
                continue
            if mismatch.output is not None and same(output, mismatch.output):
                return text
            outputs.append((output, text))
        for output, text in outputs:
            try:
                if same(_part(output, mismatch.where), mismatch.actual):
                    return text
            except (KeyError, IndexError, TypeError):
                continue
        return default

    return hint
