"""Primitives: sample/param/deterministic/factor as a forward simulator and
as messages, and plates (broadcasting, dims, nesting, subsampling)."""
import numpy as onp
import pytest

from probad import distributions as dist
from probad import handlers
from probad.infer.density import log_density
from probad.primitives import (CondIndepStackFrame, Messenger, deterministic, factor, param,
                               plate, plate_stack, sample, set_rng_seed)


def test_sample_without_handlers_is_a_forward_simulator():
    set_rng_seed(0)
    first = [sample("x", dist.Normal(0.0, 1.0)) for _ in range(3)]
    set_rng_seed(0)
    again = [sample("x", dist.Normal(0.0, 1.0)) for _ in range(3)]
    assert onp.allclose(first, again)
    assert len(set(onp.round(first, 12))) == 3  # successive draws differ


def test_sample_returns_obs_when_observed():
    obs = onp.array([1.0, 2.0])
    assert sample("x", dist.Normal(0.0, 1.0), obs=obs) is obs


def test_messages_carry_the_documented_keys():
    def model():
        sample("x", dist.Normal(0.0, 1.0), infer={"note": 1})

    msg = handlers.trace(handlers.seed(model, 0)).get_trace()["x"]
    assert msg["type"] == "sample" and msg["name"] == "x"
    assert msg["is_observed"] is False and msg["scale"] is None and msg["mask"] is None
    assert msg["cond_indep_stack"] == [] and msg["infer"] == {"note": 1}
    assert isinstance(msg["fn"], dist.Normal)


def test_param_deterministic_and_factor():
    def model():
        w = param("w", onp.ones(2), constraint=dist.constraints.positive)
        x = sample("x", dist.Normal(0.0, 1.0))
        d = deterministic("d", 2.0 * x)
        factor("f", -1.5)
        return w, x, d

    tr = handlers.trace(handlers.seed(model, 1)).get_trace()
    w, x, d = handlers.seed(model, 1)()
    assert onp.array_equal(w, onp.ones(2))
    assert tr["w"]["type"] == "param"
    assert tr["w"]["kwargs"]["constraint"] is dist.constraints.positive
    assert tr["d"]["type"] == "deterministic" and d == 2.0 * x
    assert tr["f"]["is_observed"] and isinstance(tr["f"]["fn"], dist.Unit)
    # the factor adds its log weight to the log joint
    expected = float(dist.Normal(0.0, 1.0).log_prob(0.3)) - 1.5
    assert log_density(model, None, {"x": 0.3}) == pytest.approx(expected)


def test_plate_broadcasts_and_records_its_frame():
    def model():
        with plate("school", 8) as idx:
            x = sample("x", dist.Normal(0.0, 1.0))
        return idx, x

    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    idx, x = handlers.seed(model, 0)()
    assert onp.array_equal(idx, onp.arange(8))
    assert x.shape == (8,) and tr["x"]["fn"].batch_shape == (8,)
    assert tr["x"]["cond_indep_stack"] == [CondIndepStackFrame("school", -1, 8)]
    assert tr["school"]["type"] == "plate"


def test_nested_plates_allocate_dims_leftwards():
    def model():
        with plate("outer", 3):
            with plate("inner", 4):
                x = sample("x", dist.Normal(0.0, 1.0))
            y = sample("y", dist.Normal(onp.zeros(3), 1.0))
        return x, y

    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    assert tr["x"]["value"].shape == (4, 3)
    assert {f.name: f.dim for f in tr["x"]["cond_indep_stack"]} == {"outer": -1, "inner": -2}
    assert tr["y"]["value"].shape == (3,)


def test_plate_with_explicit_dim_and_existing_batch_dims():
    def model():
        with plate("rows", 4, dim=-2):
            return sample("x", dist.Normal(onp.zeros(3), 1.0))

    assert handlers.seed(model, 0)().shape == (4, 3)


def test_plate_dim_already_taken_is_an_error():
    def model():
        with plate("a", 2):
            with plate("b", 3, dim=-1):
                pass

    with pytest.raises(ValueError, match="plate 'b' asks for dim -1.*'a'"):
        model()


def test_shape_clash_between_site_and_plate_names_both():
    def model():
        with plate("school", 8):
            sample("theta", dist.Normal(onp.zeros(7), 1.0))

    with pytest.raises(ValueError, match=r"site 'theta'.*\(7,\).*plate 'school' \(size 8"):
        handlers.seed(model, 0)()


