"""probad.ad.scipy.signal.convolve: values against scipy.signal.convolve and
an einsum reference for the tensor form, derivatives by check_grads (both
modes, second order)."""
import numpy as onp
import pytest
import scipy.signal as osig

from probad.ad.scipy.signal import convolve
from probad.ad.test_util import check_grads

MODES = ["fwd", "rev"]


def randn(*shape):
    return onp.random.default_rng(0).normal(size=shape)


SHAPES = [((6,), (3,)), ((3,), (6,)), ((4, 5), (2, 3)), ((2, 5), (3, 2)), ((3, 4, 2), (2, 2, 2))]


@pytest.mark.parametrize("mode", ["full", "valid", "same"])
@pytest.mark.parametrize("shape_a, shape_b", SHAPES, ids=str)
def test_matches_scipy(shape_a, shape_b, mode):
    a, b = randn(*shape_a), randn(*shape_b) + 1
    try:
        expected = osig.convolve(a, b, mode=mode, method="direct")
    except ValueError:
        with pytest.raises(ValueError, match="at least as large"):
            convolve(a, b, mode)
        return
    onp.testing.assert_allclose(convolve(a, b, mode), expected, atol=1e-12)
    check_grads(lambda a, b: convolve(a, b, mode), modes=MODES, order=2)(a, b)


def test_tensor_convolution_with_contracted_and_outer_axes():
    # A batch of 2 signals with 3 channels, 4 filters over those channels.
    signals, filters = randn(2, 3, 5), randn(3, 4, 2)
    out = convolve(signals, filters, axes=([2], [2]), dot_axes=([1], [0]), mode="valid")
    windows = onp.lib.stride_tricks.sliding_window_view(signals, 2, axis=2)
    expected = onp.einsum("bcnk,cok->bon", windows, filters[:, :, ::-1])
    onp.testing.assert_allclose(out, expected, atol=1e-12)
    for mode in ("full", "valid", "same"):
        check_grads(lambda s, f: convolve(s, f, axes=([2], [2]), dot_axes=([1], [0]), mode=mode),
                    modes=MODES, order=2)(signals, filters)


def test_axes_in_any_order():
    a, b = randn(4, 3, 5), randn(2, 3, 2, 4)
    out = convolve(a, b, axes=([0, 2], [3, 0]), dot_axes=([1], [1]))
    # Reference: move axes into place and convolve channel by channel.
    expected = sum(osig.convolve(a[:, c, :][:, :, None], onp.transpose(b[:, c], (2, 0, 1)), method="direct")
                   for c in range(3))
    onp.testing.assert_allclose(onp.moveaxis(out, 0, -1), expected, atol=1e-12)
    check_grads(lambda a, b: convolve(a, b, axes=([0, 2], [3, 0]), dot_axes=([1], [1])),
                modes=MODES, order=2)(a, b)


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        convolve(randn(3), randn(2), "circular")
