"""Attention from first principles: scaled dot-product attention, masks, multi-head attention
and positional encodings.

Boolean masks follow ``torch.nn.functional.scaled_dot_product_attention``: **True means
"may attend"**. A float mask is added to the scores (use ``-inf`` to block). A query whose
every key is blocked gets all-zero weights and a zero output (no NaN), which is also what
PyTorch's fused kernels return.

Shape letters: ``B`` batch, ``H`` heads, ``Lq`` queries, ``Lk`` keys/values, ``E`` query/key
features, ``Ev`` value features, ``D`` model (embedding) dimension.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MultiHeadAttention",
    "causal_mask",
    "merge_heads",
    "padding_mask",
    "scaled_dot_product_attention",
    "sinusoidal_positional_encoding",
    "split_heads",
]


def _check_mask(mask: Tensor, scores_shape: Tuple[int, ...]) -> None:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool and not mask.is_floating_point():
        raise TypeError(f"mask must be bool (True = may attend) or float, got {mask.dtype}")
    try:
        torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        raise ValueError(
            f"mask of shape {list(mask.shape)} does not broadcast to the scores "
            f"[..., Lq, Lk] = {list(scores_shape)}"
        ) from None


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Optional[Tensor] = None,
    dropout_p: float = 0.0,
    scale: Optional[float] = None,
) -> Tuple[Tensor, Tensor]:
    """``softmax(q k^T * scale + mask) v`` and the attention weights.

    Args:
        q: queries [..., Lq, E]. k: keys [..., Lk, E]. v: values [..., Lk, Ev].
        mask: bool (True = may attend) or float (added to the scores), broadcastable to
            [..., Lq, Lk]; None attends everywhere.
        dropout_p: dropout probability on the weights (use 0 at evaluation time).
        scale: multiplies the scores; default ``1 / sqrt(E)``.

    Returns:
        ``(output [..., Lq, Ev], weights [..., Lq, Lk])``; each row of the weights sums to 1,
        except fully blocked rows, which are all zero (and so is their output).
    """
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"{name} must be a Tensor, got {type(tensor).__name__}")
        if tensor.dim() < 2:
            raise ValueError(f"{name} must have shape [..., L, E], got {list(tensor.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            "q and k must have the same feature size E, "
            f"got q {list(q.shape)} and k {list(k.shape)}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"k and v must have the same length Lk, got k {list(k.shape)} and v {list(v.shape)}"
        )
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # [..., Lq, Lk]
    if mask is not None:
        _check_mask(mask, tuple(scores.shape))
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    weights = torch.softmax(scores, dim=-1)
    # A fully blocked row is softmax(all -inf) = NaN: define it as "attends to nothing".
    weights = torch.nan_to_num(weights, nan=0.0)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v, weights


def causal_mask(length: int, device: Optional[Union[str, torch.device]] = None) -> Tensor:
    """Bool mask [L, L], True on and below the diagonal: position i may attend to j <= i."""
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be a non-negative int, got {length!r}")
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: Tensor, max_length: Optional[int] = None) -> Tensor:
    """Bool key mask [B, 1, 1, Lk] from sequence lengths [B]: True on real tokens.

    Broadcasts against scores [B, H, Lq, Lk] (use ``[:, 0]`` for [B, 1, Lk] without heads).
    """
    if not isinstance(lengths, Tensor) or lengths.dim() != 1:
        raise ValueError("lengths must be a 1-D tensor [B]")
    max_length = int(lengths.max()) if max_length is None and lengths.numel() else (max_length or 0)
    positions = torch.arange(max_length, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1))[:, None, None, :]


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """[B, L, D] -> [B, H, L, D / H]: each head gets its own slice of the features."""
    batch, length, dim = x.shape
    if dim % num_heads != 0:
        raise ValueError(f"feature size {dim} is not divisible by num_heads={num_heads}")
    return x.view(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, L, D / H] -> [B, L, D]: concatenate the heads' outputs feature-wise."""
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, batch-first, with ``torch.nn.MultiheadAttention``'s parameters.

    Queries, keys and values are projected by the three row blocks of ``in_proj_weight``
    [3D, D] (and ``in_proj_bias`` [3D]), split into ``num_heads`` heads of D / H features,
    attended in parallel, concatenated and projected by ``out_proj``. After
    ``load_state_dict(torch_mha.state_dict())`` it computes what
    ``torch.nn.MultiheadAttention(D, H, batch_first=True)`` computes.

    ``forward(query [B, Lq, D], key [B, Lk, D], value [B, Lk, D], mask=None,
    need_weights=True)`` returns ``(output [B, Lq, D], weights [B, H, Lq, Lk])``; ``mask``
    is bool (True = may attend) or float, broadcastable to [B, H, Lq, Lk]. With
    ``need_weights=False`` the fused ``torch.nn.functional.scaled_dot_product_attention``
    kernel does the work and the weights are None.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if embed_dim % num_heads != 0:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim)) if bias else None
        if not bias:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform projections and zero biases, as in ``torch.nn.MultiheadAttention``."""
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
            nn.init.zeros_(self.out_proj.bias)

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"

    def _project(self, x: Tensor, block: int) -> Tensor:
        rows = slice(block * self.embed_dim, (block + 1) * self.embed_dim)
        bias = None if self.in_proj_bias is None else self.in_proj_bias[rows]
        return F.linear(x, self.in_proj_weight[rows], bias)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Optional[Tensor] = None,
        need_weights: bool = True,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        for name, tensor in (("query", query), ("key", key), ("value", value)):
            if not isinstance(tensor, Tensor) or tensor.dim() != 3:
                shape = list(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
                raise ValueError(f"{name} must have shape [B, L, D], got {shape}")
            if tensor.shape[-1] != self.embed_dim:
                raise ValueError(
                    f"{name} must have D = embed_dim = {self.embed_dim} features, "
                    f"got {list(tensor.shape)}"
                )
        if key.shape[:2] != value.shape[:2] or query.shape[0] != key.shape[0]:
            raise ValueError(
                "query [B, Lq, D], key [B, Lk, D] and value [B, Lk, D] disagree: "
                f"{list(query.shape)}, {list(key.shape)}, {list(value.shape)}"
            )
        q = split_heads(self._project(query, 0), self.num_heads)  # [B, H, Lq, D/H]
        k = split_heads(self._project(key, 1), self.num_heads)  # [B, H, Lk, D/H]
        v = split_heads(self._project(value, 2), self.num_heads)
        dropout_p = self.dropout if self.training else 0.0
        if need_weights:
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
        else:
            if mask is not None:
                _check_mask(mask, (q.shape[0], self.num_heads, q.shape[2], k.shape[2]))
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
            weights = None
        return self.out_proj(merge_heads(heads)), weights


def sinusoidal_positional_encoding(length: int, dim: int) -> Tensor:
    """The fixed encodings of "Attention Is All You Need": [length, dim].

    ``PE[p, 2i] = sin(p / 10000^(2i/dim))`` and ``PE[p, 2i+1] = cos(p / 10000^(2i/dim))``:
    each pair of features is a rotation at its own frequency, so ``PE[p + k]`` is a fixed
    linear function of ``PE[p]`` for every offset k.
    """
    for name, value in (("length", length), ("dim", dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # [L, 1]
    frequencies = torch.exp(
        torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / max(dim, 1))
    )  # [ceil(dim / 2)]
    encoding = torch.zeros(length, dim)
    encoding[:, 0::2] = torch.sin(position * frequencies)
    encoding[:, 1::2] = torch.cos(position * frequencies[: dim // 2])
    return encoding
