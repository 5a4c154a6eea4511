"""The NUTS benchmark models written for PyMC and for NumPyro.

Each is the same density as its probad version (``bench_nuts.py`` for the
first three, ``tests/posteriordb_models.py`` and ``tests/models.py`` for the
loop models): the same priors, likelihood and parameterisation, and the same
unconstrained space (positive scales on the log scale, simplexes and ordered
vectors through the same kinds of transform), so gradient counts and ESS
compare like with like. PyMC and NumPyro are imported inside the functions:
a benchmark process imports only the tool it measures.

- ``eight_schools``: non-centred, ``theta`` as a deterministic;
- ``logistic``: intercept ~ N(0, 5), D coefficients ~ N(0, 1), Bernoulli(logits);
- ``radon``: varying intercepts ``a_j ~ N(mu_a, sigma_a)``, a common slope,
  ``y ~ N(a[group] + b * x, sigma_y)``, HalfNormal(5) scales;
- ``hmm_example`` (posteriordb): a two-state Gaussian HMM, the forward
  algorithm as ``lax.scan`` / ``pytensor.scan`` (probad: a Python loop);
- ``arma11`` (posteriordb): the ARMA(1,1) error recursion as a scan;
- ``garch11``: GARCH(1,1) with ``beta1 ~ Uniform(0, 1 - alpha1)``, the
  volatility recursion as a scan.

The data arrive as the keyword dicts ``bench_end_to_end.make_data(name)`` returns.
"""
from __future__ import annotations

#: The free (sampled) variables of each model: ESS is taken over these.
FREE_VARIABLES = {
    "eight_schools": ["mu", "tau", "theta_t"],
    "logistic": ["alpha", "beta"],
    "radon": ["mu_a", "sigma_a", "a", "b", "sigma_y"],
    "hmm_example": ["theta1", "theta2", "mu"],
    "arma11": ["mu", "phi", "theta", "sigma"],
    "garch11": ["mu", "alpha0", "alpha1", "beta1"],
}


# --------------------------------------------------------------------- PyMC
def pymc_model(name: str, data: dict):
    """A ``pm.Model`` of benchmark ``name`` conditioned on ``data``."""
    import pymc as pm

    if name == "eight_schools":
        with pm.Model(coords={"school": range(data["J"])}) as model:
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            theta_t = pm.Normal("theta_t", 0.0, 1.0, dims="school")
            theta = pm.Deterministic("theta", mu + tau * theta_t, dims="school")
            pm.Normal("y", theta, data["sigma"], observed=data["y"], dims="school")
    elif name == "logistic":
        X = data["X"]
        with pm.Model(coords={"feature": range(X.shape[1])}) as model:
            alpha = pm.Normal("alpha", 0.0, 5.0)
            beta = pm.Normal("beta", 0.0, 1.0, dims="feature")
            pm.Bernoulli("y", logit_p=alpha + X @ beta, observed=data["y"])
    elif name == "radon":
        with pm.Model(coords={"group": range(data["n_groups"])}) as model:
            mu_a = pm.Normal("mu_a", 0.0, 10.0)
            sigma_a = pm.HalfNormal("sigma_a", 5.0)
            a = pm.Normal("a", mu_a, sigma_a, dims="group")
            b = pm.Normal("b", 0.0, 10.0)
            sigma_y = pm.HalfNormal("sigma_y", 5.0)
            pm.Normal("y", a[data["group"]] + b * data["x"], sigma_y, observed=data["y"])
    elif name in ("hmm_example", "arma11", "garch11"):
        model = _pymc_loop_model(name, data)
    else:
        raise KeyError(name)
    return model


