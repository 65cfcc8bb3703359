"""Nearest neighbours and k-nearest-neighbour classification, by one matrix product."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from course_lib.validation import check_choice, check_int, check_tensor

#: The largest distance matrix [N, M] ``pairwise_squared_distances`` builds (4 GiB in float32).
MAX_DISTANCES = 2**30


def check_labels(name: str, labels: object, sizes: Dict[str, int], letter: str = "N") -> Tensor:
    """Class indices: an integer tensor [N] (N bound through ``sizes``) with no negative entry."""
    labels = check_tensor(name, labels, letter, dtype="integer", sizes=sizes)
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError(f"{name} must be non-negative class indices, got {int(labels.min())}")
    return labels


def pairwise_squared_distances(a: Tensor, b: Optional[Tensor] = None) -> Tensor:
    """Squared Euclidean distances [N, M] between the rows of a [N, D] and b [M, D].

    Computed as ``|a|^2 + |b|^2 - 2 a b^T`` (one matrix product) and clipped at 0;
    ``b`` defaults to ``a``, whose diagonal is then exactly 0.
    """
    sizes: Dict[str, int] = {}
    a = check_tensor("a", a, "N, D", dtype="floating", sizes=sizes, finite=True)
    same = b is None
    if not same:
        b = check_tensor("b", b, "M, D", dtype=a.dtype, sizes=sizes, device=a.device, finite=True)
    b = a if same else b
    if a.shape[0] * b.shape[0] > MAX_DISTANCES:
        raise ValueError(
            f"a [N, D] and b [M, D] give a distance matrix of {a.shape[0]} x {b.shape[0]} "
            f"entries, more than {MAX_DISTANCES}; use nearest_neighbors, which works in chunks"
        )
    a_sq = (a * a).sum(1)
    b_sq = a_sq if same else (b * b).sum(1)
    distances = torch.addmm(a_sq[:, None] + b_sq[None, :], a, b.T, alpha=-2).clamp_min_(0)
    if same:
        distances.fill_diagonal_(0)
    return distances


def _distance_matrix(query: Tensor, bank: Tensor, metric: str) -> Tensor:
    """A matrix [Q, M] ordered like the metric: squared Euclidean, or cosine distance."""
    if metric == "euclidean":
        return pairwise_squared_distances(query, bank)
    return 1 - F.normalize(query, dim=1) @ F.normalize(bank, dim=1).T


def _check_query_bank(query: object, bank: object) -> Tuple[Tensor, Tensor]:
    sizes: Dict[str, int] = {}
    query = check_tensor("query", query, "Q, D", dtype="floating", sizes=sizes, finite=True)
    bank = check_tensor(
        "bank", bank, "M, D", dtype=query.dtype, sizes=sizes, device=query.device, finite=True
    )
    return query, bank


def _check_k(k: object, bank_size: int) -> int:
    if bank_size == 0:
        raise ValueError("the bank must hold at least one point (M >= 1), got M = 0")
    k = check_int("k", k, 1)
    if k > bank_size:
        raise ValueError(f"k must be at most the number of bank points M = {bank_size}, got {k}")
    return k


def nearest_neighbors(
    query: Tensor,
    bank: Tensor,
    k: int,
    metric: str = "euclidean",
    chunk_size: Optional[int] = None,
) -> Tuple[Tensor, Tensor]:
    """The ``k`` nearest rows of bank [M, D] for each row of query [Q, D].

    Returns ``(distances, indices)``, both [Q, K], nearest first: Euclidean distances
    (``metric="euclidean"``) or cosine distances 1 - cos (``metric="cosine"``), as
    ``sklearn.neighbors.NearestNeighbors`` returns them. Candidates are ranked with one
    matrix product per chunk of queries (at most ``chunk_size`` rows, by default about
    16M distances per chunk), then the distances of the K chosen are recomputed exactly.
    """
    query, bank = _check_query_bank(query, bank)
    metric = check_choice("metric", metric, ("euclidean", "cosine"))
    k = _check_k(k, bank.shape[0])
    if chunk_size is None:
        chunk_size = max(1, (1 << 24) // bank.shape[0])
    chunk_size = check_int("chunk_size", chunk_size, 1)
    all_indices = []
    for start in range(0, query.shape[0], chunk_size):
        scores = _distance_matrix(query[start : start + chunk_size], bank, metric)
        all_indices.append(scores.topk(k, dim=1, largest=False).indices)
    indices = torch.cat(all_indices) if all_indices else query.new_zeros(0, k, dtype=torch.long)
    neighbours = bank[indices]  # [Q, K, D]
    if metric == "euclidean":
        distances = (query[:, None, :] - neighbours).norm(dim=2)
    else:
        cosine = F.cosine_similarity(query[:, None, :], neighbours, dim=2, eps=1e-12)
        distances = 1 - cosine
    # Re-sort by the exact distances (only near-ties can move); stable keeps index order.
    distances, order = distances.sort(dim=1, stable=True)
    return distances, indices.gather(1, order)


def _vote(neighbour_labels: Tensor) -> Tensor:
    """Majority label of each row of [Q, K]; ties go to the smallest label."""
    labels, _ = neighbour_labels.sort(dim=1)
    # How often each entry's label occurs in its row: the length of its run in the sorted row.
    counts = torch.searchsorted(labels, labels, right=True) - torch.searchsorted(labels, labels)
    # argmax returns the first of equal maxima, in a sorted row the smallest label.
    return labels.gather(1, counts.argmax(dim=1, keepdim=True)).squeeze(1)


def _check_num_classes(labels: Tensor, num_classes: Optional[int]) -> None:
    if num_classes is None:
        return
    needed = int(labels.max()) + 1 if labels.numel() else 1
    check_int("num_classes", num_classes, 1)
    if num_classes < needed:
        raise ValueError(
            f"num_classes = {num_classes} but bank_labels go up to {needed - 1}; "
            f"num_classes must be at least {needed}"
        )


def knn_from_distances(
    distances: Tensor, bank_labels: Tensor, k: int, num_classes: Optional[int] = None
) -> Tensor:
    """k-nearest-neighbour vote from a distance matrix [Q, M] and the bank's labels [M].

    Each query takes the labels of its ``k`` smallest distances and returns the most
    frequent one, [Q] int64; a tie between classes goes to the smallest label (as in
    scikit-learn's ``KNeighborsClassifier``). ``num_classes``, when given, must exceed
    every label.
    """
    sizes: Dict[str, int] = {}
    distances = check_tensor("distances", distances, "Q, M", dtype="floating", sizes=sizes)
    if bool(distances.isnan().any()):
        raise ValueError("distances must not contain NaN (infinity is fine: never a neighbour)")
    bank_labels = check_labels("bank_labels", bank_labels, sizes, "M")
    k = _check_k(k, distances.shape[1])
    _check_num_classes(bank_labels, num_classes)
    nearest = distances.topk(k, dim=1, largest=False).indices
    return _vote(bank_labels.to(distances.device)[nearest])


def knn_classify(
    query: Tensor,
    bank: Tensor,
    bank_labels: Tensor,
    k: int = 5,
    num_classes: Optional[int] = None,
    metric: str = "euclidean",
) -> Tensor:
    """Classify query [Q, D] by a majority vote of its ``k`` nearest rows of bank [M, D].

    ``bank_labels`` [M] are class indices; returns [Q] int64 predictions. Ties between
    classes go to the smallest label, as in scikit-learn's ``KNeighborsClassifier``.
    """
    query, bank = _check_query_bank(query, bank)
    bank_labels = check_labels("bank_labels", bank_labels, {"M": bank.shape[0]}, "M")
    _check_num_classes(bank_labels, num_classes)
    _, indices = nearest_neighbors(query, bank, k, metric=metric)
    return _vote(bank_labels.to(bank.device)[indices])
