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
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from torch import nn

from course_lib import visualization as V
from course_lib.visualization.manifold import _GradientWorkspace


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def blobs(n_per: int, centers: int, dim: int, seed: int, spread: float = 8.0):
    """Gaussian clusters: points [n_per * centers, dim] and labels."""
    g = torch.Generator().manual_seed(seed)
    means = spread * torch.randn(centers, dim, generator=g, dtype=torch.float64)
    labels = torch.arange(centers).repeat_interleave(n_per)
    return means[labels] + torch.randn(len(labels), dim, generator=g, dtype=torch.float64), labels


def needs_float64(device: str) -> None:
    """These comparisons run in float64, which Apple's MPS does not have."""
    if device == "mps":
        pytest.skip("MPS has no float64")


# --------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape,k", [((200, 12), 5), ((9, 30), 8), ((50, 4), 4), ((2, 3), 1)])
def test_pca_matches_sklearn_up_to_sign(device, dtype, shape, k):
    needs_float64(device)
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


def test_pca_of_half_precision_agrees_with_float32():
    x = randn(50, 6, seed=30, dtype=torch.float32)
    half = V.pca(x.half(), 3)
    full = V.pca(x.half().float(), 3)
    assert all(t.dtype == torch.float16 for t in half)
    for ours, reference in zip(half, full):
        torch.testing.assert_close(ours.float(), reference, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("n,d", [(400, 5), (5, 40), (64, 64)])
def test_both_pca_routes_agree_with_sklearn(n, d):
    """N >= D takes the D x D eigenproblem, N < D the thin SVD: both equal sklearn's PCA."""
    x = randn(n, d, seed=31) * torch.linspace(4, 0.5, d) + 3
    k = min(n, d) - 1
    projected, components, ratio = V.pca(x, k)
    reference = PCA(n_components=k, svd_solver="full").fit(x.numpy())
    torch.testing.assert_close(components, torch.from_numpy(reference.components_))
    torch.testing.assert_close(projected, torch.from_numpy(reference.transform(x.numpy())))
    torch.testing.assert_close(ratio, torch.from_numpy(reference.explained_variance_ratio_))


# --------------------------------------------------------------------------------------
# Nearest neighbours and kNN
# --------------------------------------------------------------------------------------


def test_pairwise_squared_distances_matches_cdist(device):
    needs_float64(device)
    a, b = randn(40, 7, seed=4).to(device), randn(25, 7, seed=5).to(device)
    torch.testing.assert_close(V.pairwise_squared_distances(a, b), torch.cdist(a, b) ** 2)
    same = V.pairwise_squared_distances(a)
    torch.testing.assert_close(same, torch.cdist(a, a) ** 2)
    assert torch.all(same.diagonal() == 0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 5, 60])
def test_nearest_neighbors_matches_sklearn(device, metric, k):
    needs_float64(device)
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


