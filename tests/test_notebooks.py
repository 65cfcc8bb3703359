"""The committed notebooks: clean, canonical setup cell, solutions marked, student editions
current, and every notebook in the table of contents."""

import json
from pathlib import Path

import pytest
import yaml

from tools import student
from tools.repository import Repository, read_repository

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
ALL_NOTEBOOKS = sorted(p for p in BOOK.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
SOURCE_NOTEBOOKS = [p for p in ALL_NOTEBOOKS if "exercises" not in p.relative_to(BOOK).parts]
CHAPTERS = ["rnn", "attention", "transformer", "visualization", "detection", "generative"]
SETUP = student.setup_cell(read_repository(ROOT))


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def _ids(paths):
    return [p.relative_to(ROOT).as_posix() for p in paths]


def _source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_notebook_committed_without_outputs(path):
    notebook = _load(path)
    assert "widgets" not in notebook["metadata"], "saved widget state"
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"cell {index} has outputs"
            assert cell["execution_count"] is None, f"cell {index} has an execution count"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=_ids(ALL_NOTEBOOKS))
def test_first_code_cell_is_the_setup_cell(path):
    code = [c for c in _load(path)["cells"] if c["cell_type"] == "code"]
    setup = _source(code[0])
    assert setup == SETUP
    assert f'REPOSITORY_URL = "{read_repository(ROOT).url}"' in setup
    assert "describe_environment()" in setup


def test_student_editions_and_normalised_sources_are_up_to_date():
    stale = student.sync(BOOK, check=True)
    assert not stale, f"run `python -m tools.student`; out of date: {stale}"


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=_ids(SOURCE_NOTEBOOKS))
def test_solution_cells_are_hidden_and_have_a_student_stub(path):
    notebook = _load(path)
    solutions = [c for c in notebook["cells"] if "solution" in c["metadata"].get("tags", [])]
    if not solutions:
        assert path.stem not in CHAPTERS, "every chapter has exercises"
        return
    edition = _load(BOOK / "exercises" / path.name)
    stubs = [c for c in edition["cells"] if "solution" in c["metadata"].get("tags", [])]
    assert len(stubs) == len(solutions)
    for cell, stub in zip(solutions, stubs):
        assert "hide-input" in cell["metadata"]["tags"]
        assert _source(cell).startswith(student.SOLUTION_TITLE)
        assert "### BEGIN SOLUTION" in _source(cell)
        assert "raise NotImplementedError" in _source(stub)
        assert (
            "BEGIN SOLUTION" not in _source(stub) and "hide-input" not in stub["metadata"]["tags"]
        )


def _toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


def test_table_of_contents_lists_every_page_in_order():
    files = _toc_files()
    assert files[0] == "book/intro"
    assert [f for f in files if f.split("/")[-1] in CHAPTERS] == [f"book/{c}" for c in CHAPTERS]
    for entry in files:
        assert any((ROOT / f"{entry}{suffix}").exists() for suffix in (".md", ".ipynb")), entry
    listed = {ROOT / f"{entry}.ipynb" for entry in files}
    assert set(SOURCE_NOTEBOOKS) <= listed, "a source notebook is missing from _toc.yml"


# ------------------------------------------------------------------ the student tool itself

SOLUTION = """def f(x):
    \"\"\"Doc.\"\"\"
    ### BEGIN SOLUTION
    y = x + 1
    return y
    ### END SOLUTION
"""


def _notebook(*cells):
    return {"cells": list(cells), "metadata": {"jupytext": {}}, "nbformat": 4, "nbformat_minor": 5}


def _code(source, tags=()):
    return {"cell_type": "code", "source": source, "metadata": {"tags": list(tags)},
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}],
            "execution_count": 3, "id": "c" + str(abs(hash(source)) % 1000)}  # fmt: skip


def test_student_edition_replaces_only_the_marked_region():
    notebook = _notebook(_code("# setup"), _code(SOLUTION, ["solution"]), _code("check(f)"))
    normal = student.normalise_notebook(notebook, "# the setup")
    edition = student.student_edition(notebook, "# the setup")
    assert _source(normal["cells"][0]) == _source(edition["cells"][0]) == "# the setup"
    assert normal["cells"][0]["metadata"]["tags"] == ["setup"]
    assert normal["cells"][1]["metadata"]["cellView"] == "form"
    assert normal["metadata"] == {
        "kernelspec": student.KERNELSPEC,
        "language_info": {"name": "python"},
    }
    stub = _source(edition["cells"][1])
    message = "练习「f」：请在这里写你的代码"
    assert stub == f'def f(x):\n    """Doc."""\n    raise NotImplementedError("{message}")\n'
    assert _source(edition["cells"][2]) == "check(f)"
    assert all(c["outputs"] == [] for c in edition["cells"])


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("x = 1\n### BEGIN SOLUTION\n### END SOLUTION", "function or class"),
        ("def f():\n    pass", "needs a"),
        ("def f():\n    ### BEGIN SOLUTION\n    pass", "never closed"),
        ("def f():\n    ### END SOLUTION", "without"),
        ("def f():\n### BEGIN SOLUTION\n### END SOLUTION", "inside a function"),
        ("def f():\n    ### BEGIN SOLUTION\n    ### BEGIN SOLUTION", "nested"),
    ],
)
def test_student_tool_rejects_malformed_solutions(source, match):
    with pytest.raises(ValueError, match=match):
        student.student_edition(_notebook(_code("# setup"), _code(source, ["solution"])), "")


def test_setup_cell_installs_from_the_configured_repository_and_branch():
    setup = student.setup_cell(Repository("someone", "fork", branch="course"))
    assert 'REPOSITORY_URL = "https://github.com/someone/fork"' in setup
    assert 'f"git+{REPOSITORY_URL}@course"' in setup
    compile(setup, "setup", "exec")  # valid Python


def test_student_sync_writes_and_checks(tmp_path):
    import nbformat

    book = tmp_path / "book"
    book.mkdir()
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://github.com/a/b\n")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("# setup"),
        nbformat.v4.new_code_cell(SOLUTION, metadata={"tags": ["solution"]}),
    ]
    nbformat.write(notebook, book / "topic.ipynb")
    assert student.sync(book, check=True) == [
        f"{book}/topic.ipynb",
        f"{book}/exercises/topic.ipynb",
    ]
    student.sync(book)
    assert student.sync(book, check=True) == []
    written = nbformat.read(book / "exercises" / "topic.ipynb", as_version=4)
    assert written.cells[0].source == student.setup_cell(Repository("a", "b"))
    (book / "exercises" / "orphan.ipynb").write_text("{}")
    assert student.sync(book, check=True) == [f"{book}/exercises/orphan.ipynb"]
    assert (
        student.main(["--book", str(book)]) == 0 and not (book / "exercises/orphan.ipynb").exists()
    )
    with pytest.raises(ValueError, match="book"):
        student.sync(tmp_path / "missing")
    source = (book / "topic.ipynb").read_text()
    (book / "topic.ipynb").write_text(source.replace("Doc.", "Docstring."))  # shown in the stub
    assert student.sync(book, check=True, only=["topic"]) == [f"{book}/exercises/topic.ipynb"]
    with pytest.raises(ValueError, match="only"):
        student.sync(book, only=["nope"])
