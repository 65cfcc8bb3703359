"""The general attention layer with key and value projections, self-attention and its
permutation equivariance.

Shape letters: ``B`` batch, ``Lq`` queries, ``Lx`` input vectors, ``L`` sequence length,
``Dq`` query (and key) features, ``Dx`` input features, ``Dv`` value features.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import Tensor, nn

from course_lib.attention.core import scaled_dot_product_attention
from course_lib.attention.maps import RecordsAttention
from course_lib.validation import (
    check_callable,
    check_float,
    check_like,
    check_size,
    check_tensor,
)

__all__ = ["AttentionLayer", "SelfAttention", "is_permutation_equivariant"]


class AttentionLayer(RecordsAttention, nn.Module):
    """Queries attend over input vectors through learned key and value projections.

    ``keys = X W_K^T`` [B, Lx, Dq] decide *where* each query looks (compared with the
    queries by scaled dot products); ``values = X W_V^T`` [B, Lx, Dv] decide *what* comes
    back. ``forward(query [B, Lq, Dq], inputs [B, Lx, Dx], mask=None) -> (output
    [B, Lq, Dv], weights [B, Lq, Lx])``; ``mask`` is bool (True = may attend) or float,
    broadcastable to [B, Lq, Lx].
    """

    def __init__(self, query_dim: int, input_dim: int, value_dim: Optional[int] = None) -> None:
        super().__init__()
        query_dim = check_size("query_dim", query_dim)
        input_dim = check_size("input_dim", input_dim)
        value_dim = input_dim if value_dim is None else check_size("value_dim", value_dim)
        self.key = nn.Linear(input_dim, query_dim, bias=False)  # W_K
        self.value = nn.Linear(input_dim, value_dim, bias=False)  # W_V

    def forward(
        self, query: Tensor, inputs: Tensor, mask: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        query_dim, input_dim = self.key.weight.shape
        sizes: dict = {}
        check_tensor("query", query, f"B, Lq, {query_dim}", dtype="floating", sizes=sizes)
        check_tensor("inputs", inputs, f"B, Lx, {input_dim}", dtype="floating", sizes=sizes)
        check_like("query", query, self.key.weight)
        check_like("inputs", inputs, self.key.weight)
        output, weights = scaled_dot_product_attention(
            query, self.key(inputs), self.value(inputs), mask
        )
        self.keep(weights)
        return output, weights


class SelfAttention(RecordsAttention, nn.Module):
    """Single-head self-attention: queries, keys and values are all projections of X.

    ``forward(x [B, L, D], mask=None) -> (y [B, L, Dv], weights [B, L, L])`` with
    ``Q = X W_Q^T``, ``K = X W_K^T`` (both [B, L, Dk]) and ``V = X W_V^T`` [B, L, Dv];
    ``mask`` (bool, True = may attend, or float) broadcasts to [B, L, L], for example
    ``causal_mask(L)``.
    """

    def __init__(
        self, dim: int, key_dim: Optional[int] = None, value_dim: Optional[int] = None
    ) -> None:
        super().__init__()
        dim = check_size("dim", dim)
        key_dim = dim if key_dim is None else check_size("key_dim", key_dim)
        value_dim = dim if value_dim is None else check_size("value_dim", value_dim)
        self.query = nn.Linear(dim, key_dim, bias=False)  # W_Q
        self.key = nn.Linear(dim, key_dim, bias=False)  # W_K
        self.value = nn.Linear(dim, value_dim, bias=False)  # W_V

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        check_tensor("x", x, f"B, L, {self.query.in_features}", dtype="floating")
        check_like("x", x, self.query.weight)
        output, weights = scaled_dot_product_attention(
            self.query(x), self.key(x), self.value(x), mask
        )
        self.keep(weights)
        return output, weights


def is_permutation_equivariant(
    layer: Callable[[Tensor], Tensor],
    x: Tensor,
    permutation: Tensor,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> bool:
    """Whether ``layer(x[:, perm]) == layer(x)[:, perm]`` for x [B, L, D] (within tolerance).

    ``layer`` maps [B, L, D] to [B, L, D'] (a tuple output's first item is used);
    ``permutation`` [L] reorders the sequence positions. Equal up to rounding counts as
    equal: attention sums in a different order after the shuffle.
    """
    check_callable("layer", layer, "a module or function mapping [B, L, D] to [B, L, D']")
    check_tensor("x", x, "B, L, D", dtype="floating")
    check_tensor("permutation", permutation, f"{x.shape[1]}", dtype="integer")
    if not torch.equal(permutation.sort().values.cpu(), torch.arange(x.shape[1])):
        raise ValueError(
            f"permutation must hold each of 0..{x.shape[1] - 1} once, got {permutation.tolist()}"
        )
    atol = check_float("atol", atol, 0.0)
    rtol = check_float("rtol", rtol, 0.0)

    def run(inputs: Tensor) -> Tensor:
        output = layer(inputs)
        return output[0] if isinstance(output, (tuple, list)) else output

    permuted_then_layer = run(x[:, permutation])
    layer_then_permuted = run(x)[:, permutation]
    return bool(torch.allclose(permuted_then_layer, layer_then_permuted, atol=atol, rtol=rtol))
