"""The machinery behind every exercise check.

A check runs the student's function and the library's reference on the same inputs
(``Case``), on the CPU and, when there is one, on the GPU, and prints one verdict in
Chinese: passed; failed, with the first failing case (input shapes, expected and actual
values with their dtypes, the element that differs most, a hint); not done yet (the stub
still raises ``NotImplementedError``); an error, with the student's own traceback; or a
timeout. The checker never lets its own traceback reach the student.

What a check enforces, for every call of the student's function:

- **Types before values.** A tensor result must be on the input's device and have the
  reference's dtype (or one the check allows, ``dtypes``), else the verdict names the
  expected and actual dtype/device and how to fix it, before any value is compared. The
  expected value is never cast to the student's dtype.
- **Precision.** Every case with float64 inputs runs again with float32 inputs, compared
  at a float32 tolerance (``atol32``/``rtol32``), so a correct float32 computation passes.
  On float64 inputs a result that is right only to float32 precision (the computation
  went through float32 somewhere) passes with a note saying so, unless the check says why
  it needs float64 (``float64_reason``); then it fails with that reason.
- **Inputs stay as they were.** Each input is compared before and after the call; a
  change fails the check naming the argument (``mutable`` lists the arguments a function
  is meant to change, such as the modules and optimizers of a training step).
- **A time limit.** A call that runs longer than ``time_limit`` seconds (default 10, env
  ``COURSE_CHECK_TIME_LIMIT``) is stopped: "运行超过 N 秒", and the notebook goes on.
- **No delegation.** A call of a ``forbidden`` function (the library's reference, a peer
  library's op) fails the check: "你调用了库里的 …，请自己实现".
- **Robust messages.** Hints run after the student's call, outside its error handling; a
  hint that fails falls back to general advice, never to "internal error". A wrong dtype
  or device gets the dtype/device advice, not a hint about a different mistake.

With ``COURSE_STRICT_CHECKS=1`` (the test suite) or ``COURSE_BOOK_BUILD=1`` (the book
build) a failing, erroring or timed-out check also raises ``ExerciseCheckFailed``, so a
broken reference solution fails CI.
"""

from __future__ import annotations

import inspect
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from torch import Tensor

