"""The Vision Transformer (ViT): an image as a sequence of patch embeddings.

Shape letters: ``B`` batch, ``C``/``H``/``W`` image channels, height and width, ``P`` patch
size, ``N`` patches per image, ``D`` model width, ``K`` classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import attention_maps
from course_lib.transformer.blocks import FromConfig, TransformerBlock
from course_lib.validation import (
    check_bool,
    check_elements,
    check_float,
    check_like,
    check_size,
    check_tensor,
    check_token_ids,
)

__all__ = ["ViT", "ViTConfig", "embed_patches", "patchify"]


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images [B, C, H, W] into non-overlapping P x P patches: [B, N, C * P * P].

    Patches are numbered row by row (N = (H / P) * (W / P)); each is flattened channel
    first, ``(c, i, j)``, the order of a ``Conv2d`` weight [D, C, P, P], so that a linear
    layer on the patches equals a convolution with kernel size and stride P.
    """
    check_tensor("images", images, "B, C, H, W")
    patch_size = check_size("patch_size", patch_size)
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"images must have a height and width ({height}x{width}) that are multiples of "
            f"patch_size={patch_size}"
        )
    rows, cols = height // patch_size, width // patch_size
    patches = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # [B, rows, cols, C, P, P]
    return patches.reshape(batch, rows * cols, channels * patch_size * patch_size)


def embed_patches(
    images: Tensor,
    patch_size: int,
    weight: Tensor,
    bias: Optional[Tensor],
    cls_token: Tensor,
    position_embedding: Tensor,
) -> Tensor:
    """The ViT input sequence: ``[CLS]`` then the embedded patches, plus positions.

    Args:
        images: [B, C, H, W]. patch_size: P, dividing H and W.
        weight: patch projection [D, C * P * P]. bias: [D] or None.
        cls_token: the learnable ``[CLS]`` vector, [D] (or [1, 1, D]).
        position_embedding: learnable positions [N + 1, D] (or [1, N + 1, D]).

    Returns:
        [B, N + 1, D]: row 0 is ``cls_token + position_embedding[0]``, row 1 + n is
        ``weight @ patch_n + bias + position_embedding[1 + n]``.
    """
    check_tensor("images", images, "B, C, H, W", dtype="floating")
    patches = patchify(images, patch_size)  # [B, N, C*P*P]
    batch, count, features = patches.shape
    check_tensor("weight", weight, f"D, {features}", dtype="floating")
    dim = weight.shape[0]
    if bias is not None:
        check_tensor("bias", bias, f"{dim}", dtype="floating")
    check_tensor("cls_token", cls_token, "...", dtype="floating")
    check_tensor("position_embedding", position_embedding, "...", dtype="floating")
    if cls_token.numel() != dim:
        raise ValueError(f"cls_token must have D = {dim} values, got {list(cls_token.shape)}")
    cls_token = cls_token.reshape(-1)
    if position_embedding.numel() != (count + 1) * dim:
        raise ValueError(
            f"position_embedding must have shape [N + 1, D] = [{count + 1}, {dim}] (N = {count} "
            f"patches of images {list(images.shape)}), got {list(position_embedding.shape)}"
        )
    position_embedding = position_embedding.reshape(count + 1, dim)
    for name, tensor in (("weight", weight), ("cls_token", cls_token),
                         ("position_embedding", position_embedding)):  # fmt: skip
        check_like(name, tensor, images, what="the images")
    tokens = F.linear(patches, weight, bias)  # [B, N, D]
    cls = cls_token.expand(batch, 1, dim)
    return torch.cat([cls, tokens], dim=1) + position_embedding


