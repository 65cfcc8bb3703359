"""course_lib.data: the four offline data sets are complete, deterministic and checked."""

import datetime as dt
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from course_lib import data

# ------------------------------------------------------------------------------ digits


def test_digits_fixed_stratified_split():
    digits = data.load_digits()
    assert digits.train_images.shape == (1437, 1, 8, 8)
    assert digits.test_images.shape == (360, 1, 8, 8)
    assert digits.train_images.dtype == torch.float32 and digits.train_labels.dtype == torch.int64
    assert 0.0 <= float(digits.train_images.min()) and float(digits.train_images.max()) == 1.0
    test_counts = torch.bincount(digits.test_labels, minlength=10)
    assert int(test_counts.min()) >= 35 and int(test_counts.max()) <= 37  # 20 % of ~180 each
    again = data.load_digits()
    assert torch.equal(again.train_images, digits.train_images)
    assert torch.equal(again.test_labels, digits.test_labels)


def test_digits_are_sklearns_images_scaled():
    reference = sklearn_digits().images / 16.0
    digits = data.load_digits()
    every = torch.cat([digits.train_images, digits.test_images]).reshape(-1, 64).double()
    expected = torch.from_numpy(reference.reshape(-1, 64))
    # Same multiset of images: sort rows lexicographically on both sides.
    order = lambda x: x[np.lexsort(x.numpy().T[::-1])]  # noqa: E731
    assert torch.allclose(order(every), order(expected), atol=1e-6)


def test_digits_copies_are_independent():
    first = data.load_digits()
    first.train_images.zero_()
    assert float(data.load_digits().train_images.max()) == 1.0


@pytest.mark.parametrize(("kwargs", "error"), [({"test_fraction": 1.5}, ValueError),
                                                ({"test_fraction": 0}, ValueError),
                                                ({"seed": -3}, ValueError)])  # fmt: skip
def test_digits_bad_arguments(kwargs, error):
    with pytest.raises(error):
        data.load_digits(**kwargs)


# ------------------------------------------------------------------------------ vocab


def test_vocab_specials_and_round_trip():
    vocab = data.Vocab("abc")
    assert (vocab.pad_id, vocab.start_id, vocab.end_id, vocab.unk_id) == (0, 1, 2, 3)
    ids = vocab.encode("cab", add_start=True, add_end=True)
    assert ids == [1, 6, 4, 5, 2]
    assert vocab.decode(ids) == "cab"
    assert vocab.decode([*ids, 0, 0]) == "cab"
    assert vocab.decode([4, 2, 5]) == "a"  # stops at <end>
    assert vocab.decode(torch.tensor(ids), strip_special=False) == "<start>cab<end>"
    assert vocab.encode("axb") == [4, 3, 5] and vocab.decode([4, 3, 5]) == "a?b"


def test_vocab_without_specials_rejects_unknown_characters():
    vocab = data.Vocab("ab", specials=())
    assert len(vocab) == 2 and vocab.encode("ba") == [1, 0]
    with pytest.raises(ValueError, match="not in the vocabulary"):
        vocab.encode("abc")
    with pytest.raises(ValueError, match="no <pad>"):
        _ = vocab.pad_id


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: data.Vocab("aa"), "repeat"),
        (lambda: data.Vocab(["ab"]), "single characters"),
        (lambda: data.Vocab("a", specials=("<mask>",)), "specials"),
        (lambda: data.Vocab("a").decode([9]), r"ids must hold ids in \[0, 4\]"),
        (lambda: data.Vocab("a").decode(torch.zeros(2, 2, dtype=torch.long)), "shape"),
    ],
)
def test_vocab_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_vocab_encode_type_error():
    with pytest.raises(TypeError, match="text"):
        data.Vocab("a").encode(3)


# ------------------------------------------------------------------------------ corpus


