"""Rows for the Transformer chapter: our blocks against torch.nn's layers, and the chapter's
quality bars (dates translation, ViT on digits, GPT vs LSTM bits per character).

The quality rows repeat the recipes of ``book/transformer.ipynb`` (full mode) so that the
numbers in the benchmark table and in the chapter agree; ``quick`` shrinks them to a few
steps, which only tests that the rows run.
"""

from __future__ import annotations

import math
from typing import Iterator, List, Tuple

import torch
from torch import Tensor, nn

from benchmarks.harness import Measure, SpeedCase, quality_row, speed_row
from course_lib import attention, data, rnn
from course_lib.train import fit
from course_lib.transformer import GPT, Transformer, TransformerBlock, ViT, random_windows
from course_lib.utils import set_seed

# ----------------------------------------------------------------------------------------
# Speed: one block, forward + backward, ours vs torch.nn.TransformerEncoderLayer
# ----------------------------------------------------------------------------------------

_BLOCK_SIZES = {
    True: [(8, 32, 64, 4, 256)],  # quick: (B, L, D, H, F)
    False: [(32, 128, 256, 8, 1024), (16, 512, 512, 8, 2048)],
}


def _pair(d_model: int, nhead: int, ff: int, norm_first: bool, device: torch.device):
    """A torch.nn layer and ours with the same weights (dropout 0 so outputs are comparable)."""
    torch.manual_seed(0)
    peer = nn.TransformerEncoderLayer(
        d_model, nhead, ff, dropout=0.0, batch_first=True, norm_first=norm_first
    ).to(device)
    ours = TransformerBlock(d_model, nhead, ff, dropout=0.0, norm_first=norm_first).to(device)
    ours.load_state_dict(peer.state_dict())
    return ours.train(), peer.train()


def _step(layer: nn.Module, x: Tensor, grad: Tensor, **kwargs) -> Tuple[Tensor, Tensor]:
    x = x.detach().requires_grad_(True)
    output = layer(x, **kwargs)
    output.backward(grad)
    layer.zero_grad(set_to_none=True)
    return output.detach(), x.grad


@speed_row(
    "TransformerBlock forward+backward",
    peer="torch.nn.TransformerEncoderLayer",
    target="<= 1.2x",
)
def block_training_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    for batch, length, d_model, nhead, ff in _BLOCK_SIZES[quick]:
        x = torch.randn(batch, length, d_model, device=device)
        grad = torch.randn_like(x)
        mask = attention.causal_mask(length, device=device)
        for norm_first, causal in ((False, False), (True, True)):
            ours, peer = _pair(d_model, nhead, ff, norm_first, device)
            # Causal: each side told so (ours: is_causal; torch: the mask plus its is_causal hint).
            ours_kwargs = {"is_causal": True} if causal else {}
            peer_kwargs = {"src_mask": ~mask, "is_causal": True} if causal else {}
            name = f"B={batch} L={length} D={d_model} {'pre-LN causal' if causal else 'post-LN'}"
            yield SpeedCase(
                name,
                ours=lambda o=ours, k=ours_kwargs, x=x, g=grad: _step(o, x, g, **k),
                peer=lambda p=peer, k=peer_kwargs, x=x, g=grad: _step(p, x, g, **k),
            )


@speed_row(
    "TransformerBlock inference (eval, no_grad)",
    peer="torch.nn.TransformerEncoderLayer (fused fast path)",
    target="",
)
def block_inference_rows(device: torch.device, quick: bool) -> Iterator[SpeedCase]:
    for batch, length, d_model, nhead, ff in _BLOCK_SIZES[quick]:
        x = torch.randn(batch, length, d_model, device=device)
        ours, peer = _pair(d_model, nhead, ff, False, device)
        ours.eval()
        peer.eval()

        def run(layer: nn.Module, x: Tensor = x) -> Tensor:
            with torch.no_grad():
                return layer(x)

        yield SpeedCase(
            f"B={batch} L={length} D={d_model} post-LN",
            ours=lambda o=ours: run(o),
            peer=lambda p=peer: run(p),
        )


# ----------------------------------------------------------------------------------------
# Quality: the chapter's bars
# ----------------------------------------------------------------------------------------


