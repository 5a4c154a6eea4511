"""Per-gradient cost of ODE models: probad's potential (compiled, with the
adjoint or the forward-sensitivity gradient, and eager) against numpy and
scipy by hand.

Models (data simulated with fixed seeds):

- one-compartment pharmacokinetics: an oral dose, absorption rate ka,
  elimination rate ke, 6 log-normal concentrations (2 states, 2 parameters);
- Lotka-Volterra predator-prey, Stan's case study: 4 rates, 2 initial
  populations, 2 noise scales, 20 yearly log-normal counts of each species
  (2 states, 6 ODE parameters).

The peer ("scipy by hand") is what a careful numpy user writes without
autodiff: the right-hand side, its Jacobians and the forward sensitivity
equations coded by hand, one ``scipy.integrate.odeint`` call of the
augmented system, and the log-likelihood's gradient by the chain rule. It
computes the likelihood part only (no priors, no transforms), which favours
it slightly. Every figure is a ratio to it, measured in one run.

Before (main at commit 7d4c54a), a model with ``odeint`` never compiled
(the adjoint kept traced values in a class-level cache) and every
evaluation of the adjoint system traced the user's right-hand side again.
Measured here with that code on these two models (old package copied to a
temporary directory, same script), against this version:

====================  ==================  =====================  ====================
model                 before, per grad    now, adjoint           now, forward sens.
====================  ==================  =====================  ====================
one-compartment PK    193 ms (46x hand)   9.2 ms (1.9x hand)     6.6 ms (1.4x hand)
Lotka-Volterra        747 ms (34x hand)   24 ms (1.2x hand)      15 ms (0.70x hand)
====================  ==================  =====================  ====================

(2 shared cores, noisy: read the ratios.) What remains is mostly Python
between scipy's Fortran and the native replay of the right-hand side, paid
at each of the few hundred evaluations of a solve.

Run: ``python benchmarks/bench_ode.py``
"""
from __future__ import annotations

import functools
import warnings

import numpy as onp
import scipy.integrate as osi

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.ad.scipy.integrate import odeint
from probad.infer import potential

from bench_compile import seconds_per_call  # benchmarks/ is on sys.path when this script runs

TOL = dict(rtol=1e-7, atol=1e-7)


def by_hand_gradient(rhs, jac_y, jac_p, y0, t, params, y0_columns, log_obs, sigma, observed):
    """Log-likelihood and its gradient in ``(params, y0[y0_columns])`` by the
    forward sensitivity equations, solved with the state in one odeint call.

    ``observed(y)`` picks the modelled values (positive) from the (T, n)
    solution; the observations are log-normal around them with scale sigma.
    """
    n, n_p = len(y0), len(params)
    m = n_p + len(y0_columns)
    s0 = onp.zeros((n, m))
    for k, i in enumerate(y0_columns):
        s0[i, n_p + k] = 1.0

    def augmented(z, time):
        y, s = z[:n], z[n:].reshape(n, m)
        ds = jac_y(y, params) @ s
        ds[:, :n_p] += jac_p(y, params)
        return onp.concatenate([rhs(y, params), ds.ravel()])

    z = osi.odeint(augmented, onp.concatenate([y0, s0.ravel()]), t, **TOL)
    y, s = z[:, :n], z[:, n:].reshape(len(t), n, m)
    mean_log, d_mean = observed(y, s)
    resid = (log_obs - mean_log) / sigma
    ll = -0.5 * onp.sum(resid ** 2)
    return ll, onp.einsum("k,kj->j", resid / sigma, d_mean)


# --------------------------------------------------------------------- PK
PK_TIMES = onp.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0])
PK = dict(dose=100.0, volume=10.0, sigma=0.2)


def one_compartment(y, t, ka, ke):
    return np.stack([-ka * y[0], ka * y[0] - ke * y[1]])


def pk(t, dose, volume, sigma, conc=None, adjoint=None):
    ka = pb.sample("ka", dist.LogNormal(0.0, 0.5))
    ke = pb.sample("ke", dist.LogNormal(-1.6, 0.5))
    y = odeint(one_compartment, np.array([dose, 0.0]), t, (ka, ke), adjoint=adjoint, **TOL)
    pb.sample("conc", dist.LogNormal(np.log(y[1:, 1] / volume), sigma), obs=conc)


