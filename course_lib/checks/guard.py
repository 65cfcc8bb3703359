"""Running a student's function safely: a time limit, a watch for forbidden calls, and a
record of the inputs to prove they were not changed.

- ``time_limit(seconds)``: stops the function after ``seconds`` with ``StudentTimeout``.
  In the main thread on Linux/macOS (Jupyter and Colab run cells there) a ``SIGALRM``
  timer raises it between two bytecodes, so a loop of quick torch ops stops too, and so
  does ``time.sleep``. Elsewhere (another thread, Windows) a watchdog thread raises it
  asynchronously in the student's thread (``PyThreadState_SetAsyncExc``). Neither can
  interrupt one long C call (a huge matrix product); it stops when that call returns.
- ``watch_calls(forbidden)``: a ``sys.setprofile`` hook that records a call of any
  forbidden function (the library's reference, a peer library's op), so that a check can
  reject a student who delegates instead of writing the code.
- ``snapshot`` / ``changed``: a copy of the inputs before the call, compared afterwards,
  naming the argument that was modified in place.
- ``clone`` and ``cast``: fresh copies of a case's inputs for each call (modules and
  optimizers deep-copied together so optimizers keep pointing at their module's
  parameters, stale gradients included), and the same inputs in float32.
"""

from __future__ import annotations

import copy
import ctypes
import importlib
import inspect
import os
import signal
import sys
import threading
import time
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    "DEFAULT_TIME_LIMIT",
    "Forbidden",
    "StudentTimeout",
    "argument_names",
    "cast",
    "changed",
    "clone",
    "forbid",
    "has_float64",
    "snapshot",
    "time_limit",
    "time_limit_seconds",
    "watch_calls",
]

#: Seconds one call of a student's function may run (env ``COURSE_CHECK_TIME_LIMIT``).
DEFAULT_TIME_LIMIT = 10.0
_TIME_LIMIT_ENV = "COURSE_CHECK_TIME_LIMIT"


class StudentTimeout(BaseException):
    """Raised inside the student's function when it runs past the time limit.

    A ``BaseException`` so that the student's own ``except Exception`` cannot swallow it.
    """


