"""Bad input to course_lib.decoding: clear errors naming the argument."""

from __future__ import annotations

import torch
from torch import nn

from course_lib import data, decoding, rnn
from tests.badinput import Bad, assert_clear, float_arg, int_arg, parametrize_bad, values


def _step(tokens, state):
    return torch.zeros(len(tokens), 5), state


_options = {"start_id": 1, "end_id": 2, "pad_id": 0}
CASES: list[Bad] = []
CASES += int_arg(
    "greedy_decode",
    "max_length",
    lambda v: decoding.greedy_decode(_step, None, 2, v, **_options),
    minimum=0,
)
CASES += int_arg(
    "greedy_decode",
    "batch_size",
    lambda v: decoding.greedy_decode(_step, None, v, 3, **_options),
    minimum=0,
)
CASES += values(
    "greedy_decode",
    "start_id",
    lambda v: decoding.greedy_decode(_step, None, 2, 3, start_id=v, end_id=2, pad_id=0),
    ("= -1", -1),
    ("= 'a'", "a"),
)
CASES += int_arg(
    "beam_search",
    "beam_size",
    lambda v: decoding.beam_search(_step, None, 2, 3, beam_size=v, **_options),
)
CASES += float_arg(
    "beam_search",
    "length_penalty",
    lambda v: decoding.beam_search(_step, None, 2, 3, beam_size=2, length_penalty=v, **_options),
    outside=(-1.0,),
)
CASES += int_arg(
    "sample", "length", lambda v: decoding.sample(_step, torch.zeros(2, 5), None, v), minimum=0
)
_dates = data.load_dates(20, 2, 4)
_model = rnn.Seq2Seq(len(_dates.source_vocab), len(_dates.target_vocab), 4, 8)
_sv, _tv = _dates.source_vocab, _dates.target_vocab
CASES += int_arg(
    "Seq2Seq.generate",
    "beam_size",
    lambda v: _model.generate(torch.full((1, 3), 5), torch.tensor([3]), 4, beam_size=v),
)
CASES += values(
    "translate",
    "model",
    lambda v: decoding.translate(v, ["1/2/2003"], _sv, _tv),
    ("without parameters", nn.Identity()),
    ("a function", len),
)
CASES += values(
    "translate",
    "target_vocab",
    lambda v: decoding.translate(_model, ["1"], _sv, v),
    ("a list", ["0", "1"]),
)
CASES += int_arg(
    "translate",
    "beam_size",
    lambda v: decoding.translate(_model, ["1/2/2003"], _sv, _tv, beam_size=v),
)
CASES += values(
    "exact_match",
    "pairs",
    lambda v: decoding.exact_match(_model, v, _sv, _tv),
    ("a string", "1/2/2003"),
    ("holding a tuple", [("a", "b")]),
)
CASES += values(
    "accuracy_by_length",
    "edges",
    lambda v: decoding.accuracy_by_length(torch.tensor([True]), torch.tensor([3]), v),
    ("a number", 3),
    ("holding 2.5", [0, 2.5, 5]),
)
CASES += values(
    "reorder_state",
    "index",
    lambda v: decoding.reorder_state(torch.zeros(3, 2), v),
    ("holding 7 (out of range)", torch.tensor([7])),
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
