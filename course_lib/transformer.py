"""Transformers from their blocks up: encoder and decoder blocks, the encoder-decoder of
"Attention Is All You Need", a decoder-only language model (GPT) with key/value caching,
an encoder-only classifier and the Vision Transformer (ViT).

Every block is built on ``course_lib.attention.MultiHeadAttention`` and names its parts as
``torch.nn.TransformerEncoderLayer`` / ``TransformerDecoderLayer`` do (``self_attn``,
``multihead_attn``, ``linear1``, ``linear2``, ``norm1..3``, ``dropout*``), so a PyTorch
layer's ``state_dict()`` loads into ours and both compute the same thing in eval mode.

Boolean masks mean **True = may attend**, as everywhere in ``course_lib`` (PyTorch's
``nn.Transformer*Layer`` masks mean the opposite: True = blocked). A float mask is added
to the attention scores.

Shape letters: ``B`` batch, ``L`` sequence length, ``S`` source length, ``T`` target
length, ``D`` model width (``d_model``), ``F`` feed-forward width, ``H`` heads, ``Dh`` head
width ``D / H``, ``V`` vocabulary size, ``K`` classes, ``C``/``H``/``W`` image channels,
height and width, ``P`` patch size, ``N`` patches per image.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_positional_encoding,
    split_heads,
)
from course_lib.rnn import sample_next_token

__all__ = [
    "GPT",
    "KeyValueCache",
    "PalindromeData",
    "Transformer",
    "TransformerBlock",
    "TransformerClassifier",
    "TransformerDecoderBlock",
    "ViT",
    "causal_lm_loss",
    "count_parameters",
    "embed_patches",
    "make_palindromes",
    "parameter_table",
    "patchify",
    "random_windows",
]


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_dropout(dropout: float) -> float:
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    return float(dropout)


def _check_tokens(name: str, tokens: object) -> Tensor:
    if not isinstance(tokens, Tensor):
        raise TypeError(f"{name} must be an int64 Tensor [B, L], got {type(tokens).__name__}")
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(
            f"{name} must be an int64 Tensor [B, L], got {tokens.dtype} {list(tokens.shape)}"
        )
    return tokens


def _check_sequence(name: str, x: object, d_model: int) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a Tensor [B, L, D], got {type(x).__name__}")
    if x.dim() != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name} must have shape [B, L, D={d_model}], got {list(x.shape)}")
    return x


_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


# ----------------------------------------------------------------------------------------
# Key/value cache: what a decoder remembers between generation steps
# ----------------------------------------------------------------------------------------


class KeyValueCache:
    """The keys and values one self-attention layer has seen so far.

    Buffers ``keys`` and ``values`` [B, H, max_length, Dh] are allocated once;
    ``append(k, v)`` writes the new positions' keys and values [B, H, n, Dh] after the
    ``length`` stored ones and returns all of them, [B, H, length + n, Dh]. Generating
    one token then costs one query against the cache instead of recomputing every
    position's keys and values.
    """

    def __init__(
        self,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        max_length: int,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 0:
            raise ValueError(f"batch_size must be a non-negative int, got {batch_size!r}")
        _check_positive_int("num_heads", num_heads)
        _check_positive_int("head_dim", head_dim)
        _check_positive_int("max_length", max_length)
        shape = (batch_size, num_heads, max_length, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_length(self) -> int:
        return self.keys.shape[2]

    def __repr__(self) -> str:
        batch, heads, max_length, head_dim = self.keys.shape
        return (
            f"KeyValueCache(length={self.length}/{max_length}, batch={batch}, "
            f"heads={heads}, head_dim={head_dim})"
        )

    def append(self, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        """Store keys/values [B, H, n, Dh] of n new positions; return all [B, H, length, Dh]."""
        expected = (*self.keys.shape[:2], self.keys.shape[3])
        for name, tensor in (("k", k), ("v", v)):
            if tensor.dim() != 4 or (*tensor.shape[:2], tensor.shape[3]) != expected:
                raise ValueError(
                    f"{name} must have shape [B={expected[0]}, H={expected[1]}, n, "
                    f"Dh={expected[2]}], got {list(tensor.shape)}"
                )
        end = self.length + k.shape[2]
        if end > self.max_length:
            raise ValueError(
                f"the cache holds at most {self.max_length} positions; it has {self.length} "
                f"and {k.shape[2]} more were appended"
            )
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


def _attend(
    attention: MultiHeadAttention,
    x: Tensor,
    memory: Optional[Tensor],
    mask: Optional[Tensor],
    need_weights: bool,
    cache: Optional[KeyValueCache] = None,
    is_causal: bool = False,
) -> Tuple[Tensor, Optional[Tensor]]:
    """Self-attention (``memory`` None) or cross-attention of ``x`` [B, L, D].

    Usually this is just ``attention(x, kv, kv, mask)``. Two cases project q, k, v here:
    with a cache (self-attention only) the new positions' keys and values are appended
    to it and the queries attend to every cached position; with ``is_causal`` the fused
    kernel is told the mask is causal, so it can skip the blocked half of the scores.
    """
    source = x if memory is None else memory
    if cache is None and not is_causal:
        return attention(x, source, source, mask=mask, need_weights=need_weights)
    bias = attention.in_proj_bias
    weights = attention.in_proj_weight.chunk(3)
    biases = bias.chunk(3) if bias is not None else (None, None, None)
    q, k, v = (
        split_heads(F.linear(inputs, weight, b), attention.num_heads)
        for inputs, weight, b in zip((x, source, source), weights, biases)
    )  # [B, H, n, Dh] each
    if cache is not None:
        k, v = cache.append(k, v)  # [B, H, length, Dh]
    dropout_p = attention.dropout if attention.training else 0.0
    if need_weights:
        if is_causal:
            mask = causal_mask(q.shape[2], device=q.device)
        heads, attention_weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
    else:
        heads = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
        )
        attention_weights = None
    return attention.out_proj(merge_heads(heads)), attention_weights


def _check_causal(is_causal: bool, mask: Optional[Tensor], cache: Optional[KeyValueCache]) -> None:
    if is_causal and mask is not None:
        raise ValueError("give either mask or is_causal=True, not both")
    if is_causal and cache is not None and cache.length > 0:
        raise ValueError(
            "is_causal=True assumes the queries start at position 0, but the cache already "
            f"holds {cache.length} positions; pass an explicit mask instead"
        )


# ----------------------------------------------------------------------------------------
# The blocks
# ----------------------------------------------------------------------------------------


class TransformerBlock(nn.Module):
    """Encoder block: self-attention, then a position-wise feed-forward network, each
    wrapped in a residual connection and layer normalisation.

    Post-LN (``norm_first=False``, the original paper)::

        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))

    Pre-LN (``norm_first=True``, GPT-2, ViT and most models today) normalises the input
    of each sub-layer instead and leaves the residual path untouched:
    ``x = x + dropout1(self_attn(norm1(x)))`` and ``x = x + dropout2(ffn(norm2(x)))``.

    Self-attention is the only place where positions interact; the feed-forward network
    acts on each position on its own. ``forward(x [B, L, D], mask=None, cache=None)``
    returns [B, L, D]; ``mask`` is bool (True = may attend) or float, broadcastable to
    [B, H, L, L]. With a ``KeyValueCache`` the block attends to the cached positions too
    (then ``mask`` must broadcast to [B, H, L, cached + L]). Parameter names match
    ``torch.nn.TransformerEncoderLayer(batch_first=True)``, whose weights load into it.
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
        _check_positive_int("d_model", d_model)
        _check_positive_int("nhead", nhead)
        _check_positive_int("dim_feedforward", dim_feedforward)
        _check_dropout(dropout)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        self.d_model, self.nhead, self.norm_first = d_model, nhead, bool(norm_first)
        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}, activation={self.activation_name!r}"

    def feed_forward(self, x: Tensor) -> Tensor:
        """The position-wise network ``linear2(dropout(activation(linear1(x))))``: [..., D]."""
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def forward_with_attention(
        self,
        x: Tensor,
        mask: Optional[Tensor] = None,
        cache: Optional[KeyValueCache] = None,
        need_weights: bool = True,
        is_causal: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Like ``forward``, and also return the attention weights [B, H, L, L]."""
        _check_sequence("x", x, self.d_model)
        _check_causal(is_causal, mask, cache)
        if self.norm_first:
            h = self.norm1(x)
            attended, weights = _attend(
                self.self_attn, h, None, mask, need_weights, cache, is_causal
            )
            x = x + self.dropout1(attended)
            x = x + self.dropout2(self.feed_forward(self.norm2(x)))
        else:
            attended, weights = _attend(
                self.self_attn, x, None, mask, need_weights, cache, is_causal
            )
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
        return self.forward_with_attention(x, mask, cache, need_weights=False, is_causal=is_causal)[
            0
        ]


class TransformerDecoderBlock(nn.Module):
    """Decoder block: masked self-attention, cross-attention to the encoder output
    (``memory``), then the feed-forward network; residual + layer norm around each.

    Post-LN (``norm_first=False``)::

        x = norm1(x + dropout1(self_attn(x, x, x, self_mask)))
        x = norm2(x + dropout2(multihead_attn(x, memory, memory, memory_mask)))
        x = norm3(x + dropout3(ffn(x)))

    ``forward(x [B, T, D], memory [B, S, D], self_mask=None, memory_mask=None)`` returns
    [B, T, D]. ``self_mask`` broadcasts to [B, H, T, T] (pass ``causal_mask(T)`` so a
    position cannot see later ones), ``memory_mask`` to [B, H, T, S] (e.g. the source's
    ``padding_mask``); both bool, True = may attend. Parameter names match
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
        _check_positive_int("d_model", d_model)
        _check_positive_int("nhead", nhead)
        _check_positive_int("dim_feedforward", dim_feedforward)
        _check_dropout(dropout)
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
            )
        self.d_model, self.nhead, self.norm_first = d_model, nhead, bool(norm_first)
        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.multihead_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def extra_repr(self) -> str:
        return f"norm_first={self.norm_first}, activation={self.activation_name!r}"

    def feed_forward(self, x: Tensor) -> Tensor:
        """The position-wise network ``linear2(dropout(activation(linear1(x))))``: [..., D]."""
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def forward_with_attention(
        self,
        x: Tensor,
        memory: Tensor,
        self_mask: Optional[Tensor] = None,
        memory_mask: Optional[Tensor] = None,
        need_weights: bool = True,
        is_causal: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
        """Like ``forward``; also return the self- and cross-attention weights
        [B, H, T, T] and [B, H, T, S]."""
        _check_sequence("x", x, self.d_model)
        _check_sequence("memory", memory, self.d_model)
        _check_causal(is_causal, self_mask, None)
        if memory.shape[0] != x.shape[0]:
            raise ValueError(
                f"x [B, T, D] and memory [B, S, D] must have the same batch size, "
                f"got {list(x.shape)} and {list(memory.shape)}"
            )
        if self.norm_first:
            attended, self_weights = _attend(
                self.self_attn, self.norm1(x), None, self_mask, need_weights, is_causal=is_causal
            )
            x = x + self.dropout1(attended)
            attended, cross_weights = _attend(
                self.multihead_attn, self.norm2(x), memory, memory_mask, need_weights
            )
            x = x + self.dropout2(attended)
            x = x + self.dropout3(self.feed_forward(self.norm3(x)))
        else:
            attended, self_weights = _attend(
                self.self_attn, x, None, self_mask, need_weights, is_causal=is_causal
            )
            x = self.norm1(x + self.dropout1(attended))
            attended, cross_weights = _attend(
                self.multihead_attn, x, memory, memory_mask, need_weights
            )
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
    ) -> Tensor:
        """Decode x [B, T, D] attending to ``memory`` [B, S, D] -> [B, T, D]."""
        return self.forward_with_attention(
            x, memory, self_mask, memory_mask, need_weights=False, is_causal=is_causal
        )[0]


