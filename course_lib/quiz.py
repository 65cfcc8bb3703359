"""Self-check quizzes at the end of each chapter, drawn by jupyterquiz.

``show_quiz("rnn")`` shows the questions of ``course_lib/quizzes/rnn.json``. The questions
ship inside the package, so that Colab, which gets only the notebook and a pip-installed
``course_lib``, has them without an answer key in a code cell. The quiz is one HTML output
with an inline script (the multiple-choice and numeric widgets of the jupyterquiz package),
so it works with a kernel (Jupyter, Colab, VS Code) and on the static book alike: myst-nb
keeps the executed ``text/html`` output, and nothing is fetched from the network.

Question files
--------------
A question file is ``course_lib/quizzes/<name>.json`` (UTF-8)::

    {
      "title": "自测题：循环神经网络",
      "questions": [ {...}, {...} ]
    }

``title`` is optional (shown above the quiz). Each question is one of two kinds.

Multiple choice (``"type": "multiple_choice"``, exactly one right answer, or
``"many_choice"``, two or more right answers to find)::

    {
      "type": "multiple_choice",
      "question": "LSTM 的遗忘门输出接近 0 时，会发生什么？",
      "answers": [
        {"answer": "细胞状态几乎被清空", "correct": true,
         "feedback": "对。c_t = f_t ⊙ c_{t-1} + ...，f_t≈0 时旧状态被乘以 0。"},
        {"answer": "梯度爆炸", "correct": false,
         "feedback": "不对。f_t≈0 让经过细胞状态的梯度变小，而不是变大。"}
      ]
    }

Every answer has ``answer`` (the choice), ``correct`` (true/false) and ``feedback``: why
this choice is right, or why it is wrong (the misconception it stands for). At least two
answers and at least one wrong answer.

Numeric (``"type": "numeric"``): the reader types a number (``0.125``, ``1/8``, ``1e-3``)
and presses Enter::

    {
      "type": "numeric",
      "question": "d_k = 64 时，缩放点积注意力把点积除以多少？",
      "value": 8, "tolerance": 0.01,
      "feedback": "对：除以 √d_k = 8，让点积的方差回到 1 左右。",
      "mistakes": [
        {"value": 64, "tolerance": 0.5, "feedback": "不对：除以的是 √d_k，不是 d_k。"}
      ],
      "feedback_wrong": "不对。想一想 q·k 的方差与 d_k 的关系。"
    }

An answer counts as right when it lies in ``[value - tolerance, value + tolerance]``
(``tolerance`` > 0, in the units of the answer). ``mistakes`` (optional) lists common wrong
answers, each with its own ``value``, ``tolerance`` and ``feedback``; ``feedback_wrong`` is
shown for any other number.

Text (``question``, ``answer``, ``feedback``) is plain text in Simplified Chinese: ``<`` and
``&`` are shown as typed, a line break is kept, ```code``` becomes code, and ``$...$``
becomes a formula. JupyterLab typesets formulas in questions and answers but shows one in a
feedback as raw TeX: write feedback formulas in Unicode (``√d_k``, ``e⁰ = 1``). A question
may add ``"code"``, a snippet shown under it; a choice question ``"answer_cols"`` (1-4).

Writing a chapter's quiz: name the file after the chapter (``rnn.json`` for
``book/rnn.ipynb``); 5-8 questions on the chapter's concepts, not on trivia; each wrong
choice stands for a real misconception and its feedback says why it fails (a counterexample
or the rule it breaks), the right one why it holds. Choices are shuffled on each display,
so never write "以上都对". ``tests/test_quiz.py`` validates every shipped file; to check one
while writing: ``python -c "from course_lib.quiz import load_quiz; load_quiz('rnn')"``.
``validate_questions`` says which question, which answer and which field is wrong.

In the chapter, the quiz is one code cell tagged ``remove-input`` (the book shows the quiz,
not the call; Jupyter and Colab show the one-line call, with no answers in it)::

    from course_lib.quiz import show_quiz

    show_quiz("rnn")
"""

from __future__ import annotations

import html
import json
import math
import re
import uuid
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

