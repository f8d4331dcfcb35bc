"""Reading session files (CSV, Parquet, Excel) into a raw table with the file's row numbers.

Nothing is interpreted here beyond the file's structure: a CSV is read entirely as text (so
``"007"`` stays ``"007"`` and a bad value can be quoted back exactly), Parquet and Excel keep
their cell types. Each data row keeps the row number a person sees in the file: in a CSV or an
Excel sheet the header is row 1 and the first data row is row 2 (a quoted value spanning
several lines is still one row, as a spreadsheet shows it); in a Parquet file rows are
numbered from 1.

The CSV reader is pyarrow's (multi-threaded, with a per-row handler that catches rows with the
wrong number of fields). The delimiter, the text encoding and a byte-order mark are detected
unless set; the decimal mark and the date format are decided later, from the values
(:mod:`allianceanalysis.io.validate`).

Faults of scale are bounded before they cost memory: a file larger than ``read.max_file_mb``
is refused before it is read; a cell longer than :data:`MAX_CELL_BYTES` sets its row aside
(a row-level problem, shown truncated); a record longer than :data:`MAX_RECORD_BYTES` (an
unclosed quote running on to the end of the file) is refused, naming the row and column where
it starts.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import re
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from openpyxl.utils.exceptions import InvalidFileException

from ..config import ReadOptions
from ..errors import DataError

__all__ = [
    "CsvLayout",
    "RawTable",
    "csv_chunks",
    "csv_layout",
    "detect_delimiter",
    "detect_encoding",
    "detect_format",
    "raw_pieces",
    "read_raw",
    "read_shard",
    "set_aside_frame",
    "shard_metadata",
    "shard_table",
]

SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
MAX_RAW_TEXT = 200
MAX_CELL_BYTES = 1 << 20
"""A cell longer than this (1 MiB of text) sets its row aside. Session exports hold codes,
numbers, dates and short labels; a megabyte in one cell is an embedded document or a broken
export, never a rating."""
MAX_RECORD_BYTES = 64 << 20
"""A record (row) longer than this (64 MiB) is refused with the file: it is almost always an
unclosed quote that runs on through the rows after it."""
MAX_COLUMNS = 1000
"""A file with more columns is refused. A session export has tens: the OQ-45 with its items and
every optional column is about 60. Thousands mean a wide export (one row per client, sessions
across) or the wrong delimiter, and each column costs its own privacy scan."""
MEMORY_PER_FILE_BYTE = 10
"""Peak memory of reading and validating a CSV, per byte of the file: 3.5 GB for the 378 MB
CSV of 8 million simulated sessions (``benchmarks/results/ingest.csv``), rounded up."""
SCAN_BYTES = 16 << 20


def _megabytes(size: float) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"


def too_large(size: float, limit_mb: float) -> str:
    """The refusal of a file (or a shard) larger than ``read.max_file_mb``, naming the shards
    that would read it in pieces within the limit."""
    count = max(2, -int(-size // (limit_mb * 2**20)) * 2)
    return (
        f"the file is {_megabytes(size)}, larger than this dataset's limit of {limit_mb:g} MiB "
        f"(read.max_file_mb) for a file read whole: reading and validating take about "
        f"{MEMORY_PER_FILE_BYTE} times a CSV's size in memory, about "
        f"{_megabytes(size * MEMORY_PER_FILE_BYTE)} here. Shard it (shards: {{column: "
        f"therapist_id, count: {count}}} in its configuration): each shard is then read and "
        "validated by its own job (docs/performance.md); or raise read.max_file_mb on a "
        "machine with the memory for it"
    )


def _check_width(name: str, columns: int) -> None:
    if columns > MAX_COLUMNS:
        raise DataError.single(
            name,
            f"the file has {columns:,} columns, more than the {MAX_COLUMNS:,} a session file may "
            "have: session data are one row per session (a wide export with sessions across "
            "needs reshaping), or the delimiter is wrong (set read.sep)",
        )


def set_aside_frame(
    row: list[int], column: list[str], value: list[str], rule: list[str], text: list[str]
) -> pd.DataFrame:
    """Rows set aside as problems (:attr:`RawTable.set_aside`)."""
    return pd.DataFrame(
        {
            "row": pd.Series(row, dtype="int64"),
            "column": pd.Series(column, dtype="str"),
            "value": pd.Series(value, dtype="str"),
            "rule": pd.Series(rule, dtype="str"),
            "text": pd.Series(text, dtype="str"),
        }
    )


_MAGIC = {
    b"PAR1": "parquet",
    b"PK\x03\x04": "excel",
    b"\xd0\xcf\x11\xe0": "legacy-excel",
}
_EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "legacy-excel",
}


@dataclass
class RawTable:
    """A file read as a table, before mapping and validation.

    Attributes
    ----------
    frame : pandas.DataFrame
        Data rows with the file's column names (a CSV: all text; missing cells are ``""``).
    header : list of str
        Column names as written in the file (may contain duplicates or blanks).
    file_row : numpy.ndarray
        For each row of ``frame``, its row number as a person sees it in the file.
    set_aside : pandas.DataFrame
        Rows that could not be taken as rows: a number of fields other than the header's, or
        a cell longer than :data:`MAX_CELL_BYTES`. Columns ``row``, ``column``, ``value``,
        ``rule`` (as a problem) and ``text`` (the row's text, truncated).
    blank_rows : int
        Fully blank rows, which are ignored.
    format : str
        ``"csv"``, ``"parquet"`` or ``"excel"``.
    options : dict
        Read options as used (given or detected), for the validation summary.
    records : int
        The records read from the file for this table (set-aside rows, blank rows and a
        header included), which numbers the rows of the piece after it (:func:`csv_chunks`).
    """

    frame: pd.DataFrame
    header: list[str]
    file_row: np.ndarray
    set_aside: pd.DataFrame = field(default_factory=lambda: set_aside_frame([], [], [], [], []))
    blank_rows: int = 0
    format: str = "csv"
    options: dict = field(default_factory=dict)
    records: int = 0


def detect_format(path: Path, declared: str = "auto") -> str:
    """Decide a file's format from its first bytes, then its extension.

    Examples
    --------
    >>> detect_format(Path("sessions.csv"), "csv")
    'csv'
    """
    if declared != "auto":
        return declared
    with path.open("rb") as handle:
        head = handle.read(8)
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return _EXTENSIONS.get(path.suffix.lower(), "csv")


def detect_encoding(sample: bytes, whole_file: bool = False) -> str:
    """Decide the text encoding of a file from its first bytes (or all of them).

    A byte-order mark decides (UTF-8 or UTF-16); otherwise UTF-8 if the sample is valid UTF-8,
    else Windows-1252 (what Excel on Windows writes in Western Europe and the Americas), else
    Latin-1. The rule is deliberately simple and predictable: statistical guessers disagree on
    short samples, and a wrong guess only garbles text columns, never scores. Set
    ``read.encoding`` for anything else (e.g. ``cp1250`` for Central European exports).

    Examples
    --------
    >>> detect_encoding("client_id,ors\\nC1,23.5\\n".encode())
    'utf-8'
    >>> detect_encoding("client_id,note\\nC1,café\\n".encode("cp1252"))
    'cp1252'
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=whole_file)  # a sample may end inside a character
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        sample.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def detect_delimiter(first_line: str) -> str:
    """The most frequent of ``, ; TAB |`` outside quotes in the header line (``,`` if none).

    Examples
    --------
    >>> detect_delimiter('"Client Code";"Session No";ORS')
    ';'
    """
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def read_raw(path: Path, options: ReadOptions, declared_format: str = "auto") -> RawTable:
    """Read a session file into a :class:`RawTable`.

    Parameters
    ----------
    path : Path
        The file.
    options : ReadOptions
        Delimiter, encoding, Excel sheet (``None`` = detect / default).
    declared_format : {"auto", "csv", "parquet", "excel"}
        The configured format.

    Raises
    ------
    DataError
        When the file is missing, empty, not a table, or not text where text is expected.
    """
    name = str(path)
    size = _file_size(path)
    if size > options.max_file_mb * 2**20:
        raise DataError.single(name, too_large(size, options.max_file_mb))
    kind = detect_format(path, declared_format)
    if kind == "legacy-excel":
        raise DataError.single(
            name, "this is an old-style Excel .xls file; save it as .xlsx or CSV"
        )
    if kind == "parquet":
        return _read_parquet(path)
    if kind == "excel":
        return _read_excel(path, options)
    return _read_csv(path, options)


