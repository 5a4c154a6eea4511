"""Building derivative operators: lift an operator on functions of one
argument to functions of many (``unary_to_nary``), and name what it returns
(autograd's ``wrap_util``, with the argument-substitution helpers of its
``util`` module, which ``autograd.util`` also resolves to under the alias).
"""
from __future__ import annotations

__all__ = ["unary_to_nary", "wraps", "wrap_nary_f", "get_name", "get_doc", "subvals", "subval", "func"]


def get_name(f) -> str:
    return getattr(f, "__name__", "[unknown name]")


def get_doc(f) -> str:
    return getattr(f, "__doc__", "") or ""


def subvals(x, ivs) -> tuple:
    """``x`` as a tuple with ``x[i]`` replaced by ``v`` for each ``(i, v)`` in ``ivs``."""
    out = list(x)
    for i, v in ivs:
        out[i] = v
    return tuple(out)


def subval(x, i, v) -> tuple:
    """``x`` as a tuple with ``x[i]`` replaced by ``v``."""
    out = list(x)
    out[i] = v
    return tuple(out)


def func(f):
    """``f`` itself: ``defvjp(func(Class.method), ...)`` reads as registering a
    rule for the function behind a method (a primitive stays one when looked
    up on its class)."""
    return f


def wraps(fun, namestr: str = "{fun}", docstr: str = "{doc}", **kwargs):
    """Decorator naming ``f`` after ``fun``: ``namestr`` and ``docstr`` are
    format strings over ``fun`` (its name), ``doc`` (its docstring) and
    ``kwargs``. Also sets ``__wrapped__``, so ``inspect.signature`` of the
    result shows ``fun``'s arguments."""

    def decorate(f):
        try:
            f.__name__ = namestr.format(fun=get_name(fun), **kwargs)
            f.__doc__ = docstr.format(fun=get_name(fun), doc=get_doc(fun), **kwargs)
            f.__wrapped__ = fun
        except (AttributeError, TypeError):
            pass  # a callable whose name cannot be set (a builtin, a partial) keeps its own
        return f

    return decorate


def wrap_nary_f(fun, op, argnum):
    """Decorator naming the result of ``op`` applied to ``fun`` at ``argnum``,
    e.g. ``grad_of_loss_wrt_argnum_0``."""
    namestr = "{op}_of_{fun}_wrt_argnum_{argnum}"
    docstr = ("{op} of function {fun} with respect to argument number {argnum}. "
              "Takes the same arguments as {fun} but returns the {op}.")
    return wraps(fun, namestr, docstr, op=get_name(op), argnum=argnum)


def unary_to_nary(unary_operator):
    """Lift ``unary_operator(fun, x, *op_args, **op_kwargs)`` to
    ``operator(fun, argnum=0, *op_args, **op_kwargs)(*args, **kwargs)``.

    ``argnum`` picks the argument to act on (an int) or several (a tuple or
    list, which the operator sees as one tuple).
    """

    @wraps(unary_operator)
    def nary_operator(fun, argnum=0, *op_args, **op_kwargs):
        if not isinstance(argnum, (int, tuple, list)):
            raise TypeError(f"argnum must be an int or a tuple of ints, got {argnum!r}")

        name = get_name(fun)

        @wrap_nary_f(fun, unary_operator, argnum)
        def nary_f(*args, **kwargs):
            if isinstance(argnum, int):
                def unary_f(x):
                    subargs = list(args)
                    subargs[argnum] = x
                    return fun(*subargs, **kwargs)

                x = args[argnum]
            else:
                def unary_f(x):
                    return fun(*subvals(args, zip(argnum, x)), **kwargs)

                x = tuple(args[i] for i in argnum)
            # Named after ``fun`` (check_grads' messages say which function
            # failed); only the name: this runs on every call of a gradient.
            unary_f.__name__ = name
            return unary_operator(unary_f, x, *op_args, **op_kwargs)

        return nary_f

    return nary_operator
