"""A decoder-only Transformer language model (GPT-2 style) and its loss.

Batches of windows of a token stream come from ``course_lib.batching.random_windows``;
sampling is ``course_lib.decoding``'s.

Shape letters: ``B`` batch, ``T`` positions, ``V`` vocabulary size, ``D`` model width,
``H`` heads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import KeyValueCache, MultiHeadAttention, attention_maps
from course_lib.decoding import check_prompt, check_sampling, sample
from course_lib.transformer.blocks import FromConfig, TransformerBlock
from course_lib.utils import evaluating
from course_lib.validation import (
    check_bool,
    check_elements,
    check_float,
    check_instance,
    check_int,
    check_size,
    check_tensor,
    check_token_ids,
)

__all__ = ["GPT", "GPTConfig", "causal_lm_loss"]


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
    sizes: dict = {}
    check_tensor("logits", logits, "B, T, V", dtype="floating", sizes=sizes)
    ignore_index = check_int("ignore_index", ignore_index)
    check_tensor("tokens", tokens, "B, T", dtype="integer", sizes=sizes)
    counted = tokens[tokens != ignore_index]
    check_token_ids("tokens", counted, logits.shape[-1], cpu_only=True)
    predictions = logits[:, :-1].reshape(-1, logits.shape[-1])
    return F.cross_entropy(predictions, tokens[:, 1:].reshape(-1), ignore_index=ignore_index)


@dataclass
class GPTConfig:
    """Sizes and options of ``GPT`` (the nanoGPT pattern: every constant in one place).

    ``dim_feedforward`` None means ``4 * d_model`` (GPT-2). ``init_std`` is the standard
    deviation of every weight at initialisation (GPT-2: 0.02); the residual branches'
    output layers get ``init_std / sqrt(2 * num_layers)`` so the residual stream does not
    grow with depth.
    """

    vocab_size: int
    block_size: int = 128
    d_model: int = 128
    nhead: int = 4
    num_layers: int = 4
    dim_feedforward: Optional[int] = None
    dropout: float = 0.0
    tie_weights: bool = True
    norm_first: bool = True
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "nhead"):
            check_size(name, getattr(self, name))
        check_size("block_size", self.block_size, maximum=2**20)
        check_size("num_layers", self.num_layers, maximum=10_000)
        if self.d_model % self.nhead:
            raise ValueError(f"nhead ({self.nhead}) must divide d_model ({self.d_model})")
        if self.dim_feedforward is None:
            self.dim_feedforward = 4 * self.d_model
        check_size("dim_feedforward", self.dim_feedforward)
        check_float("dropout", self.dropout, 0.0, 1.0, include_maximum=False)
        check_float("init_std", self.init_std, 0.0, include_minimum=False)
        check_bool("tie_weights", self.tie_weights)
        check_bool("norm_first", self.norm_first)
        check_elements("(vocab_size + block_size) x d_model + num_layers x d_model x "
                       "dim_feedforward", (self.vocab_size + self.block_size) * self.d_model
                       + self.num_layers * 2 * self.d_model * (self.dim_feedforward
                       + 2 * self.d_model))  # fmt: skip


class GPT(FromConfig, nn.Module):
    """A decoder-only Transformer language model (GPT-2 style).

    Token embeddings plus learned position embeddings, ``num_layers`` pre-LN blocks with
    GELU and a causal mask (position t sees positions 0..t only), a final LayerNorm and
    an output layer tied to the token embedding. ``norm_first=False`` builds the same
    model with post-LN blocks (and no final LayerNorm), to compare the two.

    ``forward(x [B, T], targets=None, cache=None)`` returns ``(logits [B, T, V], loss)``
    with ``targets`` the next tokens [B, T] (``x`` shifted by one, as ``random_windows``
    gives them) and loss their mean cross-entropy (None without targets).
    ``generate`` samples continuations, by default with a ``KeyValueCache`` per layer.
    The sizes live in a ``GPTConfig`` (``model.config``; ``GPT.from_config(config)``).
    """

    def __init__(
        self,
        vocab_size: int,
        block_size: int = GPTConfig.block_size,
        d_model: int = GPTConfig.d_model,
        nhead: int = GPTConfig.nhead,
        num_layers: int = GPTConfig.num_layers,
        dim_feedforward: Optional[int] = GPTConfig.dim_feedforward,
        dropout: float = GPTConfig.dropout,
        tie_weights: bool = GPTConfig.tie_weights,
        norm_first: bool = GPTConfig.norm_first,
        init_std: float = GPTConfig.init_std,
    ) -> None:
        super().__init__()
        self.config = config = GPTConfig(
            vocab_size, block_size, d_model, nhead, num_layers, dim_feedforward, dropout,
            tie_weights, norm_first, init_std,
        )  # fmt: skip
        self.vocab_size, self.block_size, self.d_model = vocab_size, block_size, d_model
        self.nhead = nhead
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Embedding(block_size, d_model)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                d_model,
                nhead,
                config.dim_feedforward,
                dropout,
                activation="gelu",
                norm_first=norm_first,
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
                nn.init.normal_(linear.weight, std=init_std / math.sqrt(2 * num_layers))
        if tie_weights:
            self.lm_head.weight = self.token_embedding.weight

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, MultiHeadAttention):
            nn.init.normal_(module.in_proj_weight, std=std)

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

    def _check_cache(self, cache: Any, batch: int) -> Sequence[KeyValueCache]:
        if not isinstance(cache, (list, tuple)) or len(cache) != len(self.blocks):
            raise TypeError(
                f"cache must be a list of {len(self.blocks)} KeyValueCache (one per block, "
                f"see new_cache), got {type(cache).__name__}"
            )
        for index, layer_cache in enumerate(cache):
            check_instance(f"cache[{index}]", layer_cache, KeyValueCache, "a KeyValueCache")
            if layer_cache.keys.shape[0] != batch:
                raise ValueError(
                    f"cache[{index}] holds {layer_cache.keys.shape[0]} sequences, but x has "
                    f"B = {batch}; make it with new_cache({batch})"
                )
        return cache

    def forward(
        self,
        x: Tensor,
        targets: Optional[Tensor] = None,
        cache: Optional[Sequence[KeyValueCache]] = None,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Logits [B, T, V] for tokens x [B, T] and, given ``targets`` [B, T], their loss."""
        check_token_ids("x", x, self.vocab_size, "B, T", cpu_only=True)
        if cache is not None:
            cache = self._check_cache(cache, x.shape[0])
        start = 0 if cache is None else cache[0].length
        length = x.shape[1]
        if start + length > self.block_size:
            raise ValueError(
                f"x holds positions {start}..{start + length - 1}, beyond "
                f"block_size={self.block_size}"
            )
        positions = torch.arange(start, start + length, device=x.device)
        h = self.dropout(self.token_embedding(x) + self.position_embedding(positions))
        for index, block in enumerate(
            self.blocks
        ):  # with a cache, new position i sits at start + i
            h = block(h, cache=None if cache is None else cache[index], is_causal=True)
        logits = self.lm_head(self.norm(h))
        if targets is None:
            return logits, None
        check_token_ids("targets", targets, self.vocab_size, f"{x.shape[0]}, {length}",
                        cpu_only=True)  # fmt: skip
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, x: Tensor) -> Tensor:
        """Attention weights of every block for tokens [B, T]: [layers, B, H, T, T]."""
        maps = attention_maps(self, x)
        return torch.stack([maps[f"blocks.{k}.self_attn"] for k in range(len(self.blocks))])

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
        ``course_lib.decoding.sample`` (temperature 0 is greedy). With ``use_cache`` each
        step feeds only the newest token and reuses the cached keys and values of the
        earlier ones; the result is the same as recomputing everything
        (``use_cache=False``). Once the text is longer than ``block_size`` the window
        slides, every position changes, and the model recomputes the window each step.
        """
        tokens, batched = check_prompt(prompt_ids, self.vocab_size)
        length = check_sampling(length, temperature, top_k, generator)
        use_cache = check_bool("use_cache", use_cache)
        tokens = tokens.to(self.token_embedding.weight.device)
        with evaluating(self):
            cache = self.new_cache(tokens.shape[0]) if use_cache else None
            state = {"tokens": tokens, "cache": cache}
            logits, _ = self(tokens[:, -self.block_size :], cache=cache)
            new = sample(self._step, logits[:, -1], state, length, temperature, top_k, generator)
        tokens = torch.cat([tokens, new], dim=1)
        return tokens if batched else tokens[0]

    def _step(self, token: Tensor, state: Dict[str, Any]) -> Tuple[Tensor, Dict[str, Any]]:
        """Feed one sampled token [B]: through the cache while it has room, else recompute
        the last ``block_size`` tokens."""
        state["tokens"] = torch.cat([state["tokens"], token.unsqueeze(1)], dim=1)
        cache = state["cache"]
        if cache is not None and cache[0].length < self.block_size:
            logits, _ = self(token.unsqueeze(1), cache=cache)
        else:
            state["cache"] = None
            logits, _ = self(state["tokens"][:, -self.block_size :])
        return logits[:, -1], state
