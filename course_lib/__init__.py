"""course_lib: the tested PyTorch library behind the course.

One module per topic (``rnn``, ``attention``, ``transformer``, ``visualization``,
``detection``, ``generative``) plus shared helpers (``utils``, ``data``, ``train``,
``plotting``, ``checks``). Topic modules are imported on first use, so
``import course_lib`` stays cheap and never needs Jupyter.
"""

from __future__ import annotations

import importlib
from typing import Any

from course_lib.utils import (
    describe_environment,
    fast_mode,
    get_device,
    pick,
    set_seed,
    show_source,
)

__version__ = "0.1.0"

#: The repository the book is published from. The one place it is written is ``_config.yml``
#: (``repository.url``); this literal is a copy, because Colab installs ``course_lib`` without
#: that file. ``python -m tools.repository check`` (run by the tests) compares the two, and
#: ``python -m tools.repository set-repository URL`` rewrites both for a fork.
REPOSITORY_URL = "https://github.com/open-dl-course/dl-course-part2"

_SUBMODULES = (
    "attention",
    "book",
    "checks",
    "data",
    "detection",
    "generative",
    "plotting",
    "quiz",
    "rnn",
    "train",
    "transformer",
    "utils",
    "validation",
    "visualization",
)

__all__ = [
    "REPOSITORY_URL",
    "__version__",
    "describe_environment",
    "fast_mode",
    "get_device",
    "pick",
    "set_seed",
    "show_source",
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"course_lib.{name}")
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")
