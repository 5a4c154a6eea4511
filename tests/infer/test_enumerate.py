"""Enumerated discrete latent sites: exact identities, errors, and posterior checks.

Posterior checks use the posteriordb z-score rule (tests/data/posteriordb/README.md,
``tests/posterior_checks.py``): |z| < 4 for a mean and an sd, each z in units of
its own Monte-Carlo error, so the rule holds at any number of draws. One z
fails by chance with probability 6.3e-5; a check is failed only if it fails
on every one of up to four seeds (``assert_passes_on_repeat``), so a correct
sampler fails one of the at most 12 z-checks of a test with probability
about 12 * (6.3e-5)**4 = 2e-16. Seeds are fixed, so a run is deterministic.
"""
import math

import numpy as onp
import pytest
from scipy.special import gammaln
from scipy.special import logsumexp as lse

import probad as pb
import probad.ad.numpy as np
from probad import constraints
from probad import distributions as dist
from probad import handlers
from probad.ad.scipy.special import logsumexp
from probad.infer.density import potential
from probad.primitives import SiteError
from tests.posterior_checks import assert_passes_on_repeat, z_scores, z_scores_exact

ENUM = {"enumerate": "parallel"}


def _hmc(model, data, seed, chains=2, draws=1000, **kw):
    return pb.hmc(model, data, draws=draws, tune=500, chains=chains, seed=seed, progress=False,
                  **kw)


def _posterior_failures(a, b, names) -> dict:
    """The z-checks of ``a``'s posterior against ``b``'s draws that fail."""
    failures = {}
    for name in names:
        x, y = onp.asarray(a.posterior[name]), onp.asarray(b.posterior[name])
        flat_x = x.reshape(x.shape[:2] + (-1,))
        flat_y = y.reshape(y.shape[:2] + (-1,))
        for i in range(flat_x.shape[-1]):
            for what, z in zip(("mean", "sd"), z_scores(flat_x[..., i], flat_y[..., i])):
                if not abs(z) < 4:
                    failures[f"z of the {what} of {name}[{i}]"] = f"{z:.2f}"
    return failures


