"""Exercise checks, one module per chapter (``course_lib.checks.rnn``, ...).

Each check compares a student's function with the library's reference and prints a
verdict; see ``course_lib.checks.core`` for the machinery. Importing this package
imports every chapter's checks, so ``course_lib.checks.<chapter>`` always works.
"""

from __future__ import annotations

import importlib
import pkgutil

from course_lib.checks.core import (
    Case,
    CheckResult,
    ExerciseCheckFailed,
    Mismatch,
    check_function,
    compare,
    exercise_check,
    expect_failure,
    randn,
    registered_checks,
)

__all__ = [
    "Case",
    "CheckResult",
    "ExerciseCheckFailed",
    "Mismatch",
    "check_function",
    "compare",
    "exercise_check",
    "expect_failure",
    "randn",
    "registered_checks",
]

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "core":
        importlib.import_module(f"{__name__}.{_module.name}")
