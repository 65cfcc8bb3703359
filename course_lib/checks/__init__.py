"""Exercise checks, one module per chapter (``course_lib.checks.rnn``, ...).

Each check compares a student's function with the library's reference and prints a
verdict; see ``course_lib.checks.core`` for the machinery (``compare`` for types and values,
``guard`` for the time limit, forbidden calls and inputs changed in place). Importing this
package imports every chapter's checks, so ``course_lib.checks.<chapter>`` always works.
"""

from __future__ import annotations

import importlib
import pkgutil

from course_lib.checks.core import (
    Case,
    CheckResult,
    ExerciseCheckFailed,
    Forbidden,
    Mismatch,
    check_function,
    compare,
    exercise_check,
    expect_failure,
    forbid,
    randn,
    registered_checks,
    safe_hint,
)

__all__ = [
    "Case",
    "CheckResult",
    "ExerciseCheckFailed",
    "Forbidden",
    "Mismatch",
    "check_function",
    "compare",
    "exercise_check",
    "expect_failure",
    "forbid",
    "randn",
    "registered_checks",
    "safe_hint",
]

_FRAMEWORK = {"core", "compare", "guard", "hints"}

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in _FRAMEWORK:
        importlib.import_module(f"{__name__}.{_module.name}")
