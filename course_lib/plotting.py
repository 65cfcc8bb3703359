"""Figures used across chapters: image grids, training curves, heat maps, boxes, sliders.

All figure text is English (no CJK font is needed on Colab). ``PALETTE`` gives each
recurring concept one colour for the whole book. ``figure_slider`` is the one way a
chapter offers a knob: a live ipywidgets slider in a running notebook, or a
self-contained HTML slider over pre-rendered frames in the static book.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import uuid
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Union

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from course_lib.utils import _in_notebook
from course_lib.validation import check_float, check_instance, check_int

__all__ = [
    "PALETTE",
    "draw_boxes",
    "figure_slider",
    "plot_heatmap",
    "plot_history",
    "show_images",
    "static_widgets",
]

#: One colour per recurring concept, used by every chapter (the one palette of the book).
PALETTE: Dict[str, str] = {
    # data splits and comparisons
    "train": "#1f77b4",
    "val": "#ff7f0e",
    "test": "#2ca02c",
    "ours": "#1f77b4",
    "reference": "#ff7f0e",
    # sequence models
    "rnn": "#d62728",
    "lstm": "#2ca02c",
    "gru": "#9467bd",
    "attention": "#17becf",
    "transformer": "#8c564b",
    "cnn": "#7f7f7f",
    # diagrams of recurrent networks: inputs, states, outputs
    "input": "#c0392b",
    "state": "#27ae60",
    "output": "#2a6fdb",
    # detection
    "prediction": "#d62728",
    "ground_truth": "#2ca02c",
    # generative model families (and the data they are compared with)
    "real": "#2ca02c",
    "mixture": "#7f7f7f",
    "pixelcnn": "#d62728",
    "autoencoder": "#8c564b",
    "vae": "#9467bd",
    "gan": "#1f77b4",
    "noise": "#bcbd22",
    "shapes": "#e377c2",
}


class TrainingRecord(Protocol):
    """What ``plot_history`` reads (``course_lib.train.History`` is one): per-step losses
    and a list of evaluations, each a dict with its ``step``."""

    steps: List[int]
    losses: List[float]
    evals: List[Dict[str, float]]

    def smoothed_losses(self, window: int = 50) -> List[float]: ...


def _check_color(name: str, value: Any) -> Any:
    if not matplotlib.colors.is_color_like(value):
        raise ValueError(
            f"{name} must be a matplotlib colour such as 'red' or '#1f77b4', got {value!r}"
        )
    return value


def _as_array(name: str, value: Any) -> np.ndarray:
    """A real, finite float64 NumPy copy of a tensor (any device) or array-like."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a Tensor or an array, got {type(value).__name__}")
    if isinstance(value, Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must be real-valued, got {value.dtype}")
        value = value.detach().cpu().double().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a Tensor or an array, got {type(value).__name__}"
        ) from error
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}")
    array = array.astype(np.float64)
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise ValueError(f"{name} must be finite, got {bad} NaN or infinite value(s)")
    return array


def _to_numpy_images(
    images: Union[Tensor, np.ndarray, Sequence[Any]], name: str = "images"
) -> List[np.ndarray]:
    """Images as a list of [H, W] or [H, W, 3] arrays."""
    if isinstance(images, (list, tuple)):
        items: List[np.ndarray] = []
        for index, image in enumerate(images):
            items.extend(_to_numpy_images(_as_array(f"{name}[{index}]", image)[None], name))
        return items
    array = _as_array(name, images)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4:
        if array.shape[1] not in (1, 3):
            raise ValueError(
                f"{name} must have shape [N, C, H, W] with C in (1, 3), got {list(array.shape)}"
            )
        array = array.transpose(0, 2, 3, 1)
    elif array.ndim != 3:
        raise ValueError(
            f"{name} must have shape [N, H, W] or [N, C, H, W], got {list(array.shape)}"
        )
    return [item[..., 0] if item.ndim == 3 and item.shape[-1] == 1 else item for item in array]


