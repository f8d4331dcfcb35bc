"""Rupture and repair detection: hand-built sequences, the default threshold, and recovery of
the simulator's ruptures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.pipeline import early_warning_step
from allianceanalysis.ruptures import (
    RETEST_RELIABILITY,
    case_ruptures,
    detect_ruptures,
    reliable_drop,
    rupture_table,
)
from allianceanalysis.simulate import simulate_study


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
    with pytest.raises(ValueError, match="give the rupture threshold in points"):
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
                       calibration=tmp_path / "c.csv", outcome="ors", alliance="wai_sr",
                       early_session=3, settings=settings)  # fmt: skip
    table = pd.read_csv(tmp_path / "t.csv").set_index("model")
    assert "give the rupture threshold in points" in table.loc["ruptures", "message"]
