"""Proofs that the generative chapter's exercise checks pass right answers and fail the
classic wrong ones (each with the hint a student needs)."""

import torch
import torch.nn.functional as F

from course_lib import generative
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


# ------------------------------------------------------------------------- VAE ELBO


def vae_elbo(encoder, decoder, x, eps):
    mu, logvar = encoder(x)
    z = mu + torch.exp(0.5 * logvar) * eps
    log_likelihood = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none")
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) - kl


def vae_elbo_decodes_mu(encoder, decoder, x, eps):
    mu, logvar = encoder(x)
    log_likelihood = -F.binary_cross_entropy_with_logits(decoder(mu), x, reduction="none")
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) - kl


def vae_elbo_detached_sample(encoder, decoder, x, eps):
    mu, logvar = encoder(x)
    z = (mu + torch.exp(0.5 * logvar) * eps).detach()
    log_likelihood = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none")
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) - kl


def vae_elbo_std_is_exp_logvar(encoder, decoder, x, eps):
    mu, logvar = encoder(x)
    z = mu + torch.exp(logvar) * eps
    log_likelihood = -F.binary_cross_entropy_with_logits(decoder(z), x, reduction="none")
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) - kl


def vae_elbo_fresh_noise(encoder, decoder, x, eps):
    return vae_elbo(encoder, decoder, x, torch.randn_like(eps))


def vae_elbo_naive_logs(encoder, decoder, x, eps):
    mu, logvar = encoder(x)
    p = torch.sigmoid(decoder(mu + torch.exp(0.5 * logvar) * eps))
    log_likelihood = x * torch.log(p) + (1 - x) * torch.log(1 - p)
    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=-1)
    return log_likelihood.flatten(1).sum(1) - kl


def vae_elbo_batch_mean(encoder, decoder, x, eps):
    return vae_elbo(encoder, decoder, x, eps).mean()


def vae_elbo_by_library(encoder, decoder, x, eps):
    mu, logvar = encoder(x)
    return generative.elbo(x, decoder(mu + torch.exp(0.5 * logvar) * eps), mu, logvar)


# ------------------------------------------------------------------------- GAN step


def gan_step(generator, discriminator, g_optimizer, d_optimizer, real, noise, detach=True,
             zero_grad=True, extra_d_step=False, saturating=False, naive_logs=False):  # fmt: skip
    """One step, written as a student would; the keywords switch on the classic mistakes."""
    fake = generator(noise)
    if zero_grad:
        d_optimizer.zero_grad()
    real_logits, fake_logits = discriminator(real), discriminator(fake.detach() if detach else fake)
    if naive_logs:
        d_loss = (-torch.log(torch.sigmoid(real_logits)).mean()
                  - torch.log(1 - torch.sigmoid(fake_logits)).mean())  # fmt: skip
    else:
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    d_loss.backward()
    d_optimizer.step()
    if zero_grad:
        g_optimizer.zero_grad()
    logits = discriminator(fake)
    if saturating:
        g_loss = -F.softplus(logits).mean()
    elif naive_logs:
        g_loss = -torch.log(torch.sigmoid(logits)).mean()
    else:
        g_loss = F.softplus(-logits).mean()
    g_loss.backward()
    g_optimizer.step()
    if extra_d_step:
        d_optimizer.step()
    return d_loss.item(), g_loss.item()


def gan_step_with_library_losses_and_fresh_fakes(
    generator, discriminator, g_optimizer, d_optimizer, real, noise
):
    """Also right: the library's loss functions, no_grad fakes for D, new fakes for G."""
    with torch.no_grad():
        fake = generator(noise)
    d_optimizer.zero_grad()
    d_loss = generative.discriminator_loss(discriminator(real), discriminator(fake))
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad()
    g_loss = generative.generator_loss(discriminator(generator(noise)))
    g_loss.backward()
    g_optimizer.step()
    return d_loss, g_loss


def gan_step_without_detach(*args):
    return gan_step(*args, detach=False)  # the D step's backward frees the generator's graph


def gan_step_without_detach_zeroing_first(
    generator, discriminator, g_optimizer, d_optimizer, real, noise
):
    g_optimizer.zero_grad()
    d_optimizer.zero_grad()
    fake = generator(noise)
    d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(discriminator(fake)).mean()
    d_loss.backward(retain_graph=True)
    d_optimizer.step()
    g_loss = F.softplus(-discriminator(fake)).mean()
    g_loss.backward()
    g_optimizer.step()
    return d_loss.item(), g_loss.item()


