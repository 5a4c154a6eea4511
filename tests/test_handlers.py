"""Effect handlers: each one's semantics, and how they compose."""
import doctest

import numpy as onp
import pytest

from probad import distributions as dist
from probad import handlers
from probad.infer.density import log_density
from probad.infer.reparam import LocScaleReparam
from probad.primitives import _active_handlers, deterministic, param, plate, sample


def chain():
    """x -> y -> z, with z observable."""
    x = sample("x", dist.Normal(0.0, 1.0))
    y = sample("y", dist.Normal(x, 1.0))
    z = sample("z", dist.Normal(y, 0.5), obs=None)
    return x, y, z


def normal_lp(value, loc, scale):
    return float(dist.Normal(loc, scale).log_prob(value))


def test_trace_records_sites_in_execution_order():
    tr = handlers.trace(handlers.seed(chain, 0)).get_trace()
    assert list(tr) == ["x", "y", "z"]
    with handlers.trace() as tr2, handlers.seed(rng_seed=0):
        chain()
    assert list(tr2) == ["x", "y", "z"]
    assert all(tr[k]["value"] == tr2[k]["value"] for k in tr)
    assert _active_handlers() == []


def test_duplicate_site_names_are_an_error():
    def model():
        sample("x", dist.Normal(0.0, 1.0))
        sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="two sites are named 'x'.*unique"):
        handlers.trace(handlers.seed(model, 0)).get_trace()


def test_seed_determinism_and_forms():
    first = handlers.seed(chain, rng_seed=7)()
    assert first == handlers.seed(chain, rng_seed=7)()
    assert first != handlers.seed(chain, rng_seed=8)()
    seeded = handlers.seed(chain, 7)
    assert seeded() != seeded()  # one generator, advancing

    @handlers.seed(rng_seed=7)
    def decorated():
        return chain()

    assert decorated() == first
    with handlers.seed(rng_seed=7):
        assert chain() == first


def test_innermost_seed_wins():
    inner = handlers.seed(chain, 1)
    assert handlers.seed(inner, 2)() == handlers.seed(chain, 1)()


def test_seed_accepts_a_generator():
    rng = onp.random.default_rng(5)
    assert handlers.seed(chain, rng)() == handlers.seed(chain, onp.random.default_rng(5))()


def test_condition_observes_and_substitute_does_not():
    conditioned = handlers.trace(handlers.seed(handlers.condition(chain, data={"y": 1.0}), 0))
    tr = conditioned.get_trace()
    assert tr["y"]["value"] == 1.0 and tr["y"]["is_observed"]
    assert tr["z"]["fn"].loc == 1.0  # downstream sees the data
    substituted = handlers.trace(handlers.seed(handlers.substitute(chain, data={"y": 1.0}), 0))
    tr = substituted.get_trace()
    assert tr["y"]["value"] == 1.0 and not tr["y"]["is_observed"]
    # condition_fn / substitute_fn forms
    tr = handlers.trace(handlers.seed(handlers.condition(
        chain, condition_fn=lambda msg: 2.0 if msg["name"] == "x" else None), 0)).get_trace()
    assert tr["x"]["value"] == 2.0 and tr["x"]["is_observed"] and not tr["y"]["is_observed"]

    @handlers.condition(data={"z": 0.25})
    def decorated():
        return chain()

    assert handlers.seed(decorated, 0)()[2] == 0.25


def test_outer_handler_has_the_last_word():
    # condition outside substitute: the conditioned value wins and is observed
    tr = handlers.trace(handlers.condition(handlers.substitute(chain, data={"x": 1.0, "y": 0.0,
                                                                            "z": 0.0}),
                                           data={"x": 2.0})).get_trace()
    assert tr["x"]["value"] == 2.0 and tr["x"]["is_observed"]
    # substitute outside condition: substituted value, still observed
    tr = handlers.trace(handlers.substitute(handlers.condition(chain, data={"x": 2.0}),
                                            data={"x": 1.0, "y": 0.0, "z": 0.0})).get_trace()
    assert tr["x"]["value"] == 1.0 and tr["x"]["is_observed"]


