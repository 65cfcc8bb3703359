"""The exercise-check machinery (course_lib.checks.core, .compare, .guard) and the proof
that every check can fail."""

import importlib
import pkgutil
import signal
import sys
import threading
import time

import pytest
import torch
from torch import nn

import tests
from course_lib import checks
from course_lib.checks import Case, ExerciseCheckFailed, check_function, compare, forbid, guard
from course_lib.checks.compare import format_pair


def _cases(device):
    return [Case("two numbers", (torch.tensor([1.0, 2.0], dtype=torch.float64, device=device),))]


def _double(x):
    return 2 * x


@pytest.fixture
def lenient(monkeypatch):
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)


# ------------------------------------------------------------------ compare: types first


@pytest.mark.parametrize(
    ("expected", "actual", "fragment", "kind"),
    [
        (torch.zeros(2), torch.zeros(3), "形状不对", "shape"),
        (torch.zeros(2), [0.0, 0.0], "应返回 Tensor", "type"),
        (
            torch.zeros(2),
            torch.zeros(2, dtype=torch.long),
            "期望 dtype float32，实际是 int64",
            "dtype",
        ),
        (
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2),
            "期望 dtype int64，实际是 float32",
            "dtype",
        ),
        (torch.tensor([0, 2]), torch.tensor([True, False, True]), "实际是 bool", "dtype"),
        (torch.tensor([True, False]), torch.tensor([0, 2]), "期望 dtype bool", "dtype"),
        (torch.zeros(2, dtype=torch.float64), torch.zeros(2), "实际是 float32", "dtype"),
        (torch.tensor([1, 2]), torch.tensor([1, 2], dtype=torch.int32), "实际是 int32", "dtype"),
        (torch.zeros(2), torch.zeros(2, device="meta"), "设备不对", "device"),
        (torch.tensor([1, 2]), torch.tensor([1, 3]), "1/2 个元素不相等", "value"),
        (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]), "NaN", "nan"),
        (torch.tensor([float("inf")]), torch.tensor([1e30]), "数值不同", "value"),
        (torch.ones(2), torch.ones(2) + 1e-3, "数值不同", "value"),
        ((torch.ones(1), torch.ones(1)), (torch.ones(1),), "应返回 2 项", "length"),
        ((torch.ones(1), torch.ones(1)), torch.ones(1), "应返回 tuple", "type"),
        ({"a": torch.ones(1)}, {"b": torch.ones(1)}, "缺少键", "key"),
        (1.5, 1.6, "期望 1.5", "value"),
        (1.5, "1.5", "应返回数字", "type"),
        (True, 1, "期望 True", "type"),
    ],
)
def test_compare_reports_the_difference(expected, actual, fragment, kind):
    mismatch = compare(expected, actual, atol=1e-6, rtol=1e-6)
    assert mismatch is not None and fragment in mismatch.reason, mismatch
    assert mismatch.kind == kind


def test_compare_checks_the_dtype_before_the_values():
    # A bool mask whose values equal the expected indices after a cast must still fail.
    mismatch = compare(torch.tensor([1, 0]), torch.tensor([True, False]), 0, 0)
    assert mismatch.kind == "dtype" and mismatch.about_type


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


def test_compare_allows_a_declared_dtype_family_at_the_lower_precision():
    expected = torch.tensor([1.0, 2.0], dtype=torch.float64)
    actual = (expected + 1e-7).float()
    rule = {torch.float64: (torch.float64, torch.float32)}
    assert compare(expected, actual, 1e-12, 0, dtypes=rule).kind == "value"
    assert compare(expected, actual, 1e-12, 0, dtypes=rule, float32_tolerance=(1e-5, 0)) is None


def test_compare_reports_errors_of_the_worst_element():
    mismatch = compare(torch.tensor([1.0, 10.0]), torch.tensor([1.0, 11.0]), atol=0, rtol=0)
    assert mismatch.max_abs_error == pytest.approx(1.0)
    assert mismatch.max_rel_error == pytest.approx(0.1)
    assert "差别最大的元素 [1]" in mismatch.detail


def test_previews_never_look_identical_when_values_differ():
    expected = torch.tensor([2.44051234567], dtype=torch.float64)
    shown_expected, shown_actual = format_pair(expected, expected + 3e-9)
    assert shown_expected != shown_actual
    mismatch = compare(expected, expected + 3e-9, 0, 0)
    assert "2.4405123" in mismatch.detail and "float64" in mismatch.detail


