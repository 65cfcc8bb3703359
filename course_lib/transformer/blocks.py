"""The Transformer's blocks: encoder block (self-attention + feed-forward) and decoder block
(masked self-attention + cross-attention + feed-forward), and counting parameters.

Every block is built on ``course_lib.attention.MultiHeadAttention`` and names its parts as
``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` do (``self_attn``,
``multihead_attn``, ``linear1``, ``linear2``, ``norm1..3``, ``dropout*``), so a PyTorch
layer's ``state_dict()`` loads into ours and both compute the same thing in eval mode.

Boolean masks mean **True = may attend**, as everywhere in ``course_lib`` (PyTorch's
``nn.Transformer*Layer`` masks mean the opposite: True = blocked). A float mask is added
to the attention scores.

Shape letters: ``B`` batch, ``L`` sequence length, ``S`` source length, ``T`` target
length, ``D`` model width (``d_model``), ``F`` feed-forward width, ``H`` heads.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Callable, Dict, Optional, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import KeyValueCache, MultiHeadAttention
from course_lib.attention.core import check_mask
from course_lib.validation import (
    check_bool,
    check_choice,
    check_float,
    check_instance,
    check_like,
    check_size,
    check_tensor,
)

__all__ = [
    "FromConfig",
    "TransformerBlock",
    "TransformerDecoderBlock",
    "count_parameters",
    "parameter_table",
]

ACTIVATIONS: Dict[str, Callable[[Tensor], Tensor]] = {"relu": F.relu, "gelu": F.gelu}


class FromConfig:
    """``Model.from_config(config)``: build a model from its config dataclass (whose fields
    are the constructor's arguments; the nanoGPT pattern)."""

    @classmethod
    def from_config(cls, config: Any) -> Any:
        """Build the model described by ``config``."""
        return cls(**asdict(config))


class _BlockParts:
    """What both blocks share: argument checks, the feed-forward network and the repr."""

    d_model: int
    activation_name: str
    norm_first: bool
    linear1: nn.Linear
    linear2: nn.Linear
    dropout: nn.Dropout

    def _configure(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int,
        dropout: float,
        activation: str,
        layer_norm_eps: float,
        norm_first: bool,
    ) -> None:
        self.d_model = check_size("d_model", d_model)
        nhead = check_size("nhead", nhead)
        if d_model % nhead:
            raise ValueError(f"nhead ({nhead}) must divide d_model ({d_model})")
        check_size("dim_feedforward", dim_feedforward)
        check_float("dropout", dropout, 0.0, 1.0, include_maximum=False)
        check_float("layer_norm_eps", layer_norm_eps, 0.0, include_minimum=False)
        self.nhead, self.norm_first = nhead, check_bool("norm_first", norm_first)
        self.activation_name = check_choice("activation", activation, sorted(ACTIVATIONS))
        self.activation = ACTIVATIONS[activation]

    def _add_feed_forward_and_norms(
        self, d_model: int, dim_feedforward: int, dropout: float, eps: float, bias: bool, count: int
    ) -> None:
        """The feed-forward network (``linear1``, ``dropout``, ``linear2``) and ``count``
        sub-layers' ``norm{k}`` and ``dropout{k}``, in the order torch.nn creates them."""
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        for k in range(1, count + 1):
            setattr(self, f"norm{k}", nn.LayerNorm(d_model, eps=eps, bias=bias))
        for k in range(1, count + 1):
            setattr(self, f"dropout{k}", nn.Dropout(dropout))

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}, activation={self.activation_name!r}"

    def feed_forward(self, x: Tensor) -> Tensor:
        """The position-wise network ``linear2(dropout(activation(linear1(x))))``: [..., D]."""
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _check_input(
        self, name: str, x: Tensor, length: str = "L", sizes: Optional[dict] = None
    ) -> None:
        sizes = {} if sizes is None else sizes
        check_tensor(name, x, f"B, {length}, {self.d_model}", dtype="floating", sizes=sizes)
        check_like(name, x, self.linear1.weight)


class TransformerBlock(_BlockParts, nn.Module):
    """Encoder block: self-attention, then a position-wise feed-forward network, each
    wrapped in a residual connection and layer normalisation.

    Post-LN (``norm_first=False``, the original paper)::

        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))

    Pre-LN (``norm_first=True``, GPT-2, ViT and most models today) normalises the input
    of each sub-layer instead and leaves the residual path untouched:
    ``x = x + dropout1(self_attn(norm1(x)))`` and ``x = x + dropout2(ffn(norm2(x)))``.

    Self-attention is the only place where positions interact; the feed-forward network
    acts on each position on its own. ``forward(x [B, L, D], mask=None, cache=None,
    is_causal=False)`` returns [B, L, D]; ``mask`` is bool (True = may attend) or float,
    broadcastable to [B, H, L, L]. With a ``KeyValueCache`` the block attends to the cached
    positions too (then ``mask`` must broadcast to [B, H, L, cached + L]). Parameter names
    match ``torch.nn.TransformerEncoderLayer(batch_first=True)``, whose weights load into it.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self._configure(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                        norm_first)  # fmt: skip
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        # linear1, dropout, linear2, norm1, norm2, dropout1, dropout2 (torch.nn's names)
        self._add_feed_forward_and_norms(d_model, dim_feedforward, dropout, layer_norm_eps, bias, 2)

    def forward_with_attention(
        self,
        x: Tensor,
        mask: Optional[Tensor] = None,
        cache: Optional[KeyValueCache] = None,
        need_weights: bool = True,
        is_causal: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Like ``forward``, and also return the attention weights [B, H, L, L]."""
        self._check_input("x", x)
        options = {"need_weights": need_weights, "is_causal": is_causal, "cache": cache}
        if self.norm_first:
            h = self.norm1(x)
            attended, weights = self.self_attn(h, h, h, mask, **options)
            x = x + self.dropout1(attended)
            x = x + self.dropout2(self.feed_forward(self.norm2(x)))
        else:
            attended, weights = self.self_attn(x, x, x, mask, **options)
            x = self.norm1(x + self.dropout1(attended))
            x = self.norm2(x + self.dropout2(self.feed_forward(x)))
        return x, weights

    def forward(
        self,
        x: Tensor,
        mask: Optional[Tensor] = None,
        cache: Optional[KeyValueCache] = None,
        is_causal: bool = False,
    ) -> Tensor:
        """x [B, L, D] -> [B, L, D]; ``mask`` (True = may attend) broadcasts to [B, H, L, L]."""
        return self.forward_with_attention(x, mask, cache, False, is_causal)[0]


