"""Generative models: a classical baseline, PixelCNN, autoencoders, VAEs and GANs.

The module reads top to bottom in the order of the chapter:

1. data helpers (binarising digits, nats to bits per dimension);
2. ``BernoulliMixture``: a mixture of independent Bernoulli components fitted by EM, the
   classical density baseline (and a clustering model);
3. autoregressive models: ``pixelcnn_mask``, ``MaskedConv2d``, ``PixelCNN``;
4. ``Autoencoder``;
5. the VAE: ``reparameterize``, ``kl_divergence``, ``bernoulli_log_likelihood``, ``elbo``, ``VAE``;
6. the GAN: ``Generator``, ``Discriminator``, ``discriminator_loss``, ``generator_loss``,
   ``GAN`` (alternating updates driven by ``course_lib.train.fit``), a 2-D toy data set;
7. judging samples: ``DigitClassifier``, ``frechet_distance``, ``classifier_scores``, and
   ``resample_by_class`` (a conditional model p(x | y) from p(x) and p(y | x) by Bayes' rule).

Every model that trains follows the course interface ``forward(x, targets=None)`` returning
``(output, loss)``; for the density models and autoencoders ``targets`` defaults to ``x``
itself (the model predicts its own input). Every function that samples takes a ``seed``
(or a ``torch.Generator``), so a notebook can reproduce a figure exactly.

Shape letters: ``B`` batch, ``N`` number of samples, ``C`` channels, ``H``/``W`` image
height and width, ``D`` numbers per data item (``C * H * W`` for images), ``Z`` latent
dimensions, ``K`` mixture components or classes, ``F`` feature dimensions, ``k`` kernel size.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GAN",
    "MODEL_COLORS",
    "VAE",
    "Autoencoder",
    "BernoulliMixture",
    "DigitClassifier",
    "Discriminator",
    "Generator",
    "MaskedConv2d",
    "PixelCNN",
    "bernoulli_log_likelihood",
    "binarize",
    "classifier_scores",
    "dependency_matrix",
    "discriminator_loss",
    "elbo",
    "frechet_distance",
    "generator_loss",
    "kl_divergence",
    "mode_coverage",
    "nats_to_bits_per_dim",
    "pixelcnn_mask",
    "predicted_class_counts",
    "reparameterize",
    "resample_by_class",
    "ring_of_gaussians",
    "shapes_as_digits",
    "shuffled_batches",
]

#: One colour per model family, used by every figure of the chapter.
MODEL_COLORS: Dict[str, str] = {
    "real": "#2ca02c",
    "mixture": "#7f7f7f",
    "pixelcnn": "#d62728",
    "autoencoder": "#8c564b",
    "vae": "#9467bd",
    "gan": "#1f77b4",
    "noise": "#bcbd22",
    "shapes": "#e377c2",
}

# --------------------------------------------------------------------------------------
# Input checks (one message style everywhere: the argument, what was expected, what came)
# --------------------------------------------------------------------------------------


def _check_tensor(name: str, value: object, shape: str, dims: Optional[int] = None) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a Tensor of shape {shape}, got {type(value).__name__}")
    if dims is not None and value.dim() != dims:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    return value


def _check_float(name: str, value: Tensor) -> None:
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {value.dtype}")


def _check_images(name: str, images: object, channels: Optional[int] = None) -> Tensor:
    images = _check_tensor(name, images, "[B, C, H, W]", dims=4)
    _check_float(name, images)
    if channels is not None and images.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channel(s), shape [B, {channels}, H, W], "
            f"got {tuple(images.shape)}"
        )
    return images


def _check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_shape(name: str, shape: Sequence[int]) -> Tuple[int, ...]:
    if isinstance(shape, int) or not all(
        isinstance(size, int) and not isinstance(size, bool) and size > 0 for size in shape
    ):
        raise ValueError(f"{name} must be a tuple of positive ints such as (1, 8, 8), got {shape}")
    return tuple(shape)


def _check_data(name: str, x: object, data_shape: Tuple[int, ...]) -> Tensor:
    x = _check_tensor(name, x, f"[B, {', '.join(map(str, data_shape))}]")
    _check_float(name, x)
    if tuple(x.shape[1:]) != data_shape:
        raise ValueError(
            f"{name} must have shape [B, {', '.join(map(str, data_shape))}], got {tuple(x.shape)}"
        )
    return x


def _cpu_generator(seed: Optional[int]) -> Optional[torch.Generator]:
    """A CPU generator for ``seed`` (None: use the global RNG).

    Noise is drawn on the CPU and then moved, so a seed gives the same samples on every
    device (CPU, CUDA, MPS).
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _device_of(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _dtype_of(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _precise_dtype(device: torch.device) -> torch.dtype:
    """float64 where the device has it (MPS does not)."""
    return torch.float32 if device.type == "mps" else torch.float64


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Evaluate without dropout, then restore the module's training flag."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


# --------------------------------------------------------------------------------------
# 1. Data helpers
# --------------------------------------------------------------------------------------


def binarize(images: Tensor, threshold: float = 0.5) -> Tensor:
    """Binary images: 1.0 where ``images > threshold``, else 0.0 (same shape, float).

    The density models of the chapter model binary 8x8 digits; ``threshold=0.5`` on
    digits scaled to [0, 1] keeps the strokes and drops the faint anti-aliased edges.
    """
    images = _check_tensor("images", images, "[...]")
    dtype = images.dtype if images.is_floating_point() else torch.float32
    return (images > threshold).to(dtype)


def nats_to_bits_per_dim(nats: Union[float, Tensor], num_dims: int) -> Union[float, Tensor]:
    """Convert a negative log-likelihood in nats per item to bits per dimension.

    ``bits/dim = nats / (num_dims * ln 2)``: for 8x8 images ``num_dims = 64``.
    """
    num_dims = _check_positive_int("num_dims", num_dims)
    return nats / (num_dims * math.log(2.0))


def shuffled_batches(data: Tensor, batch_size: int = 64, seed: int = 0) -> Iterator[Tuple[Tensor]]:
    """Endless mini-batches ``(x,)`` of the rows of ``data`` [N, ...], for ``fit``.

    Every epoch is a fresh seeded permutation; the last incomplete batch of an epoch is
    dropped (unless N < ``batch_size``, when each batch is the whole data set).
    """
    _check_tensor("data", data, "[N, ...]")
    if data.dim() == 0 or len(data) == 0:
        raise ValueError(f"data must have shape [N, ...] with N >= 1, got {tuple(data.shape)}")
    batch_size = _check_positive_int("batch_size", batch_size)
    generator = _cpu_generator(seed)
    size = min(batch_size, len(data))
    while True:
        order = torch.randperm(len(data), generator=generator).to(data.device)
        for start in range(0, len(data) - size + 1, size):
            yield (data[order[start : start + size]],)


def shapes_as_digits(num_images: int, seed: int = 0) -> Tensor:
    """Images that are not digits: the course's shapes data as 8x8 grey images [N, 1, 8, 8].

    One or two filled circles, squares or triangles (``course_lib.data.ShapesDataset``
    at 16x16, averaged over colour and 2x2 pooled), each image scaled to a maximum of 1:
    the same format as the digits, for testing whether a model notices the difference.
    """
    from course_lib.data import ShapesDataset

    num_images = _check_positive_int("num_images", num_images, minimum=0)
    shapes = ShapesDataset(
        max(num_images, 1), image_size=16, min_objects=1, max_objects=2,
        min_size=0.3, max_size=0.7, seed=seed,
    )  # fmt: skip
    items = [shapes[index][0] for index in range(num_images)]  # generated one by one
    images = torch.stack(items) if items else torch.zeros(0, 3, 16, 16)
    grey = F.avg_pool2d(images.mean(1, keepdim=True), 2)
    return grey / grey.amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6)


# --------------------------------------------------------------------------------------
# 2. The classical baseline: a mixture of independent Bernoullis, fitted by EM
# --------------------------------------------------------------------------------------


class BernoulliMixture(nn.Module):
    """``p(x) = sum_k pi_k prod_d Bernoulli(x_d; theta_kd)``, fitted by EM.

    Each component is a "prototype" image of pixel probabilities ``theta`` [K, D]; the
    mixture both clusters the data (``responsibilities``) and gives an exact density
    (``log_prob``). ``smoothing`` is the pseudo-count of a Beta(1 + s, 1 + s) prior on every
    pixel probability (MAP-EM): it keeps probabilities away from exactly 0 or 1, so an
    unseen pixel value does not make the test log-likelihood minus infinity.
    """

    def __init__(self, num_components: int = 50, smoothing: float = 0.1) -> None:
        super().__init__()
        self.num_components = _check_positive_int("num_components", num_components)
        if not isinstance(smoothing, (int, float)) or smoothing < 0:
            raise ValueError(f"smoothing must be a number >= 0, got {smoothing!r}")
        self.smoothing = float(smoothing)
        self.data_shape: Tuple[int, ...] = ()
        self.register_buffer("log_weights", torch.empty(0))  # [K]
        self.register_buffer("probs", torch.empty(0))  # [K, D]

    @property
    def fitted(self) -> bool:
        return self.probs.numel() > 0

    def _flat(self, name: str, x: Tensor) -> Tensor:
        x = _check_tensor(name, x, "[B, ...]")
        _check_float(name, x)
        if not self.fitted:
            raise RuntimeError("call fit(images) before using the mixture")
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{name} must have shape [B, {', '.join(map(str, self.data_shape))}] "
                f"(the shape it was fitted on), got {tuple(x.shape)}"
            )
        return x.flatten(1).to(self.probs)

    def _joint_log_prob(self, x: Tensor) -> Tensor:
        """log pi_k + log p(x | k) for every item and component: [B, K]."""
        log_p, log_q = self.probs.log(), torch.log1p(-self.probs)
        return x @ log_p.T + (1.0 - x) @ log_q.T + self.log_weights

    def fit(self, images: Tensor, iterations: int = 100, seed: int = 0) -> List[float]:
        """Fit to binary ``images`` [N, ...] by EM; returns the mean log-likelihood per step.

        Starts from random responsibilities (seeded), then alternates the M-step (weights
        and smoothed pixel probabilities from the responsibilities) and the E-step
        (responsibilities from Bayes' rule). Each step cannot lower the penalised
        likelihood, so the returned curve rises (up to the tiny effect of the prior).
        """
        images = _check_tensor("images", images, "[N, ...]")
        _check_float("images", images)
        if images.dim() < 2 or images.shape[0] == 0:
            raise ValueError(f"images must have shape [N, ...] with N >= 1, got {images.shape}")
        iterations = _check_positive_int("iterations", iterations)
        dtype = _precise_dtype(images.device)
        x = images.flatten(1).to(dtype)
        count = len(x)
        generator = _cpu_generator(seed)
        resp = torch.rand(count, self.num_components, generator=generator, dtype=dtype)
        resp = (resp / resp.sum(1, keepdim=True)).to(x.device)
        self.data_shape = tuple(images.shape[1:])
        history = []
        for _ in range(iterations):
            # M-step: the weighted counts, smoothed by the Beta prior's pseudo-counts.
            totals = resp.sum(0)  # [K]
            self.probs = (resp.T @ x + self.smoothing) / (totals[:, None] + 2 * self.smoothing)
            self.probs = self.probs.clamp(1e-12, 1 - 1e-12)  # only matters when smoothing = 0
            self.log_weights = (totals / count).clamp_min(1e-300).log()
            # E-step: responsibilities r_nk = p(k | x_n), and the log-likelihood on the way.
            joint = self._joint_log_prob(x)
            log_likelihood = torch.logsumexp(joint, dim=1, keepdim=True)
            resp = (joint - log_likelihood).exp()
            history.append(log_likelihood.mean())
        return torch.stack(history).tolist()

    def log_prob(self, images: Tensor) -> Tensor:
        """Exact log-likelihood in nats of each image [B, ...]: [B]."""
        x = self._flat("images", images)
        return torch.logsumexp(self._joint_log_prob(x), dim=1).to(images.dtype)

    def responsibilities(self, images: Tensor) -> Tensor:
        """p(component | image) for each image [B, ...]: [B, K] (rows sum to 1)."""
        x = self._flat("images", images)
        return torch.softmax(self._joint_log_prob(x), dim=1).to(images.dtype)

    def sample(self, num_samples: int, seed: Optional[int] = None) -> Tensor:
        """Draw binary images [N, ...]: pick a component, then every pixel independently."""
        num_samples = _check_positive_int("num_samples", num_samples, minimum=0)
        if not self.fitted:
            raise RuntimeError("call fit(images) before sampling")
        generator = _cpu_generator(seed)
        # Inverse-CDF sampling of the component (works for num_samples = 0, unlike multinomial).
        cumulative = self.log_weights.exp().double().cpu().cumsum(0)
        uniform_k = torch.rand(num_samples, generator=generator, dtype=torch.float64)
        components = torch.searchsorted(cumulative, uniform_k * cumulative[-1], right=True)
        components = components.clamp_max(self.num_components - 1)
        uniform = torch.rand(num_samples, self.probs.shape[1], generator=generator)
        pixels = uniform < self.probs.float().cpu()[components]
        return pixels.float().reshape(num_samples, *self.data_shape).to(self.probs.device)


