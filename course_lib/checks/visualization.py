"""Checks for the exercises of the chapter "网络可视化" (network visualisation).

Each check compares the student's function with ``course_lib.visualization`` on random
inputs and edge cases, in float64 where precision matters:

- ``check_knn_from_distances``: a k-nearest-neighbour vote from a distance matrix;
- ``check_pca``: PCA by the SVD of the centred data (compared up to the sign of each
  component);
- ``check_perplexity_row``: the conditional probabilities of one point, with the
  precision found by a search on the perplexity;
- ``check_tsne_gradient``: the gradient of t-SNE's KL divergence;
- ``check_saliency_map``: the vanilla-gradient saliency map of a CNN.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional

import torch
from torch import Tensor

from course_lib import visualization as V
from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    forbid,
    randn,
)

# --------------------------------------------------------------------------------------
# kNN classification from a distance matrix
# --------------------------------------------------------------------------------------


def _distinct_distances(rows: int, columns: int, seed: int, device: torch.device) -> Tensor:
    """Rows of distinct distances (a random permutation of 1..M each, plus noise)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.argsort(torch.rand(rows, columns, generator=generator), dim=1)
    noise = 0.1 * torch.rand(rows, columns, generator=generator)
    return (order.double() + 1 + noise.double()).to(device)


def _labels(count: int, classes: int, seed: int, device: torch.device) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, classes, (count,), generator=generator).to(device)


def _knn_cases(device: torch.device) -> List[Case]:
    # Ties inside the k nearest (equal distances) but never across the k-th boundary,
    # so the set of neighbours is unambiguous; ties between classes are resolved by rule.
    tied = torch.tensor(
        [[0.0, 0.0, 1.0, 1.0, 5.0, 6.0], [2.0, 1.0, 1.0, 2.0, 9.0, 9.0]],
        dtype=torch.float64,
        device=device,
    )
    return [
        Case("Q=20, M=50, k=5, 4 classes", (_distinct_distances(20, 50, 0, device),
             _labels(50, 4, 1, device), 5, 4)),
        Case("k=1: the nearest neighbour's label", (_distinct_distances(8, 30, 2, device),
             _labels(30, 3, 3, device), 1, 3)),
        Case("k=2: two-way ties between classes", (_distinct_distances(30, 12, 4, device),
             _labels(12, 5, 5, device), 2, 5)),
        Case("k=4: 2-2 ties between classes",
             (tied, torch.tensor([3, 1, 1, 3, 0, 0], device=device), 4, 4)),
        Case("k=M: every bank point votes", (_distinct_distances(5, 7, 6, device),
             _labels(7, 3, 7, device), 7, 3)),
        Case("one query (Q=1)", (_distinct_distances(1, 9, 8, device),
             _labels(9, 2, 9, device), 3, 2)),
        Case("a class no bank point has (num_classes=6)", (_distinct_distances(6, 10, 10, device),
             _labels(10, 3, 11, device), 3, 6)),
        Case("no queries (Q=0)", (torch.zeros(0, 10, dtype=torch.float64, device=device),
             _labels(10, 3, 12, device), 3, 3)),
    ]  # fmt: skip


def _knn_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.actual
    if isinstance(actual, Tensor) and actual.is_floating_point():
        return "返回的应当是类别编号（int64 张量），不是浮点数：用 argmax 得到的下标本来就是整数。"
    distances, labels, k, classes = case.args
    if isinstance(actual, Tensor) and actual.shape == (distances.shape[0],):
        actual = actual.detach().cpu().long()
        farthest = V.knn_from_distances(-distances, labels, k, classes).cpu()
        if torch.equal(actual, farthest):
            return "你选的是距离最大的 k 个点：topk 默认取最大值，需要 largest=False。"
        nearest = distances.topk(k, dim=1, largest=False).indices.cpu()
        votes = torch.zeros(len(actual), classes, dtype=torch.long)
        votes.scatter_add_(1, labels.cpu()[nearest], torch.ones_like(nearest))
        in_range = bool(((actual >= 0) & (actual < classes)).all())
        if in_range and torch.equal(votes.gather(1, actual[:, None])[:, 0], votes.amax(dim=1)):
            return (
                "你选的类别票数都是最多的，只是并列时选错了：票数相同时应取编号最小的类别"
                "（与 scikit-learn 一致）。对每个类别计票（bincount / scatter_add），再用 argmax"
                "——它在并列时返回第一个最大值。"
            )
    return (
        "先对每一行取最小的 k 个距离的下标（topk(k, largest=False)），查出这些近邻的标签，"
        "再对每个类别计票，取票数最多的类别。"
    )


