"""The three NUTS benchmark models written for PyMC and for NumPyro.

Each is the same density as its probad version in ``bench_nuts.py``: the
same priors, likelihood and parameterisation, and the same unconstrained
space (positive scales on the log scale), so gradient counts and ESS compare
like with like. PyMC and NumPyro are imported inside the functions: a
benchmark process imports only the tool it measures.

- ``eight_schools``: non-centred, ``theta`` as a deterministic;
- ``logistic``: intercept ~ N(0, 5), D coefficients ~ N(0, 1), Bernoulli(logits);
- ``radon``: varying intercepts ``a_j ~ N(mu_a, sigma_a)``, a common slope,
  ``y ~ N(a[group] + b * x, sigma_y)``, HalfNormal(5) scales.

The data arrive as the keyword dicts ``bench_nuts.make_data(name)`` returns.
"""
from __future__ import annotations

#: The free (sampled) variables of each model: ESS is taken over these.
FREE_VARIABLES = {
    "eight_schools": ["mu", "tau", "theta_t"],
    "logistic": ["alpha", "beta"],
    "radon": ["mu_a", "sigma_a", "a", "b", "sigma_y"],
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
    else:
        raise KeyError(name)
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
    import numpyro
    import numpyro.distributions as dist

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

    return {"eight_schools": eight_schools, "logistic": logistic, "radon": radon}[name]


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