def _file_size(path: Path) -> int:
    """The file's size; refused when it is missing or empty."""
    if not path.is_file():
        raise DataError.single(str(path), "the file does not exist (or is not a regular file)")
    size = path.stat().st_size
    if size == 0:
        raise DataError.single(str(path), "the file is empty")
    return size


def _check_text(name: str, sample: bytes, encoding_given: bool) -> None:
    if encoding_given:
        return
    for magic, kind in _MAGIC.items():
        if sample.startswith(magic):
            raise DataError.single(
                name,
                f"this looks like a {kind.replace('-', ' ')} file, not CSV text: "
                "give it the right extension or set the dataset's format",
            )
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    if b"\x00" in sample:
        raise DataError.single(
            name,
            "the file is not text (it contains NUL bytes); expected a CSV, Parquet or "
            "Excel file (a UTF-16 CSV needs a byte-order mark or read.encoding: utf-16)",
        )


def _header_fields(name: str, text: str, sep: str) -> list[str]:
    reader = csv.reader(io.StringIO(text), delimiter=sep, quotechar='"', doublequote=True)
    try:
        return next(reader)
    except StopIteration:
        return []
    except csv.Error:  # a name longer than the csv module's field limit (128 KiB)
        raise DataError.single(
            name, "a column name in the header is longer than 128 KiB; is row 1 the header?", row=1
        ) from None


