"""The chi-square goodness-of-fit test the discrete sampling tests share."""
import numpy as onp
import scipy.stats as st


def chi_square_pvalue(x, pmf, upper):
    """p-value of integer draws ``x`` against ``pmf`` on ``0..upper``.

    Draws above ``upper`` (and the mass there) go into the last bin; bins
    with an expected count below 5 are pooled into their right neighbour,
    so that the chi-square approximation holds.
    """
    n = len(x)
    values = onp.arange(upper + 1)
    expected = n * pmf(values)
    observed = onp.bincount(x, minlength=upper + 1)[: upper + 1].astype(float)
    observed[-1] += onp.sum(x > upper)
    expected[-1] += n - expected.sum()
    obs_bins, exp_bins, o, e = [], [], 0.0, 0.0
    for oi, ei in zip(observed, expected):
        o, e = o + oi, e + ei
        if e >= 5:
            obs_bins.append(o)
            exp_bins.append(e)
            o = e = 0.0
    obs_bins[-1] += o
    exp_bins[-1] += e
    return st.chisquare(obs_bins, exp_bins).pvalue
