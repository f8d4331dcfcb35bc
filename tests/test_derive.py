"""Derived variables on tiny hand-built datasets where the right answer is written out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.derive import client_table, client_tables, rupture_windows, session_pairs
from allianceanalysis.simulate import simulate_study


def sessions(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["client_id", "therapist_id", "session", "ors", "srs"])


NAN = np.nan
TINY = sessions(
    [
        # client a: complete; final outcome is session 5 (session 6 has no outcome)
        ("a", "t1", 1, 10.0, 30.0),
        ("a", "t1", 2, 12.0, 31.0),
        ("a", "t1", 3, 15.0, 34.0),
        ("a", "t1", 4, 18.0, NAN),
        ("a", "t1", 5, 20.0, 36.0),
        ("a", "t1", 6, NAN, 37.0),
        # client b: eligible; session 4 absent (gap), final is session 5
        ("b", "t1", 1, 20.0, 38.0),
        ("b", "t1", 2, 21.0, 38.0),
        ("b", "t1", 3, 22.0, 40.0),
        ("b", "t1", 5, 26.0, 40.0),
        # client c: no alliance at session 3
        ("c", "t2", 1, 15.0, 35.0),
        ("c", "t2", 2, 16.0, 35.0),
        ("c", "t2", 3, 17.0, NAN),
        ("c", "t2", 4, 19.0, 36.0),
        # client d: nothing after session 3
        ("d", "t2", 1, 12.0, 33.0),
        ("d", "t2", 2, 13.0, 33.0),
        ("d", "t2", 3, 14.0, 34.0),
        # client e: no intake outcome
        ("e", "t2", 1, NAN, 33.0),
        ("e", "t2", 2, 13.0, 33.0),
        ("e", "t2", 3, 14.0, 34.0),
        ("e", "t2", 4, 16.0, 34.0),
    ]
)


@pytest.fixture
def clients() -> pd.DataFrame:
    return client_table(TINY).set_index("client_id")


def test_intake_early_alliance_and_final_outcome(clients: pd.DataFrame) -> None:
    assert clients.loc["a", ["outcome_intake", "alliance_early", "outcome_final"]].tolist() == [
        10.0,
        34.0,
        20.0,
    ]
    assert clients.loc["a", "session_final"] == 5
    assert clients.loc["b", "outcome_final"] == 26.0
    assert clients.loc["b", "session_final"] == 5


def test_early_change_is_outcome_at_k_minus_intake(clients: pd.DataFrame) -> None:
    assert clients.loc["a", "early_change"] == 5.0
    assert clients.loc["b", "early_change"] == 2.0


def test_eligibility_and_the_reason_for_each_exclusion(clients: pd.DataFrame) -> None:
    assert clients["eligible"].to_dict() == {
        "a": True,
        "b": True,
        "c": False,
        "d": False,
        "e": False,
    }
    assert clients.loc["c", "exclusion"] == "no alliance at the early session"
    assert clients.loc["d", "exclusion"] == "no outcome after the early session"
    assert clients.loc["e", "exclusion"] == "no outcome at session 1"


def test_therapist_mean_uses_eligible_clients_only(clients: pd.DataFrame) -> None:
    assert clients.loc["a", "alliance_therapist_mean"] == 37.0  # (34 + 40) / 2
    assert clients.loc["a", "alliance_client_dev"] == -3.0
    assert clients.loc["b", "alliance_client_dev"] == 3.0
    assert clients.loc[["c", "d", "e"], "alliance_therapist_mean"].isna().all()


def test_therapist_with_one_eligible_client_has_zero_deviation() -> None:
    one = client_table(TINY[TINY["client_id"].isin(["a", "c"])]).set_index("client_id")
    assert one.loc["a", "alliance_therapist_mean"] == 34.0
    assert one.loc["a", "alliance_client_dev"] == 0.0


def test_early_session_is_configurable() -> None:
    k2 = client_table(TINY, early_session=2).set_index("client_id")
    assert k2.loc["a", "alliance_early"] == 31.0
    assert k2.loc["a", "outcome_final"] == 20.0
    assert k2.loc["d", "outcome_final"] == 14.0  # session 3 is now after k
    assert bool(k2.loc["d", "eligible"])


def test_session_one_as_early_session_has_no_early_change() -> None:
    k1 = client_table(TINY, early_session=1).set_index("client_id")
    assert (k1.loc[k1["eligible"], "early_change"] == 0).all()


def test_dropout_comes_from_end_status() -> None:
    data = TINY.assign(
        end_status=TINY["client_id"].map(
            {"a": "planned", "b": "dropout", "c": "ongoing", "d": None, "e": "planned"}
        )
    )
    dropout = client_table(data).set_index("client_id")["dropout"]
    assert dropout["a"] == 0 and dropout["b"] == 1
    assert dropout[["c", "d"]].isna().all()


def test_dropout_without_end_status_follows_the_session_count_rule() -> None:
    short = sessions(
        [
            ("x", "t", 1, 10.0, 30.0),
            ("x", "t", 2, 11.0, 31.0),
            ("y", "t", 1, 10.0, 30.0),
            ("y", "t", 2, 11.0, 31.0),
            ("y", "t", 3, 12.0, 32.0),
        ]
    )
    dropout = client_table(short).set_index("client_id")["dropout"]
    assert dropout.to_dict() == {"x": 1.0, "y": 0.0}


def test_episodes_are_separate_cases() -> None:
    data = pd.concat([TINY.assign(episode_id="e1"), TINY.assign(episode_id="e2")])
    table = client_table(data)
    assert len(table) == 10
    assert set(table.columns) >= {"client_id", "episode_id"}


def test_session_pairs_follow_consecutive_attended_sessions() -> None:
    pairs = session_pairs(TINY)
    a = pairs[pairs["client_id"] == "a"]
    # a: (1,2), (2,3) kept; (3,4) kept (alliance at 3, outcome at both); (4,5) dropped: no
    # alliance at 4; (5,6) dropped: no outcome at 6
    assert a[["session", "session_next"]].values.tolist() == [[1, 2], [2, 3], [3, 4]]
    b = pairs[pairs["client_id"] == "b"]
    assert b[["session", "session_next"]].values.tolist() == [[1, 2], [2, 3], [3, 5]]
    assert b["outcome_next"].tolist() == [21.0, 22.0, 26.0]


def test_client_means_use_every_observed_session() -> None:
    a = session_pairs(TINY).query("client_id == 'a'")
    alliance_mean = np.mean([30, 31, 34, 36, 37])
    outcome_mean = np.mean([10, 12, 15, 18, 20])
    assert a["alliance_client_mean"].iloc[0] == pytest.approx(alliance_mean)
    assert a["outcome_client_mean"].iloc[0] == pytest.approx(outcome_mean)
    assert a["alliance_within"].tolist() == pytest.approx(
        [30 - alliance_mean, 31 - alliance_mean, 34 - alliance_mean]
    )
    assert a["outcome_within"].tolist() == pytest.approx(
        [10 - outcome_mean, 12 - outcome_mean, 15 - outcome_mean]
    )


def test_other_instruments_are_used_by_name() -> None:
    data = TINY.rename(columns={"ors": "phq9", "srs": "wai_sr"})
    table = client_table(data, outcome="phq9", alliance="wai_sr").set_index("client_id")
    assert table.loc["a", "outcome_final"] == 20.0


def test_rupture_windows_align_each_rupture_and_stop_at_the_case_boundary() -> None:
    data = sessions(
        [("a", "t1", 1, 20.0, 38.0), ("a", "t1", 2, 21.0, 30.0), ("a", "t1", 4, 22.0, 35.0),
         ("b", "t1", 1, 20.0, 39.0), ("b", "t1", 2, 20.0, 31.0)]
    )  # fmt: skip
    flags = pd.Series([False, True, False, False, True])
    kind = pd.Series(["", "repaired", "", "", "unrepaired"])
    windows = rupture_windows(data, flags, before=1, after=1, kind=kind)
    a = windows[windows["client_id"] == "a"]
    assert a["alliance"].tolist() == [38.0, 30.0, 35.0]  # session 3 was not attended
    assert a["change"].tolist() == [0.0, -8.0, -3.0]
    b = windows[windows["client_id"] == "b"]
    assert b["alliance"].isna().tolist() == [False, False, True]  # b has no later session
    assert windows.groupby("rupture")["kind"].first().tolist() == ["repaired", "unrepaired"]


def test_rupture_windows_agree_with_shifting_each_clients_sessions() -> None:
    study = simulate_study(n_clients=300, seed=12)
    data, flags = study.sessions, study.latent["rupture"]
    windows = rupture_windows(data, flags, before=2, after=3).set_index(["rupture", "offset"])
    by_client = data.groupby("client_id")["srs"]
    at = flags.to_numpy()
    for offset in range(-2, 4):
        expected = (by_client.shift(-offset) - by_client.shift(1))[at].to_numpy()
        got = windows.xs(offset, level="offset")["change"].to_numpy()
        np.testing.assert_array_equal(got, expected)


def test_sessions_without_an_episode_are_a_case_of_their_own() -> None:
    data = sessions(
        [("a", "t", 1, 10.0, 30.0), ("a", "t", 2, 12.0, 31.0), ("a", "t", 1, 15.0, 33.0)]
    ).assign(episode_id=["e1", "e1", None])
    cases = client_table(data, early_session=1)
    assert len(cases) == 2
    assert cases["sessions_attended"].tolist() == [2, 1]
    assert cases["episode_id"].isna().tolist() == [False, True]


def test_client_tables_equal_client_table_at_each_k_in_any_row_order() -> None:
    shuffled = TINY.sample(frac=1.0, random_state=3)
    tables = client_tables(shuffled, early_sessions=(2, 3))
    for k, table in tables.items():
        pd.testing.assert_frame_equal(table, client_table(TINY, early_session=k))


def test_an_empty_session_table_gives_empty_derived_tables() -> None:
    empty = TINY.iloc[:0]
    assert client_table(empty).empty
    assert session_pairs(empty).empty