def test_handler_arguments_are_checked():
    with pytest.raises(ValueError, match="exactly one"):
        handlers.condition(chain)
    with pytest.raises(ValueError, match="exactly one"):
        handlers.substitute(chain, data={}, substitute_fn=lambda m: None)
    with pytest.raises(ValueError, match="at most one"):
        handlers.block(chain, hide=["x"], expose=["y"])
    with pytest.raises(ValueError, match="scale must be positive"):
        handlers.scale(chain, scale=-1.0)
    with pytest.raises(TypeError, match="boolean"):
        handlers.mask(chain, mask=onp.array([1.0]))


def test_block_hides_sites_from_outer_handlers():
    def traced(blocked):
        return list(handlers.trace(handlers.seed(blocked, 0)).get_trace())

    assert traced(handlers.block(chain)) == []
    assert traced(handlers.block(chain, hide=["x"])) == ["y", "z"]
    assert traced(handlers.block(chain, expose=["x"])) == ["x"]
    assert traced(handlers.block(chain, hide_fn=lambda msg: msg["name"] == "z")) == ["x", "y"]


def test_block_also_hides_sites_from_outer_seed():
    # the blocked site draws from the global generator, so only x follows the seed
    a = handlers.seed(handlers.block(chain, hide=["y"]), 0)()
    b = handlers.seed(handlers.block(chain, hide=["y"]), 0)()
    assert a[0] == b[0] and a[1] != b[1]


def test_replay_a_guide_trace_into_the_model():
    def guide():
        sample("x", dist.Normal(3.0, 0.1))
        sample("y", dist.Normal(-3.0, 0.1))

    guide_tr = handlers.trace(handlers.seed(guide, 0)).get_trace()
    conditioned = handlers.condition(chain, data={"z": 0.5})
    tr = handlers.trace(handlers.seed(handlers.replay(conditioned, trace=guide_tr), 1)).get_trace()
    assert tr["x"]["value"] == guide_tr["x"]["value"]
    assert tr["y"]["value"] == guide_tr["y"]["value"]
    assert tr["y"]["fn"].loc == guide_tr["x"]["value"]
    assert tr["z"]["value"] == 0.5  # observed sites keep their data
    # guide_trace= is a synonym; a guide site that is observed cannot be replayed
    handlers.replay(chain, guide_trace=guide_tr)
    bad = handlers.trace(handlers.condition(guide, data={"x": 0.0})).get_trace()
    with pytest.raises(ValueError, match="site 'x' is latent in the model"):
        handlers.seed(handlers.replay(chain, trace=bad), 0)()


def test_scale_and_mask_change_the_log_density():
    params = {"x": 0.3, "y": -0.2, "z": 0.1}
    base = log_density(chain, None, params)
    assert log_density(handlers.scale(chain, scale=2.5), None, params) == pytest.approx(2.5 * base)
    assert log_density(handlers.scale(handlers.scale(chain, scale=2.0), scale=3.0), None,
                       params) == pytest.approx(6.0 * base)
    assert log_density(handlers.mask(chain, mask=False), None, params) == 0.0
    assert log_density(handlers.mask(chain, mask=True), None, params) == pytest.approx(base)

    def partly_masked():
        with plate("i", 3), handlers.mask(mask=onp.array([True, False, True])):
            sample("w", dist.Normal(0.0, 1.0))

    w = onp.array([0.5, 100.0, -0.5])
    assert log_density(partly_masked, None, {"w": w}) == pytest.approx(
        normal_lp(0.5, 0, 1) + normal_lp(-0.5, 0, 1))


