"""The classical baseline: a mixture of independent Bernoullis, fitted by EM."""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from course_lib.generative._common import (
    MAX_STEPS,
    MAX_WIDTH,
    check_count,
    check_elements,
    cpu_generator,
    precise_dtype,
)
from course_lib.validation import check_float, check_int, check_tensor


def _check_binary_like(name: str, images: object) -> Tensor:
    """Images [N, ...] of pixel values in [0, 1] (binary, or probabilities of a pixel being on)."""
    images = check_tensor(name, images, dtype="floating", finite=True)
    if images.dim() < 2:
        raise ValueError(
            f"{name} must have shape [N, ...] (one item per row), got {list(images.shape)}"
        )
    if images.numel() and (float(images.min()) < 0 or float(images.max()) > 1):
        raise ValueError(
            f"{name} must hold pixel values in [0, 1], got values from {float(images.min()):g} "
            f"to {float(images.max()):g}"
        )
    return images


class BernoulliMixture(nn.Module):
    """``p(x) = sum_k pi_k prod_d Bernoulli(x_d; theta_kd)``, fitted by EM.

    Each component is a "prototype" image of pixel probabilities ``theta`` [K, D]; the
    mixture both clusters the data (``responsibilities``) and gives an exact density
    (``log_prob``). ``smoothing`` is the pseudo-count of a Beta(1 + s, 1 + s) prior on every
    pixel probability (MAP-EM): it keeps probabilities away from exactly 0 or 1, so an
    unseen pixel value does not make the test log-likelihood minus infinity.
    """

    def __init__(self, num_components: int = 50, smoothing: float = 0.1) -> None:
        super().__init__()
        self.num_components = check_int("num_components", num_components, 1, MAX_WIDTH)
        self.smoothing = check_float("smoothing", smoothing, 0.0)
        self.data_shape: Tuple[int, ...] = ()
        self.register_buffer("log_weights", torch.empty(0))  # [K]
        self.register_buffer("probs", torch.empty(0))  # [K, D]

    @property
    def fitted(self) -> bool:
        return self.probs.numel() > 0

    def _flat(self, name: str, x: Tensor) -> Tensor:
        x = _check_binary_like(name, x)
        if not self.fitted:
            raise RuntimeError("call fit(images) before using the mixture")
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{name} must have shape [B, {', '.join(map(str, self.data_shape))}] "
                f"(the shape it was fitted on), got {list(x.shape)}"
            )
        return x.flatten(1).to(self.probs)

    def _joint_log_prob(self, x: Tensor) -> Tensor:
        """log pi_k + log p(x | k) for every item and component: [B, K]."""
        log_p, log_q = self.probs.log(), torch.log1p(-self.probs)
        return x @ log_p.T + (1.0 - x) @ log_q.T + self.log_weights

    def fit(self, images: Tensor, iterations: int = 100, seed: int = 0) -> List[float]:
        """Fit to binary ``images`` [N, ...] by EM; returns the mean log-likelihood per step.

        Starts from random responsibilities (seeded), then alternates the M-step (weights
        and smoothed pixel probabilities from the responsibilities) and the E-step
        (responsibilities from Bayes' rule). Each step cannot lower the penalised
        likelihood, so the returned curve rises (up to the tiny effect of the prior).
        """
        images = _check_binary_like("images", images)
        if images.shape[0] == 0:
            raise ValueError(
                f"images must have shape [N, ...] with N >= 1, got {list(images.shape)}"
            )
        iterations = check_int("iterations", iterations, 1, MAX_STEPS)
        generator = cpu_generator(seed)
        x = images.flatten(1)
        check_elements("images x num_components", x.shape[0] * self.num_components)
        check_elements("the pixels of an image x num_components", x.shape[1] * self.num_components)
        dtype = precise_dtype(images.device)
        x = x.to(dtype)
        count = len(x)
        resp = torch.rand(count, self.num_components, generator=generator, dtype=dtype)
        resp = (resp / resp.sum(1, keepdim=True)).to(x.device)
        self.data_shape = tuple(images.shape[1:])
        history = []
        for _ in range(iterations):
            # M-step: the weighted counts, smoothed by the Beta prior's pseudo-counts.
            totals = resp.sum(0)  # [K]
            self.probs = (resp.T @ x + self.smoothing) / (totals[:, None] + 2 * self.smoothing)
            self.probs = self.probs.clamp(1e-12, 1 - 1e-12)  # only matters when smoothing = 0
            self.log_weights = (totals / count).clamp_min(1e-300).log()
            # E-step: responsibilities r_nk = p(k | x_n), and the log-likelihood on the way.
            joint = self._joint_log_prob(x)
            log_likelihood = torch.logsumexp(joint, dim=1, keepdim=True)
            resp = (joint - log_likelihood).exp()
            history.append(log_likelihood.mean())
        return torch.stack(history).tolist()

    def log_prob(self, images: Tensor) -> Tensor:
        """Exact log-likelihood in nats of each image [B, ...]: [B]."""
        x = self._flat("images", images)
        return torch.logsumexp(self._joint_log_prob(x), dim=1).to(images.dtype)

    def responsibilities(self, images: Tensor) -> Tensor:
        """p(component | image) for each image [B, ...]: [B, K] (rows sum to 1)."""
        x = self._flat("images", images)
        return torch.softmax(self._joint_log_prob(x), dim=1).to(images.dtype)

    def sample(self, num_samples: int, seed: Optional[int] = None) -> Tensor:
        """Draw binary images [N, ...]: pick a component, then every pixel independently."""
        if not self.fitted:
            raise RuntimeError("call fit(images) before sampling")
        num_samples = check_count("num_samples", num_samples, self.probs.shape[1])
        generator = cpu_generator(seed)
        # Inverse-CDF sampling of the component (works for num_samples = 0, unlike multinomial).
        cumulative = self.log_weights.exp().double().cpu().cumsum(0)
        uniform_k = torch.rand(num_samples, generator=generator, dtype=torch.float64)
        components = torch.searchsorted(cumulative, uniform_k * cumulative[-1], right=True)
        components = components.clamp_max(self.num_components - 1)
        uniform = torch.rand(num_samples, self.probs.shape[1], generator=generator)
        pixels = uniform < self.probs.float().cpu()[components]
        return pixels.float().reshape(num_samples, *self.data_shape).to(self.probs.device)
