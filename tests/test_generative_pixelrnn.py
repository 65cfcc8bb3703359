"""The Row LSTM (PixelRNN): causality, an exactly normalised likelihood, sampling, bad input."""

from __future__ import annotations

import itertools

import pytest
import torch

from course_lib import generative as G


def _all_binary_images(height: int, width: int) -> torch.Tensor:
    """Every binary image of the given size: [2^(H W), 1, H, W]."""
    pixels = list(itertools.product([0.0, 1.0], repeat=height * width))
    return torch.tensor(pixels).reshape(-1, 1, height, width)


def test_row_lstm_never_sees_the_pixel_itself_or_the_future():
    torch.manual_seed(0)
    model = G.RowLSTM(hidden_channels=6).double().eval()
    seen = G.dependency_matrix(lambda x: model.logits(x.double()))
    assert not seen.triu().any()
    # The receptive field: the left neighbour, and through the recurrence the rows above.
    assert seen[2 * 8 + 3, 2 * 8 + 2] and seen[2 * 8 + 3, 1 * 8 + 3] and seen[7 * 8 + 7, 0]


@pytest.mark.parametrize("size", [(2, 2), (3, 3), (2, 3)])
def test_row_lstm_likelihood_sums_to_one_over_all_images(size):
    torch.manual_seed(1)
    model = G.RowLSTM(hidden_channels=5).double().eval()
    with torch.no_grad():
        total = model.log_prob(_all_binary_images(*size).double()).exp().sum()
    assert torch.allclose(total, torch.tensor(1.0, dtype=torch.float64), atol=1e-12)


def test_row_lstm_forward_loss_is_the_mean_negative_log_likelihood(device):
    torch.manual_seed(2)
    model = G.RowLSTM(hidden_channels=4).to(device)
    x = (torch.rand(5, 1, 8, 8) < 0.3).float().to(device)
    logits, loss = model(x)
    assert logits.shape == x.shape and logits.device == x.device
    torch.testing.assert_close(loss, -model.log_prob(x).mean())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_row_lstm_samples_follow_its_own_likelihood():
    torch.manual_seed(3)
    model = G.RowLSTM(hidden_channels=4).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)  # a distribution far from uniform
    samples = model.sample(8000, image_size=(1, 2), seed=0)
    assert samples.shape == (8000, 1, 1, 2) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert model.training  # restored after sampling in eval mode
    images = _all_binary_images(1, 2).double()
    with torch.no_grad():
        expected = model.eval().log_prob(images).exp()
    counts = torch.stack(
        [(samples == image).all(dim=(1, 2, 3)).double().mean() for image in images]
    )
    torch.testing.assert_close(counts, expected, atol=0.025, rtol=0.0)
    torch.testing.assert_close(samples, model.sample(8000, image_size=(1, 2), seed=0))


def test_row_lstm_learns_a_fixed_pattern():
    torch.manual_seed(4)
    pattern = (torch.arange(16).reshape(1, 1, 4, 4) % 3 == 0).float().repeat(32, 1, 1, 1)
    model = G.RowLSTM(hidden_channels=8)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = -model.log_prob(pattern).mean().item()
    for _ in range(150):
        optimizer.zero_grad()
        model(pattern)[1].backward()
        optimizer.step()
    assert -model.log_prob(pattern).mean().item() < 0.2 * before


def test_row_lstm_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        G.RowLSTM(kernel_size=4)
    with pytest.raises(ValueError, match="hidden_channels"):
        G.RowLSTM(hidden_channels=0)
    with pytest.raises(ValueError, match="dropout"):
        G.RowLSTM(dropout=1.0)
    model = G.RowLSTM(hidden_channels=2)
    with pytest.raises(ValueError, match="x"):
        model.logits(torch.zeros(2, 3, 8, 8))
    with pytest.raises(TypeError, match="x"):
        model.logits(torch.zeros(2, 1, 8, 8, dtype=torch.float64))
