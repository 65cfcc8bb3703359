"""Bad input to course_lib.rnn: every public function and class answers with a clear error
(TypeError for a wrong type or dtype, ValueError for a wrong shape or value) naming the
argument. See ``tests/badinput.py`` for the mutation families."""

from __future__ import annotations

import torch
from torch import nn

from course_lib import data, rnn
from tests.badinput import (
    Bad,
    assert_clear,
    choice_arg,
    float_arg,
    float_tensor,
    int_arg,
    parametrize_bad,
    token_tensor,
    values,
)

torch.manual_seed(0)
B, T, D, H = 3, 5, 4, 6
X = torch.randn(B, T, D)
H0 = torch.zeros(1, B, H)
CASES: list[Bad] = []

# ---------------------------------------------------------------------------- step functions
for name, step, gates in (("rnn_step", rnn.rnn_step, 1), ("gru_step", rnn.gru_step, 3)):
    x_proj, h = torch.randn(B, gates * H), torch.randn(B, H)
    weight, bias = torch.randn(gates * H, H), torch.randn(gates * H)
    extra = ("tanh",) if name == "rnn_step" else ()
    CASES += float_tensor(
        name,
        "x_proj",
        lambda v, s=step, h=h, w=weight, b=bias, e=extra: s(v, h, w, b, *e),
        x_proj,
        shapes=[(B, gates * H + 1), (gates * H,)],
    )
    CASES += float_tensor(
        name,
        "h",
        lambda v, s=step, x=x_proj, w=weight, b=bias, e=extra: s(x, v, w, b, *e),
        h,
        shapes=[(B + 1, H), (B, H + 1)],
        double=False,
    )
    CASES += float_tensor(
        name,
        "weight_hh",
        lambda v, s=step, x=x_proj, h=h, b=bias, e=extra: s(x, h, v, b, *e),
        weight,
        shapes=[(H, gates * H + 1)],
        double=False,
    )
    CASES += values(
        name,
        "bias_hh",
        lambda v, s=step, x=x_proj, h=h, w=weight, e=extra: s(x, h, w, v, *e),
        ("of shape [2]", torch.randn(2)),
        ("as a list", [0.0]),
    )
CASES += choice_arg(
    "rnn_step",
    "nonlinearity",
    lambda v: rnn.rnn_step(torch.randn(B, H), torch.randn(B, H), torch.randn(H, H), None, v),
)
_xl, _hl = torch.randn(B, 4 * H), torch.randn(B, H)
_wl = torch.randn(4 * H, H)
CASES += float_tensor(
    "lstm_step",
    "x_proj",
    lambda v: rnn.lstm_step(v, _hl, _hl, _wl, None),
    _xl,
    shapes=[(B, 4 * H + 4)],
    double=False,
)
CASES += float_tensor(
    "lstm_step",
    "c",
    lambda v: rnn.lstm_step(_xl, _hl, v, _wl, None),
    _hl,
    shapes=[(B, H + 1)],
    double=False,
)

# ---------------------------------------------------------------------------- cells
for cls in (rnn.RNNCell, rnn.LSTMCell, rnn.GRUCell):
    name = cls.__name__
    CASES += int_arg(name, "input_size", lambda v, c=cls: c(v, H))
    CASES += int_arg(name, "hidden_size", lambda v, c=cls: c(D, v))
    cell = cls(D, H)
    CASES += float_tensor(
        f"{name}.forward", "input", lambda v, c=cell: c(v), X[:, 0], shapes=[(B, D + 1), (B, 1, D)]
    )
    good_state = (
        (torch.zeros(B, H), torch.zeros(B, H)) if cls is rnn.LSTMCell else torch.zeros(B, H)
    )
    if cls is rnn.LSTMCell:
        CASES += values(
            f"{name}.forward",
            "hx",
            lambda v, c=cell: c(X[:, 0], v),
            ("a single tensor", torch.zeros(B, H)),
            ("with h of shape [B+1, H]", (torch.zeros(B + 1, H), torch.zeros(B, H))),
            ("in float64", (torch.zeros(B, H).double(), torch.zeros(B, H).double())),
            ("as a list of lists", [[0.0] * H] * B),
        )
    else:
        CASES += float_tensor(
            f"{name}.forward",
            "hx",
            lambda v, c=cell: c(X[:, 0], v),
            good_state,
            shapes=[(B + 1, H), (B, H + 1)],
        )
