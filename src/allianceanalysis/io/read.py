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
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
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

__all__ = ["RawTable", "detect_delimiter", "detect_encoding", "detect_format", "read_raw"]

SAMPLE_BYTES = 1 << 20
DELIMITERS = (",", ";", "\t", "|")
MAX_RAW_TEXT = 200

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
    ragged : pandas.DataFrame
        Rows set aside because their number of fields differs from the header's: columns
        ``row``, ``fields``, ``expected``, ``text`` (the row's text, truncated).
    blank_rows : int
        Fully blank rows, which are ignored.
    format : str
        ``"csv"``, ``"parquet"`` or ``"excel"``.
    options : dict
        Read options as used (given or detected), for the validation summary.
    """

    frame: pd.DataFrame
    header: list[str]
    file_row: np.ndarray
    ragged: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {
                "row": pd.Series(dtype="int64"),
                "fields": pd.Series(dtype="int64"),
                "expected": pd.Series(dtype="int64"),
                "text": pd.Series(dtype="str"),
            }
        )
    )
    blank_rows: int = 0
    format: str = "csv"
    options: dict = field(default_factory=dict)


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


def detect_encoding(sample: bytes) -> str:
    """Decide the text encoding of a file from its first bytes.

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
        decoder.decode(sample, final=False)
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
    if not path.is_file():
        raise DataError.single(name, "the file does not exist (or is not a regular file)")
    if path.stat().st_size == 0:
        raise DataError.single(name, "the file is empty")
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


def _header_fields(text: str, sep: str) -> list[str]:
    reader = csv.reader(io.StringIO(text), delimiter=sep, quotechar='"', doublequote=True)
    try:
        return next(reader)
    except (StopIteration, csv.Error):
        return []


def _read_csv(path: Path, options: ReadOptions) -> RawTable:
    name = str(path)
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    _check_text(name, sample, options.encoding is not None)
    encoding = options.encoding or detect_encoding(sample)
    text_sample = sample.decode(encoding, errors="replace").lstrip("\ufeff")
    if not text_sample.strip():
        raise DataError.single(name, "the file is empty (no header, no rows)")
    sep = options.sep or detect_delimiter(text_sample.splitlines()[0])
    header = _header_fields(text_sample, sep)
    if not any(h.strip() for h in header):
        raise DataError.single(name, "the first row (the header) is empty", row=1)
    n_columns = len(header)
    names = [f"f{i}" for i in range(n_columns)]
    native_utf8 = codecs.lookup(encoding).name == "utf-8"  # pyarrow decodes UTF-8 itself
    ragged: list[tuple[int | None, int, int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        ragged.append((row.number, row.actual_columns, row.expected_columns, row.text))
        return "skip"

    def read(use_threads: bool) -> pa.Table:
        ragged.clear()
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=names,
                encoding="utf8" if native_utf8 else encoding,
                use_threads=use_threads,
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

    try:
        table = read(use_threads=True)
        if ragged:  # row numbers of invalid rows are only known from a single-threaded read
            table = read(use_threads=False)
    except (pa.ArrowException, UnicodeError) as exc:
        raise DataError.single(
            name,
            f"could not be read as {encoding} CSV with delimiter {sep!r} "
            f"({str(exc).splitlines()[0][:160]}); set read.encoding / read.sep for this dataset",
        ) from None
    skipped = np.array([r[0] for r in ragged], dtype="int64")
    if 1 in skipped:
        raise DataError.single(name, "the header row could not be split into columns", row=1)
    records = np.arange(1, table.num_rows + len(skipped) + 1)
    if len(skipped):
        records = records[~np.isin(records, skipped)]
    table, file_row = table.slice(1), records[1:]  # the first record is the header
    blank = np.ones(table.num_rows, dtype=bool)
    for column in table.columns:
        blank &= pc.equal(column, "").to_numpy(zero_copy_only=False)
    blank_rows = int(blank.sum())
    if blank_rows:
        table, file_row = table.filter(pa.array(~blank)), file_row[~blank]
    frame = table.to_pandas()
    ragged_frame = pd.DataFrame(
        {
            "row": pd.Series([r[0] for r in ragged], dtype="int64"),
            "fields": pd.Series([r[1] for r in ragged], dtype="int64"),
            "expected": pd.Series([r[2] for r in ragged], dtype="int64"),
            "text": pd.Series([r[3][:MAX_RAW_TEXT] for r in ragged], dtype="str"),
        }
    )
    frame.columns = header
    return RawTable(
        frame=frame,
        header=header,
        file_row=file_row,
        ragged=ragged_frame,
        blank_rows=blank_rows,
        format="csv",
        options={"sep": sep, "encoding": encoding},
    )


def _read_parquet(path: Path) -> RawTable:
    name = str(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError.single(
            name, f"not a readable Parquet file ({str(exc).splitlines()[0][:160]})"
        ) from None
    header = [str(c) for c in table.column_names]
    table = table.rename_columns([f"f{i}" for i in range(len(header))])
    frame = table.to_pandas()
    frame.columns = header
    return RawTable(
        frame=frame,
        header=header,
        file_row=np.arange(1, len(frame) + 1),
        format="parquet",
        options={},
    )


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