@dataclass(frozen=True)
class CsvLayout:
    """How a CSV file is laid out: what :func:`read_raw` detects before reading its rows.

    Attributes
    ----------
    header : list of str
        The column names of row 1.
    sep, encoding : str
        The delimiter and the text encoding (given or detected).
    data_start : int
        The byte offset where the first record after the header starts.
    """

    header: list[str]
    sep: str
    encoding: str
    data_start: int


def csv_layout(path: Path, options: ReadOptions) -> CsvLayout:
    """Detect a CSV file's encoding, delimiter and header, refusing what is not CSV text."""
    name = str(path)
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    _check_text(name, sample, options.encoding is not None)
    encoding = options.encoding or detect_encoding(sample, len(sample) < SAMPLE_BYTES)
    text_sample = sample.decode(encoding, errors="replace").lstrip("\ufeff")
    if not text_sample.strip():
        raise DataError.single(name, "the file is empty (no header, no rows)")
    sep = options.sep or detect_delimiter(text_sample.splitlines()[0])
    if len(sample) == SAMPLE_BYTES and "\n" not in text_sample and "\r" not in text_sample:
        raise DataError.single(
            name,
            f"the header row is longer than {_megabytes(SAMPLE_BYTES)}; is row 1 the header?",
            row=1,
        )
    header = _header_fields(name, text_sample, sep)
    if not any(h.strip() for h in header):
        raise DataError.single(name, "the first row (the header) is empty", row=1)
    _check_width(name, len(header))
    data_start = -1
    if _ascii_compatible(encoding):
        newlines, _ = _unquoted(np.frombuffer(sample, dtype=np.uint8), "\n")
        data_start = int(newlines[0]) + 1 if len(newlines) else len(sample)
    return CsvLayout(header=header, sep=sep, encoding=encoding, data_start=data_start)


def _read_csv(path: Path, options: ReadOptions) -> RawTable:
    layout = csv_layout(path, options)
    return _csv_rows(path, layout, first_record=1, name=str(path))


