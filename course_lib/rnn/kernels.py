"""Backpropagation through time, written out: what the recurrent layers run, for speed.

A layer could call ``rnn_step`` (or ``lstm_step``, ``gru_step``) in a loop and let autograd
record some ten small operations per step. Instead each layer is one autograd Function:
its forward loops over time without recording anything, and its backward walks the same
loop in reverse. Everything that does not depend on the incoming gradient (the local
derivatives of the gates) is computed once for all steps after the forward loop, so each
backward step is four or five operations, and the weight gradient is one matrix product
over all steps at the end.

Speed comes from doing little per step: the input projections of all steps are one matrix
product before the loop (``x_proj``, both biases folded in where they simply add); every
per-step result is written into buffers allocated once (``out=``); the per-step views of
those buffers are made once (``unbind``); and the gate rows are kept in an order that makes
each group of gates one contiguous block (``LSTM_ORDER``, ``GRU_ORDER``; the layers permute
the parameters' rows on the way in, so the parameters keep ``torch.nn``'s order).

One more trick: ``tanh`` is computed as ``tanh(a) = 2 sigmoid(2a) - 1``. On common CPU builds
of PyTorch ``tanh`` is several times slower than ``sigmoid`` per element, and the factor 2
inside costs nothing: the layers double the rows of the weights and biases that feed a tanh
(``kernel_weights``), so the kernels see ``p = 2a`` and compute ``tanh(p / 2)`` with one
sigmoid and one addition. The derivative of ``tanh(p / 2)`` with respect to ``p`` is
``(1 - tanh^2) / 2``, which the backward factors include.

``valid`` [T, B, 1] (bool, or None) marks real steps; at padded steps the state is carried
over unchanged and the output is zero (what packed sequences do).

Shape letters: ``T`` steps, ``B`` batch, ``H`` hidden units.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["GRU_ORDER", "LSTM_ORDER", "kernel_weights"]

#: Gate blocks of the LSTM inside the kernels: o, i, f (the three sigmoids, one block) then
#: g (the tanh). ``torch.nn`` stores i, f, g, o; ``kernel_weights`` reorders the rows.
LSTM_ORDER = (3, 0, 1, 2)
#: Gate blocks of the GRU inside the kernels: n, then r, z (the two sigmoids, one block);
#: ``torch.nn`` stores r, z, n.
GRU_ORDER = (2, 0, 1)


#: The position (in kernel order) of the gate block that feeds a tanh: its rows are doubled.
_TANH_BLOCK = {"lstm": 3, "gru": 0, "rnn_tanh": 0, "rnn_relu": None}
_ORDER = {"lstm": LSTM_ORDER, "gru": GRU_ORDER, "rnn_tanh": (0,), "rnn_relu": (0,)}


def kernel_weights(
    kind: str,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Optional[Tensor],
    bias_hh: Optional[Tensor],
) -> Tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """A layer's parameters as the kernels use them (differentiable, so gradients reach the
    parameters): gate blocks in kernel order, the rows that feed a tanh doubled, and for the
    LSTM and the vanilla RNN both biases summed into the input bias (they simply add).

    ``kind`` is ``"lstm"``, ``"gru"``, ``"rnn_tanh"`` or ``"rnn_relu"``. Returns
    ``(weight_ih [G, D], weight_hh [G, H], bias_ih [G] or None, bias_hh [G] or None)``.
    """
    order, tanh_block = _ORDER[kind], _TANH_BLOCK[kind]
    size = weight_hh.shape[1]

    def arrange(tensor: Optional[Tensor]) -> Optional[Tensor]:
        if tensor is None:
            return None
        # Slices and one concatenation: their backward passes are slices too (cheap).
        blocks = [tensor[k * size : (k + 1) * size] for k in order]
        if tanh_block is not None:
            blocks[tanh_block] = blocks[tanh_block] * 2
        return torch.cat(blocks) if len(blocks) > 1 else blocks[0]

    if kind != "gru" and bias_ih is not None:  # b_hh simply adds to b_ih: fold it in
        return arrange(weight_ih), arrange(weight_hh), arrange(bias_ih + bias_hh), None
    return arrange(weight_ih), arrange(weight_hh), arrange(bias_ih), arrange(bias_hh)


def _constant(like: Tensor, value: float) -> Tensor:
    return like.new_full((1,), value)


def _with_initial(first: Tensor, steps: int) -> Tuple[Tensor, List[Tensor]]:
    """A buffer [T + 1, B, H] holding ``first`` in row 0 (rows 1..T are filled by a loop),
    and its rows as a list."""
    buffer = first.new_empty(steps + 1, *first.shape)
    buffer[0] = first
    return buffer, list(buffer.unbind(0))


def project(x: Tensor, weight_ih: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """The input's contribution to every step at once, ``x W_ih^T + b``: x [T, B, D] ->
    ``(x_proj [T, B, G], x as a [T * B, D] matrix)``; one matrix product for all steps."""
    steps, batch, _ = x.shape
    inputs = x.reshape(steps * batch, x.shape[2])
    if bias is None:
        x_proj = inputs @ weight_ih.t()
    else:
        x_proj = torch.addmm(bias, inputs, weight_ih.t())
    return x_proj.view(steps, batch, weight_ih.shape[0]), inputs


def _input_gradients(
    ctx: Any, d_pre: Tensor, inputs: Tensor, weight_ih: Tensor, has_bias: bool
) -> Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]:
    """Gradients of x [T, B, D], W_ih and b (the Function's first three inputs) from the
    gradient ``d_pre`` [T, B, G] of the projection, each one matrix product. The layouts
    are the faster ones for the shapes (a skinny product is much faster one way round)."""
    steps, batch = d_pre.shape[:2]
    flat = d_pre.reshape(steps * batch, d_pre.shape[2])
    d_x = d_weight = d_bias = None
    if ctx.needs_input_grad[0]:
        narrow = inputs.shape[1] <= 16  # few input features: the transposed product is faster
        d_x = (weight_ih.t() @ flat.t()).t() if narrow else flat @ weight_ih
        d_x = d_x.reshape(steps, batch, inputs.shape[1])
    if ctx.needs_input_grad[1]:
        d_weight = (inputs.t() @ flat).t()
    if has_bias and ctx.needs_input_grad[2]:
        d_bias = flat.sum(dim=0)
    return d_x, d_weight, d_bias


def _outputs(states: Tensor, valid: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """A layer's output [T, B, H] (zero at padded steps) and final state [B, H], as new
    tensors (not views of the buffer the backward keeps), from its states [T + 1, B, H]."""
    h = states[1:]
    return (h.clone() if valid is None else h * valid), states[-1].clone()


def _gradient_rows(grad_output: Tensor, real: Optional[Tensor]) -> List[Tensor]:
    """``grad_output`` [T, B, H] (masked at padded steps) as T rows plus a zero row for
    "step -1", so that the loop can fold the next row into its matrix product."""
    if real is not None:
        grad_output = grad_output * real
    rows = list(grad_output.unbind(0))
    rows.append(torch.zeros_like(rows[0]))  # rows[-1]: nothing arrives from before step 0
    return rows


# ----------------------------------------------------------------------------------------
# Vanilla RNN
# ----------------------------------------------------------------------------------------


def rnn_loop(
    x_proj: Tensor, h_0: Tensor, weight_hh: Tensor, valid: Optional[Tensor], nonlinearity: str
) -> Tensor:
    """States [T + 1, B, H] (row 0 is ``h_0``) of a vanilla RNN; ``x_proj`` [T, B, H] holds
    both biases (for tanh, ``x_proj`` and ``weight_hh`` are doubled: see ``kernel_weights``)."""
    states, h = _with_initial(h_0, x_proj.shape[0])
    weight_t = weight_hh.t().contiguous()  # W_hh^T laid out for the fastest matrix product
    minus_one = _constant(x_proj, -1.0)
    for t, x_t in enumerate(x_proj.unbind(0)):
        torch.addmm(x_t, h[t], weight_t, out=h[t + 1])
        if nonlinearity == "tanh":  # tanh(p / 2) = 2 sigmoid(p) - 1
            torch.add(minus_one, h[t + 1].sigmoid_(), alpha=2, out=h[t + 1])
        else:
            h[t + 1].relu_()
        if valid is not None:
            torch.where(valid[t], h[t + 1], h[t], out=h[t + 1])
    return states


class RNNLayer(torch.autograd.Function):
    """``h_t = act(x_proj_t + W_hh h_{t-1})`` over all steps, with a hand-written backward:
    ``dpre_t = dh_t * act'(pre_t)``, ``dh_{t-1} = dpre_t W_hh`` (+ the output's gradient)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight_ih: Tensor,
        bias: Optional[Tensor],
        h_0: Tensor,
        weight_hh: Tensor,
        valid: Optional[Tensor],
        nonlinearity: str,
    ) -> Tuple[Tensor, Tensor]:
        x_proj, inputs = project(x, weight_ih, bias)
        states = rnn_loop(x_proj, h_0, weight_hh, valid, nonlinearity)
        h = states[1:]
        # The local derivative, read off the output: (1 - h^2) / 2 for tanh(p / 2), [h > 0]
        # for ReLU.
        if nonlinearity == "tanh":
            slope = torch.addcmul(torch.full_like(h, 0.5), h, h, value=-0.5)
        else:
            slope = (h > 0).to(h.dtype)
        real = None
        if valid is not None:
            real = valid.to(h.dtype)
            slope *= real
        ctx.save_for_backward(slope, states, weight_hh, real, inputs, weight_ih)
        ctx.has_bias = bias is not None
        return _outputs(states, valid)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor, grad_h_n: Tensor) -> Tuple[Any, ...]:
        slope, states, weight_hh, real, inputs, weight_ih = ctx.saved_tensors
        steps = slope.shape[0]
        arriving = _gradient_rows(grad_output, real)
        d_pre = torch.empty_like(slope)
        d_pre_rows, slope_rows = d_pre.unbind(0), slope.unbind(0)
        carry = None if real is None else (1 - real).unbind(0)  # dh passes padded steps
        dh = grad_h_n + arriving[steps - 1]
        last = 0 if ctx.needs_input_grad[3] else 1  # dh_{-1}, the gradient of h_0, if needed
        for t in range(steps - 1, -1, -1):
            torch.mul(dh, slope_rows[t], out=d_pre_rows[t])
            if t < last:
                break
            before = arriving[t - 1] if carry is None else torch.addcmul(
                arriving[t - 1], dh, carry[t])  # fmt: skip
            dh = torch.addmm(before, d_pre_rows[t], weight_hh)
        d_weight = _weight_gradient(ctx, 4, d_pre, states[:-1])
        d_inputs = _input_gradients(ctx, d_pre, inputs, weight_ih, ctx.has_bias)
        return (*d_inputs, dh if last == 0 else None, d_weight, None, None)