# ------------------------------------------------------------------ check_function basics


def test_check_function_verdicts(lenient, capsys):
    ok = check_function("double", _double, _double, _cases, atol=0, rtol=0)
    assert ok and ok.status == "passed" and "✅" in capsys.readouterr().out
    assert ok.dtypes == ["float64", "float32"]
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


def test_check_function_rejects_non_callables(lenient, capsys):
    result = check_function("double", None, _double, _cases, atol=0, rtol=0)
    assert result.status == "error" and "NoneType" in capsys.readouterr().out


def test_cases_may_take_the_dtype(lenient, capsys):
    seen = []

    def cases(device, dtype):
        seen.append(dtype)
        return [Case("x", (torch.ones(2, dtype=dtype, device=device),))]

    result = check_function("double", _double, _double, cases, atol=0, rtol=0)
    assert result and seen[:2] == [torch.float64, torch.float32]


# ------------------------------------------------------------------ precision policy


def test_a_float32_computation_passes_with_a_note(lenient, capsys):
    def in_float32(x):
        return torch.exp(x.float()).to(x.dtype)

    result = check_function("exp", in_float32, torch.exp, _cases, atol=1e-12, rtol=1e-12)
    out = capsys.readouterr().out
    assert result.status == "passed" and "float32 的精度" in out and result.notes


def test_float64_reason_turns_the_note_into_a_failure(lenient, capsys):
    def in_float32(x):
        return torch.exp(x.float()).to(x.dtype)

    result = check_function("exp", in_float32, torch.exp, _cases, atol=1e-12, rtol=1e-12,
                            float64_reason="这里需要全部精度。")  # fmt: skip
    out = capsys.readouterr().out
    assert result.status == "failed" and "需要 float64 的精度，因为这里需要全部精度。" in out


def test_a_float32_result_for_float64_inputs_is_a_dtype_failure_with_advice(lenient, capsys):
    hint_calls = []

    def hint(mismatch, case):
        hint_calls.append(1)
        return "a hint about another mistake"

    result = check_function(
        "exp", lambda x: torch.exp(x.float()), torch.exp, _cases,
        atol=1e-12, rtol=1e-12, hint=hint, dtype_hint="（附加说明）",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert result.status == "failed" and "期望 dtype float64，实际是 float32" in out
    assert "torch.zeros_like" in out and "（附加说明）" in out
    assert not hint_calls and "another mistake" not in out


# ------------------------------------------------------------------ inputs unchanged


def test_an_input_changed_in_place_is_named(lenient, capsys):
    def subtracts_in_place(x):
        return x.sub_(x.max())

    result = check_function("shift", subtracts_in_place, lambda x: x - x.max(), _cases,
                            atol=0, rtol=0)  # fmt: skip
    out = capsys.readouterr().out
    assert result.status == "failed" and "参数 x 被原地修改" in out


def test_mutations_inside_containers_modules_and_modes_are_named(lenient, capsys):
    def cases(device):
        layer = nn.Linear(2, 2).double()
        return [Case("c", ([torch.ones(2, dtype=torch.float64)], layer), {"scale": torch.ones(1)})]

    def appends(items, layer, scale):
        items[0].add_(1)
        return 0.0

    def tweaks_layer(items, layer, scale):
        with torch.no_grad():
            layer.bias.zero_()
        return 0.0

    def leaves_eval_mode(items, layer, scale):
        layer.eval()
        return 0.0

    def scales(items, layer, scale):
        scale.mul_(2)
        return 0.0

    for student, fragment in (
        (appends, "参数 items[0] 被原地修改"),
        (tweaks_layer, "参数 layer 的 bias 被原地修改"),
        (leaves_eval_mode, "训练/评估模式"),
        (scales, "参数 scale 被原地修改"),
    ):
        result = check_function("m", student, lambda *a, **k: 0.0, cases, atol=0, rtol=0)
        assert result.status == "failed" and fragment in capsys.readouterr().out, student


def test_arguments_declared_mutable_may_change(lenient):
    def cases(device):
        return [Case("c", (torch.zeros(2, dtype=torch.float64),))]

    def fill(x):
        x.fill_(1)
        return 1.0

    assert check_function("fill", fill, fill, cases, atol=0, rtol=0, mutable=(0,))


# ------------------------------------------------------------------ time limit


def _endless_torch(x):
    y = x.clone()
    while True:
        y = y + 1


def _endless_python(x):
    while True:
        pass


def _endless_sleep(x):
    while True:
        time.sleep(0.01)


def _swallows_exceptions(x):
    while True:
        try:
            x = x + 1
        except Exception:
            pass


@pytest.mark.parametrize(
    "student", [_endless_torch, _endless_python, _endless_sleep, _swallows_exceptions]
)
def test_an_endless_loop_is_stopped_within_the_limit(lenient, capsys, student):
    started = time.monotonic()
    result = check_function("loop", student, _double, _cases, atol=0, rtol=0, time_limit=0.5)
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert result.status == "timeout" and "运行超过 0.5 秒" in out
    assert 0.5 <= elapsed < 3.0


def test_a_two_second_limit_from_the_environment(lenient, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_CHECK_TIME_LIMIT", "2")
    started = time.monotonic()
    result = checks.intro.check_softmax(_endless_torch)
    elapsed = time.monotonic() - started
    assert result.status == "timeout" and "运行超过 2 秒" in capsys.readouterr().out
    assert 2.0 <= elapsed < 4.0


def test_the_watchdog_stops_a_loop_outside_the_main_thread(lenient, capsys):
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            check_function("loop", _endless_torch, _double, _cases, atol=0, rtol=0, time_limit=0.5)
        )
    )
    started = time.monotonic()
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and results[0].status == "timeout"
    assert time.monotonic() - started < 3.0