# ------------------------------------------------------------ Gaussian mixture
def _mixture_data(n=60, seed=0):
    rng = onp.random.default_rng(seed)
    return {"y": onp.concatenate([rng.normal(-2.0, 1.0, n // 2), rng.normal(1.5, 1.0, n - n // 2)])}


def _mixture_priors():
    w = pb.sample("w", dist.Dirichlet(np.ones(2) * 2.0))
    # Ordered locations: the labels cannot switch, so the posterior has one mode.
    locs = pb.sample("locs", dist.ImproperUniform(constraints.ordered_vector, (), (2,)))
    pb.factor("locs_prior", np.sum(dist.Normal(0.0, 3.0).log_prob(locs)))
    return w, locs


def mixture_enumerated(y):
    w, locs = _mixture_priors()
    with pb.plate("obs", len(y)):
        z = pb.sample("z", dist.Categorical(w), infer=ENUM)
        pb.deterministic("loc_of_obs", locs[z])
        pb.sample("y", dist.Normal(locs[z], 1.0), obs=y)
    # Same shape enumerated or not: only the check run's tagging tells it depends on z.
    pb.deterministic("n_second", np.sum(z))


def mixture_marginalised(y):
    w, locs = _mixture_priors()
    with pb.plate("obs", len(y)):
        pb.factor("y", logsumexp(np.log(w) + dist.Normal(locs, 1.0).log_prob(y[:, None]), axis=-1))


def test_mixture_potential_equals_hand_marginalised():
    data = _mixture_data()
    enumerated, hand = potential(mixture_enumerated, data), potential(mixture_marginalised, data)
    eager = potential(mixture_enumerated, data, compile=False)
    assert enumerated.dim == hand.dim == 3 and "z" not in enumerated.sites
    for seed in range(3):
        q = hand.initial_point(seed=seed)
        u, g = enumerated.value_and_grad(q)
        u_ref, g_ref = hand.value_and_grad(q)
        assert u == pytest.approx(u_ref, rel=1e-13)
        onp.testing.assert_allclose(g, g_ref, rtol=1e-11, atol=1e-11)
        assert eager.value_and_grad(q)[0] == pytest.approx(u, rel=1e-13)
    assert enumerated._energy_and_grad.trace_count == 1
    # The deterministic sites that depend on z are left to infer_discrete.
    assert {"loc_of_obs", "n_second"}.isdisjoint(enumerated.constrain(q))


def test_map_of_enumerated_mixture_is_the_marginalised_one():
    # Optimisers see the same density over the continuous sites.
    data = _mixture_data()
    enumerated, hand = pb.map(mixture_enumerated, data), pb.map(mixture_marginalised, data)
    assert enumerated.success and hand.success
    onp.testing.assert_allclose(enumerated.q, hand.q, atol=1e-5)
    assert enumerated.log_density == pytest.approx(hand.log_density, rel=1e-9)


def test_mixture_log_likelihood_is_marginal():
    data = _mixture_data()
    pot = potential(mixture_enumerated, data)
    q = pot.initial_point(seed=1)
    values = pot.constrain(q)
    expected = lse(onp.log(values["w"]) - 0.5 * (data["y"][:, None] - values["locs"]) ** 2
                   - 0.5 * math.log(2 * math.pi), axis=-1)
    onp.testing.assert_allclose(pot.log_likelihood(q)["y"], expected, rtol=1e-12)


def test_config_enumerate_marks_finite_discrete_sites():
    def model(y):
        w, locs = _mixture_priors()
        with pb.plate("obs", len(y)):
            z = pb.sample("z", dist.Categorical(w))
            pb.sample("y", dist.Normal(locs[z], 1.0), obs=y)

    data = _mixture_data()
    with pytest.raises(SiteError, match="site 'z'.*Enumerate it.*config_enumerate"):
        potential(model, data)
    enumerated = potential(handlers.config_enumerate(model), data)
    q = enumerated.initial_point(seed=0)
    assert enumerated(q) == pytest.approx(potential(mixture_enumerated, data)(q), rel=1e-13)


@pytest.mark.slow
def test_mixture_posterior_matches_hand_marginalised():
    data = _mixture_data()
    hand = _hmc(mixture_marginalised, data, seed=12)
    runs = {}

    def failures(seed):
        runs[seed] = _hmc(mixture_enumerated, data, seed=seed)
        return _posterior_failures(runs[seed], hand, ["w", "locs"])

    assert_passes_on_repeat(failures, seeds=(11, 13, 14, 15))
    enumerated = runs[11]
    # LOO sees the marginal pointwise likelihood of each draw.
    w, locs = enumerated.posterior["w"].values, enumerated.posterior["locs"].values
    log_joint = onp.log(w)[:, :, None, :] - 0.5 * (data["y"][:, None] - locs[:, :, None, :]) ** 2
    onp.testing.assert_allclose(enumerated.log_likelihood["y"].values,
                                lse(log_joint, axis=-1) - 0.5 * math.log(2 * math.pi), rtol=1e-10)


def test_infer_discrete_matches_exact_conditionals():
    data = _mixture_data(n=10)
    w, locs = onp.array([0.3, 0.7]), onp.array([-1.0, 1.5])
    n = 4000
    posterior = {"w": onp.tile(w, (n, 1)), "locs": onp.tile(locs, (n, 1))}
    out = pb.infer_discrete(mixture_enumerated, data, posterior, seed=0)
    assert out["z"].shape == (n, 10)
    log_joint = onp.log(w) - 0.5 * (data["y"][:, None] - locs) ** 2
    p1 = onp.exp(log_joint - lse(log_joint, axis=1, keepdims=True))[:, 1]
    # Independent draws: a binomial frequency per observation, |z| < 4 each.
    z = (out["z"].mean(0) - p1) / onp.sqrt(onp.maximum(p1 * (1 - p1), 1e-12) / n)
    assert onp.all(onp.abs(z) < 4), z
    onp.testing.assert_array_equal(out["loc_of_obs"], locs[out["z"]])
    onp.testing.assert_array_equal(out["n_second"], out["z"].sum(axis=1))


def test_infer_discrete_joins_inference_data():
    data = _mixture_data(n=8)
    with pytest.warns(pb.infer.SamplingWarning):  # one short chain, on purpose
        idata = _hmc(mixture_enumerated, data, seed=3, chains=1, draws=50)
    out = pb.infer_discrete(mixture_enumerated, data, posterior=idata, seed=1)
    assert out.posterior["z"].dims == ("chain", "draw", "obs")
    assert out.posterior["loc_of_obs"].dims == ("chain", "draw", "obs")
    assert "z" not in idata.posterior  # the input is left as it was
    assert idata.attrs["enumerated_sites"] == "z"  # what was summed out, for the record
    # Recomputed afterwards, the log-likelihood is the same marginal one.
    again = pb.log_likelihood(mixture_enumerated, data, idata.copy())
    onp.testing.assert_allclose(again.log_likelihood["y"].values, idata.log_likelihood["y"].values,
                                rtol=1e-12)
    again = pb.infer_discrete(mixture_enumerated, data, posterior=idata, seed=1)
    onp.testing.assert_array_equal(out.posterior["z"], again.posterior["z"])
    # Posterior predictive replicates use the drawn assignments.
    pred = pb.predictive(mixture_enumerated, data, out, seed=0)
    assert pred["y"].shape == (1, 50, 8)
    onp.testing.assert_array_equal(pred["z"], out.posterior["z"].values)


# ------------------------------------------------------------------ plates
def test_sites_in_nested_plates_are_summed_plate_by_plate():
    # One switch per group, observations nested in groups: the switch is
    # summed out inside its group, after the group's observations are multiplied.
    y = onp.array([[0.1, -0.3, 0.2], [2.1, 1.7, 2.4]])

    def model(y):
        p = pb.sample("p", dist.Beta(2.0, 2.0))
        with pb.plate("group", 2, dim=-2):
            z = pb.sample("z", dist.Bernoulli(p), infer=ENUM)
            with pb.plate("obs", 3, dim=-1):
                pb.sample("y", dist.Normal(2.0 * z, 1.0), obs=y)

    pot = potential(model, {"y": y}, compile=False)
    q = pot.initial_point(seed=0)
    p = pot.constrain(q)["p"]
    log_y = -0.5 * (y[:, :, None] - 2.0 * onp.arange(2)) ** 2 - 0.5 * math.log(2 * math.pi)
    per_group = lse(onp.log([1 - p, p]) + log_y.sum(1), axis=-1)
    log_prior = onp.log(6.0 * p * (1 - p))
    log_jacobian = math.log(p * (1 - p))
    assert -pot(q) == pytest.approx(per_group.sum() + log_prior + log_jacobian, rel=1e-12)
    # Pointwise: each observation with its group's switch summed out alone.
    expected = lse(onp.log([1 - p, p]) + log_y, axis=-1)
    onp.testing.assert_allclose(pot.log_likelihood(q)["y"], expected, rtol=1e-12)


def test_global_site_log_likelihood_sums_it_out_per_observation():
    y = onp.array([0.3, 2.2, 1.9])

    def model(y):
        z = pb.sample("z", dist.Bernoulli(0.4), infer=ENUM)
        s = pb.sample("s", dist.HalfNormal(1.0))
        with pb.plate("obs", 3):
            pb.sample("y", dist.Normal(2.0 * z, s), obs=y)

    pot = potential(model, {"y": y})
    q = pot.initial_point(seed=0)
    s = pot.constrain(q)["s"]
    log_y = -0.5 * ((y[:, None] - 2.0 * onp.arange(2)) / s) ** 2 - onp.log(s) \
        - 0.5 * math.log(2 * math.pi)
    prior = onp.log([0.6, 0.4])
    onp.testing.assert_allclose(pot.log_likelihood(q)["y"], lse(prior + log_y, axis=-1),
                                rtol=1e-12)
    log_prior_s = math.log(2) - 0.5 * s ** 2 - 0.5 * math.log(2 * math.pi)
    assert -pot(q) == pytest.approx(lse(prior + log_y.sum(0)) + log_prior_s + math.log(s),
                                    rel=1e-12)


# --------------------------------------------------------- markov / HMM
def _hmm(theta, locs, y):
    x = None
    for t in pb.markov(range(len(y))):
        probs = np.array([0.5, 0.5]) if x is None else theta[x]
        x = pb.sample(f"x_{t}", dist.Categorical(probs), infer=ENUM)
        pb.sample(f"y_{t}", dist.Normal(locs[x], 1.0), obs=y[t])


def _hmm_model(y):
    theta = pb.sample("theta", dist.Dirichlet(np.ones((2, 2))))
    _hmm(theta, np.array([-1.0, 1.0]), y)


def _forward_backward(theta, locs, y):
    """Exact posterior marginals P(x_t | y) and log p(y) by forward-backward."""
    emission = -0.5 * (y[:, None] - locs) ** 2 - 0.5 * math.log(2 * math.pi)
    T = len(y)
    alpha = onp.zeros((T, 2))
    alpha[0] = onp.log(0.5) + emission[0]
    for t in range(1, T):
        alpha[t] = lse(alpha[t - 1][:, None] + onp.log(theta), axis=0) + emission[t]
    beta = onp.zeros((T, 2))
    for t in range(T - 2, -1, -1):
        beta[t] = lse(onp.log(theta) + emission[t + 1] + beta[t + 1], axis=1)
    post = alpha + beta
    return onp.exp(post - lse(post, axis=1, keepdims=True)), lse(alpha[-1])


def test_markov_reuses_two_dims_and_equals_forward_algorithm():
    y = onp.array([-1.2, -0.8, 0.9, 1.4, 1.1, -0.7, -1.0, 0.8])
    pot = potential(_hmm_model, {"y": y}, compile=False)
    q = pot.initial_point(seed=2)
    theta = pot.constrain(q)["theta"]
    tr = handlers.trace(handlers.substitute(pot._model, data={"theta": theta})).get_trace(y=y)
    # theta's batch dim (its rows) is -1, so the chain alternates between -2 and -3.
    assert {msg["infer"]["_enum_dim"] for name, msg in tr.items() if name.startswith("x_")} \
        == {-2, -3}
    _, log_evidence = _forward_backward(theta, onp.array([-1.0, 1.0]), y)
    # Each row of theta has a Dirichlet(1, 1) prior, a density of 1.
    u_no_jacobian, _ = pot.value_and_grad(q, jacobian=False)
    assert -u_no_jacobian == pytest.approx(log_evidence, rel=1e-12)


def test_markov_loop_runs_as_plain_loop_without_enumeration():
    draws = pb.prior_predictive(_hmm_model, {"y": onp.zeros(5)}, draws=3, seed=0)
    assert draws["x_4"].shape == (3,) and draws["y_4"].shape == (3,)


def test_infer_discrete_under_markov_is_forward_filtering_backward_sampling():
    y = onp.array([-1.2, 0.1, 0.9, 1.4, -0.2, -0.7])
    theta = onp.array([[0.8, 0.2], [0.3, 0.7]])
    n = 4000
    out = pb.infer_discrete(_hmm_model, {"y": y}, {"theta": onp.tile(theta, (n, 1, 1))}, seed=3)
    marginals, _ = _forward_backward(theta, onp.array([-1.0, 1.0]), y)
    freq = onp.array([out[f"x_{t}"].mean() for t in range(len(y))])
    z = (freq - marginals[:, 1]) / onp.sqrt(marginals[:, 1] * marginals[:, 0] / n)
    assert onp.all(onp.abs(z) < 4), z
    # Pairs, not just marginals: P(x_0 = x_1) from the exact joint.
    both = onp.mean(out["x_0"] == out["x_1"])
    emission = -0.5 * (y[:, None] - onp.array([-1.0, 1.0])) ** 2
    joint = onp.full((2,) * len(y), 0.0)
    for states in onp.ndindex(*joint.shape):
        s = onp.array(states)
        joint[states] = onp.log(0.5) + emission[onp.arange(len(y)), s].sum() \
            + onp.log(theta[s[:-1], s[1:]]).sum()
    p = onp.exp(joint - lse(joint))
    p_same = p.sum(axis=tuple(range(2, len(y))))
    p_same = p_same[0, 0] + p_same[1, 1]
    assert abs(both - p_same) < 4 * math.sqrt(p_same * (1 - p_same) / n)


# ---------------------------------------------------------- errors
def test_infinite_support_cannot_be_enumerated():
    def model():
        pb.sample("n", dist.Poisson(3.0), infer=ENUM)
        pb.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(SiteError, match="site 'n'.*not finite.*Gibbs"):
        potential(model)


def test_control_flow_on_an_enumerated_site_is_named():
    def model():
        z = pb.sample("z", dist.Bernoulli(0.5), infer=ENUM)
        loc = 1.0 if z == 1 else 0.0
        pb.sample("x", dist.Normal(loc, 1.0), obs=0.3)
        pb.sample("s", dist.HalfNormal(1.0))

    with pytest.raises(SiteError, match="site 'z' is enumerated.*np.where"):
        potential(model)


def test_too_many_enumeration_dims():
    def model():
        # Forty independent switches outside a plate: each one needs a dim of its own.
        for i in range(40):
            b = pb.sample(f"b_{i}", dist.Bernoulli(0.5), infer=ENUM)
            pb.sample(f"x_{i}", dist.Normal(b, 1.0), obs=0.0)

    with pytest.raises(SiteError, match="site 'b_32'.*pb.markov"):
        potential(model)


def test_enumerated_site_with_undeclared_batch_dims():
    def model():
        pb.sample("z", dist.Bernoulli(np.full(3, 0.5)), infer=ENUM)

    with pytest.raises(SiteError, match="site 'z'.*pb.plate"):
        potential(model)


# -------------------------------------------- coal-mining disasters change point
# UK coal-mining disasters per year, 1851-1961 (Jarrett 1979, as in PyMC's tutorials).
DISASTERS = onp.array([
    4, 5, 4, 0, 1, 4, 3, 4, 0, 6, 3, 3, 4, 0, 2, 6, 3, 3, 5, 4, 5, 3, 1, 4, 4, 1, 5, 5, 3, 4, 2, 5,
    2, 2, 3, 4, 2, 1, 3, 2, 2, 1, 1, 1, 1, 3, 0, 0, 1, 0, 1, 1, 0, 0, 3, 1, 0, 3, 2, 2, 0, 1, 1, 1,
    0, 1, 0, 1, 0, 0, 0, 2, 1, 0, 0, 0, 1, 1, 0, 2, 3, 3, 1, 1, 2, 1, 1, 1, 1, 2, 4, 2, 0, 0, 1, 4,
    0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1], dtype=float)


def change_point(disasters):
    T = len(disasters)
    switch = pb.sample("switch", dist.DiscreteUniform(0, T - 1), infer=ENUM)
    early = pb.sample("early", dist.Exponential(1.0))
    late = pb.sample("late", dist.Exponential(1.0))
    with pb.plate("year", T):
        pb.sample("disasters", dist.Poisson(np.where(np.arange(T) < switch, early, late)),
                  obs=disasters)


def _exact_change_point():
    """p(switch | data) with both rates integrated out: an Exponential(1)
    prior and a Poisson likelihood give a Gamma integral in closed form."""
    T = len(DISASTERS)
    s = onp.arange(T)
    before = onp.concatenate([[0.0], onp.cumsum(DISASTERS)[:-1]])
    after = DISASTERS.sum() - before
    log_post = gammaln(before + 1) - (before + 1) * onp.log(1.0 + s) \
        + gammaln(after + 1) - (after + 1) * onp.log(1.0 + T - s)
    p = onp.exp(log_post - lse(log_post))
    moments = {"switch": (s, s ** 2)}
    # Rate moments given the switch: Gamma(count + 1, years + 1).
    moments["early"] = ((before + 1) / (1.0 + s), (before + 1) * (before + 2) / (1.0 + s) ** 2)
    moments["late"] = ((after + 1) / (1.0 + T - s),
                       (after + 1) * (after + 2) / (1.0 + T - s) ** 2)
    out = {}
    for name, (m1, m2) in moments.items():
        mean = float(p @ m1)
        out[name] = (mean, math.sqrt(float(p @ m2) - mean ** 2))
    return out


@pytest.mark.slow
def test_change_point_matches_exact_posterior():
    data = {"disasters": DISASTERS}
    exact = _exact_change_point()

    def failures(seed):
        idata = _hmc(change_point, data, seed=seed)
        idata = pb.infer_discrete(change_point, data, posterior=idata, seed=seed + 100)
        out = {}
        for name, (mean, sd) in exact.items():
            zs = z_scores_exact(idata.posterior[name].values.astype(float), mean, sd)
            for what, z in zip(("mean", "sd"), zs):
                if not abs(z) < 4:
                    out[f"z of the {what} of {name}"] = f"{z:.2f}"
        return out

    assert_passes_on_repeat(failures, seeds=(5, 6, 7, 8))


# ------------------------------------------------------- zero-inflated Poisson
def _zip_data(n=80, seed=1):
    rng = onp.random.default_rng(seed)
    structural = rng.random(n) < 0.3
    return {"y": onp.where(structural, 0, rng.poisson(3.0, n)).astype(float)}


def zip_enumerated(y):
    gate = pb.sample("gate", dist.Beta(1.0, 1.0))
    rate = pb.sample("rate", dist.Gamma(2.0, 0.5))
    with pb.plate("obs", len(y)):
        zero = pb.sample("zero", dist.Bernoulli(gate), infer=ENUM)  # 1: a structural zero
        with handlers.mask(mask=zero == 0):
            pb.sample("y", dist.Poisson(rate), obs=y)
        pb.factor("only_zeros", np.where((zero == 1) & (y > 0), -onp.inf, 0.0))


def zip_marginalised(y):
    gate = pb.sample("gate", dist.Beta(1.0, 1.0))
    rate = pb.sample("rate", dist.Gamma(2.0, 0.5))
    with pb.plate("obs", len(y)):
        pb.sample("y", dist.ZeroInflatedPoisson(gate, rate), obs=y)


def test_zero_inflated_poisson_potential_equals_marginalised():
    data = _zip_data()
    enumerated, hand = potential(zip_enumerated, data), potential(zip_marginalised, data)
    for seed in range(3):
        q = hand.initial_point(seed=seed)
        u, g = enumerated.value_and_grad(q)
        u_ref, g_ref = hand.value_and_grad(q)
        assert u == pytest.approx(u_ref, rel=1e-12)
        onp.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.slow
def test_zero_inflated_poisson_posterior_matches_marginalised():
    data = _zip_data()
    hand = _hmc(zip_marginalised, data, seed=22)
    assert_passes_on_repeat(
        lambda seed: _posterior_failures(_hmc(zip_enumerated, data, seed=seed), hand,
                                         ["gate", "rate"]), seeds=(21, 23, 24, 25))


def test_markov_chain_log_likelihood_is_each_observation_marginal():
    # log p(y_t | theta) sums x_t out under its prior marginal, which the
    # pointwise likelihoods of a chain compute from shared forward messages.
    y = onp.array([-1.2, 0.4, 0.9, 1.4, -0.3])
    pot = potential(_hmm_model, {"y": y})
    q = pot.initial_point(seed=4)
    theta = pot.constrain(q)["theta"]
    marginal = onp.array([0.5, 0.5])
    loglik = pot.log_likelihood(q)
    for t in range(len(y)):
        log_y = -0.5 * (y[t] - onp.array([-1.0, 1.0])) ** 2 - 0.5 * math.log(2 * math.pi)
        assert loglik[f"y_{t}"] == pytest.approx(lse(onp.log(marginal) + log_y), rel=1e-12)
        marginal = marginal @ theta