# --------------------------------------------------------------------------------------
# 3. Autoregressive models: masked convolutions and PixelCNN
# --------------------------------------------------------------------------------------


def pixelcnn_mask(kernel_size: int, mask_type: str = "A") -> Tensor:
    """The [k, k] mask of a PixelCNN convolution (1.0 = the weight is used).

    In raster order (row by row, left to right) a pixel may only look at pixels that come
    before it: every row above the centre, and the pixels left of the centre in its own
    row. Type "A" (first layer) also hides the centre, so the prediction for a pixel never
    sees that pixel; type "B" (later layers) keeps the centre, whose features were
    themselves computed only from earlier pixels.
    """
    kernel_size = _check_positive_int("kernel_size", kernel_size)
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd (the mask has a centre), got {kernel_size}")
    if mask_type not in ("A", "B"):
        raise ValueError(f'mask_type must be "A" or "B", got {mask_type!r}')
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
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.mask_type = mask_type
        self.register_buffer("mask", mask)

    def forward(self, x: Tensor) -> Tensor:
        _check_images("x", x, channels=self.in_channels)
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type!r}"


class PixelCNN(nn.Module):
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
        _check_positive_int("hidden_channels", hidden_channels)
        _check_positive_int("num_layers", num_layers, minimum=0)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
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
        _check_images("x", x, channels=1)
        h = self.input_conv(torch.cat([x, torch.ones_like(x)], dim=1))
        for layer in self.layers:
            h = h + layer(self.dropout(F.relu(h)))
        return self.output(h)

    def forward(self, x: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(logits [B, 1, H, W], loss)``: loss is the mean negative log-likelihood in nats
        per image of ``targets`` (default: ``x`` itself)."""
        logits = self.logits(x)
        targets = x if targets is None else targets
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
        num_samples = _check_positive_int("num_samples", num_samples, minimum=0)
        height, width = (_check_positive_int("image_size", size) for size in image_size)
        device, dtype = _device_of(self), _dtype_of(self)
        # All the randomness up front: pixel (i, j) is 1 when uniform[i, j] < p(x_ij = 1 | past).
        uniform = torch.rand(num_samples, 1, height, width, generator=_cpu_generator(seed))
        uniform = uniform.to(device, dtype)
        x = torch.zeros(num_samples, 1, height, width, device=device, dtype=dtype)
        with _eval_mode(self):
            for row in range(height):
                for col in range(width):
                    logits = self.logits(x[:, :, : row + 1])[:, 0, row, col]
                    x[:, 0, row, col] = (uniform[:, 0, row, col] < torch.sigmoid(logits)).to(dtype)
        return x


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
    height, width = (_check_positive_int("image_size", size) for size in image_size)
    num_inputs = _check_positive_int("num_inputs", num_inputs)
    generator = _cpu_generator(seed)
    pixels = height * width
    total = torch.zeros(pixels, pixels)
    for _ in range(num_inputs):
        x = (torch.rand(pixels, generator=generator) < 0.5).float().to(device)

        def flat(inputs: Tensor) -> Tensor:
            return function(inputs.reshape(1, 1, height, width)).reshape(-1)

        jacobian = torch.autograd.functional.jacobian(flat, x, vectorize=True)
        total += jacobian.detach().abs().cpu()
    return total > 0


# --------------------------------------------------------------------------------------
# 4. Autoencoder
# --------------------------------------------------------------------------------------


def _mlp(sizes: Sequence[int], activation: type = nn.ReLU) -> nn.Sequential:
    """Linear layers of the given sizes with ``activation`` between them (none at the end)."""
    layers: List[nn.Module] = []
    for index, (size_in, size_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(size_in, size_out))
        if index < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class Autoencoder(nn.Module):
    """An MLP autoencoder: encoder x ``[B, *data_shape]`` -> z [B, Z], decoder z -> x_hat.

    The decoder ends in a sigmoid (data in [0, 1]); the loss is the squared error
    ``||x_hat - x||^2`` summed over the pixels of an image, averaged over the batch.
    """

    def __init__(
        self, data_shape: Sequence[int] = (1, 8, 8), latent_dim: int = 8, hidden_dim: int = 128
    ) -> None:
        super().__init__()
        self.data_shape = _check_shape("data_shape", data_shape)
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        _check_positive_int("hidden_dim", hidden_dim)
        dims = math.prod(self.data_shape)
        self.encoder = _mlp([dims, hidden_dim, hidden_dim, latent_dim])
        self.decoder = _mlp([latent_dim, hidden_dim, hidden_dim, dims])

    def encode(self, x: Tensor) -> Tensor:
        """Codes z [B, Z] of the data ``x`` ``[B, *data_shape]``."""
        return self.encoder(_check_data("x", x, self.data_shape).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        """Reconstructions ``[B, *data_shape]`` in [0, 1] of the codes ``z`` [B, Z]."""
        _check_tensor("z", z, f"[B, {self.latent_dim}]", dims=2)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape [B, {self.latent_dim}], got {tuple(z.shape)}")
        return torch.sigmoid(self.decoder(z)).reshape(-1, *self.data_shape)

    def forward(self, x: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(reconstruction, loss)``; the loss compares with ``targets`` (default ``x``)."""
        reconstruction = self.decode(self.encode(x))
        targets = x if targets is None else targets
        loss = (reconstruction - targets).pow(2).flatten(1).sum(1).mean()
        return reconstruction, loss


# --------------------------------------------------------------------------------------
# 5. The variational autoencoder
# --------------------------------------------------------------------------------------


def reparameterize(
    mu: Tensor, logvar: Tensor, generator: Optional[torch.Generator] = None
) -> Tensor:
    """Sample z = mu + sigma * eps with eps ~ N(0, I) and sigma = exp(logvar / 2).

    ``mu`` and ``logvar`` have the same shape, e.g. [B, Z]; so does z. The noise is the
    only random part and does not depend on the parameters, so gradients flow from z to
    ``mu`` (dz/dmu = 1) and to ``logvar`` (dz/dlogvar = sigma * eps / 2). ``generator``
    must live on the device of ``mu``.
    """
    _check_tensor("mu", mu, "[..., Z]")
    _check_tensor("logvar", logvar, "[..., Z]")
    if mu.shape != logvar.shape:
        raise ValueError(
            f"mu and logvar must have the same shape, got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    _check_float("mu", mu)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per item: [..., Z] -> [...].

    Closed form: -1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j)), which is >= 0 and
    0 only when mu = 0 and logvar = 0. (Mind the leading minus sign.)
    """
    _check_tensor("mu", mu, "[..., Z]")
    _check_tensor("logvar", logvar, "[..., Z]")
    if mu.shape != logvar.shape or mu.dim() == 0:
        raise ValueError(
            f"mu and logvar must have the same shape [..., Z], got {tuple(mu.shape)} and "
            f"{tuple(logvar.shape)}"
        )
    _check_float("mu", mu)
    # The same sum written as 1/2 * (mu^2 + sigma^2 - 1 - log sigma^2): exactly +0.0 at the prior.
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=-1)


def bernoulli_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) of binary data, summed over everything but the batch: [B, ...] -> [B].

    Equals sum(x * log(sigmoid(l)) + (1 - x) * log(1 - sigmoid(l))), computed stably from
    the logits (no log(0) for confident predictions).
    """
    _check_tensor("logits", logits, "[B, ...]")
    _check_tensor("x", x, "[B, ...]")
    if logits.shape != x.shape or logits.dim() == 0:
        raise ValueError(
            f"logits and x must have the same shape [B, ...], got {tuple(logits.shape)} and "
            f"{tuple(x.shape)}"
        )
    _check_float("logits", logits)
    terms = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    return -(terms.flatten(1).sum(1) if terms.dim() > 1 else terms)


