"""Self-check quizzes: the question files, their validator, and the quiz in a built book.

The pure-Python tests check every shipped question file, each way a file can be wrong, and
the conversion to jupyterquiz. The static-site tests build ``tests/fixtures/quiz_book`` with
Jupyter Book (the project's MathJax settings copied in), read the HTML, and answer every
question in headless Chromium, offline: a wrong answer must show why it is wrong, the right
one must be marked right. They skip with the reason when Playwright or Chromium is missing.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml

from course_lib import quiz
from course_lib.quiz import QuizFormatError, load_quiz, quiz_html, to_jupyterquiz

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_BOOK = Path(__file__).resolve().parent / "fixtures" / "quiz_book"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

CHOICE = {
    "type": "multiple_choice",
    "question": "哪个对？",
    "answers": [
        {"answer": "甲", "correct": True, "feedback": "对：因为甲。"},
        {"answer": "乙", "correct": False, "feedback": "不对：因为乙。"},
    ],
}
NUMBER = {
    "type": "numeric",
    "question": "多少？",
    "value": 8,
    "tolerance": 0.01,
    "feedback": "对：√64 = 8。",
    "mistakes": [{"value": 64, "tolerance": 0.5, "feedback": "不对：没有开方。"}],
    "feedback_wrong": "不对：想想方差。",
}


# ------------------------------------------------------------------- question files


@pytest.mark.parametrize("name", quiz.quiz_names())
def test_every_shipped_quiz_is_valid(name):
    content = load_quiz(name)
    assert content["questions"]
    assert to_jupyterquiz(content["questions"])


def test_the_demo_quiz_has_a_choice_and_a_number_question():
    content = load_quiz("exercise_demo")
    assert [q["type"] for q in content["questions"]] == ["multiple_choice", "numeric"]


def test_quiz_names_lists_the_shipped_files():
    assert "exercise_demo" in quiz.quiz_names()
    assert all((quiz.QUIZ_DIR / f"{name}.json").is_file() for name in quiz.quiz_names())


def test_the_documented_examples_are_valid_questions():
    blocks = re.findall(r"::\n\n((?:    .*\n|\n)+)", quiz.__doc__)
    examples = [json.loads(textwrap.dedent(b)) for b in blocks if '"type"' in b]
    assert [example["type"] for example in examples] == ["multiple_choice", "numeric"]
    assert quiz.validate_questions(examples) == examples


def _with(question: Dict[str, Any], path: List[Any], value: Any) -> Dict[str, Any]:
    """A deep copy of question with the item at path replaced (value None: deleted)."""
    changed = copy.deepcopy(question)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


BROKEN = {
    "choice without feedback": (
        _with(CHOICE, ["answers", 1, "feedback"], None), "answer 2: missing 'feedback'"),
    "blank feedback": (
        _with(CHOICE, ["answers", 0, "feedback"], "  "), "answer 1: 'feedback' must be non-empty"),
    "no correct answer": (
        _with(CHOICE, ["answers", 0, "correct"], False), "exactly 1 correct answer, got 0"),
    "two correct in multiple_choice": (
        _with(CHOICE, ["answers", 1, "correct"], True), "exactly 1 correct answer, got 2"),
    "many_choice with one correct": (
        _with(CHOICE, ["type"], "many_choice"), "at least 2 correct answers, got 1"),
    "every answer correct": (
        _with(_with(CHOICE, ["type"], "many_choice"), ["answers", 1, "correct"], True),
        "every answer is correct"),
    "correct as a string": (
        _with(CHOICE, ["answers", 0, "correct"], "true"), "'correct' must be true or false"),
    "one answer only": (
        _with(CHOICE, ["answers"], CHOICE["answers"][:1]), "at least 2 answers"),
    "unknown type": (_with(CHOICE, ["type"], "essay"), "'type' must be one of"),
    "misspelt key": (
        _with(_with(CHOICE, ["anwsers"], CHOICE["answers"]), ["answers"], None),
        "missing 'answers' (and unknown key(s) ['anwsers']: a typo?)"),
    "extra key": (_with(CHOICE, ["hint"], "x"), "unknown key(s) ['hint']"),
    "numeric without tolerance": (_with(NUMBER, ["tolerance"], None), "missing 'tolerance'"),
    "numeric without value": (_with(NUMBER, ["value"], None), "missing 'value'"),
    "zero tolerance": (_with(NUMBER, ["tolerance"], 0), "'tolerance' must be a number > 0, got 0"),
    "negative tolerance": (_with(NUMBER, ["tolerance"], -1), "must be a number > 0, got -1"),
    "value as text": (_with(NUMBER, ["value"], "8"), "'value' must be a finite number, got '8'"),
    "value nan": (_with(NUMBER, ["value"], float("nan")), "'value' must be a finite number"),
    "value bool": (_with(NUMBER, ["value"], True), "'value' must be a finite number"),
    "numeric without wrong feedback": (
        _with(NUMBER, ["feedback_wrong"], None), "missing 'feedback_wrong'"),
    "mistake overlaps the answer": (
        _with(NUMBER, ["mistakes", 0, "value"], 8.2), "mistake 1: value 8.2 ± 0.5 overlaps"),
    "mistake without feedback": (
        _with(NUMBER, ["mistakes", 0, "feedback"], None), "mistake 1: missing 'feedback'"),
    "empty question text": (_with(NUMBER, ["question"], ""), "'question' must be non-empty"),
    "bad answer_cols": (_with(CHOICE, ["answer_cols"], 0), "'answer_cols' must be an integer"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_validator_names_question_answer_and_field(case):
    broken, message = BROKEN[case]
    other = NUMBER if broken["type"] != "numeric" else CHOICE
    with pytest.raises(QuizFormatError) as error:
        quiz.validate_questions([other, broken], source="demo.json")
    assert message in str(error.value), str(error.value)
    assert str(error.value).startswith("demo.json, question 2"), str(error.value)


def test_validator_accepts_good_questions_and_rejects_bad_containers():
    assert quiz.validate_questions([CHOICE, NUMBER]) == [CHOICE, NUMBER]
    assert issubclass(QuizFormatError, ValueError)
    with pytest.raises(QuizFormatError, match="non-empty list"):
        quiz.validate_questions([])
    with pytest.raises(QuizFormatError, match="question 1: must be an object, got str"):
        quiz.validate_questions(["哪个对？"])
    with pytest.raises(QuizFormatError, match=r"unknown key\(s\) \['titel'\]"):
        quiz_html({"titel": "x", "questions": [CHOICE]})


def test_load_quiz_reports_the_file_and_the_shipped_names(tmp_path):
    with pytest.raises(
        ValueError, match=r"no quiz named 'nosuch'; shipped quizzes: .*exercise_demo"
    ):
        load_quiz("nosuch")
    with pytest.raises(ValueError, match="must be a quiz name"):
        load_quiz("../secret")
    bad = tmp_path / "bad.json"
    bad.write_text('{"questions": [', encoding="utf-8")
    with pytest.raises(QuizFormatError, match=r"bad\.json: not valid JSON"):
        load_quiz(bad)
    bad.write_text(json.dumps({"questions": [_with(CHOICE, ["answers", 0, "feedback"], None)]}))
    with pytest.raises(
        QuizFormatError, match=r"bad\.json, question 1, answer 1: missing 'feedback'"
    ):
        load_quiz(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"title": "T", "questions": [CHOICE]}), encoding="utf-8")
    assert load_quiz(good) == {"title": "T", "questions": [CHOICE]}
    with pytest.raises(TypeError, match="name_or_questions must be a quiz name"):
        quiz_html(42)


def test_numeric_question_becomes_closed_ranges_right_answer_first():
    converted = to_jupyterquiz([NUMBER])[0]
    right, mistake, default = converted["answers"]
    assert right["correct"] is True and mistake["correct"] is False
    low, high = right["range"]  # jupyterquiz ranges are [low, high)
    assert low == 8 - 0.01 and low <= 8 + 0.01 < high and high - (8 + 0.01) < 1e-12
    assert mistake["range"][0] == 63.5 and mistake["range"][1] > 64.5
    assert default == {"type": "default", "feedback": "不对：想想方差。"}


def test_text_is_escaped_and_code_marked():
    question = _with(CHOICE, ["question"], "若 a < b & `h_t` 为真\n那么？")
    converted = to_jupyterquiz([question])[0]
    assert converted["question"] == "若 a &lt; b &amp; <code>h_t</code> 为真<br>那么？"


def test_quiz_html_is_one_self_contained_fragment():
    first, second = quiz_html("exercise_demo"), quiz_html("exercise_demo")
    assert first.startswith('<div class="course-quiz">') and first.endswith("</div>")
    assert first.count("<script>") == 1 and first.count("</script>") == 1
    script = first.split("<script>")[1].split("</script>")[0]
    assert "</" not in script  # nothing in the questions can close the script early
    assert "show_questions" in script and json.dumps("为什么要先把每一行")[1:-1] in script
    assert "输入数值后按回车键" in script  # the numeric prompt in Chinese
    ids = [html.split('<div id="')[1].split('"')[0] for html in (first, second)]
    assert ids[0] != ids[1] and all(i.isidentifier() for i in ids)


def test_importing_the_module_needs_no_jupyter():
    code = (
        "import sys, course_lib.quiz as q\n"
        "q.load_quiz('exercise_demo')\n"
        "assert not {'IPython', 'jupyterquiz'} & set(sys.modules), sorted(sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


def test_show_quiz_outside_a_notebook_prints_questions_not_answers(capsys):
    quiz.show_quiz("exercise_demo")
    printed = capsys.readouterr().out
    assert "数值稳定的 softmax 为什么" in printed and "A. " in printed
    assert "对。" not in printed and "不对" not in printed  # no feedback, so no answer key


def test_show_quiz_in_a_notebook_displays_html_and_text(monkeypatch):
    shown = []
    monkeypatch.setattr("course_lib.utils._in_notebook", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj, raw: shown.append(obj))
    quiz.show_quiz([CHOICE])
    (bundle,) = shown
    assert set(bundle) == {"text/html", "text/plain"}
    assert 'class="course-quiz"' in bundle["text/html"] and "哪个对？" in bundle["text/plain"]


# ---------------------------------------------------------------- the built static book


def _with_project_settings(config: Dict[str, Any]) -> Dict[str, Any]:
    """The fixture's config with the project's parsing, MathJax and page-script settings."""
    project = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    config = copy.deepcopy(config)
    config["parse"] = project["parse"]
    sphinx = project["sphinx"]
    config["sphinx"]["local_extensions"] = {
        name: str(ROOT / path) for name, path in sphinx["local_extensions"].items()
    }
    for key in ("mathjax3_config", "html_context"):
        config["sphinx"]["config"][key] = sphinx["config"][key]
    return config


@pytest.fixture(scope="module")
def quiz_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/quiz_book built by Jupyter Book with the project's page settings."""
    source = tmp_path_factory.mktemp("quiz_book") / "book"
    shutil.copytree(FIXTURE_BOOK, source)
    config = _with_project_settings(yaml.safe_load((source / "_config.yml").read_text("utf-8")))
    (source / "_config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), "utf-8")
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        # jupyter_book.cli.main has no __main__ guard: `python -m` on it would do nothing.
        [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
         str(source), "-W", "--keep-going"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return source / "_build" / "html"


def test_static_page_keeps_the_quiz_without_a_kernel(quiz_book):
    from bs4 import BeautifulSoup

    soup = BeautifulSoup((quiz_book / "quiz.html").read_text(encoding="utf-8"), "html.parser")
    quizzes = soup.select("div.cell_output div.course-quiz")
    assert len(quizzes) == 2, "each show_quiz output must be kept as HTML by myst-nb"
    for block in quizzes:
        scripts = block.find_all("script")
        assert len(scripts) == 1 and "show_questions" in scripts[0].string
    assert "自测题：数值稳定的 softmax" in quizzes[0].get_text()
    # The remove-input cell shows the quiz, not the call (nor an answer key).
    assert "show_quiz(" not in str(soup.select("div.cell")[0])
    assert soup.select("script[src*='mathjax']"), "the page loads MathJax (it has a formula)"


# --------------------------------------------------------------------- in a real browser


REQUIRE_BROWSER = os.environ.get("COURSE_REQUIRE_BROWSER") == "1"  # CI: missing is a failure


def _chromium() -> str:
    path = os.environ.get("COURSE_CHROMIUM") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    if path is None:
        reason = "no Chromium found (install Debian's chromium or set COURSE_CHROMIUM)"
        if REQUIRE_BROWSER:
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def quiz_page_url(quiz_book: Path) -> Iterator[str]:
    from tests.test_browser import _serve

    server, url = _serve(quiz_book)
    yield f"{url}/quiz.html"
    server.shutdown()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if REQUIRE_BROWSER:
        import playwright.sync_api as playwright_api
    else:
        playwright_api = pytest.importorskip(
            "playwright.sync_api", reason="Playwright's Python client is not installed"
        )
    executable = _chromium()
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(chromium: Any, url: str, external: List[str], errors: List[str]) -> Any:
    from tests.test_browser import _route_offline

    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.on("pageerror", lambda error: errors.append(f"JavaScript error: {error}"))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _route_offline(page, external)  # MathJax from the local package, anything else blocked
    page.goto(url, wait_until="load")
    return page


@pytest.mark.browser
def test_every_question_answers_wrong_then_right_in_chromium(chromium, quiz_page_url):
    from tests.quizbrowser import answer_question, quiz_questions

    external: List[str] = []
    errors: List[str] = []
    page = _open(chromium, quiz_page_url, external, errors)
    questions = quiz_questions(page)
    assert questions.count() == 3  # two from exercise_demo.json, one from the list
    problems = []
    for index in range(questions.count()):
        problems += [f"question {index + 1}: {p}" for p in answer_question(questions.nth(index))]
    assert not problems, "\n".join(problems)
    # The formulas of the quiz were typeset by the page's MathJax, offline.
    assert page.locator("div.course-quiz .Quiz mjx-container").count() >= 1
    assert "输入数值后按回车键" in page.locator("div.course-quiz").first.inner_text()
    # HTML in the text shows as typed, and the list quiz keeps its order.
    third = questions.nth(2).inner_text()
    assert "注意力门 <a & b>" in third and third.index("遗忘门") < third.index("输入门")
    page.wait_for_timeout(800)  # jupyterquiz looks at MathJax again after 500 ms
    page.close()
    assert not external, f"the quiz fetched from the network: {external}"
    assert not errors, errors


@pytest.mark.browser
def test_the_browser_helper_catches_a_quiz_without_explanations(chromium, quiz_page_url):
    """answer_one_question reports a wrong answer whose explanation is not shown."""
    from tests.quizbrowser import answer_one_question

    page = _open(chromium, quiz_page_url, [], [])
    assert answer_one_question(page) == []
    # Plant defects: wrong choices without their explanation (jupyterquiz then shows its
    # generic "Incorrect -- try again."), and a right number with an empty one.
    page.eval_on_selector_all(
        'div.course-quiz .Quiz label.MCButton[data-correct="false"]',
        "labels => labels.forEach(l => l.removeAttribute('data-feedback'))",
    )
    assert answer_one_question(page) == [
        "wrong choice: the answer carries no explanation (data-feedback)"
    ]
    page.eval_on_selector(
        "div.course-quiz .Quiz input.Input-text",
        """box => { const answers = JSON.parse(box.dataset.answers);
                    answers[0].feedback = '';
                    box.dataset.answers = JSON.stringify(answers); }""",
    )
    assert answer_one_question(page, index=1) == [
        "right number: the answer carries no explanation (data-feedback)"
    ]
    assert answer_one_question(page, index=7) == [
        "the page has 3 quiz question(s), asked for number 7"
    ]
    page.close()
    empty = chromium.new_page()
    empty.set_content("<p>no quiz here</p>")
    assert answer_one_question(empty, timeout_ms=500) == [
        "no self-check quiz rendered on the page (TimeoutError)"
    ]
    empty.close()
