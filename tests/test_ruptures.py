"""Rupture and repair detection: hand-built sequences, the default threshold, and recovery of
the simulator's ruptures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.errors import NotEstimable
from allianceanalysis.pipeline import early_warning_step
from allianceanalysis.ruptures import (
    RETEST_RELIABILITY,
    case_ruptures,
    detect_ruptures,
    reliable_drop,
    rupture_dropout,
    rupture_outcome,
    rupture_states,
    rupture_table,
)
from allianceanalysis.simulate import SimulatedStudy, simulate_study

from .helpers import REFERENCE, assert_equals_reference, reference_sessions


def sequence(*ratings: float | None, client: str = "a") -> pd.DataFrame:
    """One client's sessions 1, 2, ... with these SRS ratings (None: not rated)."""
    return pd.DataFrame(
        {
            "client_id": client,
            "therapist_id": "t",
            "session": np.arange(1, len(ratings) + 1),
            "srs": [np.nan if r is None else r for r in ratings],
        }
    )


def ruptured(detected: pd.DataFrame) -> pd.DataFrame:
    return detected[detected["rupture"]]


def test_a_drop_of_exactly_the_threshold_is_a_rupture_and_a_smaller_one_is_not() -> None:
    detected = detect_ruptures(sequence(36.0, 31.0, 30.0, 25.1), threshold=5.0)
    assert ruptured(detected)["session"].tolist() == [2]


def test_a_return_to_the_pre_rupture_rating_within_the_window_is_a_repair() -> None:
    detected = detect_ruptures(sequence(35.0, 27.0, 30.0, 35.0, 33.0), threshold=5.0)
    row = ruptured(detected).iloc[0]
    assert bool(row["repaired"]) and bool(row["window_complete"])
    assert row["repair_session"] == 4


def test_a_return_after_the_window_is_not_a_repair() -> None:
    detected = detect_ruptures(sequence(35.0, 27.0, 30.0, 31.0, 35.0), threshold=5.0,
                               repair_within=2)  # fmt: skip
    row = ruptured(detected).iloc[0]
    assert not row["repaired"] and bool(row["window_complete"])
    assert pd.isna(row["repair_session"])


def test_a_case_that_ends_before_its_window_is_unrepaired_with_the_window_incomplete() -> None:
    row = ruptured(detect_ruptures(sequence(35.0, 36.0, 28.0, 30.0), threshold=5.0)).iloc[0]
    assert not row["repaired"] and not row["window_complete"]


def test_unrated_sessions_are_skipped_between_consecutive_ratings() -> None:
    detected = detect_ruptures(sequence(36.0, None, 29.0, None, 36.0), threshold=5.0)
    row = ruptured(detected).iloc[0]
    assert row["session"] == 3 and row["drop"] == 7.0 and row["repair_session"] == 5
    assert len(detected) == 3


def test_a_drop_from_one_clients_last_rating_to_the_next_clients_first_is_no_rupture() -> None:
    data = pd.concat([sequence(38.0, 39.0, client="a"), sequence(20.0, 21.0, client="b")])
    assert not detect_ruptures(data, threshold=5.0)["rupture"].any()


def test_a_client_is_unrepaired_if_any_of_its_ruptures_is_not_repaired() -> None:
    data = pd.concat([
        sequence(36.0, 28.0, 36.0, 29.0, 30.0, 31.0, 31.0, client="a"),
        sequence(36.0, 28.0, 37.0, client="b"),
        sequence(36.0, 35.0, client="c"),
    ])  # fmt: skip
    cases = case_ruptures(detect_ruptures(data, threshold=5.0)).set_index("client_id")
    assert cases["rupture_status"].to_dict() == {"a": "unrepaired", "b": "repaired", "c": "none"}
    assert cases.loc["a", "ruptures"] == 2 and cases.loc["a", "first_rupture_session"] == 2


