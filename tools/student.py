"""Keep the chapter notebooks tidy and write their student editions.

Usage::

    python -m tools.student           # normalise book/**/*.ipynb, write book/exercises/
    python -m tools.student --check   # exit 1 if anything is out of date (used by CI and tests)
    python -m tools.student rnn       # only book/rnn.ipynb and its student edition

A chapter notebook holds each exercise with its solution. A solution cell is a code cell
tagged ``solution``; inside a function or class it marks the part the student writes::

    def rnn_step(x, h, W_xh, W_hh, b_h):
        ### BEGIN SOLUTION
        return torch.tanh(x @ W_xh.T + h @ W_hh.T + b_h)
        ### END SOLUTION

Normalising a chapter notebook (1) makes its first code cell the canonical setup cell
(it installs ``course_lib`` from the repository named in ``_config.yml``),
(2) gives every solution cell the ``hide-input`` tag (a toggle in the rendered book) and
a Colab ``# @title`` form header (collapsed on Colab), and (3) strips outputs. The
student edition is the same notebook with every marked region replaced by
``raise NotImplementedError(...)`` naming the exercise, and the solution cells shown.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from tools.repository import Repository, read_repository

__all__ = [
    "SOLUTION_TITLE",
    "normalise_notebook",
    "setup_cell",
    "student_edition",
    "sync",
]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION_TAG, HIDE_TAG, SETUP_TAG = "solution", "hide-input", "setup"
SOLUTION_TITLE = "# @title 参考解答（先自己做，再展开对照）"
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def setup_cell(repository: Repository) -> str:
    """The first code cell of every notebook: installs ``course_lib`` from ``repository``."""
    return (
        "# 环境设置：没有 course_lib 时（例如在 Colab 上）从仓库安装；本地已安装则什么也不做。\n"
        "import importlib.util\n"
        "import os\n"
        "import subprocess\n"
        "import sys\n"
        "\n"
        f'REPOSITORY_URL = "{repository.url}"\n'
        'if importlib.util.find_spec("course_lib") is None:\n'
        '    source = os.environ.get("COURSE_LIB_SOURCE", f"git+{REPOSITORY_URL}@'
        f'{repository.branch}")\n'
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], check=True)\n'
        "    importlib.invalidate_caches()\n"
        "\n"
        "import course_lib\n"
        "\n"
        "course_lib.describe_environment()"
    )


def _source(cell: Dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tags(cell: Dict[str, Any]) -> List[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _set_tags(cell: Dict[str, Any], tags: Sequence[str]) -> None:
    metadata = cell.setdefault("metadata", {})
    if tags:
        metadata["tags"] = list(dict.fromkeys(tags))
    else:
        metadata.pop("tags", None)


def _exercise_name(source: str, where: str) -> str:
    match = re.search(r"^\s*(?:def|class)\s+(\w+)", source, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"{where}: a solution cell must define a function or class")
    return match.group(1)


def _stub(source: str, where: str) -> str:
    """Replace each BEGIN/END SOLUTION region by a NotImplementedError naming the exercise."""
    name = _exercise_name(source, where)
    out: List[str] = []
    inside = False
    regions = 0
    for number, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: nested {BEGIN}")
            indent = line[: len(line) - len(line.lstrip())]
            if not indent:
                raise ValueError(
                    f"{where}, line {number}: {BEGIN} must sit inside a function or class "
                    "(a stub at top level would stop the notebook)"
                )
            out.append(f'{indent}raise NotImplementedError("练习「{name}」：请在这里写你的代码")')
            inside, regions = True, regions + 1
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} is never closed by {END}")
    if regions == 0:
        raise ValueError(f"{where}: a solution cell needs a {BEGIN} ... {END} region")
    return "\n".join(out)


def _strip_outputs(notebook: Dict[str, Any]) -> None:
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook["cells"]:
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)


def _without_title(source: str) -> str:
    lines = source.split("\n")
    if lines and lines[0].startswith("# @title"):
        lines = lines[1:]
    return "\n".join(lines)


def normalise_notebook(
    notebook: Dict[str, Any], setup: str, where: str = "notebook"
) -> Dict[str, Any]:
    """Canonical chapter notebook: ``setup`` as first code cell, solutions tagged, no outputs."""
    notebook = copy.deepcopy(notebook)
    _strip_outputs(notebook)
    notebook["metadata"] = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    code_cells = [cell for cell in notebook["cells"] if cell.get("cell_type") == "code"]
    if not code_cells:
        raise ValueError(f"{where}: has no code cell for the setup")
    first = code_cells[0]
    first["source"] = setup
    _set_tags(first, [*_tags(first), SETUP_TAG])
    for index, cell in enumerate(notebook["cells"]):
        if cell.get("cell_type") != "code" or SOLUTION_TAG not in _tags(cell):
            continue
        body = _without_title(_source(cell)).lstrip("\n")
        _stub(body, f"{where}, cell {index}")  # validates the markers
        cell["source"] = f"{SOLUTION_TITLE}\n{body}"
        _set_tags(cell, [*_tags(cell), HIDE_TAG])
        cell.setdefault("metadata", {})["cellView"] = "form"
    return notebook


def student_edition(
    notebook: Dict[str, Any], setup: str, where: str = "notebook"
) -> Dict[str, Any]:
    """The normalised notebook with every solution region replaced by a NotImplementedError stub."""
    student = normalise_notebook(notebook, setup, where)
    for index, cell in enumerate(student["cells"]):
        if cell.get("cell_type") != "code" or SOLUTION_TAG not in _tags(cell):
            continue
        cell["source"] = _stub(_without_title(_source(cell)), f"{where}, cell {index}")
        _set_tags(cell, [tag for tag in _tags(cell) if tag != HIDE_TAG])
        cell["metadata"].pop("cellView", None)
    return student


def _dumps(notebook: Dict[str, Any]) -> str:
    import nbformat

    node = nbformat.from_dict(notebook)
    return nbformat.writes(node, version=4) + "\n"


def _chapter_notebooks(book: Path) -> List[Path]:
    """Every source notebook of the book (student editions and build copies excluded)."""
    return sorted(
        path
        for path in book.rglob("*.ipynb")
        if path.is_file()
        and not {"exercises", "_build", ".ipynb_checkpoints"} & set(path.relative_to(book).parts)
    )


def sync(
    book: Path = Path("book"), check: bool = False, only: Optional[Sequence[str]] = None
) -> List[str]:
    """Normalise the book's notebooks and write ``book/exercises/*.ipynb``.

    With ``check`` nothing is written; returns the files that are (or were) out of date.
    ``only`` restricts the work to notebooks with these names (for example ``["rnn"]``).
    The setup cell names the repository of ``_config.yml`` in the folder above ``book``.
    """
    import nbformat

    if not book.is_dir():
        raise ValueError(f"book must be the book's folder, got {book} (run from the repository)")
    setup = setup_cell(read_repository(book.resolve().parent))
    stale: List[str] = []
    exercises = book / "exercises"
    expected_students = set()
    notebooks = _chapter_notebooks(book)
    if only:
        unknown = set(only) - {path.stem for path in notebooks}
        if unknown:
            raise ValueError(f"only names notebooks that do not exist: {sorted(unknown)}")
        notebooks = [path for path in notebooks if path.stem in set(only)]
    for path in notebooks:
        with open(path, encoding="utf-8") as handle:
            notebook = nbformat.read(handle, as_version=4)
        where = path.as_posix()
        outputs = {
            path: _dumps(normalise_notebook(notebook, setup, where)),
        }
        if any(SOLUTION_TAG in _tags(cell) for cell in notebook["cells"]):
            outputs[exercises / path.name] = _dumps(student_edition(notebook, setup, where))
            expected_students.add(path.name)
        for target, text in outputs.items():
            current = target.read_text(encoding="utf-8") if target.exists() else None
            if current != text:
                stale.append(target.as_posix())
                if not check:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
    orphans = sorted(exercises.glob("*.ipynb")) if exercises.is_dir() and not only else []
    for orphan in orphans:
        if orphan.name not in expected_students:
            stale.append(orphan.as_posix())
            if not check:
                orphan.unlink()
    return stale


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.student", description=__doc__)
    parser.add_argument("--book", type=Path, default=Path("book"), help="the book's folder")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if anything is out of date"
    )
    parser.add_argument(
        "only", nargs="*", help="notebook names to process (default: all), e.g. rnn attention"
    )
    args = parser.parse_args(argv)
    stale = sync(args.book, check=args.check, only=args.only)
    if args.check and stale:
        print("out of date (run `python -m tools.student`):\n  " + "\n  ".join(stale))
        return 1
    print("updated:\n  " + "\n  ".join(stale) if stale else "everything is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
