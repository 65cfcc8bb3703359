"""Fast R-CNN: run the backbone once per image, then crop each region from the feature map.

Shape letters: ``B`` images, ``C`` channels of the feature map, ``K`` regions in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from torch import Tensor

from course_lib.detection.models.common import build_config
from course_lib.detection.models.region import RegionConfig, RegionDetector
from course_lib.detection.roi import roi_align, roi_pool
from course_lib.detection.targets import Target
from course_lib.validation import check_choice

__all__ = ["FastRCNN", "FastRCNNConfig"]


@dataclass(frozen=True)
class FastRCNNConfig(RegionConfig):
    """Constants of ``FastRCNN``: those of the region stage plus how regions are cropped."""

    pool: str = "align"  # "align" (RoI Align, aligned corners) or "pool" (RoI Pool)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("pool", self.pool, ("align", "pool"))


class FastRCNN(RegionDetector):
    """Fast R-CNN: run the backbone once per image, then crop each region from the feature map.

    Same interface as ``RCNN``. Regions are pooled with RoI Align (``pool="align"``, aligned
    corners) or RoI Pool (``pool="pool"``) to ``pool_size`` x ``pool_size`` cells and
    classified by a ``RegionHead``. ``propose`` supplies the regions: here the fixed
    ``proposals`` [N, 4]; ``FasterRCNN`` overrides it with a region proposal network. Built
    from a ``FastRCNNConfig`` or its fields as keywords (``FastRCNN(proposals, channels=32)``).
    """

    def __init__(
        self,
        proposals: Optional[Tensor] = None,
        config: Optional[FastRCNNConfig] = None,
        **overrides: Any,
    ) -> None:
        super().__init__(build_config(FastRCNNConfig, config, overrides), proposals)

    def propose(
        self, images: Tensor, targets: Optional[List[Target]]
    ) -> Tuple[Tensor, List[Tensor], Dict[str, Tensor]]:
        """The feature map, the fixed windows for every image, and no loss."""
        if not hasattr(self, "proposals"):
            raise ValueError("proposals must be given to FastRCNN: a Tensor [N, 4] of windows")
        return self.backbone(images), [self.proposals] * images.shape[0], {}

    def classify_regions(self, features: Tensor, regions: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Crop every region from the feature map to pool_size² cells and classify it."""
        return self.head(self.pool_regions(features, regions))

    def pool_regions(self, features: Tensor, regions: List[Tensor]) -> Tensor:
        """Crop every region from the feature map: [K, C, pool_size, pool_size]."""
        config, scale = self.config, 1.0 / self.backbone.stride
        if config.pool == "pool":
            return roi_pool(features, regions, config.pool_size, scale)
        return roi_align(
            features, regions, config.pool_size, scale, config.sampling_ratio, aligned=True
        )
