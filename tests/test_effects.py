"""KPIs and change indices against hand-computed cases and published reference values.

Tolerances: exact for counts and categories; 1e-4 for hand-computed effect sizes and intervals;
the published interval examples are given to 4 decimals, so 1e-4 absolute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from allianceanalysis.effects import (
    SeverityNorms,
    activity,
    binomial_effect_size_display,
    client_outcomes,
    cohens_d,
    difference_of_proportions,
    funnel,
    nhs_talking_therapies,
    outcome_kpis,
    proportion,
    reporting_year,
    session_years,
    severity_adjusted_effect_size,
    wilson_interval,
)


def sessions_of(clients: dict[str, dict], scores: tuple[str, ...] = ("ors",)) -> pd.DataFrame:
    """Session rows from ``{client: {"scores": [...] or {measure: [...]}, "status": ...,
    "start": date}}``: one weekly session per score."""
    rows = []
    for client, spec in clients.items():
        values = spec["scores"] if isinstance(spec["scores"], dict) else {scores[0]: spec["scores"]}
        n = len(next(iter(values.values())))
        start = pd.Timestamp(spec.get("start", "2025-05-01"))
        for i in range(n):
            rows.append(
                {
                    "client_id": client,
                    "therapist_id": spec.get("therapist", "T1"),
                    "session": i + 1,
                    "session_date": start + pd.Timedelta(weeks=i),
                    "end_status": spec.get("status", "planned"),
                    **{measure: series[i] for measure, series in values.items()},
                }
            )
    return pd.DataFrame(rows)


# ORS: higher is better, clinical below 25, reliable change 5 points (instrument registry).
ORS_CASES = {
    "a": {"scores": [20, 22, 24, 28]},  # +8: reliable, clinical -> not: reliable recovery
    "b": {"scores": [30, 24], "status": "dropout"},  # -6: reliable deterioration, not clinical
    "c": {"scores": [18]},  # one session: not finished
    "d": {"scores": [10, np.nan, np.nan]},  # no later score: not finished
    "e": {"scores": [15, 20, 30], "status": None},  # ongoing: not ended
    "f": {"scores": [22, 24, 26]},  # +4: recovered, not reliably
}


@pytest.fixture(scope="module")
def ors_outcomes() -> pd.DataFrame:
    return client_outcomes(sessions_of(ORS_CASES), "ors").set_index("client_id")


def test_finished_needs_an_ending_two_sessions_and_a_later_score(ors_outcomes) -> None:
    assert ors_outcomes["finished"].to_dict() == {
        "a": True, "b": True, "c": False, "d": False, "e": False, "f": True,
    }  # fmt: skip
    assert ors_outcomes["ended"].to_dict()["e"] is False


def test_change_categories_follow_jacobson_truax_on_the_ors(ors_outcomes) -> None:
    finished = ors_outcomes.loc[["a", "b", "f"]]
    assert finished["improvement"].tolist() == [8, -6, 4]
    assert finished["reliable_improvement"].tolist() == [True, False, False]
    assert finished["reliable_deterioration"].tolist() == [False, True, False]
    assert finished["clinical_start"].tolist() == [True, False, True]
    assert finished.loc[["a", "f"], "recovered"].tolist() == [True, True]
    assert pd.isna(finished.loc["b", "recovered"])  # not clinical at start: not in the base
    assert finished.loc[["a", "f"], "reliable_recovery"].tolist() == [True, False]


def test_outcome_kpis_match_hand_computed_rates(ors_outcomes) -> None:
    kpis = outcome_kpis(ors_outcomes.reset_index(), "ors", "2025/26").set_index("kpi")
    expected = {  # (events, n)
        "reliable_improvement": (1, 3),
        "reliable_deterioration": (1, 3),
        "clinical_start": (2, 3),
        "recovery": (2, 2),
        "reliable_recovery": (1, 2),
    }
    for kpi, (events, n) in expected.items():
        assert (kpis.loc[kpi, "numerator"], kpis.loc[kpi, "denominator"]) == (events, n), kpi
    assert kpis.loc["finished", "estimate"] == 3
    assert kpis.loc["mean_improvement", "estimate"] == pytest.approx(2.0)


def test_cohens_d_uses_the_pre_sd_and_beckers_interval() -> None:
    # pre (20, 30, 22): mean 24, SD sqrt(28) = 5.29150; mean improvement 2 -> d = 0.377964.
    # post (28, 24, 26): r(pre, post) = -10 / (5.29150 * 2) = -0.944911;
    # var(d) = 2(1 - r)/n + d^2/(2n) = 1.296607 + 0.023810 = 1.320417; SE 1.149094.
    d, low, high = cohens_d(pd.Series([20, 30, 22]), pd.Series([28, 24, 26]), True)
    assert d == pytest.approx(0.377964, abs=1e-4)
    assert low == pytest.approx(0.377964 - 1.959964 * 1.149094, abs=1e-4)
    assert high == pytest.approx(0.377964 + 1.959964 * 1.149094, abs=1e-4)


def test_cohens_d_is_positive_for_improvement_when_lower_is_better() -> None:
    d, _, _ = cohens_d(pd.Series([20.0, 15, 18, 22]), pd.Series([10.0, 9, 12, 11]), False)
    assert d > 0


@pytest.mark.parametrize(
    ("events", "n", "low", "high"),
    # Newcombe (1998a), Statistics in Medicine 17, 857-872, Table I, method 3 (Wilson score)
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611)],
)
def test_wilson_interval_matches_newcombes_published_examples(events, n, low, high) -> None:
    _, ci_low, ci_high = proportion(events, n)
    assert (ci_low, ci_high) == pytest.approx((low, high), abs=1e-4)


def test_difference_interval_matches_newcombes_published_example() -> None:
    # Newcombe (1998b), Statistics in Medicine 17, 873-890, Table II example (a), method 10:
    # 56/70 - 48/80 = 0.2000, 95% CI 0.0524 to 0.3339.
    d, low, high = difference_of_proportions(56, 70, 48, 80)
    assert (d, low, high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


COUNTS = [(x, n) for n in (1, 2, 5, 13, 100, 2500) for x in sorted({0, 1, n // 3, n - 1, n})]


@pytest.mark.parametrize(("events", "n"), COUNTS)
def test_wilson_interval_equals_statsmodels(events, n) -> None:
    # The library it stands in for (effects.wilson_interval): same arithmetic, rtol 1e-14.
    from statsmodels.stats.proportion import proportion_confint

    expected = proportion_confint(events, n, alpha=0.05, method="wilson")
    assert wilson_interval(events, n) == pytest.approx(expected, rel=1e-14, abs=1e-15)


@pytest.mark.parametrize(("x1", "n1"), COUNTS[::3])
@pytest.mark.parametrize(("x0", "n0"), [(0, 7), (3, 7), (40, 90), (90, 90)])
def test_difference_interval_equals_statsmodels_newcombe(x1, n1, x0, n0) -> None:
    from statsmodels.stats.proportion import confint_proportions_2indep

    expected = confint_proportions_2indep(x1, n1, x0, n0, method="newcomb", compare="diff")
    _, low, high = difference_of_proportions(x1, n1, x0, n0)
    assert (low, high) == pytest.approx(expected, rel=1e-14, abs=1e-15)


def test_reporting_year_starts_in_the_configured_month() -> None:
    dates = pd.Series(pd.to_datetime(["2025-03-31", "2025-04-01", "2026-03-31", None]))
    assert reporting_year(dates).tolist()[:3] == ["2024/25", "2025/26", "2025/26"]
    assert pd.isna(reporting_year(dates).iloc[3])
    assert reporting_year(dates, start_month=1).tolist()[:3] == ["2025", "2025", "2026"]
    assert reporting_year(pd.Series(pd.to_datetime(["1999-12-01"])), 1).tolist() == ["1999"]


def test_a_client_belongs_to_the_year_their_episode_ended() -> None:
    spanning = {"x": {"scores": [20, 22, 24, 26, 28, 30], "start": "2025-03-10"}}
    outcomes = client_outcomes(sessions_of(spanning), "ors")
    assert outcomes["end_date"].iloc[0] == pd.Timestamp("2025-04-14")
    assert outcomes["year"].tolist() == ["2025/26"]


def test_without_end_status_every_episode_ends_with_the_dropout_rule() -> None:
    data = sessions_of({"a": {"scores": [20, 26]}, "b": {"scores": [20, 22, 25]}})
    outcomes = client_outcomes(data.drop(columns="end_status"), "ors").set_index("client_id")
    assert outcomes["ended"].all()
    assert outcomes["dropout"].to_dict() == {"a": 1.0, "b": 0.0}  # fewer than 3 sessions


def test_activity_counts_sessions_by_date_and_episodes_by_ending() -> None:
    cases = {
        "a": {"scores": [20, 22, 24], "start": "2025-03-17"},  # sessions 17, 24, 31 March
        "b": {"scores": [20, 25], "start": "2025-06-01"},
        "c": {"scores": [20, 21, 22, 23, 24], "start": "2025-07-01", "status": None},
    }
    data = sessions_of(cases)
    outcomes = client_outcomes(data, "ors")
    seen = data[session_years(data) == "2025/26"]
    table = activity(seen["client_id"].nunique(), len(seen), outcomes, "2025/26").set_index("kpi")
    assert table.loc["clients_seen", "estimate"] == 2  # b and c (a's sessions are in 2024/25)
    assert table.loc["sessions_attended", "estimate"] == 7
    assert table.loc["episodes_ended", "estimate"] == 1  # b; a ended in 2024/25, c is ongoing
    assert table.loc["paired_data_completeness", ["numerator", "denominator"]].tolist() == [1, 1]


# NHS Talking Therapies: caseness PHQ-9 >= 10 or GAD-7 >= 8; reliable change 6 (PHQ-9) and
# 4 (GAD-7) points (NHS Talking Therapies manual, measuring recovery).
NHS_CASES = {
    "A": {"phq9": [15, 9, 5], "gad7": [10, 6, 4]},  # recovered, reliable improvement
    "B": {"phq9": [12, 8], "gad7": [9, 9]},  # still a case on GAD-7: not recovered
    "C": {"phq9": [8, 4], "gad7": [6, 3]},  # not a case at start: outside recovery's base
    "D": {"phq9": [20, 9], "gad7": [7, 12]},  # reliable PHQ fall, reliable GAD rise: neither
    "E": {"phq9": [10, 17], "gad7": [8, 8]},  # at caseness on both thresholds; deteriorated
    "F": {"phq9": [11, 9], "gad7": [9, 7]},  # recovered without reliable improvement
    "G": {"phq9": [14], "gad7": [10]},  # one session: not finished
}


@pytest.fixture(scope="module")
def nhs() -> pd.DataFrame:
    data = sessions_of({k: {"scores": v} for k, v in NHS_CASES.items()}, ("phq9", "gad7"))
    return nhs_talking_therapies(data).set_index("kpi")


@pytest.mark.parametrize(
    ("kpi", "events", "n"),
    [
        ("nhs_caseness_start", 5, 6),
        ("nhs_recovery", 2, 5),
        ("nhs_reliable_improvement", 1, 6),
        ("nhs_reliable_deterioration", 1, 6),
        ("nhs_reliable_recovery", 1, 5),
    ],
)
def test_nhs_talking_therapies_definitions_on_constructed_cases(nhs, kpi, events, n) -> None:
    assert (nhs.loc[kpi, "numerator"], nhs.loc[kpi, "denominator"]) == (events, n)


def test_nhs_finished_counts_referrals_with_two_sessions_and_paired_scores(nhs) -> None:
    assert nhs.loc["nhs_finished", "estimate"] == 6


def test_nhs_measures_need_both_phq9_and_gad7() -> None:
    assert nhs_talking_therapies(sessions_of({"a": {"scores": [20, 26]}})) is None


def test_funnel_limits_are_binomial_around_the_overall_rate() -> None:
    flags = pd.DataFrame({"unit": ["u1"] * 25 + ["u2"] * 25, "ok": [True] * 25 + [False] * 25})
    table = funnel(flags, "unit", "ok").set_index("unit")
    half = stats.norm.ppf(0.975) * np.sqrt(0.25 / 25)  # overall 0.5, n = 25
    assert table.loc["u1", "low_95"] == pytest.approx(0.5 - half)
    assert table.loc["u1", "high_95"] == pytest.approx(0.5 + half)
    assert table["outside_998"].all()  # 100% and 0% are far outside 3 SD


# Severity-adjusted effect size (Seidel, Miller & Chow, 2014) with made-up reference norms:
# predicted improvement = 20 - 0.6 * intake; reference mean improvement 8, reference SD 6.
NORMS = SeverityNorms(intercept=20, slope=-0.6, mean_improvement=8, sd=6, source="test norms")
SAES_CASES = {
    "a": {"scores": [15, 27]},  # +12, predicted 11: residual +1 -> (8 + 1) / 6 = 1.5
    "b": {"scores": [20, 26]},  # +6, predicted 8: residual -2 -> 1.0
    "c": {"scores": [10, 24]},  # +14, predicted 14: residual 0 -> 1.3333
    "d": {"scores": [30, 36]},  # not in the clinical range (ORS < 25) at start: left out
}


def test_severity_adjusted_effect_size_matches_a_hand_computed_case() -> None:
    # mean 1.277778; SD of (1.5, 1.0, 1.3333) = 0.254588; t(0.975, 2) = 4.302653
    outcomes = client_outcomes(sessions_of(SAES_CASES), "ors")
    saes, low, high, n = severity_adjusted_effect_size(outcomes, NORMS)
    assert n == 3
    assert (saes, low, high) == pytest.approx((1.277778, 0.645347, 1.910208), abs=1e-5)


def test_severity_adjusted_effect_size_is_a_kpi_only_with_norms() -> None:
    outcomes = client_outcomes(sessions_of(SAES_CASES), "ors")
    assert "severity_adjusted_es" not in set(outcome_kpis(outcomes, "ors", "2025/26")["kpi"])
    kpis = outcome_kpis(outcomes, "ors", "2025/26", norms=NORMS).set_index("kpi")
    assert kpis.loc["severity_adjusted_es", "denominator"] == 3
    assert kpis.loc["severity_adjusted_es", "estimate"] == pytest.approx(1.277778, abs=1e-5)


@pytest.mark.parametrize("better_than_norms", [0.0, 2.0])
def test_severity_adjusted_effect_size_recovers_a_known_service_effect(better_than_norms) -> None:
    # A service whose clients improve as the reference population does, plus a fixed number of
    # points: the SAES is (reference mean improvement + those points) / reference SD.
    rng = np.random.default_rng(7)
    intake = rng.normal(18, 5, 20_000)
    improvement = 20 - 0.6 * intake + better_than_norms + rng.normal(0, 4, intake.size)
    clinical = intake < 25
    reference_mean = 20 - 0.6 * 18  # the population mean improvement (intake mean 18) ...
    reference_mean -= 0.6 * (intake[clinical].mean() - 18)  # ... among the clinical range
    norms = SeverityNorms(20, -0.6, reference_mean, 5.0, "simulated population")
    rows = pd.DataFrame({"finished": True, "clinical_start": clinical, "pre": intake,
                         "improvement": improvement})  # fmt: skip
    saes, low, high, n = severity_adjusted_effect_size(rows, norms)
    truth = (reference_mean + better_than_norms) / 5.0
    se = (high - low) / (2 * 1.96)
    assert abs(saes - truth) < 4 * se
    assert n == clinical.sum()


def test_binomial_effect_size_display_of_the_meta_analytic_correlation() -> None:
    # Rosenthal & Rubin (1982): success rates .5 +/- r/2; r = .278 (Flückiger et al., 2018)
    assert binomial_effect_size_display(0.278) == pytest.approx((0.639, 0.361))
    with pytest.raises(ValueError, match="between -1 and 1"):
        binomial_effect_size_display(1.2)
