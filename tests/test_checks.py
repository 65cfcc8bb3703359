"""The exercise-check machinery (course_lib.checks.core) and the proof that every check can fail."""

import importlib
import pkgutil

import pytest
import torch

import tests
from course_lib import checks
from course_lib.checks import Case, ExerciseCheckFailed, check_function, compare


def _cases(device):
    return [Case("two numbers", (torch.tensor([1.0, 2.0], dtype=torch.float64, device=device),))]


def _double(x):
    return 2 * x


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)


# ------------------------------------------------------------------ compare


@pytest.mark.parametrize(
    ("expected", "actual", "fragment"),
    [
        (torch.zeros(2), torch.zeros(3), "形状不对"),
        (torch.zeros(2), [0.0, 0.0], "应返回 Tensor"),
        (torch.zeros(2), torch.zeros(2, dtype=torch.long), "期望浮点张量"),
        (torch.zeros(2, dtype=torch.long), torch.zeros(2), "整数/布尔"),
        (torch.tensor([1, 2]), torch.tensor([1, 3]), "1 个元素不相等"),
        (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]), "NaN"),
        (torch.tensor([float("inf")]), torch.tensor([1e30]), "数值不同"),
        (torch.ones(2), torch.ones(2) + 1e-3, "数值不同"),
        ((torch.ones(1), torch.ones(1)), (torch.ones(1),), "应返回 2 项"),
        ((torch.ones(1), torch.ones(1)), torch.ones(1), "应返回 tuple"),
        ({"a": torch.ones(1)}, {"b": torch.ones(1)}, "缺少键"),
        (1.5, 1.6, "期望 1.5"),
        (1.5, "1.5", "应返回数字"),
        (True, 1, "期望 True"),
    ],
)
def test_compare_reports_the_difference(expected, actual, fragment):
    mismatch = compare(expected, actual, atol=1e-6, rtol=1e-6)
    assert mismatch is not None and fragment in mismatch.reason


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (torch.ones(2), torch.ones(2) + 1e-8),
        (torch.tensor([float("nan"), float("inf")]), torch.tensor([float("nan"), float("inf")])),
        (torch.zeros(0, 3), torch.zeros(0, 3)),
        ((torch.ones(1), {"k": 2.0}), [torch.ones(1), {"k": 2.0}]),
        (3, torch.tensor(3.0)),
    ],
)
def test_compare_accepts_equal_values(expected, actual):
    assert compare(expected, actual, atol=1e-6, rtol=1e-6) is None


def test_compare_reports_errors_of_the_worst_element():
    mismatch = compare(torch.tensor([1.0, 10.0]), torch.tensor([1.0, 11.0]), atol=0, rtol=0)
    assert mismatch.max_abs_error == pytest.approx(1.0)
    assert mismatch.max_rel_error == pytest.approx(0.1)


# ------------------------------------------------------------------ check_function


def test_check_function_verdicts(lenient, capsys):
    ok = check_function("double", _double, _double, _cases, atol=0, rtol=0)
    assert ok and ok.status == "passed" and "✅" in capsys.readouterr().out
    wrong = check_function("double", lambda x: 3 * x, _double, _cases, atol=0, rtol=0, hint="×2")
    out = capsys.readouterr().out
    assert not wrong and wrong.status == "failed" and wrong.case == "two numbers"
    assert "Tensor[2] float64" in out and "提示：×2" in out and "最大绝对误差" in out


def test_check_function_shows_only_the_students_traceback(lenient, capsys):
    def student(x):
        return x.not_an_attribute

    result = check_function("double", student, _double, _cases, atol=0, rtol=0)
    out = capsys.readouterr().out
    assert result.status == "error" and "AttributeError" in out and "in student" in out
    assert "checks/core.py" not in out


def test_check_function_internal_errors_are_not_blamed_on_the_student(lenient, capsys):
    def broken_reference(x):
        raise RuntimeError("reference bug")

    result = check_function("double", _double, broken_reference, _cases, atol=0, rtol=0)
    assert result.status == "internal" and "不是你的错误" in capsys.readouterr().out


def test_check_function_does_not_let_students_mutate_the_inputs(lenient):
    def mutating(x):
        x.mul_(0)
        return 2 * x

    seen = []

    def reference(x):
        seen.append(x.clone())
        return 2 * x

    check_function("double", mutating, reference, _cases, atol=0, rtol=0)
    assert torch.equal(seen[0], torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_check_function_rejects_non_callables(lenient, capsys):
    result = check_function("double", None, _double, _cases, atol=0, rtol=0)
    assert result.status == "error" and "NoneType" in capsys.readouterr().out


def test_strict_mode_raises_on_failure_but_not_on_not_done(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with pytest.raises(ExerciseCheckFailed):
        check_function("double", lambda x: x, _double, _cases, atol=0, rtol=0)

    def stub(x):
        raise NotImplementedError

    assert check_function("double", stub, _double, _cases, atol=0, rtol=0).status == "not_done"


def test_expect_failure_in_strict_mode(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with checks.expect_failure():
        check_function("double", lambda x: x, _double, _cases, atol=0, rtol=0)
    with pytest.raises(ExerciseCheckFailed, match="did not fail"), checks.expect_failure():
        check_function("double", _double, _double, _cases, atol=0, rtol=0)
    with pytest.raises(ExerciseCheckFailed, match="no check ran"), checks.expect_failure():
        pass


def test_randn_is_seeded():
    assert torch.equal(checks.randn(3, seed=1), checks.randn(3, seed=1))
    assert checks.randn(2, 2, seed=0).dtype == torch.float64


# ------------------------------------------------------------------ every check is proven


def _proven_checks():
    proven = set()
    for module in pkgutil.iter_modules(tests.__path__):
        if module.name.startswith("test_checks_"):
            for proof in importlib.import_module(f"tests.{module.name}").PROOFS:
                proven.add(proof.name)
    return proven


def test_every_registered_check_has_a_proof_that_it_can_fail():
    registered = set(checks.registered_checks())
    assert "course_lib.checks.intro.check_softmax" in registered
    missing = sorted(registered - _proven_checks())
    assert not missing, f"checks without a Proof in tests/test_checks_<topic>.py: {missing}"
