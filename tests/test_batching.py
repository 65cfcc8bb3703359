"""course_lib.batching: every batching helper of the book in one module, with the
invariants each promises (epochs are permutations, windows are shifted by one, ...)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import attention, batching, data, rnn, transformer


@settings(max_examples=30, deadline=None)
@given(count=st.integers(1, 40), batch_size=st.integers(1, 50), seed=st.integers(0, 1000))
def test_random_batches_visit_every_item_once_per_pass(count, batch_size, seed):
    images = torch.arange(count).float().view(count, 1).expand(count, 3)
    labels = torch.arange(count)
    names = [f"item {i}" for i in range(count)]
    next_batch = batching.random_batches(images, labels, names, batch_size=batch_size, seed=seed)
    size = min(batch_size, count)
    per_pass = count // size
    for _ in range(2):  # two passes
        seen = []
        for _ in range(per_pass):
            x, y, text = next_batch()
            assert x.shape == (size, 3) and y.shape == (size,) and len(text) == size
            assert torch.equal(x[:, 0].long(), y) and text == [f"item {i}" for i in y.tolist()]
            seen += y.tolist()
        assert len(seen) == len(set(seen)) == per_pass * size  # no repeats within a pass


def test_random_batches_are_reproducible_and_depend_on_the_seed():
    data_ = torch.arange(100)
    first = batching.random_batches(data_, batch_size=10, seed=3)
    again = batching.random_batches(data_, batch_size=10, seed=3)
    other = batching.random_batches(data_, batch_size=10, seed=4)
    a, b, c = ([f()[0] for _ in range(5)] for f in (first, again, other))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_random_batches_with_replacement_and_a_transform():
    data_ = torch.arange(5)
    draws = batching.random_batches(data_, batch_size=8, seed=0, replacement=True)
    values = torch.cat([draws()[0] for _ in range(200)])
    assert torch.bincount(values, minlength=5).min() > 200  # every item, many times
    assert values.shape == (1600,)  # batch_size is kept even above N with replacement

    def flip(batch, generator):
        (x,) = batch
        return (-x if bool(torch.rand((), generator=generator) < 0.5) else x,)

    flipped = batching.random_batches(data_ + 1, batch_size=5, seed=0, transform=flip)
    signs = {int(torch.sign(flipped()[0]).sum()) for _ in range(20)}
    assert signs == {5, -5}  # whole batches flipped, reproducibly drawn from the generator


def test_random_batches_work_as_fit_data():
    from course_lib.train import fit

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    x = torch.randn(64, 1)

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = model

        def forward(self, inputs, targets):
            prediction = self.linear(inputs)
            return prediction, torch.nn.functional.mse_loss(prediction, targets)

    history = fit(Regressor(), batching.random_batches(x, 2 * x + 1, batch_size=16), steps=200,
                  lr=0.05, device="cpu", progress=False, live_plot=False)  # fmt: skip
    assert history.losses[-1] < 0.01


def test_pad_sequences():
    padded = batching.pad_sequences([[5, 6, 7], [], [8]], pad_id=0)
    assert padded.tolist() == [[5, 6, 7], [0, 0, 0], [8, 0, 0]] and padded.dtype == torch.long
    assert batching.pad_sequences([], pad_id=0).shape == (0, 0)
    with pytest.raises(TypeError, match=r"sequences\[1\] must be a list of token ids"):
        batching.pad_sequences([[1], "ab"], 0)


def test_random_windows_are_shifted_by_one():
    ids = torch.arange(50)
    x, y = batching.random_windows(ids, 8, 6, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 8)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)


def test_length_bucketed_batches_trim_padding():
    dates = data.load_dates(200, 4, 4)
    encoded = data.encode_dates(dates.train, dates.source_vocab, dates.target_vocab)
    batch = batching.length_bucketed_batches(encoded, 16, seed=0)
    for _ in range(5):
        source, lengths, target = batch()
        assert source.shape[1] == int(lengths.max())  # trimmed to the longest in the batch
        assert target.shape == (16, encoded.target.shape[1])


def test_the_old_names_are_the_shared_functions():
    assert rnn.batchify is batching.batchify and rnn.TBPTTChunks is batching.TBPTTChunks
    assert attention.length_bucketed_batches is batching.length_bucketed_batches
    assert transformer.random_windows is batching.random_windows
