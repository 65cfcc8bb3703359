"""Faster R-CNN: Fast R-CNN whose regions come from a region proposal network (RPN).

Shape letters: ``B`` images, ``C`` channels, ``H`` and ``W`` the feature map's height and
width, ``A`` anchors per position, ``N = H * W * A`` anchors per image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.detection.anchors import (
    generate_anchors,
    match_anchors,
    positive_numbers,
    sample_labels,
)
from course_lib.detection.boxes import (
    check_image_size,
    clip_boxes_to_image,
    decode_boxes,
    encode_boxes,
)
from course_lib.detection.models.common import build_config, select_detections
from course_lib.detection.models.fast_rcnn import FastRCNN, FastRCNNConfig
from course_lib.detection.targets import Target
from course_lib.validation import (
    check_float,
    check_int,
    check_probability,
    check_tensor,
)

__all__ = ["FasterRCNN", "FasterRCNNConfig", "RPNConfig", "RegionProposalNetwork"]


@dataclass(frozen=True)
class RPNConfig:
    """Constants of ``RegionProposalNetwork``."""

    anchor_sizes: Sequence[float] = (12.0, 18.0, 26.0)  # pixels (square root of the area)
    aspect_ratios: Sequence[float] = (1.0,)  # height / width
    pre_nms: int = 300  # best-scoring anchors decoded per image
    post_nms_train: int = 64  # proposals kept per image after NMS, in training
    post_nms_test: int = 32  # ... and in evaluation
    nms_threshold: float = 0.7
    positive_iou: float = 0.7  # an anchor with IoU >= this with an object is positive
    negative_iou: float = 0.3  # ... below this it is background (in between: ignored)
    anchors_per_image: int = 64  # anchors sampled per image for the losses
    positive_fraction: float = 0.5  # at most this share of them positive
    box_loss_beta: float = 1 / 9  # of the smooth L1 loss
    init_std: float = 0.01  # of the objectness and delta layers' weights
    seed: int = 0  # of the anchor sampling

    def __post_init__(self) -> None:
        positive_numbers("anchor_sizes", self.anchor_sizes)
        positive_numbers("aspect_ratios", self.aspect_ratios)
        for name in ("pre_nms", "post_nms_train", "post_nms_test", "anchors_per_image"):
            check_int(name, getattr(self, name), 1)
        for name in ("nms_threshold", "positive_iou", "negative_iou", "positive_fraction"):
            check_probability(name, getattr(self, name))
        if self.negative_iou > self.positive_iou:
            raise ValueError(
                f"negative_iou must not exceed positive_iou, got {self.negative_iou} > "
                f"{self.positive_iou}"
            )
        check_float("box_loss_beta", self.box_loss_beta, 0.0)
        check_float("init_std", self.init_std, 0.0)
        check_int("seed", self.seed, 0)


class RegionProposalNetwork(nn.Module):
    """RPN: at every anchor, an objectness score and a box transform, from a feature map.

    ``forward(features [B, C, H, W], image_size, targets=None)`` returns the proposals (a
    list of B tensors [n, 4], best first) and a dict with the two RPN losses when
    ``targets`` are given: binary cross-entropy on sampled anchors (IoU >= 0.7 object,
    < 0.3 background) and smooth L1 on the transforms of the object anchors. The anchors
    cover a ``feature_size`` map with ``stride`` pixels per cell; the other constants come
    from an ``RPNConfig`` or its fields as keywords.
    """

    def __init__(
        self,
        channels: int,
        feature_size: Union[int, Tuple[int, int]],
        stride: float,
        config: Optional[RPNConfig] = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = config = build_config(RPNConfig, config, overrides)
        channels = check_int("channels", channels, 1)
        self.num_anchors = len(config.anchor_sizes) * len(config.aspect_ratios)
        anchors = generate_anchors(feature_size, stride, config.anchor_sizes, config.aspect_ratios)
        self.register_buffer("anchors", anchors)
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True)
        )
        self.objectness = nn.Conv2d(channels, self.num_anchors, 1)
        self.deltas = nn.Conv2d(channels, 4 * self.num_anchors, 1)
        for layer in (self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=config.init_std)
            nn.init.zeros_(layer.bias)
        self.generator = torch.Generator().manual_seed(config.seed)

    def forward(
        self,
        features: Tensor,
        image_size: Tuple[int, int],
        targets: Optional[List[Target]] = None,
    ) -> Tuple[List[Tensor], Dict[str, Tensor]]:
        check_tensor("features", features, "B, C, H, W", dtype="floating")
        image_size = check_image_size("image_size", image_size)
        b = features.shape[0]
        hidden = self.conv(features)
        # Channels to the last axis so rows follow generate_anchors: position, then anchor.
        objectness = self.objectness(hidden).permute(0, 2, 3, 1).reshape(b, -1)  # [B, N]
        deltas = self.deltas(hidden).view(b, self.num_anchors, 4, *hidden.shape[-2:])
        deltas = deltas.permute(0, 3, 4, 1, 2).reshape(b, -1, 4)  # [B, N, 4]
        if objectness.shape[1] != self.anchors.shape[0]:
            raise ValueError(
                f"features of size {list(features.shape[-2:])} give {objectness.shape[1]} "
                f"anchors per image but the RPN was built for {self.anchors.shape[0]}: check "
                "feature_size"
            )
        proposals = self._proposals(objectness.detach(), deltas.detach(), image_size)
        losses = {} if targets is None else self._losses(objectness, deltas, targets)
        return proposals, losses

    def _proposals(
        self, objectness: Tensor, deltas: Tensor, image_size: Tuple[int, int]
    ) -> List[Tensor]:
        config, b = self.config, objectness.shape[0]
        top = min(config.pre_nms, objectness.shape[1])
        scores, index = objectness.topk(top, dim=1)  # [B, top]
        boxes = decode_boxes(
            self.anchors[index], deltas.gather(1, index[..., None].expand(-1, -1, 4))
        )
        boxes = clip_boxes_to_image(boxes, image_size).reshape(-1, 4)
        image = torch.arange(b, device=boxes.device).repeat_interleave(top)
        keep = config.post_nms_train if self.training else config.post_nms_test
        return [
            d["boxes"]
            for d in select_detections(
                boxes, scores.reshape(-1), torch.zeros_like(image), image, b,
                -math.inf, config.nms_threshold, keep,
            )
        ]  # fmt: skip

    def _losses(
        self, objectness: Tensor, deltas: Tensor, targets: List[Target]
    ) -> Dict[str, Tensor]:
        config = self.config
        labels, regression = [], []
        for target in targets:
            gt_boxes = target["boxes"].to(self.anchors)
            match = match_anchors(self.anchors, gt_boxes, config.positive_iou, config.negative_iou)
            labels.append((match >= 0).long() - (match == -2).long())  # 1 / 0 / -1 ignored
            matched = gt_boxes[match.clamp(min=0)] if gt_boxes.shape[0] else self.anchors
            regression.append(encode_boxes(self.anchors, matched))
        sampled_pos, sampled_neg = zip(
            *(sample_labels(row, config.anchors_per_image, config.positive_fraction,
                            self.generator) for row in labels)
        )  # fmt: skip
        positive, negative = torch.stack(sampled_pos), torch.stack(sampled_neg)
        sampled = positive | negative
        count = max(int(sampled.sum()), 1)
        object_loss = F.binary_cross_entropy_with_logits(
            objectness[sampled], positive[sampled].to(objectness.dtype), reduction="sum"
        )
        box_loss = F.smooth_l1_loss(
            deltas[positive], torch.stack(regression)[positive], beta=config.box_loss_beta,
            reduction="sum",
        )  # fmt: skip
        return {"rpn_objectness": object_loss / count, "rpn_box": box_loss / count}


@dataclass(frozen=True)
class FasterRCNNConfig(FastRCNNConfig):
    """Constants of ``FasterRCNN``: Fast R-CNN's, the image size and the RPN's."""

    channels: int = 64
    image_size: int = 64  # square images; fixes the anchor grid (a multiple of 4)
    rpn: RPNConfig = field(default_factory=RPNConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if check_int("image_size", self.image_size, 4) % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {self.image_size}")
        if not isinstance(self.rpn, RPNConfig):
            raise TypeError(f"rpn must be an RPNConfig, got {type(self.rpn).__name__}")


class FasterRCNN(FastRCNN):
    """Faster R-CNN: Fast R-CNN whose regions come from a region proposal network.

    Trained jointly with four losses: RPN objectness, RPN box transform, region
    classification and region box transform. ``image_size`` fixes the anchor grid. Built
    from a ``FasterRCNNConfig`` or its fields as keywords (``FasterRCNN(channels=64)``;
    the RPN's through ``rpn=RPNConfig(...)``).
    """

    def __init__(self, config: Optional[FasterRCNNConfig] = None, **overrides: Any) -> None:
        config = build_config(FasterRCNNConfig, config, overrides)
        super().__init__(None, config)
        stride = self.backbone.stride
        self.rpn = RegionProposalNetwork(
            config.channels, config.image_size // stride, stride, config.rpn
        )

    def propose(
        self, images: Tensor, targets: Optional[List[Target]]
    ) -> Tuple[Tensor, List[Tensor], Dict[str, Tensor]]:
        """The feature map, the RPN's proposals per image and the RPN's losses."""
        size = self.config.image_size
        check_tensor("images", images, f"B, 3, {size}, {size}", dtype="floating")
        features = self.backbone(images)
        proposals, losses = self.rpn(features, tuple(images.shape[-2:]), targets)
        return features, proposals, losses
