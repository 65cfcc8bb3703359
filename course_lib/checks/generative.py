"""Checks for the exercises of the chapter "generative models" (生成模型).

Each check compares the student's function with ``course_lib.generative`` on random
inputs (float64, then float32) and edge cases, on the CPU and, when present, on the GPU.
Two checks go beyond one formula: ``check_vae_elbo`` (encoder, reparameterised sample,
decoder and ELBO, with the gradients that reach both networks) and ``check_gan_step`` (one
training step of a GAN with two optimisers, compared with a reference step on copies).
Calling the library's version of an exercise is rejected.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import generative
from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    forbid,
    randn,
)
from course_lib.checks.hints import Mistakes, same

# ----------------------------------------------------------------------------------------
# The PixelCNN mask
# ----------------------------------------------------------------------------------------


def _mask_cases(device: torch.device) -> List[Case]:
    return [
        Case("3x3, type A", (3, "A")),
        Case("3x3, type B", (3, "B")),
        Case("5x5, type A", (5, "A")),
        Case("5x5, type B", (5, "B")),
        Case("7x7, type A", (7, "A")),
        Case("1x1, type A (sees nothing)", (1, "A")),
        Case("1x1, type B (only the centre)", (1, "B")),
    ]


def _mask_hint(mismatch: Mismatch, case: Case) -> str:
    expected, actual = mismatch.expected, mismatch.actual
    if not isinstance(actual, Tensor) or not isinstance(expected, Tensor):
        return "返回一个 [k, k] 的张量。"
    if actual.shape != expected.shape:
        return "掩码的形状应为 [kernel_size, kernel_size]。"
    if not actual.is_floating_point():
        return "返回浮点张量（1.0 表示使用该权重，0.0 表示屏蔽），例如 mask.float()。"
    centre = expected.shape[0] // 2
    actual, expected = actual.detach().cpu().double(), expected.double()
    if actual[centre, centre] != expected[centre, centre]:
        return "中心位置：A 型掩码要屏蔽中心（预测像素时不能看到它自己），B 型掩码保留中心。"
    if torch.equal(actual, expected.T):
        return "光栅顺序是逐行、从左到右：允许的是上方所有行和同一行中心左侧的像素，不是左侧的列。"
    return (
        "允许的位置：中心上方的所有行，以及中心所在行中位于中心左侧的像素；其余（右侧和下方）为 0。"
    )


@exercise_check
def check_pixelcnn_mask(student_mask: Callable[[int, str], Tensor]) -> CheckResult:
    """Check ``student_mask(kernel_size, mask_type)`` against ``generative.pixelcnn_mask``.

    Contract: kernel_size odd int, mask_type "A" or "B"; returns a float [k, k] tensor
    (float32 or float64) with 1.0 at every row above the centre and left of the centre in
    its row, plus the centre itself for type "B"; 0.0 elsewhere.
    """
    return check_function(
        "PixelCNN 的掩码",
        student_mask,
        lambda kernel_size, mask_type: generative.pixelcnn_mask(kernel_size, mask_type),
        _mask_cases,
        atol=0.0,
        rtol=0.0,
        hint=_mask_hint,
        devices=[torch.device("cpu")],  # the mask is built on the CPU, then moved with the layer
        dtypes={torch.float32: (torch.float32, torch.float64)},
        dtype_hint="（1.0 表示使用该权重，0.0 表示屏蔽，例如 mask.float()。）",
        forbidden=[forbid(generative.pixelcnn_mask, generative.MaskedConv2d)],
    )


# ----------------------------------------------------------------------------------------
# The reparameterisation trick (values and gradients)
# ----------------------------------------------------------------------------------------


def _wrapped(student: Any, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Any:
    """``wrapper(student)``, or the student's non-callable as is (so the verdict names it)."""
    return wrapper(student) if callable(student) else student


