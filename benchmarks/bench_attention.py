"""Rows for the attention chapter: our attention ops against PyTorch's, and the dates bar."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.harness import Measure, SpeedCase, quality_row, speed_row
from course_lib import attention, data, rnn
from course_lib.train import fit


def _dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


@speed_row(
    "scaled_dot_product_attention (returns weights)",
    peer="torch.nn.functional.scaled_dot_product_attention",
    target="reported (ours materialises the L x L weights)",
)
def sdpa_rows(device: torch.device, quick: bool):
    dtype = _dtype(device)
    for length in [64] if quick else [128, 512, 2048]:
        q, k, v = (
            torch.randn(8, 8, length, 64, device=device, dtype=dtype) for _ in range(3)
        )  # B=8, H=8, E=64
        mask = attention.causal_mask(length, device=device)
        yield SpeedCase(
            f"B=8 H=8 L={length} E=64 causal {str(dtype).replace('torch.', '')}",
            ours=lambda q=q, k=k, v=v, m=mask: attention.scaled_dot_product_attention(q, k, v, m)[
                0
            ],
            peer=lambda q=q, k=k, v=v, m=mask: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
        )


def _mha_pair(device: torch.device, dtype: torch.dtype, dim: int = 256, heads: int = 8):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(dim, heads, batch_first=True).to(device, dtype).eval()
    ours = attention.MultiHeadAttention(dim, heads).to(device, dtype).eval()
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def _no_grad(function):
    def run():
        with torch.no_grad():
            return function()

    return run


@speed_row(
    "MultiHeadAttention (need_weights=False, inference)",
    peer="torch.nn.MultiheadAttention (fast path)",
    target="<= 1.1x",
)
def mha_inference_rows(device: torch.device, quick: bool):
    dtype = _dtype(device)
    ours, theirs = _mha_pair(device, dtype)
    for length in [64] if quick else [128, 512, 2048]:
        x = torch.randn(8, length, 256, device=device, dtype=dtype)
        yield SpeedCase(
            f"self-attention B=8 L={length} D=256 H=8",
            ours=_no_grad(lambda x=x: ours(x, x, x, need_weights=False)[0]),
            peer=_no_grad(lambda x=x: theirs(x, x, x, need_weights=False)[0]),
        )


def _forward_backward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    output = module(x, x, x, need_weights=False)[0]
    output.float().square().mean().backward()
    return output.detach()


@speed_row(
    "MultiHeadAttention (need_weights=False, forward + backward)",
    peer="torch.nn.MultiheadAttention",
    target="<= 1.1x",
)
def mha_training_rows(device: torch.device, quick: bool):
    dtype = _dtype(device)
    ours, theirs = _mha_pair(device, dtype)
    for length in [64] if quick else [128, 512, 2048]:
        x = torch.randn(8, length, 256, device=device, dtype=dtype, requires_grad=True)

        yield SpeedCase(
            f"self-attention B=8 L={length} D=256 H=8",
            ours=lambda x=x: _forward_backward(ours, x),
            peer=lambda x=x: _forward_backward(theirs, x),
        )


@speed_row(
    "MultiHeadAttention (per-head weights returned)",
    peer="torch.nn.MultiheadAttention (average_attn_weights=False)",
    target="reported",
)
def mha_weights_rows(device: torch.device, quick: bool):
    dtype = _dtype(device)
    ours, theirs = _mha_pair(device, dtype)
    for length in [64] if quick else [128, 512]:
        x = torch.randn(8, length, 256, device=device, dtype=dtype)
        yield SpeedCase(
            f"self-attention B=8 L={length} D=256 H=8",
            ours=_no_grad(lambda x=x: ours(x, x, x)),
            peer=_no_grad(lambda x=x: theirs(x, x, x, average_attn_weights=False)),
        )


def _random_trimmed_batches(encoded, batch_size: int, seed: int):
    """Random batches as in the chapter (and the RNN chapter), extra padding columns dropped."""
    generator = torch.Generator().manual_seed(seed)

    def batch():
        index = torch.randint(len(encoded), (batch_size,), generator=generator)
        lengths = encoded.source_lengths[index]
        return encoded.source[index, : int(lengths.max())], lengths, encoded.target[index]

    return batch


def _train(model: nn.Module, train_set, steps: int, device: torch.device) -> None:
    """The chapter's recipe for both models (the RNN chapter's seq2seq recipe)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-2, total_steps=steps, pct_start=0.1, div_factor=10,
        final_div_factor=20,
    )  # fmt: skip
    fit(
        model, _random_trimmed_batches(train_set, 128, seed=0), steps=steps,
        optimizer=optimizer, scheduler=schedule, clip_grad_norm=1.0, device=device,
        progress=False, live_plot=False,
    )  # fmt: skip


@quality_row("attention", "seq2seq with attention on dates (vs no attention, same steps)")
def dates_quality(device: torch.device, quick: bool):
    """The chapter's section 2: both models, same data, batches and steps as the notebook."""
    sizes = (2000, 100, 200) if quick else (20000, 500, 2000)  # train, val, test: the chapter's
    dates = data.load_dates(*sizes, seed=0)
    train_set = data.encode_dates(dates.train, dates.source_vocab, dates.target_vocab)
    steps = 20 if quick else 600
    vocab_sizes = (len(dates.source_vocab), len(dates.target_vocab))
    torch.manual_seed(0)
    plain = rnn.Seq2Seq(*vocab_sizes, embed_dim=32, hidden_size=128)
    _train(plain, train_set, steps, device)
    torch.manual_seed(0)
    model = attention.AttentionSeq2Seq(
        *vocab_sizes, embed_dim=32, hidden_size=64, attention_size=64
    )
    _train(model, train_set, steps, device)
    vocabs = (dates.source_vocab, dates.target_vocab)
    correct = rnn.exact_match(model, dates.test, *vocabs).float()
    plain_correct = rnn.exact_match(plain, dates.test, *vocabs).float()
    long_inputs = torch.tensor([len(pair.source) >= 25 for pair in dates.test])
    gap = float(correct[long_inputs].mean() - plain_correct[long_inputs].mean())
    overall_gap = float(correct.mean() - plain_correct.mean())
    note = f"{steps} steps each, same recipe, test set of {len(dates.test)}" + (
        " (quick: no bar)" if quick else ""
    )
    return [
        Measure(
            "test exact match, attention", float(correct.mean()), "" if quick else ">= 0.99", note
        ),
        Measure("test exact match, no attention", float(plain_correct.mean()), "", note),
        Measure(
            "test exact match: attention minus no attention",
            overall_gap,
            "" if quick else ">= 0.001",
            note,
        ),
        Measure("exact match on inputs >= 25 chars: attention minus no attention", gap, "", note),
    ]
