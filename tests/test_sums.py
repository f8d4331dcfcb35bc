"""Sufficient statistics: exact global sums, and fits from the sums of pieces (shards) that are
the whole table's fit to the last bit."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.derive import client_table, session_pairs, session_table
from allianceanalysis.engine import fit_lmm, fit_lmm_pieces
from allianceanalysis.models import NEXT_SESSION_FIXED
from allianceanalysis.shards import shard_number
from allianceanalysis.simulate import simulate_study
from allianceanalysis.sums import ExactSum, group_sums, merge_sums

FORMULAS = {
    "intercept": ("clients", "outcome_final ~ outcome_intake + alliance_early"
                            " + (1 | therapist_id)"),
    "client": ("pairs", f"{NEXT_SESSION_FIXED} + (1 | client_id)"),
    "nested": ("pairs", f"{NEXT_SESSION_FIXED} + (1 | therapist_id/client_id)"),
    "slope": ("table", "outcome ~ session + alliance_within + alliance_client_mean"
                       " + (1 + session | client_id)"),
    "uncorrelated": ("table", "outcome ~ session + (session || client_id)"),
}  # fmt: skip


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    sessions = simulate_study(n_clients=600, n_therapists=24, n_sites=4, seed=11).sessions
    return {"clients": client_table(sessions).query("eligible"),
            "pairs": session_pairs(sessions), "table": session_table(sessions)}  # fmt: skip


def by_therapist(frame: pd.DataFrame, count: int) -> list:
    """The table in ``count`` pieces by therapist, each a callable reading columns."""
    shard = shard_number(frame["therapist_id"], count)
    return [lambda columns, k=k: frame.loc[shard == k, columns] for k in range(count)]


def test_exact_sums_do_not_depend_on_the_order_of_the_values() -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((10_000, 3)) * 10.0 ** rng.integers(-8, 12, (10_000, 3))
    forward, backward = ExactSum(3), ExactSum(3)
    forward.add(values)
    backward.add(values[::-1])
    expected = [math.fsum(values[:, j]) for j in range(3)]
    assert forward.value().tolist() == backward.value().tolist() == expected


def test_exact_sums_of_pieces_merge_to_the_sum_of_the_whole() -> None:
    rng = np.random.default_rng(1)
    values = rng.standard_normal((5_000, 2)) * 1e6
    whole, left, right = ExactSum(2), ExactSum(2), ExactSum(2)
    whole.add(values)
    left.add(values[::2])
    right.add(values[1::2])
    assert left.merge(right).value().tolist() == whole.value().tolist()


def test_a_group_split_over_two_pieces_is_refused() -> None:
    x = np.ones((4, 1))
    parts = [group_sums(np.arange(2.0), x[:2], ["a", "b"]),
             group_sums(np.arange(2.0), x[2:], ["b", "c"])]  # fmt: skip
    with pytest.raises(ValueError, match="each group must lie in one shard"):
        merge_sums(parts)


@pytest.mark.parametrize("count", [2, 5])
@pytest.mark.parametrize("structure", sorted(FORMULAS))
def test_a_fit_from_the_sums_of_shards_is_the_whole_tables_to_the_last_bit(
    tables: dict[str, pd.DataFrame], structure: str, count: int
) -> None:
    table, formula = FORMULAS[structure]
    data = tables[table]
    whole = fit_lmm(formula, data)
    pieces = fit_lmm_pieces(formula, by_therapist(data, count))
    pd.testing.assert_frame_equal(pieces.coefficients, whole.coefficients, check_exact=True)
    assert pieces.variances == whole.variances
    assert (pieces.loglik, pieces.n_obs, pieces.n_groups, pieces.n_dropped) == (
        whole.loglik, whole.n_obs, whole.n_groups, whole.n_dropped)  # fmt: skip
    assert pieces.fixed_prediction_variance == whole.fixed_prediction_variance
    if whole.random_effects is not None:
        pd.testing.assert_frame_equal(pieces.random_effects, whole.random_effects,
                                      check_exact=True)  # fmt: skip


def test_a_formula_computed_from_all_rows_is_fitted_to_the_rows_put_together(
    tables: dict[str, pd.DataFrame],
) -> None:
    """``scale()`` needs the mean and SD of all rows: the pieces are put together, and the
    fit is still the whole table's (the core's sums do not depend on the rows' order)."""
    formula = "outcome_final ~ scale(outcome_intake) + alliance_early + (1 | therapist_id)"
    data = tables["clients"]
    whole = fit_lmm(formula, data)
    pieces = fit_lmm_pieces(formula, by_therapist(data, 3))
    pd.testing.assert_frame_equal(pieces.coefficients, whole.coefficients, check_exact=True)


