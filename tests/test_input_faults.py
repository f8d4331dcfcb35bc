"""Faults of scale in input files: huge files, huge cells, runaway quotes, many bad rows.

Each is answered with a clean, located error or row-level problems, in memory bounded by the
limits of :mod:`allianceanalysis.io.read`. Their cost at full size (a 5 GB file, a million bad
rows, a column of 10 MB strings) is measured by ``benchmarks/input_faults.py``
(``make bench-faults``), not timed here.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allianceanalysis.config import validate_config
from allianceanalysis.errors import DataError
from allianceanalysis.io import check_dataset, load_dataset, read

from .helpers import DEMO, spec_for

HEADER = "client_id,therapist_id,session,ors,srs,note\n"
TEN_MB = 10 << 20


def rows(count: int, start: int = 1) -> str:
    return "".join(f"C{i},T1,1,20,30,ok\n" for i in range(start, start + count))


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:  # a sparse file: 5 GB on paper, nothing on disk
        handle.write((HEADER + rows(1)).encode())
        handle.truncate(5 << 30)
    with pytest.raises(DataError) as info:
        check_dataset(spec_for(path))
    rule = info.value.problems["rule"].iloc[0]
    assert rule.startswith("the file is 5.0 GiB, larger than this dataset's limit of 2048 MiB")
    assert "read.max_file_mb" in rule and "about 50.0 GiB here" in rule
    assert "shards: {column: therapist_id, count: 6}" in rule


def test_the_size_limit_is_set_per_dataset(tmp_path: Path) -> None:
    config = validate_config({"datasets": {"demo": {"path": str(DEMO)}}})
    assert "max_file_mb" not in config["datasets"]["demo"].get("read", {})
    with pytest.raises(DataError, match=r"limit of 0\.05 MiB \(read.max_file_mb\)"):
        check_dataset(spec_for(DEMO, read={"max_file_mb": 0.05}))
    assert check_dataset(spec_for(DEMO, read={"max_file_mb": 10})).summary["rows"]["used"] > 0


def test_the_size_limit_must_be_positive() -> None:
    with pytest.raises(Exception, match="max_file_mb"):
        validate_config({"datasets": {"d": {"path": "x.csv", "read": {"max_file_mb": 0}}}})


def test_a_cell_longer_than_the_limit_sets_its_row_aside(write_file) -> None:
    long_score, long_note = "7" * TEN_MB, "x" * TEN_MB
    text = HEADER + rows(2) + f"C3,T1,1,20,{long_score},ok\n" + f"C4,T1,1,20,30,{long_note}\n"
    path = write_file("long.csv", text + rows(3, start=5))
    result = check_dataset(spec_for(path))
    problems = result.problems
    assert problems["row"].tolist() == [4, 5]
    assert problems["column"].tolist() == ["srs", "note"]
    assert problems["value"].str.len().max() == read.MAX_RAW_TEXT
    assert (problems["rule"] == "the cell holds more than 1.0 MiB of text (an unclosed quote, "
            "or a document pasted into a cell?)").all()  # fmt: skip
    assert result.summary["rows"] == {
        "read": 7,
        "used": 5,
        "excluded": 2,
        "blank_rows_ignored": 0,
    }


def test_a_row_set_aside_for_a_long_cell_keeps_a_truncated_copy_of_its_line(write_file) -> None:
    path = write_file("long.csv", HEADER + rows(1) + f"C2,T1,1,20,30,{'x' * TEN_MB}\n")
    excluded = load_dataset(spec_for(path, on_invalid_rows="exclude")).excluded
    line = excluded.loc[excluded["source_row"] == 3, "raw_line"].iloc[0]
    assert line == "C2,T1,1,20,30," + "x" * read.MAX_RAW_TEXT


def test_a_long_cell_in_parquet_sets_its_row_aside(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "client_id": ["C1", "C2" * (read.MAX_CELL_BYTES // 2 + 1), "C3"],
            "therapist_id": ["T1"] * 3,
            "session": [1, 1, 1],
            "ors": [20.0, 21.0, 22.0],
            "srs": [30.0, 31.0, 32.0],
            "raw": [b"\xff", b"\xfe", b"\xfd"],  # bytes with no text form
        }
    )
    path = tmp_path / "long.parquet"
    frame.to_parquet(path)
    result = load_dataset(spec_for(path, on_invalid_rows="exclude"))
    assert result.problems[["row", "column"]].values.tolist() == [[2, "client_id"]]
    assert result.sessions["client_id"].tolist() == ["C1", "C3"]
    assert result.excluded["raw_line"].iloc[0].startswith("C2C2")


def test_an_unclosed_quote_is_refused_naming_its_row_and_column(write_file) -> None:
    runaway = HEADER + rows(3) + 'C4,T1,1,"20,30,ok\n' + rows(150_000, start=5)  # spans two blocks
    path = write_file("runaway.csv", runaway)
    with (
        mock.patch.object(read, "MAX_RECORD_BYTES", 1 << 20),
        mock.patch.object(read, "SCAN_BYTES", 4096),
        pytest.raises(DataError) as info,
    ):
        check_dataset(spec_for(path))
    problem = info.value.problems.iloc[0]
    assert (problem["row"], problem["column"]) == (5, "ors")
    assert problem["value"].startswith('"20,30,ok\nC5,T1,1,20,30')
    assert problem["rule"].startswith(
        "a quoted value opens in this cell and runs on for more than 1.0 MiB over"
    )


def test_an_unclosed_quote_swallowing_over_a_mebibyte_is_refused_not_set_aside(
    write_file,
) -> None:
    """Under the record limit pyarrow reads the rest of the file as one row; set aside, it
    would silently take every later row with it."""
    path = write_file("runaway.csv", HEADER + rows(3) + 'C4,T1,"1,20,30,ok\n' + rows(80_000, 5))
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path, on_invalid_rows="exclude"))
    problem = info.value.problems.iloc[0]
    assert (problem["row"], problem["column"]) == (5, "session")
    assert "over 80,001 lines of the file (an unclosed double quote?)" in problem["rule"]


def test_an_unclosed_quote_in_the_last_column_is_refused_not_set_aside(write_file) -> None:
    """The swallowed rows land in the last cell, so the row has the right number of fields."""
    path = write_file("runaway.csv", HEADER + rows(3) + 'C4,T1,1,20,30,"ok\n' + rows(80_000, 5))
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path, on_invalid_rows="exclude"))
    assert info.value.problems[["row", "column"]].values.tolist() == [[5, "note"]]


def test_an_unclosed_quote_in_the_last_row_is_refused_at_the_end_of_the_file(write_file) -> None:
    path = write_file("runaway.csv", HEADER + rows(2) + 'C3,T1,1,20,30,"' + "y" * (2 << 20))
    with (
        mock.patch.object(read, "MAX_RECORD_BYTES", 1 << 20),
        pytest.raises(DataError) as info,
    ):
        check_dataset(spec_for(path))
    assert info.value.problems[["row", "column"]].values.tolist() == [[4, "note"]]


def naive_record_lengths(data: bytes) -> list[int]:
    """Record lengths (without the newline) by walking the bytes one by one."""
    lengths, inside, length = [], False, 0
    for byte in data:
        if byte == ord('"'):
            inside = not inside
        if byte == ord("\n") and not inside:
            lengths.append(length)
            length = 0
        else:
            length += 1
    return [*lengths, length]


RECORD = st.text(alphabet=st.sampled_from(['"', "\n", ",", "a", "é"]), max_size=40)


@given(records=st.lists(RECORD, max_size=30), chunk=st.integers(1, 64))
def test_record_scan_equals_a_byte_by_byte_walk_across_chunk_boundaries(
    tmp_path_factory: pytest.TempPathFactory, records: list[str], chunk: int
) -> None:
    data = "\n".join(records).encode()
    path = tmp_path_factory.mktemp("scan") / "records.csv"
    path.write_bytes(data)
    with mock.patch.object(read, "SCAN_BYTES", chunk):
        longest = read._longest_record(path, ",", ["a"])
    assert longest == max(naive_record_lengths(data))


def test_many_bad_rows_give_a_capped_summary_and_every_row_accounted_for(write_file) -> None:
    count = 200_000
    text = HEADER + "".join(f"C{i},T1,1,20,x,ok\n" for i in range(count))
    path = write_file("bad.csv", text)
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path))
    message = str(info.value)
    assert f"{count} problems found" in message
    assert message.count("\n") < 30
    assert f"… and {count - 20} more:" in message
    excluded = load_dataset(spec_for(path, on_invalid_rows="exclude"))
    assert excluded.summary["rows"]["excluded"] == count
    assert excluded.excluded["exclusion_reasons"].nunique() == 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_file_wider_than_the_column_limit_is_refused_before_it_is_read(
    suffix: str, tmp_path: Path
) -> None:
    """A hundred thousand columns (a wide export, a wrong delimiter) took minutes of
    per-column work; now the header alone decides."""
    columns = {"client_id": ["C1"], "therapist_id": ["T1"], "session": [1], "ors": [20]}
    columns |= {f"x{i}": [1] for i in range(read.MAX_COLUMNS)}
    path = tmp_path / f"wide{suffix}"
    frame = pd.DataFrame(columns)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    with pytest.raises(DataError, match="the file has 1,004 columns, more than the 1,000"):
        check_dataset(spec_for(path))


def test_a_header_row_longer_than_the_sample_is_refused(write_file) -> None:
    """Found in review: it was reported as an empty header."""
    path = write_file("long_header.csv", "client_id," + "n" * (2 << 20) + "\nC1,1\n")
    with pytest.raises(DataError, match=r"the header row is longer than 1\.0 MiB"):
        check_dataset(spec_for(path))


def test_a_column_name_over_the_csv_field_limit_is_refused(write_file) -> None:
    """Found in review: the csv module's field limit made the header look empty."""
    path = write_file("long_name.csv", "client_id," + "n" * 200_000 + "\nC1,1\n")
    with pytest.raises(DataError, match="a column name in the header is longer than 128 KiB"):
        check_dataset(spec_for(path))
