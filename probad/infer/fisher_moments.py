"""Running moments of the Fisher warmup's draws and gradients, in compiled code.

The diagonal Fisher estimate (:mod:`probad.infer.fisher_adaptation`) is
``sqrt(Var(x) / Var(grad))`` over the draws an estimator holds, and it is
recomputed after every warmup draw. Reducing the estimator's rows again each
time costs a few numpy calls that grow with the window; instead each
estimator keeps, per coordinate, the running mean and sum of squared
deviations ``M2`` of its draws and of their gradients, updated in one
compiled call per draw by Welford's rule::

    n += 1;  d = x - mean;  mean += d / n;  M2 += d * (x - mean)

Welford's update is numerically sound (no cancellation of two large sums, as
``sum(x^2) - n mean^2`` would have); it agrees with numpy's two-pass
``var`` to rounding, not to the last bit. ``Var = M2 / n``, and both
estimators' variances share ``n``, so the ratio is ``M2_x / M2_grad``.

numba loads only when a Fisher warmup runs: this module is imported there.
"""

import math

import numpy as onp
from numba import njit

import probad.ad.compiler.native_cache  # noqa: F401  (compiled code goes to the user's cache)

#: Numba compiles no other module's code into this one's cached functions (see native_cache).
NUMBA_CACHE_DEPENDS = ()

#: Rows of one estimator's moments (``moments[estimator, row]``).
MEAN_X, M2_X, MEAN_GRAD, M2_GRAD = range(4)
ROWS = 4


@njit(cache=True, nogil=True)
def add_draw(moments, counts, position, grad, previous):
    """Add ``(position, grad)`` to every estimator, unless ``position`` equals ``previous``.

    Parameters
    ----------
    moments : ndarray, shape (estimators, ROWS, dim)
        Updated in place.
    counts : ndarray of int64, shape (estimators,)
        Draws each estimator holds; updated in place.
    position, grad, previous : ndarray, shape (dim,)
        A NaN in ``previous`` differs from everything: the draw is added.

    Returns
    -------
    bool
        Whether the draw was added (the sampler moved), as ``not
        numpy.array_equal(position, previous)``.
    """
    dim = position.shape[0]
    moved = False
    for i in range(dim):
        if position[i] != previous[i]:
            moved = True
            break
    if not moved:
        return False
    for e in range(moments.shape[0]):
        counts[e] += 1
        n = counts[e]
        m = moments[e]
        for i in range(dim):
            d = position[i] - m[MEAN_X, i]
            m[MEAN_X, i] += d / n
            m[M2_X, i] += d * (position[i] - m[MEAN_X, i])
            d = grad[i] - m[MEAN_GRAD, i]
            m[MEAN_GRAD, i] += d / n
            m[M2_GRAD, i] += d * (grad[i] - m[MEAN_GRAD, i])
    return True


# error_model="numpy": a zero spread gives inf or NaN, as in numpy, not ZeroDivisionError.
@njit(cache=True, nogil=True, error_model="numpy")
def diagonal_estimate(spread_x, spread_grad, previous, low, high):
    """``sqrt(spread_x / spread_grad)`` clipped to ``[low, high]``, ``previous`` where
    the ratio is not finite or is 0; the spreads are variances, or anything
    proportional to them with one factor for both (``M2``)."""
    out = onp.empty_like(previous)
    for i in range(previous.shape[0]):
        ratio = math.sqrt(spread_x[i] / spread_grad[i])
        if math.isfinite(ratio) and ratio > 0.0:
            out[i] = min(max(ratio, low), high)
        else:
            out[i] = previous[i]
    return out
