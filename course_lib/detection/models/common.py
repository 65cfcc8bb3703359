"""What every detector here shares: configs, the small CNN backbone, input checks, the final
selection of detections, and ``predict``.

Every detector has the interface ``forward(images [B, 3, H, W], targets=None) -> (output,
loss)``: with targets, ``output`` is a dict of the loss terms and ``loss`` their sum; without,
``output`` is a list of B dicts (``boxes`` [D, 4], ``scores`` [D], ``labels`` [D]) and ``loss``
is None. Shape letters: ``B`` images, ``C`` channels, ``H``, ``W`` height and width, ``N``
candidate boxes, ``D`` detections kept per image.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Dict, List, Optional, Type, TypeVar

import torch
from torch import Tensor, nn

from course_lib.detection.nms import batched_nms
from course_lib.detection.targets import Target, check_targets
from course_lib.validation import check_int, check_like, check_tensor

__all__ = ["ConvBackbone", "predict"]

ConfigT = TypeVar("ConfigT")

#: Detections narrower or lower than this many pixels are dropped (degenerate boxes).
MIN_BOX_SIZE = 1e-2


def build_config(
    cls: Type[ConfigT], config: Optional[ConfigT], overrides: Dict[str, Any]
) -> ConfigT:
    """``config`` (or the defaults of ``cls``) with the keyword ``overrides`` applied.

    ``Model(channels=16)`` and ``Model(ModelConfig(channels=16))`` build the same model; an
    unknown keyword is a TypeError that lists the known ones.
    """
    if config is None:
        config = cls()
    elif not isinstance(config, cls):
        raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TypeError(f"unknown argument(s) {unknown}; {cls.__name__} has {known}")
    return replace(config, **overrides)  # type: ignore[type-var]


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvBackbone(nn.Module):
    """A small CNN: images [B, 3, H, W] -> feature map [B, C, H / 4, W / 4] (C = ``channels``)."""

    stride = 4

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.out_channels = check_int("channels", channels, 2)
        self.layers = nn.Sequential(
            conv_block(3, channels // 2, stride=2),
            conv_block(channels // 2, channels // 2),
            conv_block(channels // 2, channels, stride=2),
            conv_block(channels, channels),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.layers(check_images(images, self))


def check_images(images: object, model: nn.Module, size: Optional[int] = None) -> Tensor:
    """RGB images [B, 3, H, W] (H = W = ``size`` if given) of the model's dtype and device."""
    shape = "B, 3, H, W" if size is None else f"B, 3, {size}, {size}"
    check_tensor("images", images, shape, dtype="floating")
    parameter = next(model.parameters(), None)
    if parameter is not None:
        check_like("images", images, parameter)
    return images


def check_training_targets(
    targets: Optional[List[Target]], images: Tensor, num_classes: int
) -> Optional[List[Target]]:
    """None (inference) or one target dict per image, on the images' device."""
    if targets is None:
        return None
    targets = check_targets(targets, images.shape[0], num_classes)
    return [
        {**t, "boxes": t["boxes"].to(images), "labels": t["labels"].to(images.device)}
        for t in targets
    ]


def select_detections(
    boxes: Tensor,
    scores: Tensor,
    labels: Tensor,
    image: Tensor,
    num_images: int,
    score_threshold: float,
    nms_threshold: float,
    max_detections: int,
) -> List[Dict[str, Tensor]]:
    """Threshold, NMS per (image, class) and keep the best ``max_detections`` per image.

    ``boxes`` [N, 4], ``scores`` [N], ``labels`` [N] and ``image`` [N] (which image each
    candidate belongs to). Boxes narrower or lower than ``MIN_BOX_SIZE`` are dropped. Returns one
    dict per image, best first.
    """
    keep = (scores > score_threshold) & ((boxes[:, 2:] - boxes[:, :2]) > MIN_BOX_SIZE).all(1)
    boxes, scores, labels, image = boxes[keep], scores[keep], labels[keep], image[keep]
    groups = image * (int(labels.max()) + 1 if labels.numel() else 1) + labels
    kept = batched_nms(boxes, scores, groups, nms_threshold)
    kept = kept[torch.sort(image[kept], stable=True).indices]  # by image, then by score
    counts = torch.bincount(image[kept], minlength=num_images)
    rank = (
        torch.arange(kept.numel(), device=kept.device)
        - (torch.cumsum(counts, 0) - counts)[image[kept]]
    )
    kept = kept[rank < max_detections]
    counts = torch.bincount(image[kept], minlength=num_images).tolist()
    return [
        {"boxes": box, "scores": score, "labels": label}
        for box, score, label in zip(
            boxes[kept].split(counts), scores[kept].split(counts), labels[kept].split(counts)
        )
    ]


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, batch_size: int = 64) -> List[Dict[str, Tensor]]:
    """Detections of ``model`` on ``images`` [N, 3, H, W]: N dicts of CPU tensors
    (``boxes`` [D, 4], ``scores`` [D], ``labels`` [D]), computed in eval mode, in batches of
    ``batch_size`` images on the model's device."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor("images", images, "N, 3, H, W", dtype="floating")
    batch_size = check_int("batch_size", batch_size, 1)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else images.device
    was_training = model.training
    model.eval()
    results: List[Dict[str, Tensor]] = []
    try:
        for start in range(0, images.shape[0], batch_size):
            detections, _ = model(images[start : start + batch_size].to(device))
            results.extend({key: value.cpu() for key, value in d.items()} for d in detections)
    finally:
        model.train(was_training)
    return results
