"""Benchmark harness: speed rows (ours vs a peer library) and quality rows (chapter bars).

A chapter registers rows in its own ``benchmarks/bench_<chapter>.py``::

    @speed_row("box_iou", peer="torchvision.ops.box_iou", target="<= 1.1x")
    def box_iou_rows(device, quick):
        for n in ([100] if quick else [100, 1000, 10000]):
            boxes = random_boxes(n, device)
            yield SpeedCase(f"N={n}", ours=lambda: box_iou(boxes, boxes),
                            peer=lambda: torchvision.ops.box_iou(boxes, boxes))

    @quality_row("detection", "two-stage detector")
    def detector_quality(device, quick):
        ...train, evaluate...
        return [Measure("mAP@0.5", value, bar=">= 0.90")]

Speed is the median of several timed runs after warm-up, with CUDA synchronised around
each run; both sides get the same inputs in the same process, and the largest
difference between their outputs is reported next to the ratio ours/peer.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional

import torch

__all__ = [
    "Measure",
    "QualityResult",
    "SpeedCase",
    "SpeedResult",
    "machine_description",
    "max_difference",
    "quality_row",
    "render_markdown",
    "run_all",
    "speed_row",
    "time_call",
]


@dataclass
class SpeedCase:
    """One input size of a speed row: two zero-argument callables doing the same work."""

    size: str
    ours: Callable[[], Any]
    peer: Optional[Callable[[], Any]] = None
    compare: bool = True  # report max |ours - peer| over the outputs


@dataclass
class Measure:
    """One quality measurement returned by a quality row."""

    metric: str
    value: float
    bar: str = ""  # e.g. ">= 0.95" or "<= 2.0"; empty: reported, no bar
    notes: str = ""


@dataclass
class SpeedResult:
    operation: str
    size: str
    device: str
    ours_ms: float
    peer: str
    peer_ms: Optional[float]
    ratio: Optional[float]
    max_abs_diff: Optional[float]
    target: str = ""


@dataclass
class QualityResult:
    chapter: str
    model: str
    metric: str
    value: float
    bar: str
    passed: Optional[bool]
    mode: str
    device: str
    seconds: float
    notes: str = ""


@dataclass
class _Row:
    name: str
    kind: str  # "speed" | "quality"
    function: Callable[..., Any]
    peer: str = ""
    target: str = ""
    chapter: str = ""
    tags: List[str] = field(default_factory=list)


_ROWS: List[_Row] = []


def speed_row(
    name: str, peer: str = "", target: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``function(device, quick)`` yielding ``SpeedCase`` objects."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _ROWS.append(_Row(name, "speed", function, peer=peer, target=target))
        return function

    return register


def quality_row(chapter: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``function(device, quick)`` returning a list of ``Measure`` objects."""

    def register(function: Callable[..., Any]) -> Callable[..., Any]:
        _ROWS.append(_Row(name, "quality", function, chapter=chapter))
        return function

    return register


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def time_call(
    function: Callable[[], Any], device: torch.device, repeats: int = 7, warmup: int = 2
) -> float:
    """Median wall time of ``function()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        function()
    _synchronize(device)
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        function()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def max_difference(a: Any, b: Any) -> Optional[float]:
    """Largest absolute difference between two (nested) outputs, None if not comparable."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape:
            return math.inf
        if a.numel() == 0:
            return 0.0
        return float((a.detach().double() - b.detach().double()).abs().max())
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
        diffs = [max_difference(x, y) for x, y in zip(a, b)]
        known = [d for d in diffs if d is not None]
        return max(known) if known else None
    if isinstance(a, dict) and isinstance(b, dict):
        return max_difference([a[k] for k in sorted(a)], [b.get(k) for k in sorted(a)])
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b))
    return None


def machine_description(device: torch.device) -> Dict[str, str]:
    """Where the numbers come from: processor or GPU, threads, library versions."""
    info = {
        "date": time.strftime("%Y-%m-%d"),
        "device": str(device),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": str(torch.get_num_threads()),
    }
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def _bar_passed(value: float, bar: str) -> Optional[bool]:
    bar = bar.strip()
    if not bar:
        return None
    for op, check in (("<=", lambda v, t: v <= t), (">=", lambda v, t: v >= t)):
        if bar.startswith(op):
            return bool(check(value, float(bar[len(op) :].strip().rstrip("x%"))))
    raise ValueError(f"bar must look like '>= 0.95' or '<= 2.0', got {bar!r}")