def test_the_default_threshold_is_jacobson_truax_from_the_first_ratings_sd() -> None:
    data = pd.concat([sequence(30.0 + 2 * i, 30.0, client=f"c{i}") for i in range(6)])
    sd = np.std([30.0 + 2 * i for i in range(6)], ddof=1)
    expected = 1.959963984540054 * np.sqrt(2) * sd * np.sqrt(1 - RETEST_RELIABILITY["srs"][0])
    assert reliable_drop(data) == pytest.approx(expected, rel=1e-12)
    assert detect_ruptures(data)["threshold"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_an_instrument_without_a_retest_reliability_needs_a_threshold() -> None:
    data = sequence(50.0, 40.0).rename(columns={"srs": "wai_sr"})
    with pytest.raises(NotEstimable, match="give the rupture threshold in points"):
        detect_ruptures(data, "wai_sr")
    assert detect_ruptures(data, "wai_sr", threshold=5.0)["rupture"].sum() == 1


def test_rates_count_clients_with_two_ratings_and_judge_repair_on_complete_windows() -> None:
    data = pd.concat([
        sequence(36.0, 28.0, 36.0, client="a"),  # repaired
        sequence(36.0, 28.0, 29.0, 30.0, 31.0, client="b"),  # unrepaired, window complete
        sequence(36.0, 28.0, client="c"),  # unrepaired, window incomplete: not judged
        sequence(36.0, client="d"),  # one rating: not at risk
    ])  # fmt: skip
    table = rupture_table(detect_ruptures(data, threshold=5.0)).set_index("term")
    assert table.loc["clients_with_rupture", ["estimate", "n_obs"]].tolist() == [1.0, 3]
    assert table.loc["repair_rate", ["estimate", "n_obs"]].tolist() == [0.5, 2]
    assert table.loc["ruptures_per_transition", "n_obs"] == 7


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ruptures of 15 SRS points (SD 1), far above the threshold: detection is nearly exact."""
    study = simulate_study(n_clients=3000, n_therapists=60, rupture_drop=15.0,
                           rupture_drop_sd=1.0, seed=11)  # fmt: skip
    truth = study.latent[["rupture", "rupture_repaired"]].rename(
        columns={"rupture": "true_rupture", "rupture_repaired": "true_repaired"}
    )
    sessions = pd.concat([study.sessions, truth], axis=1)
    detected = detect_ruptures(sessions).merge(
        sessions[["client_id", "session", "true_rupture", "true_repaired"]],
        on=["client_id", "session"],
    )
    return detected, study.parameters


def test_simulated_ruptures_are_found_with_few_false_alarms(simulated) -> None:
    detected, _ = simulated
    found = detected.loc[detected["true_rupture"], "rupture"].mean()
    false_alarms = 1 - detected.loc[detected["rupture"], "true_rupture"].mean()
    assert found > 0.9
    assert false_alarms < 0.05


def test_the_simulated_repair_probability_is_recovered(simulated) -> None:
    detected, parameters = simulated
    table = rupture_table(detected).set_index("term")
    low, high = table.loc["repair_rate", ["ci_low", "ci_high"]]
    assert low - 0.05 < parameters.repair_probability < high + 0.05


def test_the_workflow_step_says_why_ruptures_of_an_instrument_without_a_threshold_are_missing(
    tmp_path,
) -> None:
    data = sequence(50.0, 40.0, 45.0).rename(columns={"srs": "wai_sr"}).assign(ors=20.0)
    data.to_parquet(tmp_path / "sessions.parquet")
    settings = {"rupture_threshold": None, "repair_within": 3, "not_on_track_percentile": 0.1,
                "folds": 5}  # fmt: skip
    early_warning_step(tmp_path / "sessions.parquet", table=tmp_path / "t.csv",
                       calibration=tmp_path / "c.csv", sequences=tmp_path / "s.parquet",
                       curves=tmp_path / "e.csv", outcome="ors", alliance="wai_sr",
                       early_session=3, settings=settings, seed=20261125)  # fmt: skip
    table = pd.read_csv(tmp_path / "t.csv").set_index("model")
    assert "give the rupture threshold in points" in table.loc["ruptures", "message"]


def states(*ratings: float | None) -> pd.DataFrame:
    frame = sequence(*ratings)
    return rupture_states(frame, detect_ruptures(frame, threshold=5.0))


def test_a_repaired_first_rupture_is_unresolved_until_the_return_then_repaired() -> None:
    s = states(38.0, 30.0, 32.0, 38.0, 36.0)
    assert s["rupture_unresolved"].tolist() == [0, 1, 1, 0, 0]
    assert s["rupture_open"].tolist() == [0, 0, 1, 0, 0]
    assert s["rupture_repaired"].tolist() == [0, 0, 0, 1, 1]
    assert s["rupture_unrepaired"].tolist() == [0, 0, 0, 0, 0]


def test_an_unrepaired_first_rupture_is_unrepaired_after_its_session_only() -> None:
    s = states(38.0, 30.0, 31.0, 31.0, 32.0, 33.0)
    assert s["rupture_unresolved"].tolist() == [0, 1, 1, 1, 1, 1]
    assert s["rupture_unrepaired"].tolist() == [0, 0, 1, 1, 1, 1]
    assert s[["rupture_open", "rupture_repaired"]].to_numpy().sum() == 0


def test_states_follow_the_first_rupture_and_reach_unrated_sessions() -> None:
    s = states(38.0, 30.0, None, 38.0, 30.0, 31.0)  # the second rupture (session 5) is ignored
    assert s["rupture_repaired"].tolist() == [0, 0, 0, 1, 1, 1]
    assert s["rupture_unresolved"].tolist() == [0, 1, 1, 0, 0, 0]


def test_a_case_without_rupture_is_in_no_state() -> None:
    s = states(30.0, 31.0, 33.0)
    assert s.filter(like="rupture_").to_numpy().sum() == 0


def test_the_rupture_models_say_why_when_nothing_ruptured() -> None:
    frame = pd.concat([sequence(30.0, 31.0, 33.0, client=c) for c in "abc"])
    frame = frame.assign(ors=20.0, end_status="dropout")
    with pytest.raises(NotEstimable, match="no rupture was detected"):
        rupture_dropout(frame, detect_ruptures(frame, threshold=5.0))


def true_ruptures(study: SimulatedStudy) -> pd.DataFrame:
    """The simulator's ruptures in :func:`detect_ruptures`' shape: the session each began and,
    when repaired, the session the repair was complete (``repair_sessions`` later)."""
    sessions = study.sessions.reset_index(drop=True)
    began = study.latent["rupture"].to_numpy()
    repaired = began & study.latent["rupture_repaired"].to_numpy()
    repair = sessions["session"] + study.parameters.repair_sessions
    return sessions[["client_id", "therapist_id", "session"]].assign(
        rupture=began, repaired=repaired, repair_session=repair.where(repaired).astype("Int64")
    )


def rupture_study(**changes: float) -> SimulatedStudy:
    """6,000 clients whose outcome depends on the alliance only through ruptures (no
    session-level state effect), so that the rupture effects are the simulator's alone."""
    return simulate_study(n_clients=6000, n_therapists=60, seed=21, state_effect=0.0, **changes)


# Tolerance of the recovery tests: 0.35 ORS points, about 3.5 standard errors at 6,000 clients.
# Later ruptures add their own effects to the state of the first (about +0.2 points after a
# repair at 4% ruptures a session; docs/models.md), the rest is sampling error.
RUPTURE_TOLERANCE = 0.35


def test_the_outcome_after_an_unrepaired_rupture_is_recovered() -> None:
    study = rupture_study(repair_probability=0.0)
    table = rupture_outcome(study.sessions, true_ruptures(study)).set_index("term")
    truth = study.parameters.rupture_unrepaired_outcome
    assert abs(table.loc["rupture_unrepaired", "estimate"] - truth) < RUPTURE_TOLERANCE


def test_the_outcome_after_a_repaired_rupture_is_recovered() -> None:
    study = rupture_study(repair_probability=1.0)
    table = rupture_outcome(study.sessions, true_ruptures(study)).set_index("term")
    truth = study.parameters.rupture_repaired_outcome
    assert abs(table.loc["rupture_repaired", "estimate"] - truth) < RUPTURE_TOLERANCE
    assert abs(table.loc["rupture_open", "estimate"]) < RUPTURE_TOLERANCE


def test_an_unresolved_rupture_raises_dropout_by_the_simulated_alliance_hazard() -> None:
    """Unrepaired ruptures that keep their whole drop (8 SRS points on average) at -0.12 on the
    logit per point: about +0.96 on the logit while unresolved. Tolerance 0.2 (clipping at the
    SRS ceiling and the formation trend move it by a little; the SE is about 0.05)."""
    study = rupture_study(repair_probability=0.0, unrepaired_persistence=1.0)
    table = rupture_dropout(study.sessions, true_ruptures(study)).set_index("term")
    p = study.parameters
    truth = -p.dropout_alliance * p.rupture_drop
    assert abs(table.loc["rupture_unresolved", "estimate"] - truth) < 0.2


def test_a_repaired_rupture_leaves_the_dropout_hazard_as_before() -> None:
    study = rupture_study(repair_probability=1.0)
    table = rupture_dropout(study.sessions, true_ruptures(study)).set_index("term")
    low, high = table.loc["rupture_repaired", ["ci_low", "ci_high"]]
    assert low < 0.0 < high
    assert table.loc["rupture_unresolved", "estimate"] > 0.3


def test_detected_ruptures_keep_the_simulated_signs_attenuated_by_misclassification() -> None:
    """With ruptures detected from the ratings (false alarms, missed and misjudged repairs)
    the effects keep their sign and shrink towards zero."""
    study = rupture_study()
    table = rupture_outcome(study.sessions, detect_ruptures(study.sessions)).set_index("term")
    unrepaired = table.loc["rupture_unrepaired", "estimate"]
    repaired = table.loc["rupture_repaired", "estimate"]
    assert study.parameters.rupture_unrepaired_outcome < unrepaired < 0.0
    assert 0.0 < repaired < study.parameters.rupture_repaired_outcome + RUPTURE_TOLERANCE


def test_the_rupture_models_equal_lme4_and_glmer() -> None:
    """tests/reference/ruptures_reference.R detects ruptures and derives the states in R."""
    sessions = reference_sessions("ors_srs")
    detected = detect_ruptures(sessions)
    ours = pd.concat([rupture_outcome(sessions, detected), rupture_dropout(sessions, detected)])
    reference = pd.read_csv(REFERENCE / "ruptures_ors_srs.csv").set_index("term")
    first = detected[detected["rupture"]].drop_duplicates("client_id")
    assert detected["threshold"].iloc[0] == pytest.approx(reference.loc["threshold", "estimate"])
    assert len(first) == reference.loc["first_ruptures", "estimate"]
    assert first["repaired"].sum() == reference.loc["first_repaired", "estimate"]
    assert_equals_reference(ours, "ruptures_ors_srs.csv", ["rupture_outcome", "rupture_dropout"])
