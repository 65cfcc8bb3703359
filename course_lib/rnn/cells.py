"""One time step: the step functions and the cells (``RNNCell``, ``LSTMCell``, ``GRUCell``).

``x_proj`` is the input's contribution ``W_ih x + b_ih``, computed before the step so that a
layer can project all time steps at once (one big matrix product). The cells are drop-in
twins of ``torch.nn``'s: same parameter names and shapes, gate order (LSTM: i, f, g, o;
GRU: r, z, n), forward signature and return values.

Shape letters: ``B`` batch, ``D`` input features, ``H`` hidden units, ``G`` gate rows
(``H``, ``4H`` or ``3H``).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.validation import (
    check_bool,
    check_choice,
    check_elements,
    check_like,
    check_size,
    check_tensor,
)

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "gru_step", "lstm_step", "rnn_step"]

LSTMState = Tuple[Tensor, Tensor]
NONLINEARITIES = ("tanh", "relu")


def _check_step(
    gates: int, x_proj: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor]
) -> None:
    sizes: dict = {}
    check_tensor("h", h, "B, H", dtype="floating", sizes=sizes)
    hidden = h.shape[1]
    check_tensor("x_proj", x_proj, f"B, {gates * hidden}", dtype="floating", sizes=sizes)
    check_tensor("weight_hh", weight_hh, f"{gates * hidden}, {hidden}", dtype="floating")
    if bias_hh is not None:
        check_tensor("bias_hh", bias_hh, f"{gates * hidden}", dtype="floating")
    for name, value in (("x_proj", x_proj), ("weight_hh", weight_hh), ("bias_hh", bias_hh)):
        if value is not None:
            check_like(name, value, h, what="the hidden state h")


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
    _check_step(1, x_proj, h, weight_hh, bias_hh)
    check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
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
    _check_step(4, x_proj, h, weight_hh, bias_hh)
    check_tensor("c", c, f"{h.shape[0]}, {h.shape[1]}", dtype="floating")
    check_like("c", c, h, what="the hidden state h")
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
    _check_step(3, x_proj, h, weight_hh, bias_hh)
    x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    reset = torch.sigmoid(x_r + h_r)
    update = torch.sigmoid(x_z + h_z)
    candidate = torch.tanh(x_n + reset * h_n)
    return (1 - update) * candidate + update * h


# ----------------------------------------------------------------------------------------
# Cells: one time step as a module
# ----------------------------------------------------------------------------------------


def check_sizes(input_size: Any, hidden_size: Any, gates: int) -> Tuple[int, int]:
    """Validated ``(input_size, hidden_size)`` of a cell or layer with ``gates`` gate blocks."""
    input_size = check_size("input_size", input_size)
    hidden_size = check_size("hidden_size", hidden_size)
    check_elements("gates x hidden_size x (input_size + hidden_size)",
                   gates * hidden_size * (input_size + hidden_size))  # fmt: skip
    return input_size, hidden_size


def check_input(
    input: Any, input_size: int, ranks: Tuple[int, int], shapes: str, weight: Tensor
) -> bool:
    """A cell's or layer's input: floating, ``input_size`` features, the dtype and device
    of ``weight``, and one of two ``ranks`` (unbatched, batched; ``shapes`` describes them).
    Returns whether it is batched."""
    check_tensor("input", input, f"..., {input_size}", dtype="floating")
    if input.dim() not in ranks:
        raise ValueError(
            f"input must have shape {shapes} with D = input_size = {input_size}, "
            f"got {list(input.shape)}"
        )
    check_like("input", input, weight)
    return input.dim() == ranks[1]


def uniform_init_(module: nn.Module, hidden_size: int) -> None:
    """Every parameter of ``module`` from Uniform(-1/sqrt(H), 1/sqrt(H)), as ``torch.nn``'s
    recurrent cells and layers initialise theirs."""
    bound = 1.0 / math.sqrt(hidden_size)
    for parameter in module.parameters():
        nn.init.uniform_(parameter, -bound, bound)


class _CellBase(nn.Module):
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        self.input_size, self.hidden_size = check_sizes(input_size, hidden_size, self.gates)
        self.bias = check_bool("bias", bias)
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
        uniform_init_(self, self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def _prepare(self, input: Tensor) -> Tuple[Tensor, bool]:
        batched = check_input(input, self.input_size, (1, 2), "[B, D] or [D]", self.weight_ih)
        return (input if batched else input.unsqueeze(0)), batched

    def _state(self, name: str, state: Optional[Tensor], x: Tensor, batched: bool) -> Tensor:
        if state is None:
            return x.new_zeros(x.shape[0], self.hidden_size)
        shape = f"{x.shape[0]}, {self.hidden_size}" if batched else f"{self.hidden_size}"
        check_tensor(name, state, shape, dtype="floating")
        check_like(name, state, x, what="the input")
        return state if batched else state.unsqueeze(0)


class RNNCell(_CellBase):
    """One step of a vanilla RNN, like ``torch.nn.RNNCell``.

    ``forward(input [B, D] or [D], hx [B, H] or [H] = zeros) -> h' [B, H] or [H]``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ) -> None:
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
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
            raise TypeError(f"hx must be a tuple (h, c) of two tensors, got {type(hx).__name__}")
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
