"""Linear dimensionality reduction: principal component analysis."""

from __future__ import annotations

from typing import Callable, NamedTuple, Tuple

import torch
from torch import Tensor

from course_lib.validation import check_finite, check_int, check_tensor


class PCAResult(NamedTuple):
    """What ``pca`` returns (a tuple, so ``projected, components, ratio = pca(x, k)``)."""

    projected: Tensor  #: the centred data in the new basis, [N, K]
    components: Tensor  #: the principal directions, one per row, [K, D], orthonormal
    explained_variance_ratio: Tensor  #: each component's share of the total variance, [K]


def _on_cpu_for_mps(decompose: Callable[[Tensor], Tuple[Tensor, ...]], matrix: Tensor):
    """MPS has no eigh or SVD kernel: decompose on the CPU there (one small matrix)."""
    if matrix.device.type != "mps":
        return decompose(matrix)
    return tuple(t.to(matrix.device) for t in decompose(matrix.cpu()))


def pca(x: Tensor, k: int) -> PCAResult:
    """Principal component analysis of x [N, D], equal to ``sklearn.decomposition.PCA``.

    With the centred data ``X = x - mean``, the components are the eigenvectors of
    ``X^T X`` (N - 1 times the covariance) with the ``k`` largest eigenvalues, [K, D]; the
    projection is ``X V_k`` [N, K] and the explained-variance ratios are the eigenvalues
    over their sum [K]. With more points than features (N >= D) the D x D eigenproblem is
    the cheap route; otherwise the thin SVD ``X = U S V^T`` gives the same components
    (the rows of ``V^T``) and eigenvalues (``S^2``). Signs follow scikit-learn: the
    largest-magnitude entry of every component is positive. Constant data (no variance)
    gives ratios of 0. Half-precision input is computed in float32.
    """
    x = check_tensor("x", x, "N, D", dtype="floating")
    n, d = x.shape
    if n < 2:
        raise ValueError(f"x must have at least 2 rows [N, D] to have a variance, got {[n, d]}")
    k = check_int("k", k, 1)
    if k > min(n, d):
        raise ValueError(
            f"k must be at most min(N, D) = {min(n, d)} for x [N, D] = {[n, d]}, got {k}"
        )
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    mean = work.mean(dim=0)
    if not bool(torch.isfinite(mean).all()):  # cheaper than testing every entry of x
        check_finite("x", x)
        raise ValueError("x must have finite column sums, got an overflow; scale x down")
    centred = work - mean
    if n >= d:
        eigenvalues, eigenvectors = _on_cpu_for_mps(torch.linalg.eigh, centred.T @ centred)
        variances = eigenvalues.flip(0).clamp_min(0)  # eigh sorts ascending; rounding can dip < 0
        components = eigenvectors[:, -k:].flip(1).T
    else:
        _, singular_values, vh = _on_cpu_for_mps(
            lambda m: torch.linalg.svd(m, full_matrices=False), centred
        )
        variances, components = singular_values**2, vh[:k]
    largest = components.abs().argmax(dim=1, keepdim=True)
    signs = components.gather(1, largest).sign()
    components = components * torch.where(signs == 0, torch.ones_like(signs), signs)
    total = variances.sum()
    tiny = torch.finfo(work.dtype).tiny
    ratios = torch.where(total > 0, variances[:k] / total.clamp_min(tiny), 0)
    projected = centred @ components.T
    return PCAResult(projected.to(x.dtype), components.to(x.dtype), ratios.to(x.dtype))
