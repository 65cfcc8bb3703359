"""The per-region stage shared by R-CNN, Fast R-CNN and Faster R-CNN.

Regions (proposals) are sampled and labelled against the ground truth, classified into L
object classes plus background (class 0) by a small MLP, moved by class-specific box
transforms, and turned into detections. Shape letters: ``K`` regions in a batch, ``D``
region features, ``L`` object classes, ``B`` images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.detection.anchors import match_anchors, sample_labels
from course_lib.detection.boxes import (
    check_image_size,
    clip_boxes_to_image,
    decode_boxes,
    encode_boxes,
)
from course_lib.detection.models.common import (
    ConvBackbone,
    check_images,
    check_training_targets,
    select_detections,
)
from course_lib.detection.targets import Target
from course_lib.validation import (
    check_float,
    check_int,
    check_probability,
    check_sequence,
    check_tensor,
)

__all__ = [
    "REGION_BOX_WEIGHTS",
    "RegionConfig",
    "RegionDetector",
    "RegionHead",
    "postprocess_regions",
]

#: Weights of the second-stage box transform (Fast/Faster R-CNN): (10, 10, 5, 5).
REGION_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


@dataclass(frozen=True)
class RegionConfig:
    """Constants of the region stage of ``RCNN``, ``FastRCNN`` and ``FasterRCNN``."""

    num_classes: int = 3  # object classes (the head adds background as class 0)
    channels: int = 32  # backbone channels
    pool_size: int = 5  # each region becomes pool_size x pool_size feature cells
    hidden: int = 128  # width of the region MLP
    head_init_std: float = 0.001  # of the box regressor's initial weights
    regions_per_image: int = 32  # regions sampled per training image
    positive_fraction: float = 0.25  # at most this share of them are objects
    foreground_iou: float = 0.5  # a region with IoU >= this with an object takes its class
    box_weights: Tuple[float, float, float, float] = REGION_BOX_WEIGHTS
    sampling_ratio: int = 2  # RoI Align samples per bin and axis
    box_loss_beta: float = 1 / 9  # smooth L1 switches from quadratic to linear here
    score_threshold: float = 0.05  # detections below this score are dropped
    nms_threshold: float = 0.5  # per-class NMS of the detections
    max_detections: int = 100  # per image
    seed: int = 0  # of the region sampling

    def __post_init__(self) -> None:
        for name in ("num_classes", "channels", "pool_size", "hidden", "regions_per_image",
                     "max_detections"):  # fmt: skip
            check_int(name, getattr(self, name), 2 if name == "channels" else 1)
        for name in ("positive_fraction", "foreground_iou"):
            check_probability(name, getattr(self, name))
        check_sequence("box_weights", self.box_weights, length=4)
        for index, weight in enumerate(self.box_weights):
            check_float(f"box_weights[{index}]", weight, 0.0, include_minimum=False)
        check_int("sampling_ratio", self.sampling_ratio)
        check_float("box_loss_beta", self.box_loss_beta, 0.0)
        check_float("head_init_std", self.head_init_std, 0.0)
        check_float("score_threshold", self.score_threshold)
        check_float("nms_threshold", self.nms_threshold)
        check_int("seed", self.seed, 0)


class RegionHead(nn.Module):
    """Per-region classifier and box regressor: features [K, D] ->
    logits [K, L + 1] (class 0 = background) and class-specific deltas [K, L, 4]."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: int = 128, init_std: float = 0.001
    ) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.in_features = check_int("in_features", in_features, 1)
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, check_int("hidden", hidden, 1)),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, num_classes + 1)
        self.regressor = nn.Linear(hidden, 4 * num_classes)
        # Small initial deltas: at first every region keeps its own box.
        nn.init.normal_(self.regressor.weight, std=check_float("init_std", init_std, 0.0))
        nn.init.zeros_(self.regressor.bias)

    def forward(self, features: Tensor) -> Tuple[Tensor, Tensor]:
        check_tensor("features", features, dtype="floating")
        if features.dim() < 2 or math.prod(features.shape[1:]) != self.in_features:
            raise ValueError(
                f"features must have shape [K, ...] with {self.in_features} values per region, "
                f"got {list(features.shape)}"
            )
        hidden = self.mlp(features)
        return self.classifier(hidden), self.regressor(hidden).view(-1, self.num_classes, 4)