from course_lib.checks.compare import DtypeRule, Mismatch, compare, dtype_advice, format_pair
from course_lib.checks.guard import (
    Forbidden,
    StudentTimeout,
    argument_names,
    cast,
    changed,
    clone,
    forbid,
    has_float64,
    snapshot,
    time_limit,
    time_limit_seconds,
    watch_calls,
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

_CHECKS_DIR = Path(__file__).resolve().parent
_STRICT_ENVS = ("COURSE_STRICT_CHECKS", "COURSE_BOOK_BUILD")

#: Every check function, by qualified name (filled by ``@exercise_check``).
_REGISTRY: Dict[str, Callable[..., CheckResult]] = {}

Hint = Union[str, Callable[[Mismatch, "Case"], str]]
Comparator = Callable[[Any, Any, Callable[..., Optional[Mismatch]]], Optional[Mismatch]]

_GENERAL_HINT = "对照题目中的公式、形状和 dtype 逐步检查。"


class ExerciseCheckFailed(AssertionError):
    """Raised in strict mode (tests, book build) when a check fails, errors or times out."""


@dataclass
class Case:
    """One input for the student's function and the reference: ``fn(*args, **kwargs)``."""

    name: str
    args: Tuple[Any, ...] = ()
    kwargs: Dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckResult:
    """The verdict of a check. Truthy only when the check passed.

    ``status`` is one of "passed", "failed", "error" (the student's code raised),
    "timeout", "not_done" and "internal" (a bug in the checker). ``notes`` are remarks on
    a passing answer (float32 precision); ``forbidden`` names what the check does not let
    a student call; ``dtypes`` the input dtypes the cases ran with.
    """

    exercise: str
    status: str
    message: str
    case: Optional[str] = None
    notes: List[str] = field(default_factory=list)
    forbidden: List[str] = field(default_factory=list)
    dtypes: List[str] = field(default_factory=list)

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
    """Register a chapter's check function (so the tests can prove it can fail).

    The name is the chapter's public one, ``course_lib.checks.<chapter>.<check>``, also for
    a chapter whose checks live in a package of modules (``checks.detection.boxes``).
    """
    _REGISTRY[check_name(function)] = function
    return function


def check_name(function: Callable[..., Any]) -> str:
    """``course_lib.checks.<chapter>.<name>`` of a check function (its chapter, not its file)."""
    module = ".".join(function.__module__.split(".")[:3])
    return f"{module}.{function.__qualname__}"


def safe_hint(hint: Hint, fallback: str = _GENERAL_HINT) -> Callable[[Mismatch, Case], str]:
    """A hint that never fails: if ``hint`` raises (an odd output), ``fallback`` instead."""

    def run(mismatch: Mismatch, case: Case) -> str:
        try:
            text = hint(mismatch, case) if callable(hint) else hint
        except Exception:
            return fallback
        return text if isinstance(text, str) and text else fallback

    return run


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
        dtypes = {str(p.dtype).replace("torch.", "") for p in value.parameters()}
        return f"{type(value).__name__}(…{', ' + '/'.join(sorted(dtypes)) if dtypes else ''})"
    if isinstance(value, torch.optim.Optimizer):
        return f"{type(value).__name__}(…)"
    if callable(value):
        return getattr(value, "__name__", "function")
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def _student_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without the checker's own frames."""
    frames = []
    for frame in traceback.extract_tb(error.__traceback__):
        try:
            inside = Path(frame.filename).resolve().is_relative_to(_CHECKS_DIR)
        except (OSError, ValueError):
            inside = False
        if not inside:
            frames.append(frame)
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()


def _case_text(case: Case, device: torch.device, dtype_label: str) -> str:
    inputs = [_describe(arg) for arg in case.args]
    inputs += [f"{key}={_describe(value)}" for key, value in case.kwargs.items()]
    where = f"设备 {device.type}" + (f"，{dtype_label} 输入" if dtype_label else "")
    return f"「{case.name}」（{where}）\n   输入：{', '.join(inputs) or '（无）'}"


# ----------------------------------------------------------------------------------------
# Strict mode and demonstrations
# ----------------------------------------------------------------------------------------


def _strict() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes"} for name in _STRICT_ENVS
    )


#: Results collected inside ``expect_failure`` blocks (innermost last).
_EXPECTING: List[List[CheckResult]] = []
_FAILING = {"failed", "error", "timeout", "internal"}


def _emit(result: CheckResult) -> CheckResult:
    print(result.message)
    if _EXPECTING:
        _EXPECTING[-1].append(result)
        return result
    if _strict() and result.status in _FAILING:
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


# ----------------------------------------------------------------------------------------
# Running the student's function
# ----------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    status: str  # "ok" | "not_done" | "error" | "timeout"
    value: Any = None
    error: Optional[BaseException] = None
    called: List[str] = field(default_factory=list)


def _run_student(
    student: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    limit: Optional[float],
    forbidden: Sequence[Forbidden],
) -> _Outcome:
    called: List[str] = []
    try:
        with watch_calls(forbidden) as called, time_limit(limit):
            value = student(*args, **kwargs)
    except StudentTimeout:
        return _Outcome("timeout", called=list(called))
    except NotImplementedError as error:
        return _Outcome("not_done", error=error, called=list(called))
    except Exception as error:  # the student's own error, shown as theirs
        return _Outcome("error", error=error, called=list(called))
    return _Outcome("ok", value=value, called=list(called))


def _devices() -> List[torch.device]:
    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices


def _accepts_dtype(cases: Callable[..., Any]) -> bool:
    try:
        return "dtype" in inspect.signature(cases).parameters
    except (TypeError, ValueError):
        return False


