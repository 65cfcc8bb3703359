"""Property-based tests of course_lib.generative (hypothesis): on random valid inputs the
results keep their documented invariants and agree with torch.distributions, torch.nn and
SciPy; random invalid arguments raise TypeError or ValueError naming the argument."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import distributions as D

from course_lib import generative as G

FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(0, 2**31 - 1)
SHAPES = st.lists(st.integers(1, 4), min_size=1, max_size=3)


def randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)


@FEW
@given(shape=SHAPES, seed=SEEDS, scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_kl_divergence_equals_torch_distributions_summed_over_latents(shape, seed, scale):
    mu, logvar = randn(*shape, seed=seed, scale=scale), randn(*shape, seed=seed + 1, scale=scale)
    prior = D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = D.kl_divergence(D.Normal(mu, torch.exp(0.5 * logvar)), prior).sum(-1)
    kl = G.kl_divergence(mu, logvar)
    assert kl.shape == tuple(shape[:-1]) and bool((kl >= 0).all())
    torch.testing.assert_close(kl, expected, rtol=1e-10, atol=1e-12)


@FEW
@given(shape=SHAPES, seed=SEEDS)
def test_reparameterize_is_mu_plus_sigma_times_the_generators_noise(shape, seed):
    mu, logvar = randn(*shape, seed=seed), randn(*shape, seed=seed + 1)
    z = G.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(seed))
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=mu.dtype)
    assert z.shape == mu.shape and torch.isfinite(z).all()
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * noise)


@FEW
@given(shape=SHAPES, seed=SEEDS, scale=st.sampled_from([1.0, 30.0, 1000.0]))
def test_bernoulli_log_likelihood_equals_torch_distributions(shape, seed, scale):
    logits = randn(*shape, seed=seed, scale=scale)
    x = (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.5).double()
    ours = G.bernoulli_log_likelihood(logits, x)
    assert ours.shape == (shape[0],) and torch.isfinite(ours).all() and bool((ours <= 0).all())
    expected = D.Independent(D.Bernoulli(logits=logits), len(shape) - 1).log_prob(x)
    torch.testing.assert_close(ours, expected)


@FEW
@given(b=st.integers(1, 20), b_fake=st.integers(1, 20), seed=SEEDS, scale=st.floats(0.1, 500))
def test_gan_losses_equal_binary_cross_entropy(b, b_fake, seed, scale):
    real, fake = randn(b, seed=seed, scale=scale), randn(b_fake, seed=seed + 1, scale=scale)
    bce = F.binary_cross_entropy_with_logits
    expected = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    torch.testing.assert_close(G.discriminator_loss(real, fake), expected)
    torch.testing.assert_close(G.generator_loss(fake), bce(fake, torch.ones_like(fake)))
    saturating = -bce(fake, torch.zeros_like(fake))  # mean log(1 - D(G(z)))
    torch.testing.assert_close(G.generator_loss(fake, non_saturating=False), saturating)


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # SciPy's sqrtm, for N < F
@FEW
@given(n=st.integers(2, 60), m=st.integers(2, 60), f=st.integers(1, 6), seed=SEEDS)
def test_frechet_distance_equals_the_scipy_formula(n, m, f, seed):
    mixing = randn(f, f, seed=seed)
    a = randn(n, f, seed=seed + 1) @ mixing
    b = 0.7 * randn(m, f, seed=seed + 2) @ mixing + 0.5
    ours = G.frechet_distance(a, b)
    assert ours.dim() == 0 and ours.dtype == torch.float64 and float(ours) >= 0
    reference = scipy_frechet(a.numpy(), b.numpy())
    assert float(ours) == pytest.approx(reference, rel=1e-6, abs=1e-8 * (1 + abs(reference)))
    torch.testing.assert_close(G.frechet_distance(b, a), ours)
    assert float(G.frechet_distance(a, a)) == pytest.approx(0.0, abs=1e-8 * float(a.var(0).sum()))


@FEW
@given(k=st.integers(0, 15).map(lambda i: 2 * i + 1), mask_type=st.sampled_from(["A", "B"]))
def test_pixelcnn_mask_keeps_exactly_the_pixels_before_the_centre(k, mask_type):
    mask = G.pixelcnn_mask(k, mask_type)
    order = torch.arange(k * k).reshape(k, k)  # raster order
    centre = order[k // 2, k // 2]
    expected = (order < centre) | ((order == centre) & (mask_type == "B"))
    assert torch.equal(mask, expected.float())


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 40), d=st.integers(1, 10), k=st.integers(1, 4), seed=SEEDS)
def test_bernoulli_mixture_log_prob_equals_torch_distributions(n, d, k, seed):
    generator = torch.Generator().manual_seed(seed)
    images = (torch.rand(n, 1, d, generator=generator) < 0.4).float()
    mixture = G.BernoulliMixture(k, smoothing=0.5)
    history = mixture.fit(images, iterations=5, seed=seed % 1000)
    assert len(history) == 5 and all(math.isfinite(value) for value in history)
    peer = D.MixtureSameFamily(
        D.Categorical(logits=mixture.log_weights),
        D.Independent(D.Bernoulli(probs=mixture.probs), 1),
    )
    expected = peer.log_prob(images.flatten(1).double())
    torch.testing.assert_close(mixture.log_prob(images).double(), expected, rtol=1e-5, atol=1e-5)
    samples = mixture.sample(7, seed=seed % 1000)
    assert samples.shape == (7, 1, d) and set(samples.unique().tolist()) <= {0.0, 1.0}


@FEW
@given(n=st.integers(1, 12), classes=st.integers(1, 4), count=st.integers(0, 20), seed=SEEDS)
def test_resample_by_class_only_draws_items_the_class_can_explain(n, classes, count, seed):
    generator = torch.Generator().manual_seed(seed)
    probs = torch.rand(n, classes, generator=generator) * (torch.rand(n, classes) < 0.7)
    probs[0] = 1.0  # every class has positive total probability
    samples = torch.arange(float(n))[:, None]
    out = G.resample_by_class(samples, probs, count, seed=seed % 1000)
    assert out.shape == (classes, count, 1)
    for y in range(classes):
        drawn = out[y, :, 0].long()
        assert bool((probs[drawn, y] > 0).all())


@FEW
@given(n=st.integers(0, 50), modes=st.integers(1, 8), radius=st.floats(0.0, 1.0), seed=SEEDS)
def test_mode_coverage_counts_like_brute_force(n, modes, radius, seed):
    points, centres = G.ring_of_gaussians(n, num_modes=modes, std=0.3, seed=seed % 1000)
    counts = G.mode_coverage(points, centres, radius)
    assert counts.shape == (modes,)
    distances = ((points[:, None] - centres[None]) ** 2).sum(-1).sqrt()
    nearest = distances.argmin(1) if n else torch.zeros(0, dtype=torch.long)
    within = distances.min(1).values <= radius if n else torch.zeros(0, dtype=torch.bool)
    expected = torch.bincount(nearest[within], minlength=modes)
    assert torch.equal(counts, expected)


NOT_A_COUNT = st.one_of(
    st.floats(allow_nan=True), st.text(max_size=3), st.none(), st.booleans(),
    st.integers(max_value=-1), st.integers(min_value=10**12),
)  # fmt: skip


@FEW
@given(num_samples=NOT_A_COUNT)
def test_samplers_refuse_any_bad_count_naming_it(num_samples):
    for sampler in (G.VAE(latent_dim=2, hidden_dim=4).sample, G.Generator(2, 4).sample):
        with pytest.raises((TypeError, ValueError), match="num_samples"):
            sampler(num_samples)


@FEW
@given(shape_mu=SHAPES, shape_logvar=SHAPES)
def test_kl_divergence_refuses_mismatched_shapes_naming_logvar(shape_mu, shape_logvar):
    if shape_mu == shape_logvar:
        return
    with pytest.raises(ValueError, match="logvar"):
        G.kl_divergence(torch.zeros(shape_mu), torch.zeros(shape_logvar))
