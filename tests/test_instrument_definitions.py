"""Instruments defined as data: a configuration's ``instruments:`` block and its rules."""

from __future__ import annotations

import math
from typing import Any

import pytest

from allianceanalysis.config import validate_config
from allianceanalysis.errors import ConfigError
from allianceanalysis.instruments import (
    BUILTIN,
    INSTRUMENTS,
    define_instrument,
    get_instrument,
    instrument_table,
    instruments_in_use,
    use_instruments,
)

BDI: dict[str, Any] = {
    "name": "Beck Depression Inventory-II",
    "short": "BDI-II",
    "construct": "outcome",
    "items": 21,
    "item_range": [0, 3],
    "higher_is_better": False,
    "cutoff": 14,
    "reliability": 0.92,
    "reliability_kind": "internal_consistency",
    "norms": {"clinical": {"mean": 22.45, "sd": 12.75}, "functional": {"mean": 12.56, "sd": 9.93}},
    "reliable_change": "jacobson_truax",
    "source": "Beck, Steer & Brown (1996)",
}
HAMD: dict[str, Any] = {
    "name": "Hamilton Rating Scale for Depression",
    "construct": "outcome",
    "rater": "clinician",
    "items": 17,
    "total_range": [0, 52],
    "higher_is_better": False,
    "source": "Hamilton (1960)",
}


def problems(key: str, **changes: Any) -> str:
    spec = {**BDI, **changes}
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        define_instrument(key, spec)
    return str(caught.value)


def test_a_definition_gives_an_instrument_like_a_builtin_one() -> None:
    bdi = define_instrument("bdi", BDI)
    assert (bdi.total_min, bdi.total_max, bdi.integer, bdi.user_defined) == (0, 63, True, True)
    assert bdi.item_columns[0] == "bdi_1" and bdi.sources["range"] == BDI["source"]


def test_jacobson_truax_reliable_change_is_derived_and_its_source_says_how() -> None:
    bdi = define_instrument("bdi", BDI)
    expected = 1.959963984540054 * math.sqrt(2) * 12.75 * math.sqrt(0.08)
    assert bdi.reliable_change == pytest.approx(expected, rel=1e-12)
    assert "Jacobson & Truax" in bdi.sources["reliable_change"]


def test_the_cutoff_rule_follows_the_direction_by_default() -> None:
    assert define_instrument("bdi", BDI).cutoff_rule == "at_or_above"
    wellbeing = define_instrument("wb", {**BDI, "higher_is_better": True, "reliable_change": 5})
    assert wellbeing.cutoff_rule == "below"


def test_a_total_only_scale_counts_its_items_and_scores_none() -> None:
    hamd = define_instrument("hamd", HAMD)
    assert (hamd.item_count, hamd.sums_items, hamd.total_max, hamd.rater) == (
        17,
        False,
        52,
        "clinician",
    )


def test_mean_scoring_sets_the_total_range_from_the_factor() -> None:
    spec = {k: v for k, v in BDI.items() if k not in ("norms", "reliable_change")}
    scale = define_instrument("m", {**spec, "scoring": "mean", "scoring_factor": 10, "cutoff": 9})
    assert (scale.total_min, scale.total_max, scale.integer) == (0, 30, False)


def test_named_items_subscales_and_reverse_keying() -> None:
    scale = define_instrument("wai12", {
        "name": "WAI-SR with its keys", "construct": "alliance", "higher_is_better": True,
        "items": [f"q{i}" for i in range(1, 13)], "item_range": [1, 5], "reverse_keyed": ["q3"],
        "subscales": {"goal": ["q4", "q6", "q8", "q11"]}, "source": "s"})  # fmt: skip
    assert scale.reverse_items == ("q3",) and scale.subscale_columns == {"goal": "wai12_goal"}


