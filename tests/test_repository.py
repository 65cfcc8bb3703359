"""The repository URL: written once in _config.yml, every copy checked, one command for a fork.

The rename is tested on a scratch clone of this repository (the committed state), so the real
checkout is never touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import repository
from tools.repository import Repository, parse_url, read_repository

ROOT = Path(__file__).resolve().parent.parent
FORK = "https://github.com/Some-Teacher/my-course"


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    target = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return target


def test_every_copy_of_the_repository_url_agrees_with_the_config():
    assert repository.check(ROOT) == []


def test_course_lib_literal_is_the_configured_url():
    import course_lib

    assert course_lib.REPOSITORY_URL == read_repository(ROOT).url


def test_parse_url_rejects_what_is_not_a_github_repository():
    assert parse_url("https://github.com/a-b/c.d_e") == Repository("a-b", "c.d_e")
    assert Repository("Org", "x").pages_url == "https://org.github.io/x/"
    for bad in [
        "https://github.com/a/b.git",
        "https://github.com/a/b/",
        "http://github.com/a/b",
        "https://gitlab.com/a/b",
        "https://github.com/a",
        "github.com/a/b",
    ]:
        with pytest.raises(ValueError, match="url must look like"):
            parse_url(bad)


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("pyproject.toml", r'^Repository = "https://github\.com/[^"]+"$'),
        ("pyproject.toml", r'^Issues = "https://github\.com/[^"]+/issues"$'),
        ("pyproject.toml", r'^Documentation = "https://[^"]+"$'),
        ("course_lib/__init__.py", r'^REPOSITORY_URL = "[^"]+"$'),
        ("book/rnn.ipynb", r'REPOSITORY_URL = \\"[^"\\]+\\"'),
        ("book/exercises/rnn.ipynb", r'REPOSITORY_URL = \\"[^"\\]+\\"'),
        ("README.md", r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/"),
        ("book/appendix/setup.md", r"git clone https://github\.com/[^ ]+\.git"),
        ("book/appendix/setup.md", r"colab\.research\.google\.com/github/[^/]+/[^/]+/blob/"),
    ],
)
def test_check_reports_a_copy_that_disagrees(clone, path, pattern):
    file = clone / path
    text = file.read_text(encoding="utf-8")
    match = re.search(pattern, text, flags=re.MULTILINE)
    assert match is not None, f"{path} has no copy of the URL"
    original = read_repository(clone)
    other = match.group(0).replace(original.owner, "someone-else", 1)
    assert other != match.group(0)
    file.write_text(text[: match.start()] + other + text[match.end() :], encoding="utf-8")
    problems = repository.check(clone)
    assert problems and all(problem.startswith(path) for problem in problems), problems
    result = _run(["-m", "tools.repository", "check"], clone)
    assert result.returncode == 1 and path in result.stdout, result.stdout + result.stderr


def test_check_reports_a_copy_that_is_gone(clone):
    file = clone / "pyproject.toml"
    text = file.read_text(encoding="utf-8")
    file.write_text(re.sub(r"(?m)^Issues = .*\n", "", text), encoding="utf-8")
    assert repository.check(clone) == [
        f"pyproject.toml: has no [project.urls] Issues naming {read_repository(clone).url}"
    ]


def test_check_reports_a_mention_left_behind_by_a_fork(clone):
    name = read_repository(clone).name
    (clone / "NOTES.md").write_text(f"see https://github.com/old-owner/{name}/issues/1\n")
    subprocess.run(["git", "add", "NOTES.md"], cwd=clone, check=True)
    assert repository.check(clone) == [
        f"NOTES.md:1: github.com/old-owner/{name} is not {read_repository(clone).slug}"
    ]


def test_set_repository_rewrites_every_copy_on_a_scratch_clone(clone):
    old = read_repository(clone)
    result = _run(["-m", "tools.repository", "set-repository", FORK], clone)
    assert result.returncode == 0, result.stdout + result.stderr

    new = read_repository(clone)
    assert (new.url, new.branch) == (FORK, old.branch)
    leftovers = subprocess.run(
        ["git", "grep", "-l", "-i", "-e", old.slug, "-e", f"{old.owner}.github.io"],
        cwd=clone, capture_output=True, text=True,
    )  # fmt: skip
    assert leftovers.stdout == "", f"old repository still named in:\n{leftovers.stdout}"
    changed = set(
        subprocess.run(
            ["git", "diff", "--name-only"], cwd=clone, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    notebooks = {p.relative_to(clone).as_posix() for p in (clone / "book").rglob("*.ipynb")}
    expected = {"_config.yml", "pyproject.toml", "course_lib/__init__.py", "README.md"}
    assert expected | {"book/appendix/setup.md"} | notebooks <= changed
    assert f"cd {new.name}\n" in (clone / "book/appendix/setup.md").read_text(encoding="utf-8")
    assert 'Documentation = "https://some-teacher.github.io/my-course/"' in (
        clone / "pyproject.toml"
    ).read_text(encoding="utf-8")

    for command in (["-m", "tools.repository", "check"], ["-m", "tools.student", "--check"]):
        result = _run(command, clone)
        assert result.returncode == 0, result.stdout + result.stderr
    installed_url = _run(["-c", "import course_lib; print(course_lib.REPOSITORY_URL)"], clone)
    assert installed_url.stdout.strip() == FORK, installed_url.stderr

    again = _run(["-m", "tools.repository", "set-repository", FORK], clone)
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_set_repository_refuses_a_bad_url_and_changes_nothing(clone):
    result = _run(["-m", "tools.repository", "set-repository", "https://github.com/a/b.git"], clone)
    assert result.returncode == 2 and "url must look like" in result.stderr
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