def time_limit_seconds(override: Optional[float] = None) -> Optional[float]:
    """The limit in seconds: the check's own, else the environment's, else the default."""
    if override is not None:
        return override if override > 0 else None
    text = os.environ.get(_TIME_LIMIT_ENV, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            return DEFAULT_TIME_LIMIT
        return value if value > 0 else None
    return DEFAULT_TIME_LIMIT


def _can_use_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


#: Tests set this to exercise the watchdog path on Linux.
_FORCE_WATCHDOG = False


@contextmanager
def time_limit(seconds: Optional[float]) -> Iterator[None]:
    """Raise ``StudentTimeout`` in the body once it has run ``seconds`` (None: no limit)."""
    if seconds is None or seconds <= 0:
        yield
        return
    if _can_use_alarm() and not _FORCE_WATCHDOG:
        with _alarm(seconds):
            yield
    else:
        with _watchdog(seconds):
            yield


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    active = [True]

    def on_alarm(signum: int, frame: Any) -> None:
        if active[0]:
            active[0] = False
            raise StudentTimeout()

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:  # someone else's timer was running: give it back, less our time
            left = max(previous_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, previous_interval)


@contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    thread_id = threading.get_ident()
    lock = threading.Lock()
    done = [False]
    set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc

    def fire() -> None:
        with lock:
            if not done[0]:
                set_async(ctypes.c_ulong(thread_id), ctypes.py_object(StudentTimeout))

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        # Once ``done`` is set the timer cannot fire; if it fired just before, the exception
        # is delivered at the next call below (still inside the caller's ``try``). Clearing
        # it with SetAsyncExc(NULL) instead would leave CPython 3.11's eval breaker set.
        with lock:
            done[0] = True
        timer.cancel()


# ----------------------------------------------------------------------------------------
# Forbidden calls
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Forbidden:
    """Functions a student must not call: shown to the student as ``name``.

    ``targets`` are functions, classes (every method defined in the class body), builtins
    (``torch.softmax``), Tensor methods (``torch.Tensor.softmax``) or dotted names
    (``"torchvision.ops.nms"``) that are looked up only if their module is already
    imported, so a check never imports a library just to forbid it.
    """

    name: str
    targets: Tuple[Any, ...]


def forbid(*targets: Any, name: Optional[str] = None) -> Forbidden:
    """``Forbidden`` for ``targets``; ``name`` defaults to the first target's full name."""
    return Forbidden(name or _full_name(targets[0]), tuple(targets))


def _full_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    module = getattr(target, "__module__", None) or ""
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
    if isinstance(target, type) or inspect.isfunction(target):
        return f"{module}.{qualname}".lstrip(".")
    if _is_tensor_method(target):
        return f"Tensor.{target.__name__}"
    return f"{module or 'torch'}.{qualname}"


def _is_tensor_method(target: Any) -> bool:
    """A C method of Tensor such as ``torch.Tensor.softmax`` (defined on ``TensorBase``)."""
    owner = getattr(target, "__objclass__", None)
    return isinstance(owner, type) and owner in Tensor.__mro__


def _resolve(dotted: str) -> Optional[Any]:
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        if module_name in sys.modules:
            value: Any = sys.modules[module_name]
            try:
                for attribute in parts[cut:]:
                    value = getattr(value, attribute)
            except AttributeError:
                return None
            return value
    if parts[0] in sys.modules:  # the package is imported but not the submodule: try it
        try:
            module = importlib.import_module(".".join(parts[:-1]))
        except ImportError:
            return None
        return getattr(module, parts[-1], None)
    return None


def _codes_of(target: Any) -> List[types.CodeType]:
    if isinstance(target, type):  # every method of the class and its own bases (not Module's)
        codes: List[types.CodeType] = []
        for klass in target.__mro__:
            if klass in (object, nn.Module) or klass.__module__ == "builtins":
                continue
            codes += _own_codes(klass)
        return codes
    function = inspect.unwrap(target) if callable(target) else target
    code = getattr(function, "__code__", None)
    if code is None and hasattr(function, "__func__"):
        code = getattr(function.__func__, "__code__", None)
    return [code] if isinstance(code, types.CodeType) else []


def _own_codes(klass: type) -> List[types.CodeType]:
    codes: List[types.CodeType] = []
    for value in vars(klass).values():
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            value = value.fget
        if callable(value) and not isinstance(value, type):
            codes += _codes_of(value)
    return codes


@dataclass
class _Watch:
    codes: Dict[types.CodeType, str] = field(default_factory=dict)
    builtins: Dict[int, str] = field(default_factory=dict)
    methods: Dict[str, str] = field(default_factory=dict)
    keep_alive: List[Any] = field(default_factory=list)
    found: List[str] = field(default_factory=list)

    def add(self, forbidden: Forbidden) -> None:
        for target in forbidden.targets:
            if isinstance(target, str):
                target = _resolve(target)
                if target is None:
                    continue
            if _is_tensor_method(target):
                self.methods[target.__name__] = forbidden.name
            elif isinstance(target, types.BuiltinFunctionType):
                self.builtins[id(target)] = forbidden.name
                self.keep_alive.append(target)
            else:
                for code in _codes_of(target):
                    self.codes[code] = forbidden.name

    def __bool__(self) -> bool:
        return bool(self.codes or self.builtins or self.methods)


@contextmanager
def watch_calls(forbidden: Sequence[Forbidden]) -> Iterator[List[str]]:
    """Record (in the yielded list) the name of every forbidden function called in the body."""
    watch = _Watch()
    for item in forbidden:
        watch.add(item)
    if not watch:
        yield watch.found
        return
    codes, builtins, methods, found = watch.codes, watch.builtins, watch.methods, watch.found
    previous = sys.getprofile()

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call":
            name = codes.get(frame.f_code)
            if name is not None and name not in found:
                found.append(name)
        elif event == "c_call":
            name = builtins.get(id(arg))
            if name is None and methods and isinstance(getattr(arg, "__self__", None), Tensor):
                name = methods.get(getattr(arg, "__name__", ""))
            if name is not None and name not in found:
                found.append(name)
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(hook)
    try:
        yield found
    finally:
        sys.setprofile(previous)


# ----------------------------------------------------------------------------------------
# Copies of the inputs
# ----------------------------------------------------------------------------------------


def _copy_module(module: nn.Module, memo: Dict[int, Any]) -> nn.Module:
    copied = copy.deepcopy(module, memo)
    for original, new in zip(module.parameters(), copied.parameters()):
        if original.grad is not None:  # deepcopy drops .grad; a stale gradient is an input too
            new.grad = original.grad.detach().clone()
    return copied


def clone(value: Any, memo: Optional[Dict[int, Any]] = None) -> Any:
    """A fresh copy of tensors, modules and optimizers in nested containers.

    One ``memo`` for a whole call keeps an optimizer pointing at its module's copy.
    """
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, Tensor):
        copied = value.detach().clone().requires_grad_(value.requires_grad)
        memo[id(value)] = copied
        return copied
    if isinstance(value, nn.Module):
        return _copy_module(value, memo)
    if isinstance(value, torch.optim.Optimizer):
        return copy.deepcopy(value, memo)
    if isinstance(value, tuple):
        return tuple(clone(item, memo) for item in value)
    if isinstance(value, list):
        return [clone(item, memo) for item in value]
    if isinstance(value, dict):
        return {key: clone(item, memo) for key, item in value.items()}
    return value


