"""A small library of test models and their data, shared by the test suite.

Each model takes its data as keyword arguments (the way ``pb.hmc`` calls
it); an observed argument left as ``None`` makes that site latent. The data
makers use fixed seeds, so every test sees the same numbers.
"""
from __future__ import annotations

import math

import numpy as onp

import probad.ad.numpy as np
from probad import constraints, distributions as dist
from probad.primitives import deterministic, factor, plate, sample

# ------------------------------------------------------------- eight schools
EIGHT_SCHOOLS = {
    "J": 8,
    "sigma": onp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]),
    "y": onp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]),
}


def eight_schools_centered(J, sigma, y=None):
    """Rubin's eight schools, centred: the funnel NUTS struggles with."""
    mu = sample("mu", dist.Normal(0.0, 5.0))
    tau = sample("tau", dist.HalfCauchy(5.0))
    with plate("school", J):
        theta = sample("theta", dist.Normal(mu, tau))
        sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_noncentered(J, sigma, y=None):
    """Eight schools with standardised school effects and a deterministic ``theta``."""
    mu = sample("mu", dist.Normal(0.0, 5.0))
    tau = sample("tau", dist.HalfCauchy(5.0))
    with plate("school", J):
        theta_t = sample("theta_t", dist.Normal(0.0, 1.0))
        theta = deterministic("theta", mu + tau * theta_t)
        sample("y", dist.Normal(theta, sigma), obs=y)


# --------------------------------------------------------------- regressions
def regression_data(n: int = 50, d: int = 3, seed: int = 0) -> dict:
    """Covariates ``X`` (n, d), a continuous response ``y`` and a binary ``y01``."""
    rng = onp.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    beta = onp.linspace(-1.0, 1.0, d)
    y = 0.5 + X @ beta + 0.3 * rng.normal(size=n)
    y01 = (rng.uniform(size=n) < 1.0 / (1.0 + onp.exp(-(X @ beta)))).astype(float)
    return {"X": X, "y": y, "y01": y01}


def linear_regression(X, y=None):
    """Normal linear regression with an intercept and a deterministic mean."""
    n, d = X.shape
    alpha = sample("alpha", dist.Normal(0.0, 10.0))
    beta = sample("beta", dist.Normal(0.0, 10.0).expand((d,)).to_event(1))
    sigma = sample("sigma", dist.HalfNormal(5.0))
    with plate("obs", n):
        mu = deterministic("mu", alpha + X @ beta)
        sample("y", dist.Normal(mu, sigma), obs=y)


def logistic_regression(X, y01=None):
    """Bernoulli regression on the logit scale."""
    n, d = X.shape
    alpha = sample("alpha", dist.Normal(0.0, 2.5))
    beta = sample("beta", dist.Normal(0.0, 2.5).expand((d,)).to_event(1))
    with plate("obs", n):
        sample("y01", dist.Bernoulli(logits=alpha + X @ beta), obs=y01)


# ------------------------------------------------- a loop and a Python branch
def garch_data(T: int = 40, seed: int = 1) -> dict:
    """A GARCH(1,1) series with mu=0.2, alpha0=0.3, alpha1=0.3, beta1=0.5."""
    rng = onp.random.default_rng(seed)
    y = onp.empty(T)
    sigma1 = 1.0
    s = sigma1
    for t in range(T):
        if t > 0:
            s = onp.sqrt(0.3 + 0.3 * (y[t - 1] - 0.2) ** 2 + 0.5 * s**2)
        y[t] = 0.2 + s * rng.normal()
    return {"y": y, "sigma1": sigma1}


def make_garch(numpy_module, y):
    """The GARCH(1,1) Gaussian log-likelihood of ``params = (omega, alpha, beta)``,
    written once for any numpy-like module (probad's, autograd's, jax's): the
    compiler tests and the benchmarks' peers share it."""

    def loglik(params):
        omega, alpha, beta = params[0], params[1], params[2]
        sigma2 = numpy_module.var(y)
        ll = 0.0
        for t in range(1, len(y)):
            sigma2 = omega + alpha * y[t - 1] ** 2 + beta * sigma2
            ll = ll - 0.5 * (numpy_module.log(2 * math.pi * sigma2) + y[t] ** 2 / sigma2)
        return ll

    return loglik


def garch11(y, sigma1):
    """GARCH(1,1): the volatility recursion is a Python loop with a branch
    on the time index, and ``beta1``'s support depends on ``alpha1``."""
    mu = sample("mu", dist.Normal(0.0, 10.0))
    alpha0 = sample("alpha0", dist.HalfNormal(1.0))
    alpha1 = sample("alpha1", dist.Uniform(0.0, 1.0))
    beta1 = sample("beta1", dist.Uniform(0.0, 1.0 - alpha1))
    sigmas = []
    s = sigma1
    for t in range(len(y)):
        if t > 0:
            s = np.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * s**2)
        sigmas.append(s)
    sample("y", dist.Normal(mu, np.stack(sigmas)), obs=y)


