"""Disclosure control: no published count in the suppressed range, none recoverable from totals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allianceanalysis.disclosure import (
    SUPPRESSED,
    CountSystem,
    DisclosurePolicy,
    protect,
    protect_rate,
    suppress_small_rows,
)

from .helpers import assert_nothing_small_can_be_worked_out

POLICIES = st.sampled_from([DisclosurePolicy(), DisclosurePolicy(8, 5), DisclosurePolicy(3)])


@st.composite
def count_tables(draw):
    rows = draw(st.integers(1, 5))
    cols = draw(st.integers(1, 4))
    values = draw(st.lists(st.integers(0, 40), min_size=rows * cols, max_size=rows * cols))
    frame = pd.DataFrame(
        np.array(values).reshape(rows, cols),
        index=[f"r{i}" for i in range(rows)],
        columns=[f"c{j}" for j in range(cols)],
    )
    return frame, draw(st.booleans()), draw(st.booleans())


def visible_numbers(protected) -> list[int]:
    parts = [protected.cells.to_numpy().ravel()]
    for totals in (protected.totals_row, protected.totals_column):
        if totals is not None:
            parts.append(totals.to_numpy())
    return [int(v) for v in np.concatenate(parts) if v != SUPPRESSED]


@given(count_tables(), POLICIES)
def test_no_published_count_is_in_the_suppressed_range(table, policy) -> None:
    frame, row_totals, column_totals = table
    protected = protect(
        frame, policy, table="t", row_totals=row_totals, column_totals=column_totals
    )
    for shown, original in zip(
        protected.cells.to_numpy().ravel(), frame.to_numpy().ravel(), strict=True
    ):
        if shown != SUPPRESSED:
            assert not policy.is_small(original)
    # rounding never turns a shown count into a small one either
    assert not [v for v in visible_numbers(protected) if policy.is_small(v)]


@given(count_tables(), POLICIES)
def test_no_suppressed_cell_is_recoverable_from_a_row_or_column_total(table, policy) -> None:
    frame, row_totals, column_totals = table
    p = protect(frame, policy, table="t", row_totals=row_totals, column_totals=column_totals)
    hidden = p.suppressed.to_numpy()
    if row_totals:
        total_hidden = (p.totals_column == SUPPRESSED).to_numpy()
        unknowns = hidden.sum(axis=1) + total_hidden
        assert not (unknowns == 1).any()
    if column_totals:
        total_hidden = (p.totals_row.iloc[: frame.shape[1]] == SUPPRESSED).to_numpy()
        unknowns = hidden.sum(axis=0) + total_hidden
        assert not (unknowns == 1).any()


@given(count_tables(), POLICIES)
def test_every_small_count_is_suppressed_and_logged(table, policy) -> None:
    frame, row_totals, column_totals = table
    p = protect(frame, policy, table="t", row_totals=row_totals, column_totals=column_totals)
    small = frame.map(policy.is_small).to_numpy()
    assert (p.suppressed.to_numpy() | ~small).all()
    primary = [e for e in p.log if "primary" in e["reason"]]
    assert len(primary) >= small.sum()


def test_nhs_style_suppresses_one_to_seven_and_rounds_to_five() -> None:
    frame = pd.DataFrame({"n": [7, 8, 12, 23]}, index=list("abcd"))
    p = protect(frame, DisclosurePolicy(suppress_below=8, round_to=5), table="t")
    assert p.cells["n"].tolist() == [SUPPRESSED, "10", "10", "25"]


def test_zero_is_shown() -> None:
    p = protect(pd.DataFrame({"n": [0, 10]}), DisclosurePolicy(), table="t")
    assert p.cells["n"].tolist() == ["0", "10"]


def test_secondary_suppression_prefers_the_smallest_non_zero_cell() -> None:
    frame = pd.DataFrame({"n": [2, 0, 9, 30]}, index=list("abcd"))
    p = protect(frame, DisclosurePolicy(), table="t", column_totals=True)
    assert p.cells["n"].tolist() == [SUPPRESSED, "0", SUPPRESSED, "30"]
    assert [e["reason"].endswith("(secondary)") for e in p.log] == [False, True]


@pytest.mark.parametrize(
    ("events", "n", "published"),
    [(0, 10, True), (10, 10, True), (4, 50, False), (47, 50, False), (25, 50, True), (2, 3, False)],
)
def test_rate_is_published_only_when_no_cell_of_it_is_small(events, n, published) -> None:
    assert protect_rate(events, n, DisclosurePolicy())[0] is published


@st.composite
def linked_systems(draw):
    """Leaf counts cut two ways into subtotals (like a table by site and by band), both adding
    up to one grand total, plus a copy of one leaf published elsewhere and an all-or-nothing
    group: the shape of the annual report's linked tables."""
    n = draw(st.integers(2, 9))
    leaves = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    cuts = [sorted(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))) for _ in range(2)]
    cuts[1] = draw(st.permutations(cuts[1]))
    return (
        leaves,
        cuts,
        draw(st.integers(0, n - 1)),
        draw(st.integers(0, n - 1)),
        draw(st.integers(0, 12)),
    )


