"""A knob for text input: a live text box in Jupyter, a static slider in the book.

(``text_explorer`` is kept here as it was written in the single-file ``attention.py``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["text_explorer"]


# ----------------------------------------------------------------------------------------
# A knob for text input (a live text box in Jupyter, a static slider in the book)
# ----------------------------------------------------------------------------------------


def text_explorer(draw: Callable[[str], Figure], examples: Sequence[str]) -> Optional[Any]:
    """Let the reader type an input and see ``draw(text)`` (a matplotlib Figure).

    In a live notebook this is an ipywidgets text box (redrawn on Enter) starting at
    ``examples[0]``; in the rendered book (no kernel) it falls back to
    ``course_lib.plotting.figure_slider`` over the ``examples``. Like ``figure_slider`` it
    returns None in a notebook (the knob is displayed, so a last-line call shows nothing
    else) and the static HTML object in a plain script.
    """
    from course_lib.plotting import figure_slider, static_widgets

    examples = list(examples)
    if not examples or not all(isinstance(text, str) for text in examples):
        raise ValueError("examples must be a non-empty list of strings")
    if static_widgets():
        return figure_slider(lambda text: draw(text), initial={"text": examples[0]}, text=examples)
    import ipywidgets
    import matplotlib.pyplot as plt
    from IPython.display import display

    def show(text: str) -> None:
        figure = draw(text)
        display(figure)
        plt.close(figure)

    box = ipywidgets.Text(value=examples[0], description="input", continuous_update=False)
    ipywidgets.interact(show, text=box)
    return None
