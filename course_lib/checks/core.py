"""The machinery behind every exercise check.

A check runs the student's function and the library's reference on the same inputs
(``Case``), on the CPU and, when there is one, on the GPU, and prints one verdict in
Chinese: passed; failed, with the first failing case (input shapes, expected and actual
values trimmed, largest absolute and relative error, a hint); not done yet (the stub
still raises ``NotImplementedError``); or an error, with the student's own traceback.
The checker never lets its own traceback reach the student.

With ``COURSE_STRICT_CHECKS=1`` (set by the test suite) a failing or erroring check
also raises ``ExerciseCheckFailed``, so a broken reference solution fails CI.
"""

from __future__ import annotations

import math
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

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

_CHECKS_DIR = Path(__file__).resolve().parent
_STRICT_ENV = "COURSE_STRICT_CHECKS"

#: Every check function, by qualified name (filled by ``@exercise_check``).
_REGISTRY: Dict[str, Callable[..., CheckResult]] = {}


class ExerciseCheckFailed(AssertionError):
    """Raised in strict mode (the test suite) when a check fails or errors."""


@dataclass
class Case:
    """One input for the student's function and the reference: ``fn(*args, **kwargs)``."""

    name: str
    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Mismatch:
    """Where and how an actual output differs from the expected one."""

    where: str
    reason: str
    expected: Any = None
    actual: Any = None
    max_abs_error: Optional[float] = None
    max_rel_error: Optional[float] = None


@dataclass
class CheckResult:
    """The verdict of a check. Truthy only when the check passed."""

    exercise: str
    status: str  # "passed" | "failed" | "error" | "not_done"
    message: str
    case: Optional[str] = None

    def __bool__(self) -> bool:
        return self.status == "passed"

    def __repr__(self) -> str:
        return f"CheckResult(exercise={self.exercise!r}, status={self.status!r})"

    def _ipython_display_(self) -> None:
        """The verdict is already printed; show nothing more at the end of a cell."""


def registered_checks() -> Dict[str, Callable[..., CheckResult]]:
    """All check functions defined with ``@exercise_check``, by qualified name."""
    import course_lib.checks  # noqa: F401  (imports every chapter's checks)

    return dict(_REGISTRY)


def exercise_check(function: Callable[..., CheckResult]) -> Callable[..., CheckResult]:
    """Register a chapter's check function (so the tests can prove it can fail)."""
    _REGISTRY[f"{function.__module__}.{function.__qualname__}"] = function
    return function


# ----------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    """A short description of an input: shapes and dtypes, not values."""
    if isinstance(value, Tensor):
        return f"Tensor{list(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_describe(item) for item in value[:4])
        more = ", …" if len(value) > 4 else ""
        return f"{type(value).__name__}[{inner}{more}]"
    if isinstance(value, dict):
        inner = ", ".join(f"{key}: {_describe(item)}" for key, item in list(value.items())[:6])
        return "{" + inner + "}"
    if isinstance(value, torch.nn.Module):
        return f"{type(value).__name__}(…)"
    if callable(value):
        return getattr(value, "__name__", "function")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _trim(value: Any, limit: int = 6) -> str:
    """Values, trimmed to a few entries so a verdict fits on a screen."""
    if isinstance(value, Tensor):
        flat = value.detach().reshape(-1).cpu()
        if flat.is_floating_point():
            shown = ", ".join(f"{float(v):.5g}" for v in flat[:limit])
        else:
            shown = ", ".join(str(v.item()) for v in flat[:limit])
        more = f", … ({flat.numel()} values)" if flat.numel() > limit else ""
        return f"shape {list(value.shape)}: [{shown}{more}]"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "…"


def _student_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without the checker's own frames."""
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not Path(frame.filename).resolve().is_relative_to(_CHECKS_DIR)
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()


# ----------------------------------------------------------------------------------------
# Comparison
# ----------------------------------------------------------------------------------------


def _finite_max(values: Tensor) -> float:
    finite = values[torch.isfinite(values)]
    return float(finite.max()) if finite.numel() else math.inf


