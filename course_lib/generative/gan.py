"""The GAN: generator, discriminator, their losses, alternating updates, and a 2-D toy."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.generative._common import (
    MAX_WIDTH,
    check_count,
    check_data,
    check_data_shape,
    check_elements,
    check_latent,
    cpu_generator,
    eval_mode,
    first_parameter,
    mlp,
)
from course_lib.validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_tensor,
)


class _LeakyReLU(nn.LeakyReLU):
    """LeakyReLU with slope 0.2, the usual choice in GANs (keeps gradients for x < 0)."""

    def __init__(self) -> None:
        super().__init__(0.2)


class Generator(nn.Module):
    """G: noise z [B, Z] -> data ``[B, *data_shape]`` (an MLP).

    ``output="sigmoid"`` squashes to [0, 1] (images); ``"identity"`` leaves the values
    unbounded (for the 2-D toy data).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        hidden_dim: int = 256,
        data_shape: Sequence[int] = (1, 8, 8),
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.latent_dim = check_int("latent_dim", latent_dim, 1, MAX_WIDTH)
        hidden_dim = check_int("hidden_dim", hidden_dim, 1, MAX_WIDTH)
        self.data_shape = check_data_shape(data_shape)
        self.output = check_choice("output", output, ("sigmoid", "identity"))
        dims = math.prod(self.data_shape)
        check_elements("prod(data_shape) x hidden_dim", dims * hidden_dim)
        self.net = mlp([self.latent_dim, hidden_dim, hidden_dim, dims], activation=_LeakyReLU)

    def forward(self, z: Tensor) -> Tensor:
        out = self.net(check_latent(z, self.latent_dim, self))
        out = torch.sigmoid(out) if self.output == "sigmoid" else out
        return out.reshape(-1, *self.data_shape)

    def sample_latent(self, num_samples: int, seed: Optional[int] = None) -> Tensor:
        """Noise z ~ N(0, I) [N, Z] on the generator's device."""
        num_samples = check_count("num_samples", num_samples, self.latent_dim)
        z = torch.randn(num_samples, self.latent_dim, generator=cpu_generator(seed))
        parameter = first_parameter(self)
        return z.to(parameter.device, parameter.dtype)

    @torch.no_grad()
    def sample(self, num_samples: int, seed: Optional[int] = None) -> Tensor:
        """Samples G(z) ``[N, *data_shape]`` for fresh noise (eval mode)."""
        check_count("num_samples", num_samples, math.prod(self.data_shape))
        with eval_mode(self):
            return self(self.sample_latent(num_samples, seed))