def test_python_corpus_vocabulary_is_fixed_and_round_trips():
    corpus = data.load_python_corpus(modules=["textwrap", "heapq"])
    assert len(corpus.vocab) == 96 and corpus.vocab.itos[0] == "\n"
    assert set(corpus.text) <= set(data.CORPUS_CHARACTERS)
    assert "def dedent" in corpus.text and "def heappush" in corpus.text
    assert len(corpus.train_ids) + len(corpus.val_ids) == len(corpus.text)
    assert abs(len(corpus.val_ids) / len(corpus.text) - 0.1) < 1e-3
    ids = torch.cat([corpus.train_ids, corpus.val_ids])
    assert corpus.vocab.decode(ids) == corpus.text
    assert corpus.train_ids.dtype == torch.int64


def test_python_corpus_is_deterministic_and_truncates():
    small = data.load_python_corpus(max_chars=5000)
    assert len(small.text) == 5000
    assert small.text == data.load_python_corpus(max_chars=5000).text
    assert small.modules == data.PYTHON_CORPUS_MODULES


def test_default_corpus_modules_all_exist():
    corpus = data.load_python_corpus()
    assert len(corpus.text) > 500_000
    for module in data.PYTHON_CORPUS_MODULES:
        assert f"# ---- {module} ----" in corpus.text


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"modules": ["not_a_module_xyz"]}, ValueError, "no Python source"),
        ({"modules": ["sys"]}, ValueError, "no Python source"),
        ({"modules": []}, ValueError, "at least one"),
        ({"max_chars": 10}, ValueError, "max_chars"),
        ({"val_fraction": 1.0}, ValueError, "val_fraction"),
    ],
)
def test_python_corpus_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.load_python_corpus(**kwargs)


# ------------------------------------------------------------------------------ dates

_MONTHS = [dt.date(2000, m, 1).strftime("%B") for m in range(1, 13)]
_CN = {c: i for i, c in enumerate("〇一二三四五六七八九")}


def _cn_small(text: str) -> int:
    if "十" not in text:
        return _CN[text]
    tens, _, ones = text.partition("十")
    return (_CN[tens] if tens else 1) * 10 + (_CN[ones] if ones else 0)