def test_the_watchdog_also_works_in_the_main_thread(lenient, capsys, monkeypatch):
    """The path taken on Windows (no SIGALRM): an exception raised asynchronously."""
    monkeypatch.setattr(guard, "_FORCE_WATCHDOG", True)
    result = check_function("loop", _endless_python, _double, _cases, atol=0, rtol=0,
                            time_limit=0.5)  # fmt: skip
    assert result.status == "timeout"
    assert check_function("double", _double, _double, _cases, atol=0, rtol=0, time_limit=0.5)
    time.sleep(0.7)  # a cancelled watchdog must not fire later


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no SIGALRM on this platform")
def test_the_alarm_gives_back_an_outer_timer(lenient):
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *args: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0)
        check_function("double", _double, _double, _cases, atol=0, rtol=0, time_limit=1.0)
        remaining, _ = signal.setitimer(signal.ITIMER_REAL, 0)
        assert 3.0 < remaining <= 5.0 and not fired
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_no_limit_when_the_environment_says_zero(monkeypatch):
    monkeypatch.setenv("COURSE_CHECK_TIME_LIMIT", "0")
    assert guard.time_limit_seconds() is None
    monkeypatch.setenv("COURSE_CHECK_TIME_LIMIT", "3")
    assert guard.time_limit_seconds() == 3.0
    assert guard.time_limit_seconds(1.5) == 1.5


# ------------------------------------------------------------------ forbidden calls


class _Reference(nn.Module):
    def forward(self, x):
        return 2 * x


def _reference_function(x):
    return 2 * x


@pytest.mark.parametrize(
    ("student", "forbidden", "shown"),
    [
        (lambda x: _reference_function(x), forbid(_reference_function), "_reference_function"),
        (lambda x: _Reference()(x), forbid(_Reference), "_Reference"),
        (lambda x: torch.softmax(x, -1) * 0 + 2 * x, forbid(torch.softmax), "softmax"),
        (lambda x: x.softmax(-1) * 0 + 2 * x, forbid(torch.Tensor.softmax), "Tensor.softmax"),
        (lambda x: x.clamp(min=-1e9) * 2, forbid("torch.clamp", torch.Tensor.clamp), "clamp"),
    ],
)
def test_a_call_of_a_forbidden_function_fails_the_check(lenient, capsys, student, forbidden, shown):
    result = check_function("double", student, _double, _cases, atol=0, rtol=0,
                            forbidden=[forbidden])  # fmt: skip
    out = capsys.readouterr().out
    assert result.status == "failed" and "你调用了" in out and shown in out
    assert result.forbidden == [forbidden.name]


