"""Non-linear dimensionality reduction: exact t-SNE in PyTorch.

P from calibrated Gaussians (``perplexity_search``, ``tsne_affinities``), Q from a
Student t, and gradient descent on KL(P || Q) (``tsne_kl_divergence``, ``tsne_gradient``,
``tsne``) with early exaggeration, momentum and per-parameter gains.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from course_lib.validation import (
    check_float,
    check_int,
    check_sequence,
    check_tensor,
)
from course_lib.visualization.decomposition import pca
from course_lib.visualization.neighbors import pairwise_squared_distances

#: Exact t-SNE keeps [N, N] matrices: beyond this many points use a Barnes-Hut t-SNE.
MAX_TSNE_POINTS = 20_000
#: The most iterations a search or an optimisation accepts.
MAX_STEPS = 10**6


def _wide_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _check_perplexity(perplexity: object, neighbours: int, what: str) -> float:
    """A perplexity in [1, neighbours): an effective number of neighbours per point."""
    perplexity = check_float("perplexity", perplexity, 1.0)
    if perplexity >= neighbours:
        raise ValueError(f"perplexity must be smaller than {what} = {neighbours}, got {perplexity}")
    return perplexity


def perplexity_search(
    squared_distances: Tensor, perplexity: float, tol: float = 1e-5, max_iter: int = 100
) -> Tuple[Tensor, Tensor]:
    """Conditional probabilities ``p_{j|i}`` with a target perplexity, for every row at once.

    Row i of squared_distances [R, M] holds ``|x_i - x_j|^2`` to its M candidate
    neighbours (``inf`` excludes a candidate, e.g. the point itself). Each row gets
    ``p_{j|i} = exp(-beta_i d_ij) / sum_k exp(-beta_i d_ik)``, with the precision
    ``beta_i`` chosen so that the entropy ``H_i = -sum_j p_{j|i} ln p_{j|i}`` equals
    ``ln(perplexity)`` within ``tol`` (perplexity = e^H, the same as 2^H with H in bits).
    ``H`` falls as ``beta`` grows, so each row keeps a bracket around its root and takes
    a Newton step in ``ln beta`` when it lands inside the bracket, else bisects: a few
    steps reach 1e-10. A row whose entropy cannot fall that low (more than ``perplexity``
    candidates at its smallest distance, e.g. duplicated points) ends with its mass
    shared equally by those nearest candidates. Returns ``(probabilities [R, M],
    beta [R])``; every row needs more than ``perplexity`` finite candidates.
    """
    check_tensor("squared_distances", squared_distances, "R, M", dtype="floating")
    if not bool((squared_distances >= 0).all()):  # false for NaN too
        raise ValueError(
            "squared_distances must be non-negative, without NaN (inf excludes a candidate)"
        )
    tol = check_float("tol", tol, 0.0, include_minimum=False)
    max_iter = check_int("max_iter", max_iter, 1, MAX_STEPS)
    finite = torch.isfinite(squared_distances)
    candidates = finite.sum(dim=1)
    fewest = int(candidates.min()) if len(candidates) else math.inf
    perplexity = _check_perplexity(
        perplexity, fewest, "the number of finite candidates in every row of squared_distances"
    )
    if squared_distances.shape[0] == 0:
        return squared_distances.clone(), squared_distances.new_zeros(0)
    wide = _wide_dtype(squared_distances.device)
    # Shift each row by its smallest distance: the probabilities do not change, and
    # exp(-beta d) can no longer underflow to 0 for every candidate of a row at once.
    d = squared_distances.to(wide)
    d = d - d.amin(dim=1, keepdim=True)  # excluded candidates are +inf: never the smallest
    d_or_zero = torch.where(finite, d, 0.0)  # for sums: excluded entries contribute 0
    target = math.log(perplexity)
    # Start at beta = 1 / mean distance: the search no longer depends on the data's scale.
    log_beta = -torch.log((d_or_zero.sum(dim=1) / candidates).clamp_min(1e-12))
    # beta^2 must stay finite, and beta in the caller's dtype: a row with more duplicates than
    # the perplexity pushes beta up for ever, and ends with its mass shared by the duplicates.
    largest = min(torch.finfo(wide).max ** 0.5, torch.finfo(squared_distances.dtype).max)
    max_log_beta = math.log(largest) - 1
    low = torch.full_like(log_beta, -math.inf)  # bracket of ln(beta) around the root
    high = torch.full_like(log_beta, math.inf)
    # The rows still searching, and their distances: finished rows drop out every 4 steps.
    active, rows, rows_or_zero = torch.arange(len(d), device=d.device), d, d_or_zero
    buffer = torch.empty_like(d)

    for step in range(max_iter):
        beta = log_beta[active].exp()
        weights = buffer[: len(active)]
        torch.mul(rows, -beta[:, None], out=weights).exp_()  # exactly 0 where d = inf
        total = weights.sum(dim=1)  # >= 1: the nearest candidate has weight 1
        # Row-wise dot products (einsum is several times faster than linalg.vecdot here).
        mean = torch.einsum("ij,ij->i", weights, rows_or_zero) / total  # E_p[d]
        second = torch.einsum("ij,ij->i", weights.mul_(rows_or_zero), rows_or_zero) / total
        excess = total.log() + beta * mean - target  # H - ln(perplexity)
        done = excess.abs() <= tol
        now, low_now, high_now = log_beta[active], low[active], high[active]
        low_now = torch.where(excess > 0, now, low_now)  # entropy too high: beta must grow
        high_now = torch.where(excess < 0, now, high_now)
        # dH/d(ln beta) = -beta^2 Var_p[d]
        slope = (beta**2 * (second - mean**2)).clamp_min(torch.finfo(wide).tiny)
        newton_step = excess / slope
        # Newton's step when it stays in the bracket and shrinks it at least by half
        # (otherwise Newton can cycle between two points), else bisect; without a full
        # bracket yet, move by at most a factor e^2 in beta.
        bracketed = low_now.isfinite() & high_now.isfinite()
        newton_ok = bracketed & (newton_step.abs() < (high_now - low_now) / 2)
        newton_ok &= (now + newton_step > low_now) & (now + newton_step < high_now)
        fallback = torch.where(bracketed, (low_now + high_now) / 2, now + newton_step.clamp(-2, 2))
        new = torch.where(newton_ok, now + newton_step, fallback).clamp_max(max_log_beta)
        log_beta[active] = torch.where(done, now, new)
        low[active], high[active] = low_now, high_now
        if step % 4 == 3:  # one host sync every 4 steps
            searching = ~done
            if not bool(searching.any()):
                break
            active, rows, rows_or_zero = active[searching], rows[searching], rows_or_zero[searching]
    weights = torch.mul(d, -log_beta.exp()[:, None], out=buffer).exp_()
    probabilities = weights / weights.sum(dim=1, keepdim=True)
    return probabilities.to(squared_distances.dtype), log_beta.exp().to(squared_distances.dtype)


def _check_points(x: object) -> Tensor:
    """The data of t-SNE: finite floating-point points x [N, D], 3 <= N <= MAX_TSNE_POINTS."""
    x = check_tensor("x", x, "N, D", dtype="floating", finite=True)
    if not 3 <= x.shape[0] <= MAX_TSNE_POINTS:
        raise ValueError(
            f"x must have 3 to {MAX_TSNE_POINTS} rows [N, D] for exact t-SNE (it keeps "
            f"[N, N] matrices; subsample, or use sklearn.manifold.TSNE for more points), "
            f"got {list(x.shape)}"
        )
    return x


def tsne_affinities(
    x: Tensor, perplexity: float = 30.0, tol: float = 1e-5, max_iter: int = 200
) -> Tensor:
    """The symmetric joint probabilities P [N, N] of t-SNE for points x [N, D].

    ``p_ij = (p_{j|i} + p_{i|j}) / 2N`` with the conditional probabilities of
    ``perplexity_search`` on squared Euclidean distances; P sums to 1, is symmetric and
    has a zero diagonal. Computed in float64 (float32 on MPS), returned in x's dtype.
    """
    x = _check_points(x)
    n = x.shape[0]
    perplexity = _check_perplexity(perplexity, n - 1, "N - 1 (the neighbours of each point)")
    distances = pairwise_squared_distances(x.to(_wide_dtype(x.device)))
    distances.fill_diagonal_(math.inf)
    conditional, _ = perplexity_search(distances, perplexity, tol=tol, max_iter=max_iter)
    return ((conditional + conditional.T) / (2 * n)).to(x.dtype)


def _student_t_kernel(y: Tensor) -> Tensor:
    """Unnormalised Student-t similarities ``(1 + |y_i - y_j|^2)^-1`` [N, N], zero diagonal."""
    squared_norms = (y * y).sum(dim=1)
    squared_distances = squared_norms[:, None] + squared_norms[None, :] - 2 * y @ y.T
    return (1 + squared_distances.clamp_min(0)).reciprocal().fill_diagonal_(0)


def _check_p_y(p: object, y: object) -> Tuple[Tensor, Tensor]:
    sizes: Dict[str, int] = {}
    y = check_tensor("y", y, "N, E", dtype="floating", sizes=sizes, finite=True)
    if y.shape[0] < 2:
        raise ValueError(f"y must have at least 2 rows [N, E] (points), got {list(y.shape)}")
    p = check_tensor("p", p, "N, N", dtype="floating", sizes=sizes, finite=True)
    if bool((p < 0).any()):
        raise ValueError("p must hold probabilities (non-negative), got negative entries")
    return p.to(y), y


def tsne_kl_divergence(p: Tensor, y: Tensor) -> Tensor:
    """KL(P || Q) = sum_ij p_ij ln(p_ij / q_ij) (a scalar) for an embedding y [N, E].

    ``q_ij = (1 + |y_i - y_j|^2)^-1 / Z`` with ``Z = sum_{k != l} (1 + |y_k - y_l|^2)^-1``;
    terms with ``p_ij = 0`` count 0.
    """
    p, y = _check_p_y(p, y)
    return _kl_divergence(p, _student_t_kernel(y))


def _kl_divergence(p: Tensor, kernel: Tensor) -> Tensor:
    tiny = torch.finfo(p.dtype).tiny
    log_ratio = p.clamp_min(tiny).log() - kernel.clamp_min(tiny).log()
    return torch.where(p > 0, p * log_ratio, 0).sum() + p.sum() * kernel.sum().log()


def tsne_gradient(p: Tensor, y: Tensor, exaggeration: float = 1.0) -> Tuple[Tensor, Tensor]:
    """The gradient of KL(P || Q) with respect to the embedding y [N, E], and the KL.

    ``dC/dy_i = 4 sum_j (a p_ij - q_ij) (y_i - y_j) (1 + |y_i - y_j|^2)^-1``, with
    ``a = exaggeration`` (1 for the plain gradient, larger during early exaggeration).
    Returns ``(gradient [N, E], kl)``; ``kl`` is KL(P || Q) of the unexaggerated P.
    """
    p, y = _check_p_y(p, y)
    exaggeration = check_float("exaggeration", exaggeration, 0.0, include_minimum=False)
    kernel = _student_t_kernel(y)
    z = kernel.sum()
    weights = (exaggeration * p - kernel / z) * kernel  # (a p_ij - q_ij)(1 + d_ij^2)^-1
    gradient = 4 * (weights.sum(dim=1, keepdim=True) * y - weights @ y)
    return gradient, _kl_divergence(p, kernel)


class _GradientWorkspace:
    """``tsne``'s inner loop: the gradient from the upper triangle of the [N, N] matrices.

    Every matrix of the gradient is symmetric (P, the kernel K, P * K, K^2), so each pair
    (i, j) is computed once: row block ``s:t`` is taken against the columns ``s:N``. Its
    left [b, b] part is the diagonal block; the rest stands for both (i, j) and (j, i), so
    it adds to the rows of the block and, transposed, to the rows ``t:N``. That halves the
    work, and blocks of ``block`` rows (384 on the CPU, all N on an accelerator, where one
    big kernel beats many small ones) stay in cache. Buffers are allocated once.
    """

    def __init__(self, p: Tensor, block: Optional[int] = None) -> None:
        n = p.shape[0]
        block = block or (384 if p.device.type == "cpu" else n)
        self.bounds = [(start, min(start + block, n)) for start in range(0, n, block)]
        self.p_blocks = [p[s:t, s:].contiguous() for s, t in self.bounds]
        self.kernel = p.new_empty(block * n)
        self.attraction = p.new_empty(block * n)

    def gradient(self, y: Tensor, exaggeration: float) -> Tensor:
        """``tsne_gradient(p, y, exaggeration)[0]``, computed pair by pair only once.

        The gradient splits into an attractive and a repulsive part,
        ``4 a sum_j p_ij k_ij (y_i - y_j) - 4 / Z sum_j k_ij^2 (y_i - y_j)`` with
        ``k_ij = (1 + |y_i - y_j|^2)^-1``, and ``sum_j w_ij (y_i - y_j)`` is
        ``y_i sum_j w_ij - (W y)_i``: products with ``[y, 1]`` give both terms.
        ``1 + |y_i - y_j|^2`` is ``(1 + |y_i|^2) + |y_j|^2 - 2 y_i . y_j``.
        """
        n, e = y.shape
        squared_norms = (y * y).sum(dim=1)
        y_and_ones = torch.cat([y.T, torch.ones_like(squared_norms)[None]])  # [E + 1, N]
        sums = y.new_zeros(2, e + 1, n)  # sum_j w_ij [y_j, 1] for W = P * K and W = K^2
        z = y.new_zeros(())
        for (s, t), p_block in zip(self.bounds, self.p_blocks):
            rows, columns = t - s, n - s
            kernel = self.kernel[: rows * columns].view(rows, columns)
            torch.add((squared_norms[s:t] + 1)[:, None], squared_norms[None, s:], out=kernel)
            kernel.addmm_(y[s:t], y[s:].T, alpha=-2).clamp_min_(1).reciprocal_()
            kernel[:, :rows].fill_diagonal_(0)
            z += 2 * kernel.sum() - kernel[:, :rows].sum()  # the diagonal block counts once
            attraction = self.attraction[: rows * columns].view(rows, columns)
            torch.mul(kernel, p_block, out=attraction)
            repulsion = kernel.mul_(kernel)
            for total, weights in zip(sums, (attraction, repulsion)):
                total[:, s:t] += y_and_ones[:, s:] @ weights.T  # pairs (i, j), i in s:t
                total[:, t:] += y_and_ones[:, s:t] @ weights[:, rows:]  # the mirrored (j, i)
        attraction, repulsion = sums
        attractive = attraction[e, :, None] * y - attraction[:e].T
        repulsive = repulsion[e, :, None] * y - repulsion[:e].T
        return 4 * (exaggeration * attractive - repulsive / z)


class TSNEState(NamedTuple):
    """What ``tsne`` passes to its ``callback``: the iteration (1-based), the embedding
    [N, E] at that point (a copy) and KL(P || Q) of the unexaggerated P."""

    iteration: int
    embedding: Tensor
    kl_divergence: float


def _initial_embedding(
    x: Tensor, init: Union[str, Tensor], n_components: int, seed: int, dtype: torch.dtype
) -> Tensor:
    """The starting point [N, E]: PCA scaled to std 1e-4, N(0, 1e-4^2), or a given tensor."""
    n = x.shape[0]
    if not isinstance(init, (str, Tensor)):
        raise TypeError(
            f"init must be 'pca', 'random' or a tensor [N, E], got {type(init).__name__}"
        )
    if isinstance(init, Tensor):
        check_tensor("init", init, "N, E", dtype="floating", finite=True)
        if init.shape != (n, n_components):
            raise ValueError(
                f"init must have shape [N, E] = [{n}, {n_components}] (x's N, n_components), "
                f"got {list(init.shape)}"
            )
        return init.detach().to(x.device, dtype).clone()
    if init == "pca":
        if n_components > min(x.shape):
            raise ValueError(
                f"init='pca' needs n_components <= min(N, D) = {min(x.shape)}, got {n_components}"
            )
        y = pca(x.to(dtype), n_components).projected
        return y / y[:, 0].std(correction=0).clamp_min(torch.finfo(dtype).tiny) * 1e-4
    if init == "random":
        generator = torch.Generator().manual_seed(seed)
        return 1e-4 * torch.randn(n, n_components, generator=generator, dtype=dtype).to(x.device)
    raise ValueError(f"init must be 'pca', 'random' or a tensor [N, E], got {init!r}")


def tsne(
    x: Tensor,
    n_components: int = 2,
    perplexity: float = 30.0,
    n_iter: int = 1000,
    seed: int = 0,
    *,
    init: Union[str, Tensor] = "pca",
    learning_rate: Optional[float] = None,
    early_exaggeration: float = 12.0,
    exaggeration_iters: int = 250,
    momentum: Tuple[float, float] = (0.5, 0.8),
    min_gain: float = 0.01,
    callback: Optional[Callable[[TSNEState], None]] = None,
    callback_every: int = 50,
) -> Tensor:
    """Exact t-SNE of x [N, D] into [N, E] (E = ``n_components``), on x's device.

    The schedule is scikit-learn's (and the original implementation's): P from
    ``tsne_affinities``; the embedding starts from the first principal components scaled
    to a standard deviation of 1e-4 (``init="pca"``), from N(0, 1e-4^2) drawn with
    ``seed`` (``init="random"``) or from a given tensor [N, E]. Gradient descent runs
    ``n_iter`` steps: the first ``exaggeration_iters`` with P multiplied by
    ``early_exaggeration`` and momentum ``momentum[0]``, the rest with momentum
    ``momentum[1]``; every coordinate has an adaptive gain (+0.2 while the gradient keeps
    its sign, x0.8 when it flips, at least ``min_gain``). ``learning_rate`` defaults to
    scikit-learn's "auto", ``max(N / early_exaggeration / 4, 50)``. Every
    ``callback_every`` steps and after the last one, ``callback(TSNEState(...))`` is
    called (this computes the KL, so it costs one extra gradient evaluation).

    The cost is O(N^2) memory and time per step: fine up to some 10^4 points on a GPU.
    """
    x = _check_points(x)
    n = x.shape[0]
    n_components = check_int("n_components", n_components, 1, n - 1)
    perplexity = _check_perplexity(perplexity, n - 1, "N - 1 (the neighbours of each point)")
    n_iter = check_int("n_iter", n_iter, 1, MAX_STEPS)
    seed = check_int("seed", seed, 0)
    exaggeration_iters = check_int("exaggeration_iters", exaggeration_iters, 0, MAX_STEPS)
    callback_every = check_int("callback_every", callback_every, 1)
    early_exaggeration = check_float("early_exaggeration", early_exaggeration, 0.0,
                                     include_minimum=False)  # fmt: skip
    min_gain = check_float("min_gain", min_gain, 0.0, include_minimum=False)
    momentum = tuple(
        check_float("momentum", m, 0.0, 1.0, include_maximum=False)
        for m in check_sequence("momentum", momentum, 2)
    )
    rate = (
        max(n / early_exaggeration / 4, 50.0)
        if learning_rate is None
        else check_float("learning_rate", learning_rate, 0.0, include_minimum=False)
    )
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function or None, got {type(callback).__name__}")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    y = _initial_embedding(x, init, n_components, seed, dtype)

    p = tsne_affinities(x, perplexity).to(dtype)
    workspace = _GradientWorkspace(p)
    update = torch.zeros_like(y)
    gains = torch.ones_like(y)
    for step in range(n_iter):
        exploring = step < exaggeration_iters
        gradient = workspace.gradient(y, early_exaggeration if exploring else 1.0)
        same_sign = (update * gradient) < 0  # the step keeps going the same way: speed up
        gains = torch.where(same_sign, gains + 0.2, gains * 0.8).clamp_min_(min_gain)
        update = (momentum[0] if exploring else momentum[1]) * update - rate * gains * gradient
        y = y + update
        if callback is not None and ((step + 1) % callback_every == 0 or step + 1 == n_iter):
            callback(TSNEState(step + 1, y.clone(), float(tsne_kl_divergence(p, y))))
    return y
