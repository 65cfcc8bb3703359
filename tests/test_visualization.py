"""Tests of course_lib.visualization against scikit-learn, autograd and first principles."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import squareform
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from torch import nn

from course_lib import visualization as V

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")),
]


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def blobs(n_per: int, centers: int, dim: int, seed: int, spread: float = 8.0):
    """Gaussian clusters: points [n_per * centers, dim] and labels."""
    g = torch.Generator().manual_seed(seed)
    means = spread * torch.randn(centers, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(centers).repeat_interleave(n_per)
    return means[labels] + torch.randn(len(labels), dim, generator=g, dtype=torch.float64), labels


# --------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,k", [((200, 12), 5), ((9, 30), 8), ((50, 4), 4), ((2, 3), 1)])
def test_pca_matches_sklearn_up_to_sign(device, dtype, shape, k):
    x = (randn(*shape, seed=1) * torch.linspace(3, 0.5, shape[1]) + 5).to(device, dtype)
    projected, components, ratio = V.pca(x, k)
    reference = PCA(n_components=k, svd_solver="full").fit(x.cpu().double().numpy())
    expected_components = torch.from_numpy(reference.components_)
    expected_projected = torch.from_numpy(reference.transform(x.cpu().double().numpy()))
    signs = torch.sign((components.cpu().double() * expected_components).sum(1))
    assert torch.all(signs != 0)
    tol = {"atol": 1e-4, "rtol": 1e-3} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-8}
    torch.testing.assert_close(
        components.cpu().double() * signs[:, None], expected_components, **tol
    )
    torch.testing.assert_close(projected.cpu().double() * signs, expected_projected, **tol)
    torch.testing.assert_close(
        ratio.cpu().double(), torch.from_numpy(reference.explained_variance_ratio_), **tol
    )
    assert projected.dtype == components.dtype == ratio.dtype == dtype
    assert projected.device.type == components.device.type == torch.device(device).type


def test_pca_signs_follow_sklearn_convention():
    x = randn(100, 6, seed=2)
    _, components, _ = V.pca(x, 6)
    largest = components.abs().argmax(dim=1)
    assert torch.all(components[torch.arange(6), largest] > 0)
    reference = PCA(n_components=6, svd_solver="full").fit(x.numpy())
    torch.testing.assert_close(components, torch.from_numpy(reference.components_))


def test_pca_with_all_components_reconstructs_the_data():
    x = randn(30, 5, seed=3) + 2
    projected, components, ratio = V.pca(x, 5)
    torch.testing.assert_close(projected @ components + x.mean(0), x)
    torch.testing.assert_close(components @ components.T, torch.eye(5, dtype=x.dtype))
    assert math.isclose(float(ratio.sum()), 1.0, rel_tol=1e-12)


def test_pca_of_constant_data_has_zero_ratios():
    projected, components, ratio = V.pca(torch.ones(5, 3), 2)
    assert torch.all(ratio == 0) and torch.all(projected.abs() < 1e-6)
    assert components.shape == (2, 3)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 20), d=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_pca_properties(n, d, seed):
    x = randn(n, d, seed=seed)
    k = min(n, d)
    projected, components, ratio = V.pca(x, k)
    assert projected.shape == (n, k) and components.shape == (k, d) and ratio.shape == (k,)
    assert torch.all(ratio >= 0) and float(ratio.sum()) <= 1 + 1e-9
    assert torch.all(ratio[:-1] >= ratio[1:] - 1e-12)  # sorted by variance
    variances = projected.var(dim=0)
    torch.testing.assert_close(
        variances / variances.sum(), ratio / ratio.sum(), atol=1e-8, rtol=1e-6
    )


@pytest.mark.parametrize(
    "x,k,error,match",
    [
        (torch.randn(10, 3), 4, ValueError, r"k must be at most min\(N, D\) = 3"),
        (torch.randn(10, 3), 0, ValueError, "k must be >= 1"),
        (torch.randn(10), 1, ValueError, r"x must have shape \[N, D\], got \(10,\)"),
        (torch.ones(10, 3, dtype=torch.long), 1, TypeError, "floating-point"),
        (torch.randn(1, 3), 1, ValueError, "at least 2 rows"),
        (np.ones((4, 2)), 1, TypeError, "x must be a torch.Tensor"),
        (torch.randn(10, 3), 1.5, TypeError, "k must be an int"),
    ],
)
def test_pca_bad_input(x, k, error, match):
    with pytest.raises(error, match=match):
        V.pca(x, k)


# --------------------------------------------------------------------------------------
# Nearest neighbours and kNN
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_pairwise_squared_distances_matches_cdist(device):
    a, b = randn(40, 7, seed=4).to(device), randn(25, 7, seed=5).to(device)
    torch.testing.assert_close(V.pairwise_squared_distances(a, b), torch.cdist(a, b) ** 2)
    same = V.pairwise_squared_distances(a)
    torch.testing.assert_close(same, torch.cdist(a, a) ** 2)
    assert torch.all(same.diagonal() == 0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 5, 60])
def test_nearest_neighbors_matches_sklearn(device, metric, k):
    bank, query = randn(60, 10, seed=6), randn(33, 10, seed=7)
    distances, indices = V.nearest_neighbors(query.to(device), bank.to(device), k, metric=metric)
    reference = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(bank.numpy())
    expected_distances, expected_indices = reference.kneighbors(query.numpy())
    assert torch.equal(indices.cpu(), torch.from_numpy(expected_indices))
    torch.testing.assert_close(distances.cpu(), torch.from_numpy(expected_distances))
    assert torch.all(distances[:, 1:] >= distances[:, :-1])


def test_nearest_neighbors_in_chunks_gives_the_same_answer():
    bank, query = (
        randn(500, 16, seed=8, dtype=torch.float32),
        randn(77, 16, seed=9, dtype=torch.float32),
    )
    whole = V.nearest_neighbors(query, bank, 7)
    for chunk in (1, 10, 76):
        part = V.nearest_neighbors(query, bank, 7, chunk_size=chunk)
        assert torch.equal(part[1], whole[1])
        torch.testing.assert_close(part[0], whole[0])


def test_nearest_neighbors_finds_each_bank_point_itself_first():
    bank = randn(50, 3, seed=10)
    distances, indices = V.nearest_neighbors(bank, bank, 2)
    assert torch.equal(indices[:, 0], torch.arange(50))
    assert torch.all(distances[:, 0] == 0)


def test_nearest_neighbors_with_no_queries():
    distances, indices = V.nearest_neighbors(torch.zeros(0, 4), torch.randn(9, 4), 3)
    assert distances.shape == indices.shape == (0, 3) and indices.dtype == torch.long


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 2, 4, 5, 9])
def test_knn_classify_matches_sklearn_including_vote_ties(device, k):
    bank, labels = blobs(30, 4, 5, seed=11, spread=1.5)
    query, _ = blobs(20, 4, 5, seed=12, spread=1.5)
    ours = V.knn_classify(query.to(device), bank.to(device), labels.to(device), k=k)
    reference = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(
        bank.numpy(), labels.numpy()
    )
    assert torch.equal(ours.cpu(), torch.from_numpy(reference.predict(query.numpy())))
    assert ours.dtype == torch.long


def test_knn_ties_go_to_the_smallest_label():
    distances = torch.tensor([[0.1, 0.2, 5.0, 6.0], [0.3, 0.1, 7.0, 8.0]])
    labels = torch.tensor([3, 1, 0, 0])
    assert V.knn_from_distances(distances, labels, k=2).tolist() == [1, 1]
    assert V.knn_from_distances(distances, labels, k=1).tolist() == [3, 1]
    assert V.knn_from_distances(distances, labels, k=4).tolist() == [0, 0]


def test_knn_from_distances_agrees_with_knn_classify():
    bank, labels = blobs(20, 3, 4, seed=13, spread=2.0)
    query = randn(15, 4, seed=14)
    distances = torch.cdist(query, bank)
    for k in (1, 3, 6):
        assert torch.equal(
            V.knn_from_distances(distances, labels, k), V.knn_classify(query, bank, labels, k)
        )
    empty = V.knn_from_distances(torch.zeros(0, 60), labels, 3, num_classes=3)
    assert empty.shape == (0,)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: V.nearest_neighbors(torch.randn(3, 2), torch.randn(4, 2), 5),
            ValueError,
            "k must be at most the number of bank points M = 4",
        ),
        (
            lambda: V.nearest_neighbors(torch.randn(3, 2), torch.randn(4, 3), 1),
            ValueError,
            "same D",
        ),
        (
            lambda: V.nearest_neighbors(torch.randn(3, 2), torch.randn(4, 2), 1, metric="l1"),
            ValueError,
            "metric",
        ),
        (
            lambda: V.knn_classify(
                torch.randn(3, 2), torch.randn(4, 2), torch.tensor([0, 1, 1.0, 0]), 1
            ),
            TypeError,
            "integer",
        ),
        (
            lambda: V.knn_classify(
                torch.randn(3, 2), torch.randn(4, 2), torch.tensor([0, 1, 1]), 1
            ),
            ValueError,
            r"bank_labels must have shape \[4\]",
        ),
        (
            lambda: V.knn_from_distances(
                torch.rand(3, 4), torch.tensor([0, 1, 2, 3]), 2, num_classes=3
            ),
            ValueError,
            "num_classes = 3",
        ),
        (
            lambda: V.knn_from_distances(torch.rand(3, 4), torch.tensor([0, 1, -1, 3]), 2),
            ValueError,
            "non-negative",
        ),
        (
            lambda: V.knn_from_distances(torch.rand(3, 4), torch.tensor([0, 1, 1, 3]), 5),
            ValueError,
            "k must be at most",
        ),
    ],
)
def test_neighbours_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------
# t-SNE: affinities
# --------------------------------------------------------------------------------------


def row_perplexity(p: torch.Tensor) -> torch.Tensor:
    entropy = -torch.where(p > 0, p * p.clamp_min(1e-300).log(), 0).sum(dim=1)
    return entropy.exp()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("perplexity", [1.5, 5.0, 30.0, 90.0])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_perplexity_of_each_row_matches_the_target(device, perplexity, scale):
    x = randn(100, 6, seed=15) * math.sqrt(scale)
    distances = V.pairwise_squared_distances(x).fill_diagonal_(math.inf).to(device)
    p, beta = V.perplexity_search(distances, perplexity, tol=1e-10)
    assert torch.all(p.diagonal() == 0)
    torch.testing.assert_close(p.sum(dim=1), torch.ones(100, dtype=p.dtype, device=p.device))
    torch.testing.assert_close(
        row_perplexity(p.cpu()), torch.full((100,), perplexity, dtype=p.dtype), rtol=1e-8, atol=0
    )
    # p_{j|i} is a Gaussian in the distance with the returned precision
    expected = torch.softmax(-beta[:, None] * distances, dim=1)
    torch.testing.assert_close(p, expected)


def test_perplexity_search_honours_excluded_candidates_and_loose_tolerance():
    distances = torch.tensor([[math.inf, 1.0, 2.0, 3.0, math.inf, 0.5]], dtype=torch.float64)
    p, _ = V.perplexity_search(distances, 2.0)
    assert p[0, 0] == 0 and p[0, 4] == 0
    assert abs(float(row_perplexity(p)) - 2.0) < 2e-5 * 2.0
    empty_p, empty_beta = V.perplexity_search(torch.zeros(0, 5), 2.0)
    assert empty_p.shape == (0, 5) and empty_beta.shape == (0,)


@pytest.mark.parametrize("perplexity", [5.0, 30.0])
def test_tsne_affinities_match_sklearn(perplexity):
    x = randn(120, 8, seed=16)
    ours = V.tsne_affinities(x, perplexity)
    expected = _joint_probabilities(
        V.pairwise_squared_distances(x).numpy(), perplexity, verbose=0
    )  # condensed, from a float32 binary search with tolerance 1e-5
    torch.testing.assert_close(
        torch.from_numpy(squareform(ours.numpy(), checks=False)),
        torch.from_numpy(expected),
        rtol=2e-3,
        atol=1e-9,
    )
    torch.testing.assert_close(ours, ours.T)
    assert math.isclose(float(ours.sum()), 1.0, rel_tol=1e-12)
    assert torch.all(ours.diagonal() == 0)
    # Symmetrising gives every point at least 1 / 2N of the mass, even an outlier.
    assert torch.all(ours.sum(dim=1) >= 1 / (2 * 120) - 1e-15)


# --------------------------------------------------------------------------------------
# t-SNE: objective and gradient
# --------------------------------------------------------------------------------------


def kl_by_definition(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n = y.shape[0]
    off_diagonal = ~torch.eye(n, dtype=torch.bool)
    kernel = 1 / (1 + ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    q = torch.where(off_diagonal, kernel, 0) / kernel[off_diagonal].sum()
    positive = p > 0
    return (p[positive] * (p[positive] / q[positive]).log()).sum()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n,dims", [(2, 2), (12, 2), (40, 3), (25, 1)])
def test_tsne_gradient_matches_autograd(device, n, dims):
    p = V.tsne_affinities(randn(n + 3, 5, seed=17), 2.0)[:n, :n]
    p = (p / p.sum()).to(device)
    y = randn(n, dims, seed=18).to(device).requires_grad_(True)
    kl = kl_by_definition(p.cpu(), y.cpu())
    (expected,) = torch.autograd.grad(kl, y)
    gradient, ours_kl = V.tsne_gradient(p, y.detach())
    torch.testing.assert_close(gradient, expected, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(ours_kl.cpu(), kl.detach(), atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(V.tsne_kl_divergence(p, y.detach()).cpu(), kl.detach())


@pytest.mark.parametrize("exaggeration", [1.0, 12.0])
def test_tsne_gradient_and_kl_match_sklearn(exaggeration):
    n, dims = 50, 2
    p = V.tsne_affinities(randn(n, 6, seed=19), 10.0)
    y = randn(n, dims, seed=20) * 3
    kl_reference, gradient_reference = _kl_divergence(
        y.numpy().ravel().copy(), exaggeration * squareform(p.numpy(), checks=False), 1, n, dims
    )
    gradient, kl = V.tsne_gradient(p, y, exaggeration=exaggeration)
    torch.testing.assert_close(
        gradient, torch.from_numpy(gradient_reference.reshape(n, dims)), rtol=1e-7, atol=1e-12
    )
    if exaggeration == 1.0:
        assert math.isclose(float(kl), float(kl_reference), rel_tol=1e-7)


def test_fast_inner_gradient_equals_the_readable_one():
    p = V.tsne_affinities(randn(60, 4, seed=21), 8.0).float()
    y = randn(60, 2, seed=22).float()
    buffers = torch.empty_like(p), torch.empty_like(p)
    for exaggeration in (1.0, 12.0):
        torch.testing.assert_close(
            V._gradient_only(p, y, exaggeration, *buffers),
            V.tsne_gradient(p, y, exaggeration)[0],
            atol=1e-9,
            rtol=1e-4,
        )


def test_tsne_gradient_bad_input():
    with pytest.raises(ValueError, match=r"p must have shape \[N, N\] = \[4, 4\]"):
        V.tsne_gradient(torch.rand(3, 3), torch.rand(4, 2))
    with pytest.raises(ValueError, match=r"y must have shape \[N, E\]"):
        V.tsne_gradient(torch.rand(4, 4), torch.rand(4))


# --------------------------------------------------------------------------------------
# t-SNE: the whole algorithm
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_tsne_quality_on_a_small_clustered_set(device):
    x, labels = blobs(40, 5, 10, seed=23)
    embedding = V.tsne(x.float().to(device), perplexity=15.0, n_iter=500)
    assert embedding.shape == (200, 2) and embedding.device.type == torch.device(device).type
    ours = trustworthiness(x.numpy(), embedding.cpu().numpy(), n_neighbors=5)
    reference = TSNE(perplexity=15.0, max_iter=500, random_state=0).fit_transform(x.numpy())
    theirs = trustworthiness(x.numpy(), reference, n_neighbors=5)
    assert ours >= 0.95
    assert ours >= theirs - 0.01
    # every cluster stays together: 1-NN in the embedding recovers the labels
    leave_one_out = V.nearest_neighbors(embedding.cpu(), embedding.cpu(), 2)[1][:, 1]
    assert (labels[leave_one_out] == labels).float().mean() >= 0.98


def test_tsne_reports_progress_and_is_deterministic():
    x, _ = blobs(15, 3, 4, seed=24)
    states = []
    first = V.tsne(x, perplexity=5.0, n_iter=120, init="random", seed=3, callback=states.append)
    second = V.tsne(x, perplexity=5.0, n_iter=120, init="random", seed=3)
    assert torch.equal(first, second)
    assert [s.iteration for s in states] == [50, 100, 120]
    assert states[-1].kl_divergence < states[0].kl_divergence
    assert torch.equal(states[-1].embedding, first)
    p = V.tsne_affinities(x, 5.0)
    assert math.isclose(
        states[-1].kl_divergence, float(V.tsne_kl_divergence(p, first)), rel_tol=1e-9
    )
    other = V.tsne(x, perplexity=5.0, n_iter=120, init="random", seed=4)
    assert not torch.equal(first, other)


def test_tsne_accepts_an_initial_embedding_and_float32():
    x, _ = blobs(10, 3, 4, seed=25)
    start = randn(30, 2, seed=26) * 1e-4
    embedding = V.tsne(x.float(), perplexity=5.0, n_iter=10, init=start)
    assert embedding.dtype == torch.float32 and embedding.shape == (30, 2)
    three_d = V.tsne(x, n_components=3, perplexity=5.0, n_iter=10)
    assert three_d.shape == (30, 3)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (
            lambda: V.tsne(torch.randn(10, 3), perplexity=9.0),
            ValueError,
            r"perplexity must be smaller than N - 1 = 9",
        ),
        (
            lambda: V.tsne_affinities(torch.randn(10, 3), perplexity=30.0),
            ValueError,
            r"perplexity must be smaller than N - 1 = 9",
        ),
        (
            lambda: V.perplexity_search(torch.rand(2, 4), 4.0),
            ValueError,
            "perplexity must be smaller than the number of candidate",
        ),
        (lambda: V.perplexity_search(torch.rand(2, 4), 0.5), ValueError, "perplexity must be >= 1"),
        (lambda: V.perplexity_search(-torch.rand(2, 4), 2.0), ValueError, "non-negative"),
        (lambda: V.tsne(torch.randn(2, 3), perplexity=1.0), ValueError, "at least 3 points"),
        (
            lambda: V.tsne(torch.randn(10, 3), n_components=0, perplexity=2.0),
            ValueError,
            "n_components must be >= 1",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), perplexity=2.0, init="spectral"),
            ValueError,
            "init must be",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), perplexity=2.0, init=torch.zeros(9, 2)),
            ValueError,
            r"init must have shape \[N, E\] = \[10, 2\]",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), n_components=4, perplexity=2.0),
            ValueError,
            r"min\(N, D\) = 3",
        ),
        (
            lambda: V.tsne(torch.randn(10), perplexity=2.0),
            ValueError,
            r"x must have shape \[N, D\]",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), perplexity=-2.0),
            ValueError,
            "perplexity must be a positive",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), perplexity=2.0, learning_rate=0),
            ValueError,
            "learning_rate",
        ),
    ],
)
def test_tsne_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def test_hard_digits_are_deterministic_and_well_formed():
    first = V.load_hard_digits(canvas_size=24, train_copies=2, test_copies=1, seed=5)
    second = V.load_hard_digits(canvas_size=24, train_copies=2, test_copies=1, seed=5)
    other = V.load_hard_digits(canvas_size=24, train_copies=2, test_copies=1, seed=6)
    assert torch.equal(first.train_images, second.train_images)
    assert torch.equal(first.test_images, second.test_images)
    assert not torch.equal(first.train_images, other.train_images)
    assert first.train_images.shape == (2 * 1437, 1, 24, 24)
    assert first.test_images.shape == (360, 1, 24, 24)
    assert first.train_images.dtype == torch.float32
    assert 0 <= float(first.train_images.min()) and float(first.train_images.max()) <= 1
    assert torch.equal(torch.bincount(first.test_labels), torch.bincount(first.test_labels[:360]))
    assert set(first.train_labels.tolist()) == set(range(10))
    assert torch.equal(first.train_source[:1437], first.train_source[1437:])
    assert first.train_boxes.shape == (2 * 1437, 4) and first.test_boxes.shape == (360, 4)
    sides = first.test_boxes[:, 2:] - first.test_boxes[:, :2]
    assert torch.all((sides >= 0.3 * 24 - 1e-4) & (sides <= 0.6 * 24 + 1e-4))


def test_place_digits_puts_the_digit_inside_the_canvas_at_the_requested_scale():
    digit = torch.zeros(1, 1, 8, 8)
    digit[..., 1:7, 1:7] = 1.0
    canvas, boxes = V.place_digits(
        digit.repeat(50, 1, 1, 1), 40, 0.5, 0.5, 0.0, torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(boxes[:, 2:] - boxes[:, :2], torch.full((50, 2), 20.0))
    assert torch.all(boxes >= 0) and torch.all(boxes <= 40)
    # the ink (the digit's inner 6x6 square) sits inside its box
    rows_with_ink = canvas[:, 0].amax(dim=2) > 0.5  # [50, 40]
    first_row = rows_with_ink.float().argmax(dim=1).float()
    assert torch.all(first_row + 0.5 >= boxes[:, 1]) and torch.all(first_row < boxes[:, 3])
    ink = canvas > 0.5
    rows = ink.any(dim=3).squeeze(1).sum(dim=1).float()
    # the 6-pixel square of an 8-pixel digit scaled to 20 pixels covers about 15 pixels
    assert torch.all((rows > 12) & (rows < 18))
    assert not ink[:, :, 0, :].any() and not ink[:, :, -1, :].any()


def test_hard_digits_bad_input():
    with pytest.raises(ValueError, match="min_scale"):
        V.load_hard_digits(min_scale=0.8, max_scale=0.5)
    with pytest.raises(ValueError, match="noise"):
        V.load_hard_digits(noise=-1.0)
    with pytest.raises(ValueError, match="train_copies must be >= 1"):
        V.load_hard_digits(train_copies=0)


def test_shapes_classification():
    data = V.load_shapes_classification(12, image_size=24, seed=1)
    again = V.load_shapes_classification(12, image_size=24, seed=1)
    assert torch.equal(data.images, again.images)
    assert data.images.shape == (12, 3, 24, 24) and len(data) == 12
    assert data.targets.shape == (12, 2)
    assert int(data.shapes.max()) < 3 and int(data.colors.max()) < 6
    assert data.boxes.shape == (12, 4) and torch.all(data.boxes[:, 2:] > data.boxes[:, :2])
    assert len(V.load_shapes_classification(0)) == 0


# --------------------------------------------------------------------------------------
# Model, features, saliency, adversarial examples
# --------------------------------------------------------------------------------------


def tiny_cnn(heads=(3, 6), seed: int = 0) -> V.SmallCNN:
    torch.manual_seed(seed)
    return V.SmallCNN(3, heads, channels=(4, 6, 8), feature_dim=5)


def test_small_cnn_shapes_and_losses():
    model = tiny_cnn()
    images = torch.rand(7, 3, 16, 16)
    targets = torch.stack([torch.randint(0, 3, (7,)), torch.randint(0, 6, (7,))], 1)
    logits, loss = model(images, targets)
    assert logits.shape == (7, 9) and loss.dim() == 0
    expected = nn.functional.cross_entropy(
        logits[:, :3], targets[:, 0]
    ) + nn.functional.cross_entropy(logits[:, 3:], targets[:, 1])
    torch.testing.assert_close(loss, expected)
    assert model(images)[1] is None
    assert model.features(images).shape == (7, 5)
    assert model.predict(images).shape == (7, 2)
    single = V.SmallCNN(1, 10, channels=(4, 4, 4))
    assert single.predict(torch.rand(2, 1, 12, 12)).shape == (2,)
    with pytest.raises(ValueError, match=r"targets must have shape \[B\] or \[B, 2\]"):
        model(images, targets[:, :1].repeat(1, 3))
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\]"):
        model.features(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match="num_classes"):
        V.SmallCNN(1, 1)


def test_extract_features_batches_and_restores_mode():
    model = tiny_cnn()
    model.train()
    images = torch.rand(11, 3, 16, 16)
    features = V.extract_features(model, images, batch_size=4)
    assert model.training
    model.eval()
    torch.testing.assert_close(features, model.features(images))
    assert V.extract_features(model, images[:0]).shape == (0, 5)


@pytest.mark.parametrize("device", DEVICES)
def test_saliency_of_a_linear_model_is_its_weight(device):
    weight = randn(4, 2 * 5 * 5, seed=27, dtype=torch.float32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(50, 4, bias=False)).to(device)
    model[1].weight.data.copy_(weight.to(device))
    images = torch.rand(3, 2, 5, 5, device=device)
    classes = torch.tensor([0, 3, 3], device=device)
    saliency = V.saliency_map(model, images, classes)
    expected = weight[classes.cpu()].reshape(3, 2, 5, 5).abs().amax(dim=1)
    torch.testing.assert_close(saliency.cpu(), expected)
    assert model[1].weight.grad is None


def test_saliency_matches_autograd_per_image_and_uses_eval_mode():
    model = tiny_cnn()
    model.train()
    images = torch.rand(4, 3, 16, 16)
    classes = torch.tensor([0, 4, 8, 2])
    saliency = V.saliency_map(model, images, classes)
    assert model.training  # restored
    model.eval()
    for i in range(4):
        single = images[i : i + 1].clone().requires_grad_(True)
        model(single)[0][0, classes[i]].backward()
        torch.testing.assert_close(saliency[i], single.grad[0].abs().amax(dim=0))
    assert V.saliency_map(model, images[:0], classes[:0]).shape == (0, 16, 16)
    with pytest.raises(ValueError, match="classes must be < 9"):
        V.saliency_map(model, images, torch.tensor([0, 1, 2, 9]))


def test_fgsm_moves_every_pixel_by_epsilon_and_raises_the_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5))
    images = torch.rand(6, 3, 8, 8) * 0.8 + 0.1
    labels = torch.randint(0, 5, (6,))
    adversarial = V.fgsm_attack(model, images, labels, 0.05)
    change = adversarial - images
    assert float(change.abs().max()) <= 0.05 + 1e-7
    assert torch.all((0 <= adversarial) & (adversarial <= 1))
    before = nn.functional.cross_entropy(model(images), labels)
    after = nn.functional.cross_entropy(model(adversarial), labels)
    assert after > before
    assert torch.equal(V.fgsm_attack(model, images, labels, 0.0), images)
    assert V.fgsm_attack(model, images[:0], labels[:0], 0.1).shape == (0, 3, 8, 8)
    with pytest.raises(ValueError, match="epsilon"):
        V.fgsm_attack(model, images, labels, -0.1)


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------


def test_plot_embedding_and_neighbours_draw():
    points = randn(30, 2, seed=28)
    labels = torch.arange(30) % 3
    ax = V.plot_embedding(points, labels, images=torch.rand(30, 1, 8, 8), thumbnails=5, title="t")
    assert len(ax.collections) == 3 and ax.get_title() == "t"
    plt.close(ax.figure)
    figure = V.plot_neighbors(
        torch.rand(2, 1, 8, 8), [torch.rand(2, 3, 1, 8, 8)] * 2, ["pixels", "features"],
        torch.tensor([0, 1]), [torch.zeros(2, 3, dtype=torch.long)] * 2,
    )  # fmt: skip
    assert len(figure.axes) == 2 * (1 + 2 * 4)
    plt.close(figure)
    with pytest.raises(ValueError, match=r"points must have shape \[N, 2\]"):
        V.plot_embedding(randn(5, 3, seed=0), torch.zeros(5))
