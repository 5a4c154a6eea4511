"""probad: probabilistic programming and inference on its own autodiff.

A model is a plain Python function that calls :func:`sample`; ``pb.hmc`` runs
NUTS on it and returns ``arviz.InferenceData``.
"""
__version__ = "0.1.0"

from . import ad, constraints, distributions, handlers, optim  # noqa: F401
from .infer import (SVI, LocScaleReparam, Trace_ELBO, TraceMeanField_ELBO, advi,  # noqa: F401
                    autoguide, extend, hmc, init_to_median, init_to_sample, init_to_uniform,
                    infer_discrete, init_to_value, laplace, log_density, log_likelihood, map,
                    potential, predictive, prior_predictive, sbc, summary)
from .plots import plot_compare, plot_warmup  # noqa: F401
from .primitives import deterministic, factor, markov, param, plate, plate_stack, sample  # noqa: F401

__all__ = [
    "sample", "param", "deterministic", "factor", "plate", "plate_stack", "markov",
    "hmc", "extend", "advi", "map", "laplace", "SVI", "Trace_ELBO", "TraceMeanField_ELBO", "autoguide",
    "potential", "log_density", "log_likelihood", "predictive", "infer_discrete",
    "prior_predictive", "sbc",
    "summary", "optim",
    "init_to_uniform", "init_to_median", "init_to_sample", "init_to_value", "LocScaleReparam",
    "plot_compare", "plot_warmup", "ad", "distributions", "constraints", "handlers",
]
