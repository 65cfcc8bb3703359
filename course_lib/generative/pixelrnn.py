"""A row-recurrent autoregressive model: the Row LSTM of PixelRNN, at toy size.

van den Oord et al. (2016), "Pixel Recurrent Neural Networks", section 3.1: an LSTM runs
down the image one row at a time. Its gates at row i come from two convolutions: an
input-to-state convolution of the image (masked, so that it only sees earlier pixels) and a
1-D state-to-state convolution of the hidden state of row i - 1. One step processes a whole
row in parallel; the rows are processed in sequence, in training as in sampling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from course_lib.generative._common import (
    MAX_WIDTH,
    check_elements,
    first_parameter,
)
from course_lib.generative.pixelcnn import MaskedConv2d, PixelModel, _check_kernel_size
from course_lib.validation import check_float, check_int, check_like, check_tensor


class RowLSTM(PixelModel):
    """A Row LSTM for binary single-channel images: ``p(x) = prod_i p(x_i | x_<i)``.

    Per row ``r`` (all W positions at once), with C = ``hidden_channels``::

        gates_r = input_to_state(x)[:, :, r] + state_to_state(h_{r-1})      # [B, 4C, W]
        i, f, o, g = sigmoid, sigmoid, sigmoid, tanh of the four chunks
        c_r = f * c_{r-1} + i * g;   h_r = o * tanh(c_r)                     # [B, C, W]

    ``input_to_state`` is a type-A masked k x k convolution of the image (it sees the row
    above and the pixels left of the current one, never the pixel itself), computed for all
    rows at once; ``state_to_state`` is a 1-D convolution of width k along the previous
    row's hidden state. (The paper's input-to-state convolution covers the current row
    only; the row above reaches the state through the recurrence either way.) Two 1x1
    convolutions turn ``h`` into a Bernoulli logit per pixel. The receptive field is the
    triangle above the pixel, as in the paper. A constant channel of ones is appended to
    the input so that the network can tell the zero padding from black pixels.
    """

    def __init__(self, hidden_channels: int = 32, kernel_size: int = 3, dropout: float = 0.0):
        super().__init__()
        hidden_channels = check_int("hidden_channels", hidden_channels, 1, MAX_WIDTH)
        kernel_size = _check_kernel_size("kernel_size", kernel_size)
        dropout = check_float("dropout", dropout, 0.0, 1.0, include_maximum=False)
        check_elements("hidden_channels^2 x kernel_size", 4 * hidden_channels**2 * kernel_size)
        self.hidden_channels = hidden_channels
        self.input_to_state = MaskedConv2d(2, 4 * hidden_channels, kernel_size, "A")
        self.state_to_state = nn.Conv1d(
            hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv2d(hidden_channels, 1, 1),
        )

    def logits(self, x: Tensor) -> Tensor:
        """Logits of ``p(x_i = 1 | x_<i)`` for each pixel of binary ``x`` [B, 1, H, W]."""
        check_tensor("x", x, "B, 1, H, W", dtype="floating")
        check_like("x", x, first_parameter(self))
        batch, _, height, width = x.shape
        from_input = self.input_to_state(torch.cat([x, torch.ones_like(x)], dim=1))
        h = x.new_zeros(batch, self.hidden_channels, width)
        c = torch.zeros_like(h)
        rows = []
        for row in range(height):
            gates = from_input[:, :, row] + self.state_to_state(h)  # [B, 4C, W]
            i, f, o, g = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            rows.append(h)
        return self.output(torch.stack(rows, dim=2))