def csv_chunks(path: Path, options: ReadOptions, chunk_bytes: int = 64 << 20) -> Iterator[RawTable]:
    """Read a CSV file in pieces of about ``chunk_bytes``, in bounded memory.

    Each piece is a :class:`RawTable` of whole records, with the row numbers, set-aside rows
    and blank rows :func:`read_raw` gives the same rows of the whole file: together the
    pieces are the whole file's table. A piece ends at a newline outside double quotes, as
    the reader splits records.

    Raises
    ------
    DataError
        As :func:`read_raw`; and for a text encoding whose delimiters are not single bytes
        (UTF-16), which only the whole-file reader reads.

    Examples
    --------
    >>> from allianceanalysis.config import ReadOptions
    >>> pieces = list(csv_chunks(Path("data/demo/sessions.csv"), ReadOptions(), 100_000))
    >>> len(pieces) > 1, int(pieces[1].file_row[0]) == int(pieces[0].file_row[-1]) + 1
    (True, True)
    """
    name = str(path)
    layout = csv_layout(path, options)
    if layout.data_start < 0:
        raise DataError.single(
            name,
            f"a file in {layout.encoding} is only read whole; save it as UTF-8 to read it in "
            "pieces (shards)",
        )
    record = 2  # the header is record 1; every piece starts at a record's start
    with path.open("rb") as handle:
        handle.seek(layout.data_start)
        carry = b""
        while True:
            block = handle.read(chunk_bytes)
            data = carry + block
            if not data:
                return
            if block:
                newlines, _ = _unquoted(np.frombuffer(data, dtype=np.uint8), "\n")
                if not len(newlines):  # no record ends here: read on
                    if len(data) > MAX_RECORD_BYTES + chunk_bytes:
                        _refuse_record(path, layout.sep, layout.header, record,
                                       handle.tell() - len(data))  # fmt: skip
                    carry = data
                    continue
                cut = int(newlines[-1]) + 1
                piece, carry = data[:cut], data[cut:]
            else:
                piece, carry = data, b""
            table = _csv_rows(pa.BufferReader(piece), layout, first_record=record, name=name,
                              header_row=False)  # fmt: skip
            yield table
            record += table.records
            if not block:
                return


def _csv_rows(
    source, layout: CsvLayout, *, first_record: int, name: str, header_row: bool = True
) -> RawTable:
    """Read the records of ``source`` (a path, or the bytes of whole records) into a
    :class:`RawTable` numbered from ``first_record`` (the file's header is record 1; with
    ``header_row`` the source starts with it and it is dropped)."""
    sep, encoding, header = layout.sep, layout.encoding, layout.header
    n_columns = len(header)
    names = [f"f{i}" for i in range(n_columns)]
    native_utf8 = codecs.lookup(encoding).name == "utf-8"  # pyarrow decodes UTF-8 itself
    ragged: list[tuple[int | None, int, int, str]] = []
    in_memory = isinstance(source, pa.BufferReader)

    def on_invalid(row: pacsv.InvalidRow) -> str:
        ragged.append((row.number, row.actual_columns, row.expected_columns, row.text))
        return "skip"

    def read(use_threads: bool, block_size: int = 1 << 20) -> pa.Table:
        ragged.clear()
        if in_memory:
            source.seek(0)
        return pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=names,
                encoding="utf8" if native_utf8 else encoding,
                use_threads=use_threads,
                block_size=block_size,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=sep,
                quote_char='"',
                double_quote=True,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

    block_size = 1 << 20  # pyarrow's default; a record must fit in one block
    try:
        with _undecodable_rows() as undecodable:
            try:
                table = read(use_threads=True)
            except pa.ArrowInvalid as exc:
                if "straddl" not in str(exc) or not _ascii_compatible(encoding):
                    raise
                if in_memory:
                    longest = _longest_in(source, layout, first_record, name)
                else:
                    longest = _longest_record(source, sep, header)
                block_size = 1 << (2 * longest).bit_length()
                table = read(use_threads=True, block_size=block_size)
            if ragged:  # row numbers of invalid rows are only known from a single-threaded read
                table = read(use_threads=False, block_size=block_size)
    except (pa.ArrowException, UnicodeError) as exc:
        if undecodable:
            raise DataError.single(
                name,
                f"is not valid {encoding} text (a row with the wrong number of fields holds "
                "other bytes); set read.encoding for this dataset (e.g. cp1252)",
            ) from None
        reason = re.sub(r"(columns, got \d+).*", r"\1", str(exc).splitlines()[0])[:160]
        raise DataError.single(
            name,
            f"could not be read as {encoding} CSV with delimiter {sep!r} ({reason}); set "
            "read.encoding / read.sep for this dataset",
        ) from None
    offset = first_record - 1  # pyarrow numbers the source's records from 1
    skipped = np.array([r[0] for r in ragged], dtype="int64") + offset
    if header_row and first_record in skipped:
        raise DataError.single(name, "the header row could not be split into columns", row=1)
    for number, _, _, text in ragged:
        if len(text) > MAX_CELL_BYTES and "\n" in text:
            encoded = text.encode("utf-8", errors="replace")
            raise _runaway(name, sep, header, number + offset, encoded, _megabytes(len(encoded)))
    n_records = table.num_rows + len(skipped)
    records = np.arange(first_record, first_record + n_records)
    if len(skipped):
        records = records[~np.isin(records, skipped)]
    if header_row:  # the first record is the header
        table, file_row = table.slice(1), records[1:]
    else:
        file_row = records
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= pc.equal(column, "").to_numpy(zero_copy_only=False)
    blank_rows = int(blank.sum())
    if blank_rows:
        table, file_row = table.filter(pa.array(~blank)), file_row[~blank]
    ragged_frame = set_aside_frame(
        skipped.tolist(),
        [""] * len(ragged),
        [""] * len(ragged),
        [
            f"the row has {r[1]} fields; the header has {r[2]} (a stray delimiter or an "
            "unclosed quote?)"
            for r in ragged
        ],
        [r[3][:MAX_RAW_TEXT] for r in ragged],
    )
    table, file_row, overlong = _set_aside_overlong(table, header, file_row, sep, name)
    frame = table.to_pandas()
    frame.columns = header
    return RawTable(
        frame=frame,
        header=header,
        file_row=file_row,
        set_aside=pd.concat([ragged_frame, overlong], ignore_index=True)
        if len(overlong)
        else ragged_frame,
        blank_rows=blank_rows,
        format="csv",
        options={"sep": sep, "encoding": encoding},
        records=n_records,
    )


def _longest_in(source: pa.BufferReader, layout: CsvLayout, first_record: int, name: str) -> int:
    """:func:`_longest_record` of a piece of a file held in memory."""
    data = np.frombuffer(source.read_buffer(), dtype=np.uint8)
    newlines, _ = _unquoted(data, "\n")
    bounds = np.concatenate([[-1], newlines, [len(data) - 1]])
    lengths = np.diff(bounds)
    over = np.flatnonzero(lengths > MAX_RECORD_BYTES)
    if len(over):
        start = int(bounds[over[0]]) + 1
        raise _runaway(name, layout.sep, layout.header, first_record + int(over[0]),
                       data[start:start + MAX_RECORD_BYTES + 1].tobytes(),
                       f"more than {_megabytes(MAX_RECORD_BYTES)}")  # fmt: skip
    return int(lengths.max(initial=0))


@contextlib.contextmanager
def _undecodable_rows() -> Iterator[list[BaseException]]:
    """Catch the rows pyarrow cannot decode for its invalid-row handler.

    pyarrow decodes a row with the wrong number of fields itself before calling the handler;
    when the row is not valid UTF-8 the error is printed as "ignored" (with the row's content)
    and the read fails. They are collected here instead, so that nothing is printed.
    """
    caught: list[BaseException] = []
    previous = sys.unraisablehook

    def hook(info: sys.UnraisableHookArgs) -> None:
        if isinstance(info.exc_value, UnicodeDecodeError):
            caught.append(info.exc_value)
        else:
            previous(info)

    sys.unraisablehook = hook
    try:
        yield caught
    finally:
        sys.unraisablehook = previous


def _ascii_compatible(encoding: str) -> bool:
    """Whether quotes, delimiters and newlines are single ASCII bytes in ``encoding``."""
    return '\n,;|\t"'.encode(encoding, errors="replace") == b'\n,;|\t"'


