"""The course's offline data sets: digits, a Python source-code corpus, dates, shapes.

Nothing here touches the network. Every generator is seeded and deterministic: the same
arguments give the same data on every machine (the text corpus is read from the
installed Python standard library, so it is fixed per Python version).

Shape letters used in this module: ``N`` items, ``C`` channels, ``H``/``W`` image height
and width, ``K`` objects in one image, ``B`` batch, ``S`` source length, ``T`` target length.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from course_lib.validation import (
    check_bool,
    check_device,
    check_float,
    check_instance,
    check_int,
    check_tensor,
)

__all__ = [
    "DATE_FORMATS",
    "PYTHON_CORPUS_MODULES",
    "SHAPE_CLASSES",
    "SHAPE_COLORS",
    "SPECIAL_TOKENS",
    "DatePair",
    "DatesData",
    "DigitsData",
    "EncodedDates",
    "ShapesDataset",
    "TextCorpus",
    "Vocab",
    "collate_detection",
    "encode_dates",
    "format_date",
    "load_dates",
    "load_digits",
    "load_python_corpus",
]


def _check_int(name: str, value: object, minimum: int = 0) -> int:
    """An int >= ``minimum`` (``course_lib.validation.check_int``)."""
    return check_int(name, value, minimum)


# --------------------------------------------------------------------------------------
# Vocabularies
# --------------------------------------------------------------------------------------

#: Special tokens, always at ids 0..3 in this order when a vocabulary has them.
SPECIAL_TOKENS: Tuple[str, ...] = ("<pad>", "<start>", "<end>", "<unk>")


class Vocab:
    """A character-level vocabulary: special tokens first, then ``tokens`` in the given order.

    ``Vocab(tokens)`` has ``<pad>=0, <start>=1, <end>=2, <unk>=3``; ``Vocab(tokens,
    specials=())`` has none (characters the vocabulary lacks are then an error).
    """

    def __init__(self, tokens: Iterable[str], specials: Sequence[str] = SPECIAL_TOKENS) -> None:
        if not hasattr(tokens, "__iter__"):
            raise TypeError(
                f"tokens must be a string or a list of characters, got {type(tokens).__name__}"
            )
        tokens = list(tokens)
        for token in tokens:
            check_instance("tokens", token, str, "single characters (strings)")
            if len(token) != 1:
                raise ValueError(f"tokens must be single characters, got {token!r}")
        if len(set(tokens)) != len(tokens):
            raise ValueError("tokens must not repeat")
        if isinstance(specials, str) or not isinstance(specials, (list, tuple)):
            raise TypeError(
                f"specials must be a tuple of special tokens, got {type(specials).__name__}"
            )
        unknown_specials = set(specials) - set(SPECIAL_TOKENS)
        if unknown_specials:
            raise ValueError(f"specials must come from {SPECIAL_TOKENS}, got {unknown_specials}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"specials must not repeat, got {tuple(specials)}")
        self.specials: Tuple[str, ...] = tuple(specials)
        self.itos: List[str] = [*self.specials, *tokens]
        self.stoi: Dict[str, int] = {token: i for i, token in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, specials={self.specials})"

    def _special_id(self, token: str) -> int:
        if token not in self.stoi:
            raise ValueError(f"this vocabulary has no {token} token")
        return self.stoi[token]

    @property
    def pad_id(self) -> int:
        return self._special_id("<pad>")

    @property
    def start_id(self) -> int:
        return self._special_id("<start>")

    @property
    def end_id(self) -> int:
        return self._special_id("<end>")

    @property
    def unk_id(self) -> int:
        return self._special_id("<unk>")

    def encode(self, text: str, add_start: bool = False, add_end: bool = False) -> List[int]:
        """Character ids of ``text``, optionally wrapped in ``<start>``/``<end>``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        check_bool("add_start", add_start)
        check_bool("add_end", add_end)
        unk = self.stoi.get("<unk>")
        ids = []
        for char in text:
            index = self.stoi.get(char, unk)
            if index is None:
                raise ValueError(
                    f"text holds the character {char!r}, which is not in the vocabulary "
                    "(and it has no <unk> token)"
                )
            ids.append(index)
        if add_start:
            ids.insert(0, self.start_id)
        if add_end:
            ids.append(self.end_id)
        return ids

    def decode(self, ids: Union[Sequence[int], Tensor], strip_special: bool = True) -> str:
        """Text of ``ids`` [T]; with ``strip_special`` stop at ``<end>`` and drop other specials."""
        if isinstance(ids, Tensor):
            check_tensor("ids", ids, "T", dtype="integer")
            ids = ids.tolist()
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple, np.ndarray)):
            raise TypeError(
                f"ids must be a list or a Tensor [T] of token ids, got {type(ids).__name__}"
            )
        check_bool("strip_special", strip_special)
        chars = []
        for position, index in enumerate(ids):
            index = check_int(f"ids[{position}]", index)
            if not 0 <= index < len(self.itos):
                raise ValueError(
                    f"ids must hold ids in [0, {len(self) - 1}] (vocabulary size {len(self)}), "
                    f"got {index}"
                )
            token = self.itos[index]
            if strip_special and token in self.specials:
                if token == "<end>":
                    break
                if token == "<unk>":
                    chars.append("?")
                continue
            chars.append(token)
        return "".join(chars)


