"""The random-intercept logistic regression: glmer's numbers, the quadrature against numerical
integration, the boundary, and recovery of simulated effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import integrate, optimize, special

from allianceanalysis import tidy
from allianceanalysis.dropout_risk import person_periods
from allianceanalysis.glmm import _Collapsed, fit_logit_glmm
from allianceanalysis.models import therapist_logit
from allianceanalysis.ruptures import detect_ruptures, rupture_states
from allianceanalysis.simulate import simulate_study

from .helpers import assert_equals_reference, reference_sessions


def simulated(
    therapists: int = 60, per: int = 80, sd: float = 0.8, seed: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binary outcomes with log-odds -1.5 + 0.6 x - 0.5 z + N(0, sd²) per therapist."""
    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(therapists), per)
    x, z = rng.normal(size=group.size), (rng.random(group.size) < 0.4).astype(float)
    eta = -1.5 + 0.6 * x - 0.5 * z + rng.normal(0.0, sd, therapists)[group]
    y = (rng.random(group.size) < special.expit(eta)).astype(float)
    return y, np.column_stack([np.ones_like(x), x, z]), group


def test_adaptive_quadrature_equals_numerical_integration_of_each_therapist() -> None:
    """With 25 nodes the approximation is exact to ~1e-8 for these group sizes: the maximised
    log-likelihood equals the sum over therapists of the integral over their intercept, by
    scipy's adaptive quadrature at the same parameters."""
    y, exog, group = simulated(therapists=8, per=30)
    fit = fit_logit_glmm(y, exog, group, nagq=25)
    eta = exog @ fit.beta
    total = 0.0
    for j in range(8):
        rows = group == j

        def density(u: float, rows: np.ndarray = rows) -> float:
            e = eta[rows] + fit.theta * u
            log_lik = np.sum(y[rows] * e - np.logaddexp(0.0, e))
            return float(np.exp(log_lik - 0.5 * u**2) / np.sqrt(2 * np.pi))

        total += np.log(integrate.quad(density, -12, 12, epsabs=0, epsrel=1e-12)[0])
    assert fit.loglik == pytest.approx(total, abs=1e-8)


def test_the_simulated_fixed_effects_and_therapist_sd_are_recovered() -> None:
    """60 therapists of 80: each coefficient within 3 standard errors of the truth, and the
    therapist SD within 0.25 of 0.8 (its sampling SD here is about 0.1)."""
    y, exog, group = simulated()
    fit = fit_logit_glmm(y, exog, group)
    assert np.all(np.abs(fit.beta - [-1.5, 0.6, -0.5]) < 3 * fit.std_error)
    assert abs(fit.theta - 0.8) < 0.25
    assert fit.converged


def test_without_therapist_differences_the_fit_is_the_logistic_regression() -> None:
    """At θ = 0 the model is glm: the same coefficients and standard errors (statsmodels)."""
    y, exog, group = simulated(sd=0.0, therapists=10, per=100, seed=8)
    fit = fit_logit_glmm(y, exog, group)
    glm = sm.Logit(y, exog).fit(disp=0)
    if fit.theta == 0.0:
        np.testing.assert_allclose(fit.beta, glm.params, rtol=1e-5)
        np.testing.assert_allclose(fit.std_error, glm.bse, rtol=1e-4)
    else:  # a small positive θ: then the fit is the better one
        assert fit.loglik >= glm.llf - 1e-9
        assert fit.theta < 0.3


def test_the_laplace_likelihood_of_collapsed_rows_equals_the_row_by_row_one() -> None:
    """Rows with the same therapist and predictors are collapsed to events and trials; the
    Laplace log-likelihood equals one computed row by row, each therapist's mode found by
    scipy's scalar minimiser (f(û) − ½ log(1 + θ² Σ μ(1 − μ)))."""
    y, exog, group = simulated(therapists=12, per=40)
    exog[:, 1] = np.round(exog[:, 1])  # few distinct rows, so collapsing does something
    fit = fit_logit_glmm(y, exog, group)
    eta = exog @ fit.beta
    total = 0.0
    for j in range(12):
        rows = group == j

        def negative(u: float, rows: np.ndarray = rows) -> float:
            e = eta[rows] + fit.theta * u
            return float(-np.sum(y[rows] * e - np.logaddexp(0.0, e)) + 0.5 * u**2)

        mode = optimize.minimize_scalar(negative, tol=1e-12)
        mu = special.expit(eta[rows] + fit.theta * mode.x)
        total += -mode.fun - 0.5 * np.log(1 + fit.theta**2 * np.sum(mu * (1 - mu)))
    assert len(np.unique(np.column_stack([exog, group]), axis=0)) < len(y) / 2
    assert fit.loglik == pytest.approx(total, abs=1e-8)


