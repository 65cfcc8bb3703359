"""Autoregressive models: masked convolutions and PixelCNN."""

from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib.generative._common import (
    MAX_STEPS,
    MAX_WIDTH,
    check_count,
    check_elements,
    check_targets,
    cpu_generator,
    eval_mode,
    first_parameter,
)
from course_lib.generative.vae import bernoulli_log_likelihood
from course_lib.validation import (
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_like,
    check_sequence,
    check_tensor,
)

#: The largest kernel of a masked convolution (the chapter's images are 8x8).
MAX_KERNEL_SIZE = 63


def _check_kernel_size(name: str, kernel_size: object) -> int:
    kernel_size = check_int(name, kernel_size, 1, MAX_KERNEL_SIZE)
    if kernel_size % 2 == 0:
        raise ValueError(f"{name} must be odd (the mask has a centre), got {kernel_size}")
    return kernel_size


def _check_image_size(image_size: object) -> Tuple[int, int]:
    """``(H, W)`` of images generated or probed pixel by pixel (H * W sequential steps)."""
    height, width = (
        check_int("image_size", size, 1) for size in check_sequence("image_size", image_size, 2)
    )
    if height * width > MAX_STEPS:
        raise ValueError(
            f"image_size = {(height, width)} has {height * width} pixels, more than the "
            f"{MAX_STEPS} one call handles pixel by pixel"
        )
    return height, width


def pixelcnn_mask(kernel_size: int, mask_type: str = "A") -> Tensor:
    """The [k, k] mask of a PixelCNN convolution (1.0 = the weight is used).

    In raster order (row by row, left to right) a pixel may only look at pixels that come
    before it: every row above the centre, and the pixels left of the centre in its own
    row. Type "A" (first layer) also hides the centre, so the prediction for a pixel never
    sees that pixel; type "B" (later layers) keeps the centre, whose features were
    themselves computed only from earlier pixels.
    """
    kernel_size = _check_kernel_size("kernel_size", kernel_size)
    mask_type = check_choice("mask_type", mask_type, ("A", "B"))
    centre = kernel_size // 2
    rows = torch.arange(kernel_size)[:, None]
    cols = torch.arange(kernel_size)[None, :]
    mask = (rows < centre) | ((rows == centre) & (cols < centre))
    if mask_type == "B":
        mask = mask | ((rows == centre) & (cols == centre))
    return mask.float()


