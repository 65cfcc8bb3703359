"""Proof that every exercise check of the recurrent-networks chapter can fail."""

import torch

from course_lib import rnn
from course_lib.checks import rnn as checks
from tests.checkproof import Proof, Wrong, parametrize_proofs

# ------------------------------------------------------------------ vanilla RNN step


def rnn_step(x, h, W_ih, W_hh, b_h):
    return torch.tanh(x @ W_ih.T + h @ W_hh.T + b_h)


def rnn_step_without_tanh(x, h, W_ih, W_hh, b_h):
    return x @ W_ih.T + h @ W_hh.T + b_h


def rnn_step_untransposed(x, h, W_ih, W_hh, b_h):
    return torch.tanh(x @ W_ih.T + h @ W_hh + b_h)


def rnn_step_without_bias(x, h, W_ih, W_hh, b_h):
    return torch.tanh(x @ W_ih.T + h @ W_hh.T)


def rnn_step_sigmoid(x, h, W_ih, W_hh, b_h):
    return torch.sigmoid(x @ W_ih.T + h @ W_hh.T + b_h)


def rnn_step_forgets_h(x, h, W_ih, W_hh, b_h):
    return torch.tanh(x @ W_ih.T + b_h)


def rnn_step_torch_cell(x, h, W_ih, W_hh, b_h):
    return torch.rnn_tanh_cell(x, h, W_ih, W_hh, b_h, torch.zeros_like(b_h))


# ------------------------------------------------------------------ LSTM step


def lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh):
    gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def lstm_step_gate_order_ifog(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, o, g = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def lstm_step_forget_gate_first(x, h, c, W_ih, W_hh, b_ih, b_hh):
    f, i, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def lstm_step_sigmoid_candidate(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.sigmoid(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def lstm_step_no_tanh_on_cell(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * c_next, c_next


def lstm_step_swapped_outputs(x, h, c, W_ih, W_hh, b_ih, b_hh):
    h_next, c_next = lstm_step(x, h, c, W_ih, W_hh, b_ih, b_hh)
    return c_next, h_next


def lstm_step_old_cell_in_output(x, h, c, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=-1)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c_next


# ------------------------------------------------------------------ GRU step


def gru_step(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


def gru_step_swapped_update(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return z * n + (1 - z) * h


def gru_step_reset_before_matmul(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    W_hr, W_hz, W_hn = W_hh.chunk(3, dim=0)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    r = torch.sigmoid(x_r + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x_z + h @ W_hz.T + b_hz)
    n = torch.tanh(x_n + (r * h) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h


def gru_step_bias_outside_reset(x, h, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    W_hr, W_hz, W_hn = W_hh.chunk(3, dim=0)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    r = torch.sigmoid(x_r + h @ W_hr.T + b_hr)
    z = torch.sigmoid(x_z + h @ W_hz.T + b_hz)
    n = torch.tanh(x_n + r * (h @ W_hn.T) + b_hn)
    return (1 - z) * n + z * h


def gru_step_gate_order_zrn(x, h, W_ih, W_hh, b_ih, b_hh):
    x_z, x_r, x_n = (x @ W_ih.T + b_ih).chunk(3, dim=-1)
    h_z, h_r, h_n = (h @ W_hh.T + b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h


# ------------------------------------------------------------------ batchify


def batchify(ids, batch_size):
    length = ids.shape[0] // batch_size
    return ids[: length * batch_size].reshape(batch_size, length)


def batchify_interleaved(ids, batch_size):
    length = ids.shape[0] // batch_size
    return ids[: length * batch_size].reshape(length, batch_size).T


def batchify_time_major(ids, batch_size):
    return batchify(ids, batch_size).T


def batchify_keeps_tail_by_padding(ids, batch_size):
    length = -(-ids.shape[0] // batch_size)
    padded = torch.cat([ids, ids.new_zeros(length * batch_size - ids.shape[0])])
    return padded.reshape(batch_size, length)


# ------------------------------------------------------------------ detach_state


def detach_state(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(part.detach() for part in state)


def detach_state_forgets(state):
    return state


def detach_state_resets(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return torch.zeros_like(state).detach()
    return tuple(torch.zeros_like(part).detach() for part in state)


def detach_state_only_h(state):
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    h, c = state
    return h.detach(), c


def detach_state_as_list(state):
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return [part.detach() for part in state]


# ------------------------------------------------------------------ sampling_probs


def sampling_probs(logits, temperature, top_k=None):
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if temperature == 0:
        best = (logits == logits.amax(dim=-1, keepdim=True)).to(logits.dtype)
        return best / best.sum(dim=-1, keepdim=True)
    return torch.softmax(logits / temperature, dim=-1)


def sampling_probs_first_argmax(logits, temperature, top_k=None):
    if temperature == 0:
        if top_k is not None and top_k < logits.shape[-1]:
            kth = logits.topk(top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        index = logits.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(logits).scatter(-1, index, 1.0)
    return sampling_probs(logits, temperature, top_k)


def sampling_probs_multiplies(logits, temperature, top_k=None):
    return sampling_probs(logits * temperature**2, temperature, top_k)


def sampling_probs_divides_by_zero(logits, temperature, top_k=None):
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.softmax(logits / temperature, dim=-1)


def sampling_probs_ignores_top_k(logits, temperature, top_k=None):
    return sampling_probs(logits, temperature)


def sampling_probs_topk_scatter(logits, temperature, top_k=None):
    if top_k is not None and top_k < logits.shape[-1]:
        values, indices = logits.topk(top_k, dim=-1)
        logits = torch.full_like(logits, float("-inf")).scatter(-1, indices, values)
    return sampling_probs(logits, temperature)


def sampling_probs_naive_exp(logits, temperature, top_k=None):
    if temperature == 0:
        return sampling_probs(logits, 0, top_k)
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    e = (logits / temperature).exp()
    return e / e.sum(dim=-1, keepdim=True)


def sampling_probs_zeroed_after_softmax(logits, temperature, top_k=None):
    probs = sampling_probs(logits, temperature)
    if top_k is not None and top_k < logits.shape[-1]:
        probs = probs * (logits >= logits.topk(top_k, dim=-1).values[..., -1:])
    return probs


def sampling_probs_first_dim(logits, temperature, top_k=None):
    if temperature == 0 or top_k is not None:
        return sampling_probs(logits, temperature, top_k)
    return torch.softmax(logits / temperature, dim=0)


# ------------------------------------------------------------------ BPTT by hand


def rnn_bptt(x, h0, W_ih, W_hh, b_ih, b_hh, grad_h, carry=True, tanh_of="h_t",
             w_hh_grad="da.T @ h", back="W_hh", all_steps=True, h0_term=True):  # fmt: skip
    h, states = h0, []
    for x_t in x:
        h = torch.tanh(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        states.append(h)
    grad_x = torch.zeros_like(x)
    grad_W_ih, grad_W_hh, grad_b = (
        torch.zeros_like(W_ih),
        torch.zeros_like(W_hh),
        torch.zeros_like(b_ih),
    )
    dh = torch.zeros_like(h0)
    for t in reversed(range(len(x))):
        h_prev = states[t - 1] if t > 0 else (h0 if h0_term else torch.zeros_like(h0))
        dh = grad_h[t] + dh if carry else grad_h[t]
        if tanh_of == "nothing":
            da = dh
        else:
            da = dh * (1 - (states[t] if tanh_of == "h_t" else h_prev) ** 2)
        grad_x[t] = da @ W_ih
        if all_steps or t == len(x) - 1:
            grad_W_ih += da.T @ x[t]
            grad_W_hh += da.T @ h_prev if w_hh_grad == "da.T @ h" else h_prev.T @ da
            grad_b += da.sum(0)
        dh = da @ (W_hh if back == "W_hh" else W_hh.T)
    return grad_x, dh, grad_W_ih, grad_W_hh, grad_b, grad_b.clone()


def bptt_without_carry(*args):
    return rnn_bptt(*args, carry=False)


def bptt_without_tanh_derivative(*args):
    return rnn_bptt(*args, tanh_of="nothing")


def bptt_derivative_of_previous_state(*args):
    return rnn_bptt(*args, tanh_of="h_prev")


def bptt_w_hh_transposed(*args):
    return rnn_bptt(*args, w_hh_grad="h.T @ da")


def bptt_back_through_transpose(*args):
    return rnn_bptt(*args, back="W_hh^T")


def bptt_weights_of_last_step(*args):
    return rnn_bptt(*args, all_steps=False)


def bptt_without_h0_term(*args):
    return rnn_bptt(*args, h0_term=False)


def bptt_zero_grad_h0(*args):
    grads = list(rnn_bptt(*args))
    grads[1] = torch.zeros_like(grads[1])
    return tuple(grads)


def bptt_by_autograd(x, h0, W_ih, W_hh, b_ih, b_hh, grad_h):
    leaves = [t.detach().clone().requires_grad_() for t in (x, h0, W_ih, W_hh, b_ih, b_hh)]
    x, h, W_ih, W_hh, b_ih, b_hh = leaves
    states = []
    for x_t in x:
        h = torch.tanh(x_t @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
        states.append(h)
    (torch.stack(states) * grad_h).sum().backward()
    return tuple(leaf.grad for leaf in leaves)


PROOFS = [
    Proof(
        checks.check_rnn_step,
        correct=rnn_step,
        wrong=[
            Wrong(rnn_step_without_tanh, "tanh 非线性"),
            Wrong(rnn_step_sigmoid, "不是 sigmoid"),
            Wrong(rnn_step_untransposed, "没有转置"),
            Wrong(rnn_step_without_bias, "偏置 b_h"),
            Wrong(rnn_step_forgets_h, "递推项"),
        ],
        delegate=rnn_step_torch_cell,
    ),
    Proof(
        checks.check_lstm_step,
        correct=lstm_step,
        wrong=[
            Wrong(lstm_step_gate_order_ifog, "i, f, g, o"),
            Wrong(lstm_step_forget_gate_first, "第一块是输入门 i"),
            Wrong(lstm_step_sigmoid_candidate, "候选值 g 要用 tanh"),
            Wrong(lstm_step_no_tanh_on_cell, "再过一次 tanh"),
            Wrong(lstm_step_swapped_outputs, "先隐藏状态"),
            Wrong(lstm_step_old_cell_in_output, "c' = σ(f)⊙c"),
        ],
        delegate=lambda x, h, c, W_ih, W_hh, b_ih, b_hh: torch.lstm_cell(
            x, (h, c), W_ih, W_hh, b_ih, b_hh
        ),
    ),
    Proof(
        checks.check_gru_step,
        correct=gru_step,
        wrong=[
            Wrong(gru_step_swapped_update, "z 与 1 - z 用反了"),
            Wrong(gru_step_reset_before_matmul, "Cho 等人"),
            Wrong(gru_step_bias_outside_reset, "b_hn 也要被重置门"),
            Wrong(gru_step_gate_order_zrn, "按 r, z, n 切分"),
        ],
        delegate=lambda x, h, W_ih, W_hh, b_ih, b_hh: rnn.gru_step(
            x @ W_ih.T + b_ih, h, W_hh, b_hh
        ),
    ),
    Proof(
        checks.check_batchify,
        correct=batchify,
        wrong=[
            Wrong(batchify_interleaved, "交错"),
            Wrong(batchify_time_major, "形状"),
            Wrong(batchify_keeps_tail_by_padding, "丢掉末尾"),
        ],
        delegate=rnn.batchify,
        float32_inputs=False,
    ),
    Proof(
        checks.check_detach_state,
        correct=detach_state,
        wrong=[
            Wrong(detach_state_forgets, ".detach()"),
            Wrong(detach_state_resets, "不要把状态清零"),
            Wrong(detach_state_only_h, "两个都要 detach"),
            Wrong(detach_state_as_list, "保持状态原来的结构"),
        ],
        delegate=rnn.detach_state,
        float64_required=True,
    ),
    Proof(
        checks.check_sampling_probs,
        correct=sampling_probs,
        wrong=[
            Wrong(sampling_probs_multiplies, "温度要除"),
            Wrong(sampling_probs_divides_by_zero, "不能除以 0"),
            Wrong(sampling_probs_ignores_top_k, "没有做 top-k"),
            Wrong(sampling_probs_topk_scatter, "相等的 logit 也要保留"),
            Wrong(sampling_probs_zeroed_after_softmax, "先屏蔽再 softmax"),
            Wrong(sampling_probs_naive_exp, "NaN"),
            Wrong(sampling_probs_first_dim, "沿最后一维"),
            Wrong(sampling_probs_first_argmax, "平分"),
        ],
        delegate=rnn.sampling_probs,
    ),
    Proof(
        checks.check_rnn_bptt,
        correct=rnn_bptt,
        wrong=[
            Wrong(bptt_without_carry, "从 h_{t+1} 传回来"),
            Wrong(bptt_without_tanh_derivative, "tanh 的导数"),
            Wrong(bptt_derivative_of_previous_state, "不是上一步的 h_{t-1}"),
            Wrong(bptt_w_hh_transposed, "da_t^T @ h_{t-1}"),
            Wrong(bptt_back_through_transpose, "da_t @ W_hh（不转置）"),
            Wrong(bptt_weights_of_last_step, "对所有时间步求和"),
            Wrong(bptt_without_h0_term, "da_1^T @ h0"),
            Wrong(bptt_zero_grad_h0, "grad_h0"),
        ],
        delegate=bptt_by_autograd,
    ),
]

globals().update(parametrize_proofs(PROOFS))


def test_bptt_reference_agrees_with_torch_rnn():
    """The check's autograd reference is torch.nn.RNN's gradient (the peer)."""
    for case in checks._bptt_cases(torch.device("cpu")):
        x, h0, W_ih, W_hh, b_ih, b_hh, grad_h = case.args
        if x.shape[1] == 0:
            continue
        layer = torch.nn.RNN(x.shape[2], h0.shape[1]).double()
        with torch.no_grad():
            for name, value in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"),
                                   (W_ih, W_hh, b_ih, b_hh)):  # fmt: skip
                getattr(layer, name).copy_(value)
        x_leaf, h0_leaf = x.clone().requires_grad_(), h0.clone().requires_grad_()
        output, _ = layer(x_leaf, h0_leaf[None])
        (output * grad_h).sum().backward()
        peer = (x_leaf.grad, h0_leaf.grad, layer.weight_ih_l0.grad, layer.weight_hh_l0.grad,
                layer.bias_ih_l0.grad, layer.bias_hh_l0.grad)  # fmt: skip
        ours = checks._bptt_reference(*case.args)
        for a, b in zip(ours, peer):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)
