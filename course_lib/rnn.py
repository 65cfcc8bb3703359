"""Recurrent networks from scratch: RNN, LSTM and GRU cells and layers, and seq2seq.

The cells and layers are drop-in twins of ``torch.nn``'s modules of the same name: same
parameter names and shapes, same gate order (LSTM: i, f, g, o; GRU: r, z, n), same forward
signature and return values, so ``ours.load_state_dict(torch_module.state_dict())`` works
and the outputs agree. Only the maths is written out here, in plain tensor operations.

Shape letters: ``B`` batch, ``T`` time steps, ``D`` input features, ``H`` hidden units,
``L`` layers, ``V`` vocabulary size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "Seq2Seq",
    "exact_match",
    "gru_step",
    "lstm_step",
    "rnn_step",
    "translate",
]

if TYPE_CHECKING:
    from course_lib.data import DatePair, Vocab

LSTMState = Tuple[Tensor, Tensor]


# ----------------------------------------------------------------------------------------
# One time step. ``x_proj`` is the input's contribution W_ih x + b_ih, computed before the
# step so a layer can project all time steps at once (one big matrix product).
# ----------------------------------------------------------------------------------------


def rnn_step(
    x_proj: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor], nonlinearity: str
) -> Tensor:
    """Vanilla RNN: ``h' = tanh(W_ih x + b_ih + W_hh h + b_hh)`` (or ReLU).

    Args:
        x_proj: ``W_ih x + b_ih``, shape [B, H].
        h: previous hidden state [B, H].
        weight_hh: [H, H]. bias_hh: [H] or None.
        nonlinearity: ``"tanh"`` or ``"relu"``.

    Returns:
        The new hidden state [B, H].
    """
    pre_activation = x_proj + F.linear(h, weight_hh, bias_hh)
    return torch.tanh(pre_activation) if nonlinearity == "tanh" else torch.relu(pre_activation)


def lstm_step(
    x_proj: Tensor, h: Tensor, c: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor]
) -> LSTMState:
    """LSTM: four gates from the input and the previous hidden state, then both states.

    ``i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh)``;
    ``c' = sigmoid(f) * c + sigmoid(i) * tanh(g)``; ``h' = sigmoid(o) * tanh(c')``.

    Args:
        x_proj: ``W_ih x + b_ih``, shape [B, 4H] (gate order i, f, g, o).
        h, c: previous hidden and cell state [B, H].
        weight_hh: [4H, H]. bias_hh: [4H] or None.

    Returns:
        ``(h', c')``, each [B, H].
    """
    gates = x_proj + F.linear(h, weight_hh, bias_hh)
    input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=-1)
    c_next = torch.sigmoid(forget_gate) * c + torch.sigmoid(input_gate) * torch.tanh(candidate)
    h_next = torch.sigmoid(output_gate) * torch.tanh(c_next)
    return h_next, c_next


def gru_step(x_proj: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor]) -> Tensor:
    """GRU: reset gate r, update gate z and candidate n (gate order r, z, n).

    ``r = sigmoid(x_r + h_r)``, ``z = sigmoid(x_z + h_z)``, ``n = tanh(x_n + r * h_n)``,
    ``h' = (1 - z) * n + z * h``, where ``x_* = W_i* x + b_i*`` and ``h_* = W_h* h + b_h*``
    (the reset gate multiplies ``W_hn h + b_hn``, as in PyTorch and cuDNN).

    Args:
        x_proj: ``W_ih x + b_ih``, shape [B, 3H].
        h: previous hidden state [B, H].
        weight_hh: [3H, H]. bias_hh: [3H] or None.

    Returns:
        The new hidden state [B, H].
    """
    x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    reset = torch.sigmoid(x_r + h_r)
    update = torch.sigmoid(x_z + h_z)
    candidate = torch.tanh(x_n + reset * h_n)
    return (1 - update) * candidate + update * h


# ----------------------------------------------------------------------------------------
# Input checks shared by cells and layers
# ----------------------------------------------------------------------------------------


def _check_sizes(input_size: int, hidden_size: int) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_tensor(name: str, value: Tensor, shape: Tuple[int, ...], reference: Tensor) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
    if value.dtype != reference.dtype:
        raise TypeError(f"{name} must have dtype {reference.dtype}, got {value.dtype}")


def _check_input(input: Tensor, input_size: int, dims: Tuple[int, ...], what: str) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
    if input.dim() not in dims or input.shape[-1] != input_size:
        raise ValueError(
            f"input must have shape {what} with D = input_size = {input_size}, "
            f"got {list(input.shape)}"
        )
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {input.dtype}")


# ----------------------------------------------------------------------------------------
# Cells: one time step as a module
# ----------------------------------------------------------------------------------------


class _CellBase(nn.Module):
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows))
            self.bias_hh = nn.Parameter(torch.empty(rows))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, as in ``torch.nn``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def _prepare(self, input: Tensor) -> Tuple[Tensor, bool]:
        _check_input(input, self.input_size, (1, 2), "[B, D] or [D]")
        batched = input.dim() == 2
        return (input if batched else input.unsqueeze(0)), batched

    def _state(self, name: str, state: Optional[Tensor], x: Tensor, batched: bool) -> Tensor:
        if state is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        shape = (x.shape[0], self.hidden_size) if batched else (self.hidden_size,)
        _check_tensor(name, state, shape, x)
        return state if batched else state.unsqueeze(0)


class RNNCell(_CellBase):
    """One step of a vanilla RNN, like ``torch.nn.RNNCell``.

    ``forward(input [B, D] or [D], hx [B, H] or [H] = zeros) -> h' [B, H] or [H]``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, batched = self._prepare(input)
        h = self._state("hx", hx, x, batched)
        h_next = rnn_step(
            F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
            self.nonlinearity,
        )  # fmt: skip
        return h_next if batched else h_next.squeeze(0)


class LSTMCell(_CellBase):
    """One step of an LSTM, like ``torch.nn.LSTMCell``.

    ``forward(input [B, D] or [D], hx = (h, c) each [B, H] or [H], default zeros)``
    returns ``(h', c')``.
    """

    gates = 4

    def forward(self, input: Tensor, hx: Optional[LSTMState] = None) -> LSTMState:
        x, batched = self._prepare(input)
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("hx must be a tuple (h, c) of two tensors")
        h = self._state("hx[0]", None if hx is None else hx[0], x, batched)
        c = self._state("hx[1]", None if hx is None else hx[1], x, batched)
        h_next, c_next = lstm_step(
            F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh
        )
        if not batched:
            return h_next.squeeze(0), c_next.squeeze(0)
        return h_next, c_next


class GRUCell(_CellBase):
    """One step of a GRU, like ``torch.nn.GRUCell``.

    ``forward(input [B, D] or [D], hx [B, H] or [H] = zeros) -> h' [B, H] or [H]``.
    """

    gates = 3

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        x, batched = self._prepare(input)
        h = self._state("hx", hx, x, batched)
        h_next = gru_step(
            F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh
        )
        return h_next if batched else h_next.squeeze(0)


# ----------------------------------------------------------------------------------------
# Layers: a whole sequence, one or more stacked layers
# ----------------------------------------------------------------------------------------


class _RecurrentBase(nn.Module):
    gates = 1
    has_cell_state = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size)
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if bidirectional:
            raise ValueError("bidirectional=True is not supported by the course's layers")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = False
        rows = self.gates * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size
            self.register_parameter(
                f"weight_ih_l{layer}", nn.Parameter(torch.empty(rows, layer_input))
            )
            self.register_parameter(
                f"weight_hh_l{layer}", nn.Parameter(torch.empty(rows, hidden_size))
            )
            if bias:
                self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(rows)))
                self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(rows)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform(-1/sqrt(H), 1/sqrt(H)) for every parameter, as in ``torch.nn``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        return text

    def _layer_weights(
        self, layer: int
    ) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
        get = lambda name: getattr(self, f"{name}_l{layer}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def _step(self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int) -> Tuple[Tensor, ...]:
        raise NotImplementedError

    def _valid_steps(self, lengths: Optional[Tensor], x: Tensor, batched: bool) -> Optional[Tensor]:
        """[T, B, 1] mask of real (non-padding) steps from ``lengths`` [B], or None."""
        if lengths is None:
            return None
        if not batched:
            raise ValueError("lengths needs a batched input")
        if not isinstance(lengths, Tensor) or lengths.shape != (x.shape[1],):
            got = list(lengths.shape) if isinstance(lengths, Tensor) else type(lengths).__name__
            raise ValueError(f"lengths must be a tensor of shape [B] = [{x.shape[1]}], got {got}")
        if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > x.shape[0]):
            raise ValueError(f"lengths must lie in [0, T={x.shape[0]}]")
        steps = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
        return steps < lengths.to(x.device).view(1, -1, 1)

    def _initial_state(
        self, name: str, value: Optional[Tensor], x: Tensor, batched: bool
    ) -> Tensor:
        batch = x.shape[1]
        if value is None:
            return x.new_zeros(self.num_layers, batch, self.hidden_size)
        shape = (self.num_layers, batch, self.hidden_size) if batched else (
            self.num_layers, self.hidden_size)  # fmt: skip
        _check_tensor(name, value, shape, x)
        return value if batched else value.unsqueeze(1)

    def _run(
        self,
        input: Tensor,
        states: Tuple[Optional[Tensor], ...],
        lengths: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        shape = "[B, T, D]" if self.batch_first else "[T, B, D]"
        _check_input(input, self.input_size, (2, 3), f"{shape} or unbatched [T, D]")
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)  # time-major inside: [T, B, D]
        valid = self._valid_steps(lengths, x, batched)
        names = ["h_0", "c_0"][: len(states)]
        initial = [self._initial_state(n, s, x, batched) for n, s in zip(names, states)]
        final_states: List[Tuple[Tensor, ...]] = []
        layer_input = x
        for layer in range(self.num_layers):
            weight_ih, _, bias_ih, _ = self._layer_weights(layer)
            # One matrix product projects every time step's input; only W_hh h stays in the loop.
            projected = F.linear(layer_input, weight_ih, bias_ih)
            state = tuple(s[layer] for s in initial)
            outputs = []
            # unbind (not projected[t]): its backward stacks the step gradients once instead
            # of scattering each into a fresh [T, B, G] tensor of zeros.
            for t, x_proj in enumerate(projected.unbind(0)):
                new_state = self._step(x_proj, state, layer)
                if valid is None:
                    state = new_state
                    outputs.append(state[0])
                else:  # padded steps keep the state and output zeros (as packed sequences do)
                    state = tuple(torch.where(valid[t], n, o) for n, o in zip(new_state, state))
                    outputs.append(state[0] * valid[t])
            empty = x.new_zeros(0, x.shape[1], self.hidden_size)
            layer_output = torch.stack(outputs) if outputs else empty
            final_states.append(state)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_output = F.dropout(layer_output, self.dropout, training=True)
            layer_input = layer_output
        output = layer_input
        finals = tuple(torch.stack([s[k] for s in final_states]) for k in range(len(states)))
        if batched and self.batch_first:
            output = output.transpose(0, 1)
        if not batched:
            output = output.squeeze(1)
            finals = tuple(f.squeeze(1) for f in finals)
        return output, finals