__all__ = [
    "QUIZ_DIR",
    "SELECTORS",
    "QuizFormatError",
    "load_quiz",
    "quiz_html",
    "quiz_names",
    "show_quiz",
    "to_jupyterquiz",
    "validate_questions",
]

#: Where the shipped question files live (``<name>.json``).
QUIZ_DIR = Path(__file__).resolve().parent / "quizzes"

#: CSS selectors of a rendered quiz, for browser tests (jupyterquiz's own class names).
SELECTORS: Dict[str, str] = {
    "quiz": "div.course-quiz",  # one show_quiz output
    "question": ".Quiz",  # one question: text, answers and feedback
    "choice": "label.MCButton",  # a multiple-choice answer; data-correct="true"/"false"
    "number": "input.Input-text",  # the numeric answer box (submit with Enter)
    "feedback": ".Feedback",  # gets class "correct" or "incorrect" after an answer
    "right": ".correctButton",  # the chosen answer (or number box) when right
    "wrong": ".incorrectButton",  # the chosen answer (or number box) when wrong
}

Questions = Union[str, Path, Sequence[Dict[str, Any]], Dict[str, Any]]

_CHOICE_TYPES = ("multiple_choice", "many_choice")
_NUMBER_PROMPT = "输入数值后按回车键（Enter）提交："


class QuizFormatError(ValueError):
    """A question file or list that does not follow the format of ``course_lib.quiz``."""


# ----------------------------------------------------------------------------- loading


def quiz_names() -> List[str]:
    """Names of the question files shipped in ``course_lib/quizzes`` (sorted)."""
    return sorted(path.stem for path in QUIZ_DIR.glob("*.json"))


def load_quiz(name_or_path: Union[str, Path]) -> Dict[str, Any]:
    """Read and validate a quiz: a shipped name (``"rnn"``) or a path to a ``.json`` file.

    Returns ``{"title": str or None, "questions": [question, ...]}`` in the file's format.
    """
    path = Path(name_or_path)
    if path.suffix != ".json":
        if not isinstance(name_or_path, str) or not re.fullmatch(r"[\w-]+", name_or_path):
            raise ValueError(
                f"name_or_path must be a quiz name ({', '.join(quiz_names())}) or a .json "
                f"file, got {name_or_path!r}"
            )
        path = QUIZ_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ValueError(
                f"no quiz named {name_or_path!r}; shipped quizzes: {', '.join(quiz_names())}"
            )
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise QuizFormatError(f"{path.name}: not valid JSON: {error}") from error
    return _validate_quiz(content, path.name)


def _validate_quiz(content: Any, source: str) -> Dict[str, Any]:
    if isinstance(content, list):
        content = {"questions": content}
    if not isinstance(content, dict) or "questions" not in content:
        raise QuizFormatError(
            f'{source}: expected an object {{"title": ..., "questions": [...]}} or a list '
            f"of questions, got {type(content).__name__}"
        )
    unknown = set(content) - {"title", "questions"}
    if unknown:
        raise QuizFormatError(f"{source}: unknown key(s) {sorted(unknown)}")
    title = content.get("title")
    if title is not None and not _nonempty_text(title):
        raise QuizFormatError(f"{source}: title must be non-empty text, got {title!r}")
    return {"title": title, "questions": validate_questions(content["questions"], source)}


# --------------------------------------------------------------------------- validation


def _nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require_keys(item: Dict[str, Any], required: Sequence[str], optional: Sequence[str],
                  where: str) -> None:  # fmt: skip
    missing = ", ".join(repr(key) for key in required if key not in item)
    unknown = sorted(set(item) - set(required) - set(optional))
    if missing:
        typo = f" (and unknown key(s) {unknown}: a typo?)" if unknown else ""
        raise QuizFormatError(f"{where}: missing {missing}{typo}")
    if unknown:
        raise QuizFormatError(f"{where}: unknown key(s) {unknown}")


def _require_text(item: Dict[str, Any], key: str, where: str) -> None:
    if not _nonempty_text(item[key]):
        raise QuizFormatError(f"{where}: {key!r} must be non-empty text, got {item[key]!r}")


