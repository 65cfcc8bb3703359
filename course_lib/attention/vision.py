"""Self-attention inside a CNN (SAGAN-style ``SelfAttention2d``) and a small classifier that
uses it.

Shape letters: ``B`` batch, ``C`` channels, ``Hf``/``Wf`` feature map height and width,
``Hc``/``Wc`` image height and width, ``K`` classes.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention.core import scaled_dot_product_attention
from course_lib.attention.maps import RecordsAttention
from course_lib.validation import (
    check_bool,
    check_like,
    check_size,
    check_tensor,
    check_token_ids,
)

__all__ = ["SelfAttention2d", "SelfAttentionClassifier"]


class SelfAttention2d(RecordsAttention, nn.Module):
    """Self-attention over the positions of a feature map, with a residual connection.

    The Hf x Wf grid is a set of Hf * Wf vectors of C features. 1x1 convolutions give
    queries and keys (``key_channels``, default C / 8 as in SAGAN, at least 1) and values
    (C); every position attends to every position; a final 1x1 convolution maps back to C
    channels and the result is added to the input, scaled by ``gamma`` (initialised to 0,
    so the block starts as the identity; Zhang et al.).

    ``forward(x [B, C, Hf, Wf], return_weights=False)`` returns y [B, C, Hf, Wf] and, with
    ``return_weights``, also the weights [B, Hf * Wf, Hf * Wf] (row = query position).
    """

    def __init__(self, channels: int, key_channels: Optional[int] = None) -> None:
        super().__init__()
        self.channels = check_size("channels", channels)
        key_channels = max(channels // 8, 1) if key_channels is None else key_channels
        key_channels = check_size("key_channels", key_channels)
        self.query = nn.Conv2d(channels, key_channels, 1)
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(
        self, x: Tensor, return_weights: bool = False
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        check_tensor("x", x, f"B, {self.channels}, Hf, Wf", dtype="floating")
        check_like("x", x, self.gamma)
        return_weights = check_bool("return_weights", return_weights)
        batch, channels, height, width = x.shape

        def as_vectors(feature_map: Tensor) -> Tensor:  # [B, C', Hf, Wf] -> [B, Hf * Wf, C']
            return feature_map.flatten(2).transpose(1, 2)

        q, k, v = as_vectors(self.query(x)), as_vectors(self.key(x)), as_vectors(self.value(x))
        weights = None
        if return_weights or self.recording:
            attended, weights = scaled_dot_product_attention(q, k, v)
            self.keep(weights)
        else:
            attended = F.scaled_dot_product_attention(q, k, v)
        attended = attended.transpose(1, 2).reshape(batch, channels, height, width)
        y = x + self.gamma * self.out(attended)
        return (y, weights) if return_weights else y


class SelfAttentionClassifier(nn.Module):
    """Two 3x3 convolutions, optionally ``SelfAttention2d``, global average pooling, a linear
    classifier: images [B, 1, Hc, Wc] -> logits [B, num_classes].

    ``forward(images, labels=None) -> (logits, loss or None)``.
    """

    def __init__(self, num_classes: int = 10, channels: int = 32, attention: bool = True) -> None:
        super().__init__()
        self.num_classes = check_size("num_classes", num_classes)
        channels = check_size("channels", channels)
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.attention = SelfAttention2d(channels) if check_bool("attention", attention) else None
        self.classifier = nn.Linear(channels, num_classes)

    def feature_map(self, images: Tensor) -> Tensor:
        """Features [B, C, Hc, Wc] after the convolutions (and self-attention)."""
        check_tensor("images", images, "B, 1, Hc, Wc", dtype="floating")
        check_like("images", images, self.classifier.weight)
        features = self.features(images)
        return self.attention(features) if self.attention is not None else features

    def forward(
        self, images: Tensor, labels: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        logits = self.classifier(self.feature_map(images).mean(dim=(2, 3)))
        if labels is None:
            return logits, None
        check_token_ids("labels", labels, self.num_classes, f"{images.shape[0]}", cpu_only=True)
        return logits, F.cross_entropy(logits, labels)
