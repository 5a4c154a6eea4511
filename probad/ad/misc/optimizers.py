"""First-order optimisers over any nest of arrays (autograd's interface).

Each takes ``grad(x, i)`` and a starting nest ``x0`` (real or complex) and
returns the final nest; ``callback(x, i, g)`` is called every step.
"""
from __future__ import annotations

import functools

import numpy as onp

from .flatten import flatten


def _unflatten_optimizer(optimize):
    """Let an optimiser written for flat real vectors work on nests.

    Complex parameters are optimised as (real, imaginary) pairs. ``grad`` of
    a real loss with respect to ``z = x + iy`` is ``df/dx - i df/dy`` (the
    covector), so its conjugate, viewed as pairs, is the real gradient.
    """

    @functools.wraps(optimize)
    def _optimize(grad, x0, callback=None, *args, **kwargs):
        flat_x0, unflatten = flatten(x0)
        dtype = onp.result_type(flat_x0, float)  # integer parameters are optimised as floats
        real = onp.finfo(dtype).dtype

        def to_nest(x):
            return unflatten(x.view(dtype))

        def flat_grad(x, i):
            return onp.conj(onp.asarray(flatten(grad(to_nest(x), i))[0], dtype)).view(real)

        flat_callback = None if callback is None else (
            lambda x, i, g: callback(to_nest(x), i, unflatten(onp.conj(g.view(dtype)))))
        return to_nest(optimize(flat_grad, onp.asarray(flat_x0, dtype).view(real),
                                flat_callback, *args, **kwargs))

    return _optimize


@_unflatten_optimizer
def sgd(grad, x, callback=None, num_iters=200, step_size=0.1, mass=0.9):
    """Stochastic gradient descent with momentum."""
    velocity = onp.zeros(len(x))
    for i in range(num_iters):
        g = grad(x, i)
        if callback:
            callback(x, i, g)
        velocity = mass * velocity - (1.0 - mass) * g
        x = x + step_size * velocity
    return x


@_unflatten_optimizer
def rmsprop(grad, x, callback=None, num_iters=100, step_size=0.1, gamma=0.9, eps=1e-8):
    """Root-mean-square propagation."""
    avg_sq_grad = onp.ones(len(x))
    for i in range(num_iters):
        g = grad(x, i)
        if callback:
            callback(x, i, g)
        avg_sq_grad = avg_sq_grad * gamma + g**2 * (1 - gamma)
        x = x - step_size * g / (onp.sqrt(avg_sq_grad) + eps)
    return x


@_unflatten_optimizer
def adam(grad, x, callback=None, num_iters=100, step_size=0.001, b1=0.9, b2=0.999, eps=1e-8):
    """Adam (Kingma & Ba, 2015), with bias correction."""
    m = onp.zeros(len(x))
    v = onp.zeros(len(x))
    for i in range(num_iters):
        g = grad(x, i)
        if callback:
            callback(x, i, g)
        m = (1 - b1) * g + b1 * m
        v = (1 - b2) * g**2 + b2 * v
        mhat = m / (1 - b1 ** (i + 1))
        vhat = v / (1 - b2 ** (i + 1))
        x = x - step_size * mhat / (onp.sqrt(vhat) + eps)
    return x


__all__ = ["sgd", "rmsprop", "adam"]
