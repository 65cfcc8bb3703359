"""Judging samples: a digit classifier, the Fréchet distance, Bayes' rule."""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.generative._common import (
    MAX_WIDTH,
    check_count,
    cpu_generator,
    eval_mode,
    first_parameter,
    precise_dtype,
)
from course_lib.validation import check_finite, check_int, check_like, check_tensor


class DigitClassifier(nn.Module):
    """A small CNN for 8x8 digits [B, 1, 8, 8] -> logits [B, K]; ``features`` gives [B, F].

    Trained on real digits, it serves as the judge of generated ones: its confidence,
    the inception score and the Fréchet distance on its features.
    """

    def __init__(self, num_classes: int = 10, feature_dim: int = 64, image_size: int = 8) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, 2, MAX_WIDTH)
        self.feature_dim = check_int("feature_dim", feature_dim, 1, MAX_WIDTH)
        image_size = check_int("image_size", image_size, 2, 256)
        if image_size % 2:
            raise ValueError(f"image_size must be even (one 2x2 pooling), got {image_size}")
        self.image_size = image_size
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(64 * (image_size // 2) ** 2, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(feature_dim, num_classes))

    @property
    def num_classes(self) -> int:
        return self.head[-1].out_features

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features [B, F] of images ``x`` [B, 1, H, W]."""
        size = self.image_size
        x = check_tensor("x", x, f"B, 1, {size}, {size}", dtype="floating")
        return self.body(check_like("x", x, first_parameter(self)))

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """``(logits [B, K], loss)``: cross-entropy with ``targets`` [B], or None without."""
        logits = self.head(self.features(x))
        if targets is None:
            return logits, None
        targets = check_tensor(
            "targets", targets, "B", dtype="integer", sizes={"B": len(x)}, device=logits.device
        )
        if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= self.num_classes):
            raise ValueError(
                f"targets must be class indices in [0, {self.num_classes}), got values from "
                f"{int(targets.min())} to {int(targets.max())}"
            )
        return logits, F.cross_entropy(logits, targets)


def _covariance(name: str, features: Tensor) -> Tuple[Tensor, Tensor]:
    """Mean [F] and unbiased covariance [F, F] of the rows of features [N, F] (float64)."""
    mean = features.mean(0)
    centred = features - mean
    covariance = centred.T @ centred / (len(features) - 1)
    if not bool(torch.isfinite(covariance).all()):  # cheaper than testing every feature
        check_finite(name, features)
        raise ValueError(f"{name} is too large: its covariance overflows float64")
    return mean, covariance


def _trace_sqrt_product(cov_a: Tensor, cov_b: Tensor) -> Tensor:
    """``tr (S_a S_b)^(1/2)``: the sum of the square roots of the eigenvalues of ``S_a S_b``.

    With a Cholesky factor ``S_a = L L^T``, ``L^T S_b L`` is symmetric with the same
    eigenvalues (no complex numbers, no matrix square root). A singular ``S_a`` (fewer
    points than features) has no Cholesky factor: ``S_a^(1/2) S_b S_a^(1/2)`` from an
    eigendecomposition of ``S_a`` plays the same role.
    """
    factor, info = torch.linalg.cholesky_ex(cov_a)
    if int(info) != 0:
        values, vectors = torch.linalg.eigh(cov_a)
        factor = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    middle = factor.T @ cov_b @ factor
    return torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()


def frechet_distance(features_a: Tensor, features_b: Tensor) -> Tensor:
    """Fréchet distance between Gaussians fitted to two feature sets [N, F] and [M, F].

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with unbiased covariances:
    the FID of Heusel et al. when the features come from an Inception network; here they
    come from the digit classifier. The trace of the square root is the sum of the square
    roots of the eigenvalues of ``S_a S_b`` (see ``_trace_sqrt_product``). Computed in
    float64; returns a 0-dim float64 tensor.
    """
    sizes: Dict[str, int] = {}
    features_a = check_tensor("features_a", features_a, "N, F", dtype="real", sizes=sizes)
    features_b = check_tensor("features_b", features_b, "M, F", dtype="real", sizes=sizes,
                              device=features_a.device)  # fmt: skip
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        if len(features) < 2:
            raise ValueError(f"{name} needs at least 2 rows for a covariance, got {len(features)}")
    # float64 for the decompositions; MPS has neither float64 nor eigh, so use the CPU there.
    device = torch.device("cpu") if features_a.device.type == "mps" else features_a.device
    mean_a, cov_a = _covariance("features_a", features_a.to(device, torch.float64))
    mean_b, cov_b = _covariance("features_b", features_b.to(device, torch.float64))
    trace_sqrt = _trace_sqrt_product(cov_a, cov_b)
    distance = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return distance.clamp_min(0)


def _check_classifier(classifier: object) -> DigitClassifier:
    if not isinstance(classifier, DigitClassifier):
        raise TypeError(f"classifier must be a DigitClassifier, got {type(classifier).__name__}")
    return classifier


def _check_images(name: str, images: object, classifier: DigitClassifier, minimum: int) -> Tensor:
    """Images [N, 1, S, S] (S = the classifier's image size), at least ``minimum`` of them."""
    size = classifier.image_size
    images = check_tensor(name, images, f"N, 1, {size}, {size}", dtype="floating")
    if len(images) < minimum:
        raise ValueError(f"{name} needs at least {minimum} images, got shape {list(images.shape)}")
    return images


@torch.no_grad()
def _classify(
    classifier: DigitClassifier, images: Tensor, batch_size: int
) -> Tuple[Tensor, Tensor]:
    """Class probabilities [N, K] and features [N, F], in batches, in eval mode."""
    parameter = first_parameter(classifier)
    probs, features = [], []
    with eval_mode(classifier):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(parameter.device, parameter.dtype)
            feature = classifier.features(batch)
            probs.append(torch.softmax(classifier.head(feature), dim=1))
            features.append(feature)
    if not probs:
        return images.new_zeros(0, classifier.num_classes), images.new_zeros(
            0, classifier.feature_dim
        )
    return torch.cat(probs), torch.cat(features)


def predicted_class_counts(
    classifier: DigitClassifier, images: Tensor, batch_size: int = 512
) -> Tensor:
    """How many of the images [N, 1, H, W] the classifier puts in each class: [K]."""
    classifier = _check_classifier(classifier)
    images = _check_images("images", images, classifier, 0)
    probs, _ = _classify(classifier, images, check_int("batch_size", batch_size, 1))
    return torch.bincount(probs.argmax(1), minlength=classifier.num_classes)


def classifier_scores(
    classifier: DigitClassifier,
    images: Tensor,
    reference_images: Optional[Tensor] = None,
    labels: Optional[Tensor] = None,
    batch_size: int = 512,
) -> Dict[str, float]:
    """Sample-quality scores of ``images`` [N, 1, H, W] from a classifier of real digits.

    - ``confidence``: mean max_y p(y | x), high when the images look like clear digits;
    - ``inception_score``: ``exp(E_x KL(p(y | x) || p(y)))``, between 1 and K, high when the
      images are both clear and spread over all classes;
    - ``frechet_distance`` (with ``reference_images`` [M, 1, H, W], M >= 2): between the
      classifier's features of the images and of the reference (lower is better);
    - ``accuracy`` (with ``labels`` [N]): the fraction classified as their label.

    The images are moved, in batches of ``batch_size``, to the classifier's device and dtype.
    """
    classifier = _check_classifier(classifier)
    images = _check_images("images", images, classifier, 2)
    if reference_images is not None:
        _check_images("reference_images", reference_images, classifier, 2)
    if labels is not None:
        check_tensor("labels", labels, "N", dtype="integer", sizes={"N": len(images)})
    batch_size = check_int("batch_size", batch_size, 1)
    probs, features = _classify(classifier, images, batch_size)
    probs = probs.to(precise_dtype(probs.device))
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-30).log() - marginal.clamp_min(1e-30).log())).sum(1)
    scores = {
        "confidence": float(probs.max(1).values.mean()),
        "inception_score": float(kl.mean().exp()),
    }
    if reference_images is not None:
        _, reference_features = _classify(classifier, reference_images, batch_size)
        scores["frechet_distance"] = float(frechet_distance(features, reference_features))
    if labels is not None:
        correct = probs.argmax(1).cpu() == labels.cpu()
        scores["accuracy"] = float(correct.double().mean())
    return scores


