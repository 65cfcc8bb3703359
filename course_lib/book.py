"""What the rendered book needs from a run: numbers glued into the prose, and checked claims.

The book never types a number that a run produces. A cell computes it and glues it::

    from course_lib.book import claim, glue

    glue("attention_accuracy", accuracy)          # prose: {glue:text}`attention_accuracy:.1%`

and a hidden cell (tag ``remove-cell``) backs each sentence about the outcome::

    claim("attention beats the baseline on long inputs", with_attention > without + 0.2,
          f"with attention {with_attention:.3f}, without {without:.3f}")

A claim is strict only where the book is built: the book's Sphinx extension sets
``COURSE_BOOK_BUILD=1`` for the kernels it starts, so in a full-mode build a false claim
raises :class:`ClaimError` (the build stops and names the claim). Everywhere else (a
student's notebook, Colab) a false claim prints a warning and the notebook goes on: a
student who changes a knob or trains for fewer steps must never get a traceback from it.
In fast mode (``COURSE_FAST=1``: tiny data, few steps) claims about results are not checked.

Works without Jupyter: ``glue`` needs myst-nb only inside the book build and is a no-op
elsewhere, so Colab and plain scripts need nothing extra.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any

from course_lib.utils import fast_mode

__all__ = ["ClaimError", "claim", "glue", "in_book_build", "strict_claims"]

BOOK_BUILD_ENV = "COURSE_BOOK_BUILD"


class ClaimError(AssertionError):
    """A sentence of the book about a run's outcome does not hold for this run."""


def in_book_build() -> bool:
    """True while the book is being built (set by ``book/_ext/course_book.py`` for its kernels)."""
    return os.environ.get(BOOK_BUILD_ENV, "").strip().lower() in {"1", "true", "yes"}


def strict_claims() -> bool:
    """True when a false claim must fail the run: a full-mode book build."""
    return in_book_build() and not fast_mode()


def _plain(value: Any) -> Any:
    """Python scalars for tensors/NumPy scalars, so ``{glue:text}`name:.1%``` can format them."""
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 0) == 0:
        value = item()
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def glue(name: str, value: Any) -> Any:
    """Make ``value`` available to the prose as ``{glue:text}`name``` (with a format spec,
    e.g. ``{glue:text}`name:.1%```); show nothing in the notebook; return ``value``.

    Tensors and NumPy scalars are stored as Python numbers so that format specs work.
    Outside the book build (Jupyter, Colab, scripts) nothing is recorded.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be a Python identifier such as 'lm_bpc', got {name!r}")
    plain = _plain(value)
    if isinstance(plain, float) and not math.isfinite(plain):
        raise ValueError(f"value glued as {name!r} must be finite, got {plain}")
    if in_book_build():
        from myst_nb import glue as myst_glue

        myst_glue(name, plain, display=False)
    return value


def claim(statement: str, holds: Any, measured: str = "") -> bool:
    """Check a sentence of the book about this run's outcome; return whether it holds.

    ``statement`` is the sentence (any language); ``holds`` the test (a bool or a one-element
    tensor); ``measured`` what was measured, shown when the claim fails. In a full-mode book
    build a false claim raises :class:`ClaimError`; in a student's run it prints a warning and
    returns False; in fast mode it is not checked (returns True).
    """
    if not isinstance(statement, str) or not statement.strip():
        raise ValueError(f"statement must be a non-empty sentence, got {statement!r}")
    if fast_mode():
        return True
    ok = bool(holds)
    if ok:
        return True
    detail = f" (measured: {measured})" if measured else ""
    if strict_claims():
        raise ClaimError(f"claim made in the book does not hold: {statement!r}{detail}")
    print(
        f"⚠ 书中的说法在你这次运行中不成立：{statement}{detail}\n"
        "  如果你改了超参数、步数或数据，这是正常的：正文描述的是默认设置下的结果。"
    )
    return False
