"""Recurrent networks from scratch: cells, layers, language models, seq2seq.

The cells and layers are drop-in twins of ``torch.nn``'s modules of the same name: same
parameter names and shapes, same gate order (LSTM: i, f, g, o; GRU: r, z, n), same forward
signature and return values, so ``ours.load_state_dict(torch_module.state_dict())`` works
and the outputs agree. Only the maths is written out here, in plain tensor operations.

The module reads top to bottom in the order of the chapter: one time step (``rnn_step``,
``lstm_step``, ``gru_step``); backpropagation through time written out by hand (what the
layers run, for speed); cells and layers; measuring gradients through time; truncated
BPTT (``batchify``, ``TBPTTChunks``, ``detach_state``, ``TruncatedBPTT``); sampling with
temperature and top-k; the character language model; the task types (many-to-one,
many-to-many) with small generated data sets; seq2seq without attention.

Shape letters: ``B`` batch, ``T`` time steps, ``D`` input features, ``H`` hidden units,
``G`` gate rows (``H``, ``4H`` or ``3H``), ``L`` layers, ``V`` vocabulary size, ``C``
classes, ``N`` items or characters, ``S`` source length.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "CharLanguageModel",
    "GRUCell",
    "LSTMCell",
    "RNNCell",
    "Seq2Seq",
    "SequenceClassifier",
    "SequenceTagger",
    "TBPTTChunks",
    "TruncatedBPTT",
    "accuracy_by_length",
    "batchify",
    "bracket_depth_task",
    "detach_state",
    "evaluate_bits_per_char",
    "exact_match",
    "first_symbol_task",
    "gru_step",
    "init_forget_bias_",
    "input_gradient_norms",
    "lstm_step",
    "make_recurrent",
    "plot_task_types",
    "rnn_step",
    "sample_next_token",
    "sampling_probs",
    "state_gradient_norms",
    "translate",
]

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from course_lib.data import DatePair, Vocab

LSTMState = Tuple[Tensor, Tensor]
#: The recurrent state of a layer: ``h`` [L, B, H], or ``(h, c)`` for an LSTM.
State = Union[Tensor, LSTMState]


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
# Backpropagation through time, written out. A layer could simply call the step functions
# above in a loop and let autograd record some ten small operations per step; instead each
# layer is one autograd Function whose forward loops over time without recording anything
# and whose backward walks the same loop in reverse. Everything that does not depend on
# the incoming gradient (the local derivatives of the gates) is computed once for all
# time steps after the forward loop, so the backward loop is a handful of operations per
# step, and the weight gradients are one big matrix product over all steps at the end.
#
# ``valid`` [T, B, 1] (bool, or None) marks real steps; at padded steps the state is
# carried over unchanged and the output is zero (what packed sequences do).
# ----------------------------------------------------------------------------------------


def _needs_grad(*tensors: Optional[Tensor]) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _rnn_loop(
    x_proj: Tensor, h: Tensor, weight_hh: Tensor, valid: Optional[Tensor], nonlinearity: str
) -> Tensor:
    """States h_1..h_T [T, B, H] of a vanilla RNN; ``x_proj`` already holds both biases."""
    states = x_proj.new_empty(x_proj.shape[0], h.shape[0], h.shape[1])
    weight_t = weight_hh.t()
    activation = torch.tanh_ if nonlinearity == "tanh" else torch.relu_
    for t, (x_t, h_t) in enumerate(zip(x_proj.unbind(0), states.unbind(0))):
        activation(torch.addmm(x_t, h, weight_t, out=h_t))
        if valid is not None:
            torch.where(valid[t], h_t, h, out=h_t)
        h = h_t
    return states


class _RNNLayer(torch.autograd.Function):
    """``h_t = act(x_proj_t + W_hh h_{t-1} + b_hh)`` over all steps, with a hand-written
    backward: ``dpre_t = dh_t * act'(pre_t)``, ``dh_{t-1} = dpre_t W_hh``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x_proj: Tensor,
        h_0: Tensor,
        weight_hh: Tensor,
        bias_hh: Optional[Tensor],
        valid: Optional[Tensor],
        nonlinearity: str,
    ) -> Tuple[Tensor, Tensor]:
        if bias_hh is not None:
            x_proj = x_proj + bias_hh  # b_hh joins b_ih once, outside the loop
        states = _rnn_loop(x_proj, h_0, weight_hh, valid, nonlinearity)
        # Local derivative act'(pre_t), read off the output: 1 - h^2 (tanh) or [h > 0] (ReLU).
        slope = 1 - states * states if nonlinearity == "tanh" else (states > 0).to(states.dtype)
        real = None
        if valid is not None:
            real = valid.to(states.dtype)
            slope = slope * real
        h_prev = torch.cat([h_0.unsqueeze(0), states[:-1]])
        ctx.save_for_backward(slope, h_prev, weight_hh, real)
        ctx.has_bias = bias_hh is not None
        output = states if valid is None else states * valid
        return output, states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor, grad_h_n: Tensor) -> Tuple[Any, ...]:
        slope, h_prev, weight_hh, real = ctx.saved_tensors
        grad_output, carry = _mask_gradient(grad_output, real)
        d_pre = torch.empty_like(slope)
        dh = grad_h_n
        for t in range(slope.shape[0] - 1, -1, -1):
            dh = dh + grad_output[t]
            torch.mul(dh, slope[t], out=d_pre[t])
            dh = d_pre[t] @ weight_hh if carry is None else torch.addmm(
                dh * carry[t], d_pre[t], weight_hh)  # fmt: skip
        return (d_pre, dh, *_weight_grads(ctx, 2, d_pre, h_prev), None, None)


