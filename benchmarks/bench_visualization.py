"""Rows for the visualisation chapter: PCA, nearest neighbours and t-SNE against
scikit-learn, and the chapter's quality bars (kNN on features vs pixels, t-SNE quality)."""

from __future__ import annotations

import time
from typing import Iterator, List

import numpy as np
import torch
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.neighbors import NearestNeighbors

from benchmarks.harness import Measure, SpeedCase, quality_row, speed_row
from course_lib import visualization as vis
from course_lib.train import fit


def _digits(count: int) -> np.ndarray:
    return (sklearn_digits().data[:count] / 16.0).astype(np.float32)


def _gaussian_mixture(count: int, dim: int = 50, centers: int = 12, seed: int = 0) -> np.ndarray:
    """``count`` points from ``centers`` anisotropic Gaussian clusters in ``dim`` dimensions."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 6, size=(centers, dim))
    scales = rng.uniform(0.5, 2.0, size=(centers, dim))
    labels = rng.integers(0, centers, size=count)
    return (means[labels] + scales[labels] * rng.normal(size=(count, dim))).astype(np.float32)


@speed_row("pca", peer="sklearn.decomposition.PCA", target="")
def pca_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    sizes = [(500, 64, 10)] if quick else [(1797, 64, 10), (10000, 256, 50), (5000, 784, 50)]
    for n, d, k in sizes:
        data = _digits(n) if d == 64 and n <= 1797 else _gaussian_mixture(n, d, seed=1)
        x = torch.from_numpy(data).to(device)
        yield SpeedCase(
            f"N={n}, D={d}, k={k} (explained variance ratio)",
            ours=lambda x=x, k=k: vis.pca(x, k).explained_variance_ratio.cpu().double(),
            peer=lambda data=data, k=k: torch.from_numpy(
                PCA(n_components=k).fit(data).explained_variance_ratio_.astype(np.float64)
            ),
        )


@speed_row("nearest_neighbors", peer="sklearn.neighbors.NearestNeighbors", target="")
def neighbour_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    sizes = [(200, 1000, 64, 5)] if quick else [(1797, 1797, 64, 5), (5000, 20000, 128, 10)]
    for queries, bank_size, d, k in sizes:
        bank_np = _gaussian_mixture(bank_size, d, seed=2)
        query_np = _gaussian_mixture(queries, d, seed=3)
        bank, query = torch.from_numpy(bank_np).to(device), torch.from_numpy(query_np).to(device)

        def peer(bank_np=bank_np, query_np=query_np, k=k) -> torch.Tensor:
            distances, _ = NearestNeighbors(n_neighbors=k).fit(bank_np).kneighbors(query_np)
            return torch.from_numpy(distances)

        yield SpeedCase(
            f"Q={queries}, M={bank_size}, D={d}, k={k} (fit + query; distances)",
            ours=lambda bank=bank, query=query, k=k: vis.nearest_neighbors(query, bank, k)[0].cpu(),
            peer=peer,
        )


def _time(function, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return result, time.perf_counter() - start


@quality_row("visualization", "tsne vs sklearn TSNE (Barnes-Hut)")
def tsne_quality(device: torch.device, quick: bool) -> List[Measure]:
    """One run each (t-SNE is too slow to repeat 15 times): time, trustworthiness and KL."""
    cases = [("digits", _digits(300 if quick else 1797))]
    if not quick:
        cases.append(("12-cluster mixture, D=50", _gaussian_mixture(5000)))
    n_iter = 400 if quick else 1000  # the first 250 steps are early exaggeration
    measures: List[Measure] = []
    for name, data in cases:
        n = len(data)
        x = torch.from_numpy(data).to(device)
        vis.tsne(x[:50], perplexity=10.0, n_iter=5)  # warm-up (CUDA context, kernels)
        states: List[vis.TSNEState] = []
        ours, ours_seconds = _time(
            lambda x=x, states=states: vis.tsne(
                x, n_iter=n_iter, callback=states.append, callback_every=n_iter
            ),
            device,
        )
        reference = TSNE(max_iter=n_iter, random_state=0)
        theirs, theirs_seconds = _time(
            lambda reference=reference, data=data: reference.fit_transform(data),
            torch.device("cpu"),
        )
        ours_trust = trustworthiness(data, ours.cpu().numpy(), n_neighbors=5)
        theirs_trust = trustworthiness(data, theirs, n_neighbors=5)
        digits_bar = name == "digits" and not quick
        time_bar = "<= 0.1" if device.type == "cuda" and not quick else ""
        measures += [
            Measure(f"{name} N={n}: trustworthiness (k=5), ours", ours_trust,
                    bar=">= 0.95" if digits_bar else ""),
            Measure(f"{name} N={n}: trustworthiness (k=5), sklearn", theirs_trust),
            Measure(f"{name} N={n}: trustworthiness ours - sklearn", ours_trust - theirs_trust,
                    bar=">= -0.01" if digits_bar else ""),
            Measure(f"{name} N={n}: final KL, ours (exact)", states[-1].kl_divergence),
            Measure(f"{name} N={n}: final KL, sklearn (Barnes-Hut estimate)",
                    float(reference.kl_divergence_)),
            Measure(f"{name} N={n}: seconds, ours on {device.type}", ours_seconds),
            Measure(f"{name} N={n}: seconds, sklearn on CPU", theirs_seconds),
            Measure(f"{name} N={n}: time ratio ours / sklearn", ours_seconds / theirs_seconds,
                    bar=time_bar, notes="target <= 0.1 on a GPU; no target on CPU"),
        ]  # fmt: skip
    return measures


#: The chapter's recipe for the hard-digits CNN (full mode), shared with the notebook.
HARD_DIGITS_STEPS, HARD_DIGITS_BATCH, HARD_DIGITS_LR = 800, 64, 3e-3


@quality_row("visualization", "kNN on CNN features vs raw pixels (hard digits)")
def knn_quality(device: torch.device, quick: bool) -> List[Measure]:
    torch.manual_seed(0)
    data = vis.load_hard_digits(train_copies=1 if quick else 3, test_copies=1 if quick else 2)
    model = vis.SmallCNN(in_channels=1, num_classes=10)
    steps = 30 if quick else HARD_DIGITS_STEPS
    optimizer = torch.optim.AdamW(model.parameters(), lr=HARD_DIGITS_LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, HARD_DIGITS_LR, total_steps=steps)
    batches = vis.random_batches(
        data.train_images, data.train_labels, batch_size=HARD_DIGITS_BATCH, seed=0
    )
    fit(model, batches, steps=steps, optimizer=optimizer, scheduler=schedule, device=device,
        progress=False, live_plot=False)  # fmt: skip
    train_features = vis.extract_features(model, data.train_images)
    test_features = vis.extract_features(model, data.test_images)
    labels = data.test_labels.to(device)
    train_labels = data.train_labels.to(device)

    def accuracy(query: torch.Tensor, bank: torch.Tensor, k: int) -> float:
        predicted = vis.knn_classify(query.to(device), bank.to(device), train_labels, k=k)
        return float((predicted == labels).float().mean())

    pixel = max(
        accuracy(data.test_images.flatten(1), data.train_images.flatten(1), k) for k in (1, 5)
    )
    feature = accuracy(test_features, train_features, 5)
    classifier = float((model.predict(data.test_images.to(device)) == labels).float().mean())
    return [
        Measure("test accuracy of the CNN classifier", classifier),
        Measure("kNN accuracy on pixels (best of k=1, 5)", pixel),
        Measure("kNN accuracy on penultimate features (k=5)", feature),
        Measure("kNN gap features - pixels (percentage points)", 100 * (feature - pixel),
                bar=">= 20" if not quick else ""),
    ]  # fmt: skip