def run_all(
    device: torch.device,
    quick: bool,
    only: Optional[str] = None,
    kinds: Iterable[str] = ("speed", "quality"),
    log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Run every registered row (or those whose name contains ``only``)."""
    from course_lib.utils import fast_mode

    mode = "fast" if (quick or fast_mode()) else "full"
    speed: List[SpeedResult] = []
    quality: List[QualityResult] = []
    kinds = set(kinds)
    for row in _ROWS:
        if row.kind not in kinds or (only and only.lower() not in row.name.lower()):
            continue
        log(f"[{row.kind}] {row.name} ...")
        if row.kind == "speed":
            for case in row.function(device, quick):
                repeats, warmup = (3, 1) if quick else (15, 3)
                ours_ms = time_call(case.ours, device, repeats=repeats, warmup=warmup)
                peer_ms = diff = None
                if case.peer is not None:
                    peer_ms = time_call(
                        case.peer, device, repeats=repeats, warmup=1 if quick else 3
                    )
                    if case.compare:
                        diff = max_difference(case.ours(), case.peer())
                speed.append(
                    SpeedResult(
                        operation=row.name,
                        size=case.size,
                        device=device.type,
                        ours_ms=ours_ms,
                        peer=row.peer,
                        peer_ms=peer_ms,
                        ratio=(ours_ms / peer_ms) if peer_ms else None,
                        max_abs_diff=diff,
                        target=row.target,
                    )
                )
        else:
            start = time.perf_counter()
            measures = row.function(device, quick)
            seconds = time.perf_counter() - start
            for measure in measures:
                quality.append(
                    QualityResult(
                        chapter=row.chapter,
                        model=row.name,
                        metric=measure.metric,
                        value=float(measure.value),
                        bar=measure.bar,
                        passed=_bar_passed(float(measure.value), measure.bar),
                        mode=mode,
                        device=device.type,
                        seconds=seconds,
                        notes=measure.notes,
                    )
                )
    return {
        "machine": machine_description(device),
        "quick": quick,
        "speed": [asdict(r) for r in speed],
        "quality": [asdict(r) for r in quality],
    }


def _fmt(value: Optional[float], spec: str) -> str:
    return "–" if value is None else format(value, spec)


def render_markdown(results: Dict[str, Any]) -> str:
    """Both tables as Markdown, headed by the machine they were measured on."""
    machine = results["machine"]
    lines = [
        f"Measured on {machine['date']}: {machine.get('gpu') or machine['cpu']} "
        f"({machine['threads']} threads), device `{machine['device']}`, "
        f"torch {machine['torch']}, Python {machine['python']}"
        + (" — **quick run (tiny sizes, not for comparison)**" if results["quick"] else ""),
        "",
        "**Speed** (median time; ratio = ours / peer, lower is better)",
        "",
        "| operation | size | device | ours (ms) | peer | peer (ms) | ratio | max abs diff "
        "| target |",
        "|---|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in results["speed"]:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"| {r['operation']} | {r['size']} | {r['device']} | {r['ours_ms']:.3f} | "
            f"{r['peer'] or '–'} | {_fmt(r['peer_ms'], '.3f')} | {ratio} | "
            f"{_fmt(r['max_abs_diff'], '.1e')} | {r['target'] or '–'} |"
        )
    lines += [
        "",
        "**Quality** (bar = what the chapter must reach in full mode)",
        "",
        "| chapter | model | metric | value | bar | met | mode | device | time (s) |",
        "|---|---|---|---:|---|---|---|---|---:|",
    ]
    for r in results["quality"]:
        met = {True: "yes", False: "**no**", None: "–"}[r["passed"]]
        lines.append(
            f"| {r['chapter']} | {r['model']} | {r['metric']} | {r['value']:.4g} | "
            f"{r['bar'] or '–'} | {met} | {r['mode']} | {r['device']} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def merge_results(old: Dict[str, Any], new: Dict[str, Any], only: str) -> Dict[str, Any]:
    """``old`` with the rows whose name contains ``only`` replaced by the rows of ``new``.

    Lets one row be rerun (``--only NAME``) without discarding the rest of a results file.
    Rows keep their original order; rows new to the file go at the end of their table.
    """
    if old.get("quick") != new.get("quick"):
        raise ValueError("cannot merge a quick run into a full one (or the reverse)")
    name = {"speed": "operation", "quality": "model"}
    merged: Dict[str, Any] = {"machine": new["machine"], "quick": new["quick"]}
    for table, key in name.items():
        fresh: Dict[str, List[Dict[str, Any]]] = {}
        for row in new[table]:
            fresh.setdefault(row[key], []).append(row)
        rows: List[Dict[str, Any]] = []
        for row in old[table]:
            if only.lower() not in row[key].lower():
                rows.append(row)
            elif row[key] in fresh:
                rows += fresh.pop(row[key])
        merged[table] = rows + [row for group in fresh.values() for row in group]
    return merged


def dumps(results: Dict[str, Any]) -> str:
    return json.dumps(results, indent=2, ensure_ascii=False) + "\n"