def test_do_intervenes_without_observing():
    intervened = handlers.do(chain, data={"y": 5.0})
    tr = handlers.trace(handlers.seed(intervened, 0)).get_trace()
    # the site itself is sampled as usual and is latent ...
    assert not tr["y"]["is_observed"] and tr["y"]["value"] != 5.0
    assert "y__CF" not in tr
    # ... but everything downstream sees the intervention
    assert tr["z"]["fn"].loc == 5.0
    # the log density has no term for y = 5, unlike under condition
    params = {"x": 0.1, "y": 0.4, "z": 4.0}
    expected = (normal_lp(0.1, 0, 1) + normal_lp(0.4, 0.1, 1.0) + normal_lp(4.0, 5.0, 0.5))
    assert log_density(intervened, None, params) == pytest.approx(expected)
    conditioned = handlers.condition(chain, data={"y": 5.0})
    assert log_density(conditioned, None, {"x": 0.1, "z": 4.0}) == pytest.approx(
        normal_lp(0.1, 0, 1) + normal_lp(5.0, 0.1, 1.0) + normal_lp(4.0, 5.0, 0.5))
    # a trace inside do sees the renamed intervened copy
    with handlers.seed(rng_seed=0), handlers.do(data={"y": 5.0}), handlers.trace() as inner:
        chain()
    assert inner["y__CF"]["value"] == 5.0 and not inner["y__CF"]["is_observed"]


def test_do_inside_a_plate_keeps_the_plate_once():
    def model():
        with plate("i", 3):
            a = sample("a", dist.Normal(0.0, 1.0))
            return sample("b", dist.Normal(a, 1.0))

    tr = handlers.trace(handlers.seed(handlers.do(model, data={"a": onp.zeros(3)}), 0)).get_trace()
    assert [f.name for f in tr["a"]["cond_indep_stack"]] == ["i"]
    assert tr["a"]["value"].shape == (3,)


def test_uncondition_samples_observed_sites():
    def model():
        x = sample("x", dist.Normal(0.0, 1.0))
        return sample("y", dist.Normal(x, 1.0), obs=10.0)

    tr = handlers.trace(handlers.seed(handlers.uncondition(model), 0)).get_trace()
    assert not tr["y"]["is_observed"] and tr["y"]["value"] != 10.0
    assert tr["y"]["infer"]["obs"] == 10.0 and tr["y"]["infer"]["was_observed"]


def test_lift_turns_params_into_sample_sites():
    def model():
        w = param("w", 1.0)
        b = param("b", 2.0)
        return w, b

    prior = dist.Normal(0.0, 1.0)
    tr = handlers.trace(handlers.seed(handlers.lift(model, prior=prior), 0)).get_trace()
    assert tr["w"]["type"] == tr["b"]["type"] == "sample" and tr["w"]["fn"] is prior
    assert tr["w"]["value"] != 1.0
    tr = handlers.trace(handlers.seed(handlers.lift(model, prior={"w": prior}), 0)).get_trace()
    assert tr["w"]["type"] == "sample" and tr["b"]["type"] == "param" and tr["b"]["value"] == 2.0


def test_scope_prefixes_sites_and_plates():
    def sub():
        with plate("p", 2):
            sample("x", dist.Normal(0.0, 1.0))

    def model():
        handlers.scope(sub, prefix="a")()
        with handlers.scope(prefix="b"):
            handlers.scope(sub, prefix="c", divider=".")()

    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    assert [k for k, m in tr.items() if m["type"] == "sample"] == ["a/x", "b/c.x"]
    assert [f.name for f in tr["a/x"]["cond_indep_stack"]] == ["a/p"]
    assert [f.name for f in tr["b/c.x"]["cond_indep_stack"]] == ["b/c.p"]


def _school_model(family):
    def model():
        mu = sample("mu", dist.Normal(0.0, 5.0))
        tau = sample("tau", dist.HalfNormal(5.0))
        with plate("school", 4):
            return sample("theta", family(mu, tau))

    return model


@pytest.mark.parametrize("family", [
    dist.Normal, dist.Cauchy, dist.Laplace, lambda loc, scale: dist.StudentT(3.0, loc, scale)])
