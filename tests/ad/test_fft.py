"""probad.ad.numpy.fft: values against numpy and derivatives by check_grads
(both modes, second order) for every transform, Hermitian ones included,
with padding/truncation (``n``/``s``), axes, every ``norm``, real and
complex input."""
import numpy as onp
import pytest

import probad.ad.numpy as np
from probad.ad import grad
from probad.ad.test_util import check_grads

F = np.fft
MODES = ["fwd", "rev"]
NORMS = [None, "ortho", "forward"]


def randn(*shape, complex_=False):
    r = onp.random.default_rng(0)
    x = r.normal(size=shape)
    return x + 1j * r.normal(size=shape) if complex_ else x


def check(fun, *args):
    check_grads(fun, modes=MODES, order=2)(*args)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ["fft", "ifft"])
@pytest.mark.parametrize("n", [None, 3, 7])
@pytest.mark.parametrize("complex_", [False, True])
def test_complex_transforms_1d(name, n, norm, complex_):
    x = randn(2, 5, complex_=complex_)
    fun = getattr(F, name)
    onp.testing.assert_allclose(fun(x, n, 0 if n == 3 else -1, norm),
                                getattr(onp.fft, name)(x, n, 0 if n == 3 else -1, norm))
    check(lambda x: fun(x, n=n, axis=-1, norm=norm), x)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ["fftn", "ifftn", "fft2", "ifft2"])
@pytest.mark.parametrize("s, axes", [(None, None), ((3, 6), (1, 2)), ((2, 5), (0, 2)), (None, (-1, 0))],
                         ids=str)
def test_complex_transforms_nd(name, s, axes, norm):
    x = randn(3, 2, 4, complex_=True)
    fun = getattr(F, name)
    if name.endswith("2") and axes is None:
        axes = (-2, -1)
    onp.testing.assert_allclose(fun(x, s, axes, norm), getattr(onp.fft, name)(x, s, axes, norm))
    check(lambda x: fun(x, s, axes, norm), x)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("n", [None, 4, 7, 9])
def test_rfft_and_irfft(n, norm):
    x = randn(3, 6)
    onp.testing.assert_allclose(F.rfft(x, n, norm=norm), onp.fft.rfft(x, n, norm=norm))
    check(lambda x: F.rfft(x, n, norm=norm), x)
    spectrum = randn(3, 4, complex_=True)
    onp.testing.assert_allclose(F.irfft(spectrum, n, norm=norm), onp.fft.irfft(spectrum, n, norm=norm))
    check(lambda z: F.irfft(z, n, norm=norm), spectrum)
    check(lambda x: F.irfft(x, n, axis=0, norm=norm), x)  # real input to irfft


@pytest.mark.parametrize("norm", NORMS + ["backward"])
@pytest.mark.parametrize("n", [None, 4, 7, 9])
def test_hfft_and_ihfft(n, norm):
    spectrum = randn(3, 4, complex_=True)
    onp.testing.assert_allclose(F.hfft(spectrum, n, norm=norm), onp.fft.hfft(spectrum, n, norm=norm))
    check(lambda z: F.hfft(z, n, norm=norm), spectrum)
    x = randn(3, 6)
    check(lambda x: F.hfft(x, n, axis=0, norm=norm), x)  # real input to hfft
    onp.testing.assert_allclose(F.ihfft(x, n, norm=norm), onp.fft.ihfft(x, n, norm=norm))
    check(lambda x: F.ihfft(x, n, norm=norm), x)
    onp.testing.assert_allclose(F.hfft(F.ihfft(x, norm=norm), 6, norm=norm), x, atol=1e-12)


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("s, axes", [(None, None), ((4, 5), (1, 2)), ((3, 4), (0, 2)), (None, (2, 0))],
                         ids=str)
def test_real_transforms_nd(s, axes, norm):
    x = randn(3, 2, 5)
    onp.testing.assert_allclose(F.rfftn(x, s, axes, norm), onp.fft.rfftn(x, s, axes, norm))
    check(lambda x: F.rfftn(x, s, axes, norm), x)
    z = randn(3, 2, 3, complex_=True)
    onp.testing.assert_allclose(F.irfftn(z, s, axes, norm), onp.fft.irfftn(z, s, axes, norm))
    check(lambda z: F.irfftn(z, s, axes, norm), z)


def test_rfft2_and_irfft2():
    x = randn(2, 4, 6)
    onp.testing.assert_allclose(F.rfft2(x), onp.fft.rfft2(x))
    check(F.rfft2, x)
    onp.testing.assert_allclose(F.irfft2(F.rfft2(x)), x, atol=1e-12)
    check(lambda x: F.irfft2(F.rfft2(x), s=(4, 6)), x)


@pytest.mark.parametrize("axes", [None, 0, (1,), (0, 1)], ids=str)
def test_shifts(axes):
    x = randn(3, 4)
    onp.testing.assert_allclose(F.fftshift(x, axes), onp.fft.fftshift(x, axes))
    onp.testing.assert_allclose(F.ifftshift(x, axes), onp.fft.ifftshift(x, axes))
    check(lambda x: F.fftshift(x, axes), x)
    check(lambda x: F.ifftshift(x, axes), x)


def test_parseval_gradient():
    # sum |fft(x)|^2 = n sum x^2, so its gradient is 2 n x.
    x = randn(8)
    onp.testing.assert_allclose(grad(lambda x: np.sum(np.abs(F.fft(x)) ** 2))(x), 16 * x, rtol=1e-12)
    onp.testing.assert_allclose(grad(lambda x: np.sum(np.abs(F.fft(x, norm="ortho")) ** 2))(x), 2 * x,
                                rtol=1e-12)


def test_float32_stays_float32():
    x = randn(6).astype(onp.float32)
    g = grad(lambda x: np.sum(np.real(F.fft(x)) ** 2 + F.irfft(F.rfft(x)) ** 3))(x)
    assert g.dtype == onp.float32


def test_frequency_helpers_pass_through():
    onp.testing.assert_array_equal(F.fftfreq(5, 0.1), onp.fft.fftfreq(5, 0.1))
    onp.testing.assert_array_equal(F.rfftfreq(6), onp.fft.rfftfreq(6))
