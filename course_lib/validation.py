"""One place that checks arguments, so every function fails the same way with the same wording.

The rule (as in scikit-learn's ``utils/validation.py``): a value of the wrong *type* or
*dtype* raises ``TypeError``; a value of the right type with a wrong *shape* or *value*
raises ``ValueError``. Every message names the argument, says what was expected and shows
what came in::

    boxes must be a Tensor of shape [N, 4], got list
    boxes must have shape [N, 4], got [3, 5]
    scores must have shape [N] with N = 3 (from boxes), got [4]
    boxes must be a floating-point tensor, got torch.int64
    iou_threshold must be a number in [0, 1], got 1.5

Shapes are written as in the docstrings: ``"N, 4"`` means two dimensions, the second of
size 4; letters are free sizes; ``"..."`` at the front allows any leading dimensions.
Passing the same ``sizes`` dict to several checks binds each letter once, so that the
second tensor must agree with the first (``N`` above).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MAX_ELEMENTS",
    "MAX_SIZE",
    "MAX_STEPS",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_device",
    "check_elements",
    "check_finite",
    "check_float",
    "check_instance",
    "check_int",
    "check_lengths",
    "check_like",
    "check_probability",
    "check_same_device",
    "check_sequence",
    "check_size",
    "check_tensor",
    "check_token_ids",
    "describe",
]

#: Largest size accepted for one dimension (a vocabulary, a width, a count): larger ones are
#: taken for mistakes rather than handed to the allocator.
MAX_SIZE = 2**31 - 1
#: Largest number of elements a constructor or generator may allocate (2**34 float32 values
#: are 64 GiB, more than any machine the course runs on).
MAX_ELEMENTS = 2**34
#: Largest number of sequential steps a loop accepts (generated tokens, time steps, repeats),
#: so that an absurd length fails at once instead of running for days.
MAX_STEPS = 10**6

DtypeSpec = Union[None, str, torch.dtype, Tuple[torch.dtype, ...]]

_DTYPE_KINDS = {
    "floating": ("a floating-point tensor", lambda t: t.is_floating_point()),
    "integer": (
        "an integer tensor",
        lambda t: not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool,
    ),
    "bool": ("a bool tensor", lambda t: t.dtype == torch.bool),
    "real": (
        "a real-valued (floating or integer) tensor",
        lambda t: not t.is_complex() and t.dtype != torch.bool,
    ),
}


def describe(value: Any) -> str:
    """``[3, 5]`` for a tensor or array, else the type name (for error messages)."""
    if isinstance(value, (Tensor, np.ndarray)):
        return str(list(value.shape))
    return type(value).__name__


def _parse_shape(shape: str) -> Tuple[bool, List[str]]:
    parts = [part.strip() for part in shape.strip().strip("[]").split(",") if part.strip()]
    leading = bool(parts) and parts[0] in ("...", "*")
    return leading, parts[1:] if leading else parts


def _dtype_ok(value: Tensor, dtype: DtypeSpec) -> Tuple[bool, str]:
    if dtype is None:
        return True, ""
    if isinstance(dtype, str):
        if dtype not in _DTYPE_KINDS:
            raise ValueError(f"unknown dtype kind {dtype!r}; use one of {sorted(_DTYPE_KINDS)}")
        what, test = _DTYPE_KINDS[dtype]
        return test(value), what
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
    names = " or ".join(str(d) for d in dtypes)
    return value.dtype in dtypes, f"a tensor of dtype {names}"


def check_tensor(
    name: str,
    value: Any,
    shape: Optional[str] = None,
    *,
    dtype: DtypeSpec = None,
    sizes: Optional[Dict[str, int]] = None,
    finite: bool = False,
    device: Optional[torch.device] = None,
    origin: str = "",
) -> Tensor:
    """Check that ``value`` is a Tensor with the given shape, dtype and device; return it.

    ``shape`` is a string such as ``"N, 4"`` or ``"..., D"``; integers must match exactly,
    letters bind through ``sizes`` (a dict shared between calls, so later tensors must agree
    with earlier ones). ``dtype`` is a kind (``"floating"``, ``"integer"``, ``"bool"``,
    ``"real"``), a ``torch.dtype`` or a tuple of them. ``finite`` rejects NaN and inf.
    ``device`` requires the tensor to be on that device. ``origin`` names where bound sizes
    came from in messages (for example ``"from boxes"``); by default the first argument that
    bound the letter is named.
    """
    wanted = f" of shape [{shape.strip().strip('[]')}]" if shape else ""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor{wanted}, got {type(value).__name__}")
    ok, what = _dtype_ok(value, dtype)
    if not ok:
        raise TypeError(f"{name} must be {what}, got {value.dtype}")
    if shape is not None:
        _check_shape(name, value, shape, sizes if sizes is not None else {}, origin)
    if device is not None and value.device != torch.device(device):
        raise ValueError(
            f"{name} must be on {torch.device(device)} (where the other inputs are), "
            f"got {value.device}; move it with .to({str(torch.device(device))!r})"
        )
    if finite:
        check_finite(name, value)
    return value


def _check_shape(name: str, value: Tensor, shape: str, sizes: Dict[str, Any], origin: str) -> None:
    leading, parts = _parse_shape(shape)
    written = f"[{shape.strip().strip('[]')}]"
    actual = list(value.shape)
    if (leading and value.dim() < len(parts)) or (not leading and value.dim() != len(parts)):
        raise ValueError(f"{name} must have shape {written}, got {actual}")
    tail = actual[len(actual) - len(parts) :] if parts else []
    for letter, size in zip(parts, tail):
        if letter.lstrip("-").isdigit():
            if size != int(letter):
                raise ValueError(f"{name} must have shape {written}, got {actual}")
            continue
        bound = sizes.get(letter)
        if bound is None:
            sizes[letter] = size
            sizes.setdefault(f"_origin_{letter}", origin or f"from {name}")
        elif bound != size:
            source = sizes.get(f"_origin_{letter}", "")
            raise ValueError(
                f"{name} must have shape {written} with {letter} = {bound}"
                f"{f' ({source})' if source else ''}, got {actual}"
            )


def check_finite(name: str, value: Tensor) -> Tensor:
    """Raise ValueError when ``value`` holds NaN or infinity; return it."""
    if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value)).sum())
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite value(s)")
    return value


def check_like(
    name: str, value: Tensor, reference: Tensor, what: str = "the model's parameters"
) -> Tensor:
    """Require ``value`` to share ``reference``'s floating dtype and device (for a module input).

    The message says how to convert, e.g. ``x is torch.float64 but the model's parameters are
    torch.float32: pass x.float() or call model.double()``.
    """
    if value.is_floating_point() and value.dtype != reference.dtype:
        cast = {torch.float32: ".float()", torch.float64: ".double()", torch.float16: ".half()"}
        to_input = cast.get(reference.dtype, f".to({reference.dtype})")
        to_model = cast.get(value.dtype, f".to({value.dtype})")
        raise TypeError(
            f"{name} is {value.dtype} but {what} are {reference.dtype}: "
            f"pass {name}{to_input} or convert the model with model{to_model}"
        )
    if value.device != reference.device:
        raise ValueError(
            f"{name} is on {value.device} but {what} are on {reference.device}: "
            f"move it with {name}.to({str(reference.device)!r})"
        )
    return value


def check_same_device(**tensors: Optional[Tensor]) -> None:
    """Raise ValueError unless every given tensor (None is skipped) is on the same device."""
    given = [(name, t) for name, t in tensors.items() if isinstance(t, Tensor)]
    if not given:
        return
    first_name, first = given[0]
    for name, tensor in given[1:]:
        if tensor.device != first.device:
            raise ValueError(
                f"{name} is on {tensor.device} but {first_name} is on {first.device}; "
                "put all inputs on one device"
            )


def check_token_ids(
    name: str,
    value: Any,
    vocab_size: int,
    shape: Optional[str] = None,
    *,
    sizes: Optional[Dict[str, int]] = None,
    cpu_only: bool = False,
) -> Tensor:
    """Check integer token ids in ``[0, vocab_size)`` (a raw IndexError from an embedding is
    what this prevents); return them.

    Reading the values synchronises with an accelerator; ``cpu_only=True`` reads them only
    for CPU tensors (for checks inside a training step; the type and shape are always checked).
    """
    check_tensor(name, value, shape, dtype="integer", sizes=sizes)
    if value.numel() and (not cpu_only or value.device.type == "cpu"):
        low, high = int(value.min()), int(value.max())
        if low < 0 or high >= vocab_size:
            raise ValueError(
                f"{name} must hold token ids in [0, {vocab_size - 1}] (vocab_size = "
                f"{vocab_size}), got values from {low} to {high}"
            )
    return value


def check_int(
    name: str,
    value: Any,
    minimum: Optional[int] = None,
    maximum: Optional[int] = None,
) -> int:
    """Check an integer argument (bool is not an int here) within ``[minimum, maximum]``."""
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_floating_point():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {_range_text(minimum, maximum)}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    *,
    include_minimum: bool = True,
    include_maximum: bool = True,
) -> float:
    """Check a real number (int or float, not bool), finite, within the given bounds."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex():
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    value = float(value)
    low_ok = minimum is None or (value >= minimum if include_minimum else value > minimum)
    high_ok = maximum is None or (value <= maximum if include_maximum else value < maximum)
    if not math.isfinite(value) or not (low_ok and high_ok):
        bounds = _range_text(minimum, maximum, include_minimum, include_maximum)
        raise ValueError(f"{name} must be a finite number {bounds}, got {value!r}".rstrip())
    return value