# ----------------------------------------------------------------------------------------
# Counting parameters
# ----------------------------------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model``; a tensor shared by two modules counts once."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module) -> Dict[str, int]:
    """Parameters per top-level child module (shared tensors counted where first seen)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    seen: set = set()
    table: Dict[str, int] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        top = name.split(".", 1)[0]
        table[top] = table.get(top, 0) + parameter.numel()
    return table


# ----------------------------------------------------------------------------------------
# Encoder-decoder: the model of "Attention Is All You Need"
# ----------------------------------------------------------------------------------------


class Transformer(nn.Module):
    """The encoder-decoder Transformer; the defaults build the paper's base model.

    Token embeddings scaled by ``sqrt(d_model)`` plus sinusoidal positions (then dropout)
    feed ``num_encoder_layers`` encoder blocks and ``num_decoder_layers`` decoder blocks
    (post-LN as in the paper; ``norm_first=True`` adds a final LayerNorm to each stack).
    ``share_embeddings`` uses one embedding table for source and target (the paper's
    shared 37000-token vocabulary; needs equal vocabulary sizes) and ``tie_output`` uses
    the target embedding as the output projection too (then without bias).

    Same interface as ``course_lib.rnn.Seq2Seq``:
    ``forward(source [B, S], source_lengths [B], target [B, T])`` returns
    ``(logits [B, T-1, V], loss)``, where ``target`` is ``<start> ... <end> <pad>...``;
    the loss is the cross-entropy over non-padding target positions.
    ``generate(source, source_lengths, max_length)`` decodes greedily, [B, max_length].
    """

    def __init__(
        self,
        src_vocab_size: int = 37000,
        tgt_vocab_size: int = 37000,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        share_embeddings: bool = True,
        tie_output: bool = True,
        max_length: int = 1024,
        label_smoothing: float = 0.0,
        pad_id: int = 0,
        start_id: int = 1,
        end_id: int = 2,
    ) -> None:
        super().__init__()
        for name, value in (
            ("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size),
            ("d_model", d_model), ("nhead", nhead), ("dim_feedforward", dim_feedforward),
            ("max_length", max_length),
        ):  # fmt: skip
            _check_positive_int(name, value)
        for name, value in (
            ("num_encoder_layers", num_encoder_layers),
            ("num_decoder_layers", num_decoder_layers),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(
                "share_embeddings=True needs src_vocab_size == tgt_vocab_size, got "
                f"{src_vocab_size} and {tgt_vocab_size}; pass share_embeddings=False"
            )
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.d_model, self.nhead = d_model, nhead
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        self.label_smoothing = float(label_smoothing)
        self.source_embedding = nn.Embedding(src_vocab_size, d_model, padding_idx=pad_id)
        self.target_embedding = (
            self.source_embedding
            if share_embeddings
            else nn.Embedding(tgt_vocab_size, d_model, padding_idx=pad_id)
        )
        self.register_buffer(
            "positions", sinusoidal_positional_encoding(max_length, d_model), persistent=False
        )
        self.embedding_dropout = nn.Dropout(dropout)
        layer_options = {
            "d_model": d_model, "nhead": nhead, "dim_feedforward": dim_feedforward,
            "dropout": dropout, "activation": activation, "norm_first": norm_first,
        }  # fmt: skip
        self.encoder_layers = nn.ModuleList(
            TransformerBlock(**layer_options) for _ in range(num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            TransformerDecoderBlock(**layer_options) for _ in range(num_decoder_layers)
        )
        # Post-LN stacks already end in a LayerNorm; pre-LN stacks need a final one.
        self.encoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.output = nn.Linear(d_model, tgt_vocab_size, bias=not tie_output)
        # Embeddings get std 1/sqrt(D): multiplied by sqrt(D) they have unit scale, like
        # the positional encodings, and as a tied output layer they give small logits.
        for embedding in {
            id(e): e for e in (self.source_embedding, self.target_embedding)
        }.values():
            nn.init.normal_(embedding.weight, std=d_model**-0.5)
            with torch.no_grad():
                embedding.weight[pad_id].zero_()
        if tie_output:
            self.output.weight = self.target_embedding.weight

    def _embed(self, tokens: Tensor, embedding: nn.Embedding) -> Tensor:
        length = tokens.shape[1]
        if length > self.positions.shape[0]:
            raise ValueError(
                f"sequences of length {length} exceed max_length={self.positions.shape[0]}"
            )
        x = embedding(tokens) * math.sqrt(self.d_model) + self.positions[:length]
        return self.embedding_dropout(x)

    def _check_source(self, source: Tensor, source_lengths: Tensor) -> None:
        _check_tokens("source", source)
        if not isinstance(source_lengths, Tensor) or source_lengths.shape != (source.shape[0],):
            shape = list(source_lengths.shape) if isinstance(source_lengths, Tensor) else None
            raise ValueError(
                f"source_lengths must be a Tensor of shape [B] = [{source.shape[0]}], got {shape}"
            )
        if source.shape[0] and (
            int(source_lengths.min()) < 1 or int(source_lengths.max()) > source.shape[1]
        ):
            raise ValueError(f"source_lengths must be in [1, S={source.shape[1]}]")

    def encode(self, source: Tensor, source_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Encoder output (the "memory") [B, S, D] and the source key mask [B, 1, 1, S]."""
        self._check_source(source, source_lengths)
        source_mask = padding_mask(source_lengths, source.shape[1])
        x = self._embed(source, self.source_embedding)
        for layer in self.encoder_layers:
            x = layer(x, source_mask)
        return self.encoder_norm(x), source_mask

    def decode(self, target_input: Tensor, memory: Tensor, source_mask: Tensor) -> Tensor:
        """Decoder output [B, T, D] for target tokens [B, T] (each sees only earlier ones)."""
        _check_tokens("target_input", target_input)
        x = self._embed(target_input, self.target_embedding)
        for layer in self.decoder_layers:
            x = layer(x, memory, memory_mask=source_mask, is_causal=True)  # causal self-attention
        return self.decoder_norm(x)

    def forward(
        self, source: Tensor, source_lengths: Tensor, target: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """Teacher-forced logits [B, T-1, V] for ``target[:, 1:]`` and their mean cross-entropy."""
        _check_tokens("target", target)
        if target.shape[0] != source.shape[0] or target.shape[1] < 2:
            raise ValueError(
                f"target must have shape [B={source.shape[0]}, T>=2], got {list(target.shape)}"
            )
        memory, source_mask = self.encode(source, source_lengths)
        decoder_input, decoder_target = target[:, :-1], target[:, 1:]
        logits = self.output(self.decode(decoder_input, memory, source_mask))
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), decoder_target.reshape(-1),
            ignore_index=self.pad_id, label_smoothing=self.label_smoothing,
        )  # fmt: skip
        return logits, loss

    @torch.no_grad()
    def generate(self, source: Tensor, source_lengths: Tensor, max_length: int = 12) -> Tensor:
        """Greedy decoding: source [B, S] -> token ids [B, max_length] (after ``<start>``;
        ``<end>`` then padding once a sequence is finished)."""
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 0:
            raise ValueError(f"max_length must be a non-negative int, got {max_length!r}")
        memory, source_mask = self.encode(source, source_lengths)
        batch = source.shape[0]
        tokens = torch.full((batch, 1), self.start_id, dtype=torch.long, device=source.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=source.device)
        for _ in range(max_length):
            # The decoder is re-run on the whole prefix: simple, and cheap for short outputs.
            # (GPT below shows the key/value cache that avoids the recomputation.)
            logits = self.output(self.decode(tokens, memory, source_mask)[:, -1])
            token = logits.argmax(dim=-1).masked_fill(finished, self.pad_id)
            finished |= token == self.end_id
            tokens = torch.cat([tokens, token.unsqueeze(1)], dim=1)
        return tokens[:, 1:]

    @torch.no_grad()
    def cross_attention(
        self, source: Tensor, source_lengths: Tensor, target_input: Tensor
    ) -> Tensor:
        """Cross-attention weights of every decoder layer, teacher-forced on
        ``target_input`` [B, T]: [layers, B, H, T, S]."""
        memory, source_mask = self.encode(source, source_lengths)
        self_mask = causal_mask(target_input.shape[1], device=target_input.device)
        x = self._embed(_check_tokens("target_input", target_input), self.target_embedding)
        maps = []
        for layer in self.decoder_layers:
            x, _, cross = layer.forward_with_attention(x, memory, self_mask, source_mask)
            maps.append(cross)
        if not maps:
            return memory.new_zeros(0, *source.shape[:1], self.nhead, target_input.shape[1], 0)
        return torch.stack(maps)


