"""Rows for the generative-models chapter.

Speed: training throughput of every model (one optimiser step on a batch of 64 digits;
images per second = 64 / time), PixelCNN's masked convolutions against the same network
built from plain ``nn.Conv2d`` with pre-masked weights, pixel-by-pixel sampling against one
forward pass, and the VAE's KL term and the Fréchet distance against their peers
(``torch.distributions`` and the SciPy formula used by FID implementations).

Quality: the chapter's bars, trained with the recipes of ``book/generative.ipynb`` (keep
the two in sync): on binarised test digits the PixelCNN must beat a 50-component
Bernoulli mixture fitted by EM, and the VAE's negative ELBO must be within 15% of it;
classifier-based scores of VAE and GAN samples are reported with real digits as reference.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Callable, Dict, Iterator, List

import numpy as np
import scipy.linalg
import torch
from torch import distributions as D
from torch import nn

from benchmarks.harness import Measure, SpeedCase, quality_row, speed_row
from course_lib import generative as gen
from course_lib.data import load_digits
from course_lib.train import fit

BATCH = 64


def _digit_batch(device: torch.device, binary: bool) -> torch.Tensor:
    images = load_digits().train_images[:BATCH].to(device)
    return gen.binarize(images) if binary else images


def _training_step(model: nn.Module, batch: tuple, lr: float = 1e-3) -> Callable[[], None]:
    """One optimiser step of ``model`` on ``batch`` (what ``fit`` does per step, minus logging)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def step() -> None:
        _, loss = model(*batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _chapter_pixelcnn(device: torch.device) -> gen.PixelCNN:
    return gen.PixelCNN(hidden_channels=32, num_layers=2, first_kernel_size=15, dropout=0.5).to(
        device
    )


def _unmasked_copy(model: gen.PixelCNN) -> gen.PixelCNN:
    """The same network with every MaskedConv2d replaced by an nn.Conv2d holding W * mask."""
    peer = copy.deepcopy(model)
    for name, module in list(peer.named_modules()):
        if isinstance(module, gen.MaskedConv2d):
            conv = nn.Conv2d(
                module.in_channels, module.out_channels, module.kernel_size,
                padding=module.padding, bias=module.bias is not None,
            ).to(module.weight.device)  # fmt: skip
            with torch.no_grad():
                conv.weight.copy_(module.weight * module.mask)
                conv.bias.copy_(module.bias)
            parent = peer.get_submodule(name.rsplit(".", 1)[0]) if "." in name else peer
            setattr(parent, name.rsplit(".", 1)[-1], conv)
    return peer


class _PlainLogits(nn.Module):
    """PixelCNN.logits without the input checks, over any conv modules (for the peer)."""

    def __init__(self, model: gen.PixelCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, targets=None):
        model = self.model
        h = model.input_conv(torch.cat([x, torch.ones_like(x)], dim=1))
        for layer in model.layers:
            h = h + layer(model.dropout(torch.relu(h)))
        logits = model.output(h)
        return logits, -gen.bernoulli_log_likelihood(logits, x).mean()


# ------------------------------------------------------------------------------------------
# Speed
# ------------------------------------------------------------------------------------------


@speed_row("generative: PixelCNN forward", peer="same net, pre-masked nn.Conv2d", target="<= 1.2x")
def pixelcnn_forward_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    torch.manual_seed(0)
    model = _chapter_pixelcnn(device).eval()
    peer = _PlainLogits(_unmasked_copy(model)).eval()
    x = _digit_batch(device, binary=True)
    with torch.no_grad():
        yield SpeedCase(f"batch {BATCH}, 8x8", ours=lambda: model(x)[0], peer=lambda: peer(x)[0])


@speed_row(
    "generative: PixelCNN training step", peer="same net, pre-masked nn.Conv2d", target="<= 1.3x"
)
def pixelcnn_training_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    torch.manual_seed(0)
    model = _chapter_pixelcnn(device)
    peer = _PlainLogits(_unmasked_copy(model))
    batch = (_digit_batch(device, binary=True),)
    yield SpeedCase(
        f"batch {BATCH} (images/s = {BATCH}000 / ms)",
        ours=_training_step(model, batch),
        peer=_training_step(peer, batch),
        compare=False,
    )


@speed_row("generative: PixelCNN sampling", peer="one forward pass, same batch", target="")
def pixelcnn_sampling_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    torch.manual_seed(0)
    model = _chapter_pixelcnn(device).eval()
    count = 16 if quick else BATCH
    x = _digit_batch(device, binary=True)[:count]
    with torch.no_grad():
        yield SpeedCase(
            f"{count} images of 8x8 (64 sequential passes)",
            ours=lambda: model.sample(count, seed=0),
            peer=lambda: model.logits(x),
            compare=False,
        )


@speed_row("generative: training step (other models)", peer="", target="")
def training_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    torch.manual_seed(0)
    grey, binary = _digit_batch(device, binary=False), _digit_batch(device, binary=True)
    labels = load_digits().train_labels[:BATCH].to(device)
    models = {
        "Autoencoder (Z=8)": (gen.Autoencoder(latent_dim=8, hidden_dim=128), (grey,)),
        "VAE (Z=16)": (gen.VAE(latent_dim=16, hidden_dim=256), (binary,)),
        "GAN (one D and one G update)": (
            gen.GAN(gen.Generator(16, 256), gen.Discriminator(hidden_dim=256)),
            (grey,),
        ),
        "DigitClassifier": (gen.DigitClassifier(), (grey, labels)),
    }
    for name, (model, batch) in models.items():
        step = _training_step(model.to(device), batch)
        if isinstance(model, gen.GAN):
            single = step

            def step(single=single) -> None:  # D update + G update
                single()
                single()

        yield SpeedCase(f"{name}, batch {BATCH}", ours=step, compare=False)


@speed_row("generative: BernoulliMixture EM", peer="", target="")
def mixture_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    images = gen.binarize(load_digits().train_images).to(device)
    iterations = 10 if quick else 100
    yield SpeedCase(
        f"K=50, N={len(images)}, {iterations} EM iterations",
        ours=lambda: gen.BernoulliMixture(50).fit(images, iterations=iterations),
        compare=False,
    )


@speed_row("generative: kl_divergence", peer="torch.distributions.kl_divergence", target="<= 1.0x")
def kl_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    generator = torch.Generator().manual_seed(0)
    for batch, latent in [(256, 16)] if quick else [(256, 16), (4096, 64), (65536, 128)]:
        mu = torch.randn(batch, latent, generator=generator).to(device)
        logvar = torch.randn(batch, latent, generator=generator).to(device)

        def peer(mu=mu, logvar=logvar) -> torch.Tensor:
            q = D.Normal(mu, torch.exp(0.5 * logvar))
            return D.kl_divergence(q, D.Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(-1)

        yield SpeedCase(
            f"B={batch}, Z={latent}",
            ours=lambda mu=mu, logvar=logvar: gen.kl_divergence(mu, logvar),
            peer=peer,
        )


def _scipy_frechet(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)
    return torch.tensor(float(value), dtype=torch.float64)


@speed_row("generative: frechet_distance", peer="NumPy + scipy.linalg.sqrtm", target="<= 1.0x")
def frechet_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    rng = np.random.default_rng(0)
    for n, features in [(500, 16)] if quick else [(2000, 64), (10000, 256), (5000, 512)]:
        mixing = rng.normal(size=(features, features)) / np.sqrt(features)
        a = rng.normal(size=(n, features)) @ mixing
        b = 0.9 * rng.normal(size=(n, features)) @ mixing + 0.1
        ta, tb = torch.tensor(a, device=device), torch.tensor(b, device=device)
        yield SpeedCase(
            f"N=M={n}, F={features}",
            ours=lambda ta=ta, tb=tb: gen.frechet_distance(ta, tb).cpu(),
            peer=lambda a=a, b=b: _scipy_frechet(a, b),
        )


# ------------------------------------------------------------------------------------------
# Quality: the chapter's recipes (book/generative.ipynb), full or quick sizes
# ------------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _trained(device_name: str, quick: bool) -> Dict[str, object]:
    """Train the chapter's models once per (device, quick) and return what the rows need."""
    device = torch.device(device_name)
    steps = {
        "classifier_epochs": 1 if quick else 12,
        "em": 20 if quick else 300,
        "pixelcnn": 20 if quick else 1500,
        "vae": 40 if quick else 3000,
        "gan": 40 if quick else 6000,
    }
    quiet = {"device": device, "progress": False, "live_plot": False}
    torch.manual_seed(0)
    digits = load_digits()
    train_grey, test_grey = digits.train_images.to(device), digits.test_images.to(device)
    train_binary, test_binary = gen.binarize(train_grey), gen.binarize(test_grey)

    # Baseline: 50-component mixture, smoothing picked on a validation split of the training set.
    order = torch.randperm(len(train_binary), generator=torch.Generator().manual_seed(0))
    fit_part, val_part = train_binary[order[200:]], train_binary[order[:200]]
    smoothings = [0.1, 1.0] if quick else [0.01, 0.05, 0.1, 0.2, 0.5, 1.0]
    val_nats = {}
    for smoothing in smoothings:
        candidate = gen.BernoulliMixture(50, smoothing=smoothing)
        candidate.fit(fit_part, iterations=steps["em"], seed=0)
        val_nats[smoothing] = -candidate.log_prob(val_part).mean().item()
    baseline = gen.BernoulliMixture(50, smoothing=min(val_nats, key=val_nats.get))
    baseline.fit(train_binary, iterations=steps["em"], seed=0)

    classifier = gen.DigitClassifier()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(
            torch.cat([digits.train_images, gen.binarize(digits.train_images)]),
            torch.cat([digits.train_labels, digits.train_labels]),
        ),
        batch_size=64,
        shuffle=True,
    )
    fit(classifier, loader, epochs=steps["classifier_epochs"], lr=2e-3, **quiet)

    pixelcnn = gen.PixelCNN(hidden_channels=32, num_layers=2, first_kernel_size=15, dropout=0.5)
    optimizer = torch.optim.AdamW(pixelcnn.parameters(), lr=2e-3, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps["pixelcnn"])
    fit(pixelcnn, gen.shuffled_batches(train_binary, 64, seed=0), steps=steps["pixelcnn"],
        optimizer=optimizer, scheduler=schedule, **quiet)  # fmt: skip

    vae = gen.VAE(latent_dim=16, hidden_dim=256)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=steps["vae"])
    fit(vae, gen.shuffled_batches(train_binary, 64, seed=2), steps=steps["vae"],
        optimizer=optimizer, scheduler=schedule, **quiet)  # fmt: skip

    torch.manual_seed(0)
    gan = gen.GAN(gen.Generator(16, 256), gen.Discriminator(hidden_dim=256, dropout=0.2))
    optimizer = torch.optim.Adam(gan.parameters(), lr=1e-3, betas=(0.5, 0.999))
    fit(gan, gen.shuffled_batches(train_grey, 64, seed=4), steps=steps["gan"],
        optimizer=optimizer, **quiet)  # fmt: skip

    with torch.no_grad():
        nats = {
            "mixture": -baseline.log_prob(test_binary).mean().item(),
            "pixelcnn": -pixelcnn.log_prob(test_binary).mean().item(),
            "vae": -vae.evidence_lower_bound(test_binary, num_samples=10).mean().item(),
            "vae_iwae": -vae.importance_log_likelihood(test_binary, 50 if quick else 500)
            .mean()
            .item(),
        }
    return {
        "nats": nats,
        "classifier": classifier,
        "samples": {
            "VAE samples": (vae.sample(2000, seed=5), test_binary),
            "VAE means": (vae.sample(2000, seed=5, mean=True), test_grey),
            "GAN": (gan.generator.sample(2000, seed=5), test_grey),
            "real train digits (grey)": (train_grey, test_grey),
            "real train digits (binary)": (train_binary, test_binary),
        },
        "test": (test_grey, digits.test_labels),
    }