def compare(
    expected: Any, actual: Any, atol: float, rtol: float, where: str = "输出"
) -> Optional[Mismatch]:
    """First difference between ``expected`` and ``actual`` (nested tensors, numbers,
    tuples, lists, dicts), or None when they agree within ``atol + rtol * |expected|``."""
    if isinstance(expected, Tensor):
        if not isinstance(actual, Tensor):
            return Mismatch(
                where, f"应返回 Tensor，实际返回了 {type(actual).__name__}", expected, actual
            )
        if tuple(actual.shape) != tuple(expected.shape):
            return Mismatch(
                where,
                f"形状不对：期望 {list(expected.shape)}，实际 {list(actual.shape)}",
                expected,
                actual,
            )
        if expected.dtype == torch.bool or not expected.is_floating_point():
            if actual.is_floating_point() and not expected.is_floating_point():
                return Mismatch(
                    where,
                    f"类型不对：期望整数/布尔张量（{expected.dtype}），实际是 {actual.dtype}",
                    expected,
                    actual,
                )
            equal = torch.equal(expected.cpu().to(actual.dtype), actual.detach().cpu())
            if equal:
                return None
            wrong = (expected.cpu().to(actual.dtype) != actual.detach().cpu()).sum().item()
            return Mismatch(where, f"有 {wrong} 个元素不相等", expected, actual)
        if not actual.is_floating_point():
            return Mismatch(
                where, f"类型不对：期望浮点张量，实际是 {actual.dtype}", expected, actual
            )
        exp = expected.detach().cpu().double()
        act = actual.detach().cpu().double()
        nan_mismatch = torch.isnan(exp) != torch.isnan(act)
        if nan_mismatch.any():
            return Mismatch(
                where,
                f"NaN 的位置不对（{int(nan_mismatch.sum())} 处）",
                expected,
                actual,
            )
        finite = ~torch.isnan(exp)
        error = (exp - act).abs()[finite]
        if error.numel() == 0:
            return None
        inf_mismatch = (torch.isinf(exp) | torch.isinf(act))[finite] & (exp[finite] != act[finite])
        allowed = atol + rtol * exp[finite].abs()
        bad = (error > allowed) | inf_mismatch
        if not bad.any():
            return None
        rel = error / exp[finite].abs().clamp_min(1e-12)
        max_abs, max_rel = _finite_max(error), _finite_max(rel)
        return Mismatch(
            where,
            f"数值不同（{int(bad.sum())}/{bad.numel()} 个元素超出容差）",
            expected,
            actual,
            max_abs,
            max_rel,
        )
    if isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)):
            return Mismatch(
                where,
                f"应返回 {type(expected).__name__}（{len(expected)} 项），"
                f"实际返回了 {type(actual).__name__}",
                expected,
                actual,
            )
        if len(actual) != len(expected):
            return Mismatch(
                where, f"应返回 {len(expected)} 项，实际返回了 {len(actual)} 项", expected, actual
            )
        for index, (exp_item, act_item) in enumerate(zip(expected, actual)):
            mismatch = compare(exp_item, act_item, atol, rtol, f"{where}[{index}]")
            if mismatch is not None:
                return mismatch
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return Mismatch(
                where, f"应返回 dict，实际返回了 {type(actual).__name__}", expected, actual
            )
        missing = [key for key in expected if key not in actual]
        if missing:
            return Mismatch(where, f"缺少键 {missing}", expected, actual)
        for key in expected:
            mismatch = compare(expected[key], actual[key], atol, rtol, f"{where}[{key!r}]")
            if mismatch is not None:
                return mismatch
        return None
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if actual != expected or type(actual) is not type(expected):
            return Mismatch(where, f"期望 {expected!r}，实际 {actual!r}", expected, actual)
        return None
    if isinstance(expected, (int, float)):
        if isinstance(actual, Tensor) and actual.numel() == 1:
            actual = actual.item()
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return Mismatch(
                where, f"应返回数字，实际返回了 {type(actual).__name__}", expected, actual
            )
        error = abs(float(actual) - float(expected))
        if math.isnan(float(expected)) and math.isnan(float(actual)):
            return None
        if error <= atol + rtol * abs(float(expected)):
            return None
        return Mismatch(
            where,
            f"数值不同：期望 {expected:.6g}，实际 {actual:.6g}",
            expected,
            actual,
            error,
            error / max(abs(float(expected)), 1e-12),
        )
    # Anything else: plain equality.
    if actual != expected:
        return Mismatch(where, f"期望 {expected!r}，实际 {actual!r}", expected, actual)
    return None


# ----------------------------------------------------------------------------------------
# Running a check
# ----------------------------------------------------------------------------------------


def _devices() -> List[torch.device]:
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def _clone(value: Any) -> Any:
    """Deep copy of tensors in nested containers, so in-place edits cannot leak."""
    if isinstance(value, Tensor):
        return value.detach().clone().requires_grad_(value.requires_grad)
    if isinstance(value, tuple):
        return tuple(_clone(item) for item in value)
    if isinstance(value, list):
        return [_clone(item) for item in value]
    if isinstance(value, dict):
        return {key: _clone(item) for key, item in value.items()}
    return value


def _strict() -> bool:
    return os.environ.get(_STRICT_ENV, "").strip() in {"1", "true", "yes"}


#: Results collected inside ``expect_failure`` blocks (innermost last).
_EXPECTING: List[List[CheckResult]] = []


def _emit(result: CheckResult) -> CheckResult:
    print(result.message)
    if _EXPECTING:
        _EXPECTING[-1].append(result)
        return result
    if _strict() and result.status in {"failed", "error", "internal"}:
        raise ExerciseCheckFailed(result.message)
    return result


