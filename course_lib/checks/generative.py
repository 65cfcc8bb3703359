"""Checks for the exercises of the chapter "generative models" (生成模型).

Each check compares the student's function with ``course_lib.generative`` on random
inputs (float64) and edge cases, on the CPU and, when present, on the GPU.
"""

from __future__ import annotations

from typing import Any, Callable, List

import torch
from torch import Tensor

from course_lib import generative
from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    randn,
)

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
    """Check ``student_mask(kernel_size, mask_type)`` against ``generative.pixelcnn_mask``."""
    return check_function(
        "PixelCNN 的掩码",
        student_mask,
        lambda kernel_size, mask_type: generative.pixelcnn_mask(kernel_size, mask_type),
        _mask_cases,
        atol=0.0,
        rtol=0.0,
        hint=_mask_hint,
        devices=[torch.device("cpu")],  # the mask is built on the CPU, then moved with the layer
    )


# ----------------------------------------------------------------------------------------
# The reparameterisation trick (values and gradients)
# ----------------------------------------------------------------------------------------


def _with_gradients(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``function(mu, logvar, eps)`` and also return d(sum(w * z))/d(mu, logvar)."""

    def run(mu: Tensor, logvar: Tensor, eps: Tensor, weight: Tensor) -> Any:
        mu = mu.detach().clone().requires_grad_(True)
        logvar = logvar.detach().clone().requires_grad_(True)
        z = function(mu, logvar, eps)
        if not isinstance(z, Tensor) or z.shape != weight.shape:
            return z
        if z.requires_grad:
            grad_mu, grad_logvar = torch.autograd.grad(
                (z * weight).sum(), (mu, logvar), allow_unused=True
            )
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
                randn(*shape, seed=seed, device=device),
                scale * randn(*shape, seed=seed + 1, device=device),
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
    """Check ``student_reparameterize(mu, logvar, eps)``: the value of z and its gradients."""
    if not callable(student_reparameterize):
        return check_function(
            "重参数化技巧", student_reparameterize, _reparameterize_reference,
            _reparameterize_cases, atol=1e-12, rtol=1e-10,
        )  # fmt: skip
    return check_function(
        "重参数化技巧",
        _with_gradients(student_reparameterize),
        _with_gradients(_reparameterize_reference),
        _reparameterize_cases,
        atol=1e-12,
        rtol=1e-10,
        hint=_reparameterize_hint,
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
    """Check ``student_kl(mu, logvar)`` [..., Z] -> [...] against ``generative.kl_divergence``."""
    return check_function(
        "高斯 KL 项",
        student_kl,
        generative.kl_divergence,
        _kl_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_kl_hint,
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
    """Check ``student_loss(real_logits, fake_logits)`` against ``discriminator_loss``."""
    return check_function(
        "判别器损失",
        student_loss,
        generative.discriminator_loss,
        _discriminator_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_discriminator_hint,
    )


@exercise_check
def check_generator_loss(student_loss: Callable[[Tensor], Tensor]) -> CheckResult:
    """Check ``student_loss(fake_logits)`` against the non-saturating ``generator_loss``."""
    return check_function(
        "生成器损失（非饱和）",
        student_loss,
        generative.generator_loss,
        _generator_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_generator_hint,
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
        (confident_x, 40.0 * (2 * confident_x - 1), randn(2, 4, seed=51, device=device),
         randn(2, 4, seed=52, device=device)),
    )  # fmt: skip
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
    """Check ``student_elbo(x, logits, mu, logvar)`` [B] against ``generative.elbo``."""
    return check_function(
        "ELBO",
        student_elbo,
        generative.elbo,
        _elbo_cases,
        atol=1e-9,
        rtol=1e-8,
        hint=_elbo_hint,
    )
