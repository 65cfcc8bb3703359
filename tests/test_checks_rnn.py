"""Proof that every exercise check of the recurrent-networks chapter can fail."""

import torch

from course_lib.checks import rnn as checks
from tests.checkproof import Proof, Wrong, parametrize_proofs

# ------------------------------------------------------------------ vanilla RNN step


def rnn_step(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh.T + h @ W_hh.T + b_h)


def rnn_step_without_tanh(x, h, W_xh, W_hh, b_h):
    return x @ W_xh.T + h @ W_hh.T + b_h


def rnn_step_untransposed(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh.T + h @ W_hh + b_h)


def rnn_step_without_bias(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh.T + h @ W_hh.T)


def rnn_step_sigmoid(x, h, W_xh, W_hh, b_h):
    return torch.sigmoid(x @ W_xh.T + h @ W_hh.T + b_h)


def rnn_step_forgets_h(x, h, W_xh, W_hh, b_h):
    return torch.tanh(x @ W_xh.T + b_h)


def rnn_step_float32(x, h, W_xh, W_hh, b_h):
    return rnn_step(x.float(), h.float(), W_xh.float(), W_hh.float(), b_h.float()).double()


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
        index = logits.argmax(dim=-1, keepdim=True)
        return torch.zeros_like(logits).scatter(-1, index, 1.0)
    return torch.softmax(logits / temperature, dim=-1)


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
            Wrong(rnn_step_float32, "数值不同"),
        ],
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
    ),
    Proof(
        checks.check_batchify,
        correct=batchify,
        wrong=[
            Wrong(batchify_interleaved, "交错"),
            Wrong(batchify_time_major, "形状"),
            Wrong(batchify_keeps_tail_by_padding, "丢掉末尾"),
        ],
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
        ],
    ),
]

globals().update(parametrize_proofs(PROOFS))