def show_images(
    images: Union[Tensor, np.ndarray, Sequence[Any]],
    titles: Optional[Sequence[str]] = None,
    ncols: int = 8,
    cmap: str = "gray",
    size: float = 1.4,
    title: Optional[str] = None,
    normalize: bool = False,
) -> Figure:
    """Show images [N, C, H, W] (C = 1 or 3) or [N, H, W] in a grid; returns the figure.

    Values are expected in [0, 1] (clipped); ``normalize`` rescales each image to its
    own min..max instead, for filters and saliency maps.
    """
    items = _to_numpy_images(images)
    if not items:
        raise ValueError("images must contain at least one image")
    if titles is not None:
        if isinstance(titles, (str, bytes)) or not isinstance(titles, (list, tuple)):
            raise TypeError(f"titles must be a list of strings, got {type(titles).__name__}")
        if len(titles) != len(items):
            raise ValueError(
                f"titles must have one entry per image ({len(items)}), got {len(titles)}"
            )
    ncols = check_int("ncols", ncols, 1, 1000)
    size = check_float("size", size, 0.0, 100.0, include_minimum=False)
    if cmap not in plt.colormaps():
        raise ValueError(f"cmap must name a matplotlib colormap such as 'gray', got {cmap!r}")
    ncols = min(ncols, len(items))
    nrows = (len(items) + ncols - 1) // ncols
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(items):
            continue
        image = items[index]
        if normalize:
            low, high = image.min(), image.max()
            image = (image - low) / (high - low + 1e-12)
        ax.imshow(np.clip(image, 0, 1), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[index], fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_history(
    history: TrainingRecord,
    metrics: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
) -> Figure:
    """Training loss per step (raw and smoothed) and, on a second panel, eval metrics.

    ``history`` is what ``course_lib.train.fit`` returns (anything with ``steps``,
    ``losses``, ``evals`` and ``smoothed_losses``); ``metrics`` picks evaluation metrics by
    name (default: all recorded).
    """
    for attribute in ("steps", "losses", "evals", "smoothed_losses"):
        if not hasattr(history, attribute):
            raise TypeError(
                f"history must be a training History (from course_lib.train.fit), "
                f"got {type(history).__name__}"
            )
    recorded = sorted({key for record in history.evals for key in record} - {"step"})
    if metrics is None:
        names = recorded
    else:
        if isinstance(metrics, (str, bytes)) or not isinstance(metrics, (list, tuple)):
            raise TypeError(f"metrics must be a list of metric names, got {type(metrics).__name__}")
        unknown = [name for name in metrics if name not in recorded]
        if unknown:
            raise ValueError(f"metrics must be recorded metric names {recorded}, got {unknown}")
        names = list(metrics)
    panels = 2 if names else 1
    figure, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.2), squeeze=False)
    ax = axes[0, 0]
    if history.losses:
        ax.plot(history.steps, history.losses, color=PALETTE["train"], alpha=0.25, lw=0.8)
        ax.plot(history.steps, history.smoothed_losses(), color=PALETTE["train"], label="train")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "Training loss")
    ax.grid(alpha=0.3)
    if names:
        ax2 = axes[0, 1]
        for name in names:
            points = [(r["step"], r[name]) for r in history.evals if name in r]
            xs, ys = zip(*points)
            ax2.plot(xs, ys, marker="o", ms=3, label=name)
        ax2.set_xlabel("step")
        ax2.set_title("Evaluation")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_heatmap(
    matrix: Union[Tensor, np.ndarray],
    x_labels: Optional[Sequence[str]] = None,
    y_labels: Optional[Sequence[str]] = None,
    ax: Optional[Axes] = None,
    title: Optional[str] = None,
    xlabel: Optional[str] = None,
    ylabel: Optional[str] = None,
    cmap: str = "viridis",
    colorbar: bool = True,
    annotate: bool = False,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
) -> Axes:
    """Draw a matrix [R, C] (for example attention weights [Lq, Lk]) as a heat map."""
    matrix = _as_array("matrix", matrix)
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"matrix must have shape [R, C] with R, C >= 1, got {list(matrix.shape)}")
    if x_labels is not None and len(x_labels) != matrix.shape[1]:
        raise ValueError(f"x_labels needs {matrix.shape[1]} entries, got {len(x_labels)}")
    if y_labels is not None and len(y_labels) != matrix.shape[0]:
        raise ValueError(f"y_labels needs {matrix.shape[0]} entries, got {len(y_labels)}")
    if ax is not None:
        check_instance("ax", ax, Axes, "a matplotlib Axes")
    low = None if vmin is None else check_float("vmin", vmin)
    high = None if vmax is None else check_float("vmax", vmax)
    if low is not None and high is not None and low > high:
        raise ValueError(f"vmin ({low}) must not exceed vmax ({high})")
    if ax is None:
        width = min(12.0, 1.5 + 0.35 * matrix.shape[1])
        height = min(10.0, 1.0 + 0.35 * matrix.shape[0])
        _, ax = plt.subplots(figsize=(max(width, 3.0), max(height, 2.5)))
    image = ax.imshow(matrix, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)))
        ax.set_xticklabels(x_labels, fontsize=8)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)))
        ax.set_yticklabels(y_labels, fontsize=8)
    if annotate:
        for (row, col), value in np.ndenumerate(matrix):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color="w")
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax


