"""Shared machinery proving that every exercise check passes right answers and fails wrong ones.

Each ``tests/test_checks_<topic>.py`` defines ``PROOFS = [Proof(...), ...]`` and calls
``globals().update(parametrize_proofs(PROOFS))`` to get the standard tests. Besides the
hand-written wrong answers of a proof, every check is run against adversarial answers
derived automatically from the proof's correct answer:

========================  ===============================================================
class                     the answer, and the verdict it must get
========================  ===============================================================
float64 and float32       the correct answer; passes, and the float32 inputs really ran
computed in float32       casts float64 inputs to float32, returns the input's dtype;
                          passes with a precision note (or fails when the check needs
                          float64, ``float64_required``)
wrong dtype               the correct result in another dtype (float64 <-> float32,
                          bool -> int64, int64 -> int32); fails naming both dtypes, with
                          the dtype advice (not a hint about another mistake)
in-place mutation         the correct result, but an input changed in place afterwards;
                          fails naming that argument
delegation                ``Proof.delegate`` (calls the library); fails "你调用了"
endless loop              ``while True`` over torch ops; "运行超过 N 秒" within the limit
crash                     raises inside the student's code; the student's error, with the
                          student's traceback only
odd outputs               None, NaN/garbage of the right shape, a wrong shape; a clean
                          failure (a hint that cannot cope falls back, never "internal")
stub                      raises NotImplementedError; "not done yet"
strict mode               a wrong answer raises ``ExerciseCheckFailed``
========================  ===============================================================

A class that does not apply to a check (no tensor in the output, no tensor input to
change) is skipped with the reason; ``python -m tests.checkproof`` prints the table of
every check against every class. ``tests/test_checks.py`` asserts that every registered
check has a proof, and a delegation proof when it forbids a call.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import pytest
import torch
from torch import Tensor, nn

from course_lib.checks import CheckResult
from course_lib.checks.compare import dtype_advice
from course_lib.checks.core import check_name
from course_lib.checks.guard import cast

ENDLESS_LIMIT = 0.3  # seconds, for the endless-loop class (the default limit is 10 s)


@dataclass
class Wrong:
    """A wrong answer and a fragment its failure message must contain (e.g. a hint)."""

    answer: Any
    message_contains: str = ""


@dataclass
class Proof:
    check: Callable[[Any], CheckResult]
    correct: Any
    wrong: Sequence[Wrong] = field(default_factory=list)
    stub: Optional[Any] = None  # defaults to a callable raising NotImplementedError
    crashing: Optional[Any] = None  # defaults to a callable raising ZeroDivisionError
    delegate: Optional[Any] = None  # an answer that calls the library's reference
    float32_inputs: bool = True  # the check has float inputs, so it must run them in float32
    float64_required: bool = False  # a float32-precision answer fails (with the reason)
    hybrid: bool = True  # the "computed in float32" class applies
    also_correct: Sequence[Any] = field(default_factory=list)  # other right answers
    dtype_map: Optional[Dict[torch.dtype, torch.dtype]] = None  # for the wrong-dtype class

    @property
    def name(self) -> str:
        return check_name(self.check)


def _stub(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("练习：请在这里写你的代码")


def _crash(*args: Any, **kwargs: Any) -> Any:
    return 1 / 0


def _endless(*args: Any, **kwargs: Any) -> Any:
    x = torch.zeros(1)
    while True:  # every op returns quickly: the limit must stop the Python loop
        x = x + 1


def run(check: Callable[[Any], CheckResult], answer: Any, monkeypatch) -> CheckResult:
    # Non-strict, as a student sees it: verdicts are returned, never raised.
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)
    return check(answer)


# ----------------------------------------------------------------------------------------
# Adversarial answers derived from a correct one
# ----------------------------------------------------------------------------------------


def _map_tensors(value: Any, change: Callable[[Tensor], Tensor]) -> Any:
    if isinstance(value, Tensor):
        return change(value)
    if isinstance(value, tuple):
        return tuple(_map_tensors(item, change) for item in value)
    if isinstance(value, list):
        return [_map_tensors(item, change) for item in value]
    if isinstance(value, dict):
        return {key: _map_tensors(item, change) for key, item in value.items()}
    return value


_OTHER_DTYPE = {
    torch.float64: torch.float32,
    torch.float32: torch.float64,
    torch.bool: torch.int64,
    torch.int64: torch.int32,
}


class WrongDtype:
    """The correct answer whose tensor results come back in another dtype."""

    def __init__(
        self, answer: Callable[..., Any], dtypes: Optional[Dict[torch.dtype, torch.dtype]] = None
    ) -> None:
        self.answer = answer
        self.dtypes = dtypes or _OTHER_DTYPE
        self.first: Optional[tuple] = None
        functools.update_wrapper(self, answer)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        def change(tensor: Tensor) -> Tensor:
            target = self.dtypes.get(tensor.dtype, torch.float64)
            if self.first is None:
                self.first = (tensor.dtype, target)
            return tensor.detach().to(target)

        return _map_tensors(self.answer(*args, **kwargs), change)


def _tensors_in(value: Any, path: str) -> List[tuple]:
    if isinstance(value, Tensor):
        return [(path, value)] if value.numel() else []
    if isinstance(value, (tuple, list)):
        found = []
        for index, item in enumerate(value):
            found += _tensors_in(item, f"{path}[{index}]")
        return found
    return []


class Mutating:
    """The correct answer that also changes one of its inputs in place, after computing."""

    def __init__(self, answer: Callable[..., Any]) -> None:
        self.answer = answer
        self.names: List[str] = []
        functools.update_wrapper(self, answer)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.answer(*args, **kwargs)
        names = [p for p in inspect.signature(self.answer).parameters]
        candidates = []
        for index, arg in enumerate(args):
            candidates += _tensors_in(arg, names[index] if index < len(names) else "?")
        for key, value in kwargs.items():
            candidates += _tensors_in(value, key)
        modules = [
            (names[i] if i < len(names) else "?", a)
            for i, a in enumerate(args)
            if isinstance(a, nn.Module)
        ]
        with torch.no_grad():
            if candidates:
                path, tensor = candidates[0]
                if tensor.dtype == torch.bool:
                    tensor.logical_not_()
                else:
                    tensor.add_(1)
                self.names.append(path.split("[")[0])
            elif modules and list(modules[0][1].parameters()):
                next(modules[0][1].parameters()).add_(1)
                self.names.append(modules[0][0])
        return result


def _to_float32(value: Any) -> Any:
    """float64 tensors as float32, differentiably (``.to`` keeps the graph), others kept."""
    if isinstance(value, Tensor):
        return value.to(torch.float32) if value.dtype == torch.float64 else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float32(item) for item in value)
    if isinstance(value, dict):
        return {key: _to_float32(item) for key, item in value.items()}
    return cast(value, torch.float32)  # modules: a float32 copy


class InFloat32:
    """The correct answer computed in float32, its result returned in the input's dtype."""

    def __init__(self, answer: Callable[..., Any]) -> None:
        self.answer = answer
        functools.update_wrapper(self, answer)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        args32, kwargs32 = _to_float32((args, kwargs))
        had_float64 = any(
            isinstance(t, Tensor) and t.dtype == torch.float64 for t in [*args, *kwargs.values()]
        ) or any(
            isinstance(m, nn.Module) and any(p.dtype == torch.float64 for p in m.parameters())
            for m in [*args, *kwargs.values()]
        )
        result = self.answer(*args32, **kwargs32)
        if not had_float64:
            return result
        return _map_tensors(
            result, lambda t: t.to(torch.float64) if t.dtype == torch.float32 else t
        )