def elbo(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The evidence lower bound per item [B], estimated with one sample z ~ q(z | x):

    ``log p(x | z) - KL(q(z | x) || p(z))`` with a Bernoulli decoder (``logits`` [B, ...]
    decoded from z) and the Gaussian encoder ``mu``, ``logvar`` [B, Z]. In nats;
    ``elbo <= log p(x)``.
    """
    return bernoulli_log_likelihood(logits, x) - kl_divergence(mu, logvar)


def _log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


class VAE(nn.Module):
    """A variational autoencoder with a Gaussian encoder and a Bernoulli decoder (MLPs).

    The encoder gives ``mu``, ``logvar`` [B, Z] of q(z | x); the decoder gives the logits
    ``[B, *data_shape]`` of p(x | z); the prior is p(z) = N(0, I). The training loss is
    ``-log p(x | z) + beta * KL`` per image, averaged over the batch (``beta = 1``: the
    negative ELBO).
    """

    def __init__(
        self,
        data_shape: Sequence[int] = (1, 8, 8),
        latent_dim: int = 16,
        hidden_dim: int = 256,
        beta: float = 1.0,
    ) -> None:
        super().__init__()
        self.data_shape = _check_shape("data_shape", data_shape)
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        _check_positive_int("hidden_dim", hidden_dim)
        if not isinstance(beta, (int, float)) or beta < 0:
            raise ValueError(f"beta must be a number >= 0, got {beta!r}")
        self.beta = float(beta)
        dims = math.prod(self.data_shape)
        self.encoder = _mlp([dims, hidden_dim, hidden_dim, 2 * latent_dim])
        self.decoder = _mlp([latent_dim, hidden_dim, hidden_dim, dims])

    def encode(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """``(mu, logvar)``, each [B, Z], of q(z | x) for the data ``x`` ``[B, *data_shape]``."""
        mu, logvar = self.encoder(_check_data("x", x, self.data_shape).flatten(1)).chunk(2, -1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Logits ``[B, *data_shape]`` of the Bernoulli decoder p(x | z) for ``z`` [B, Z]."""
        _check_tensor("z", z, f"[B, {self.latent_dim}]", dims=2)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape [B, {self.latent_dim}], got {tuple(z.shape)}")
        return self.decoder(z).reshape(-1, *self.data_shape)

    def forward(self, x: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(logits, loss)`` with loss = mean of ``-log p(targets | z) + beta * KL``."""
        mu, logvar = self.encode(x)
        logits = self.decode(reparameterize(mu, logvar))
        targets = x if targets is None else targets
        reconstruction = -bernoulli_log_likelihood(logits, targets)
        return logits, (reconstruction + self.beta * kl_divergence(mu, logvar)).mean()

    @torch.no_grad()
    def evidence_lower_bound(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """The ELBO of each image [B] in nats, averaging ``num_samples`` draws of z."""
        num_samples = _check_positive_int("num_samples", num_samples)
        with _eval_mode(self):
            mu, logvar = self.encode(x)
            total = torch.zeros(len(x), device=x.device, dtype=x.dtype)
            for _ in range(num_samples):
                total += elbo(x, self.decode(reparameterize(mu, logvar)), mu, logvar)
        return total / num_samples

    @torch.no_grad()
    def importance_log_likelihood(self, x: Tensor, num_samples: int = 100) -> Tensor:
        """An estimate of log p(x) per image [B] by importance sampling with q(z | x).

        ``log mean_s p(x | z_s) p(z_s) / q(z_s | x)``: a lower bound in expectation that
        tightens as ``num_samples`` grows (the IWAE bound); with one sample it is the ELBO.
        """
        num_samples = _check_positive_int("num_samples", num_samples)
        with _eval_mode(self):
            mu, logvar = self.encode(x)
            # [S, B, Z]: all samples in one batch, so there is no Python loop over them.
            z = reparameterize(
                mu.expand(num_samples, *mu.shape), logvar.expand(num_samples, *mu.shape)
            )
            logits = self.decode(z.flatten(0, 1))
            log_px_z = bernoulli_log_likelihood(logits, x.repeat(num_samples, *[1] * (x.dim() - 1)))
            log_weights = (
                log_px_z.reshape(num_samples, len(x))
                + _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
                - _log_normal(z, mu, logvar)
            )
            return torch.logsumexp(log_weights, dim=0) - math.log(num_samples)

    @torch.no_grad()
    def sample(self, num_samples: int, seed: Optional[int] = None, mean: bool = False) -> Tensor:
        """Images ``[N, *data_shape]`` from z ~ N(0, I) through the decoder only.

        ``mean=True`` returns the decoder's pixel probabilities (smooth, "blurry" images);
        otherwise every pixel is drawn from its Bernoulli distribution (binary images).
        """
        num_samples = _check_positive_int("num_samples", num_samples, minimum=0)
        generator = _cpu_generator(seed)
        device, dtype = _device_of(self), _dtype_of(self)
        z = torch.randn(num_samples, self.latent_dim, generator=generator).to(device, dtype)
        uniform = torch.rand(num_samples, *self.data_shape, generator=generator).to(device, dtype)
        with _eval_mode(self):
            probs = torch.sigmoid(self.decode(z))
        return probs if mean else (uniform < probs).to(dtype)


# --------------------------------------------------------------------------------------
# 6. The GAN
# --------------------------------------------------------------------------------------


class _LeakyReLU(nn.LeakyReLU):
    """LeakyReLU with slope 0.2, the usual choice in GANs (keeps gradients for x < 0)."""

    def __init__(self) -> None:
        super().__init__(0.2)


class Generator(nn.Module):
    """G: noise z [B, Z] -> data ``[B, *data_shape]`` (an MLP).

    ``output="sigmoid"`` squashes to [0, 1] (images); ``"identity"`` leaves the values
    unbounded (for the 2-D toy data).
    """

    def __init__(
        self,
        latent_dim: int = 16,
        hidden_dim: int = 256,
        data_shape: Sequence[int] = (1, 8, 8),
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.latent_dim = _check_positive_int("latent_dim", latent_dim)
        _check_positive_int("hidden_dim", hidden_dim)
        self.data_shape = _check_shape("data_shape", data_shape)
        if output not in ("sigmoid", "identity"):
            raise ValueError(f'output must be "sigmoid" or "identity", got {output!r}')
        self.output = output
        dims = math.prod(self.data_shape)
        self.net = _mlp([latent_dim, hidden_dim, hidden_dim, dims], activation=_LeakyReLU)

    def forward(self, z: Tensor) -> Tensor:
        _check_tensor("z", z, f"[B, {self.latent_dim}]", dims=2)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape [B, {self.latent_dim}], got {tuple(z.shape)}")
        out = self.net(z)
        out = torch.sigmoid(out) if self.output == "sigmoid" else out
        return out.reshape(-1, *self.data_shape)

    def sample_latent(self, num_samples: int, seed: Optional[int] = None) -> Tensor:
        """Noise z ~ N(0, I) [N, Z] on the generator's device."""
        num_samples = _check_positive_int("num_samples", num_samples, minimum=0)
        z = torch.randn(num_samples, self.latent_dim, generator=_cpu_generator(seed))
        return z.to(_device_of(self), _dtype_of(self))

    @torch.no_grad()
    def sample(self, num_samples: int, seed: Optional[int] = None) -> Tensor:
        """Samples G(z) ``[N, *data_shape]`` for fresh noise (eval mode)."""
        with _eval_mode(self):
            return self(self.sample_latent(num_samples, seed))


class Discriminator(nn.Module):
    """D: data ``[B, *data_shape]`` -> one logit per item [B] (real: high, fake: low).

    D(x) = sigmoid(logit) is the probability that x is real. An MLP with LeakyReLU and
    dropout (a discriminator that memorises the training set gives the generator
    useless gradients).
    """

    def __init__(
        self, data_shape: Sequence[int] = (1, 8, 8), hidden_dim: int = 256, dropout: float = 0.2
    ) -> None:
        super().__init__()
        self.data_shape = _check_shape("data_shape", data_shape)
        _check_positive_int("hidden_dim", hidden_dim)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        dims = math.prod(self.data_shape)
        self.net = nn.Sequential(
            nn.Linear(dims, hidden_dim),
            _LeakyReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, hidden_dim),
            _LeakyReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(_check_data("x", x, self.data_shape).flatten(1)).squeeze(1)


def _check_logits(name: str, logits: object) -> Tensor:
    logits = _check_tensor(name, logits, "[B]", dims=1)
    _check_float(name, logits)
    if logits.numel() == 0:
        raise ValueError(f"{name} must hold at least one logit, got shape {tuple(logits.shape)}")
    return logits


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's loss (a scalar): binary cross-entropy with real = 1, fake = 0.

    ``mean(-log D(x_real)) + mean(-log(1 - D(G(z))))`` for logits [B] and [B'], written
    with softplus (-log sigmoid(t) = softplus(-t), -log(1 - sigmoid(t)) = softplus(t)) so
    it stays finite for confident logits. Minimising it maximises D's side of the minimax
    value E log D(x) + E log(1 - D(G(z))).
    """
    real_logits = _check_logits("real_logits", real_logits)
    fake_logits = _check_logits("fake_logits", fake_logits)
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: Tensor, non_saturating: bool = True) -> Tensor:
    """The generator's loss (a scalar) from the discriminator's logits on fakes [B].

    ``non_saturating=True`` (used in practice): ``mean(-log D(G(z)))`` = mean(softplus(-t)),
    whose gradient is large while the generator is still bad. ``False``: the minimax form
    ``mean(log(1 - D(G(z))))`` = mean(-softplus(t)), which saturates when D rejects the fakes.
    """
    fake_logits = _check_logits("fake_logits", fake_logits)
    if non_saturating:
        return F.softplus(-fake_logits).mean()
    return -F.softplus(fake_logits).mean()


@contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Build the graph without gradients for ``module``'s parameters (restored afterwards)."""
    flags = [parameter.requires_grad for parameter in module.parameters()]
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags):
            parameter.requires_grad_(flag)


class GAN(nn.Module):
    """A generator and a discriminator trained by alternating updates through ``fit``.

    Each call of ``forward(real)`` in training mode is one update of one network:
    ``discriminator_steps`` discriminator updates, then one generator update, and again.
    The returned loss only has gradients for the network whose turn it is (the fakes are
    detached for D's turn; D's parameters are frozen for G's turn), so a single optimizer
    over all parameters updates exactly that network: parameters without a gradient are
    skipped. ``loss_history`` keeps both losses for plotting.
    """

    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        discriminator_steps: int = 1,
        non_saturating: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(generator, Generator):
            raise TypeError(f"generator must be a Generator, got {type(generator).__name__}")
        if not isinstance(discriminator, Discriminator):
            raise TypeError(
                f"discriminator must be a Discriminator, got {type(discriminator).__name__}"
            )
        if generator.data_shape != discriminator.data_shape:
            raise ValueError(
                f"generator makes data of shape {generator.data_shape} but the discriminator "
                f"reads {discriminator.data_shape}"
            )
        self.generator = generator
        self.discriminator = discriminator
        self.discriminator_steps = _check_positive_int("discriminator_steps", discriminator_steps)
        self.non_saturating = non_saturating
        self.updates = 0
        self._losses: Dict[str, List[Tensor]] = {"discriminator": [], "generator": []}

    def forward(self, real: Tensor, targets: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """``(fakes ``[B, *data_shape]``, loss)`` for this update; ``targets`` is ignored."""
        real = _check_data("real", real, self.generator.data_shape)
        z = torch.randn(len(real), self.generator.latent_dim, device=real.device, dtype=real.dtype)
        discriminator_turn = (
            self.updates % (self.discriminator_steps + 1) < self.discriminator_steps
        )
        if discriminator_turn:
            fakes = self.generator(z).detach()
            loss = discriminator_loss(self.discriminator(real), self.discriminator(fakes))
        else:
            fakes = self.generator(z)
            with _frozen(self.discriminator):
                loss = generator_loss(self.discriminator(fakes), self.non_saturating)
        if self.training and torch.is_grad_enabled():
            self.updates += 1
            name = "discriminator" if discriminator_turn else "generator"
            self._losses[name].append(loss.detach())
        return fakes, loss

    def loss_history(self) -> Dict[str, List[float]]:
        """The recorded losses of both networks, in update order."""
        return {
            name: torch.stack(values).float().cpu().tolist() if values else []
            for name, values in self._losses.items()
        }


def ring_of_gaussians(
    num_samples: int, num_modes: int = 8, radius: float = 2.0, std: float = 0.05, seed: int = 0
) -> Tuple[Tensor, Tensor]:
    """2-D toy data: equal Gaussian blobs on a circle, the classic test of mode collapse.

    Returns ``(points [N, 2], centres [K, 2])``.
    """
    num_samples = _check_positive_int("num_samples", num_samples, minimum=0)
    num_modes = _check_positive_int("num_modes", num_modes)
    generator = _cpu_generator(seed)
    angles = torch.arange(num_modes) * (2 * math.pi / num_modes)
    centres = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    which = torch.randint(num_modes, (num_samples,), generator=generator)
    points = centres[which] + std * torch.randn(num_samples, 2, generator=generator)
    return points, centres


def mode_coverage(samples: Tensor, centres: Tensor, max_distance: float) -> Tensor:
    """How many samples [N, 2] fall within ``max_distance`` of each centre [K, 2]: [K].

    A mode with (almost) no samples is a mode the generator dropped.
    """
    _check_tensor("samples", samples, "[N, D]", dims=2)
    _check_tensor("centres", centres, "[K, D]", dims=2)
    if samples.shape[1] != centres.shape[1]:
        raise ValueError(
            f"samples [N, D] and centres [K, D] must share D, got {tuple(samples.shape)} and "
            f"{tuple(centres.shape)}"
        )
    distances = torch.cdist(samples.float(), centres.float().to(samples.device))
    nearest = distances.min(dim=1)
    hits = nearest.indices[nearest.values <= max_distance]
    return torch.bincount(hits, minlength=len(centres))


# --------------------------------------------------------------------------------------
# 7. Judging samples: a digit classifier, the Fréchet distance, Bayes' rule
# --------------------------------------------------------------------------------------


class DigitClassifier(nn.Module):
    """A small CNN for 8x8 digits [B, 1, 8, 8] -> logits [B, K]; ``features`` gives [B, F].

    Trained on real digits, it serves as the judge of generated ones: its confidence,
    the inception score and the Fréchet distance on its features.
    """

    def __init__(self, num_classes: int = 10, feature_dim: int = 64, image_size: int = 8) -> None:
        super().__init__()
        _check_positive_int("num_classes", num_classes, minimum=2)
        self.feature_dim = _check_positive_int("feature_dim", feature_dim)
        image_size = _check_positive_int("image_size", image_size, minimum=2)
        if image_size % 2:
            raise ValueError(f"image_size must be even (one 2x2 pooling), got {image_size}")
        self.image_size = image_size
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(0.25),
            nn.Linear(64 * (image_size // 2) ** 2, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Dropout(0.25), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate-layer features [B, F] of images ``x`` [B, 1, H, W]."""
        _check_images("x", x, channels=1)
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"x must have shape [B, 1, {self.image_size}, {self.image_size}], "
                f"got {tuple(x.shape)}"
            )
        return self.body(x)

    def forward(
        self, x: Tensor, targets: Optional[Tensor] = None
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """``(logits [B, K], loss)``: cross-entropy with ``targets`` [B], or None without."""
        logits = self.head(self.features(x))
        loss = None if targets is None else F.cross_entropy(logits, targets)
        return logits, loss


def frechet_distance(features_a: Tensor, features_b: Tensor) -> Tensor:
    """Fréchet distance between Gaussians fitted to two feature sets [N, F] and [M, F].

    ``||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with unbiased covariances:
    the FID of Heusel et al. when the features come from an Inception network; here they
    come from the digit classifier. ``tr (S_a S_b)^(1/2)`` is computed as the sum of the
    square roots of the eigenvalues of the symmetric matrix ``S_a^(1/2) S_b S_a^(1/2)``
    (same eigenvalues, and no complex numbers). Returns a 0-dim float64 tensor.
    """
    features_a = _check_tensor("features_a", features_a, "[N, F]", dims=2)
    features_b = _check_tensor("features_b", features_b, "[M, F]", dims=2)
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"features_a [N, F] and features_b [M, F] must have the same F, got "
            f"{tuple(features_a.shape)} and {tuple(features_b.shape)}"
        )
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        if len(features) < 2:
            raise ValueError(f"{name} needs at least 2 rows for a covariance, got {len(features)}")
    # float64 for the eigen-decompositions; MPS has neither float64 nor eigh, so use the CPU there.
    device = torch.device("cpu") if features_a.device.type == "mps" else features_a.device
    a = features_a.to(device=device, dtype=torch.float64)
    b = features_b.to(device=device, dtype=torch.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    values, vectors = torch.linalg.eigh(cov_a)
    sqrt_a = (vectors * values.clamp_min(0).sqrt()) @ vectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * trace_sqrt
    return distance.clamp_min(0)


@torch.no_grad()
def _classify(
    classifier: DigitClassifier, images: Tensor, batch_size: int
) -> Tuple[Tensor, Tensor]:
    """Class probabilities [N, K] and features [N, F], in batches, in eval mode."""
    device = _device_of(classifier)
    probs, features = [], []
    with _eval_mode(classifier):
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            feature = classifier.features(batch)
            probs.append(torch.softmax(classifier.head(feature), dim=1))
            features.append(feature)
    return torch.cat(probs), torch.cat(features)


def predicted_class_counts(
    classifier: DigitClassifier, images: Tensor, batch_size: int = 512
) -> Tensor:
    """How many of the images [N, 1, H, W] the classifier puts in each class: [K]."""
    _check_images("images", images, channels=1)
    probs, _ = _classify(classifier, images, batch_size)
    num_classes = classifier.head[-1].out_features
    return torch.bincount(probs.argmax(1), minlength=num_classes)


def classifier_scores(
    classifier: DigitClassifier,
    images: Tensor,
    reference_images: Optional[Tensor] = None,
    labels: Optional[Tensor] = None,
    batch_size: int = 512,
) -> Dict[str, float]:
    """Sample-quality scores of ``images`` [N, 1, H, W] from a classifier of real digits.

    - ``confidence``: mean max_y p(y | x), high when the images look like clear digits;
    - ``inception_score``: ``exp(E_x KL(p(y | x) || p(y)))``, between 1 and K, high when the
      images are both clear and spread over all classes;
    - ``frechet_distance`` (with ``reference_images`` [M, 1, H, W]): between the
      classifier's features of the images and of the reference (lower is better);
    - ``accuracy`` (with ``labels`` [N]): the fraction classified as their label.
    """
    _check_images("images", images, channels=1)
    if len(images) < 2:
        raise ValueError(f"images needs at least 2 images, got shape {tuple(images.shape)}")
    probs, features = _classify(classifier, images, batch_size)
    probs = probs.to(_precise_dtype(probs.device))
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-30).log() - marginal.clamp_min(1e-30).log())).sum(1)
    scores = {
        "confidence": float(probs.max(1).values.mean()),
        "inception_score": float(kl.mean().exp()),
    }
    if reference_images is not None:
        _check_images("reference_images", reference_images, channels=1)
        _, reference_features = _classify(classifier, reference_images, batch_size)
        scores["frechet_distance"] = float(frechet_distance(features, reference_features))
    if labels is not None:
        _check_tensor("labels", labels, "[N]", dims=1)
        if len(labels) != len(images):
            raise ValueError(f"labels must have shape [{len(images)}], got {tuple(labels.shape)}")
        correct = probs.argmax(1).cpu() == labels.cpu()
        scores["accuracy"] = float(correct.double().mean())
    return scores


def resample_by_class(
    samples: Tensor, class_probs: Tensor, num_per_class: int, seed: Optional[int] = None
) -> Tensor:
    """Turn samples of p(x) into samples of p(x | y) with Bayes' rule: [K, n, ...].

    ``p(x | y) = p(y | x) p(x) / p(y)``: given ``samples`` [N, ...] drawn from p(x) and a
    classifier's ``class_probs`` [N, K] = p(y | x), drawing sample i with probability
    proportional to p(y | x_i) gives (approximately, as N grows) samples of p(x | y)
    (sampling-importance-resampling).
    """
    _check_tensor("samples", samples, "[N, ...]")
    _check_tensor("class_probs", class_probs, "[N, K]", dims=2)
    if len(samples) != len(class_probs) or len(samples) == 0:
        raise ValueError(
            f"samples [N, ...] and class_probs [N, K] need the same N >= 1, got "
            f"{tuple(samples.shape)} and {tuple(class_probs.shape)}"
        )
    num_per_class = _check_positive_int("num_per_class", num_per_class, minimum=0)
    weights = class_probs.detach().double().cpu().T  # [K, N]: row y is proportional to p(x | y)
    if (weights < 0).any() or (weights.sum(1) <= 0).any():
        raise ValueError("class_probs must be non-negative with a positive total for every class")
    if num_per_class == 0:
        return samples[:0].unsqueeze(0).expand(len(weights), *samples[:0].shape).clone()
    generator = _cpu_generator(seed)
    index = torch.multinomial(weights, num_per_class, replacement=True, generator=generator)
    return samples[index.to(samples.device)]
