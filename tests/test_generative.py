"""Tests of course_lib.generative against peers (torch.nn, torch.distributions, NumPy/SciPy)
and closed forms, plus properties (causality, bounds) and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import distributions as D

from course_lib import generative as G
from course_lib.train import fit


def binary_images(batch: int, size: int = 8, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 1, size, size, generator=generator) < 0.3).float().to(device)


def needs_float64(device: str) -> None:
    """These comparisons run in float64, which Apple's MPS does not have."""
    if device == "mps":
        pytest.skip("MPS has no float64")


# ------------------------------------------------------------------------------------------
# Data helpers
# ------------------------------------------------------------------------------------------


def test_binarize_and_bits_per_dim():
    images = torch.tensor([[0.0, 0.5, 0.51, 1.0]])
    assert G.binarize(images).tolist() == [[0.0, 0.0, 1.0, 1.0]]
    assert G.binarize(images, threshold=0.0).tolist() == [[0.0, 1.0, 1.0, 1.0]]
    assert G.nats_to_bits_per_dim(64 * math.log(2.0), 64) == pytest.approx(1.0)
    assert torch.allclose(
        G.nats_to_bits_per_dim(torch.tensor([0.0, 8 * math.log(2.0)]), 8), torch.tensor([0.0, 1.0])
    )


def test_shuffled_batches_cover_every_item_once_per_epoch():
    data = torch.arange(10.0)[:, None]
    batches = G.shuffled_batches(data, batch_size=5, seed=0)
    epoch = torch.cat([next(batches)[0] for _ in range(2)])
    assert sorted(epoch[:, 0].tolist()) == list(range(10))
    again = G.shuffled_batches(data, batch_size=5, seed=0)
    assert torch.equal(next(again)[0], epoch[:5])
    small = next(G.shuffled_batches(data[:3], batch_size=64))[0]
    assert small.shape == (3, 1)


def test_shapes_as_digits_format():
    shapes = G.shapes_as_digits(6, seed=1)
    assert shapes.shape == (6, 1, 8, 8)
    assert shapes.min() >= 0 and torch.allclose(shapes.amax(dim=(1, 2, 3)), torch.ones(6))
    assert torch.equal(shapes, G.shapes_as_digits(6, seed=1))
    assert G.shapes_as_digits(0).shape == (0, 1, 8, 8)


# ------------------------------------------------------------------------------------------
# Bernoulli mixture (EM)
# ------------------------------------------------------------------------------------------


def test_bernoulli_mixture_log_prob_matches_torch_distributions():
    images = binary_images(200, seed=1)
    mixture = G.BernoulliMixture(num_components=5, smoothing=0.5)
    mixture.fit(images, iterations=20, seed=0)
    peer = D.MixtureSameFamily(
        D.Categorical(logits=mixture.log_weights),
        D.Independent(D.Bernoulli(probs=mixture.probs), 1),
    )
    expected = peer.log_prob(images.flatten(1).double())
    torch.testing.assert_close(mixture.log_prob(images).double(), expected, atol=1e-5, rtol=1e-6)
    resp = mixture.responsibilities(images)
    torch.testing.assert_close(resp.sum(1), torch.ones(200), atol=1e-6, rtol=0)


def test_em_never_lowers_the_likelihood_without_a_prior():
    images = binary_images(300, seed=2)
    history = G.BernoulliMixture(num_components=8, smoothing=0.0).fit(images, iterations=40)
    steps = np.diff(history)
    assert (steps > -1e-9).all(), steps.min()
    assert history[-1] > history[0] + 1.0


def test_bernoulli_mixture_sampling_is_binary_and_seeded():
    mixture = G.BernoulliMixture(num_components=3)
    mixture.fit(binary_images(50), iterations=5)
    samples = mixture.sample(16, seed=3)
    assert samples.shape == (16, 1, 8, 8)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(samples, mixture.sample(16, seed=3))
    assert mixture.sample(0).shape == (0, 1, 8, 8)
    assert mixture.log_prob(torch.zeros(0, 1, 8, 8)).shape == (0,)


def test_bernoulli_mixture_recovers_well_separated_prototypes():
    prototypes = torch.zeros(2, 16)
    prototypes[0, :8] = 0.95
    prototypes[1, 8:] = 0.95
    generator = torch.Generator().manual_seed(0)
    which = torch.arange(400) % 2
    data = (torch.rand(400, 16, generator=generator) < prototypes[which].clamp_min(0.02)).float()
    mixture = G.BernoulliMixture(num_components=2, smoothing=0.1)
    mixture.fit(data, iterations=50, seed=1)
    clusters = mixture.responsibilities(data).argmax(1)
    agreement = (clusters == which).float().mean().item()
    assert max(agreement, 1 - agreement) > 0.98


