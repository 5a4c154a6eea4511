"""probad: probabilistic programming and inference on its own autodiff.

A model is a plain Python function that calls :func:`sample`; ``pb.hmc`` runs
NUTS on it and returns ``arviz.InferenceData``.
"""
__version__ = "0.1.0"

from . import ad, constraints, distributions, handlers  # noqa: F401
from .infer import (LocScaleReparam, hmc, init_to_median, init_to_sample,  # noqa: F401
                    init_to_uniform, init_to_value, log_density, potential, predictive,
                    prior_predictive, summary)
from .plots import plot_compare, plot_warmup  # noqa: F401
from .primitives import deterministic, factor, param, plate, plate_stack, sample  # noqa: F401

__all__ = [
    "sample", "param", "deterministic", "factor", "plate", "plate_stack",
    "hmc", "potential", "log_density", "predictive", "prior_predictive", "summary",
    "init_to_uniform", "init_to_median", "init_to_sample", "init_to_value", "LocScaleReparam",
    "plot_compare", "plot_warmup", "ad", "distributions", "constraints", "handlers",
]
