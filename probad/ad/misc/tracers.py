"""``const_graph``: record a function's primitive calls once, replay them after."""
from __future__ import annotations

import functools

from ..compiler import compile

__all__ = ["const_graph"]


def const_graph(fun, *args, **kwargs):
    """``fun`` with ``args`` and ``kwargs`` bound, recorded on its first call
    and replayed on later calls (autograd's ``misc.tracers.const_graph``).

    autograd replays the first recording unconditionally, trusting that the
    graph never changes; this is :func:`probad.ad.compile`, whose replays
    check the recorded control flow and shapes, so a call that would take
    another path is traced again rather than answered wrongly.

    Parameters
    ----------
    fun : callable
        A function written with ``probad.ad.numpy``.
    *args, **kwargs
        Leading positional and keyword arguments to bind.

    Returns
    -------
    probad.ad.compiler.Compiled
        A callable taking the remaining positional arguments.
    """
    return compile(functools.wraps(fun)(functools.partial(fun, *args, **kwargs)))