def _weight_gradient(ctx: Any, index: int, d_pre: Tensor, h_prev: Tensor) -> Optional[Tensor]:
    """The gradient of W_hh (input ``index`` of the Function): ``sum_t d_pre_t^T h_{t-1}``,
    one matrix product over all steps (computed as ``(h^T d)^T``, the faster layout)."""
    if not ctx.needs_input_grad[index]:
        return None
    return (h_prev.flatten(0, 1).t() @ d_pre.flatten(0, 1)).t()


# ----------------------------------------------------------------------------------------
# LSTM (gate blocks in LSTM_ORDER: o, i, f, g)
# ----------------------------------------------------------------------------------------


def lstm_loop(
    x_proj: Tensor, h_0: Tensor, c_0: Tensor, weight_hh: Tensor, valid: Optional[Tensor]
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """An LSTM's activated gates [T, B, 4H] (o, i, f, then 2g), h and 2c [T + 1, B, H] (row
    0: the initial states) and tanh(c) [T, B, H]; ``x_proj`` [T, B, 4H] holds both biases,
    gate blocks in LSTM_ORDER with the g block doubled (``kernel_weights``).

    The loop keeps twice the cell state, ``2c``, so that ``tanh(c) = 2 sigmoid(2c) - 1``
    needs no extra multiplication: ``2c' = f (2c) + i (2g)``.
    """
    steps, size = x_proj.shape[0], h_0.shape[1]
    gates = torch.empty_like(x_proj)
    hs, h = _with_initial(h_0, steps)
    cs, c = _with_initial(2 * c_0, steps)
    tanh_cs = h_0.new_empty(steps, *h_0.shape)
    weight_t = weight_hh.t().contiguous()  # W_hh^T laid out for the fastest matrix product
    minus_one, minus_two = _constant(x_proj, -1.0), _constant(x_proj, -2.0)
    gate_rows, tanh_c = gates.unbind(0), tanh_cs.unbind(0)
    o, i, f, g = (gates[..., k * size : (k + 1) * size].unbind(0) for k in range(4))
    for t, x_t in enumerate(x_proj.unbind(0)):
        torch.addmm(x_t, h[t], weight_t, out=gate_rows[t])
        gate_rows[t].sigmoid_()  # o, i, f; and sigmoid(2 a_g)
        torch.add(minus_two, g[t], alpha=4, out=g[t])  # 2g = 2 tanh(a_g) = 4 sigmoid(2 a_g) - 2
        torch.mul(f[t], c[t], out=c[t + 1]).addcmul_(i[t], g[t])  # 2c' = f (2c) + i (2g)
        torch.sigmoid(c[t + 1], out=tanh_c[t])
        torch.add(minus_one, tanh_c[t], alpha=2, out=tanh_c[t])  # tanh(c') = 2 sigmoid(2c') - 1
        torch.mul(o[t], tanh_c[t], out=h[t + 1])  # h' = o tanh(c')
        if valid is not None:
            torch.where(valid[t], c[t + 1], c[t], out=c[t + 1])
            torch.where(valid[t], h[t + 1], h[t], out=h[t + 1])
    return gates, hs, cs, tanh_cs


class LSTMLayer(torch.autograd.Function):
    """An LSTM over all steps with a hand-written backward (BPTT).

    With ``dh``, ``dc`` the gradients reaching ``h_t`` and ``c_t``:
    ``dc += dh * o * (1 - tanh(c_t)^2)``; the gate pre-activations get
    ``do = dh * tanh(c_t) * o(1-o)``, ``di = dc * g * i(1-i)``, ``df = dc * c_{t-1} * f(1-f)``,
    ``dg = dc * i * (1-g^2)`` (halved here: the kernel's g input is doubled); then
    ``dc_{t-1} = dc * f`` (the additive path) and ``dh_{t-1} = [do, di, df, dg] W_hh``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight_ih: Tensor,
        bias: Optional[Tensor],
        h_0: Tensor,
        c_0: Tensor,
        weight_hh: Tensor,
        valid: Optional[Tensor],
    ) -> Tuple[Tensor, Tensor, Tensor]:
        x_proj, inputs = project(x, weight_ih, bias)
        gates, hs, cs, tanh_cs = lstm_loop(x_proj, h_0, c_0, weight_hh, valid)
        size = h_0.shape[1]
        o, i, f, g2 = gates.split(size, dim=-1)  # g2 = 2g, cs = 2c
        # Factors of the backward pass that do not depend on the incoming gradient:
        # d_gates = [dh, dc, dc, dc] * factors, dc += dh * cell_factor, dc_prev = dc * f.
        sigmoids = gates[..., : 3 * size]
        slopes = torch.addcmul(sigmoids, sigmoids, sigmoids, value=-1)  # s (1 - s)
        factors = torch.empty_like(gates)
        torch.mul(tanh_cs, slopes[..., :size], out=factors[..., :size])
        torch.mul(g2, slopes[..., size : 2 * size], out=factors[..., size : 2 * size])
        torch.mul(cs[:-1], slopes[..., 2 * size :], out=factors[..., 2 * size : 3 * size])
        factors[..., size : 3 * size] *= 0.5  # g = g2 / 2, c_prev = cs / 2
        torch.addcmul(i * 0.5, i * g2, g2, value=-0.125, out=factors[..., 3 * size :])
        cell_factor = torch.addcmul(o, o * tanh_cs, tanh_cs, value=-1)  # o (1 - tanh(c)^2)
        forget, real = f, None
        if valid is not None:
            real = valid.to(hs.dtype)
            factors *= real
            cell_factor *= real
            forget = torch.where(valid, f, 1.0)
        ctx.save_for_backward(factors, cell_factor, forget, real, hs, weight_hh, inputs, weight_ih)
        ctx.has_bias = bias is not None
        return (*_outputs(hs, valid), cs[-1] * 0.5)

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad_output: Tensor, grad_h_n: Tensor, grad_c_n: Tensor
    ) -> Tuple[Any, ...]:
        factors, cell_factor, forget, real, hs, weight_hh, inputs, weight_ih = ctx.saved_tensors
        steps, batch, size = cell_factor.shape
        arriving = _gradient_rows(grad_output, real)
        d_gates = torch.empty_like(factors)  # [T, B, 4H], blocks o, i, f, g
        gate_rows = d_gates.unbind(0)
        d_out, d_cell = d_gates[..., :size].unbind(0), d_gates.view(steps, batch, 4, size)[
            :, :, 1:].unbind(0)  # fmt: skip
        f_out, f_cell = factors[..., :size].unbind(0), factors.view(steps, batch, 4, size)[
            :, :, 1:].unbind(0)  # fmt: skip
        cell = cell_factor.unsqueeze(2).unbind(0)  # [B, 1, H] rows
        keep = forget.unsqueeze(2).unbind(0)
        carry = None if real is None else (1 - real).unbind(0)  # dh passes padded steps
        # dh and dc live in [B, 1, H] buffers, so that they broadcast over the gate blocks.
        dh = (grad_h_n + arriving[steps - 1]).unsqueeze(1)
        dc = grad_c_n.unsqueeze(1).clone()
        dh_flat = dh.view(batch, size)
        last = 0 if ctx.needs_input_grad[3] else 1  # dh_{-1}, the gradient of h_0, if needed
        for t in range(steps - 1, -1, -1):
            dc.addcmul_(dh, cell[t])
            torch.mul(f_cell[t], dc, out=d_cell[t])
            torch.mul(f_out[t], dh_flat, out=d_out[t])
            dc.mul_(keep[t])
            if t < last:
                break
            before = arriving[t - 1] if carry is None else torch.addcmul(
                arriving[t - 1], dh_flat, carry[t])  # fmt: skip
            torch.addmm(before, gate_rows[t], weight_hh, out=dh_flat)
        d_weight = _weight_gradient(ctx, 5, d_gates, hs[:-1])
        d_inputs = _input_gradients(ctx, d_gates, inputs, weight_ih, ctx.has_bias)
        d_h0 = dh_flat if last == 0 else None
        return (*d_inputs, d_h0, dc.view(batch, size), d_weight, None)


# ----------------------------------------------------------------------------------------
# GRU (gate blocks in GRU_ORDER: n, r, z)
# ----------------------------------------------------------------------------------------


def gru_loop(
    x_proj: Tensor,
    h_0: Tensor,
    weight_hh: Tensor,
    bias_hh: Optional[Tensor],
    valid: Optional[Tensor],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """A GRU's gates r, z [T, B, 2H], candidates n [T, B, H], ``W_hh h + b_hh`` [T, B, 3H] and
    states [T + 1, B, H] (row 0: ``h_0``); gate blocks in GRU_ORDER (n, r, z), with the n
    rows of ``x_proj``, ``weight_hh`` and ``bias_hh`` doubled (``kernel_weights``)."""
    steps, size = x_proj.shape[0], h_0.shape[1]
    reset_update = x_proj.new_empty(steps, *h_0.shape[:1], 2 * size)
    candidates = h_0.new_empty(steps, *h_0.shape)
    hidden_proj = torch.empty_like(x_proj)
    states, h = _with_initial(h_0, steps)
    weight_t = weight_hh.t().contiguous()  # W_hh^T laid out for the fastest matrix product
    minus_one = _constant(x_proj, -1.0)
    rz_rows, n_rows, hp_rows = reset_update.unbind(0), candidates.unbind(0), hidden_proj.unbind(0)
    r, z = reset_update[..., :size].unbind(0), reset_update[..., size:].unbind(0)
    x_n, x_rz = x_proj[..., :size].unbind(0), x_proj[..., size:].unbind(0)
    hp_n, hp_rz = hidden_proj[..., :size].unbind(0), hidden_proj[..., size:].unbind(0)
    for t in range(steps):
        if bias_hh is None:
            torch.mm(h[t], weight_t, out=hp_rows[t])
        else:
            torch.addmm(bias_hh, h[t], weight_t, out=hp_rows[t])
        torch.add(x_rz[t], hp_rz[t], out=rz_rows[t]).sigmoid_()
        torch.addcmul(x_n[t], r[t], hp_n[t], out=n_rows[t]).sigmoid_()
        torch.add(minus_one, n_rows[t], alpha=2, out=n_rows[t])  # n = tanh(p / 2)
        torch.lerp(n_rows[t], h[t], z[t], out=h[t + 1])  # (1 - z) n + z h
        if valid is not None:
            torch.where(valid[t], h[t + 1], h[t], out=h[t + 1])
    return reset_update, candidates, hidden_proj, states


class GRULayer(torch.autograd.Function):
    """A GRU over all steps with a hand-written backward (BPTT).

    With ``dh`` the gradient reaching ``h_t``: ``dz = dh * (h_{t-1} - n) * z(1-z)``,
    ``dn = dh * (1-z) * (1-n^2)`` (halved here: the kernel's n input is doubled),
    ``dr = dn * (W_hn h_{t-1} + b_hn) * r(1-r)``; then
    ``dh_{t-1} = dh * z + [dn * r, dr, dz] W_hh``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        weight_ih: Tensor,
        bias_ih: Optional[Tensor],
        h_0: Tensor,
        weight_hh: Tensor,
        bias_hh: Optional[Tensor],
        valid: Optional[Tensor],
    ) -> Tuple[Tensor, Tensor]:
        x_proj, inputs = project(x, weight_ih, bias_ih)
        reset_update, n, hidden_proj, states = gru_loop(x_proj, h_0, weight_hh, bias_hh, valid)
        size = h_0.shape[1]
        r, z = reset_update[..., :size], reset_update[..., size:]
        steps, batch = n.shape[:2]
        # The backward's products, in the layout of its gradient buffer [T, B, 4, H] with
        # blocks (dn * r, dr, dz, dn): dz, dn = dh * update; dn * r, dr = dn * reset.
        update = n.new_empty(steps, batch, 2, size)
        torch.mul(states[:-1] - n, z - z * z, out=update[:, :, 0])
        torch.mul(1 - z, torch.addcmul(torch.full_like(n, 0.5), n, n, value=-0.5),
                  out=update[:, :, 1])  # fmt: skip
        reset = torch.stack([r, hidden_proj[..., :size] * (r - r * r)], dim=2)
        keep, real = z, None
        if valid is not None:
            real = valid.to(n.dtype)
            update *= real.unsqueeze(-1)
            keep = torch.where(valid, z, 1.0)
        ctx.save_for_backward(update, reset, keep, real, states, weight_hh, inputs, weight_ih)
        ctx.has_bias, ctx.has_input_bias = bias_hh is not None, bias_ih is not None
        return _outputs(states, valid)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor, grad_h_n: Tensor) -> Tuple[Any, ...]:
        update, reset, keep, real, states, weight_hh, inputs, weight_ih = ctx.saved_tensors
        steps, batch, _, size = update.shape
        arriving = _gradient_rows(grad_output, real)
        grads = update.new_empty(steps, batch, 4, size)  # blocks dn * r, dr, dz, dn
        hidden_rows = grads.view(steps, batch, 4 * size)[..., : 3 * size].unbind(0)
        zn_rows, nr_rows = grads[:, :, 2:].unbind(0), grads[:, :, :2].unbind(0)
        dn_rows = grads[:, :, 3:].unbind(0)
        update_rows, reset_rows, keep_rows = update.unbind(0), reset.unbind(0), keep.unbind(0)
        dh = (grad_h_n + arriving[steps - 1]).unsqueeze(1)  # [B, 1, H]
        dh_flat = dh.view(batch, size)
        last = 0 if ctx.needs_input_grad[3] else 1  # dh_{-1}, the gradient of h_0, if needed
        for t in range(steps - 1, -1, -1):
            torch.mul(update_rows[t], dh, out=zn_rows[t])
            torch.mul(reset_rows[t], dn_rows[t], out=nr_rows[t])
            if t < last:
                break
            before = torch.addcmul(arriving[t - 1], dh_flat, keep_rows[t])
            torch.addmm(before, hidden_rows[t], weight_hh, out=dh_flat)
        d_hidden = grads.view(steps, batch, 4 * size)[..., : 3 * size]  # blocks n, r, z
        d_input = torch.cat([grads[:, :, 3], grads[:, :, 1], grads[:, :, 2]], dim=-1)
        d_weight = _weight_gradient(ctx, 4, d_hidden, states[:-1])
        d_bias = d_hidden.sum(dim=(0, 1)) if ctx.has_bias and ctx.needs_input_grad[5] else None
        d_inputs = _input_gradients(ctx, d_input, inputs, weight_ih, ctx.has_input_bias)
        return (*d_inputs, dh_flat if last == 0 else None, d_weight, d_bias, None)