def gan_step_without_detach_but_fresh_fakes(
    generator, discriminator, g_optimizer, d_optimizer, real, noise
):
    d_optimizer.zero_grad()
    fake_logits = discriminator(generator(noise))
    d_loss = F.softplus(-discriminator(real)).mean() + F.softplus(fake_logits).mean()
    d_loss.backward()
    d_optimizer.step()
    g_optimizer.zero_grad()
    g_loss = F.softplus(-discriminator(generator(noise))).mean()
    g_loss.backward()
    g_optimizer.step()
    return d_loss.item(), g_loss.item()


def gan_step_without_zero_grad(*args):
    return gan_step(*args, zero_grad=False)


def gan_step_updates_d_twice(*args):
    return gan_step(*args, extra_d_step=True)


def gan_step_saturating(*args):
    return gan_step(*args, saturating=True)


def gan_step_naive_logs(*args):
    return gan_step(*args, naive_logs=True)


def gan_step_by_library(generator, discriminator, g_optimizer, d_optimizer, real, noise):
    gan = generative.GAN(generator, discriminator)  # the library's alternating updates
    losses = []
    for optimizer in (d_optimizer, g_optimizer):
        optimizer.zero_grad()
        _, loss = gan(real)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return tuple(losses)


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
        delegate=generative.pixelcnn_mask,
        float32_inputs=False,
        dtype_map={torch.float32: torch.int64},
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
        delegate=lambda mu, logvar, eps: generative.reparameterize(mu, logvar),
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
        delegate=generative.kl_divergence,
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
        delegate=generative.discriminator_loss,
    ),
    Proof(
        checks.check_generator_loss,
        correct=g_loss_correct,
        wrong=[
            Wrong(g_loss_saturating, "非饱和"),
            Wrong(g_loss_naive_log, "inf 或 NaN"),
            Wrong(g_loss_wrong_label, "mean(-log D(G(z)))"),
        ],
        delegate=generative.generator_loss,
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
        delegate=generative.elbo,
    ),
    Proof(
        checks.check_vae_elbo,
        correct=vae_elbo,
        wrong=[
            Wrong(vae_elbo_decodes_mu, "而不是 mu 本身"),
            Wrong(vae_elbo_detached_sample, "不要 .detach()"),
            Wrong(vae_elbo_std_is_exp_logvar, "exp(logvar / 2)"),
            Wrong(vae_elbo_fresh_noise, "用传入的 eps"),
            Wrong(vae_elbo_naive_logs, "inf 或 NaN"),
            Wrong(vae_elbo_batch_mean, "形状 [B]"),
        ],
        delegate=vae_elbo_by_library,
        hybrid=False,  # the gradients of the given networks are checked: no float32 copy
    ),
    Proof(
        checks.check_gan_step,
        correct=gan_step,
        also_correct=[gan_step_with_library_losses_and_fresh_fakes],
        wrong=[
            Wrong(gan_step_without_detach_zeroing_first, "fake.detach()"),
            Wrong(gan_step_without_detach_but_fresh_fakes, "fake.detach()"),
            Wrong(gan_step_without_zero_grad, "zero_grad()"),
            Wrong(gan_step_updates_d_twice, "不要在 g_loss.backward() 之后调用 d_optimizer.step()"),
            Wrong(gan_step_saturating, "非饱和损失"),
            Wrong(gan_step_naive_logs, "inf 或 NaN"),
        ],
        delegate=gan_step_by_library,
        hybrid=False,  # the step changes the given networks: no float32 copy
    ),
]


def test_gan_step_without_detach_gets_the_detach_hint(monkeypatch, capsys):
    """The classic crash: backward through the generator's graph a second time."""
    monkeypatch.delenv("COURSE_STRICT_CHECKS", raising=False)
    result = checks.check_gan_step(gan_step_without_detach)
    printed = capsys.readouterr().out
    assert result.status == "error" and "fake.detach()" in printed, printed


def test_gan_step_reference_trains_like_the_library_gan(monkeypatch):
    """The private reference is the library's GAN update, split in its two turns."""
    case = checks._gan_cases(torch.device("cpu"), torch.float64)[0]
    generator, discriminator, g_opt, d_opt, real, noise = checks._fresh(case.args)
    checks._gan_step_reference(generator, discriminator, g_opt, d_opt, real, noise)
    generator2, discriminator2, g_opt2, d_opt2, _, _ = checks._fresh(case.args)
    gan = generative.GAN(generator2, discriminator2)
    for optimizer, _turn in ((d_opt2, "D"), (g_opt2, "G")):
        monkeypatch.setattr(torch, "randn", lambda *a, **k: noise.clone())
        optimizer.zero_grad()
        _, loss = gan(real)
        loss.backward()
        optimizer.step()
    for ours, library in zip(
        [*generator.parameters(), *discriminator.parameters()],
        [*generator2.parameters(), *discriminator2.parameters()],
    ):
        torch.testing.assert_close(ours, library, atol=1e-12, rtol=1e-10)


globals().update(parametrize_proofs(PROOFS))