def check_size(name: str, value: Any, minimum: int = 1, maximum: int = MAX_SIZE) -> int:
    """An integer size in ``[minimum, maximum]``; the default maximum (``MAX_SIZE``) catches
    absurd sizes before they reach the allocator."""
    return check_int(name, value, minimum, maximum)


def check_elements(names: str, count: int, limit: int = MAX_ELEMENTS) -> int:
    """Raise ValueError when sizes multiply to more than ``limit`` elements.

    ``names`` says which arguments multiply (``"vocab_size x embed_dim"``), so the message
    points at them.
    """
    if count > limit:
        raise ValueError(
            f"{names} = {count:,} elements (about {count * 4 / 2**30:,.0f} GiB in float32) is "
            f"more than the {limit:,} this library allocates; choose smaller sizes"
        )
    return count


def check_instance(name: str, value: Any, types: Any, what: Optional[str] = None) -> Any:
    """``value`` must be an instance of ``types`` (TypeError otherwise); ``what`` describes
    the expectation in the message (default: the type names)."""
    if not isinstance(value, types):
        if what is None:
            classes = types if isinstance(types, tuple) else (types,)
            what = " or ".join(cls.__name__ for cls in classes)
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_callable(name: str, value: Any, what: str = "a function") -> Any:
    """``value`` must be callable (TypeError otherwise)."""
    if not callable(value):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}")
    return value


