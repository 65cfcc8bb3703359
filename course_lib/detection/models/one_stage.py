"""A one-stage detector (RetinaNet/SSD style): classes and boxes straight from the anchors.

Shape letters: ``B`` images, ``N`` anchors per image, ``L`` object classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.detection.anchors import generate_anchors, match_anchors, positive_numbers
from course_lib.detection.boxes import clip_boxes_to_image, decode_boxes, encode_boxes
from course_lib.detection.models.common import (
    ConvBackbone,
    build_config,
    check_images,
    check_training_targets,
    conv_block,
    select_detections,
)
from course_lib.detection.targets import Target
from course_lib.validation import (
    check_float,
    check_int,
    check_probability,
    check_tensor,
)

__all__ = ["OneStageConfig", "OneStageDetector", "sigmoid_focal_loss"]


def sigmoid_focal_loss(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Focal loss (RetinaNet), summed: ``-alpha_t (1 - p_t)**gamma log(p_t)`` for logits and
    0/1 float targets of the same shape (``alpha`` in [0, 1], or negative for no weighting;
    ``gamma >= 0``). Easy examples (p_t near 1) are down-weighted, so the thousands of easy
    background anchors do not swamp the few objects. Same as torchvision's with ``"sum"``."""
    check_tensor("logits", logits, dtype="floating")
    check_tensor("targets", targets, dtype="floating")
    if targets.shape != logits.shape:
        raise ValueError(
            f"targets must have the shape of logits {list(logits.shape)}, got {list(targets.shape)}"
        )
    alpha = check_float("alpha", alpha, maximum=1.0)
    gamma = check_float("gamma", gamma, 0.0)
    probability = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = probability * targets + (1 - probability) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.sum()


@dataclass(frozen=True)
class OneStageConfig:
    """Constants of ``OneStageDetector``."""

    num_classes: int = 3
    image_size: int = 64  # square images; fixes the anchor grid (a multiple of 4)
    channels: int = 64
    anchor_sizes: Sequence[float] = (12.0, 18.0, 26.0)
    aspect_ratios: Sequence[float] = (1.0,)
    prior: float = 0.01  # initial probability of every class (keeps the first losses small)
    positive_iou: float = 0.5  # an anchor with IoU >= this with an object is positive
    negative_iou: float = 0.4  # ... below this it is background (in between: ignored)
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_loss_beta: float = 1 / 9
    init_std: float = 0.01  # of the classifier and regressor weights
    candidates: int = 300  # best (anchor, class) scores decoded per image
    score_threshold: float = 0.05
    nms_threshold: float = 0.5
    max_detections: int = 100

    def __post_init__(self) -> None:
        check_int("num_classes", self.num_classes, 1)
        if check_int("image_size", self.image_size, 4) % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {self.image_size}")
        check_int("channels", self.channels, 2)
        positive_numbers("anchor_sizes", self.anchor_sizes)
        positive_numbers("aspect_ratios", self.aspect_ratios)
        check_float("prior", self.prior, 0.0, 1.0, include_minimum=False, include_maximum=False)
        for name in ("positive_iou", "negative_iou"):
            check_probability(name, getattr(self, name))
        if self.negative_iou > self.positive_iou:
            raise ValueError(
                f"negative_iou must not exceed positive_iou, got {self.negative_iou} > "
                f"{self.positive_iou}"
            )
        check_float("focal_alpha", self.focal_alpha, maximum=1.0)
        check_float("focal_gamma", self.focal_gamma, 0.0)
        check_float("box_loss_beta", self.box_loss_beta, 0.0)
        check_float("init_std", self.init_std, 0.0)
        check_int("candidates", self.candidates, 1)
        check_float("score_threshold", self.score_threshold)
        check_float("nms_threshold", self.nms_threshold)
        check_int("max_detections", self.max_detections, 0)