def test_loc_scale_reparam_decentres(family):
    model = handlers.reparam(_school_model(family), config={"theta": LocScaleReparam(0)})
    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    assert tr["theta"]["type"] == "deterministic"
    decentered = tr["theta_decentered"]
    assert decentered["type"] == "sample" and not decentered["is_observed"]
    assert [f.name for f in decentered["cond_indep_stack"]] == ["school"]
    base = decentered["fn"].base_dist
    assert onp.all(base.loc == 0.0) and onp.all(base.scale == 1.0)
    if isinstance(base, dist.StudentT):
        assert onp.all(base.df == 3.0)
    mu, tau = tr["mu"]["value"], tr["tau"]["value"]
    assert onp.allclose(tr["theta"]["value"], mu + tau * decentered["value"])


def test_loc_scale_reparam_partial_centring_and_errors():
    model = handlers.reparam(_school_model(dist.Normal), config={"theta": LocScaleReparam(0.5)})
    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    mu, tau = tr["mu"]["value"], tr["tau"]["value"]
    base = tr["theta_decentered"]["fn"].base_dist
    assert onp.allclose(base.loc, 0.5 * mu) and onp.allclose(base.scale, tau**0.5)
    assert onp.allclose(tr["theta"]["value"],
                        mu + tau**0.5 * (tr["theta_decentered"]["value"] - 0.5 * mu))
    gamma = handlers.reparam(lambda: sample("g", dist.Gamma(2.0, 1.0)),
                             config={"g": LocScaleReparam()})
    with pytest.raises(ValueError, match="site 'g' has a Gamma"):
        handlers.seed(gamma, 0)()
    observed = handlers.reparam(lambda: sample("o", dist.Normal(0.0, 1.0), obs=1.0),
                                config=lambda msg: LocScaleReparam())
    with pytest.raises(ValueError, match="site 'o' is observed"):
        observed()


def test_composition_order_of_seed_trace_and_condition():
    a = handlers.trace(handlers.condition(handlers.seed(chain, 3), data={"y": 0.5})).get_trace()
    b = handlers.trace(handlers.seed(handlers.condition(chain, data={"y": 0.5}), 3)).get_trace()
    assert all(a[k]["value"] == b[k]["value"] for k in ("x", "y", "z"))


def test_deterministic_sites_can_be_substituted_and_blocked():
    def model():
        x = sample("x", dist.Normal(0.0, 1.0))
        return deterministic("d", x + 1.0)

    assert handlers.substitute(handlers.seed(model, 0), data={"d": 42.0})() == 42.0
    tr = handlers.trace(handlers.block(handlers.seed(model, 0), hide=["d"])).get_trace()
    assert list(tr) == ["x"]


# ------------------------------------------------- every handler, three forms
def _small_model():
    w = param("w", 0.5)
    x = sample("x", dist.Normal(w, 1.0))
    with plate("p", 2):
        y = sample("y", dist.Normal(x, 1.0))
    sample("z", dist.Normal(y.sum(), 1.0), obs=0.3)
    return x


_GUIDE_TRACE = handlers.trace(handlers.seed(_small_model, 5)).get_trace()

HANDLER_ARGUMENTS = {
    "trace": {},
    "seed": {"rng_seed": 1},
    "condition": {"data": {"x": 0.2}},
    "substitute": {"data": {"x": 0.2}},
    "block": {"hide": ["z"]},  # a latent site would escape the outer seed
    "replay": {"trace": _GUIDE_TRACE},
    "scale": {"scale": 2.0},
    "mask": {"mask": onp.array([True, False])},
    "do": {"data": {"x": 0.2}},
    "uncondition": {},
    "lift": {"prior": dist.Normal(0.0, 1.0)},
    "scope": {"prefix": "m"},
    "reparam": {"config": {"y": LocScaleReparam(0.0)}},
    "config_enumerate": {},
}


