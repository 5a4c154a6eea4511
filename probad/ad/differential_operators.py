"""The user-facing derivative operators, with autograd's names and semantics.

Each operator is written for a function of one argument and lifted to
several by :func:`~probad.ad.wrap_util.unary_to_nary`: ``argnum`` picks the argument (an int) or
several arguments (a tuple, differentiated as one tuple).
"""
from __future__ import annotations

import functools
import inspect
import warnings

import numpy as onp

from . import numpy as np
from . import core
from .core import defjvp_argnum, defvjp_argnum, vspace
from .floating_point import reported_at_user_code
from .tracer import getval, primitive
from .wrap_util import unary_to_nary

__all__ = [
    "grad", "value_and_grad", "grad_and_aux", "elementwise_grad", "jacobian",
    "hessian", "make_vjp", "make_jvp", "deriv", "make_hvp",
    "hessian_tensor_product", "hessian_vector_product",
    "tensor_jacobian_product", "vector_jacobian_product", "make_ggnvp",
    "checkpoint", "holomorphic_grad", "grad_named", "multigrad_dict",
    "unary_to_nary",
]


def _reported(unary_operator):
    """An operator that runs its passes at once, with numpy's floating-point
    warnings reported at the user's line, naming the primitive: one error
    state entered per call, not per primitive or pass."""

    @functools.wraps(unary_operator)
    def operator(fun, x, *args, **kwargs):
        with reported_at_user_code():
            return unary_operator(fun, x, *args, **kwargs)

    return operator


def _make_vjp(fun, x):
    """``core.make_vjp`` for a ``vjp`` the caller keeps: its backward pass,
    run later, is reported as :func:`_reported` reports."""
    with reported_at_user_code():
        vjp, ans = core.make_vjp(fun, x)

    def reported_vjp(g):
        with reported_at_user_code():
            return vjp(g)

    return reported_vjp, ans


def _make_jvp(fun, x):
    """``core.make_jvp`` for a ``jvp`` the caller keeps, reported as
    :func:`_make_vjp`'s."""
    jvp = core.make_jvp(fun, x)

    def reported_jvp(g):
        with reported_at_user_code():
            return jvp(g)

    return reported_jvp


def _scalar_one(ans, name):
    """The cotangent 1 for a scalar output, with the output's dtype."""
    if type(ans) is float:
        return 1.0
    dtype = getattr(ans, "dtype", None)
    if dtype is not None and dtype.kind == "f" and ans.size == 1:
        return dtype.type(1.0) if ans.shape == () else onp.ones(ans.shape, dtype)
    return _check_scalar(ans, name).ones()


def _check_scalar(ans, name):
    vs = vspace(ans)
    if getattr(vs, "shape", None) not in ((), None) and vs.size != 1:
        raise TypeError(
            f"{name} requires a scalar-valued function, but the output has shape {vs.shape}; "
            "use elementwise_grad for elementwise functions or jacobian for vector outputs"
        )
    if vs.iscomplex:
        raise TypeError(f"{name} of a complex-valued function is ambiguous; use holomorphic_grad, "
                        "or take np.real/np.abs of the output first")
    return vs


@unary_to_nary
@_reported
def grad(fun, x):
    """Gradient of a scalar-valued ``fun`` with respect to argument ``argnum``."""
    vjp, ans = core.make_vjp(fun, x)
    return vjp(_scalar_one(ans, "grad"))


@unary_to_nary
@_reported
def value_and_grad(fun, x):
    """Return ``(fun(x), grad(fun)(x))`` from one forward pass."""
    vjp, ans = core.make_vjp(fun, x)
    return ans, vjp(_scalar_one(ans, "value_and_grad"))


@unary_to_nary
@_reported
def grad_and_aux(fun, x):
    """For ``fun`` returning ``(value, aux)``: return ``(grad of value, aux)``."""
    aux = []

    def value_only(x):
        value, a = fun(x)
        aux.append(a)
        return value

    vjp, ans = core.make_vjp(value_only, x)
    return vjp(_scalar_one(ans, "grad_and_aux")), getval(aux[0])


@unary_to_nary
@_reported
def elementwise_grad(fun, x):
    """Sum of the Jacobian's rows: the derivative of each output element with
    respect to its own input element when ``fun`` acts elementwise."""
    vjp, ans = core.make_vjp(fun, x)
    if vspace(ans).iscomplex:
        raise TypeError("elementwise_grad of a complex-valued function is ambiguous")
    return vjp(vspace(ans).ones())