# ------------------------------------------------------------------------------------------
# Masked convolutions and PixelCNN
# ------------------------------------------------------------------------------------------


def test_pixelcnn_mask_values():
    assert G.pixelcnn_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert G.pixelcnn_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    assert G.pixelcnn_mask(1, "A").tolist() == [[0]]
    mask = G.pixelcnn_mask(7, "A")
    assert mask.sum() == 3 * 7 + 3


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_equals_conv2d_with_masked_weights(device, mask_type):
    torch.manual_seed(0)
    layer = G.MaskedConv2d(3, 5, 5, mask_type).to(device)
    peer = torch.nn.Conv2d(3, 5, 5, padding=2).to(device)
    with torch.no_grad():
        peer.weight.copy_(layer.weight * layer.mask)
        peer.bias.copy_(layer.bias)
    x = torch.randn(2, 3, 7, 9, device=device)
    torch.testing.assert_close(layer(x), peer(x), atol=1e-5, rtol=1e-5)
    assert set(layer.state_dict()) == {"weight", "bias", "mask"}


def _raster_jacobian(model, height=5, width=6):
    """d output[p] / d input[q] for all raster positions p, q: [H*W, H*W]."""
    x = torch.rand(1, 1, height, width, dtype=torch.float64)

    def flat(inputs):
        return model(inputs.reshape(1, 1, height, width)).reshape(-1)

    return torch.autograd.functional.jacobian(flat, x.reshape(-1))


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_stack_is_causal(mask_type):
    torch.manual_seed(1)
    stack = torch.nn.Sequential(
        G.MaskedConv2d(1, 4, 3, mask_type),
        torch.nn.Tanh(),
        G.MaskedConv2d(4, 4, 3, "B"),
        torch.nn.Tanh(),
        G.MaskedConv2d(4, 1, 3, "B"),
    ).double()
    jacobian = _raster_jacobian(stack)
    future = torch.ones_like(jacobian).triu(diagonal=1).bool()  # input after the output pixel
    assert jacobian[future].abs().max() == 0
    diagonal = jacobian.diagonal()
    if mask_type == "A":
        assert diagonal.abs().max() == 0, "type A must hide the pixel itself"
    else:
        assert diagonal.abs().min() > 0, "type B lets a pixel see its own value"


def test_pixelcnn_logits_never_see_the_present_or_future():
    torch.manual_seed(2)
    model = G.PixelCNN(hidden_channels=8, num_layers=3, first_kernel_size=5).double().eval()
    jacobian = _raster_jacobian(model.logits)
    forbidden = torch.ones_like(jacobian).triu(diagonal=0).bool()  # the pixel itself and later
    assert jacobian[forbidden].abs().max() == 0
    # ... and it does use the past: the last pixel depends on its left neighbour.
    assert jacobian[-1, -2].abs() > 0


def test_dependency_matrix_matches_the_jacobian_and_shows_the_blind_spot():
    torch.manual_seed(2)
    model = G.PixelCNN(hidden_channels=8, num_layers=2, first_kernel_size=3).double().eval()
    seen = G.dependency_matrix(lambda x: model.logits(x.double()), image_size=(5, 6))
    assert seen.shape == (30, 30) and seen.dtype == torch.bool
    assert torch.equal(seen, _raster_jacobian(model.logits) != 0)
    assert not seen.triu().any()
    # 3x3 stacks have a blind spot: pixel (3, 2) cannot see (2, 5), up and to the right.
    assert not seen[3 * 6 + 2, 2 * 6 + 5] and seen[3 * 6 + 2, 2 * 6 + 1]
    wide = G.PixelCNN(hidden_channels=8, num_layers=1, first_kernel_size=11).double().eval()
    full = G.dependency_matrix(lambda x: wide.logits(x.double()), image_size=(5, 6))
    assert torch.equal(full, torch.ones(30, 30).tril(-1).bool()), "a wide first kernel sees all"