def _with_gradients(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function(mu, logvar, eps)`` and also return d(sum(w * z))/d(mu, logvar)."""

    def run(mu: Tensor, logvar: Tensor, eps: Tensor, weight: Tensor) -> Any:
        # mu and logvar arrive as leaves that require gradients (see the cases).
        z = function(mu, logvar, eps)
        if not isinstance(z, Tensor) or z.shape != weight.shape:
            return z
        if z.requires_grad and mu.requires_grad and logvar.requires_grad:
            try:
                grad_mu, grad_logvar = torch.autograd.grad(
                    (z * weight).sum(), (mu, logvar), allow_unused=True
                )
            except RuntimeError as error:  # e.g. an input changed in place after use
                return z.detach(), f"无法计算梯度：{error}", None
        else:
            grad_mu = grad_logvar = None
        grad_mu = torch.zeros_like(mu) if grad_mu is None else grad_mu
        grad_logvar = torch.zeros_like(logvar) if grad_logvar is None else grad_logvar
        return z.detach(), grad_mu.detach(), grad_logvar.detach()

    return run


def _reparameterize_reference(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    return mu + torch.exp(0.5 * logvar) * eps


def _reparameterize_cases(device: torch.device) -> List[Case]:
    def case(name: str, *shape: int, seed: int, scale: float = 1.0) -> Case:
        return Case(
            name,
            (
                randn(*shape, seed=seed, device=device).requires_grad_(True),
                (scale * randn(*shape, seed=seed + 1, device=device)).requires_grad_(True),
                randn(*shape, seed=seed + 2, device=device),
                randn(*shape, seed=seed + 3, device=device),
            ),
        )

    return [
        case("a batch of 4, Z = 3", 4, 3, seed=0),
        case("batch of 1, Z = 2", 1, 2, seed=10),
        case("large |logvar| (sigma from 0.007 to 150)", 3, 5, seed=20, scale=4.0),
        case("3-D input [2, 3, 4]", 2, 3, 4, seed=30),
        case("empty batch [0, 3]", 0, 3, seed=40),
    ]


def _reparameterize_hint(mismatch: Mismatch, case: Case) -> str:
    if mismatch.where == "输出":
        return "返回一个与 mu 形状相同的张量 z。"
    if mismatch.where == "输出[0]":
        actual = mismatch.actual
        if isinstance(actual, Tensor) and actual.is_floating_point() and actual.isnan().any():
            return "出现了 NaN：logvar 可以是负数，不能对它开平方；标准差是 exp(logvar / 2)。"
        return (
            "z 的值不对：z = mu + sigma * eps，其中 sigma = exp(logvar / 2)（不是 exp(logvar)），"
            "eps 用传入的那个（不要重新采样），并保持 float64。"
        )
    return (
        "z 的值对了，但梯度不对：z 必须由 mu、logvar 经可导的运算得到"
        "（不要 .detach()、.item() 或 torch.normal 重新采样），这样梯度才能流回编码器。"
    )


@exercise_check
def check_reparameterize(
    student_reparameterize: Callable[[Tensor, Tensor, Tensor], Tensor],
) -> CheckResult:
    """Check ``student_reparameterize(mu, logvar, eps)``: the value of z and its gradients.

    Contract: mu, logvar, eps of the same shape [..., Z] (mu and logvar require
    gradients); returns ``z = mu + exp(logvar / 2) * eps`` with the given eps, computed so
    that gradients flow back to mu and logvar. The library's ``reparameterize`` (which
    draws its own noise) is off limits.
    """
    return check_function(
        "重参数化技巧",
        _wrapped(student_reparameterize, _with_gradients),
        _with_gradients(_reparameterize_reference),
        _reparameterize_cases,
        atol=1e-12,
        rtol=1e-10,
        hint=_reparameterize_hint,
        forbidden=[forbid(generative.reparameterize, generative.VAE)],
    )


# ----------------------------------------------------------------------------------------
# The KL term of the VAE
# ----------------------------------------------------------------------------------------


def _kl_cases(device: torch.device) -> List[Case]:
    zeros = torch.zeros(2, 3, dtype=torch.float64, device=device)
    return [
        Case("a batch of 4, Z = 3", (randn(4, 3, seed=0, device=device),
                                     randn(4, 3, seed=1, device=device))),
        Case("batch of 1, Z = 5", (randn(1, 5, seed=2, device=device),
                                   randn(1, 5, seed=3, device=device))),
        Case("q equals the prior (mu = 0, logvar = 0)", (zeros, zeros.clone())),
        Case("far from the prior (|mu| ~ 5, |logvar| ~ 3)",
             (5 * randn(3, 4, seed=4, device=device), 3 * randn(3, 4, seed=5, device=device))),
        Case("3-D input [2, 3, 4] (result [2, 3])", (randn(2, 3, 4, seed=6, device=device),
                                                    randn(2, 3, 4, seed=7, device=device))),
        Case("empty batch [0, 4]", (torch.zeros(0, 4, dtype=torch.float64, device=device),
                                    torch.zeros(0, 4, dtype=torch.float64, device=device))),
    ]  # fmt: skip


def _kl_hint(mismatch: Mismatch, case: Case) -> str:
    expected, actual = mismatch.expected, mismatch.actual
    if isinstance(actual, Tensor) and isinstance(expected, Tensor):
        if actual.shape != expected.shape:
            return "只对最后一维（潜变量维度 Z）求和，每个样本得到一个数：[..., Z] -> [...]。"
        if actual.is_floating_point() and actual.numel():
            exp, act = expected.detach().cpu().double(), actual.detach().cpu().double()
            if torch.allclose(act, -exp, rtol=1e-6, atol=1e-9):
                return "符号反了：KL = -1/2 * Σ(1 + logvar - mu² - exp(logvar))，它总是 ≥ 0。"
            if torch.allclose(act, 2 * exp, rtol=1e-6, atol=1e-9):
                return "差了一个因子 2：公式前面是 1/2。"
            if (act < -1e-12).any():
                return "KL 散度不可能是负数：检查前面的负号，以及 logvar 与 exp(logvar) 的位置。"
    return (
        "KL(N(mu, sigma²) || N(0, 1)) = -1/2 * Σ_j (1 + logvar_j - mu_j² - exp(logvar_j))："
        "对维度求和（不是平均），logvar 是 log sigma²（不是 log sigma）。"
    )


@exercise_check
def check_kl_divergence(student_kl: Callable[[Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``student_kl(mu, logvar)`` [..., Z] -> [...] against ``generative.kl_divergence``.

    Contract: ``-1/2 * sum_j (1 + logvar_j - mu_j^2 - exp(logvar_j))`` over the last
    dimension, in the input's dtype. The library's ``kl_divergence`` and
    ``torch.distributions.kl_divergence`` are off limits.
    """
    return check_function(
        "高斯 KL 项",
        student_kl,
        generative.kl_divergence,
        _kl_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_kl_hint,
        forbidden=[
            forbid(generative.kl_divergence),
            forbid(
                "torch.distributions.kl.kl_divergence", name="torch.distributions.kl_divergence"
            ),
        ],
    )


