"""R-CNN: warp every proposal to a fixed-size crop of the image and run a CNN on each.

Shape letters: ``N`` proposals, ``B`` images, ``K`` regions in a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from course_lib.detection.models.common import ConvBackbone, build_config
from course_lib.detection.models.region import RegionConfig, RegionDetector
from course_lib.detection.roi import roi_align
from course_lib.detection.targets import Target
from course_lib.validation import check_float, check_int, check_sequence

__all__ = ["MAX_WINDOWS", "RCNN", "RCNNConfig", "sliding_window_proposals"]

#: Most windows ``sliding_window_proposals`` makes (a stride far below a pixel is a mistake).
MAX_WINDOWS = 1_000_000


def sliding_window_proposals(
    image_size: int, sizes: Sequence[float] = (12, 18, 26), stride: float = 4.0
) -> Tensor:
    """Our stand-in for Selective Search: square windows of each size in ``sizes`` (in
    (0, image_size]) at every ``stride`` pixels, inside an ``image_size`` x ``image_size``
    image: [N, 4]."""
    image_size = check_int("image_size", image_size, 1)
    check_sequence("sizes", sizes)
    if len(sizes) == 0:
        raise ValueError("sizes must hold at least one window size, got an empty list")
    sizes = [check_float(f"sizes[{i}]", s, 0.0, image_size, include_minimum=False)
             for i, s in enumerate(sizes)]  # fmt: skip
    stride = check_float("stride", stride, 0.0, include_minimum=False)
    count = sum((math.floor((image_size - size) / stride) + 1) ** 2 for size in sizes)
    if count > MAX_WINDOWS:
        raise ValueError(
            f"stride {stride:g} makes {count:.3g} windows, more than MAX_WINDOWS = "
            f"{MAX_WINDOWS}; use a larger stride"
        )
    windows = []
    for size in sizes:
        starts = torch.arange(0, image_size - size + 1e-6, stride, dtype=torch.float32)
        y, x = torch.meshgrid(starts, starts, indexing="ij")
        corner = torch.stack([x.reshape(-1), y.reshape(-1)], 1)
        windows.append(torch.cat([corner, corner + size], 1))
    return torch.cat(windows)


@dataclass(frozen=True)
class RCNNConfig(RegionConfig):
    """Constants of ``RCNN``: those of the region stage plus the crops' batch size."""

    crop_batch: int = 2048  # crops sent through the CNN at once

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("crop_batch", self.crop_batch, 1)


class RCNN(RegionDetector):
    """R-CNN: crop and warp every proposal to ``pool_size * 4`` pixels, then run a CNN on each.

    ``proposals`` [N, 4] are fixed windows (the same for every image). ``forward(images [B,
    3, H, W], targets=None)`` returns ``(losses, loss)`` with targets, else
    ``(detections, None)`` (a list of B dicts; see ``RegionDetector``). Each crop runs
    through a ``ConvBackbone`` and a ``RegionHead``: the network of ``FastRCNN``, but once
    per region. Built from an ``RCNNConfig`` or its fields as keywords
    (``RCNN(proposals, channels=32)``).
    """

    def __init__(
        self, proposals: Tensor, config: Optional[RCNNConfig] = None, **overrides: Any
    ) -> None:
        config = build_config(RCNNConfig, config, overrides)
        if proposals is None:
            raise TypeError("proposals must be a Tensor [N, 4] of windows, got None")
        super().__init__(config, proposals)
        self.crop_size = config.pool_size * ConvBackbone.stride

    def propose(
        self, images: Tensor, targets: Optional[List[Target]]
    ) -> Tuple[Tensor, List[Tensor], Dict[str, Tensor]]:
        """The fixed windows, for every image; regions are cropped from the pixels."""
        return images, [self.proposals] * images.shape[0], {}

    def classify_regions(self, images: Tensor, regions: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Warp each region of each image to crop_size² pixels and classify it: logits, deltas."""
        # Warping is bilinear resampling of the box: RoI Align on the pixels does exactly that.
        crops = roi_align(
            images, regions, self.crop_size, 1.0, self.config.sampling_ratio, aligned=True
        )
        outputs = [self.head(self.backbone(part)) for part in crops.split(self.config.crop_batch)]
        return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])
