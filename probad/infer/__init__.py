"""``probad.infer``: from a model's potential to posterior draws.

The NUTS and HMC kernels (``kernels``, and ``native_nuts`` in compiled code),
adaptation (``adaptation``) and the single-chain loop (``chain``) know only a
function ``q -> (U, dU/dq)``; ``density`` builds that function from a model
(summing out discrete sites with ``enumerate``; ``discrete`` draws them back
afterwards; ``gibbs`` samples the others between NUTS transitions),
starting where ``initialization`` says; ``mcmc`` drives chains (``resume``
keeps what warm starts and extensions go on from),
``results`` packages draws as ArviZ InferenceData and ``diagnostics`` checks
them. ``advi`` (its loop in ``optimise``), ``svi`` (with ``autoguide`` and
``kl``) and ``laplace`` fit approximations to the same potential, the
Gaussian ones from ``gaussian``; ``reparam`` rewrites sites;
``predictive`` runs the model forward; ``sbc`` calibrates a model and its
inference over many simulated data sets, on any executor (``cluster`` for
Ray).

One name for each numpy in every module here, as in ``distributions`` and
the tests: ``onp`` is plain numpy, ``np`` is ``probad.ad.numpy`` (traced).
"""
from . import autoguide  # noqa: F401
from .advi import ADVIFit, advi  # noqa: F401
from .density import MissingDataWarning, Potential, log_density, potential  # noqa: F401
from .discrete import infer_discrete  # noqa: F401
from .diagnostics import SamplingWarning, check_sampling, summary  # noqa: F401
from .gibbs import GibbsWarning  # noqa: F401
from .initialization import init_to_median, init_to_sample, init_to_uniform, init_to_value  # noqa: F401
from .laplace import LaplaceFit, MAPResult, laplace, map  # noqa: F401
from .mcmc import extend, hmc  # noqa: F401
from .predictive import predictive, prior_predictive  # noqa: F401
from .reparam import LocScaleReparam  # noqa: F401
from .results import log_likelihood  # noqa: F401
from .sbc import SBCResult, sbc  # noqa: F401
from .cluster import RayExecutor  # noqa: F401
from .kl import kl_divergence, register_kl  # noqa: F401
from .svi import SVI, Trace_ELBO, TraceMeanField_ELBO  # noqa: F401