def resample_by_class(
    samples: Tensor, class_probs: Tensor, num_per_class: int, seed: Optional[int] = None
) -> Tensor:
    """Turn samples of p(x) into samples of p(x | y) with Bayes' rule: [K, n, ...].

    ``p(x | y) = p(y | x) p(x) / p(y)``: given ``samples`` [N, ...] drawn from p(x) and a
    classifier's ``class_probs`` [N, K] = p(y | x), drawing sample i with probability
    proportional to p(y | x_i) gives (approximately, as N grows) samples of p(x | y)
    (sampling-importance-resampling).
    """
    samples = check_tensor("samples", samples)
    if samples.dim() == 0 or len(samples) == 0:
        raise ValueError(f"samples must have shape [N, ...] with N >= 1, got {list(samples.shape)}")
    class_probs = check_tensor("class_probs", class_probs, "N, K", dtype="real",
                               sizes={"N": len(samples)}, finite=True)  # fmt: skip
    weights = class_probs.detach().double().cpu().T  # [K, N]: row y is proportional to p(x | y)
    if (weights < 0).any() or (weights.sum(1) <= 0).any():
        raise ValueError("class_probs must be non-negative with a positive total for every class")
    per_item = math.prod(samples.shape[1:]) * class_probs.shape[1]
    num_per_class = check_count("num_per_class", num_per_class, per_item)
    if num_per_class == 0:
        return samples[:0].unsqueeze(0).expand(len(weights), *samples[:0].shape).clone()
    generator = cpu_generator(seed)
    index = torch.multinomial(weights, num_per_class, replacement=True, generator=generator)
    return samples[index.to(samples.device)]