# --------------------------------------------------------------------------------------
# Digits
# --------------------------------------------------------------------------------------


@dataclass
class DigitsData:
    """scikit-learn's 8x8 digits with a fixed stratified split.

    Images are float32 in [0, 1] with shape [N, 1, 8, 8]; labels are int64 [N].
    """

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor

    def __repr__(self) -> str:
        return (
            f"DigitsData(train={len(self.train_labels)}, test={len(self.test_labels)}, "
            f"image shape={tuple(self.train_images.shape[1:])})"
        )


@lru_cache(maxsize=4)
def _digits_split(test_fraction: float, seed: int) -> Tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    return tuple(
        train_test_split(
            images, labels, test_size=test_fraction, random_state=seed, stratify=labels
        )
    )


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> DigitsData:
    """The 1797 digits of ``sklearn.datasets.load_digits``, split into train and test.

    With the defaults the split is always the same 1437 training and 360 test images,
    stratified by class. Returns tensors: images [N, 1, 8, 8] in [0, 1], labels [N].
    """
    test_fraction = check_float("test_fraction", test_fraction, 0.0, 1.0, include_minimum=False,
                                include_maximum=False)  # fmt: skip
    seed = check_int("seed", seed, 0, 2**32 - 1)
    x_train, x_test, y_train, y_test = _digits_split(test_fraction, seed)
    return DigitsData(
        train_images=torch.from_numpy(x_train.copy()),
        train_labels=torch.from_numpy(y_train.copy()),
        test_images=torch.from_numpy(x_test.copy()),
        test_labels=torch.from_numpy(y_test.copy()),
    )


# --------------------------------------------------------------------------------------
# Text: source code of the Python standard library
# --------------------------------------------------------------------------------------

#: Pure-Python standard-library modules that exist from Python 3.9 to 3.13, in corpus order.
PYTHON_CORPUS_MODULES: Tuple[str, ...] = (
    "argparse", "ast", "bisect", "calendar", "collections", "configparser", "contextlib",
    "copy", "csv", "dataclasses", "datetime", "difflib", "enum", "fnmatch", "fractions",
    "functools", "glob", "gzip", "heapq", "inspect", "json.decoder", "json.encoder",
    "logging", "operator", "pathlib", "pprint", "queue", "random", "shlex", "shutil",
    "statistics", "string", "tempfile", "textwrap", "threading", "tokenize", "typing",
    "uuid", "zipfile",
)  # fmt: skip

#: Printable ASCII plus newline: the fixed character set of the corpus (96 characters).
CORPUS_CHARACTERS: Tuple[str, ...] = ("\n", *(chr(code) for code in range(32, 127)))


@dataclass
class TextCorpus:
    """A character-level corpus: the text, its vocabulary and a train/validation split.

    ``train_ids`` and ``val_ids`` are int64 tensors [T]; the validation part is the
    last ``val_fraction`` of the text, so no training window overlaps it.
    """

    text: str
    vocab: Vocab
    train_ids: Tensor
    val_ids: Tensor
    modules: Tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"TextCorpus({len(self.modules)} modules, {len(self.text):,} characters, "
            f"vocab={len(self.vocab)}, train={len(self.train_ids):,}, val={len(self.val_ids):,})"
        )