def _lstm_loop(
    x_proj: Tensor, h: Tensor, c: Tensor, weight_hh: Tensor, valid: Optional[Tensor]
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Activated gates [T, B, 4H] and h_t, c_t, tanh(c_t) [T, B, H] of an LSTM."""
    steps, batch, size = x_proj.shape[0], h.shape[0], h.shape[1]
    gates = x_proj.new_empty(steps, batch, 4 * size)
    hs, cs, tanh_cs = (x_proj.new_empty(steps, batch, size) for _ in range(3))
    weight_t = weight_hh.t()
    candidate = slice(2 * size, 3 * size)
    for t, x_t in enumerate(x_proj.unbind(0)):
        pre_activation = torch.addmm(x_t, h, weight_t)
        torch.sigmoid(pre_activation, out=gates[t])  # i, f, o (g is overwritten next)
        torch.tanh(pre_activation[:, candidate], out=gates[t, :, candidate])
        i, f, g, o = gates[t].chunk(4, dim=1)
        c_next = torch.addcmul(f * c, i, g, out=cs[t])
        torch.tanh(c_next, out=tanh_cs[t])
        h_next = torch.mul(o, tanh_cs[t], out=hs[t])
        if valid is not None:
            torch.where(valid[t], c_next, c, out=c_next)
            torch.where(valid[t], h_next, h, out=h_next)
        h, c = h_next, c_next
    return gates, hs, cs, tanh_cs


class _LSTMLayer(torch.autograd.Function):
    """An LSTM over all steps with a hand-written backward (BPTT).

    With ``dh``, ``dc`` the gradients reaching ``h_t`` and ``c_t``:
    ``dc += dh * o * (1 - tanh(c_t)^2)``; the gate pre-activations get
    ``di = dc * g * i(1-i)``, ``df = dc * c_{t-1} * f(1-f)``, ``dg = dc * i * (1-g^2)``,
    ``do = dh * tanh(c_t) * o(1-o)``; then ``dc_{t-1} = dc * f`` (the additive path) and
    ``dh_{t-1} = [di, df, dg, do] W_hh``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x_proj: Tensor,
        h_0: Tensor,
        c_0: Tensor,
        weight_hh: Tensor,
        bias_hh: Optional[Tensor],
        valid: Optional[Tensor],
    ) -> Tuple[Tensor, Tensor, Tensor]:
        if bias_hh is not None:
            x_proj = x_proj + bias_hh
        gates, hs, cs, tanh_cs = _lstm_loop(x_proj, h_0, c_0, weight_hh, valid)
        i, f, g, o = gates.chunk(4, dim=-1)
        c_prev = torch.cat([c_0.unsqueeze(0), cs[:-1]])
        # Factors of the backward pass that do not depend on the incoming gradient:
        # d_gates = [dc, dc, dc, dh] * gate_factors, dc += dh * cell_factor, dc_prev = dc * f.
        gate_factors = torch.stack(
            [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g), tanh_cs * o * (1 - o)],
            dim=2,
        )  # [T, B, 4, H]
        cell_factor = o * (1 - tanh_cs * tanh_cs)
        forget, real = f, None
        if valid is not None:
            real = valid.to(hs.dtype)
            gate_factors = gate_factors * real.unsqueeze(-1)
            cell_factor = cell_factor * real
            forget = torch.where(valid, f, 1.0)
        h_prev = torch.cat([h_0.unsqueeze(0), hs[:-1]])
        ctx.save_for_backward(gate_factors, cell_factor, forget, real, h_prev, weight_hh)
        ctx.has_bias = bias_hh is not None
        output = hs if valid is None else hs * valid
        return output, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_output: Tensor, grad_h_n: Tensor, grad_c_n: Tensor
    ) -> Tuple[Any, ...]:
        gate_factors, cell_factor, forget, real, h_prev, weight_hh = ctx.saved_tensors
        grad_output, carry = _mask_gradient(grad_output, real)
        steps, batch = gate_factors.shape[:2]
        d_gates = torch.empty_like(gate_factors)  # [T, B, 4, H]
        dh, dc = grad_h_n, grad_c_n
        for t in range(steps - 1, -1, -1):
            dh = dh + grad_output[t]
            dc = torch.addcmul(dc, dh, cell_factor[t])
            torch.mul(gate_factors[t, :, :3], dc.unsqueeze(1), out=d_gates[t, :, :3])
            torch.mul(gate_factors[t, :, 3], dh, out=d_gates[t, :, 3])
            dc = dc * forget[t]
            flat = d_gates[t].view(batch, -1)
            dh = flat @ weight_hh if carry is None else torch.addmm(dh * carry[t], flat, weight_hh)
        d_gates = d_gates.flatten(2)
        return (d_gates, dh, dc, *_weight_grads(ctx, 3, d_gates, h_prev), None)


