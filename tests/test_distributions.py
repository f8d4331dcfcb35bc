"""The package's distribution functions equal scipy.stats (the library they stand in for).

Tolerance: relative 1e-14 (the same scipy.special calls, so equality is expected; the margin
allows for a different evaluation order in scipy.stats' broadcasting wrappers).
"""

import numpy as np
import pytest
from scipy import stats

from allianceanalysis import distributions as dist

RTOL = 1e-14
X = np.array([-40.0, -6.5, -1.96, -0.3, 0.0, 0.3, 1.0, 1.96, 3.3, 8.0, 40.0])
Q = np.array([1e-12, 0.001, 0.025, 0.05, 0.3, 0.5, 0.7, 0.95, 0.975, 0.999])
DF = np.array([1.0, 2.5, 4.0, 17.0, 29.3, 120.0, 1e4])


def test_norm_sf_equals_scipy() -> None:
    np.testing.assert_allclose(dist.norm_sf(X), stats.norm.sf(X), rtol=RTOL, atol=0)


def test_norm_ppf_equals_scipy() -> None:
    np.testing.assert_allclose(dist.norm_ppf(Q), stats.norm.ppf(Q), rtol=RTOL, atol=0)


@pytest.mark.parametrize("df", DF)
def test_t_sf_equals_scipy(df: float) -> None:
    np.testing.assert_allclose(dist.t_sf(X, df), stats.t.sf(X, df), rtol=RTOL, atol=0)


@pytest.mark.parametrize("df", DF)
def test_t_ppf_equals_scipy(df: float) -> None:
    np.testing.assert_allclose(dist.t_ppf(Q, df), stats.t.ppf(Q, df), rtol=RTOL, atol=0)


@pytest.mark.parametrize("df", DF)
def test_chi2_sf_equals_scipy(df: float) -> None:
    x = np.abs(X) * 3
    np.testing.assert_allclose(dist.chi2_sf(x, df), stats.chi2.sf(x, df), rtol=RTOL, atol=0)


@pytest.mark.parametrize("df", DF)
def test_chi2_ppf_equals_scipy(df: float) -> None:
    np.testing.assert_allclose(dist.chi2_ppf(Q, df), stats.chi2.ppf(Q, df), rtol=RTOL, atol=0)


def test_t_functions_broadcast_an_array_of_degrees_of_freedom() -> None:
    x = np.linspace(-3, 3, DF.size)
    np.testing.assert_allclose(dist.t_sf(x, DF), stats.t.sf(x, DF), rtol=RTOL, atol=0)
    np.testing.assert_allclose(dist.t_ppf(0.975, DF), stats.t.ppf(0.975, DF), rtol=RTOL, atol=0)


def test_a_scalar_argument_gives_a_scalar() -> None:
    assert np.ndim(dist.norm_sf(1.0)) == 0
    assert np.ndim(dist.t_ppf(0.975, 10)) == 0
    assert np.ndim(dist.chi2_sf(3.0, 1)) == 0


def test_tails_are_accurate_far_from_the_centre() -> None:
    # 1 - cdf would round to 0 here; the survival function keeps the digits.
    assert dist.norm_sf(10.0) == pytest.approx(7.619853024160527e-24, rel=1e-12)
    assert dist.chi2_sf(200.0, 1) > 0