def _module_source(name: str) -> str:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise ValueError(
            f"modules must name pure-Python modules; {name!r} has no Python source file on "
            "this machine"
        )
    with open(spec.origin, encoding="utf-8") as handle:
        return handle.read()


def _normalise_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\t", "    ")
    allowed = set(CORPUS_CHARACTERS)
    return "".join(char if char in allowed else "?" for char in text)


def load_python_corpus(
    modules: Optional[Sequence[str]] = None,
    max_chars: Optional[int] = None,
    val_fraction: float = 0.1,
) -> TextCorpus:
    """Concatenate the source of standard-library ``modules`` into a character corpus.

    Tabs become four spaces and characters outside printable ASCII become ``?``, so the
    vocabulary is always the same 96 characters (no special tokens). ``max_chars`` keeps
    the first characters only (for fast runs). Returns a ``TextCorpus``.
    """
    if isinstance(modules, str):
        raise TypeError(f"modules must be a list of module names, got the string {modules!r}")
    modules = tuple(PYTHON_CORPUS_MODULES if modules is None else modules)
    if not modules:
        raise ValueError("modules must name at least one module")
    for name in modules:
        check_instance("modules", name, str, "a list of module names (strings)")
    if max_chars is not None:
        max_chars = check_int("max_chars", max_chars, minimum=100)
    val_fraction = check_float("val_fraction", val_fraction, 0.0, 1.0, include_minimum=False,
                               include_maximum=False)  # fmt: skip
    parts = [f"# ---- {name} ----\n{_module_source(name)}" for name in modules]
    text = _normalise_text("\n".join(parts))
    if max_chars is not None:
        text = text[:max_chars]
    vocab = Vocab(CORPUS_CHARACTERS, specials=())
    lookup = np.zeros(128, dtype=np.int64)
    for index, char in enumerate(CORPUS_CHARACTERS):
        lookup[ord(char)] = index
    ids = torch.from_numpy(lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)])
    split = round(len(ids) * (1.0 - val_fraction))
    return TextCorpus(
        text=text, vocab=vocab, train_ids=ids[:split], val_ids=ids[split:], modules=modules
    )


# --------------------------------------------------------------------------------------
# Dates: human-written dates -> ISO 8601
# --------------------------------------------------------------------------------------

_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CN_DIGITS = "〇一二三四五六七八九"
_CN_WEEKDAYS = "一二三四五六日"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _cn_number(value: int) -> str:
    """1..31 written in Chinese numerals: 十, 十一, 二十, 二十五, 三十一."""
    tens, ones = divmod(value, 10)
    text = ("" if tens == 1 else _CN_DIGITS[tens]) + "十" if tens else ""
    return text + (_CN_DIGITS[ones] if ones else "")


def _cn_year(year: int) -> str:
    return "".join(_CN_DIGITS[int(digit)] for digit in str(year))


def _d(day: _dt.date) -> Dict[str, object]:
    return {
        "y": day.year,
        "m": day.month,
        "d": day.day,
        "month": _MONTHS[day.month - 1],
        "mon": _MONTHS[day.month - 1][:3],
        "weekday": _WEEKDAYS[day.weekday()],
        "wkd": _WEEKDAYS[day.weekday()][:3],
    }


