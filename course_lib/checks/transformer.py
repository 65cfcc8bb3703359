"""Checks for the Transformer chapter's exercises.

- ``check_transformer_block``: one encoder block's forward pass, post-LN and pre-LN;
- ``check_vit_embed``: patchify + linear embedding + ``[CLS]`` + position embeddings;
- ``check_parameter_count``: the base model's parameter count by formula;
- ``check_causal_lm_loss``: the next-token loss with shifted targets.
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Optional

import torch
from torch import Tensor, nn

from course_lib import transformer
from course_lib.attention import causal_mask, padding_mask
from course_lib.checks.core import (
    Case,
    CheckResult,
    Mismatch,
    check_function,
    exercise_check,
    forbid,
    randn,
)
from course_lib.transformer import (
    Transformer,
    TransformerBlock,
    causal_lm_loss,
    count_parameters,
    embed_patches,
)

# ----------------------------------------------------------------------------------------
# A Transformer block's forward pass
# ----------------------------------------------------------------------------------------


def _block(d_model: int, nhead: int, dim_feedforward: int, norm_first: bool, seed: int, device):
    torch.manual_seed(seed)
    block = TransformerBlock(d_model, nhead, dim_feedforward, dropout=0.1, norm_first=norm_first)
    with torch.no_grad():  # non-trivial LayerNorm parameters, so a misplaced norm shows
        for norm in (block.norm1, block.norm2):
            norm.weight.copy_(1 + 0.3 * randn(d_model, seed=seed + 1))
            norm.bias.copy_(0.2 * randn(d_model, seed=seed + 2))
    return block.double().to(device).eval()


def _block_cases(device: torch.device) -> List[Case]:
    def x(batch: int, length: int, seed: int) -> Tensor:
        return randn(batch, length, 8, seed=seed, device=device)

    lengths = torch.tensor([5, 2, 4], device=device)
    return [
        Case("post-LN（论文原版）, [2, 5, 8]", (x(2, 5, 0), _block(8, 2, 16, False, 10, device))),
        Case("pre-LN, [2, 5, 8]", (x(2, 5, 1), _block(8, 2, 16, True, 11, device))),
        Case(
            "post-LN + 因果掩码",
            (x(2, 5, 2), _block(8, 2, 16, False, 12, device)),
            {"mask": causal_mask(5, device=device)},
        ),
        Case(
            "pre-LN + 填充掩码（长度 5, 2, 4）",
            (x(3, 5, 3), _block(8, 4, 12, True, 13, device)),
            {"mask": padding_mask(lengths, 5)},
        ),
        Case("batch of 1, length 1", (x(1, 1, 4), _block(8, 2, 16, False, 14, device))),
        Case("empty batch [0, 5, 8]", (x(0, 5, 5), _block(8, 2, 16, True, 15, device))),
    ]


def _block_reference(x: Tensor, block: TransformerBlock, mask: Optional[Tensor] = None) -> Tensor:
    return block(x, mask)


def _block_hint(mismatch: Mismatch, case: Case) -> str:
    if "pre-LN" in case.name:
        return (
            "norm_first=True（pre-LN）时先归一化再进子层，残差路径上不做归一化："
            "x = x + self_attn(norm1(x))；x = x + ffn(norm2(x))。"
        )
    if "掩码" in case.name:
        return "把 mask 传给 block.self_attn(q, k, v, mask=mask)；True 表示“可以关注”。"
    return (
        "post-LN 的顺序是 x = norm1(x + self_attn(x, x, x)[0])，"
        "再 x = norm2(x + linear2(relu(linear1(x))))。常见错误：漏了残差连接、"
        "漏了 ReLU、先归一化再相加、或者忘了 MultiHeadAttention 返回 (output, weights)。"
    )


@exercise_check
def check_transformer_block(student_block_forward: Callable[..., Tensor]) -> CheckResult:
    """Check ``student_block_forward(x [B, L, D], block, mask=None)`` against ``block(x, mask)``.

    Contract: ``block`` is a ``TransformerBlock`` in eval mode; the student combines its
    sub-modules (``self_attn``, ``linear1``, ``linear2``, ``norm1``, ``norm2``; also
    ``feed_forward``) in post-LN or pre-LN order (``block.norm_first``) and returns [B, L, D]
    in x's dtype. Calling the block itself (``block(x)``, ``block.forward``) or torch's
    ``nn.TransformerEncoderLayer`` is off limits.
    """
    return check_function(
        "Transformer 块的前向计算",
        student_block_forward,
        _block_reference,
        _block_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_block_hint,
        forbidden=[
            forbid(
                TransformerBlock.forward,
                TransformerBlock.forward_with_attention,
                transformer.TransformerDecoderBlock.forward,
                name="course_lib.transformer.TransformerBlock.forward（也就是 block(x)）",
            ),
            forbid(
                nn.TransformerEncoderLayer,
                nn.TransformerEncoder,
                torch._transformer_encoder_layer_fwd,
                name="torch.nn.TransformerEncoderLayer",
            ),
        ],
    )


# ----------------------------------------------------------------------------------------
# ViT input: patches, [CLS] and positions
# ----------------------------------------------------------------------------------------


def _vit_case(
    name: str,
    batch: int,
    channels: int,
    height: int,
    width: int,
    patch: int,
    dim: int,
    seed: int,
    device: torch.device,
) -> Case:
    count = (height // patch) * (width // patch)
    features = channels * patch * patch
    return Case(
        name,
        (
            randn(batch, channels, height, width, seed=seed, device=device),
            patch,
            randn(dim, features, seed=seed + 1, device=device),
            randn(dim, seed=seed + 2, device=device),
            randn(dim, seed=seed + 3, device=device),
            randn(count + 1, dim, seed=seed + 4, device=device),
        ),
    )


def _vit_cases(device: torch.device) -> List[Case]:
    return [
        _vit_case("digits: [4, 1, 8, 8], P=2, D=6", 4, 1, 8, 8, 2, 6, 0, device),
        _vit_case("P=4 (4 patches)", 2, 1, 8, 8, 4, 5, 10, device),
        _vit_case("3 channels, 6x4 image, P=2", 2, 3, 6, 4, 2, 7, 20, device),
        _vit_case("batch of 1, P=1 (every pixel a patch)", 1, 2, 3, 3, 1, 4, 30, device),
        _vit_case("one patch covers the image (P=H=W=4)", 3, 1, 4, 4, 4, 3, 40, device),
        _vit_case("empty batch [0, 1, 8, 8]", 0, 1, 8, 8, 2, 6, 50, device),
    ]


def _vit_hint(mismatch: Mismatch, case: Case) -> str:
    if "形状" in mismatch.reason:
        return "输出应为 [B, N + 1, D]：N = (H/P)·(W/P) 个小块，再加上最前面的 [CLS]。"
    return (
        "检查三件事：(1) 每个小块按 (通道 c, 行 i, 列 j) 的顺序展平，与 Conv2d 的权重 "
        "[D, C, P, P] 一致；小块按行优先编号；(2) [CLS] 放在序列最前面（位置 0）；"
        "(3) 位置嵌入加到包括 [CLS] 在内的全部 N + 1 个向量上。"
    )


@exercise_check
def check_vit_embed(student_vit_embed: Callable[..., Tensor]) -> CheckResult:
    """Check ``student_vit_embed(images, patch_size, weight, bias, cls_token,
    position_embedding)`` against ``course_lib.transformer.embed_patches``.

    Contract: images [B, C, H, W], weight [D, C*P*P] (a patch flattened in (c, i, j) order,
    as Conv2d's [D, C, P, P]), bias [D], cls_token [D], position_embedding [N+1, D] with
    N = (H/P)(W/P) patches numbered row by row; returns [B, N+1, D] with [CLS] first and
    the position embeddings added to all N+1 vectors. The library's ``embed_patches``,
    ``patchify`` and ``ViT`` are off limits (F.unfold / conv2d are fine).
    """
    return check_function(
        "ViT 的输入：小块嵌入 + [CLS] + 位置",
        student_vit_embed,
        embed_patches,
        _vit_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_vit_hint,
        forbidden=[forbid(embed_patches, transformer.patchify, transformer.ViT)],
    )


# ----------------------------------------------------------------------------------------
# Parameter count of the base model, by formula
# ----------------------------------------------------------------------------------------


def _count_reference(
    vocab_size: int,
    d_model: int,
    dim_feedforward: int,
    num_encoder_layers: int,
    num_decoder_layers: int,
) -> int:
    with torch.device("meta"):  # count the parameters without allocating them
        model = Transformer(
            vocab_size, vocab_size, d_model=d_model, nhead=1, max_length=1,
            num_encoder_layers=num_encoder_layers, num_decoder_layers=num_decoder_layers,
            dim_feedforward=dim_feedforward,
        )  # fmt: skip
    return count_parameters(model)


def _count_cases(device: torch.device) -> List[Case]:
    return [
        Case("the base model: V=37000, D=512, F=2048, 6+6 layers", (37000, 512, 2048, 6, 6)),
        Case("a small model: V=100, D=16, F=64, 2+2 layers", (100, 16, 64, 2, 2)),
        Case("encoder only: V=50, D=8, F=32, 3+0 layers", (50, 8, 32, 3, 0)),
        Case("decoder only: V=50, D=8, F=32, 0+3 layers", (50, 8, 32, 0, 3)),
        Case("no layers: only the shared embedding, V=1000, D=32", (1000, 32, 128, 0, 0)),
        Case("big model: V=32000, D=1024, F=4096, 6+6 layers", (32000, 1024, 4096, 6, 6)),
    ]


def _count_hint(mismatch: Mismatch, case: Case) -> str:
    actual = mismatch.actual
    if isinstance(actual, Tensor) and actual.numel() == 1:
        actual = actual.item()
    if not isinstance(actual, (int, float)) or isinstance(actual, bool):
        return "返回一个整数（参数个数）。"
    vocab, d, f, n_enc, n_dec = case.args
    diff = round(actual - int(mismatch.expected))
    known = {
        2 * vocab * d: "嵌入只算一次：源、目标嵌入与输出层共享同一个 [V, D] 矩阵。",
        -(n_enc * 2 + n_dec * 3) * 2 * d: "别忘了每个 LayerNorm 有 2D 个参数（γ 和 β）。",
        -(n_enc + 2 * n_dec) * 4 * d - (n_enc + n_dec) * (f + d): (
            "别忘了偏置：注意力的四个投影各有 D 个偏置，前馈层有 F + D 个。"
        ),
        -n_dec * (4 * d * d + 4 * d): "解码器块里还有一个交叉注意力层（4D² + 4D）。",
        n_dec * 2 * d: "解码器块有 3 个 LayerNorm（不是 4 个）。",
        -(n_enc + n_dec) * 2 * d * f: "前馈网络有两个矩阵：D×F 和 F×D。",
    }
    if diff in known and diff != 0:
        return known[diff]
    return (
        "注意力层：4D² + 4D；前馈层：2DF + F + D；LayerNorm：2D。编码器块 = 注意力 + 前馈 + "
        "2 个 LayerNorm；解码器块 = 2 个注意力 + 前馈 + 3 个 LayerNorm；共享嵌入 VD 只算一次。"
        "头数不影响参数个数。"
    )


@exercise_check
def check_parameter_count(student_count: Callable[..., int]) -> CheckResult:
    """Check ``student_count(vocab_size, d_model, dim_feedforward, num_encoder_layers,
    num_decoder_layers)`` against ``count_parameters(Transformer(...))``.

    Contract: returns an int, the parameter count of the encoder-decoder Transformer with a
    shared [V, D] embedding, by formula. Building a model to count it (the library's
    ``Transformer`` / ``count_parameters``, ``torch.nn.Transformer``) is off limits.
    """
    return check_function(
        "手算基础模型的参数量",
        student_count,
        _count_reference,
        _count_cases,
        atol=0,
        rtol=0,
        hint=_count_hint,
        devices=[torch.device("cpu")],  # no tensors involved
        forbidden=[
            forbid(Transformer, count_parameters, transformer.parameter_table),
            forbid(
                nn.Transformer,
                nn.TransformerEncoderLayer,
                nn.TransformerDecoderLayer,
                name="torch.nn.Transformer",
            ),
        ],
    )


# ----------------------------------------------------------------------------------------
# Causal language-model loss
# ----------------------------------------------------------------------------------------


def _lm_cases(device: torch.device) -> List[Case]:
    def tokens(batch: int, length: int, vocab: int, seed: int) -> Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(vocab, (batch, length), generator=generator).to(device)

    return [
        Case("[2, 6, 5]", (randn(2, 6, 5, seed=0, device=device), tokens(2, 6, 5, 1))),
        Case(
            "batch of 1, [1, 9, 11]", (randn(1, 9, 11, seed=2, device=device), tokens(1, 9, 11, 3))
        ),
        Case(
            "T=2: one prediction per row",
            (randn(3, 2, 4, seed=4, device=device), tokens(3, 2, 4, 5)),
        ),
        Case(
            "all-equal logits (ties): loss = ln V",
            (torch.zeros(2, 4, 7, dtype=torch.float64, device=device), tokens(2, 4, 7, 6)),
        ),
        Case(
            "large logits (±500)",
            (500 * randn(2, 5, 6, seed=7, device=device), tokens(2, 5, 6, 8)),
        ),
    ]


def _lm_hint(mismatch: Mismatch, case: Case) -> str:
    expected, actual = mismatch.expected, mismatch.actual
    if isinstance(actual, Tensor) and actual.dim() > 0:
        return "返回一个标量：所有 B·(T−1) 个预测的平均交叉熵。"
    if isinstance(actual, Tensor) and isinstance(expected, Tensor) and actual.numel() == 1:
        ratio = float(actual) / max(float(expected), 1e-12)
        if abs(ratio - 1 / math.log(2)) < 1e-6:
            return "交叉熵用自然对数（单位 nat）；除以 ln 2 得到的是 bits，这里不要换算。"
        if torch.isnan(actual) or torch.isinf(actual):
            return "出现了 NaN/inf：用 F.cross_entropy 或 log_softmax，不要先 softmax 再取 log。"
    return (
        "位置 t 的 logits 预测的是下一个 token：用 logits[:, :-1] 对 tokens[:, 1:] "
        "计算交叉熵并取平均（最后一个位置没有“下一个”，第一个 token 不被预测）。"
    )


@exercise_check
def check_causal_lm_loss(student_loss: Callable[[Tensor, Tensor], Any]) -> CheckResult:
    """Check ``student_loss(logits [B, T, V], tokens [B, T])`` against ``causal_lm_loss``.

    Contract: the mean natural-log cross-entropy of ``logits[:, :-1]`` against
    ``tokens[:, 1:]`` over all B*(T-1) predictions, a 0-dim tensor in the logits' dtype.
    ``F.cross_entropy`` is fine; the library's ``causal_lm_loss`` (and GPT's loss) is not.
    """
    return check_function(
        "因果语言模型的损失（目标右移一位）",
        student_loss,
        causal_lm_loss,
        _lm_cases,
        atol=1e-10,
        rtol=1e-8,
        hint=_lm_hint,
        forbidden=[forbid(causal_lm_loss, transformer.GPT.forward)],
    )
