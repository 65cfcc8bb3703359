"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al. 2017).

Shape letters: ``B`` batch, ``S`` source length, ``T`` target length, ``D`` model width,
``H`` heads, ``V`` vocabulary size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.attention import (
    KeyValueCache,
    attention_maps,
    padding_mask,
    sinusoidal_positional_encoding,
)
from course_lib.decoding import (
    Seq2SeqDecoding,
    check_source,
    check_special_ids,
    check_target,
)
from course_lib.transformer.blocks import (
    ACTIVATIONS,
    FromConfig,
    TransformerBlock,
    TransformerDecoderBlock,
)
from course_lib.validation import (
    check_bool,
    check_choice,
    check_elements,
    check_float,
    check_int,
    check_size,
    check_token_ids,
)

__all__ = ["Transformer", "TransformerConfig"]


@dataclass
class TransformerConfig:
    """Sizes and options of the encoder-decoder ``Transformer``.

    The defaults are the paper's **base model** (Vaswani et al. 2017, Table 3 and
    sections 3-5): N = 6 layers in each stack, d_model = 512, d_ff = 2048, h = 8 heads
    (d_k = d_v = 64), P_drop = 0.1 (on each sub-layer's output before the residual
    addition, and on the sums of embeddings and positional encodings), label smoothing
    eps_ls = 0.1, post-LN blocks, sinusoidal positions, one embedding matrix shared by
    source, target and the pre-softmax projection (section 3.4; the paper's shared BPE
    vocabulary of 37000 tokens for English-German), embeddings multiplied by sqrt(d_model).

    Two details follow ``torch.nn.TransformerEncoderLayer`` rather than the paper: the same
    ``dropout`` also drops attention weights (as PyTorch's layers do), and ``max_length``
    (1024) bounds the precomputed positional encodings.
    """

    src_vocab_size: int = 37000
    tgt_vocab_size: int = 37000
    d_model: int = 512
    nhead: int = 8
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dim_feedforward: int = 2048
    dropout: float = 0.1
    activation: str = "relu"
    norm_first: bool = False
    share_embeddings: bool = True
    tie_output: bool = True
    max_length: int = 1024
    label_smoothing: float = 0.1
    pad_id: int = 0
    start_id: int = 1
    end_id: int = 2

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "d_model", "nhead", "dim_feedforward"):
            check_size(name, getattr(self, name))
        check_size("max_length", self.max_length, maximum=2**20)
        for name in ("num_encoder_layers", "num_decoder_layers"):
            check_int(name, getattr(self, name), 0, 10_000)
        if self.d_model % self.nhead:
            raise ValueError(f"nhead ({self.nhead}) must divide d_model ({self.d_model})")
        check_float("dropout", self.dropout, 0.0, 1.0, include_maximum=False)
        check_float("label_smoothing", self.label_smoothing, 0.0, 1.0, include_maximum=False)
        check_choice("activation", self.activation, sorted(ACTIVATIONS))
        for name in ("norm_first", "share_embeddings", "tie_output"):
            check_bool(name, getattr(self, name))
        if self.share_embeddings and self.src_vocab_size != self.tgt_vocab_size:
            raise ValueError(
                "share_embeddings=True needs src_vocab_size == tgt_vocab_size, got "
                f"{self.src_vocab_size} and {self.tgt_vocab_size}; pass share_embeddings=False"
            )
        check_special_ids(min(self.src_vocab_size, self.tgt_vocab_size), pad_id=self.pad_id)
        check_special_ids(self.tgt_vocab_size, start_id=self.start_id, end_id=self.end_id)
        layers = self.num_encoder_layers + self.num_decoder_layers
        check_elements("(src_vocab_size + tgt_vocab_size) x d_model + layers x d_model x "
                       "dim_feedforward", (self.src_vocab_size + self.tgt_vocab_size)
                       * self.d_model + layers * 3 * self.d_model * (self.dim_feedforward
                       + 4 * self.d_model))  # fmt: skip


_BASE = TransformerConfig()