#: Input formats of the dates task: name -> formatter. Each is unambiguous on its own
#: (numeric formats differ by their separators), and lengths range from 9 to 38 characters.
DATE_FORMATS: Dict[str, Callable[[_dt.date], str]] = {
    "ymd_slash": lambda t: "{y}/{m:02d}/{d:02d}".format(**_d(t)),
    "dmy_dots": lambda t: "{d:02d}.{m:02d}.{y}".format(**_d(t)),
    "mdy_slash": lambda t: "{m}/{d}/{y}".format(**_d(t)),
    "d_month_y": lambda t: "{d} {month} {y}".format(**_d(t)),
    "month_d_y": lambda t: "{month} {d}, {y}".format(**_d(t)),
    "mon_d_y": lambda t: "{mon} {d} {y}".format(**_d(t)),
    "d_MON_y": lambda t: "{d:02d}-{MON}-{y}".format(MON=_d(t)["mon"].upper(), **_d(t)),
    "weekday_month_d_y": lambda t: "{weekday}, {month} {d}, {y}".format(**_d(t)),
    "wkd_d_mon_y": lambda t: "{wkd}, {d} {mon} {y}".format(**_d(t)),
    "the_dth_of_month": lambda t: "the {o} of {month}, {y}".format(o=_ordinal(t.day), **_d(t)),
    "weekday_the_dth": lambda t: "{weekday}, the {o} of {month} {y}".format(
        o=_ordinal(t.day), **_d(t)
    ),
    "month_dth_y_lower": lambda t: "{month} {o} {y}".format(o=_ordinal(t.day), **_d(t)).lower(),
    "cn_numeric": lambda t: f"{t.year}年{t.month}月{t.day}日",
    "cn_padded_weekday": lambda t: (
        f"{t.year}年{t.month:02d}月{t.day:02d}日 星期{_CN_WEEKDAYS[t.weekday()]}"
    ),
    "cn_numerals": lambda t: f"{_cn_year(t.year)}年{_cn_number(t.month)}月{_cn_number(t.day)}日",
}

_FIRST_DAY = _dt.date(1950, 1, 1)
_LAST_DAY = _dt.date(2049, 12, 31)


def format_date(day: _dt.date, fmt: str) -> str:
    """Write ``day`` in the input format ``fmt`` (a key of ``DATE_FORMATS``)."""
    if not isinstance(day, _dt.date):
        raise TypeError(f"day must be a datetime.date, got {type(day).__name__}")
    if fmt not in DATE_FORMATS:
        raise ValueError(f"fmt must be one of {sorted(DATE_FORMATS)}, got {fmt!r}")
    return DATE_FORMATS[fmt](day)


@lru_cache(maxsize=1)
def _date_source_characters() -> Tuple[str, ...]:
    # Seven consecutive years cover every month, weekday, day number and digit.
    start = _dt.date(2000, 1, 1)
    chars = set()
    for offset in range(7 * 366):
        day = start + _dt.timedelta(days=offset)
        for formatter in DATE_FORMATS.values():
            chars.update(formatter(day))
    return tuple(sorted(chars))


@dataclass(frozen=True)
class DatePair:
    """One example: ``source`` (a human-written date), ``target`` (ISO ``YYYY-MM-DD``)."""

    source: str
    target: str
    format: str


@dataclass
class DatesData:
    """Train/validation/test pairs of the dates task and the two vocabularies.

    The three splits use disjoint calendar days, so a test date never appears in training
    in any format.
    """

    train: List[DatePair]
    val: List[DatePair]
    test: List[DatePair]
    source_vocab: Vocab
    target_vocab: Vocab

    def __repr__(self) -> str:
        return (
            f"DatesData(train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, "
            f"source vocab={len(self.source_vocab)}, target vocab={len(self.target_vocab)})"
        )


