"""Effect handlers: the interpreters of a model's messages.

Each handler changes what the primitives in ``probad.primitives`` mean, and
handlers compose by nesting, with Pyro/NumPyro semantics::

    tr = handlers.trace(handlers.seed(model, rng_seed=0)).get_trace(J=8)
    with handlers.seed(rng_seed=0), handlers.condition(data={"y": y}):
        model()

Every handler is a context manager, a wrapper (``handler(model, ...)``) and a
decorator (``@handler(...)``). Inference is built from them: the potential
energy is the model run under ``substitute`` (unconstrained values in) and
``trace`` (log densities out).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as onp

from .ad import numpy as anp
from .ad.extend import getval
from .primitives import CondIndepStackFrame, Messenger, SiteError, apply_stack

__all__ = [
    "trace", "seed", "condition", "substitute", "block", "replay", "scale",
    "mask", "do", "uncondition", "lift", "scope", "reparam", "config_enumerate",
]


# Inference needs every site's value and distribution from one run of the
# model: trace records them, and the log density is read off its trace.
class trace(Messenger):
    """Record every site's message, in execution order.

    ``handlers.trace(model).get_trace(*args, **kwargs)`` runs the model and
    returns an ``OrderedDict`` of name -> message copy; ``with
    handlers.trace() as tr:`` gives the same dict. Two sample, param or
    deterministic sites with one name are an error: inference could not tell
    them apart.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     x = pb.sample("x", dist.Normal(0.0, 1.0))
    ...     pb.sample("y", dist.Normal(x, 1.0), obs=0.5)
    >>> tr = handlers.trace(handlers.seed(model, rng_seed=0)).get_trace()
    >>> list(tr)
    ['x', 'y']
    >>> tr["y"]["is_observed"], tr["y"]["value"]
    (True, 0.5)
    """

    def __enter__(self):
        super().__enter__()
        self.trace = OrderedDict()
        return self.trace

    def postprocess_message(self, msg):
        name = msg["name"]
        previous = self.trace.get(name)
        if previous is not None and not (msg["type"] == previous["type"] == "plate"):
            raise SiteError(
                f"two sites are named '{name}' (a {previous['type']} site and a "
                f"{msg['type']} site): site names must be unique; rename one, e.g. "
                "with a loop index in the name or handlers.scope")
        self.trace[name] = msg.copy()

    def get_trace(self, *args, **kwargs) -> OrderedDict:
        """Run the model with these arguments and return its trace."""
        self(*args, **kwargs)
        return self.trace


# Sample sites draw from an explicit generator, never a global one: seed
# supplies it, so the same seed gives the same draws wherever a model runs.
class seed(Messenger):
    """Draw every unobserved sample site (and plate subsample) from one numpy
    Generator, so the same ``rng_seed`` gives the same values.

    Parameters
    ----------
    rng_seed : int, numpy.random.SeedSequence or numpy.random.Generator
        Seed of the generator (a Generator is used as it is). The generator
        advances as sites draw, so calling a seeded model twice gives two
        different draws, each reproducible.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     return float(pb.sample("x", dist.Normal(0.0, 1.0)))
    >>> handlers.seed(model, rng_seed=1)() == handlers.seed(model, rng_seed=1)()
    True
    >>> seeded = handlers.seed(model, rng_seed=1)
    >>> seeded() == seeded()  # the generator advances
    False
    >>> with handlers.seed(rng_seed=1):
    ...     x = model()
    >>> x == handlers.seed(model, rng_seed=1)()
    True
    """

    def __init__(self, fn=None, rng_seed=None):
        self.rng = onp.random.default_rng(rng_seed)
        super().__init__(fn)

    def process_message(self, msg):
        # The innermost seed wins: one already set an rng for this message.
        if msg["type"] in ("sample", "plate") and msg["value"] is None \
                and msg["kwargs"]["rng"] is None:
            msg["kwargs"]["rng"] = self.rng


# Data enters a model from outside it: condition turns latent sites into
# observed ones without editing the model.
class condition(Messenger):
    """Observe sample sites: ``data[name]`` (or ``condition_fn(msg)`` when not
    None) becomes the site's value and the site counts as data.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     return pb.sample("x", dist.Normal(0.0, 1.0))
    >>> handlers.condition(model, data={"x": 2.0})()
    2.0
    >>> tr = handlers.trace(handlers.condition(model, data={"x": 2.0})).get_trace()
    >>> tr["x"]["is_observed"]
    True
    """

    def __init__(self, fn=None, data=None, condition_fn=None):
        if (data is None) == (condition_fn is None):
            raise ValueError("condition needs exactly one of data=... or condition_fn=...")
        self.data = data
        self.condition_fn = condition_fn
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        value = self.data.get(msg["name"]) if self.data is not None else self.condition_fn(msg)
        if value is not None:
            msg["value"] = value
            msg["is_observed"] = True


# The potential evaluates the model at values the sampler chose: substitute
# puts them in while the sites stay latent.
class substitute(Messenger):
    """Fix site values without making them data.

    ``data[name]`` (or ``substitute_fn(msg)`` when not None) replaces the value
    of sample, param, deterministic and plate sites; a sample site keeps its
    latent/observed status. This is how inference evaluates the log density
    at chosen values.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     return pb.sample("x", dist.Normal(0.0, 1.0))
    >>> tr = handlers.trace(handlers.substitute(model, data={"x": 2.0})).get_trace()
    >>> tr["x"]["value"], tr["x"]["is_observed"]
    (2.0, False)
    """

    def __init__(self, fn=None, data=None, substitute_fn=None):
        if (data is None) == (substitute_fn is None):
            raise ValueError("substitute needs exactly one of data=... or substitute_fn=...")
        self.data = data
        self.substitute_fn = substitute_fn
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] not in ("sample", "param", "deterministic", "plate"):
            return
        value = self.data.get(msg["name"]) if self.data is not None else self.substitute_fn(msg)
        if value is not None:
            msg["value"] = value


# A model run for bookkeeping (an autoguide reading the model's sites)
# must not leave sites in the trace of the run around it: block hides them.
class block(Messenger):
    """Hide sites from the handlers outside this one (a ``trace`` outside
    does not see them). By default every site is hidden.

    Parameters
    ----------
    hide_fn : callable, optional
        ``hide_fn(msg) -> bool``.
    hide : list of str, optional
        Names to hide.
    expose : list of str, optional
        Names to keep visible; everything else is hidden.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     pb.sample("x", dist.Normal(0.0, 1.0))
    ...     pb.sample("y", dist.Normal(0.0, 1.0))
    >>> seeded = handlers.seed(model, rng_seed=0)
    >>> list(handlers.trace(handlers.block(seeded, hide=["x"])).get_trace())
    ['y']
    >>> list(handlers.trace(handlers.block(seeded)).get_trace())
    []
    """

    def __init__(self, fn=None, hide_fn=None, hide=None, expose=None):
        if sum(x is not None for x in (hide_fn, hide, expose)) > 1:
            raise ValueError("block takes at most one of hide_fn, hide and expose")
        if hide_fn is not None:
            self.hide_fn = hide_fn
        elif hide is not None:
            hidden = set(hide)
            self.hide_fn = lambda msg: msg["name"] in hidden
        elif expose is not None:
            exposed = set(expose)
            self.hide_fn = lambda msg: msg["name"] not in exposed
        else:
            self.hide_fn = lambda msg: True
        super().__init__(fn)

    def process_message(self, msg):
        if self.hide_fn(msg):
            msg["stop"] = True


# The ELBO runs the model at the guide's draws: replay reuses a recorded
# trace's values at the model's latent sites.
class replay(Messenger):
    """Reuse the values of a recorded trace (e.g. a guide's) at the latent
    sample sites and plates of the same names; observed sites keep their data.

    Parameters
    ----------
    trace : mapping
        A trace from ``handlers.trace(...).get_trace(...)``. ``guide_trace``
        is accepted as a synonym (Pyro's older keyword).

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def guide():
    ...     pb.sample("x", dist.Normal(3.0, 0.1))
    >>> def model():
    ...     return pb.sample("x", dist.Normal(0.0, 1.0))
    >>> guide_tr = handlers.trace(handlers.seed(guide, rng_seed=0)).get_trace()
    >>> bool(handlers.replay(model, trace=guide_tr)() == guide_tr["x"]["value"])
    True
    """

    def __init__(self, fn=None, trace=None, guide_trace=None):
        if (trace is None) == (guide_trace is None):
            raise ValueError("replay needs one trace: replay(model, trace=...)")
        self.trace = trace if trace is not None else guide_trace
        super().__init__(fn)

    def process_message(self, msg):
        name = msg["name"]
        if msg["type"] not in ("sample", "plate") or name not in self.trace:
            return
        recorded = self.trace[name]
        if msg["type"] == "plate":
            msg["value"] = recorded["value"]
            return
        if msg["is_observed"]:
            return
        if recorded["type"] != "sample" or recorded["is_observed"]:
            raise SiteError(f"replay: site '{name}' is latent in the model but not a latent "
                            "sample site in the replayed trace")
        msg["value"] = recorded["value"]
        msg["infer"] = dict(recorded["infer"])


def _check_scale(value):
    if onp.any(onp.asarray(value) <= 0):
        raise ValueError(f"scale must be positive, got {value}")


# Subsampled data and tempered likelihoods weight log densities: scale
# multiplies them without the model knowing.
class scale(Messenger):
    """Multiply the log density of every sample site inside by ``scale``
    (a positive number or array broadcasting with the sites' batch shapes);
    scales of nested handlers and subsampled plates multiply.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     pb.sample("y", dist.Normal(0.0, 1.0), obs=0.0)
    >>> handlers.trace(handlers.scale(model, scale=10.0)).get_trace()["y"]["scale"]
    10.0
    >>> scaled = pb.log_density(handlers.scale(model, scale=10.0), None, {})
    >>> round(scaled / pb.log_density(model, None, {}), 12)
    10.0
    """

    def __init__(self, fn=None, scale=1.0):
        _check_scale(scale)
        self.scale = scale
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample":
            msg["scale"] = self.scale if msg["scale"] is None else self.scale * msg["scale"]


# Missing observations and ragged data drop some terms of a log density:
# mask keeps only the ones it marks.
class mask(Messenger):
    """Keep only the log density where ``mask`` is True (a bool or a boolean
    array broadcasting with the sites' batch shapes); nested masks combine
    with logical and.

    Examples
    --------
    >>> import numpy as np
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     with pb.plate("n", 3):
    ...         pb.sample("y", dist.Normal(0.0, 1.0), obs=np.zeros(3))
    >>> keep = np.array([True, False, True])
    >>> handlers.trace(handlers.mask(model, mask=keep)).get_trace()["y"]["mask"]
    array([ True, False,  True])
    """

    def __init__(self, fn=None, mask=True):
        # A traced mask is allowed: one computed from a site that Gibbs steps
        # sample is an input of the compiled potential.
        dtype = onp.asarray(getval(mask)).dtype
        if dtype != bool:
            raise TypeError(f"mask must be a bool or a boolean array, got dtype {dtype}")
        self.mask = mask
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample":
            msg["mask"] = (self.mask if msg["mask"] is None
                           else anp.logical_and(self.mask, msg["mask"]))


# A causal question asks what follows if a site were set, not observed:
# do intervenes downstream and adds nothing to the log density.
class do(Messenger):
    """Intervene: the model downstream of site ``name`` sees ``data[name]``.

    Unlike ``condition`` the intervened value is not an observation: it adds
    nothing to the log density. As in Pyro, the site itself is still sampled
    as usual (its own value is independent of the intervention), and the
    intervened copy is renamed ``f"{name}__CF"`` and hidden from handlers
    outside ``do``.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     x = pb.sample("x", dist.Normal(0.0, 1.0))
    ...     return pb.sample("y", dist.Normal(x, 0.001))
    >>> intervened = handlers.seed(handlers.do(model, data={"x": 10.0}), rng_seed=0)
    >>> round(float(intervened()))
    10
    >>> tr = handlers.trace(intervened).get_trace()
    >>> list(tr), bool(tr["x"]["value"] == 10.0)  # x itself is still drawn from its prior
    (['x', 'y'], False)
    """

    def __init__(self, fn=None, data=None):
        if data is None:
            raise ValueError("do needs data={site: value}")
        self.data = data
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["infer"].get("_intervened_by") is self:
            return
        intervention = self.data.get(msg["name"])
        if intervention is None:
            return
        # Send an untouched copy of the site through the whole stack again so
        # that the factual site is recorded; the marker keeps this handler
        # from intervening on the copy, and the fresh plate stack, scale and
        # mask let the handlers inside re-apply their effects once.
        factual = dict(msg, cond_indep_stack=[], scale=None, mask=None,
                       kwargs=dict(msg["kwargs"]), infer=dict(msg["infer"], _intervened_by=self))
        apply_stack(factual)
        msg["name"] = msg["name"] + "__CF"
        msg["value"] = intervention
        msg["is_observed"] = False
        msg["stop"] = True


# Prior predictive checks sample the sites a model observes: uncondition
# makes them latent again.
class uncondition(Messenger):
    """Make observed sample sites latent again, so they are sampled (the
    data is kept in ``msg["infer"]["obs"]``). Useful for prior predictive
    checks of a model with its data attached.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     return pb.sample("y", dist.Normal(0.0, 1.0), obs=5.0)
    >>> tr = handlers.trace(handlers.seed(handlers.uncondition(model), rng_seed=0)).get_trace()
    >>> tr["y"]["is_observed"], tr["y"]["infer"]["obs"], bool(tr["y"]["value"] == 5.0)
    (False, 5.0, False)
    """

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["is_observed"] and not msg["infer"].get("is_factor"):
            msg["infer"]["was_observed"] = True
            msg["infer"]["obs"] = msg["value"]
            msg["is_observed"] = False
            msg["value"] = None


# A param can be given a prior and inferred like any latent site: lift
# turns param sites into sample sites.
class lift(Messenger):
    """Turn ``param`` sites into latent ``sample`` sites with a prior.

    Parameters
    ----------
    prior : Distribution or dict of name -> Distribution
        One prior for every param, or priors by name (params not named stay params).

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     return pb.param("w", 1.0)
    >>> lifted = handlers.lift(model, prior=dist.Normal(0.0, 1.0))
    >>> handlers.trace(handlers.seed(lifted, rng_seed=0)).get_trace()["w"]["type"]
    'sample'
    """

    def __init__(self, fn=None, prior=None):
        if prior is None:
            raise ValueError("lift needs prior=... (a distribution or a dict of them)")
        self.prior = prior
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "param":
            return
        prior = self.prior.get(msg["name"]) if isinstance(self.prior, dict) else self.prior
        if prior is None:
            return
        msg.update(type="sample", fn=prior, args=(), kwargs={"rng": None}, value=None,
                   is_observed=False)


# One sub-model used twice would name its sites twice: scope prefixes them.
class scope(Messenger):
    """Prefix site and plate names: ``f"{prefix}{divider}{name}"``, so that
    a sub-model can be used twice in one model.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def submodel():
    ...     return pb.sample("x", dist.Normal(0.0, 1.0))
    >>> def model():
    ...     handlers.scope(submodel, prefix="a")()
    ...     handlers.scope(submodel, prefix="b")()
    >>> list(handlers.trace(handlers.seed(model, rng_seed=0)).get_trace())
    ['a/x', 'b/x']
    """

    def __init__(self, fn=None, prefix=None, divider="/"):
        if prefix is None:
            raise ValueError("scope needs prefix=...")
        self.prefix = prefix
        self.divider = divider
        super().__init__(fn)

    def _scoped(self, name):
        return f"{self.prefix}{self.divider}{name}"

    def process_message(self, msg):
        msg["name"] = self._scoped(msg["name"])
        # Only the frames of plates inside this scope are in the stack so far.
        msg["cond_indep_stack"] = [CondIndepStackFrame(self._scoped(f.name), f.dim, f.size)
                                   for f in msg["cond_indep_stack"]]


# A funnel geometry (a scale and the values it scales) defeats NUTS: reparam
# rewrites a site into auxiliary sites that sample well.
class reparam(Messenger):
    """Reparameterise sample sites: ``config`` maps a site name to a
    reparameteriser (e.g. ``probad.infer.reparam.LocScaleReparam(0)``), or is a
    function ``msg -> reparameteriser or None``.

    The reparameteriser samples new auxiliary sites and returns the original
    site's value, which is then recorded as a deterministic site.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> from probad.infer.reparam import LocScaleReparam
    >>> def model():
    ...     return pb.sample("theta", dist.Normal(1.0, 2.0))
    >>> decentered = handlers.reparam(model, config={"theta": LocScaleReparam(0)})
    >>> tr = handlers.trace(handlers.seed(decentered, rng_seed=0)).get_trace()
    >>> [(name, site["type"]) for name, site in tr.items()]
    [('theta_decentered', 'sample'), ('theta', 'deterministic')]
    >>> bool(tr["theta"]["value"] == 1.0 + 2.0 * tr["theta_decentered"]["value"])
    True
    """

    def __init__(self, fn=None, config=None):
        if config is None:
            raise ValueError("reparam needs config={site: reparameteriser}")
        self.config = config
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample":
            return
        reparameteriser = (self.config.get(msg["name"]) if isinstance(self.config, dict)
                           else self.config(msg))
        if reparameteriser is None:
            return
        if msg["is_observed"]:
            raise SiteError(f"reparam: site '{msg['name']}' is observed; only latent sites "
                            "can be reparameterised")
        value = reparameteriser(msg["name"], msg["fn"])
        msg.update(type="deterministic", fn=None, value=value, is_observed=False,
                   scale=None, mask=None)


# Discrete latent sites have no gradient: config_enumerate marks them to be
# summed out before the kernels see the potential.
class config_enumerate(Messenger):
    """Mark every latent sample site with a finite support for enumeration
    (``infer={"enumerate": default}``), unless the site says otherwise.

    ``pb.hmc(handlers.config_enumerate(model), data)`` then sums those sites
    out exactly; ``pb.infer_discrete`` recovers their posterior.

    Parameters
    ----------
    default : {"parallel"}
        The enumeration strategy.

    Examples
    --------
    >>> import probad as pb
    >>> from probad import distributions as dist, handlers
    >>> def model():
    ...     pb.sample("z", dist.Bernoulli(probs=0.3))
    >>> marked = handlers.config_enumerate(model)
    >>> handlers.trace(handlers.seed(marked, rng_seed=0)).get_trace()["z"]["infer"]
    {'enumerate': 'parallel'}
    """

    def __init__(self, fn=None, default="parallel"):
        if default != "parallel":
            raise ValueError(f"config_enumerate: the only strategy is 'parallel', got {default!r}")
        self.default = default
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and not msg["is_observed"] \
                and msg["fn"].has_enumerate_support:
            msg["infer"].setdefault("enumerate", self.default)
