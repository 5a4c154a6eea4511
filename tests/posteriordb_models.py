"""The eight posteriordb reference posteriors as probad models, their data
and their reference draws (the comparison rule is in ``posterior_checks.py``).

Data and reference draws are public (posteriordb, BSD-3 / CC-BY).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as onp

import probad as pb
import probad.ad.numpy as np
from probad import constraints
from probad import distributions as dist
from probad.ad.scipy.special import logsumexp

DATA = Path(__file__).parent / "data" / "posteriordb"


# ---------------------------------------------------------------- the models
def eight_schools_noncentered(J, sigma, y=None):
    mu = pb.sample("mu", dist.Normal(0.0, 5.0))
    tau = pb.sample("tau", dist.HalfCauchy(5.0))
    with pb.plate("school", J):
        theta_trans = pb.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = pb.deterministic("theta", mu + tau * theta_trans)
        pb.sample("y", dist.Normal(theta, sigma), obs=y)


def blr(N, D, X, y=None):
    beta = pb.sample("beta", dist.Normal(0.0, 10.0).expand((D,)).to_event(1))
    sigma = pb.sample("sigma", dist.HalfNormal(10.0))
    with pb.plate("obs", N):
        pb.sample("y", dist.Normal(X @ beta, sigma), obs=y)


def ark(K, T, y):
    alpha = pb.sample("alpha", dist.Normal(0.0, 10.0))
    beta = pb.sample("beta", dist.Normal(0.0, 10.0).expand((K,)).to_event(1))
    sigma = pb.sample("sigma", dist.HalfCauchy(2.5))
    # mu[t] = alpha + sum_k beta[k] * y[t-k-1] for t = K..T-1 (0-based): a Python loop over lags
    mu = alpha
    for k in range(K):
        mu = mu + beta[k] * y[K - k - 1:T - k - 1]
    pb.sample("y", dist.Normal(mu, sigma), obs=y[K:])


def arma11(T, y):
    mu = pb.sample("mu", dist.Normal(0.0, 10.0))
    phi = pb.sample("phi", dist.Normal(0.0, 2.0))
    theta = pb.sample("theta", dist.Normal(0.0, 2.0))
    sigma = pb.sample("sigma", dist.HalfCauchy(2.5))
    # The MA recursion is inherently sequential: a Python loop over time. On
    # scalars (``x[()]`` turns a 0-d array into one) a step is four float
    # operations instead of four numpy calls on 0-d arrays, ~10x cheaper.
    mu_, phi_, theta_ = mu[()], phi[()], theta[()]
    err = y[0] - (mu_ + phi_ * mu_)
    errs = [err]
    for t in range(1, T):
        err = y[t] - (mu_ + phi_ * y[t - 1] + theta_ * err)
        errs.append(err)
    pb.sample("err", dist.Normal(0.0, sigma), obs=np.array(errs))


def gp_pois_regr(N, x, k, y=None):
    rho = pb.sample("rho", dist.Gamma(25.0, 4.0))
    alpha = pb.sample("alpha", dist.HalfNormal(2.0))
    f_tilde = pb.sample("f_tilde", dist.Normal(0.0, 1.0).expand((N,)).to_event(1))
    d = x[:, None] - x[None, :]
    K = alpha**2 * np.exp(-(d**2) / (2 * rho**2)) + 1e-10 * onp.eye(N)
    L = np.linalg.cholesky(K)
    f = pb.deterministic("f", L @ f_tilde)
    pb.sample("k", dist.Poisson(log_rate=f).to_event(1), obs=k)


def low_dim_gauss_mix(N, y):
    mu = pb.sample("mu", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    pb.factor("mu_prior", dist.Normal(0.0, 2.0).log_prob(mu).sum())
    sigma = pb.sample("sigma", dist.HalfNormal(2.0).expand((2,)).to_event(1))
    theta = pb.sample("theta", dist.Beta(5.0, 5.0))
    lp1 = np.log(theta) + dist.Normal(mu[0], sigma[0]).log_prob(y)
    lp2 = np.log1p(-theta) + dist.Normal(mu[1], sigma[1]).log_prob(y)
    pb.factor("y", np.sum(np.logaddexp(lp1, lp2)))


def hmm_example(N, K, y):
    theta1 = pb.sample("theta1", dist.ImproperUniform(constraints.simplex, (), (K,)))
    theta2 = pb.sample("theta2", dist.ImproperUniform(constraints.simplex, (), (K,)))
    mu = pb.sample("mu", dist.ImproperUniform(constraints.positive_ordered_vector, (), (K,)))
    pb.factor("mu_prior",
              dist.Normal(3.0, 1.0).log_prob(mu[0]) + dist.Normal(10.0, 1.0).log_prob(mu[1]))
    # log_theta_T[k, j] = log P(state k | previous state j): row k is what state k is reached from.
    log_theta_T = np.log(np.stack([theta1, theta2])).T
    emission = dist.Normal(mu, 1.0).log_prob(y[:, None])  # (N, K)
    # The forward algorithm: a Python loop, marginalising the hidden states.
    gamma = emission[0]
    for t in range(1, N):
        gamma = logsumexp(gamma + log_theta_T, axis=1) + emission[t]
    pb.factor("y", logsumexp(gamma))


def wells_dist(N, switched, dist_):
    beta = pb.sample("beta", dist.ImproperUniform(constraints.real_vector, (), (2,)))
    with pb.plate("obs", N):
        pb.sample("switched", dist.Bernoulli(logits=beta[0] + beta[1] * dist_), obs=switched)


# ----------------------------------------------------------- data and names
def _load(name):
    return json.loads((DATA / name / "data.json").read_text())


def _floats(d, *keys):
    return {k: onp.asarray(d[k], dtype=float) for k in keys}


POSTERIORS = {
    "eight_schools-eight_schools_noncentered": (
        eight_schools_noncentered,
        lambda d: {"J": d["J"], **_floats(d, "y", "sigma")},
        {"theta": "theta", "mu": "mu", "tau": "tau"},
    ),
    "sblrc-blr": (blr, lambda d: {"N": d["N"], "D": d["D"], **_floats(d, "X", "y")},
                  {"beta": "beta", "sigma": "sigma"}),
    "arK-arK": (ark, lambda d: {"K": d["K"], "T": d["T"], **_floats(d, "y")},
                {"alpha": "alpha", "beta": "beta", "sigma": "sigma"}),
    "arma-arma11": (arma11, lambda d: {"T": d["T"], **_floats(d, "y")},
                    {"mu": "mu", "phi": "phi", "theta": "theta", "sigma": "sigma"}),
    "gp_pois_regr-gp_pois_regr": (
        gp_pois_regr, lambda d: {"N": d["N"], **_floats(d, "x", "k")},
        {"rho": "rho", "alpha": "alpha", "f": "f"}),
    "low_dim_gauss_mix-low_dim_gauss_mix": (
        low_dim_gauss_mix, lambda d: {"N": d["N"], **_floats(d, "y")},
        {"mu": "mu", "sigma": "sigma", "theta": "theta"}),
    "hmm_example-hmm_example": (
        hmm_example, lambda d: {"N": d["N"], "K": d["K"], **_floats(d, "y")},
        {"theta1": "theta1", "theta2": "theta2", "mu": "mu"}),
    "wells_data-wells_dist": (
        wells_dist, lambda d: {"N": d["N"], "switched": onp.asarray(d["switched"], dtype=float),
                               "dist_": onp.asarray(d["dist"], dtype=float)},
        {"beta": "beta"}),
}


def model_and_data(name):
    model, make_data, _ = POSTERIORS[name]
    return model, make_data(_load(name))


def reference_draws(name) -> dict[str, onp.ndarray]:
    """Reference draws as ``{"theta[1]": array (chains, draws), ...}``."""
    path = DATA / name / "reference_draws.json.zip"
    with zipfile.ZipFile(path) as zf:
        chains = json.loads(zf.read(zf.namelist()[0]))
    return {k: onp.array([c[k] for c in chains]) for k in chains[0]}


def scalar_draws(idata, names) -> dict[str, onp.ndarray]:
    """Our posterior as ``{"theta[1]": (chains, draws)}`` with 1-based names."""
    out = {}
    for ref_name, var in names.items():
        values = onp.asarray(idata.posterior[var])
        if values.ndim == 2:
            out[ref_name] = values
        else:
            flat = values.reshape(values.shape[:2] + (-1,))
            for i in range(flat.shape[-1]):
                out[f"{ref_name}[{i + 1}]"] = flat[..., i]
    return out


def reference_summary(name) -> dict:
    return json.loads((DATA / name / "reference_summary.json").read_text())