@exercise_check
def check_knn_from_distances(student_knn: Callable[..., Tensor]) -> CheckResult:
    """Check ``student_knn(distances [Q, M], bank_labels [M], k, num_classes)`` → [Q].

    Contract: the k smallest distances of each row vote with their labels; returns the
    class with most votes (ties: the smallest class index, as scikit-learn) as int64 [Q]
    on the distances' device.
    """
    return check_function(
        "kNN 分类",
        student_knn,
        V.knn_from_distances,
        _knn_cases,
        atol=0.0,
        rtol=0.0,
        hint=_knn_hint,
        dtype_hint="这个练习返回类别编号。",
        forbidden=[forbid(V.knn_from_distances, V.knn_classify, V.nearest_neighbors)],
    )


# --------------------------------------------------------------------------------------
# PCA by SVD
# --------------------------------------------------------------------------------------


def _pca_cases(device: torch.device) -> List[Case]:
    scales = torch.tensor([4.0, 2.5, 1.5, 1.0, 0.6, 0.4, 0.2, 0.1], dtype=torch.float64)
    tall = randn(60, 8, seed=20, device=device) * scales.to(device)
    return [
        Case("N=60, D=8, k=3", (tall, 3)),
        Case("data far from the origin (mean 100)", (tall + 100.0, 2)),
        Case("wide data: N=6 < D=10, k=4", (randn(6, 10, seed=21, device=device), 4)),
        Case("k = D (all components)", (randn(25, 5, seed=22, device=device) * 3 - 1, 5)),
        Case("two points (N=2), k=1", (randn(2, 3, seed=23, device=device), 1)),
        Case("k=1 on strongly correlated 2-D data",
             (randn(40, 1, seed=24, device=device) @ torch.tensor([[1.0, 0.5]], dtype=torch.float64,
              device=device) + 0.05 * randn(40, 2, seed=25, device=device), 1)),
    ]  # fmt: skip


def _align_signs(expected: Any, actual: Any) -> Any:
    """Flip the sign of the student's components (and projections) to match the reference."""
    if not (isinstance(actual, (tuple, list)) and len(actual) == 3):
        return actual
    projected, components, ratio = actual
    exp_projected, exp_components, _ = expected
    if not (
        isinstance(components, Tensor)
        and isinstance(projected, Tensor)
        and components.shape == exp_components.shape
        and projected.shape == exp_projected.shape
        and components.is_floating_point()
        and projected.is_floating_point()
    ):
        return actual
    dots = (components.detach().double().cpu() * exp_components.double().cpu()).sum(dim=1)
    signs = torch.where(dots < 0, -1.0, 1.0).to(components.device, components.dtype)
    return (
        projected * signs.to(projected.device, projected.dtype),
        components * signs[:, None],
        ratio,
    )


def _pca_comparator(
    expected: Any, actual: Any, compare: Callable[..., Optional[Mismatch]]
) -> Optional[Mismatch]:
    return compare(tuple(expected), _align_signs(expected, actual))


