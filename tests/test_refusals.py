"""The bad-input corpus: every refusal names file, row, column, value and rule.

Each file in ``corpus/bad`` is described in ``corpus/bad/cases.yaml``; the test asserts the
content of each expected problem, not just that validation failed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from allianceanalysis.errors import DataError, format_problem_counts, format_problems
from allianceanalysis.io import check_dataset, load_dataset
from allianceanalysis.io.validate import joined_reasons

from .helpers import CORPUS, spec_for

CASES = yaml.safe_load((CORPUS / "bad" / "cases.yaml").read_text())


def _matches(problem: dict, expected: dict) -> bool:
    row_ok = (expected["row"] is None and problem["row"] is None) or (
        problem["row"] == expected["row"]
    )
    value_ok = "value" not in expected or problem["value"] == str(expected["value"])
    return (
        row_ok
        and problem["column"] == expected["column"]
        and value_ok
        and expected["rule"] in problem["rule"]
    )


def _problems(frame) -> list[dict]:
    return [
        {**r, "row": None if r["row"] is None or r["row"] != r["row"] else int(r["row"])}
        for r in frame.astype(object).where(frame.notna(), None).to_dict("records")
    ]


def test_every_corpus_file_has_a_case() -> None:
    files = {p.name for p in (CORPUS / "bad").iterdir() if p.name != "cases.yaml"}
    assert files == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_file_is_refused_with_a_precise_message(name: str) -> None:
    case = CASES[name]
    path = CORPUS / "bad" / name
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path, **case.get("spec", {})))
    error = info.value
    found = _problems(error.problems)
    for expected in case["expect"]:
        assert any(_matches(p, expected) for p in found), (expected, found)
    message = str(error)
    assert message.startswith(str(path))
    for expected in case["expect"]:
        assert expected["rule"] in message
        if expected.get("column"):
            assert f"column '{expected['column']}'" in message
        if expected["row"] is not None:
            assert f"row {expected['row']}" in message


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["level"] == "file"))
def test_file_level_problem_stops_even_when_excluding_rows(name: str) -> None:
    case = CASES[name]
    spec = spec_for(CORPUS / "bad" / name, on_invalid_rows="exclude", **case.get("spec", {}))
    with pytest.raises(DataError):
        load_dataset(spec)


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["level"] == "row"))
def test_row_level_problem_is_excluded_with_its_reason(name: str) -> None:
    case = CASES[name]
    spec = spec_for(CORPUS / "bad" / name, on_invalid_rows="exclude", **case.get("spec", {}))
    result = load_dataset(spec)
    excluded_rows = set(result.excluded["source_row"])
    assert {e["row"] for e in case["expect"]} <= excluded_rows
    for expected in case["expect"]:
        reasons = result.excluded.loc[
            result.excluded["source_row"] == expected["row"], "exclusion_reasons"
        ]
        assert expected["rule"] in reasons.iloc[0]
    rows = result.summary["rows"]
    assert rows["read"] == rows["used"] + rows["excluded"]
    assert rows["excluded"] == len(result.excluded)
    assert not set(result.sessions["source_row"]) & excluded_rows


def test_messages_never_show_identifying_values(tmp_path: Path) -> None:
    path = CORPUS / "bad" / "email_in_notes.csv"
    with pytest.raises(DataError) as info:
        check_dataset(spec_for(path))
    assert "jo.bloggs" not in str(info.value)


def test_problem_list_is_capped_with_counts_of_the_rest(write_file) -> None:
    rows = "".join(f"C{i},T1,1,99,38\n" for i in range(30))
    path = write_file("many.csv", "client_id,therapist_id,session,ors,srs\n" + rows)
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path))
    message = str(info.value)
    assert "30 problems found" in message
    assert message.count("value '99'") == 20
    assert "… and 10 more:" in message
    assert "10 × column 'ors': the ORS total must be between 0 and 40" in message


def test_reserved_column_name_is_refused(write_file) -> None:
    path = write_file("x.csv", "client_id,therapist_id,session,ors,srs,raw_line\nC1,T1,1,20,38,x\n")
    with pytest.raises(DataError, match="column 'raw_line': this column name is reserved"):
        load_dataset(spec_for(path))


def test_file_columns_named_like_ours_do_not_clash_in_the_excluded_rows(write_file) -> None:
    path = write_file(
        "x.csv", "client_id,therapist_id,session,ors,srs,row,reasons\nC1,T1,1,99,38,1,a\n"
    )
    result = load_dataset(spec_for(path, on_invalid_rows="exclude"))
    assert list(result.excluded.columns[:2]) == ["source_row", "exclusion_reasons"]
    assert result.excluded["row"].tolist() == ["1"]


def test_duplicates_within_an_episode_name_the_episode(write_file) -> None:
    path = write_file(
        "x.csv",
        "client_id,episode_id,therapist_id,session,ors,srs\nC1,E1,T1,1,20,38\nC1,E1,T1,1,21,38\n",
    )
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path))
    problem = info.value.problems.iloc[0]
    assert problem["rule"] == "the same client and episode and session appear in more than one row"
    assert problem["value"] == "session 1 in rows 2, 3"


@given(st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["a", "b", "c", "d"])), max_size=30))
def test_exclusion_reasons_join_each_rows_distinct_reasons_in_order(pairs) -> None:
    """The vectorised join equals the plain per-row one it replaced."""
    rows = np.array([r for r, _ in pairs], dtype="int64")
    labels = np.array([label for _, label in pairs], dtype=object)
    expected = {}
    for row, label in pairs:
        expected.setdefault(row, {})[label] = None
    joined = joined_reasons(rows, labels)
    assert joined.to_dict() == {row: "; ".join(seen) for row, seen in expected.items()}


def test_the_counts_of_many_kinds_of_problem_are_capped_too() -> None:
    """Rules that name values (a row count, a field count) make many kinds; the summary lists
    the 20 most frequent and counts the rest, in messages and in logs."""
    problems = pd.DataFrame(
        {
            "row": range(1, 101),
            "column": "x",
            "value": "v",
            "rule": [f"r{i % 50}" for i in range(100)],
        }
    )
    message = format_problems("f.csv", problems)
    assert message.count("\n") == 1 + 20 + 1 + 20
    assert message.endswith("    40 × 30 other kinds of problem")
    log = format_problem_counts("f.csv", problems)
    assert log.count("\n") == 21 and log.endswith("  … and 30 other kinds of problem")


def test_a_file_of_duplicated_rows_gives_a_short_message(write_file) -> None:
    """Each duplicated row's rule named its rows, so every pair was its own kind of problem:
    300,000 pairs gave a 35 MB message (and took 80 s, one Python call per pair)."""
    rows = "".join(f"C{i},T1,1,20,30\n" for i in range(3000))
    path = write_file("twice.csv", "client_id,therapist_id,session,ors,srs\n" + rows + rows)
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path))
    assert len(str(info.value)) < 3000
    assert info.value.problems["value"].iloc[0] == "session 1 in rows 2, 3002"