@pytest.mark.parametrize("codes", [[0, 0, 1, 2, 2, 2], [3, 3, 0, 3, 0, 3]])
def test_sums_per_group_equal_a_scattered_sum_including_groups_without_rows(
    codes: list[int],
) -> None:
    """The collapsed rows are in group order and each group's sum adds its run of rows; a
    code with no rows (1 and 2 in the second case) gets 0, as numpy's bincount gives."""
    groups = np.array(codes)
    exog = np.column_stack([np.ones(6), np.arange(6.0)])  # every row distinct: none collapse
    data = _Collapsed(np.array([1.0, 0, 1, 0, 1, 1]), exog, groups)
    values = np.arange(1.0, 7.0) ** 2
    order = np.lexsort((exog[:, 1], groups))  # the collapsed rows' order: group, predictors
    expected = np.bincount(groups[order], weights=values, minlength=groups.max() + 1)
    np.testing.assert_array_equal(data.per_group(values), expected)


def test_therapist_logit_gives_odds_ratios_variance_and_loglik_rows() -> None:
    y, exog, group = simulated(therapists=20, per=50)
    data = pd.DataFrame({"y": y, "x": exog[:, 1], "z": exog[:, 2], "therapist_id": group})
    table = tidy.frame(therapist_logit("m", data, "y", ["x", "z"])).set_index("term")
    assert list(table.index) == ["Intercept", "x", "z", "odds_ratio_x", "odds_ratio_z",
                                 "var_therapist", "loglik"]  # fmt: skip
    odds_ratio = np.exp(table.loc["x", "estimate"])
    assert table.loc["odds_ratio_x", "estimate"] == pytest.approx(odds_ratio)
    assert table.loc["x", "ci_method"] == "wald_z"
    assert table["n_groups"].iloc[0] == 20


@pytest.mark.parametrize(("model", "nagq"), [("rupture_dropout", 1), ("rupture_dropout_agq9", 9)])
def test_laplace_and_quadrature_equal_glmer(model: str, nagq: int) -> None:
    """tests/reference/ruptures_reference.R: glmer with nAGQ = 1 and 9 on the rupture-dropout
    person-periods of the ors_srs reference data."""
    sessions = reference_sessions("ors_srs")
    periods = rupture_states(person_periods(sessions), detect_ruptures(sessions))
    predictors = ["session", "rupture_unresolved", "rupture_repaired"]
    ours = tidy.frame(therapist_logit(model, periods, "event", predictors, nagq=nagq))
    assert_equals_reference(ours, "ruptures_ors_srs.csv", [model])


def test_the_laplace_gradient_equals_central_differences() -> None:
    """The analytic gradient the optimiser uses (through the conditional modes) against
    central differences (step 1e-5) of the Laplace log-likelihood, to 1e-6 relative."""
    y, exog, group = simulated(therapists=20, per=40)
    data = _Collapsed(y, exog, group)
    at = np.array([0.7, -1.2, 0.5, -0.3])
    nodes, weights = np.polynomial.hermite.hermgauss(1)
    value, gradient = data.laplace(at)

    def negative(p: np.ndarray) -> float:
        return -data.loglik(p[1:], p[0], nodes, weights)

    numeric = [(negative(at + h) - negative(at - h)) / 2e-5 for h in 1e-5 * np.eye(4)]
    assert value == pytest.approx(negative(at), rel=1e-12)
    np.testing.assert_allclose(gradient, numeric, rtol=1e-6)


def test_a_small_therapist_variance_is_not_lost_at_the_boundary() -> None:
    """θ = 0 is stationary, and an optimiser step that overshoots the bound stopped there on
    these person-periods (10,000 simulated clients, therapist variance about .003), with a
    log-likelihood below glmer's (-9561.020 against -9560.893). The fit must be at least as
    good as every θ of a grid, with its own β."""
    sessions = simulate_study(n_clients=10_000, n_therapists=100, seed=1).sessions
    periods = rupture_states(person_periods(sessions), detect_ruptures(sessions))
    predictors = ["session", "rupture_unresolved", "rupture_repaired"]
    data = periods.dropna(subset=predictors)
    exog = np.column_stack([np.ones(len(data)), data[predictors].to_numpy(dtype=float)])
    group = pd.factorize(data["therapist_id"])[0]
    fit = fit_logit_glmm(data["event"].to_numpy(dtype=float), exog, group)
    collapsed = _Collapsed(data["event"].to_numpy(dtype=float), exog, group)
    nodes, weights = np.polynomial.hermite.hermgauss(1)
    grid = [collapsed.loglik(fit.beta, theta, nodes, weights) for theta in (0, 0.03, 0.06, 0.1)]
    assert fit.theta > 0.0
    assert fit.loglik >= max(grid) - 1e-9


def test_a_predictor_level_without_any_event_is_reported_as_separation() -> None:
    y, exog, group = simulated(therapists=10, per=60)
    data = pd.DataFrame({"y": y, "z": exog[:, 2], "therapist_id": group})
    data.loc[data["z"] == 1, "y"] = 0.0  # nobody with z = 1 has the event
    table = tidy.frame(therapist_logit("m", data, "y", ["z"])).set_index("term")
    assert "separation" in table.loc["z", "message"]
    assert not table.loc["z", "converged"]