def _case_runs(
    cases: Callable[..., Sequence[Case]], device: torch.device, float32: bool
) -> Iterator[Tuple[str, List[Case]]]:
    """(dtype label, cases) for float64 and then float32 inputs."""
    if _accepts_dtype(cases):
        yield "float64", list(cases(device, dtype=torch.float64))
        if float32:
            yield "float32", list(cases(device, dtype=torch.float32))
        return
    base = list(cases(device))
    yield ("float64" if any(has_float64((c.args, c.kwargs)) for c in base) else ""), base
    if float32:
        derived = [
            Case(c.name, *cast((c.args, c.kwargs), torch.float32))
            for c in base
            if has_float64((c.args, c.kwargs))
        ]
        if derived:
            yield "float32", derived


def _changed_argument(
    student: Callable[..., Any],
    records: Tuple[List[Any], Dict[str, Any]],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
) -> Optional[str]:
    positional, named = records
    names = argument_names(student, len(args))
    for index, (record, value) in enumerate(zip(positional, args)):
        where = changed(record, value)
        if where is not None:
            return f"{names[index]}{where}"
    for key, record in named.items():
        where = changed(record, kwargs[key])
        if where is not None:
            return f"{key}{where}"
    return None


# ----------------------------------------------------------------------------------------
# check_function
# ----------------------------------------------------------------------------------------


@dataclass
class _Settings:
    exercise: str
    tol64: Tuple[float, float]
    tol32: Tuple[float, float]
    hint: Hint
    comparator: Optional[Comparator]
    dtypes: Optional[DtypeRule]
    dtype_hint: str
    float64_reason: str
    error_hint: Optional[Callable[[BaseException, Case], str]]

    def compare(self, expected: Any, actual: Any, tol: Tuple[float, float]) -> Optional[Mismatch]:
        def configured(exp: Any, act: Any, where: str = "输出") -> Optional[Mismatch]:
            return compare(exp, act, *tol, where, float32_tolerance=self.tol32, dtypes=self.dtypes)

        try:
            if self.comparator is not None:
                return self.comparator(expected, actual, configured)
            return configured(expected, actual)
        except Exception as error:  # an output too odd to compare is the student's
            return Mismatch(
                "输出",
                f"无法与参考结果比较（{type(error).__name__}: {error}）",
                expected,
                actual,
                kind="type",
            )


def check_function(
    exercise: str,
    student: Any,
    reference: Callable[..., Any],
    cases: Callable[..., Sequence[Case]],
    *,
    atol: float,
    rtol: float,
    hint: Hint = "",
    comparator: Optional[Comparator] = None,
    devices: Optional[Sequence[torch.device]] = None,
    atol32: Optional[float] = None,
    rtol32: Optional[float] = None,
    float32: bool = True,
    float64_reason: str = "",
    dtypes: Optional[DtypeRule] = None,
    dtype_hint: str = "",
    forbidden: Sequence[Forbidden] = (),
    mutable: Collection[Union[int, str]] = (),
    error_hint: Optional[Callable[[BaseException, Case], str]] = None,
    time_limit: Optional[float] = None,
) -> CheckResult:
    """Compare ``student(*case.args, **case.kwargs)`` with ``reference(...)`` on every case.

    ``cases(device)`` (or ``cases(device, dtype)``) builds the inputs on a device (CPU
    first, then CUDA when present); cases with float64 inputs run again in float32 unless
    ``float32=False``. Outputs must agree within ``atol + rtol * |expected|`` (float64) or
    ``atol32 + rtol32 * |expected|`` (float32; by default at least 1e-5 and 1e-4), or pass
    ``comparator(expected, actual, compare)`` (it returns a ``Mismatch`` or None and gets
    a ``compare(expected, actual, where)`` set to the right tolerance). ``hint`` (text, or
    a function of the mismatch and the case) is printed under a failure; ``dtype_hint``
    under a wrong dtype; ``error_hint(error, case)`` under the student's exception. See
    the module's docstring for ``dtypes``, ``float64_reason``, ``forbidden``, ``mutable``
    and ``time_limit``. Prints the verdict and returns it.
    """
    exact = atol == 0 and rtol == 0
    settings = _Settings(
        exercise=exercise,
        tol64=(atol, rtol),
        tol32=(
            atol if exact else max(atol, 1e-5) if atol32 is None else atol32,
            rtol if exact else max(rtol, 1e-4) if rtol32 is None else rtol32,
        ),
        hint=hint,
        comparator=comparator,
        dtypes=dtypes,
        dtype_hint=dtype_hint,
        float64_reason=float64_reason,
        error_hint=error_hint,
    )
    result = _evaluate(
        settings,
        student,
        reference,
        cases,
        devices or _devices(),
        float32,
        forbidden,
        mutable,
        time_limit_seconds(time_limit),
    )
    result.forbidden = [item.name for item in forbidden]
    return _emit(result)


