"""``probad.distributions``: distributions, constraints and transforms.

NumPyro's names and parameterisations (``Normal(loc, scale)``,
``Gamma(concentration, rate)``, ``Bernoulli(probs=|logits=)``, ...). Each
distribution has ``batch_shape``, ``event_shape``, ``support``,
``arg_constraints``, ``has_rsample``, ``sample(rng, sample_shape)``,
``log_prob(value)``, ``mean``, ``variance``, ``expand``, ``to_event`` and
``mask``; ``transforms.biject_to(constraint)`` maps unconstrained space onto
a support.
"""
from . import constraints, transforms
from .continuous import (Beta, Cauchy, Chi2, Exponential, Gamma, Gumbel, HalfCauchy, HalfNormal,
                         HalfStudentT, InverseGamma, Laplace, Logistic, LogNormal, Normal, Pareto,
                         StudentT, TruncatedNormal, Uniform, VonMises, Weibull)
from .discrete import (Bernoulli, BetaBinomial, Binomial, Categorical, DiscreteUniform, Geometric,
                       NegativeBinomial2, OrderedLogistic, Poisson, ZeroInflatedDistribution,
                       ZeroInflatedNegativeBinomial2, ZeroInflatedPoisson)
from .distribution import (Delta, Distribution, ExpandedDistribution, ImproperUniform, Independent,
                           MaskedDistribution, TransformedDistribution, Unit, enable_validation,
                           is_validation_enabled)
from .mixtures import MixtureSameFamily
from .multivariate import (Dirichlet, GaussianRandomWalk, LKJCholesky, LowRankMultivariateNormal,
                           Multinomial, MultivariateNormal, MultivariateStudentT)
from .transforms import biject_to

__all__ = [
    "constraints", "transforms", "biject_to", "enable_validation", "is_validation_enabled",
    # structural
    "Distribution", "Independent", "ExpandedDistribution", "MaskedDistribution",
    "TransformedDistribution", "Delta", "Unit", "ImproperUniform", "MixtureSameFamily",
    # continuous
    "Normal", "HalfNormal", "StudentT", "HalfStudentT", "Cauchy", "HalfCauchy", "Exponential",
    "Gamma", "Chi2", "InverseGamma", "LogNormal", "Beta", "Uniform", "Laplace", "Logistic",
    "Weibull", "Pareto", "TruncatedNormal", "VonMises", "Gumbel",
    # discrete
    "Bernoulli", "Binomial", "BetaBinomial", "Categorical", "Poisson", "NegativeBinomial2",
    "Geometric", "DiscreteUniform", "OrderedLogistic", "ZeroInflatedDistribution",
    "ZeroInflatedPoisson", "ZeroInflatedNegativeBinomial2",
    # multivariate
    "MultivariateNormal", "LowRankMultivariateNormal", "MultivariateStudentT", "Dirichlet",
    "Multinomial", "LKJCholesky", "GaussianRandomWalk",
]
