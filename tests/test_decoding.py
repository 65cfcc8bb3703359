"""course_lib.decoding: greedy decoding and beam search against exhaustive search on a small
known model, the shared generate() of the three seq2seq models, sampling helpers, states."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import attention, data, decoding, rnn, transformer

START, END, PAD = 1, 2, 0


class MarkovState(NamedTuple):
    previous: torch.Tensor  # [N] a named tuple of tensors, to check reorder_state below
    steps: torch.Tensor  # [N]


def trigram_step(table: torch.Tensor, table2: torch.Tensor):
    """A decoder whose next-token logits depend on the last two tokens fed:
    ``table[fed] + table2[fed before]``. Its state is the history of tokens fed [N, t], so
    a beam search that reorders the state wrongly gives wrong scores."""

    def step(tokens: torch.Tensor, history: torch.Tensor):
        logits = table[tokens] + table2[history[:, -1]]
        return logits, torch.cat([history, tokens[:, None]], dim=1)

    return step


def start_state(batch: int) -> torch.Tensor:
    return torch.full((batch, 1), START)  # the token "before <start>" is <start> too


def sequence_log_prob(table: torch.Tensor, table2: torch.Tensor, tokens: list) -> float:
    """Sum of log-probabilities of ``tokens`` after <start> (tokens after <end> are free)."""
    before, previous, total = START, START, 0.0
    for token in tokens:
        if previous in (END, PAD):  # finished: only padding follows, at no cost
            if token != PAD:
                return float("-inf")
            previous = PAD
            continue
        total += float((table[previous] + table2[before]).log_softmax(-1)[token])
        before, previous = previous, token
    return total


def brute_force(table: torch.Tensor, table2: torch.Tensor, length: int) -> tuple:
    """The most likely output of ``length`` tokens (padding after <end>), by enumeration."""
    vocab = table.shape[0]
    best, best_score = None, float("-inf")
    for tokens in itertools.product(range(vocab), repeat=length):
        tokens = list(tokens)
        score = sequence_log_prob(table, table2, tokens)
        if score > best_score:
            best, best_score = tokens, score
    return best, best_score


def random_tables(vocab: int, seed: int, sharpness: float = 2.0) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    table = torch.randn(vocab, vocab, generator=generator, dtype=torch.float64) * sharpness
    table2 = torch.randn(vocab, vocab, generator=generator, dtype=torch.float64)
    table[:, START] = float("-inf")  # <start> and <pad> are never generated
    table[:, PAD] = float("-inf")
    table[PAD] = 0.0  # fed only after <end>
    return table, table2


def test_greedy_follows_the_argmax_and_pads_after_end():
    table = torch.full((5, 5), -5.0, dtype=torch.float64)
    table[START, 3], table[3, 4], table[4, END], table[END, 3] = 0.0, 0.0, 0.0, 0.0
    step = trigram_step(table, torch.zeros_like(table))
    options = {"start_id": START, "end_id": END, "pad_id": PAD}
    tokens = decoding.greedy_decode(step, start_state(2), 2, 6, **options)
    assert tokens.tolist() == [[3, 4, END, PAD, PAD, PAD]] * 2
    empty = decoding.greedy_decode(step, start_state(2), 2, 0, **options)
    assert empty.shape == (2, 0)


@pytest.mark.parametrize("seed", range(6))
def test_a_beam_as_wide_as_every_output_is_exhaustive_search(seed):
    vocab, length = 4, 3
    table, table2 = random_tables(vocab, seed)
    tokens, score = decoding.beam_search(
        trigram_step(table, table2), start_state(2), 2, length, beam_size=vocab**length,
        start_id=START, end_id=END, pad_id=PAD, length_penalty=0.0, return_scores=True,
    )  # fmt: skip
    best, best_score = brute_force(table, table2, length)
    assert tokens.tolist() == [best, best]
    assert score.tolist() == pytest.approx([best_score] * 2, abs=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), vocab=st.integers(3, 5), length=st.integers(1, 5))
def test_beam_size_one_is_greedy_and_wider_beams_never_score_lower(seed, vocab, length):
    table, table2 = random_tables(vocab, seed)
    step = trigram_step(table, table2)
    options = {"start_id": START, "end_id": END, "pad_id": PAD}
    greedy = decoding.greedy_decode(step, start_state(3), 3, length, **options)
    beam_one = decoding.beam_search(step, start_state(3), 3, length, beam_size=1, **options)
    assert torch.equal(greedy, beam_one)
    # A beam that can hold every output finds the most likely one: at least as likely
    # as greedy's (no length penalty).
    wide = decoding.beam_search(
        step, start_state(1), 1, length, beam_size=vocab**length, length_penalty=0.0, **options
    )
    assert (
        sequence_log_prob(table, table2, wide[0].tolist())
        >= sequence_log_prob(table, table2, greedy[0].tolist()) - 1e-9
    )


def test_finished_beams_keep_their_score_and_the_length_penalty_prefers_longer_outputs():
    vocab = 5
    table = torch.full((vocab, vocab), -20.0, dtype=torch.float64)
    # From <start>: <end> at once (p ~ 0.55) or 3 (p ~ 0.45), then 3 -> 4 -> <end> surely.
    table[START, END], table[START, 3] = 0.2, 0.0
    table[3, 4], table[4, END], table[PAD] = 0.0, 0.0, 0.0
    step = trigram_step(table, torch.zeros_like(table))
    options = {"start_id": START, "end_id": END, "pad_id": PAD, "beam_size": 2}
    short = decoding.beam_search(step, start_state(1), 1, 4, length_penalty=0.0, **options)
    assert short[0].tolist() == [END, PAD, PAD, PAD]
    longer = decoding.beam_search(step, start_state(1), 1, 4, length_penalty=2.0, **options)
    assert longer[0].tolist() == [3, 4, END, PAD]


def test_reorder_state_walks_every_container():
    @dataclass
    class Holder:
        tensor: torch.Tensor
        name: str

    class Reorderable:
        def __init__(self):
            self.seen = None

        def reorder(self, index):
            self.seen = index.tolist()
            return self

    state = {
        "a": torch.arange(3) * 10,
        "b": [torch.arange(6).view(3, 2), (torch.tensor(7.0), None, 5)],
        "c": Holder(torch.arange(3), "x"),
        "d": MarkovState(torch.arange(3), torch.arange(3) + 1),
        "e": Reorderable(),
    }
    index = torch.tensor([2, 2, 0])
    out = decoding.reorder_state(state, index)
    assert out["a"].tolist() == [20, 20, 0]
    assert out["b"][0].tolist() == [[4, 5], [4, 5], [0, 1]]
    assert out["b"][1][0].item() == 7.0 and out["b"][1][1] is None and out["b"][1][2] == 5
    assert out["c"].tensor.tolist() == [2, 2, 0] and out["c"].name == "x"
    assert isinstance(out["d"], MarkovState) and out["d"].steps.tolist() == [3, 3, 1]
    assert out["e"].seen == [2, 2, 0]


def test_sample_feeds_each_token_back():
    fed = []

    def step(token, state):
        fed.append(token.clone())
        return torch.nn.functional.one_hot(token + 1, 10).double() * 100, state + 1

    first = torch.nn.functional.one_hot(torch.tensor([0, 3]), 10).double() * 100
    tokens = decoding.sample(step, first, torch.tensor(0), 4, temperature=0.0)
    assert tokens.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6]]
    assert len(fed) == 3  # the last token is not fed back
    assert decoding.sample(step, first, torch.tensor(0), 0).shape == (2, 0)


# ----------------------------------------------------------------------------------------
# The seq2seq models share generate()
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dates():
    dates = data.load_dates(64, 8, 16, seed=0)
    encoded = data.encode_dates(dates.test, dates.source_vocab, dates.target_vocab)
    return dates, encoded


def _models(source_vocab, target_vocab):
    torch.manual_seed(0)
    return [
        rnn.Seq2Seq(source_vocab, target_vocab, 8, 16),
        attention.AttentionSeq2Seq(source_vocab, target_vocab, 8, 16),
        transformer.Transformer(
            source_vocab,
            target_vocab,
            d_model=16,
            nhead=2,
            num_encoder_layers=1,
            num_decoder_layers=2,
            dim_feedforward=32,
            share_embeddings=False,
        ),
    ]


def _sharpen(model):
    """Random weights give flat distributions; scale the output layer up so that decoding
    choices are clear-cut and beams differ."""
    with torch.no_grad():
        layer = (
            model.decoder.output if isinstance(model, attention.AttentionSeq2Seq) else model.output
        )
        layer.weight.mul_(8.0)
    return model.eval()


def _reference_greedy(model, source, lengths, steps):
    """Greedy decoding written out: re-run teacher forcing on the growing prefix."""
    prefix = torch.full((source.shape[0], 1), model.start_id)
    finished = torch.zeros(source.shape[0], dtype=torch.bool)
    for _ in range(steps):
        target = torch.cat([prefix, torch.zeros_like(prefix[:, :1])], dim=1)
        logits, _ = model(source, lengths, target)
        token = logits[:, -1].argmax(-1).masked_fill(finished, model.pad_id)
        finished |= token == model.end_id
        prefix = torch.cat([prefix, token[:, None]], dim=1)
    return prefix[:, 1:]


@pytest.mark.parametrize("kind", range(3), ids=["Seq2Seq", "AttentionSeq2Seq", "Transformer"])
def test_generate_is_greedy_teacher_forcing_and_beam_one_is_greedy(dates, kind):
    vocabs, encoded = dates
    model = _sharpen(_models(len(vocabs.source_vocab), len(vocabs.target_vocab))[kind])
    source, lengths = encoded.source[:6], encoded.source_lengths[:6]
    source = source[:, : int(lengths.max())]
    greedy = model.generate(source, lengths, 7)
    assert greedy.shape == (6, 7) and greedy.dtype == torch.long
    assert torch.equal(greedy, _reference_greedy(model, source, lengths, 7))
    assert torch.equal(model.generate(source, lengths, 7, beam_size=1), greedy)
    beams = model.generate(source, lengths, 7, beam_size=3)
    assert beams.shape == (6, 7)
    assert model.generate(source, lengths, 0, beam_size=3).shape == (6, 0)


@pytest.mark.parametrize("kind", range(3), ids=["Seq2Seq", "AttentionSeq2Seq", "Transformer"])
def test_beam_search_finds_outputs_at_least_as_likely_as_greedy(dates, kind):
    vocabs, encoded = dates
    model = _sharpen(_models(len(vocabs.source_vocab), len(vocabs.target_vocab))[kind])
    source, lengths = encoded.source[:8], encoded.source_lengths[:8]

    def log_prob(tokens):
        target = torch.cat([torch.full((tokens.shape[0], 1), model.start_id), tokens], dim=1)
        logits, _ = model(source, lengths, target)
        per_token = logits.log_softmax(-1).gather(-1, tokens[..., None])[..., 0]
        is_end = (tokens == model.end_id).long()
        counted = (is_end.cumsum(1) - is_end) == 0  # up to and including <end>
        return (per_token * counted).sum(1)

    greedy = model.generate(source, lengths, 5)
    wide = model.generate(source, lengths, 5, beam_size=16, length_penalty=0.0)
    assert (log_prob(wide) >= log_prob(greedy) - 1e-4).all()
    assert (log_prob(wide) > log_prob(greedy) + 1e-4).any() or torch.equal(wide, greedy)


def test_translate_and_exact_match_with_a_beam(dates):
    vocabs, _ = dates
    model = _models(len(vocabs.source_vocab), len(vocabs.target_vocab))[1]
    texts = [pair.source for pair in vocabs.test[:3]]
    greedy = decoding.translate(model, texts, vocabs.source_vocab, vocabs.target_vocab)
    beam = decoding.translate(model, texts, vocabs.source_vocab, vocabs.target_vocab, beam_size=1)
    assert greedy == beam and all(isinstance(text, str) for text in greedy)
    correct = decoding.exact_match(model, vocabs.test[:4], vocabs.source_vocab,
                                   vocabs.target_vocab, beam_size=2)  # fmt: skip
    assert correct.shape == (4,) and correct.dtype == torch.bool


def test_the_old_names_are_the_shared_functions():
    assert rnn.sampling_probs is decoding.sampling_probs
    assert rnn.sample_next_token is decoding.sample_next_token
    assert rnn.translate is decoding.translate and rnn.exact_match is decoding.exact_match
    assert rnn.accuracy_by_length is attention.accuracy_by_length is decoding.accuracy_by_length
    assert attention.exact_match_ids is decoding.exact_match_ids
