"""Dropout risk: person-periods by hand, the AUC against a pairwise count, the folds, and
recovery of the simulator's dropout hazard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special

from allianceanalysis.config import DatasetSpec
from allianceanalysis.dropout_risk import (
    RISK_DECIMALS,
    RISK_PREDICTORS,
    area_under_curve,
    auc_interval,
    cross_validated_risk,
    dropout_risk,
    person_periods,
    risk_table,
    therapist_folds,
)
from allianceanalysis.io import load_dataset
from allianceanalysis.simulate import simulate_study

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"


def case(client: str, status: str, srs: list[float | None], ors: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": client,
            "therapist_id": "t",
            "session": np.arange(1, len(ors) + 1),
            "ors": ors,
            "srs": [np.nan if r is None else r for r in srs],
            "end_status": status,
        }
    )


HAND = pd.concat([
    case("planned", "planned", [30.0, 32.0, 34.0], [20.0, 22.0, 26.0]),
    case("dropout", "dropout", [None, 30.0, 27.0], [15.0, 16.0, 14.0]),
    case("ongoing", "ongoing", [35.0, 36.0], [25.0, 27.0]),
])  # fmt: skip


def test_a_planned_or_ongoing_cases_last_session_is_not_at_risk() -> None:
    periods = person_periods(HAND)
    sessions = periods.groupby("client_id")["session"].apply(list).to_dict()
    assert sessions == {"dropout": [1, 2, 3], "ongoing": [1], "planned": [1, 2]}


def test_only_the_last_session_of_a_dropout_is_an_event() -> None:
    periods = person_periods(HAND).set_index(["client_id", "session"])
    assert periods["event"].sum() == 1
    assert periods.loc[("dropout", 3), "event"] == 1


def test_predictors_use_only_what_is_known_at_the_session() -> None:
    periods = person_periods(HAND).set_index(["client_id", "session"])
    assert np.isnan(periods.loc[("dropout", 1), "alliance_first"])
    assert periods.loc[("dropout", 3), ["alliance_first", "alliance_change"]].tolist() == [
        30.0,
        -3.0,
    ]
    assert periods.loc[("planned", 2), "outcome_change"] == 2.0


def test_auc_equals_the_share_of_event_non_event_pairs_ranked_right() -> None:
    rng = np.random.default_rng(3)
    event = rng.random(300) < 0.2
    risk = np.round(rng.random(300) + 0.3 * event, 1)  # rounded: many ties
    pairs = risk[event][:, None] - risk[~event][None, :]
    expected = ((pairs > 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size
    assert area_under_curve(event, risk) == pytest.approx(expected, rel=1e-12)


def test_auc_of_perfect_reversed_and_constant_risks() -> None:
    event = np.array([0, 0, 1, 1])
    assert area_under_curve(event, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert area_under_curve(event, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert area_under_curve(event, np.full(4, 0.5)) == 0.5


def test_each_therapist_is_in_one_fold_and_folds_differ_by_at_most_one_therapist() -> None:
    therapists = pd.Series([f"t{i % 23}" for i in range(500)])
    fold = therapist_folds(therapists, folds=5, seed=2)
    per_therapist = pd.Series(fold).groupby(therapists).nunique()
    assert (per_therapist == 1).all()
    sizes = pd.Series(fold).groupby(therapists).first().value_counts()
    assert sizes.max() - sizes.min() <= 1
    assert (therapist_folds(therapists, folds=5, seed=2) == fold).all()


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate_study(n_clients=6000, n_therapists=100, seed=7).sessions


def test_held_out_risks_come_from_a_model_fitted_without_their_fold(simulated) -> None:
    periods = person_periods(simulated)
    held_out = cross_validated_risk(periods, folds=5, seed=1)
    complete = periods.dropna(subset=RISK_PREDICTORS).reset_index(drop=True)
    exog = sm.add_constant(complete[RISK_PREDICTORS].to_numpy(float), has_constant="add")
    train = held_out["fold"].to_numpy() != 0
    refit = sm.Logit(complete["event"].to_numpy(float)[train], exog[train]).fit(disp=0)
    expected = refit.predict(exog[~train])
    assert held_out.loc[~train, "risk"].to_numpy() == pytest.approx(expected, rel=1e-10)


def test_the_simulated_alliance_hazard_is_recovered(simulated) -> None:
    """The simulator's hazard after a session: logit = logit(.04) - 0.12 (SRS - 36.5): both the
    first rating and the change from it carry -0.12 a point; outcome change and session none."""
    table = dropout_risk(simulated).set_index("term")
    for term in ("alliance_first", "alliance_change"):
        assert table.loc[term, "ci_low"] < -0.12 < table.loc[term, "ci_high"], term
    for term in ("outcome_change", "session"):
        assert table.loc[term, "ci_low"] < 0 < table.loc[term, "ci_high"], term
    assert 0.85 < table.loc["calibration_slope_cv", "estimate"] < 1.15
    assert 0.55 < table.loc["auc_cv", "estimate"] < 0.7


def test_without_any_dropout_nothing_is_fitted_and_the_table_says_why() -> None:
    table = dropout_risk(HAND[HAND["end_status"] != "dropout"])
    assert len(table) == 1 and not table["converged"].iloc[0]
    assert "only one kind of ending" in table["message"].iloc[0]


@pytest.mark.parametrize(
    ("name", "outcome", "alliance"), [("ors_srs", "ors", "srs"), ("phq9_wai", "phq9", "wai_sr")]
)
def test_coefficients_equal_r_glm_with_sandwich_clustered_errors(name, outcome, alliance) -> None:
    """tests/reference/dropout_risk_reference.R derives the person-periods in R and fits
    ``glm(binomial)`` with ``sandwich::vcovCL(type = "HC1")``. Relative tolerances: estimates
    1e-8 (measured 3e-10), standard errors and intervals 1e-5 (2e-6), p-values 1e-4 (3e-5: a
    steep function of the statistic)."""
    reference = pd.read_csv(REFERENCE / f"dropout_risk_{name}.csv").set_index("term")
    spec = DatasetSpec(name=name, path=REFERENCE / "data" / f"{name}.csv", outcome=outcome,
                       alliance=alliance)  # fmt: skip
    sessions = load_dataset(spec).sessions
    ours = dropout_risk(sessions, outcome, alliance).set_index("term")
    terms = reference.index.drop("n_person_periods")
    tolerances = {"estimate": 1e-8, "std_error": 1e-5, "ci_low": 1e-5, "ci_high": 1e-5,
                  "p_value": 1e-4}  # fmt: skip
    for column, rtol in tolerances.items():
        expected = reference.loc[terms, column].dropna()
        np.testing.assert_allclose(ours.loc[expected.index, column], expected, rtol=rtol,
                                   err_msg=column)  # fmt: skip
    periods = person_periods(sessions, outcome, alliance).dropna(subset=RISK_PREDICTORS)
    assert len(periods) == reference.loc["n_person_periods", "estimate"]


def test_auc_interval_of_single_observation_clusters_is_delongs() -> None:
    """With one observation per cluster Obuchowski's variance is DeLong's, up to its
    K / (K − 1) factor over all clusters where DeLong's has M − 1 and N − 1: within 1%."""
    rng = np.random.default_rng(0)
    event = rng.random(300) < 0.3
    risk = rng.normal(size=300) + 0.8 * event
    se = auc_interval(event, risk, np.arange(300))[0]
    x, y = risk[event], risk[~event]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    delong = np.sqrt(psi.mean(1).var(ddof=1) / len(x) + psi.mean(0).var(ddof=1) / len(y))
    assert se == pytest.approx(delong, rel=0.01)