CASES += choice_arg("RNNCell", "nonlinearity", lambda v: rnn.RNNCell(D, H, nonlinearity=v))

# ---------------------------------------------------------------------------- layers
for cls in (rnn.RNN, rnn.LSTM, rnn.GRU):
    name = cls.__name__
    CASES += int_arg(name, "input_size", lambda v, c=cls: c(v, H))
    CASES += int_arg(name, "hidden_size", lambda v, c=cls: c(D, v))
    CASES += int_arg(name, "num_layers", lambda v, c=cls: c(D, H, num_layers=v))
    CASES += float_arg(name, "dropout", lambda v, c=cls: c(D, H, dropout=v), outside=(-0.1, 1.0))
    CASES += values(
        name, "batch_first", lambda v, c=cls: c(D, H, batch_first=v), ("= 'yes'", "yes")
    )
    CASES += values(
        name,
        "bidirectional",
        lambda v, c=cls: c(D, H, bidirectional=v),
        ("= True (not supported)", True),
    )
    layer = cls(D, H, batch_first=True)
    CASES += float_tensor(
        f"{name}.forward",
        "input",
        lambda v, m=layer: m(v),
        X,
        shapes=[(B, T, D + 1), (B, T, D, 1), (D,)],
    )
    CASES += values(
        f"{name}.forward",
        "lengths",
        lambda v, m=layer: m(X, lengths=v),
        ("as floats", torch.full((B,), 2.0)),
        ("of shape [B+1]", torch.ones(B + 1, dtype=torch.long)),
        ("holding T+1", torch.full((B,), T + 1)),
        ("holding -1", torch.full((B,), -1)),
        ("as a list", [2] * B),
    )
    if cls is rnn.LSTM:
        CASES += values(
            f"{name}.forward",
            "hx",
            lambda v, m=layer: m(X, v),
            ("a single tensor", H0),
            ("with h of shape [2, B, H]", (torch.zeros(2, B, H), H0)),
            ("in float64", (H0.double(), H0.double())),
        )
    else:
        CASES += float_tensor(
            f"{name}.forward",
            "hx",
            lambda v, m=layer: m(X, v),
            H0,
            shapes=[(2, B, H), (1, B + 1, H), (B, H + 1)],
        )
CASES += choice_arg("RNN", "nonlinearity", lambda v: rnn.RNN(D, H, nonlinearity=v))
CASES += values(
    "init_forget_bias_",
    "lstm",
    rnn.init_forget_bias_,
    ("a GRU", rnn.GRU(D, H)),
    ("a string", "lstm"),
    ("without biases", rnn.LSTM(D, H, bias=False)),
)
CASES += float_arg("init_forget_bias_", "value", lambda v: rnn.init_forget_bias_(rnn.LSTM(D, H), v))
CASES += choice_arg("make_recurrent", "cell", lambda v: rnn.make_recurrent(v, D, H))
CASES += int_arg("make_recurrent", "hidden_size", lambda v: rnn.make_recurrent("gru", D, v))

# ---------------------------------------------------------------------------- gradients in time
_cell = rnn.RNNCell(D, H)
CASES += values(
    "state_gradient_norms",
    "cell",
    lambda v: rnn.state_gradient_norms(v, X),
    ("a layer", rnn.RNN(D, H)),
    ("a string", "rnn"),
)
CASES += float_tensor(
    "state_gradient_norms",
    "inputs",
    lambda v: rnn.state_gradient_norms(_cell, v),
    X,
    shapes=[(B, T), (B, T, D + 1)],
)
CASES += values(
    "state_gradient_norms",
    "direction",
    lambda v: rnn.state_gradient_norms(_cell, X, direction=v),
    ("of shape [H+1]", torch.ones(H + 1)),
    ("all zeros", torch.zeros(H)),
    ("holding nan", torch.full((H,), float("nan"))),
    ("as a list", [1.0] * H),
)
_classifier = rnn.SequenceClassifier(D, 3)
CASES += values(
    "input_gradient_norms",
    "model",
    lambda v: rnn.input_gradient_norms(v, X, torch.zeros(B, dtype=torch.long)),
    ("a function", lambda x: x),
    ("a model returning a tensor", nn.Linear(D, 3)),
)
CASES += float_tensor(
    "input_gradient_norms",
    "inputs",
    lambda v: rnn.input_gradient_norms(_classifier, v, torch.zeros(B, dtype=torch.long)),
    X,
    shapes=[(B, T)],
)