def _gru_loop(
    x_proj: Tensor, h: Tensor, weight_hh: Tensor, bias_hh: Optional[Tensor], valid: Optional[Tensor]
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gates r, z [T, B, 2H], candidates n [T, B, H], ``W_hh h + b_hh`` [T, B, 3H] and
    states [T, B, H] of a GRU."""
    steps, batch, size = x_proj.shape[0], h.shape[0], h.shape[1]
    reset_update = x_proj.new_empty(steps, batch, 2 * size)
    candidates, states = (x_proj.new_empty(steps, batch, size) for _ in range(2))
    hidden_proj = x_proj.new_empty(steps, batch, 3 * size)
    weight_t = weight_hh.t()
    for t, x_t in enumerate(x_proj.unbind(0)):
        hp = hidden_proj[t]
        if bias_hh is None:
            torch.mm(h, weight_t, out=hp)
        else:
            torch.addmm(bias_hh, h, weight_t, out=hp)
        rz = torch.add(x_t[:, : 2 * size], hp[:, : 2 * size], out=reset_update[t]).sigmoid_()
        reset, update = rz[:, :size], rz[:, size:]
        n = torch.addcmul(x_t[:, 2 * size :], reset, hp[:, 2 * size :], out=candidates[t])
        n.tanh_()
        h_next = torch.addcmul(n, update, h - n, out=states[t])  # (1 - z) n + z h
        if valid is not None:
            torch.where(valid[t], h_next, h, out=h_next)
        h = h_next
    return reset_update, candidates, hidden_proj, states


class _GRULayer(torch.autograd.Function):
    """A GRU over all steps with a hand-written backward (BPTT).

    With ``dh`` the gradient reaching ``h_t``: ``dz = dh * (h_{t-1} - n) * z(1-z)``,
    ``dn = dh * (1-z) * (1-n^2)``, ``dr = dn * (W_hn h_{t-1} + b_hn) * r(1-r)``; then
    ``dh_{t-1} = dh * z + [dr, dz, dn * r] W_hh``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x_proj: Tensor,
        h_0: Tensor,
        weight_hh: Tensor,
        bias_hh: Optional[Tensor],
        valid: Optional[Tensor],
    ) -> Tuple[Tensor, Tensor]:
        reset_update, n, hidden_proj, states = _gru_loop(x_proj, h_0, weight_hh, bias_hh, valid)
        r, z = reset_update.chunk(2, dim=-1)
        h_prev = torch.cat([h_0.unsqueeze(0), states[:-1]])
        update_factor = (h_prev - n) * z * (1 - z)
        candidate_factor = (1 - z) * (1 - n * n)
        reset_factor = hidden_proj[..., 2 * n.shape[-1] :] * r * (1 - r)
        keep, real = z, None
        if valid is not None:
            real = valid.to(states.dtype)
            update_factor = update_factor * real
            candidate_factor = candidate_factor * real
            keep = torch.where(valid, z, 1.0)
        ctx.save_for_backward(
            update_factor, candidate_factor, reset_factor, r, keep, real, h_prev, weight_hh
        )
        ctx.has_bias = bias_hh is not None
        output = states if valid is None else states * valid
        return output, states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor, grad_h_n: Tensor) -> Tuple[Any, ...]:
        update_factor, candidate_factor, reset_factor, r, keep, real, h_prev, weight_hh = (
            ctx.saved_tensors
        )
        grad_output, _ = _mask_gradient(grad_output, real)
        steps, batch, size = r.shape
        d_hidden = r.new_empty(steps, batch, 3 * size)  # gradient of W_hh h + b_hh
        d_candidate = torch.empty_like(r)  # gradient of the candidate's pre-activation
        dh = grad_h_n
        for t in range(steps - 1, -1, -1):
            dh = dh + grad_output[t]
            d_h = d_hidden[t]
            torch.mul(dh, update_factor[t], out=d_h[:, size : 2 * size])
            dn = torch.mul(dh, candidate_factor[t], out=d_candidate[t])
            torch.mul(dn, reset_factor[t], out=d_h[:, :size])
            torch.mul(dn, r[t], out=d_h[:, 2 * size :])
            dh = torch.addmm(dh * keep[t], d_h, weight_hh)
        d_input = torch.cat([d_hidden[..., : 2 * size], d_candidate], dim=-1)
        return (d_input, dh, *_weight_grads(ctx, 2, d_hidden, h_prev), None)