class RNN(_RecurrentBase):
    """A (multi-layer) vanilla RNN over a whole sequence, like ``torch.nn.RNN``.

    ``forward(input, h_0=None) -> (output, h_n)``: input [T, B, D] ([B, T, D] with
    ``batch_first=True``, or unbatched [T, D]); ``h_0`` and ``h_n`` [L, B, H]; ``output``
    holds the last layer's hidden state at every step, [T, B, H] (or [B, T, H]).

    All three layers also accept ``lengths`` [B] (keyword-only, an addition to the
    ``torch.nn`` signature): steps at or after a sequence's length leave its state unchanged
    and output zeros, so ``h_n`` is each sequence's state at its last real step, as with
    ``torch.nn.utils.rnn.pack_padded_sequence``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        )

    def _step(self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int) -> Tuple[Tensor, ...]:
        _, weight_hh, _, bias_hh = self._layer_weights(layer)
        return (rnn_step(x_proj, state[0], weight_hh, bias_hh, self.nonlinearity),)

    def forward(
        self, input: Tensor, hx: Optional[Tensor] = None, *, lengths: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        output, (h_n,) = self._run(input, (hx,), lengths)
        return output, h_n


class LSTM(_RecurrentBase):
    """A (multi-layer) LSTM over a whole sequence, like ``torch.nn.LSTM``.

    ``forward(input, (h_0, c_0)=None) -> (output, (h_n, c_n))`` with the shapes of ``RNN``;
    ``c_0``/``c_n`` are the cell states [L, B, H].
    """

    gates = 4
    has_cell_state = True

    def _step(self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int) -> Tuple[Tensor, ...]:
        _, weight_hh, _, bias_hh = self._layer_weights(layer)
        return lstm_step(x_proj, state[0], state[1], weight_hh, bias_hh)

    def forward(
        self, input: Tensor, hx: Optional[LSTMState] = None, *, lengths: Optional[Tensor] = None
    ) -> Tuple[Tensor, LSTMState]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("hx must be a tuple (h_0, c_0) of two tensors")
        h_0, c_0 = (None, None) if hx is None else hx
        output, (h_n, c_n) = self._run(input, (h_0, c_0), lengths)
        return output, (h_n, c_n)


class GRU(_RecurrentBase):
    """A (multi-layer) GRU over a whole sequence, like ``torch.nn.GRU``.

    ``forward(input, h_0=None) -> (output, h_n)`` with the shapes of ``RNN``.
    """

    gates = 3

    def _step(self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int) -> Tuple[Tensor, ...]:
        _, weight_hh, _, bias_hh = self._layer_weights(layer)
        return (gru_step(x_proj, state[0], weight_hh, bias_hh),)

    def forward(
        self, input: Tensor, hx: Optional[Tensor] = None, *, lengths: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        output, (h_n,) = self._run(input, (hx,), lengths)
        return output, h_n


# ----------------------------------------------------------------------------------------
# Sequence to sequence without attention (Sutskever et al. 2014; Cho et al. 2014)
# ----------------------------------------------------------------------------------------


class Seq2Seq(nn.Module):
    """GRU encoder-decoder without attention: the whole input is squeezed into one vector.

    The encoder reads the source; its hidden state at each sequence's last real token (the
    context vector) is the decoder's initial state. The decoder starts from ``<start>`` and
    is trained with teacher forcing (the true previous token as input).

    ``forward(source [B, S], source_lengths [B], target [B, T]) -> (logits [B, T-1, V], loss)``
    where ``target`` starts with ``<start>`` and ends with ``<end>`` then padding
    (``course_lib.data.encode_dates`` gives exactly this); the loss is the mean cross-entropy
    over non-padding target positions. ``generate`` decodes greedily.
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
        for name, value in (
            ("source_vocab_size", source_vocab_size), ("target_vocab_size", target_vocab_size),
            ("embed_dim", embed_dim), ("hidden_size", hidden_size), ("num_layers", num_layers),
        ):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.pad_id, self.start_id, self.end_id = pad_id, start_id, end_id
        self.source_embedding = nn.Embedding(source_vocab_size, embed_dim, padding_idx=pad_id)
        self.target_embedding = nn.Embedding(target_vocab_size, embed_dim, padding_idx=pad_id)
        self.encoder = GRU(embed_dim, hidden_size, num_layers, batch_first=True)
        self.decoder = GRU(embed_dim, hidden_size, num_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, target_vocab_size)

    def _check(self, source: Tensor, source_lengths: Tensor) -> None:
        if source.dim() != 2 or source.dtype != torch.long:
            raise ValueError(
                f"source must be int64 of shape [B, S], got {source.dtype} {list(source.shape)}"
            )
        if source_lengths.shape != (source.shape[0],):
            raise ValueError(
                f"source_lengths must have shape [B] = [{source.shape[0]}], "
                f"got {list(source_lengths.shape)}"
            )
        if source.shape[0] and (
            int(source_lengths.min()) < 1 or int(source_lengths.max()) > source.shape[1]
        ):
            raise ValueError(f"source_lengths must be in [1, S={source.shape[1]}]")

    def encode(self, source: Tensor, source_lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """Encoder outputs [B, S, H] (zeros after each sequence's end) and the context: each
        layer's hidden state at the sequence's last real token, [L, B, H]."""
        self._check(source, source_lengths)
        return self.encoder(self.source_embedding(source), lengths=source_lengths)

    def forward(
        self, source: Tensor, source_lengths: Tensor, target: Tensor
    ) -> Tuple[Tensor, Tensor]:
        if target.dim() != 2 or target.shape[0] != source.shape[0] or target.shape[1] < 2:
            raise ValueError(
                f"target must have shape [B={source.shape[0]}, T>=2], got {list(target.shape)}"
            )
        _, context = self.encode(source, source_lengths)
        decoder_input, decoder_target = target[:, :-1], target[:, 1:]
        outputs, _ = self.decoder(self.target_embedding(decoder_input), context)
        logits = self.output(outputs)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), decoder_target.reshape(-1),
            ignore_index=self.pad_id,
        )  # fmt: skip
        return logits, loss

    @torch.no_grad()
    def generate(self, source: Tensor, source_lengths: Tensor, max_length: int = 12) -> Tensor:
        """Greedy decoding: [B, S] -> token ids [B, max_length] (after ``<start>``; ends at
        ``<end>``, then padding)."""
        _, state = self.encode(source, source_lengths)
        batch = source.shape[0]
        token = torch.full((batch, 1), self.start_id, dtype=torch.long, device=source.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=source.device)
        generated = []
        for _ in range(max_length):
            output, state = self.decoder(self.target_embedding(token), state)
            token = self.output(output).argmax(dim=-1)
            token = token.masked_fill(finished.unsqueeze(1), self.pad_id)
            generated.append(token)
            finished |= token.squeeze(1) == self.end_id
        return torch.cat(generated, dim=1) if generated else source.new_zeros(batch, 0)


