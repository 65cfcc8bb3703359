"""Multi-head attention (equal to ``torch.nn.MultiheadAttention``), its key/value cache for
incremental decoding, and a small self-attention tagger with its toy tasks.

Shape letters: ``B`` batch, ``H`` heads, ``Lq`` queries, ``Lk`` keys/values, ``L`` sequence
length, ``D`` model (embedding) dimension, ``Dh`` head width ``D / H``, ``V`` vocabulary.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention.core import (
    causal_mask,
    check_mask,
    scaled_dot_product_attention,
)
from course_lib.attention.maps import RecordsAttention
from course_lib.attention.positions import (
    LearnedPositionalEmbedding,
    sinusoidal_positional_encoding,
)
from course_lib.validation import (
    check_bool,
    check_choice,
    check_elements,
    check_float,
    check_instance,
    check_like,
    check_size,
    check_tensor,
    check_token_ids,
)

__all__ = [
    "KeyValueCache",
    "MultiHeadAttention",
    "SelfAttentionTagger",
    "merge_heads",
    "sequence_task",
    "split_heads",
]

Device = Optional[Union[str, torch.device]]


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """[B, L, D] -> [B, H, L, D / H]: each head gets its own slice of the features."""
    check_tensor("x", x, "B, L, D")
    num_heads = check_size("num_heads", num_heads)
    batch, length, dim = x.shape
    if dim % num_heads != 0:
        raise ValueError(
            f"x must have a feature size D divisible by num_heads={num_heads}, got D = {dim}"
        )
    return x.reshape(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """[B, H, L, D / H] -> [B, L, D]: concatenate the heads' outputs feature-wise."""
    check_tensor("x", x, "B, H, L, Dh")
    batch, heads, length, head_dim = x.shape
    return x.transpose(1, 2).reshape(batch, length, heads * head_dim)


