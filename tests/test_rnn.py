"""course_lib.rnn against torch.nn (cells, layers, packed sequences), plus truncated BPTT,
sampling, the language model, the task models and seq2seq."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from course_lib import data, rnn

CELLS = [(rnn.RNNCell, nn.RNNCell), (rnn.LSTMCell, nn.LSTMCell), (rnn.GRUCell, nn.GRUCell)]
LAYERS = [(rnn.RNN, nn.RNN), (rnn.LSTM, nn.LSTM), (rnn.GRU, nn.GRU)]
ATOL = RTOL = 1e-5


def _twins(ours_cls, torch_cls, *args, device="cpu", dtype=torch.float32, **kwargs):
    """A torch.nn module and ours with its weights."""
    torch.manual_seed(0)
    reference = torch_cls(*args, **kwargs).to(device, dtype)
    ours = ours_cls(*args, **kwargs).to(device, dtype)
    ours.load_state_dict(reference.state_dict())
    return ours, reference


def _flatten(value):
    if isinstance(value, torch.Tensor):
        return [value]
    return [item for part in value for item in _flatten(part)]


def _grads(module, inputs, output):
    """Gradients of a fixed random projection of every output w.r.t. inputs and params."""
    outs = _flatten(output)
    generator = torch.Generator().manual_seed(1)
    loss = sum(
        (o * torch.randn(o.shape, generator=generator).to(o)).sum() for o in outs if o.numel()
    )
    leaves = [t for t in inputs if t.requires_grad] + list(module.parameters())
    return torch.autograd.grad(loss, leaves, allow_unused=True)


def _assert_close(a, b, atol=ATOL, rtol=RTOL):
    xs, ys = _flatten(a), _flatten(b)
    assert xs and len(xs) == len(ys), f"{len(xs)} tensors against {len(ys)}"
    for x, y in zip(xs, ys):
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol)


# ------------------------------------------------------------------------------ cells


@pytest.mark.parametrize(("ours_cls", "torch_cls"), CELLS, ids=["rnn", "lstm", "gru"])
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("given_state", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_match_torch(ours_cls, torch_cls, batched, given_state, bias, device):
    ours, reference = _twins(ours_cls, torch_cls, 5, 7, bias=bias, device=device)
    shape = (3, 5) if batched else (5,)
    x = torch.randn(shape, device=device, requires_grad=True)
    state_shape = (3, 7) if batched else (7,)
    inputs = [x]
    state = None
    if given_state:
        parts = [torch.randn(state_shape, device=device, requires_grad=True) for _ in range(2)]
        state = tuple(parts) if ours_cls is rnn.LSTMCell else parts[0]
        inputs += parts if ours_cls is rnn.LSTMCell else parts[:1]
    expected, actual = reference(x, state), ours(x, state)
    _assert_close(actual, expected)
    _assert_close(_grads(ours, inputs, actual), _grads(reference, inputs, expected))


def test_rnn_cell_relu_matches_torch():
    ours, reference = _twins(rnn.RNNCell, nn.RNNCell, 4, 6, nonlinearity="relu")
    x, h = torch.randn(5, 4), torch.randn(5, 6)
    _assert_close(ours(x, h), reference(x, h))


def test_step_functions_are_what_the_cells_compute():
    cell = rnn.LSTMCell(3, 4)
    x, h, c = torch.randn(2, 3), torch.randn(2, 4), torch.randn(2, 4)
    x_proj = F.linear(x, cell.weight_ih, cell.bias_ih)
    _assert_close(rnn.lstm_step(x_proj, h, c, cell.weight_hh, cell.bias_hh), cell(x, (h, c)))


# ------------------------------------------------------------------------------ layers


def _state(cls, num_layers, batch, hidden, batched, device, requires_grad=True):
    shape = (num_layers, batch, hidden) if batched else (num_layers, hidden)
    parts = [torch.randn(shape, device=device, requires_grad=requires_grad) for _ in range(2)]
    return (tuple(parts), parts) if cls is rnn.LSTM else (parts[0], parts[:1])


@pytest.mark.parametrize(("ours_cls", "torch_cls"), LAYERS, ids=["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("given_state", [False, True])
def test_layers_match_torch(ours_cls, torch_cls, num_layers, batch_first, given_state, device):
    ours, reference = _twins(
        ours_cls, torch_cls, 5, 8, num_layers=num_layers, batch_first=batch_first, device=device
    )
    x = torch.randn((4, 6, 5) if batch_first else (6, 4, 5), device=device, requires_grad=True)
    state, leaves = (None, [])
    if given_state:
        state, leaves = _state(ours_cls, num_layers, 4, 8, True, device)
    expected, actual = reference(x, state), ours(x, state)
    _assert_close(actual, expected)
    _assert_close(_grads(ours, [x, *leaves], actual), _grads(reference, [x, *leaves], expected))


@pytest.mark.parametrize(("ours_cls", "torch_cls"), LAYERS, ids=["rnn", "lstm", "gru"])
def test_layers_match_torch_unbatched_and_without_bias(ours_cls, torch_cls):
    ours, reference = _twins(ours_cls, torch_cls, 3, 4, num_layers=2, bias=False)
    x = torch.randn(7, 3, requires_grad=True)  # unbatched [T, D]
    state, leaves = _state(ours_cls, 2, 1, 4, False, "cpu")
    expected, actual = reference(x, state), ours(x, state)
    _assert_close(actual, expected)
    _assert_close(_grads(ours, [x, *leaves], actual), _grads(reference, [x, *leaves], expected))


def test_relu_rnn_layer_matches_torch():
    ours, reference = _twins(rnn.RNN, nn.RNN, 3, 6, num_layers=2, nonlinearity="relu")
    x = torch.randn(9, 2, 3, requires_grad=True)
    expected, actual = reference(x), ours(x)
    _assert_close(actual, expected)
    _assert_close(_grads(ours, [x], actual), _grads(reference, [x], expected))


@pytest.mark.parametrize(("ours_cls", "torch_cls"), LAYERS, ids=["rnn", "lstm", "gru"])
def test_layers_match_torch_in_float64_tightly(ours_cls, torch_cls):
    ours, reference = _twins(ours_cls, torch_cls, 4, 5, num_layers=2, dtype=torch.float64)
    x = torch.randn(12, 3, 4, dtype=torch.float64, requires_grad=True)
    expected, actual = reference(x), ours(x)
    _assert_close(actual, expected, atol=1e-12, rtol=1e-12)
    _assert_close(
        _grads(ours, [x], actual), _grads(reference, [x], expected), atol=1e-12, rtol=1e-12
    )


@pytest.mark.parametrize(("ours_cls", "torch_cls"), LAYERS, ids=["rnn", "lstm", "gru"])
def test_lengths_match_packed_sequences(ours_cls, torch_cls, device):
    ours, reference = _twins(ours_cls, torch_cls, 5, 6, num_layers=2, batch_first=True,
                             device=device)  # fmt: skip
    x = torch.randn(4, 7, 5, device=device, requires_grad=True)
    lengths = torch.tensor([7, 2, 5, 1])
    state, leaves = _state(ours_cls, 2, 4, 6, True, device)
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    packed_output, expected_state = reference(packed, state)
    expected_output, _ = pad_packed_sequence(packed_output, batch_first=True, total_length=7)
    expected = (expected_output, expected_state)
    actual = ours(x, state, lengths=lengths.to(device))
    _assert_close(actual, expected)
    _assert_close(_grads(ours, [x, *leaves], actual), _grads(reference, [x, *leaves], expected))


@pytest.mark.parametrize("ours_cls", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_zero_length_sequence_keeps_its_initial_state(ours_cls):
    layer = ours_cls(3, 4, batch_first=True)
    state, _ = _state(ours_cls, 1, 2, 4, True, "cpu", requires_grad=False)
    output, final = layer(torch.randn(2, 5, 3), state, lengths=torch.tensor([0, 5]))
    assert torch.equal(output[0], torch.zeros(5, 4))
    assert len(_flatten(final)) == len(_flatten(state)) == (2 if ours_cls is rnn.LSTM else 1)
    for got, original in zip(_flatten(final), _flatten(state)):
        assert torch.equal(got[:, 0], original[:, 0])


@pytest.mark.parametrize("ours_cls", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_gradcheck_through_time_with_lengths(ours_cls):
    torch.manual_seed(0)
    layer = ours_cls(3, 4, num_layers=2).double()
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    x = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 0])

    def run(x, *params):
        output = torch.func.functional_call(
            layer, dict(zip(names, params)), (x,), {"lengths": lengths}
        )
        return tuple(_flatten(output))

    assert torch.autograd.gradcheck(run, (x, *params))


@pytest.mark.parametrize("ours_cls", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_empty_time_and_batch(ours_cls):
    layer = ours_cls(3, 4, batch_first=True)
    output, state = layer(torch.randn(2, 0, 3))
    assert output.shape == (2, 0, 4)
    assert all(torch.equal(s, torch.zeros(1, 2, 4)) for s in _flatten(state))
    output, state = layer(torch.randn(0, 6, 3, requires_grad=True))
    assert output.shape == (0, 6, 4) and _flatten(state)[0].shape == (1, 0, 4)


@pytest.mark.parametrize("ours_cls", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_inference_path_equals_training_path(ours_cls):
    layer = ours_cls(3, 5, num_layers=2, batch_first=True)
    x, lengths = torch.randn(3, 6, 3), torch.tensor([6, 4, 1])
    with torch.no_grad():
        fast = layer(x, lengths=lengths)
    recorded = layer(x.requires_grad_(), lengths=lengths)
    _assert_close(fast, recorded, atol=1e-6, rtol=1e-6)


def test_dropout_only_between_layers_and_only_in_training():
    torch.manual_seed(0)
    single = rnn.LSTM(3, 4, dropout=0.5)
    x = torch.randn(5, 2, 3)
    _assert_close(single(x), single(x))  # one layer: nothing to drop
    stacked = rnn.GRU(3, 4, num_layers=2, dropout=0.5)
    assert not torch.equal(stacked(x)[0], stacked(x)[0])
    stacked.eval()
    assert torch.equal(stacked(x)[0], stacked(x)[0])


@settings(max_examples=15, deadline=None)
@given(
    kind=st.sampled_from([0, 1, 2]),
    steps=st.integers(1, 6),
    batch=st.integers(1, 4),
    input_size=st.integers(1, 5),
    hidden=st.integers(1, 6),
    num_layers=st.integers(1, 3),
)
def test_layers_match_torch_property(kind, steps, batch, input_size, hidden, num_layers):
    ours_cls, torch_cls = LAYERS[kind]
    ours, reference = _twins(ours_cls, torch_cls, input_size, hidden, num_layers=num_layers)
    x = torch.randn(steps, batch, input_size, requires_grad=True)
    expected, actual = reference(x), ours(x)
    _assert_close(actual, expected)
    _assert_close(_grads(ours, [x], actual), _grads(reference, [x], expected))


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("ours_cls", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_layer_errors_name_the_argument(ours_cls):
    layer = ours_cls(3, 4, num_layers=2, batch_first=True)
    with pytest.raises(ValueError, match=r"input must have shape \[\.\.\., 3\], got \[2, 5, 4\]"):
        layer(torch.randn(2, 5, 4))
    with pytest.raises(TypeError, match="input must be a floating-point tensor"):
        layer(torch.ones(2, 5, 3, dtype=torch.long))
    with pytest.raises(TypeError, match=r"input is torch.float64 .* pass input.float\(\)"):
        layer(torch.randn(2, 5, 3, dtype=torch.float64))
    bad_state = torch.zeros(1, 2, 4)  # one layer instead of two
    state = (bad_state, bad_state) if ours_cls is rnn.LSTM else bad_state
    name = "hx\\[0\\]" if ours_cls is rnn.LSTM else "hx"
    with pytest.raises(ValueError, match=rf"{name} must have shape \[2, 2, 4\], got \[1, 2, 4\]"):
        layer(torch.randn(2, 5, 3), state)
    with pytest.raises(ValueError, match=r"lengths must have shape \[B\] with B = 2, got \[3\]"):
        layer(torch.randn(2, 5, 3), lengths=torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\], got values from 2 to 6"):
        layer(torch.randn(2, 5, 3), lengths=torch.tensor([6, 2]))
    with pytest.raises(TypeError, match="lengths must be an integer tensor"):
        layer(torch.randn(2, 5, 3), lengths=torch.tensor([1.0, 2.0]))


def test_lstm_state_errors():
    layer = rnn.LSTM(3, 4)
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        layer(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match=r"hx\[1\] must have shape \[1, 2, 4\]"):
        layer(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 5)))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h, c\)"):
        rnn.LSTMCell(3, 4)(torch.randn(2, 3), torch.zeros(2, 4))


@pytest.mark.parametrize("ours_cls", [rnn.RNNCell, rnn.LSTMCell, rnn.GRUCell])
def test_cell_errors_name_the_argument(ours_cls):
    cell = ours_cls(3, 4)
    with pytest.raises(ValueError, match=r"input must have shape \[\.\.\., 3\]"):
        cell(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"must have shape \[2, 4\], got \[2, 5\]"):
        state = torch.zeros(2, 5)
        cell(torch.randn(2, 3), (state, state) if ours_cls is rnn.LSTMCell else state)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"hidden_size": 0}, ValueError, "hidden_size must be an int in"),
        ({"input_size": 2.5}, TypeError, "input_size must be an int, got float"),
        ({"num_layers": 0}, ValueError, "num_layers must be an int in"),
        ({"dropout": 1.0}, ValueError, r"dropout must be a finite number in \[0.0, 1.0\)"),
        ({"bidirectional": True}, ValueError, "bidirectional"),
        ({"hidden_size": 10**12}, ValueError, "hidden_size must be an int in"),
    ],
)
def test_constructor_errors(kwargs, error, message):
    arguments = {"input_size": 3, "hidden_size": 4, **kwargs}
    with pytest.raises(error, match=message):
        rnn.LSTM(**arguments)


def test_nonlinearity_and_cell_name_errors():
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        rnn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="cell must be one of"):
        rnn.make_recurrent("transformer", 3, 4)


# ------------------------------------------------------------------------------ gradients in time


@pytest.mark.parametrize("singular_value", [0.5, 1.0, 1.5])
def test_state_gradient_norms_follow_the_singular_value_in_the_linear_regime(singular_value):
    cell = rnn.RNNCell(4, 16, bias=False).double()
    with torch.no_grad():
        nn.init.orthogonal_(cell.weight_hh, gain=singular_value)  # every singular value = s
    inputs = torch.zeros(2, 20, 4, dtype=torch.float64)  # h stays 0: tanh'(0) = 1
    norms = rnn.state_gradient_norms(cell, inputs)
    expected = singular_value ** torch.arange(20, -1, -1, dtype=torch.float64)
    torch.testing.assert_close(norms, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize(("ours_cls", "torch_cls"), CELLS, ids=["rnn", "lstm", "gru"])
def test_state_gradient_norms_agree_for_torch_cells(ours_cls, torch_cls):
    ours, reference = _twins(ours_cls, torch_cls, 3, 5)
    inputs = torch.randn(4, 9, 3)
    torch.testing.assert_close(
        rnn.state_gradient_norms(ours, inputs), rnn.state_gradient_norms(reference, inputs)
    )


def test_input_gradient_norms_shape_and_causality():
    torch.manual_seed(0)
    model = rnn.SequenceClassifier(3, 2, hidden_size=8, cell="rnn")
    x, y = torch.randn(5, 7, 3), torch.randint(2, (5,))
    norms = rnn.input_gradient_norms(model, x, y)
    assert norms.shape == (7,) and (norms > 0).all()


# ------------------------------------------------------------------------------ truncated BPTT


def test_batchify_lays_out_parallel_streams():
    ids = torch.arange(23)
    streams = rnn.batchify(ids, 4)
    assert streams.shape == (4, 5)
    for b in range(4):
        assert torch.equal(streams[b], ids[5 * b : 5 * b + 5])
    assert rnn.batchify(ids, 1).shape == (1, 23)
    assert rnn.batchify(ids, 23).shape == (23, 1)
    assert rnn.batchify(ids, 30).shape == (30, 0)  # more streams than ids: empty streams
    assert rnn.batchify(torch.arange(0), 3).shape == (3, 0)


def test_batchify_errors():
    with pytest.raises(ValueError, match=r"ids must have shape \[N\], got \[2, 3\]"):
        rnn.batchify(torch.zeros(2, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="batch_size must be an int in"):
        rnn.batchify(torch.arange(10), 0)


def test_chunks_cover_the_streams_with_shifted_targets():
    streams = rnn.batchify(torch.arange(40), 2)  # [2, 20]
    chunks = rnn.TBPTTChunks(streams, 6)
    pairs = list(chunks)
    assert len(chunks) == len(pairs) == 4  # 19 predictable steps: 6 + 6 + 6 + 1
    assert [x.shape[1] for x, _ in pairs] == [6, 6, 6, 1]
    assert torch.equal(torch.cat([x for x, _ in pairs], dim=1), streams[:, :-1])
    assert torch.equal(torch.cat([y for _, y in pairs], dim=1), streams[:, 1:])
    assert len(list(chunks)) == 4  # iterable again (one pass per epoch)
    assert len(rnn.TBPTTChunks(streams[:, :1], 6)) == 0


def test_detach_state_keeps_values_and_cuts_the_graph():
    h = torch.randn(2, 3, requires_grad=True) * 2
    c = torch.randn(2, 3, requires_grad=True) * 3
    for state in [h, (h, c), [h, c]]:
        detached = rnn.detach_state(state)
        assert type(detached) is type(state)
        assert len(_flatten(detached)) == len(_flatten(state)) >= 1
        for got, original in zip(_flatten(detached), _flatten(state)):
            assert torch.equal(got, original) and got.grad_fn is None and not got.requires_grad
    assert rnn.detach_state(None) is None
    with pytest.raises(TypeError, match="state must be"):
        rnn.detach_state("h")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_no_gradient_crosses_a_chunk_boundary(cell):
    torch.manual_seed(0)
    model = rnn.CharLanguageModel(11, embed_dim=4, hidden_size=6, num_layers=2, cell=cell)
    streams = rnn.batchify(torch.randint(11, (200,)), 4)
    (x1, y1), (x2, y2) = list(rnn.TBPTTChunks(streams, 8))[:2]
    loss_fn = rnn.TruncatedBPTT()
    loss_fn(model, (x1, y1))  # chunk 1: its graph is dropped, its state kept (detached)
    carried = loss_fn.state
    assert all(not s.requires_grad for s in _flatten(carried))
    embedded_1 = []
    handle = model.embedding.register_forward_hook(lambda m, i, out: embedded_1.append(out))
    loss_2 = loss_fn(model, (x2, y2))
    handle.remove()
    grads = torch.autograd.grad(loss_2, list(model.parameters()))
    # Same gradients as starting chunk 2 from the same values given as plain constants:
    logits, _ = model.logits_and_state(x2, rnn.detach_state(carried))
    reference = F.cross_entropy(logits.reshape(-1, 11), y2.reshape(-1))
    _assert_close(grads, torch.autograd.grad(reference, list(model.parameters())))
    # ...and the carried state really mattered (it is not a reset to zeros):
    logits_zero, _ = model.logits_and_state(x2)
    assert not torch.allclose(logits, logits_zero)


def test_truncated_bptt_resets_each_pass_and_on_batch_change():
    model = rnn.CharLanguageModel(5, embed_dim=3, hidden_size=4)
    loss_fn = rnn.TruncatedBPTT(chunks_per_pass=2)
    batch = (torch.randint(5, (3, 4)), torch.randint(5, (3, 4)))
    loss_fn(model, batch)
    first_state = loss_fn.state
    loss_fn(model, batch)
    assert loss_fn.state is not None
    calls = []
    original = model.logits_and_state
    model.logits_and_state = lambda x, state=None: calls.append(state) or original(x, state)
    loss_fn(model, batch)  # third call: a new pass starts from zeros
    loss_fn(model, (batch[0][:2], batch[1][:2]))  # batch size changed: reset
    assert calls == [None, None]
    assert first_state[0].shape == (1, 3, 4)


# ------------------------------------------------------------------------------ sampling


def test_sampling_probs_is_tempered_softmax():
    logits = torch.randn(4, 9, dtype=torch.float64)
    for temperature in [0.3, 1.0, 2.5]:
        expected = torch.distributions.Categorical(logits=logits / temperature).probs
        torch.testing.assert_close(rnn.sampling_probs(logits, temperature), expected)


def test_temperature_zero_is_argmax_and_small_temperature_approaches_it():
    logits = torch.randn(6, 10)
    greedy = rnn.sampling_probs(logits, 0.0)
    assert torch.equal(greedy, F.one_hot(logits.argmax(-1), 10).float())
    assert torch.allclose(rnn.sampling_probs(logits, 1e-3), greedy, atol=1e-6)
    assert torch.equal(rnn.sample_next_token(logits, 0.0), logits.argmax(-1))
    # The T -> 0 limit of softmax(l / T): tied maxima share the mass equally.
    ties = torch.tensor([[1.0, 3.0, 3.0]])
    assert torch.equal(rnn.sampling_probs(ties, 0), torch.tensor([[0.0, 0.5, 0.5]]))
    assert torch.allclose(rnn.sampling_probs(ties, 1e-3), rnn.sampling_probs(ties, 0))


def test_high_temperature_approaches_uniform():
    probs = rnn.sampling_probs(torch.randn(3, 8), temperature=1e4)
    torch.testing.assert_close(probs, torch.full((3, 8), 1 / 8), atol=1e-3, rtol=0)


def test_top_k_keeps_the_k_largest_and_their_ties():
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.0, 2.0], [1.0, 1.0, 1.0, 0.0, -1.0]])
    probs = rnn.sampling_probs(logits, 1.0, top_k=2)
    assert torch.equal(probs[0] > 0, torch.tensor([False, True, False, True, False]))
    expected = torch.softmax(torch.tensor([5.0, 4.0]), 0)
    torch.testing.assert_close(probs[0, [1, 3]], expected)
    assert torch.equal(probs[1] > 0, torch.tensor([True, True, True, False, False]))  # ties
    assert torch.equal(rnn.sampling_probs(logits, 1.0, top_k=99), torch.softmax(logits, -1))


def test_samples_follow_the_distribution_and_respect_top_k():
    generator = torch.Generator().manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    draws = rnn.sample_next_token(logits.expand(40000, 6), 1.5, top_k=4, generator=generator)
    counts = torch.bincount(draws, minlength=6).double() / 40000
    expected = rnn.sampling_probs(logits.double(), 1.5, top_k=4)
    assert counts[4:].sum() == 0
    torch.testing.assert_close(counts, expected, atol=0.01, rtol=0)
    again = rnn.sample_next_token(
        logits.expand(50, 6), 1.5, generator=torch.Generator().manual_seed(3)
    )
    same = rnn.sample_next_token(
        logits.expand(50, 6), 1.5, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(again, same)
    assert rnn.sample_next_token(logits, 1.0).shape == ()


def test_sampling_errors():
    with pytest.raises(ValueError, match=r"temperature must be a finite number >= 0\.0"):
        rnn.sampling_probs(torch.randn(3), -1.0)
    with pytest.raises(ValueError, match="top_k must be an int in"):
        rnn.sampling_probs(torch.randn(3), 1.0, top_k=0)
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        rnn.sampling_probs(torch.tensor([1, 2]), 1.0)
    with pytest.raises(ValueError, match=r"\[\.\.\., V\] with V >= 1"):
        rnn.sampling_probs(torch.zeros(2, 0), 1.0)
    with pytest.raises(ValueError, match="logits must not hold NaN"):
        rnn.sampling_probs(torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="at least one token per row"):
        rnn.sampling_probs(torch.full((2, 3), float("-inf")))
    assert rnn.sampling_probs(torch.zeros(0, 5), 0.7, top_k=2).shape == (0, 5)


def test_minus_infinity_masks_a_token_out():
    logits = torch.tensor([[0.0, float("-inf"), 1.0]])
    probs = rnn.sampling_probs(logits, 1.0)
    assert probs[0, 1] == 0 and torch.isclose(probs.sum(), torch.tensor(1.0))
    draws = rnn.sample_next_token(logits.expand(200, 3), generator=torch.Generator().manual_seed(0))
    assert not (draws == 1).any()


# ------------------------------------------------------------------------------ language model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_interface(cell, device):
    torch.manual_seed(0)
    model = rnn.CharLanguageModel(13, embed_dim=5, hidden_size=7, num_layers=2, cell=cell)
    model.to(device)
    x = torch.randint(13, (3, 10), device=device)
    y = torch.randint(13, (3, 10), device=device)
    logits, loss = model(x, y)
    assert logits.shape == (3, 10, 13)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 13), y.reshape(-1)))
    assert model(x)[1] is None
    # Reading a sequence in two halves with the state carried equals reading it at once.
    first, state = model.logits_and_state(x[:, :4])
    second, _ = model.logits_and_state(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), logits)


def test_generate_is_reproducible_and_greedy_at_temperature_zero():
    torch.manual_seed(0)
    model = rnn.CharLanguageModel(9, embed_dim=4, hidden_size=8)
    prompt = torch.tensor([1, 2, 3])
    out = model.generate(prompt, 12, generator=torch.Generator().manual_seed(5))
    assert out.shape == (15,) and torch.equal(out[:3], prompt)
    assert torch.equal(out, model.generate(prompt, 12, generator=torch.Generator().manual_seed(5)))
    greedy = model.generate(prompt.expand(2, 3), 6, temperature=0)
    assert greedy.shape == (2, 9)
    ids = prompt.unsqueeze(0)  # greedy by hand: re-read everything, take the arg-max
    for _ in range(6):
        logits, _ = model(ids)
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(greedy[0], ids[0])
    top1 = model.generate(prompt, 6, top_k=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(top1, greedy[0])
    assert torch.equal(model.generate(prompt, 0), prompt)
    assert model.training  # generate restores the mode


def test_language_model_errors():
    model = rnn.CharLanguageModel(9)
    with pytest.raises(ValueError, match=r"x must have shape \[B, T\]"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="x must be an integer tensor"):
        model(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"x must hold token ids in \[0, 8\] \(vocab_size = 9\)"):
        model(torch.full((2, 5), 9))
    with pytest.raises(ValueError, match=r"targets must have shape \[2, 5\], got \[2, 4\]"):
        model(torch.zeros(2, 5, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="P >= 1"):
        model.generate(torch.zeros(0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="length must be an int in"):
        model.generate(torch.zeros(2, dtype=torch.long), -1)
    with pytest.raises(ValueError, match="cell must be one of"):
        rnn.CharLanguageModel(9, cell="transformer")


def test_bits_per_char_equals_the_full_stream_cross_entropy():
    torch.manual_seed(0)
    model = rnn.CharLanguageModel(7, embed_dim=3, hidden_size=5, cell="gru")
    ids = torch.randint(7, (203,))
    streams = rnn.batchify(ids, 4)
    with torch.no_grad():
        logits, _ = model(streams[:, :-1])
    nats = F.cross_entropy(logits.reshape(-1, 7), streams[:, 1:].reshape(-1))
    bits = rnn.evaluate_bits_per_char(model, ids, batch_size=4, seq_len=7)
    assert bits == pytest.approx(nats.item() / math.log(2), rel=1e-5)


def test_bits_per_char_of_a_stateless_model_and_of_a_uniform_model():
    class Uniform(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.zeros(()))

        def forward(self, x, targets=None):
            return self.scale * torch.zeros(*x.shape, 16), None

    assert rnn.evaluate_bits_per_char(Uniform(), torch.randint(16, (300,)), 3, 10) == (
        pytest.approx(4.0)
    )
    with pytest.raises(ValueError, match="too short"):
        rnn.evaluate_bits_per_char(Uniform(), torch.arange(5), batch_size=4)


# ------------------------------------------------------------------------------ task types


def test_classifier_with_lengths_reads_each_sequence_to_its_end():
    torch.manual_seed(0)
    model = rnn.SequenceClassifier(3, 4, hidden_size=6, cell="gru")
    x, lengths = torch.randn(3, 8, 3), torch.tensor([8, 3, 5])
    logits, loss = model(x, torch.tensor([0, 1, 2]), lengths=lengths)
    assert logits.shape == (3, 4) and loss.dim() == 0
    for b in range(3):
        alone, _ = model(x[b : b + 1, : lengths[b]])
        torch.testing.assert_close(logits[b : b + 1], alone)


def test_tagger_loss_is_summed_over_time_steps():
    torch.manual_seed(0)
    model = rnn.SequenceTagger(3, 5, hidden_size=6)
    x, tags = torch.randn(4, 7, 3), torch.randint(5, (4, 7))
    tags[0, 5:] = -100  # padding is ignored
    logits, loss = model(x, tags)
    assert logits.shape == (4, 7, 5)
    per_step = F.cross_entropy(logits.transpose(1, 2), tags, reduction="none", ignore_index=-100)
    torch.testing.assert_close(loss, per_step.sum() / 4)


def test_first_symbol_task():
    x, y = rnn.first_symbol_task(50, 12, num_symbols=3, seed=1)
    assert x.shape == (50, 12, 3) and y.shape == (50,)
    assert torch.equal(x[:, 0].argmax(-1), y) and torch.equal(x.sum(-1), torch.ones(50, 12))
    again = rnn.first_symbol_task(50, 12, num_symbols=3, seed=1)
    assert torch.equal(x, again[0]) and torch.equal(y, again[1])


def test_bracket_depth_task_tags_are_the_depths():
    x, tags, texts = rnn.bracket_depth_task(40, 30, max_depth=3, seed=2)
    assert x.shape == (40, 30, 3) and tags.shape == (40, 30) and len(texts) == 40
    for row, text in enumerate(texts):
        depth = 0
        for t, char in enumerate(text):
            depth += {"(": 1, ")": -1, "x": 0}[char]
            assert 0 <= depth <= 3 and tags[row, t] == depth
            assert x[row, t, "()x".index(char)] == 1
    assert tags.max() == 3  # the deepest level occurs


def test_accuracy_by_length():
    correct = torch.tensor([True, False, True, True])
    lengths = torch.tensor([5, 6, 12, 30])
    labels, accuracy, counts = rnn.accuracy_by_length(correct, lengths, [0, 10, 20, 40])
    assert labels == ["0-9", "10-19", "20-39"]
    torch.testing.assert_close(accuracy, torch.tensor([0.5, 1.0, 1.0], dtype=torch.float64))
    assert counts.tolist() == [2, 1, 1]
    assert math.isnan(rnn.accuracy_by_length(correct, lengths, [50, 60])[1][0])
    with pytest.raises(ValueError, match="increasing"):
        rnn.accuracy_by_length(correct, lengths, [5])


# ------------------------------------------------------------------------------ seq2seq


@pytest.fixture(scope="module")
def dates():
    return data.load_dates(64, 16, 16, seed=0)


def test_seq2seq_forward_and_generate(dates):
    torch.manual_seed(0)
    model = rnn.Seq2Seq(len(dates.source_vocab), len(dates.target_vocab), hidden_size=16)
    batch = data.encode_dates(dates.train[:8], dates.source_vocab, dates.target_vocab)
    logits, loss = model(batch.source, batch.source_lengths, batch.target)
    assert logits.shape == (8, batch.target.shape[1] - 1, len(dates.target_vocab))
    mask = batch.target[:, 1:] != 0
    expected = F.cross_entropy(logits[mask], batch.target[:, 1:][mask])
    torch.testing.assert_close(loss, expected)
    generated = model.generate(batch.source, batch.source_lengths, max_length=11)
    assert generated.shape == (8, 11) and generated.dtype == torch.long
    for row in generated.tolist():  # after <end>, only padding
        if 2 in row:
            assert all(token == 0 for token in row[row.index(2) + 1 :])


def test_seq2seq_context_ignores_padding(dates):
    torch.manual_seed(0)
    model = rnn.Seq2Seq(len(dates.source_vocab), len(dates.target_vocab), hidden_size=16)
    batch = data.encode_dates(dates.train[:6], dates.source_vocab, dates.target_vocab)
    _, context = model.encode(batch.source, batch.source_lengths)
    for b in range(6):
        alone = batch.source[b : b + 1, : batch.source_lengths[b]]
        _, single = model.encode(alone, batch.source_lengths[b : b + 1])
        torch.testing.assert_close(context[:, b : b + 1], single)


def test_translate_and_exact_match(dates):
    model = rnn.Seq2Seq(len(dates.source_vocab), len(dates.target_vocab), hidden_size=8)
    out = rnn.translate(model, [p.source for p in dates.test[:5]], dates.source_vocab,
                        dates.target_vocab, batch_size=2)  # fmt: skip
    assert len(out) == 5 and all(isinstance(text, str) for text in out)
    correct = rnn.exact_match(model, dates.test[:5], dates.source_vocab, dates.target_vocab)
    assert correct.dtype == torch.bool and correct.shape == (5,)
    assert rnn.exact_match(model, [], dates.source_vocab, dates.target_vocab).shape == (0,)
    with pytest.raises(TypeError, match="sources must be a list of strings, got str"):
        rnn.translate(model, "2020-01-01", dates.source_vocab, dates.target_vocab)


def test_seq2seq_errors(dates):
    model = rnn.Seq2Seq(len(dates.source_vocab), len(dates.target_vocab), hidden_size=8)
    source, lengths = torch.zeros(2, 5, dtype=torch.long), torch.tensor([5, 3])
    with pytest.raises(TypeError, match=r"source must be an integer tensor"):
        model.encode(source.float(), lengths)
    with pytest.raises(ValueError, match=r"source_lengths must lie in \[1, 5\]"):
        model.encode(source, torch.tensor([6, 3]))
    with pytest.raises(ValueError, match=r"target must have shape \[B, T\] with T >= 2"):
        model(source, lengths, torch.zeros(2, 1, dtype=torch.long))