# ----------------------------------------------------------------------------------------
# Decoder-only language model
# ----------------------------------------------------------------------------------------


def causal_lm_loss(logits: Tensor, tokens: Tensor, ignore_index: int = -100) -> Tensor:
    """Next-token cross-entropy: the logits at position t predict token t + 1.

    Args:
        logits: a language model's outputs at every position of ``tokens``, [B, T, V].
        tokens: the token ids the logits were computed from, int64 [B, T].
        ignore_index: target id that does not count (e.g. padding).

    Returns:
        The mean of ``cross_entropy(logits[:, :-1], tokens[:, 1:])`` (natural log) over
        the B * (T - 1) predictions: the last position has no next token, and the first
        token is never predicted.
    """
    if not isinstance(logits, Tensor) or logits.dim() != 3:
        raise ValueError(
            f"logits must have shape [B, T, V], got {getattr(logits, 'shape', logits)}"
        )
    _check_tokens("tokens", tokens)
    if tokens.shape != logits.shape[:2]:
        raise ValueError(
            f"tokens must have shape [B, T] = {list(logits.shape[:2])} to match the logits, "
            f"got {list(tokens.shape)}"
        )
    predictions = logits[:, :-1].reshape(-1, logits.shape[-1])
    return F.cross_entropy(predictions, tokens[:, 1:].reshape(-1), ignore_index=ignore_index)