def test_placement_values_with_ties_are_the_pairwise_shares() -> None:
    """Each event's placement is its share of non-events ranked below it and each
    non-event's the share of events ranked above it, ties counting half: from one sort of
    all risks, equal to the pairwise comparison to rounding (1e-15), many risks tied."""
    from allianceanalysis.dropout_risk import _placements

    rng = np.random.default_rng(4)
    event = rng.random(500) < 0.3
    risk = np.round(rng.normal(size=500) + 0.5 * event, 1)
    v10, v01 = _placements(event, risk)
    x, y = risk[event], risk[~event]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    np.testing.assert_allclose(v10, psi.mean(axis=1), rtol=1e-15)
    np.testing.assert_allclose(v01, psi.mean(axis=0), rtol=1e-15)


def test_auc_interval_agrees_with_a_bootstrap_over_clusters() -> None:
    """40 clusters of 30 sharing a random effect on both the event and the risk: the
    clustered standard error within 15% of a 1,000-replicate cluster bootstrap's SD, and
    wider than the one that ignores clusters."""
    rng = np.random.default_rng(1)
    cluster = np.repeat(np.arange(40), 30)
    shared = rng.normal(0.0, 1.0, 40)[cluster]
    event = rng.random(cluster.size) < special.expit(-1.0 + shared)
    risk = 0.8 * shared + rng.normal(size=cluster.size)
    se, low, high = auc_interval(event, risk, cluster)
    members = [np.flatnonzero(cluster == k) for k in range(40)]
    replicates = []
    for _ in range(1000):
        rows = np.concatenate([members[k] for k in rng.integers(0, 40, 40)])
        replicates.append(area_under_curve(event[rows], risk[rows]))
    assert se == pytest.approx(np.std(replicates), rel=0.15)
    assert se > auc_interval(event, risk, np.arange(cluster.size))[0]
    assert low < area_under_curve(event, risk) < high


