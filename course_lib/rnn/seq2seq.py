"""Sequence to sequence without attention (Sutskever et al. 2014; Cho et al. 2014).

Decoding (greedy and beam search) and the string helpers (``translate``, ``exact_match``)
are shared by every seq2seq model of the course and live in ``course_lib.decoding``.

Shape letters: ``B`` batch, ``S`` source length, ``T`` target length, ``V`` target
vocabulary size, ``L`` layers, ``H`` hidden units.
"""

from __future__ import annotations

from typing import Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.decoding import Seq2SeqDecoding, check_source, check_target, check_vocabularies
from course_lib.rnn.layers import GRU
from course_lib.validation import check_elements, check_size

__all__ = ["Seq2Seq"]


class Seq2Seq(Seq2SeqDecoding, nn.Module):
    """GRU encoder-decoder without attention: the whole input is squeezed into one vector.

    The encoder reads the source; its hidden state at each sequence's last real token (the
    context vector) is the decoder's initial state. The decoder starts from ``<start>`` and
    is trained with teacher forcing (the true previous token as input).

    ``forward(source [B, S], source_lengths [B], target [B, T]) -> (logits [B, T-1, V], loss)``
    where ``target`` starts with ``<start>`` and ends with ``<end>`` then padding
    (``course_lib.data.encode_dates`` gives exactly this); the loss is the mean cross-entropy
    over non-padding target positions. ``generate`` decodes greedily (or with a beam).
    """

    def __init__(
        self,
        source_vocab_size: int,
        target_vocab_size: int,
        embed_dim: int = 32,
        hidden_size: int = 128,
        num_layers: int = 1,
        pad_id: int = 0,
        start_id: int = 1,
        end_id: int = 2,
    ) -> None:
        super().__init__()
        self.source_vocab_size, self.target_vocab_size = check_vocabularies(
            source_vocab_size, target_vocab_size, pad_id, start_id, end_id
        )
        embed_dim = check_size("embed_dim", embed_dim)
        check_size("hidden_size", hidden_size)
        check_size("num_layers", num_layers, maximum=10_000)
        check_elements("(source_vocab_size + target_vocab_size) x embed_dim",
                       (source_vocab_size + target_vocab_size) * embed_dim)  # fmt: skip
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        self.source_embedding = nn.Embedding(source_vocab_size, embed_dim, padding_idx=pad_id)
        self.target_embedding = nn.Embedding(target_vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = GRU(embed_dim, hidden_size, num_layers, batch_first=True)
        self.decoder = GRU(embed_dim, hidden_size, num_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, target_vocab_size)

    def encode(self, source: Tensor, source_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Encoder outputs [B, S, H] (zeros after each sequence's end) and the context: each
        layer's hidden state at the sequence's last real token, [L, B, H]."""
        check_source(source, source_lengths, self.source_vocab_size)
        return self.encoder(self.source_embedding(source), lengths=source_lengths)

    def forward(
        self, source: Tensor, source_lengths: Tensor, target: Tensor
    ) -> Tuple[Tensor, Tensor]:
        _, context = self.encode(source, source_lengths)
        check_target(target, source.shape[0], self.target_vocab_size)
        decoder_input, decoder_target = target[:, :-1], target[:, 1:]
        outputs, _ = self.decoder(self.target_embedding(decoder_input), context)
        logits = self.output(outputs)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), decoder_target.reshape(-1),
            ignore_index=self.pad_id,
        )  # fmt: skip
        return logits, loss

    def start_decoding(self, source: Tensor, source_lengths: Tensor) -> Tensor:
        """The decoder's state for ``generate``: the context, batch first, [B, L, H]."""
        return self.encode(source, source_lengths)[1].transpose(0, 1)

    def decode_step(self, tokens: Tensor, state: Tensor) -> Tuple[Tensor, Tensor]:
        """One decoder step: previous tokens [N] and state [N, L, H] -> (logits [N, V], state)."""
        output, hidden = self.decoder(
            self.target_embedding(tokens.unsqueeze(1)), state.transpose(0, 1).contiguous()
        )
        return self.output(output[:, 0]), hidden.transpose(0, 1)