def _evaluate(
    settings: _Settings,
    student: Any,
    reference: Callable[..., Any],
    cases: Callable[..., Sequence[Case]],
    devices: Sequence[torch.device],
    float32: bool,
    forbidden: Sequence[Forbidden],
    mutable: Collection[Union[int, str]],
    limit: Optional[float],
) -> CheckResult:
    exercise = settings.exercise
    header = f"练习「{exercise}」"
    if not callable(student):
        return CheckResult(
            exercise,
            "error",
            f"❌ {header}：传给检查的应当是你的函数（或类），"
            f"实际传入的是 {type(student).__name__}。",
        )
    total, notes, labels = 0, [], []
    try:
        for device in devices:
            for label, case_list in _case_runs(cases, device, float32):
                if label and label not in labels:
                    labels.append(label)
                for case in case_list:
                    total += 1
                    verdict = _run_case(
                        settings,
                        student,
                        reference,
                        case,
                        device,
                        label,
                        forbidden,
                        mutable,
                        limit,
                        notes,
                    )
                    if verdict is not None:
                        verdict.dtypes = labels
                        return verdict
    except Exception as error:  # a bug in the checker or the reference, not the student's
        return CheckResult(
            exercise,
            "internal",
            f"⚠️ {header}：检查程序本身出错了（{type(error).__name__}: {error}）。"
            "这不是你的错误，请把这条信息报告给课程维护者。",
        )
    devices_used = "、".join(sorted({d.type for d in devices}))
    tolerance = f"atol={settings.tol64[0]:g}, rtol={settings.tol64[1]:g}"
    if "float32" in labels:
        inputs = f"{devices_used}；float64 与 float32 输入"
        tolerance = (
            f"float64 容差 {tolerance}；float32 容差 atol={settings.tol32[0]:g}, "
            f"rtol={settings.tol32[1]:g}"
        )
    else:
        inputs = devices_used
    message = f"✅ {header}通过：{total} 个用例（{inputs}）都与参考实现一致（{tolerance}）。"
    if notes:
        message += "\n" + "\n".join(notes)
    return CheckResult(exercise, "passed", message, notes=notes, dtypes=labels)