class TransformerDecoderBlock(_BlockParts, nn.Module):
    """Decoder block: masked self-attention, cross-attention to the encoder output
    (``memory``), then the feed-forward network; residual + layer norm around each.

    Post-LN (``norm_first=False``)::

        x = norm1(x + dropout1(self_attn(x, x, x, self_mask)))
        x = norm2(x + dropout2(multihead_attn(x, memory, memory, memory_mask)))
        x = norm3(x + dropout3(ffn(x)))

    ``forward(x [B, T, D], memory [B, S, D], self_mask=None, memory_mask=None,
    is_causal=False, cache=None)`` returns [B, T, D]. ``self_mask`` broadcasts to
    [B, H, T, T] (or pass ``is_causal=True``, so a position cannot see later ones),
    ``memory_mask`` to [B, H, T, S] (e.g. the source's ``padding_mask``); both bool, True =
    may attend. A ``KeyValueCache`` makes the self-attention incremental (one new position
    at a time, for decoding). Parameter names match
    ``torch.nn.TransformerDecoderLayer(batch_first=True)``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        norm_first: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self._configure(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                        norm_first)  # fmt: skip
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        # linear1, dropout, linear2, norm1..norm3, dropout1..dropout3 (torch.nn's names)
        self._add_feed_forward_and_norms(d_model, dim_feedforward, dropout, layer_norm_eps, bias, 3)

    def forward_with_attention(
        self,
        x: Tensor,
        memory: Tensor,
        self_mask: Optional[Tensor] = None,
        memory_mask: Optional[Tensor] = None,
        need_weights: bool = True,
        is_causal: bool = False,
        cache: Optional[KeyValueCache] = None,
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Like ``forward``; also return the self- and cross-attention weights
        [B, H, T, T] and [B, H, T, S]."""
        sizes: dict = {}
        self._check_input("x", x, "T", sizes)
        self._check_input("memory", memory, "S", sizes)
        heads, target, source = self.nhead, x.shape[1], memory.shape[1]
        if self_mask is not None:
            check_mask("self_mask", self_mask, (x.shape[0], heads, target, target))
        if memory_mask is not None:
            check_mask("memory_mask", memory_mask, (x.shape[0], heads, target, source))
        own = {"need_weights": need_weights, "is_causal": is_causal, "cache": cache}
        if self.norm_first:
            h = self.norm1(x)
            attended, self_weights = self.self_attn(h, h, h, self_mask, **own)
            x = x + self.dropout1(attended)
            h = self.norm2(x)
            attended, cross_weights = self.multihead_attn(h, memory, memory, memory_mask,
                                                          need_weights)  # fmt: skip
            x = x + self.dropout2(attended)
            x = x + self.dropout3(self.feed_forward(self.norm3(x)))
        else:
            attended, self_weights = self.self_attn(x, x, x, self_mask, **own)
            x = self.norm1(x + self.dropout1(attended))
            attended, cross_weights = self.multihead_attn(x, memory, memory, memory_mask,
                                                          need_weights)  # fmt: skip
            x = self.norm2(x + self.dropout2(attended))
            x = self.norm3(x + self.dropout3(self.feed_forward(x)))
        return x, self_weights, cross_weights

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        self_mask: Optional[Tensor] = None,
        memory_mask: Optional[Tensor] = None,
        is_causal: bool = False,
        cache: Optional[KeyValueCache] = None,
    ) -> Tensor:
        """Decode x [B, T, D] attending to ``memory`` [B, S, D] -> [B, T, D]."""
        return self.forward_with_attention(
            x, memory, self_mask, memory_mask, need_weights=False, is_causal=is_causal,
            cache=cache,
        )[0]  # fmt: skip


# ----------------------------------------------------------------------------------------
# Counting parameters
# ----------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model``; a tensor shared by two modules counts once."""
    check_instance("model", model, nn.Module, "a torch.nn.Module")
    trainable_only = check_bool("trainable_only", trainable_only)
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module) -> Dict[str, int]:
    """Parameters per top-level child module (shared tensors counted where first seen)."""
    check_instance("model", model, nn.Module, "a torch.nn.Module")
    seen: set = set()
    table: Dict[str, int] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        top = name.split(".", 1)[0]
        table[top] = table.get(top, 0) + parameter.numel()
    return table