# ---------------------------------------------------------------------------- truncated BPTT
_ids = torch.arange(100) % 7
CASES += values(
    "batchify",
    "ids",
    lambda v: rnn.batchify(v, 4),
    ("as a list", list(range(10))),
    ("of shape [2, 5]", torch.zeros(2, 5, dtype=torch.long)),
    ("as floats", torch.zeros(10)),
)
CASES += int_arg("batchify", "batch_size", lambda v: rnn.batchify(_ids, v))
CASES += values(
    "TBPTTChunks",
    "streams",
    lambda v: rnn.TBPTTChunks(v, 4),
    ("of shape [N]", _ids),
    ("as a list", [[1, 2, 3]]),
    ("as floats", torch.zeros(2, 5)),
)
CASES += int_arg("TBPTTChunks", "seq_len", lambda v: rnn.TBPTTChunks(rnn.batchify(_ids, 4), v))
CASES += values(
    "detach_state",
    "state",
    rnn.detach_state,
    ("a string", "h"),
    ("a number", 3.0),
    ("a tuple holding a string", (torch.zeros(1), "c")),
)
CASES += int_arg("TruncatedBPTT", "chunks_per_pass", rnn.TruncatedBPTT, absurd=False)
_lm = rnn.CharLanguageModel(7, 8, 16)
CASES += values(
    "TruncatedBPTT.__call__",
    "batch",
    lambda v: rnn.TruncatedBPTT()(_lm, v),
    ("a single tensor", torch.zeros(2, 3, dtype=torch.long)),
    (
        "with targets of another shape",
        (torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long)),
    ),
)
CASES += values(
    "TruncatedBPTT.__call__",
    "model",
    lambda v: rnn.TruncatedBPTT()(v, (torch.zeros(2, 3, dtype=torch.long),) * 2),
    ("without logits_and_state", nn.Linear(3, 3)),
)

# ---------------------------------------------------------------------------- sampling
_logits = torch.randn(B, 7)
CASES += float_tensor(
    "sampling_probs",
    "logits",
    lambda v: rnn.sampling_probs(v),
    _logits,
    shapes=[(B, 0), ()],
    double=False,
    nonfinite=True,
)
CASES += float_arg(
    "sampling_probs", "temperature", lambda v: rnn.sampling_probs(_logits, v), outside=(-1.0,)
)
CASES += int_arg(
    "sampling_probs", "top_k", lambda v: rnn.sampling_probs(_logits, top_k=v), absurd=False
)
CASES += float_tensor(
    "sample_next_token",
    "logits",
    lambda v: rnn.sample_next_token(v),
    _logits,
    shapes=[(B, 0)],
    double=False,
    nonfinite=True,
)
CASES += float_arg(
    "sample_next_token", "temperature", lambda v: rnn.sample_next_token(_logits, v), outside=(-1.0,)
)
CASES += values(
    "sample_next_token",
    "generator",
    lambda v: rnn.sample_next_token(_logits, generator=v),
    ("a seed", 3),
)