# ----------------------------------------------------------- simplex and LKJ
def categorical_data(n: int = 60, seed: int = 2) -> dict:
    rng = onp.random.default_rng(seed)
    return {"K": 3, "y": rng.choice(3, size=n, p=[0.2, 0.3, 0.5]).astype(float)}


def dirichlet_categorical(K, y=None, n=None):
    """Category probabilities on the simplex; ``n`` draws when ``y`` is None."""
    theta = sample("theta", dist.Dirichlet(np.ones(K)))
    with plate("obs", len(y) if y is not None else n):
        sample("y", dist.Categorical(probs=theta), obs=y)


def mvn_data(n: int = 40, seed: int = 3) -> dict:
    rng = onp.random.default_rng(seed)
    cov = onp.array([[1.0, 0.6, 0.0], [0.6, 2.0, -0.4], [0.0, -0.4, 0.5]])
    return {"y": rng.multivariate_normal([0.0, 1.0, -1.0], cov, size=n)}


def lkj_mvn(y):
    """Correlated Gaussian data: LKJ prior on the correlation Cholesky factor."""
    n, d = y.shape
    mu = sample("mu", dist.Normal(0.0, 5.0).expand((d,)).to_event(1))
    sigma = sample("sigma", dist.HalfNormal(2.0).expand((d,)).to_event(1))
    L = sample("L", dist.LKJCholesky(d, 2.0))
    with plate("obs", n):
        sample("y", dist.MultivariateNormal(mu, scale_tril=sigma[..., None] * L), obs=y)


# ---------------------------------------------------- deterministic, factor
def normal_with_deterministics(y=None, n=None):
    """Two deterministic sites: a transformed scalar and a per-datum residual."""
    loc = sample("loc", dist.Normal(0.0, 10.0))
    log_scale = sample("log_scale", dist.Normal(0.0, 1.0))
    scale = deterministic("scale", np.exp(log_scale))
    with plate("obs", len(y) if y is not None else n):
        x = sample("y", dist.Normal(loc, scale), obs=y)
        deterministic("z", (x - loc) / scale)


def mixture_data(n: int = 50, seed: int = 4) -> dict:
    rng = onp.random.default_rng(seed)
    first = rng.uniform(size=n) < 0.3
    return {"y": onp.where(first, rng.normal(-2.0, 1.0, size=n), rng.normal(2.0, 1.0, size=n))}


def normal_mixture(y):
    """Two-component mixture with the component labels marginalised into a
    ``factor`` (the discrete labels cannot be sampled by NUTS)."""
    w = sample("w", dist.Beta(2.0, 2.0))
    locs = sample("locs", dist.Normal(0.0, 5.0).expand((2,)).to_event(1))
    lp_first = np.log(w) + dist.Normal(locs[0], 1.0).log_prob(y)
    lp_second = np.log1p(-w) + dist.Normal(locs[1], 1.0).log_prob(y)
    factor("y", np.sum(np.logaddexp(lp_first, lp_second)))


# ------------------------------------------------------------ Ctrl-C in tests
class InterruptAt:
    """Counts model runs; the ``n``-th raises KeyboardInterrupt, as one Ctrl-C would."""

    def __init__(self, n: float):
        self.n = n
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return 0.0


def clocked_normal(clock):
    """A standard normal whose every run ticks ``clock`` (with ``compile=False``
    the model's Python runs at every gradient, so the clock can stop it)."""
    sample("x", dist.Normal(0.0, 1.0))
    factor("clock", clock())


# ------------------------------------------------------ a non-identified sum
def ridge(y):
    """Only ``a + b + c`` is identified and ``a``, ``b`` have flat priors, so
    the Hessian of the potential is singular along ``a - b``."""
    a = sample("a", dist.ImproperUniform(constraints.real, (), ()))
    b = sample("b", dist.ImproperUniform(constraints.real, (), ()))
    c = sample("c", dist.Normal(0.0, 1.0))
    sample("y", dist.Normal(a + b + c, 1.0), obs=y)


# ------------------------------------------- a conjugate linear regression
_LINREG_X = onp.random.default_rng(42).uniform(0, 10, 30)
LINREG = {"x": _LINREG_X,
          "y": 1.0 + 0.5 * _LINREG_X + onp.random.default_rng(43).standard_normal(30)}


def conjugate_linreg(x, y=None):
    """``y ~ N(a + b x, 1)`` with ``N(0, 10)`` priors: a Gaussian posterior."""
    a = sample("a", dist.Normal(0.0, 10.0))
    b = sample("b", dist.Normal(0.0, 10.0))
    with plate("n", len(x)):
        sample("y", dist.Normal(a + b * x, 1.0), obs=y)


def conjugate_linreg_posterior():
    """The exact posterior of ``conjugate_linreg`` on ``LINREG``: ``(mean, cov, precision)``
    of ``(a, b)``."""
    X = onp.stack([onp.ones_like(LINREG["x"]), LINREG["x"]], 1)
    prec = X.T @ X + onp.eye(2) / 100
    cov = onp.linalg.inv(prec)
    return cov @ X.T @ LINREG["y"], cov, prec