def load_dates(
    n_train: int = 20000,
    n_val: int = 1000,
    n_test: int = 2000,
    seed: int = 0,
    formats: Optional[Sequence[str]] = None,
) -> DatesData:
    """Generate the dates translation task (dates from 1950 to 2049, ISO targets).

    Days are shuffled once with ``seed`` and cut 80/10/10 into train/val/test pools; each
    pair draws a day from its pool and a format uniformly from ``formats`` (all of
    ``DATE_FORMATS`` by default). The source vocabulary is fixed by the formats (special
    tokens first), the target vocabulary is the ten digits and ``-``.
    """
    n_train = check_int("n_train", n_train, 0, 10**8)
    n_val = check_int("n_val", n_val, 0, 10**8)
    n_test = check_int("n_test", n_test, 0, 10**8)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    if isinstance(formats, str):
        raise TypeError(f"formats must be a list of format names, got the string {formats!r}")
    formats = tuple(DATE_FORMATS if formats is None else formats)
    unknown = [name for name in formats if name not in DATE_FORMATS]
    if not formats or unknown:
        raise ValueError(f"formats must be names from {sorted(DATE_FORMATS)}, got {formats}")
    rng = np.random.default_rng(seed)
    n_days = (_LAST_DAY - _FIRST_DAY).days + 1
    order = rng.permutation(n_days)
    cut_train, cut_val = int(0.8 * n_days), int(0.9 * n_days)
    pools = {"train": order[:cut_train], "val": order[cut_train:cut_val], "test": order[cut_val:]}

    def draw(pool: np.ndarray, count: int) -> List[DatePair]:
        days = rng.choice(pool, size=count, replace=count > len(pool))
        names = rng.integers(0, len(formats), size=count)
        pairs = []
        for offset, name_index in zip(days.tolist(), names.tolist()):
            day = _FIRST_DAY + _dt.timedelta(days=offset)
            name = formats[name_index]
            pairs.append(DatePair(DATE_FORMATS[name](day), day.isoformat(), name))
        return pairs

    return DatesData(
        train=draw(pools["train"], n_train),
        val=draw(pools["val"], n_val),
        test=draw(pools["test"], n_test),
        source_vocab=Vocab(_date_source_characters()),
        target_vocab=Vocab("0123456789-"),
    )


@dataclass
class EncodedDates:
    """Padded id tensors for a list of date pairs.

    ``source`` [B, S] (no start/end tokens) with ``source_lengths`` [B];
    ``target`` [B, T] = ``<start>`` + ISO characters + ``<end>`` (T = 12), so
    ``target[:, :-1]`` is the decoder input and ``target[:, 1:]`` the decoder target.
    """

    source: Tensor
    source_lengths: Tensor
    target: Tensor

    def __post_init__(self) -> None:
        sizes: Dict[str, int] = {}
        check_tensor("source", self.source, "B, S", dtype="integer", sizes=sizes)
        check_tensor("source_lengths", self.source_lengths, "B", dtype="integer", sizes=sizes)
        check_tensor("target", self.target, "B, T", dtype="integer", sizes=sizes)

    def to(self, device: Union[str, torch.device]) -> EncodedDates:
        """The same tensors on ``device``."""
        device = check_device("device", device)
        return EncodedDates(
            self.source.to(device), self.source_lengths.to(device), self.target.to(device)
        )

    def __len__(self) -> int:
        return self.source.shape[0]


def encode_dates(
    pairs: Sequence[DatePair], source_vocab: Vocab, target_vocab: Vocab
) -> EncodedDates:
    """Encode and pad ``pairs`` into id tensors (see ``EncodedDates`` for the shapes)."""
    from course_lib.batching import pad_sequences

    if isinstance(pairs, (str, DatePair)) or not isinstance(pairs, (list, tuple)):
        raise TypeError(f"pairs must be a list of DatePair, got {type(pairs).__name__}")
    if len(pairs) == 0:
        raise ValueError("pairs must contain at least one DatePair")
    for position, pair in enumerate(pairs):
        check_instance(f"pairs[{position}]", pair, DatePair, "a DatePair")
    check_instance("source_vocab", source_vocab, Vocab, "a Vocab")
    check_instance("target_vocab", target_vocab, Vocab, "a Vocab")
    sources = [_encode("source_vocab", source_vocab, pair.source) for pair in pairs]
    targets = [_encode("target_vocab", target_vocab, pair.target, True) for pair in pairs]
    return EncodedDates(
        source=pad_sequences(sources, _special("source_vocab", source_vocab, "pad_id")),
        source_lengths=torch.tensor([len(seq) for seq in sources], dtype=torch.long),
        target=pad_sequences(targets, _special("target_vocab", target_vocab, "pad_id")),
    )


def _special(name: str, vocab: Vocab, which: str) -> int:
    try:
        return getattr(vocab, which)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from error


def _encode(name: str, vocab: Vocab, text: str, wrap: bool = False) -> List[int]:
    """``vocab.encode(text)`` (with ``<start>``/``<end>`` if ``wrap``), naming the vocabulary
    in errors."""
    try:
        return vocab.encode(text, add_start=wrap, add_end=wrap)
    except ValueError as error:
        raise ValueError(f"{name} cannot encode {text!r}: {error}") from error


