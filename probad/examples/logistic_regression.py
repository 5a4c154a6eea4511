"""Logistic regression: NUTS, full-rank ADVI and Laplace side by side, with wall times."""
from __future__ import annotations

import time

import numpy as onp

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist


def simulate(n: int = 2000, d: int = 5, seed: int = 0) -> dict:
    """Standard-normal features and a known coefficient vector."""
    rng = onp.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    beta = onp.linspace(-1.0, 1.0, d)
    y = (rng.random(n) < 1.0 / (1.0 + onp.exp(-(0.3 + X @ beta)))).astype(float)
    return {"X": X, "y": y}


def model(X, y=None):
    """An intercept and coefficients with weakly informative normal priors."""
    alpha = pb.sample("alpha", dist.Normal(0.0, 5.0))
    with pb.plate("feature", X.shape[1]):
        beta = pb.sample("beta", dist.Normal(0.0, 1.0))
    with pb.plate("row", X.shape[0]):
        pb.sample("y", dist.Bernoulli(logits=alpha + np.dot(X, beta)), obs=y)


def main(draws: int = 1000, tune: int = 1000, chains: int = 4, seed: int = 1,
         progress: bool = True) -> dict:
    data = simulate()
    fits, seconds = {}, {}
    for name, run in [
        ("NUTS", lambda: pb.hmc(model, data, draws=draws, tune=tune, chains=chains, seed=seed,
                                progress=progress)),
        ("ADVI full-rank", lambda: pb.advi(model, data, method="fullrank", seed=seed,
                                           progress=progress)),
        ("Laplace", lambda: pb.laplace(model, data, seed=seed)),
    ]:
        start = time.perf_counter()
        fits[name] = run()
        seconds[name] = time.perf_counter() - start
    posterior = fits["NUTS"].posterior
    reference = {"alpha": posterior["alpha"].values.ravel(),
                 **{f"beta[{k}]": posterior["beta"].values[..., k].ravel()
                    for k in range(data["X"].shape[1])}}
    print(f"{'':<10}{'NUTS mean':>11}{'sd':>8}   shift of the approximations' means, in NUTS sds")
    print(f"{'':<29}" + "".join(f"{name:>17}" for name in ("ADVI full-rank", "Laplace")))
    for label, values in reference.items():
        site, _, index = label.partition("[")
        shifts = []
        for name in ("ADVI full-rank", "Laplace"):
            mean = onp.asarray(fits[name].mean[site])
            mean = mean[int(index[:-1])] if index else mean
            shifts.append((float(mean) - values.mean()) / values.std())
        print(f"{label:<10}{values.mean():>11.3f}{values.std():>8.3f}"
              + "".join(f"{s:>+17.3f}" for s in shifts))
    print("\nwall time: " + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items()))
    return fits


if __name__ == "__main__":
    main()
