"""The chapter's model: a small CNN whose penultimate layer gives the feature vectors."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.validation import check_int, check_like, check_sequence, check_tensor

#: The widest layer (channels or features) a ``SmallCNN`` may have.
MAX_WIDTH = 4096


def check_model(model: object) -> nn.Module:
    """``model`` must be an ``nn.Module`` (the tools below switch it to eval mode)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_model_input(name: str, images: object, model: nn.Module, shape: str) -> Tensor:
    """A floating-point tensor of ``shape`` with the dtype and device of ``model``'s parameters."""
    images = check_tensor(name, images, shape, dtype="floating")
    parameter = next(model.parameters(), None)
    if parameter is not None:
        check_like(name, images, parameter)
    return images


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (no dropout, batch-norm running statistics), then restore
    its training flag."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


class SmallCNN(nn.Module):
    """Three conv blocks, global average pooling, a hidden layer (the features), a classifier.

    ``conv1`` (``first_kernel`` x ``first_kernel``) → pool → ``conv2`` → pool → ``conv3``
    → global average pool → ``fc`` + ReLU (the feature vector [B, F], F = ``feature_dim``)
    → ``head``. ``num_classes`` is an int or a tuple of ints for several classification
    heads sharing the features (e.g. ``(3, 6)`` for shape and colour); the logits of all
    heads are concatenated, [B, sum(num_classes)].

    ``forward(images [B, C, H, W], targets=None)`` returns ``(logits, loss)``; ``targets``
    is [B] for one head or [B, heads], and the loss is the sum of the heads'
    cross-entropies (None without targets). Images need H, W >= 4 (two 2x2 poolings).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: Union[int, Sequence[int]] = 10,
        channels: Sequence[int] = (16, 32, 64),
        feature_dim: int = 64,
        first_kernel: int = 5,
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, 1, MAX_WIDTH)
        heads = (num_classes,) if not isinstance(num_classes, (list, tuple)) else num_classes
        if not heads:
            raise ValueError("num_classes must be an int >= 2 or a non-empty tuple of them, got ()")
        self.num_classes: Tuple[int, ...] = tuple(
            check_int("num_classes", count, 2, 2**20) for count in heads
        )
        c1, c2, c3 = (
            check_int("channels", width, 1, MAX_WIDTH)
            for width in check_sequence("channels", channels, 3)
        )
        feature_dim = check_int("feature_dim", feature_dim, 1, MAX_WIDTH)
        first_kernel = check_int("first_kernel", first_kernel, 1, 31)
        if first_kernel % 2 == 0:
            raise ValueError(f"first_kernel must be a positive odd int, got {first_kernel}")
        self.conv1 = nn.Conv2d(in_channels, c1, first_kernel, padding=first_kernel // 2)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(c3)
        self.fc = nn.Linear(c3, feature_dim)
        self.head = nn.Linear(feature_dim, sum(self.num_classes))

    def feature_maps(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """The three conv blocks' outputs after ReLU: [B, C1, H, W], [B, C2, H/2, W/2] and
        [B, C3, H/4, W/4] for images [B, C, H, W]."""
        images = check_model_input("images", images, self, f"B, {self.conv1.in_channels}, H, W")
        if min(images.shape[2:]) < 4:
            raise ValueError(
                f"images must be at least 4x4 pixels (two 2x2 poolings), got {list(images.shape)}"
            )
        first = F.relu(self.bn1(self.conv1(images)))
        second = F.relu(self.bn2(self.conv2(F.max_pool2d(first, 2))))
        third = F.relu(self.bn3(self.conv3(F.max_pool2d(second, 2))))
        return first, second, third

    def features(self, images: Tensor) -> Tensor:
        """The penultimate-layer feature vectors [B, F] of images [B, C, H, W]."""
        pooled = self.feature_maps(images)[-1].mean(dim=(2, 3))  # global average pooling
        return F.relu(self.fc(pooled))

    def _check_targets(self, targets: object, images: Tensor) -> Tensor:
        heads, batch = len(self.num_classes), images.shape[0]
        targets = check_tensor("targets", targets, dtype="integer", device=images.device)
        if tuple(targets.shape) not in [(batch, heads)] + [(batch,)] * (heads == 1):
            one = "[B] or " if heads == 1 else ""
            raise ValueError(
                f"targets must have shape {one}[B, {heads}] (one label per head) with "
                f"B = {batch} (from images), got {list(targets.shape)}"
            )
        targets = targets.reshape(batch, heads)
        limits = torch.tensor(self.num_classes, device=targets.device)
        if batch and bool(((targets < 0) | (targets >= limits)).any()):
            raise ValueError(
                f"targets must be class indices in [0, num_classes) with num_classes = "
                f"{self.num_classes}, got values from {int(targets.min())} to {int(targets.max())}"
            )
        return targets

    def forward(
        self, images: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        logits = self.head(self.features(images))
        if targets is None:
            return logits, None
        targets = self._check_targets(targets, images)
        chunks = logits.split(self.num_classes, dim=1)
        loss = sum(F.cross_entropy(chunk, targets[:, i]) for i, chunk in enumerate(chunks))
        return logits, loss

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Predicted class per head: [B] for one head, [B, heads] for several."""
        logits = self.head(self.features(images))
        labels = torch.stack([c.argmax(1) for c in logits.split(self.num_classes, 1)], 1)
        return labels[:, 0] if len(self.num_classes) == 1 else labels