def test_plate_stack():
    def model():
        with plate_stack("p", (2, 3, 4)):
            return sample("x", dist.Normal(0.0, 1.0))

    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    assert tr["x"]["value"].shape == (2, 3, 4)
    assert {f.name: f.dim for f in tr["x"]["cond_indep_stack"]} == {"p_0": -1, "p_1": -2,
                                                                     "p_2": -3}


def test_subsampling_scales_the_log_density_and_exposes_indices():
    data = onp.linspace(-1.0, 1.0, 100)

    def model():
        loc = sample("loc", dist.Normal(0.0, 1.0))
        with plate("obs", 100, subsample_size=10) as idx:
            sample("y", dist.Normal(loc, 1.0), obs=data[idx])
        return idx

    idx = handlers.seed(model, 3)()
    assert len(idx) == 10 and len(set(idx)) == 10 and idx.min() >= 0 and idx.max() < 100
    assert onp.array_equal(idx, handlers.seed(model, 3)())  # the seed fixes the subsample
    tr = handlers.trace(handlers.seed(model, 3)).get_trace()
    assert tr["y"]["scale"] == pytest.approx(10.0)
    assert tr["y"]["cond_indep_stack"][0].size == 10
    expected = (float(dist.Normal(0.0, 1.0).log_prob(0.2))
                + 10.0 * float(onp.sum(dist.Normal(0.2, 1.0).log_prob(data[idx]))))
    replayed = handlers.replay(model, trace=tr)  # same subsample as the trace
    assert log_density(replayed, None, {"loc": 0.2}) == pytest.approx(expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, "size must be a positive"),
    ({"size": 5, "dim": 0}, "must be negative"),
    ({"size": 5, "subsample_size": 6}, r"subsample_size must be in \[1, 5\]"),
])
def test_plate_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plate("p", **kwargs)


def test_plate_takes_dim_third_and_subsample_size_by_keyword():
    # The contract's plate(name, size, dim=None); NumPyro's positional
    # subsample_size lands on dim and is refused with the fix.
    with handlers.trace() as tr, plate("p", 5, -2):
        sample("x", dist.Normal(0.0, 1.0))
    assert tr["x"]["cond_indep_stack"][0].dim == -2
    with pytest.raises(ValueError, match=r"got 3 \(to subsample, pass plate\(name, size, "
                                         r"subsample_size=n\)\)"):
        plate("p", 5, 3)


def test_handler_stack_is_cleaned_up_after_an_exception():
    from probad.primitives import _active_handlers

    def model():
        with plate("p", 2):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handlers.trace(handlers.seed(model, 0)).get_trace()
    assert _active_handlers() == []


def test_messenger_used_as_decorator_needs_one_function():
    with pytest.raises(TypeError, match="no function to run"):
        Messenger()(1, 2)


def test_sample_of_something_that_is_not_a_distribution_names_the_site():
    with pytest.raises(TypeError, match=r"site 'x': pb.sample needs a distribution as its second "
                                        r"argument, got float 3.0"):
        sample("x", 3.0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(size=5.7), ValueError, r"plate 'p': size must be a whole number, got 5.7"),
    (dict(size="5"), TypeError, r"plate 'p': size must be an integer, got str '5'"),
    (dict(size=10, subsample_size=2.5), ValueError, r"subsample_size must be a whole number"),
])
def test_plate_sizes_must_be_whole_numbers(kwargs, error, match):
    with pytest.raises(error, match=match):
        plate("p", **kwargs)


def test_whole_plate_sizes_of_any_number_type_are_accepted():
    for size in (5, 5.0, onp.int64(5), onp.float32(5.0), onp.array(5)):
        with handlers.trace() as tr, plate("p", size):
            sample("x", dist.Normal(0.0, 1.0))
        assert tr["x"]["fn"].batch_shape == (5,)


def test_observed_lists_become_arrays_and_obs_none_is_marked():
    def model(y=None):
        return sample("y", dist.Normal(0.0, 1.0), obs=y)

    tr = handlers.trace(handlers.seed(model, 0)).get_trace(y=[1.0, 2.0])
    assert isinstance(tr["y"]["value"], onp.ndarray) and tr["y"]["is_observed"]
    # obs=None: a site written as data, given none (latent, and marked so)
    tr = handlers.trace(handlers.seed(model, 0)).get_trace()
    assert not tr["y"]["is_observed"] and tr["y"]["infer"] == {"obs_is_none": True}
    # no obs at all: latent by design, not marked
    tr = handlers.trace(handlers.seed(lambda: sample("z", dist.Normal(0.0, 1.0)), 0)).get_trace()
    assert tr["z"]["infer"] == {}
