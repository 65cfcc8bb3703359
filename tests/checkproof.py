"""Shared machinery proving that every exercise check can fail.

Each ``tests/test_checks_<topic>.py`` defines ``PROOFS = [Proof(...), ...]`` and calls
``parametrize_proofs(PROOFS)`` to get the four standard tests: the check passes a correct
answer, fails every wrong answer (with a message that names the problem), reports a stub
as "not done yet" and reports a crashing answer as the student's error without crashing.
``tests/test_checks.py`` asserts that every registered check has a proof.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Sequence

import pytest

from course_lib.checks import CheckResult


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

    @property
    def name(self) -> str:
        return f"{self.check.__module__}.{self.check.__qualname__}"


def _stub(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("练习：请在这里写你的代码")


def _crash(*args: Any, **kwargs: Any) -> Any:
    return 1 / 0


def _run(check: Callable[[Any], CheckResult], answer: Any, monkeypatch) -> CheckResult:
    # Non-strict, as a student sees it: verdicts are returned, never raised.
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    return check(answer)


def parametrize_proofs(proofs: List[Proof]):
    """Build the four standard tests for ``proofs``; assign them in the test module."""
    ids = [proof.name.rsplit(".", 1)[-1] for proof in proofs]

    @pytest.mark.parametrize("proof", proofs, ids=ids)
    def test_check_passes_correct_answer(proof: Proof, monkeypatch, capsys) -> None:
        result = _run(proof.check, proof.correct, monkeypatch)
        printed = capsys.readouterr().out
        assert result.status == "passed", printed
        assert "✅" in printed

    @pytest.mark.parametrize("proof", proofs, ids=ids)
    def test_check_fails_wrong_answers(proof: Proof, monkeypatch, capsys) -> None:
        assert proof.wrong, f"{proof.name}: a proof needs at least one wrong answer"
        for wrong in proof.wrong:
            result = _run(proof.check, wrong.answer, monkeypatch)
            printed = capsys.readouterr().out
            assert result.status == "failed", f"{wrong.answer!r} was not rejected:\n{printed}"
            assert "❌" in printed and "用例" in printed
            assert wrong.message_contains in printed, printed

    @pytest.mark.parametrize("proof", proofs, ids=ids)
    def test_check_reports_stub_as_not_done(proof: Proof, monkeypatch, capsys) -> None:
        result = _run(proof.check, proof.stub or _stub, monkeypatch)
        printed = capsys.readouterr().out
        assert result.status == "not_done", printed
        assert "⏳" in printed and "Traceback" not in printed

    @pytest.mark.parametrize("proof", proofs, ids=ids)
    def test_check_reports_crash_as_student_error(proof: Proof, monkeypatch, capsys) -> None:
        result = _run(proof.check, proof.crashing or _crash, monkeypatch)
        printed = capsys.readouterr().out
        assert result.status == "error", printed
        assert "💥" in printed
        assert "course_lib/checks" not in printed, "the checker's own frames must be hidden"

    @pytest.mark.parametrize("proof", proofs, ids=ids)
    def test_check_raises_in_strict_mode_on_wrong_answer(proof: Proof, monkeypatch) -> None:
        from course_lib.checks import ExerciseCheckFailed

        monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
        with pytest.raises(ExerciseCheckFailed):
            proof.check(proof.wrong[0].answer)

    return (
        test_check_passes_correct_answer,
        test_check_fails_wrong_answers,
        test_check_reports_stub_as_not_done,
        test_check_reports_crash_as_student_error,
        test_check_raises_in_strict_mode_on_wrong_answer,
    )
