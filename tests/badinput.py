"""Shared machinery of the bad-input tests: one systematic probe per library module.

Each ``tests/test_bad_input_<module>.py`` builds a list of ``Bad`` cases (a call with one
wrong argument, and the name of that argument) with the mutation helpers below, and
``parametrize_bad(CASES)`` turns it into one test per case that asserts a clear error:
``TypeError`` or ``ValueError`` (the validation module's rule) whose message names the
argument. ``python -m tests.badinput`` runs every case and counts, per module, how many
get a clear error, an obscure one (another exception, or an unnamed argument), return
silently, or hang.

The mutation helpers make the probe systematic: every tensor argument is tried with the
wrong type, the wrong dtype, wrong shapes and (where the function reads values) non-finite
or out-of-range values; every size argument with a float, a string, a value below its
minimum and an absurd value; every rate with NaN, infinity and values outside its range.
"""

from __future__ import annotations

import importlib
import math
import signal
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple, Type, Union

import pytest
import torch
import torch._dynamo

torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the optimizers' lazy imports, likewise

ErrorTypes = Union[Type[BaseException], Tuple[Type[BaseException], ...]]
CLEAR = (TypeError, ValueError)
HANG_SECONDS = 10

#: A size large enough to be absurd for anything the course builds (memory or time).
ABSURD = 10**12


@dataclass
class Bad:
    """One wrong call: ``call()`` must raise ``error`` with ``arg`` in the message."""

    id: str
    call: Callable[[], Any]
    arg: str
    error: ErrorTypes = CLEAR


class _Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Timeout


