"""Network visualisation: what a trained CNN has learned, seen through weights and features.

The chapter's data, model and tools, in the order the chapter uses them:

1. data: ``load_shapes_classification`` (one coloured shape per image) and
   ``load_hard_digits`` (scikit-learn's digits placed at random positions and scales on a
   larger noisy canvas, where nearest neighbours in pixel space fail);
2. the model: ``SmallCNN``, whose penultimate layer gives the feature vectors, and
   ``extract_features``;
3. nearest neighbours: ``pairwise_squared_distances``, ``nearest_neighbors``,
   ``knn_from_distances``, ``knn_classify``;
4. linear dimensionality reduction: ``pca`` (centre, thin SVD);
5. non-linear dimensionality reduction, exact t-SNE: ``perplexity_search`` (calibrated
   conditional probabilities), ``tsne_affinities`` (the symmetric P), ``tsne_gradient``
   and ``tsne_kl_divergence`` (Student-t Q, KL divergence and its gradient), ``tsne``
   (early exaggeration, momentum and per-parameter gains);
6. beyond the notes: ``saliency_map`` and ``fgsm_attack``;
7. figures: ``plot_embedding`` and ``plot_neighbors``.

Everything is vectorised PyTorch on the device of its inputs (CPU, CUDA or MPS).

Shape letters: ``N`` points (rows of a data matrix), ``M`` points of a reference bank,
``Q`` queries, ``D`` features per point, ``K`` neighbours or principal components, ``R``
rows of a distance matrix, ``B`` batch, ``C`` channels or classes, ``H``/``W`` image height
and width, ``E`` embedding dimensions (``n_components``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "HardDigits",
    "PCAResult",
    "ShapesClassification",
    "SmallCNN",
    "TSNEState",
    "extract_features",
    "fgsm_attack",
    "knn_classify",
    "knn_from_distances",
    "load_hard_digits",
    "load_shapes_classification",
    "nearest_neighbors",
    "pairwise_squared_distances",
    "pca",
    "perplexity_search",
    "place_digits",
    "plot_embedding",
    "plot_neighbors",
    "random_batches",
    "saliency_map",
    "tsne",
    "tsne_affinities",
    "tsne_gradient",
    "tsne_kl_divergence",
]


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _check_points(name: str, x: object, letters: str = "N, D") -> Tensor:
    """A floating-point matrix [N, D]."""
    x = _check_tensor(name, x)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape [{letters}], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


def _check_labels(name: str, labels: object, count: int) -> Tensor:
    labels = _check_tensor(name, labels)
    if labels.dim() != 1 or labels.shape[0] != count:
        raise ValueError(f"{name} must have shape [{count}], got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool or labels.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got {labels.dtype}")
    if count and int(labels.min()) < 0:
        raise ValueError(f"{name} must be non-negative class indices, got {int(labels.min())}")
    return labels


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


def _wide_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


# --------------------------------------------------------------------------------------
# Data: one shape per image, and digits that pixel-space neighbours cannot read
# --------------------------------------------------------------------------------------


@dataclass
class ShapesClassification:
    """RGB images with exactly one shape each: ``images`` float32 [N, 3, H, W] in [0, 1],
    ``shapes`` int64 [N] (index into ``course_lib.data.SHAPE_CLASSES``), ``colors``
    int64 [N] (index into ``course_lib.data.SHAPE_COLORS``) and the shape's box
    ``boxes`` float32 [N, 4] (x1, y1, x2, y2 in pixels)."""

    images: Tensor
    shapes: Tensor
    colors: Tensor
    boxes: Tensor

    @property
    def targets(self) -> Tensor:
        """Both labels side by side, [N, 2]: the targets of a two-head ``SmallCNN``."""
        return torch.stack([self.shapes, self.colors], dim=1)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return f"ShapesClassification({len(self)} images, {tuple(self.images.shape[1:])})"


def load_shapes_classification(
    num_images: int, image_size: int = 32, seed: int = 0
) -> ShapesClassification:
    """Render ``num_images`` images of one circle, square or triangle in one of six colours.

    Built on ``course_lib.data.ShapesDataset`` (seeded, deterministic); returns a
    ``ShapesClassification`` with images [N, 3, H, W] (H = W = ``image_size``).
    """
    from course_lib.data import ShapesDataset

    num_images = _check_int("num_images", num_images, 0)
    dataset = ShapesDataset(
        num_images, image_size=image_size, min_objects=1, max_objects=1,
        min_size=0.35, max_size=0.7, seed=seed,
    )  # fmt: skip
    items = [dataset[index] for index in range(num_images)]
    if not items:
        empty = torch.zeros(0, dtype=torch.int64)
        return ShapesClassification(
            torch.zeros(0, 3, image_size, image_size), empty, empty.clone(), torch.zeros(0, 4)
        )
    return ShapesClassification(
        images=torch.stack([image for image, _ in items]),
        shapes=torch.cat([target["labels"] for _, target in items]),
        colors=torch.cat([target["colors"] for _, target in items]),
        boxes=torch.cat([target["boxes"] for _, target in items]),
    )


@dataclass
class HardDigits:
    """Digits placed at random positions and scales on a noisy canvas.

    Images are float32 [N, 1, S, S] in [0, 1] (S = ``canvas_size``), labels int64 [N].
    Training and test images are drawn from disjoint sets of the original 8x8 digits
    (``course_lib.data.load_digits``' split), so a test digit never appears in training.
    ``train_source``/``test_source`` give the index of each image's original digit and
    ``train_boxes``/``test_boxes`` [N, 4] where its 8x8 square landed (x1, y1, x2, y2 in
    pixels).
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    train_source: Tensor
    test_source: Tensor
    train_boxes: Tensor
    test_boxes: Tensor

    def __repr__(self) -> str:
        return (
            f"HardDigits(train={len(self.train_labels)}, test={len(self.test_labels)}, "
            f"image shape={tuple(self.train_images.shape[1:])})"
        )


def place_digits(
    digits: Tensor,
    canvas_size: int,
    min_scale: float,
    max_scale: float,
    noise: float,
    generator: torch.Generator,
) -> Tuple[Tensor, Tensor]:
    """Paste images [N, 1, h, w] onto [N, 1, S, S] canvases at random scales and positions.

    Each digit is resized (bilinear) to a side of ``min_scale``..``max_scale`` times the
    canvas, placed uniformly at random where it fits, and Gaussian noise of standard
    deviation ``noise`` is added; values are clipped to [0, 1]. One ``grid_sample`` call
    does the whole batch. Returns the canvases and the boxes [N, 4] (x1, y1, x2, y2 in
    pixels) that the digits now fill.
    """
    count = digits.shape[0]
    side = min_scale + (max_scale - min_scale) * torch.rand(count, generator=generator)
    # In normalised coordinates the canvas spans [-1, 1]; a digit of relative size s
    # fits when its centre lies in [-(1 - s), 1 - s].
    centre = (torch.rand(count, 2, generator=generator) * 2 - 1) * (1 - side)[:, None]
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / side
    theta[:, :, 2] = -centre / side[:, None]
    grid = F.affine_grid(theta, [count, 1, canvas_size, canvas_size], align_corners=False)
    canvas = F.grid_sample(digits, grid, mode="bilinear", align_corners=False)
    canvas = canvas + noise * torch.randn(canvas.shape, generator=generator)
    centre_pixels = (centre + 1) / 2 * canvas_size  # [N, 2] as (x, y)
    half = (side * canvas_size / 2)[:, None]
    return canvas.clamp(0, 1), torch.cat([centre_pixels - half, centre_pixels + half], dim=1)


def load_hard_digits(
    canvas_size: int = 32,
    train_copies: int = 3,
    test_copies: int = 2,
    min_scale: float = 0.3,
    max_scale: float = 0.6,
    noise: float = 0.2,
    seed: int = 0,
) -> HardDigits:
    """The harder digits: each original digit pasted ``train_copies`` (or ``test_copies``)
    times at a random scale and position on a ``canvas_size`` square with noise.

    With the defaults: 4311 training and 720 test images [1, 32, 32]. Deterministic for
    a given ``seed``. See ``HardDigits`` for the fields.
    """
    from course_lib.data import load_digits

    canvas_size = _check_int("canvas_size", canvas_size, 8)
    train_copies = _check_int("train_copies", train_copies, 1)
    test_copies = _check_int("test_copies", test_copies, 1)
    if not 0.0 < min_scale <= max_scale <= 1.0:
        raise ValueError(
            f"need 0 < min_scale <= max_scale <= 1, got min_scale={min_scale}, "
            f"max_scale={max_scale}"
        )
    if noise < 0:
        raise ValueError(f"noise must be non-negative, got {noise}")
    digits = load_digits()
    generator = torch.Generator().manual_seed(_check_int("seed", seed, 0))

    def make(images: Tensor, labels: Tensor, copies: int) -> Tuple[Tensor, ...]:
        source = torch.arange(len(labels)).repeat(copies)
        placed, boxes = place_digits(
            images[source], canvas_size, min_scale, max_scale, noise, generator
        )
        return placed, labels[source], source, boxes

    train = make(digits.train_images, digits.train_labels, train_copies)
    test = make(digits.test_images, digits.test_labels, test_copies)
    return HardDigits(train[0], train[1], test[0], test[1], train[2], test[2], train[3], test[3])


# --------------------------------------------------------------------------------------
# The model: a small CNN whose penultimate layer gives the feature vectors
# --------------------------------------------------------------------------------------


class SmallCNN(nn.Module):
    """Three conv blocks, global average pooling, a hidden layer (the features), a classifier.

    ``conv1`` (``first_kernel`` x ``first_kernel``) → pool → ``conv2`` → pool → ``conv3``
    → global average pool → ``fc`` + ReLU (the feature vector [B, F], F = ``feature_dim``)
    → ``head``. ``num_classes`` is an int or a tuple of ints for several classification
    heads sharing the features (e.g. ``(3, 6)`` for shape and colour); the logits of all
    heads are concatenated, [B, sum(num_classes)].

    ``forward(images [B, C, H, W], targets=None)`` returns ``(logits, loss)``; ``targets``
    is [B] for one head or [B, heads], and the loss is the sum of the heads'
    cross-entropies (None without targets).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: Union[int, Sequence[int]] = 10,
        channels: Sequence[int] = (16, 32, 64),
        feature_dim: int = 64,
        first_kernel: int = 5,
    ) -> None:
        super().__init__()
        heads = (num_classes,) if isinstance(num_classes, int) else tuple(num_classes)
        if not heads or any(isinstance(c, bool) or int(c) < 2 for c in heads):
            raise ValueError(f"num_classes must be an int >= 2 or a tuple of them, got {heads}")
        if len(channels) != 3:
            raise ValueError(f"channels must give 3 widths, got {tuple(channels)}")
        if first_kernel < 1 or first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be a positive odd int, got {first_kernel}")
        self.num_classes: Tuple[int, ...] = tuple(int(c) for c in heads)
        c1, c2, c3 = (int(c) for c in channels)
        self.conv1 = nn.Conv2d(in_channels, c1, first_kernel, padding=first_kernel // 2)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(c3)
        self.fc = nn.Linear(c3, feature_dim)
        self.head = nn.Linear(feature_dim, sum(self.num_classes))

    def feature_maps(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The three conv blocks' outputs after ReLU: [B, C1, H, W], [B, C2, H/2, W/2] and
        [B, C3, H/4, W/4] for images [B, C, H, W]."""
        if images.dim() != 4 or images.shape[1] != self.conv1.in_channels:
            raise ValueError(
                f"images must have shape [B, {self.conv1.in_channels}, H, W], "
                f"got {tuple(images.shape)}"
            )
        first = F.relu(self.bn1(self.conv1(images)))
        second = F.relu(self.bn2(self.conv2(F.max_pool2d(first, 2))))
        third = F.relu(self.bn3(self.conv3(F.max_pool2d(second, 2))))
        return first, second, third

    def features(self, images: Tensor) -> Tensor:
        """The penultimate-layer feature vectors [B, F] of images [B, C, H, W]."""
        pooled = self.feature_maps(images)[-1].mean(dim=(2, 3))  # global average pooling
        return F.relu(self.fc(pooled))

    def forward(
        self, images: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        logits = self.head(self.features(images))
        if targets is None:
            return logits, None
        targets = targets.reshape(len(targets), -1)
        if targets.shape[1] != len(self.num_classes):
            raise ValueError(
                f"targets must have shape [B] or [B, {len(self.num_classes)}] "
                f"(one label per head), got {tuple(targets.shape)}"
            )
        chunks = logits.split(self.num_classes, dim=1)
        loss = sum(F.cross_entropy(chunk, targets[:, i]) for i, chunk in enumerate(chunks))
        return logits, loss

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Predicted class per head: [B] for one head, [B, heads] for several."""
        logits = self.head(self.features(images))
        labels = torch.stack([c.argmax(1) for c in logits.split(self.num_classes, 1)], 1)
        return labels[:, 0] if len(self.num_classes) == 1 else labels


def random_batches(
    *tensors: Tensor, batch_size: int, seed: int = 0
) -> Callable[[], Tuple[Tensor, ...]]:
    """Endless shuffled minibatches of tensors that share their first dimension N.

    Returns a function; each call gives the next ``(images[idx], labels[idx], ...)``
    [batch_size, ...] from a seeded random permutation of the N items, with a new
    permutation after each pass (an epoch): the ``data`` that ``course_lib.train.fit``
    expects.
    """
    if not tensors or any(not isinstance(t, Tensor) for t in tensors):
        raise TypeError("random_batches needs one or more tensors")
    count = tensors[0].shape[0]
    if count == 0 or any(t.shape[0] != count for t in tensors):
        shapes = [tuple(t.shape) for t in tensors]
        raise ValueError(f"tensors must share a non-zero first dimension N, got {shapes}")
    batch_size = min(_check_int("batch_size", batch_size, 1), count)
    generator = torch.Generator().manual_seed(_check_int("seed", seed, 0))
    state = {"order": torch.randperm(count, generator=generator), "position": 0}

    def next_batch() -> Tuple[Tensor, ...]:
        if state["position"] + batch_size > count:
            state["order"], state["position"] = torch.randperm(count, generator=generator), 0
        index = state["order"][state["position"] : state["position"] + batch_size]
        state["position"] += batch_size
        return tuple(t[index] for t in tensors)

    return next_batch


@torch.no_grad()
def extract_features(
    model: nn.Module, images: Tensor, batch_size: int = 512, layer: str = "features"
) -> Tensor:
    """Run ``model.<layer>`` (default ``features``) over images [N, C, H, W] in eval mode,
    in batches on the model's device; returns [N, F] on that device."""
    if not hasattr(model, layer):
        raise ValueError(f"model has no method {layer!r} that returns feature vectors")
    batch_size = _check_int("batch_size", batch_size, 1)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        parts = [
            getattr(model, layer)(images[start : start + batch_size].to(device))
            for start in range(0, images.shape[0], batch_size)
        ]
    finally:
        model.train(was_training)
    if not parts:  # no images: ask the model for the feature size on an empty batch
        return getattr(model, layer)(images[:0].to(device))
    return torch.cat(parts).flatten(1)


# --------------------------------------------------------------------------------------
# Nearest neighbours and kNN classification
# --------------------------------------------------------------------------------------


def pairwise_squared_distances(a: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """Squared Euclidean distances [N, M] between the rows of a [N, D] and b [M, D].

    Computed as ``|a|^2 + |b|^2 - 2 a b^T`` (one matrix product) and clipped at 0;
    ``b`` defaults to ``a``, whose diagonal is then exactly 0.
    """
    a = _check_points("a", a)
    same = b is None
    b = a if b is None else _check_points("b", b, "M, D")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same D, got {a.shape[1]} and {b.shape[1]}")
    a_sq = (a * a).sum(1)
    b_sq = a_sq if same else (b * b).sum(1)
    distances = torch.addmm(a_sq[:, None] + b_sq[None, :], a, b.T, alpha=-2).clamp_min_(0)
    if same:
        distances.fill_diagonal_(0)
    return distances


def _distance_matrix(query: Tensor, bank: Tensor, metric: str) -> Tensor:
    """A matrix [Q, M] ordered like the metric: squared Euclidean, or cosine distance."""
    if metric == "euclidean":
        return pairwise_squared_distances(query, bank)
    return 1 - F.normalize(query, dim=1) @ F.normalize(bank, dim=1).T


def nearest_neighbors(
    query: Tensor,
    bank: Tensor,
    k: int,
    metric: str = "euclidean",
    chunk_size: Optional[int] = None,
) -> Tuple[Tensor, Tensor]:
    """The ``k`` nearest rows of bank [M, D] for each row of query [Q, D].

    Returns ``(distances, indices)``, both [Q, K], nearest first: Euclidean distances
    (``metric="euclidean"``) or cosine distances 1 - cos (``metric="cosine"``), as
    ``sklearn.neighbors.NearestNeighbors`` returns them. Candidates are ranked with one
    matrix product per chunk of queries (at most ``chunk_size`` rows, by default about
    16M distances per chunk), then the distances of the K chosen are recomputed exactly.
    """
    query = _check_points("query", query, "Q, D")
    bank = _check_points("bank", bank, "M, D")
    if query.device != bank.device:
        raise ValueError(
            f"query and bank must be on one device, got {query.device} and {bank.device}"
        )
    if query.shape[1] != bank.shape[1]:
        raise ValueError(
            f"query [Q, D] and bank [M, D] must have the same D, got {tuple(query.shape)} "
            f"and {tuple(bank.shape)}"
        )
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    k = _check_int("k", k, 1)
    if k > bank.shape[0]:
        raise ValueError(
            f"k must be at most the number of bank points M = {bank.shape[0]}, got {k}"
        )
    if chunk_size is None:
        chunk_size = max(1, (1 << 24) // max(bank.shape[0], 1))
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    all_indices = []
    for start in range(0, query.shape[0], chunk_size):
        scores = _distance_matrix(query[start : start + chunk_size], bank, metric)
        all_indices.append(scores.topk(k, dim=1, largest=False).indices)
    indices = torch.cat(all_indices) if all_indices else query.new_zeros(0, k, dtype=torch.long)
    neighbours = bank[indices]  # [Q, K, D]
    if metric == "euclidean":
        distances = (query[:, None, :] - neighbours).norm(dim=2)
    else:
        cosine = F.cosine_similarity(query[:, None, :], neighbours, dim=2, eps=1e-12)
        distances = 1 - cosine
    # Re-sort by the exact distances (only near-ties can move); stable keeps index order.
    distances, order = distances.sort(dim=1, stable=True)
    return distances, indices.gather(1, order)


def _vote(neighbour_labels: Tensor, num_classes: int) -> Tensor:
    """Majority label of each row of [Q, K]; ties go to the smallest label."""
    counts = torch.zeros(
        neighbour_labels.shape[0], num_classes, dtype=torch.long, device=neighbour_labels.device
    )
    counts.scatter_add_(1, neighbour_labels, torch.ones_like(neighbour_labels))
    return counts.argmax(dim=1)  # argmax returns the first of equal maxima


def _num_classes(labels: Tensor, num_classes: Optional[int]) -> int:
    needed = int(labels.max()) + 1 if labels.numel() else 1
    if num_classes is None:
        return needed
    num_classes = _check_int("num_classes", num_classes, 1)
    if num_classes < needed:
        raise ValueError(f"num_classes = {num_classes} but the labels go up to {needed - 1}")
    return num_classes


def knn_from_distances(
    distances: Tensor, bank_labels: Tensor, k: int, num_classes: Optional[int] = None
) -> Tensor:
    """k-nearest-neighbour vote from a distance matrix [Q, M] and the bank's labels [M].

    Each query takes the labels of its ``k`` smallest distances and returns the most
    frequent one, [Q] int64; a tie between classes goes to the smallest label (as in
    scikit-learn's ``KNeighborsClassifier``).
    """
    distances = _check_points("distances", distances, "Q, M")
    bank_labels = _check_labels("bank_labels", bank_labels, distances.shape[1])
    k = _check_int("k", k, 1)
    if k > distances.shape[1]:
        raise ValueError(
            f"k must be at most the number of bank points M = {distances.shape[1]}, got {k}"
        )
    classes = _num_classes(bank_labels, num_classes)
    nearest = distances.topk(k, dim=1, largest=False).indices
    return _vote(bank_labels.to(distances.device)[nearest], classes)


def knn_classify(
    query: Tensor,
    bank: Tensor,
    bank_labels: Tensor,
    k: int = 5,
    num_classes: Optional[int] = None,
    metric: str = "euclidean",
) -> Tensor:
    """Classify query [Q, D] by a majority vote of its ``k`` nearest rows of bank [M, D].

    ``bank_labels`` [M] are class indices; returns [Q] int64 predictions. Ties between
    classes go to the smallest label, as in scikit-learn's ``KNeighborsClassifier``.
    """
    bank = _check_points("bank", bank, "M, D")
    bank_labels = _check_labels("bank_labels", bank_labels, bank.shape[0])
    classes = _num_classes(bank_labels, num_classes)
    _, indices = nearest_neighbors(query, bank, k, metric=metric)
    return _vote(bank_labels.to(bank.device)[indices], classes)


# --------------------------------------------------------------------------------------
# PCA: centre, thin SVD
# --------------------------------------------------------------------------------------


class PCAResult(NamedTuple):
    """What ``pca`` returns (a tuple, so ``projected, components, ratio = pca(x, k)``)."""

    projected: Tensor  #: the centred data in the new basis, [N, K]
    components: Tensor  #: the principal directions, one per row, [K, D], orthonormal
    explained_variance_ratio: Tensor  #: each component's share of the total variance, [K]


def pca(x: Tensor, k: int) -> PCAResult:
    """Principal component analysis of x [N, D] by the SVD of the centred data.

    With ``x - mean = U S V^T``, the components are the first ``k`` rows of ``V^T`` [K, D],
    the projection is ``(x - mean) V_k`` [N, K] and the explained-variance ratios are
    ``S_i^2 / sum_j S_j^2`` [K]. Signs follow scikit-learn: the largest-magnitude entry of
    every component is positive, so the result equals ``sklearn.decomposition.PCA``.
    Constant data (no variance) gives ratios of 0.
    """
    x = _check_points("x", x)
    n, d = x.shape
    if n < 2:
        raise ValueError(
            f"x must have at least 2 rows [N, D] to have a variance, got {tuple(x.shape)}"
        )
    k = _check_int("k", k, 1)
    if k > min(n, d):
        raise ValueError(
            f"k must be at most min(N, D) = {min(n, d)} for x of shape {tuple(x.shape)}, got {k}"
        )
    centred = x - x.mean(dim=0)
    # MPS may lack an SVD kernel: decompose on the CPU there (one [N, D] matrix).
    on_cpu = centred.cpu() if centred.device.type == "mps" else centred
    _, singular_values, vh = (t.to(x.device) for t in torch.linalg.svd(on_cpu, full_matrices=False))
    components = vh[:k]
    largest = components.abs().argmax(dim=1, keepdim=True)
    signs = components.gather(1, largest).sign()
    components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
    variances = singular_values**2
    total = variances.sum()
    ratios = torch.where(total > 0, variances[:k] / total.clamp_min(torch.finfo(x.dtype).tiny), 0)
    return PCAResult(centred @ components.T, components, ratios)


# --------------------------------------------------------------------------------------
# t-SNE (exact): P from calibrated Gaussians, Q from a Student t, gradient descent on KL
# --------------------------------------------------------------------------------------


def perplexity_search(
    squared_distances: Tensor, perplexity: float, tol: float = 1e-5, max_iter: int = 100
) -> Tuple[Tensor, Tensor]:
    """Conditional probabilities ``p_{j|i}`` with a target perplexity, for every row at once.

    Row i of squared_distances [R, M] holds ``|x_i - x_j|^2`` to its M candidate
    neighbours (``inf`` excludes a candidate, e.g. the point itself). Each row gets
    ``p_{j|i} = exp(-beta_i d_ij) / sum_k exp(-beta_i d_ik)``, with the precision
    ``beta_i`` chosen so that the entropy ``H_i = -sum_j p_{j|i} ln p_{j|i}`` equals
    ``ln(perplexity)`` within ``tol`` (perplexity = e^H, the same as 2^H with H in bits).
    ``H`` falls as ``beta`` grows, so each row keeps a bracket around its root and takes
    a Newton step in ``ln beta`` when it lands inside the bracket, else bisects: a few
    steps reach 1e-10. Returns ``(probabilities [R, M], beta [R])``; every row needs more
    than ``perplexity`` finite candidates.
    """
    squared_distances = _check_points("squared_distances", squared_distances, "R, M")
    perplexity = _check_positive("perplexity", perplexity)
    tol = _check_positive("tol", tol)
    max_iter = _check_int("max_iter", max_iter, 1)
    if perplexity < 1:
        raise ValueError(
            f"perplexity must be >= 1 (an entropy is never negative), got {perplexity}"
        )
    if squared_distances.shape[0] == 0:
        return squared_distances.clone(), squared_distances.new_zeros(0)
    finite = torch.isfinite(squared_distances)
    candidates = finite.sum(dim=1)
    fewest = int(candidates.min())
    if perplexity >= fewest:
        raise ValueError(
            f"perplexity must be smaller than the number of candidate neighbours of every "
            f"row ({fewest}; with N points each has N - 1), got {perplexity}"
        )
    if bool((squared_distances[finite] < 0).any()):
        raise ValueError("squared_distances must be non-negative")
    wide = _wide_dtype(squared_distances.device)
    # Shift each row by its smallest distance: the probabilities do not change, and
    # exp(-beta d) can no longer underflow to 0 for every candidate of a row at once.
    d = squared_distances.to(wide)
    d = d - torch.where(finite, d, math.inf).amin(dim=1, keepdim=True)
    d_or_zero = torch.where(finite, d, 0.0)  # for sums: excluded entries contribute 0
    target = math.log(perplexity)
    # Start at beta = 1 / mean distance: the search no longer depends on the data's scale.
    log_beta = -torch.log((d_or_zero.sum(dim=1) / candidates).clamp_min(1e-12))
    low = torch.full_like(log_beta, -math.inf)  # bracket of ln(beta) around the root
    high = torch.full_like(log_beta, math.inf)

    def weights_of(log_beta: Tensor) -> Tensor:
        return torch.exp(-log_beta.exp()[:, None] * d)  # [R, M], exactly 0 where d = inf

    for step in range(max_iter):
        beta = log_beta.exp()
        weights = weights_of(log_beta)
        total = weights.sum(dim=1)
        weighted = weights * d_or_zero
        mean = weighted.sum(dim=1) / total  # E_p[d]
        second = torch.linalg.vecdot(weighted, d_or_zero) / total  # E_p[d^2]
        excess = total.log() + beta * mean - target  # H - ln(perplexity)
        done = excess.abs() <= tol
        low = torch.where(excess > 0, log_beta, low)  # entropy too high: beta must grow
        high = torch.where(excess < 0, log_beta, high)
        # dH/d(ln beta) = -beta^2 Var_p[d]
        slope = (beta**2 * (second - mean**2)).clamp_min(1e-300 if wide == torch.float64 else 1e-30)
        newton_step = excess / slope
        # Newton's step when it stays in the bracket and shrinks it at least by half
        # (otherwise Newton can cycle between two points), else bisect; without a full
        # bracket yet, move by at most a factor e^2 in beta.
        bracketed = low.isfinite() & high.isfinite()
        newton_ok = bracketed & (newton_step.abs() < (high - low) / 2)
        newton_ok &= (log_beta + newton_step > low) & (log_beta + newton_step < high)
        fallback = torch.where(bracketed, (low + high) / 2, log_beta + newton_step.clamp(-2, 2))
        new_log_beta = torch.where(newton_ok, log_beta + newton_step, fallback)
        log_beta = torch.where(done, log_beta, new_log_beta)
        if step % 4 == 3 and bool(done.all()):  # one host sync every 4 steps
            break
    weights = weights_of(log_beta)
    probabilities = weights / weights.sum(dim=1, keepdim=True)
    return probabilities.to(squared_distances.dtype), log_beta.exp().to(squared_distances.dtype)


def tsne_affinities(
    x: Tensor, perplexity: float = 30.0, tol: float = 1e-5, max_iter: int = 200
) -> Tensor:
    """The symmetric joint probabilities P [N, N] of t-SNE for points x [N, D].

    ``p_ij = (p_{j|i} + p_{i|j}) / 2N`` with the conditional probabilities of
    ``perplexity_search`` on squared Euclidean distances; P sums to 1, is symmetric and
    has a zero diagonal. Computed in float64 (float32 on MPS), returned in x's dtype.
    """
    x = _check_points("x", x)
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got x of shape {tuple(x.shape)}")
    if perplexity >= n - 1:
        raise ValueError(
            f"perplexity must be smaller than N - 1 = {n - 1} (the number of neighbours of "
            f"each point) for x of shape {tuple(x.shape)}, got {perplexity}"
        )
    distances = pairwise_squared_distances(x.to(_wide_dtype(x.device)))
    distances.fill_diagonal_(math.inf)
    conditional, _ = perplexity_search(distances, perplexity, tol=tol, max_iter=max_iter)
    return ((conditional + conditional.T) / (2 * n)).to(x.dtype)


def _student_t_kernel(y: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """Unnormalised Student-t similarities ``(1 + |y_i - y_j|^2)^-1`` [N, N], zero diagonal.

    Built in place in one [N, N] buffer (``out`` when given), one embedding dimension at a
    time: with E = 2 or 3 this is several times faster than a matrix product of rank E.
    """
    squared_norms = (y * y).sum(dim=1)
    kernel = torch.add(squared_norms[:, None], squared_norms[None, :], out=out)
    for column in y.T.contiguous():  # contiguous columns: a strided one is 10x slower on CPU
        kernel.addcmul_(column[:, None], column[None, :], value=-2)
    return kernel.clamp_min_(0).add_(1).reciprocal_().fill_diagonal_(0)


def _check_p_y(p: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    y = _check_points("y", y, "N, E")
    p = _check_points("p", p, "N, N")
    if p.shape != (y.shape[0], y.shape[0]):
        raise ValueError(
            f"p must have shape [N, N] = [{y.shape[0]}, {y.shape[0]}] for y of shape "
            f"{tuple(y.shape)}, got {tuple(p.shape)}"
        )
    if y.shape[0] < 2:
        raise ValueError(f"t-SNE needs at least 2 points, got y of shape {tuple(y.shape)}")
    return p.to(y.dtype), y


def tsne_kl_divergence(p: Tensor, y: Tensor) -> Tensor:
    """KL(P || Q) = sum_ij p_ij ln(p_ij / q_ij) (a scalar) for an embedding y [N, E].

    ``q_ij = (1 + |y_i - y_j|^2)^-1 / Z`` with ``Z = sum_{k != l} (1 + |y_k - y_l|^2)^-1``;
    terms with ``p_ij = 0`` count 0.
    """
    p, y = _check_p_y(p, y)
    kernel = _student_t_kernel(y)
    positive = p > 0
    log_ratio = (
        p.clamp_min(torch.finfo(p.dtype).tiny).log()
        - kernel.clamp_min(torch.finfo(p.dtype).tiny).log()
    )
    return torch.where(positive, p * log_ratio, 0).sum() + p.sum() * kernel.sum().log()


def tsne_gradient(p: Tensor, y: Tensor, exaggeration: float = 1.0) -> Tuple[Tensor, Tensor]:
    """The gradient of KL(P || Q) with respect to the embedding y [N, E], and the KL.

    ``dC/dy_i = 4 sum_j (a p_ij - q_ij) (y_i - y_j) (1 + |y_i - y_j|^2)^-1``, with
    ``a = exaggeration`` (1 for the plain gradient, larger during early exaggeration).
    Returns ``(gradient [N, E], kl)``; ``kl`` is KL(P || Q) of the unexaggerated P.
    """
    p, y = _check_p_y(p, y)
    kernel = _student_t_kernel(y)
    z = kernel.sum()
    weights = (exaggeration * p - kernel / z) * kernel  # (a p_ij - q_ij)(1 + d_ij^2)^-1
    gradient = 4 * (weights.sum(dim=1, keepdim=True) * y - weights @ y)
    positive = p > 0
    tiny = torch.finfo(p.dtype).tiny
    kl = torch.where(positive, p * (p.clamp_min(tiny).log() - kernel.clamp_min(tiny).log()), 0)
    return gradient, kl.sum() + p.sum() * z.log()


def _gradient_only(
    p: Tensor, y: Tensor, exaggeration: float, kernel: Tensor, weights: Tensor
) -> Tensor:
    """``tsne_gradient`` without the KL, reusing two [N, N] buffers: the inner loop of ``tsne``.

    The weight matrix is symmetric, so ``weights @ y`` is computed as ``(y^T weights)^T``,
    a much faster matrix product when E is small.
    """
    kernel = _student_t_kernel(y, out=kernel)
    torch.mul(kernel, -1 / kernel.sum(), out=weights)
    weights.add_(p, alpha=exaggeration).mul_(kernel)
    return 4 * (weights.sum(dim=1, keepdim=True) * y - (y.T @ weights).T)


class TSNEState(NamedTuple):
    """What ``tsne`` passes to its ``callback``: the iteration (1-based), the embedding
    [N, E] at that point (a copy) and KL(P || Q) of the unexaggerated P."""

    iteration: int
    embedding: Tensor
    kl_divergence: float


def tsne(
    x: Tensor,
    n_components: int = 2,
    perplexity: float = 30.0,
    n_iter: int = 1000,
    seed: int = 0,
    *,
    init: Union[str, Tensor] = "pca",
    learning_rate: Optional[float] = None,
    early_exaggeration: float = 12.0,
    exaggeration_iters: int = 250,
    momentum: Tuple[float, float] = (0.5, 0.8),
    min_gain: float = 0.01,
    callback: Optional[Callable[[TSNEState], None]] = None,
    callback_every: int = 50,
) -> Tensor:
    """Exact t-SNE of x [N, D] into [N, E] (E = ``n_components``), on x's device.

    The schedule is scikit-learn's (and the original implementation's): P from
    ``tsne_affinities``; the embedding starts from the first principal components scaled
    to a standard deviation of 1e-4 (``init="pca"``), from N(0, 1e-4^2) drawn with
    ``seed`` (``init="random"``) or from a given tensor [N, E]. Gradient descent runs
    ``n_iter`` steps: the first ``exaggeration_iters`` with P multiplied by
    ``early_exaggeration`` and momentum ``momentum[0]``, the rest with momentum
    ``momentum[1]``; every coordinate has an adaptive gain (+0.2 while the gradient keeps
    its sign, x0.8 when it flips, at least ``min_gain``). ``learning_rate`` defaults to
    scikit-learn's "auto", ``max(N / early_exaggeration / 4, 50)``. Every
    ``callback_every`` steps and after the last one, ``callback(TSNEState(...))`` is
    called (this computes the KL, so it costs one extra gradient evaluation).

    The cost is O(N^2) memory and time per step: fine up to some 10^4 points on a GPU.
    """
    x = _check_points("x", x)
    n = x.shape[0]
    n_components = _check_int("n_components", n_components, 1)
    n_iter = _check_int("n_iter", n_iter, 1)
    seed = _check_int("seed", seed, 0)
    exaggeration_iters = _check_int("exaggeration_iters", exaggeration_iters, 0)
    callback_every = _check_int("callback_every", callback_every, 1)
    early_exaggeration = _check_positive("early_exaggeration", early_exaggeration)
    min_gain = _check_positive("min_gain", min_gain)
    if len(momentum) != 2 or not all(0 <= m < 1 for m in momentum):
        raise ValueError(f"momentum must be two numbers in [0, 1), got {momentum}")
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got x of shape {tuple(x.shape)}")
    perplexity = _check_positive("perplexity", perplexity)
    if perplexity >= n - 1:
        raise ValueError(
            f"perplexity must be smaller than N - 1 = {n - 1} (the number of neighbours of "
            f"each point) for x of shape {tuple(x.shape)}, got {perplexity}"
        )
    rate = (
        max(n / early_exaggeration / 4, 50.0)
        if learning_rate is None
        else _check_positive("learning_rate", learning_rate)
    )
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    if isinstance(init, Tensor):
        if init.shape != (n, n_components):
            raise ValueError(
                f"init must have shape [N, E] = [{n}, {n_components}], got {tuple(init.shape)}"
            )
        y = init.detach().to(x.device, dtype).clone()
    elif init == "pca":
        if n_components > min(x.shape):
            raise ValueError(
                f"init='pca' needs n_components <= min(N, D) = {min(x.shape)}, got {n_components}"
            )
        y = pca(x.to(dtype), n_components).projected
        y = y / y[:, 0].std(correction=0).clamp_min(torch.finfo(dtype).tiny) * 1e-4
    elif init == "random":
        generator = torch.Generator().manual_seed(seed)
        y = 1e-4 * torch.randn(n, n_components, generator=generator, dtype=dtype).to(x.device)
    else:
        raise ValueError(f"init must be 'pca', 'random' or a tensor [N, E], got {init!r}")

    p = tsne_affinities(x, perplexity).to(dtype)
    update = torch.zeros_like(y)
    gains = torch.ones_like(y)
    kernel, weights = torch.empty_like(p), torch.empty_like(p)
    for step in range(n_iter):
        exploring = step < exaggeration_iters
        gradient = _gradient_only(p, y, early_exaggeration if exploring else 1.0, kernel, weights)
        same_sign = (update * gradient) < 0  # the step keeps going the same way: speed up
        gains = torch.where(same_sign, gains + 0.2, gains * 0.8).clamp_min_(min_gain)
        update = (momentum[0] if exploring else momentum[1]) * update - rate * gains * gradient
        y = y + update
        if callback is not None and ((step + 1) % callback_every == 0 or step + 1 == n_iter):
            callback(TSNEState(step + 1, y.clone(), float(tsne_kl_divergence(p, y))))
    return y


# --------------------------------------------------------------------------------------
# Beyond the notes: what the input pixels do to the output
# --------------------------------------------------------------------------------------


def _logits(model: nn.Module, images: Tensor) -> Tensor:
    output = model(images)
    logits = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        raise TypeError("model(images) must return logits [B, C] or a tuple (logits, loss)")
    return logits


def _check_images(images: object) -> Tensor:
    images = _check_tensor("images", images)
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"images must be a float tensor of shape [B, C, H, W], got {tuple(images.shape)} "
            f"{images.dtype}"
        )
    return images


def saliency_map(model: nn.Module, images: Tensor, classes: Tensor) -> Tensor:
    """Vanilla-gradient saliency: ``max_c |d score_class / d image_c|``, shape [B, H, W].

    ``score_class`` is the logit (before the softmax) of ``classes`` [B] (column indices
    of ``model(images)``'s logits [B, C]). The model runs in eval mode, so the images of
    a batch do not interact through batch norm; its parameters get no gradient.
    """
    images = _check_images(images)
    classes = _check_labels("classes", classes, images.shape[0])
    was_training = model.training
    model.eval()
    try:
        inputs = images.detach().clone().requires_grad_(True)
        logits = _logits(model, inputs)
        if images.shape[0] and int(classes.max()) >= logits.shape[1]:
            raise ValueError(f"classes must be < {logits.shape[1]} (the number of logits)")
        score = logits.gather(1, classes.to(logits.device)[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, inputs, allow_unused=images.shape[0] == 0)
    finally:
        model.train(was_training)
    if gradient is None:
        return images.new_zeros(0, *images.shape[2:])
    return gradient.abs().amax(dim=1)


def fgsm_attack(model: nn.Module, images: Tensor, labels: Tensor, epsilon: float) -> Tensor:
    """Fast gradient sign method: ``clip(x + epsilon * sign(d loss / d x), 0, 1)``.

    ``loss`` is the cross-entropy of ``model(images)``'s logits [B, C] against the true
    ``labels`` [B]; each pixel of images [B, C, H, W] (values in [0, 1]) moves by at most
    ``epsilon`` in the direction that increases it. Returns the adversarial images.
    """
    images = _check_images(images)
    labels = _check_labels("labels", labels, images.shape[0])
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise ValueError(f"epsilon must be a non-negative number, got {epsilon!r}")
    if images.shape[0] == 0:
        return images.clone()
    was_training = model.training
    model.eval()
    try:
        inputs = images.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(_logits(model, inputs), labels.to(images.device), reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    finally:
        model.train(was_training)
    return (images.detach() + epsilon * gradient.sign()).clamp(0, 1)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


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
    """Scatter a 2-D embedding points [N, 2] coloured by labels [N]; with images
    [N, C, H, W], overlay ``thumbnails`` of them spread over the plot. Returns the Axes."""
    import matplotlib.pyplot as plt
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    points_np = points.detach().cpu().double().numpy()
    labels_np = labels.detach().cpu().numpy()
    if points_np.ndim != 2 or points_np.shape[1] != 2:
        raise ValueError(f"points must have shape [N, 2], got {tuple(points_np.shape)}")
    if labels_np.shape != (points_np.shape[0],):
        raise ValueError(f"labels must have shape [{points_np.shape[0]}], got {labels_np.shape}")
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
    nearest training images in pixel space, then in feature space). Neighbours whose
    label differs from the query's are framed in red. Returns the figure.
    """
    import matplotlib.pyplot as plt

    if len(neighbor_sets) != len(set_names):
        raise ValueError("give one name per neighbour set")
    count = queries.shape[0]
    k = neighbor_sets[0].shape[1]
    columns = 1 + len(neighbor_sets) * (k + 1)
    figure, axes = plt.subplots(count, columns, figsize=(size * columns, size * count + 0.5),
                                squeeze=False)  # fmt: skip

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

    for row in range(count):
        for ax in axes[row]:
            ax.axis("off")
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