def random_windows(
    ids: Tensor, block_size: int, batch_size: int, generator: Optional[torch.Generator] = None
) -> Tuple[Tensor, Tensor]:
    """A batch of random windows of a token stream ``ids`` [N]: inputs and next tokens.

    Returns ``(x, y)``, both int64 [batch_size, block_size], with ``y[:, t] = x[:, t + 1]``
    inside the stream (``y`` is ``x`` shifted left by one).
    """
    if not isinstance(ids, Tensor) or ids.dim() != 1:
        raise ValueError(f"ids must be a 1-D Tensor [N], got {getattr(ids, 'shape', ids)}")
    _check_positive_int("block_size", block_size)
    _check_positive_int("batch_size", batch_size)
    if len(ids) <= block_size:
        raise ValueError(f"ids must be longer than block_size={block_size}, got {len(ids)}")
    device = generator.device if generator is not None else torch.device("cpu")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator, device=device)
    offsets = starts.to(ids.device)[:, None] + torch.arange(block_size + 1, device=ids.device)
    windows = ids[offsets]  # [B, block_size + 1]
    return windows[:, :-1], windows[:, 1:]


class GPT(nn.Module):
    """A decoder-only Transformer language model (GPT-2 style).

    Token embeddings plus learned position embeddings, ``num_layers`` pre-LN blocks with
    GELU and a causal mask (position t sees positions 0..t only), a final LayerNorm and
    an output layer tied to the token embedding. ``norm_first=False`` builds the same
    model with post-LN blocks (and no final LayerNorm), to compare the two.

    ``forward(x [B, T], targets=None, cache=None)`` returns ``(logits [B, T, V], loss)``
    with ``targets`` the next tokens [B, T] (``x`` shifted by one, as ``random_windows``
    gives them) and loss their mean cross-entropy (None without targets).
    ``generate`` samples continuations, by default with a ``KeyValueCache`` per layer.
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 128,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 4,
        dim_feedforward: Optional[int] = None,
        dropout: float = 0.0,
        tie_weights: bool = True,
        norm_first: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size), ("block_size", block_size), ("d_model", d_model),
            ("nhead", nhead), ("num_layers", num_layers),
        ):  # fmt: skip
            _check_positive_int(name, value)
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.vocab_size, self.block_size, self.d_model = vocab_size, block_size, d_model
        self.nhead = nhead
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(block_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model, nhead, dim_feedforward, dropout, activation="gelu", norm_first=norm_first
            )
            for _ in range(num_layers)
        )
        # A post-LN stack already ends in a LayerNorm; a pre-LN stack needs a final one.
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2: scale the residual branches' output layers by 1/sqrt(2 * layers), so the
        # residual stream does not grow with depth at initialisation.
        for block in self.blocks:
            for linear in (block.linear2, block.self_attn.out_proj):
                nn.init.normal_(linear.weight, std=0.02 / math.sqrt(2 * num_layers))
        if tie_weights:
            self.lm_head.weight = self.token_embedding.weight

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, MultiHeadAttention):
            nn.init.normal_(module.in_proj_weight, std=0.02)

    def new_cache(self, batch_size: int) -> List[KeyValueCache]:
        """An empty ``KeyValueCache`` per block for ``batch_size`` sequences."""
        parameter = self.token_embedding.weight
        return [
            KeyValueCache(
                batch_size, self.nhead, self.d_model // self.nhead, self.block_size,
                device=parameter.device, dtype=parameter.dtype,
            )
            for _ in self.blocks
        ]  # fmt: skip

    def forward(
        self,
        x: Tensor,
        targets: Optional[Tensor] = None,
        cache: Optional[Sequence[KeyValueCache]] = None,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Logits [B, T, V] for tokens x [B, T] and, given ``targets`` [B, T], their loss."""
        _check_tokens("x", x)
        start = 0 if cache is None else cache[0].length
        length = x.shape[1]
        if start + length > self.block_size:
            raise ValueError(
                f"positions {start}..{start + length - 1} exceed block_size={self.block_size}"
            )
        positions = torch.arange(start, start + length, device=x.device)
        h = self.dropout(self.token_embedding(x) + self.position_embedding(positions))
        if cache is None:  # the fused kernel applies the causal mask itself
            for block in self.blocks:
                h = block(h, is_causal=True)
        else:  # new position i (absolute start + i) may see absolute positions <= start + i
            mask = torch.ones(length, start + length, dtype=torch.bool, device=x.device)
            mask = mask.tril(start)
            for block, layer_cache in zip(self.blocks, cache):
                h = block(h, mask, layer_cache)
        logits = self.lm_head(self.norm(h))
        if targets is None:
            return logits, None
        _check_tokens("targets", targets)
        if targets.shape != x.shape:
            raise ValueError(
                f"targets must have the shape of x {list(x.shape)}, got {list(targets.shape)}"
            )
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> Tensor:
        """Attention weights of every block for tokens [B, T]: [layers, B, H, T, T]."""
        _check_tokens("x", x)
        length = x.shape[1]
        if length > self.block_size:
            raise ValueError(f"x has {length} positions, more than block_size={self.block_size}")
        positions = torch.arange(length, device=x.device)
        h = self.token_embedding(x) + self.position_embedding(positions)
        mask = causal_mask(length, device=x.device)
        maps = []
        for block in self.blocks:
            h, weights = block.forward_with_attention(h, mask)
            maps.append(weights)
        return torch.stack(maps)

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Continue ``prompt_ids`` ([T0] or [B, T0], T0 >= 1) by ``length`` sampled tokens.

        Returns the prompt followed by the new tokens, [T0 + length] or [B, T0 + length]
        (as ``course_lib.rnn.CharLanguageModel.generate``); sampling is
        ``course_lib.rnn.sample_next_token`` (temperature 0 is greedy). With ``use_cache``
        each step feeds only the newest token and reuses the cached keys and values of
        the earlier ones; the result is the same as recomputing everything
        (``use_cache=False``). Once the text is longer than ``block_size`` the window
        slides, every position changes, and the model recomputes the window each step.
        """
        if not isinstance(prompt_ids, Tensor) or prompt_ids.dtype != torch.long:
            raise TypeError("prompt_ids must be an int64 Tensor [T0] or [B, T0]")
        single = prompt_ids.dim() == 1
        tokens = prompt_ids.unsqueeze(0) if single else prompt_ids
        if tokens.dim() != 2 or tokens.shape[1] < 1:
            raise ValueError(
                f"prompt_ids must have shape [T0] or [B, T0] with T0 >= 1, "
                f"got {list(prompt_ids.shape)}"
            )
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be a non-negative int, got {length!r}")
        was_training = self.training
        self.eval()
        tokens = tokens.to(self.token_embedding.weight.device)
        cache = self.new_cache(tokens.shape[0]) if use_cache else None
        logits, _ = self(tokens[:, -self.block_size :], cache=cache)
        for step in range(length):
            token = sample_next_token(logits[:, -1], temperature, top_k, generator)
            tokens = torch.cat([tokens, token.unsqueeze(1)], dim=1)
            if step == length - 1:
                break
            if cache is not None and cache[0].length < self.block_size:
                logits, _ = self(token.unsqueeze(1), cache=cache)
            else:
                cache = None
                logits, _ = self(tokens[:, -self.block_size :])
        self.train(was_training)
        return tokens[0] if single else tokens


# ----------------------------------------------------------------------------------------
# Encoder-only classifier and its generated task
# ----------------------------------------------------------------------------------------


class PalindromeData:
    """Token sequences and labels for "is this sequence a palindrome?".

    ``tokens`` int64 [N, max_length] (letters are ids 1..alphabet, 0 is padding after
    the end), ``lengths`` int64 [N], ``labels`` int64 [N] (1 = palindrome).
    """

    def __init__(self, tokens: Tensor, lengths: Tensor, labels: Tensor, alphabet: str) -> None:
        self.tokens, self.lengths, self.labels, self.alphabet = tokens, lengths, labels, alphabet

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return (
            f"PalindromeData({len(self)} sequences of length <= {self.tokens.shape[1]}, "
            f"{int(self.labels.sum())} palindromes)"
        )

    def text(self, index: int) -> str:
        """Sequence ``index`` as letters."""
        ids = self.tokens[index, : int(self.lengths[index])].tolist()
        return "".join(self.alphabet[i - 1] for i in ids)


def make_palindromes(
    count: int,
    min_length: int = 6,
    max_length: int = 16,
    alphabet: str = "abcd",
    seed: int = 0,
) -> PalindromeData:
    """Generate a balanced palindrome-detection task (half palindromes, half not).

    Each non-palindrome is a palindrome with one to three letters changed, so that
    telling them apart needs comparing letters at mirrored positions across the whole
    sequence: a task for bidirectional self-attention. Deterministic given ``seed``.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative int, got {count!r}")
    if not 2 <= min_length <= max_length:
        raise ValueError(f"need 2 <= min_length <= max_length, got {min_length}, {max_length}")
    if len(alphabet) < 2 or len(set(alphabet)) != len(alphabet):
        raise ValueError(f"alphabet must have at least 2 distinct letters, got {alphabet!r}")
    generator = torch.Generator().manual_seed(seed)
    size = len(alphabet)
    lengths = torch.randint(min_length, max_length + 1, (count,), generator=generator)
    letters = torch.randint(1, size + 1, (count, max_length), generator=generator)
    positions = torch.arange(max_length)
    inside = positions < lengths[:, None]
    mirrored = (lengths[:, None] - 1 - positions).clamp_min(0)  # mirror of each position
    first_half = positions < (lengths[:, None] + 1) // 2
    palindrome = torch.where(first_half, letters, letters.gather(1, mirrored))
    labels = (torch.rand(count, generator=generator) < 0.5).long()
    # Change 1-3 letters of the non-palindromes, each to a different letter.
    changes = torch.randint(1, 4, (count,), generator=generator)
    noise_rank = torch.rand(count, max_length, generator=generator).masked_fill(~inside, 2.0)
    order = noise_rank.argsort(dim=1).argsort(dim=1)  # rank of each position's draw
    change = (order < changes[:, None]) & inside & (labels == 0)[:, None]
    shift = torch.randint(1, size, (count, max_length), generator=generator)
    tokens = torch.where(change, (palindrome - 1 + shift) % size + 1, palindrome)
    # A change may be undone by a mirrored change, or hit the middle letter of an odd
    # length: label by what the sequence really is.
    reversed_tokens = tokens.gather(1, mirrored)
    is_palindrome = ((tokens == reversed_tokens) | ~inside).all(dim=1)
    tokens = tokens.masked_fill(~inside, 0)
    return PalindromeData(tokens, lengths, is_palindrome.long(), alphabet)