def cast(value: Any, dtype: torch.dtype, memo: Optional[Dict[int, Any]] = None) -> Any:
    """``value`` with every float64 tensor and module turned into ``dtype`` (others kept)."""
    memo = {} if memo is None else memo
    if isinstance(value, Tensor):
        if value.dtype == torch.float64 and dtype != torch.float64:
            return value.detach().to(dtype).requires_grad_(value.requires_grad)
        return value
    if isinstance(value, nn.Module):
        if any(t.dtype == torch.float64 for t in [*value.parameters(), *value.buffers()]):
            return _copy_module(value, memo).to(dtype)
        return value
    if isinstance(value, tuple):
        return tuple(cast(item, dtype, memo) for item in value)
    if isinstance(value, list):
        return [cast(item, dtype, memo) for item in value]
    if isinstance(value, dict):
        return {key: cast(item, dtype, memo) for key, item in value.items()}
    return value


def has_float64(value: Any) -> bool:
    """Whether ``value`` holds a float64 tensor or module (so a float32 run means something)."""
    if isinstance(value, Tensor):
        return value.dtype == torch.float64
    if isinstance(value, nn.Module):
        return any(t.dtype == torch.float64 for t in [*value.parameters(), *value.buffers()])
    if isinstance(value, (tuple, list)):
        return any(has_float64(item) for item in value)
    if isinstance(value, dict):
        return any(has_float64(item) for item in value.values())
    return False


# ----------------------------------------------------------------------------------------
# Inputs changed in place
# ----------------------------------------------------------------------------------------


def snapshot(value: Any) -> Any:
    """A copy of everything in ``value`` that a function could change in place."""
    if isinstance(value, Tensor):
        return ("tensor", value.detach().clone())
    if isinstance(value, nn.Module):
        state = {key: t.detach().clone() for key, t in value.state_dict(keep_vars=True).items()}
        modes = [module.training for module in value.modules()]
        return ("module", state, modes)
    if isinstance(value, (tuple, list)):
        return ("sequence", len(value), [snapshot(item) for item in value])
    if isinstance(value, dict):
        return ("dict", set(value), {key: snapshot(item) for key, item in value.items()})
    return None


def _same_tensor(before: Tensor, after: Tensor) -> bool:
    if before.shape != after.shape or before.dtype != after.dtype:
        return False
    if before.device != after.device:
        return False
    if before.is_floating_point() or before.is_complex():
        both_nan = torch.isnan(before) & torch.isnan(after)
        return bool(((before == after) | both_nan).all())
    return torch.equal(before, after)


def changed(record: Any, value: Any) -> Optional[str]:
    """Where ``value`` differs from its ``snapshot`` (a suffix such as ``[0]``), or None."""
    if record is None:
        return None
    kind = record[0]
    if kind == "tensor":
        return None if _same_tensor(record[1], value.detach()) else ""
    if kind == "module":
        _, state, modes = record
        now = value.state_dict(keep_vars=True)
        for key, before in state.items():
            if key not in now or not _same_tensor(before, now[key].detach()):
                return f" 的 {key}"
        if [module.training for module in value.modules()] != modes:
            return " 的训练/评估模式（.train() / .eval() 之后没有恢复）"
        return None
    if kind == "sequence":
        _, length, items = record
        if len(value) != length:
            return "（长度变了）"
        for index, (item_record, item) in enumerate(zip(items, value)):
            where = changed(item_record, item)
            if where is not None:
                return f"[{index}]{where}"
        return None
    if kind == "dict":
        _, keys, items = record
        if set(value) != keys:
            return "（键变了）"
        for key, item_record in items.items():
            where = changed(item_record, value[key])
            if where is not None:
                return f"[{key!r}]{where}"
        return None
    return None


def argument_names(function: Callable[..., Any], count: int) -> List[str]:
    """Names of the first ``count`` positional parameters of ``function`` (best effort)."""
    names: List[str] = []
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    for index in range(count):
        if index < len(parameters) and parameters[index].kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            names.append(parameters[index].name)
        else:
            names.append(f"第 {index + 1} 个参数")
    return names
