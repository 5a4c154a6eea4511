"""Eight schools: a hierarchical model sampled with NUTS, summarised with ArviZ."""
from __future__ import annotations

import numpy as onp

import probad as pb
from probad import distributions as dist

SCHOOLS = ["Choate", "Deerfield", "Phillips Andover", "Phillips Exeter",
           "Hotchkiss", "Lawrenceville", "St. Paul's", "Mt. Hermon"]
Y = onp.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = onp.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def model(J, sigma, y=None):
    """Non-centred eight schools (Rubin 1981; Gelman et al., BDA)."""
    mu = pb.sample("mu", dist.Normal(0.0, 5.0))
    tau = pb.sample("tau", dist.HalfCauchy(5.0))
    with pb.plate("school", J):
        theta_t = pb.sample("theta_t", dist.Normal(0.0, 1.0))
        theta = pb.deterministic("theta", mu + tau * theta_t)
        pb.sample("y", dist.Normal(theta, sigma), obs=y)


def main(draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int = 1, progress: bool = True):
    data = {"J": 8, "sigma": SIGMA, "y": Y}
    idata = pb.hmc(model, data, draws=draws, tune=tune, chains=chains, seed=seed,
                   coords={"school": SCHOOLS}, progress=progress)
    pb.summary(idata, var_names=["mu", "tau", "theta"])
    return idata


if __name__ == "__main__":
    main()