def _pymc_loop_model(name: str, data: dict):
    import numpy as onp
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt
    from pymc.distributions.transforms import log, ordered
    from pymc.logprob.transforms import ChainedTransform

    y = pt.as_tensor_variable(onp.asarray(data["y"], dtype=float))
    with pm.Model() as model:
        if name == "hmm_example":
            K = data["K"]
            theta1 = pm.Dirichlet("theta1", onp.ones(K))  # flat on the simplex
            theta2 = pm.Dirichlet("theta2", onp.ones(K))
            # A positive ordered vector: log, then the ordered transform (as probad's).
            mu = pm.HalfFlat("mu", shape=K, default_transform=None,
                             transform=ChainedTransform([log, ordered]),
                             initval=onp.array([3.0, 10.0]))
            pm.Potential("mu_prior", pm.logp(pm.Normal.dist(3.0, 1.0), mu[0])
                         + pm.logp(pm.Normal.dist(10.0, 1.0), mu[1]))
            log_theta_T = pt.log(pt.stack([theta1, theta2])).T
            emission = pm.logp(pm.Normal.dist(mu, 1.0), y[:, None])

            def forward(e_t, gamma, log_theta_T):
                return pt.logsumexp(gamma + log_theta_T, axis=1) + e_t

            gammas, _ = pytensor.scan(forward, sequences=[emission[1:]],
                                      outputs_info=[emission[0]], non_sequences=[log_theta_T])
            pm.Potential("y", pt.logsumexp(gammas[-1]))
        elif name == "arma11":
            mu = pm.Normal("mu", 0.0, 10.0)
            phi = pm.Normal("phi", 0.0, 2.0)
            theta = pm.Normal("theta", 0.0, 2.0)
            sigma = pm.HalfCauchy("sigma", 2.5)
            err0 = y[0] - (mu + phi * mu)

            def step(y_t, y_prev, err, mu, phi, theta):
                return y_t - (mu + phi * y_prev + theta * err)

            errs, _ = pytensor.scan(step, sequences=[y[1:], y[:-1]], outputs_info=[err0],
                                    non_sequences=[mu, phi, theta])
            pm.Potential("err", pm.logp(pm.Normal.dist(0.0, sigma),
                                        pt.concatenate([err0[None], errs])).sum())
        else:
            mu = pm.Normal("mu", 0.0, 10.0)
            alpha0 = pm.HalfNormal("alpha0", 1.0)
            alpha1 = pm.Uniform("alpha1", 0.0, 1.0)
            beta1 = pm.Uniform("beta1", 0.0, 1.0 - alpha1)
            sigma1 = pt.as_tensor_variable(onp.float64(data["sigma1"]))

            def step(y_prev, s, mu, alpha0, alpha1, beta1):
                return pt.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * s**2)

            sigmas, _ = pytensor.scan(step, sequences=[y[:-1]], outputs_info=[sigma1],
                                      non_sequences=[mu, alpha0, alpha1, beta1])
            pm.Potential("y", pm.logp(pm.Normal.dist(mu, pt.concatenate([sigma1[None], sigmas])),
                                      y).sum())
    return model


def pymc_value_and_grad(model, point: dict):
    """PyMC's compiled ``logp_dlogp`` (C backend) on the raveled free
    variables, and that raveled vector at ``point`` (unconstrained values by
    PyMC value-variable name, e.g. ``"tau_log__"``)."""
    import numpy as onp

    function = model.logp_dlogp_function(ravel_inputs=True)
    function.set_extra_values({})
    flat = onp.concatenate([onp.ravel(point[var.name]) for var in model.continuous_value_vars])
    return function, flat


