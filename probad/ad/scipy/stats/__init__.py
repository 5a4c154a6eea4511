"""``probad.ad.scipy.stats``: densities and distribution functions of
``scipy.stats`` distributions, differentiable in the value and in every
continuous parameter (``loc``, ``scale``, shapes, ``df``, ``mean``, ``cov``).

One module per distribution, with scipy's argument names and order::

    from probad.ad.scipy.stats import norm
    norm.logpdf(x, loc, scale)

As in scipy, an invalid parameter (``scale <= 0``, ...) gives NaN and a value
outside the support gives a density of 0 (``logpdf = -inf``); neither raises
a numpy warning.
"""
from . import beta, chi2, dirichlet, gamma, multivariate_normal, norm, poisson, t  # noqa: F401

__all__ = ["beta", "chi2", "dirichlet", "gamma", "multivariate_normal", "norm", "poisson", "t"]
