"""Bad input to course_lib.train: clear errors naming the argument."""

from __future__ import annotations

import torch
from torch import nn

from course_lib.train import History, fit, to_device
from tests.badinput import Bad, assert_clear, float_arg, int_arg, parametrize_bad, values


class _Regressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x, targets):
        prediction = self.linear(x)
        return prediction, nn.functional.mse_loss(prediction, targets)


def _batch():
    x = torch.randn(4, 1)
    return x, 2 * x


def _fit(**kwargs):
    options = {"steps": 2, "device": "cpu", "progress": False, "live_plot": False}
    return fit(
        kwargs.pop("model", _Regressor()), kwargs.pop("data", _batch), **{**options, **kwargs}
    )


CASES: list[Bad] = []
CASES += values(
    "fit", "model", lambda v: _fit(model=v), ("a function", lambda x: x), ("a string", "m")
)
CASES += values(
    "fit",
    "data",
    lambda v: _fit(data=v),
    ("a tensor", torch.zeros(3)),
    ("a number", 3),
    ("an empty list", []),
    ("a function returning None", lambda: None),
)
CASES += int_arg("fit", "steps", lambda v: _fit(steps=v), absurd=False)
CASES += values(
    "fit",
    "epochs",
    lambda v: _fit(steps=None, epochs=v, data=[_batch()]),
    ("= 0", 0),
    ("= 2.5", 2.5),
    ("= True", True),
)
CASES += values("fit", "epochs", lambda v: _fit(epochs=v), ("together with steps", 1))
CASES += float_arg("fit", "lr", lambda v: _fit(lr=v), outside=(-1.0,))
CASES += values("fit", "optimizer", lambda v: _fit(optimizer=v), ("a string", "adam"))
CASES += values(
    "fit",
    "loss_fn",
    lambda v: _fit(loss_fn=v),
    ("a string", "mse"),
    ("returning a number", lambda model, batch: 1.0),
    ("returning a vector", lambda model, batch: torch.ones(2, requires_grad=True)),
)
CASES += values(
    "fit",
    "clip_grad_norm",
    lambda v: _fit(clip_grad_norm=v),
    ("= 'x'", "x"),
    ("= nan", float("nan")),
    ("= 0", 0.0),
    ("= -1", -1.0),
)
CASES += values("fit", "scheduler", lambda v: _fit(scheduler=v), ("a string", "cosine"))
CASES += values(
    "fit",
    "eval_fn",
    lambda v: _fit(eval_fn=v),
    ("a string", "acc"),
    ("returning a number", lambda model: 0.5),
)
CASES += int_arg(
    "fit", "eval_every", lambda v: _fit(eval_every=v, eval_fn=lambda m: {"a": 1.0}), absurd=False
)
CASES += values("fit", "device", lambda v: _fit(device=v), ("= 'gpu9'", "gpu9"), ("= 3.5", 3.5))
CASES += values(
    "fit",
    "max_seconds",
    lambda v: _fit(max_seconds=v),
    ("= 'x'", "x"),
    ("= nan", float("nan")),
    ("= -1", -1.0),
)
CASES += values("fit", "progress", lambda v: _fit(progress=v), ("= 'yes'", "yes"))
CASES += values(
    "to_device",
    "device",
    lambda v: to_device(torch.zeros(2), v),
    ("= 'gpu9'", "gpu9"),
    ("= 3.5", 3.5),
)
_history = History(steps=[1, 2], losses=[1.0, 0.5], evals=[{"step": 2, "acc": 0.5}])
CASES += int_arg("History.smoothed_losses", "window", _history.smoothed_losses, absurd=False)
CASES += values(
    "History.metric",
    "metric",
    _history.metric,
    ("unknown", "loss", KeyError),
    ("a number", 3, KeyError),
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
