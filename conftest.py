"""pytest setup shared by tests/ and by the notebooks in book/ (executed by nbval).

Set before any notebook kernel starts, so kernels inherit it: notebooks run in fast mode
and exercise checks are strict (a reference solution that fails its check fails the test).
"""

import os

os.environ.setdefault("COURSE_FAST", "1")
os.environ.setdefault("COURSE_STRICT_CHECKS", "1")

collect_ignore_glob = ["_build/*", "**/.ipynb_checkpoints/*", "tests/fixtures/*"]