def _spoil(value: Any) -> Any:
    """The same structure with every value wrong: NaN, flipped booleans, integers + 7."""
    if isinstance(value, Tensor):
        if value.dtype == torch.bool:
            return ~value
        if value.is_floating_point():
            return torch.full_like(value.detach(), float("nan"))
        return value + 7
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return float("nan")
    if isinstance(value, int):
        return value + 7
    if isinstance(value, (tuple, list)):
        return type(value)(_spoil(item) for item in value)
    if isinstance(value, dict):
        return {key: _spoil(item) for key, item in value.items()}
    return value


def odd_outputs(answer: Callable[..., Any]) -> List[Callable[..., Any]]:
    """Answers returning garbage: None, the right structure with NaN/wrong values, a wrong shape."""

    def nothing(*args: Any, **kwargs: Any) -> Any:
        return None

    def garbage(*args: Any, **kwargs: Any) -> Any:
        return _spoil(answer(*args, **kwargs))

    def wrong_shape(*args: Any, **kwargs: Any) -> Any:
        changed = []

        def reshape(tensor: Tensor) -> Tensor:
            changed.append(True)
            return tensor.detach().new_zeros((1, 1, 1))

        result = _map_tensors(answer(*args, **kwargs), reshape)
        return result if changed else torch.zeros(2, 3)

    return [nothing, garbage, wrong_shape]