@pytest.mark.parametrize("k", [1, 2, 4, 5, 9])
def test_knn_classify_matches_sklearn_including_vote_ties(device, k):
    needs_float64(device)
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
        (lambda: V.pca(torch.randn(10, 3), 4), ValueError, r"k must be at most min\(N, D\) = 3"),
        (lambda: V.pca(torch.randn(1, 3), 1), ValueError, "at least 2 rows"),
        (
            lambda: V.nearest_neighbors(torch.randn(3, 2), torch.randn(4, 2), 5),
            ValueError,
            "k must be at most the number of bank points M = 4",
        ),
        (
            lambda: V.knn_from_distances(
                torch.rand(3, 4), torch.tensor([0, 1, 2, 3]), 2, num_classes=3
            ),
            ValueError,
            "num_classes = 3 but bank_labels go up to 3",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), perplexity=9.0),
            ValueError,
            r"perplexity must be smaller than N - 1 \(the neighbours of each point\) = 9",
        ),
        (
            lambda: V.perplexity_search(torch.rand(2, 4), 4.0),
            ValueError,
            "perplexity must be smaller than the number of finite candidates",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), n_components=4, perplexity=2.0),
            ValueError,
            r"init='pca' needs n_components <= min\(N, D\) = 3",
        ),
        (
            lambda: V.tsne(torch.randn(10, 3), perplexity=2.0, init=torch.zeros(9, 2)),
            ValueError,
            r"init must have shape \[N, E\] = \[10, 2\]",
        ),
        (
            lambda: V.tsne(torch.randn(2, 3), perplexity=1.0),
            ValueError,
            "x must have 3 to 20000 rows",
        ),
        (
            lambda: V.tsne_gradient(torch.rand(3, 3), torch.rand(4, 2)),
            ValueError,
            r"p must have shape \[N, N\] with N = 4 \(from y\), got \[3, 3\]",
        ),
        (
            lambda: V.load_hard_digits(min_scale=0.8, max_scale=0.5),
            ValueError,
            "min_scale must not exceed max_scale",
        ),
    ],
)
def test_messages_explain_the_limit(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------------------
# t-SNE: affinities
# --------------------------------------------------------------------------------------


def row_perplexity(p: torch.Tensor) -> torch.Tensor:
    entropy = -torch.where(p > 0, p * p.clamp_min(1e-300).log(), 0).sum(dim=1)
    return entropy.exp()


@pytest.mark.parametrize("perplexity", [1.5, 5.0, 30.0, 90.0])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_perplexity_of_each_row_matches_the_target(device, perplexity, scale):
    needs_float64(device)
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


def joint_probabilities_by_bisection(x: np.ndarray, perplexity: float) -> np.ndarray:
    """The textbook P of t-SNE, one row at a time: bisect beta until the entropy of
    p_{j|i} = exp(-beta d_ij) / sum_k exp(-beta d_ik) is ln(perplexity), then symmetrise."""
    n = len(x)
    squared = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    conditional = np.zeros((n, n))
    for i in range(n):
        d = np.delete(squared[i], i)
        d = d - d.min()
        low, high, beta = 0.0, np.inf, 1.0
        for _ in range(200):
            w = np.exp(-beta * d)
            p_row = w / w.sum()
            entropy = -(p_row[p_row > 0] * np.log(p_row[p_row > 0])).sum()
            if entropy > math.log(perplexity):
                low, beta = beta, beta * 2 if high == np.inf else (beta + high) / 2
            else:
                high, beta = beta, (low + beta) / 2
        conditional[i] = np.insert(p_row, i, 0.0)
    return (conditional + conditional.T) / (2 * n)


@pytest.mark.parametrize("perplexity", [5.0, 30.0])
def test_tsne_affinities_match_a_row_by_row_bisection(perplexity):
    x = randn(120, 8, seed=16)
    expected = torch.from_numpy(joint_probabilities_by_bisection(x.numpy(), perplexity))
    torch.testing.assert_close(V.tsne_affinities(x, perplexity, tol=1e-12), expected,
                               rtol=1e-7, atol=1e-15)  # fmt: skip
    ours = V.tsne_affinities(x, perplexity)  # the default tolerance, scikit-learn's 1e-5
    torch.testing.assert_close(ours, expected, rtol=2e-3, atol=1e-9)
    torch.testing.assert_close(ours, ours.T)
    assert math.isclose(float(ours.sum()), 1.0, rel_tol=1e-12)
    assert torch.all(ours.diagonal() == 0)
    # Symmetrising gives every point at least 1 / 2N of the mass, even an outlier.
    assert torch.all(ours.sum(dim=1) >= 1 / (2 * 120) - 1e-15)


def test_duplicated_points_give_finite_affinities_and_embeddings():
    """Many identical rows: no row can reach the perplexity (its entropy stays at least
    ln(duplicates)); its mass is shared by the duplicates instead of overflowing to NaN."""
    g = torch.Generator().manual_seed(40)
    x = torch.cat([torch.zeros(100, 5), torch.randn(50, 5, generator=g)]).double()
    p = V.tsne_affinities(x, 30.0)
    assert torch.isfinite(p).all() and math.isclose(float(p.sum()), 1.0, rel_tol=1e-12)
    conditional = 2 * len(x) * p[0, 1:100]  # p_{j|0} + p_{0|j} over the other 99 duplicates
    torch.testing.assert_close(conditional, torch.full_like(conditional, 2 / 99))
    for dtype in (torch.float32, torch.float64):
        embedding = V.tsne(x.to(dtype), perplexity=30.0, n_iter=300)
        assert torch.isfinite(embedding).all()
        # the duplicates form their own cluster: their nearest neighbours are duplicates
        nearest = V.nearest_neighbors(embedding, embedding, 2)[1][:100, 1]
        assert (nearest < 100).float().mean() >= 0.95
    every_row_equal = V.tsne(torch.ones(20, 3), perplexity=5.0, n_iter=50)
    assert torch.isfinite(every_row_equal).all()


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


@pytest.mark.parametrize("n,dims", [(2, 2), (12, 2), (40, 3), (25, 1)])
def test_tsne_gradient_matches_autograd(device, n, dims):
    needs_float64(device)
    p = V.tsne_affinities(randn(n + 3, 5, seed=17), 2.0)[:n, :n]
    p = (p / p.sum()).to(device)
    y = randn(n, dims, seed=18).to(device).requires_grad_(True)
    kl = kl_by_definition(p.cpu(), y.cpu())
    (expected,) = torch.autograd.grad(kl, y)
    gradient, ours_kl = V.tsne_gradient(p, y.detach())
    torch.testing.assert_close(gradient, expected, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(ours_kl.cpu(), kl.detach(), atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(V.tsne_kl_divergence(p, y.detach()).cpu(), kl.detach())


def gradient_by_the_formula(p: np.ndarray, y: np.ndarray, exaggeration: float) -> np.ndarray:
    """dC/dy_i = 4 sum_j (a p_ij - q_ij) (y_i - y_j) / (1 + |y_i - y_j|^2), pair by pair."""
    n = len(y)
    kernel = np.array([[0.0 if i == j else 1 / (1 + ((y[i] - y[j]) ** 2).sum()) for j in range(n)]
                       for i in range(n)])  # fmt: skip
    q = kernel / kernel.sum()
    gradient = np.zeros_like(y)
    for i in range(n):
        for j in range(n):
            gradient[i] += 4 * (exaggeration * p[i, j] - q[i, j]) * (y[i] - y[j]) * kernel[i, j]
    return gradient


@pytest.mark.parametrize("exaggeration", [1.0, 12.0])
def test_tsne_gradient_matches_the_formula_pair_by_pair(exaggeration):
    n, dims = 50, 2
    p = V.tsne_affinities(randn(n, 6, seed=19), 10.0)
    y = randn(n, dims, seed=20) * 3
    expected = gradient_by_the_formula(p.numpy(), y.numpy(), exaggeration)
    gradient, kl = V.tsne_gradient(p, y, exaggeration=exaggeration)
    torch.testing.assert_close(gradient, torch.from_numpy(expected), rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(kl, kl_by_definition(p, y), rtol=1e-10, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fast_inner_gradient_equals_the_readable_one(dtype):
    p = V.tsne_affinities(randn(60, 4, seed=21), 8.0).to(dtype)
    for block in (None, 60, 7, 1):  # one block, and upper-triangle blocks of 7 rows or 1
        workspace = _GradientWorkspace(p, block)
        for scale in (1e-4, 1.0, 30.0):  # the start of t-SNE, and a spread-out embedding
            y = (scale * randn(60, 2, seed=22)).to(dtype)
            for exaggeration in (1.0, 12.0):
                expected = V.tsne_gradient(p.double(), y.double(), exaggeration)[0]
                tolerance = 1e-4 if dtype == torch.float32 else 1e-10
                ours = workspace.gradient(y, exaggeration).double()
                atol = tolerance * expected.abs().max()
                torch.testing.assert_close(ours, expected, rtol=tolerance, atol=atol)


# --------------------------------------------------------------------------------------
# t-SNE: the whole algorithm
# --------------------------------------------------------------------------------------


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
    options = {"perplexity": 5.0, "n_iter": 320, "init": "random", "exaggeration_iters": 100}
    first = V.tsne(x, seed=3, callback=states.append, **options)
    second = V.tsne(x, seed=3, **options)
    assert torch.equal(first, second)
    assert [s.iteration for s in states] == [50, 100, 150, 200, 250, 300, 320]
    # the KL of the true P wanders during early exaggeration, then falls
    kl = [s.kl_divergence for s in states]
    assert kl[-1] < min(kl[:2]) and kl[-1] <= min(kl[2:]) + 1e-3
    assert torch.equal(states[-1].embedding, first)
    p = V.tsne_affinities(x, 5.0)
    assert math.isclose(
        states[-1].kl_divergence, float(V.tsne_kl_divergence(p, first)), rel_tol=1e-9
    )
    other = V.tsne(x, seed=4, **options)
    assert not torch.equal(first, other)


def test_tsne_accepts_an_initial_embedding_and_float32():
    x, _ = blobs(10, 3, 4, seed=25)
    start = randn(30, 2, seed=26) * 1e-4
    embedding = V.tsne(x.float(), perplexity=5.0, n_iter=10, init=start)
    assert embedding.dtype == torch.float32 and embedding.shape == (30, 2)
    three_d = V.tsne(x, n_components=3, perplexity=5.0, n_iter=10)
    assert three_d.shape == (30, 3)


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def test_edge_cases_that_must_just_work():
    # digits in float64 are placed like float32 ones, and come back in float64
    digits = torch.rand(4, 1, 8, 8)
    placed32, boxes32 = V.place_digits(digits, 16, 0.4, 0.6, 0.1, torch.Generator().manual_seed(1))
    placed64, boxes64 = V.place_digits(
        digits.double(), 16, 0.4, 0.6, 0.1, torch.Generator().manual_seed(1)
    )
    assert placed64.dtype == torch.float64 and torch.equal(boxes32, boxes64)
    torch.testing.assert_close(placed64.float(), placed32)
    # an infinite distance is never a neighbour
    distances = torch.tensor([[0.1, math.inf, 0.3], [math.inf, 0.2, 0.1]])
    assert V.knn_from_distances(distances, torch.tensor([5, 0, 9]), 2).tolist() == [5, 0]
    # class indices far beyond the number of classes vote like small ones
    labels = torch.tensor([10**12, 3, 3])
    assert V.knn_from_distances(distances, labels, 1).tolist() == [10**12, 3]


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
    with pytest.raises(
        ValueError, match=r"targets must have shape \[B, 2\] \(one label per head\)"
    ):
        model(images, targets[:, :1].repeat(1, 3))
    with pytest.raises(ValueError, match=r"targets must have shape \[B\] or \[B, 1\]"):
        single(torch.rand(2, 1, 12, 12), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\]"):
        model.features(torch.rand(2, 1, 16, 16))


def test_extract_features_batches_and_restores_mode():
    model = tiny_cnn()
    model.train()
    images = torch.rand(11, 3, 16, 16)
    features = V.extract_features(model, images, batch_size=4)
    assert model.training
    model.eval()
    torch.testing.assert_close(features, model.features(images))
    assert V.extract_features(model, images[:0]).shape == (0, 5)


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