def build(leaves, cuts, copied, grouped, rest, policy) -> CountSystem:
    system = CountSystem(policy)
    for i, value in enumerate(leaves):
        system.cell(("leaf", i), value, table="t")
    system.cell("grand", sum(leaves), table="t", priority=3)
    for k, cut in enumerate(cuts):
        blocks = sorted(set(cut))
        for block in blocks:
            members = [("leaf", i) for i, b in enumerate(cut) if b == block]
            system.cell(("sub", k, block), sum(leaves[i] for i, b in enumerate(cut) if b == block),
                        table="t", priority=1)  # fmt: skip
            system.equation(("sub", k, block), members)
        system.equation("grand", [("sub", k, b) for b in blocks])
    system.cell("copy", leaves[copied], table="u", priority=2)
    system.equation("copy", [("leaf", copied)])
    system.cell("partner", leaves[grouped] + 5, table="u")
    system.group([("leaf", grouped), "partner"])
    system.cell("whole", leaves[grouped] + rest, table="u", priority=2)  # never-published rest
    system.equation("whole", [("leaf", grouped), system.implied("rest", rest, table="u")])
    system.solve()
    return system


@given(linked_systems(), POLICIES)
def test_linked_system_shows_no_small_count_and_no_recoverable_one(case, policy) -> None:
    system = build(*case, policy)
    assert_nothing_small_can_be_worked_out(system)
    for total, members in system.equations:  # suppressed cells stay unknown, whatever their size
        unknown = [c for c in (total, *members) if not system.visible(c)]
        assert len(unknown) != 1 or unknown[0] in system.implicit, (total, members)
    for group in system.groups:
        assert len({system.visible(k) for k in group}) == 1


def test_secondary_suppression_spares_higher_priority_cells() -> None:
    system = CountSystem(DisclosurePolicy())
    system.cell("finished", 133, table="k", priority=3)
    system.cell("not_finished", 1, table="k")
    system.cell("two_plus", 134, table="k", priority=2)
    system.equation("two_plus", ["finished", "not_finished"])
    system.solve()
    assert system.visible("finished") and not system.visible("two_plus")


def test_a_copy_of_a_suppressed_count_is_suppressed_too() -> None:
    system = CountSystem(DisclosurePolicy())
    system.cell("a", 3, table="t1")
    system.cell("a_again", 3, table="t2")
    system.equation("a_again", ["a"])
    system.solve()
    assert system.text("a") == system.text("a_again") == SUPPRESSED


def test_a_small_implied_count_is_protected_like_a_suppressed_one() -> None:
    system = CountSystem(DisclosurePolicy())
    system.cell("recovered", 29, table="k", priority=2)
    system.cell("reliably", 27, table="k")
    system.equation("recovered", ["reliably", system.implied("not_reliably", 2, table="k")])
    system.solve()
    assert not system.visible("reliably")  # 29 - 27 would reveal the 2
    assert [e["reason"] for e in system.log] == [  # the implied count is never logged
        "protects a suppressed count that could be worked back from a total (secondary)"
    ]


def test_an_implied_count_outside_the_suppressed_range_hides_nothing() -> None:
    system = CountSystem(DisclosurePolicy())
    system.cell("recovered", 29, table="k")
    system.cell("reliably", 20, table="k")
    system.equation("recovered", ["reliably", system.implied("not_reliably", 9, table="k")])
    system.solve()
    assert system.visible("recovered", "reliably") and not system.log


def test_an_implied_count_must_belong_to_exactly_one_equation() -> None:
    system = CountSystem(DisclosurePolicy())
    system.implied("loose", 9, table="k")
    with pytest.raises(ValueError, match="exactly one equation"):
        system.solve()


def test_one_small_share_of_a_partition_takes_another_with_it() -> None:
    # 16 + 9 + 11 + 4 + 0 = 40: hiding only the 4 would let it be worked out as 40 - 36
    shares = pd.DataFrame({
        "term": ["recovered", "improved", "unchanged", "deteriorated", "harmed"],
        "estimate": [16 / 40, 9 / 40, 11 / 40, 4 / 40, 0.0], "n_obs": 40,
        "ci_method": "wilson", "std_error": None, "ci_low": 0.0, "ci_high": 1.0,
        "p_value": None, "message": "",
    })  # fmt: skip
    published = suppress_small_rows(shares, DisclosurePolicy(5), partition=shares["term"])
    hidden = published.loc[published["estimate"].isna(), "term"].tolist()
    assert "deteriorated" in hidden and len(hidden) == 2


def test_a_partition_without_small_counts_is_published_whole() -> None:
    shares = pd.DataFrame({"term": ["a", "b"], "estimate": [0.5, 0.5], "n_obs": 40,
                           "ci_method": "wilson", "std_error": None, "ci_low": 0.0,
                           "ci_high": 1.0, "p_value": None, "message": ""})  # fmt: skip
    published = suppress_small_rows(shares, DisclosurePolicy(5), partition=["a", "b"])
    assert published["estimate"].notna().all()