def draw_boxes(
    image: Union[Tensor, np.ndarray],
    boxes: Union[Tensor, np.ndarray],
    labels: Optional[Union[Tensor, Sequence[int]]] = None,
    scores: Optional[Union[Tensor, Sequence[float]]] = None,
    class_names: Optional[Sequence[str]] = None,
    ax: Optional[Axes] = None,
    color: str = PALETTE["prediction"],
    title: Optional[str] = None,
) -> Axes:
    """Draw an image [3, H, W] (or [1, H, W], [H, W]) with boxes [K, 4] in (x1, y1, x2, y2)
    pixels; ``labels`` [K] (indices into ``class_names`` when given) and ``scores`` [K]
    are written on the boxes."""
    picture = _as_array("image", image)
    if picture.ndim not in (2, 3) or (picture.ndim == 3 and picture.shape[0] not in (1, 3)):
        raise ValueError(
            f"image must have shape [3, H, W], [1, H, W] or [H, W], got {list(picture.shape)}"
        )
    picture = _to_numpy_images(picture[None], "image")[0]
    boxes = _as_array("boxes", boxes)
    boxes = boxes.reshape(-1, 4) if boxes.size == 0 else boxes
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [K, 4], got {list(boxes.shape)}")
    if labels is not None:
        labels = [int(v) for v in _as_array("labels", labels).reshape(-1)]
        if class_names is not None and any(not 0 <= v < len(class_names) for v in labels):
            raise ValueError(
                f"labels must index class_names (0..{len(class_names) - 1}), got {labels}"
            )
    if scores is not None:
        scores = [float(v) for v in _as_array("scores", scores).reshape(-1)]
    for name, values in (("labels", labels), ("scores", scores)):
        if values is not None and len(values) != len(boxes):
            raise ValueError(
                f"{name} must have one entry per box ({len(boxes)}), got {len(values)}"
            )
    _check_color("color", color)
    if ax is not None:
        check_instance("ax", ax, Axes, "a matplotlib Axes")
    else:
        _, ax = plt.subplots(figsize=(3.5, 3.5))
    ax.imshow(np.clip(picture, 0, 1), cmap="gray", interpolation="nearest")
    for index, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        ax.add_patch(
            matplotlib.patches.Rectangle(
                (x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, edgecolor=color, lw=1.5
            )
        )
        text = []
        if labels is not None:
            label = labels[index]
            text.append(class_names[label] if class_names is not None else str(label))
        if scores is not None:
            text.append(f"{scores[index]:.2f}")
        if text:
            ax.text(
                x1 - 0.5, y1 - 1.5, " ".join(text), color="white", fontsize=7,
                bbox={"facecolor": color, "alpha": 0.8, "pad": 1, "edgecolor": "none"},
            )  # fmt: skip
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def static_widgets() -> bool:
    """True when knobs must be static HTML: while the book is built (the build decides, see
    ``course_lib.book.in_book_build``), outside a notebook, or without ipywidgets."""
    from course_lib.book import in_book_build

    if in_book_build() or not _in_notebook():
        return True
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return True
    return False


def _figure_to_png(figure: Figure, dpi: int) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _static_slider_html(
    draw: Callable[..., Figure],
    sliders: Dict[str, Sequence[Any]],
    initial: Dict[str, int],
    dpi: int,
) -> str:
    names = list(sliders)
    frames = {}
    for combo in itertools.product(*(range(len(sliders[name])) for name in names)):
        kwargs = {name: sliders[name][i] for name, i in zip(names, combo)}
        frames["_".join(map(str, combo))] = _figure_to_png(draw(**kwargs), dpi)
    widget_id = f"course-slider-{uuid.uuid4().hex[:8]}"
    labels = {name: [str(value) for value in sliders[name]] for name in names}
    controls = "".join(
        f'<div class="course-slider-control"><label>{html.escape(name)} = '
        f'<span data-value="{html.escape(name)}">{html.escape(labels[name][initial[name]])}'
        f'</span></label> <input type="range" min="0" max="{len(sliders[name]) - 1}" '
        f'step="1" value="{initial[name]}" data-name="{html.escape(name)}" '
        f'aria-label="{html.escape(name)}" style="width: 60%"></div>'
        for name in names
    )
    start_key = "_".join(str(initial[name]) for name in names)
    return (
        f'<div class="course-slider" id="{widget_id}">{controls}'
        f'<img class="course-slider-frame" alt="figure for the chosen slider values" '
        f'src="data:image/png;base64,{frames[start_key]}" style="max-width: 100%"></div>'
        "<script>(function () {"
        f"const root = document.getElementById({json.dumps(widget_id)});"
        f"const frames = {json.dumps(frames)}; const labels = {json.dumps(labels)};"
        f"const names = {json.dumps(names)};"
        'const inputs = names.map(n => root.querySelector(`input[data-name="${n}"]`));'
        "function update() {"
        "  const key = inputs.map(i => i.value).join('_');"
        "  const image = root.querySelector('img.course-slider-frame');"
        "  image.src = 'data:image/png;base64,' + frames[key];"
        "  inputs.forEach((input, k) => {"
        '    root.querySelector(`span[data-value="${names[k]}"]`).textContent ='
        "      labels[names[k]][input.value]; });"
        "}"
        "inputs.forEach(i => i.addEventListener('input', update));"
        "})();</script>"
    )


class _StaticHTML:
    """Minimal rich-display object, so the HTML needs no IPython import to build."""

    def __init__(self, markup: str):
        self.markup = markup

    def _repr_html_(self) -> str:
        return self.markup

    def __repr__(self) -> str:
        return "<static slider figure: open in a notebook or the rendered book to view>"


def figure_slider(
    draw: Callable[..., Figure],
    initial: Optional[Dict[str, Any]] = None,
    dpi: int = 80,
    max_frames: int = 64,
    **sliders: Sequence[Any],
) -> Optional[Any]:
    """Offer a knob over a figure: ``figure_slider(draw, sigma=[0.5, 0.9, 1.1])``.

    ``draw(**values)`` must return a matplotlib Figure. In a live notebook this is an
    ipywidgets slider per keyword (figures are drawn on demand). While the book is built,
    every combination is drawn once and shown as a self-contained HTML slider, so it works
    on the static site without a kernel. ``initial`` picks the
    starting value of each slider (default: the middle one). In a notebook the slider is
    displayed and None is returned (so a last-line call does not show it twice); in a plain
    script the static HTML object is returned.
    """
    if not callable(draw):
        raise TypeError(f"draw must be a function returning a Figure, got {type(draw).__name__}")
    if not sliders:
        raise ValueError("give at least one slider, e.g. figure_slider(draw, sigma=[0.5, 1.0])")
    for name, values in sliders.items():
        if isinstance(values, (str, bytes)) or len(values) == 0:
            raise ValueError(f"slider {name!r} needs a non-empty sequence of values")
    frame_count = int(np.prod([len(values) for values in sliders.values()]))
    start = {}
    for name, values in sliders.items():
        wanted = (initial or {}).get(name, values[len(values) // 2])
        if wanted not in list(values):
            raise ValueError(f"initial value {wanted!r} of {name!r} is not one of {list(values)}")
        start[name] = list(values).index(wanted)
    if static_widgets():
        if frame_count > max_frames:
            raise ValueError(
                f"{frame_count} combinations exceed max_frames={max_frames}; use fewer values"
            )
        widget = _StaticHTML(_static_slider_html(draw, dict(sliders), start, dpi))
        if _in_notebook():
            from IPython.display import HTML, display

            display(HTML(widget.markup))
            return None
        return widget

    import ipywidgets
    from IPython.display import display

    def show(**values: Any) -> None:
        figure = draw(**values)
        display(figure)
        plt.close(figure)

    controls = {
        name: ipywidgets.SelectionSlider(
            options=list(values), value=list(values)[start[name]], description=name,
            continuous_update=False,
        )
        for name, values in sliders.items()
    }  # fmt: skip
    ipywidgets.interact(show, **controls)
    return None
