"""The chapter's figures: a labelled 2-D embedding with thumbnails, and nearest neighbours."""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from torch import Tensor

from course_lib.validation import check_bool, check_float, check_int, check_sequence, check_tensor

#: More panels than this make an unreadable (and very slow) figure.
MAX_PANELS = 1000


def _spread_out(points: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of up to ``count`` points, visited in a seeded random order and kept when
    they are at least 1/8 of the plot's extent away from every point kept before."""
    order = np.random.default_rng(seed).permutation(len(points))
    radius = 0.125 * float(np.ptp(points, axis=0).max()) if len(points) else 0.0
    chosen: list = []
    for index in order:
        if len(chosen) == count:
            break
        if not chosen or np.linalg.norm(points[chosen] - points[index], axis=1).min() >= radius:
            chosen.append(int(index))
    return np.array(chosen, dtype=np.int64)


def _check_images(name: str, images: object, sizes: Dict[str, int], shape: str) -> Tensor:
    """Pictures to draw: real values, 1 (grey) or 3 (RGB) channels."""
    images = check_tensor(name, images, shape, dtype="real", sizes=sizes)
    if images.shape[-3] not in (1, 3):
        raise ValueError(
            f"{name} must have 1 or 3 channels (shape [{shape}] with C = 1 or 3), "
            f"got {list(images.shape)}"
        )
    return images


def _check_axes(ax: object) -> None:
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")


def _check_title(title: object) -> None:
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string or None, got {type(title).__name__}")


def plot_embedding(
    points: Tensor,
    labels: Tensor,
    images: Optional[Tensor] = None,
    ax=None,
    title: Optional[str] = None,
    thumbnails: int = 40,
    class_names: Optional[Sequence[str]] = None,
    legend: bool = True,
    point_size: float = 6.0,
):
    """Scatter a 2-D embedding points [N, 2] coloured by labels [N] (class indices); with
    images [N, C, H, W] (C = 1 or 3, values in [0, 1]), overlay ``thumbnails`` of them
    spread over the plot. ``class_names`` names every label in the legend. Returns the Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    sizes: Dict[str, int] = {}
    points = check_tensor("points", points, "N, 2", dtype="real", sizes=sizes, finite=True)
    labels = check_tensor("labels", labels, "N", dtype="integer", sizes=sizes)
    if images is not None:
        _check_images("images", images, sizes, "N, C, H, W")
    _check_axes(ax)
    _check_title(title)
    thumbnails = check_int("thumbnails", thumbnails, 0)
    legend = check_bool("legend", legend)
    point_size = check_float("point_size", point_size, 0.0, include_minimum=False)
    points_np = points.detach().cpu().double().numpy()
    labels_np = labels.detach().cpu().numpy()
    if class_names is not None:
        check_sequence("class_names", class_names)
        if len(labels_np) and not 0 <= labels_np.min() <= labels_np.max() < len(class_names):
            raise ValueError(
                f"class_names must name every label: {len(class_names)} names for labels "
                f"from {labels_np.min()} to {labels_np.max()}"
            )
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 5))
    cmap = plt.get_cmap("tab10")
    classes = np.unique(labels_np)
    for label in classes:
        mask = labels_np == label
        name = class_names[int(label)] if class_names is not None else str(int(label))
        ax.scatter(*points_np[mask].T, s=point_size, color=cmap(int(label) % 10), label=name,
                   alpha=0.8, linewidths=0)  # fmt: skip
    if images is not None and thumbnails > 0 and len(points_np):
        pictures = images.detach().cpu().float()
        for index in _spread_out(points_np, thumbnails):
            picture = pictures[index].permute(1, 2, 0).numpy().clip(0, 1)
            box = OffsetImage(
                picture.squeeze(-1) if picture.shape[-1] == 1 else picture,
                cmap="gray_r",
                zoom=max(0.6, 16 / picture.shape[0]),
            )
            edge = {"edgecolor": cmap(int(labels_np[index]) % 10)}
            frame = AnnotationBbox(box, points_np[index], frameon=True, pad=0.05, bboxprops=edge)
            ax.add_artist(frame)
    if legend and len(classes) <= 20:
        ax.legend(markerscale=2.5, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  frameon=False)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def _check_neighbor_inputs(
    queries: object,
    neighbor_sets: object,
    set_names: object,
    query_labels: object,
    neighbor_labels: object,
) -> None:
    sizes: Dict[str, int] = {}
    _check_images("queries", queries, sizes, "Q, C, H, W")
    check_sequence("neighbor_sets", neighbor_sets)
    if not neighbor_sets:
        raise ValueError("neighbor_sets must hold at least one set [Q, K, C, H, W], got none")
    for index, neighbours in enumerate(neighbor_sets):
        _check_images(f"neighbor_sets[{index}]", neighbours, sizes, "Q, K, C, H, W")
    names = check_sequence("set_names", set_names, len(neighbor_sets))
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"set_names must be strings, got {[type(n).__name__ for n in names]}")
    if (query_labels is None) != (neighbor_labels is None):
        raise ValueError("give both query_labels and neighbor_labels, or neither")
    if query_labels is not None:
        check_tensor("query_labels", query_labels, "Q", dtype="integer", sizes=sizes)
        check_sequence("neighbor_labels", neighbor_labels, len(neighbor_sets))
        for index, labels in enumerate(neighbor_labels):
            check_tensor(f"neighbor_labels[{index}]", labels, "Q, K", dtype="integer", sizes=sizes)
    panels = sizes["Q"] * (1 + len(neighbor_sets) * (sizes["K"] + 1))
    if panels > MAX_PANELS:
        raise ValueError(
            f"queries and neighbor_sets ask for {panels} panels, more than {MAX_PANELS}; "
            "show fewer queries or neighbours"
        )


def plot_neighbors(
    queries: Tensor,
    neighbor_sets: Sequence[Tensor],
    set_names: Sequence[str],
    query_labels: Optional[Tensor] = None,
    neighbor_labels: Optional[Sequence[Tensor]] = None,
    title: Optional[str] = None,
    size: float = 0.9,
):
    """One row per query: the query image, then for each set its neighbours.

    ``queries`` [Q, C, H, W]; each of ``neighbor_sets`` is [Q, K, C, H, W] (e.g. the K
    nearest training images in pixel space, then in feature space), with one name each in
    ``set_names``. With ``query_labels`` [Q] and ``neighbor_labels`` (one [Q, K] per set),
    neighbours whose label differs from the query's are framed in red. Returns the figure.
    """
    import matplotlib.pyplot as plt

    _check_neighbor_inputs(queries, neighbor_sets, set_names, query_labels, neighbor_labels)
    _check_title(title)
    size = check_float("size", size, 0.0, include_minimum=False)
    count = queries.shape[0]
    k = neighbor_sets[0].shape[1]
    columns = 1 + len(neighbor_sets) * (k + 1)
    figure, axes = plt.subplots(max(count, 1), columns, squeeze=False,
                                figsize=(size * columns, size * max(count, 1) + 0.5))  # fmt: skip

    def draw(ax, image: Tensor, color: Optional[str] = None) -> None:
        picture = image.detach().cpu().float().permute(1, 2, 0).numpy().clip(0, 1)
        ax.imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture, cmap="gray",
                  vmin=0, vmax=1, interpolation="nearest")  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(color is not None)
            if color is not None:
                spine.set_edgecolor(color)
                spine.set_linewidth(2)

    for ax in axes.flat:
        ax.axis("off")
    for row in range(count):
        axes[row, 0].axis("on")
        draw(axes[row, 0], queries[row])
        for s, neighbours in enumerate(neighbor_sets):
            for j in range(k):
                ax = axes[row, 1 + s * (k + 1) + 1 + j]
                ax.axis("on")
                wrong = (
                    query_labels is not None
                    and neighbor_labels is not None
                    and int(neighbor_labels[s][row, j]) != int(query_labels[row])
                )
                draw(ax, neighbours[row, j], "red" if wrong else None)
    axes[0, 0].set_title("query", fontsize=8)
    for s, name in enumerate(set_names):
        axes[0, 1 + s * (k + 1) + 1 + (k - 1) // 2].set_title(name, fontsize=8)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure
