"""Fuzzing the loader: arbitrary bytes and CSV-like text give a valid frame or a clean error.

Runs derandomized in the default suite (``tests/conftest.py``); explore further with
``pytest tests/test_fuzz.py --hypothesis-profile=deep``. Every crash found is kept below as a
regression test.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

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
    sep=st.sampled_from([",", ";", "\t"]),
    quote=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_csv_like_text_gives_a_frame_or_a_clean_error(header, rows, sep, quote, newline) -> None:
    def cell(value: str) -> str:
        return '"' + value.replace('"', '""') + '"' if quote else value

    lines = [sep.join(map(cell, header))] + [sep.join(map(cell, r)) for r in rows]
    check_bytes(newline.join(lines).encode("utf-8"))


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
