"""The within-person methods against R, and their own behaviour.

R reference: ``tests/reference/within_person_reference.R`` on
``tests/reference/data/contextual.csv`` and ``within_person.csv`` (simulated,
``make_within_person_data.py``) and lavaan's public ``Demo.twolevel``. Tolerances as the issue
states them: lavaan's estimates and standard errors relative 1e-3, or within 1e-3 of the
standard error for an estimate near zero, where the likelihood is flat and each optimiser stops
at its own gradient criterion (both differentiate the gradient numerically for the SEs); the
log-likelihoods and fit indices 1e-6 relative (1e-4 absolute for indices near zero); the
lme4 models as elsewhere (fixed effects, SEs and df relative 1e-4, variances 1e-3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.covariates import Adjustment
from allianceanalysis.derive import client_table
from allianceanalysis.detrended import alliance_next_session_detrended, detrend
from allianceanalysis.errors import NotEstimable
from allianceanalysis.latent_disaggregation import alliance_disaggregated_latent
from allianceanalysis.models import fit_model
from allianceanalysis.riclpm import riclpm
from allianceanalysis.sem import Patterns, saturated_moments
from allianceanalysis.simulate_within import simulate_contextual, simulate_panel

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"
LATENT_TERMS = {
    "bw": "alliance_client_dev",
    "bb": "alliance_therapist_mean",
    "contextual": "between_minus_within",
    "outcome_final~~outcome_final": "var_residual",
    "outcome_final~~outcome_final@1": "var_therapist",
    "alliance_early~~alliance_early": "var_alliance_client",
    "alliance_early~~alliance_early@1": "var_alliance_therapist",
    "loglik": "loglik",
}


@pytest.fixture(scope="module")
def expected() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "within_person.csv")


def _compare(
    ours: pd.DataFrame, expected: pd.DataFrame, model: str, rename: dict, ours_model: str
) -> None:
    table = ours.set_index(["model", "term"])
    rows = expected[expected["model"] == model]
    assert len(rows) > 3
    for row in rows.itertuples():
        term = rename.get(row.term, row.term)
        got = table.loc[(ours_model, term)]
        tolerance = 1e-6 if term in ("loglik", "chisq") else 1e-3
        flat = 1e-3 * row.std_error if row.std_error > 0 else 1e-4
        assert got["estimate"] == pytest.approx(row.estimate, rel=tolerance, abs=flat), row
        if not pd.isna(row.std_error) and row.std_error > 0:
            assert got["std_error"] == pytest.approx(row.std_error, rel=1e-3), row


def _covariate_names(row: str) -> str:
    return row[2:] if row.startswith("g_") else LATENT_TERMS.get(row, row)


@pytest.fixture(scope="module")
def contextual() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "data" / "contextual.csv")


def test_latent_disaggregation_equals_lavaan_two_level_sem(contextual, expected) -> None:
    ours = alliance_disaggregated_latent(client_table(contextual))
    _compare(
        ours,
        expected,
        "latent",
        {**LATENT_TERMS, "g_outcome_intake": "outcome_intake"},
        "alliance_disaggregated_latent",
    )


def test_latent_disaggregation_with_covariates_equals_lavaan(contextual, expected) -> None:
    adjustment = Adjustment.from_config({"covariates": ["diagnosis", "age"]})
    clients = client_table(contextual, adjustment=adjustment)
    ours = alliance_disaggregated_latent(clients, adjustment=adjustment)
    rename = {t: _covariate_names(t) for t in expected["term"]}
    _compare(ours, expected, "latent_covariates", rename, "alliance_disaggregated_latent")


def test_latent_disaggregation_of_lavaans_public_demo_equals_lavaan(expected) -> None:
    demo = pd.read_csv(REFERENCE / "data" / "demo_twolevel.csv").rename(
        columns={
            "cluster": "therapist_id",
            "y1": "outcome_final",
            "x1": "alliance_early",
            "x2": "outcome_intake",
        }
    )
    mean = demo.groupby("therapist_id")["alliance_early"].transform("mean")
    demo = demo.assign(
        eligible=True,
        alliance_therapist_mean=mean,
        alliance_client_dev=demo["alliance_early"] - mean,
    )
    ours = alliance_disaggregated_latent(demo)
    _compare(
        ours,
        expected,
        "latent_demo_twolevel",
        {**LATENT_TERMS, "g_outcome_intake": "outcome_intake"},
        "alliance_disaggregated_latent",
    )


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "data" / "within_person.csv")


@pytest.mark.parametrize(
    "model",
    [
        "alliance_next_session_detrended",
        "alliance_next_session_same_sample",
        "alliance_next_session_lag_raw",
    ],
)
def test_detrended_models_equal_lme4_on_detrending_done_in_r(panel, expected, model) -> None:
    ours = alliance_next_session_detrended(panel).set_index(["model", "term"])
    for row in expected[expected["model"] == model].itertuples():
        got = ours.loc[(model, row.term)]
        covariance = row.term.startswith("var_")
        tolerance = 1e-6 if row.term == "loglik_reml" else 1e-3 if covariance else 1e-4
        assert got["estimate"] == pytest.approx(row.estimate, rel=tolerance), row
        for column in ("std_error", "df"):
            if not pd.isna(getattr(row, column)):
                assert got[column] == pytest.approx(getattr(row, column), rel=1e-4), row


@pytest.fixture(scope="module")
def fitted_riclpm(panel) -> pd.DataFrame:
    return riclpm(panel, waves=6)


@pytest.mark.parametrize("model", ["riclpm", "riclpm_unconstrained"])
def test_riclpm_equals_lavaan(fitted_riclpm, expected, model) -> None:
    _compare(fitted_riclpm, expected, model, {}, model)


def test_riclpm_fit_indices_and_lrt_equal_lavaan(fitted_riclpm, expected) -> None:
    ours = fitted_riclpm.set_index(["model", "term"])
    for term in ("chisq", "cfi", "rmsea", "srmr", "lrt_time_invariance"):
        row = expected[(expected["model"] == "riclpm") & (expected["term"] == term)].iloc[0]
        got = ours.loc[("riclpm", term)]
        assert got["estimate"] == pytest.approx(row["estimate"], rel=1e-5, abs=1e-6), term
        for column in ("df", "p_value", "ci_low", "ci_high"):
            if not pd.isna(row[column]):
                assert got[column] == pytest.approx(row[column], rel=1e-4, abs=1e-6), term


def test_detrend_equals_per_client_least_squares() -> None:
    rng = np.random.default_rng(3)
    case = np.repeat(np.arange(40), 6)
    time = np.tile(np.arange(1, 7), 40)
    values = rng.normal(size=case.size) + 0.5 * time
    values[rng.random(case.size) < 0.2] = np.nan
    got = detrend(values, time, case)
    for c in range(40):
        rows = np.flatnonzero((case == c) & ~np.isnan(values))
        if rows.size < 3:
            assert np.isnan(got[case == c]).all()
            continue
        fitted = np.polyval(np.polyfit(time[rows], values[rows], 1), time[rows])
        np.testing.assert_allclose(got[rows], values[rows] - fitted, atol=1e-10)


def test_em_saturated_model_equals_complete_data_moments() -> None:
    rng = np.random.default_rng(4)
    data = rng.multivariate_normal([1.0, 2.0, 3.0], [[2, 1, 0], [1, 2, 1], [0, 1, 2]], size=300)
    sigma, mu, _ = saturated_moments(Patterns.from_array(data))
    np.testing.assert_allclose(mu, data.mean(axis=0), atol=1e-10)
    np.testing.assert_allclose(sigma, np.cov(data.T, bias=True), atol=1e-8)


def test_patterns_hold_each_patterns_mean_and_scatter_without_empty_cases() -> None:
    rng = np.random.default_rng(5)
    data = rng.normal(size=(400, 3))
    data[rng.random(data.shape) < 0.3] = np.nan
    data[:7] = np.nan  # no observed value: left out
    got = Patterns.from_array(data)
    seen = ~np.isnan(data)
    assert got.n == int(seen.any(axis=1).sum())
    for observed, count, mean, scatter in zip(got.observed, got.counts, got.means, got.scatter,
                                              strict=True):  # fmt: skip
        rows = data[(seen == observed).all(axis=1)][:, observed]
        assert count == len(rows)
        np.testing.assert_allclose(mean[observed], rows.mean(axis=0), rtol=1e-12)
        centred = rows - rows.mean(axis=0)
        block = scatter[np.ix_(observed, observed)]
        np.testing.assert_allclose(block, centred.T @ centred, rtol=1e-12, atol=1e-12)


def test_riclpm_with_too_few_waves_says_why(panel) -> None:
    with pytest.raises(NotEstimable, match="too few waves"):
        riclpm(panel, waves=2)


def test_riclpm_with_more_waves_than_any_client_has_says_why(panel) -> None:
    with pytest.raises(NotEstimable, match="no client has a rating at session position 9"):
        riclpm(panel, waves=10)


def test_configured_waves_reach_the_riclpm_through_the_catalogue(panel) -> None:
    table = fit_model("riclpm", panel, riclpm_waves=4)
    paths = table.loc[table["model"] == "riclpm_unconstrained", "term"]
    lagged = sorted(t for t in paths if t.startswith("alliance_to_outcome_t"))
    assert lagged == ["alliance_to_outcome_t2", "alliance_to_outcome_t3", "alliance_to_outcome_t4"]


def test_latent_disaggregation_with_one_client_per_therapist_says_why(contextual) -> None:
    clients = client_table(contextual)
    single = clients.drop_duplicates("therapist_id")
    with pytest.raises(NotEstimable, match="too few clients per therapist"):
        alliance_disaggregated_latent(single)


def test_latent_model_without_a_maximum_reports_no_estimates_and_says_why() -> None:
    # The demo's 20 therapists: the between alliance variance runs negative and the
    # likelihood has no maximum (lavaan 0.6.14 does not converge on these data either).
    sessions = pd.read_csv(ROOT / "data" / "demo" / "sessions.csv")
    table = alliance_disaggregated_latent(client_table(sessions))
    latent = table[table["model"] == "alliance_disaggregated_latent"]
    assert latent["estimate"].isna().all()
    assert not latent["converged"].any()
    assert latent["message"].str.contains("did not converge").all()
    observed = table[table["model"] == "alliance_disaggregated_observed"]
    assert observed["estimate"].notna().all()


def _row(table: pd.DataFrame, model: str, term: str) -> pd.Series:
    return table.set_index(["model", "term"]).loc[(model, term)]


def test_detrending_recovers_the_state_effect_that_trends_bias() -> None:
    world = simulate_panel(
        n_clients=3000,
        waves=8,
        seed=31,
        alliance_autoregression=0.0,
        outcome_autoregression=0.0,
        outcome_to_alliance=0.0,
        trend_sd_alliance=0.5,
        trend_sd_outcome=1.0,
        trend_correlation=0.6,
        dropout=0.05,
        missing=0.05,
    )
    table = alliance_next_session_detrended(world.sessions)
    truth = world.truth["alliance_to_outcome"]
    detrended = _row(table, "alliance_next_session_detrended", "alliance_detrended")
    undetrended = _row(table, "alliance_next_session_same_sample", "alliance_within")
    assert abs(detrended["estimate"] - truth) < 3 * detrended["std_error"]
    assert undetrended["estimate"] - truth > 5 * undetrended["std_error"]


def test_riclpm_recovers_the_within_person_paths() -> None:
    world = simulate_panel(n_clients=3000, waves=8, seed=32, dropout=0.05, missing=0.05)
    table = riclpm(world.sessions, waves=6)
    for term in (
        "alliance_to_outcome",
        "outcome_to_alliance",
        "alliance_autoregression",
        "outcome_autoregression",
    ):
        row = _row(table, "riclpm", term)
        assert abs(row["estimate"] - world.truth[term]) < 3 * row["std_error"], term
    assert _row(table, "riclpm", "lrt_time_invariance")["p_value"] > 0.001


@pytest.mark.slow
def test_latent_between_effect_covers_the_truth_where_the_observed_mean_is_biased() -> None:
    covered, latent, observed = [], [], []
    for seed in range(400):
        world = simulate_contextual(seed=1000 + seed)
        table = alliance_disaggregated_latent(client_table(world.sessions))
        row = _row(table, "alliance_disaggregated_latent", "alliance_therapist_mean")
        covered.append(row["ci_low"] <= world.truth["effect_between"] <= row["ci_high"])
        latent.append(row["estimate"])
        observed.append(
            _row(table, "alliance_disaggregated_observed", "alliance_therapist_mean")["estimate"]
        )
    assert 0.93 <= np.mean(covered) <= 0.97
    assert abs(np.mean(latent) - 1.0) < 0.03
    assert np.mean(observed) < 0.75