def test_pixelcnn_log_prob_and_loss_match_bce(device):
    torch.manual_seed(3)
    model = G.PixelCNN(hidden_channels=8, num_layers=1).to(device).eval()
    x = binary_images(4, device=device)
    logits, loss = model(x)
    peer = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(model.log_prob(x), -peer)
    torch.testing.assert_close(loss, peer.mean())
    peer_dist = D.Independent(D.Bernoulli(logits=logits), 3).log_prob(x)
    torch.testing.assert_close(model.log_prob(x), peer_dist, atol=1e-4, rtol=1e-5)


def test_pixelcnn_cropping_rows_below_changes_nothing():
    torch.manual_seed(4)
    model = G.PixelCNN(hidden_channels=8, num_layers=2).eval()
    x = binary_images(3, seed=5)
    full = model.logits(x)
    for rows in (1, 4, 7):
        torch.testing.assert_close(model.logits(x[:, :, :rows]), full[:, :, :rows])


def test_pixelcnn_sampling_shapes_values_and_seed(device):
    torch.manual_seed(5)
    model = G.PixelCNN(hidden_channels=8, num_layers=1, dropout=0.5).to(device)
    samples = model.sample(6, image_size=(5, 4), seed=0)
    assert samples.shape == (6, 1, 5, 4) and samples.device.type == device
    assert set(samples.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(samples, model.sample(6, image_size=(5, 4), seed=0))
    assert model.training, "sample() must restore training mode"
    assert model.sample(0).shape == (0, 1, 8, 8)


def test_pixelcnn_samples_follow_the_model():
    """A PixelCNN whose logits ignore the input samples each pixel with its bias."""
    model = G.PixelCNN(hidden_channels=4, num_layers=0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        model.output[-1].bias.fill_(math.log(0.2 / 0.8))  # p(x = 1) = 0.2
    samples = model.sample(2000, image_size=(2, 2), seed=1)
    assert abs(samples.mean().item() - 0.2) < 0.02


# ------------------------------------------------------------------------------------------
# Autoencoder
# ------------------------------------------------------------------------------------------


def test_autoencoder_shapes_and_loss():
    torch.manual_seed(6)
    model = G.Autoencoder(latent_dim=3, hidden_dim=16)
    x = torch.rand(5, 1, 8, 8)
    reconstruction, loss = model(x)
    assert model.encode(x).shape == (5, 3)
    assert reconstruction.shape == x.shape
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    torch.testing.assert_close(loss, ((reconstruction - x) ** 2).sum((1, 2, 3)).mean())
    target = torch.zeros_like(x)
    torch.testing.assert_close(model(x, target)[1], (reconstruction**2).sum((1, 2, 3)).mean())


# ------------------------------------------------------------------------------------------
# VAE pieces
# ------------------------------------------------------------------------------------------


def test_kl_divergence_matches_torch_distributions(device):
    needs_float64(device)
    torch.manual_seed(7)
    mu = 2 * torch.randn(6, 4, device=device, dtype=torch.float64)
    logvar = 2 * torch.randn(6, 4, device=device, dtype=torch.float64)
    peer = D.kl_divergence(
        D.Normal(mu, torch.exp(0.5 * logvar)), D.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    ).sum(-1)
    torch.testing.assert_close(G.kl_divergence(mu, logvar), peer, atol=1e-12, rtol=1e-10)
    assert G.kl_divergence(mu[:0], logvar[:0]).shape == (0,)
    assert G.kl_divergence(mu.reshape(2, 3, 4), logvar.reshape(2, 3, 4)).shape == (2, 3)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-10, 10), min_size=1, max_size=6),
    st.lists(st.floats(-10, 10), min_size=1, max_size=6),
)
def test_kl_divergence_is_non_negative_and_zero_only_at_the_prior(mus, logvars):
    size = min(len(mus), len(logvars))
    mu = torch.tensor(mus[:size], dtype=torch.float64)[None]
    logvar = torch.tensor(logvars[:size], dtype=torch.float64)[None]
    kl = G.kl_divergence(mu, logvar)
    assert kl.item() >= -1e-12
    assert G.kl_divergence(torch.zeros_like(mu), torch.zeros_like(logvar)).item() == 0


def test_reparameterize_gradients_are_the_closed_form():
    torch.manual_seed(8)
    mu = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    z = G.reparameterize(mu, logvar, generator=generator)
    eps = (z.detach() - mu.detach()) / torch.exp(0.5 * logvar.detach())
    expected_eps = torch.randn(
        5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    torch.testing.assert_close(eps, expected_eps)
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)


