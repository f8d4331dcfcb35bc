"""The joint two-level imputation model: its draws keep the observed data, respect the
therapists and recover known truths under missing at random.

Recovery tolerances are Monte Carlo ones: 5 standard errors of the pooled estimate from its
own pooled standard error (m = 20, so a correct sampler fails about once in 10^6 runs).
"""

from __future__ import annotations

import numpy as np
import pytest

from allianceanalysis.errors import NotEstimable
from allianceanalysis.imputation import impute
from allianceanalysis.pooling import pool

PSI = np.array([[1.0, 0.5], [0.5, 1.0]])
SIGMA = np.array([[4.0, 2.0], [2.0, 4.0]])


def two_level(seed: int, n: int = 4000, therapists: int = 80):
    """Two correlated scores with therapist intercepts; y2 missing more often when y1 is high
    (missing at random given y1), y1 missing completely at random for 10%."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, therapists, n)
    b = rng.multivariate_normal([0, 0], PSI, therapists)
    full = b[groups] + rng.multivariate_normal([10, 20], SIGMA, n)
    y = full.copy()
    chance = 0.8 / (1 + np.exp(-(full[:, 0] - 10)))
    y[rng.random(n) < chance, 1] = np.nan
    y[rng.random(n) < 0.1, 0] = np.nan
    return y, full, groups


def slope(data: np.ndarray) -> tuple[float, float]:
    x = np.column_stack([np.ones(len(data)), data[:, 0]])
    coef, res, *_ = np.linalg.lstsq(x, data[:, 1], rcond=None)
    var = res[0] / (len(data) - 2) * np.linalg.inv(x.T @ x)[1, 1]
    return coef[1], var


@pytest.fixture(scope="module")
def imputed():
    y, full, groups = two_level(seed=5)
    return y, full, groups, impute(y, np.ones((len(y), 1)), groups, m=20, seed=1)


def test_imputation_keeps_every_observed_value(imputed) -> None:
    y, _, _, imps = imputed
    seen = ~np.isnan(y)
    for j in range(imps.m):
        np.testing.assert_array_equal(imps.completed(j)[seen], y[seen])


def test_imputations_fill_every_missing_cell_and_differ(imputed) -> None:
    _, _, _, imps = imputed
    assert not np.isnan(imps.values).any()
    assert imps.values.std(axis=0).min() > 0


def test_pooled_mean_recovers_the_full_data_mean_under_mar(imputed) -> None:
    y, full, _, imps = imputed
    means = np.array([imps.completed(j)[:, 1].mean() for j in range(imps.m)])
    within = np.array([imps.completed(j)[:, 1].var(ddof=1) / len(y) for j in range(imps.m)])
    pooled = pool(means, within, len(y) - 1)
    assert abs(np.nanmean(y[:, 1]) - full[:, 1].mean()) > 5 * pooled.std_error  # CC is biased
    assert abs(pooled.estimate - full[:, 1].mean()) < 5 * pooled.std_error


def test_pooled_slope_recovers_the_full_data_slope(imputed) -> None:
    _, full, _, imps = imputed
    fits = np.array([slope(imps.completed(j)) for j in range(imps.m)])
    pooled = pool(fits[:, 0], fits[:, 1], len(full) - 2)
    assert abs(pooled.estimate - slope(full)[0]) < 5 * pooled.std_error


def test_imputations_keep_the_therapist_share_of_variance(imputed) -> None:
    _, full, groups, imps = imputed

    def icc(values: np.ndarray) -> float:
        means = np.bincount(groups, values) / np.bincount(groups)
        return means.var() / values.var()

    truth = icc(full[:, 1])
    shares = [icc(imps.completed(j)[:, 1]) for j in range(imps.m)]
    assert np.mean(shares) == pytest.approx(truth, abs=0.03)


def test_same_seed_gives_the_same_imputations() -> None:
    y, _, groups = two_level(seed=6, n=300, therapists=10)
    first = impute(y, np.ones((300, 1)), groups, m=2, seed=3, burn_in=10, between=2)
    second = impute(y, np.ones((300, 1)), groups, m=2, seed=3, burn_in=10, between=2)
    np.testing.assert_array_equal(first.values, second.values)


def test_a_case_missing_every_score_is_imputed() -> None:
    y, _, groups = two_level(seed=7, n=300, therapists=10)
    y[0] = np.nan
    imps = impute(y, np.ones((300, 1)), groups, m=2, seed=3, burn_in=10, between=2)
    assert np.isfinite(imps.completed(1)[0]).all()


def test_a_therapist_with_one_case_is_imputed() -> None:
    y, _, groups = two_level(seed=8, n=300, therapists=10)
    groups = groups.copy()
    groups[0] = 10  # a therapist of their own
    y[0, 1] = np.nan
    imps = impute(y, np.ones((300, 1)), groups, m=2, seed=3, burn_in=10, between=2)
    assert np.isfinite(imps.completed(0)[0, 1])


def test_imputation_without_therapists_is_single_level() -> None:
    y, full, _ = two_level(seed=9, n=2000)
    imps = impute(y, np.ones((2000, 1)), None, m=5, seed=3)
    means = [imps.completed(j)[:, 1].mean() for j in range(5)]
    assert np.mean(means) == pytest.approx(full[:, 1].mean(), abs=0.3)


def test_fewer_than_two_imputations_are_refused_in_plain_words() -> None:
    y, _, groups = two_level(seed=10, n=100, therapists=5)
    with pytest.raises(ValueError, match="m must be at least 2 imputations"):
        impute(y, np.ones((100, 1)), groups, m=1)


def test_a_variable_never_observed_cannot_be_imputed() -> None:
    y, _, groups = two_level(seed=11, n=100, therapists=5)
    y[:, 1] = np.nan
    with pytest.raises(NotEstimable, match="observed in 0 cases"):
        impute(y, np.ones((100, 1)), groups, m=2)


def test_dependent_predictors_cannot_be_used() -> None:
    y, _, groups = two_level(seed=12, n=100, therapists=5)
    x = np.column_stack([np.ones(100), np.ones(100)])
    with pytest.raises(NotEstimable, match="linearly dependent"):
        impute(y, x, groups, m=2)


def test_inverse_wishart_draws_have_scipys_distribution() -> None:
    from scipy import stats

    from allianceanalysis.imputation import _inverse_wishart

    scale = np.array([[2.0, 0.5], [0.5, 1.0]])
    rng = np.random.default_rng(4)
    ours = np.array([_inverse_wishart(12, scale, rng) for _ in range(20000)])
    theirs = stats.invwishart.rvs(df=12, scale=scale, size=20000, random_state=5)
    # The mean is scale / (df - d - 1); Monte Carlo SE of each mean entry under 1%.
    np.testing.assert_allclose(ours.mean(axis=0), scale / 9, rtol=0.03)
    np.testing.assert_allclose(ours.mean(axis=0), theirs.mean(axis=0), rtol=0.03)
    np.testing.assert_allclose(ours.var(axis=0), theirs.var(axis=0), rtol=0.1)


@pytest.mark.parametrize("chunk", [7, 8192])
def test_the_samplers_sums_equal_those_of_the_completed_matrix(
    chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sampler sums the complete cases and the observed scores once and adds each
    pattern's missing scores as it draws them, a chunk of rows at a time (7: many chunks per
    pattern, some a part chunk); the result must be the completed matrix's X'Y, Y'Y and Z'Y
    (to rounding, 1e-9 relative), and the same as summed again after the draw."""
    from allianceanalysis.imputation import _Sampler

    monkeypatch.setattr("allianceanalysis.imputation._CHUNK", chunk)
    y, _, groups = two_level(seed=13, n=500, therapists=12)
    y = np.column_stack([y, y[:, 0] - y[:, 1]])
    y[::7, 2] = np.nan
    y[:3] = np.nan
    x = np.column_stack([np.ones(500), np.arange(500.0) / 500])
    sampler = _Sampler(y, x, groups, np.random.default_rng(2))
    drawn = sampler._draw_missing()
    full = y.copy()
    full.flat[np.flatnonzero(np.isnan(y))] = sampler.missing_values()
    z = np.eye(12)[groups]
    for xty, yty, zy in (drawn, sampler._sums()):
        np.testing.assert_allclose(xty, x.T @ full, rtol=1e-9)
        np.testing.assert_allclose(yty, full.T @ full, rtol=1e-9)
        np.testing.assert_allclose(zy, z.T @ full, rtol=1e-9)