def _parse(source: str) -> dt.date:
    """An independent parser for every input format (written from the formats' specs)."""
    text = re.sub(r"(\d+)(st|nd|rd|th)", r"\1", source)
    text = text.replace("the ", "").replace(" of ", " ")
    if "年" in text:
        year, rest = text.split("年")
        month, rest = rest.split("月")
        day = rest.split("日")[0]
        if year.isdigit():
            return dt.date(int(year), int(month), int(day))
        return dt.date(int("".join(str(_CN[c]) for c in year)), _cn_small(month), _cn_small(day))
    for pattern in ("%Y/%m/%d", "%d.%m.%Y", "%m/%d/%Y", "%d-%b-%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            pass
    words = text.replace(",", " ").split()
    words = [w for w in words if w.capitalize() not in {d.strftime("%A") for d in
             (dt.date(2024, 1, i) for i in range(1, 8))} and w.capitalize()[:3] not in
             {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}]  # fmt: skip
    numbers = [int(w) for w in words if w.isdigit()]
    month = next(
        i + 1 for i, m in enumerate(_MONTHS) for w in words if w.capitalize() in (m, m[:3])
    )
    year = next(n for n in numbers if n > 31)
    day = next(n for n in numbers if n <= 31)
    return dt.date(year, month, day)


def test_every_format_reads_back_to_its_target():
    rng = np.random.default_rng(0)
    days = [dt.date(1950, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 36524, 400)]
    days += [
        dt.date(2000, 2, 29),
        dt.date(1950, 1, 1),
        dt.date(2049, 12, 31),
        dt.date(2011, 11, 11),
    ]
    for day in days:
        for name in data.DATE_FORMATS:
            source = data.format_date(day, name)
            assert _parse(source) == day, (name, source)
            assert day.strftime("%A") in source or name not in {
                "weekday_month_d_y",
                "weekday_the_dth",
            }


def test_dates_splits_are_deterministic_and_disjoint():
    first = data.load_dates(3000, 500, 500, seed=3)
    again = data.load_dates(3000, 500, 500, seed=3)
    assert first.train == again.train and first.test == again.test
    assert (len(first.train), len(first.val), len(first.test)) == (3000, 500, 500)
    days = {
        split: {pair.target for pair in getattr(first, split)} for split in ("train", "val", "test")
    }
    assert not days["train"] & days["test"] and not days["train"] & days["val"]
    assert not days["val"] & days["test"]
    assert {pair.format for pair in first.train} == set(data.DATE_FORMATS)
    other = data.load_dates(3000, 500, 500, seed=4)
    assert other.train != first.train


def test_dates_vocabulary_covers_every_day_and_format():
    dates = data.load_dates(10, 10, 10)
    known = set(dates.source_vocab.itos)
    start = dt.date(1950, 1, 1)
    for offset in range(0, 36525, 7):  # every weekday, month, day number and year digit
        day = start + dt.timedelta(days=offset + offset % 7)
        for name in data.DATE_FORMATS:
            assert set(data.format_date(day, name)) <= known
    assert dates.target_vocab.itos[4:] == list("0123456789-")
    lengths = [len(p.source) for p in data.load_dates(5000, 0, 0).train]
    assert min(lengths) <= 10 and max(lengths) >= 35


def test_encode_dates_shapes_and_round_trip():
    dates = data.load_dates(64, 8, 8, seed=1)
    batch = data.encode_dates(dates.train, dates.source_vocab, dates.target_vocab)
    assert batch.target.shape == (64, 12) and len(batch) == 64
    assert (batch.target[:, 0] == dates.target_vocab.start_id).all()
    assert (batch.target[:, -1] == dates.target_vocab.end_id).all()
    assert batch.source.shape == (64, int(batch.source_lengths.max()))
    for row, pair in enumerate(dates.train):
        length = int(batch.source_lengths[row])
        assert dates.source_vocab.decode(batch.source[row, :length]) == pair.source
        assert (batch.source[row, length:] == dates.source_vocab.pad_id).all()
        assert dates.target_vocab.decode(batch.target[row]) == pair.target
    assert batch.to("cpu").source is not None


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: data.load_dates(-1), ValueError),
        (lambda: data.load_dates(10, formats=["nope"]), ValueError),
        (lambda: data.load_dates(10, formats=[]), ValueError),
        (lambda: data.load_dates(1.5), TypeError),
        (lambda: data.format_date("2020-01-01", "ymd_slash"), TypeError),
        (lambda: data.format_date(dt.date(2020, 1, 1), "nope"), ValueError),
    ],
)
def test_dates_bad_arguments(call, error):
    with pytest.raises(error):
        call()


def test_encode_dates_rejects_empty():
    dates = data.load_dates(1, 0, 0)
    with pytest.raises(ValueError, match="at least one"):
        data.encode_dates([], dates.source_vocab, dates.target_vocab)


# ------------------------------------------------------------------------------ shapes


def test_shapes_items_are_deterministic_and_well_formed():
    dataset = data.ShapesDataset(20, image_size=48, max_objects=4, seed=5)
    assert len(dataset) == 20
    for index in range(20):
        image, target = dataset[index]
        again, target_again = dataset[index]
        assert torch.equal(image, again) and torch.equal(target["boxes"], target_again["boxes"])
        assert image.shape == (3, 48, 48) and image.dtype == torch.float32
        assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
        boxes = target["boxes"]
        assert boxes.dtype == torch.float32 and boxes.shape[1] == 4
        assert 1 <= len(boxes) <= 4 and len(target["labels"]) == len(boxes) == len(target["colors"])
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 48).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()
        assert target["labels"].dtype == torch.int64
        assert set(target["labels"].tolist()) <= {0, 1, 2}
        assert set(target["colors"].tolist()) <= set(range(len(data.SHAPE_COLORS)))
    assert torch.equal(dataset[-1][0], dataset[19][0])
    other = data.ShapesDataset(20, image_size=48, max_objects=4, seed=6)
    assert not torch.equal(other[0][0], dataset[0][0])