@pytest.mark.parametrize(
    ("key", "changes", "message"),
    [
        ("bdi", {"items": [1, 2, 2]}, "'instruments.bdi.items': item '2' is listed 2 times"),
        ("bdi", {"reverse_keyed": [22]}, "'instruments.bdi.reverse_keyed': '22' is not among"),
        ("bdi", {"subscales": {"somatic": [1, 30]}}, "subscales.somatic': '30' is not among"),
        ("bdi", {"cutoff": 70}, "'instruments.bdi.cutoff': 70 is outside the total's range"),
        ("bdi", {"item_range": [3, 0]}, "the minimum must be below the maximum"),
        ("bdi", {"total_range": [0, 60]}, "does not match the sum of 21 items rated 0-3"),
        ("bdi", {"item_range": None, "items": None}, "needs items with an item_range"),
        ("bdi", {"reliability": None}, "reliability and reliability_kind go together"),
        ("bdi", {"norms": {}}, "jacobson_truax needs a reliability and the clinical"),
        ("bdi", {"reliable_change": 80}, "must be above 0 and below the total's span"),
        ("bdi", {"prorate_max_missing": 21}, "must be below the number of items (21)"),
        ("bdi", {"scoring_factor": 2}, "applies only to scoring: mean"),
        ("bdi", {"cutoff": None, "cutoff_rule": "below"}, "is set but there is no cutoff"),
        ("bdi", {"norms": {"clinical": {"mean": 99, "sd": 3}}}, "norms.clinical.mean': 99 is "),
        (
            "phq9",
            {},
            "'phq9' is the key of the built-in Patient Health Questionnaire-9; set "
            "replaces_builtin: true",
        ),
        ("bdi", {"replaces_builtin": True}, "there is no built-in instrument 'bdi' to replace"),
        ("session", {}, "'session' is a column of the data contract"),
        ("bdi", {"source": None}, "'instruments.bdi' needs the key 'source'"),
        ("bdi", {"construct": "mood"}, "'instruments.bdi.construct' is 'mood'; allowed values"),
        ("bdi", {"colour": "blue"}, "unknown key 'instruments.bdi.colour'"),
        ("bdi", {"reliable_change": "big"}, "it must be a number above 0 or 'jacobson_truax'"),
    ],
)
def test_a_broken_definition_is_refused_in_plain_words(
    key: str, changes: dict[str, Any], message: str
) -> None:
    assert message in problems(key, **changes)


def test_every_problem_of_a_definition_is_listed_at_once() -> None:
    text = problems("bdi", items=[1, 1], cutoff=99, reverse_keyed=["x"])
    assert text.count("\n") >= 2


def test_replacing_a_builtin_is_allowed_when_said() -> None:
    phq = define_instrument("phq9", {**BDI, "replaces_builtin": True, "items": 9,
                                     "cutoff": 12, "norms": {}, "reliable_change": 5})  # fmt: skip
    assert phq.cutoff == 12 and phq.user_defined


def test_use_instruments_adds_to_the_builtin_ones_and_the_context_restores() -> None:
    with instruments_in_use({"bdi": BDI, "hamd": HAMD}):
        assert list(INSTRUMENTS)[-2:] == ["bdi", "hamd"]
        assert get_instrument("hamd").rater == "clinician"
        assert [r["defined"] for r in instrument_table()][-1] == "config"
    assert list(INSTRUMENTS) == list(BUILTIN)


def test_a_broken_block_leaves_the_registry_in_use_unchanged() -> None:
    with instruments_in_use({"bdi": BDI}):
        with pytest.raises(ConfigError):
            use_instruments({"bad": {**HAMD, "cutoff": 99}})
        assert "bdi" in INSTRUMENTS and "bad" not in INSTRUMENTS


def test_a_configuration_may_name_its_own_instrument_as_outcome() -> None:
    config = validate_config({"outcome": "hamd", "alliance": None, "instruments": {"hamd": HAMD},
                              "datasets": {"trial": {"path": "trial.csv"}}})  # fmt: skip
    assert config["instruments"]["hamd"]["rater"] == "clinician"


def test_an_unknown_outcome_points_to_the_instruments_block() -> None:
    with pytest.raises(ConfigError, match="define other instruments under instruments:"):
        validate_config({"outcome": "hamd", "datasets": {"trial": {"path": "trial.csv"}}})


def test_a_broken_definition_in_a_configuration_names_its_file() -> None:
    with pytest.raises(ConfigError, match=r"^study.yaml: 'instruments.hamd.cutoff': 60"):
        validate_config({"outcome": "hamd", "instruments": {"hamd": {**HAMD, "cutoff": 60}},
                         "datasets": {"t": {"path": "t.csv"}}}, "study.yaml")  # fmt: skip


def test_items_of_a_total_only_scale_cannot_be_mapped() -> None:
    with pytest.raises(ConfigError, match="the loader does not score items of Hamilton"):
        validate_config({"outcome": "hamd", "instruments": {"hamd": HAMD}, "datasets": {
            "t": {"path": "t.csv", "items": {"hamd": ["a"] * 17}}}})  # fmt: skip