# ----------------------------------------------------------------------------------------
# GAN losses
# ----------------------------------------------------------------------------------------


def _discriminator_cases(device: torch.device) -> List[Case]:
    def logits(*values: float) -> Tensor:
        return torch.tensor(values, dtype=torch.float64, device=device)

    return [
        Case("8 real and 8 fake logits", (randn(8, seed=0, device=device),
                                          randn(8, seed=1, device=device))),
        Case("one of each", (logits(0.3), logits(-1.2))),
        Case("different batch sizes (5 real, 3 fake)", (randn(5, seed=2, device=device),
                                                         randn(3, seed=3, device=device))),
        Case("a confident discriminator (logits ±800)", (logits(800.0, -800.0, 5.0),
                                                         logits(-800.0, 800.0, -5.0))),
    ]  # fmt: skip


def _generator_cases(device: torch.device) -> List[Case]:
    def logits(*values: float) -> Tensor:
        return torch.tensor(values, dtype=torch.float64, device=device)

    return [
        Case("8 fake logits", (randn(8, seed=4, device=device),)),
        Case("one fake logit", (logits(-0.7),)),
        Case("D rejects the fakes (logits -10)", (logits(-10.0, -12.0, -9.0),)),
        Case("a confident discriminator (logits ±800)", (logits(-800.0, 800.0, 0.0),)),
    ]


def _stability_hint(mismatch: Mismatch) -> str:
    actual = mismatch.actual
    if isinstance(actual, Tensor) and actual.is_floating_point() and not actual.isfinite().all():
        return (
            "结果是 inf 或 NaN：sigmoid(±800) 在浮点数里正好是 1 或 0，log(0) = -inf。"
            "直接用 logits 计算：-log(sigmoid(t)) = softplus(-t)，"
            "-log(1 - sigmoid(t)) = softplus(t)（或 F.binary_cross_entropy_with_logits）。"
        )
    if isinstance(actual, Tensor) and actual.dim() != 0:
        return "损失应当是一个标量（对批次求平均）。"
    return ""


def _discriminator_hint(mismatch: Mismatch, case: Case) -> str:
    text = _stability_hint(mismatch)
    if text:
        return text
    return (
        "判别器把真实样本标为 1、生成样本标为 0：loss = mean(-log D(x_real)) + "
        "mean(-log(1 - D(x_fake)))，两项分别对各自的批次求平均（两批的大小可以不同）。"
    )


def _generator_hint(mismatch: Mismatch, case: Case) -> str:
    text = _stability_hint(mismatch)
    if text:
        return text
    return (
        "实践中用非饱和（non-saturating）的生成器损失 mean(-log D(G(z)))，"
        "而不是极小极大形式的 mean(log(1 - D(G(z))))：后者在 D 拒绝假样本时梯度消失。"
    )


@exercise_check
def check_discriminator_loss(
    student_loss: Callable[[Tensor, Tensor], Tensor],
) -> CheckResult:
    """Check ``student_loss(real_logits, fake_logits)`` against ``discriminator_loss``.

    Contract: logits [B] and [B'] (sizes may differ); returns the scalar
    ``mean(softplus(-real)) + mean(softplus(fake))`` (= mean(-log D(x)) + mean(-log(1 -
    D(G(z))))), finite for logits of ±800, in the logits' dtype.
    """
    return check_function(
        "判别器损失",
        student_loss,
        generative.discriminator_loss,
        _discriminator_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_discriminator_hint,
        forbidden=[forbid(generative.discriminator_loss, generative.GAN)],
    )