def _pca_hint(mismatch: Mismatch, case: Case) -> str:
    x, k = case.args
    actual, expected = mismatch.actual, mismatch.expected
    if (
        mismatch.where == "输出[1]"
        and isinstance(actual, Tensor)
        and actual.shape == (x.shape[1], k)
    ):
        return (
            "components 的每一行是一个主成分，形状是 [k, D]："
            "取 Vh 的前 k 行（Vh 已经是 V 的转置）。"
        )
    if (
        mismatch.where == "输出[2]"
        and isinstance(actual, Tensor)
        and actual.shape == expected.shape
    ):
        if abs(float(actual.sum()) - 1.0) < 1e-6 and abs(float(expected.sum()) - 1.0) > 1e-6:
            return "解释方差比的分母是全部奇异值的平方和（总方差），不只是前 k 个。"
        singular = torch.linalg.svdvals(x - x.mean(dim=0))
        if torch.allclose(actual.double().cpu(), (singular / singular.sum())[:k].cpu(), atol=1e-6):
            return "方差与奇异值的平方成正比：比例是 S_i² / ΣS_j²，而不是 S_i / ΣS_j。"
    if "mean 100" in case.name or mismatch.where in ("输出[0]", "输出[1]"):
        return (
            "先把数据中心化（每一列减去它的均值）再做 SVD；投影是中心化后的数据乘以主成分的"
            "转置：(x - mean) @ components.T。"
        )
    return "中心化 → torch.linalg.svd(..., full_matrices=False) → 取 Vh 的前 k 行、S² 的占比。"


@exercise_check
def check_pca(student_pca: Callable[..., Any]) -> CheckResult:
    """Check ``student_pca(x [N, D], k)`` → (projected [N, K], components [K, D], ratio [K]).

    Contract: centre the data, SVD, the first k right singular vectors as rows of
    ``components`` (any sign per component), ``projected = (x - mean) @ components.T``,
    ``ratio`` = S_i^2 / sum_j S_j^2 for the first k; all in x's dtype. The library's
    ``pca`` and ``torch.pca_lowrank`` are off limits (``torch.linalg.svd`` is the tool).
    """
    atol, rtol = 1e-9, 1e-7
    return check_function(
        "用 SVD 做 PCA",
        student_pca,
        lambda x, k: tuple(V.pca(x, k)),
        _pca_cases,
        atol=atol,
        rtol=rtol,
        hint=_pca_hint,
        comparator=_pca_comparator,
        forbidden=[
            forbid(V.pca),
            forbid(torch.pca_lowrank, "sklearn.decomposition.PCA", name="torch.pca_lowrank"),
        ],
    )


# --------------------------------------------------------------------------------------
# Conditional probabilities of one point, by a search on the perplexity
# --------------------------------------------------------------------------------------


def _row(count: int, seed: int, device: torch.device, scale: float = 1.0) -> Tensor:
    """Squared distances from one point to ``count`` others (a 5-D Gaussian cloud)."""
    points = randn(count + 1, 5, seed=seed)
    return (((points[1:] - points[0]) ** 2).sum(dim=1) * scale).to(device)


def _perplexity_cases(device: torch.device) -> List[Case]:
    duplicates = torch.tensor([0.0, 0.0, 0.3, 0.3, 1.2, 2.0, 2.0, 3.5], dtype=torch.float64)
    return [
        Case("M=20 neighbours, perplexity 5", (_row(20, 30, device), 5.0)),
        Case("M=100, perplexity 30", (_row(100, 31, device), 30.0)),
        Case("perplexity 1.5 (a very narrow Gaussian)", (_row(30, 32, device), 1.5)),
        Case("perplexity close to M (M=10, perplexity 9)", (_row(10, 33, device), 9.0)),
        Case("large distances (x 1e4)", (_row(40, 34, device, scale=1e4), 10.0)),
        Case("an outlier: every neighbour is far (5000 + d)", (5000 + _row(40, 36, device), 10.0)),
        Case("tiny distances (x 1e-6)", (_row(40, 35, device, scale=1e-6), 10.0)),
        Case("duplicate points and ties", (duplicates.to(device), 3.0)),
    ]


def _perplexity_reference(squared_distances: Tensor, perplexity: float) -> Tensor:
    p, _ = V.perplexity_search(squared_distances[None], perplexity, tol=1e-12)
    return p[0]


