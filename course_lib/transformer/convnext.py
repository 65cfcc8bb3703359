"""ConvNeXt (Liu et al., 2022, "A ConvNet for the 2020s"): a convolutional network built
with the Vision Transformer's design choices, small enough for 8x8 digits.

Shape letters: ``B`` batch, ``C`` image channels, ``D`` channels (width), ``H``/``W``
height and width (of the image, or of the patch grid inside the network), ``K`` classes.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.validation import check_int, check_tensor, check_token_ids


class ConvNeXtBlock(nn.Module):
    """One ConvNeXt block: x + gamma * Linear(GELU(Linear(LayerNorm(DepthwiseConv(x))))).

    Spatial mixing is a ``kernel_size`` x ``kernel_size`` depthwise convolution (one filter
    per channel, like attention mixing positions); channel mixing is an inverted bottleneck
    of two position-wise linear layers ``D -> expansion * D -> D`` (like a Transformer's
    FFN), with one LayerNorm and one GELU per block. ``gamma`` is the per-channel layer
    scale, initialised to ``layer_scale``. Input and output [B, D, H, W].
    """

    def __init__(
        self, dim: int, kernel_size: int = 7, expansion: int = 4, layer_scale: float = 1e-6
    ) -> None:
        super().__init__()
        check_int("dim", dim, 1)
        check_int("kernel_size", kernel_size, 1)
        check_int("expansion", expansion, 1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (same-size output), got {kernel_size}")
        self.depthwise = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.linear1 = nn.Linear(dim, expansion * dim)
        self.linear2 = nn.Linear(expansion * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: Tensor) -> Tensor:
        """x [B, D, H, W] -> [B, D, H, W]."""
        check_tensor("x", x, f"B, {self.gamma.shape[0]}, H, W", dtype="floating")
        h = self.depthwise(x).permute(0, 2, 3, 1)  # [B, H, W, D]: channels last for the MLP
        h = self.linear2(F.gelu(self.linear1(self.norm(h))))
        return x + (self.gamma * h).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """A one-stage ConvNeXt classifier: patchify stem, ``depth`` blocks, mean pool, head.

    The stem is ViT's patch embedding (a ``patch_size`` convolution with stride
    ``patch_size``) followed by a LayerNorm; the head is LayerNorm + Linear on the globally
    averaged features. (The paper's models have four stages with downsampling layers
    between them; on 8x8 images one stage at one resolution is enough.) The interface is
    ``ViT``'s: ``model(images [B, C, H, W], targets [B] = None) -> (logits [B, K], loss)``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        patch_size: int = 2,
        dim: int = 64,
        depth: int = 4,
        kernel_size: int = 7,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.patch_size = check_int("patch_size", patch_size, 1)
        check_int("depth", depth, 0)
        self.in_channels = in_channels
        self.stem = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
        self.stem_norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, kernel_size) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)

    def forward(
        self, images: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Class logits [B, K] for images [B, C, H, W] and, given ``targets`` [B], the loss."""
        check_tensor("images", images, f"B, {self.in_channels}, H, W", dtype="floating")
        if images.shape[-1] % self.patch_size or images.shape[-2] % self.patch_size:
            raise ValueError(
                f"images height and width must be multiples of patch_size={self.patch_size}, "
                f"got {tuple(images.shape[-2:])}"
            )
        x = self.stem(images)  # [B, D, H/P, W/P]
        x = self.stem_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x.mean(dim=(2, 3))))
        if targets is None:
            return logits, None
        check_token_ids("targets", targets, self.num_classes, f"{images.shape[0]}", cpu_only=True)
        return logits, F.cross_entropy(logits, targets)
