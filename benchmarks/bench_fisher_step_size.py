"""The step size probad's Fisher warmup ends with, against nutpie's.

Stan's warmup (probad ``adapt="stan"``) restarts dual averaging after its
last metric update and ends at a step ~20% below the one that gives the
target acceptance (``bench_nuts_step_size.py``). The Fisher warmup never
restarts after its first estimate. This script checks whether its final
step size, its realised acceptance after warmup (target 0.8) and the
leapfrog steps per draw now match nutpie's, which runs the same scheme.

Per chain: the step size sampling ran with, the mean acceptance statistic
after warmup (probad ``acceptance_rate``, nutpie ``mean_tree_accept``), the
mean leapfrog steps per draw; then min bulk ESS over the free parameters per
post-warmup gradient. 4 chains x 1000 draws, each tool at its defaults
(probad ``tune=400``, nutpie ``tune=400``), one process per tool.

Measured (2026-12-06, two cores shared with other jobs; seed 1)::

    radon     probad step 0.49-0.53  acceptance 0.80-0.82  7.0 steps  ESS/grad 0.057
              nutpie step 0.46-0.52  acceptance 0.80-0.82  7.0 steps  ESS/grad 0.062
    logistic  probad step 0.64-0.69  acceptance 0.81-0.84  7.2 steps  ESS/grad 0.078
              nutpie step 0.63-0.75  acceptance 0.80-0.82  7.1 steps  ESS/grad 0.080

The step sizes, acceptances and tree sizes agree within their spread over
chains, and the ESS per post-warmup gradient within its run-to-run noise
(10-20%): no step size change is called for. PyMC's larger figures on these
two models (``bench_fisher.py``: 0.097 and 0.073) are then not a step size
effect; nutpie shares the gap, so it lies in the metric (PyMC's is the
draws' variance over a 1000-iteration warmup) or in the noise.

Run: ``python benchmarks/bench_fisher_step_size.py radon logistic``
(logistic takes several minutes per tool).
"""
from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as onp

from bench_nuts import CHAINS, SEED, make_data, probad_model
from peer_models import FREE_VARIABLES, pymc_model

DRAWS = 1000


def sample(tool: str, name: str):
    """The run's InferenceData and the name of its acceptance statistic."""
    data = make_data(name)
    if tool == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(pymc_model(name, data))
        idata = nutpie.sample(compiled, draws=DRAWS, chains=CHAINS, cores=1, seed=SEED,
                              progress_bar=False)
        return idata, "mean_tree_accept"
    import probad as pb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pb.infer.SamplingWarning)
        idata = pb.hmc(probad_model(name), data, draws=DRAWS, chains=CHAINS, seed=SEED,
                       progress=False, cores=1)
    return idata, "acceptance_rate"


def child(tool: str, name: str) -> None:
    import arviz as az

    idata, accept = sample(tool, name)
    stats = idata.sample_stats
    ess = float(az.ess(idata, var_names=FREE_VARIABLES[name], method="bulk").to_array().min())
    print(f"{name:9s} {tool:7s} step {onp.round(stats['step_size'].values[:, -1], 3)}  "
          f"acceptance {onp.round(stats[accept].mean('draw').values, 3)}  "
          f"steps/draw {onp.round(stats['n_steps'].mean('draw').values, 2)}  "
          f"ESS/grad post {ess / float(stats['n_steps'].sum()):.4f}", flush=True)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    for name in sys.argv[1:] or ["radon", "logistic"]:
        for tool in ("probad", "nutpie"):
            subprocess.run([sys.executable, __file__, "--child", tool, name], check=False)


if __name__ == "__main__":
    main()
