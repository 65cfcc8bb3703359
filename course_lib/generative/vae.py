"""The variational autoencoder: the reparameterisation trick, the KL term, the ELBO, ``VAE``."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from course_lib.generative._common import (
    MAX_STEPS,
    MAX_WIDTH,
    check_count,
    check_data,
    check_data_shape,
    check_elements,
    check_latent,
    check_targets,
    cpu_generator,
    eval_mode,
    first_parameter,
    mlp,
)
from course_lib.validation import check_bool, check_float, check_int, check_tensor


def _check_gaussian(mu: object, logvar: object) -> Tuple[Tensor, Tensor]:
    """``mu`` and ``logvar`` [..., Z]: floating, one shape, one dtype, one device."""
    mu = check_tensor("mu", mu, "..., Z", dtype="floating")
    logvar = check_tensor("logvar", logvar, dtype=mu.dtype, device=mu.device)
    if logvar.shape != mu.shape:
        raise ValueError(
            f"logvar must have the shape of mu, {list(mu.shape)}, got {list(logvar.shape)}"
        )
    return mu, logvar


def reparameterize(
    mu: Tensor, logvar: Tensor, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Sample z = mu + sigma * eps with eps ~ N(0, I) and sigma = exp(logvar / 2).

    ``mu`` and ``logvar`` have the same shape, e.g. [B, Z]; so does z. The noise is the
    only random part and does not depend on the parameters, so gradients flow from z to
    ``mu`` (dz/dmu = 1) and to ``logvar`` (dz/dlogvar = sigma * eps / 2). ``generator``
    must live on the device of ``mu``.
    """
    mu, logvar = _check_gaussian(mu, logvar)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per item: [..., Z] -> [...].

    Closed form: -1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)), which is >= 0 and
    0 only when mu = 0 and logvar = 0. (Mind the leading minus sign.)
    """
    mu, logvar = _check_gaussian(mu, logvar)
    # The same sum written as 1/2 * (mu^2 + sigma^2 - 1 - log sigma^2): exactly +0.0 at the prior.
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) of binary data, summed over everything but the batch: [B, ...] -> [B].

    Equals sum(x * log(sigmoid(l)) + (1 - x) * log(1 - sigmoid(l))), computed stably from
    the logits (no log(0) for confident predictions).
    """
    logits = check_tensor("logits", logits, dtype="floating")
    if logits.dim() == 0:
        raise ValueError("logits must have shape [B, ...] (one row per item), got a scalar []")
    x = check_tensor("x", x, dtype="real", device=logits.device)
    if x.shape != logits.shape:
        raise ValueError(
            f"x must have the shape of logits, {list(logits.shape)}, got {list(x.shape)}"
        )
    terms = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x.to(logits.dtype), reduction="none"
    )
    return -(terms.flatten(1).sum(1) if terms.dim() > 1 else terms)