def _as_context_manager(handler, kwargs):
    def run():
        with handler(**kwargs):
            return _small_model()

    return run


def _as_decorator(handler, kwargs):
    @handler(**kwargs)
    def run():
        return _small_model()

    return run


def _as_wrapper(handler, kwargs):
    return handler(_small_model, **kwargs)


def _comparable(model_trace):
    return [(name, msg["type"], type(msg["fn"]).__name__, onp.asarray(msg["value"]).tolist(),
             msg["is_observed"], onp.asarray(msg["scale"]).tolist(),
             onp.asarray(msg["mask"]).tolist(), msg["cond_indep_stack"])
            for name, msg in model_trace.items()]


def test_every_handler_is_listed():
    assert set(HANDLER_ARGUMENTS) == set(handlers.__all__)


@pytest.mark.parametrize("form", [_as_decorator, _as_wrapper], ids=["decorator", "wrapper"])
@pytest.mark.parametrize("name", list(HANDLER_ARGUMENTS))
def test_every_handler_traces_the_same_in_every_form(name, form):
    # Reference: the handler as a context manager, under one outer seed.
    handler, kwargs = getattr(handlers, name), HANDLER_ARGUMENTS[name]
    expected = handlers.trace(handlers.seed(_as_context_manager(handler, kwargs), 0)).get_trace()
    actual = handlers.trace(handlers.seed(form(handler, kwargs), 0)).get_trace()
    assert _comparable(actual) == _comparable(expected)
    assert _active_handlers() == []


def test_each_thread_has_its_own_handler_stack():
    # Two threads trace the same model in lockstep: the barrier makes each
    # sample its sites while the other is inside its trace. With one stack
    # shared by the threads, a trace saw the other thread's sites ("two
    # sites are named 'mu'").
    import threading

    barrier = threading.Barrier(2, timeout=10)

    def model():
        barrier.wait()
        mu = sample("mu", dist.Normal(0.0, 1.0))
        barrier.wait()
        sample("y", dist.Normal(mu, 1.0), obs=1.0)
        barrier.wait()

    traces, errors = {}, []

    def run(seed):
        try:
            traces[seed] = handlers.trace(handlers.seed(model, seed)).get_trace()
        except Exception as exc:  # noqa: BLE001  (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for seed in (0, 1):
        assert list(traces[seed]) == ["mu", "y"]
        alone = handlers.trace(handlers.seed(lambda: sample("mu", dist.Normal(0.0, 1.0)),
                                             seed)).get_trace()
        assert traces[seed]["mu"]["value"] == alone["mu"]["value"]
    assert _active_handlers() == []


def test_chains_on_a_thread_pool_give_the_sequential_draws():
    from concurrent.futures import ThreadPoolExecutor

    import probad as pb

    def model(y):
        mu = sample("mu", dist.Normal(0.0, 5.0))
        with plate("n", len(y)):
            sample("y", dist.Normal(mu, 1.0), obs=y)

    data = {"y": onp.array([0.3, -0.2, 1.1])}
    options = dict(draws=30, tune=30, chains=2, seed=3, progress=False)
    with ThreadPoolExecutor(max_workers=2) as pool:
        threaded = pb.hmc(model, data, executor=pool, **options)
    sequential = pb.hmc(model, data, **options)
    onp.testing.assert_array_equal(threaded.posterior["mu"].values,
                                   sequential.posterior["mu"].values)


# ------------------------------------------------------- the docs' examples
_EXAMPLES = {test.name.rsplit(".", 1)[-1]: test
             for test in doctest.DocTestFinder().find(handlers) if test.examples}


@pytest.mark.parametrize("name", handlers.__all__)
def test_each_handler_has_a_runnable_example_in_its_docstring(name):
    # numpyro's handlers carry one each; running them here keeps them true.
    assert name in _EXAMPLES, f"handlers.{name} has no Examples section with a doctest"
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    result = runner.run(_EXAMPLES[name])
    assert result.failed == 0 and result.attempted >= 3, result
