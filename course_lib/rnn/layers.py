"""Layers: a whole sequence through one or more stacked recurrent layers (``RNN``, ``LSTM``,
``GRU``), drop-in twins of ``torch.nn``'s modules of the same name.

They run the same equations as the cells (``rnn_step`` and friends), with the backward pass
through time written out by hand for speed (``course_lib.rnn.kernels``).

Shape letters: ``T`` time steps, ``B`` batch, ``D`` input features, ``H`` hidden units,
``G`` gate rows, ``L`` layers.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.rnn import kernels
from course_lib.rnn.cells import (
    NONLINEARITIES,
    LSTMState,
    check_input,
    check_sizes,
    uniform_init_,
)
from course_lib.validation import (
    check_bool,
    check_choice,
    check_float,
    check_instance,
    check_lengths,
    check_like,
    check_size,
    check_tensor,
)

__all__ = ["GRU", "LSTM", "RNN", "init_forget_bias_", "make_recurrent"]

#: The recurrent state of a layer: ``h`` [L, B, H], or ``(h, c)`` for an LSTM.
State = Union[Tensor, LSTMState]


def _needs_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class _RecurrentBase(nn.Module):
    gates = 1

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
        input_size, hidden_size = check_sizes(input_size, hidden_size, self.gates)
        num_layers = check_size("num_layers", num_layers, maximum=10_000)
        dropout = check_float("dropout", dropout, 0.0, 1.0, include_maximum=False)
        if check_bool("bidirectional", bidirectional):
            raise ValueError("bidirectional=True is not supported by the course's layers")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = (
            check_bool("bias", bias),
            check_bool("batch_first", batch_first),
        )
        self.dropout = dropout
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
        uniform_init_(self, self.hidden_size)

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

    def _layer(
        self, layer_input: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        """One layer over all steps: input [T, B, D] -> (output [T, B, H], final state)."""
        raise NotImplementedError

    def _valid_steps(self, lengths: Optional[Tensor], x: Tensor, batched: bool) -> Optional[Tensor]:
        """[T, B, 1] mask of real (non-padding) steps from ``lengths`` [B], or None."""
        if lengths is None:
            return None
        if not batched:
            raise ValueError("lengths needs a batched input [B, T, D] (or [T, B, D])")
        # Values are checked on the CPU only: reading them from a GPU would synchronise
        # (out-of-range lengths on a GPU act as clamped to [0, T]).
        check_lengths("lengths", lengths, x.shape[1], x.shape[0])
        steps = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
        return steps < lengths.to(x.device).view(1, -1, 1)

    def _initial_state(
        self, name: str, value: Optional[Tensor], x: Tensor, batched: bool
    ) -> Tensor:
        batch = x.shape[1]
        if value is None:
            return x.new_zeros(self.num_layers, batch, self.hidden_size)
        shape = (
            f"{self.num_layers}, {batch}, {self.hidden_size}"
            if batched
            else f"{self.num_layers}, {self.hidden_size}"
        )
        check_tensor(name, value, shape, dtype="floating")
        check_like(name, value, x, what="the input")
        return value if batched else value.unsqueeze(1)

    def _run(
        self,
        input: Tensor,
        states: Tuple[Optional[Tensor], ...],
        lengths: Optional[Tensor] = None,
        names: Tuple[str, ...] = ("hx",),
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        layout = "[B, T, D]" if self.batch_first else "[T, B, D]"
        shapes = f"{layout} or unbatched [T, D]"
        batched = check_input(input, self.input_size, (2, 3), shapes, self.weight_ih_l0)
        x = input if batched else input.unsqueeze(1)
        if batched and self.batch_first:
            x = x.transpose(0, 1)  # time-major inside: [T, B, D]
        valid = self._valid_steps(lengths, x, batched)
        initial = [self._initial_state(n, s, x, batched) for n, s in zip(names, states)]
        final_states: List[Tuple[Tensor, ...]] = []
        layer_input = x
        for layer in range(self.num_layers):
            state = tuple(s[layer] for s in initial)
            if x.shape[0] == 0:  # no time steps: the state is the initial state
                layer_output = x.new_zeros(0, x.shape[1], self.hidden_size)
            else:
                layer_output, state = self._layer(layer_input, state, layer, valid)
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

    The layers run the same equations as the cells (``rnn_step`` and friends), with the
    backward pass through time written out by hand for speed.
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
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        )

    def _layer(
        self, layer_input: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        kind = f"rnn_{self.nonlinearity}"
        weight_ih, weight_hh, bias, _ = kernels.kernel_weights(kind, *self._layer_weights(layer))
        if _needs_grad(layer_input, weight_ih, bias, state[0], weight_hh):
            output, h_n = kernels.RNNLayer.apply(
                layer_input, weight_ih, bias, state[0], weight_hh, valid, self.nonlinearity
            )
            return output, (h_n,)
        x_proj, _ = kernels.project(layer_input, weight_ih, bias)
        states = kernels.rnn_loop(x_proj, state[0], weight_hh, valid, self.nonlinearity)[1:]
        return (states if valid is None else states * valid), (states[-1],)

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

    def _layer(
        self, layer_input: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        weight_ih, weight_hh, bias, _ = kernels.kernel_weights("lstm", *self._layer_weights(layer))
        h_0, c_0 = state
        if _needs_grad(layer_input, weight_ih, bias, h_0, c_0, weight_hh):
            output, h_n, c_n = kernels.LSTMLayer.apply(
                layer_input, weight_ih, bias, h_0, c_0, weight_hh, valid
            )
            return output, (h_n, c_n)
        x_proj, _ = kernels.project(layer_input, weight_ih, bias)
        _, hs, cs, _ = kernels.lstm_loop(x_proj, h_0, c_0, weight_hh, valid)
        return (hs[1:] if valid is None else hs[1:] * valid), (hs[-1], cs[-1] * 0.5)

    def forward(
        self, input: Tensor, hx: Optional[LSTMState] = None, *, lengths: Optional[Tensor] = None
    ) -> Tuple[Tensor, LSTMState]:
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(
                f"hx must be a tuple (h_0, c_0) of two tensors, got {type(hx).__name__}"
            )
        h_0, c_0 = (None, None) if hx is None else hx
        output, (h_n, c_n) = self._run(input, (h_0, c_0), lengths, names=("hx[0]", "hx[1]"))
        return output, (h_n, c_n)


class GRU(_RecurrentBase):
    """A (multi-layer) GRU over a whole sequence, like ``torch.nn.GRU``.

    ``forward(input, h_0=None) -> (output, h_n)`` with the shapes of ``RNN``.
    """

    gates = 3

    def _layer(
        self, layer_input: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        weight_ih, weight_hh, bias_ih, bias_hh = kernels.kernel_weights(
            "gru", *self._layer_weights(layer)
        )
        if _needs_grad(layer_input, weight_ih, bias_ih, state[0], weight_hh, bias_hh):
            output, h_n = kernels.GRULayer.apply(
                layer_input, weight_ih, bias_ih, state[0], weight_hh, bias_hh, valid
            )
            return output, (h_n,)
        x_proj, _ = kernels.project(layer_input, weight_ih, bias_ih)
        *_, states = kernels.gru_loop(x_proj, state[0], weight_hh, bias_hh, valid)
        return (states[1:] if valid is None else states[1:] * valid), (states[-1],)

    def forward(
        self, input: Tensor, hx: Optional[Tensor] = None, *, lengths: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        output, (h_n,) = self._run(input, (hx,), lengths)
        return output, h_n


def init_forget_bias_(lstm: Union[LSTM, nn.LSTM], value: float = 1.0) -> None:
    """Set the forget-gate bias of every layer of ``lstm`` to ``value`` (in place).

    With the default initialisation the forget gate starts near ``sigmoid(0) = 0.5``, so the
    cell state halves at every step until training learns otherwise; a bias of 1 (Gers et
    al. 2000; Jozefowicz et al. 2015) starts it near 0.73 and long memories train sooner.
    The sum ``b_ih + b_hh`` is what matters: ``b_ih`` gets ``value``, ``b_hh`` zero.
    """
    check_instance("lstm", lstm, (LSTM, nn.LSTM), "an LSTM layer (course_lib.rnn or torch.nn)")
    value = check_float("value", value)
    if not lstm.bias:
        raise ValueError("lstm has no biases (bias=False)")
    size = lstm.hidden_size
    with torch.no_grad():
        for layer in range(lstm.num_layers):
            getattr(lstm, f"bias_ih_l{layer}")[size : 2 * size] = value
            getattr(lstm, f"bias_hh_l{layer}")[size : 2 * size] = 0.0


_LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def make_recurrent(
    cell: str, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0
) -> _RecurrentBase:
    """A batch-first ``RNN``, ``LSTM`` or ``GRU`` layer, chosen by ``cell`` ("rnn", "lstm",
    "gru"); input [B, T, D], output [B, T, H]."""
    check_choice("cell", cell, sorted(_LAYERS))
    return _LAYERS[cell](input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
