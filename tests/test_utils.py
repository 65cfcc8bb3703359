"""course_lib.utils: device choice, seeding, fast/full sizes, showing source."""

import random
import sys

import numpy as np
import pytest
import torch

import course_lib
from course_lib import utils


def test_get_device_honours_environment(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert utils.get_device() == torch.device("cpu")


def test_get_device_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "banana")
    with pytest.raises(ValueError, match="COURSE_DEVICE"):
        utils.get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_rejects_missing_cuda(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        utils.get_device()


def test_get_device_default_prefers_cuda(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else None
    device = utils.get_device()
    if expected:
        assert device.type == expected
    else:
        assert device.type in {"cpu", "mps"}


def test_set_seed_makes_every_generator_repeat():
    def draw():
        return random.random(), np.random.rand(), torch.rand(3)  # noqa: NPY002

    utils.set_seed(123)
    first = draw()
    utils.set_seed(123)
    second = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    utils.set_seed(124)
    assert not torch.equal(draw()[2], first[2])


@pytest.mark.parametrize("bad", [1.5, "3", None, True])
def test_set_seed_type_errors(bad):
    with pytest.raises(TypeError, match="seed"):
        utils.set_seed(bad)


def test_set_seed_negative():
    with pytest.raises(ValueError, match="seed"):
        utils.set_seed(-1)


@pytest.mark.parametrize(
    ("value", "fast"), [("1", True), ("true", True), ("0", False), ("", False)]
)
def test_fast_mode_and_pick(monkeypatch, value, fast):
    monkeypatch.setenv("COURSE_FAST", value)
    assert utils.fast_mode() is fast
    assert utils.pick(full=1000, fast=10) == (10 if fast else 1000)


def test_show_source_prints_outside_notebooks(capsys):
    text = course_lib.show_source(utils.pick)
    printed = capsys.readouterr().out
    assert "def pick(" in text and "course_lib/utils.py" in printed
    assert "return fast if fast_mode() else full" in printed


def test_show_source_of_a_method_is_dedented():
    from course_lib.train import History

    text = course_lib.show_source(History.summary)
    assert text.startswith("def summary(")


@pytest.mark.parametrize("bad", ["text", 3, None])
def test_show_source_rejects_non_code(bad):
    with pytest.raises(TypeError, match="obj"):
        course_lib.show_source(bad)


def test_show_source_rejects_builtins():
    with pytest.raises(TypeError, match="cannot find the source"):
        course_lib.show_source(len)


def test_describe_environment_names_versions_and_device(capsys, monkeypatch):
    assert course_lib.describe_environment() is None
    line = capsys.readouterr().out
    assert torch.__version__ in line and course_lib.__version__ in line
    assert "device:" in line and "Colab" not in line
    monkeypatch.setitem(sys.modules, "google.colab", object())
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    course_lib.describe_environment()
    assert "GPU" in capsys.readouterr().out, "on a CPU Colab runtime it says how to get a GPU"


def test_lazy_submodules_and_unknown_attribute():
    assert course_lib.data.__name__ == "course_lib.data"
    with pytest.raises(AttributeError):
        course_lib.not_a_module  # noqa: B018


def _decorated_example(x):
    """A function defined here, wrapped by decorators as the library's methods are."""
    return x + 1


def test_show_source_of_a_decorated_function_shows_and_links_its_own_source(capsys):
    import functools

    import torch

    from course_lib import rnn, transformer

    wrapped = torch.no_grad()(_decorated_example)
    assert wrapped is not _decorated_example and wrapped.__wrapped__ is _decorated_example
    source = utils.show_source(wrapped)
    assert "def _decorated_example(x):" in source and "no_grad" not in source
    assert "tests/test_utils.py" in capsys.readouterr().out
    assert "def _decorated_example" in utils.show_source(functools.lru_cache(_decorated_example))
    # The library's own decorated methods: their file, not torch's.
    utils.show_source(transformer.GPT.generate)
    assert "course_lib/transformer/gpt.py" in capsys.readouterr().out
    source = utils.show_source(rnn.Seq2Seq.generate)
    assert "def generate(" in source and "beam_search" in source
    assert "course_lib/decoding.py" in capsys.readouterr().out
