"""Fuzzing the loader: arbitrary bytes and CSV-like text give a valid frame or a clean error.

Runs derandomized in the default suite (``tests/conftest.py``); explore further with
``pytest tests/test_fuzz.py --hypothesis-profile=deep``. Every crash found is kept below as a
regression test.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from allianceanalysis.errors import DataError
from allianceanalysis.io import check_dataset

from .helpers import spec_for

HEADER_CHOICES = [
    "client_id",
    "therapist_id",
    "session",
    "ors",
    "srs",
    "session_date",
    "end_status",
    "site_id",
    "notes",
    "",
]
CELL = st.one_of(
    st.sampled_from(
        [
            "1",
            "2",
            "3.5",
            "40",
            "-1",
            "NA",
            "",
            "C1",
            "T1",
            "2024-02-30",
            "31/12/2024",
            "planned",
            "x@y.org",
            "1e400",
            "nan",
            "0",
        ]
    ),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
)


def check_bytes(data: bytes, suffix: str = ".csv", **options: object) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"input{suffix}"
        path.write_bytes(data)
        try:
            result = check_dataset(spec_for(path, **options))
        except DataError as error:
            assert str(error).startswith(str(path))
            return
        rows = result.summary["rows"]
        assert rows["read"] == rows["used"] + rows["excluded"]


@given(st.binary(max_size=3000))
def test_arbitrary_bytes_give_a_frame_or_a_clean_error(data: bytes) -> None:
    check_bytes(data)


@given(st.binary(max_size=3000))
def test_arbitrary_bytes_without_nul_give_a_frame_or_a_clean_error(data: bytes) -> None:
    check_bytes(data.replace(b"\x00", b""))


@given(
    header=st.lists(st.sampled_from(HEADER_CHOICES), min_size=1, max_size=9),
    rows=st.lists(st.lists(CELL, max_size=10), max_size=12),
    sep=st.sampled_from([",", ";", "\t", "|"]),
    quote=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"]),
)
def test_csv_like_text_gives_a_frame_or_a_clean_error(
    header, rows, sep, quote, newline, encoding
) -> None:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if quote else value

    lines = [sep.join(map(cell, header))] + [sep.join(map(cell, r)) for r in rows]
    check_bytes(newline.join(lines).encode(encoding, errors="replace"))


PRINTABLE = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=6)
COLUMN_VALUES = st.one_of(
    st.lists(st.integers(-(2**63), 2**63 - 1), min_size=3, max_size=3),
    st.lists(st.floats(), min_size=3, max_size=3),
    st.lists(st.one_of(st.none(), PRINTABLE), min_size=3, max_size=3),
    st.lists(st.booleans(), min_size=3, max_size=3),
    st.lists(st.datetimes(datetime(1900, 3, 1), datetime(9999, 12, 31)), min_size=3, max_size=3),
)
"""Values of a typed column, within what both formats can store (Excel: no control
characters, no dates before 1900)."""


@given(
    columns=st.dictionaries(st.sampled_from(HEADER_CHOICES[:-1]), COLUMN_VALUES, min_size=1),
    suffix=st.sampled_from([".parquet", ".xlsx"]),
)
def test_typed_tables_in_parquet_and_excel_give_a_frame_or_a_clean_error(columns, suffix) -> None:
    frame = pd.DataFrame(columns)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"table{suffix}"
        if suffix == ".parquet":
            frame.to_parquet(path)
        else:
            frame.to_excel(path, index=False)
        check_bytes(path.read_bytes(), suffix=suffix)


@given(
    magic=st.sampled_from([b"PAR1", b"PK\x03\x04", b""]),
    data=st.binary(max_size=2000),
    suffix=st.sampled_from([".parquet", ".xlsx", ".csv"]),
)
def test_arbitrary_bytes_named_parquet_or_excel_give_a_clean_error(magic, data, suffix) -> None:
    check_bytes(magic + data, suffix=suffix)


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["C1", "C2", " ", "NA"]), st.sampled_from(["T1", ""]), CELL, CELL, CELL
        ),
        min_size=1,
        max_size=15,
    ),
    exclude=st.booleans(),
)
def test_contract_shaped_files_account_for_every_row(rows, exclude) -> None:
    text = "client_id,therapist_id,session,ors,srs\n" + "".join(
        ",".join(f'"{v}"' for v in r) + "\n" for r in rows
    )
    check_bytes(text.encode(), on_invalid_rows="exclude" if exclude else "fail")


def test_truncated_zip_named_csv_is_a_clean_error() -> None:
    """Found by the fuzzer: the first bytes of a zip (an .xlsx) and nothing else."""
    check_bytes(b"PK\x03\x04")


def test_repeated_blank_sessions_are_blank_not_duplicates() -> None:
    """Found by the fuzzer: two rows of one client with a missing session number."""
    text = "client_id,therapist_id,session,ors,srs\nC1,T1,NA,1,1\nC1,T1,NA,1,1\n"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.csv"
        path.write_text(text)
        problems = check_dataset(spec_for(path)).problems
    assert problems["rule"].tolist() == ["is required and must not be blank"] * 2


def test_a_ragged_last_row_ending_inside_a_utf8_character_is_a_clean_error() -> None:
    """Found by atheris: a small file whose last bytes start a UTF-8 character was taken as
    UTF-8, and pyarrow's handler of the short row raised UnicodeDecodeError inside pyarrow."""
    check_bytes(b"client_id,therapist_id,session,ors,srs\nC1,T1,1,20,30\nC2,T1,1,20\xf0\x9f")


