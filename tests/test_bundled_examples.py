"""``python -m probad.examples``: the listing, and each bundled example on short chains."""
import subprocess
import sys
import warnings

import numpy as onp
import pytest

from probad.examples import eight_schools, hidden_markov_model, logistic_regression
from probad.examples.__main__ import main as examples_main
from probad.infer import SamplingWarning

SHORT = dict(draws=300, tune=300, chains=2, seed=1, progress=False)


def test_the_listing_names_every_example(capsys):
    assert examples_main([]) == 0
    listing = capsys.readouterr().out
    for name in ("eight_schools", "hidden_markov_model", "logistic_regression"):
        assert name in listing
    assert examples_main(["no_such_example"]) == 2


def test_the_module_runs_from_the_command_line():
    out = subprocess.run([sys.executable, "-m", "probad.examples"], capture_output=True,
                         text=True, check=True).stdout
    assert "run one with: python -m probad.examples NAME" in out


@pytest.fixture(autouse=True)
def short_chains_warn_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        yield


def test_eight_schools(capsys):
    idata = eight_schools.main(**SHORT)
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert 0 < float(idata.posterior["tau"].mean()) < 10
    assert "tau" in capsys.readouterr().out


def test_logistic_regression_approximations_agree_with_nuts(capsys):
    fits = logistic_regression.main(**SHORT)
    beta = fits["NUTS"].posterior["beta"].values.reshape(-1, 5)
    for name in ("ADVI full-rank", "Laplace"):
        shift = (onp.asarray(fits[name].mean["beta"]) - beta.mean(0)) / beta.std(0)
        assert onp.all(onp.abs(shift) < 0.3), name
    assert "wall time: NUTS" in capsys.readouterr().out


def test_hidden_markov_model_recovers_the_regimes():
    # Its gradient replays ~30 small numpy calls per time step (~5 ms over 100 steps),
    # so shorter chains. (A shorter series is not an option: at 50 steps a single
    # regime explains the data about as well, and chains settle there.)
    idata = hidden_markov_model.main(**dict(SHORT, draws=150, tune=150))
    mu = idata.posterior["mu"].values.reshape(-1, 2).mean(0)
    # Against the simulation's truth, not a posterior: mu's posterior sd is ~0.14 and
    # the data put its mean ~1 sd from the truth, so 0.4 is ~3 sds. The failure this
    # catches, one regime for both states, puts both means near 0.6, 1.4 or more away.
    onp.testing.assert_allclose(mu, [-1.0, 2.0], atol=0.4)
    assert int(idata.sample_stats["diverging"].sum()) == 0