class MaskedConv2d(nn.Conv2d):
    """A same-size 2-D convolution whose kernel is multiplied by a PixelCNN mask.

    ``x`` [B, C_in, H, W] gives [B, C_out, H, W]. The mask is spatial (shared by all
    channel pairs): all channels at one position belong to that position. That is exact
    for single-channel images; colour PixelCNNs also order R, G, B inside a pixel.
    The parameters are those of ``nn.Conv2d`` (``weight``, ``bias``); ``mask`` is a buffer.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str = "A",
        bias: bool = True,
    ) -> None:
        mask = pixelcnn_mask(kernel_size, mask_type)  # validates kernel_size and mask_type
        in_channels = check_int("in_channels", in_channels, 1, MAX_WIDTH)
        out_channels = check_int("out_channels", out_channels, 1, MAX_WIDTH)
        check_elements("in_channels x out_channels x kernel_size^2",
                       in_channels * out_channels * kernel_size**2)  # fmt: skip
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2,
            bias=check_bool("bias", bias),
        )  # fmt: skip
        self.mask_type = mask_type
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        check_tensor("x", x, f"B, {self.in_channels}, H, W", dtype="floating")
        check_like("x", x, self.weight)
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type!r}"


class PixelModel(nn.Module):
    """What every binary autoregressive image model here shares: a subclass defines
    ``logits(x)`` (the logit of ``p(x_i = 1 | x_<i)`` for each pixel of ``x`` [B, 1, H, W],
    all pixels at once) and ``hidden_channels``; this class gives the training loss, the
    exact log-likelihood and raster-order sampling."""

    hidden_channels: int

    def logits(self, x: Tensor) -> Tensor:  # pragma: no cover - defined by subclasses
        raise NotImplementedError

    def forward(self, x: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(logits [B, 1, H, W], loss)``: loss is the mean negative log-likelihood in nats
        per image of ``targets`` (default: ``x`` itself, same shape)."""
        logits = self.logits(x)
        targets = check_targets(targets, x)
        return logits, -bernoulli_log_likelihood(logits, targets).mean()

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-likelihood in nats of each binary image ``x`` [B, 1, H, W]: [B]."""
        return bernoulli_log_likelihood(self.logits(x), x)

    @torch.no_grad()
    def sample(
        self, num_samples: int, image_size: Tuple[int, int] = (8, 8), seed: Optional[int] = None
    ) -> Tensor:
        """Draw binary images [N, 1, H, W] pixel by pixel, in raster order.

        One network evaluation per pixel (H * W of them), each on the rows filled so far
        (rows below cannot influence the current pixel, so they are cropped away). Runs
        in eval mode (no dropout) and restores the training flag afterwards.
        """
        height, width = _check_image_size(image_size)
        hidden = self.hidden_channels
        num_samples = check_count("num_samples", num_samples, hidden * height * width)
        parameter = first_parameter(self)
        device, dtype = parameter.device, parameter.dtype
        # All the randomness up front: pixel (i, j) is 1 when uniform[i, j] < p(x_ij = 1 | past).
        uniform = torch.rand(num_samples, 1, height, width, generator=cpu_generator(seed))
        uniform = uniform.to(device, dtype)
        x = torch.zeros(num_samples, 1, height, width, device=device, dtype=dtype)
        with eval_mode(self):
            for row in range(height):
                for col in range(width):
                    logits = self.logits(x[:, :, : row + 1])[:, 0, row, col]
                    x[:, 0, row, col] = (uniform[:, 0, row, col] < torch.sigmoid(logits)).to(dtype)
        return x


class PixelCNN(PixelModel):
    """A PixelCNN for binary single-channel images: ``p(x) = prod_i p(x_i | x_<i)``.

    One masked type-A convolution, ``num_layers`` residual type-B convolutions and two
    1x1 convolutions give a Bernoulli logit per pixel, computed for all pixels at once
    in training (teacher forcing). A constant channel of ones is appended to the input so
    the network can tell the zero padding from black pixels, i.e. knows where the border is.
    """

    def __init__(
        self,
        hidden_channels: int = 64,
        num_layers: int = 2,
        first_kernel_size: int = 7,
        kernel_size: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_channels = check_int("hidden_channels", hidden_channels, 1, MAX_WIDTH)
        num_layers = check_int("num_layers", num_layers, 0, 1000)
        first_kernel_size = _check_kernel_size("first_kernel_size", first_kernel_size)
        kernel_size = _check_kernel_size("kernel_size", kernel_size)
        dropout = check_float("dropout", dropout, 0.0, 1.0, include_maximum=False)
        check_elements("num_layers x hidden_channels^2 x kernel_size^2",
                       max(num_layers, 1) * hidden_channels**2 * kernel_size**2)  # fmt: skip
        self.hidden_channels = hidden_channels
        self.input_conv = MaskedConv2d(2, hidden_channels, first_kernel_size, "A")
        self.layers = nn.ModuleList(
            MaskedConv2d(hidden_channels, hidden_channels, kernel_size, "B")
            for _ in range(num_layers)
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(hidden_channels, hidden_channels, 1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv2d(hidden_channels, 1, 1),
        )
        self.dropout = nn.Dropout(dropout)

    def logits(self, x: Tensor) -> Tensor:
        """Logits of ``p(x_i = 1 | x_<i)`` for each pixel of binary ``x`` [B, 1, H, W]."""
        check_tensor("x", x, "B, 1, H, W", dtype="floating")
        check_like("x", x, first_parameter(self))
        h = self.input_conv(torch.cat([x, torch.ones_like(x)], dim=1))
        for layer in self.layers:
            h = h + layer(self.dropout(F.relu(h)))
        return self.output(h)


def dependency_matrix(
    function: Callable[[Tensor], Tensor],
    image_size: Tuple[int, int] = (8, 8),
    num_inputs: int = 3,
    seed: int = 0,
    device: Optional[Union[str, torch.device]] = None,
) -> Tensor:
    """Which input pixels each output pixel depends on, found with gradients: bool [P, P].

    ``function`` maps images [1, 1, H, W] to [1, 1, H, W] (e.g. ``pixelcnn.logits`` in
    eval mode); P = H * W in raster order. Entry (p, q) is True when the output at p has
    a non-zero derivative with respect to input pixel q for at least one of
    ``num_inputs`` random binary images. For an autoregressive model the matrix must be
    strictly lower triangular: no pixel sees itself or anything after it.
    """
    if not callable(function):
        raise TypeError(
            f"function must be callable (images -> images), got {type(function).__name__}"
        )
    height, width = _check_image_size(image_size)
    pixels = height * width
    check_elements("image_size (H * W)^2", pixels * pixels)
    num_inputs = check_int("num_inputs", num_inputs, 1, MAX_STEPS)
    generator = cpu_generator(seed)
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a torch.device, a string or None, got {device!r}")
    try:
        device = torch.device(device) if device is not None else None
    except RuntimeError as error:
        raise ValueError(
            f"device must name a device such as 'cpu' or 'cuda', got {device!r}"
        ) from error
    total = torch.zeros(pixels, pixels)

    def flat(inputs: Tensor) -> Tensor:
        output = function(inputs.reshape(1, 1, height, width))
        if not isinstance(output, Tensor) or output.numel() != pixels:
            raise ValueError(
                f"function must map images [1, 1, {height}, {width}] to [1, 1, {height}, "
                f"{width}], got {output.shape if isinstance(output, Tensor) else type(output)}"
            )
        return output.reshape(-1)

    for _ in range(num_inputs):
        x = (torch.rand(pixels, generator=generator) < 0.5).float().to(device)
        jacobian = torch.autograd.functional.jacobian(flat, x, vectorize=True)
        total += jacobian.detach().abs().cpu()
    return total > 0