@exercise_check
def check_generator_loss(student_loss: Callable[[Tensor], Tensor]) -> CheckResult:
    """Check ``student_loss(fake_logits)`` against the non-saturating ``generator_loss``.

    Contract: logits [B]; returns the scalar ``mean(softplus(-fake))`` = mean(-log
    D(G(z))), finite for logits of ±800, in the logits' dtype.
    """
    return check_function(
        "生成器损失（非饱和）",
        student_loss,
        generative.generator_loss,
        _generator_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_generator_hint,
        forbidden=[forbid(generative.generator_loss, generative.GAN)],
    )


# ----------------------------------------------------------------------------------------
# One ELBO evaluation
# ----------------------------------------------------------------------------------------


def _elbo_cases(device: torch.device) -> List[Case]:
    def binary(*shape: int, seed: int) -> Tensor:
        return (randn(*shape, seed=seed, device=device) > 0.3).double()

    def case(name: str, batch: int, image: tuple, latent: int, seed: int, scale: float = 2.0):
        x = binary(batch, *image, seed=seed)
        logits = scale * randn(batch, *image, seed=seed + 1, device=device)
        mu = randn(batch, latent, seed=seed + 2, device=device)
        logvar = 0.5 * randn(batch, latent, seed=seed + 3, device=device)
        return Case(name, (x, logits, mu, logvar))

    confident_x = binary(2, 1, 8, 8, seed=50)
    confident = Case(
        "a confident decoder (logits ±40, matching x)",
        (
            confident_x,
            40.0 * (2 * confident_x - 1),
            randn(2, 4, seed=51, device=device),
            randn(2, 4, seed=52, device=device),
        ),
    )
    return [
        case("4 images [1, 8, 8], Z = 3", 4, (1, 8, 8), 3, seed=0),
        case("one image, Z = 2", 1, (1, 8, 8), 2, seed=10),
        case("flat data [B, 64]", 3, (64,), 5, seed=20),
        confident,
        case("empty batch", 0, (1, 8, 8), 3, seed=30),
    ]


def _elbo_hint(mismatch: Mismatch, case: Case) -> str:
    expected, actual = mismatch.expected, mismatch.actual
    if isinstance(actual, Tensor) and isinstance(expected, Tensor):
        if actual.shape != expected.shape:
            return "每张图像一个 ELBO：对每张图像的所有像素求和，结果形状 [B]。"
        if actual.is_floating_point() and not actual.isfinite().all():
            return (
                "结果是 inf 或 NaN：sigmoid(40) 在浮点数里等于 1，log(1 - 1) = -inf。"
                "用 logits 计算对数似然，例如 "
                "-F.binary_cross_entropy_with_logits(..., reduction='none')。"
            )
        if actual.numel() and (actual.detach().cpu().double() > 1e-9).any():
            return (
                "ELBO 是对数概率的下界，对二值图像不可能为正：检查符号（ELBO = log p(x|z) - KL）。"
            )
    return (
        "ELBO = Σ_像素 [x log σ(l) + (1 - x) log(1 - σ(l))] - KL(q(z|x) || N(0, I))，"
        "其中 KL = -1/2 Σ(1 + logvar - mu² - exp(logvar))：重建项是伯努利对数似然（不是平方误差），"
        "对像素求和（不是平均），并且减去 KL。"
    )