def test_drawing_in_chunks_draws_what_one_pass_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The random stream is drawn chunk by chunk in row order: the imputations do not depend
    on the chunk size (to the rounding of the sums, 1e-9 relative, after 30 iterations)."""
    y, _, groups = two_level(seed=5, n=400, therapists=10)
    y[::3, 1] = np.nan
    y[::5, 0] = np.nan
    x = np.ones((400, 1))
    results = []
    for chunk in (5, 8192):
        monkeypatch.setattr("allianceanalysis.imputation._CHUNK", chunk)
        results.append(impute(y, x, groups, m=2, seed=4, burn_in=20, between=10).values)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-9)


def test_imputations_kept_on_disk_read_back_as_they_were_kept() -> None:
    from allianceanalysis.imputation import Imputations

    observed = np.array([[1.0, np.nan], [np.nan, np.nan], [3.0, 4.0]])
    imputations = Imputations(observed)
    draws = np.random.default_rng(3).normal(size=(4, 3))
    for values in draws:
        imputations.add(values)
    assert imputations.m == 4
    np.testing.assert_array_equal(imputations.values, draws)
    np.testing.assert_array_equal(imputations.row(2), draws[2])


def test_completed_columns_equal_the_completed_matrix() -> None:
    from allianceanalysis.imputation import Imputations

    observed = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, 5.0], [3.0, 4.0, np.nan]])
    imputations = Imputations(observed)
    imputations.add(np.array([10.0, 20.0, 30.0, 40.0]))
    full = imputations.completed(0)
    np.testing.assert_array_equal(full, [[1, 10, 2], [20, 30, 5], [3, 4, 40]])
    np.testing.assert_array_equal(np.column_stack(imputations.columns(0)), full)