# ----------------------------------------------------------------------------------------
# The standard tests
# ----------------------------------------------------------------------------------------


def parametrize_proofs(proofs: List[Proof]) -> Dict[str, Callable[..., None]]:
    """The standard tests for ``proofs``, by name: ``globals().update(parametrize_proofs(P))``."""
    ids = [proof.name.rsplit(".", 1)[-1] for proof in proofs]
    each = pytest.mark.parametrize("proof", proofs, ids=ids)

    @each
    def test_check_passes_correct_answer(proof: Proof, monkeypatch, capsys) -> None:
        for answer in [proof.correct, *proof.also_correct]:
            result = run(proof.check, answer, monkeypatch)
            printed = capsys.readouterr().out
            assert result.status == "passed", printed
            assert "✅" in printed and "⚠️" not in printed, printed
            if proof.float32_inputs:
                assert result.dtypes == ["float64", "float32"], printed
                assert "float64 与 float32 输入" in printed
            else:
                assert "float32" not in result.dtypes

    @each
    def test_check_fails_wrong_answers(proof: Proof, monkeypatch, capsys) -> None:
        assert proof.wrong, f"{proof.name}: a proof needs at least one wrong answer"
        for wrong in proof.wrong:
            result = run(proof.check, wrong.answer, monkeypatch)
            printed = capsys.readouterr().out
            assert result.status == "failed", f"{wrong.answer!r} was not rejected:\n{printed}"
            assert "❌" in printed and "用例" in printed
            assert wrong.message_contains in printed, printed

    @each
    def test_check_reports_stub_as_not_done(proof: Proof, monkeypatch, capsys) -> None:
        result = run(proof.check, proof.stub or _stub, monkeypatch)
        printed = capsys.readouterr().out
        assert result.status == "not_done", printed
        assert "⏳" in printed and "Traceback" not in printed

    @each
    def test_check_reports_crash_as_student_error(proof: Proof, monkeypatch, capsys) -> None:
        result = run(proof.check, proof.crashing or _crash, monkeypatch)
        printed = capsys.readouterr().out
        assert result.status == "error", printed
        assert "💥" in printed
        assert "course_lib/checks" not in printed, "the checker's own frames must be hidden"

    @each
    def test_check_raises_in_strict_mode_on_wrong_answer(proof: Proof, monkeypatch) -> None:
        from course_lib.checks import ExerciseCheckFailed

        for variable in ("COURSE_STRICT_CHECKS", "COURSE_BOOK_BUILD"):
            monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
            monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)
            monkeypatch.setenv(variable, "1")
            with pytest.raises(ExerciseCheckFailed):
                proof.check(proof.wrong[0].answer)

    @each
    def test_check_names_a_wrong_dtype(proof: Proof, monkeypatch, capsys) -> None:
        answer = WrongDtype(proof.correct, proof.dtype_map)
        result = run(proof.check, answer, monkeypatch)
        printed = capsys.readouterr().out
        if answer.first is None:
            assert result.status == "passed", printed
            pytest.skip("the result holds no tensor")
        expected, actual = (str(d).replace("torch.", "") for d in answer.first)
        assert result.status == "failed", printed
        assert "类型不对" in printed and expected in printed and actual in printed, printed
        # The hint is the dtype advice, not a hint about some other mistake.
        hint = printed.split("提示：", 1)[-1]
        kinds = (torch.float64, torch.float32, torch.int64, torch.bool)
        advice = {dtype_advice(expected, answer.first[1]) for expected in kinds}
        assert any(hint.startswith(text) for text in advice), printed

    @each
    def test_check_names_an_argument_changed_in_place(proof: Proof, monkeypatch, capsys) -> None:
        answer = Mutating(proof.correct)
        result = run(proof.check, answer, monkeypatch)
        printed = capsys.readouterr().out
        if not answer.names:
            assert result.status == "passed", printed
            pytest.skip("no tensor input to change")
        assert result.status == "failed", printed
        assert "被原地修改" in printed, printed
        assert any(f"参数 {name}" in printed for name in answer.names), (answer.names, printed)

    @each
    def test_check_judges_an_answer_computed_in_float32(proof: Proof, monkeypatch, capsys):
        if not proof.hybrid:
            pytest.skip("the answer changes its inputs by contract (no float32 copy possible)")
        result = run(proof.check, InFloat32(proof.correct), monkeypatch)
        printed = capsys.readouterr().out
        if proof.float64_required:
            assert result.status == "failed", printed
            assert "需要 float64 的精度，因为" in printed, printed
        else:
            assert result.status == "passed", printed

    @each
    def test_check_rejects_delegation(proof: Proof, monkeypatch, capsys) -> None:
        result = run(proof.check, proof.correct, monkeypatch)
        capsys.readouterr()
        if proof.delegate is None:
            assert not result.forbidden, f"{proof.name} forbids {result.forbidden}: add a delegate"
            pytest.skip("the check forbids no call")
        result = run(proof.check, proof.delegate, monkeypatch)
        printed = capsys.readouterr().out
        assert result.status == "failed", printed
        assert "你调用了" in printed and "请自己实现" in printed, printed

    @each
    def test_check_stops_an_endless_loop(proof: Proof, monkeypatch, capsys) -> None:
        monkeypatch.setenv("COURSE_CHECK_TIME_LIMIT", str(ENDLESS_LIMIT))
        started = time.monotonic()
        result = run(proof.check, _endless, monkeypatch)
        elapsed = time.monotonic() - started
        printed = capsys.readouterr().out
        assert result.status == "timeout", printed
        assert f"运行超过 {ENDLESS_LIMIT:g} 秒" in printed
        assert elapsed < ENDLESS_LIMIT + 5, elapsed

    @each
    def test_check_survives_odd_outputs(proof: Proof, monkeypatch, capsys) -> None:
        for answer in odd_outputs(proof.correct):
            result = run(proof.check, answer, monkeypatch)
            printed = capsys.readouterr().out
            assert result.status == "failed", f"{answer.__name__}:\n{printed}"
            assert "❌" in printed and "检查程序本身出错" not in printed, printed
            assert "提示：" in printed or "应返回" in printed, printed

    return {name: test for name, test in locals().items() if name.startswith("test_")}