@exercise_check
def check_elbo(student_elbo: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> CheckResult:
    """Check ``student_elbo(x, logits, mu, logvar)`` [B] against ``generative.elbo``.

    Contract: x binary [B, ...], logits of the same shape, mu and logvar [B, Z]; returns
    the ELBO of each item [B] in nats: the Bernoulli log-likelihood summed over all but the
    batch dimension, computed stably from the logits, minus the KL term. The library's
    ``elbo`` and ``bernoulli_log_likelihood`` are off limits.
    """
    return check_function(
        "ELBO",
        student_elbo,
        generative.elbo,
        _elbo_cases,
        atol=1e-9,
        rtol=1e-8,
        hint=_elbo_hint,
        forbidden=[forbid(generative.elbo, generative.bernoulli_log_likelihood, generative.VAE)],
    )


# ----------------------------------------------------------------------------------------
# The whole ELBO: encoder, reparameterised sample, decoder (values and gradients)
# ----------------------------------------------------------------------------------------


class _Encoder(nn.Module):
    """q(z | x): data [B, *shape] -> (mu, logvar), each [B, Z] (a small MLP)."""

    def __init__(self, data_dims: int, latent_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(data_dims, hidden_dim)
        self.out = nn.Linear(hidden_dim, 2 * latent_dim)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        mu, logvar = self.out(torch.tanh(self.hidden(x.flatten(1)))).chunk(2, dim=-1)
        return mu, logvar


class _Decoder(nn.Module):
    """p(x | z): z [B, Z] -> Bernoulli logits [B, *shape] (a small MLP)."""

    def __init__(self, data_shape: Tuple[int, ...], latent_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.data_shape = data_shape
        self.hidden = nn.Linear(latent_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, int(torch.tensor(data_shape).prod()))

    def forward(self, z: Tensor) -> Tensor:
        return self.out(torch.tanh(self.hidden(z))).reshape(-1, *self.data_shape)


def _networks(
    data_shape: Tuple[int, ...], latent: int, seed: int, device: torch.device, dtype: torch.dtype,
    scale: float = 1.0,
) -> Tuple[nn.Module, nn.Module]:  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        dims = int(torch.tensor(data_shape).prod())
        encoder, decoder = _Encoder(dims, latent, 8), _Decoder(data_shape, latent, 8)
    with torch.no_grad():
        decoder.out.weight.mul_(scale)
    return encoder.to(device, dtype), decoder.to(device, dtype)


def _elbo_with_gradients(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function(encoder, decoder, x, eps)``; also return d(sum(w * elbo))/d(parameters)."""

    def run(encoder: nn.Module, decoder: nn.Module, x: Tensor, eps: Tensor, weight: Tensor) -> Any:
        value = function(encoder, decoder, x, eps)
        if not isinstance(value, Tensor) or value.shape != weight.shape:
            return value
        named = [(f"encoder.{n}", p) for n, p in encoder.named_parameters()]
        named += [(f"decoder.{n}", p) for n, p in decoder.named_parameters()]
        grads: List[Optional[Tensor]] = [None] * len(named)
        if value.requires_grad:
            try:
                grads = list(
                    torch.autograd.grad(
                        (value * weight).sum(), [p for _, p in named], allow_unused=True
                    )
                )
            except RuntimeError as error:  # e.g. an input changed in place after use
                return {"elbo": value.detach(), "参数的梯度": f"无法计算：{error}"}
        return {
            "elbo": value.detach(),
            "参数的梯度": {
                name: (torch.zeros_like(p) if g is None else g.detach())
                for (name, p), g in zip(named, grads)
            },
        }

    return run


def _vae_elbo_reference(encoder: nn.Module, decoder: nn.Module, x: Tensor, eps: Tensor) -> Tensor:
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    return generative.elbo(x, decoder(z), mu, logvar)


def _vae_cases(device: torch.device, dtype: torch.dtype) -> List[Case]:
    def case(
        name: str, batch: int, data_shape: Tuple[int, ...], latent: int, seed: int,
        scale: float = 1.0,
    ) -> Case:  # fmt: skip
        generator = torch.Generator().manual_seed(seed)
        x = (torch.rand(batch, *data_shape, generator=generator) < 0.4).to(device, dtype)
        eps = torch.randn(batch, latent, generator=generator, dtype=torch.float64).to(device, dtype)
        weight = torch.rand(batch, generator=generator, dtype=torch.float64).to(device, dtype)
        encoder, decoder = _networks(data_shape, latent, seed, device, dtype, scale)
        return Case(name, (encoder, decoder, x, eps, weight))

    return [
        case("4 binary vectors [4, 12], Z = 3", 4, (12,), 3, seed=70),
        case("one image [1, 1, 4, 4], Z = 2", 1, (1, 4, 4), 2, seed=71),
        case("3 images [3, 1, 3, 3], Z = 4", 3, (1, 3, 3), 4, seed=72),
        case("a confident decoder (logits ±40)", 2, (10,), 2, seed=73, scale=60.0),
        case("empty batch", 0, (6,), 2, seed=74),
    ]


def _vae_variant(
    sample: str = "reparameterised", sigma: str = "half", kl_sign: float = 1.0,
    per_pixel: str = "sum",
) -> Callable[..., Tensor]:  # fmt: skip
    def run(encoder: nn.Module, decoder: nn.Module, x: Tensor, eps: Tensor) -> Tensor:
        mu, logvar = encoder(x)
        std = torch.exp(0.5 * logvar) if sigma == "half" else torch.exp(logvar)
        z = mu if sample == "mean" else mu + std * eps
        if sample == "detached":
            z = z.detach()
        terms = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none").flatten(1)
        log_likelihood = terms.sum(1) if per_pixel == "sum" else terms.mean(1)
        kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
        return log_likelihood - kl_sign * kl

    return run


_VAE_MISTAKES: Mistakes = {
    "decoder sees mu": (
        _vae_variant(sample="mean"),
        "解码器的输入应当是采样出来的 z = mu + sigma * eps，而不是 mu 本身"
        "（那样就成了普通的自编码器）。",
    ),
    "sigma = exp(logvar)": (
        _vae_variant(sigma="full"),
        "标准差是 sigma = exp(logvar / 2)，不是 exp(logvar)（logvar 是 log sigma²）。",
    ),
    "z detached": (
        _vae_variant(sample="detached"),
        "ELBO 的值对了，但重建项的梯度没有流回编码器：z 要由 mu、logvar 经可导的运算得到，"
        "不要 .detach()（这正是重参数化技巧的意义）。",
    ),
    "KL added": (
        _vae_variant(kl_sign=-1.0),
        "ELBO = 重建项 - KL：KL 要减去。",
    ),
    "mean over pixels": (
        _vae_variant(per_pixel="mean"),
        "重建项对每张图像的所有像素求和，不是求平均。",
    ),
}


def _vae_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.output if mismatch.output is not None else mismatch.actual
    if not isinstance(actual, dict):
        if isinstance(actual, Tensor) and actual.dim() != 1:
            return "返回每张图像的 ELBO，形状 [B]（不要对批求和或求平均）。"
        return "返回一个形状为 [B] 的张量：每张图像的 ELBO。"
    if isinstance(actual.get("elbo"), Tensor) and not actual["elbo"].isfinite().all():
        return (
            "结果是 inf 或 NaN：很自信的 logits（±40）让 sigmoid 等于 0 或 1，log(0) = -inf。"
            "用 -F.binary_cross_entropy_with_logits(logits, x, reduction='none') 计算对数似然。"
        )
    for wrong, text in _VAE_MISTAKES.values():
        try:
            if same(_elbo_with_gradients(wrong)(*_fresh(case.args)), actual):
                return text
        except Exception:
            continue
    return (
        "步骤：mu, logvar = encoder(x)；z = mu + exp(logvar / 2) * eps（用传入的 eps）；"
        "logits = decoder(z)；ELBO = Σ_像素 伯努利对数似然 - KL，每张图像一个数。"
    )


def _fresh(args: Tuple[Any, ...]) -> Tuple[Any, ...]:
    from course_lib.checks.guard import clone

    return clone(args)


@exercise_check
def check_vae_elbo(student_vae_elbo: Callable[..., Tensor]) -> CheckResult:
    """Check one ELBO estimate of a VAE, from the data to the number, with its gradients.

    Contract::

        vae_elbo(encoder, decoder, x, eps) -> elbo [B]

    ``encoder(x)`` returns ``(mu, logvar)``, each [B, Z]; ``decoder(z)`` returns Bernoulli
    logits shaped like x [B, ...] (binary data); ``eps`` [B, Z] is the noise to use. The
    student computes ``z = mu + exp(logvar / 2) * eps``, the logits, and per item the
    Bernoulli log-likelihood (summed over all but the batch dimension, stable for
    confident logits) minus ``KL(N(mu, sigma^2) || N(0, I))``. Checked: the values and the
    gradients of ``sum(w * elbo)`` with respect to every parameter of both networks (so
    the sample must keep its path to the encoder). The library's ``elbo`` and ``VAE``
    are off limits.
    """
    return check_function(
        "VAE 的 ELBO：编码、重参数化采样、解码",
        _wrapped(student_vae_elbo, _elbo_with_gradients),
        _elbo_with_gradients(_vae_elbo_reference),
        _vae_cases,
        atol=1e-10,
        rtol=1e-8,
        atol32=1e-4,
        rtol32=1e-4,
        hint=_vae_hint,
        forbidden=[forbid(generative.elbo, generative.VAE)],
    )


# ----------------------------------------------------------------------------------------
# One GAN training step with two optimisers
# ----------------------------------------------------------------------------------------

GanStep = Callable[..., Any]


def _gan_step_reference(
    generator: nn.Module, discriminator: nn.Module, g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer, real: Tensor, noise: Tensor,
) -> Tuple[float, float]:  # fmt: skip
    """The textbook step (private reference: the library's ``GAN`` splits it over two calls)."""
    fake = generator(noise)
    d_optimizer.zero_grad()
    d_loss = generative.discriminator_loss(discriminator(real), discriminator(fake.detach()))
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad()
    g_loss = generative.generator_loss(discriminator(fake))
    g_loss.backward()
    g_optimizer.step()
    return d_loss.item(), g_loss.item()


def _state(module: nn.Module) -> Dict[str, Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _observed(step: GanStep) -> GanStep:
    """Run ``step`` and return what it did: its losses, both networks' parameters after it,
    and how many backward passes reached the generator (1: only its own step)."""

    def run(
        generator: nn.Module, discriminator: nn.Module, g_optimizer: torch.optim.Optimizer,
        d_optimizer: torch.optim.Optimizer, real: Tensor, noise: Tensor,
    ) -> Dict[str, Any]:  # fmt: skip
        passes: List[int] = []
        first = next(generator.parameters())
        handle = first.register_hook(lambda grad: passes.append(1))
        try:
            returned = step(generator, discriminator, g_optimizer, d_optimizer, real, noise)
        finally:
            handle.remove()
        return {
            "返回的 (d_loss, g_loss)": returned,
            "判别器的参数": _state(discriminator),
            "生成器的参数": _state(generator),
            "反向传播到生成器的次数": len(passes),
        }

    return run


def _gan_cases(device: torch.device, dtype: torch.dtype) -> List[Case]:
    def case(
        name: str, optimizer: str, batch: int, fakes: int, seed: int, confident: bool = False
    ) -> Case:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = generative.Generator(3, 8, data_shape=(2,), output="identity")
            discriminator = generative.Discriminator((2,), hidden_dim=8, dropout=0.0)
        generator.to(device, dtype)
        discriminator.to(device, dtype)
        if confident:  # logits of about +50: naive log(1 - sigmoid) gives log(0) = -inf
            with torch.no_grad():
                discriminator.net[-1].bias.fill_(50.0)
        for index, parameter in enumerate([*generator.parameters(), *discriminator.parameters()]):
            # Gradients left over from a previous step: each step must start from zero.
            parameter.grad = randn(
                *parameter.shape, seed=seed + 100 + index, device=device, dtype=dtype
            )
        if optimizer == "sgd":
            g_opt = torch.optim.SGD(generator.parameters(), lr=0.1)
            d_opt = torch.optim.SGD(discriminator.parameters(), lr=0.1)
        elif optimizer == "momentum":
            g_opt = torch.optim.SGD(generator.parameters(), lr=0.05, momentum=0.9)
            d_opt = torch.optim.SGD(discriminator.parameters(), lr=0.05, momentum=0.9)
        else:
            g_opt = torch.optim.Adam(generator.parameters(), lr=0.01, betas=(0.5, 0.999))
            d_opt = torch.optim.Adam(discriminator.parameters(), lr=0.02, betas=(0.5, 0.999))
        real = 2 + randn(batch, 2, seed=seed + 1, device=device, dtype=dtype)
        noise = randn(fakes, 3, seed=seed + 2, device=device, dtype=dtype)
        return Case(name, (generator, discriminator, g_opt, d_opt, real, noise))

    return [
        case("SGD (lr 0.1), 8 real and 8 fake", "sgd", 8, 8, seed=80),
        case("Adam (betas 0.5, 0.999), 6 real and 4 fake", "adam", 6, 4, seed=81),
        case("SGD with momentum, one real and one fake", "momentum", 1, 1, seed=82),
        case(
            "a discriminator fooled with confidence (logits about +50)",
            "sgd",
            5,
            5,
            seed=83,
            confident=True,
        ),
    ]


def _gan_variant(
    detach: bool = True, zero: str = "each", extra_d_step: bool = False,
    saturating: bool = False, g_first: bool = False,
) -> GanStep:  # fmt: skip
    """The step with switchable mistakes (to name a student's mistake)."""

    def step(generator, discriminator, g_optimizer, d_optimizer, real, noise):  # a mistake
        if zero == "start":
            g_optimizer.zero_grad()
            d_optimizer.zero_grad()

        def d_step(fake: Tensor) -> Tensor:
            if zero == "each":
                d_optimizer.zero_grad()
            loss = generative.discriminator_loss(
                discriminator(real), discriminator(fake.detach() if detach else fake)
            )
            loss.backward(retain_graph=not detach)
            d_optimizer.step()
            return loss

        def g_step(fake: Tensor) -> Tensor:
            if zero == "each":
                g_optimizer.zero_grad()
            logits = discriminator(fake)
            loss = -F.softplus(logits).mean() if saturating else F.softplus(-logits).mean()
            loss.backward()
            g_optimizer.step()
            if extra_d_step:
                d_optimizer.step()
            return loss

        fake = generator(noise)
        if g_first:
            g_loss = g_step(fake)
            d_loss = d_step(generator(noise))
        else:
            d_loss = d_step(fake)
            g_loss = g_step(fake)
        return d_loss.item(), g_loss.item()

    return step


_GAN_MISTAKES: Mistakes = {
    "no zero_grad": (
        _gan_variant(zero="never"),
        "梯度会累加：每次 backward 之前都要清零"
        "（d_optimizer.zero_grad()、g_optimizer.zero_grad()），"
        "否则上一步留下的梯度也被用来更新。",
    ),
    "not detached, zeroed once": (
        _gan_variant(detach=False, zero="start"),
        "判别器那一步要用 fake.detach()：否则判别器损失的梯度也流进了生成器，"
        "生成器的更新里混进了“帮判别器”的方向。",
    ),
    "not detached": (
        _gan_variant(detach=False),
        "判别器那一步要用 fake.detach()：否则判别器损失的反向传播也穿过了生成器"
        "（白算一遍，梯度没清零时还会污染生成器的更新）。",
    ),
    "D updated in the G step": (
        _gan_variant(extra_d_step=True),
        "生成器那一步只更新生成器：不要在 g_loss.backward() 之后调用 d_optimizer.step()"
        "（这时判别器的梯度来自生成器的损失，会把判别器往“被骗”的方向推）。",
    ),
    "saturating": (
        _gan_variant(saturating=True),
        "生成器用非饱和损失 mean(-log D(G(z))) = mean(softplus(-logits))，"
        "不是极小极大形式的 mean(log(1 - D(G(z))))。",
    ),
    "G first": (
        _gan_variant(g_first=True),
        "顺序是先更新判别器、再更新生成器（生成器那一步用更新后的判别器）。",
    ),
}


def _gan_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.output
    if isinstance(actual, dict):
        returned = actual.get("返回的 (d_loss, g_loss)")
        if isinstance(returned, (tuple, list)) and any(
            (isinstance(v, float) and v != v) or (isinstance(v, Tensor) and not v.isfinite().all())
            for v in returned
        ):
            return (
                "损失是 inf 或 NaN：判别器很自信时 sigmoid(50) 在浮点数里等于 1，"
                "log(1 - 1) = -inf。"
                "用 softplus 或 F.binary_cross_entropy_with_logits 直接从 logits 计算。"
            )
        for wrong, text in _GAN_MISTAKES.values():
            try:
                if same(_observed(wrong)(*_fresh(case.args)), actual):
                    return text
            except Exception:
                continue
        if actual.get("反向传播到生成器的次数") != 1 and "次数" in mismatch.where:
            return _GAN_MISTAKES["not detached"][1]
    return (
        "一步的顺序：fake = generator(noise)；判别器：d_optimizer.zero_grad()，d_loss = "
        "discriminator_loss(D(real), D(fake.detach()))，backward，d_optimizer.step()；生成器："
        "g_optimizer.zero_grad()，g_loss = mean(softplus(-D(fake)))，backward，g_optimizer.step()；"
        "返回 (d_loss.item(), g_loss.item())。"
    )


def _gan_error_hint(error: BaseException, case: Case) -> str:
    text = str(error)
    if "second time" in text:
        return (
            "判别器那一步的 backward 已经释放了生成器的计算图：在判别器损失里用 fake.detach()，"
            "生成器那一步再对 fake 做 backward。"
        )
    if "modified by an inplace operation" in text:
        return (
            "d_optimizer.step() 原地修改了判别器的参数，之前算出的 D(fake) 的计算图就不能再用了："
            "生成器那一步要重新计算 discriminator(fake)。"
        )
    return ""


@exercise_check
def check_gan_step(student_gan_step: GanStep) -> CheckResult:
    """Check one training step of a GAN with two optimisers.

    Contract::

        gan_step(generator, discriminator, g_optimizer, d_optimizer, real, noise)
            -> (d_loss: float, g_loss: float)

    ``generator`` maps noise [B', Z] to fakes [B', *data]; ``discriminator`` maps data to
    logits [B]; each optimizer holds its own network's parameters; the parameters may
    hold stale gradients from an earlier step. One step: ``fake = generator(noise)``;
    discriminator update (zero its gradients, ``discriminator_loss(D(real),
    D(fake.detach()))``, backward, step); then generator update (zero its gradients, the
    non-saturating ``mean(softplus(-D(fake)))`` with the updated D, backward, step).
    Returns both losses as numbers (``.item()``; 0-dim tensors are accepted). Checked
    against a reference step on deep copies with the same noise: the returned losses,
    every parameter of both networks afterwards, and that only the generator's own
    backward pass reached the generator. ``real`` and ``noise`` must not change; the
    library's ``GAN`` is off limits (its loss functions are allowed).
    """
    return check_function(
        "GAN 的一步训练（两个优化器）",
        _wrapped(student_gan_step, _observed),
        _observed(_gan_step_reference),
        _gan_cases,
        atol=1e-10,
        rtol=1e-8,
        atol32=1e-5,
        rtol32=1e-4,
        hint=_gan_hint,
        error_hint=_gan_error_hint,
        mutable=(0, 1, 2, 3),
        forbidden=[forbid(generative.GAN)],
    )