def region_targets(
    proposals: List[Tensor],
    targets: List[Target],
    config: RegionConfig,
    generator: Optional[torch.Generator],
) -> Tuple[List[Tensor], Tensor, Tensor]:
    """Sample regions per image and label them: a region whose IoU with a ground-truth box is
    at least ``config.foreground_iou`` takes its class (1..L) and regresses onto it; the
    others are background (0). The true boxes join the proposals (they are always good
    ones). An image with no object gives background regions only. Returns the sampled boxes
    per image, labels [K] and box-transform targets [K, 4]."""
    sampled, labels, regression = [], [], []
    for boxes, target in zip(proposals, targets):
        gt_boxes = target["boxes"].to(boxes)
        boxes = torch.cat([boxes, gt_boxes])
        threshold = config.foreground_iou
        match = match_anchors(boxes, gt_boxes, threshold, threshold, allow_low_quality=False)
        positive = match >= 0
        label = torch.zeros_like(match)
        label[positive] = target["labels"][match[positive]] + 1
        chosen_pos, chosen_neg = sample_labels(
            label, config.regions_per_image, config.positive_fraction, generator
        )
        chosen = chosen_pos | chosen_neg
        matched = gt_boxes[match.clamp(min=0)] if gt_boxes.shape[0] else boxes
        sampled.append(boxes[chosen])
        labels.append(label[chosen])
        regression.append(encode_boxes(boxes[chosen], matched[chosen], config.box_weights))
    return sampled, torch.cat(labels), torch.cat(regression)


def region_loss(
    logits: Tensor, deltas: Tensor, labels: Tensor, regression: Tensor, beta: float
) -> Dict[str, Tensor]:
    """Cross-entropy over L + 1 classes and smooth L1 on the deltas of the true class."""
    positive = labels > 0
    chosen = deltas[positive, labels[positive] - 1]
    box_loss = F.smooth_l1_loss(chosen, regression[positive], beta=beta, reduction="sum")
    return {
        "region_class": F.cross_entropy(logits, labels),
        "region_box": box_loss / max(labels.numel(), 1),
    }


def postprocess_regions(
    logits: Tensor,
    deltas: Tensor,
    regions: List[Tensor],
    image_size: Tuple[int, int],
    score_threshold: float = 0.05,
    nms_threshold: float = 0.5,
    max_detections: int = 100,
    box_weights: Tuple[float, float, float, float] = REGION_BOX_WEIGHTS,
) -> List[Dict[str, Tensor]]:
    """Turn the scores of regions into detections (the last step of R-CNN and its successors).

    ``logits`` [K, L + 1] and class-specific ``deltas`` [K, L, 4] belong to the regions of
    each image (``regions``: one tensor [n_b, 4] per image, K in total). For every class the
    region is moved by its deltas (``box_weights`` as in training), clipped to the image
    (``image_size`` = (height, width)), dropped below ``score_threshold``, and NMS
    (``nms_threshold``; pass a value above 1 to switch it off) removes duplicates; the
    ``max_detections`` best per image remain. One ``batched_nms`` call serves the whole
    batch. Returns one dict per image with ``boxes`` [D, 4], ``scores`` [D], ``labels`` [D].
    """
    check_tensor("logits", logits, "K, L1", dtype="floating")
    check_tensor("deltas", deltas, "K, L, 4", dtype="floating", sizes={"K": logits.shape[0]})
    if logits.shape[1] != deltas.shape[1] + 1:
        raise ValueError(
            f"logits must have shape [K, L + 1] with L = {deltas.shape[1]} (from deltas), got "
            f"{list(logits.shape)}"
        )
    check_sequence("regions", regions)
    for index, region in enumerate(regions):
        check_tensor(f"regions[{index}]", region, "n, 4", dtype="floating")
    counts = [r.shape[0] for r in regions]
    if sum(counts) != logits.shape[0]:
        raise ValueError(
            f"regions must hold K = {logits.shape[0]} boxes in all (one row of logits each), "
            f"got {sum(counts)}"
        )
    size = check_image_size("image_size", image_size)
    check_int("max_detections", max_detections, 0)
    if not regions:
        return []
    num_classes = deltas.shape[1]
    boxes = decode_boxes(torch.cat(regions)[:, None], deltas, box_weights)  # [K, L, 4]
    boxes = clip_boxes_to_image(boxes, size).reshape(-1, 4)
    scores = torch.softmax(logits, dim=1)[:, 1:].reshape(-1)
    labels = torch.arange(num_classes, device=logits.device).repeat(sum(counts))
    image = torch.repeat_interleave(
        torch.arange(len(counts), device=logits.device),
        torch.tensor(counts, dtype=torch.long, device=logits.device) * num_classes,
    )
    return select_detections(
        boxes,
        scores,
        labels,
        image,
        len(counts),
        check_float("score_threshold", score_threshold),
        check_float("nms_threshold", nms_threshold),
        max_detections,
    )