def _validate_choice(question: Dict[str, Any], where: str) -> None:
    _require_keys(question, ["type", "question", "answers"], ["code", "answer_cols"], where)
    columns = question.get("answer_cols", 1)
    if not isinstance(columns, int) or isinstance(columns, bool) or not 1 <= columns <= 4:
        raise QuizFormatError(
            f"{where}: 'answer_cols' must be an integer in [1, 4], got {columns!r}"
        )
    answers = question["answers"]
    if not isinstance(answers, list) or len(answers) < 2:
        raise QuizFormatError(f"{where}: 'answers' must be a list of at least 2 answers")
    for number, answer in enumerate(answers, start=1):
        here = f"{where}, answer {number}"
        if not isinstance(answer, dict):
            raise QuizFormatError(f"{here}: must be an object, got {type(answer).__name__}")
        _require_keys(answer, ["answer", "correct", "feedback"], ["code"], here)
        _require_text(answer, "answer", here)
        _require_text(answer, "feedback", here)
        if not isinstance(answer["correct"], bool):
            raise QuizFormatError(f"{here}: 'correct' must be true or false")
    right = sum(answer["correct"] for answer in answers)
    if question["type"] == "multiple_choice" and right != 1:
        raise QuizFormatError(
            f"{where}: a multiple_choice question needs exactly 1 correct answer, got {right} "
            "(use many_choice for several)"
        )
    if question["type"] == "many_choice" and right < 2:
        raise QuizFormatError(
            f"{where}: a many_choice question needs at least 2 correct answers, got {right} "
            "(use multiple_choice for one)"
        )
    if right == len(answers):
        raise QuizFormatError(f"{where}: every answer is correct; add a wrong one")


def _validate_number(item: Dict[str, Any], where: str) -> None:
    if not _is_number(item["value"]):
        raise QuizFormatError(f"{where}: 'value' must be a finite number, got {item['value']!r}")
    tolerance = item["tolerance"]
    if not _is_number(tolerance) or tolerance <= 0:
        raise QuizFormatError(f"{where}: 'tolerance' must be a number > 0, got {tolerance!r}")


def _validate_numeric(question: Dict[str, Any], where: str) -> None:
    _require_keys(
        question,
        ["type", "question", "value", "tolerance", "feedback", "feedback_wrong"],
        ["code", "mistakes"],
        where,
    )
    _validate_number(question, where)
    _require_text(question, "feedback", where)
    _require_text(question, "feedback_wrong", where)
    mistakes = question.get("mistakes", [])
    if not isinstance(mistakes, list):
        raise QuizFormatError(f"{where}: 'mistakes' must be a list")
    for number, mistake in enumerate(mistakes, start=1):
        here = f"{where}, mistake {number}"
        if not isinstance(mistake, dict):
            raise QuizFormatError(f"{here}: must be an object, got {type(mistake).__name__}")
        _require_keys(mistake, ["value", "tolerance", "feedback"], [], here)
        _validate_number(mistake, here)
        _require_text(mistake, "feedback", here)
        gap = abs(mistake["value"] - question["value"])
        if gap <= mistake["tolerance"] + question["tolerance"]:
            raise QuizFormatError(
                f"{here}: value {mistake['value']} ± {mistake['tolerance']} overlaps the right "
                f"answer {question['value']} ± {question['tolerance']}"
            )


def validate_questions(questions: Any, source: str = "questions") -> List[Dict[str, Any]]:
    """Check a list of questions in the format of this module; return it unchanged.

    Raises ``QuizFormatError`` (a ``ValueError``) naming ``source``, the question (from 1)
    and the field: every question needs its text and a right answer; every choice a
    feedback; numeric questions a ``value``, a ``tolerance`` > 0 and the feedback for a
    right and a wrong number.
    """
    if not isinstance(questions, list) or not questions:
        raise QuizFormatError(f"{source}: 'questions' must be a non-empty list of questions")
    for number, question in enumerate(questions, start=1):
        where = f"{source}, question {number}"
        if not isinstance(question, dict):
            raise QuizFormatError(f"{where}: must be an object, got {type(question).__name__}")
        kind = question.get("type")
        if kind in _CHOICE_TYPES:
            _validate_choice(question, where)
        elif kind == "numeric":
            _validate_numeric(question, where)
        else:
            raise QuizFormatError(
                f"{where}: 'type' must be one of {[*_CHOICE_TYPES, 'numeric']}, got {kind!r}"
            )
        _require_text(question, "question", where)
        if "code" in question and not _nonempty_text(question["code"]):
            raise QuizFormatError(f"{where}: 'code' must be non-empty text")
    return list(questions)


