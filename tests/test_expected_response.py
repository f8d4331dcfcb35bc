"""Expected treatment response and the not-on-track signal: the bound by hand and in both
directions, its coverage on simulated data, and the signal's accuracy on built cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from allianceanalysis.errors import NotEstimable
from allianceanalysis.expected_response import (
    ExpectedResponse,
    fit_expected_response,
    not_on_track,
    signal_accuracy,
)
from allianceanalysis.simulate import simulate_study

from .helpers import assert_equals_reference, reference_sessions

FIXED = pd.Series({"Intercept": 1.0, "intake_c": -0.1, "log_session": 4.0,
                   "intake_log_session": -0.2})  # fmt: skip
VARIANCES = {"var_client": 4.0, "var_client_log_session": 1.0, "cor_client_log_session": 0.5,
             "var_residual": 5.0}  # fmt: skip


def model(outcome: str) -> ExpectedResponse:
    return ExpectedResponse(outcome, 20.0, FIXED, VARIANCES, 0.10, pd.DataFrame())


def test_the_expected_outcome_and_bound_follow_the_formula() -> None:
    expected, bound = model("ors").expected(np.array([25.0]), np.array([4.0]))
    log_t, centred = np.log(4.0), 5.0
    mean = 25.0 + 1.0 - 0.1 * centred + 4.0 * log_t - 0.2 * centred * log_t
    sd = np.sqrt(4.0 + 2 * 0.5 * 2.0 * 1.0 * log_t + log_t**2 + 5.0)
    assert expected[0] == pytest.approx(mean, rel=1e-12)
    assert bound[0] == pytest.approx(mean - stats.norm.ppf(0.9) * sd, rel=1e-12)


def test_for_an_outcome_where_lower_is_better_the_bound_lies_above() -> None:
    expected, bound = model("phq9").expected(np.array([15.0]), np.array([3.0]))
    assert bound[0] > expected[0]


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    sessions = simulate_study(n_clients=6000, n_therapists=100, seed=12).sessions
    return not_on_track(sessions, fit_expected_response(sessions))


def test_about_a_tenth_of_sessions_fall_below_the_10_percent_bound(simulated) -> None:
    assert 0.085 < simulated["not_on_track"].mean() < 0.115
    by_session = simulated[simulated["session"] <= 10].groupby("session")["not_on_track"].mean()
    assert by_session.between(0.07, 0.13).all(), by_session.round(3).to_dict()


def test_the_signal_picks_out_most_clients_who_deteriorate(simulated) -> None:
    table = signal_accuracy(simulated).set_index("term")
    assert table.loc["sensitivity", "ci_low"] > 0.6
    assert table.loc["ppv", "estimate"] > 2 * table.loc["deterioration_rate", "estimate"]


def flags(client: str, intake: float, outcomes: list[float], signals: list[bool]) -> pd.DataFrame:
    sessions = np.arange(2, len(outcomes) + 2)
    return pd.DataFrame({"client_id": client, "session": sessions, "intake": intake,
                         "outcome": outcomes, "not_on_track": signals})  # fmt: skip


def test_accuracy_counts_signals_before_the_final_session_only() -> None:
    built = pd.concat([
        flags("hit", 20.0, [18.0, 16.0, 14.0], [True, False, True]),  # deteriorated (-6)
        flags("miss", 20.0, [20.0, 19.0, 14.0], [False, False, True]),  # final flag only
        flags("false_alarm", 20.0, [15.0, 22.0, 26.0], [True, False, False]),
        flags("quiet", 20.0, [21.0, 24.0, 27.0], [False, False, False]),
    ])  # fmt: skip
    table = signal_accuracy(built).set_index("term")
    assert table.loc["sensitivity", ["estimate", "n_obs"]].tolist() == [0.5, 2]
    assert table.loc["specificity", ["estimate", "n_obs"]].tolist() == [0.5, 2]
    assert table.loc["ppv", "estimate"] == 0.5 and table.loc["npv", "estimate"] == 0.5
    assert table.loc["median_lead_time", "estimate"] == 2.0  # first signal at 2, final at 4


def test_an_outcome_without_a_reliable_change_threshold_cannot_judge_the_signal() -> None:
    with pytest.raises(NotEstimable, match="no reliable-change threshold"):
        signal_accuracy(flags("a", 30.0, [31.0, 32.0], [False, False]), outcome="srs")


def test_the_model_equals_lme4_on_the_reference_data() -> None:
    """tests/reference/expected_response_reference.R (the change data derived in R; lme4 REML,
    lmerTest's Satterthwaite df)."""
    ours = fit_expected_response(reference_sessions("ors_srs")).table
    assert_equals_reference(ours, "expected_response_ors_srs.csv")