class Discriminator(nn.Module):
    """D: data ``[B, *data_shape]`` -> one logit per item [B] (real: high, fake: low).

    D(x) = sigmoid(logit) is the probability that x is real. An MLP with LeakyReLU and
    dropout (a discriminator that memorises the training set gives the generator
    useless gradients).
    """

    def __init__(
        self, data_shape: Sequence[int] = (1, 8, 8), hidden_dim: int = 256, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.data_shape = check_data_shape(data_shape)
        hidden_dim = check_int("hidden_dim", hidden_dim, 1, MAX_WIDTH)
        dropout = check_float("dropout", dropout, 0.0, 1.0, include_maximum=False)
        dims = math.prod(self.data_shape)
        check_elements("prod(data_shape) x hidden_dim", dims * hidden_dim)
        self.net = nn.Sequential(
            nn.Linear(dims, hidden_dim),
            _LeakyReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            _LeakyReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(check_data("x", x, self.data_shape, self).flatten(1)).squeeze(1)


def _check_logits(name: str, logits: object, like: Optional[Tensor] = None) -> Tensor:
    """Logits [B], B >= 1; with ``like``, in its dtype and on its device."""
    if like is None:
        logits = check_tensor(name, logits, "B", dtype="floating")
    else:
        logits = check_tensor(name, logits, "B", dtype=like.dtype, device=like.device)
    if logits.numel() == 0:
        raise ValueError(f"{name} must hold at least one logit, got shape {list(logits.shape)}")
    return logits


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's loss (a scalar): binary cross-entropy with real = 1, fake = 0.

    ``mean(-log D(x_real)) + mean(-log(1 - D(G(z))))`` for logits [B] and [B'], written
    with softplus (-log sigmoid(t) = softplus(-t), -log(1 - sigmoid(t)) = softplus(t)) so
    it stays finite for confident logits. Minimising it maximises D's side of the minimax
    value E log D(x) + E log(1 - D(G(z))).
    """
    real_logits = _check_logits("real_logits", real_logits)
    fake_logits = _check_logits("fake_logits", fake_logits, like=real_logits)
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, non_saturating: bool = True) -> Tensor:
    """The generator's loss (a scalar) from the discriminator's logits on fakes [B].

    ``non_saturating=True`` (used in practice): ``mean(-log D(G(z)))`` = mean(softplus(-t)),
    whose gradient is large while the generator is still bad. ``False``: the minimax form
    ``mean(log(1 - D(G(z))))`` = mean(-softplus(t)), which saturates when D rejects the fakes.
    """
    fake_logits = _check_logits("fake_logits", fake_logits)
    if check_bool("non_saturating", non_saturating):
        return F.softplus(-fake_logits).mean()
    return -F.softplus(fake_logits).mean()


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Build the graph without gradients for ``module``'s parameters (restored afterwards)."""
    flags = [parameter.requires_grad for parameter in module.parameters()]
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags):
            parameter.requires_grad_(flag)


class GAN(nn.Module):
    """A generator and a discriminator trained by alternating updates through ``fit``.

    Each call of ``forward(real)`` in training mode is one update of one network:
    ``discriminator_steps`` discriminator updates, then one generator update, and again.
    The returned loss only has gradients for the network whose turn it is (the fakes are
    detached for D's turn; D's parameters are frozen for G's turn), so a single optimizer
    over all parameters updates exactly that network: parameters without a gradient are
    skipped. ``loss_history`` keeps both losses for plotting.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        discriminator_steps: int = 1,
        non_saturating: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(generator, Generator):
            raise TypeError(f"generator must be a Generator, got {type(generator).__name__}")
        if not isinstance(discriminator, Discriminator):
            raise TypeError(
                f"discriminator must be a Discriminator, got {type(discriminator).__name__}"
            )
        if generator.data_shape != discriminator.data_shape:
            raise ValueError(
                f"discriminator must read the data the generator makes, of shape "
                f"{generator.data_shape}; it reads {discriminator.data_shape}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.discriminator_steps = check_int("discriminator_steps", discriminator_steps, 1, 1000)
        self.non_saturating = check_bool("non_saturating", non_saturating)
        self.updates = 0
        self._losses: Dict[str, List[Tensor]] = {"discriminator": [], "generator": []}

    def forward(self, real: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(fakes ``[B, *data_shape]``, loss)`` for this update; ``targets`` is ignored."""
        real = check_data("real", real, self.generator.data_shape, self.generator)
        if len(real) == 0:
            raise ValueError(f"real must hold at least one item [B, ...], got {list(real.shape)}")
        z = torch.randn(len(real), self.generator.latent_dim, device=real.device, dtype=real.dtype)
        discriminator_turn = (
            self.updates % (self.discriminator_steps + 1) < self.discriminator_steps
        )
        if discriminator_turn:
            fakes = self.generator(z).detach()
            loss = discriminator_loss(self.discriminator(real), self.discriminator(fakes))
        else:
            fakes = self.generator(z)
            with _frozen(self.discriminator):
                loss = generator_loss(self.discriminator(fakes), self.non_saturating)
        if self.training and torch.is_grad_enabled():
            self.updates += 1
            name = "discriminator" if discriminator_turn else "generator"
            self._losses[name].append(loss.detach())
        return fakes, loss

    def loss_history(self) -> Dict[str, List[float]]:
        """The recorded losses of both networks, in update order."""
        return {
            name: torch.stack(values).float().cpu().tolist() if values else []
            for name, values in self._losses.items()
        }


def ring_of_gaussians(
    num_samples: int, num_modes: int = 8, radius: float = 2.0, std: float = 0.05, seed: int = 0
) -> Tuple[Tensor, Tensor]:
    """2-D toy data: equal Gaussian blobs on a circle, the classic test of mode collapse.

    Returns ``(points [N, 2], centres [K, 2])``.
    """
    num_samples = check_count("num_samples", num_samples, 2)
    num_modes = check_int("num_modes", num_modes, 1, MAX_WIDTH)
    radius = check_float("radius", radius, 0.0)
    std = check_float("std", std, 0.0)
    generator = cpu_generator(seed)
    angles = torch.arange(num_modes) * (2 * math.pi / num_modes)
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    which = torch.randint(num_modes, (num_samples,), generator=generator)
    points = centres[which] + std * torch.randn(num_samples, 2, generator=generator)
    return points, centres


def mode_coverage(samples: Tensor, centres: Tensor, max_distance: float) -> Tensor:
    """How many samples [N, D] fall within ``max_distance`` of each centre [K, D]: [K].

    A mode with (almost) no samples is a mode the generator dropped.
    """
    sizes: Dict[str, int] = {}
    samples = check_tensor("samples", samples, "N, D", dtype="real", sizes=sizes, finite=True)
    centres = check_tensor("centres", centres, "K, D", dtype="real", sizes=sizes, finite=True)
    if len(centres) == 0:
        raise ValueError("centres must hold at least one centre [K, D], got K = 0")
    max_distance = check_float("max_distance", max_distance, 0.0)
    distances = torch.cdist(samples.float(), centres.float().to(samples.device))
    nearest = distances.min(dim=1)
    hits = nearest.indices[nearest.values <= max_distance]
    return torch.bincount(hits, minlength=len(centres))