def test_reparameterize_passes_gradcheck_and_has_the_right_moments():
    mu = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)

    def fixed_noise(m, lv):
        return G.reparameterize(m, lv, generator=torch.Generator().manual_seed(1))

    assert torch.autograd.gradcheck(fixed_noise, (mu, logvar))
    big_mu = torch.full((200_000, 1), 1.5, dtype=torch.float64)
    big_logvar = torch.full((200_000, 1), math.log(0.25), dtype=torch.float64)
    z = G.reparameterize(big_mu, big_logvar, generator=torch.Generator().manual_seed(2))
    assert abs(z.mean().item() - 1.5) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01


def test_bernoulli_log_likelihood_and_elbo():
    torch.manual_seed(9)
    logits = 5 * torch.randn(4, 1, 8, 8, dtype=torch.float64)
    x = binary_images(4).double()
    peer = D.Independent(D.Bernoulli(logits=logits), 3).log_prob(x)
    torch.testing.assert_close(G.bernoulli_log_likelihood(logits, x), peer)
    mu, logvar = torch.randn(4, 2, dtype=torch.float64), torch.randn(4, 2, dtype=torch.float64)
    torch.testing.assert_close(G.elbo(x, logits, mu, logvar), peer - G.kl_divergence(mu, logvar))
    confident = 1000 * (2 * x - 1)  # sigmoid saturates: the stable form must stay finite
    assert torch.isfinite(G.bernoulli_log_likelihood(confident, x)).all()
    assert G.bernoulli_log_likelihood(logits[:0], x[:0]).shape == (0,)


def test_vae_loss_bounds_and_sampling(device):
    torch.manual_seed(10)
    model = G.VAE(latent_dim=3, hidden_dim=32, beta=2.0).to(device)
    x = binary_images(16, device=device)
    torch.manual_seed(11)
    logits, loss = model(x)
    torch.manual_seed(11)
    mu, logvar = model.encode(x)
    z = G.reparameterize(mu, logvar)
    expected = -G.bernoulli_log_likelihood(model.decode(z), x) + 2.0 * G.kl_divergence(mu, logvar)
    torch.testing.assert_close(loss, expected.mean())
    assert logits.shape == x.shape
    # importance sampling tightens the bound: on average IWAE(100) >= ELBO.
    elbo = model.evidence_lower_bound(x, num_samples=50).mean()
    iwae = model.importance_log_likelihood(x, num_samples=100).mean()
    assert iwae >= elbo
    for mean in (False, True):
        samples = model.sample(7, seed=0, mean=mean)
        assert samples.shape == (7, 1, 8, 8) and samples.device.type == device
        assert 0 <= samples.min() and samples.max() <= 1
        assert torch.equal(samples, model.sample(7, seed=0, mean=mean))
    assert set(model.sample(7, seed=0).unique().tolist()) <= {0.0, 1.0}


# ------------------------------------------------------------------------------------------
# GAN
# ------------------------------------------------------------------------------------------


def test_gan_losses_match_bce_and_closed_forms(device):
    torch.manual_seed(12)
    real, fake = torch.randn(9, device=device), torch.randn(5, device=device)
    bce = F.binary_cross_entropy_with_logits
    torch.testing.assert_close(
        G.discriminator_loss(real, fake),
        bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake)),
    )
    torch.testing.assert_close(G.generator_loss(fake), bce(fake, torch.ones_like(fake)))
    d_fake = torch.sigmoid(fake.double())
    torch.testing.assert_close(
        G.generator_loss(fake.double(), non_saturating=False), torch.log(1 - d_fake).mean()
    )
    torch.testing.assert_close(G.generator_loss(fake.double()), -torch.log(d_fake).mean())
    # the optimum of the minimax game: D = 1/2 everywhere gives 2 log 2
    torch.testing.assert_close(
        G.discriminator_loss(torch.zeros(3), torch.zeros(4)), torch.tensor(2 * math.log(2.0))
    )
    extreme = torch.tensor([1000.0, -1000.0], device=device)
    assert torch.isfinite(G.discriminator_loss(extreme, extreme))
    assert torch.isfinite(G.generator_loss(extreme))


def test_non_saturating_loss_keeps_the_gradient_when_d_rejects_fakes():
    logits = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    (saturating,) = torch.autograd.grad(G.generator_loss(logits, non_saturating=False), logits)
    (non_saturating,) = torch.autograd.grad(G.generator_loss(logits), logits)
    d = torch.sigmoid(logits.detach())
    torch.testing.assert_close(saturating, -d)  # d/dt log(1 - sigmoid(t))
    torch.testing.assert_close(non_saturating, d - 1)  # d/dt -log sigmoid(t)
    assert non_saturating.abs() > 1000 * saturating.abs()


