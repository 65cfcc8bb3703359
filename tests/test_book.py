"""Glued numbers and checked claims (``course_lib.book``), and the build that makes them strict.

The strict build is shown on a one-page book made for the test
(``tests/fixtures/claim_book``): with its default hyper-parameter the claim holds and the
glued number renders; with a learning rate that makes the claim false the build fails and
names the claim; the same notebook run as a student runs it prints a warning and goes on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from course_lib import book

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "claim_book"
CLAIM = "20 steps of gradient descent bring x^2 below 0.01"


@pytest.fixture
def full_mode(monkeypatch):
    monkeypatch.delenv("COURSE_FAST", raising=False)


def test_claim_outside_the_build_warns_and_goes_on(full_mode, monkeypatch, capsys):
    monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)
    assert book.claim("two is more than one", 2 > 1) is True
    assert capsys.readouterr().out == ""
    assert book.claim("one is more than two", 1 > 2, "1 vs 2") is False
    out = capsys.readouterr().out
    assert "⚠" in out and "one is more than two" in out and "1 vs 2" in out


def test_claim_in_a_full_build_raises_naming_the_claim(full_mode, monkeypatch):
    monkeypatch.setenv("COURSE_BOOK_BUILD", "1")
    assert book.strict_claims()
    assert book.claim("holds", torch.tensor(True)) is True
    with pytest.raises(book.ClaimError, match=r"'one is more than two' \(measured: 1 vs 2\)"):
        book.claim("one is more than two", 1 > 2, "1 vs 2")


def test_claims_are_not_checked_in_fast_mode(monkeypatch, capsys):
    monkeypatch.setenv("COURSE_FAST", "1")
    monkeypatch.setenv("COURSE_BOOK_BUILD", "1")
    assert not book.strict_claims()
    assert book.claim("false, but fast mode trains too little to say", False) is True
    assert capsys.readouterr().out == ""


def test_claim_needs_a_statement():
    with pytest.raises(ValueError, match="statement"):
        book.claim("  ", True)


def test_glue_stores_plain_numbers_and_is_silent_outside_the_build(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)
    value = torch.tensor(0.25)
    assert book.glue("accuracy", value) is value
    assert capsys.readouterr().out == ""
    assert book._plain(torch.tensor(3)) == 3 and isinstance(book._plain(torch.tensor(3)), int)
    assert isinstance(book._plain(torch.tensor(0.5, dtype=torch.float64)), float)
    with pytest.raises(ValueError, match="identifier"):
        book.glue("test accuracy", 0.5)
    with pytest.raises(ValueError, match="finite"):
        book.glue("loss", float("nan"))


def _book_copy(tmp_path: Path, learning_rate: float) -> Path:
    """The fixture book with the given learning rate and the project's Sphinx extension."""
    target = tmp_path / "claim_book"
    shutil.copytree(FIXTURE, target)
    config = (target / "_config.yml").read_text(encoding="utf-8")
    config = config.replace(
        "sphinx:\n", f"sphinx:\n  local_extensions:\n    course_book: {ROOT / 'book' / '_ext'}\n"
    )
    (target / "_config.yml").write_text(config, encoding="utf-8")
    page = target / "descent.ipynb"
    text = page.read_text(encoding="utf-8")
    assert "learning_rate = 0.25" in text
    page.write_text(text.replace("learning_rate = 0.25", f"learning_rate = {learning_rate}"))
    return target


def _build(path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_FAST", "COURSE_BOOK_BUILD")}
    command = "from jupyter_book.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", command, "build", str(path), "-W", "--keep-going"],
        cwd=path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_strict_build_renders_glue_and_fails_on_a_false_claim(tmp_path):
    good = _build(_book_copy(tmp_path / "good", learning_rate=0.25))
    assert good.returncode == 0, good.stdout[-3000:] + good.stderr[-3000:]
    page = (tmp_path / "good" / "claim_book" / "_build" / "html" / "descent.html").read_text()
    # x = 1 * (1 - 2 * 0.25) ** 20, so x^2 = 0.5 ** 40
    assert f"{0.5**40:.2e}" in page
    assert "the page goes on" in page
    assert CLAIM not in page  # the check cell is removed from the page

    bad = _build(_book_copy(tmp_path / "bad", learning_rate=0.01))
    log = bad.stdout + bad.stderr
    assert bad.returncode != 0, log[-3000:]
    assert "ClaimError" in log and CLAIM in log


def test_the_same_notebook_run_by_a_student_warns_and_goes_on(tmp_path):
    notebook = nbformat.read(_book_copy(tmp_path, 0.01) / "descent.ipynb", as_version=4)
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_FAST", "COURSE_BOOK_BUILD")}
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute(env=env)
    outputs = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert re.search(r"⚠.*" + re.escape(CLAIM), outputs)
    assert "the page goes on" in outputs


def test_execution_time_report_flags_slow_chapters_and_fast_builds(capsys):
    from benchmarks.bench_book import CHAPTERS, report

    notebooks = {f"book/{name}": {"seconds": 100.0, "method": "cache"} for name in CHAPTERS}
    record = {"mode": "full", "cpu_count": 2, "notebooks": notebooks}
    assert report(record) == []
    notebooks["book/rnn"]["seconds"] = 301.0
    del notebooks["book/generative"]
    problems = report(dict(record, mode="fast"))
    assert "book/rnn took 301 s (limit 300 s)" in problems
    assert "book/generative is missing from the record" in problems
    assert "the build was in fast mode, not full mode" in problems
    assert "OVER THE LIMIT" in capsys.readouterr().out