def _unquoted(data: np.ndarray, char: str, inside: int = 0) -> tuple[np.ndarray, int]:
    """Positions of ``char`` in the bytes ``data`` outside double quotes, and the number of
    quotes in ``data`` (``inside``: whether ``data`` starts inside quotes)."""
    quotes = np.flatnonzero(data == ord('"'))
    found = np.flatnonzero(data == ord(char))
    return found[(np.searchsorted(quotes, found) + inside) % 2 == 0], len(quotes)


def _longest_record(path: Path, sep: str, header: list[str]) -> int:
    """The length in bytes of the file's longest record (row), read in bounded memory.

    Records end at a newline outside double quotes, as the CSV reader splits them. A record
    longer than :data:`MAX_RECORD_BYTES` is refused, naming its row and the column where the
    overlong cell starts.
    """
    inside = 0  # whether the previous chunk ended inside quotes
    offset = record_start = 0
    row = 1
    longest = 0
    with path.open("rb") as handle:
        while chunk := handle.read(SCAN_BYTES):
            data = np.frombuffer(chunk, dtype=np.uint8)
            newlines, quotes = _unquoted(data, "\n", inside)
            ends = newlines + offset
            starts = np.concatenate([[record_start], ends[:-1] + 1])
            lengths = ends - starts[: len(ends)]
            over = np.flatnonzero(lengths > MAX_RECORD_BYTES)
            if len(over):
                _refuse_record(path, sep, header, row + int(over[0]), int(starts[over[0]]))
            longest = max(longest, int(lengths.max(initial=0)))
            row += len(ends)
            record_start = int(ends[-1]) + 1 if len(ends) else record_start
            offset += len(data)
            inside = (quotes + inside) % 2
            if offset - record_start > MAX_RECORD_BYTES:
                _refuse_record(path, sep, header, row, record_start)
    return max(longest, offset - record_start)


def _refuse_record(path: Path, sep: str, header: list[str], row: int, start: int) -> None:
    """Refuse the record at byte ``start``, longer than :data:`MAX_RECORD_BYTES`."""
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read(MAX_RECORD_BYTES + 1)
    raise _runaway(str(path), sep, header, row, data, f"more than {_megabytes(MAX_RECORD_BYTES)}")


def _runaway(name: str, sep: str, header: list[str], row: int, data: bytes, size: str) -> DataError:
    """The refusal of a row whose quoted value runs on over the rows after it.

    ``data`` is the row's text from its start; its longest field is the cell where the
    quote opens."""
    bounds, _ = _unquoted(np.frombuffer(data, dtype=np.uint8), sep)
    starts = np.concatenate([[0], bounds + 1])
    field = int(np.argmax(np.diff(np.concatenate([starts, [len(data)]]))))
    column = header[field] if field < len(header) else f"field {field + 1}"
    return _runaway_error(name, row, column, data[starts[field] :], size)


def _runaway_error(name: str, row: int, column: str, cell: bytes, size: str) -> DataError:
    lines = cell.count(b"\n") + 1
    return DataError.single(
        name,
        f"a quoted value opens in this cell and runs on for {size} over {lines:,} "
        "lines of the file (an unclosed double quote?); close it, or the rows after it cannot "
        "be read",
        column,
        row,
        cell[:60].decode("utf-8", errors="replace"),
    )