def check_device(name: str, value: Any) -> Optional[torch.device]:
    """A device (``torch.device``, a string such as ``"cuda:0"``, or None); returns it as a
    ``torch.device`` (or None)."""
    if value is None:
        return None
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a torch.device or a string such as 'cpu', got {value!r}")
    try:
        return torch.device(value)
    except RuntimeError as error:
        raise ValueError(
            f"{name} must name a device such as 'cpu', 'cuda' or 'mps', got {value!r}"
        ) from error


def check_lengths(
    name: str,
    value: Any,
    batch_size: int,
    max_length: int,
    minimum: int = 0,
    *,
    cpu_only: bool = True,
    origin: str = "",
) -> Tensor:
    """Sequence lengths: an integer tensor [B] with values in ``[minimum, max_length]``.

    ``origin`` names where B comes from in messages (for example ``"from x"``). The values
    are read on the CPU only by default (reading them from a GPU synchronises); the type
    and shape are always checked.
    """
    sizes = {"B": batch_size, "_origin_B": origin}
    check_tensor(name, value, "B", dtype="integer", sizes=sizes)
    if value.numel() and (not cpu_only or value.device.type == "cpu"):
        low, high = int(value.min()), int(value.max())
        if low < minimum or high > max_length:
            raise ValueError(
                f"{name} must lie in [{minimum}, {max_length}], got values from {low} to {high}"
            )
    return value


def check_probability(name: str, value: Any) -> float:
    """A number in [0, 1] (dropout rates, thresholds, fractions)."""
    return check_float(name, value, 0.0, 1.0)


def check_bool(name: str, value: Any) -> bool:
    """A real ``bool`` (not 0/1, not a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} ({value!r})")
    return bool(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` must be one of ``choices``."""
    options = list(choices)
    if value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def _range_text(
    minimum: Optional[float],
    maximum: Optional[float],
    include_minimum: bool = True,
    include_maximum: bool = True,
) -> str:
    if minimum is not None and maximum is not None:
        left, right = "[" if include_minimum else "(", "]" if include_maximum else ")"
        return f"in {left}{minimum}, {maximum}{right}"
    if minimum is not None:
        return f"{'>=' if include_minimum else '>'} {minimum}"
    if maximum is not None:
        return f"{'<=' if include_maximum else '<'} {maximum}"
    return ""


def check_sequence(name: str, value: Any, length: Optional[int] = None) -> Sequence[Any]:
    """A list or tuple (not a string), of ``length`` items when given."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list or tuple, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} must have {length} items, got {len(value)}")
    return value
