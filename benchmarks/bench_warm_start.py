"""What a warm start saves: ESS per gradient, counting every gradient of a run.

On the three models of ``bench_nuts.py``, 4 chains of 1000 draws each:

- ``fresh``: ``pb.hmc`` at its defaults (Fisher warmup, ``tune=400``);
- ``warm, tune=0``: ``pb.hmc(..., warm_start=fresh, tune=0)``, a second run
  with new streams that starts where ``fresh`` stopped, with its step sizes
  and metrics (what a user rerunning a model pays after the first run);
- ``warm, tune=50``: the same with 50 iterations re-tuning the step size;
- ``extend``: ``pb.extend(fresh, draws=1000)``, the 1000 draws added (the
  ESS of the added draws alone, over the gradients they cost).

Columns: min bulk ESS over the free parameters' scalars, gradients of the
run (``attrs["num_gradient_evaluations"]``; for ``extend`` the difference),
ESS per gradient and its ratio to ``fresh``; divergences after warmup.

Measured once (2026-12-06, two busy shared cores), ESS/grad against fresh:

=============  ============  =============  ======
model          warm, tune=0  warm, tune=50  extend
=============  ============  =============  ======
eight schools  1.57x         1.34x          1.65x
logistic       1.38x         0.74x          1.46x
radon          1.50x         0.99x          1.46x
=============  ============  =============  ======

Reusing the step size and metric as they are saves the whole warmup. The
50-iteration re-tune did not pay on logistic and radon: dual averaging with
Stan's ``t0 = 10`` swings widely in its first iterations, and its average
over so few ended ~20% below the step size it converges to (radon: 0.37-0.42
against the fresh run's 0.48-0.51, acceptance 0.87-0.89 instead of
0.80-0.82). The re-tune now uses ``t0 = 100``
(``adaptation.WARM_START_T0``); measured again (same day, same machine):

=============  ============  =============  ======
model          warm, tune=0  warm, tune=50  extend
=============  ============  =============  ======
eight schools  1.57x         1.08x          1.65x
logistic       1.38x         1.32x          1.38x
radon          1.37x         1.20x          1.65x
=============  ============  =============  ======

(radon's re-tuned steps 0.43-0.50, acceptance 0.82-0.87; eight schools'
tune=50 costs the same gradients as tune=0 and differs in ESS only, which
varies 20-30% between runs.)

Run: ``python benchmarks/bench_warm_start.py`` (about 2 minutes on two busy
cores; ``--models eight_schools`` to restrict).
"""
from __future__ import annotations

import argparse
import warnings

import numpy as onp

from bench_nuts import CHAINS, MODELS, SEED, make_data, probad_model
from peer_models import FREE_VARIABLES

DRAWS = 1000


def min_ess(idata, name) -> float:
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(idata.posterior[FREE_VARIABLES[name]], method="bulk")
    return min(float(onp.min(ess[v].values)) for v in ess.data_vars)


def gradients(idata) -> int:
    return int(sum(onp.atleast_1d(idata.attrs["num_gradient_evaluations"])))


def main():
    import probad as pb

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=MODELS)
    args = parser.parse_args()
    print(f"{'model':<14}{'run':<16}{'min ESS':>8}{'grads':>9}{'ESS/grad':>10}{'vs fresh':>9}"
          f"{'div':>5}")
    for name in args.models:
        model, data = probad_model(name), make_data(name)
        options = dict(draws=DRAWS, chains=CHAINS, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pb.infer.SamplingWarning)
            fresh = pb.hmc(model, data, seed=SEED, **options)
            runs = {"fresh": (fresh, min_ess(fresh, name), gradients(fresh))}
            for tune in (0, 50):
                warm = pb.hmc(model, data, seed=SEED + 1, tune=tune, warm_start=fresh, **options)
                runs[f"warm, tune={tune}"] = (warm, min_ess(warm, name), gradients(warm))
            both = pb.extend(fresh, model, data, draws=DRAWS, progress=False)
            added = both.sel(draw=slice(DRAWS, None))
            runs["extend"] = (added, min_ess(added, name), gradients(both) - gradients(fresh))
        base = runs["fresh"][1] / runs["fresh"][2]
        for run, (idata, ess, grads) in runs.items():
            print(f"{name:<14}{run:<16}{ess:8.0f}{grads:9d}{ess / grads:10.4f}"
                  f"{ess / grads / base:8.2f}x{int(idata.sample_stats['diverging'].sum()):5d}")


if __name__ == "__main__":
    main()
