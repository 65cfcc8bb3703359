"""Rows for the recurrent-networks chapter: our layers against torch.nn (cuDNN on a GPU),
and the quality bars of the character language model and of seq2seq without attention."""

from __future__ import annotations

import math
from typing import Iterator, List

import torch
from torch import nn

from benchmarks.harness import Measure, SpeedCase, quality_row, speed_row
from course_lib import data, rnn
from course_lib.train import fit

#: (T, B, D, H, where) for each layer kind: the sizes the chapter trains at (full mode), then
#: other sizes. Targets: <= 1.0x torch.nn at the book's sizes, <= 1.5x elsewhere (CPU).
BOOK_SIZES = {
    "LSTM": [(64, 32, 64, 256, "book: language model"), (40, 64, 4, 64, "book: memory task"),
             (100, 32, 128, 128, "book: timing demo")],
    "GRU": [(38, 128, 32, 128, "book: seq2seq encoder"), (8, 64, 8, 64, "book: digit rows")],
    "RNN": [(40, 64, 4, 64, "book: memory task")],
}  # fmt: skip
OTHER_SIZES = [(10, 64, 256, 256), (50, 64, 256, 256), (200, 64, 256, 256), (100, 32, 64, 64)]


def _sizes(kind: str, device: torch.device, quick: bool) -> List[tuple]:
    """(T, B, D, H, note) tuples: the book's sizes and others (the cuDNN point on a GPU)."""
    if quick:
        return [(10, 8, 32, 32, "")]
    if device.type == "cuda":  # the design's reference point: T=100, B=64, H=512
        others = [(25, 64, 512, 512), (100, 64, 512, 512), (400, 64, 512, 512), (100, 64, 128, 128)]
    else:
        others = OTHER_SIZES
    return BOOK_SIZES[kind] + [(*size, "") for size in others]


def _forward_backward_cases(
    ours_cls: type, torch_cls: type, device: torch.device, quick: bool
) -> Iterator[SpeedCase]:
    for steps, batch, inputs, hidden, note in _sizes(torch_cls.__name__, device, quick):
        torch.manual_seed(0)
        reference = torch_cls(inputs, hidden, batch_first=True).to(device)
        ours = ours_cls(inputs, hidden, batch_first=True).to(device)
        ours.load_state_dict(reference.state_dict())
        x = torch.randn(batch, steps, inputs, device=device, requires_grad=True)
        weight = torch.randn(batch, steps, hidden, device=device)

        def run(module: nn.Module, x: torch.Tensor = x, weight: torch.Tensor = weight):
            output, _ = module(x)
            grads = torch.autograd.grad((output * weight).sum(), [x, *module.parameters()])
            return (output.detach(), *grads)

        yield SpeedCase(
            f"T={steps}, B={batch}, D={inputs}, H={hidden}" + (f" ({note})" if note else ""),
            ours=lambda run=run, ours=ours: run(ours),
            peer=lambda run=run, reference=reference: run(reference),
        )


TARGET = "<= 1.0x at the book's sizes, <= 1.5x elsewhere (CPU); <= 4x cuDNN"


@speed_row("LSTM forward+backward", peer="torch.nn.LSTM", target=TARGET)
def lstm_rows(device: torch.device, quick: bool):
    yield from _forward_backward_cases(rnn.LSTM, nn.LSTM, device, quick)


@speed_row("GRU forward+backward", peer="torch.nn.GRU", target=TARGET)
def gru_rows(device: torch.device, quick: bool):
    yield from _forward_backward_cases(rnn.GRU, nn.GRU, device, quick)


@speed_row("RNN (tanh) forward+backward", peer="torch.nn.RNN", target=TARGET)
def rnn_rows(device: torch.device, quick: bool):
    yield from _forward_backward_cases(rnn.RNN, nn.RNN, device, quick)


# The chapter's recipe (book/rnn.ipynb uses the same numbers in full mode).
LM_RECIPE = {
    "embed_dim": 64,
    "hidden_size": 256,
    "batch_size": 32,
    "seq_len": 64,
    "lr": 5e-3,
    "steps": 3000,
}


@quality_row("rnn", "LSTM character language model")
def lstm_language_model_quality(device: torch.device, quick: bool) -> List[Measure]:
    torch.manual_seed(0)
    corpus = data.load_python_corpus(max_chars=30_000 if quick else None)
    recipe = dict(LM_RECIPE, steps=20) if quick else LM_RECIPE
    model = rnn.CharLanguageModel(
        len(corpus.vocab), recipe["embed_dim"], recipe["hidden_size"], cell="lstm"
    )
    chunks = rnn.TBPTTChunks(
        rnn.batchify(corpus.train_ids, recipe["batch_size"]), recipe["seq_len"]
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe["lr"])
    history = fit(
        model, chunks, steps=recipe["steps"], optimizer=optimizer,
        loss_fn=rnn.TruncatedBPTT(len(chunks)), clip_grad_norm=1.0, device=device,
        scheduler=torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe["lr"], total_steps=recipe["steps"], pct_start=0.02,
            div_factor=10, final_div_factor=20,
        ),
        progress=False, live_plot=False,
    )  # fmt: skip
    bits = rnn.evaluate_bits_per_char(model, corpus.val_ids, batch_size=32, seq_len=256)
    notes = f"{recipe['steps']} steps, {history.seconds:.0f} s training"
    return [
        Measure("val bits/char", bits, bar="" if quick else "<= 2.0", notes=notes),
        Measure("train loss (nats/char, smoothed)", history.smoothed_losses(50)[-1]),
    ]


@quality_row("rnn", "seq2seq GRU without attention (dates)")
def seq2seq_quality(device: torch.device, quick: bool) -> List[Measure]:
    torch.manual_seed(0)
    dates = data.load_dates(2000 if quick else 20000, 100, 400 if quick else 2000, seed=0)
    train = data.encode_dates(dates.train, dates.source_vocab, dates.target_vocab)
    model = rnn.Seq2Seq(len(dates.source_vocab), len(dates.target_vocab))
    generator = torch.Generator().manual_seed(0)

    def batch():
        index = torch.randint(len(train), (128,), generator=generator)
        lengths = train.source_lengths[index]
        return train.source[index, : int(lengths.max())], lengths, train.target[index]

    steps = 20 if quick else 600  # the chapter's recipe
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-2, total_steps=steps, pct_start=0.1, div_factor=10,
        final_div_factor=20,
    )  # fmt: skip
    fit(model, batch, steps=steps, optimizer=optimizer, scheduler=scheduler, clip_grad_norm=1.0,
        device=device, progress=False, live_plot=False)  # fmt: skip
    correct = rnn.exact_match(model, dates.test, dates.source_vocab, dates.target_vocab)
    lengths = torch.tensor([len(pair.source) for pair in dates.test])
    short, long = correct[lengths <= 15], correct[lengths >= 25]
    return [
        Measure("exact match, all test dates", float(correct.float().mean())),
        Measure(
            "exact match, inputs <= 15 chars",
            float(short.float().mean()) if len(short) else math.nan,
            bar="" if quick else ">= 0.9",
        ),
        Measure(
            "exact match, inputs >= 25 chars",
            float(long.float().mean()) if len(long) else math.nan,
        ),
    ]