def test_rank_deficient_columns_are_dropped_from_the_merged_sums(
    tables: dict[str, pd.DataFrame],
) -> None:
    data = tables["clients"].assign(twice=lambda d: 2 * d["alliance_early"])
    formula = "outcome_final ~ alliance_early + twice + (1 | therapist_id)"
    whole = fit_lmm(formula, data)
    pieces = fit_lmm_pieces(formula, by_therapist(data, 3))
    assert list(whole.coefficients.index) == ["Intercept", "alliance_early"]
    assert "rank deficient: dropped 'twice'" in whole.messages[0]
    pd.testing.assert_frame_equal(pieces.coefficients, whole.coefficients, check_exact=True)


@pytest.mark.parametrize("unused", [False, True])
def test_group_sums_of_a_categorical_column_equal_those_of_its_labels(tables, unused) -> None:
    """A categorical column is coded by its own codes (sorted categories, unused ones left
    out): the sums must be those of the same labels as strings."""
    from allianceanalysis.sums import _factorized

    labels = tables["clients"]["therapist_id"].astype(str)
    coded = labels.astype("category")
    if unused:
        coded = coded.cat.add_categories(["a-none", "zz-none"]).cat.reorder_categories(
            sorted([*coded.cat.categories, "a-none", "zz-none"])
        )
    codes, levels = _factorized(coded)
    expected_codes, expected_levels = _factorized(labels)
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(levels, expected_levels)


def test_merged_sums_order_groups_as_the_whole_datas_sums() -> None:
    """Pieces' groups are put in the order the whole data's sums have (pandas' sorted labels:
    code points, so "Z" before "a" before "é"), labels non-ASCII and of different lengths."""
    labels = np.array(["é1", "a", "Z", "ab", "a2", "ß", "A"], dtype=object)
    x, y = np.ones((len(labels), 1)), np.arange(len(labels), dtype=float)
    whole = group_sums(y, x, labels)
    pieces = [slice(0, 3), slice(3, 7)]
    merged = merge_sums([group_sums(y[p], x[p], labels[p]) for p in pieces])
    assert merged.levels.tolist() == whole.levels.tolist() == sorted(labels.tolist())
    np.testing.assert_array_equal(merged.sy, whole.sy)


def test_text_group_labels_stay_in_arrow_memory_when_summed_and_merged() -> None:
    """Group labels read as text (Arrow-backed strings) are kept as such, not as a Python
    object per group (10M client IDs: about 650 MB), in each piece's sums and merged."""
    from allianceanalysis.sums import group_sums, merge_sums

    labels = pd.Series(["c2", "a1", "b3", "a1", "d4"], dtype="str")
    x, y = np.ones((5, 1)), np.arange(5.0)
    part = group_sums(y[:3], x[:3], labels[:3])
    merged = merge_sums([group_sums(y[[0, 2]], x[[0, 2]], labels[[0, 2]]),
                         group_sums(y[[1, 3, 4]], x[[1, 3, 4]], labels[[1, 3, 4]])])  # fmt: skip
    assert part.levels.dtype == "str" and merged.levels.dtype == "str"
    assert merged.levels.tolist() == ["a1", "b3", "c2", "d4"]
    assert merged.sy.tolist() == [4.0, 2.0, 0.0, 4.0]