def _pairwise_iou(boxes):
    lt = torch.max(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    return inter / (area[:, None] + area[None, :] - inter)


@pytest.mark.parametrize("max_iou", [0.0, 0.3])
def test_shapes_respect_max_iou(max_iou):
    dataset = data.ShapesDataset(30, image_size=64, min_objects=3, max_objects=6, max_iou=max_iou)
    for index in range(30):
        boxes = dataset[index][1]["boxes"]
        iou = _pairwise_iou(boxes) - torch.eye(len(boxes))
        assert float(iou.max()) <= max_iou + 1e-6


def test_shapes_boxes_are_tight_around_the_drawn_shape():
    dataset = data.ShapesDataset(30, image_size=64, min_objects=1, max_objects=1, noise=0.0)
    for index in range(30):
        image, target = dataset[index]
        background = image[:, 0, 0] if target["boxes"][0, 0] > 1 else image[:, -1, -1]
        drawn = (image - background[:, None, None]).abs().amax(0) > 1e-4  # [H, W]
        ys, xs = torch.nonzero(drawn, as_tuple=True)
        x1, y1, x2, y2 = target["boxes"][0].tolist()
        # Every changed pixel overlaps the box, and the box touches changed pixels on all sides.
        assert xs.min() >= int(x1) and xs.max() <= int(np.ceil(x2)) - 1
        assert ys.min() >= int(y1) and ys.max() <= int(np.ceil(y2)) - 1
        assert xs.min() <= x1 + 1.5 and xs.max() + 1 >= x2 - 1.5
        assert ys.min() <= y1 + 1.5 and ys.max() + 1 >= y2 - 1.5


def test_shapes_classes_look_different():
    # A circle covers pi/4 of its box, a square all of it, a triangle half of it.
    dataset = data.ShapesDataset(60, image_size=64, max_objects=1, min_size=0.3, noise=0.0)
    fill = {0: [], 1: [], 2: []}
    for index in range(60):
        image, target = dataset[index]
        x1, y1, x2, y2 = target["boxes"][0].tolist()
        background = image[:, 0, 0] if x1 > 1 and y1 > 1 else image[:, -1, -1]
        contrast = (image - background[:, None, None]).abs().amax(0)
        drawn = (contrast > 0.5 * contrast.max()).float().sum()  # pixels more than half covered
        fill[int(target["labels"][0])].append(float(drawn) / ((x2 - x1) * (y2 - y1)))
    means = {label: np.mean(values) for label, values in fill.items()}
    assert abs(means[0] - np.pi / 4) < 0.04 and abs(means[1] - 1) < 0.04
    assert abs(means[2] - 0.5) < 0.04


def test_collate_detection():
    dataset = data.ShapesDataset(4, image_size=32)
    images, targets = data.collate_detection([dataset[i] for i in range(4)])
    assert images.shape == (4, 3, 32, 32) and len(targets) == 4
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=data.collate_detection)
    assert next(iter(loader))[0].shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="at least one"):
        data.collate_detection([])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_images": -1}, ValueError, "num_images"),
        ({"num_images": 2, "image_size": 8}, ValueError, "image_size"),
        ({"num_images": 2, "min_objects": 3, "max_objects": 2}, ValueError, "min_objects"),
        ({"num_images": 2, "min_size": 0.5, "max_size": 0.2}, ValueError, "min_size"),
        ({"num_images": 2, "max_iou": 1.5}, ValueError, "max_iou"),
        ({"num_images": 2, "noise": -0.1}, ValueError, "noise"),
        ({"num_images": "5"}, TypeError, "num_images"),
    ],
)
def test_shapes_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        data.ShapesDataset(**kwargs)


def test_shapes_index_out_of_range():
    with pytest.raises(IndexError):
        data.ShapesDataset(3)[3]