@unary_to_nary
@_reported
def jacobian(fun, x):
    """Jacobian of shape ``out.shape + x.shape``, one VJP per output element."""
    vjp, ans = core.make_vjp(fun, x)
    ans_vs, x_vs = vspace(ans), vspace(x)
    rows = [vjp(basis) for basis in ans_vs.standard_basis()]
    if not rows:
        return np.zeros(tuple(ans_vs.shape) + tuple(x_vs.shape))
    return np.reshape(np.stack(rows), tuple(ans_vs.shape) + tuple(x_vs.shape))


@unary_to_nary
def make_vjp(fun, x):
    """Return ``(vjp, fun(x))``."""
    return _make_vjp(fun, x)


@unary_to_nary
def make_jvp(fun, x):
    """Return ``jvp(v) -> (fun(x), J v)`` (forward mode)."""
    return _make_jvp(fun, x)


@unary_to_nary
@_reported
def deriv(fun, x):
    """Derivative of a function of a scalar (forward mode)."""
    return core.make_jvp(fun, x)(vspace(x).ones())[1]


def hessian(fun, argnum=0):
    """Hessian, as the Jacobian of the gradient."""
    return jacobian(jacobian(fun, argnum), argnum)


@unary_to_nary
def make_hvp(fun, x):
    """Return ``(hvp, grad(fun)(x))`` where ``hvp(v)`` is the Hessian-vector
    product, by reverse-over-reverse without forming the Hessian."""
    return _make_vjp(grad(fun), x)


def hessian_tensor_product(fun, argnum=0):
    """``f(*args, v)``: the Hessian of ``fun`` contracted with the tensor ``v``."""
    fun_grad = grad(fun, argnum)

    def vector_dot_grad(*args, **kwargs):
        args, vector = args[:-1], args[-1]
        return np.tensordot(fun_grad(*args, **kwargs), vector, np.ndim(vector))

    return grad(vector_dot_grad, argnum)


hessian_vector_product = hessian_tensor_product


def tensor_jacobian_product(fun, argnum=0):
    """``f(*args, v)``: the tensor ``v`` contracted with the Jacobian of ``fun``."""

    def vector_dot_fun(*args, **kwargs):
        args, vector = args[:-1], args[-1]
        return np.tensordot(vector, fun(*args, **kwargs), axes=np.ndim(vector))

    return jacobian(vector_dot_fun, argnum)


vector_jacobian_product = tensor_jacobian_product


def make_ggnvp(f, g=lambda x: 0.5 * np.sum(x**2, axis=-1), f_argnum=0):
    """Generalised Gauss-Newton vector products ``J_f^T H_g J_f v`` for ``g(f(x))``."""

    @unary_to_nary
    def _make_ggnvp(f, x):
        f_vjp, f_x = _make_vjp(f, x)
        g_hvp, grad_g_x = _make_vjp(grad(g), f_x)
        f_jvp, _ = _make_vjp(f_vjp, vspace(grad_g_x).zeros())

        def ggnvp(v):
            return f_vjp(g_hvp(f_jvp(v)))

        return ggnvp

    return _make_ggnvp(f, f_argnum)


def checkpoint(fun):
    """Don't keep ``fun``'s intermediate values for the backward pass; recompute
    them when the gradient is needed (memory for time)."""
    wrapped = primitive(fun)

    def vjp_maker(argnum, ans, *args, **kwargs):
        return make_vjp(fun, argnum)(*args, **kwargs)[0]

    def jvp_rule(argnum, g, ans, *args, **kwargs):
        return make_jvp(fun, argnum)(*args, **kwargs)(g)[1]

    defvjp_argnum(wrapped, vjp_maker)
    defjvp_argnum(wrapped, jvp_rule)
    return wrapped


@unary_to_nary
def holomorphic_grad(fun, x):
    """Complex derivative f'(z) of a holomorphic function."""
    if not vspace(x).iscomplex:
        warnings.warn("holomorphic_grad: the input is not complex", stacklevel=2)
    return grad(lambda x: np.real(fun(x)))(x)


def grad_named(fun, argname):
    """Gradient with respect to the argument called ``argname``."""
    arg_index = list(inspect.signature(fun).parameters).index(argname)
    return grad(fun, arg_index)


def multigrad_dict(fun):
    """Gradients with respect to every argument, as a dict keyed by name."""
    sig = inspect.signature(fun)

    def gradfun(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        names = list(bound.arguments)

        def call(argdict):
            b = sig.bind_partial()
            b.arguments.update({k: argdict[k] for k in names})
            return fun(*b.args, **b.kwargs)

        grads = grad(call)(dict(bound.arguments))
        return {k: grads[k] for k in names}

    return gradfun