def test_gan_alternates_updates_between_the_two_networks():
    torch.manual_seed(13)
    gan = G.GAN(G.Generator(latent_dim=4, hidden_dim=16), G.Discriminator(hidden_dim=16), 2)
    real = torch.rand(8, 1, 8, 8)
    turns = []
    for _ in range(6):
        gan.zero_grad(set_to_none=True)
        _, loss = gan(real)
        loss.backward()
        g_has = any(p.grad is not None for p in gan.generator.parameters())
        d_has = any(p.grad is not None for p in gan.discriminator.parameters())
        assert g_has != d_has, "exactly one network gets gradients per update"
        turns.append("G" if g_has else "D")
    assert turns == ["D", "D", "G", "D", "D", "G"]
    flags = [p.requires_grad for p in gan.discriminator.parameters()]
    assert flags and all(flags), "the discriminator's parameters are unfrozen afterwards"
    history = gan.loss_history()
    assert len(history["discriminator"]) == 4 and len(history["generator"]) == 2


def test_gan_trains_through_fit():
    torch.manual_seed(14)
    gan = G.GAN(G.Generator(latent_dim=4, hidden_dim=16), G.Discriminator(hidden_dim=16))
    real = torch.rand(32, 1, 8, 8)
    before = [p.detach().clone() for p in gan.generator.parameters()]
    fit(gan, lambda: (real,), steps=4, device="cpu", progress=False, live_plot=False)
    assert gan.updates == 4
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.generator.parameters()))


def test_generator_samples_and_toy_data():
    torch.manual_seed(15)
    generator = G.Generator(latent_dim=5, hidden_dim=16)
    samples = generator.sample(10, seed=0)
    assert samples.shape == (10, 1, 8, 8) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(samples, generator.sample(10, seed=0))
    toy = G.Generator(latent_dim=2, hidden_dim=8, data_shape=(2,), output="identity")
    assert toy.sample(4).shape == (4, 2)
    points, centres = G.ring_of_gaussians(1000, num_modes=8, seed=0)
    assert points.shape == (1000, 2) and centres.shape == (8, 2)
    counts = G.mode_coverage(points, centres, max_distance=0.3)
    assert counts.sum() == 1000 and (counts > 80).all()
    collapsed = centres[:1].expand(50, 2)
    assert G.mode_coverage(collapsed, centres, 0.3).tolist() == [50] + [0] * 7


# ------------------------------------------------------------------------------------------
# Judging samples
# ------------------------------------------------------------------------------------------


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The reference FID formula (as in pytorch-fid), with SciPy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


@pytest.mark.parametrize("n, m, f", [(200, 150, 6), (500, 300, 32), (40, 60, 3)])
def test_frechet_distance_matches_scipy(device, n, m, f):
    needs_float64(device)
    generator = np.random.default_rng(n + f)
    mixing = generator.normal(size=(f, f))
    a = generator.normal(size=(n, f)) @ mixing
    b = 0.8 * generator.normal(size=(m, f)) @ mixing + 0.3
    ours = G.frechet_distance(
        torch.tensor(a, device=device, dtype=torch.float32), torch.tensor(b, device=device)
    )
    assert ours.dim() == 0
    assert ours.item() == pytest.approx(scipy_frechet(a, b), rel=1e-5, abs=1e-6)


def test_frechet_distance_properties():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(300, 5, generator=generator, dtype=torch.float64)
    b = torch.randn(200, 5, generator=generator, dtype=torch.float64)
    assert G.frechet_distance(a, a).item() == pytest.approx(0.0, abs=1e-9)
    torch.testing.assert_close(G.frechet_distance(a, b), G.frechet_distance(b, a))
    shift = torch.tensor([1.0, 2.0, 0.0, 0.0, -1.0], dtype=torch.float64)
    assert G.frechet_distance(a, a + shift).item() == pytest.approx(6.0, rel=1e-9)
    # rank-deficient covariances (fewer samples than features) still agree with SciPy
    small = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    other = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    assert G.frechet_distance(small, other).item() == pytest.approx(
        scipy_frechet(small.numpy(), other.numpy()), rel=1e-4, abs=1e-6
    )


