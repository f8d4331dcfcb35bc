"""The logistic-regression core fitted from sums over pieces (allianceanalysis.logit), held
to statsmodels' Logit on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import special

from allianceanalysis.logit import LogitRows, _extended_products, fit_logits, softplus


def simulated(n: int = 3000, clusters: int = 40, seed: int = 2) -> LogitRows:
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, clusters, n)
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(1, 12, n)])
    eta = x @ np.array([-1.0, 0.6, -0.08]) + rng.normal(0, 0.5, clusters)[cluster]
    y = (rng.random(n) < special.expit(eta)).astype(float)
    return LogitRows(x, y, fold=cluster % 5, cluster=cluster)


def split(rows: LogitRows, parts: int) -> list:
    """The rows in ``parts`` pieces, as fit_logits takes them."""
    cuts = np.array_split(np.arange(len(rows.endog)), parts)
    return [
        lambda c=c: LogitRows(rows.exog[c], rows.endog[c], rows.fold[c], rows.cluster[c])
        for c in cuts
    ]


def test_coefficients_and_standard_errors_equal_statsmodels() -> None:
    """Newton to a step of 1e-10 against statsmodels' Newton (tolerance 1e-8): equal to 1e-8
    relative."""
    rows = simulated()
    ours = fit_logits([lambda: rows])[0]
    theirs = sm.Logit(rows.endog, rows.exog).fit(disp=0)
    np.testing.assert_allclose(ours.params, theirs.params, rtol=1e-8)
    np.testing.assert_allclose(np.sqrt(np.diag(ours.covariance)), theirs.bse, rtol=1e-8)
    assert ours.loglik == pytest.approx(theirs.llf, rel=1e-10)
    assert ours.converged and ours.n_obs == len(rows.endog)


def test_clustered_covariance_equals_statsmodels_cluster_cr1() -> None:
    rows = simulated()
    ours = fit_logits([lambda: rows], clusters=40)[0]
    theirs = sm.Logit(rows.endog, rows.exog).fit(
        disp=0, cov_type="cluster", cov_kwds={"groups": rows.cluster}
    )
    np.testing.assert_allclose(ours.covariance, theirs.cov_params(), rtol=1e-8)


def test_products_in_runs_equal_the_products_in_extended_precision() -> None:
    """Runs of 1,024 rows in float64, their sums in extended precision: the product in
    extended precision to within 1e-15 of the sum of the terms' sizes (each run's rounding;
    5,000 rows: four runs and a tail)."""
    rng = np.random.default_rng(4)
    left, right = rng.normal(size=(5000, 3)), rng.normal(size=(5000, 2))
    exact = left.astype(np.longdouble).T @ right.astype(np.longdouble)
    ours = _extended_products(left, right)
    assert ours.dtype == np.longdouble
    sizes = np.abs(left).T @ np.abs(right)
    assert (np.abs((ours - exact).astype(float)) <= 1e-15 * sizes).all()


def test_pieces_give_the_fit_of_the_whole_to_rounding() -> None:
    """Sums added piece by piece differ from the whole's in rounding only: 1e-12 relative."""
    rows = simulated()
    whole = fit_logits([lambda: rows], clusters=40)[0]
    pieces = fit_logits(split(rows, 4), clusters=40)[0]
    np.testing.assert_allclose(pieces.params, whole.params, rtol=1e-12)
    np.testing.assert_allclose(pieces.covariance, whole.covariance, rtol=1e-10)


def test_a_fold_model_is_fitted_without_its_fold() -> None:
    rows = simulated()
    fits = fit_logits(split(rows, 3), [0, 3])
    for fit, fold in zip(fits, [0, 3], strict=True):
        train = rows.fold != fold
        theirs = sm.Logit(rows.endog[train], rows.exog[train]).fit(disp=0)
        np.testing.assert_allclose(fit.params, theirs.params, rtol=1e-8)


def test_collinear_predictors_are_reported_not_fitted() -> None:
    rows = simulated()
    exog = np.column_stack([rows.exog, 2 * rows.exog[:, 1]])
    fit = fit_logits([lambda: LogitRows(exog, rows.endog)])[0]
    assert not fit.converged and "singular" in fit.message


def test_complete_separation_is_reported_as_not_converged() -> None:
    x = np.linspace(-1, 1, 200)
    rows = LogitRows(np.column_stack([np.ones_like(x), x]), (x > 0).astype(float))
    fit = fit_logits([lambda: rows])[0]
    assert not fit.converged and fit.message


def test_softplus_is_logaddexp_to_rounding() -> None:
    """log(1 + e^x) over ±800 (overflow of e^x beyond 709): numpy's logaddexp(0, x) to 1e-15
    relative."""
    x = np.linspace(-800.0, 800.0, 100_001)
    np.testing.assert_allclose(softplus(x), np.logaddexp(0.0, x), rtol=1e-15, atol=0)