def _mask_gradient(grad_output: Tensor, real: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
    """Drop the gradient of padded outputs (they are constant zeros); also return the
    ``[T, B, 1]`` factor by which ``dh`` passes unchanged through padded steps."""
    if real is None:
        return grad_output, None
    return grad_output * real, 1 - real


def _weight_grads(
    ctx: Any, weight_index: int, d_hidden: Tensor, h_prev: Tensor
) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Gradients of W_hh and b_hh (inputs ``weight_index`` and the next one): the weight
    gradient sums ``d_hidden_t^T h_{t-1}`` over all steps in one matrix product."""
    d_weight = d_bias = None
    if ctx.needs_input_grad[weight_index]:
        d_weight = d_hidden.flatten(0, 1).t() @ h_prev.flatten(0, 1)
    if ctx.has_bias and ctx.needs_input_grad[weight_index + 1]:
        d_bias = d_hidden.sum(dim=(0, 1))
    return d_weight, d_bias


# ----------------------------------------------------------------------------------------
# Input checks shared by cells and layers
# ----------------------------------------------------------------------------------------


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _check_sizes(input_size: int, hidden_size: int) -> None:
    _check_positive_int("input_size", input_size)
    _check_positive_int("hidden_size", hidden_size)


def _check_tensor(name: str, value: Tensor, shape: Tuple[int, ...], reference: Tensor) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
    if value.dtype != reference.dtype:
        raise TypeError(f"{name} must have dtype {reference.dtype}, got {value.dtype}")
    if value.device != reference.device:
        raise ValueError(f"{name} must be on {reference.device}, got {value.device}")


def _check_input(
    input: Tensor, input_size: int, dims: Tuple[int, ...], what: str, weight: Tensor
) -> None:
    if not isinstance(input, Tensor):
        raise TypeError(f"input must be a Tensor, got {type(input).__name__}")
    if input.dim() not in dims or input.shape[-1] != input_size:
        raise ValueError(
            f"input must have shape {what} with D = input_size = {input_size}, "
            f"got {list(input.shape)}"
        )
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got {input.dtype}")
    if input.dtype != weight.dtype:
        raise TypeError(
            f"input has dtype {input.dtype} but the parameters have {weight.dtype}; "
            f"convert one of them (e.g. model.to({input.dtype}))"
        )


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
        _check_input(input, self.input_size, (1, 2), "[B, D] or [D]", self.weight_ih)
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
        _check_positive_int("num_layers", num_layers)
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

    def _layer(
        self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        """One layer over all steps: ``x_proj`` [T, B, G] -> (output [T, B, H], final state)."""
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
        if lengths.is_floating_point() or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
        # Range checks read values, which costs a host synchronisation on a GPU: done on the
        # CPU only (out-of-range lengths on a GPU act as clamped to [0, T]).
        on_cpu = lengths.device.type == "cpu"
        if (
            on_cpu
            and lengths.numel()
            and (int(lengths.min()) < 0 or int(lengths.max()) > x.shape[0])
        ):
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
        _check_input(
            input, self.input_size, (2, 3), f"{shape} or unbatched [T, D]", self.weight_ih_l0
        )
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
            projected = F.linear(layer_input, weight_ih, bias_ih).contiguous()
            state = tuple(s[layer] for s in initial)
            if x.shape[0] == 0:  # no time steps: the state is the initial state
                layer_output = x.new_zeros(0, x.shape[1], self.hidden_size)
            else:
                layer_output, state = self._layer(projected, state, layer, valid)
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
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional
        )

    def _layer(
        self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        _, weight_hh, _, bias_hh = self._layer_weights(layer)
        if _needs_grad(x_proj, state[0], weight_hh, bias_hh):
            output, h_n = _RNNLayer.apply(
                x_proj, state[0], weight_hh, bias_hh, valid, self.nonlinearity
            )
            return output, (h_n,)
        if bias_hh is not None:
            x_proj = x_proj + bias_hh
        states = _rnn_loop(x_proj, state[0], weight_hh, valid, self.nonlinearity)
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
        self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        _, weight_hh, _, bias_hh = self._layer_weights(layer)
        h_0, c_0 = state
        if _needs_grad(x_proj, h_0, c_0, weight_hh, bias_hh):
            output, h_n, c_n = _LSTMLayer.apply(x_proj, h_0, c_0, weight_hh, bias_hh, valid)
            return output, (h_n, c_n)
        if bias_hh is not None:
            x_proj = x_proj + bias_hh
        _, hs, cs, _ = _lstm_loop(x_proj, h_0, c_0, weight_hh, valid)
        return (hs if valid is None else hs * valid), (hs[-1], cs[-1])

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

    def _layer(
        self, x_proj: Tensor, state: Tuple[Tensor, ...], layer: int, valid: Optional[Tensor]
    ) -> Tuple[Tensor, Tuple[Tensor, ...]]:
        _, weight_hh, _, bias_hh = self._layer_weights(layer)
        if _needs_grad(x_proj, state[0], weight_hh, bias_hh):
            output, h_n = _GRULayer.apply(x_proj, state[0], weight_hh, bias_hh, valid)
            return output, (h_n,)
        *_, states = _gru_loop(x_proj, state[0], weight_hh, bias_hh, valid)
        return (states if valid is None else states * valid), (states[-1],)

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
    if not isinstance(lstm, (LSTM, nn.LSTM)):
        raise TypeError(f"lstm must be an LSTM layer, got {type(lstm).__name__}")
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
    if cell not in _LAYERS:
        raise ValueError(f"cell must be one of {sorted(_LAYERS)}, got {cell!r}")
    return _LAYERS[cell](input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)


# ----------------------------------------------------------------------------------------
# Measuring gradients through time (why vanilla RNNs are hard to train)
# ----------------------------------------------------------------------------------------


def state_gradient_norms(
    cell: nn.Module,
    inputs: Tensor,
    direction: Optional[Tensor] = None,
    seed: int = 0,
) -> Tensor:
    """How strongly the last hidden state depends on each earlier state.

    Runs ``cell`` (an ``RNNCell``, ``GRUCell`` or ``LSTMCell``, ours or ``torch.nn``'s)
    over ``inputs`` [B, T, D] from a zero state, takes the scalar ``L = <u, h_T>`` for a
    fixed unit vector ``u`` [H] (``direction``, or a random one drawn with ``seed``) and
    returns the mean over the batch of ``norm(dL/ds_t)`` for t = 0..T, float64 [T + 1], where
    ``s_t`` is the state ``h_t`` (for an LSTM the pair ``(h_t, c_t)``, concatenated).
    Entry 0 is the gradient that reaches the initial state; entry T is ``norm(u) = 1``.
    """
    if not isinstance(inputs, Tensor) or inputs.dim() != 3:
        shape = list(inputs.shape) if isinstance(inputs, Tensor) else type(inputs).__name__
        raise ValueError(f"inputs must have shape [B, T, D], got {shape}")
    hidden_size = cell.hidden_size
    if direction is None:
        generator = torch.Generator().manual_seed(seed)
        direction = torch.randn(hidden_size, generator=generator, dtype=torch.float64)
    direction = (direction / direction.norm()).to(inputs)
    if direction.shape != (hidden_size,):
        raise ValueError(f"direction must have shape [H] = [{hidden_size}]")
    is_lstm = isinstance(cell, (LSTMCell, nn.LSTMCell))
    batch = inputs.shape[0]
    with torch.enable_grad():
        h = inputs.new_zeros(batch, hidden_size, requires_grad=True)
        state: Any = (h, inputs.new_zeros(batch, hidden_size, requires_grad=True)) if is_lstm else h
        states = [state]
        for x_t in inputs.unbind(1):
            state = cell(x_t, state)
            states.append(state)
        h_last = state[0] if is_lstm else state
        flat = [s for pair in states for s in pair] if is_lstm else states
        grads = torch.autograd.grad((h_last @ direction).sum(), flat, allow_unused=True)
    grads = [torch.zeros_like(s) if g is None else g for g, s in zip(grads, flat)]
    if is_lstm:  # the norm of the pair (dL/dh_t, dL/dc_t)
        grads = [torch.cat(grads[k : k + 2], dim=-1) for k in range(0, len(grads), 2)]
    # Norms in float64: squaring a float32 gradient of 1e-30 would underflow to zero.
    return torch.stack([g.double().norm(dim=-1).mean() for g in grads]).detach()


def input_gradient_norms(model: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
    """``norm(dLoss/dx_t)`` for each step t of ``inputs`` [B, T, D], averaged over the batch.

    ``model(inputs, targets)`` must return ``(output, loss)``. The result (float64 [T]) shows
    how far back in time the loss still "sees" the input: a vanishing gradient makes early
    steps invisible to learning.
    """
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        _, loss = model(x, targets)
        (grad,) = torch.autograd.grad(loss, x)
    return grad.double().norm(dim=-1).mean(dim=0)  # float64: tiny gradients do not underflow


# ----------------------------------------------------------------------------------------
# Truncated backpropagation through time: a long text as parallel streams, cut into
# chunks; the state flows from one chunk to the next, the gradient does not.
# ----------------------------------------------------------------------------------------


def batchify(ids: Tensor, batch_size: int) -> Tensor:
    """Lay a long sequence ``ids`` [N] out as ``batch_size`` parallel streams [B, N // B].

    Stream ``b`` is the ``b``-th contiguous slice of the text, so reading the columns left
    to right reads every stream forward in time; the last ``N mod B`` items are dropped.
    """
    if not isinstance(ids, Tensor) or ids.dim() != 1:
        shape = list(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"ids must be a 1-D tensor [N], got {shape}")
    _check_positive_int("batch_size", batch_size)
    length = ids.shape[0] // batch_size
    return ids[: length * batch_size].reshape(batch_size, length)


class TBPTTChunks:
    """Consecutive ``(inputs, targets)`` chunks of parallel streams, for truncated BPTT.

    ``streams`` [B, M] (from ``batchify``) is cut along time into chunks of ``seq_len``
    steps: chunk k is ``streams[:, k*seq_len : (k+1)*seq_len]`` and its targets are the
    same window shifted by one step. Iterating yields the chunks in order (the last one
    may be shorter); the object can be iterated again (one pass per epoch), and
    ``len()`` is the number of chunks per pass.
    """

    def __init__(self, streams: Tensor, seq_len: int) -> None:
        if not isinstance(streams, Tensor) or streams.dim() != 2:
            shape = list(streams.shape) if isinstance(streams, Tensor) else type(streams)
            raise ValueError(f"streams must have shape [B, M] (see batchify), got {shape}")
        _check_positive_int("seq_len", seq_len)
        self.streams, self.seq_len = streams, seq_len

    def __len__(self) -> int:
        return max(0, math.ceil((self.streams.shape[1] - 1) / self.seq_len))

    def __iter__(self) -> Iterator[Tuple[Tensor, Tensor]]:
        last = self.streams.shape[1] - 1  # the final step has no next character to predict
        for start in range(0, last, self.seq_len):
            end = min(start + self.seq_len, last)
            yield self.streams[:, start:end], self.streams[:, start + 1 : end + 1]

    def __repr__(self) -> str:
        batch, steps = self.streams.shape
        return (
            f"TBPTTChunks({batch} streams x {steps} steps, seq_len={self.seq_len}, "
            f"{len(self)} chunks)"
        )


def detach_state(state: Any) -> Any:
    """The same state (a Tensor, a tuple/list of Tensors, or None) cut from the graph.

    The values are kept, so the next chunk starts where this one ended, but no gradient
    will flow back through them into the previous chunk.
    """
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(item) for item in state)
    raise TypeError(
        f"state must be a Tensor, a tuple of Tensors or None, got {type(state).__name__}"
    )


class TruncatedBPTT:
    """A ``loss_fn`` for ``course_lib.train.fit`` that carries the state across chunks.

    Each call runs ``model.logits_and_state(inputs, state)`` on one ``(inputs, targets)``
    chunk [B, T], keeps the final state *detached* for the next chunk and returns the mean
    cross-entropy (nats per character). The state is reset to None every
    ``chunks_per_pass`` calls (give ``len(chunks)``, so each pass starts fresh) and whenever
    the batch size changes.
    """

    def __init__(self, chunks_per_pass: Optional[int] = None) -> None:
        if chunks_per_pass is not None:
            _check_positive_int("chunks_per_pass", chunks_per_pass)
        self.chunks_per_pass = chunks_per_pass
        self.state: Any = None
        self.calls = 0

    def reset(self) -> None:
        """Forget the carried state (the next chunk starts from zeros)."""
        self.state, self.calls = None, 0

    def __call__(self, model: nn.Module, batch: Tuple[Tensor, Tensor]) -> Tensor:
        inputs, targets = batch
        new_pass = self.chunks_per_pass is not None and self.calls % self.chunks_per_pass == 0
        if new_pass or _state_batch(self.state) not in (None, inputs.shape[0]):
            self.state = None
        logits, state = model.logits_and_state(inputs, self.state)
        self.state = detach_state(state)
        self.calls += 1
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _state_batch(state: Any) -> Optional[int]:
    if state is None:
        return None
    first = state if isinstance(state, Tensor) else state[0]
    return first.shape[-2]


# ----------------------------------------------------------------------------------------
# Sampling the next token: temperature and top-k
# ----------------------------------------------------------------------------------------


def sampling_probs(logits: Tensor, temperature: float = 1.0, top_k: Optional[int] = None) -> Tensor:
    """The distribution to sample the next token from: ``softmax(logits / temperature)``.

    Args:
        logits: [..., V] unnormalised scores of the next token.
        temperature: > 0 sharpens (< 1) or flattens (> 1) the distribution; 0 means greedy
            (all mass on the first arg-max).
        top_k: keep only the ``top_k`` largest logits (every logit equal to the k-th
            largest is kept too), renormalise over them; None keeps all.

    Returns:
        Probabilities [..., V] that sum to 1 over the last dimension.
    """
    if not isinstance(logits, Tensor) or logits.dim() < 1 or logits.shape[-1] < 1:
        shape = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got {shape}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {logits.dtype}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not temperature >= 0 or math.isinf(temperature):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None:
        _check_positive_int("top_k", top_k)
        if top_k < logits.shape[-1]:
            kth_largest = logits.topk(top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / temperature, dim=-1)


def sample_next_token(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> Tensor:
    """Draw one token id per row of ``logits`` [B, V] (or [V]) -> [B] (or a 0-d tensor).

    Uses ``sampling_probs``; temperature 0 returns the arg-max without drawing. ``generator``
    makes the draw reproducible (it may live on another device than ``logits``).
    """
    probs = sampling_probs(logits, temperature, top_k)
    flat = probs.reshape(-1, probs.shape[-1])
    if temperature == 0:
        ids = flat.argmax(dim=-1)
    elif generator is not None and generator.device != flat.device:
        ids = torch.multinomial(flat.to(generator.device), 1, generator=generator)
        ids = ids.squeeze(-1).to(flat.device)
    else:
        ids = torch.multinomial(flat, 1, generator=generator).squeeze(-1)
    return ids.reshape(probs.shape[:-1])


# ----------------------------------------------------------------------------------------
# A character-level language model
# ----------------------------------------------------------------------------------------


def _check_ids(name: str, ids: Tensor, dims: Tuple[int, ...], shape: str, vocab_size: int) -> None:
    if not isinstance(ids, Tensor) or ids.dim() not in dims:
        got = list(ids.shape) if isinstance(ids, Tensor) else type(ids).__name__
        raise ValueError(f"{name} must have shape {shape}, got {got}")
    if ids.dtype != torch.long:
        raise TypeError(f"{name} must be int64 token ids, got {ids.dtype}")
    # Checked on the CPU only: reading values from a GPU would synchronise at every step.
    if (
        ids.device.type == "cpu"
        and ids.numel()
        and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size)
    ):
        raise ValueError(f"{name} must hold ids in [0, V={vocab_size}), got {int(ids.max())}")


class CharLanguageModel(nn.Module):
    """Embedding -> recurrent layers -> linear head: predicts the next character.

    ``forward(x [B, T] int64, targets [B, T] or None, state=None) -> (logits [B, T, V],
    loss or None)``: the loss is the mean cross-entropy in nats per character (divide by
    ``ln 2`` for bits). ``logits_and_state(x, state)`` also returns the final state (for
    truncated BPTT, see ``TruncatedBPTT``); ``generate`` samples text.

    Args:
        vocab_size: V, the number of distinct characters.
        embed_dim: size of the learned character vectors.
        hidden_size: H of every recurrent layer.
        num_layers: stacked recurrent layers.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (the course's layers).
        dropout: between recurrent layers and before the head (training only).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        _check_positive_int("vocab_size", vocab_size)
        _check_positive_int("embed_dim", embed_dim)
        self.vocab_size, self.cell = vocab_size, cell
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.rnn = make_recurrent(cell, embed_dim, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def logits_and_state(self, x: Tensor, state: Optional[State] = None) -> Tuple[Tensor, State]:
        """Logits [B, T, V] for inputs [B, T] and the final state (``h`` [L, B, H], or
        ``(h, c)`` for an LSTM) to pass to the next chunk."""
        _check_ids("x", x, (2,), "[B, T]", self.vocab_size)
        output, state = self.rnn(self.embedding(x), state)
        return self.head(self.dropout(output)), state

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None, state: Optional[State] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        logits, _ = self.logits_and_state(x, state)
        if targets is None:
            return logits, None
        if not isinstance(targets, Tensor) or targets.shape != x.shape:
            got = list(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
            raise ValueError(f"targets must have the shape of x {list(x.shape)}, got {got}")
        loss = F.cross_entropy(logits.reshape(-1, self.vocab_size), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        prompt_ids: Tensor,
        length: int,
        temperature: float = 1.0,
        top_k: Optional[int] = None,
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """Continue ``prompt_ids`` [P] or [B, P] (P >= 1) by ``length`` sampled ids.

        Returns the prompt followed by the new ids, [P + length] or [B, P + length]. The
        prompt is read once; each new character is fed back as the next input, carrying
        the state (no re-reading). Temperature 0 is greedy decoding.
        """
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"length must be a non-negative int, got {length!r}")
        _check_ids("prompt_ids", prompt_ids, (1, 2), "[P] or [B, P]", self.vocab_size)
        if prompt_ids.shape[-1] < 1:
            raise ValueError("prompt_ids must hold at least one id (P >= 1)")
        was_training = self.training
        self.eval()
        batched = prompt_ids.dim() == 2
        ids = prompt_ids if batched else prompt_ids.unsqueeze(0)
        ids = ids.to(self.head.weight.device)
        logits, state = self.logits_and_state(ids)
        new_ids = []
        for step in range(length):
            next_id = sample_next_token(logits[:, -1], temperature, top_k, generator)
            new_ids.append(next_id)
            if step + 1 < length:
                logits, state = self.logits_and_state(next_id.unsqueeze(1), state)
        self.train(was_training)
        out = torch.cat([ids, torch.stack(new_ids, dim=1)], dim=1) if new_ids else ids
        return out if batched else out.squeeze(0)


@torch.no_grad()
def evaluate_bits_per_char(
    model: nn.Module, ids: Tensor, batch_size: int = 16, seq_len: int = 256
) -> float:
    """Cross-entropy of ``model`` on the text ``ids`` [N], in bits per character.

    The text is laid out as ``batch_size`` streams (``batchify``) and read in chunks of
    ``seq_len``. A model with ``logits_and_state`` carries its state from chunk to chunk
    (every character is predicted from everything before it in its stream); any other
    model is called as ``model(x)`` returning ``(logits, _)`` on each chunk alone.
    """
    streams = batchify(ids, batch_size)
    if streams.shape[1] < 2:
        raise ValueError(f"ids are too short for {batch_size} streams: got N={ids.shape[0]}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count, state = torch.zeros((), dtype=torch.float64, device=device), 0, None
    stateful = hasattr(model, "logits_and_state")
    for inputs, targets in TBPTTChunks(streams.to(device), seq_len):
        if stateful:
            logits, state = model.logits_and_state(inputs, state)
        else:
            logits, _ = model(inputs)
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
        ).double()  # summed on the device: no host synchronisation per chunk
        count += targets.numel()
    model.train(was_training)
    return float(total) / count / math.log(2)


# ----------------------------------------------------------------------------------------
# The task types as models: many-to-one (classify a sequence) and many-to-many (one label
# per step), plus two small generated data sets
# ----------------------------------------------------------------------------------------


class SequenceClassifier(nn.Module):
    """Many-to-one: read a sequence, classify it from the last layer's final hidden state.

    ``forward(x [B, T, D], targets [B] or None, lengths [B] or None) -> (logits [B, C],
    loss or None)``; with ``lengths`` the state at each sequence's last real step is used.
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        _check_positive_int("num_classes", num_classes)
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None, lengths: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        _, state = self.rnn(x, lengths=lengths)
        h_n = state[0] if isinstance(state, tuple) else state
        logits = self.head(h_n[-1])
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss


class SequenceTagger(nn.Module):
    """Many-to-many (one output per input step): a label for every step.

    ``forward(x [B, T, D], targets [B, T] or None) -> (logits [B, T, C], loss or None)``.
    As in the notes, the loss is the cross-entropy **summed over the time steps** (and
    averaged over the batch); targets equal to -100 (padding) are ignored.
    """

    def __init__(
        self,
        input_size: int,
        num_tags: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        _check_positive_int("num_tags", num_tags)
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers)
        self.head = nn.Linear(hidden_size, num_tags)

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        output, _ = self.rnn(x)
        logits = self.head(output)
        if targets is None:
            return logits, None
        per_step = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum",
            ignore_index=-100,
        )  # fmt: skip
        return logits, per_step / max(x.shape[0], 1)


def first_symbol_task(
    num_sequences: int, length: int, num_symbols: int = 4, seed: int = 0
) -> Tuple[Tensor, Tensor]:
    """A memory test: remember the first of ``length`` random symbols.

    Returns one-hot inputs [N, T, K] (float32, K = ``num_symbols``) and labels [N]: the
    symbol at step 0. Every later step is a random symbol too, so the network must keep the
    first one in its state for ``length - 1`` steps while ignoring the rest.
    """
    _check_positive_int("num_sequences", num_sequences)
    _check_positive_int("length", length)
    _check_positive_int("num_symbols", num_symbols)
    generator = torch.Generator().manual_seed(seed)
    symbols = torch.randint(num_symbols, (num_sequences, length), generator=generator)
    return F.one_hot(symbols, num_symbols).float(), symbols[:, 0].clone()


def bracket_depth_task(
    num_sequences: int, length: int, max_depth: int = 4, seed: int = 0
) -> Tuple[Tensor, Tensor, List[str]]:
    """A tagging task: label every character of a bracket string with the nesting depth.

    Each string of ``length`` characters mixes ``(``, ``)`` and ``x`` (no bracket) and never
    closes more than it opened nor nests deeper than ``max_depth``. Returns one-hot inputs
    [N, T, 3] (float32; order ``(``, ``)``, ``x``), tags [N, T] (int64, the depth after
    each character, 0..max_depth) and the strings themselves.
    """
    _check_positive_int("num_sequences", num_sequences)
    _check_positive_int("length", length)
    _check_positive_int("max_depth", max_depth)
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(num_sequences, length, generator=generator)
    codes = torch.empty(num_sequences, length, dtype=torch.long)
    tags = torch.empty(num_sequences, length, dtype=torch.long)
    depth = torch.zeros(num_sequences, dtype=torch.long)
    for t in range(length):  # a loop over time steps, vectorised over sequences
        opening = (draws[:, t] < 0.4) & (depth < max_depth)
        closing = ~opening & (draws[:, t] < 0.75) & (depth > 0)
        codes[:, t] = torch.where(opening, 0, torch.where(closing, 1, 2))
        depth = depth + opening.long() - closing.long()
        tags[:, t] = depth
    texts = ["".join("()x"[code] for code in row) for row in codes.tolist()]
    return F.one_hot(codes, 3).float(), tags, texts


def accuracy_by_length(
    correct: Tensor, lengths: Tensor, edges: Sequence[int]
) -> Tuple[List[str], Tensor, Tensor]:
    """Accuracy of ``correct`` [N] (bool) in bins of ``lengths`` [N].

    ``edges`` e0 < e1 < ... define the bins [e0, e1), [e1, e2), ... Returns the bin labels,
    the accuracy per bin [K] (NaN for an empty bin) and the count per bin [K].
    """
    if correct.shape != lengths.shape or correct.dim() != 1:
        raise ValueError(
            f"correct and lengths must both have shape [N], got {list(correct.shape)} "
            f"and {list(lengths.shape)}"
        )
    if len(edges) < 2 or any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"edges must be at least two increasing numbers, got {list(edges)}")
    labels, accuracy, counts = [], [], []
    for low, high in zip(edges, edges[1:]):
        inside = (lengths >= low) & (lengths < high)
        count = int(inside.sum())
        labels.append(f"{low}-{high - 1}")
        counts.append(count)
        accuracy.append(float(correct[inside].float().mean()) if count else float("nan"))
    return labels, torch.tensor(accuracy), torch.tensor(counts)


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
        on_cpu = source_lengths.device.type == "cpu"  # no host synchronisation on a GPU
        if (
            on_cpu
            and source.shape[0]
            and (int(source_lengths.min()) < 1 or int(source_lengths.max()) > source.shape[1])
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
    if len(pairs) == 0:
        return torch.zeros(0, dtype=torch.bool)
    predictions = translate(
        model, [pair.source for pair in pairs], source_vocab, target_vocab,
        max_length=max(len(pair.target) for pair in pairs) + 1, batch_size=batch_size,
    )  # fmt: skip
    return torch.tensor([p == pair.target for p, pair in zip(predictions, pairs)])


# ----------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------


def plot_task_types() -> Figure:
    """The five input/output patterns of sequence tasks, as boxes and arrows.

    Red boxes are inputs, green the recurrent state, blue the outputs; time runs left to
    right (the layout of Karpathy's "The Unreasonable Effectiveness of RNNs").
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    # (input steps, state steps, output steps) for each pattern
    layouts = {
        "one to one\n(image -> class)": ([0], [0], [0]),
        "one to many\n(image -> caption)": ([0], [0, 1, 2], [0, 1, 2]),
        "many to one\n(video/text -> class)": ([0, 1, 2], [0, 1, 2], [2]),
        "many to many\n(translation, seq2seq)": ([0, 1, 2], [0, 1, 2, 3, 4], [3, 4]),
        "many to many\n(a label per frame)": ([0, 1, 2], [0, 1, 2], [0, 1, 2]),
    }
    colors = {0: ("#f6b3b3", "#c0392b"), 1: ("#b8e0b8", "#27ae60"), 2: ("#b3cdf6", "#2a6fdb")}
    figure, axes = plt.subplots(1, len(layouts), figsize=(15, 3.6))
    for ax, (title, rows) in zip(axes, layouts.items()):
        shift = (4 - max(rows[1])) / 2  # centre each diagram in its panel
        rows = tuple([t + shift for t in steps] for steps in rows)
        for level, steps in enumerate(rows):
            for t in steps:
                face, edge = colors[level]
                ax.add_patch(
                    FancyBboxPatch(
                        (t - 0.3, 1.3 * level - 0.3),
                        0.6,
                        0.6,
                        boxstyle="round,pad=0.02",
                        fc=face,
                        ec=edge,
                        lw=1.5,
                    )
                )
        arrow = {"arrowstyle": "-|>", "mutation_scale": 10, "lw": 1.2, "color": "#444444"}
        for t in rows[0]:  # input -> state
            ax.add_patch(FancyArrowPatch((t, 0.32), (t, 0.98), **arrow))
        for t in rows[2]:  # state -> output
            ax.add_patch(FancyArrowPatch((t, 1.62), (t, 2.28), **arrow))
        for t in rows[1][:-1]:  # state -> next state (the recurrence)
            ax.add_patch(FancyArrowPatch((t + 0.32, 1.3), (t + 0.68, 1.3), **arrow))
        ax.set_xlim(-0.6, 4.6)
        ax.set_ylim(-0.5, 3.0)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(title, fontsize=10)
    figure.suptitle("Sequence tasks: inputs (red), recurrent state (green), outputs (blue)")
    figure.tight_layout()
    return figure
