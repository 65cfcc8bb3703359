"""A check stops an endless loop inside a Jupyter kernel (cells run in the kernel's main
thread, as in Jupyter and Colab), and the notebook goes on with the next cell."""

import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

PROOFS: list = []  # proofs of the checks live in the other test_checks_* files

_CELLS = [
    "import os, time, torch\n"
    "os.environ['COURSE_CHECK_TIME_LIMIT'] = '1'\n"
    "os.environ.pop('COURSE_STRICT_CHECKS', None)\n"
    "from course_lib import checks",
    "def softmax(x):\n    y = x.clone()\n    while True:\n        y = y + 1\n"
    "started = time.monotonic()\n"
    "result = checks.intro.check_softmax(softmax)\n"
    "elapsed = time.monotonic() - started",
    "print(result.status, round(elapsed, 1))",
]


def test_an_endless_loop_in_a_kernel_times_out_and_the_notebook_goes_on():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in _CELLS]
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3")
    started = time.monotonic()
    client.execute()
    assert time.monotonic() - started < 45
    verdict = "".join(output.get("text", "") for output in notebook.cells[1].outputs)
    assert "运行超过 1 秒" in verdict, verdict
    status, elapsed = notebook.cells[2].outputs[0]["text"].split()
    assert status == "timeout" and 1.0 <= float(elapsed) < 3.0