def _run_case(
    settings: _Settings,
    student: Callable[..., Any],
    reference: Callable[..., Any],
    case: Case,
    device: torch.device,
    label: str,
    forbidden: Sequence[Forbidden],
    mutable: Collection[Union[int, str]],
    limit: Optional[float],
    notes: List[str],
) -> Optional[CheckResult]:
    """The verdict of one case when it is not a pass (None when it passes)."""
    exercise = settings.exercise
    header = f"练习「{exercise}」"
    ref_args, ref_kwargs = clone((case.args, case.kwargs))
    expected = reference(*ref_args, **ref_kwargs)
    args, kwargs = clone((case.args, case.kwargs))
    records = (
        [None if index in mutable else snapshot(arg) for index, arg in enumerate(args)],
        {key: snapshot(value) for key, value in kwargs.items() if key not in mutable},
    )
    outcome = _run_student(student, args, kwargs, limit, forbidden)
    where = _case_text(case, device, label)
    if outcome.status == "not_done":
        return CheckResult(
            exercise,
            "not_done",
            f"⏳ {header}尚未完成：代码里还是 raise NotImplementedError。"
            "把它换成你的实现，再运行这个检查单元。",
        )
    if outcome.status == "timeout":
        return CheckResult(
            exercise,
            "timeout",
            f"⏱️ {header}：你的代码在用例 {where}\n   运行超过 {limit:g} 秒，已被中止。"
            "常见原因：死循环（while 的条件一直成立、循环变量没有更新），"
            "或者对很大的张量逐个元素做 Python 循环。",
            case.name,
        )
    if outcome.status == "error" and not outcome.called:
        error = outcome.error
        text = (
            f"💥 {header}：你的代码在用例 {where}\n   运行时抛出了 {type(error).__name__}：\n\n"
            f"{_student_traceback(error)}"
        )
        extra = _error_hint(settings, error, case)
        if extra:
            text += f"\n\n   提示：{extra}"
        return CheckResult(exercise, "error", text, case.name)
    if outcome.called:
        name = outcome.called[0]
        owner = "库里的 " if name.startswith("course_lib") else " "
        return CheckResult(
            exercise,
            "failed",
            f"❌ {header}未通过。\n   用例：{where}\n"
            f"   你调用了{owner}{name}，请自己实现：这个练习要你亲手写出它，"
            "现成的函数可以在检查通过之后用来对照。",
            case.name,
        )
    modified = _changed_argument(student, records, args, kwargs)
    if modified is not None:
        return CheckResult(
            exercise,
            "failed",
            f"❌ {header}未通过。\n   用例：{where}\n"
            f"   参数 {modified} 被原地修改了：你的函数改动了调用者传进来的数据。\n"
            f"   提示：{_mutation_hint(modified)}",
            case.name,
        )
    actual = outcome.value
    mismatch = settings.compare(
        expected, actual, settings.tol64 if label != "float32" else settings.tol32
    )
    if mismatch is not None and label == "float64" and mismatch.kind == "value":
        probe = (max(settings.tol32[0], 1e-5), max(settings.tol32[1], 1e-4))
        if settings.compare(expected, actual, probe) is None:  # right to float32 precision
            accepted = settings.compare(expected, actual, settings.tol32) is None
            return _precision_only(
                settings, case, device, label, mismatch, expected, actual, notes, accepted
            )
    if mismatch is None:
        return None
    mismatch.output, mismatch.expected_output = actual, expected
    tol = settings.tol32 if label == "float32" or _low_precision(mismatch) else settings.tol64
    return _failure(settings, case, device, label, mismatch, tol)


def _mutation_hint(modified: str) -> str:
    if any(word in modified for word in ("running_mean", "running_var", "num_batches_tracked")):
        return (
            "在训练模式下运行模型，批归一化会更新它的统计量（running_mean / running_var）："
            "先 model.eval()，用完再恢复原来的模式（model.train(was_training)）。"
        )
    if "训练/评估模式" in modified:
        return (
            "调用 model.eval() 之前记下 was_training = model.training，"
            "用完后 model.train(was_training)。"
        )
    return (
        "x.sub_(...)、x.mul_(...)、x += ...、x[...] = ... 都会直接改写输入；"
        "先 y = x.clone() 再改 y，或者用不带下划线的运算（x - m 而不是 x.sub_(m)）。"
    )


def _low_precision(mismatch: Mismatch) -> bool:
    return any(
        isinstance(value, Tensor) and value.dtype in (torch.float32, torch.float16, torch.bfloat16)
        for value in (mismatch.expected, mismatch.actual)
    )


