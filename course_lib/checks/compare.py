"""Comparing a student's output with the reference's: type, device and dtype before values.

``compare`` walks nested outputs (tensors, numbers, tuples, lists, dicts) and returns the
first ``Mismatch`` or None. For a tensor it checks, in this order: that it is a tensor, its
device, its dtype (exactly the reference's, or one of the dtypes a check allows), its
shape, and only then its values. The expected value is never cast to the student's dtype:
values are compared in float64 (floating) or int64 (integer), and the tolerance follows
the lower precision of the two tensors (float32 tolerance as soon as one is float32).

The failure text shows both values with enough digits to tell them apart, the dtypes, and
the element that differs most, so two previews never look identical without a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ["Mismatch", "compare", "dtype_advice", "format_pair"]

#: Allowed dtypes of a result, by the reference's dtype (a check's contract).
DtypeRule = Dict[torch.dtype, Tuple[torch.dtype, ...]]
Tolerance = Tuple[float, float]

_LOW_PRECISION = (torch.float32, torch.float16, torch.bfloat16)


@dataclass
class Mismatch:
    """Where and how an actual output differs from the expected one.

    ``kind`` says what differs: "type" (not a tensor / number / tuple ...), "device",
    "dtype", "shape", "length", "key", "nan", "value". ``detail`` is an extra line (the
    element that differs most). ``output`` and ``expected_output`` are the whole outputs
    (filled in by ``check_function``) for hints that look at more than the failing part.
    """

    where: str
    reason: str
    expected: Any = None
    actual: Any = None
    max_abs_error: Optional[float] = None
    max_rel_error: Optional[float] = None
    kind: str = "value"
    detail: str = ""
    output: Any = None
    expected_output: Any = None

    @property
    def about_type(self) -> bool:
        """True when only the kind of result is wrong (dtype or device), not its values."""
        return self.kind in ("dtype", "device")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _kind_of(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_floating_point:
        return "float"
    if dtype.is_complex:
        return "complex"
    return "int"


def dtype_advice(expected: torch.dtype, actual: torch.dtype) -> str:
    """How to get ``expected`` instead of ``actual`` (Chinese, one or two sentences)."""
    want, got = _kind_of(expected), _kind_of(actual)
    if want == "float" and got == "float":
        if expected == torch.float64:
            return (
                "输入是 float64，结果也应是 float64。常见原因：torch.tensor(...)、"
                "torch.zeros(...)、torch.ones(...)、torch.arange(...) 不指定 dtype 时得到 "
                "float32，或者调用了 .float()。"
                "用 torch.zeros_like(x)、x.new_zeros(...) 或 dtype=x.dtype 让结果跟随输入的 dtype。"
            )
        return (
            f"输入是 {_name(expected)}，结果也应是 {_name(expected)}：新建张量时用 dtype=x.dtype"
            "（或 x.new_zeros(...)），不要把中间结果转成别的精度。"
        )
    if want == "int" and got == "bool":
        return (
            "应返回下标（整数张量），而不是布尔掩码：mask.nonzero().squeeze(1) 可以把掩码变成下标，"
            "或者 torch.tensor(下标列表, dtype=torch.long, device=...)。"
        )
    if want == "int" and got == "int":
        return f"应返回 {_name(expected)}：torch.tensor(..., dtype=torch.long) 或 .long()。"
    if want == "int":
        return (
            "应返回整数张量：argmax、topk、sort 给出的下标本来就是 int64；"
            "不要转成浮点，用 torch.tensor(..., dtype=torch.long) 新建。"
        )
    if want == "bool":
        return (
            "应返回布尔张量（True/False）：比较运算（如 iou >= t）的结果就是 bool，或者用 .bool()。"
        )
    if want == "float":
        return (
            f"应返回浮点张量（{_name(expected)}）：整数或布尔张量参与除法、softmax 等运算前先 "
            ".to(x.dtype)。"
        )
    return f"应返回 {_name(expected)} 的张量。"


# ----------------------------------------------------------------------------------------
# Formatting values
# ----------------------------------------------------------------------------------------


def _values(value: Tensor, digits: int, limit: int) -> str:
    flat = value.detach().reshape(-1).cpu()
    if flat.is_floating_point():
        shown = ", ".join(f"{float(v):.{digits}g}" for v in flat[:limit])
    else:
        shown = ", ".join(str(v.item()) for v in flat[:limit])
    more = f", … (共 {flat.numel()} 个)" if flat.numel() > limit else ""
    return f"[{shown}{more}]"


def _describe_tensor(value: Tensor, digits: int, limit: int) -> str:
    return f"{_name(value.dtype)} {list(value.shape)}: {_values(value, digits, limit)}"


def _number(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return repr(value)


def trim(value: Any, digits: int = 5, limit: int = 6) -> str:
    """Values, trimmed to a few entries so a verdict fits on a screen."""
    if isinstance(value, Tensor):
        return _describe_tensor(value, digits, limit)
    if isinstance(value, float):
        return _number(value, digits)
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "…"


def format_pair(expected: Any, actual: Any, limit: int = 6) -> Tuple[str, str]:
    """Previews of both values, with as many digits as it takes to tell them apart."""
    digits = 5
    while True:
        shown = trim(expected, digits, limit), trim(actual, digits, limit)
        if shown[0] != shown[1] or digits >= 17:
            return shown
        digits += 3 if digits < 14 else 17 - digits


# ----------------------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------------------


def _tolerance(expected: Tensor, actual: Tensor, tol: Tolerance, tol32: Optional[Tolerance]):
    low = expected.dtype in _LOW_PRECISION or actual.dtype in _LOW_PRECISION
    return tol32 if (low and tol32 is not None) else tol


def _index(flat_index: int, shape: Sequence[int]) -> str:
    coords = []
    for size in reversed(shape):
        coords.append(flat_index % size)
        flat_index //= size
    return "[" + ", ".join(str(c) for c in reversed(coords)) + "]"


def _worst_line(exp: Tensor, act: Tensor, bad: Tensor, e_dtype, a_dtype, shape) -> str:
    """The element that differs most, with enough digits to see the difference."""
    error = torch.where(bad, (exp - act).abs().nan_to_num(math.inf), torch.zeros_like(exp))
    flat = int(error.reshape(-1).argmax())
    e, a = float(exp.reshape(-1)[flat]), float(act.reshape(-1)[flat])
    digits = 6
    while f"{e:.{digits}g}" == f"{a:.{digits}g}" and digits < 17:
        digits += 2
    return (
        f"差别最大的元素 {_index(flat, shape)}：期望 {e:.{digits}g}（{_name(e_dtype)}），"
        f"实际 {a:.{digits}g}（{_name(a_dtype)}）"
    )


def _compare_tensor(
    expected: Tensor,
    actual: Any,
    tol: Tolerance,
    tol32: Optional[Tolerance],
    where: str,
    dtypes: Optional[DtypeRule],
) -> Optional[Mismatch]:
    if not isinstance(actual, Tensor):
        return Mismatch(
            where,
            f"应返回 Tensor，实际返回了 {type(actual).__name__}",
            expected,
            actual,
            kind="type",
        )
    if actual.device.type != expected.device.type:
        return Mismatch(
            where,
            f"设备不对：输入在 {expected.device.type} 上，结果应在 {expected.device.type} 上，"
            f"实际在 {actual.device.type} 上",
            expected,
            actual,
            kind="device",
        )
    allowed = (dtypes or {}).get(expected.dtype, (expected.dtype,))
    if actual.dtype not in allowed:
        names = " 或 ".join(_name(d) for d in allowed)
        return Mismatch(
            where,
            f"类型不对：期望 dtype {names}，实际是 {_name(actual.dtype)}",
            expected,
            actual,
            kind="dtype",
        )
    if tuple(actual.shape) != tuple(expected.shape):
        return Mismatch(
            where,
            f"形状不对：期望 {list(expected.shape)}，实际 {list(actual.shape)}",
            expected,
            actual,
            kind="shape",
        )
    if not expected.is_floating_point() or not actual.is_floating_point():
        exp = expected.detach().cpu()
        act = actual.detach().cpu()
        if exp.dtype != torch.bool:  # both integer (the dtype check allowed them): widen both
            exp, act = exp.long(), act.long()
        different = exp != act
        if not different.any():
            return None
        first = int(different.reshape(-1).nonzero()[0])
        return Mismatch(
            where,
            f"有 {int(different.sum())}/{different.numel()} 个元素不相等",
            expected,
            actual,
            kind="value",
            detail=(
                f"第一个不相等的元素 {_index(first, exp.shape)}：期望 "
                f"{exp.reshape(-1)[first].item()}，实际 {act.reshape(-1)[first].item()}"
            ),
        )
    atol, rtol = _tolerance(expected, actual, tol, tol32)
    exp = expected.detach().cpu().double()
    act = actual.detach().cpu().double()
    nan_mismatch = torch.isnan(exp) != torch.isnan(act)
    if nan_mismatch.any():
        return Mismatch(
            where,
            f"NaN 的位置不对（{int(nan_mismatch.sum())} 处）",
            expected,
            actual,
            kind="nan",
        )
    finite = ~torch.isnan(exp)
    error = (exp - act).abs()
    inf_mismatch = (torch.isinf(exp) | torch.isinf(act)) & (exp != act)
    bad = finite & ((error > atol + rtol * exp.abs()) | inf_mismatch)
    if not bad.any():
        return None
    rel = error / exp.abs().clamp_min(1e-12)
    abs_max = error[finite & ~inf_mismatch]
    rel_max = rel[finite & ~inf_mismatch]
    return Mismatch(
        where,
        f"数值不同（{int(bad.sum())}/{bad.numel()} 个元素超出容差）",
        expected,
        actual,
        float(abs_max.max()) if abs_max.numel() else math.inf,
        float(rel_max.max()) if rel_max.numel() else math.inf,
        kind="value",
        detail=_worst_line(exp, act, bad, expected.dtype, actual.dtype, exp.shape),
    )


def compare(
    expected: Any,
    actual: Any,
    atol: float,
    rtol: float,
    where: str = "输出",
    *,
    float32_tolerance: Optional[Tolerance] = None,
    dtypes: Optional[DtypeRule] = None,
) -> Optional[Mismatch]:
    """First difference between ``expected`` and ``actual`` (nested tensors, numbers,
    tuples, lists, dicts), or None when they agree within ``atol + rtol * |expected|``.

    A float32 (or lower) tensor on either side is compared with ``float32_tolerance``
    when given. ``dtypes`` maps a reference dtype to the dtypes a result may have (by
    default exactly the reference's).
    """
    tol = (atol, rtol)

    def recurse(exp: Any, act: Any, place: str) -> Optional[Mismatch]:
        return compare(
            exp, act, atol, rtol, place, float32_tolerance=float32_tolerance, dtypes=dtypes
        )

    if isinstance(expected, Tensor):
        return _compare_tensor(expected, actual, tol, float32_tolerance, where, dtypes)
    if isinstance(expected, (tuple, list)):
        if not isinstance(actual, (tuple, list)):
            return Mismatch(
                where,
                f"应返回 {type(expected).__name__}（{len(expected)} 项），"
                f"实际返回了 {type(actual).__name__}",
                expected,
                actual,
                kind="type",
            )
        if len(actual) != len(expected):
            return Mismatch(
                where,
                f"应返回 {len(expected)} 项，实际返回了 {len(actual)} 项",
                expected,
                actual,
                kind="length",
            )
        for index, (exp_item, act_item) in enumerate(zip(expected, actual)):
            mismatch = recurse(exp_item, act_item, f"{where}[{index}]")
            if mismatch is not None:
                return mismatch
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return Mismatch(
                where,
                f"应返回 dict，实际返回了 {type(actual).__name__}",
                expected,
                actual,
                kind="type",
            )
        missing = [key for key in expected if key not in actual]
        if missing:
            return Mismatch(where, f"缺少键 {missing}", expected, actual, kind="key")
        for key in expected:
            mismatch = recurse(expected[key], actual[key], f"{where}[{key!r}]")
            if mismatch is not None:
                return mismatch
        return None
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        if type(actual) is not type(expected) or actual != expected:
            kind = "type" if type(actual) is not type(expected) else "value"
            return Mismatch(
                where, f"期望 {expected!r}，实际 {_short(actual)}", expected, actual, kind=kind
            )
        return None
    if isinstance(expected, (int, float)):
        return _compare_number(expected, actual, tol, float32_tolerance, where)
    if actual != expected:  # anything else: plain equality
        return Mismatch(where, f"期望 {expected!r}，实际 {_short(actual)}", expected, actual)
    return None


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, Tensor) else trim(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _compare_number(
    expected: float, actual: Any, tol: Tolerance, tol32: Optional[Tolerance], where: str
) -> Optional[Mismatch]:
    low = False
    if isinstance(actual, Tensor) and actual.numel() == 1 and not actual.dtype == torch.bool:
        low = actual.dtype in _LOW_PRECISION
        actual = actual.item()
    if not isinstance(actual, (int, float)) or isinstance(actual, bool):
        return Mismatch(
            where, f"应返回数字，实际返回了 {type(actual).__name__}", expected, actual, kind="type"
        )
    if math.isnan(float(expected)) and math.isnan(float(actual)):
        return None
    atol, rtol = tol32 if (low and tol32 is not None) else tol
    error = abs(float(actual) - float(expected))
    if error <= atol + rtol * abs(float(expected)):
        return None
    shown_e, shown_a = format_pair(float(expected), float(actual))
    return Mismatch(
        where,
        f"数值不同：期望 {shown_e}，实际 {shown_a}",
        expected,
        actual,
        error,
        error / max(abs(float(expected)), 1e-12),
    )
