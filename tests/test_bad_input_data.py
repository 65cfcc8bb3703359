"""Bad input to course_lib.data (the sequence data sets and vocabularies; the shapes data set
belongs to the detection tests): clear errors naming the argument."""

from __future__ import annotations

import datetime as dt

import torch

from course_lib import data
from tests.badinput import Bad, assert_clear, float_arg, int_arg, parametrize_bad, values

CASES: list[Bad] = []
_vocab = data.Vocab("abc")
CASES += values(
    "Vocab",
    "tokens",
    data.Vocab,
    ("holding a two-letter token", ["ab"]),
    ("holding a repeated letter", "aba"),
    ("a number", 3),
    ("holding a number", [1]),
)
CASES += values(
    "Vocab",
    "specials",
    lambda v: data.Vocab("abc", v),
    ("an unknown special", ["<bos>"]),
    ("a string", "<pad>"),
    ("a repeated special", ["<pad>", "<pad>"]),
)
CASES += values(
    "Vocab.encode", "text", _vocab.encode, ("a list of letters", ["a"]), ("a number", 3)
)
CASES += values(
    "Vocab.encode",
    "text",
    data.Vocab("abc", specials=()).encode,
    ("with a letter outside the vocabulary", "abz"),
)
CASES += values(
    "Vocab.encode", "add_start", lambda v: _vocab.encode("ab", add_start=v), ("= 'yes'", "yes")
)
CASES += values(
    "Vocab.decode",
    "ids",
    _vocab.decode,
    ("holding 7 (= vocab size)", [7]),
    ("holding -1", [-1]),
    ("of shape [1, 2]", torch.tensor([[4, 5]])),
    ("holding 4.5", [4.5]),
    ("a string", "ab"),
    ("as floats", torch.tensor([4.0])),
)
CASES += float_arg(
    "load_digits", "test_fraction", lambda v: data.load_digits(v), outside=(0.0, 1.0, 1.5)
)
CASES += int_arg("load_digits", "seed", lambda v: data.load_digits(seed=v), minimum=0, absurd=False)
CASES += values(
    "load_python_corpus",
    "modules",
    lambda v: data.load_python_corpus(v, 1000),
    ("empty", []),
    ("naming a missing module", ["no_such_module_xyz"]),
    ("a single name", "json"),
    ("naming a C module", ["math"]),
    ("holding a number", [3]),
)
CASES += int_arg(
    "load_python_corpus",
    "max_chars",
    lambda v: data.load_python_corpus(["json.decoder"], v),
    minimum=100,
    absurd=False,
)
CASES += float_arg(
    "load_python_corpus",
    "val_fraction",
    lambda v: data.load_python_corpus(["json.decoder"], 1000, v),
    outside=(0.0, 1.0),
)
CASES += values(
    "format_date",
    "day",
    lambda v: data.format_date(v, "ymd_slash"),
    ("a string", "2020-01-01"),
    ("a datetime.datetime", dt.datetime(2020, 1, 1).timestamp()),
)
CASES += values(
    "format_date",
    "fmt",
    lambda v: data.format_date(dt.date(2020, 1, 1), v),
    ("unknown", "ymd"),
    ("a number", 3),
)
for arg in ("n_train", "n_val", "n_test"):
    CASES += int_arg(
        "load_dates",
        arg,
        lambda v, a=arg: data.load_dates(**{"n_train": 4, "n_val": 2, "n_test": 2, a: v}),
        minimum=0,
    )
CASES += int_arg(
    "load_dates", "seed", lambda v: data.load_dates(4, 2, 2, seed=v), minimum=0, absurd=False
)
CASES += values(
    "load_dates",
    "formats",
    lambda v: data.load_dates(4, 2, 2, formats=v),
    ("empty", []),
    ("unknown", ["ymd"]),
    ("a single name", "ymd_slash"),
)
_dates = data.load_dates(4, 2, 2)
CASES += values(
    "encode_dates",
    "pairs",
    lambda v: data.encode_dates(v, _dates.source_vocab, _dates.target_vocab),
    ("empty", []),
    ("strings", ["2020/01/01"]),
    ("a single pair", _dates.train[0]),
)
CASES += values(
    "encode_dates",
    "source_vocab",
    lambda v: data.encode_dates(_dates.train, v, _dates.target_vocab),
    ("a string", "abc"),
    ("without <pad>", data.Vocab("0123456789/", specials=())),
)
CASES += values(
    "encode_dates",
    "target_vocab",
    lambda v: data.encode_dates(_dates.train, _dates.source_vocab, v),
    ("without <start>", data.Vocab("0123456789-", specials=("<pad>",))),
)
_encoded = data.encode_dates(_dates.train, _dates.source_vocab, _dates.target_vocab)
CASES += values("EncodedDates.to", "device", _encoded.to, ("= 'gpu9'", "gpu9"), ("= 3.5", 3.5))
CASES += values(
    "EncodedDates",
    "source_lengths",
    lambda v: data.EncodedDates(_encoded.source, v, _encoded.target),
    ("of shape [B+1]", torch.ones(5, dtype=torch.long)),
    ("as floats", torch.ones(4)),
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