def test_cross_validation_of_no_person_periods_gives_no_rows() -> None:
    """A dataset of one session per client has no person-period to score: no rows (the risk
    table then says why), not a crash."""
    sessions = simulate_study(n_clients=20, n_therapists=4, n_sites=1, seed=3).sessions
    first = sessions[sessions["session"] == 1].drop(columns="end_status")
    periods = person_periods(first, "ors", "srs")
    assert periods.empty
    held_out = cross_validated_risk(periods)
    assert held_out.empty and {"event", "risk", "fold"} <= set(held_out.columns)


def test_held_out_risks_closer_than_the_resolution_rank_as_ties(simulated) -> None:
    """An event and a non-event whose risks differ by one unit in the last place (as the
    coefficients' rounding, which depends on the order the sums were added in, leaves them)
    tie, whichever is above: the AUC and its interval do not depend on that order."""
    periods = person_periods(simulated)
    held_out = cross_validated_risk(periods, folds=5, seed=1)
    event = held_out.index[held_out["event"] == 1][0]
    other = held_out.index[held_out["event"] == 0][0]
    low, high = 0.125, np.nextafter(0.125, 1.0)
    assert round(low, RISK_DECIMALS) == round(high, RISK_DECIMALS)
    tables = [held_out.assign(risk=held_out["risk"].where(
                  ~held_out.index.isin([event, other]),
                  held_out.index.map({event: a, other: b})))
              for a, b in ((low, high), (high, low))]  # fmt: skip
    rows = [risk_table(periods, table, folds=5).set_index("term").loc["auc_cv"]
            for table in tables]  # fmt: skip
    pd.testing.assert_series_equal(rows[0], rows[1], check_exact=True)


def test_auc_with_its_interval_is_the_rank_auc_and_integer_clusters_are_labels() -> None:
    """The AUC given with its interval is the mean of the events' placement values: the
    Mann–Whitney AUC from ranks to rounding (1e-15), many risks tied; therapist codes
    (integers from 0, some unused) cluster as the same clusters given as text labels."""
    from allianceanalysis.dropout_risk import _auc_and_interval

    rng = np.random.default_rng(7)
    cluster = rng.integers(0, 60, 2_000) * 2  # every other code unused
    event = rng.random(cluster.size) < 0.3
    risk = np.round(rng.normal(size=cluster.size) + 0.6 * event, 1)
    auc, *interval = _auc_and_interval(event, risk, cluster)
    assert auc == pytest.approx(area_under_curve(event, risk), rel=1e-15)
    labels = np.array([f"T{c}" for c in cluster], dtype=object)
    np.testing.assert_allclose(interval, auc_interval(event, risk, labels), rtol=1e-12)
