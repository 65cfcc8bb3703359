"""Property-based tests of course_lib.visualization (hypothesis): on random valid inputs the
results keep their documented invariants (shapes, finiteness) and agree with scikit-learn
and SciPy; random invalid arguments raise TypeError or ValueError naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from course_lib import visualization as V

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**31 - 1)


def randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@FEW
@given(n=st.integers(2, 40), d=st.integers(1, 12), seed=SEEDS, data=st.data())
def test_pca_equals_sklearn(n, d, seed, data):
    k = data.draw(st.integers(1, min(n, d)), label="k")
    scale = data.draw(st.sampled_from([1e-3, 1.0, 1e3]), label="scale")
    # Distinct variances per feature, so that the components are well defined.
    x = scale * randn(n, d, seed=seed) * 2.0 ** -torch.arange(d, dtype=torch.float64) + 7 * scale
    projected, components, ratio = V.pca(x, k)
    assert projected.shape == (n, k) and components.shape == (k, d) and ratio.shape == (k,)
    assert all(torch.isfinite(t).all() for t in (projected, components, ratio))
    reference = PCA(n_components=k, svd_solver="full").fit(x.numpy())
    rank = int(np.linalg.matrix_rank(x.numpy() - x.numpy().mean(0)))
    torch.testing.assert_close(ratio, torch.from_numpy(reference.explained_variance_ratio_))
    if k <= rank and (k == 1 or ratio[k - 1] > 1e-6):  # components of the data's own span
        torch.testing.assert_close(components, torch.from_numpy(reference.components_))
        torch.testing.assert_close(
            projected,
            torch.from_numpy(reference.transform(x.numpy())),
            atol=1e-9 * scale,
            rtol=1e-6,
        )


@FEW
@given(n=st.integers(0, 20), m=st.integers(0, 20), d=st.integers(0, 6), seed=SEEDS)
def test_pairwise_squared_distances_equal_scipy(n, m, d, seed):
    a, b = randn(n, d, seed=seed), randn(m, d, seed=seed + 1)
    distances = V.pairwise_squared_distances(a, b)
    assert distances.shape == (n, m) and bool((distances >= 0).all())
    expected = cdist(a.numpy(), b.numpy(), "sqeuclidean") if n and m else np.zeros((n, m))
    torch.testing.assert_close(distances, torch.from_numpy(expected))


@FEW
@given(
    q=st.integers(0, 15),
    m=st.integers(1, 30),
    d=st.integers(2, 6),
    metric=st.sampled_from(["euclidean", "cosine"]),
    seed=SEEDS,
    data=st.data(),
)
def test_nearest_neighbors_equal_sklearn(q, m, d, metric, seed, data):
    k = data.draw(st.integers(1, m), label="k")
    query, bank = randn(q, d, seed=seed), randn(m, d, seed=seed + 1)
    distances, indices = V.nearest_neighbors(query, bank, k, metric=metric)
    assert distances.shape == indices.shape == (q, k)
    assert bool((distances[:, 1:] >= distances[:, :-1]).all())
    if q:
        reference = NearestNeighbors(n_neighbors=k, metric=metric, algorithm="brute").fit(bank)
        expected_distances, expected_indices = reference.kneighbors(query.numpy())
        torch.testing.assert_close(distances, torch.from_numpy(expected_distances))
        assert torch.equal(indices, torch.from_numpy(expected_indices))


@FEW
@given(
    m=st.integers(1, 40),
    classes=st.integers(1, 5),
    offset=st.sampled_from([0, 10**9]),
    seed=SEEDS,
    data=st.data(),
)
def test_knn_classify_equals_sklearn_for_any_labels(m, classes, offset, seed, data):
    """Ties between classes go to the smallest label; labels may be huge (no [Q, C] table)."""
    k = data.draw(st.integers(1, m), label="k")
    bank, query = randn(m, 3, seed=seed), randn(12, 3, seed=seed + 1)
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (m,), generator=generator) * 7 + offset
    ours = V.knn_classify(query, bank, labels, k)
    reference = KNeighborsClassifier(n_neighbors=k, algorithm="brute").fit(bank, labels)
    assert torch.equal(ours, torch.from_numpy(reference.predict(query.numpy())))


def row_perplexity(p: torch.Tensor) -> torch.Tensor:
    return torch.exp(-torch.where(p > 0, p * p.clamp_min(1e-300).log(), 0).sum(dim=1))


@FEW
@given(
    rows=st.integers(1, 8),
    m=st.integers(3, 40),
    duplicates=st.integers(0, 10),
    scale=st.sampled_from([1e-6, 1.0, 1e6]),
    seed=SEEDS,
    data=st.data(),
)
def test_perplexity_search_reaches_the_target_or_shares_among_duplicates(
    rows, m, duplicates, scale, seed, data
):
    perplexity = data.draw(st.floats(1.0, m - 1, exclude_max=True), label="perplexity")
    distances = scale * randn(rows, m, seed=seed).abs()
    distances[:, : min(duplicates, m)] = 0.0  # points identical to the row's own point
    p, beta = V.perplexity_search(distances, perplexity, tol=1e-10)
    assert torch.isfinite(p).all() and torch.isfinite(beta).all() and bool((p >= 0).all())
    torch.testing.assert_close(p.sum(1), torch.ones(rows, dtype=p.dtype))
    reachable = min(duplicates, m) <= perplexity * (1 - 1e-6)
    if reachable:
        expected = torch.full((rows,), perplexity, dtype=p.dtype)
        torch.testing.assert_close(row_perplexity(p), expected, rtol=1e-6, atol=0)
    else:  # entropy cannot fall below ln(duplicates): the mass is shared by the duplicates
        torch.testing.assert_close(p[:, :duplicates].sum(1), torch.ones(rows, dtype=p.dtype))


@FEW
@given(n=st.integers(4, 40), copies=st.integers(1, 20), d=st.integers(1, 5), seed=SEEDS)
def test_tsne_affinities_are_a_symmetric_distribution_even_with_duplicates(n, copies, d, seed):
    x = randn(n, d, seed=seed)
    x = torch.cat([x, x[:1].expand(copies, d)])  # the first point, repeated
    perplexity = min(5.0, len(x) - 2.0)
    p = V.tsne_affinities(x, perplexity)
    assert torch.isfinite(p).all() and bool((p >= 0).all())
    torch.testing.assert_close(p, p.T)
    assert math.isclose(float(p.sum()), 1.0, rel_tol=1e-12) and bool((p.diagonal() == 0).all())


@FEW
@given(n=st.integers(2, 25), e=st.integers(1, 3), exaggeration=st.floats(0.5, 20), seed=SEEDS)
def test_tsne_gradient_is_the_gradient_of_the_kl(n, e, exaggeration, seed):
    p = torch.rand(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    p = (p + p.T).fill_diagonal_(0)
    p = p / p.sum()
    y = (3 * randn(n, e, seed=seed + 1)).requires_grad_(True)
    kernel = 1 / (1 + ((y[:, None] - y[None]) ** 2).sum(-1))
    q = kernel * (1 - torch.eye(n, dtype=torch.float64))
    q = q / q.sum()
    positive = p > 0
    kl = (p[positive] * (p[positive] / q[positive]).log()).sum()
    attraction = (p * (exaggeration - 1)) * (-torch.log1p(((y[:, None] - y[None]) ** 2).sum(-1)))
    (expected,) = torch.autograd.grad(kl - attraction.sum(), y)
    gradient, ours_kl = V.tsne_gradient(p, y.detach(), exaggeration)
    assert gradient.shape == (n, e)
    torch.testing.assert_close(gradient, expected, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(ours_kl, kl.detach(), rtol=1e-9, atol=1e-12)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(6, 30), d=st.integers(2, 6), e=st.integers(1, 3), seed=st.integers(0, 100))
def test_tsne_returns_a_finite_deterministic_embedding(n, d, e, seed):
    x = randn(n, d, seed=seed).float()
    first = V.tsne(x, e, perplexity=min(5.0, n - 2.0), n_iter=60, seed=seed, init="random")
    again = V.tsne(x, e, perplexity=min(5.0, n - 2.0), n_iter=60, seed=seed, init="random")
    assert first.shape == (n, e) and first.dtype == torch.float32
    assert torch.isfinite(first).all() and torch.equal(first, again)


NOT_AN_INT = st.one_of(
    st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans(), st.just([2])
)


@FEW
@given(k=st.one_of(NOT_AN_INT, st.integers(max_value=0), st.integers(min_value=5)))
def test_pca_refuses_any_bad_k_naming_it(k):
    with pytest.raises((TypeError, ValueError), match="k"):
        V.pca(randn(10, 4, seed=0), k)


@FEW
@given(
    perplexity=st.one_of(
        st.floats(max_value=0.999), st.floats(min_value=9.0), st.text(max_size=3), st.none()
    )
)
def test_tsne_affinities_refuse_any_bad_perplexity_naming_it(perplexity):
    with pytest.raises((TypeError, ValueError), match="perplexity"):
        V.tsne_affinities(randn(10, 3, seed=0), perplexity)


@FEW
@given(
    shape=st.lists(st.integers(0, 4), min_size=0, max_size=4).filter(lambda s: len(s) != 2),
    dtype=st.sampled_from([torch.float32, torch.int64, torch.bool]),
)
def test_nearest_neighbors_refuse_a_query_that_is_not_a_float_matrix(shape, dtype):
    query = torch.zeros(shape, dtype=dtype)
    with pytest.raises((TypeError, ValueError), match="query"):
        V.nearest_neighbors(query, randn(5, 3, seed=0).float(), 1)
