"""A hidden Markov model whose forward algorithm is a plain Python loop inside the model."""
from __future__ import annotations

import numpy as onp

import probad as pb
import probad.ad.numpy as np
from probad import distributions as dist
from probad.ad.scipy.special import logsumexp


def simulate(steps: int = 100, seed: int = 0) -> dict:
    """Two regimes with means -1 and 2 that persist for ~10 steps."""
    rng = onp.random.default_rng(seed)
    transition = onp.array([[0.9, 0.1], [0.1, 0.9]])
    states = [0]
    for _ in range(steps - 1):
        states.append(rng.choice(2, p=transition[states[-1]]))
    states = onp.array(states)
    y = onp.array([-1.0, 2.0])[states] + rng.standard_normal(steps)
    return {"y": y, "states": states}


def model(y):
    """Sticky two-state HMM; the discrete states are summed out step by step."""
    stay = pb.sample("stay", dist.Beta(5.0, 1.0).expand((2,)).to_event(1))
    mu = pb.sample("mu", dist.Normal(0.0, 3.0).expand((2,)).to_event(1))
    sigma = pb.sample("sigma", dist.HalfNormal(2.0))
    log_trans = np.log(np.stack([np.stack([stay[0], 1 - stay[0]]),
                                 np.stack([1 - stay[1], stay[1]])]))
    log_alpha = np.log(0.5) + dist.Normal(mu, sigma).log_prob(y[0])
    for t in range(1, len(y)):  # ordinary Python: probad traces the loop
        log_alpha = (logsumexp(log_alpha[:, None] + log_trans, axis=0)
                     + dist.Normal(mu, sigma).log_prob(y[t]))
    pb.factor("y", logsumexp(log_alpha))


def main(draws: int = 500, tune: int = 500, chains: int = 4, seed: int = 1,
         progress: bool = True, steps: int = 100):
    data = simulate(steps)
    # Start the means ordered: the two labellings are equivalent modes.
    idata = pb.hmc(model, {"y": data["y"]}, draws=draws, tune=tune, chains=chains, seed=seed,
                   init={"mu": onp.array([-1.0, 1.0])}, progress=progress)
    pb.summary(idata, var_names=["mu", "sigma", "stay"])
    return idata


if __name__ == "__main__":
    main()