def outcome(case: Bad, seconds: int = HANG_SECONDS) -> Tuple[str, str]:
    """``("clear" | "obscure" | "silent" | "hang", detail)`` for one case."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        case.call()
    except _Timeout:
        return "hang", f"no answer within {seconds} s"
    except case.error as error:
        message = str(error)
        if case.arg in message:
            return "clear", message
        return "obscure", f"{type(error).__name__} not naming {case.arg!r}: {message}"
    except Exception as error:
        return "obscure", f"{type(error).__name__}: {str(error)[:200]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return "silent", "returned without an error"


def parametrize_bad(cases: Sequence[Bad]) -> Callable[[Callable[..., Any]], Any]:
    """``@parametrize_bad(CASES)`` on ``def test_bad_input(case)``."""
    ids = [case.id for case in cases]
    duplicates = {name for name in ids if ids.count(name) > 1}
    assert not duplicates, f"case ids must be unique: {sorted(duplicates)}"
    assert cases, "a bad-input module must define at least one case"
    return pytest.mark.parametrize("case", cases, ids=ids)


def assert_clear(case: Bad) -> None:
    kind, detail = outcome(case)
    assert kind == "clear", f"{case.id}: {kind}: {detail}"


# ----------------------------------------------------------------------------------------
# Mutations. Each helper takes ``call``, a function of the one argument under test, and
# returns the cases for a family of wrong values of that argument.
# ----------------------------------------------------------------------------------------


def _cases(prefix: str, arg: str, call: Callable[[Any], Any], values: Iterable[Tuple]) -> List[Bad]:
    out = []
    for item in values:
        label, value = item[0], item[1]
        error = item[2] if len(item) > 2 else CLEAR
        out.append(Bad(f"{prefix}: {arg} {label}", lambda value=value: call(value), arg, error))
    return out


def float_tensor(
    prefix: str,
    arg: str,
    call: Callable[[Any], Any],
    good: torch.Tensor,
    *,
    shapes: Sequence[Tuple[int, ...]] = (),
    double: bool = True,
    nonfinite: bool = False,
    integer: bool = True,
) -> List[Bad]:
    """Wrong type, integer dtype, float64 against float32 parameters, wrong shapes, NaN/inf."""
    values: List[Tuple] = [("as a list", good.tolist()), ("as a string", "x")]
    if integer:
        values.append(("with an integer dtype", good.round().long()))
    if double:
        values.append(("in float64", good.double()))
    values += [(f"of shape {list(shape)}", torch.randn(shape)) for shape in shapes]
    if nonfinite and good.numel():
        for bad in (math.nan, math.inf):
            broken = good.clone()
            broken.view(-1)[0] = bad
            values.append((f"holding {bad}", broken))
    return _cases(prefix, arg, call, values)


def token_tensor(
    prefix: str,
    arg: str,
    call: Callable[[Any], Any],
    good: torch.Tensor,
    vocab_size: int,
    *,
    shapes: Sequence[Tuple[int, ...]] = (),
) -> List[Bad]:
    """Token ids: wrong type, float or bool dtype, ids outside [0, vocab_size), wrong shapes."""
    too_big, negative = good.clone(), good.clone()
    too_big.view(-1)[0] = vocab_size
    negative.view(-1)[0] = -1
    values: List[Tuple] = [
        ("as a list", good.tolist()),
        ("as floats", good.float()),
        ("as bools", good > 0),
        (f"holding id {vocab_size} (= vocab size)", too_big),
        ("holding id -1", negative),
    ]
    values += [(f"of shape {list(shape)}", torch.randint(0, vocab_size, shape)) for shape in shapes]
    return _cases(prefix, arg, call, values)


def int_arg(
    prefix: str,
    arg: str,
    call: Callable[[Any], Any],
    minimum: int = 1,
    *,
    absurd: bool = True,
) -> List[Bad]:
    """An integer size: a float, a string, a bool, below the minimum, absurdly large."""
    values: List[Tuple] = [
        ("= 2.5", 2.5),
        ("= '3'", "3"),
        ("= True", True),
        (f"= {minimum - 1} (below the minimum {minimum})", minimum - 1),
    ]
    if absurd:
        values.append((f"= {ABSURD} (absurd)", ABSURD))
    return _cases(prefix, arg, call, values)


def float_arg(
    prefix: str,
    arg: str,
    call: Callable[[Any], Any],
    outside: Sequence[float] = (),
) -> List[Bad]:
    """A real number: a string, NaN, infinity and the given out-of-range values."""
    values: List[Tuple] = [("= 'x'", "x"), ("= nan", math.nan), ("= inf", math.inf)]
    values += [(f"= {value}", value) for value in outside]
    return _cases(prefix, arg, call, values)


def choice_arg(prefix: str, arg: str, call: Callable[[Any], Any]) -> List[Bad]:
    """A string option: an unknown name and a non-string."""
    return _cases(prefix, arg, call, [("= 'bogus'", "bogus"), ("= 3", 3)])


def values(prefix: str, arg: str, call: Callable[[Any], Any], *items: Tuple) -> List[Bad]:
    """Hand-picked wrong values: ``(label, value)`` or ``(label, value, error)``."""
    return _cases(prefix, arg, call, items)


# ----------------------------------------------------------------------------------------
# The probe: ``python -m tests.badinput`` counts outcomes per module.
# ----------------------------------------------------------------------------------------

MODULES = (
    "rnn", "attention", "transformer", "data", "train", "plotting", "utils", "batching",
    "decoding",
)  # fmt: skip


def count(cases: Sequence[Bad]) -> Dict[str, int]:
    totals = {"tried": len(cases), "clear": 0, "obscure": 0, "silent": 0, "hang": 0}
    for case in cases:
        kind, detail = outcome(case)
        totals[kind] += 1
        if kind != "clear" and "-v" in sys.argv:
            print(f"  {kind:7} {case.id}: {detail}")
    return totals


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    print("| module | tried | clear | obscure | silent | hang |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in MODULES:
        try:
            module = importlib.import_module(f"tests.test_bad_input_{name}")
        except ModuleNotFoundError:
            continue
        totals = count(module.CASES)
        print(
            f"| {name} | {totals['tried']} | {totals['clear']} | {totals['obscure']} | "
            f"{totals['silent']} | {totals['hang']} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
