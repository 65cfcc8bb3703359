"""Bad input to course_lib.plotting (the figures; the sliders have their own tests): clear
errors naming the argument."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_lib import plotting
from course_lib.train import History
from tests.badinput import Bad, assert_clear, int_arg, parametrize_bad, values


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


CASES: list[Bad] = []
_images = torch.rand(3, 1, 8, 8)
CASES += values(
    "show_images",
    "images",
    plotting.show_images,
    ("empty", torch.zeros(0, 1, 8, 8)),
    ("of shape [3, 4, 8, 8]", torch.rand(3, 4, 8, 8)),
    ("of shape [8]", torch.rand(8)),
    ("a string", "img"),
    ("holding nan", torch.full((2, 8, 8), float("nan"))),
    ("as complex numbers", torch.zeros(2, 8, 8, dtype=torch.complex64)),
)
CASES += values(
    "show_images",
    "titles",
    lambda v: plotting.show_images(_images, v),
    ("too few", ["a"]),
    ("a string", "abc"),
)
CASES += int_arg(
    "show_images", "ncols", lambda v: plotting.show_images(_images, ncols=v), absurd=False
)
CASES += values(
    "show_images",
    "size",
    lambda v: plotting.show_images(_images, size=v),
    ("= 0", 0.0),
    ("= -1", -1.0),
    ("= nan", float("nan")),
    ("= 'big'", "big"),
)
CASES += values(
    "show_images",
    "cmap",
    lambda v: plotting.show_images(_images, cmap=v),
    ("unknown", "no_such_map"),
)
CASES += values(
    "plot_history",
    "history",
    plotting.plot_history,
    ("a list of losses", [1.0, 0.5]),
    ("a dict", {"losses": [1.0]}),
)
_history = History(steps=[1, 2], losses=[1.0, 0.5], evals=[{"step": 2, "acc": 0.5}])
CASES += values(
    "plot_history",
    "metrics",
    lambda v: plotting.plot_history(_history, v),
    ("unknown", ["bleu"]),
    ("a string", "acc"),
)
CASES += values(
    "plot_heatmap",
    "matrix",
    plotting.plot_heatmap,
    ("of shape [3]", torch.rand(3)),
    ("a string", "m"),
    ("empty", torch.zeros(0, 3)),
    ("as complex numbers", np.zeros((2, 2), complex)),
)
CASES += values(
    "plot_heatmap",
    "x_labels",
    lambda v: plotting.plot_heatmap(torch.rand(2, 3), v),
    ("too few", ["a"]),
)
CASES += values(
    "plot_heatmap",
    "y_labels",
    lambda v: plotting.plot_heatmap(torch.rand(2, 3), y_labels=v),
    ("too many", ["a", "b", "c"]),
)
CASES += values(
    "plot_heatmap",
    "ax",
    lambda v: plotting.plot_heatmap(torch.rand(2, 3), ax=v),
    ("a string", "ax"),
)
CASES += values(
    "plot_heatmap",
    "vmin",
    lambda v: plotting.plot_heatmap(torch.rand(2, 3), vmin=v, vmax=0.0),
    ("above vmax", 1.0),
)
_image = torch.rand(3, 8, 8)
CASES += values(
    "draw_boxes",
    "image",
    lambda v: plotting.draw_boxes(v, torch.zeros(0, 4)),
    ("of shape [2, 3, 8, 8]", torch.rand(2, 3, 8, 8)),
    ("a string", "img"),
    ("of shape [4, 8, 8]", torch.rand(4, 8, 8)),
)
CASES += values(
    "draw_boxes",
    "boxes",
    lambda v: plotting.draw_boxes(_image, v),
    ("of shape [2, 5]", torch.zeros(2, 5)),
    ("holding nan", torch.full((1, 4), float("nan"))),
    ("a string", "boxes"),
)
CASES += values(
    "draw_boxes",
    "labels",
    lambda v: plotting.draw_boxes(_image, torch.zeros(2, 4), v),
    ("one too few", [1]),
    ("a string", "ab"),
)
CASES += values(
    "draw_boxes",
    "labels",
    lambda v: plotting.draw_boxes(_image, torch.zeros(2, 4), v, class_names=["a", "b"]),
    ("beyond class_names", [0, 5]),
)
CASES += values(
    "draw_boxes",
    "scores",
    lambda v: plotting.draw_boxes(_image, torch.zeros(2, 4), scores=v),
    ("one too many", [0.1, 0.2, 0.3]),
)
CASES += values(
    "draw_boxes",
    "color",
    lambda v: plotting.draw_boxes(_image, torch.zeros(1, 4), color=v),
    ("unknown", "no_such_colour"),
)


@parametrize_bad(CASES)
def test_bad_input(case: Bad) -> None:
    assert_clear(case)
