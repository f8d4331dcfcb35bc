"""The alliance's components (goal, task, bond; the SRS's items) and outcome."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.io import load_dataset
from allianceanalysis.models import run_model
from allianceanalysis.simulate import simulate_study

from .helpers import spec_for


@pytest.fixture(scope="module")
def sessions() -> pd.DataFrame:
    return simulate_study(n_clients=400, n_therapists=20, seed=8).sessions


def partial_r(table: pd.DataFrame, model: str) -> pd.Series:
    return table[(table["model"] == model) & (table["term"] == "partial_r")].iloc[0]


def test_a_component_that_is_the_whole_scale_gives_alliance_outcome(sessions) -> None:
    components = run_model("alliance_components", sessions.assign(srs_relationship=sessions["srs"]),
                           bootstrap=50)  # fmt: skip
    whole = run_model("alliance_outcome", sessions, bootstrap=50)
    mine = components[components["model"] == "alliance_component_bond"].reset_index(drop=True)
    assert mine["term"].tolist() == whole["term"].tolist()
    np.testing.assert_allclose(mine["estimate"], whole["estimate"], rtol=1e-12)
    np.testing.assert_allclose(mine["ci_high"], whole["ci_high"], rtol=1e-12)


def test_the_component_that_carries_the_association_is_found(sessions) -> None:
    # bond tracks the alliance; goal is noise: its interval covers 0, bond's does not
    rng = np.random.default_rng(3)
    noisy = sessions.assign(
        srs_relationship=sessions["srs"] / 4,
        srs_goals_and_topics=rng.uniform(0, 10, len(sessions)).round(1),
    )
    table = run_model("alliance_components", noisy, bootstrap=50)
    bond, goal = (
        partial_r(table, "alliance_component_bond"),
        partial_r(table, "alliance_component_goal"),
    )
    assert bond["ci_low"] > 0 and goal["ci_low"] < 0 < goal["ci_high"]
    assert set(table["model"]) == {"alliance_component_bond", "alliance_component_goal",
                                   "early_alliance_component_bond",
                                   "early_alliance_component_goal"}  # fmt: skip


def test_totals_only_say_which_items_are_needed(sessions) -> None:
    table = run_model("alliance_components", sessions)
    assert table["message"].item().startswith("not computed: the data carry no SRS components")
    assert "srs_relationship" in table["message"].item()


def test_a_scale_without_components_says_so(sessions) -> None:
    data = sessions.rename(columns={"srs": "wai"})
    table = run_model("alliance_components", data, alliance="wai")
    assert (
        table["message"].item() == "not computed: the WAI has no components (subscales) on record"
    )


def test_item_level_wai_sr_gives_goal_task_and_bond(tmp_path: Path) -> None:
    study = simulate_study(n_clients=200, n_therapists=10, seed=9, alliance="wai_sr").sessions
    rng = np.random.default_rng(4)
    frame = study.drop(columns=["wai_sr"])
    for item in range(1, 13):  # items near a twelfth of the total each, within 1-5
        share = study["wai_sr"] / 12 + rng.normal(0, 0.4, len(study))
        frame[f"wai_sr_{item}"] = share.round().clip(1, 5).where(study["wai_sr"].notna())
    path = tmp_path / "wai.csv"
    frame.to_csv(path, index=False)
    validated = load_dataset(spec_for(path, alliance="wai_sr")).sessions
    table = run_model("alliance_components", validated, alliance="wai_sr", bootstrap=50)
    models = set(table["model"])
    assert {f"alliance_component_{c}" for c in ("goal", "task", "bond")} <= models
    assert table["converged"].all()
