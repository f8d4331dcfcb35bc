"""Did feedback help: the design read from the data, and recovery of the simulator's feedback
effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.derive import client_table
from allianceanalysis.feedback import DESIGNS, feedback_design, feedback_effects
from allianceanalysis.simulate import simulate_study

from .helpers import assert_equals_reference, reference_sessions


def cases(therapists: list[str], conditions: list[str], days: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": [f"c{i}" for i in range(len(therapists))],
            "therapist_id": therapists,
            "session": 1,
            "session_date": pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D"),
            "condition": conditions,
        }
    )


def test_conditions_within_therapists_over_the_same_period_are_within_therapists() -> None:
    data = cases(["t", "t", "u", "u"], ["none", "feedback", "feedback", "none"], [0, 1, 2, 3])
    assert feedback_design(data)["design"] == "within_therapists"


def test_every_feedback_case_after_every_other_is_before_after() -> None:
    data = cases(["t", "t", "u", "u"], ["none", "none", "feedback", "feedback"], [0, 1, 2, 3])
    assert feedback_design(data)["design"] == "before_after"


def test_conditions_that_split_therapists_are_between_therapists() -> None:
    data = cases(["t", "t", "u", "u"], ["none", "none", "feedback", "feedback"], [0, 3, 1, 2])
    design = feedback_design(data)
    assert design["design"] == "between_therapists"
    assert design["therapists_with_both"] == 0 and design["therapists"] == 2


def test_without_both_conditions_one_row_says_there_is_nothing_to_compare() -> None:
    data = simulate_study(n_clients=100, n_therapists=5, seed=1).sessions
    table = feedback_effects(data)
    assert len(table) == 1 and table["message"].iloc[0] == DESIGNS["one_condition"]


@pytest.mark.parametrize(
    ("assignment", "design"),
    [("client", "within_therapists"), ("therapist", "between_therapists"),
     ("date", "before_after")],
)  # fmt: skip
def test_the_simulators_assignments_are_read_as_their_designs(assignment, design) -> None:
    data = simulate_study(n_clients=400, n_therapists=20, feedback=assignment, seed=2).sessions
    assert feedback_design(data)["design"] == design
    assert (feedback_effects(data)["message"].str.endswith(DESIGNS[design])).all()


@pytest.fixture(scope="module")
def randomised() -> tuple[pd.DataFrame, float]:
    """Clients randomised to feedback, which adds 1.5 points to the gain a client approaches
    (the simulator's gain_i), so the final outcome at session T gains 1.5 (1 - exp(-(T - 1) /
    2.5)): the truth is that averaged over the cases' final sessions."""
    study = simulate_study(n_clients=6000, n_therapists=100, feedback="client", seed=9)
    final = client_table(study.sessions, early_session=1).dropna(
        subset=["outcome_intake", "outcome_final"]
    )
    reached = 1 - np.exp(-(final["session_final"].astype(float) - 1)
                         / study.parameters.change_sessions)  # fmt: skip
    return feedback_effects(study.sessions), study.parameters.feedback_effect * reached.mean()


def test_the_simulated_feedback_effect_on_outcome_is_recovered(randomised) -> None:
    table, truth = randomised
    row = table.set_index(["model", "term"]).loc[("feedback_outcome", "feedback")]
    assert row["ci_low"] < truth < row["ci_high"]


def test_feedback_lowers_the_odds_of_dropout_as_simulated(randomised) -> None:
    table, _ = randomised
    row = table.set_index(["model", "term"]).loc[("feedback_dropout", "odds_ratio_feedback")]
    assert row["ci_high"] < 1


def test_the_feedback_models_equal_lme4_and_glmer() -> None:
    """tests/reference/feedback_reference.R (conditions and client tables derived in R; lme4
    REML with Satterthwaite df; glmer for dropout)."""
    assert_equals_reference(feedback_effects(reference_sessions("feedback")),
                            "feedback_feedback.csv")  # fmt: skip
