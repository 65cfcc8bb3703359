"""course_lib.plotting: figures are built, checked and slider frames are all present."""

import re

import matplotlib.pyplot as plt
import pytest
import torch

from course_lib import plotting
from course_lib.train import History


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("shape", [(5, 1, 8, 8), (5, 3, 8, 8), (5, 8, 8)])
def test_show_images_grid(shape):
    figure = plotting.show_images(torch.rand(shape), titles=list("abcde"), ncols=3, title="t")
    assert len([ax for ax in figure.axes if ax.images]) == 5
    assert len(figure.axes) == 6  # 2 rows x 3 columns, the last one blank


def test_show_images_bad_input():
    with pytest.raises(ValueError, match="titles"):
        plotting.show_images(torch.rand(2, 8, 8), titles=["a"])
    with pytest.raises(ValueError, match="C in"):
        plotting.show_images(torch.rand(2, 4, 8, 8))
    with pytest.raises(ValueError, match="at least one"):
        plotting.show_images([])


def test_plot_history_with_and_without_evals():
    history = History(steps=[1, 2, 3], losses=[3.0, 2.0, 1.0])
    assert len(plotting.plot_history(history).axes) == 1
    history.evals = [{"step": 3, "accuracy": 0.5}]
    figure = plotting.plot_history(history)
    assert len(figure.axes) == 2 and figure.axes[1].get_legend_handles_labels()[1] == ["accuracy"]


def test_plot_heatmap_checks_labels():
    ax = plotting.plot_heatmap(torch.rand(2, 3), x_labels=list("abc"), y_labels=["p", "q"])
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abc")
    with pytest.raises(ValueError, match="x_labels"):
        plotting.plot_heatmap(torch.rand(2, 3), x_labels=["a"])
    with pytest.raises(ValueError, match=r"\[R, C\]"):
        plotting.plot_heatmap(torch.rand(2, 3, 4))


def test_draw_boxes_draws_one_rectangle_per_box():
    ax = plotting.draw_boxes(torch.rand(3, 16, 16), torch.tensor([[1.0, 1, 5, 5], [2, 2, 9, 9]]),
                             labels=[0, 1], scores=[0.9, 0.5], class_names=["a", "b"])  # fmt: skip
    assert len(ax.patches) == 2 and {t.get_text() for t in ax.texts} == {"a 0.90", "b 0.50"}
    assert len(plotting.draw_boxes(torch.rand(3, 8, 8), torch.zeros(0, 4)).patches) == 0
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        plotting.draw_boxes(torch.rand(3, 8, 8), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="labels"):
        plotting.draw_boxes(torch.rand(3, 8, 8), torch.zeros(2, 4), labels=[1])


def _draw(a, b=1):
    figure, ax = plt.subplots()
    ax.plot([0, 1], [0, a * b])
    return figure


def test_static_slider_has_every_frame():
    widget = plotting.figure_slider(_draw, a=[1, 2, 3], b=[1, 2])
    markup = widget._repr_html_()
    frames = re.search(r"const frames = (\{.*?\});", markup).group(1)
    assert frames.count("iVBOR") == 6  # six PNGs, one per combination
    assert markup.count('type="range"') == 2
    assert 'value="1"' in markup  # initial index: the middle value of a
    assert "<script>" in markup


def test_static_slider_initial_and_errors():
    markup = plotting.figure_slider(_draw, initial={"a": 3}, a=[1, 2, 3])._repr_html_()
    assert '<span data-value="a">3</span>' in markup
    with pytest.raises(ValueError, match="initial value"):
        plotting.figure_slider(_draw, initial={"a": 7}, a=[1, 2, 3])
    with pytest.raises(ValueError, match="at least one slider"):
        plotting.figure_slider(_draw)
    with pytest.raises(ValueError, match="non-empty"):
        plotting.figure_slider(_draw, a=[])
    with pytest.raises(ValueError, match="max_frames"):
        plotting.figure_slider(_draw, max_frames=4, a=[1, 2, 3], b=[1, 2])
    with pytest.raises(TypeError, match="draw"):
        plotting.figure_slider(3, a=[1])


def test_static_widgets_outside_notebooks(monkeypatch):
    monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)
    assert plotting.static_widgets() is True  # plain Python: no live kernel


def test_one_palette_for_the_book():
    import matplotlib.colors

    for concept in ("train", "lstm", "attention", "input", "state", "output", "vae", "gan"):
        assert matplotlib.colors.is_color_like(plotting.PALETTE[concept])
    assert not hasattr(plotting, "close_all") and not hasattr(plotting, "as_numpy")


def test_plotting_does_not_import_train():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(plotting))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}  # fmt: skip
    assert "course_lib.train" not in imported and "course_lib" not in imported
    # plot_history reads any training record with the same fields.
    figure = plotting.plot_history(History(steps=[1, 2], losses=[1.0, 0.5]))
    assert len(figure.axes) == 1


def test_plot_history_rejects_unknown_metrics_and_non_histories():
    history = History(steps=[1], losses=[1.0], evals=[{"step": 1, "acc": 0.5}])
    with pytest.raises(ValueError, match=r"metrics must be recorded metric names \['acc'\]"):
        plotting.plot_history(history, ["bleu"])
    with pytest.raises(TypeError, match="history must be a training History"):
        plotting.plot_history([1.0, 0.5])


def test_the_book_build_decides_static_knobs_in_a_notebook(monkeypatch):
    """In a kernel with ipywidgets the knob is live, unless the book build started the kernel."""
    monkeypatch.setattr(plotting, "_in_notebook", lambda: True)
    monkeypatch.delenv("COURSE_BOOK_BUILD", raising=False)
    assert plotting.static_widgets() is False
    monkeypatch.setenv("COURSE_BOOK_BUILD", "1")
    assert plotting.static_widgets() is True
