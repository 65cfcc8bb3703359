"""Bad input to course_lib.utils: clear errors naming the argument."""

from __future__ import annotations

import os

from course_lib import utils
from tests.badinput import Bad, assert_clear, parametrize_bad, values


def _device_from(value):
    previous = os.environ.get("COURSE_DEVICE")
    os.environ["COURSE_DEVICE"] = value
    try:
        return utils.get_device()
    finally:
        if previous is None:
            del os.environ["COURSE_DEVICE"]
        else:
            os.environ["COURSE_DEVICE"] = previous


CASES: list[Bad] = []
CASES += values(
    "set_seed",
    "seed",
    utils.set_seed,
    ("= 2.5", 2.5),
    ("= 'a'", "a"),
    ("= -1", -1),
    ("= True", True),
    ("= 2**70", 2**70),
)
CASES += values(
    "get_device", "COURSE_DEVICE", _device_from, ("= 'gpu9'", "gpu9"), ("= 'cuda:x'", "cuda:x")
)
CASES += values(
    "show_source",
    "obj",
    utils.show_source,
    ("a string", "len"),
    ("a number", 3),
    ("None", None),
    ("a builtin", len),
    ("an instance", object()),
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
