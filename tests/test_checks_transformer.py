"""Proofs that the Transformer chapter's exercise checks pass correct answers and fail the
classic mistakes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course_lib import transformer
from course_lib.checks import transformer as checks
from tests.checkproof import Proof, Wrong, parametrize_proofs

# ----------------------------------------------------------------------------------------
# Transformer block
# ----------------------------------------------------------------------------------------


def _ffn(block, x):
    return block.linear2(F.relu(block.linear1(x)))


def block_forward(x, block, mask=None):
    if block.norm_first:
        h = block.norm1(x)
        x = x + block.self_attn(h, h, h, mask=mask)[0]
        return x + _ffn(block, block.norm2(x))
    x = block.norm1(x + block.self_attn(x, x, x, mask=mask)[0])
    return block.norm2(x + _ffn(block, x))


def block_without_residual(x, block, mask=None):
    x = block.norm1(block.self_attn(x, x, x, mask=mask)[0])
    return block.norm2(_ffn(block, x))


def block_always_post_ln(x, block, mask=None):
    x = block.norm1(x + block.self_attn(x, x, x, mask=mask)[0])
    return block.norm2(x + _ffn(block, x))


def block_always_pre_ln(x, block, mask=None):
    h = block.norm1(x)
    x = x + block.self_attn(h, h, h, mask=mask)[0]
    return x + _ffn(block, block.norm2(x))


def block_without_relu(x, block, mask=None):
    x = block.norm1(x + block.self_attn(x, x, x, mask=mask)[0])
    return block.norm2(x + block.linear2(block.linear1(x)))


def block_ignoring_mask(x, block, mask=None):
    return block_forward(x, block, None)


# ----------------------------------------------------------------------------------------
# ViT input
# ----------------------------------------------------------------------------------------


def _patches(images, p, order=(0, 2, 4, 1, 3, 5)):
    b, c, h, w = images.shape
    grid = images.reshape(b, c, h // p, p, w // p, p).permute(*order)
    return grid.reshape(b, (h // p) * (w // p), c * p * p)


def vit_embed(images, patch_size, weight, bias, cls_token, position_embedding):
    tokens = _patches(images, patch_size) @ weight.T + bias
    cls = cls_token.expand(images.shape[0], 1, -1)
    return torch.cat([cls, tokens], dim=1) + position_embedding


def vit_embed_unfold(images, patch_size, weight, bias, cls_token, position_embedding):
    patches = F.unfold(images, patch_size, stride=patch_size).transpose(1, 2)
    tokens = F.linear(patches, weight, bias)
    cls = cls_token.reshape(1, 1, -1).expand(images.shape[0], 1, -1)
    return torch.cat([cls, tokens], dim=1) + position_embedding


def vit_embed_channels_last(images, patch_size, weight, bias, cls_token, position_embedding):
    tokens = _patches(images, patch_size, order=(0, 2, 4, 3, 5, 1)) @ weight.T + bias
    cls = cls_token.expand(images.shape[0], 1, -1)
    return torch.cat([cls, tokens], dim=1) + position_embedding


def vit_embed_column_major(images, patch_size, weight, bias, cls_token, position_embedding):
    tokens = _patches(images, patch_size, order=(0, 4, 2, 1, 3, 5)) @ weight.T + bias
    cls = cls_token.expand(images.shape[0], 1, -1)
    return torch.cat([cls, tokens], dim=1) + position_embedding


def vit_embed_cls_last(images, patch_size, weight, bias, cls_token, position_embedding):
    tokens = _patches(images, patch_size) @ weight.T + bias
    cls = cls_token.expand(images.shape[0], 1, -1)
    return torch.cat([tokens, cls], dim=1) + position_embedding


def vit_embed_cls_without_position(images, patch_size, weight, bias, cls_token, position_embedding):
    tokens = _patches(images, patch_size) @ weight.T + bias + position_embedding[1:]
    cls = cls_token.expand(images.shape[0], 1, -1)
    return torch.cat([cls, tokens], dim=1)


def vit_embed_without_cls(images, patch_size, weight, bias, cls_token, position_embedding):
    return _patches(images, patch_size) @ weight.T + bias + position_embedding[1:]


# ----------------------------------------------------------------------------------------
# Parameter count
# ----------------------------------------------------------------------------------------


def _count(vocab, d, f, n_enc, n_dec, *, embeddings=1, norms=True, biases=True, cross=True):
    attention = 4 * d * d + (4 * d if biases else 0)
    feed_forward = 2 * d * f + (f + d if biases else 0)
    norm = 2 * d if norms else 0
    encoder = attention + feed_forward + 2 * norm
    decoder = (2 if cross else 1) * attention + feed_forward + 3 * norm
    return embeddings * vocab * d + n_enc * encoder + n_dec * decoder


def parameter_count(vocab_size, d_model, dim_feedforward, num_encoder_layers, num_decoder_layers):
    return _count(vocab_size, d_model, dim_feedforward, num_encoder_layers, num_decoder_layers)


def count_untied(*args):
    return _count(*args, embeddings=3)


def count_without_layer_norm(*args):
    return _count(*args, norms=False)


def count_without_biases(*args):
    return _count(*args, biases=False)


def count_without_cross_attention(*args):
    return _count(*args, cross=False)


def count_ignoring_embeddings(*args):
    return _count(*args, embeddings=0)


# ----------------------------------------------------------------------------------------
# Causal LM loss
# ----------------------------------------------------------------------------------------


def lm_loss(logits, tokens):
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1))


def lm_loss_manual(logits, tokens):
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None]).mean()


def lm_loss_not_shifted(logits, tokens):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def lm_loss_shifted_wrong_way(logits, tokens):
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, 1:].reshape(-1, vocab), tokens[:, :-1].reshape(-1))


def lm_loss_in_bits(logits, tokens):
    return lm_loss(logits, tokens) / math.log(2)


def lm_loss_naive_softmax(logits, tokens):
    probabilities = logits[:, :-1].softmax(dim=-1)
    return -probabilities.gather(-1, tokens[:, 1:, None]).log().mean()


def lm_loss_per_position(logits, tokens):
    vocab = logits.shape[-1]
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1), reduction="none"
    )


def block_delegates(x, block, mask=None):
    return block(x, mask)


def count_by_building(vocab_size, d_model, dim_feedforward, num_encoder_layers, num_decoder_layers):
    with torch.device("meta"):
        model = transformer.Transformer(
            vocab_size, vocab_size, d_model=d_model, nhead=1, max_length=1,
            num_encoder_layers=num_encoder_layers, num_decoder_layers=num_decoder_layers,
            dim_feedforward=dim_feedforward,
        )  # fmt: skip
    return transformer.count_parameters(model)


PROOFS = [
    Proof(
        checks.check_transformer_block,
        correct=block_forward,
        wrong=[
            Wrong(block_without_residual, "post-LN 的顺序"),
            Wrong(block_always_post_ln, "norm_first=True"),
            Wrong(block_always_pre_ln, "post-LN 的顺序"),
            Wrong(block_without_relu, "ReLU"),
            Wrong(block_ignoring_mask, "把 mask 传给"),
        ],
        delegate=block_delegates,
    ),
    Proof(
        checks.check_vit_embed,
        correct=vit_embed_unfold,
        wrong=[
            Wrong(vit_embed_channels_last, "展平"),
            Wrong(vit_embed_column_major, "行优先"),
            Wrong(vit_embed_cls_last, "[CLS]"),
            Wrong(vit_embed_cls_without_position, "N + 1 个向量"),
            Wrong(vit_embed_without_cls, "[B, N + 1, D]"),
        ],
        delegate=transformer.embed_patches,
        also_correct=[vit_embed],
    ),
    Proof(
        checks.check_parameter_count,
        correct=parameter_count,
        wrong=[
            Wrong(count_untied, "嵌入只算一次"),
            Wrong(count_without_layer_norm, "LayerNorm 有 2D 个参数"),
            Wrong(count_without_biases, "偏置"),
            Wrong(count_without_cross_attention, "交叉注意力"),
            Wrong(count_ignoring_embeddings, "共享嵌入 VD 只算一次"),
        ],
        delegate=count_by_building,
        float32_inputs=False,
    ),
    Proof(
        checks.check_causal_lm_loss,
        correct=lm_loss_manual,
        wrong=[
            Wrong(lm_loss_not_shifted, "logits[:, :-1]"),
            Wrong(lm_loss_shifted_wrong_way, "预测的是下一个 token"),
            Wrong(lm_loss_in_bits, "自然对数"),
            Wrong(lm_loss_naive_softmax, "NaN/inf"),
            Wrong(lm_loss_per_position, "返回一个标量"),
        ],
        delegate=transformer.causal_lm_loss,
        also_correct=[lm_loss],
    ),
]

globals().update(parametrize_proofs(PROOFS))
