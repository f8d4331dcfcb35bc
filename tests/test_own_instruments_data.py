"""Data scored with the registry: item-level files, subscales, and instruments defined as data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.errors import DataError
from allianceanalysis.instruments import get_instrument
from allianceanalysis.io import check_dataset, load_dataset

from .helpers import spec_for
from .test_instrument_definitions import BDI


def item_file(tmp_path: Path, key: str, n_clients: int = 6, seed: int = 1) -> Path:
    """A canonical file with ORS totals and ``key``'s items (random whole responses)."""
    inst = get_instrument(key)
    rng = np.random.default_rng(seed)
    rows = n_clients * 3
    frame = pd.DataFrame({
        "client_id": np.repeat([f"c{i}" for i in range(n_clients)], 3),
        "therapist_id": np.repeat([f"t{i % 2}" for i in range(n_clients)], 3),
        "session": np.tile([1, 2, 3], n_clients),
        "ors": rng.integers(5, 35, rows).astype(float),
    })  # fmt: skip
    low, high = int(inst.item_min), int(inst.item_max)
    for column in inst.item_columns:
        frame[column] = rng.integers(low, high + 1, rows)
    path = tmp_path / f"{key}.csv"
    frame.to_csv(path, index=False)
    return path


def test_item_level_wai_sr_gives_its_total_and_goal_task_bond(tmp_path: Path) -> None:
    path = item_file(tmp_path, "wai_sr")
    sessions = load_dataset(spec_for(path, alliance="wai_sr")).sessions
    raw = pd.read_csv(path)
    items = raw[[f"wai_sr_{i}" for i in range(1, 13)]]
    assert np.array_equal(sessions["wai_sr"], items.sum(axis=1))
    bond = raw[[f"wai_sr_{i}" for i in (3, 5, 7, 9)]].sum(axis=1)
    assert np.array_equal(sessions["wai_sr_bond"], bond)
    assert {"wai_sr_goal", "wai_sr_task"} <= set(sessions.columns)


def test_item_level_haq_is_rekeyed_by_the_loader(tmp_path: Path) -> None:
    path = item_file(tmp_path, "haq2")
    sessions = load_dataset(spec_for(path, alliance="haq2")).sessions
    raw = pd.read_csv(path)
    keyed = raw[[f"haq2_{i}" for i in range(1, 20)]].copy()
    for item in (4, 8, 11, 16, 19):
        keyed[f"haq2_{item}"] = 7 - keyed[f"haq2_{item}"]
    assert np.array_equal(sessions["haq2"], keyed.sum(axis=1))


def test_a_supplied_total_must_equal_the_score_of_its_items(tmp_path: Path) -> None:
    path = item_file(tmp_path, "haq2")
    raw = pd.read_csv(path)
    raw["haq2"] = raw[[f"haq2_{i}" for i in range(1, 20)]].sum(axis=1)  # not re-keyed
    raw.to_csv(path, index=False)
    result = check_dataset(spec_for(path, alliance="haq2"))
    assert set(result.problems["rule"]) == {"the total differs from the sum of its items"}


def own_file(tmp_path: Path, values: list[float]) -> Path:
    frame = pd.DataFrame({"client_id": "c1", "therapist_id": "t1",
                          "session": range(1, len(values) + 1), "bdi": values})  # fmt: skip
    path = tmp_path / "trial.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_defined_instrument_validates_its_range(tmp_path: Path) -> None:
    path = own_file(tmp_path, [30, 64, 12])
    spec = spec_for(path, outcome="bdi", alliance=None, instruments={"bdi": BDI})
    with pytest.raises(DataError) as caught:
        load_dataset(spec)
    problem = caught.value.problems.iloc[0]
    assert (problem["row"], problem["column"], problem["value"]) == (3, "bdi", "64")
    assert problem["rule"] == "the BDI-II total must be between 0 and 63"
    assert str(path) in str(caught.value)


def test_a_defined_instrument_is_whole_numbered_when_its_items_are(tmp_path: Path) -> None:
    path = own_file(tmp_path, [30.5])
    spec = spec_for(path, outcome="bdi", alliance=None, instruments={"bdi": BDI})
    result = check_dataset(spec)
    assert result.problems["rule"].tolist() == ["the BDI-II total must be a whole number"]


def test_outcome_only_data_need_no_alliance_column(tmp_path: Path) -> None:
    path = own_file(tmp_path, [30.0, 20.0, 12.0])
    spec = spec_for(path, outcome="bdi", alliance=None, instruments={"bdi": BDI})
    result = load_dataset(spec)
    assert len(result.sessions) == 3 and result.summary["alliance"] is None


def test_an_unknown_instrument_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = own_file(tmp_path, [30.0])
    with pytest.raises(DataError, match=r"unknown instrument 'bdi'.*instruments:"):
        load_dataset(spec_for(path, outcome="bdi", alliance=None))
