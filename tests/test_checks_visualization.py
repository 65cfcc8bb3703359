"""Proof that the exercise checks of the visualisation chapter can fail."""

from __future__ import annotations

import math

import torch

from course_lib import visualization
from course_lib.checks import visualization as checks
from tests.checkproof import Proof, Wrong, parametrize_proofs

# --------------------------------------------------------------------------------------
# kNN from a distance matrix
# --------------------------------------------------------------------------------------


def knn(distances, bank_labels, k, num_classes):
    nearest = distances.topk(k, dim=1, largest=False).indices
    votes = torch.zeros(distances.shape[0], num_classes, dtype=torch.long, device=distances.device)
    votes.scatter_add_(1, bank_labels[nearest], torch.ones_like(nearest))
    return votes.argmax(dim=1)


def knn_farthest(distances, bank_labels, k, num_classes):
    return knn(-distances, bank_labels, k, num_classes)


def knn_ties_to_largest_label(distances, bank_labels, k, num_classes):
    nearest = distances.topk(k, dim=1, largest=False).indices
    votes = torch.zeros(distances.shape[0], num_classes, dtype=torch.long, device=distances.device)
    votes.scatter_add_(1, bank_labels[nearest], torch.ones_like(nearest))
    return num_classes - 1 - votes.flip(1).argmax(dim=1)


def knn_float_result(distances, bank_labels, k, num_classes):
    return knn(distances, bank_labels, k, num_classes).double()


def knn_one_too_many(distances, bank_labels, k, num_classes):
    return knn(distances, bank_labels, min(k + 1, distances.shape[1]), num_classes)


# --------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------