def test_the_profile_hook_is_removed_after_the_call(lenient):
    def previous(frame, event, arg):
        return None

    sys.setprofile(previous)
    try:
        check_function("double", _double, _double, _cases, atol=0, rtol=0,
                       forbidden=[forbid(_reference_function)])  # fmt: skip
        assert sys.getprofile() is previous
    finally:
        sys.setprofile(None)


def test_a_forbidden_module_that_is_not_imported_is_ignored(lenient):
    assert check_function("double", _double, _double, _cases, atol=0, rtol=0,
                          forbidden=[forbid("not_a_module_anywhere.f")])  # fmt: skip


# ------------------------------------------------------------------ robust messages


def test_a_failing_hint_falls_back_to_general_advice(lenient, capsys):
    def broken_hint(mismatch, case):
        raise IndexError("hint bug")

    result = check_function("double", lambda x: 3 * x, _double, _cases, atol=0, rtol=0,
                            hint=broken_hint)  # fmt: skip
    out = capsys.readouterr().out
    assert result.status == "failed" and "提示：" in out and "hint bug" not in out


def test_a_failing_error_hint_keeps_the_students_error(lenient, capsys):
    def crash(x):
        return 1 / 0

    def broken(error, case):
        raise KeyError("bug")

    result = check_function("double", crash, _double, _cases, atol=0, rtol=0, error_hint=broken)
    assert result.status == "error" and "ZeroDivisionError" in capsys.readouterr().out


def test_a_comparator_that_cannot_cope_blames_the_output(lenient, capsys):
    def comparator(expected, actual, compare):
        return compare(expected, actual.odd_attribute)

    result = check_function("double", lambda x: 2 * x, _double, _cases, atol=0, rtol=0,
                            comparator=comparator)  # fmt: skip
    assert result.status == "failed" and "无法与参考结果比较" in capsys.readouterr().out


# ------------------------------------------------------------------ strict mode


@pytest.mark.parametrize("variable", ["COURSE_STRICT_CHECKS", "COURSE_BOOK_BUILD"])
def test_strict_mode_raises_on_failure_and_timeout_but_not_on_not_done(monkeypatch, variable):
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(ExerciseCheckFailed):
        check_function("double", lambda x: x, _double, _cases, atol=0, rtol=0)
    with pytest.raises(ExerciseCheckFailed):
        check_function("double", _endless_torch, _double, _cases, atol=0, rtol=0, time_limit=0.2)

    def stub(x):
        raise NotImplementedError

    assert check_function("double", stub, _double, _cases, atol=0, rtol=0).status == "not_done"


def test_expect_failure_in_strict_mode(monkeypatch):
    monkeypatch.setenv("COURSE_STRICT_CHECKS", "1")
    with checks.expect_failure():
        check_function("double", lambda x: x, _double, _cases, atol=0, rtol=0)
    with checks.expect_failure():
        check_function("double", _endless_torch, _double, _cases, atol=0, rtol=0, time_limit=0.2)
    with pytest.raises(ExerciseCheckFailed, match="did not fail"), checks.expect_failure():
        check_function("double", _double, _double, _cases, atol=0, rtol=0)
    with pytest.raises(ExerciseCheckFailed, match="no check ran"), checks.expect_failure():
        pass


def test_randn_is_seeded():
    assert torch.equal(checks.randn(3, seed=1), checks.randn(3, seed=1))
    assert checks.randn(2, 2, seed=0).dtype == torch.float64


# ------------------------------------------------------------------ every check is proven


def _proofs():
    proofs = {}
    for module in pkgutil.iter_modules(tests.__path__):
        if module.name.startswith("test_checks_"):
            for proof in getattr(importlib.import_module(f"tests.{module.name}"), "PROOFS", []):
                proofs[proof.name] = proof
    return proofs


def test_every_registered_check_has_a_proof_that_it_can_fail():
    registered = set(checks.registered_checks())
    assert "course_lib.checks.intro.check_softmax" in registered
    missing = sorted(registered - set(_proofs()))
    assert not missing, f"checks without a Proof in tests/test_checks_<topic>.py: {missing}"


def test_the_new_exercises_have_checks():
    registered = set(checks.registered_checks())
    for name in (
        "rnn.check_rnn_bptt",
        "attention.check_positional_encoding",
        "detection.check_match_detections",
        "detection.check_roi_align_one",
        "generative.check_gan_step",
        "generative.check_vae_elbo",
    ):
        assert f"course_lib.checks.{name}" in registered