def _perplexity_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.actual
    _, perplexity = case.args
    if not isinstance(actual, Tensor) or not actual.is_floating_point():
        return "返回一个与输入形状相同的浮点张量 p [M]。"
    if torch.isnan(actual).any():
        return (
            "结果里有 NaN：距离很大时 exp(-β d) 全部下溢成 0，0/0 得到 NaN。先把每个距离减去"
            "最小距离（分布不变），再做指数。"
        )
    if "outlier" in case.name:
        return (
            "所有距离都很大时，exp(-β d) 在 β 合适的地方会全部下溢成 0（或只剩几个相等的值）。"
            "先把每个距离减去最小距离（分布不变），再做指数。"
        )
    total = float(actual.double().sum())
    if abs(total - 1.0) > 1e-6:
        return f"p 的和应为 1（现在是 {total:.4g}）：除以 Σ_j exp(-β d_j)。"
    entropy = -float(torch.where(actual > 0, actual * actual.clamp_min(1e-300).log(), 0).sum())
    yours = math.exp(entropy)
    if abs(yours - perplexity) > 1e-6 * perplexity:
        bits = "若你用 log2 计算熵，目标应是 log2(perplexity)，两者不能混用。"
        return (
            f"你的分布的困惑度 e^H 是 {yours:.7g}，目标是 {perplexity:g}：熵太大说明高斯太宽，"
            f"应增大 β，反之减小；一直搜索到 |H - ln(perplexity)| < 1e-10。{bits}"
        )
    return (
        "困惑度对了，但分布形状不对：p_j 应当正比于 exp(-β d_j)，"
        "d_j 是给定的距离平方，不要再开方或平方。"
    )


@exercise_check
def check_perplexity_row(student_row: Callable[[Tensor, float], Tensor]) -> CheckResult:
    """Check ``student_row(squared_distances [M], perplexity)`` → p [M] (sums to 1).

    Contract: p_j ∝ exp(-β d_j) with β found by a search so that exp(entropy) equals the
    perplexity (to about 1e-10 in the entropy); stable for very large and very small
    distances; in the input's dtype. The library's ``perplexity_search`` and
    ``tsne_affinities`` are off limits.
    """
    return check_function(
        "困惑度搜索",
        student_row,
        _perplexity_reference,
        _perplexity_cases,
        atol=1e-6,
        rtol=1e-4,
        hint=_perplexity_hint,
        forbidden=[forbid(V.perplexity_search, V.tsne_affinities, V.tsne)],
    )


# --------------------------------------------------------------------------------------
# The t-SNE gradient
# --------------------------------------------------------------------------------------


def _affinities(count: int, seed: int, perplexity: float, device: torch.device) -> Tensor:
    return V.tsne_affinities(randn(count, 6, seed=seed), perplexity).to(device)


def _gradient_cases(device: torch.device) -> List[Case]:
    coincident = randn(8, 2, seed=44, device=device)
    coincident[1] = coincident[0]
    return [
        Case("N=12 points in 2-D",
             (_affinities(12, 40, 4.0, device), randn(12, 2, seed=41, device=device))),
        Case("N=30, spread-out embedding (x 10)",
             (_affinities(30, 42, 8.0, device), 10 * randn(30, 2, seed=43, device=device))),
        Case("two embedded points coincide", (_affinities(8, 45, 3.0, device), coincident)),
        Case("3-D embedding (E=3)",
             (_affinities(15, 46, 5.0, device), randn(15, 3, seed=47, device=device))),
        Case("tiny embedding (scale 1e-4, as at the start)",
             (_affinities(20, 48, 5.0, device), 1e-4 * randn(20, 2, seed=49, device=device))),
        Case("two points (N=2)",
             (torch.tensor([[0.0, 0.5], [0.5, 0.0]], dtype=torch.float64, device=device),
              randn(2, 2, seed=50, device=device))),
    ]  # fmt: skip


def _gradient_hint(mismatch: Mismatch, case: Case) -> str:
    actual, expected = mismatch.actual, mismatch.expected
    if (
        isinstance(actual, Tensor)
        and isinstance(expected, Tensor)
        and actual.shape == expected.shape
    ):
        a, e = actual.detach().double().cpu(), expected.double().cpu()
        if torch.allclose(a * 4, e, rtol=1e-6, atol=1e-12):
            return (
                "差一个常数因子 4：∂C/∂y_i = 4 Σ_j (p_ij − q_ij)(y_i − y_j)(1 + |y_i − y_j|²)⁻¹。"
            )
        if torch.allclose(-a, e, rtol=1e-6, atol=1e-12):
            return "符号反了：用 y_i − y_j（从 j 指向 i），梯度下降时再减去梯度。"
    return (
        "检查三处：q_ij 的分母 Z 对所有 k ≠ l 求和（对角线不算）；每一项都要乘以 "
        "(1 + |y_i − y_j|²)⁻¹；P 与 Q 都是联合分布（整个矩阵和为 1），不是按行归一化。"
    )