# ------------------------------------------------------------------ NumPyro
def numpyro_model(name: str):
    """The NumPyro model function of benchmark ``name`` (data as keyword arguments)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from jax import lax
    from jax.scipy.special import logsumexp
    from numpyro.distributions import constraints

    def eight_schools(J, sigma, y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        with numpyro.plate("school", J):
            theta_t = numpyro.sample("theta_t", dist.Normal(0.0, 1.0))
            theta = numpyro.deterministic("theta", mu + tau * theta_t)
            numpyro.sample("y", dist.Normal(theta, sigma), obs=y)

    def logistic(X, y=None):
        alpha = numpyro.sample("alpha", dist.Normal(0.0, 5.0))
        beta = numpyro.sample("beta", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
        with numpyro.plate("obs", X.shape[0]):
            numpyro.sample("y", dist.Bernoulli(logits=alpha + X @ beta), obs=y)

    def radon(group, x, n_groups, y=None):
        mu_a = numpyro.sample("mu_a", dist.Normal(0.0, 10.0))
        sigma_a = numpyro.sample("sigma_a", dist.HalfNormal(5.0))
        with numpyro.plate("groups", n_groups):
            a = numpyro.sample("a", dist.Normal(mu_a, sigma_a))
        b = numpyro.sample("b", dist.Normal(0.0, 10.0))
        sigma_y = numpyro.sample("sigma_y", dist.HalfNormal(5.0))
        with numpyro.plate("obs", len(group)):
            numpyro.sample("y", dist.Normal(a[group] + b * x, sigma_y), obs=y)

    def hmm_example(N, K, y):
        theta1 = numpyro.sample("theta1", dist.Dirichlet(jnp.ones(K)))  # flat on the simplex
        theta2 = numpyro.sample("theta2", dist.Dirichlet(jnp.ones(K)))
        mu = numpyro.sample("mu", dist.ImproperUniform(constraints.positive_ordered_vector, (),
                                                       (K,)))
        numpyro.factor("mu_prior", dist.Normal(3.0, 1.0).log_prob(mu[0])
                       + dist.Normal(10.0, 1.0).log_prob(mu[1]))
        log_theta_T = jnp.log(jnp.stack([theta1, theta2])).T
        emission = dist.Normal(mu, 1.0).log_prob(y[:, None])

        def forward(gamma, e_t):
            return logsumexp(gamma + log_theta_T, axis=1) + e_t, None

        gamma, _ = lax.scan(forward, emission[0], emission[1:])
        numpyro.factor("y", logsumexp(gamma))

    def arma11(T, y):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        phi = numpyro.sample("phi", dist.Normal(0.0, 2.0))
        theta = numpyro.sample("theta", dist.Normal(0.0, 2.0))
        sigma = numpyro.sample("sigma", dist.HalfCauchy(2.5))
        err0 = y[0] - (mu + phi * mu)

        def step(err, ys):
            err = ys[1] - (mu + phi * ys[0] + theta * err)
            return err, err

        _, errs = lax.scan(step, err0, (y[:-1], y[1:]))
        numpyro.factor("err", dist.Normal(0.0, sigma).log_prob(
            jnp.concatenate([err0[None], errs])).sum())

    def garch11(y, sigma1):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        alpha0 = numpyro.sample("alpha0", dist.HalfNormal(1.0))
        alpha1 = numpyro.sample("alpha1", dist.Uniform(0.0, 1.0))
        beta1 = numpyro.sample("beta1", dist.Uniform(0.0, 1.0 - alpha1))

        def step(s, y_prev):
            s = jnp.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * s**2)
            return s, s

        s1 = jnp.asarray(sigma1, dtype=float)
        _, sigmas = lax.scan(step, s1, y[:-1])
        numpyro.sample("y", dist.Normal(mu, jnp.concatenate([s1[None], sigmas])), obs=y)

    return {"eight_schools": eight_schools, "logistic": logistic, "radon": radon,
            "hmm_example": hmm_example, "arma11": arma11, "garch11": garch11}[name]


def numpyro_value_and_grad(name: str, data: dict, point: dict):
    """``jax.jit`` of NumPyro's potential energy and its gradient on a flat
    vector, and that vector at ``point`` (unconstrained values by site name)."""
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree
    from numpyro.infer.util import potential_energy

    model = numpyro_model(name)
    kwargs = {k: jnp.asarray(v) if hasattr(v, "shape") else v for k, v in data.items()}
    flat, unravel = ravel_pytree({k: jnp.asarray(v, dtype=jnp.float64) for k, v in point.items()})
    energy = jax.jit(jax.value_and_grad(
        lambda q: potential_energy(model, (), kwargs, unravel(q))))
    return energy, flat