# ---------------------------------------------------------------------------- language model
CASES += int_arg("CharLanguageModel", "vocab_size", lambda v: rnn.CharLanguageModel(v))
CASES += int_arg("CharLanguageModel", "embed_dim", lambda v: rnn.CharLanguageModel(7, v))
CASES += int_arg("CharLanguageModel", "hidden_size", lambda v: rnn.CharLanguageModel(7, 8, v))
CASES += choice_arg("CharLanguageModel", "cell", lambda v: rnn.CharLanguageModel(7, cell=v))
CASES += float_arg(
    "CharLanguageModel",
    "dropout",
    lambda v: rnn.CharLanguageModel(7, dropout=v),
    outside=(1.0, -0.5),
)
_tokens = torch.randint(0, 7, (2, 5))
CASES += token_tensor(
    "CharLanguageModel.forward", "x", lambda v: _lm(v), _tokens, 7, shapes=[(10,), (2, 5, 1)]
)
CASES += token_tensor(
    "CharLanguageModel.forward", "targets", lambda v: _lm(_tokens, v), _tokens, 7, shapes=[(2, 6)]
)
CASES += values(
    "CharLanguageModel.forward",
    "state",
    lambda v: _lm(_tokens, state=v),
    ("of the wrong batch size", (torch.zeros(1, 3, 16), torch.zeros(1, 3, 16))),
    ("a single tensor for an LSTM", torch.zeros(1, 2, 16)),
)
CASES += token_tensor(
    "CharLanguageModel.generate",
    "prompt_ids",
    lambda v: _lm.generate(v, 3),
    torch.tensor([1, 2]),
    7,
    shapes=[(0,), (1, 2, 3)],
)
CASES += int_arg(
    "CharLanguageModel.generate", "length", lambda v: _lm.generate(torch.tensor([1]), v), minimum=0
)
CASES += float_arg(
    "CharLanguageModel.generate",
    "temperature",
    lambda v: _lm.generate(torch.tensor([1]), 2, v),
    outside=(-1.0,),
)
CASES += int_arg(
    "CharLanguageModel.generate",
    "top_k",
    lambda v: _lm.generate(torch.tensor([1]), 2, top_k=v),
    absurd=False,
)
CASES += values(
    "evaluate_bits_per_char",
    "model",
    lambda v: rnn.evaluate_bits_per_char(v, _ids),
    ("a function", len),
    ("without parameters", nn.Identity()),
)
CASES += values(
    "evaluate_bits_per_char",
    "ids",
    lambda v: rnn.evaluate_bits_per_char(_lm, v, 2, 4),
    ("too short", torch.tensor([1, 2])),
    ("as floats", torch.zeros(50)),
    ("holding id 7 (= vocab size)", torch.full((50,), 7)),
    ("as a list", [1] * 50),
)
CASES += int_arg(
    "evaluate_bits_per_char", "batch_size", lambda v: rnn.evaluate_bits_per_char(_lm, _ids, v)
)
CASES += int_arg(
    "evaluate_bits_per_char", "seq_len", lambda v: rnn.evaluate_bits_per_char(_lm, _ids, 2, v)
)

# ---------------------------------------------------------------------------- task models and data
for cls in (rnn.SequenceClassifier, rnn.SequenceTagger):
    name = cls.__name__
    CASES += int_arg(name, "input_size", lambda v, c=cls: c(v, 3))
    second = "num_classes" if cls is rnn.SequenceClassifier else "num_tags"
    CASES += int_arg(name, second, lambda v, c=cls: c(D, v))
    CASES += choice_arg(name, "cell", lambda v, c=cls: c(D, 3, cell=v))
    model = cls(D, 3)
    CASES += float_tensor(
        f"{name}.forward", "x", lambda v, m=model: m(v), X, shapes=[(B, T, D + 1), (B, T)]
    )
target_shape = (B,)
CASES += token_tensor(
    "SequenceClassifier.forward",
    "targets",
    lambda v: _classifier(X, v),
    torch.zeros(B, dtype=torch.long),
    3,
    shapes=[(B + 1,), (B, T)],
)
_tagger = rnn.SequenceTagger(D, 3)
CASES += token_tensor(
    "SequenceTagger.forward",
    "targets",
    lambda v: _tagger(X, v),
    torch.zeros(B, T, dtype=torch.long),
    3,
    shapes=[(B,), (B, T + 1)],
)
CASES += values(
    "SequenceClassifier.forward",
    "lengths",
    lambda v: _classifier(X, lengths=v),
    ("holding 0", torch.zeros(B, dtype=torch.long)),
    ("of shape [B+1]", torch.ones(B + 1, dtype=torch.long)),
)
for fn in (rnn.first_symbol_task, rnn.bracket_depth_task):
    name = fn.__name__
    CASES += int_arg(name, "num_sequences", lambda v, f=fn: f(v, 5))
    CASES += int_arg(name, "length", lambda v, f=fn: f(3, v))
    CASES += values(
        name, "seed", lambda v, f=fn: f(3, 5, seed=v), ("= 'a'", "a"), ("= -1", -1), ("= 2.5", 2.5)
    )