def test_classifier_scores_and_class_counts():
    torch.manual_seed(16)
    classifier = G.DigitClassifier(feature_dim=16).eval()
    images, reference = torch.rand(40, 1, 8, 8), torch.rand(30, 1, 8, 8)
    labels = torch.arange(40) % 10
    scores = G.classifier_scores(classifier, images, reference, labels, batch_size=16)
    with torch.no_grad():
        probs = torch.softmax(classifier(images)[0], dim=1).double()
        features_a, features_b = classifier.features(images), classifier.features(reference)
    marginal = probs.mean(0)
    kl = (probs * (probs.log() - marginal.log())).sum(1)
    assert scores["confidence"] == pytest.approx(probs.max(1).values.mean().item(), rel=1e-6)
    assert scores["inception_score"] == pytest.approx(kl.mean().exp().item(), rel=1e-6)
    assert 1.0 <= scores["inception_score"] <= 10.0
    assert scores["frechet_distance"] == pytest.approx(
        G.frechet_distance(features_a, features_b).item(), rel=1e-5, abs=1e-7
    )
    assert scores["accuracy"] == pytest.approx((probs.argmax(1) == labels).double().mean().item())
    counts = G.predicted_class_counts(classifier, images, batch_size=7)
    assert counts.shape == (10,) and counts.sum() == 40
    assert counts.tolist() == torch.bincount(probs.argmax(1), minlength=10).tolist()


def test_digit_classifier_learns_through_fit():
    from course_lib.data import load_digits

    torch.manual_seed(17)
    digits = load_digits()
    classifier = G.DigitClassifier()
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(digits.train_images, digits.train_labels),
        batch_size=64,
        shuffle=True,
    )
    fit(classifier, data, steps=60, lr=3e-3, device="cpu", progress=False, live_plot=False)
    scores = G.classifier_scores(classifier, digits.test_images, labels=digits.test_labels)
    assert scores["accuracy"] > 0.8


def test_resample_by_class_follows_bayes_rule():
    samples = torch.arange(6.0)[:, None]
    class_probs = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1], [0, 1], [0.5, 0.5]])
    out = G.resample_by_class(samples, class_probs, num_per_class=400, seed=0)
    assert out.shape == (2, 400, 1)
    assert set(out[0, :, 0].tolist()) <= {0.0, 1.0, 5.0}
    assert set(out[1, :, 0].tolist()) <= {2.0, 3.0, 4.0, 5.0}
    share_of_item_5 = (out[0, :, 0] == 5.0).float().mean().item()
    assert abs(share_of_item_5 - 0.5 / 2.5) < 0.06  # p(x=5 | y=0) = 0.5 / (1 + 1 + 0.5)
    assert G.resample_by_class(samples, class_probs, 0).shape == (2, 0, 1)


# ------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------


def test_arguments_are_checked_at_the_call_not_at_first_use():
    with pytest.raises(ValueError, match="batch_size"):
        G.shuffled_batches(torch.zeros(4, 2), batch_size=0)  # before any batch is drawn


def test_scores_move_images_to_the_classifiers_dtype():
    torch.manual_seed(19)
    classifier = G.DigitClassifier(feature_dim=8).eval()
    images = torch.rand(10, 1, 8, 8)
    single = G.classifier_scores(classifier, images, images[:5], batch_size=4)
    double = G.classifier_scores(classifier, images.double(), images[:5].double(), batch_size=4)
    for name, value in single.items():
        assert double[name] == pytest.approx(value, rel=1e-6, abs=1e-6)


def test_mixture_rejects_a_different_image_shape():
    mixture = G.BernoulliMixture(2)
    mixture.fit(binary_images(10), iterations=2)
    with pytest.raises(ValueError, match="fitted on"):
        mixture.log_prob(torch.zeros(3, 1, 4, 4))


def test_sampling_uses_the_model_dtype():
    torch.manual_seed(18)
    pixelcnn = G.PixelCNN(hidden_channels=4, num_layers=1).double()
    assert pixelcnn.sample(2, image_size=(3, 3), seed=0).dtype == torch.float64
    assert G.VAE(latent_dim=2, hidden_dim=8).double().sample(3, seed=0).dtype == torch.float64
    generator = G.Generator(latent_dim=2, hidden_dim=8).double()
    assert generator.sample(3, seed=0).dtype == torch.float64
    gan = G.GAN(generator, G.Discriminator(hidden_dim=8).double())
    assert gan(torch.rand(4, 1, 8, 8, dtype=torch.float64))[1].dtype == torch.float64