@exercise_check
def check_tsne_gradient(student_gradient: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``student_gradient(p [N, N], y [N, E])`` → dKL/dy [N, E].

    Contract: the exact t-SNE gradient ``4 Σ_j (p_ij − q_ij)(y_i − y_j)(1 + |y_i − y_j|²)⁻¹``
    with Q normalised over all pairs k ≠ l, in y's dtype. The library's ``tsne_gradient``
    / ``tsne`` and autograd (``.backward()``, ``torch.autograd.grad``) are off limits.
    """
    return check_function(
        "t-SNE 的梯度",
        student_gradient,
        lambda p, y: V.tsne_gradient(p, y)[0],
        _gradient_cases,
        atol=1e-12,
        rtol=1e-8,
        hint=_gradient_hint,
        forbidden=[
            forbid(V.tsne_gradient, V.tsne_kl_divergence, V.tsne),
            forbid(
                torch.autograd.grad,
                torch.autograd.backward,
                torch.Tensor.backward,
                name="autograd（.backward() / torch.autograd.grad）",
            ),
        ],
    )


# --------------------------------------------------------------------------------------
# Saliency maps
# --------------------------------------------------------------------------------------


def _model(in_channels: int, classes: int, seed: int, device: torch.device) -> V.SmallCNN:
    """A small random CNN in training mode (batch norm then mixes the images of a batch)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = V.SmallCNN(in_channels, classes, channels=(4, 6, 8), feature_dim=6)
        for module in model.modules():  # non-trivial batch-norm statistics
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.double().to(device).train()


def _images(count: int, channels: int, size: int, seed: int, device: torch.device) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, channels, size, size, generator=generator, dtype=torch.float64).to(
        device
    )


def _saliency_cases(device: torch.device) -> List[Case]:
    return [
        Case("4 RGB images 12x12, 5 classes",
             (_model(3, 5, 60, device), _images(4, 3, 12, 61, device),
              torch.tensor([0, 4, 2, 2], device=device))),
        Case("one grey image (batch of 1)",
             (_model(1, 10, 62, device), _images(1, 1, 16, 63, device),
              torch.tensor([7], device=device))),
        Case("8 images, the same class for all",
             (_model(3, 3, 64, device), _images(8, 3, 8, 65, device),
              torch.full((8,), 1, device=device))),
    ]  # fmt: skip


def _saliency_hint(mismatch: Mismatch, case: Case) -> str:
    actual, expected = mismatch.actual, mismatch.expected
    if isinstance(actual, Tensor) and isinstance(expected, Tensor):
        if actual.dim() == 4:
            return "对通道取最大值：|梯度| 的形状是 [B, C, H, W]，显著图是 [B, H, W]。"
        if actual.shape == expected.shape and actual.is_floating_point():
            if bool((actual < 0).any()):
                return "显著图用梯度的绝对值 |∂s/∂x|：正负两个方向的敏感都算。"
    return (
        "用 model.eval()（批归一化使用训练时统计的均值方差，批内图片互不影响），"
        "对输入 x.requires_grad_(True)，取每张图指定类别的 logit（softmax 之前）之和求梯度，"
        "再取 |梯度| 在通道上的最大值。"
    )


@exercise_check
def check_saliency_map(student_saliency: Callable[..., Tensor]) -> CheckResult:
    """Check ``student_saliency(model, images [B, C, H, W], classes [B])`` → [B, H, W].

    Contract: in eval mode (the model's mode restored afterwards, its batch-norm statistics
    untouched), the gradient of each image's logit for its class with respect to the
    input, absolute value, maximum over channels; in the images' dtype. The library's
    ``saliency_map`` is off limits.
    """

    return check_function(
        "显著图",
        student_saliency,
        V.saliency_map,  # restores the model's training mode, so the student gets it as built
        _saliency_cases,
        atol=1e-10,
        rtol=1e-7,
        hint=_saliency_hint,
        forbidden=[forbid(V.saliency_map)],
    )