class RegionDetector(nn.Module):
    """The forward pass that R-CNN, Fast R-CNN and Faster R-CNN share.

    A subclass says where regions come from (``propose``) and how a region is classified
    (``classify_regions``); training then samples and labels ``config.regions_per_image``
    regions per image (``region_targets``) and adds ``region_loss`` to the losses of
    proposing, while inference turns every region into detections (``postprocess_regions``).
    """

    def __init__(self, config: RegionConfig, proposals: Optional[Tensor]) -> None:
        """The parts every family has: the config, the fixed windows (if any), a
        ``ConvBackbone``, a ``RegionHead`` for pool_size² cells, and the sampling generator."""
        super().__init__()
        self.config = config
        if proposals is not None:
            check_tensor("proposals", proposals, "N, 4", dtype="floating", finite=True)
            if proposals.shape[0] == 0:
                raise ValueError("proposals must hold at least one window, got [0, 4]")
            self.register_buffer("proposals", proposals.detach().float().clone())
        self.backbone = ConvBackbone(config.channels)
        in_features = config.channels * config.pool_size**2
        self.head = RegionHead(in_features, config.num_classes, config.hidden, config.head_init_std)
        self.generator = torch.Generator().manual_seed(config.seed)

    def propose(
        self, images: Tensor, targets: Optional[List[Target]]
    ) -> Tuple[Tensor, List[Tensor], Dict[str, Tensor]]:
        """``(source, regions, losses)``: what ``classify_regions`` crops from (the images or a
        feature map), the regions of each image [n_b, 4], and the losses of proposing them."""
        raise NotImplementedError

    def classify_regions(self, source: Tensor, regions: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Logits [K, L + 1] and class-specific deltas [K, L, 4] of the K regions."""
        raise NotImplementedError

    def forward(
        self, images: Tensor, targets: Optional[List[Target]] = None
    ) -> Tuple[Union[Dict[str, Tensor], List[Dict[str, Tensor]]], Optional[Tensor]]:
        config = self.config
        images = check_images(images, self)
        targets = check_training_targets(targets, images, config.num_classes)
        source, regions, losses = self.propose(images, targets)
        if targets is None:
            logits, deltas = self.classify_regions(source, regions)
            detections = postprocess_regions(
                logits, deltas, regions, tuple(images.shape[-2:]), config.score_threshold,
                config.nms_threshold, config.max_detections, config.box_weights,
            )  # fmt: skip
            return detections, None
        regions, labels, regression = region_targets(regions, targets, config, self.generator)
        logits, deltas = self.classify_regions(source, regions)
        losses.update(region_loss(logits, deltas, labels, regression, config.box_loss_beta))
        return losses, sum(losses.values())
