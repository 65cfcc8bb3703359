"""Bad input to course_lib.visualization: every public function and class answers a wrong
argument with a clear error, TypeError for a wrong type or dtype and ValueError for a wrong
shape or value, whose message names the argument.

The probe is systematic: every tensor argument is tried with the wrong type, the wrong
dtype, wrong shapes, empty and non-finite values; every size with a float, a bool, a value
below its minimum and an absurd value; every number with NaN, infinity, a string and values
out of range. Each case is one ``Bad`` (its id, the call, the argument it gets wrong and the
exception class it must raise).
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, NamedTuple, Sequence, Tuple, Type

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

from course_lib import visualization as V

ABSURD = 10**12
NONFINITE = (math.nan, math.inf)


class Bad(NamedTuple):
    """One wrong call: ``call()`` must raise ``error`` with ``arg`` in its message."""

    id: str
    call: Callable[[], Any]
    arg: str
    error: Type[Exception]


def cases(prefix: str, arg: str, call: Callable[[Any], Any], values: Sequence[Tuple]) -> List[Bad]:
    """One case per ``(label, value, error)``: ``call(value)`` must raise ``error``."""
    return [
        Bad(f"{prefix}: {arg} {label}", lambda v=value: call(v), arg, error)
        for label, value, error in values
    ]


def tensor_cases(
    prefix: str,
    arg: str,
    call: Callable[[Any], Any],
    good: torch.Tensor,
    shapes: Sequence[Tuple[int, ...]] = (),
    nonfinite: Sequence[float] = (),
    integer: bool = True,
    string: bool = True,
    double: bool = False,
) -> List[Bad]:
    """A floating-point tensor argument: a list, a string, an integer dtype, float64 against
    float32 parameters (``double``), wrong shapes, and the non-finite values it must refuse."""
    values = [("as a list", good.tolist(), TypeError)]
    if string:
        values.append(("as a string", "x", TypeError))
    if integer:
        values.append(("with an integer dtype", good.round().long(), TypeError))
    if double:
        values.append(("in float64", good.double(), TypeError))
    values += [(f"of shape {list(s)}", torch.rand(s, dtype=good.dtype), ValueError) for s in shapes]
    for bad in nonfinite if good.numel() else ():
        broken = good.clone()
        broken.view(-1)[0] = bad
        values.append((f"holding {bad}", broken, ValueError))
    return cases(prefix, arg, call, values)


def int_cases(
    prefix: str, arg: str, call: Callable[[Any], Any], minimum: int, absurd: bool = True
) -> List[Bad]:
    """A size: a float, a string, a bool, below its minimum, absurdly large."""
    values = [("= 2.5", 2.5, TypeError), ("= '3'", "3", TypeError), ("= True", True, TypeError)]
    values.append((f"= {minimum - 1} (below {minimum})", minimum - 1, ValueError))
    if absurd:
        values.append(("absurd", ABSURD, ValueError))
    return cases(prefix, arg, call, values)


def float_cases(
    prefix: str, arg: str, call: Callable[[Any], Any], outside: Sequence[float] = ()
) -> List[Bad]:
    """A real number: a string, NaN, infinity and values out of its range."""
    values = [("= 'x'", "x", TypeError), ("= nan", math.nan, ValueError)]
    values += [("= inf", math.inf, ValueError)] + [(f"= {v}", v, ValueError) for v in outside]
    return cases(prefix, arg, call, values)


def one(case_id: str, call: Callable[[], Any], arg: str, error: Type[Exception]) -> List[Bad]:
    return [Bad(case_id, call, arg, error)]


torch.manual_seed(0)
X = torch.randn(12, 4)
CASES: List[Bad] = []

# ------------------------------------------------------------------------------------- data
CASES += int_cases(
    "load_shapes_classification", "num_images", lambda v: V.load_shapes_classification(v), 0
)
CASES += int_cases(
    "load_shapes_classification",
    "image_size",
    lambda v: V.load_shapes_classification(2, image_size=v),
    16,
)
CASES += int_cases(
    "load_shapes_classification",
    "seed",
    lambda v: V.load_shapes_classification(2, seed=v),
    0,
    absurd=False,
)
CASES += int_cases("load_hard_digits", "canvas_size", lambda v: V.load_hard_digits(v), 8)
CASES += int_cases(
    "load_hard_digits", "train_copies", lambda v: V.load_hard_digits(train_copies=v), 1
)
CASES += int_cases(
    "load_hard_digits", "test_copies", lambda v: V.load_hard_digits(test_copies=v), 1
)
CASES += float_cases(
    "load_hard_digits", "min_scale", lambda v: V.load_hard_digits(min_scale=v), outside=[0.0, 1.5]
)
CASES += float_cases(
    "load_hard_digits", "max_scale", lambda v: V.load_hard_digits(max_scale=v), outside=[0.2, 1.5]
)
CASES += float_cases(
    "load_hard_digits", "noise", lambda v: V.load_hard_digits(noise=v), outside=[-0.1]
)
_DIGITS = torch.rand(3, 1, 8, 8)
_G = torch.Generator().manual_seed(0)
CASES += tensor_cases(
    "place_digits",
    "digits",
    lambda v: V.place_digits(v, 16, 0.3, 0.6, 0.1, _G),
    _DIGITS,
    shapes=[(3, 8, 8), (3, 2, 8, 8)],
    nonfinite=NONFINITE,
)
CASES += int_cases(
    "place_digits", "canvas_size", lambda v: V.place_digits(_DIGITS, v, 0.3, 0.6, 0.1, _G), 1
)
CASES += float_cases(
    "place_digits", "min_scale", lambda v: V.place_digits(_DIGITS, 16, v, 0.6, 0.1, _G), [0.0, 0.7]
)
CASES += float_cases(
    "place_digits", "noise", lambda v: V.place_digits(_DIGITS, 16, 0.3, 0.6, v, _G), [-1.0]
)
CASES += one(
    "place_digits: generator as a seed",
    lambda: V.place_digits(_DIGITS, 16, 0.3, 0.6, 0.1, 0),
    "generator",
    TypeError,
)

# ------------------------------------------------------------------------------------ model
CASES += int_cases("SmallCNN", "in_channels", lambda v: V.SmallCNN(in_channels=v), 1)
CASES += int_cases("SmallCNN", "num_classes", lambda v: V.SmallCNN(num_classes=v), 2)
CASES += one(
    "SmallCNN: num_classes with a head of 1",
    lambda: V.SmallCNN(num_classes=(3, 1)),
    "num_classes",
    ValueError,
)
CASES += one(
    "SmallCNN: num_classes = ()", lambda: V.SmallCNN(num_classes=()), "num_classes", ValueError
)
CASES += one(
    "SmallCNN: channels of 2 widths", lambda: V.SmallCNN(channels=(4, 8)), "channels", ValueError
)
CASES += one(
    "SmallCNN: channels as a string", lambda: V.SmallCNN(channels="abc"), "channels", TypeError
)
CASES += int_cases("SmallCNN", "channels", lambda v: V.SmallCNN(channels=(4, v, 8)), 1)
CASES += int_cases("SmallCNN", "feature_dim", lambda v: V.SmallCNN(feature_dim=v), 1)
CASES += int_cases("SmallCNN", "first_kernel", lambda v: V.SmallCNN(first_kernel=v), 1)
CASES += one(
    "SmallCNN: first_kernel even", lambda: V.SmallCNN(first_kernel=4), "first_kernel", ValueError
)
_CNN = V.SmallCNN(3, (3, 6), channels=(4, 4, 4), feature_dim=5)
_IMAGES = torch.rand(2, 3, 16, 16)
CASES += tensor_cases(
    "SmallCNN.forward",
    "images",
    lambda v: _CNN(v),
    _IMAGES,
    shapes=[(2, 1, 16, 16), (3, 16, 16), (2, 3, 3, 3)],
    nonfinite=(),
)
CASES += one(
    "SmallCNN.forward: images in float64", lambda: _CNN(_IMAGES.double()), "images", TypeError
)
CASES += one(
    "SmallCNN.forward: images on another device",
    lambda: _CNN(_IMAGES.to("meta")),
    "images",
    ValueError,
)
CASES += one(
    "SmallCNN.features: images as a list",
    lambda: _CNN.features(_IMAGES.tolist()),
    "images",
    TypeError,
)
CASES += one(
    "SmallCNN.predict: images of 1 channel",
    lambda: _CNN.predict(torch.rand(2, 1, 16, 16)),
    "images",
    ValueError,
)
_TARGETS = torch.tensor([[0, 1], [2, 5]])
for label, value, error in [
    ("as floats", _TARGETS.float(), TypeError),
    ("of shape [2]", _TARGETS[:, 0], ValueError),
    ("of shape [3, 2]", torch.zeros(3, 2, dtype=torch.long), ValueError),
    ("with class 3 for a head of 3", torch.tensor([[3, 0], [0, 0]]), ValueError),
    ("with class -1", torch.tensor([[0, -1], [0, 0]]), ValueError),
    ("as a list", _TARGETS.tolist(), TypeError),
]:
    CASES += one(
        f"SmallCNN.forward: targets {label}", lambda v=value: _CNN(_IMAGES, v), "targets", error
    )
_T1 = torch.rand(4, 1)
CASES += one(
    "random_batches: no tensors", lambda: V.random_batches(batch_size=2), "tensors", TypeError
)
CASES += one(
    "random_batches: a list", lambda: V.random_batches([1, 2], batch_size=2), "tensors", TypeError
)
CASES += one(
    "random_batches: tensors of different N",
    lambda: V.random_batches(_T1, torch.zeros(3), batch_size=2),
    "tensors",
    ValueError,
)
CASES += one(
    "random_batches: empty tensors",
    lambda: V.random_batches(torch.zeros(0, 2), batch_size=2),
    "tensors",
    ValueError,
)
CASES += int_cases(
    "random_batches", "batch_size", lambda v: V.random_batches(_T1, batch_size=v), 1, absurd=False
)
CASES += int_cases(
    "random_batches", "seed", lambda v: V.random_batches(_T1, batch_size=2, seed=v), 0, absurd=False
)
CASES += one(
    "extract_features: model is a function",
    lambda: V.extract_features(lambda x: x, _IMAGES),
    "model",
    TypeError,
)
CASES += one(
    "extract_features: layer the model lacks",
    lambda: V.extract_features(_CNN, _IMAGES, layer="embedding"),
    "layer",
    ValueError,
)
CASES += one(
    "extract_features: layer = 3",
    lambda: V.extract_features(_CNN, _IMAGES, layer=3),
    "layer",
    ValueError,
)
CASES += tensor_cases(
    "extract_features",
    "images",
    lambda v: V.extract_features(_CNN, v),
    _IMAGES,
    shapes=[(2, 3, 16)],
    nonfinite=(),
)
CASES += int_cases(
    "extract_features",
    "batch_size",
    lambda v: V.extract_features(_CNN, _IMAGES, batch_size=v),
    1,
    absurd=False,
)

# ------------------------------------------------------------------------------- neighbours
_BANK, _QUERY, _LABELS = torch.randn(6, 3), torch.randn(4, 3), torch.tensor([0, 1, 1, 2, 0, 2])
CASES += tensor_cases(
    "pairwise_squared_distances",
    "a",
    lambda v: V.pairwise_squared_distances(v),
    _QUERY,
    shapes=[(4,), (2, 2, 3)],
    nonfinite=NONFINITE,
)
CASES += tensor_cases(
    "pairwise_squared_distances",
    "b",
    lambda v: V.pairwise_squared_distances(_QUERY, v),
    _BANK,
    shapes=[(6, 2)],
    nonfinite=NONFINITE,
)
CASES += one(
    "pairwise_squared_distances: b in float64",
    lambda: V.pairwise_squared_distances(_QUERY, _BANK.double()),
    "b",
    TypeError,
)
CASES += one(
    "pairwise_squared_distances: b on another device",
    lambda: V.pairwise_squared_distances(_QUERY, _BANK.to("meta")),
    "b",
    ValueError,
)
CASES += one(
    "pairwise_squared_distances: a absurdly long",
    lambda: V.pairwise_squared_distances(torch.zeros(1, 2).expand(10**6, 2)),
    "a",
    ValueError,
)
CASES += tensor_cases(
    "nearest_neighbors",
    "query",
    lambda v: V.nearest_neighbors(v, _BANK, 2),
    _QUERY,
    shapes=[(4,), (4, 2)],
    nonfinite=NONFINITE,
)
CASES += tensor_cases(
    "nearest_neighbors",
    "bank",
    lambda v: V.nearest_neighbors(_QUERY, v, 2),
    _BANK,
    shapes=[(6,), (6, 5)],
    nonfinite=NONFINITE,
)
CASES += one(
    "nearest_neighbors: bank in float64",
    lambda: V.nearest_neighbors(_QUERY, _BANK.double(), 2),
    "bank",
    TypeError,
)
CASES += one(
    "nearest_neighbors: bank on another device",
    lambda: V.nearest_neighbors(_QUERY, _BANK.to("meta"), 2),
    "bank",
    ValueError,
)
CASES += one(
    "nearest_neighbors: empty bank",
    lambda: V.nearest_neighbors(_QUERY, torch.zeros(0, 3), 1),
    "bank",
    ValueError,
)
CASES += int_cases("nearest_neighbors", "k", lambda v: V.nearest_neighbors(_QUERY, _BANK, v), 1)
CASES += one(
    "nearest_neighbors: k = 7 > M", lambda: V.nearest_neighbors(_QUERY, _BANK, 7), "k", ValueError
)
CASES += one(
    "nearest_neighbors: metric 'l1'",
    lambda: V.nearest_neighbors(_QUERY, _BANK, 2, metric="l1"),
    "metric",
    ValueError,
)
CASES += one(
    "nearest_neighbors: metric = 3",
    lambda: V.nearest_neighbors(_QUERY, _BANK, 2, metric=3),
    "metric",
    ValueError,
)
CASES += int_cases(
    "nearest_neighbors",
    "chunk_size",
    lambda v: V.nearest_neighbors(_QUERY, _BANK, 2, chunk_size=v),
    1,
    absurd=False,
)
_DIST = torch.rand(4, 6)
CASES += tensor_cases(
    "knn_from_distances",
    "distances",
    lambda v: V.knn_from_distances(v, _LABELS, 2),
    _DIST,
    shapes=[(6,), (4, 5)],
    nonfinite=[math.nan],
)  # inf is allowed: never a neighbour
for label, value, error in [
    ("as floats", _LABELS.float(), TypeError),
    ("as a list", _LABELS.tolist(), TypeError),
    ("of shape [5]", _LABELS[:5], ValueError),
    ("with -1", torch.tensor([0, 1, -1, 2, 0, 2]), ValueError),
]:
    CASES += one(
        f"knn_from_distances: bank_labels {label}",
        lambda v=value: V.knn_from_distances(_DIST, v, 2),
        "bank_labels",
        error,
    )
    CASES += one(
        f"knn_classify: bank_labels {label}",
        lambda v=value: V.knn_classify(_QUERY, _BANK, v, 2),
        "bank_labels",
        error,
    )
CASES += int_cases("knn_from_distances", "k", lambda v: V.knn_from_distances(_DIST, _LABELS, v), 1)
CASES += int_cases(
    "knn_from_distances",
    "num_classes",
    lambda v: V.knn_from_distances(_DIST, _LABELS, 2, v),
    1,
    absurd=False,
)
CASES += one(
    "knn_from_distances: num_classes = 2 < labels",
    lambda: V.knn_from_distances(_DIST, _LABELS, 2, 2),
    "num_classes",
    ValueError,
)
CASES += tensor_cases(
    "knn_classify",
    "query",
    lambda v: V.knn_classify(v, _BANK, _LABELS, 2),
    _QUERY,
    shapes=[(4, 2)],
    nonfinite=NONFINITE,
)
CASES += tensor_cases(
    "knn_classify",
    "bank",
    lambda v: V.knn_classify(_QUERY, v, _LABELS, 2),
    _BANK,
    shapes=[(6, 2)],
    nonfinite=NONFINITE,
)
CASES += int_cases("knn_classify", "k", lambda v: V.knn_classify(_QUERY, _BANK, _LABELS, v), 1)
CASES += one(
    "knn_classify: metric 'l1'",
    lambda: V.knn_classify(_QUERY, _BANK, _LABELS, 2, metric="l1"),
    "metric",
    ValueError,
)

# ------------------------------------------------------------------------------------- PCA
CASES += tensor_cases(
    "pca", "x", lambda v: V.pca(v, 2), X, shapes=[(12,), (2, 3, 4)], nonfinite=NONFINITE
)
CASES += one("pca: x empty", lambda: V.pca(torch.zeros(0, 4), 1), "x", ValueError)
CASES += one("pca: x of one row", lambda: V.pca(X[:1], 1), "x", ValueError)
CASES += one(
    "pca: x complex", lambda: V.pca(torch.randn(5, 3, dtype=torch.cfloat), 1), "x", TypeError
)
CASES += int_cases("pca", "k", lambda v: V.pca(X, v), 1)

# ----------------------------------------------------------------------------------- t-SNE
_D2 = V.pairwise_squared_distances(X).fill_diagonal_(math.inf)
CASES += tensor_cases(
    "perplexity_search",
    "squared_distances",
    lambda v: V.perplexity_search(v, 3.0),
    _D2[:, :6].contiguous(),
    shapes=[(12,)],
    nonfinite=(),
)
CASES += one(
    "perplexity_search: squared_distances holding nan",
    lambda: V.perplexity_search(_D2.clone().fill_diagonal_(math.nan), 3.0),
    "squared_distances",
    ValueError,
)
CASES += one(
    "perplexity_search: squared_distances negative",
    lambda: V.perplexity_search(-_D2.clamp_max(1), 3.0),
    "squared_distances",
    ValueError,
)
CASES += one(
    "perplexity_search: squared_distances holding -inf",
    lambda: V.perplexity_search(-_D2, 3.0),
    "squared_distances",
    ValueError,
)
CASES += float_cases(
    "perplexity_search",
    "perplexity",
    lambda v: V.perplexity_search(_D2, v),
    outside=[0.5, 11.0, 50.0],
)
CASES += float_cases(
    "perplexity_search", "tol", lambda v: V.perplexity_search(_D2, 3.0, tol=v), outside=[0.0, -1.0]
)
CASES += int_cases(
    "perplexity_search", "max_iter", lambda v: V.perplexity_search(_D2, 3.0, max_iter=v), 1
)
CASES += tensor_cases(
    "tsne_affinities",
    "x",
    lambda v: V.tsne_affinities(v, 3.0),
    X,
    shapes=[(12,), (2, 4)],
    nonfinite=NONFINITE,
)
CASES += one(
    "tsne_affinities: x absurdly long",
    lambda: V.tsne_affinities(torch.zeros(1, 2).expand(10**6, 2)),
    "x",
    ValueError,
)
CASES += float_cases(
    "tsne_affinities", "perplexity", lambda v: V.tsne_affinities(X, v), outside=[0.0, 11.0]
)
_P = V.tsne_affinities(X, 3.0)
_Y = torch.randn(12, 2)
for function in (V.tsne_gradient, V.tsne_kl_divergence):
    name = function.__name__
    CASES += tensor_cases(
        name, "p", lambda v, f=function: f(v, _Y), _P, shapes=[(11, 11), (12,)], nonfinite=NONFINITE
    )
    CASES += tensor_cases(
        name, "y", lambda v, f=function: f(_P, v), _Y, shapes=[(12,), (11, 2)], nonfinite=NONFINITE
    )
    CASES += one(f"{name}: p negative", lambda f=function: f(-_P, _Y), "p", ValueError)
    CASES += one(
        f"{name}: y of one point", lambda f=function: f(_P[:1, :1], _Y[:1]), "y", ValueError
    )
CASES += float_cases(
    "tsne_gradient", "exaggeration", lambda v: V.tsne_gradient(_P, _Y, v), outside=[0.0, -1.0]
)
_TSNE = {"perplexity": 3.0, "n_iter": 2}
CASES += tensor_cases(
    "tsne", "x", lambda v: V.tsne(v, **_TSNE), X, shapes=[(12,), (2, 4)], nonfinite=NONFINITE
)
CASES += one(
    "tsne: x absurdly long",
    lambda: V.tsne(torch.zeros(1, 2).expand(10**6, 2), **_TSNE),
    "x",
    ValueError,
)
CASES += int_cases("tsne", "n_components", lambda v: V.tsne(X, v, **_TSNE), 1)
CASES += float_cases(
    "tsne", "perplexity", lambda v: V.tsne(X, perplexity=v, n_iter=2), outside=[0.0, 11.0]
)
CASES += int_cases("tsne", "n_iter", lambda v: V.tsne(X, perplexity=3.0, n_iter=v), 1)
CASES += int_cases(
    "tsne", "seed", lambda v: V.tsne(X, seed=v, init="random", **_TSNE), 0, absurd=False
)
CASES += one(
    "tsne: init 'spectral'", lambda: V.tsne(X, init="spectral", **_TSNE), "init", ValueError
)
CASES += tensor_cases(
    "tsne",
    "init",
    lambda v: V.tsne(X, init=v, **_TSNE),
    1e-4 * _Y,
    shapes=[(11, 2), (12, 3)],
    string=False,
    nonfinite=NONFINITE,
)
CASES += one("tsne: init = 3", lambda: V.tsne(X, init=3, **_TSNE), "init", TypeError)
CASES += float_cases(
    "tsne", "learning_rate", lambda v: V.tsne(X, learning_rate=v, **_TSNE), outside=[0.0, -10.0]
)
CASES += float_cases(
    "tsne", "early_exaggeration", lambda v: V.tsne(X, early_exaggeration=v, **_TSNE), outside=[0.0]
)
CASES += int_cases(
    "tsne", "exaggeration_iters", lambda v: V.tsne(X, exaggeration_iters=v, **_TSNE), 0
)
for label, value, error in [
    ("of one number", (0.5,), ValueError),
    ("(1.5, 0.8)", (1.5, 0.8), ValueError),
    ("(0.5, nan)", (0.5, math.nan), ValueError),
    ("as a string", "ab", TypeError),
    ("None", None, TypeError),
]:
    CASES += one(
        f"tsne: momentum {label}", lambda v=value: V.tsne(X, momentum=v, **_TSNE), "momentum", error
    )
CASES += float_cases("tsne", "min_gain", lambda v: V.tsne(X, min_gain=v, **_TSNE), [0.0, -1.0])
CASES += one(
    "tsne: callback not callable", lambda: V.tsne(X, callback=3, **_TSNE), "callback", TypeError
)
CASES += int_cases(
    "tsne", "callback_every", lambda v: V.tsne(X, callback_every=v, **_TSNE), 1, absurd=False
)

# ------------------------------------------------------------------------------ attribution
_LINEAR = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
_SMALL = torch.rand(2, 3, 4, 4)
_CLASSES = torch.tensor([0, 4])
for name, function in (("saliency_map", V.saliency_map), ("fgsm_attack", V.fgsm_attack)):
    extra = (0.1,) if name == "fgsm_attack" else ()
    label_arg = "labels" if name == "fgsm_attack" else "classes"
    CASES += one(
        f"{name}: model is a function",
        lambda f=function, e=extra: f(lambda x: x, _SMALL, _CLASSES, *e),
        "model",
        TypeError,
    )
    CASES += tensor_cases(
        name,
        "images",
        lambda v, f=function, e=extra: f(_LINEAR, v, _CLASSES, *e),
        _SMALL,
        shapes=[(2, 48)],
        nonfinite=(),
    )
    CASES += one(
        f"{name}: images in float64",
        lambda f=function, e=extra: f(_LINEAR, _SMALL.double(), _CLASSES, *e),
        "images",
        TypeError,
    )
    for label, value, error in [
        ("as floats", _CLASSES.float(), TypeError),
        ("of shape [3]", torch.tensor([0, 1, 2]), ValueError),
        ("with class 5 of 5", torch.tensor([0, 5]), ValueError),
        ("with -1", torch.tensor([0, -1]), ValueError),
    ]:
        CASES += one(
            f"{name}: {label_arg} {label}",
            lambda v=value, f=function, e=extra: f(_LINEAR, _SMALL, v, *e),
            label_arg,
            error,
        )
CASES += float_cases(
    "fgsm_attack", "epsilon", lambda v: V.fgsm_attack(_LINEAR, _SMALL, _CLASSES, v), outside=[-0.1]
)

# ---------------------------------------------------------------------------------- figures
_POINTS, _PLOT_LABELS = torch.randn(6, 2), torch.tensor([0, 1, 2, 0, 1, 2])
CASES += tensor_cases(
    "plot_embedding",
    "points",
    lambda v: V.plot_embedding(v, _PLOT_LABELS),
    _POINTS,
    shapes=[(6, 3), (6,)],
    integer=False,
    nonfinite=NONFINITE,
)
for label, value, error in [
    ("as floats", _PLOT_LABELS.float(), TypeError),
    ("of shape [5]", _PLOT_LABELS[:5], ValueError),
    ("as a list", _PLOT_LABELS.tolist(), TypeError),
]:
    CASES += one(
        f"plot_embedding: labels {label}",
        lambda v=value: V.plot_embedding(_POINTS, v),
        "labels",
        error,
    )
CASES += one(
    "plot_embedding: images of 5 items",
    lambda: V.plot_embedding(_POINTS, _PLOT_LABELS, images=torch.rand(5, 1, 8, 8)),
    "images",
    ValueError,
)
CASES += one(
    "plot_embedding: images of 2 channels",
    lambda: V.plot_embedding(_POINTS, _PLOT_LABELS, images=torch.rand(6, 2, 8, 8)),
    "images",
    ValueError,
)
CASES += one(
    "plot_embedding: class_names too short",
    lambda: V.plot_embedding(_POINTS, _PLOT_LABELS, class_names=["a", "b"]),
    "class_names",
    ValueError,
)
CASES += one(
    "plot_embedding: ax is a figure",
    lambda: V.plot_embedding(_POINTS, _PLOT_LABELS, ax=plt.figure()),
    "ax",
    TypeError,
)
CASES += int_cases(
    "plot_embedding",
    "thumbnails",
    lambda v: V.plot_embedding(_POINTS, _PLOT_LABELS, thumbnails=v),
    0,
    absurd=False,
)
CASES += float_cases(
    "plot_embedding",
    "point_size",
    lambda v: V.plot_embedding(_POINTS, _PLOT_LABELS, point_size=v),
    [0.0],
)
CASES += one(
    "plot_embedding: legend = 'yes'",
    lambda: V.plot_embedding(_POINTS, _PLOT_LABELS, legend="yes"),
    "legend",
    TypeError,
)
_QUERIES, _SET = torch.rand(2, 1, 8, 8), torch.rand(2, 3, 1, 8, 8)
CASES += tensor_cases(
    "plot_neighbors",
    "queries",
    lambda v: V.plot_neighbors(v, [_SET], ["pixels"]),
    _QUERIES,
    shapes=[(2, 8, 8), (2, 2, 8, 8)],
    nonfinite=(),
    integer=False,
)
for label, value, arg, error in [
    ("neighbor_sets empty", [], "neighbor_sets", ValueError),
    ("neighbor_sets a tensor", _SET, "neighbor_sets", TypeError),
    ("neighbor_sets of another Q", [torch.rand(3, 3, 1, 8, 8)], "neighbor_sets", ValueError),
    (
        "neighbor_sets of another image size",
        [torch.rand(2, 3, 1, 6, 6)],
        "neighbor_sets",
        ValueError,
    ),
]:
    CASES += one(
        f"plot_neighbors: {label}",
        lambda v=value: V.plot_neighbors(_QUERIES, v, ["pixels"]),
        arg,
        error,
    )
CASES += one(
    "plot_neighbors: set_names of 2 for 1 set",
    lambda: V.plot_neighbors(_QUERIES, [_SET], ["a", "b"]),
    "set_names",
    ValueError,
)
CASES += one(
    "plot_neighbors: set_names a string",
    lambda: V.plot_neighbors(_QUERIES, [_SET], "a"),
    "set_names",
    TypeError,
)
CASES += one(
    "plot_neighbors: query_labels of 3",
    lambda: V.plot_neighbors(
        _QUERIES,
        [_SET],
        ["a"],
        torch.zeros(3, dtype=torch.long),
        [torch.zeros(2, 3, dtype=torch.long)],
    ),
    "query_labels",
    ValueError,
)
CASES += one(
    "plot_neighbors: neighbor_labels of another K",
    lambda: V.plot_neighbors(
        _QUERIES,
        [_SET],
        ["a"],
        torch.zeros(2, dtype=torch.long),
        [torch.zeros(2, 4, dtype=torch.long)],
    ),
    "neighbor_labels",
    ValueError,
)
CASES += one(
    "plot_neighbors: absurdly many queries",
    lambda: V.plot_neighbors(
        _QUERIES[:1].expand(10**5, 1, 8, 8), [_SET[:1].expand(10**5, 3, 1, 8, 8)], ["a"]
    ),
    "queries",
    ValueError,
)
CASES += float_cases(
    "plot_neighbors", "size", lambda v: V.plot_neighbors(_QUERIES, [_SET], ["a"], size=v), [0.0]
)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_gets_a_clear_error(case: Bad) -> None:
    with pytest.raises(case.error) as info:
        case.call()
    assert case.arg in str(info.value), f"{case.id}: the message does not name {case.arg!r}"
    plt.close("all")


def test_the_probe_covers_every_public_name() -> None:
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids), "case ids must be unique"
    probed = {case_id.split(":")[0].split(".")[0] for case_id in ids}
    data_only = {"HardDigits", "PCAResult", "ShapesClassification", "TSNEState"}
    assert set(V.__all__) - data_only <= probed, set(V.__all__) - data_only - probed
