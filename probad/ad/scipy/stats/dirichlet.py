"""The Dirichlet distribution ``dirichlet(alpha)``, as ``scipy.stats.dirichlet``.

As in scipy, ``x`` holds the components on its *first* axis (shape ``(K,)``
or ``(K, ...)`` for several points, or ``K - 1`` components with the last one
implied), and points off the simplex raise ValueError."""
from __future__ import annotations

import scipy.stats as _stats

from ... import numpy as np
from ...tracer import primitive
from ..special import gammaln, xlogy

__all__ = ["logpdf", "pdf", "rvs"]

#: ``scipy.stats.dirichlet.rvs(alpha, size=1, random_state=None)``. Draws
#: have no derivative rule here (as in autograd): differentiating through one
#: raises an error naming ``rvs``; reparameterise instead (normalised gamma
#: draws).
rvs = primitive(_stats.dirichlet.rvs, "rvs")


def _complete(x, alpha):
    x = np.asarray(x)
    k = np.shape(alpha)[0]
    n = np.shape(x)[0]
    if n == k - 1:
        x = np.concatenate([x, np.expand_dims(1 - np.sum(x, axis=0), 0)], axis=0)
    elif n != k:
        raise ValueError(f"dirichlet: x must have {k} or {k - 1} entries on its first axis "
                         f"to match alpha of length {k}, got {n}")
    if np.any(x < 0) or np.any(x > 1):
        raise ValueError("dirichlet: each entry of x must lie in [0, 1]")
    if np.any(np.abs(np.sum(x, axis=0) - 1.0) > 1e-9):
        raise ValueError("dirichlet: the components of x must sum to 1")
    return x


def logpdf(x, alpha):
    """Log density ``sum((alpha - 1) log x) + gammaln(sum alpha) - sum gammaln(alpha)``."""
    if np.ndim(alpha) != 1 or np.any(alpha <= 0):
        raise ValueError("dirichlet: alpha must be a 1-D array of positive numbers")
    x = _complete(x, alpha)
    a = np.reshape(alpha, np.shape(alpha) + (1,) * (np.ndim(x) - 1))
    log_norm = gammaln(np.sum(alpha)) - np.sum(gammaln(alpha))
    return np.sum(xlogy(a - 1, x), axis=0) + log_norm


def pdf(x, alpha):
    """Density."""
    return np.exp(logpdf(x, alpha))