# ------------------------------------------------------------------- jupyterquiz format


def _text_to_html(text: str) -> str:
    """Plain text to HTML: escape markup, ```code``` to <code>, line breaks to <br>."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return escaped.replace("\n", "<br>")


def _number_range(value: float, tolerance: float) -> List[float]:
    # jupyterquiz ranges are half-open [low, high): nudge high so that value + tolerance counts.
    return [value - tolerance, math.nextafter(value + tolerance, math.inf)]


def _convert_question(question: Dict[str, Any]) -> Dict[str, Any]:
    converted: Dict[str, Any] = {
        "type": question["type"],
        "question": _text_to_html(question["question"]),
    }
    if "code" in question:
        converted["code"] = html.escape(question["code"], quote=False)
    if question["type"] in _CHOICE_TYPES:
        converted["answers"] = [
            {
                "answer": _text_to_html(answer["answer"]),
                "correct": answer["correct"],
                "feedback": _text_to_html(answer["feedback"]),
                **({"code": html.escape(answer["code"], quote=False)} if "code" in answer else {}),
            }
            for answer in question["answers"]
        ]
        if "answer_cols" in question:
            converted["answer_cols"] = question["answer_cols"]
        return converted
    # Numeric: the right range first (jupyterquiz stops at the first range that matches).
    rows = [(question["value"], question["tolerance"], question["feedback"], True)]
    rows += [
        (m["value"], m["tolerance"], m["feedback"], False) for m in question.get("mistakes", [])
    ]
    converted["answers"] = [
        {"type": "range", "range": _number_range(value, tolerance), "correct": correct,
         "feedback": _text_to_html(feedback)}
        for value, tolerance, feedback, correct in rows
    ] + [{"type": "default", "feedback": _text_to_html(question["feedback_wrong"])}]  # fmt: skip
    return converted


def to_jupyterquiz(questions: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Validate questions of this module's format and convert them to jupyterquiz's."""
    return [_convert_question(question) for question in validate_questions(list(questions))]


# ---------------------------------------------------------------------------- rendering

# jupyterquiz typesets formulas with whatever the global MathJax is: MathJax.typeset (3) or
# MathJax.Hub (2). The book loads MathJax 3 deferred, and JupyterLab 4 has a MathJax object
# without typeset; on either, jupyterquiz throws, or fetches a second MathJax from a CDN. So
# the quiz runs once the page's MathJax is ready (or at once when there is none), and sees
# MathJax only when it can typeset (a local variable that shadows the global one).
_WHEN_MATH_READY = """
function whenMathReady(run, waited) {
  var mathjax = window.MathJax;
  if (mathjax && mathjax.startup && mathjax.startup.promise) {
    mathjax.startup.promise.then(run);
  } else if (!mathjax || typeof mathjax.typeset === "function" || mathjax.Hub || waited) {
    run();
  } else {
    document.addEventListener("DOMContentLoaded", function () { whenMathReady(run, true); });
  }
}
function usableMathJax() {
  var mathjax = window.MathJax;
  return mathjax && (typeof mathjax.typeset === "function" || mathjax.Hub) ? mathjax : undefined;
}
"""


#: jupyterquiz's default palette (display_quiz keeps it inside the function).
_COLORS = {
    "--jq-multiple-choice-bg": "#392061",
    "--jq-mc-button-bg": "#fafafa",
    "--jq-mc-button-border": "#e0e0e0e0",
    "--jq-mc-button-inset-shadow": "#555555",
    "--jq-many-choice-bg": "#f75c03ff",
    "--jq-numeric-bg": "#392061ff",
    "--jq-numeric-input-bg": "#c0c0c0",
    "--jq-numeric-input-label": "#101010",
    "--jq-numeric-input-shadow": "#999999",
    "--jq-string-bg": "#4c1a57",
    "--jq-incorrect-color": "#c80202",
    "--jq-correct-color": "#009113",
    "--jq-text-color": "#fafafa",
    "--jq-link-color": "#9abafa",
}


