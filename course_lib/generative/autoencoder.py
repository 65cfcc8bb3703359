"""An MLP autoencoder: data -> code z -> reconstruction."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from course_lib.generative._common import (
    MAX_WIDTH,
    check_data,
    check_data_shape,
    check_elements,
    check_latent,
    check_targets,
    mlp,
)
from course_lib.validation import check_int


class Autoencoder(nn.Module):
    """An MLP autoencoder: encoder x ``[B, *data_shape]`` -> z [B, Z], decoder z -> x_hat.

    The decoder ends in a sigmoid (data in [0, 1]); the loss is the squared error
    ``||x_hat - x||^2`` summed over the pixels of an image, averaged over the batch.
    """

    def __init__(
        self, data_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8, hidden_dim: int = 128
    ) -> None:
        super().__init__()
        self.data_shape = check_data_shape(data_shape)
        self.latent_dim = check_int("latent_dim", latent_dim, 1, MAX_WIDTH)
        hidden_dim = check_int("hidden_dim", hidden_dim, 1, MAX_WIDTH)
        dims = math.prod(self.data_shape)
        check_elements("prod(data_shape) x hidden_dim", dims * hidden_dim)
        self.encoder = mlp([dims, hidden_dim, hidden_dim, self.latent_dim])
        self.decoder = mlp([self.latent_dim, hidden_dim, hidden_dim, dims])

    def encode(self, x: Tensor) -> Tensor:
        """Codes z [B, Z] of the data ``x`` ``[B, *data_shape]``."""
        return self.encoder(check_data("x", x, self.data_shape, self).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        """Reconstructions ``[B, *data_shape]`` in [0, 1] of the codes ``z`` [B, Z]."""
        z = check_latent(z, self.latent_dim, self)
        return torch.sigmoid(self.decoder(z)).reshape(-1, *self.data_shape)

    def forward(self, x: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(reconstruction, loss)``; the loss compares with ``targets`` (default ``x``)."""
        reconstruction = self.decode(self.encode(x))
        targets = check_targets(targets, x)
        loss = (reconstruction - targets).pow(2).flatten(1).sum(1).mean()
        return reconstruction, loss