def random_batches(
    *tensors: Tensor, batch_size: int, seed: int = 0
) -> Callable[[], Tuple[Tensor, ...]]:
    """Endless shuffled minibatches of tensors that share their first dimension N.

    Returns a function; each call gives the next ``(images[idx], labels[idx], ...)``
    [batch_size, ...] from a seeded random permutation of the N items, with a new
    permutation after each pass (an epoch): the ``data`` that ``course_lib.train.fit``
    expects.
    """
    if not tensors or any(not isinstance(t, Tensor) for t in tensors):
        raise TypeError("random_batches needs one or more tensors")
    count = tensors[0].shape[0] if tensors[0].dim() else 0
    if count == 0 or any(t.dim() == 0 or t.shape[0] != count for t in tensors):
        shapes = [list(t.shape) for t in tensors]
        raise ValueError(f"tensors must share a non-zero first dimension N, got {shapes}")
    batch_size = min(check_int("batch_size", batch_size, 1), count)
    generator = torch.Generator().manual_seed(check_int("seed", seed, 0))
    state = {"order": torch.randperm(count, generator=generator), "position": 0}

    def next_batch() -> Tuple[Tensor, ...]:
        if state["position"] + batch_size > count:
            state["order"], state["position"] = torch.randperm(count, generator=generator), 0
        index = state["order"][state["position"] : state["position"] + batch_size]
        state["position"] += batch_size
        return tuple(t[index] for t in tensors)

    return next_batch


@torch.no_grad()
def extract_features(
    model: nn.Module, images: Tensor, batch_size: int = 512, layer: str = "features"
) -> Tensor:
    """Run ``model.<layer>`` (default ``features``) over images [N, C, H, W] in eval mode,
    in batches on the model's device; returns [N, F] on that device."""
    model = check_model(model)
    if not isinstance(layer, str) or not callable(getattr(model, layer, None)):
        raise ValueError(
            f"layer must name a method of model that returns feature vectors, got {layer!r}"
        )
    images = check_tensor("images", images, "N, C, H, W", dtype="floating")
    batch_size = check_int("batch_size", batch_size, 1)
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else images.device
    with eval_mode(model):
        parts = [
            getattr(model, layer)(images[start : start + batch_size].to(device))
            for start in range(0, images.shape[0], batch_size)
        ]
        if not parts:  # no images: ask the model for the feature size on an empty batch
            return getattr(model, layer)(images[:0].to(device)).flatten(1)
    return torch.cat(parts).flatten(1)