def pca(x, k):
    centred = x - x.mean(dim=0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    components = vh[:k]
    return centred @ components.T, components, (s**2 / (s**2).sum())[:k]


def pca_flipped_signs(x, k):
    projected, components, ratio = pca(x, k)
    return -projected, -components, ratio


def pca_not_centred(x, k):
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    return x @ vh[:k].T, vh[:k], (s**2 / (s**2).sum())[:k]


def pca_components_as_columns(x, k):
    projected, components, ratio = pca(x, k)
    return projected, components.T, ratio


def pca_ratio_of_singular_values(x, k):
    projected, components, _ = pca(x, k)
    s = torch.linalg.svdvals(x - x.mean(dim=0))
    return projected, components, (s / s.sum())[:k]


def pca_ratio_over_k_components(x, k):
    projected, components, _ = pca(x, k)
    s = torch.linalg.svdvals(x - x.mean(dim=0))[:k]
    return projected, components, s**2 / (s**2).sum()


# --------------------------------------------------------------------------------------
# Perplexity search for one point
# --------------------------------------------------------------------------------------


def perplexity_row(squared_distances, perplexity, shift=True, log=torch.log, normalise=True):
    d = squared_distances - squared_distances.min() if shift else squared_distances
    target = math.log(perplexity)
    beta, low, high = 1.0, 0.0, math.inf
    for _ in range(200):
        weights = torch.exp(-beta * d)
        p = weights / weights.sum()
        entropy = -(p * log(p.clamp_min(1e-300))).sum()
        if entropy > target:
            low = beta
            beta = beta * 2 if math.isinf(high) else (beta + high) / 2
        else:
            high = beta
            beta = (beta + low) / 2
    weights = torch.exp(-beta * d)
    return weights / weights.sum() if normalise else weights


def perplexity_row_without_shift(squared_distances, perplexity):
    return perplexity_row(squared_distances, perplexity, shift=False)


def perplexity_row_entropy_in_bits(squared_distances, perplexity):
    return perplexity_row(squared_distances, perplexity, log=torch.log2)


def perplexity_row_unnormalised(squared_distances, perplexity):
    return perplexity_row(squared_distances, perplexity, normalise=False)


def perplexity_row_squares_again(squared_distances, perplexity):
    return perplexity_row(squared_distances**2, perplexity)


def perplexity_row_loose_search(squared_distances, perplexity):
    """Stops after 12 halvings/doublings: the perplexity is only roughly right."""
    d = squared_distances - squared_distances.min()
    beta, low, high = 1.0, 0.0, math.inf
    for _ in range(12):
        p = torch.softmax(-beta * d, dim=0)
        if -(p * p.clamp_min(1e-300).log()).sum() > math.log(perplexity):
            low, beta = beta, (beta * 2 if math.isinf(high) else (beta + high) / 2)
        else:
            high, beta = beta, (beta + low) / 2
    return torch.softmax(-beta * d, dim=0)


# --------------------------------------------------------------------------------------
# t-SNE gradient
# --------------------------------------------------------------------------------------


def tsne_gradient(p, y, factor=4.0, sign=1.0, diagonal=False, kernel_factor=True, rows=False):
    difference = y[:, None, :] - y[None, :, :]  # y_i - y_j, [N, N, E]
    kernel = 1 / (1 + (difference**2).sum(dim=2))
    if not diagonal:
        kernel = kernel * (1 - torch.eye(len(y), dtype=y.dtype, device=y.device))
    q = kernel / (kernel.sum(dim=1, keepdim=True) if rows else kernel.sum())
    weights = (p - q) * (kernel if kernel_factor else 1)
    return sign * factor * (weights[:, :, None] * difference).sum(dim=1)


def gradient_without_4(p, y):
    return tsne_gradient(p, y, factor=1.0)


def gradient_wrong_sign(p, y):
    return tsne_gradient(p, y, sign=-1.0)


def gradient_z_with_diagonal(p, y):
    return tsne_gradient(p, y, diagonal=True)


def gradient_without_kernel_factor(p, y):
    return tsne_gradient(p, y, kernel_factor=False)


def gradient_row_normalised_q(p, y):
    return tsne_gradient(p, y, rows=True)


# --------------------------------------------------------------------------------------
# Saliency maps
# --------------------------------------------------------------------------------------


def saliency(model, images, classes, mode="eval", signed=False, reduce="max", score="logit"):
    was_training = model.training
    model.train(mode == "train")
    x = images.detach().clone().requires_grad_(True)
    logits = model(x)[0]
    if score == "probability":
        logits = logits.softmax(dim=1)
    logits.gather(1, classes[:, None]).sum().backward()
    model.train(was_training)
    gradient = x.grad if signed else x.grad.abs()
    return gradient.amax(dim=1) if reduce == "max" else gradient.mean(dim=1)


def saliency_signed(model, images, classes):
    return saliency(model, images, classes, signed=True)


def saliency_mean_over_channels(model, images, classes):
    return saliency(model, images, classes, reduce="mean")


def saliency_in_training_mode(model, images, classes):
    return saliency(model, images, classes, mode="train")


def saliency_of_the_probability(model, images, classes):
    return saliency(model, images, classes, score="probability")


def saliency_keeps_channels(model, images, classes):
    x = images.detach().clone().requires_grad_(True)
    model.eval()
    model(x)[0].gather(1, classes[:, None]).sum().backward()
    model.train()
    return x.grad.abs()


def tsne_gradient_by_autograd(p, y):
    y = y.detach().clone().requires_grad_()
    kernel = 1 / (1 + torch.cdist(y, y) ** 2) * (1 - torch.eye(len(y), dtype=y.dtype))
    q = kernel / kernel.sum()
    kl = (p * torch.log(p.clamp_min(1e-300) / q.clamp_min(1e-300))).sum()
    (gradient,) = torch.autograd.grad(kl, y)
    return gradient


PROOFS = [
    Proof(
        checks.check_knn_from_distances,
        correct=knn,
        wrong=[
            Wrong(knn_farthest, "largest=False"),
            Wrong(knn_ties_to_largest_label, "编号最小"),
            Wrong(knn_float_result, "int64"),
            Wrong(knn_one_too_many, "最小的 k 个距离"),
        ],
        delegate=visualization.knn_from_distances,
    ),
    Proof(
        checks.check_pca,
        correct=pca,
        wrong=[
            Wrong(pca_not_centred, "中心化"),
            Wrong(pca_components_as_columns, "[k, D]"),
            Wrong(pca_ratio_of_singular_values, "平方"),
            Wrong(pca_ratio_over_k_components, "全部奇异值"),
        ],
        delegate=lambda x, k: tuple(visualization.pca(x, k)),
    ),
    Proof(
        checks.check_perplexity_row,
        correct=perplexity_row,
        wrong=[
            Wrong(perplexity_row_without_shift, "下溢"),
            Wrong(perplexity_row_entropy_in_bits, "log2"),
            Wrong(perplexity_row_unnormalised, "和应为 1"),
            Wrong(perplexity_row_squares_again, "分布形状不对"),
            Wrong(perplexity_row_loose_search, "困惑度 e^H"),
        ],
        delegate=lambda d, perplexity: visualization.perplexity_search(d[None], perplexity)[0][0],
    ),
    Proof(
        checks.check_tsne_gradient,
        correct=tsne_gradient,
        wrong=[
            Wrong(gradient_without_4, "因子 4"),
            Wrong(gradient_wrong_sign, "符号反了"),
            Wrong(gradient_z_with_diagonal, "对角线不算"),
            Wrong(gradient_without_kernel_factor, "(1 + |y_i − y_j|²)⁻¹"),
            Wrong(gradient_row_normalised_q, "不是按行归一化"),
        ],
        delegate=tsne_gradient_by_autograd,
    ),
    Proof(
        checks.check_saliency_map,
        correct=saliency,
        wrong=[
            Wrong(saliency_signed, "绝对值"),
            Wrong(saliency_mean_over_channels, "model.eval()"),
            Wrong(saliency_in_training_mode, "model.eval()"),
            Wrong(saliency_of_the_probability, "softmax 之前"),
            Wrong(saliency_keeps_channels, "对通道取最大值"),
        ],
        delegate=visualization.saliency_map,
    ),
]


def test_pca_check_accepts_any_sign_of_each_component(monkeypatch, capsys):
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    assert checks.check_pca(pca_flipped_signs).status == "passed"


globals().update(parametrize_proofs(PROOFS))