class Transformer(Seq2SeqDecoding, FromConfig, nn.Module):
    """The encoder-decoder Transformer; the defaults build the paper's base model
    (see ``TransformerConfig`` for which defaults follow the paper and where).

    Token embeddings scaled by ``sqrt(d_model)`` plus sinusoidal positions (then dropout)
    feed ``num_encoder_layers`` encoder blocks and ``num_decoder_layers`` decoder blocks
    (post-LN as in the paper; ``norm_first=True`` adds a final LayerNorm to each stack).
    ``share_embeddings`` uses one embedding table for source and target (the paper's
    shared 37000-token vocabulary; needs equal vocabulary sizes) and ``tie_output`` uses
    the target embedding as the output projection too (then without bias).

    Same interface as ``course_lib.rnn.Seq2Seq``:
    ``forward(source [B, S], source_lengths [B], target [B, T])`` returns
    ``(logits [B, T-1, V], loss)``, where ``target`` is ``<start> ... <end> <pad>...``;
    the loss is the cross-entropy over non-padding target positions, with label smoothing.
    ``generate(source, source_lengths, max_length, beam_size=1)`` decodes greedily (or
    with a beam), reusing each decoder layer's keys and values (a ``KeyValueCache``).
    ``Transformer.from_config(config)`` builds it from a ``TransformerConfig``.
    """

    def __init__(
        self,
        src_vocab_size: int = _BASE.src_vocab_size,
        tgt_vocab_size: int = _BASE.tgt_vocab_size,
        d_model: int = _BASE.d_model,
        nhead: int = _BASE.nhead,
        num_encoder_layers: int = _BASE.num_encoder_layers,
        num_decoder_layers: int = _BASE.num_decoder_layers,
        dim_feedforward: int = _BASE.dim_feedforward,
        dropout: float = _BASE.dropout,
        activation: str = _BASE.activation,
        norm_first: bool = _BASE.norm_first,
        share_embeddings: bool = _BASE.share_embeddings,
        tie_output: bool = _BASE.tie_output,
        max_length: int = _BASE.max_length,
        label_smoothing: float = _BASE.label_smoothing,
        pad_id: int = _BASE.pad_id,
        start_id: int = _BASE.start_id,
        end_id: int = _BASE.end_id,
    ) -> None:
        super().__init__()
        self.config = config = TransformerConfig(
            src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, d_model=d_model,
            nhead=nhead, num_encoder_layers=num_encoder_layers,
            num_decoder_layers=num_decoder_layers, dim_feedforward=dim_feedforward,
            dropout=dropout, activation=activation, norm_first=norm_first,
            share_embeddings=share_embeddings, tie_output=tie_output, max_length=max_length,
            label_smoothing=label_smoothing, pad_id=pad_id, start_id=start_id, end_id=end_id,
        )  # fmt: skip
        d_model = config.d_model
        self.d_model, self.nhead = d_model, config.nhead
        self.src_vocab_size, self.tgt_vocab_size = config.src_vocab_size, config.tgt_vocab_size
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        self.label_smoothing = float(config.label_smoothing)
        self.source_embedding = nn.Embedding(config.src_vocab_size, d_model, padding_idx=pad_id)
        self.target_embedding = (
            self.source_embedding
            if config.share_embeddings
            else nn.Embedding(config.tgt_vocab_size, d_model, padding_idx=pad_id)
        )
        self.register_buffer(
            "positions", sinusoidal_positional_encoding(config.max_length, d_model),
            persistent=False,
        )  # fmt: skip
        self.embedding_dropout = nn.Dropout(config.dropout)
        layer_options = {
            "d_model": d_model, "nhead": config.nhead, "dim_feedforward": config.dim_feedforward,
            "dropout": config.dropout, "activation": config.activation,
            "norm_first": config.norm_first,
        }  # fmt: skip
        self.encoder_layers = nn.ModuleList(
            TransformerBlock(**layer_options) for _ in range(config.num_encoder_layers)
        )
        self.decoder_layers = nn.ModuleList(
            TransformerDecoderBlock(**layer_options) for _ in range(config.num_decoder_layers)
        )
        # Post-LN stacks already end in a LayerNorm; pre-LN stacks need a final one.
        self.encoder_norm = nn.LayerNorm(d_model) if config.norm_first else nn.Identity()
        self.decoder_norm = nn.LayerNorm(d_model) if config.norm_first else nn.Identity()
        self.output = nn.Linear(d_model, config.tgt_vocab_size, bias=not config.tie_output)
        # Embeddings get std 1/sqrt(D): multiplied by sqrt(D) they have unit scale, like
        # the positional encodings, and as a tied output layer they give small logits.
        for embedding in {
            id(e): e for e in (self.source_embedding, self.target_embedding)
        }.values():
            nn.init.normal_(embedding.weight, std=d_model**-0.5)
            with torch.no_grad():
                embedding.weight[pad_id].zero_()
        if config.tie_output:
            self.output.weight = self.target_embedding.weight

    def _embed(self, tokens: Tensor, embedding: nn.Embedding, name: str, start: int = 0) -> Tensor:
        length = tokens.shape[1]
        if start + length > self.positions.shape[0]:
            raise ValueError(
                f"{name} has {start + length} positions, more than max_length="
                f"{self.positions.shape[0]}"
            )
        x = embedding(tokens) * math.sqrt(self.d_model) + self.positions[start : start + length]
        return self.embedding_dropout(x)

    def encode(self, source: Tensor, source_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Encoder output (the "memory") [B, S, D] and the source key mask [B, 1, 1, S]."""
        check_source(source, source_lengths, self.src_vocab_size)
        source_mask = padding_mask(source_lengths, source.shape[1])
        x = self._embed(source, self.source_embedding, "source")
        for layer in self.encoder_layers:
            x = layer(x, source_mask)
        return self.encoder_norm(x), source_mask

    def decode(self, target_input: Tensor, memory: Tensor, source_mask: Tensor) -> Tensor:
        """Decoder output [B, T, D] for target tokens [B, T] (each sees only earlier ones)."""
        check_token_ids("target_input", target_input, self.tgt_vocab_size, "B, T", cpu_only=True)
        x = self._embed(target_input, self.target_embedding, "target")
        for layer in self.decoder_layers:
            x = layer(x, memory, memory_mask=source_mask, is_causal=True)  # causal self-attention
        return self.decoder_norm(x)

    def forward(
        self, source: Tensor, source_lengths: Tensor, target: Tensor
    ) -> Tuple[Tensor, Tensor]:
        """Teacher-forced logits [B, T-1, V] for ``target[:, 1:]`` and their mean cross-entropy."""
        memory, source_mask = self.encode(source, source_lengths)
        check_target(target, source.shape[0], self.tgt_vocab_size)
        decoder_input, decoder_target = target[:, :-1], target[:, 1:]
        logits = self.output(self.decode(decoder_input, memory, source_mask))
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), decoder_target.reshape(-1),
            ignore_index=self.pad_id, label_smoothing=self.label_smoothing,
        )  # fmt: skip
        return logits, loss

    def start_decoding(self, source: Tensor, source_lengths: Tensor) -> Dict[str, Any]:
        """The decoder's state for ``generate``: the memory, the source mask, an empty
        ``KeyValueCache`` per decoder layer and the next position."""
        memory, source_mask = self.encode(source, source_lengths)
        caches = [
            KeyValueCache(
                source.shape[0],
                self.nhead,
                self.d_model // self.nhead,
                None,
                device=memory.device,
                dtype=memory.dtype,
            )
            for _ in self.decoder_layers
        ]
        return {"memory": memory, "source_mask": source_mask, "caches": caches, "position": 0}

    def decode_step(self, tokens: Tensor, state: Dict[str, Any]) -> Tuple[Tensor, Dict[str, Any]]:
        """One decoder step: previous tokens [N] -> (logits [N, V], state); the new position
        attends to the cached keys and values of the earlier ones (no recomputation)."""
        x = self._embed(tokens.unsqueeze(1), self.target_embedding, "the output", state["position"])
        for layer, cache in zip(self.decoder_layers, state["caches"]):
            x = layer(x, state["memory"], memory_mask=state["source_mask"], is_causal=True,
                      cache=cache)  # fmt: skip
        logits = self.output(self.decoder_norm(x)[:, 0])
        return logits, {**state, "position": state["position"] + 1}

    @torch.no_grad()
    def cross_attention(
        self, source: Tensor, source_lengths: Tensor, target_input: Tensor
    ) -> Tensor:
        """Cross-attention weights of every decoder layer, teacher-forced on
        ``target_input`` [B, T]: [layers, B, H, T, S]."""
        memory, source_mask = self.encode(source, source_lengths)
        check_token_ids("target_input", target_input, self.tgt_vocab_size,
                        f"{source.shape[0]}, T")  # fmt: skip
        maps = attention_maps(self, target_input, memory, source_mask, method="decode")
        cross = [
            maps[f"decoder_layers.{k}.multihead_attn"] for k in range(len(self.decoder_layers))
        ]
        if not cross:
            return memory.new_zeros(0, source.shape[0], self.nhead, target_input.shape[1],
                                    source.shape[1])  # fmt: skip
        return torch.stack(cross)