def _precision_only(
    settings: _Settings,
    case: Case,
    device: torch.device,
    label: str,
    mismatch: Mismatch,
    expected: Any,
    actual: Any,
    notes: List[str],
    accepted: bool,
) -> Optional[CheckResult]:
    """A float64 result right only to float32 precision: a note, or a failure with a reason."""
    error = mismatch.max_abs_error
    size = f"最大绝对误差 {error:.2g}" if error is not None else "误差"
    cause = (
        f"在 float64 用例「{case.name}」上，你的结果只在 float32 的精度内与参考一致（{size}，"
        f"float64 容差 atol={settings.tol64[0]:g}, rtol={settings.tol64[1]:g}）。"
        "多半是计算中途转成了 float32：torch.tensor(...)、torch.zeros(...)、torch.arange(...) "
        "不指定 dtype 时是 float32，.float() 也会降低精度。"
    )
    if settings.float64_reason or not accepted:
        reason = settings.float64_reason or "这个练习的结果要与参考实现完全一致。"
        mismatch.output, mismatch.expected_output = actual, expected
        text = f"{cause}这个练习需要 float64 的精度，因为{reason}"
        return _failure(settings, case, device, label, mismatch, settings.tol64, text)
    if not notes:
        notes.append(f"⚠️ 注意：{cause}结果可以接受，但最好让整个计算保持输入的 dtype。")
    return None


def _error_hint(settings: _Settings, error: BaseException, case: Case) -> str:
    if settings.error_hint is None:
        return ""
    try:
        text = settings.error_hint(error, case)
    except Exception:
        return ""
    return text if isinstance(text, str) else ""


def _hint_text(settings: _Settings, mismatch: Mismatch, case: Case) -> str:
    if mismatch.kind == "dtype":
        advice = dtype_advice(mismatch.expected.dtype, mismatch.actual.dtype)
        return f"{advice}{settings.dtype_hint}"
    if mismatch.kind == "device":
        return (
            f"输入在 {mismatch.expected.device.type} 上：新建张量时加上 device=x.device"
            "（或者用 torch.zeros_like(x)、x.new_zeros(...)），不要用 .cpu() / .numpy() 再转回来。"
        )
    return safe_hint(settings.hint)(mismatch, case)


def _failure(
    settings: _Settings,
    case: Case,
    device: torch.device,
    label: str,
    mismatch: Mismatch,
    tol: Tuple[float, float],
    hint_text: Optional[str] = None,
) -> CheckResult:
    lines = [
        f"❌ 练习「{settings.exercise}」未通过。",
        f"   第一个失败的用例：{_case_text(case, device, label)}",
        f"   {mismatch.where}：{mismatch.reason}",
    ]
    if mismatch.expected is not None or mismatch.actual is not None:
        try:
            shown_expected, shown_actual = format_pair(mismatch.expected, mismatch.actual)
        except Exception:
            shown_expected, shown_actual = repr(mismatch.expected)[:120], "（无法显示）"
        lines.append(f"   期望：{shown_expected}")
        lines.append(f"   实际：{shown_actual}")
    if mismatch.detail:
        lines.append(f"   {mismatch.detail}")
    if mismatch.max_abs_error is not None:
        lines.append(
            f"   最大绝对误差 {mismatch.max_abs_error:.3g}，最大相对误差 "
            f"{mismatch.max_rel_error:.3g}（容差 atol={tol[0]:g}, rtol={tol[1]:g}）"
        )
    text = _hint_text(settings, mismatch, case) if hint_text is None else hint_text
    if text:
        lines.append(f"   提示：{text}")
    return CheckResult(settings.exercise, "failed", "\n".join(lines), case.name)


def randn(
    *shape: int,
    seed: int,
    device: Union[str, torch.device] = "cpu",
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Seeded standard-normal tensor, identical on every device (drawn on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype).to(device)
