"""The instrument registry: complete, internally consistent, every number sourced."""

from __future__ import annotations

import pytest

from allianceanalysis.instruments import INSTRUMENTS, get_instrument, instrument_table

from .helpers import ROOT

REQUIRED = {
    *("ors", "srs", "wai_sr", "phq9", "gad7", "core10", "oq45"),
    *("wai", "wai_t", "wai_o", "calpas", "haq2", "cors", "csrs"),
    *("bdi2", "core_om", "oq30", "k10", "wemwbs"),
}


def test_registry_holds_the_required_instruments() -> None:
    assert set(INSTRUMENTS) >= REQUIRED


@pytest.mark.parametrize("key", sorted(INSTRUMENTS))
def test_ranges_are_consistent_with_items(key: str) -> None:
    inst = INSTRUMENTS[key]
    scale = inst.item_count if inst.scoring == "sum" else inst.scoring_factor
    assert inst.total_min == pytest.approx(inst.item_min * scale)
    assert inst.total_max == pytest.approx(inst.item_max * scale)
    assert not inst.items or len(inst.items) == inst.item_count
    assert set(inst.reverse_items) <= set(inst.items)
    assert all(set(members) <= set(inst.items) for members in inst.subscales.values())


@pytest.mark.parametrize("key", sorted(INSTRUMENTS))
def test_every_number_has_a_source(key: str) -> None:
    inst = INSTRUMENTS[key]
    assert "range" in inst.sources
    for field in ("cutoff", "reliable_change", "prorate_max_missing"):
        if getattr(inst, field) is not None:
            assert field in inst.sources, field
    if inst.cutoff is not None:
        assert inst.cutoff_rule in ("below", "at_or_above")
        assert inst.total_min < inst.cutoff < inst.total_max


@pytest.mark.parametrize(
    ("key", "higher_is_better"),
    [
        ("ors", True),
        ("srs", True),
        ("wai_sr", True),
        ("phq9", False),
        ("gad7", False),
        ("core10", False),
        ("oq45", False),
        ("haq2", True),
        ("bdi2", False),
        ("core_om", False),
        ("k10", False),
        ("wemwbs", True),
    ],
)
def test_direction_of_each_scale(key: str, higher_is_better: bool) -> None:
    assert get_instrument(key).higher_is_better is higher_is_better


def test_nhs_talking_therapies_thresholds() -> None:
    phq9, gad7 = get_instrument("phq9"), get_instrument("gad7")
    assert (phq9.cutoff, phq9.reliable_change) == (10, 6)
    assert (gad7.cutoff, gad7.reliable_change) == (8, 4)


def test_ors_and_srs_item_names() -> None:
    assert get_instrument("ors").item_columns == (
        "ors_individually",
        "ors_interpersonally",
        "ors_socially",
        "ors_overall",
    )
    assert get_instrument("srs").item_columns == (
        "srs_relationship",
        "srs_goals_and_topics",
        "srs_approach_or_method",
        "srs_overall",
    )


def test_unknown_instrument_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known instruments: ors, srs.*instruments:"):
        get_instrument("bdi")


def test_table_has_one_row_per_instrument() -> None:
    assert [r["key"] for r in instrument_table()] == list(INSTRUMENTS)


def test_documentation_table_equals_the_registry() -> None:
    rows = instrument_table()
    table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    table += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    assert "\n".join(table) in (ROOT / "docs" / "instruments.md").read_text()


@pytest.mark.parametrize(("key", "rater"), [("wai", "client"), ("wai_t", "therapist"),
                                            ("wai_o", "observer"), ("srs", "client")])  # fmt: skip
def test_rater_perspective_is_recorded(key: str, rater: str) -> None:
    assert get_instrument(key).rater == rater


def test_every_reliable_change_is_published_or_derived_from_sourced_numbers() -> None:
    for inst in INSTRUMENTS.values():
        if inst.reliable_change is None and inst.reliable_change_points is not None:
            assert "reliability" in inst.sources and "norms" in inst.sources, inst.key


def test_documentation_cites_every_source_of_the_registry() -> None:
    text = (ROOT / "docs" / "instruments.md").read_text()
    for inst in INSTRUMENTS.values():
        for field, source in inst.sources.items():
            assert f"- **{field}**: {source}" in text, (inst.key, field)
