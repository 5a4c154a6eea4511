"""Decorators in the spirit of PyAutoDiff: compiled functions and derivatives
named by argument.

>>> @function
... def energy(x, scale):
...     return scale * np.sum(x ** 2)
>>> @gradient(wrt="x")
... def energy_grad(x, scale):
...     return scale * np.sum(x ** 2)
>>> @hessian_vector
... def energy_hvp(x, scale):          # called as energy_hvp(x, scale, v)
...     return scale * np.sum(x ** 2)
"""
from __future__ import annotations

import functools
import inspect

import numpy as onp

from .compiler import Compiled, compile, compile_hvp
from .differential_operators import grad

__all__ = ["function", "gradient", "hessian_vector"]


def function(fun=None, *, max_tapes: int = 8):
    """Compile ``fun`` (``@function`` or ``@function(max_tapes=...)``).

    Same as :func:`probad.ad.compile`: the first call with a new argument
    signature traces ``fun``; later calls replay the recorded tape.
    """
    if fun is None:
        return functools.partial(function, max_tapes=max_tapes)
    return compile(fun, max_tapes)


def _is_float(value) -> bool:
    if isinstance(value, float):
        return True
    dtype = getattr(value, "dtype", None)
    return isinstance(value, (onp.ndarray, onp.generic)) and dtype.kind == "f"


class _ByName:
    """``fun`` called as ``(selected_values, names, other_arguments)``, so that
    a derivative can be taken with respect to arguments chosen by name (the
    tuple of selected values is the single differentiated argument)."""

    def __init__(self, fun):
        self.fun = fun
        self.signature = inspect.signature(fun)
        self.__name__ = getattr(fun, "__name__", "fun")

    def split(self, args, kwargs, wrt):
        """``(names, values, others)`` for a call of ``fun``."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        if wrt is None:
            names = tuple(n for n, v in arguments.items() if _is_float(v))
            if not names:
                raise TypeError(f"{self.__name__}: no floating-point argument to differentiate; "
                                "name one with wrt=")
        else:
            names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
            unknown = [n for n in names if n not in arguments]
            if unknown:
                raise TypeError(f"{self.__name__} has no argument named {unknown[0]!r} "
                                f"(its arguments: {', '.join(arguments)})")
        values = tuple(arguments[n] for n in names)
        others = {n: v for n, v in arguments.items() if n not in names}
        return names, values, others

    def __call__(self, values, names, others):
        arguments = dict(others)
        arguments.update(zip(names, values))
        ordered = {n: arguments[n] for n in self.signature.parameters}
        bound = inspect.BoundArguments(self.signature, ordered)
        return self.fun(*bound.args, **bound.kwargs)


def gradient(fun=None, *, wrt=None, max_tapes: int = 8):
    """Compiled gradient of a scalar ``fun`` with respect to named arguments.

    Parameters
    ----------
    fun : callable
        The function (when used as ``@gradient`` without arguments).
    wrt : str or sequence of str, optional
        The argument(s) to differentiate. A single name returns one
        gradient; a sequence returns a tuple in that order. By default every
        floating-point argument of the call: one gradient if there is one,
        else a tuple in signature order.
    max_tapes : int
        As for :func:`probad.ad.compile`.

    Returns
    -------
    callable
        Same signature as ``fun``; returns gradients. Its ``compiled``
        attribute is the underlying :class:`~probad.ad.compiler.Compiled`.
    """
    if fun is None:
        return functools.partial(gradient, wrt=wrt, max_tapes=max_tapes)
    by_name = _ByName(fun)
    compiled = Compiled(grad(by_name), max_tapes)

    @functools.wraps(fun)
    def gradient_of_fun(*args, **kwargs):
        names, values, others = by_name.split(args, kwargs, wrt)
        grads = compiled(values, names, others)
        single = isinstance(wrt, str) or (wrt is None and len(names) == 1)
        return grads[0] if single else grads

    gradient_of_fun.compiled = compiled
    return gradient_of_fun


def hessian_vector(fun=None, *, wrt: str | None = None, max_tapes: int = 8):
    """Compiled Hessian-vector product of a scalar ``fun``.

    The decorated function takes ``fun``'s arguments followed by one more
    positional argument ``v`` and returns ``H v``, the Hessian with respect
    to the argument named ``wrt`` (default: the first parameter) times ``v``,
    by forward-over-reverse differentiation without forming ``H``.
    """
    if fun is None:
        return functools.partial(hessian_vector, wrt=wrt, max_tapes=max_tapes)
    by_name = _ByName(fun)
    name = wrt if wrt is not None else next(iter(by_name.signature.parameters))
    compiled = compile_hvp(by_name, 0, max_tapes)

    @functools.wraps(fun)
    def hessian_vector_product(*args, **kwargs):
        *args, vector = args
        names, values, others = by_name.split(args, kwargs, name)
        return compiled(values, names, others, (vector,))[0]

    hessian_vector_product.compiled = compiled
    return hessian_vector_product
