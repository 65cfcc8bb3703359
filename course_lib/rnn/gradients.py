"""Measuring gradients through time: why vanilla RNNs are hard to train.

Shape letters: ``B`` batch, ``T`` time steps, ``D`` input features, ``H`` hidden units.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from course_lib.rnn.cells import GRUCell, LSTMCell, RNNCell
from course_lib.validation import check_instance, check_int, check_like, check_tensor

__all__ = ["input_gradient_norms", "state_gradient_norms"]

_CELLS = (RNNCell, LSTMCell, GRUCell, nn.RNNCell, nn.LSTMCell, nn.GRUCell)


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
    check_instance("cell", cell, _CELLS, "an RNNCell, LSTMCell or GRUCell (ours or torch.nn's)")
    check_tensor("inputs", inputs, f"B, T, {cell.input_size}", dtype="floating")
    check_like("inputs", inputs, cell.weight_ih, what="the cell's parameters")
    hidden_size = cell.hidden_size
    if direction is None:
        generator = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**63 - 1))
        direction = torch.randn(hidden_size, generator=generator, dtype=torch.float64)
    check_tensor("direction", direction, f"{hidden_size}", dtype="floating", finite=True)
    if not bool(direction.ne(0).any()):
        raise ValueError("direction must not be all zeros (it is normalised to unit length)")
    direction = (direction / direction.norm()).to(inputs)
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
    check_instance("model", model, nn.Module, "a torch.nn.Module returning (output, loss)")
    check_tensor("inputs", inputs, "B, T, D", dtype="floating")
    parameter = next(model.parameters(), None)
    if parameter is not None:
        check_like("inputs", inputs, parameter)
    x = inputs.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        try:
            result = model(x, targets)
        except TypeError as error:
            raise TypeError(f"model must accept (inputs, targets): {error}") from error
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError(f"model must return (output, loss), got {type(result).__name__}")
        loss = result[1]
        if not isinstance(loss, Tensor) or loss.dim() != 0:
            raise TypeError("model must return (output, loss) with a scalar loss tensor")
        (grad,) = torch.autograd.grad(loss, x)
    return grad.double().norm(dim=-1).mean(dim=0)  # float64: tiny gradients do not underflow