def test_a_ragged_row_not_valid_in_the_declared_encoding_is_a_clean_error() -> None:
    """Found by atheris, with ``read.encoding: utf-8`` set: pyarrow printed the row as an
    "ignored" UnicodeDecodeError and its own message quoted the row; now neither."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.csv"
        path.write_bytes(
            b"client_id,therapist_id,session,ors,srs\nC1,T1,1,20,30\nC2,T9,1,2\xf0\x9f"
        )
        try:
            check_dataset(spec_for(path, read={"encoding": "utf-8"}))
        except DataError as error:
            rule = error.problems["rule"].iloc[0]
    assert rule.startswith("is not valid utf-8 text")
    assert "T9" not in rule


def test_an_all_empty_session_date_column_gives_no_dates_not_a_crash(write_file) -> None:
    """Found by the fuzzer (typed tables): a session_date column without a single value
    raised IndexError while parsing the dates, in Parquet and in CSV alike."""
    text = "client_id,therapist_id,session,ors,srs,session_date\nC1,T1,1,20,30,\nC2,T1,1,20,30,\n"
    result = check_dataset(spec_for(write_file("no_dates.csv", text)))
    assert result.summary["rows"]["used"] == 2
    assert result.sessions["session_date"].isna().all()


def two_sessions_parquet(path: Path, **extra: list) -> None:
    """Two valid sessions in a Parquet file, with the ``extra`` columns."""
    columns = {"client_id": ["C1", "C2"], "therapist_id": ["T1", "T1"], "session": [1, 1]}
    pd.DataFrame({**columns, "ors": [20, 21], "srs": [30, 31], **extra}).to_parquet(path)


@pytest.mark.parametrize("value", [float("inf"), 9.223372036854776e18])
def test_an_infinite_or_huge_whole_float_code_is_text_not_a_crash(value, tmp_path) -> None:
    """Found by the fuzzer (typed tables): whole-valued float columns are written as integer
    codes; inf raised OverflowError and 2**63 an invalid cast."""
    two_sessions_parquet(tmp_path / "codes.parquet", site_id=[1.0, value])
    result = check_dataset(spec_for(tmp_path / "codes.parquet"))
    assert result.sessions["site_id"].tolist() == ["1.0", str(value)]


def test_a_nested_parquet_column_is_refused_naming_it(tmp_path) -> None:
    """Found in review of the typed-table property (which draws flat columns only): a list
    column made the text rendering of cells raise 'truth value of an array is ambiguous'."""
    two_sessions_parquet(tmp_path / "nested.parquet", tags=[[1, 2], [3]])
    with pytest.raises(DataError) as info:
        check_dataset(spec_for(tmp_path / "nested.parquet"))
    problem = info.value.problems.iloc[0]
    assert problem["column"] == "tags"
    assert problem["rule"].startswith("the column holds list<element: int64> values")
