#!/usr/bin/env bash
# The course at its floors: install every direct requirement of requirements.txt at the lowest
# version it allows (uv's --resolution lowest-direct) into a fresh virtual environment, then run
# the unit tests and one chapter in fast mode there. Needs uv (pip install uv).
#
#   bash tools/lowest-versions.sh [PYTHON]     # PYTHON: the interpreter, default python3
#
# CI (the lowest-versions job in .github/workflows/ci.yml) runs it with Python 3.9, the floor
# in pyproject.toml, and UV_TORCH_BACKEND=cpu. LOWEST_VENV chooses the environment's folder.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
venv=${LOWEST_VENV:-${TMPDIR:-/tmp}/course-lowest-versions}

uv venv --quiet --clear --python "$python" "$venv"
uv pip install --quiet --python "$venv/bin/python" --resolution lowest-direct -r requirements.txt
echo "== installed (the direct requirements):"
names=$(grep -oE '^[A-Za-z][A-Za-z0-9_.-]*' requirements.txt | tr '\n' '|')
uv pip freeze --python "$venv/bin/python" | grep -iE "^(${names%|})==" || true

export PYTHONPATH=$PWD  # tools/ (the authoring tools are not installed)
export PATH="$venv/bin:$PATH"  # the floors' ruff, nbstripout, actionlint for the pre-commit test
echo "== unit tests"
"$venv/bin/python" -m pytest tests -q -m "not browser and not standalone" \
  --ignore=tests/test_browser.py --ignore=tests/test_standalone.py
echo "== one chapter in fast mode"
COURSE_FAST=1 "$venv/bin/python" -m pytest book/rnn.ipynb -q