# ----------------------------------------------------------------------------------------
# The table of checks x adversarial classes (python -m tests.checkproof)
# ----------------------------------------------------------------------------------------


def all_proofs() -> List[Proof]:
    """Every ``Proof`` of every ``tests/test_checks_<topic>.py``."""
    import tests

    proofs: List[Proof] = []
    for module in pkgutil.iter_modules(tests.__path__):
        if module.name.startswith("test_checks_"):
            proofs += importlib.import_module(f"tests.{module.name}").PROOFS
    return proofs


def _quiet(check: Callable[[Any], CheckResult], answer: Any) -> CheckResult:
    import contextlib
    import io
    import os

    os.environ.pop("COURSE_STRICT_CHECKS", None)
    with contextlib.redirect_stdout(io.StringIO()):
        return check(answer)


def table() -> str:
    """A markdown table: each check against each adversarial class (what was proven)."""
    import os

    rows = [
        "| check | wrong answers | f64+f32 | in float32 | dtype | in place | delegation "
        "| loop | crash | odd | stub |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for proof in sorted(all_proofs(), key=lambda p: p.name):
        name = proof.name.replace("course_lib.checks.", "")
        passed = _quiet(proof.check, proof.correct)
        both = "yes" if passed.dtypes == ["float64", "float32"] else "n/a (no float64 input)"
        hybrid: str = "n/a"
        if proof.hybrid and both == "yes":
            verdict = _quiet(proof.check, InFloat32(proof.correct)).status
            hybrid = {"passed": "passes", "failed": "fails (float64)"}.get(verdict, verdict)
        dtype_answer = WrongDtype(proof.correct, proof.dtype_map)
        dtype = _quiet(proof.check, dtype_answer).status
        dtype = "n/a" if dtype_answer.first is None else dtype
        mutating = Mutating(proof.correct)
        mutation = _quiet(proof.check, mutating).status
        mutation = f"{mutation} ({mutating.names[0]})" if mutating.names else "n/a"
        delegation = _quiet(proof.check, proof.delegate).status if proof.delegate else "n/a"
        os.environ["COURSE_CHECK_TIME_LIMIT"] = str(ENDLESS_LIMIT)
        loop = _quiet(proof.check, _endless).status
        del os.environ["COURSE_CHECK_TIME_LIMIT"]
        crash = _quiet(proof.check, _crash).status
        odd = "/".join(_quiet(proof.check, answer).status for answer in odd_outputs(proof.correct))
        stub = _quiet(proof.check, _stub).status
        rows.append(
            f"| {name} | {len(proof.wrong)} failed | {both} | {hybrid} | {dtype} | {mutation} "
            f"| {delegation} | {loop} | {crash} | {odd} | {stub} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover
    print(table())