# --------------------------------------------------------------------------------------
# Shapes: RGB images of circles, squares and triangles with COCO-like targets
# --------------------------------------------------------------------------------------

#: Object classes; ``labels`` index into this tuple.
SHAPE_CLASSES: Tuple[str, ...] = ("circle", "square", "triangle")

#: Object colours (RGB in [0, 1]); ``colors`` in the targets index into this dict's order.
SHAPE_COLORS: Dict[str, Tuple[float, float, float]] = {
    "red": (0.90, 0.15, 0.15),
    "green": (0.15, 0.75, 0.20),
    "blue": (0.15, 0.35, 0.95),
    "yellow": (0.95, 0.85, 0.15),
    "magenta": (0.85, 0.20, 0.85),
    "cyan": (0.15, 0.85, 0.90),
}

_SUPERSAMPLE = 4


def _shape_coverage(kind: int, box: np.ndarray, grid_x: Tensor, grid_y: Tensor) -> Tensor:
    """Fraction of each pixel covered by a shape filling ``box`` (x1, y1, x2, y2): [H, W].

    Only the pixels under the box are rasterised (4x4 samples each); the rest stay zero.
    """
    height, width = grid_x.shape[0] // _SUPERSAMPLE, grid_x.shape[1] // _SUPERSAMPLE
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = max(int(x1), 0), max(int(y1), 0)
    right, bottom = min(int(np.ceil(x2)), width), min(int(np.ceil(y2)), height)
    coverage = torch.zeros(height, width)
    if right <= left or bottom <= top:
        return coverage
    rows = slice(top * _SUPERSAMPLE, bottom * _SUPERSAMPLE)
    cols = slice(left * _SUPERSAMPLE, right * _SUPERSAMPLE)
    grid_x, grid_y = grid_x[rows, cols], grid_y[rows, cols]
    cx, cy, half = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
    if kind == 0:  # circle
        inside = (grid_x - cx) ** 2 + (grid_y - cy) ** 2 <= half**2
    elif kind == 1:  # square
        inside = ((grid_x - cx).abs() <= half) & ((grid_y - cy).abs() <= half)
    else:  # upright triangle: apex at the top centre, base along the bottom edge
        t = (grid_y - y1) / (y2 - y1)
        inside = (t >= 0) & (t <= 1) & ((grid_x - cx).abs() <= half * t)
    cells = inside.float().reshape(bottom - top, _SUPERSAMPLE, right - left, _SUPERSAMPLE)
    coverage[top:bottom, left:right] = cells.mean(dim=(1, 3))
    return coverage


