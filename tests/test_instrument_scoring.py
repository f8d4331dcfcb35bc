"""Scoring items into totals and subscales: re-keying, mean scoring, prorating.

Expected values are worked out by hand from each scale's published scoring rule (sources in
:mod:`allianceanalysis.instruments.builtin`); exact to floating-point rounding (1e-12).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.instruments import get_instrument


def responses(key: str, rows: list[list[float | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=get_instrument(key).item_columns, dtype="float64")


def test_reverse_keyed_items_are_rekeyed_before_summing() -> None:
    # HAq-II: 14 items at 6, and the five negatively worded ones (4, 8, 11, 16, 19) at 6 -> 1
    total, _ = get_instrument("haq2").score(responses("haq2", [[6.0] * 19]))
    assert total.tolist() == [14 * 6 + 5 * 1]


def test_rekeying_maps_the_lowest_response_to_the_highest_score() -> None:
    row = [1.0] * 19
    total, _ = get_instrument("haq2").score(responses("haq2", [row]))
    assert total.tolist() == [14 * 1 + 5 * 6]


def test_mean_scoring_times_its_factor() -> None:
    # CORE-OM clinical score: the item mean times 10; items 0..3 cycling have mean 1.5 ...
    items = [float(i % 4) for i in range(34)]
    total, _ = get_instrument("core_om").score(responses("core_om", [items]))
    assert total.iloc[0] == pytest.approx(10 * np.mean(items), rel=1e-12)


def test_a_missing_item_leaves_the_total_missing_without_prorating() -> None:
    total, prorated = get_instrument("core_om").score(responses("core_om", [[2.0] * 33 + [None]]))
    assert math.isnan(total.iloc[0]) and not prorated.iloc[0]


def test_prorating_uses_the_mean_of_the_answered_items_up_to_the_rule() -> None:
    # CORE-OM may be prorated with up to 3 items missing, not 4
    rows = [[2.0] * 31 + [None] * 3, [2.0] * 30 + [None] * 4]
    total, prorated = get_instrument("core_om").score(responses("core_om", rows), prorate=True)
    assert total.iloc[0] == pytest.approx(20.0) and math.isnan(total.iloc[1])
    assert prorated.tolist() == [True, False]


def test_prorating_a_sum_scales_the_mean_to_the_item_count() -> None:
    total, _ = get_instrument("core10").score(responses("core10", [[3.0] * 9 + [None]]), True)
    assert total.tolist() == [30.0]


def test_subscale_is_the_sum_of_its_items() -> None:
    wai = get_instrument("wai_sr")
    frame = responses("wai_sr", [[float(i) % 5 + 1 for i in range(1, 13)]])
    goal, _ = wai.score(frame, subset=wai.subscales["goal"])
    expected = sum(frame[f"wai_sr_{i}"].iloc[0] for i in (4, 6, 8, 11))
    assert goal.tolist() == [expected]


def test_subscales_partition_the_items_where_the_scale_says_so() -> None:
    for key in ("wai_sr", "core_om"):
        inst = get_instrument(key)
        members = [item for items in inst.subscales.values() for item in items]
        assert sorted(members, key=int) == list(inst.items), key


def test_prorating_a_subscale_scales_the_rule_to_its_length() -> None:
    # CORE-OM: 3 of 34 items may be missing; a 4-item subscale may miss none
    core = get_instrument("core_om")
    rows = [[1.0] * 34]
    rows[0][3] = None  # item 4, in the well-being subscale
    frame = responses("core_om", rows)
    wellbeing, _ = core.score(frame, prorate=True, subset=core.subscales["wellbeing"])
    problems, _ = core.score(frame, prorate=True, subset=core.subscales["problems"])
    assert math.isnan(wellbeing.iloc[0]) and problems.tolist() == [10.0]


def test_jacobson_truax_reliable_change_from_reliability_and_clinical_sd() -> None:
    bdi = get_instrument("bdi2")
    expected = 1.959963984540054 * math.sqrt(2) * 12.75 * math.sqrt(1 - 0.92)
    assert bdi.reliable_change_points == pytest.approx(expected, rel=1e-12)


def test_a_published_reliable_change_takes_precedence() -> None:
    assert get_instrument("phq9").reliable_change_points == 6.0
