"""Progress bars for the samplers and optimisers.

``tqdm.auto`` draws a widget in Jupyter, but without ipywidgets it warns at
import and falls back to text anyway. Choosing the text bar ourselves in
that case keeps ``import probad`` and every notebook free of that warning.
"""
import importlib.util

from tqdm.std import tqdm as TextBar


def progress_bar(**kwargs) -> TextBar:
    """A tqdm bar: a notebook widget when ipywidgets is installed, text otherwise."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        tqdm = TextBar
    return tqdm(**kwargs)