class ShapesDataset(torch.utils.data.Dataset):
    """Generated RGB images of circles, squares and triangles, with boxes and labels.

    Item ``i`` is ``(image, target)``: ``image`` float32 [3, H, W] in [0, 1] (H = W =
    ``image_size``) and ``target`` a dict with ``boxes`` float32 [K, 4] (x1, y1, x2, y2 in
    pixels, continuous coordinates, the shape's exact extent), ``labels`` int64 [K] (index
    into ``SHAPE_CLASSES``) and ``colors`` int64 [K] (index into ``SHAPE_COLORS``).
    Each image holds ``min_objects`` to ``max_objects`` shapes whose boxes overlap each
    other with IoU at most ``max_iou`` (0: no overlap; raise it for crowded scenes, where
    later shapes are drawn over earlier ones). Items are generated on demand from
    ``(seed, i)``, so every item is reproducible on its own.
    """

    def __init__(
        self,
        num_images: int,
        image_size: int = 64,
        min_objects: int = 1,
        max_objects: int = 3,
        min_size: float = 0.15,
        max_size: float = 0.4,
        max_iou: float = 0.0,
        noise: float = 0.03,
        seed: int = 0,
    ) -> None:
        from course_lib.validation import check_float, check_int

        self.num_images = check_int("num_images", num_images, 0)
        self.image_size = check_int("image_size", image_size, 16)
        self.min_objects = check_int("min_objects", min_objects, 0)
        self.max_objects = check_int("max_objects", max_objects, 0)
        if self.min_objects > self.max_objects:
            raise ValueError(
                f"min_objects ({min_objects}) must not exceed max_objects ({max_objects})"
            )
        self.max_size = check_float("max_size", max_size, 0.0, 1.0, include_minimum=False)
        self.min_size = check_float("min_size", min_size, 0.0, self.max_size,
                                    include_minimum=False)  # fmt: skip
        if min_size * image_size < 4:
            raise ValueError(
                f"min_size * image_size must be at least 4 pixels, got {min_size * image_size:g}"
            )
        self.max_iou = check_float("max_iou", max_iou, 0.0, 1.0)
        self.noise = check_float("noise", noise, 0.0)
        self.seed = check_int("seed", seed, 0)
        centres = (torch.arange(image_size * _SUPERSAMPLE) + 0.5) / _SUPERSAMPLE
        self._grid_y, self._grid_x = torch.meshgrid(centres, centres, indexing="ij")
        self._palette = torch.tensor(list(SHAPE_COLORS.values()))

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return (
            f"ShapesDataset({self.num_images} images, {self.image_size}x{self.image_size}, "
            f"{self.min_objects}-{self.max_objects} objects, max_iou={self.max_iou})"
        )

    def _layout(self, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        from course_lib.detection.boxes import box_iou  # the library's one IoU

        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        boxes: List[np.ndarray] = []
        size = self.image_size
        for _ in range(count):
            for _attempt in range(100):
                side = rng.uniform(self.min_size, self.max_size) * size
                x1, y1 = rng.uniform(0, size - side, size=2)
                box = np.array([x1, y1, x1 + side, y1 + side])
                overlap = box_iou(
                    torch.from_numpy(box[None]), torch.tensor(np.array(boxes)).view(-1, 4)
                )
                if bool((overlap <= self.max_iou).all()):
                    boxes.append(box)
                    break
            # A crowded canvas may not fit every requested object: keep those that fit.
        labels = rng.integers(0, len(SHAPE_CLASSES), size=len(boxes))
        colors = rng.integers(0, len(SHAPE_COLORS), size=len(boxes))
        return np.array(boxes).reshape(-1, 4), labels, colors

    def __getitem__(self, index: int) -> Tuple[Tensor, Dict[str, Tensor]]:
        if isinstance(index, Tensor) and index.dim() == 0 and not index.is_floating_point():
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__} ({index!r:.40})")
        if not -self.num_images <= index < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        index = int(index) % self.num_images
        rng = np.random.default_rng([self.seed, index])
        boxes, labels, colors = self._layout(rng)
        background = torch.tensor(rng.uniform(0.0, 0.35, size=3), dtype=torch.float32)
        image = background[:, None, None].expand(3, self.image_size, self.image_size).clone()
        for box, label, color in zip(boxes, labels, colors):
            alpha = _shape_coverage(int(label), box, self._grid_x, self._grid_y)
            jitter = torch.tensor(rng.uniform(-0.05, 0.05, size=3), dtype=torch.float32)
            rgb = (self._palette[int(color)] + jitter).clamp(0, 1)
            image = image * (1 - alpha) + rgb[:, None, None] * alpha
        if self.noise > 0:
            generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
            image = image + self.noise * torch.randn(image.shape, generator=generator)
        target = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "colors": torch.tensor(colors, dtype=torch.int64),
        }
        return image.clamp(0, 1), target


def collate_detection(
    batch: Sequence[Tuple[Tensor, Dict[str, Tensor]]],
) -> Tuple[Tensor, List[Dict[str, Tensor]]]:
    """Stack images into [B, 3, H, W] and keep the targets as a list of B dicts."""
    from course_lib.validation import check_sequence, check_tensor

    check_sequence("batch", batch)
    if len(batch) == 0:
        raise ValueError("batch must contain at least one (image, target) pair, got []")
    for index, item in enumerate(batch):
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise TypeError(f"batch[{index}] must be an (image, target) pair, got {item!r:.60}")
        check_tensor(f"batch[{index}] image", item[0], "C, H, W", sizes={})
    shapes = sorted({tuple(image.shape) for image, _ in batch})
    if len(shapes) > 1:
        raise ValueError(f"batch images must all have one shape to be stacked, got {shapes}")
    images, targets = zip(*batch)
    return torch.stack(images), list(targets)
