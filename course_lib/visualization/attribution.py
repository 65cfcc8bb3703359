"""Beyond the notes: what the input pixels do to the output (saliency, adversarial images)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.validation import check_float
from course_lib.visualization.model import check_model, check_model_input, eval_mode
from course_lib.visualization.neighbors import check_labels


def _logits(model: nn.Module, images: Tensor) -> Tensor:
    output = model(images)
    logits = output[0] if isinstance(output, (tuple, list)) else output
    if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != len(images):
        raise TypeError("model(images) must return logits [B, C] or a tuple (logits, loss)")
    return logits


def _check_classes(name: str, classes: Tensor, logits: Tensor) -> Tensor:
    if classes.numel() and int(classes.max()) >= logits.shape[1]:
        raise ValueError(
            f"{name} must be < {logits.shape[1]} (the number of logits), got {int(classes.max())}"
        )
    return classes.to(logits.device)


def _check_inputs(model: object, images: object, name: str, labels: object) -> Tensor:
    """The model, images [B, C, H, W] (dtype and device of the model) and labels [B]."""
    check_model(model)
    images = check_model_input("images", images, model, "B, C, H, W")
    check_labels(name, labels, {"B": images.shape[0]}, "B")
    return images


def saliency_map(model: nn.Module, images: Tensor, classes: Tensor) -> Tensor:
    """Vanilla-gradient saliency: ``max_c |d score_class / d image_c|``, shape [B, H, W].

    ``score_class`` is the logit (before the softmax) of ``classes`` [B] (column indices
    of ``model(images)``'s logits [B, C]). The model runs in eval mode, so the images of
    a batch do not interact through batch norm; its parameters get no gradient.
    """
    images = _check_inputs(model, images, "classes", classes)
    if images.shape[0] == 0:
        return images.new_zeros(0, *images.shape[2:])
    with eval_mode(model):
        inputs = images.detach().clone().requires_grad_(True)
        logits = _logits(model, inputs)
        classes = _check_classes("classes", classes, logits)
        score = logits.gather(1, classes[:, None]).sum()
        (gradient,) = torch.autograd.grad(score, inputs)
    return gradient.abs().amax(dim=1)


def fgsm_attack(model: nn.Module, images: Tensor, labels: Tensor, epsilon: float) -> Tensor:
    """Fast gradient sign method: ``clip(x + epsilon * sign(d loss / d x), 0, 1)``.

    ``loss`` is the cross-entropy of ``model(images)``'s logits [B, C] against the true
    ``labels`` [B]; each pixel of images [B, C, H, W] (values in [0, 1]) moves by at most
    ``epsilon`` (a finite number >= 0) in the direction that increases it. Returns the
    adversarial images.
    """
    images = _check_inputs(model, images, "labels", labels)
    epsilon = check_float("epsilon", epsilon, 0.0)
    if images.shape[0] == 0:
        return images.clone()
    with eval_mode(model):
        inputs = images.detach().clone().requires_grad_(True)
        logits = _logits(model, inputs)
        labels = _check_classes("labels", labels, logits)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        (gradient,) = torch.autograd.grad(loss, inputs)
    return (images.detach() + epsilon * gradient.sign()).clamp(0, 1)