@quality_row("generative", "generative: density models on binarised digits (test NLL)")
def density_quality(device: torch.device, quick: bool) -> List[Measure]:
    nats = _trained(str(device), quick)["nats"]
    bits = {name: gen.nats_to_bits_per_dim(value, 64) for name, value in nats.items()}
    return [
        Measure("50-mixture NLL (nats/image)", nats["mixture"], notes="EM baseline"),
        Measure("PixelCNN NLL (nats/image)", nats["pixelcnn"]),
        Measure("VAE -ELBO (nats/image)", nats["vae"]),
        Measure("VAE importance-sampled NLL (nats/image)", nats["vae_iwae"]),
        Measure("50-mixture NLL (bits/dim)", bits["mixture"]),
        Measure("PixelCNN NLL (bits/dim)", bits["pixelcnn"]),
        Measure("VAE -ELBO (bits/dim)", bits["vae"]),
        Measure(
            "PixelCNN NLL / mixture NLL",
            nats["pixelcnn"] / nats["mixture"],
            bar="<= 1.0",
            notes="the PixelCNN must beat the baseline",
        ),
        Measure(
            "VAE -ELBO / mixture NLL",
            nats["vae"] / nats["mixture"],
            bar="<= 1.15",
            notes="within 15% of the baseline",
        ),
    ]


@quality_row("generative", "generative: sample quality (digit-classifier scores)")
def sample_quality(device: torch.device, quick: bool) -> List[Measure]:
    trained = _trained(str(device), quick)
    classifier = trained["classifier"]
    test_grey, test_labels = trained["test"]
    accuracy = gen.classifier_scores(classifier, test_grey, labels=test_labels.to(device))
    measures = [Measure("classifier accuracy on real test digits", accuracy["accuracy"])]
    for name, (images, reference) in trained["samples"].items():
        scores = gen.classifier_scores(classifier, images, reference)
        measures += [
            Measure(f"{name}: confidence", scores["confidence"]),
            Measure(f"{name}: inception score", scores["inception_score"]),
            Measure(f"{name}: Frechet distance to test digits", scores["frechet_distance"]),
        ]
    return measures
