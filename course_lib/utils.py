"""Shared helpers: device choice, seeding, the fast/full switch and showing source code.

Everything here works in plain scripts; IPython is imported lazily, only to display
source code nicely inside a notebook.
"""

from __future__ import annotations

import inspect
import os
import random
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, TypeVar

import numpy as np
import torch

T = TypeVar("T")

_FAST_ENV = "COURSE_FAST"
_DEVICE_ENV = "COURSE_DEVICE"


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def get_device() -> torch.device:
    """Return the device the course runs on: cuda > mps > cpu.

    The environment variable ``COURSE_DEVICE`` (for example ``cpu`` or ``cuda:1``)
    overrides the automatic choice; asking for a device that is not there is an error.
    """
    requested = os.environ.get(_DEVICE_ENV, "").strip()
    if requested:
        try:
            device = torch.device(requested)
        except RuntimeError as error:
            raise ValueError(
                f"{_DEVICE_ENV} must name a torch device such as 'cpu', 'cuda' or 'mps', "
                f"got {requested!r}"
            ) from error
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{_DEVICE_ENV}={requested!r} but CUDA is not available here")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"{_DEVICE_ENV}={requested!r} but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (all devices) with ``seed``."""
    from course_lib.validation import check_int

    seed = check_int("seed", seed, 0, 2**63 - 1)
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 - seeds code that uses the global API
    torch.manual_seed(int(seed))


def fast_mode() -> bool:
    """True when ``COURSE_FAST=1``: tiny data and few steps, as used by the test suite."""
    return os.environ.get(_FAST_ENV, "").strip().lower() in {"1", "true", "yes"}


def pick(full: T, fast: T) -> T:
    """Return ``fast`` in fast mode and ``full`` otherwise.

    The one place notebooks choose sizes: ``steps = pick(full=2000, fast=50)``.
    """
    return fast if fast_mode() else full


@contextmanager
def evaluating(model: Any) -> Iterator[Any]:
    """Run the block with ``model`` in eval mode (no dropout), then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython()
    return ipython is not None and "IPKernelApp" in getattr(ipython, "config", {})


def _unwrapped(obj: Any) -> Any:
    """The function itself behind decorators (``@torch.no_grad()``, ``functools.wraps``),
    also for methods and properties, so that its own source is shown and linked."""
    if isinstance(obj, property) and obj.fget is not None:
        obj = obj.fget
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    function = getattr(obj, "__func__", obj)  # a bound method: its function
    return inspect.unwrap(function) if callable(function) else obj


def _source_location(obj: Any) -> tuple[str, int, int]:
    """Path (relative to the repository) and first/last line of ``obj``'s source."""
    lines, start = inspect.getsourcelines(obj)
    file = Path(inspect.getsourcefile(obj) or "<unknown>")
    package_root = Path(__file__).resolve().parent.parent
    try:
        shown = file.resolve().relative_to(package_root).as_posix()
    except ValueError:
        shown = file.name
    start = max(start, 1)
    return shown, start, start + len(lines) - 1


def show_source(obj: Any) -> Optional[str]:
    """Display the source code of a function, class, method or module.

    In a notebook the code is shown highlighted (as Markdown, so the rendered book
    highlights it like any other code block) under a link to the file on GitHub; in
    a plain script it is printed. Returns the source text outside notebooks, None inside.
    """
    if isinstance(obj, (str, bytes, int, float)) or obj is None:
        raise TypeError(
            f"obj must be a function, class, method or module, got {type(obj).__name__}"
        )
    obj = _unwrapped(obj)
    try:
        source = inspect.getsource(obj)
        path, first, last = _source_location(obj)
    except (OSError, TypeError) as error:
        raise TypeError(
            f"obj must be a function, class, method or module written in Python; "
            f"cannot find the source of {obj!r}: {error}"
        ) from error
    source = textwrap.dedent(source)
    if not _in_notebook():
        print(f"# {path}, lines {first}-{last}\n{source}")
        return source
    from IPython.display import Markdown, display

    from course_lib import REPOSITORY_URL

    fence = "````" if "```" in source else "```"
    link = f"{REPOSITORY_URL}/blob/main/{path}#L{first}-L{last}"
    display(
        Markdown(
            f"[`{path}` 第 {first}–{last} 行]({link})\n\n{fence}python\n{source.rstrip()}\n{fence}"
        )
    )
    return None


def describe_environment() -> None:
    """Print one line with the torch and course_lib versions, the device and the mode.

    On a CPU-only Colab runtime it adds how to switch to a GPU. (It returns nothing, so the
    notebooks' setup cell shows the line once.)
    """
    from course_lib import __version__

    device = get_device()
    mode = "fast" if fast_mode() else "full"
    line = f"torch {torch.__version__} · course_lib {__version__} · device: {device} · mode: {mode}"
    if device.type == "cpu" and "google.colab" in sys.modules:
        line += (
            "\n提示：当前是 CPU 运行时。在 Colab 菜单中选择「代码执行程序 → 更改运行时类型 → "
            "T4 GPU」可以加快训练（Runtime → Change runtime type → GPU）。"
        )
    print(line)
