"""Power by simulation: detection rates against the truth the simulator was given.

Tolerances: a rejection rate is compared with its target within four Monte Carlo standard
errors, sqrt(p(1 - p) / replicates).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.power import POWER_COLUMNS, power_curve, run_replicates, summarise
from allianceanalysis.simulate import SimulationParameters

NO_ALLIANCE_EFFECT = SimulationParameters(alliance_effect_between=0.0, alliance_effect_within=0.0)


def test_power_curve_has_one_row_per_design_with_its_monte_carlo_error() -> None:
    designs = [{"n_clients": 150, "n_therapists": 8}, {"n_clients": 300, "n_therapists": 15}]
    curve = power_curve(designs, replicates=6, seed=2)
    assert list(curve.columns) == POWER_COLUMNS
    assert curve[["n_clients", "n_therapists"]].to_numpy().tolist() == [[150, 8], [300, 15]]
    expected = np.sqrt(curve["power"] * (1 - curve["power"]) / 6)
    np.testing.assert_allclose(curve["mc_se"], expected)
    assert (curve["fitted"] <= 6).all()


def test_a_large_between_therapist_effect_is_always_detected() -> None:
    strong = SimulationParameters(alliance_effect_between=6.0)
    curve = power_curve([{"n_clients": 400, "n_therapists": 30}], replicates=10,
                        params=strong, seed=3)  # fmt: skip
    assert curve["power"].iloc[0] == 1.0


def test_without_an_alliance_effect_few_studies_detect_one() -> None:
    curve = power_curve([{"n_clients": 300, "n_therapists": 20}], replicates=60,
                        params=NO_ALLIANCE_EFFECT, seed=4)  # fmt: skip
    assert curve["power"].iloc[0] <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / 60)


def test_the_same_seed_gives_the_same_curve() -> None:
    design = [{"n_clients": 120, "n_therapists": 8}]
    first, second = (power_curve(design, replicates=4, seed=9) for _ in range(2))
    assert first.equals(second)


@pytest.mark.slow
def test_rejection_rate_under_no_effect_is_alpha() -> None:
    curve = power_curve([{"n_clients": 300, "n_therapists": 20}], replicates=1000,
                        params=NO_ALLIANCE_EFFECT, seed=5)  # fmt: skip
    rate = curve["power"].iloc[0]
    assert rate == pytest.approx(0.05, abs=4 * np.sqrt(0.05 * 0.95 / 1000))


def test_a_study_cut_into_batches_gives_the_same_replicates_as_one_run() -> None:
    design = {"n_clients": 150, "n_therapists": 10}
    whole = run_replicates(design, range(6), index=1, seed=7)
    batches = [run_replicates(design, range(k, k + 3), index=1, seed=7) for k in (0, 3)]
    pd.testing.assert_frame_equal(pd.concat(batches, ignore_index=True), whole)
    assert summarise(whole).equals(summarise(pd.concat(batches, ignore_index=True)))


def test_truth_is_in_the_simulated_instruments_points() -> None:
    phq = SimulationParameters(outcome="phq9")
    rows = run_replicates({"n_clients": 120, "n_therapists": 8}, range(1), params=phq)
    implied = phq.implied()
    expected = phq.alliance_effect_between * implied["outcome_scale"] / implied["alliance_scale"]
    assert rows["truth"].iloc[0] == pytest.approx(expected)
    assert expected < 0  # a better alliance lowers the PHQ-9
