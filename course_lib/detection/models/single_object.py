"""One object per image: classification plus box regression, the simplest detector.

Shape letters: ``B`` images, ``L`` object classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.detection.models.common import (
    build_config,
    check_images,
    check_training_targets,
    conv_block,
)
from course_lib.detection.targets import Target
from course_lib.validation import check_float, check_int

__all__ = ["SingleObjectConfig", "SingleObjectDetector"]


@dataclass(frozen=True)
class SingleObjectConfig:
    """Constants of ``SingleObjectDetector``."""

    num_classes: int = 3
    image_size: int = 64  # square images; a multiple of 8 (three stride-2 convolutions)
    box_weight: float = 1.0  # weight of the box loss against the class loss
    channels: int = 32  # of the first convolutions (then doubled)
    hidden: int = 128  # width of the shared fully connected layer

    def __post_init__(self) -> None:
        check_int("num_classes", self.num_classes, 1)
        if check_int("image_size", self.image_size, 8) % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {self.image_size}")
        check_float("box_weight", self.box_weight, 0.0)
        check_int("channels", self.channels, 1)
        check_int("hidden", self.hidden, 1)


class SingleObjectDetector(nn.Module):
    """One object per image: a CNN with a class head and a box head.

    ``forward(images [B, 3, H, W], targets=None)`` returns ``(output, loss)``: ``output``
    holds ``logits`` [B, L] (L = ``num_classes``) and ``boxes`` [B, 4] in pixels; with
    ``targets`` (exactly one box per image) ``loss = cross_entropy + box_weight * L2``, the
    L2 loss being the mean squared error of the box corners divided by the image size.
    Built from a ``SingleObjectConfig`` or its fields as keywords.
    """

    def __init__(self, config: Optional[SingleObjectConfig] = None, **overrides: Any) -> None:
        super().__init__()
        self.config = config = build_config(SingleObjectConfig, config, overrides)
        channels = config.channels
        self.features = nn.Sequential(
            conv_block(3, channels, stride=2),
            conv_block(channels, channels),
            conv_block(channels, 2 * channels, stride=2),
            conv_block(2 * channels, 2 * channels, stride=2),
        )
        cells = (config.image_size // 8) ** 2
        self.hidden = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * channels * cells, config.hidden), nn.ReLU()
        )
        self.class_head = nn.Linear(config.hidden, config.num_classes)
        self.box_head = nn.Linear(config.hidden, 4)

    def forward(
        self, images: Tensor, targets: Optional[List[Target]] = None
    ) -> Tuple[Dict[str, Tensor], Optional[Tensor]]:
        size = self.config.image_size
        hidden = self.hidden(self.features(check_images(images, self, size)))
        logits = self.class_head(hidden)
        boxes = torch.sigmoid(self.box_head(hidden)) * size
        output = {"logits": logits, "boxes": boxes}
        targets = check_training_targets(targets, images, self.config.num_classes)
        if targets is None:
            return output, None
        counts = [t["boxes"].shape[0] for t in targets]
        if any(count != 1 for count in counts):
            raise ValueError(
                f"targets must hold exactly one object per image for SingleObjectDetector, "
                f"got {counts}"
            )
        labels = torch.cat([t["labels"] for t in targets])
        gt_boxes = torch.cat([t["boxes"] for t in targets])
        class_loss = F.cross_entropy(logits, labels)
        box_loss = F.mse_loss(boxes / size, gt_boxes / size)
        output.update(class_loss=class_loss.detach(), box_loss=box_loss.detach())
        return output, class_loss + self.config.box_weight * box_loss