def _shown(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as text for a message; missing where it has no text form (e.g. raw bytes)."""
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array([pa.nulls(len(column), pa.string())])


def _set_aside_overlong(
    table: pa.Table, header: list[str], file_row: np.ndarray, sep: str, csv_name: str = ""
) -> tuple[pa.Table, np.ndarray, pd.DataFrame]:
    """Take out rows with a cell longer than :data:`MAX_CELL_BYTES`, as problems.

    In a CSV (``csv_name``), such a cell spanning several lines is an unclosed quote that ran
    on over the rows after it: the file is refused.
    """
    over = np.zeros(table.num_rows, dtype=bool)
    first_column = np.full(table.num_rows, -1)
    for position, column in enumerate(table.columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        long = pc.fill_null(pc.greater(pc.binary_length(column), MAX_CELL_BYTES), False)
        long = long.to_numpy(zero_copy_only=False)
        first_column[long & ~over] = position
        over |= long
    if not over.any():
        return table, file_row, set_aside_frame([], [], [], [], [])
    rows = table.filter(pa.array(over))
    where = first_column[over].tolist()
    if csv_name:
        # one memchr per cell of over a MiB (at most the file's size in MiB of them); pyarrow's
        # match_substring reads 350 MB/s, and a numpy pass over the buffer doubles the memory
        for i, w in enumerate(where):
            cell = rows.column(w)[i].as_buffer().to_pybytes()
            if b"\n" in cell:
                row = int(file_row[over][i])
                raise _runaway_error(csv_name, row, header[w], cell, _megabytes(len(cell)))
    short = [pc.utf8_slice_codeunits(_shown(column), 0, MAX_RAW_TEXT) for column in rows.columns]
    rule = (
        f"the cell holds more than {_megabytes(MAX_CELL_BYTES)} of text (an unclosed quote, or "
        "a document pasted into a cell?)"
    )
    frame = set_aside_frame(
        file_row[over].tolist(),
        np.asarray(header, dtype=object)[where].tolist(),
        pc.choose(pa.array(where), *short).to_pylist(),
        [rule] * len(where),
        pc.binary_join_element_wise(*short, sep, null_handling="replace").to_pylist(),
    )
    return table.filter(pa.array(~over)), file_row[~over], frame


def _read_parquet(path: Path) -> RawTable:
    header = _parquet_header(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable_parquet(path, exc) from None
    return _parquet_piece(table, header, 1)


def _unreadable_parquet(path: Path, exc: BaseException) -> DataError:
    return DataError.single(
        str(path), f"not a readable Parquet file ({str(exc).splitlines()[0][:160]})"
    )


def _parquet_header(path: Path) -> list[str]:
    """A Parquet file's column names, refusing a file too wide or with nested columns."""
    name = str(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable_parquet(path, exc) from None
    _check_width(name, len(schema))
    header = [str(c) for c in schema.names]
    nested = [(h, f.type) for h, f in zip(header, schema, strict=True) if f.type.num_fields]
    if nested:
        problems = pd.DataFrame(
            {
                "row": pd.array([None] * len(nested), dtype="Int64"),
                "column": [h for h, _ in nested],
                "value": "",
                "rule": [
                    f"the column holds {kind} values, not one value per cell; session data "
                    "must be flat (drop the column from the export, or flatten it)"
                    for _, kind in nested
                ],
            }
        )
        raise DataError(name, problems)
    return header


def _parquet_piece(table: pa.Table, header: list[str], first_row: int) -> RawTable:
    """Rows of a Parquet file (numbered from ``first_row``) as a :class:`RawTable`."""
    records = table.num_rows
    table = table.rename_columns([f"f{i}" for i in range(len(header))])
    table, file_row, overlong = _set_aside_overlong(
        table, header, np.arange(first_row, first_row + records), ","
    )
    frame = _dates_as_text(table).to_pandas()
    frame.columns = header
    return RawTable(frame=frame, header=header, file_row=file_row, set_aside=overlong,
                    format="parquet", records=records)  # fmt: skip


def _dates_as_text(table: pa.Table) -> pa.Table:
    """``table`` with its date columns as ISO text (``2025-12-24``), the text validation
    makes of a date (:func:`~allianceanalysis.io.validate.as_text`), cast by Arrow: pandas
    holds dates as Python objects, and formatting them one at a time took 6 of a 4M-row
    shard's 10.6 s of validation (1M clients, 2 shards; a CSV input's shard took 4.0 s)."""
    for position, column in enumerate(table.columns):
        if pa.types.is_date(column.type):
            text = pc.cast(column, pa.large_string())
            table = table.set_column(position, table.field(position).name, text)
    return table


def _read_excel(path: Path, options: ReadOptions) -> RawTable:
    name = str(path)
    sheet = 0 if options.sheet is None else options.sheet
    try:
        grid = pd.read_excel(path, sheet_name=sheet, header=None, dtype=object)
    except ValueError as exc:
        raise DataError.single(name, f"cannot read the sheet {sheet!r}: {exc}") from None
    except (OSError, KeyError, TypeError, zipfile.BadZipFile, InvalidFileException) as exc:
        raise DataError.single(
            name, f"not a readable Excel workbook ({exc.__class__.__name__})"
        ) from None
    if grid.empty:
        raise DataError.single(name, f"the sheet {sheet!r} is empty")
    _check_width(name, grid.shape[1])
    header_cells = grid.iloc[0]
    if header_cells.isna().all():
        raise DataError.single(name, "the first row (the header) is empty", row=1)
    header = ["" if pd.isna(v) else str(v).strip() for v in header_cells]
    frame = grid.iloc[1:].reset_index(drop=True)
    file_row = np.arange(2, len(frame) + 2)
    is_blank = frame.isna().all(axis=1).to_numpy()
    frame = frame.loc[~is_blank].reset_index(drop=True)
    frame.columns = header
    return RawTable(
        frame=frame,
        header=header,
        file_row=file_row[~is_blank],
        blank_rows=int(is_blank.sum()),
        format="excel",
        options={"sheet": sheet},
    )


SHARD_METADATA = b"allianceanalysis.shard"
"""The Parquet metadata key of a shard file: the source's header, format and read options."""
SHARD_ROW = "__file_row"
"""The column of a shard file holding each row's number in the source file."""


def raw_pieces(
    path: Path, options: ReadOptions, declared_format: str = "auto", chunk_bytes: int = 64 << 20
) -> Iterator[RawTable]:
    """Read a CSV or Parquet session file in pieces, in bounded memory: :func:`csv_chunks`, or
    a Parquet file's rows in batches, each a :class:`RawTable` as :func:`read_raw` gives the
    same rows of the whole file.

    Raises
    ------
    DataError
        As :func:`read_raw`, and for an Excel workbook (read whole; save it as CSV to read it
        in pieces).
    """
    name = str(path)
    _file_size(path)
    kind = detect_format(path, declared_format)
    if kind in ("excel", "legacy-excel"):
        raise DataError.single(
            name, "an Excel workbook is only read whole; save it as CSV to read it in pieces"
        )
    if kind == "csv":
        yield from csv_chunks(path, options, chunk_bytes)
        return
    header = _parquet_header(path)
    first = 1
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=max(chunk_bytes >> 6, 1)):
            yield _parquet_piece(pa.Table.from_batches([batch]), header, first)
            first += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable_parquet(path, exc) from None


def shard_table(piece: RawTable) -> pa.Table:
    """A piece of a source file as the Parquet table of a shard file (cells as read, the
    file's row numbers in :data:`SHARD_ROW`)."""
    frame = piece.frame.set_axis([f"f{i}" for i in range(len(piece.header))], axis=1)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return table.append_column(SHARD_ROW, pa.array(piece.file_row, pa.int64()))


def shard_metadata(header: list[str], kind: str, options: dict) -> dict[bytes, bytes]:
    """The Parquet metadata of a shard file (:data:`SHARD_METADATA`)."""
    return {SHARD_METADATA: json.dumps({"header": header, "format": kind,
                                        "options": options}).encode()}  # fmt: skip


def read_shard(path: Path) -> RawTable:
    """Read a shard file (written by :mod:`allianceanalysis.shards`) as the :class:`RawTable`
    of its rows of the source file: the source's header, cells, row numbers (in file order)
    and read options."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[SHARD_METADATA])
    table = table.sort_by(SHARD_ROW)
    rows = table.column(SHARD_ROW).to_numpy()
    frame = _dates_as_text(table.drop_columns([SHARD_ROW])).to_pandas()
    frame.columns = meta["header"]
    return RawTable(frame=frame, header=meta["header"], file_row=rows, format=meta["format"],
                    options=meta["options"], records=len(rows))  # fmt: skip