# ----------------------------------------------------------------------------------------
# Using any sequence-to-sequence model with ``generate(source, source_lengths, max_length)``
# (this chapter's Seq2Seq, the attention chapter's, the Transformer) on strings
# ----------------------------------------------------------------------------------------


@torch.no_grad()
def translate(
    model: nn.Module,
    sources: Sequence[str],
    source_vocab: Vocab,
    target_vocab: Vocab,
    max_length: int = 12,
    batch_size: int = 512,
) -> List[str]:
    """Greedy translations of ``sources`` (strings) by ``model.generate``, as strings."""
    if isinstance(sources, str):
        raise TypeError("sources must be a sequence of strings, not one string")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    results: List[str] = []
    for start in range(0, len(sources), batch_size):
        chunk = sources[start : start + batch_size]
        ids = [source_vocab.encode(text) for text in chunk]
        lengths = torch.tensor([len(seq) for seq in ids], device=device)
        if int(lengths.min()) < 1:
            raise ValueError("sources must not contain empty strings")
        source = torch.full(
            (len(ids), int(lengths.max())), source_vocab.pad_id, dtype=torch.long, device=device
        )
        for row, seq in enumerate(ids):
            source[row, : len(seq)] = torch.tensor(seq, device=device)
        generated = model.generate(source, lengths, max_length).cpu()
        results.extend(target_vocab.decode(row) for row in generated)
    model.train(was_training)
    return results


def exact_match(
    model: nn.Module,
    pairs: Sequence[DatePair],
    source_vocab: Vocab,
    target_vocab: Vocab,
    batch_size: int = 512,
) -> Tensor:
    """Bool [N]: whether the greedy translation of each pair equals its target exactly."""
    predictions = translate(
        model, [pair.source for pair in pairs], source_vocab, target_vocab,
        max_length=max(len(pair.target) for pair in pairs) + 1, batch_size=batch_size,
    )  # fmt: skip
    return torch.tensor([p == pair.target for p, pair in zip(predictions, pairs)])