class TransformerClassifier(nn.Module):
    """An encoder-only (BERT-like) sequence classifier.

    A learnable ``[CLS]`` vector is put in front of the token embeddings (plus learned
    position embeddings); pre-LN blocks let every position attend to every real position
    in both directions (padding, id ``pad_id``, is masked out); a final LayerNorm and a
    linear head read the ``[CLS]`` output.

    ``forward(tokens [B, L], targets=None)`` returns ``(logits [B, K], loss)``.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: Optional[int] = None,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size), ("num_classes", num_classes), ("max_length", max_length),
            ("d_model", d_model), ("nhead", nhead), ("num_layers", num_layers),
        ):  # fmt: skip
            _check_positive_int(name, value)
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.pad_id, self.max_length = pad_id, max_length
        self.token_embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position_embedding = nn.Parameter(torch.randn(1, max_length + 1, d_model) * 0.02)
        # As in BERT: tokens and positions start at the same small scale, so that neither
        # drowns the other (the default N(0, 1) embedding would hide the positions).
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        with torch.no_grad():
            self.token_embedding.weight[pad_id].zero_()
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward, dropout, "gelu", norm_first=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def _embed(self, tokens: Tensor) -> Tuple[Tensor, Tensor]:
        _check_tokens("tokens", tokens)
        batch, length = tokens.shape
        if length > self.max_length:
            raise ValueError(
                f"tokens has {length} positions, more than max_length={self.max_length}"
            )
        x = self.token_embedding(tokens)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        x = x + self.position_embedding[:, : length + 1]
        real = torch.cat(
            [tokens.new_ones(batch, 1, dtype=torch.bool), tokens != self.pad_id], dim=1
        )
        return x, real[:, None, None, :]  # mask [B, 1, 1, L + 1]: attend to real tokens

    def forward(
        self, tokens: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Class logits [B, K] for tokens [B, L] and, given ``targets`` [B], the loss."""
        x, mask = self._embed(tokens)
        for block in self.blocks:
            x = block(x, mask)
        logits = self.head(self.norm(x[:, 0]))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits, targets)

    @torch.no_grad()
    def attention_maps(self, tokens: Tensor) -> Tensor:
        """Attention weights of every block: [layers, B, H, L + 1, L + 1] (index 0 = [CLS])."""
        x, mask = self._embed(tokens)
        maps = []
        for block in self.blocks:
            x, weights = block.forward_with_attention(x, mask)
            maps.append(weights)
        return torch.stack(maps)


