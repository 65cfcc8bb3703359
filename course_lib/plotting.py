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
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from course_lib.utils import _in_notebook

if TYPE_CHECKING:
    from course_lib.train import History

__all__ = [
    "PALETTE",
    "draw_boxes",
    "figure_slider",
    "plot_heatmap",
    "plot_history",
    "show_images",
    "static_widgets",
]

#: One colour per recurring concept, used by every chapter.
PALETTE: Dict[str, str] = {
    "train": "#1f77b4",
    "val": "#ff7f0e",
    "test": "#2ca02c",
    "ours": "#1f77b4",
    "reference": "#ff7f0e",
    "rnn": "#d62728",
    "lstm": "#2ca02c",
    "gru": "#9467bd",
    "attention": "#17becf",
    "transformer": "#8c564b",
    "cnn": "#7f7f7f",
    "prediction": "#d62728",
    "ground_truth": "#2ca02c",
}


def _to_numpy_images(images: Union[Tensor, np.ndarray, Sequence[Any]]) -> List[np.ndarray]:
    """Images as a list of [H, W] or [H, W, 3] arrays."""
    if isinstance(images, (Tensor, np.ndarray)):
        array = images.detach().cpu().float().numpy() if isinstance(images, Tensor) else images
        if array.ndim == 2:
            array = array[None]
        if array.ndim == 4:
            if array.shape[1] not in (1, 3):
                raise ValueError(
                    f"images must have shape [N, C, H, W] with C in (1, 3), got {array.shape}"
                )
            array = array.transpose(0, 2, 3, 1)
        elif array.ndim != 3:
            raise ValueError(
                f"images must have shape [N, H, W] or [N, C, H, W], got {tuple(array.shape)}"
            )
        items = list(array)
    else:
        items = []
        for image in images:
            items.extend(_to_numpy_images(image[None] if isinstance(image, Tensor) else [image]))
        return items
    return [item[..., 0] if item.ndim == 3 and item.shape[-1] == 1 else item for item in items]


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
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"titles must have one entry per image ({len(items)}), got {len(titles)}")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(items))
    nrows = (len(items) + ncols - 1) // ncols
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False
    )
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(items):
            continue
        image = items[index].astype(np.float64)
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
    history: History, metrics: Optional[Sequence[str]] = None, title: Optional[str] = None
) -> Figure:
    """Training loss per step (raw and smoothed) and, on a second panel, eval metrics."""
    names = (
        list(metrics)
        if metrics is not None
        else sorted({key for record in history.evals for key in record} - {"step"})
    )
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
            if points:
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
    if isinstance(matrix, Tensor):
        matrix = matrix.detach().cpu().float().numpy()
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix must have shape [R, C], got {matrix.shape}")
    if x_labels is not None and len(x_labels) != matrix.shape[1]:
        raise ValueError(f"x_labels needs {matrix.shape[1]} entries, got {len(x_labels)}")
    if y_labels is not None and len(y_labels) != matrix.shape[0]:
        raise ValueError(f"y_labels needs {matrix.shape[0]} entries, got {len(y_labels)}")
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
    """Draw an image [3, H, W] (or [H, W]) with boxes [K, 4] in (x1, y1, x2, y2) pixels."""
    picture = _to_numpy_images(image[None])[0]
    boxes = boxes.detach().cpu().numpy() if isinstance(boxes, Tensor) else np.asarray(boxes)
    boxes = boxes.reshape(-1, 4) if boxes.size == 0 else boxes
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [K, 4], got {tuple(boxes.shape)}")
    for name, values in (("labels", labels), ("scores", scores)):
        if values is not None and len(values) != len(boxes):
            raise ValueError(
                f"{name} must have one entry per box ({len(boxes)}), got {len(values)}"
            )
    if ax is None:
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
            label = int(labels[index])
            text.append(class_names[label] if class_names is not None else str(label))
        if scores is not None:
            text.append(f"{float(scores[index]):.2f}")
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


def close_all() -> None:
    """Close every open figure (call after a loop that draws many)."""
    plt.close("all")


def as_numpy(x: Union[Tensor, np.ndarray]) -> np.ndarray:
    """A CPU NumPy copy of a tensor (any device), or the array itself."""
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