@quality_row("transformer", "Transformer encoder-decoder (dates)")
def dates_quality(device: torch.device, quick: bool) -> List[Measure]:
    steps = 30 if quick else 1500
    dates = data.load_dates(n_train=2000 if quick else 20000, n_val=100, n_test=2000, seed=0)
    train_set = data.encode_dates(dates.train, dates.source_vocab, dates.target_vocab)
    set_seed(0)
    model = Transformer(
        len(dates.source_vocab), len(dates.target_vocab), d_model=64, nhead=4,
        num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=128, dropout=0.0,
        share_embeddings=False,
    )  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / 100) * max(0.02, 1 - step / steps)
    )
    history = fit(
        model, attention.length_bucketed_batches(train_set, 128, seed=0), steps=steps,
        optimizer=optimizer, scheduler=schedule, device=device, progress=False, live_plot=False,
    )  # fmt: skip
    correct = rnn.exact_match(model, dates.test, dates.source_vocab, dates.target_vocab)
    return [
        Measure(
            "test exact match", float(correct.float().mean()), bar=">= 0.99",
            notes=f"{steps} steps, {history.seconds:.0f} s training",
        )
    ]  # fmt: skip


@quality_row("transformer", "ViT (digits)")
def vit_quality(device: torch.device, quick: bool) -> List[Measure]:
    steps = 30 if quick else 800
    digits = data.load_digits()
    set_seed(0)
    model = ViT(8, 2, 1, 10, d_model=64, nhead=4, num_layers=4, dropout=0.0)
    sampler = torch.Generator().manual_seed(0)

    def batch() -> Tuple[Tensor, Tensor]:
        index = torch.randint(len(digits.train_labels), (64,), generator=sampler)
        return digits.train_images[index], digits.train_labels[index]

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    history = fit(
        model, batch, steps=steps, optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.OneCycleLR(optimizer, 1e-3, total_steps=steps),
        device=device, progress=False, live_plot=False,
    )  # fmt: skip
    with torch.no_grad():
        logits, _ = model(digits.test_images.to(device))
    accuracy = float((logits.argmax(1).cpu() == digits.test_labels).float().mean())
    return [
        Measure(
            "test accuracy", accuracy, bar=">= 0.95",
            notes=f"{steps} steps, {history.seconds:.0f} s training",
        )
    ]  # fmt: skip


@quality_row("transformer", "GPT vs LSTM (Python corpus, same time budget)")
def language_model_quality(device: torch.device, quick: bool) -> List[Measure]:
    seconds = 3 if quick else 30
    corpus = data.load_python_corpus(max_chars=200_000 if quick else None)
    set_seed(0)
    gpt = GPT(len(corpus.vocab), block_size=64, d_model=64, nhead=4, num_layers=2)
    windows = torch.Generator().manual_seed(0)
    gpt_history = fit(
        gpt, lambda: random_windows(corpus.train_ids, 64, 32, windows), steps=100_000, lr=5e-3,
        clip_grad_norm=1.0, max_seconds=seconds, device=device, progress=False, live_plot=False,
    )  # fmt: skip
    set_seed(0)
    lstm = rnn.CharLanguageModel(len(corpus.vocab), embed_dim=64, hidden_size=256, cell="lstm")
    chunks = rnn.TBPTTChunks(rnn.batchify(corpus.train_ids, 64), 64)
    lstm_history = fit(
        lstm, chunks, steps=100_000, lr=4e-3, loss_fn=rnn.TruncatedBPTT(len(chunks)),
        clip_grad_norm=1.0, max_seconds=seconds, device=device, progress=False, live_plot=False,
    )  # fmt: skip
    gpt_bpc = rnn.evaluate_bits_per_char(gpt, corpus.val_ids, batch_size=32, seq_len=64)
    lstm_bpc = rnn.evaluate_bits_per_char(lstm, corpus.val_ids, batch_size=32, seq_len=256)
    assert math.isfinite(gpt_bpc) and math.isfinite(lstm_bpc)
    return [
        Measure(
            "GPT val bits/char", gpt_bpc, notes=f"{len(gpt_history.losses)} steps in {seconds} s"
        ),
        Measure(
            "LSTM val bits/char", lstm_bpc, notes=f"{len(lstm_history.losses)} steps in {seconds} s"
        ),
    ]
