"""Proofs that the generative chapter's exercise checks pass right answers and fail the
classic wrong ones (each with the hint a student needs)."""

import torch
import torch.nn.functional as F

from course_lib.checks import generative as checks
from tests.checkproof import Proof, Wrong, parametrize_proofs

# ----------------------------------------------------------------------------- the mask


def mask_correct(kernel_size, mask_type):
    centre = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:centre, :] = 1
    mask[centre, :centre] = 1
    if mask_type == "B":
        mask[centre, centre] = 1
    return mask


def mask_ignores_type(kernel_size, mask_type):
    return mask_correct(kernel_size, "B")


def mask_transposed(kernel_size, mask_type):
    return mask_correct(kernel_size, mask_type).T.contiguous()


def mask_whole_centre_row(kernel_size, mask_type):
    mask = mask_correct(kernel_size, mask_type)
    mask[kernel_size // 2, kernel_size // 2 + 1 :] = 1
    return mask


def mask_boolean(kernel_size, mask_type):
    return mask_correct(kernel_size, mask_type).bool()


# ------------------------------------------------------------------------- reparameterise


def reparameterize_correct(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


def reparameterize_std_is_exp_logvar(mu, logvar, eps):
    return mu + torch.exp(logvar) * eps


def reparameterize_sqrt_logvar(mu, logvar, eps):
    return mu + logvar.sqrt() * eps


def reparameterize_detached(mu, logvar, eps):
    return (mu + torch.exp(0.5 * logvar) * eps).detach()


def reparameterize_resampled(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def reparameterize_no_logvar_gradient(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar.detach()) * eps


# ------------------------------------------------------------------------------------ KL


def kl_correct(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)


def kl_notes_sign_slip(mu, logvar):
    return 0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)


def kl_mean_over_dims(mu, logvar):
    return -0.5 * torch.mean(1 + logvar - mu**2 - logvar.exp(), dim=-1)


def kl_without_half(mu, logvar):
    return -torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)


def kl_summed_over_batch(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())


def kl_logvar_as_log_sigma(mu, logvar):
    return -0.5 * torch.sum(1 + 2 * logvar - mu**2 - (2 * logvar).exp(), dim=-1)


# ------------------------------------------------------------------------------ GAN losses


def d_loss_correct(real_logits, fake_logits):
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def d_loss_naive_logs(real_logits, fake_logits):
    return (
        -torch.log(torch.sigmoid(real_logits)).mean()
        - torch.log(1 - torch.sigmoid(fake_logits)).mean()
    )


def d_loss_swapped_labels(real_logits, fake_logits):
    return F.softplus(real_logits).mean() + F.softplus(-fake_logits).mean()


def d_loss_pooled_mean(real_logits, fake_logits):
    both = torch.cat([F.softplus(-real_logits), F.softplus(fake_logits)])
    return both.mean()


def d_loss_per_item(real_logits, fake_logits):
    return F.softplus(-real_logits) + F.softplus(fake_logits).mean()


def g_loss_correct(fake_logits):
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def g_loss_saturating(fake_logits):
    return -F.softplus(fake_logits).mean()


def g_loss_naive_log(fake_logits):
    return -torch.log(torch.sigmoid(fake_logits)).mean()


def g_loss_wrong_label(fake_logits):
    return F.softplus(fake_logits).mean()


# ----------------------------------------------------------------------------------- ELBO


def elbo_correct(x, logits, mu, logvar):
    log_likelihood = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) - kl


def elbo_plus_kl(x, logits, mu, logvar):
    log_likelihood = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) + kl


def elbo_squared_error(x, logits, mu, logvar):
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return -(torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1) - kl


def elbo_naive_logs(x, logits, mu, logvar):
    p = torch.sigmoid(logits)
    log_likelihood = x * torch.log(p) + (1 - x) * torch.log(1 - p)
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) - kl


def elbo_mean_over_pixels(x, logits, mu, logvar):
    log_likelihood = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).mean(1) - kl


def elbo_scalar(x, logits, mu, logvar):
    return elbo_correct(x, logits, mu, logvar).mean()


PROOFS = [
    Proof(
        checks.check_pixelcnn_mask,
        correct=mask_correct,
        wrong=[
            Wrong(mask_ignores_type, "A 型掩码要屏蔽中心"),
            Wrong(mask_transposed, "逐行"),
            Wrong(mask_whole_centre_row, "右侧和下方"),
            Wrong(mask_boolean, "浮点张量"),
        ],
    ),
    Proof(
        checks.check_reparameterize,
        correct=reparameterize_correct,
        wrong=[
            Wrong(reparameterize_std_is_exp_logvar, "exp(logvar / 2)"),
            Wrong(reparameterize_sqrt_logvar, "NaN"),
            Wrong(reparameterize_detached, "梯度"),
            Wrong(reparameterize_resampled, "不要重新采样"),
            Wrong(reparameterize_no_logvar_gradient, "梯度才能流回"),
        ],
    ),
    Proof(
        checks.check_kl_divergence,
        correct=kl_correct,
        wrong=[
            Wrong(kl_notes_sign_slip, "符号反了"),
            Wrong(kl_mean_over_dims, "求和（不是平均）"),
            Wrong(kl_without_half, "因子 2"),
            Wrong(kl_summed_over_batch, "只对最后一维"),
            Wrong(kl_logvar_as_log_sigma, "log sigma²"),
        ],
    ),
    Proof(
        checks.check_discriminator_loss,
        correct=d_loss_correct,
        wrong=[
            Wrong(d_loss_naive_logs, "softplus"),
            Wrong(d_loss_swapped_labels, "真实样本标为 1"),
            Wrong(d_loss_pooled_mean, "各自的批次求平均"),
            Wrong(d_loss_per_item, "标量"),
        ],
    ),
    Proof(
        checks.check_generator_loss,
        correct=g_loss_correct,
        wrong=[
            Wrong(g_loss_saturating, "非饱和"),
            Wrong(g_loss_naive_log, "inf 或 NaN"),
            Wrong(g_loss_wrong_label, "mean(-log D(G(z)))"),
        ],
    ),
    Proof(
        checks.check_elbo,
        correct=elbo_correct,
        wrong=[
            Wrong(elbo_plus_kl, "减去 KL"),
            Wrong(elbo_squared_error, "伯努利对数似然"),
            Wrong(elbo_naive_logs, "inf 或 NaN"),
            Wrong(elbo_mean_over_pixels, "对像素求和"),
            Wrong(elbo_scalar, "形状 [B]"),
        ],
    ),
]

globals().update(parametrize_proofs(PROOFS))
