"""Each notebook alone, as Colab opens it: no repository, no course_lib, only the requirements.

A fresh virtual environment sees the installed requirements (torch, matplotlib, ...) but not
this checkout and not the editable ``course_lib``. The notebook (a chapter, or its student
edition) is copied into an empty folder outside the repository and executed in fast mode
there. Its setup cell must install ``course_lib`` by itself, here from a wheel built from the
checkout (standing in for the repository URL, through ``COURSE_LIB_SOURCE``), print the
versions and the device, and the notebook must run to the end. This proves that no notebook
reads files relative to the repository.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
SOURCES = sorted(p for p in BOOK.rglob("*.ipynb") if "exercises" not in p.relative_to(BOOK).parts)
EDITIONS = sorted((BOOK / "exercises").glob("*.ipynb"))
NOTEBOOKS = SOURCES + EDITIONS
IDS = [path.relative_to(BOOK).as_posix() for path in NOTEBOOKS]

pytestmark = pytest.mark.standalone

RUNNER = textwrap.dedent(
    """
    import sys, nbformat, nbclient
    path, workdir = sys.argv[1], sys.argv[2]
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": workdir}})
    client.execute()
    nbformat.write(notebook, path)
    """
)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True, timeout=600,
    )  # fmt: skip
    (built,) = out.glob("course_lib-*.whl")
    return built


@pytest.fixture
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv whose sys.path has the installed requirements but not course_lib.

    The requirements' folder is added with a plain path line in a .pth file: Python then does
    not process the .pth files inside it, so the editable install of course_lib (itself a .pth
    file there) stays invisible, as on a machine that never saw this repository. One venv per
    notebook, so every notebook's setup cell really installs.
    """
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    requirements = [path for path in site.getsitepackages() if Path(path).is_dir()]
    Path(purelib, "course_requirements.pth").write_text("\n".join(requirements) + "\n")
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util, torch, nbclient; "
         "print(importlib.util.find_spec('course_lib') is None)"],
        cwd=venv, check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert probe.stdout.strip() == "True", "course_lib must not be importable before setup"
    return python


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_notebook_runs_alone_and_installs_course_lib(notebook, wheel, fresh_python, tmp_path):
    workdir = tmp_path / "colab"
    workdir.mkdir()
    copy = workdir / notebook.name
    copy.write_bytes(notebook.read_bytes())
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(COURSE_FAST="1", COURSE_STRICT_CHECKS="1", COURSE_LIB_SOURCE=str(wheel),
               PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # fmt: skip
    result = subprocess.run(
        [str(fresh_python), "-c", RUNNER, str(copy), str(workdir)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    executed = json.loads(copy.read_text(encoding="utf-8"))
    setup = next(cell for cell in executed["cells"] if cell["cell_type"] == "code")
    printed = "".join("".join(out.get("text", "")) for out in setup["outputs"])
    assert "course_lib 0.1.0" in printed and "device:" in printed, printed
    installed = subprocess.run(
        [str(fresh_python), "-c", "import course_lib; print(course_lib.__file__)"],
        cwd=workdir, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert str(ROOT) not in installed, f"course_lib came from the checkout: {installed}"
