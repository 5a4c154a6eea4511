"""Models that solve an ODE (``probad.ad.scipy.integrate.odeint``): they
compile, a failed solve is a rejected proposal counted in the run's stats,
and NUTS samples a one-compartment pharmacokinetic posterior correctly
(against quadrature of its closed-form solution)."""
import functools
import re
import warnings

import numpy as onp
import pytest
import scipy.integrate as osi

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.ad.compiler import CompileWarning
from probad.ad.scipy.integrate import odeint
from probad.infer import potential
from probad.infer.diagnostics import SamplingWarning
from tests.posterior_checks import assert_passes_on_repeat, reference_failures

# ------------------------------------------------ one-compartment PK model
# An oral dose absorbed at rate ka into a compartment of volume V that
# eliminates it at rate ke; log-normal concentration measurements.
TIMES = onp.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0])
DOSE, VOLUME, SIGMA = 100.0, 10.0, 0.2
PRIOR = {"ka": (0.0, 0.5), "ke": (-1.6, 0.5)}  # (mu, sigma) of each LogNormal


def one_compartment(y, t, ka, ke):
    return np.stack([-ka * y[0], ka * y[0] - ke * y[1]])


def pk(t, dose, volume, sigma, conc=None, adjoint=None):
    ka = pb.sample("ka", dist.LogNormal(*PRIOR["ka"]))
    ke = pb.sample("ke", dist.LogNormal(*PRIOR["ke"]))
    y = odeint(one_compartment, np.array([dose, 0.0]), t, (ka, ke), rtol=1e-7, atol=1e-7,
               adjoint=adjoint)
    pb.sample("conc", dist.LogNormal(np.log(y[1:, 1] / volume), sigma), obs=conc)


def concentration(ka, ke, t):
    """The closed form (Bateman's function), broadcasting over ka and ke."""
    return DOSE / VOLUME * ka / (ka - ke) * (onp.exp(-ke * t) - onp.exp(-ka * t))


def pk_data():
    noise = onp.random.default_rng(1).normal(size=TIMES.size - 1)
    conc = concentration(1.2, 0.2, TIMES[1:]) * onp.exp(SIGMA * noise)
    return dict(t=TIMES, dose=DOSE, volume=VOLUME, sigma=SIGMA, conc=conc)


def quadrature_moments(points: int = 241) -> dict:
    """Posterior means and sds of ka and ke by quadrature on a grid of
    (log ka, log ke), with the closed-form solution: no ODE solver, no MCMC.

    The grid spans the posterior's mass to beyond 9 sd on each side (found by
    a first, coarse pass), so the midpoint rule's error on this smooth,
    rapidly decaying integrand is far below the Monte-Carlo error tested."""
    data = pk_data()

    def log_density(u, v):  # in log space, Jacobian included (it cancels the LogNormal's 1/x)
        ka, ke = onp.exp(u), onp.exp(v)
        mean = onp.log(concentration(ka[..., None], ke[..., None], TIMES[1:]))
        loglik = -0.5 * onp.sum((onp.log(data["conc"]) - mean) ** 2, axis=-1) / SIGMA ** 2
        return loglik - 0.5 * ((u - PRIOR["ka"][0]) / PRIOR["ka"][1]) ** 2 \
            - 0.5 * ((v - PRIOR["ke"][0]) / PRIOR["ke"][1]) ** 2

    def moments(u_range, v_range):
        u, v = onp.meshgrid(onp.linspace(*u_range, points), onp.linspace(*v_range, points),
                            indexing="ij")
        with onp.errstate(all="ignore"):  # ka == ke on the grid's diagonal: 0/0, weight 0
            lp = log_density(u, v)
        w = onp.exp(onp.where(onp.isfinite(lp), lp - onp.nanmax(lp), -onp.inf))
        w /= w.sum()
        out = {}
        for name, x in (("u", u), ("v", v), ("ka", onp.exp(u)), ("ke", onp.exp(v))):
            m = onp.sum(w * x)
            out[name] = (m, onp.sqrt(onp.sum(w * (x - m) ** 2)))
        return out

    coarse = moments((-3.0, 3.0), (-4.0, 1.0))
    fine = moments(*[(coarse[k][0] - 10 * coarse[k][1], coarse[k][0] + 10 * coarse[k][1])
                     for k in ("u", "v")])
    return {"mean": {k: fine[k][0] for k in ("ka", "ke")}, "sd": {k: fine[k][1] for k in ("ka", "ke")}}


def test_an_ode_model_compiles_and_agrees_with_eager_evaluation():
    data = pk_data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = potential(pk, data)
        q = onp.array([0.1, -1.5])
        value, grad = compiled.value_and_grad(q)
    eager = [str(w.message) for w in caught if "eagerly" in str(w.message)]
    assert not eager  # before: "... runs eagerly because it keeps traced values after returning"
    assert not [w for w in caught if issubclass(w.category, CompileWarning)
                and "odeint" not in str(w.message)]  # only: odeint has no native lowering
    eager_value, eager_grad = potential(pk, data, compile=False).value_and_grad(q)
    # The same solves, with the tape replayed instead of the model run.
    assert value == pytest.approx(eager_value, rel=1e-12)
    onp.testing.assert_allclose(grad, eager_grad, rtol=1e-10)


# y' = k y^2 from y(0) = 1 blows up at t = 1/k: for k > 2 the solve to t = 0.5
# fails (mxstep is kept small so that it fails fast).
def blow_up(y, t, k):
    return k * y * y


def explosive(y=None):
    k = pb.sample("k", dist.LogNormal(0.0, 1.0))
    path = odeint(blow_up, np.ones(1), onp.array([0.0, 0.5]), (k,), mxstep=200)
    pb.sample("y", dist.Normal(path[-1, 0], 0.1), obs=y)


def test_failed_solves_are_rejections_counted_in_the_sample_stats():
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy warning from inside the solve
        warnings.simplefilter("error", osi.ODEintWarning)
        warnings.filterwarnings("ignore", category=SamplingWarning)  # a short run's low ESS
        warnings.filterwarnings("ignore", category=CompileWarning)
        idata = pb.hmc(explosive, {"y": 1.9}, chains=2, draws=25, tune=25, seed=3, progress=False,
                       cores=1)
    (line,) = idata.sample_stats.attrs["rejections"]
    assert idata.attrs["rejections"] == [line]
    kind, counts, first = re.fullmatch(r"(.*?): \[(.*?)\]; first: (.*)", line).groups()
    assert kind == "ODE solve failed" and "ODEintError" in first and "Excess work done" in first
    counts = [int(c) for c in counts.split(",")]
    assert len(counts) == 2 and sum(counts) > 0  # y = 1.9 is near the blow-up at k = 2
    assert (idata.posterior["k"].values < 2).all()  # no draw where the solve failed


@pytest.mark.slow
@pytest.mark.parametrize("adjoint", [False, True])
def test_pk_posterior_against_quadrature(adjoint):
    # ~30 s per gradient method: each gradient solves the ODE twice (values,
    # then the adjoint or the forward sensitivities).
    reference = quadrature_moments()
    model, data = functools.partial(pk, adjoint=adjoint), pk_data()

    def failures(seed):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=CompileWarning)  # odeint is replayed by numpy
            idata = pb.hmc(model, data, chains=2, draws=300, tune=200, seed=seed, progress=False)
        ours = {k: idata.posterior[k].values for k in ("ka", "ke")}
        return reference_failures(idata, ours, reference)

    assert_passes_on_repeat(failures)