@contextmanager
def expect_failure() -> Iterator[None]:
    """Run checks that are meant to fail (to show what a failure looks like).

    Inside the block failures do not raise; in strict mode (the test suite) the block
    itself raises if any check in it passed, so a demonstration cannot silently stop
    demonstrating.
    """
    _EXPECTING.append([])
    try:
        yield
    finally:
        results = _EXPECTING.pop()
    if _strict():
        if not results:
            raise ExerciseCheckFailed("expect_failure: no check ran inside the block")
        passed = [r.exercise for r in results if r.status in {"passed", "internal"}]
        if passed:
            raise ExerciseCheckFailed(f"expect_failure: these checks did not fail: {passed}")


def _case_text(case: Case, device: torch.device) -> str:
    inputs = [_describe(arg) for arg in case.args]
    inputs += [f"{key}={_describe(value)}" for key, value in case.kwargs.items()]
    return f"「{case.name}」（设备 {device.type}）\n   输入：{', '.join(inputs) or '（无）'}"


def check_function(
    exercise: str,
    student: Any,
    reference: Callable[..., Any],
    cases: Callable[[torch.device], Sequence[Case]],
    *,
    atol: float,
    rtol: float,
    hint: Union[str, Callable[[Mismatch, Case], str]] = "",
    comparator: Optional[Callable[[Any, Any], Optional[Mismatch]]] = None,
    devices: Optional[Sequence[torch.device]] = None,
) -> CheckResult:
    """Compare ``student(*case.args)`` with ``reference(*case.args)`` on every case.

    ``cases(device)`` builds the inputs on a device (CPU first, then CUDA when present).
    Outputs must agree within ``atol + rtol * |expected|`` (or pass ``comparator``,
    which returns a ``Mismatch`` or None). ``hint`` (text, or a function of the mismatch
    and the case) is printed under a failure. Prints the verdict and returns it.
    """
    header = f"练习「{exercise}」"
    if not callable(student):
        return _emit(
            CheckResult(
                exercise,
                "error",
                f"❌ {header}：传给检查的应当是你的函数（或类），"
                f"实际传入的是 {type(student).__name__}。",
            )
        )
    total = 0
    try:
        for device in devices or _devices():
            for case in cases(device):
                total += 1
                expected = reference(*_clone(case.args), **_clone(case.kwargs))
                try:
                    actual = student(*_clone(case.args), **_clone(case.kwargs))
                except NotImplementedError:
                    return _emit(
                        CheckResult(
                            exercise,
                            "not_done",
                            f"⏳ {header}尚未完成：代码里还是 raise NotImplementedError。"
                            "把它换成你的实现，再运行这个检查单元。",
                        )
                    )
                except Exception as error:  # the student's own error, shown as theirs
                    return _emit(
                        CheckResult(
                            exercise,
                            "error",
                            f"💥 {header}：你的代码在用例 {_case_text(case, device)}\n"
                            f"   运行时抛出了 {type(error).__name__}：\n\n"
                            f"{_student_traceback(error)}",
                            case.name,
                        )
                    )
                mismatch = (
                    comparator(expected, actual)
                    if comparator is not None
                    else compare(expected, actual, atol, rtol)
                )
                if mismatch is not None:
                    return _emit(_failure(exercise, case, device, mismatch, atol, rtol, hint))
    except ExerciseCheckFailed:
        raise
    except Exception as error:  # a bug in the checker or the reference, not the student's
        return _emit(
            CheckResult(
                exercise,
                "internal",
                f"⚠️ {header}：检查程序本身出错了（{type(error).__name__}: {error}）。"
                "这不是你的错误，请把这条信息报告给课程维护者。",
            )
        )
    devices_used = ", ".join(sorted({d.type for d in (devices or _devices())}))
    return _emit(
        CheckResult(
            exercise,
            "passed",
            f"✅ {header}通过：{total} 个用例（{devices_used}）都与参考实现一致"
            f"（atol={atol:g}, rtol={rtol:g}）。",
        )
    )


def _failure(
    exercise: str,
    case: Case,
    device: torch.device,
    mismatch: Mismatch,
    atol: float,
    rtol: float,
    hint: Union[str, Callable[[Mismatch, Case], str]],
) -> CheckResult:
    lines = [
        f"❌ 练习「{exercise}」未通过。",
        f"   第一个失败的用例：{_case_text(case, device)}",
        f"   {mismatch.where}：{mismatch.reason}",
    ]
    if mismatch.expected is not None or mismatch.actual is not None:
        lines.append(f"   期望：{_trim(mismatch.expected)}")
        lines.append(f"   实际：{_trim(mismatch.actual)}")
    if mismatch.max_abs_error is not None:
        lines.append(
            f"   最大绝对误差 {mismatch.max_abs_error:.3g}，最大相对误差 "
            f"{mismatch.max_rel_error:.3g}（容差 atol={atol:g}, rtol={rtol:g}）"
        )
    text = hint(mismatch, case) if callable(hint) else hint
    if text:
        lines.append(f"   提示：{text}")
    return CheckResult(exercise, "failed", "\n".join(lines), case.name)


def randn(
    *shape: int,
    seed: int,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Seeded standard-normal tensor, identical on every device (drawn on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype).to(device)