def _jupyterquiz_parts(
    questions: List[Dict[str, Any]], div_id: str, shuffle: bool
) -> Tuple[str, str, str]:
    """The container, styles and script that jupyterquiz's display_quiz would display."""
    try:
        from jupyterquiz.dynamic.loader import load_questions_script
        from jupyterquiz.dynamic.renderer import build_script, build_styles, render_div
    except ImportError as error:
        raise ImportError(
            "course_lib.quiz needs jupyterquiz 2.9.4 or later: pip install 'jupyterquiz>=2.9,<3'"
        ) from error

    prefix, static, url = load_questions_script(questions, div_id)
    container = render_div(
        div_id, shuffle_questions=False, shuffle_answers=shuffle, preserve_responses=False,
        num=1_000_000, max_width=700, border_radius=10, question_alignment="left",
    )  # fmt: skip
    styles = build_styles(div_id, _COLORS)
    script = build_script(prefix, static, url, div_id, True)
    return container + "</div>", styles, script.replace("Type numeric answer here:", _NUMBER_PROMPT)


def _resolve(name_or_questions: Questions) -> Dict[str, Any]:
    if isinstance(name_or_questions, (str, Path)):
        return load_quiz(name_or_questions)
    if isinstance(name_or_questions, (list, tuple, dict)):
        content = name_or_questions
        return _validate_quiz(list(content) if isinstance(content, tuple) else content, "questions")
    raise TypeError(
        "name_or_questions must be a quiz name, a path to a .json file, a list of questions "
        f"or a quiz object, got {type(name_or_questions).__name__}"
    )


def quiz_html(name_or_questions: Questions, shuffle_answers: bool = True) -> str:
    """The quiz as one self-contained HTML fragment (container, styles, inline script).

    ``name_or_questions`` is a shipped quiz name (``"rnn"``), a path to a question file, a
    list of questions or a ``{"title": ..., "questions": [...]}`` object (see the module
    docstring for the format). ``shuffle_answers`` reorders the choices on every display.
    """
    quiz = _resolve(name_or_questions)
    questions = [_convert_question(question) for question in quiz["questions"]]
    # A fresh id per display: the script finds its container by id (and by window[id]).
    div_id = f"courseQuiz{uuid.uuid4().hex[:12]}"
    container, styles, script = _jupyterquiz_parts(questions, div_id, shuffle_answers)
    # Everything jupyterquiz defines stays local to this quiz (several quizzes on a page).
    body = f"(function () {{\n{_WHEN_MATH_READY}\nwhenMathReady(function () {{\n"
    body += f"var MathJax = usableMathJax();\n{script}\n}}, "
    body += 'document.readyState !== "loading");\n})();'
    body = body.replace("</", "<\\/")
    title = f"<p><strong>{html.escape(quiz['title'])}</strong></p>\n" if quiz["title"] else ""
    return (
        f'<div class="course-quiz">\n{title}{container}\n{styles}\n'
        f"<script>\n{body}\n</script>\n</div>"
    )


def _plain_text(quiz: Dict[str, Any]) -> str:
    lines = [quiz["title"] or "自测题"]
    for number, question in enumerate(quiz["questions"], start=1):
        lines.append(f"{number}. {question['question']}")
        for letter, answer in zip("ABCDEFGH", question.get("answers", [])):
            lines.append(f"   {letter}. {answer['answer']}")
    lines.append("（在 Jupyter、Colab 或书的网页中可以作答并看到解释。）")
    return "\n".join(lines)


def show_quiz(name_or_questions: Questions, shuffle_answers: bool = True) -> None:
    """Display a self-check quiz below the cell (see ``quiz_html`` for the arguments).

    In a notebook the quiz is interactive: a wrong choice shows why it is wrong, the right
    one why it is right. In a plain script the questions are printed without the answers.
    """
    from course_lib.utils import _in_notebook

    quiz = _resolve(name_or_questions)
    if not _in_notebook():
        print(_plain_text(quiz))
        return
    from IPython.display import display

    bundle = {"text/html": quiz_html(quiz, shuffle_answers), "text/plain": _plain_text(quiz)}
    display(bundle, raw=True)
