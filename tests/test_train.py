"""course_lib.train.fit: one loop for every model."""

import math

import pytest
import torch
from torch import nn

from course_lib.train import History, fit, to_device


class Regressor(nn.Module):
    """y = 3x - 1 plus noise; forward(x, targets) returns (prediction, loss)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, x, targets):
        prediction = self.linear(x)
        return prediction, nn.functional.mse_loss(prediction, targets)


def make_batch(generator=None):
    x = torch.randn(32, 1, generator=generator)
    return x, 3 * x - 1 + 0.01 * torch.randn(32, 1, generator=generator)


def test_fit_learns_and_records_history():
    torch.manual_seed(0)
    model = Regressor()
    history = fit(model, make_batch, steps=300, lr=0.05, device="cpu", progress=False)
    assert history.steps == list(range(1, 301)) and len(history.losses) == 300
    assert history.losses[-1] < 0.01 < history.losses[0]
    assert abs(model.linear.weight.item() - 3) < 0.05 and abs(model.linear.bias.item() + 1) < 0.05
    assert not model.training, "fit leaves the model in eval mode"
    assert history.seconds > 0 and history.device == "cpu"
    assert "300 steps" in history.summary()


def test_fit_epochs_over_a_dataloader_and_eval_fn():
    torch.manual_seed(1)
    x = torch.randn(64, 1)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, 3 * x - 1), batch_size=16, shuffle=True
    )
    calls = []

    def evaluate(model):
        calls.append((model.training, torch.is_grad_enabled()))
        return {"weight": model.linear.weight.item()}

    history = fit(Regressor(), loader, epochs=3, eval_fn=evaluate, eval_every=4,
                  device="cpu", progress=False)  # fmt: skip
    assert len(history.losses) == 12
    assert [record["step"] for record in history.evals] == [4, 8, 12]
    assert calls == [(False, False)] * 3, "eval_fn runs in eval mode without gradients"
    assert history.metric("weight") == [r["weight"] for r in history.evals]
    with pytest.raises(KeyError, match="weight"):
        history.metric("accuracy")


def test_fit_clips_gradients_and_records_norms():
    model = Regressor()
    big = (torch.full((8, 1), 100.0), torch.full((8, 1), -100.0))
    before = model.linear.weight.detach().clone()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    history = fit(model, lambda: big, steps=1, optimizer=optimizer, clip_grad_norm=0.5,
                  device="cpu", progress=False)  # fmt: skip
    assert len(history.grad_norms) == 1 and history.grad_norms[0] > 0.5  # norm before clipping
    step = (model.linear.weight.detach() - before).norm()
    assert step <= 0.5 + 1e-5, "the applied update has the clipped norm"


def test_fit_custom_loss_fn_and_scheduler():
    model = nn.Linear(2, 1)
    scheduler_steps = []

    class Scheduler:
        def step(self):
            scheduler_steps.append(1)

    history = fit(
        model, lambda: torch.randn(4, 2), steps=5, device="cpu", progress=False,
        loss_fn=lambda m, batch: m(batch).pow(2).mean(), scheduler=Scheduler(),
    )  # fmt: skip
    assert len(history.losses) == 5 and len(scheduler_steps) == 5


def test_fit_stops_at_max_seconds():
    history = fit(Regressor(), make_batch, steps=10**7, device="cpu", progress=False,
                  max_seconds=0.2)  # fmt: skip
    assert 0 < len(history.losses) < 10**7


def test_fit_reports_non_finite_loss():
    class Exploding(Regressor):
        def forward(self, x, targets):
            prediction = self.linear(x)
            return prediction, (prediction * float("nan")).mean()

    with pytest.raises(FloatingPointError, match="step 1"):
        fit(Exploding(), make_batch, steps=3, device="cpu", progress=False)


def test_fit_progress_line_in_a_terminal(capsys):
    fit(Regressor(), make_batch, steps=20, device="cpu")
    out = capsys.readouterr().out
    assert "20/20" in out and "loss" in out


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "exactly one of steps or epochs"),
        ({"steps": 3, "epochs": 1}, ValueError, "exactly one"),
        ({"steps": 0}, ValueError, "steps"),
        ({"epochs": 1}, ValueError, "epochs needs data with a length"),
        ({"steps": 2, "clip_grad_norm": -1.0}, ValueError, "clip_grad_norm"),
        ({"steps": 2, "eval_every": 0}, ValueError, "eval_every"),
    ],
)
def test_fit_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        fit(Regressor(), make_batch, device="cpu", progress=False, **kwargs)


def test_fit_explains_models_without_the_shared_interface():
    with pytest.raises(TypeError, match="loss_fn"):
        fit(nn.Linear(1, 1), lambda: (torch.randn(2, 1),), steps=1, device="cpu", progress=False)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        fit("model", make_batch, steps=1)


def test_to_device_handles_nested_batches():
    batch = {"x": torch.ones(2), "pair": (torch.zeros(1), [torch.ones(1)]), "n": 3}
    moved = to_device(batch, "cpu")
    assert (
        moved["n"] == 3 and isinstance(moved["pair"], tuple) and isinstance(moved["pair"][1], list)
    )


def test_history_smoothing():
    history = History(losses=[4.0, 2.0, 0.0])
    assert history.smoothed_losses(2) == [4.0, 3.0, 1.0]
    with pytest.raises(ValueError, match="window"):
        history.smoothed_losses(0)
    assert math.isclose(History(losses=[1.0] * 5).smoothed_losses()[-1], 1.0)
