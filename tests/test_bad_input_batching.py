"""Bad input to course_lib.batching: clear errors naming the argument."""

from __future__ import annotations

import torch

from course_lib import batching, data
from tests.badinput import Bad, assert_clear, int_arg, parametrize_bad, values

_x, _y = torch.randn(10, 3), torch.arange(10)
CASES: list[Bad] = []
CASES += values(
    "random_batches",
    "data[0]",
    lambda v: batching.random_batches(v, batch_size=2),
    ("a number", 3),
    ("a string", "abc"),
    ("a 0-d tensor", torch.tensor(1.0)),
)
CASES += values(
    "random_batches",
    "data",
    lambda v: batching.random_batches(_x, v, batch_size=2),
    ("of another length", torch.arange(9)),
    ("an empty list", []),
)
CASES += values(
    "random_batches", "data", lambda v: batching.random_batches(batch_size=2), ("missing", None)
)
CASES += int_arg(
    "random_batches", "batch_size", lambda v: batching.random_batches(_x, batch_size=v)
)
CASES += values(
    "random_batches",
    "seed",
    lambda v: batching.random_batches(_x, batch_size=2, seed=v),
    ("= -1", -1),
    ("= 'a'", "a"),
    ("= 2.5", 2.5),
)
CASES += values(
    "random_batches",
    "replacement",
    lambda v: batching.random_batches(_x, batch_size=2, replacement=v),
    ("= 'yes'", "yes"),
)
CASES += values(
    "random_batches",
    "transform",
    lambda v: batching.random_batches(_x, batch_size=2, transform=v),
    ("a string", "flip"),
)
CASES += values(
    "pad_sequences",
    "sequences",
    lambda v: batching.pad_sequences(v, 0),
    ("a string", "abc"),
    ("a tensor", torch.zeros(2, 3)),
    ("holding a string", [[1], "ab"]),
)
CASES += values(
    "pad_sequences",
    "pad_id",
    lambda v: batching.pad_sequences([[1]], v),
    ("= 0.5", 0.5),
    ("= 'x'", "x"),
)
CASES += values(
    "batchify",
    "ids",
    lambda v: batching.batchify(v, 2),
    ("as floats", torch.zeros(8)),
    ("of shape [2, 4]", torch.zeros(2, 4, dtype=torch.long)),
    ("a list", [1, 2, 3]),
)
CASES += int_arg("batchify", "batch_size", lambda v: batching.batchify(torch.arange(8), v))
CASES += int_arg(
    "TBPTTChunks", "seq_len", lambda v: batching.TBPTTChunks(torch.zeros(2, 5, dtype=torch.long), v)
)
CASES += values(
    "random_windows",
    "ids",
    lambda v: batching.random_windows(v, 3, 2),
    ("too short", torch.arange(3)),
    ("as floats", torch.zeros(10)),
)
CASES += int_arg(
    "random_windows", "block_size", lambda v: batching.random_windows(torch.arange(20), v, 2)
)
_dates = data.load_dates(20, 2, 2)
_encoded = data.encode_dates(_dates.train, _dates.source_vocab, _dates.target_vocab)
CASES += values(
    "length_bucketed_batches",
    "encoded",
    lambda v: batching.length_bucketed_batches(v, 2),
    ("a list of pairs", _dates.train),
    ("a tensor", _encoded.source),
)
CASES += int_arg(
    "length_bucketed_batches", "batch_size", lambda v: batching.length_bucketed_batches(_encoded, v)
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