@dataclass
class ViTConfig:
    """Sizes and options of ``ViT``. ``dim_feedforward`` None means ``4 * d_model``;
    ``init_std`` is the standard deviation of the (truncated normal) position embeddings
    at initialisation (ViT: 0.02); ``mlp_head`` picks the pre-training head (one tanh
    hidden layer) over the single linear layer used for fine-tuning."""

    image_size: int = 8
    patch_size: int = 2
    in_channels: int = 1
    num_classes: int = 10
    d_model: int = 64
    nhead: int = 4
    num_layers: int = 4
    dim_feedforward: Optional[int] = None
    dropout: float = 0.1
    mlp_head: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "in_channels", "num_classes", "d_model",
                     "nhead"):  # fmt: skip
            check_size(name, getattr(self, name))
        check_size("num_layers", self.num_layers, maximum=10_000)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"patch_size ({self.patch_size}) must divide image_size ({self.image_size})"
            )
        if self.d_model % self.nhead:
            raise ValueError(f"nhead ({self.nhead}) must divide d_model ({self.d_model})")
        if self.dim_feedforward is None:
            self.dim_feedforward = 4 * self.d_model
        check_size("dim_feedforward", self.dim_feedforward)
        check_float("dropout", self.dropout, 0.0, 1.0, include_maximum=False)
        check_float("init_std", self.init_std, 0.0, include_minimum=False)
        check_bool("mlp_head", self.mlp_head)
        patches = (self.image_size // self.patch_size) ** 2
        check_elements("(patches + in_channels x patch_size^2) x d_model + num_layers x "
                       "d_model x dim_feedforward", (patches + self.in_channels
                       * self.patch_size**2) * self.d_model + self.num_layers * 2
                       * self.d_model * (self.dim_feedforward + 2 * self.d_model))  # fmt: skip


class ViT(FromConfig, nn.Module):
    """The Vision Transformer: an image as a sequence of patch embeddings.

    Images [B, C, H, W] are cut into N patches of P x P pixels, each linearly embedded
    (``patch_embedding``, equal to a ``Conv2d`` with kernel and stride P), a learnable
    ``[CLS]`` vector goes in front, learned ``position_embedding`` [1, N + 1, D] is
    added, pre-LN GELU blocks process the sequence, and a LayerNorm and an MLP ``head``
    (one tanh hidden layer, as in the ViT paper's pre-training; ``mlp_head=False`` gives
    the single linear layer it uses for fine-tuning) turn the ``[CLS]`` output into
    class logits.

    ``forward(images, targets=None)`` returns ``(logits [B, K], loss)`` (cross-entropy).
    The sizes live in a ``ViTConfig`` (``model.config``; ``ViT.from_config(config)``).
    """

    def __init__(
        self,
        image_size: int = ViTConfig.image_size,
        patch_size: int = ViTConfig.patch_size,
        in_channels: int = ViTConfig.in_channels,
        num_classes: int = ViTConfig.num_classes,
        d_model: int = ViTConfig.d_model,
        nhead: int = ViTConfig.nhead,
        num_layers: int = ViTConfig.num_layers,
        dim_feedforward: Optional[int] = ViTConfig.dim_feedforward,
        dropout: float = ViTConfig.dropout,
        mlp_head: bool = ViTConfig.mlp_head,
        init_std: float = ViTConfig.init_std,
    ) -> None:
        super().__init__()
        self.config = config = ViTConfig(
            image_size, patch_size, in_channels, num_classes, d_model, nhead, num_layers,
            dim_feedforward, dropout, mlp_head, init_std,
        )  # fmt: skip
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.num_classes = num_classes
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embedding = nn.Linear(in_channels * patch_size * patch_size, d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position_embedding = nn.Parameter(torch.zeros(1, self.num_patches + 1, d_model))
        nn.init.trunc_normal_(self.position_embedding, std=init_std)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model, nhead, config.dim_feedforward, dropout, "gelu", norm_first=True
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = (
            nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, num_classes))
            if mlp_head
            else nn.Linear(d_model, num_classes)
        )

    def embed(self, images: Tensor) -> Tensor:
        """The input sequence [B, N + 1, D] (``[CLS]`` first) of images [B, C, H, W]."""
        size = self.image_size
        check_tensor("images", images, f"B, {self.in_channels}, {size}, {size}", dtype="floating")
        check_like("images", images, self.patch_embedding.weight)
        return embed_patches(
            images, self.patch_size, self.patch_embedding.weight, self.patch_embedding.bias,
            self.cls_token, self.position_embedding,
        )  # fmt: skip

    def patch_conv(self) -> nn.Conv2d:
        """A ``Conv2d`` (kernel = stride = P) giving the same patch embeddings [B, D, H/P, W/P]."""
        dim = self.patch_embedding.out_features
        conv = nn.Conv2d(self.in_channels, dim, self.patch_size, stride=self.patch_size)
        conv = conv.to(self.patch_embedding.weight.device, self.patch_embedding.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(
                self.patch_embedding.weight.reshape(dim, self.in_channels, self.patch_size, -1)
            )
            conv.bias.copy_(self.patch_embedding.bias)
        return conv

    def forward(
        self, images: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Class logits [B, K] for images [B, C, H, W] and, given ``targets`` [B], the loss."""
        x = self.dropout(self.embed(images))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x[:, 0]))
        if targets is None:
            return logits, None
        check_token_ids("targets", targets, self.num_classes, f"{images.shape[0]}", cpu_only=True)
        return logits, F.cross_entropy(logits, targets)

    @torch.no_grad()
    def attention_maps(self, images: Tensor) -> Tensor:
        """Attention weights of every block: [layers, B, H, N + 1, N + 1] (index 0 = [CLS])."""
        maps = attention_maps(self, images)
        return torch.stack([maps[f"blocks.{k}.self_attn"] for k in range(len(self.blocks))])

    def position_similarity(self) -> Tensor:
        """Cosine similarity of the patches' position embeddings: [N, N] (``[CLS]`` left out)."""
        positions = F.normalize(self.position_embedding[0, 1:].detach(), dim=-1)
        return positions @ positions.T