CASES += int_arg("first_symbol_task", "num_symbols", lambda v: rnn.first_symbol_task(3, 5, v))
CASES += int_arg("bracket_depth_task", "max_depth", lambda v: rnn.bracket_depth_task(3, 5, v))
_correct, _lengths = torch.tensor([True, False, True]), torch.tensor([3, 5, 9])
CASES += values(
    "accuracy_by_length",
    "correct",
    lambda v: rnn.accuracy_by_length(v, _lengths, [0, 5, 10]),
    ("as a list", [True, False, True]),
    ("of shape [4]", torch.ones(4, dtype=torch.bool)),
    ("as floats 0.5", torch.full((3,), 0.5)),
)
CASES += values(
    "accuracy_by_length",
    "lengths",
    lambda v: rnn.accuracy_by_length(_correct, v, [0, 5, 10]),
    ("as a list", [3, 5, 9]),
    ("of shape [2]", torch.tensor([1, 2])),
    ("holding nan", torch.tensor([1.0, float("nan"), 2.0])),
)
CASES += values(
    "accuracy_by_length",
    "edges",
    lambda v: rnn.accuracy_by_length(_correct, _lengths, v),
    ("decreasing", [10, 5, 0]),
    ("one edge", [3]),
    ("a string", "0510"),
    ("holding nan", [0, float("nan"), 10]),
)

# ---------------------------------------------------------------------------- seq2seq
_dates = data.load_dates(40, 4, 8, seed=0)
_sv, _tv = _dates.source_vocab, _dates.target_vocab
_batch = data.encode_dates(_dates.train[:4], _sv, _tv)
_seq2seq = rnn.Seq2Seq(len(_sv), len(_tv), 8, 16)
CASES += int_arg("Seq2Seq", "source_vocab_size", lambda v: rnn.Seq2Seq(v, 5))
CASES += int_arg("Seq2Seq", "target_vocab_size", lambda v: rnn.Seq2Seq(5, v))
CASES += int_arg("Seq2Seq", "hidden_size", lambda v: rnn.Seq2Seq(5, 5, hidden_size=v))
CASES += values(
    "Seq2Seq",
    "pad_id",
    lambda v: rnn.Seq2Seq(5, 5, pad_id=v),
    ("= 5 (= vocab size)", 5),
    ("= -1", -1),
    ("= 'x'", "x"),
)
CASES += values("Seq2Seq", "end_id", lambda v: rnn.Seq2Seq(5, 5, end_id=v), ("= 9", 9))
CASES += token_tensor(
    "Seq2Seq.forward",
    "source",
    lambda v: _seq2seq(v, torch.full((4,), 3), _batch.target),
    _batch.source[:, :3],
    len(_sv),
    shapes=[(4,), (4, 3, 1)],
)
CASES += values(
    "Seq2Seq.forward",
    "source_lengths",
    lambda v: _seq2seq(_batch.source, v, _batch.target),
    ("holding 0", torch.zeros(4, dtype=torch.long)),
    ("longer than S", torch.full((4,), 99)),
    ("as floats", _batch.source_lengths.float()),
    ("of shape [3]", _batch.source_lengths[:3]),
    ("as a list", [3] * 4),
)
CASES += token_tensor(
    "Seq2Seq.forward",
    "target",
    lambda v: _seq2seq(_batch.source, _batch.source_lengths, v),
    _batch.target,
    len(_tv),
    shapes=[(4, 1), (3, 12)],
)
CASES += int_arg(
    "Seq2Seq.generate",
    "max_length",
    lambda v: _seq2seq.generate(_batch.source, _batch.source_lengths, v),
    minimum=0,
)
CASES += values(
    "translate",
    "sources",
    lambda v: rnn.translate(_seq2seq, v, _sv, _tv),
    ("a single string", "2001/01/01"),
    ("holding an empty string", ["", "x"]),
    ("holding a number", [3]),
)
CASES += values(
    "translate",
    "model",
    lambda v: rnn.translate(v, ["1/2/2003"], _sv, _tv),
    ("without generate", nn.Linear(2, 2)),
    ("a string", "model"),
)
CASES += values(
    "translate",
    "source_vocab",
    lambda v: rnn.translate(_seq2seq, ["1"], v, _tv),
    ("a string", "abc"),
)
CASES += int_arg(
    "translate",
    "max_length",
    lambda v: rnn.translate(_seq2seq, ["1/2/2003"], _sv, _tv, max_length=v),
    minimum=0,
)
CASES += int_arg(
    "translate",
    "batch_size",
    lambda v: rnn.translate(_seq2seq, ["1/2/2003"], _sv, _tv, batch_size=v),
    absurd=False,
)
CASES += values(
    "exact_match",
    "pairs",
    lambda v: rnn.exact_match(_seq2seq, v, _sv, _tv),
    ("strings, not DatePairs", ["2001/01/01"]),
    ("a single DatePair", _dates.test[0]),
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