class KeyValueCache:
    """The keys and values one self-attention layer has seen so far.

    Buffers ``keys`` and ``values`` [B, H, max_length, Dh] are allocated once;
    ``append(k, v)`` writes the new positions' keys and values [B, H, n, Dh] after the
    ``length`` stored ones and returns all of them, [B, H, length + n, Dh]. Generating
    one token then costs one query against the cache instead of recomputing every
    position's keys and values. ``max_length=None`` lets the buffers grow as needed
    (doubling), for decoders whose output length is not known in advance.
    ``reorder(index)`` keeps the rows ``index`` of the batch (beam search).
    """

    def __init__(
        self,
        batch_size: int,
        num_heads: int,
        head_dim: int,
        max_length: Optional[int],
        device: Device = None,
        dtype: Optional[torch.dtype] = None,
    ) -> None:
        batch_size = check_size("batch_size", batch_size, minimum=0)
        num_heads = check_size("num_heads", num_heads)
        head_dim = check_size("head_dim", head_dim)
        self.growing = max_length is None
        capacity = 16 if max_length is None else check_size("max_length", max_length)
        check_elements("batch_size x num_heads x head_dim x max_length",
                       batch_size * num_heads * head_dim * capacity)  # fmt: skip
        shape = (batch_size, num_heads, capacity, head_dim)
        self.keys = torch.zeros(shape, device=device, dtype=dtype)
        self.values = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_length(self) -> Optional[int]:
        """The most positions the cache holds (None: it grows as needed)."""
        return None if self.growing else self.keys.shape[2]

    def __repr__(self) -> str:
        batch, heads, capacity, head_dim = self.keys.shape
        limit = "unbounded" if self.growing else capacity
        return (
            f"KeyValueCache(length={self.length}/{limit}, batch={batch}, "
            f"heads={heads}, head_dim={head_dim})"
        )

    def append(self, k: Tensor, v: Tensor) -> Tuple[Tensor, Tensor]:
        """Store keys/values [B, H, n, Dh] of n new positions; return all [B, H, length, Dh]."""
        batch, heads, capacity, head_dim = self.keys.shape
        shape = f"{batch}, {heads}, n, {head_dim}"
        sizes: dict = {}
        check_tensor("k", k, shape, dtype=self.keys.dtype, sizes=sizes)
        check_tensor("v", v, shape, dtype=self.keys.dtype, sizes=sizes)
        end = self.length + k.shape[2]
        if end > capacity and self.growing:
            self._grow(max(end, 2 * capacity))
        elif end > capacity:
            raise ValueError(
                f"k holds {k.shape[2]} new positions, but the cache holds at most "
                f"{capacity} and already has {self.length}"
            )
        self.keys[:, :, self.length : end] = k
        self.values[:, :, self.length : end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def _grow(self, capacity: int) -> None:
        def grown(buffer: Tensor) -> Tensor:
            bigger = buffer.new_zeros(*buffer.shape[:2], capacity, buffer.shape[3])
            bigger[:, :, : buffer.shape[2]] = buffer
            return bigger

        self.keys, self.values = grown(self.keys), grown(self.values)

    def reorder(self, index: Tensor) -> KeyValueCache:
        """Keep the batch rows ``index`` [B'] (rows may repeat), in place; returns the cache."""
        index = index.to(self.keys.device)
        self.keys = self.keys.index_select(0, index)
        self.values = self.values.index_select(0, index)
        return self


class MultiHeadAttention(RecordsAttention, nn.Module):
    """Multi-head attention, batch-first, with ``torch.nn.MultiheadAttention``'s parameters.

    Queries, keys and values are projected by the three row blocks of ``in_proj_weight``
    [3D, D] (and ``in_proj_bias`` [3D]), split into ``num_heads`` heads of D / H features,
    attended in parallel, concatenated and projected by ``out_proj``. After
    ``load_state_dict(torch_mha.state_dict())`` it computes what
    ``torch.nn.MultiheadAttention(D, H, batch_first=True)`` computes.

    ``forward(query [B, Lq, D], key [B, Lk, D], value [B, Lk, D], mask=None,
    need_weights=True, *, is_causal=False, cache=None)`` returns ``(output [B, Lq, D],
    weights [B, H, Lq, Lk])``. ``mask`` is bool (True = may attend) or float, broadcastable
    to [B, H, Lq, Lk] (a per-example mask is [B, 1, Lq, Lk] or, for padding,
    ``padding_mask(lengths)`` [B, 1, 1, Lk]). ``is_causal=True`` (instead of a mask) lets
    query i see keys up to its own position; with a ``KeyValueCache`` (self-attention, one
    per layer) the new positions' keys and values are appended to the cache and the queries
    attend to every cached position, so query i sits at position ``cached + i``. With
    ``need_weights=False`` the fused ``torch.nn.functional.scaled_dot_product_attention``
    kernel does the work and the weights are None.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        embed_dim = check_size("embed_dim", embed_dim)
        num_heads = check_size("num_heads", num_heads)
        if embed_dim % num_heads != 0:
            raise ValueError(f"num_heads ({num_heads}) must divide embed_dim ({embed_dim})")
        check_elements("4 x embed_dim^2", 4 * embed_dim * embed_dim)
        self.dropout = check_float("dropout", dropout, 0.0, 1.0, include_maximum=False)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        if check_bool("bias", bias):
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim))
        else:
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

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> Tuple[Tensor, ...]:
        """Q, K, V [B, L, D]; self-attention uses one matrix product for all three."""
        if query is key and key is value:
            return F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        weights = self.in_proj_weight.chunk(3)
        biases = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None,) * 3
        return tuple(F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

    def _check(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        sizes = {"D": self.embed_dim, "_origin_D": "embed_dim"}
        check_tensor("query", query, "B, Lq, D", dtype="floating", sizes=sizes)
        check_tensor("key", key, "B, Lk, D", dtype="floating", sizes=sizes)
        check_tensor("value", value, "B, Lk, D", dtype="floating", sizes=sizes)
        for name, tensor in (("query", query), ("key", key), ("value", value)):
            check_like(name, tensor, self.in_proj_weight)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        mask: Optional[Tensor] = None,
        need_weights: bool = True,
        *,
        is_causal: bool = False,
        cache: Optional[KeyValueCache] = None,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        self._check(query, key, value)
        need_weights, is_causal = (
            check_bool("need_weights", need_weights),
            check_bool("is_causal", is_causal),
        )
        if is_causal and mask is not None:
            raise ValueError("give either mask or is_causal=True, not both")
        q, k, v = (split_heads(x, self.num_heads) for x in self._project(query, key, value))
        if cache is not None:
            check_instance("cache", cache, KeyValueCache, "a KeyValueCache")
            if cache.keys.shape[0] != query.shape[0]:
                raise ValueError(
                    f"cache holds {cache.keys.shape[0]} sequences, but query has "
                    f"B = {query.shape[0]}"
                )
            if query is not key:
                raise ValueError("cache works for self-attention only (query is key is value)")
            k, v = cache.append(k, v)  # [B, H, cached + Lq, Dh]
        queries, keys = q.shape[2], k.shape[2]
        if is_causal and queries != keys:  # queries after cached positions: shift the diagonal
            mask, is_causal = torch.ones(queries, keys, dtype=torch.bool, device=q.device).tril(
                keys - queries), False  # fmt: skip
        if mask is not None:
            check_mask("mask", mask, (q.shape[0], self.num_heads, queries, keys))
        dropout_p = self.dropout if self.training else 0.0
        if need_weights or self.recording:
            if is_causal:
                mask = causal_mask(queries, device=q.device)
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p)
            self.keep(weights)
        else:
            heads = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
            )
            weights = None
        return self.out_proj(merge_heads(heads)), (weights if need_weights else None)


# ----------------------------------------------------------------------------------------
# A self-attention tagger and toy tasks where the answer depends on positions
# ----------------------------------------------------------------------------------------


def sequence_task(
    task: str, count: int, length: int, vocab_size: int = 10, seed: int = 0
) -> Tuple[Tensor, Tensor]:
    """Toy tagging tasks where the answer depends on *positions*: ``(tokens, targets)`` [N, L].

    ``"previous"``: ``y_i = x_{i-1}`` (cyclic: ``y_0 = x_{L-1}``).
    ``"neighbour_sum"``: ``y_i = (x_{i-1} + x_{i+1}) mod V`` (cyclic).
    ``"neighbour_difference"``: ``y_i = (x_{i-1} - x_{i+1}) mod V`` (cyclic); unlike the sum
    it is not symmetric, so one attention distribution spread over both neighbours cannot
    solve it.
    Tokens are uniform in 0..V-1.
    """
    from course_lib.batching import seeded_generator

    check_choice("task", task, ("previous", "neighbour_sum", "neighbour_difference"))
    count = check_size("count", count, minimum=0)
    length = check_size("length", length, minimum=2)
    vocab_size = check_size("vocab_size", vocab_size, minimum=2)
    check_elements("count x length", count * length)
    generator = seeded_generator(seed)
    tokens = torch.randint(0, vocab_size, (count, length), generator=generator)
    previous = tokens.roll(1, dims=1)
    following = tokens.roll(-1, dims=1)
    if task == "previous":
        return tokens, previous
    if task == "neighbour_sum":
        return tokens, (previous + following) % vocab_size
    return tokens, (previous - following) % vocab_size


class SelfAttentionTagger(nn.Module):
    """Embedding, optional positional encoding, one multi-head self-attention layer with a
    residual connection, and a per-position MLP: tokens [B, L] -> logits [B, L, V].

    ``positional`` is ``"none"``, ``"sinusoidal"`` or ``"learned"``; ``causal`` masks the
    future. ``forward(tokens, targets=None) -> (logits, loss or None)``;
    ``attention_weights(tokens)`` returns the per-head weights [B, H, L, L].
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 32,
        num_heads: int = 1,
        max_length: int = 16,
        positional: str = "learned",
        causal: bool = False,
    ) -> None:
        super().__init__()
        self.positional = check_choice("positional", positional, ("none", "sinusoidal", "learned"))
        self.vocab_size = check_size("vocab_size", vocab_size)
        dim = check_size("dim", dim)
        self.max_length = check_size("max_length", max_length, maximum=2**16)
        check_elements("(vocab_size + max_length) x dim", (vocab_size + max_length) * dim)
        self.causal = check_bool("causal", causal)
        self.embedding = nn.Embedding(vocab_size, dim)
        self.position = (
            LearnedPositionalEmbedding(max_length, dim) if positional == "learned" else None
        )
        fixed = (
            sinusoidal_positional_encoding(max_length, dim) if positional == "sinusoidal" else None
        )
        self.register_buffer("encoding", fixed)
        self.attention = MultiHeadAttention(dim, num_heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, vocab_size))

    def _attend(self, tokens: Tensor) -> Tensor:
        check_token_ids("tokens", tokens, self.vocab_size, "B, L", cpu_only=True)
        if tokens.shape[1] > self.max_length:
            raise ValueError(
                f"tokens must have at most max_length = {self.max_length} positions, "
                f"got {list(tokens.shape)}"
            )
        x = self.embedding(tokens)
        if self.position is not None:
            x = self.position(x)
        elif self.encoding is not None:
            x = x + self.encoding[: tokens.shape[1]]
        mixed, _ = self.attention(x, x, x, need_weights=False, is_causal=self.causal)
        return x + mixed

    def forward(
        self, tokens: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        logits = self.mlp(self._attend(tokens))
        if targets is None:
            return logits, None
        shape = f"{tokens.shape[0]}, {tokens.shape[1]}"
        check_token_ids("targets", targets, self.vocab_size, shape, cpu_only=True)
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    @torch.no_grad()
    def attention_weights(self, tokens: Tensor) -> Tensor:
        """Per-head attention weights [B, H, L, L] (``attention_maps`` of the one layer)."""
        from course_lib.attention.maps import attention_maps

        return attention_maps(self, tokens)["attention"]
