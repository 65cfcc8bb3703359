"""Rows for the shared infrastructure: data generators and the training loop."""

from __future__ import annotations

import torch
from torch import nn

from benchmarks.harness import SpeedCase, speed_row
from course_lib import data
from course_lib.train import fit


@speed_row("ShapesDataset (render one image)")
def shapes_rows(device: torch.device, quick: bool):
    for size in [32] if quick else [32, 64, 128]:
        dataset = data.ShapesDataset(64, image_size=size, max_objects=3, seed=0)
        yield SpeedCase(f"{size}x{size}, 1-3 objects", ours=lambda d=dataset: d[7])


@speed_row("load_dates", peer="", target="")
def dates_rows(device: torch.device, quick: bool):
    count = 1000 if quick else 20000
    yield SpeedCase(f"{count} pairs", ours=lambda: data.load_dates(count, 0, 0, seed=1))


class _TinyRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        prediction = self.net(x)
        return prediction, nn.functional.mse_loss(prediction, y)


def _plain_loop(model: nn.Module, batch, steps: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        _, loss = model(*batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


@speed_row("train.fit overhead (tiny MLP)", peer="hand-written PyTorch loop", target="<= 1.2x")
def fit_rows(device: torch.device, quick: bool):
    steps = 20 if quick else 200
    batch = (torch.randn(64, 32, device=device), torch.randn(64, 1, device=device))
    model = _TinyRegressor().to(device)
    yield SpeedCase(
        f"{steps} steps, batch 64",
        ours=lambda: fit(model, lambda: batch, steps=steps, device=device, progress=False,
                         live_plot=False),
        peer=lambda: _plain_loop(model, batch, steps),
        compare=False,
    )  # fmt: skip