def pk_case():
    ka, ke = 1.2, 0.2
    exact = PK["dose"] / PK["volume"] * ka / (ka - ke) * (
        onp.exp(-ke * PK_TIMES[1:]) - onp.exp(-ka * PK_TIMES[1:]))
    conc = exact * onp.exp(PK["sigma"] * onp.random.default_rng(1).normal(size=exact.size))
    data = dict(t=PK_TIMES, conc=conc, **PK)
    q = onp.log([ka, ke])

    def hand(q):
        params = onp.exp(q)
        return by_hand_gradient(
            lambda y, p: onp.array([-p[0] * y[0], p[0] * y[0] - p[1] * y[1]]),
            lambda y, p: onp.array([[-p[0], 0.0], [p[0], -p[1]]]),
            lambda y, p: onp.array([[-y[0], 0.0], [y[0], -y[1]]]),
            onp.array([PK["dose"], 0.0]), PK_TIMES, params, [], onp.log(conc), PK["sigma"],
            lambda y, s: (onp.log(y[1:, 1] / PK["volume"]), s[1:, 1, :] / y[1:, 1:2]))

    return "one-compartment PK", pk, data, q, hand


# ----------------------------------------------------------- Lotka-Volterra
LV_TIMES = onp.arange(0.0, 21.0)


def lotka_volterra_rhs(z, t, theta):
    u, v = z[0], z[1]
    return np.stack([(theta[0] - theta[1] * v) * u, (-theta[2] + theta[3] * u) * v])


def lotka_volterra(t, y=None, adjoint=None):
    theta = pb.sample("theta", dist.LogNormal(onp.log([0.55, 0.028, 0.8, 0.024]), 0.5).to_event(1))
    z0 = pb.sample("z0", dist.LogNormal(onp.log(30.0), 1.0).expand((2,)).to_event(1))
    sigma = pb.sample("sigma", dist.LogNormal(-1.0, 1.0).expand((2,)).to_event(1))
    z = odeint(lotka_volterra_rhs, z0, t, (theta,), adjoint=adjoint, **TOL)
    pb.sample("y", dist.LogNormal(np.log(z[1:]), sigma).to_event(2), obs=y)


def lotka_volterra_case():
    theta, z0, sigma = onp.array([0.55, 0.028, 0.8, 0.024]), onp.array([33.0, 6.2]), 0.25
    clean = osi.odeint(lambda z, t: onp.array([(theta[0] - theta[1] * z[1]) * z[0],
                                               (-theta[2] + theta[3] * z[0]) * z[1]]),
                       z0, LV_TIMES, rtol=1e-10, atol=1e-10)[1:]
    y = clean * onp.exp(sigma * onp.random.default_rng(2).normal(size=clean.shape))
    q = onp.concatenate([onp.log(theta), onp.log(z0), onp.log([sigma, sigma])])

    def hand(q):
        theta, z0 = onp.exp(q[:4]), onp.exp(q[4:6])
        return by_hand_gradient(
            lambda z, p: onp.array([(p[0] - p[1] * z[1]) * z[0], (-p[2] + p[3] * z[0]) * z[1]]),
            lambda z, p: onp.array([[p[0] - p[1] * z[1], -p[1] * z[0]],
                                    [p[3] * z[1], -p[2] + p[3] * z[0]]]),
            lambda z, p: onp.array([[z[0], -z[0] * z[1], 0.0, 0.0],
                                    [0.0, 0.0, -z[1], z[0] * z[1]]]),
            z0, LV_TIMES, theta, [0, 1], onp.log(y).ravel(), sigma,
            lambda z, s: (onp.log(z[1:]).ravel(), (s[1:] / z[1:, :, None]).reshape(-1, 6)))

    return "Lotka-Volterra", lotka_volterra, dict(t=LV_TIMES, y=y), q, hand


def main():
    warnings.simplefilter("ignore")  # the potential's "odeint has no native lowering" note
    for title, model, data, q, hand in (pk_case(), lotka_volterra_case()):
        timings = {"scipy by hand": seconds_per_call(hand, q, budget=1.0)}
        for label, adjoint, compiled in (("probad, adjoint", True, True),
                                         ("probad, forward sens.", False, True),
                                         ("probad eager, adjoint", True, False)):
            pot = potential(functools.partial(model, adjoint=adjoint), data, compile=compiled)
            timings[label] = seconds_per_call(pot.value_and_grad, q, budget=1.0)
        value_only = potential(model, data)
        timings["probad value only"] = seconds_per_call(value_only, q)
        print(f"\n{title}: per gradient (ratio to scipy by hand)")
        for label, seconds in timings.items():
            print(f"  {label:<24} {seconds * 1e3:8.2f} ms   {seconds / timings['scipy by hand']:6.2f}x")


if __name__ == "__main__":
    main()