class OneStageDetector(nn.Module):
    """A one-stage detector (RetinaNet/SSD style): classes and boxes straight from anchors.

    At each anchor of the feature map a convolutional head predicts L class scores
    (sigmoid, focal loss) and a box transform (smooth L1), with no proposal stage.
    Anchors match objects at IoU >= 0.5 and are background below 0.4. Same interface as
    ``FasterRCNN``. Built from a ``OneStageConfig`` or its fields as keywords.
    """

    def __init__(self, config: Optional[OneStageConfig] = None, **overrides: Any) -> None:
        super().__init__()
        self.config = config = build_config(OneStageConfig, config, overrides)
        channels, classes = config.channels, config.num_classes
        self.num_classes = classes
        self.backbone = ConvBackbone(channels)
        stride = self.backbone.stride
        self.num_anchors = len(config.anchor_sizes) * len(config.aspect_ratios)
        anchors = generate_anchors(
            config.image_size // stride, stride, config.anchor_sizes, config.aspect_ratios
        )
        self.register_buffer("anchors", anchors)
        self.head = nn.Sequential(conv_block(channels, channels), conv_block(channels, channels))
        self.classifier = nn.Conv2d(channels, self.num_anchors * classes, 3, padding=1)
        self.regressor = nn.Conv2d(channels, self.num_anchors * 4, 3, padding=1)
        nn.init.normal_(self.classifier.weight, std=config.init_std)
        prior = config.prior  # start every class at probability = prior
        nn.init.constant_(self.classifier.bias, -math.log((1 - prior) / prior))
        nn.init.normal_(self.regressor.weight, std=config.init_std)
        nn.init.zeros_(self.regressor.bias)

    def forward(
        self, images: Tensor, targets: Optional[List[Target]] = None
    ) -> Tuple[Union[Dict[str, Tensor], List[Dict[str, Tensor]]], Optional[Tensor]]:
        size = self.config.image_size
        images = check_images(images, self, size)
        targets = check_training_targets(targets, images, self.num_classes)
        b = images.shape[0]
        hidden = self.head(self.backbone(images))
        logits = self.classifier(hidden).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes)
        deltas = self.regressor(hidden).permute(0, 2, 3, 1).reshape(b, -1, 4)  # [B, N, 4]
        if targets is None:
            return self._detect(logits, deltas, (size, size)), None
        losses = self._losses(logits, deltas, targets)
        return losses, sum(losses.values())

    def _losses(self, logits: Tensor, deltas: Tensor, targets: List[Target]) -> Dict[str, Tensor]:
        config = self.config
        class_targets, regression, matches = [], [], []
        for target in targets:
            gt_boxes = target["boxes"].to(self.anchors)
            match = match_anchors(self.anchors, gt_boxes, config.positive_iou, config.negative_iou)
            one_hot = torch.zeros(match.shape[0], self.num_classes, device=logits.device)
            positive = match >= 0
            one_hot[positive, target["labels"][match[positive]]] = 1.0
            class_targets.append(one_hot)
            matched = gt_boxes[match.clamp(min=0)] if gt_boxes.shape[0] else self.anchors
            regression.append(encode_boxes(self.anchors, matched))
            matches.append(match)
        match_t = torch.stack(matches)
        positive, counted = match_t >= 0, match_t != -2  # ignored anchors do not count
        num_positive = max(int(positive.sum()), 1)
        class_loss = sigmoid_focal_loss(
            logits[counted], torch.stack(class_targets)[counted], config.focal_alpha,
            config.focal_gamma,
        )  # fmt: skip
        box_loss = F.smooth_l1_loss(
            deltas[positive], torch.stack(regression)[positive], beta=config.box_loss_beta,
            reduction="sum",
        )  # fmt: skip
        return {"class": class_loss / num_positive, "box": box_loss / num_positive}

    def _detect(
        self, logits: Tensor, deltas: Tensor, image_size: Tuple[int, int]
    ) -> List[Dict[str, Tensor]]:
        config = self.config
        b, _, num_classes = logits.shape
        scores = torch.sigmoid(logits).reshape(b, -1)  # [B, N * L]
        top_scores, index = scores.topk(min(config.candidates, scores.shape[1]), dim=1)
        anchor, label = index // num_classes, index % num_classes
        boxes = decode_boxes(
            self.anchors[anchor], deltas.gather(1, anchor[..., None].expand(-1, -1, 4))
        )
        boxes = clip_boxes_to_image(boxes, image_size).reshape(-1, 4)
        image = torch.arange(b, device=logits.device).repeat_interleave(anchor.shape[1])
        return select_detections(
            boxes, top_scores.reshape(-1), label.reshape(-1), image, b, config.score_threshold,
            config.nms_threshold, config.max_detections,
        )  # fmt: skip
