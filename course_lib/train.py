"""One small training loop for every model in the course.

Models follow one interface (as in makemore): ``model(*inputs, targets)`` returns
``(output, loss)``. ``fit`` drives any such model; a ``loss_fn(model, batch)`` adapts
models that do not. Progress is one line that updates in place (in a notebook, in the
rendered book and in a terminal); in a notebook a loss curve is redrawn as training runs.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union

import torch
from torch import Tensor, nn

from course_lib.utils import _in_notebook, get_device
from course_lib.validation import (
    check_bool,
    check_callable,
    check_device,
    check_float,
    check_instance,
    check_int,
)

__all__ = ["History", "fit", "to_device"]

Batch = Any
LossFn = Callable[[nn.Module, Batch], Tensor]
EvalFn = Callable[[nn.Module], Dict[str, float]]


@dataclass
class History:
    """What ``fit`` recorded: per-step losses, evaluations and the wall time.

    ``evals`` is a list of dicts, each with the ``step`` it was taken at plus the
    metrics returned by ``eval_fn``.
    """

    steps: List[int] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)
    grad_norms: List[float] = field(default_factory=list)
    evals: List[Dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"

    def metric(self, name: str) -> List[float]:
        """Values of evaluation metric ``name`` in the order they were recorded."""
        values = [record[name] for record in self.evals if name in record]
        if not values:
            known = sorted({key for record in self.evals for key in record} - {"step"})
            raise KeyError(f"no evaluation metric {name!r}; recorded metrics: {known}")
        return values

    def smoothed_losses(self, window: int = 50) -> List[float]:
        """Running mean of the loss over the last ``window`` steps."""
        window = check_int("window", window, 1)
        out, total = [], 0.0
        for i, value in enumerate(self.losses):
            total += value
            if i >= window:
                total -= self.losses[i - window]
            out.append(total / min(i + 1, window))
        return out

    def summary(self) -> str:
        """One line: steps, final (smoothed) loss, last evaluation, time and device."""
        parts = [f"{len(self.losses)} steps"]
        if self.losses:
            parts.append(f"loss {self.smoothed_losses(20)[-1]:.4f}")
        if self.evals:
            last = {k: v for k, v in self.evals[-1].items() if k != "step"}
            parts.extend(f"{k} {v:.4g}" for k, v in last.items())
        parts.append(f"{self.seconds:.1f} s on {self.device}")
        return " · ".join(parts)


def to_device(batch: Batch, device: Union[str, torch.device]) -> Batch:
    """Move every tensor in a (nested) tuple/list/dict ``batch`` to ``device``."""
    device = check_device("device", device)
    return _move(batch, device)


def _move(batch: Batch, device: torch.device) -> Batch:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: _move(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [_move(value, device) for value in batch]
        return type(batch)(moved) if isinstance(batch, list) else tuple(moved)
    if hasattr(batch, "to") and callable(batch.to):
        return batch.to(device)
    return batch


def _default_loss(model: nn.Module, batch: Batch) -> Tensor:
    if not isinstance(batch, (dict, tuple, list, Tensor)):
        raise TypeError(
            f"data must give batches that are tuples, lists or dicts of tensors, got a "
            f"{type(batch).__name__}"
        )
    if isinstance(batch, dict):
        output = model(**batch)
    elif isinstance(batch, (tuple, list)):
        output = model(*batch)
    else:
        output = model(batch)
    if isinstance(output, (tuple, list)) and len(output) == 2 and isinstance(output[1], Tensor):
        return output[1]
    raise TypeError(
        "model(*batch) must return (output, loss) with a scalar loss tensor; "
        f"got {type(output).__name__}. Pass loss_fn=lambda model, batch: ... instead."
    )


def _check_data(data: Any) -> None:
    if isinstance(data, Tensor) or not (callable(data) or hasattr(data, "__iter__")):
        raise TypeError(
            "data must be a DataLoader (or another iterable of batches) or a function "
            f"returning a batch, got {type(data).__name__}"
        )


def _batches(data: Union[Iterable[Batch], Callable[[], Batch]]) -> Iterator[Batch]:
    """Endless batches: call ``data()`` each step, or cycle through the iterable ``data``."""
    if callable(data) and not hasattr(data, "__iter__"):
        while True:
            yield data()
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("data produced no batches")


class _Progress:
    """One status line, updated at most every ``interval`` seconds, plus a live curve."""

    def __init__(self, total: int, enabled: bool, live_plot: bool, interval: float = 0.5):
        self.total, self.enabled, self.interval = total, enabled, interval
        self.notebook = _in_notebook()
        if not self.notebook and not sys.stdout.isatty():
            self.interval = max(interval, 15.0)  # logs (CI, pipes): a line every 15 s at most
        self.live_plot = live_plot and self.notebook
        self.last_text = self.last_plot = 0.0
        self.text_handle = self.plot_handle = None
        if self.enabled and self.notebook:
            from IPython.display import display

            self.text_handle = display({"text/plain": "starting…"}, raw=True, display_id=True)

    def update(self, step: int, history: History, start: float, final: bool = False) -> None:
        now = time.perf_counter()
        if not self.enabled or (not final and now - self.last_text < self.interval):
            return
        self.last_text = now
        done = step / max(self.total, 1)
        bar = "█" * int(24 * done) + "░" * (24 - int(24 * done))
        line = f"{bar} {step}/{self.total}"
        if history.losses:
            line += f" · loss {history.smoothed_losses(20)[-1]:.4f}"
        if history.evals:
            last = {k: v for k, v in history.evals[-1].items() if k != "step"}
            line += "".join(f" · {k} {v:.4g}" for k, v in last.items())
        line += f" · {now - start:.1f} s"
        if self.text_handle is not None:
            self.text_handle.update({"text/plain": line}, raw=True)
        else:
            end = "\n" if final or not sys.stdout.isatty() else ""
            print(("\r" if sys.stdout.isatty() else "") + line, end=end, flush=True)
        if self.live_plot and (final or now - self.last_plot > 4 * self.interval):
            self._plot(history)
            self.last_plot = time.perf_counter()

    def _plot(self, history: History) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        from course_lib.plotting import plot_history

        figure = plot_history(history)
        if self.plot_handle is None:
            self.plot_handle = display(figure, display_id=True)
        else:
            self.plot_handle.update(figure)
        plt.close(figure)


def fit(
    model: nn.Module,
    data: Union[Iterable[Batch], Callable[[], Batch]],
    *,
    steps: Optional[int] = None,
    epochs: Optional[int] = None,
    optimizer: Optional[torch.optim.Optimizer] = None,
    lr: float = 1e-3,
    loss_fn: Optional[LossFn] = None,
    clip_grad_norm: Optional[float] = None,
    scheduler: Optional[Any] = None,
    eval_fn: Optional[EvalFn] = None,
    eval_every: Optional[int] = None,
    device: Optional[Union[str, torch.device]] = None,
    progress: bool = True,
    live_plot: bool = True,
    max_seconds: Optional[float] = None,
) -> History:
    """Train ``model`` and return its ``History``; the model is left in eval mode.

    ``data`` is an iterable of batches (a DataLoader: give ``epochs`` or ``steps``) or a
    function returning a fresh batch (give ``steps``). A batch is a tuple, list or dict of
    tensors; it is moved to ``device`` (default ``get_device()``) and, unless ``loss_fn``
    is given, passed as ``model(*batch)``, which must return ``(output, loss)``.
    ``optimizer`` defaults to Adam with ``lr``; ``clip_grad_norm`` clips the global
    gradient norm (and records it); ``scheduler.step()`` runs after every step;
    ``eval_fn(model)`` returns a dict of metrics, run under ``torch.no_grad()`` in eval
    mode every ``eval_every`` steps and at the end. ``max_seconds`` stops early (for
    comparisons at equal time budgets).
    """
    check_instance("model", model, nn.Module, "a torch.nn.Module")
    _check_data(data)
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps or epochs")
    if steps is not None:
        steps = check_int("steps", steps, 1, 10**9)
    if epochs is not None:
        epochs = check_int("epochs", epochs, 1, 10**6)
        if callable(data) and not hasattr(data, "__len__"):
            raise ValueError("epochs needs data with a length (a DataLoader); use steps instead")
        steps = epochs * len(data)  # type: ignore[arg-type]
        if steps == 0:
            raise ValueError("data has no batches")
    lr = check_float("lr", lr, 0.0, include_minimum=False)
    if optimizer is not None:
        check_instance("optimizer", optimizer, torch.optim.Optimizer, "a torch.optim.Optimizer")
    if loss_fn is not None:
        check_callable("loss_fn", loss_fn, "a function (model, batch) -> scalar loss tensor")
    if clip_grad_norm is not None:
        clip_grad_norm = check_float("clip_grad_norm", clip_grad_norm, 0.0, include_minimum=False)
    if scheduler is not None:
        check_callable("scheduler.step", getattr(scheduler, "step", None), "a method (a scheduler)")
    if eval_fn is not None:
        check_callable("eval_fn", eval_fn, "a function model -> dict of metrics")
    if eval_every is not None:
        eval_every = check_int("eval_every", eval_every, 1)
    if max_seconds is not None:
        max_seconds = check_float("max_seconds", max_seconds, 0.0, include_minimum=False)
    progress, live_plot = check_bool("progress", progress), check_bool("live_plot", live_plot)
    device = check_device("device", device)
    assert steps is not None
    device = device if device is not None else get_device()
    model.to(device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if optimizer is None:
        if not parameters:
            raise ValueError("model has no trainable parameters")
        optimizer = torch.optim.Adam(parameters, lr=lr)
    loss_fn = loss_fn or _default_loss

    history = History(device=str(device))
    progress_line = _Progress(steps, progress, live_plot)
    pending: List[Tensor] = []  # losses kept on the device until the next display

    def flush() -> None:
        if not pending:
            return
        values = torch.stack(pending).float().cpu().tolist()
        first = len(history.losses)
        for offset, value in enumerate(values):
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"loss became {value} at step {first + offset + 1}; "
                    "try a smaller learning rate or clip_grad_norm"
                )
        history.steps.extend(range(first + 1, first + 1 + len(values)))
        history.losses.extend(values)
        pending.clear()

    def evaluate(step: int) -> None:
        if eval_fn is None:
            return
        model.eval()
        with torch.no_grad():
            metrics = eval_fn(model)
        model.train()
        if not isinstance(metrics, dict):
            raise TypeError(f"eval_fn must return a dict of metrics, got {type(metrics).__name__}")
        history.evals.append({"step": step, **{k: float(v) for k, v in metrics.items()}})

    start = time.perf_counter()
    model.train()
    batches = _batches(data)
    step = 0
    for step in range(1, steps + 1):
        batch = to_device(next(batches), device)
        loss = loss_fn(model, batch)
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise TypeError(
                "the loss (from loss_fn, or the model's (output, loss)) must be a scalar "
                f"tensor, got {type(loss).__name__}"
                + (f" of shape {list(loss.shape)}" if isinstance(loss, Tensor) else "")
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm is not None:
            norm = nn.utils.clip_grad_norm_(parameters, clip_grad_norm)
            history.grad_norms.append(norm)  # type: ignore[arg-type]  # converted below
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        pending.append(loss.detach())
        if eval_every is not None and step % eval_every == 0 and step < steps:
            flush()
            evaluate(step)
        now = time.perf_counter()
        if progress and now - progress_line.last_text >= progress_line.interval:
            flush()
            progress_line.update(step, history, start)
        if max_seconds is not None and now - start > max_seconds:
            break
    flush()
    if history.grad_norms:
        history.grad_norms = [float(norm) for norm in history.grad_norms]
    evaluate(step)
    history.seconds = time.perf_counter() - start
    progress_line.update(step, history, start, final=True)
    model.eval()
    return history