# ----------------------------------------------------------------------------------------
# Vision Transformer
# ----------------------------------------------------------------------------------------


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images [B, C, H, W] into non-overlapping P x P patches: [B, N, C * P * P].

    Patches are numbered row by row (N = (H / P) * (W / P)); each is flattened channel
    first, ``(c, i, j)``, the order of a ``Conv2d`` weight [D, C, P, P], so that a linear
    layer on the patches equals a convolution with kernel size and stride P.
    """
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ValueError(
            f"images must have shape [B, C, H, W], got {getattr(images, 'shape', images)}"
        )
    _check_positive_int("patch_size", patch_size)
    batch, channels, height, width = images.shape
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image height and width ({height}x{width}) must be multiples of "
            f"patch_size={patch_size}"
        )
    rows, cols = height // patch_size, width // patch_size
    patches = images.reshape(batch, channels, rows, patch_size, cols, patch_size)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # [B, rows, cols, C, P, P]
    return patches.reshape(batch, rows * cols, channels * patch_size * patch_size)


def embed_patches(
    images: Tensor,
    patch_size: int,
    weight: Tensor,
    bias: Optional[Tensor],
    cls_token: Tensor,
    position_embedding: Tensor,
) -> Tensor:
    """The ViT input sequence: ``[CLS]`` then the embedded patches, plus positions.

    Args:
        images: [B, C, H, W]. patch_size: P, dividing H and W.
        weight: patch projection [D, C * P * P]. bias: [D] or None.
        cls_token: the learnable ``[CLS]`` vector, [D] (or [1, 1, D]).
        position_embedding: learnable positions [N + 1, D] (or [1, N + 1, D]).

    Returns:
        [B, N + 1, D]: row 0 is ``cls_token + position_embedding[0]``, row 1 + n is
        ``weight @ patch_n + bias + position_embedding[1 + n]``.
    """
    patches = patchify(images, patch_size)  # [B, N, C*P*P]
    batch, count, features = patches.shape
    if weight.dim() != 2 or weight.shape[1] != features:
        raise ValueError(f"weight must have shape [D, C*P*P={features}], got {list(weight.shape)}")
    dim = weight.shape[0]
    cls_token = cls_token.reshape(-1)
    position_embedding = position_embedding.reshape(-1, position_embedding.shape[-1])
    if cls_token.shape != (dim,):
        raise ValueError(f"cls_token must have D={dim} values, got {cls_token.numel()}")
    if position_embedding.shape != (count + 1, dim):
        raise ValueError(
            f"position_embedding must have shape [N + 1, D] = [{count + 1}, {dim}], "
            f"got {list(position_embedding.shape)}"
        )
    tokens = F.linear(patches, weight, bias)  # [B, N, D]
    cls = cls_token.expand(batch, 1, dim)
    return torch.cat([cls, tokens], dim=1) + position_embedding


class ViT(nn.Module):
    """The Vision Transformer: an image as a sequence of patch embeddings.

    Images [B, C, H, W] are cut into N patches of P x P pixels, each linearly embedded
    (``patch_embedding``, equal to a ``Conv2d`` with kernel and stride P), a learnable
    ``[CLS]`` vector goes in front, learned ``position_embedding`` [1, N + 1, D] is
    added, pre-LN GELU blocks process the sequence, and a LayerNorm and an MLP ``head``
    (one tanh hidden layer, as in the ViT paper's pre-training; ``mlp_head=False`` gives
    the single linear layer it uses for fine-tuning) turn the ``[CLS]`` output into
    class logits.

    ``forward(images, targets=None)`` returns ``(logits [B, K], loss)`` (cross-entropy).
    """

    def __init__(
        self,
        image_size: int = 8,
        patch_size: int = 2,
        in_channels: int = 1,
        num_classes: int = 10,
        d_model: int = 64,
        nhead: int = 4,
        num_layers: int = 4,
        dim_feedforward: Optional[int] = None,
        dropout: float = 0.1,
        mlp_head: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (
            ("image_size", image_size), ("patch_size", patch_size), ("in_channels", in_channels),
            ("num_classes", num_classes), ("d_model", d_model), ("nhead", nhead),
            ("num_layers", num_layers),
        ):  # fmt: skip
            _check_positive_int(name, value)
        if image_size % patch_size:
            raise ValueError(
                f"image_size ({image_size}) must be a multiple of patch_size ({patch_size})"
            )
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.image_size, self.patch_size, self.in_channels = image_size, patch_size, in_channels
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embedding = nn.Linear(in_channels * patch_size * patch_size, d_model)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position_embedding = nn.Parameter(torch.zeros(1, self.num_patches + 1, d_model))
        nn.init.trunc_normal_(self.position_embedding, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, nhead, dim_feedforward, dropout, "gelu", norm_first=True)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = (
            nn.Sequential(nn.Linear(d_model, d_model), nn.Tanh(), nn.Linear(d_model, num_classes))
            if mlp_head
            else nn.Linear(d_model, num_classes)
        )

    def embed(self, images: Tensor) -> Tensor:
        """The input sequence [B, N + 1, D] (``[CLS]`` first) of images [B, C, H, W]."""
        expected = (self.in_channels, self.image_size, self.image_size)
        if (
            not isinstance(images, Tensor)
            or images.dim() != 4
            or tuple(images.shape[1:]) != expected
        ):
            raise ValueError(
                f"images must have shape [B, {', '.join(map(str, expected))}], "
                f"got {getattr(images, 'shape', images)}"
            )
        return embed_patches(
            images, self.patch_size, self.patch_embedding.weight, self.patch_embedding.bias,
            self.cls_token, self.position_embedding,
        )  # fmt: skip

    def patch_conv(self) -> nn.Conv2d:
        """A ``Conv2d`` (kernel = stride = P) giving the same patch embeddings [B, D, H/P, W/P]."""
        dim = self.patch_embedding.out_features
        conv = nn.Conv2d(self.in_channels, dim, self.patch_size, stride=self.patch_size)
        conv = conv.to(self.patch_embedding.weight.device, self.patch_embedding.weight.dtype)
        with torch.no_grad():
            conv.weight.copy_(
                self.patch_embedding.weight.reshape(dim, self.in_channels, self.patch_size, -1)
            )
            conv.bias.copy_(self.patch_embedding.bias)
        return conv

    def forward(
        self, images: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Class logits [B, K] for images [B, C, H, W] and, given ``targets`` [B], the loss."""
        x = self.dropout(self.embed(images))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(x[:, 0]))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits, targets)

    @torch.no_grad()
    def attention_maps(self, images: Tensor) -> Tensor:
        """Attention weights of every block: [layers, B, H, N + 1, N + 1] (index 0 = [CLS])."""
        x = self.embed(images)
        maps = []
        for block in self.blocks:
            x, weights = block.forward_with_attention(x)
            maps.append(weights)
        return torch.stack(maps)

    def position_similarity(self) -> Tensor:
        """Cosine similarity of the patches' position embeddings: [N, N] (``[CLS]`` left out)."""
        positions = F.normalize(self.position_embedding[0, 1:].detach(), dim=-1)
        return positions @ positions.T