def elbo(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The evidence lower bound per item [B], estimated with one sample z ~ q(z | x):

    ``log p(x | z) - KL(q(z | x) || p(z))`` with a Bernoulli decoder (``logits`` [B, ...]
    decoded from z) and the Gaussian encoder ``mu``, ``logvar`` [B, Z]. In nats;
    ``elbo <= log p(x)``.
    """
    log_likelihood = bernoulli_log_likelihood(logits, x)
    kl = kl_divergence(mu, logvar)
    if kl.shape != log_likelihood.shape:
        raise ValueError(
            f"mu must have shape [B, Z] with B = {len(log_likelihood)} (from logits), "
            f"got {list(mu.shape)}"
        )
    return log_likelihood - kl


def _log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


class VAE(nn.Module):
    """A variational autoencoder with a Gaussian encoder and a Bernoulli decoder (MLPs).

    The encoder gives ``mu``, ``logvar`` [B, Z] of q(z | x); the decoder gives the logits
    ``[B, *data_shape]`` of p(x | z); the prior is p(z) = N(0, I). The training loss is
    ``-log p(x | z) + beta * KL`` per image, averaged over the batch (``beta = 1``: the
    negative ELBO).
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 8, 8),
        latent_dim: int = 16,
        hidden_dim: int = 256,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        self.data_shape = check_data_shape(data_shape)
        self.latent_dim = check_int("latent_dim", latent_dim, 1, MAX_WIDTH)
        hidden_dim = check_int("hidden_dim", hidden_dim, 1, MAX_WIDTH)
        self.beta = check_float("beta", beta, 0.0)
        dims = math.prod(self.data_shape)
        check_elements("prod(data_shape) x hidden_dim", dims * hidden_dim)
        self.encoder = mlp([dims, hidden_dim, hidden_dim, 2 * self.latent_dim])
        self.decoder = mlp([self.latent_dim, hidden_dim, hidden_dim, dims])

    def encode(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``(mu, logvar)``, each [B, Z], of q(z | x) for the data ``x`` ``[B, *data_shape]``."""
        x = check_data("x", x, self.data_shape, self)
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, -1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Logits ``[B, *data_shape]`` of the Bernoulli decoder p(x | z) for ``z`` [B, Z]."""
        z = check_latent(z, self.latent_dim, self)
        return self.decoder(z).reshape(-1, *self.data_shape)

    def forward(self, x: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(logits, loss)`` with loss = mean of ``-log p(targets | z) + beta * KL``."""
        mu, logvar = self.encode(x)
        targets = check_targets(targets, x)
        logits = self.decode(reparameterize(mu, logvar))
        reconstruction = -bernoulli_log_likelihood(logits, targets)
        return logits, (reconstruction + self.beta * kl_divergence(mu, logvar)).mean()

    @torch.no_grad()
    def evidence_lower_bound(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """The ELBO of each image [B] in nats, averaging ``num_samples`` draws of z."""
        num_samples = check_int("num_samples", num_samples, 1, MAX_STEPS)
        with eval_mode(self):
            mu, logvar = self.encode(x)
            total = torch.zeros(len(x), device=x.device, dtype=x.dtype)
            for _ in range(num_samples):
                total += elbo(x, self.decode(reparameterize(mu, logvar)), mu, logvar)
        return total / num_samples

    @torch.no_grad()
    def importance_log_likelihood(self, x: Tensor, num_samples: int = 100) -> Tensor:
        """An estimate of log p(x) per image [B] by importance sampling with q(z | x).

        ``log mean_s p(x | z_s) p(z_s) / q(z_s | x)``: a lower bound in expectation that
        tightens as ``num_samples`` grows (the IWAE bound); with one sample it is the ELBO.
        """
        num_samples = check_int("num_samples", num_samples, 1, MAX_STEPS)
        with eval_mode(self):
            mu, logvar = self.encode(x)
            check_elements("num_samples x images x values per image",
                           num_samples * len(x) * math.prod(self.data_shape))  # fmt: skip
            # [S, B, Z]: all samples in one batch, so there is no Python loop over them.
            z = reparameterize(
                mu.expand(num_samples, *mu.shape), logvar.expand(num_samples, *mu.shape)
            )
            logits = self.decode(z.flatten(0, 1))
            log_px_z = bernoulli_log_likelihood(logits, x.repeat(num_samples, *[1] * (x.dim() - 1)))
            log_weights = (
                log_px_z.reshape(num_samples, len(x))
                + _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
                - _log_normal(z, mu, logvar)
            )
            return torch.logsumexp(log_weights, dim=0) - math.log(num_samples)

    @torch.no_grad()
    def sample(self, num_samples: int, seed: Optional[int] = None, mean: bool = False) -> Tensor:
        """Images ``[N, *data_shape]`` from z ~ N(0, I) through the decoder only.

        ``mean=True`` returns the decoder's pixel probabilities (smooth, "blurry" images);
        otherwise every pixel is drawn from its Bernoulli distribution (binary images).
        """
        dims = math.prod(self.data_shape)
        num_samples = check_count("num_samples", num_samples, dims + self.latent_dim)
        generator = cpu_generator(seed)
        mean = check_bool("mean", mean)
        parameter = first_parameter(self)
        device, dtype = parameter.device, parameter.dtype
        z = torch.randn(num_samples, self.latent_dim, generator=generator).to(device, dtype)
        uniform = torch.rand(num_samples, *self.data_shape, generator=generator).to(device, dtype)
        with eval_mode(self):
            probs = torch.sigmoid(self.decode(z))
        return probs if mean else (uniform < probs).to(dtype)
