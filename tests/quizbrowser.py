"""Answer a self-check quiz in a browser page, as a reader would (for Playwright tests).

``answer_one_question(page)`` waits for the quizzes of a loaded page to render, answers one
question wrongly and checks that the explanation of that wrong answer is shown and marked
wrong, then answers it rightly and checks that it is marked right with its explanation. It
returns the problems found (an empty list: all good), in the style of ``check_page`` in
``tests/test_browser.py``::

    from tests.quizbrowser import answer_one_question

    problems += answer_one_question(page)  # first question of the page
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from course_lib.quiz import SELECTORS

#: The text outside formulas of an HTML fragment (formulas are typeset by MathJax).
_TEXT_OUTSIDE_MATH = """html => {
    const box = document.createElement('div');
    box.innerHTML = html;
    return box.textContent.split(/\\$[^$]*\\$/).map(s => s.trim()).filter(s => s);
}"""


def quiz_questions(page: Any, timeout_ms: float = 20000) -> Any:
    """The rendered questions of every quiz on the page (a Playwright locator).

    Waits until at least one question is drawn (the book draws quizzes once MathJax is ready).
    """
    selector = f"{SELECTORS['quiz']} {SELECTORS['question']}"
    page.wait_for_selector(selector, timeout=timeout_ms)
    return page.locator(selector)


def _feedback_problems(
    question: Any, expected_html: Optional[str], verdict: str, what: str
) -> List[str]:
    if not expected_html:
        return [f"{what}: the answer carries no explanation (data-feedback)"]
    feedback = question.locator(SELECTORS["feedback"])
    if feedback.count() != 1:
        return [f"{what}: expected one feedback box, found {feedback.count()}"]
    classes = (feedback.get_attribute("class") or "").split()
    problems = [] if verdict in classes else [f"{what}: feedback not marked {verdict!r}: {classes}"]
    shown = feedback.inner_text()
    for piece in question.page.evaluate(_TEXT_OUTSIDE_MATH, expected_html):
        if piece not in shown:
            problems.append(f"{what}: feedback {shown!r} lacks the explanation {piece!r}")
    return problems


def _answer_choice(question: Any) -> List[str]:
    wrong = question.locator(f'{SELECTORS["choice"]}[data-correct="false"]').first
    right = question.locator(f'{SELECTORS["choice"]}[data-correct="true"]').first
    wrong.click()
    problems = _feedback_problems(question, wrong.get_attribute("data-feedback"), "incorrect",
                                  "wrong choice")  # fmt: skip
    if "incorrectButton" not in (wrong.get_attribute("class") or ""):
        problems.append("wrong choice: not marked wrong after the click")
    right.click()
    problems += _feedback_problems(question, right.get_attribute("data-feedback"), "correct",
                                   "right choice")  # fmt: skip
    if "correctButton" not in (right.get_attribute("class") or ""):
        problems.append("right choice: not marked right after the click")
    return problems


def _submit_number(box: Any, text: str) -> None:
    box.fill(text)
    box.press("Enter")


def _answer_number(question: Any) -> List[str]:
    box = question.locator(SELECTORS["number"])
    answers: List[Dict[str, Any]] = json.loads(box.get_attribute("data-answers"))
    ranges = [answer for answer in answers if answer.get("type") == "range"]
    default = next(answer for answer in answers if answer.get("type") == "default")
    right = next(answer for answer in ranges if answer["correct"])
    # A number outside every range gets the general feedback for a wrong number.
    outside = max(abs(bound) for answer in ranges for bound in answer["range"]) * 2 + 1
    _submit_number(box, f"{outside:.6g}")
    problems = _feedback_problems(question, default["feedback"], "incorrect", "wrong number")
    if "incorrectButton" not in (box.get_attribute("class") or ""):
        problems.append("wrong number: the box is not marked wrong")
    _submit_number(box, f"{sum(right['range']) / 2:.12g}")
    problems += _feedback_problems(question, right["feedback"], "correct", "right number")
    if "correctButton" not in (box.get_attribute("class") or ""):
        problems.append("right number: the box is not marked right")
    return problems


def answer_question(question: Any) -> List[str]:
    """Answer one rendered question (a locator) wrongly, then rightly; return the problems."""
    if question.locator(SELECTORS["choice"]).count():
        return _answer_choice(question)
    if question.locator(SELECTORS["number"]).count():
        return _answer_number(question)
    return ["a quiz question with neither choices nor a number box"]


def answer_one_question(page: Any, index: int = 0, timeout_ms: Optional[float] = None) -> List[str]:
    """Answer question ``index`` (counting all quizzes of the page) wrongly, then rightly.

    Returns the problems found; a page without a rendered quiz is one problem.
    """
    try:
        questions = quiz_questions(page, **({"timeout_ms": timeout_ms} if timeout_ms else {}))
    except Exception as error:  # Playwright's TimeoutError
        return [f"no self-check quiz rendered on the page ({type(error).__name__})"]
    if index >= questions.count():
        return [f"the page has {questions.count()} quiz question(s), asked for number {index}"]
    return answer_question(questions.nth(index))
