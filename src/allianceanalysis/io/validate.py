"""Validating a session file against the data contract (pandera), with row accounting.

:func:`check_dataset` reads, maps and validates a file and returns every problem it found;
:func:`load_dataset` does the same and applies the dataset's ``on_invalid_rows`` policy:
``fail`` (the default) raises :class:`~allianceanalysis.errors.DataError` listing the problems,
``exclude`` drops the offending rows and returns them with their reasons. Problems with the
file as a whole (not a table, missing or identifying columns, an empty score column) always
raise.

Each problem names the file, the row as a person sees it in the file, the column as the file
names it, the offending value, and the rule in plain words. Rows are accounted for:
``rows read = rows used + rows excluded``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
from pandas.api.types import is_bool_dtype, is_datetime64_any_dtype, is_numeric_dtype

from ..config import DatasetSpec
from ..derive import CaseOrder, case_keys, key_codes
from ..errors import PROBLEM_COLUMNS, DataError
from ..instruments import INSTRUMENTS, Instrument, instruments_in_use
from .mapping import END_STATUSES, NO_THERAPIST, ColumnPlan, plan_columns
from .privacy import identifier_value_reasons
from .read import RawTable, read_raw, read_shard

__all__ = ["DATE_FORMATS", "DATE_RANGE", "ValidationResult", "check_dataset", "load_dataset"]

DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%d.%m.%Y %H:%M",
)
"""Session-date formats tried when a dataset sets no ``read.date_format``."""
DATE_RANGE = (pd.Timestamp("1900-01-01"), pd.Timestamp("2100-12-31"))
"""Session dates outside this range are refused as impossible."""
DETECTION_SAMPLE = 20_000
"""The decimal mark and the date format are decided from a column's first this many values
(distinct values, for dates): enough for any real export, and the same for a file read in
pieces (:mod:`allianceanalysis.shards`)."""
_TEXT_COLUMNS = ("client_id", "therapist_id", "site_id", "episode_id", "condition")


@dataclass
class ValidationResult:
    """What validation produced for one dataset.

    Attributes
    ----------
    sessions : pandas.DataFrame
        The analysable rows in the contract's columns (plus extra columns and ``source_row``,
        the row in the file).
    problems : pandas.DataFrame
        Every row-level problem found (columns ``row, column, value, rule``).
    excluded : pandas.DataFrame
        The rows set aside: ``source_row``, ``exclusion_reasons``, their original cells, and
        ``raw_line`` for rows that could not be split into fields.
    summary : dict
        Row accounting, detected read options, columns, counts and warnings.
    """

    sessions: pd.DataFrame
    problems: pd.DataFrame
    excluded: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


PROBLEM_DTYPES = {"row": "Int64", "column": "str", "value": "str", "rule": "str"}


def _empty_problems() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in PROBLEM_DTYPES.items()})


class _Problems:
    """Collects row-level problems as frames (vectorised; no Python object per problem)."""

    def __init__(self, file_row: np.ndarray) -> None:
        self.file_row = file_row
        self.frames: list[pd.DataFrame] = []

    def add(self, mask: np.ndarray | pd.Series, column: str, values: pd.Series, rule: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        shown = values[mask].astype("str").fillna("").to_numpy()
        self.frames.append(
            pd.DataFrame(
                {"row": self.file_row[mask], "column": column, "value": shown, "rule": rule}
            )
        )

    def frame(self) -> pd.DataFrame:
        if not self.frames:
            return _empty_problems()
        return pd.concat(self.frames, ignore_index=True).astype(PROBLEM_DTYPES)


def _format_cell(value: object) -> object:
    if isinstance(value, str):
        return value.strip()
    if value is None or (not isinstance(value, pd.Timestamp) and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, pd.Timestamp):
        return value.isoformat(sep=" ")
    return str(value)


def as_text(series: pd.Series, na_values: tuple[str, ...]) -> pd.Series:
    """A column as stripped text; cells in ``na_values`` (after stripping) become missing.

    Whole-valued floats (how Excel and Parquet often store codes) are written without ``.0``.

    Examples
    --------
    >>> as_text(pd.Series([" C1 ", "NA", ""]), ("", "NA")).tolist()
    ['C1', nan, nan]
    >>> as_text(pd.Series([101.0, None]), ("",)).tolist()
    ['101', nan]
    """
    if is_bool_dtype(series):
        text = series.astype("str")
    elif is_numeric_dtype(series):
        present = series.dropna()
        exact = present.abs() < 2**53  # whole floats below 2**53 are exact integers; inf is not
        if series.dtype.kind == "f" and bool((exact & (present == np.floor(present))).all()):
            series = series.astype("Int64")
        text = series.astype("str")
    elif is_datetime64_any_dtype(series):
        text = series.dt.strftime("%Y-%m-%d %H:%M:%S").str.removesuffix(" 00:00:00")
    elif isinstance(series.dtype, pd.StringDtype):
        text = series.str.strip()
    else:
        text = series.map(_format_cell).astype("str")
    return text.mask(text.isin(na_values)).astype("str")


def detect_decimal(texts: list[pd.Series], sep: str | None) -> str:
    """``","`` when numbers are written like ``3,5`` (never with a point) in a file whose
    delimiter is not a comma; ``"."`` otherwise."""
    if sep == ",":
        return "."
    comma = point = False
    for text in texts:
        sample = text.dropna().head(DETECTION_SAMPLE)
        comma = comma or bool(sample.str.fullmatch(r"[-+]?\d*,\d+").any())
        point = point or bool(sample.str.fullmatch(r"[-+]?\d*\.\d+").any())
    return "," if comma and not point else "."


def to_float(text: pd.Series) -> pd.Series:
    """Text to float64 (missing and unparseable cells become NaN).

    pyarrow's cast parses a clean column about 25 times faster than :func:`pandas.to_numeric`;
    it refuses the whole column at the first bad cell, and then pandas finds them all.
    """
    try:
        values = pc.cast(pyarrow.array(text.array), pyarrow.float64()).to_numpy(
            zero_copy_only=False
        )
        return pd.Series(values, index=text.index)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError, TypeError):
        return pd.to_numeric(text, errors="coerce").astype("float64")


def _parse_numbers(text: pd.Series, decimal: str) -> tuple[pd.Series, np.ndarray]:
    """Numbers from text; the mask marks present cells that are not finite numbers."""
    candidate = text if decimal == "." else text.str.replace(",", ".", regex=False)
    numbers = to_float(candidate)
    numbers = numbers.where(np.isfinite(numbers))
    bad = (text.notna() & numbers.isna()).to_numpy(dtype=bool)
    return numbers, bad


def choose_date_format(text: pd.Series, file: str, column: str) -> str:
    sample = pd.Series(text.dropna().unique()[:DETECTION_SAMPLE], dtype="str")
    parsed = {f: pd.to_datetime(sample, format=f, errors="coerce") for f in DATE_FORMATS}
    counts = {f: int(p.notna().sum()) for f, p in parsed.items()}
    best = max(DATE_FORMATS, key=lambda f: counts[f])
    if counts[best] == 0:
        return DATE_FORMATS[0]
    rivals = [
        f
        for f in DATE_FORMATS
        if f != best and counts[f] == counts[best] and not parsed[f].equals(parsed[best])
    ]
    if rivals:
        example = sample[parsed[best].notna() & parsed[rivals[0]].notna()].iloc[0]
        raise DataError.single(
            file,
            f"session dates such as '{example}' read both as {best} and as {rivals[0]}; set "
            'read.date_format for this dataset (e.g. "%d/%m/%Y")',
            column,
        )
    return best


def _parse_dates(
    text: pd.Series, date_format: str | None, file: str, column: str
) -> tuple[pd.Series, np.ndarray, np.ndarray, str]:
    fmt = date_format or choose_date_format(text, file, column)
    # A service has a few thousand distinct dates in millions of rows: each is parsed once.
    codes, distinct = pd.factorize(text)
    parsed = pd.to_datetime(pd.Series(distinct, dtype="str"), format=fmt, errors="coerce")
    taken = np.full(len(codes), np.datetime64("NaT"), dtype="datetime64[ns]")
    present = codes >= 0  # all missing: no distinct values to take from
    taken[present] = parsed.to_numpy(dtype="datetime64[ns]")[codes[present]]
    dates = pd.Series(taken, index=text.index)
    invalid = (text.notna() & dates.isna()).to_numpy(dtype=bool)
    outside = (dates.notna() & ((dates < DATE_RANGE[0]) | (dates > DATE_RANGE[1]))).to_numpy(
        dtype=bool
    )
    return dates.where(~outside), invalid, outside, fmt


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _score_schema(inst: Instrument, label: str, low: float, high: float) -> pa.Column:
    checks = [pa.Check.in_range(low, high, error=f"{label} must be between {low:g} and {high:g}")]
    if inst.integer:
        checks.append(
            pa.Check(
                lambda s: s.isna() | (s == np.floor(s)), error=f"{label} must be a whole number"
            )
        )
    return pa.Column(nullable=True, checks=checks, required=False)


REQUIRED_RULE = "is required and must not be blank"


def _row_schema(
    keys: list[str], frame_columns: list[str], inst_items: dict[str, tuple[str, ...]]
) -> pa.DataFrameSchema:
    """The pandera schema of the typed session frame."""
    columns: dict[str, pa.Column] = {
        "client_id": pa.Column(nullable=False),
        "therapist_id": pa.Column(nullable=False),
        "session": pa.Column(
            nullable=False,
            checks=[
                pa.Check(
                    lambda s: s == np.floor(s),
                    error="the session number must be a whole number",
                ),
                pa.Check.ge(1, error="the session number must be at least 1"),
            ],
        ),
        "end_status": pa.Column(
            nullable=True,
            required=False,
            checks=pa.Check.isin(
                END_STATUSES,
                error="end_status must be one of planned, dropout, ongoing (map other labels "
                "with recode: end_status:)",
            ),
        ),
    }
    for key in keys:
        inst = INSTRUMENTS[key]
        columns[key] = _score_schema(
            inst, f"the {inst.short} total", inst.total_min, inst.total_max
        )
        for item_column in inst_items.get(key, ()):
            columns[item_column] = _score_schema(
                inst, f"each {inst.short} item", inst.item_min, inst.item_max
            )
    return pa.DataFrameSchema(columns, strict=False, name="sessions")


def _duplicate_rows(frame: pd.DataFrame, key: list[str]) -> np.ndarray:
    """Positions of rows whose ``key`` (all present) another row shares.

    The rule of pandera's ``unique=``, on integer codes: pandas' ``duplicated`` over a text
    and a number column took 2.2 s of 8M rows' 4 s of schema checks, this takes 0.3 s."""
    complete = frame[key].notna().all(axis=1).to_numpy()
    duplicated = pd.Series(key_codes(frame, key)).duplicated(keep=False).to_numpy()
    return np.flatnonzero(duplicated & complete)


def _pandera_problems(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema,
    names: dict[str, str],
    texts: dict[str, pd.Series],
    file_row: np.ndarray,
) -> pd.DataFrame:
    try:
        schema.validate(frame, lazy=True)
        return _empty_problems()
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    if cases["index"].isna().any():  # pragma: no cover - columns are checked before pandera
        raise RuntimeError(f"unexpected schema failure: {cases[cases['index'].isna()]}")
    index = cases["index"].astype("int64").to_numpy()
    column = cases["column"].astype("str").to_numpy()
    rule = cases["check"].astype("str").to_numpy()
    rule = np.where(rule == "not_nullable", REQUIRED_RULE, rule)
    out = pd.DataFrame({"index": index, "contract": column, "rule": rule})
    out["value"] = ""
    for contract, group in out.groupby("contract").groups.items():
        shown = texts[contract].iloc[out.loc[group, "index"].to_numpy()]
        out.loc[group, "value"] = shown.fillna("").to_numpy()
    out["column"] = out["contract"].map(names)
    # a value that is present but failed conversion was already reported as such
    out = out[~((out["rule"] == REQUIRED_RULE) & (out["value"] != ""))]
    return _located(out, file_row)


def _located(problems: pd.DataFrame, file_row: np.ndarray) -> pd.DataFrame:
    """Problems found at frame positions (``index``), at their rows in the file."""
    problems = problems.assign(row=file_row[problems["index"].to_numpy(dtype="int64")])
    return problems[PROBLEM_COLUMNS].astype(PROBLEM_DTYPES)


def _duplicate_problems(
    frame: pd.DataFrame, names: dict[str, str], file_row: np.ndarray
) -> pd.DataFrame:
    """One problem per row whose case and session another row shares, naming the others."""
    key = [*case_keys(frame), "session"]  # the case and the session number identify a row
    dup_rows = _duplicate_rows(frame, key)
    if not len(dup_rows):
        return _empty_problems()
    group = key_codes(frame.iloc[dup_rows], key)  # rows in file order, so ranks are too
    rows = file_row[dup_rows]
    _, inverse, size = np.unique(group, return_inverse=True, return_counts=True)
    first = pd.Series(group).groupby(group).cumcount().to_numpy() < 5
    listed = joined_reasons(group[first], rows[first].astype("str"), sep=", ")
    rows_of = listed.reindex(group).to_numpy(dtype=object) + np.where(size[inverse] > 5, " …", "")
    session = frame["session"].iloc[dup_rows].to_numpy()
    problems = pd.DataFrame(
        {
            "index": dup_rows,
            "column": " + ".join(names.get(k, k) for k in key),
            "value": "session " + pd.Series(session).map("{:g}".format) + " in rows " + rows_of,
            "rule": f"the same {' and '.join(k.removesuffix('_id') for k in key)} appear "
            "in more than one row",
        }
    )
    return _located(problems, file_row)


@dataclass
class _Typed:
    frame: pd.DataFrame
    texts: dict[str, pd.Series]
    names: dict[str, str]
    options: dict[str, Any]
    prorated: dict[str, int]
    file_problems: list[dict]
    scored: dict[str, bool]


def _typed_frame(raw: RawTable, plan: ColumnPlan, spec: DatasetSpec, problems: _Problems) -> _Typed:
    """Convert the mapped columns to their types, recording conversion problems."""
    file = str(spec.path)
    frame = pd.DataFrame(index=pd.RangeIndex(len(raw.frame)))
    texts, names = source_texts(raw, plan, spec.read.na_values)
    file_problems: list[dict] = []

    for contract in _TEXT_COLUMNS:
        if contract in texts:
            frame[contract] = texts[contract]
    if "therapist_id" in plan.absent:
        frame["therapist_id"] = pd.Series(NO_THERAPIST, index=frame.index, dtype="str")
    for contract in ("end_status", "condition"):
        if contract in texts:
            recoded = texts[contract].replace(spec.recode.get(contract, {}))
            if contract == "end_status":
                recoded = recoded.str.lower()
            frame[contract] = recoded.astype("str")

    numeric = numeric_columns(texts, plan)
    decimal = spec.read.decimal or detect_decimal(
        [texts[c] for c in numeric if texts[c].dtype == "str"], raw.options.get("sep")
    )
    for contract in numeric:
        source = raw.frame[names[contract]]
        if is_numeric_dtype(source) and not is_bool_dtype(source):
            values = source.astype("float64").reset_index(drop=True)
            bad = ~np.isfinite(values.fillna(0.0)).to_numpy()
            values = values.where(~bad)
        else:
            values, bad = _parse_numbers(texts[contract], decimal)
        problems.add(bad, names[contract], texts[contract], "is not a number")
        frame[contract] = values

    prorated: dict[str, int] = {}
    for key, columns in plan.items.items():
        inst = INSTRUMENTS[key]
        total, was_prorated = inst.score(frame, spec.prorate)
        prorated[key] = int(was_prorated.sum())
        how = "sum" if inst.scoring == "sum" else "score"
        if key in frame:
            both = frame[key].notna() & total.notna()
            differs = both & ((frame[key] - total).abs() > 1e-6)
            problems.add(
                differs, names[key], texts[key], f"the total differs from the {how} of its items"
            )
            frame[key] = frame[key].fillna(total)
        else:
            frame[key] = total
            texts[key] = total.astype("str")
            names[key] = f"{key} ({how} of {', '.join(columns)})"
        for subscale, column in inst.subscale_columns.items():
            frame[column] = inst.score(frame, spec.prorate, inst.subscales[subscale])[0]

    options: dict[str, Any] = {**raw.options, "decimal": decimal}
    if "session_date" in texts:
        dates, invalid, outside, fmt = _parse_dates(
            texts["session_date"], spec.read.date_format, file, names["session_date"]
        )
        problems.add(
            invalid,
            names["session_date"],
            texts["session_date"],
            f"is not a valid date in the format {fmt}",
        )
        problems.add(
            outside,
            names["session_date"],
            texts["session_date"],
            f"is outside the plausible range {DATE_RANGE[0]:%Y-%m-%d} to {DATE_RANGE[1]:%Y-%m-%d}",
        )
        frame["session_date"] = dates
        options["date_format"] = fmt

    scored = score_columns_with_values(texts, plan, spec)
    if spec.shard is None:  # a shard's empty column may have values in another shard
        file_problems += empty_score_problems(scored, names, spec)
    return _Typed(frame, texts, names, options, prorated, file_problems, scored)


def source_texts(
    raw: RawTable, plan: ColumnPlan, na_values: tuple[str, ...],
    only: Collection[str] | None = None,
) -> tuple[dict[str, pd.Series], dict[str, str]]:  # fmt: skip
    """The mapped columns and instrument items as stripped text (``na_values`` missing), by
    contract name, and the file's name of each; ``only`` some mapped columns (no items)."""
    texts: dict[str, pd.Series] = {}
    names: dict[str, str] = {}
    for contract, column in plan.source.items():
        if only is None or contract in only:
            texts[contract] = as_text(raw.frame[column], na_values)
            names[contract] = column
    if only is not None:
        return texts, names
    for key, columns in plan.items.items():
        for canonical, column in zip(INSTRUMENTS[key].item_columns, columns, strict=True):
            texts[canonical] = as_text(raw.frame[column], na_values)
            names[canonical] = column
    return texts, names


def numeric_columns(texts: dict[str, pd.Series], plan: ColumnPlan) -> list[str]:
    """The contract columns read as numbers: the session, scores and items."""
    return [c for c in texts if c == "session" or c in INSTRUMENTS or c in _item_names(plan)]


def score_columns_with_values(
    texts: dict[str, pd.Series], plan: ColumnPlan, spec: DatasetSpec
) -> dict[str, bool]:
    """For each role's instrument: whether its column (or any of its items) has a value."""
    scored = {}
    for key in spec.roles().values():
        sources = (
            [texts[key]]
            if key in plan.source
            else [texts[c] for c in INSTRUMENTS[key].item_columns]
        )
        scored[key] = not all(s.isna().all() for s in sources)
    return scored


def empty_score_problems(
    scored: dict[str, bool], names: dict[str, str], spec: DatasetSpec
) -> list[dict[str, Any]]:
    """File-level problems: a role's score column without a single value."""
    return [
        {
            "row": pd.NA,
            "column": names[key],
            "value": "",
            "rule": f"the {role} score column has no values at all",
        }
        for role, key in spec.roles().items()
        if not scored[key]
    ]


def _item_names(plan: ColumnPlan) -> set[str]:
    return {c for key in plan.items for c in INSTRUMENTS[key].item_columns}


def _privacy_problems(raw: RawTable, plan: ColumnPlan, typed: _Typed, spec: DatasetSpec) -> list:
    allowed = set(spec.allow_identifier_columns)
    problems = []
    candidates = {names: typed.texts[c] for c, names in typed.names.items() if c in _TEXT_COLUMNS}
    for column in plan.extras:
        series = raw.frame[column]
        if not (is_numeric_dtype(series) or is_datetime64_any_dtype(series)):
            candidates[column] = as_text(series, spec.read.na_values)
    for column, text in candidates.items():
        if column in allowed:
            continue
        free_text = column in plan.extras or column == typed.names.get("condition")
        for reason, mask in identifier_value_reasons(text, free_text=free_text):
            mask = mask.to_numpy(dtype=bool)
            problems.append(
                {
                    "row": pd.NA,
                    "column": column,
                    "value": "",
                    "rule": f"contains what look like {reason} ({_rows(int(mask.sum()))}, first at "
                    f"row {raw.file_row[mask][0]}; values not shown); remove them, or list the "
                    "column under allow_identifier_columns if it holds no personal data",
                }
            )
    return problems


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


BACKWARDS_RULE = "session dates go backwards while session numbers rise (check the dates)"
"""The warning of a case whose dates go backwards."""


def _backwards_dates(frame: pd.DataFrame, file_row: np.ndarray) -> dict[str, Any] | None:
    if "session_date" not in frame:
        return None
    ordered = CaseOrder(frame[[*case_keys(frame), "session", "session_date"]].assign(_row=file_row))
    dates, rows = ordered.frame["session_date"].to_numpy(), ordered.frame["_row"].to_numpy()
    earlier = np.zeros(len(dates), dtype=bool)
    earlier[1:] = ordered.same_case_next()[:-1] & (dates[1:] < dates[:-1])
    flagged = np.sort(rows[earlier])
    if not len(flagged):
        return None
    return {
        "rule": BACKWARDS_RULE,
        "count": len(flagged),
        "rows": [int(r) for r in flagged[:10]],
    }


RESERVED_COLUMNS = ("source_row", "exclusion_reasons", "raw_line")
"""Column names the package adds to its outputs; a file may not use them."""


def joined_reasons(rows: np.ndarray, labels: np.ndarray, sep: str = "; ") -> pd.Series:
    """Each row's distinct labels, in order of first appearance, joined with ``sep``.

    Vectorised: one pass per rank of a label within its row (a row has at most a few), not
    one per row; a million bad rows take a second, not the minute a per-row join took.

    Examples
    --------
    >>> joined_reasons(np.array([3, 2, 3, 3]), np.array(["a", "b", "c", "a"])).to_dict()
    {2: 'b', 3: 'a; c'}
    """
    pairs = pd.DataFrame({"row": rows, "label": labels}).drop_duplicates()
    pairs = pairs.sort_values("row", kind="stable")
    rank = pairs.groupby("row", sort=False).cumcount().to_numpy()
    joined = pairs.loc[rank == 0].set_index("row")["label"].astype("str")
    for k in range(1, int(rank.max(initial=0)) + 1):
        more = pairs.loc[rank == k].set_index("row")["label"]
        joined.loc[more.index] = joined.loc[more.index] + sep + more
    return joined


def _excluded_frame(raw: RawTable, problems: pd.DataFrame, kept: np.ndarray) -> pd.DataFrame:
    """Excluded rows: ``source_row``, ``exclusion_reasons``, the original cells, ``raw_line``."""
    labelled = np.where(
        problems["column"] == "", problems["rule"], problems["column"] + ": " + problems["rule"]
    )
    reasons = joined_reasons(problems["row"].to_numpy(), labelled)
    cells = raw.frame.loc[~kept].astype("str")
    cells.insert(0, "source_row", raw.file_row[~kept])
    aside = pd.DataFrame({"source_row": raw.set_aside["row"], "raw_line": raw.set_aside["text"]})
    out = pd.concat([cells, aside], ignore_index=True) if len(aside) else cells
    out.insert(1, "exclusion_reasons", out["source_row"].map(reasons))
    if "raw_line" not in out:
        out["raw_line"] = pd.Series(dtype="str")
    return out.sort_values("source_row", kind="stable").reset_index(drop=True)


def check_dataset(spec: DatasetSpec) -> ValidationResult:
    """Read, map and validate one dataset, returning every row-level problem found.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset: path, read options, mapping, instruments, policies.

    Returns
    -------
    ValidationResult
        ``sessions`` holds the rows without problems; ``problems`` and ``excluded`` the rest.
        The ``on_invalid_rows`` policy is not applied here (see :func:`load_dataset`).

    Raises
    ------
    DataError
        For problems with the file as a whole: unreadable or not a table, empty, header
        only, bad or missing columns, identifying columns or values, an empty score column,
        ambiguous dates.

    Examples
    --------
    >>> from allianceanalysis.config import DatasetSpec
    >>> result = check_dataset(DatasetSpec(name="demo", path=Path("data/demo/sessions.csv")))
    >>> result.summary["rows"]["read"] == result.summary["rows"]["used"]
    True
    """
    if spec.instruments:
        with instruments_in_use(spec.instruments):
            return _check_dataset(spec)
    return _check_dataset(spec)


def _check_dataset(spec: DatasetSpec) -> ValidationResult:
    file = str(spec.path)
    unknown = [k for k in spec.roles().values() if k not in INSTRUMENTS]
    if unknown:
        raise DataError.single(
            file,
            f"unknown instrument '{unknown[0]}' for dataset '{spec.name}'; known instruments: "
            f"{', '.join(INSTRUMENTS)} (define others under instruments: in the configuration)",
        )
    raw = (
        read_raw(spec.path, spec.read, spec.format)
        if spec.shard is None
        else read_shard(spec.shard)
    )
    if raw.frame.empty and raw.set_aside.empty and spec.shard is None:
        raise DataError.single(file, "the file has a header but no data rows")
    plan = plan_columns(raw, spec)
    reserved = [c for c in plan.extras if c in RESERVED_COLUMNS]
    if reserved:
        raise DataError.single(
            file, "this column name is reserved for the package's outputs; rename it", reserved[0]
        )
    collector = _Problems(raw.file_row)
    typed = _typed_frame(raw, plan, spec, collector)
    file_problems = typed.file_problems + _privacy_problems(raw, plan, typed, spec)
    if file_problems:
        raise DataError(file, pd.DataFrame(file_problems).astype({"row": "Int64"}))

    keys = plan.instruments()
    schema = _row_schema(keys, list(typed.frame.columns), plan.items)
    found = [
        collector.frame(),
        _pandera_problems(typed.frame, schema, typed.names, typed.texts, raw.file_row),
        _duplicate_problems(typed.frame, typed.names, raw.file_row),
    ]
    row_problems = pd.concat([p for p in found if len(p)] or [_empty_problems()], ignore_index=True)
    if len(raw.set_aside):
        aside = raw.set_aside[PROBLEM_COLUMNS].astype(PROBLEM_DTYPES)
        row_problems = pd.concat([row_problems, aside], ignore_index=True)
    row_problems = row_problems.sort_values("row", kind="stable").reset_index(drop=True)

    kept = ~np.isin(raw.file_row, row_problems["row"].to_numpy(dtype="int64"))
    sessions = _assemble(typed.frame, raw, plan, kept)
    summary = _summary(spec, raw, plan, typed, row_problems, sessions, kept)
    return ValidationResult(
        sessions=sessions,
        problems=row_problems,
        excluded=_excluded_frame(raw, row_problems, kept),
        summary=summary,
    )


def _assemble(
    frame: pd.DataFrame, raw: RawTable, plan: ColumnPlan, kept: np.ndarray
) -> pd.DataFrame:
    order = [
        "client_id",
        "therapist_id",
        "site_id",
        "episode_id",
        "session",
        "session_date",
        "end_status",
        "condition",
    ]
    columns = [c for c in order if c in frame]
    for key in plan.instruments():
        columns.append(key)
        if key in plan.items:
            columns.extend(INSTRUMENTS[key].item_columns)
            columns.extend(INSTRUMENTS[key].subscale_columns.values())
    sessions = frame.loc[kept, columns].copy()
    sessions["session"] = sessions["session"].astype("int64")
    extras = {}  # joined at once: inserting columns one by one is quadratic in their number
    for column in plan.extras:
        extra = raw.frame.loc[kept, column]
        if not (is_numeric_dtype(extra) or is_datetime64_any_dtype(extra)):
            extra = as_text(extra, ())
        extras[column] = extra
    extras["source_row"] = pd.Series(raw.file_row[kept], index=sessions.index)
    return pd.concat([sessions, pd.DataFrame(extras)], axis=1).reset_index(drop=True)


def _summary(
    spec: DatasetSpec,
    raw: RawTable,
    plan: ColumnPlan,
    typed: _Typed,
    problems: pd.DataFrame,
    sessions: pd.DataFrame,
    kept: np.ndarray,
) -> dict[str, Any]:
    rows_read = len(raw.frame) + len(raw.set_aside)
    excluded = int((~kept).sum()) + len(raw.set_aside)
    by_rule = (
        problems.drop_duplicates(["row", "column", "rule"])
        .groupby(["column", "rule"], sort=False)
        .size()
        .sort_values(ascending=False, kind="stable")  # ties: the rule first met in the file
    )
    warnings = [{"rule": w, "count": 1, "rows": []} for w in plan.warnings]
    backwards = _backwards_dates(typed.frame.loc[kept], raw.file_row[kept])
    if backwards:
        warnings.append(backwards)
    keys = plan.instruments()
    summary = {
        "dataset": spec.name,
        "file": str(spec.path),
        "file_sha256": file_sha256(spec.path) if spec.shard is None else None,
        "format": raw.format,
        "read_options": typed.options,
        "on_invalid_rows": spec.on_invalid_rows,
        "outcome": _role(spec.outcome, plan),
        "alliance": None if spec.alliance is None else _role(spec.alliance, plan),
        "rows": {
            "read": rows_read,
            "used": len(sessions),
            "excluded": excluded,
            "blank_rows_ignored": raw.blank_rows,
        },
        "excluded_by_rule": [
            {"column": c, "rule": r, "rows": int(n)} for (c, r), n in by_rule.items()
        ],
        "counts": {
            "clients": int(sessions["client_id"].nunique()),
            "therapists": None
            if "therapist_id" in plan.absent
            else int(sessions["therapist_id"].nunique()),
            "sites": int(sessions["site_id"].nunique()) if "site_id" in sessions else None,
            "sessions": len(sessions),
        },
        "missing_scores": {k: int(sessions[k].isna().sum()) for k in keys},
        "prorated_totals": {k: n for k, n in typed.prorated.items() if n},
        "columns": {
            "mapped": {c: s for c, s in plan.source.items() if c != s},
            "items": {k: list(v) for k, v in plan.items.items()},
            "extra": plan.extras,
        },
        "warnings": warnings,
    }
    if summary["rows"]["read"] != summary["rows"]["used"] + summary["rows"]["excluded"]:
        raise RuntimeError("row accounting does not add up; this is a bug")  # pragma: no cover
    if spec.shard is not None:  # what merging the shards' summaries needs besides the sums
        first = problems.drop_duplicates(["column", "rule"])
        summary["shard"] = {
            "first_row": {f"{c}\x1f{r}": int(n) for c, r, n in
                          zip(first["column"], first["rule"], first["row"], strict=True)},
            "scored": typed.scored,
            "score_names": {k: typed.names[k] for k in typed.scored},
            "backwards_rows": [] if not backwards else backwards["rows"],
            "distinct": {c: sorted(sessions[c].dropna().unique().tolist())
                         for c in ("therapist_id", "site_id") if c in sessions},
        }  # fmt: skip
    return summary


def _role(key: str, plan: ColumnPlan) -> dict[str, Any]:
    inst = INSTRUMENTS[key]
    return {
        "instrument": key,
        "name": inst.name,
        "rater": inst.rater,
        "direction": inst.direction,
        "from": "items" if key in plan.items and key not in plan.source else "total",
    }


def load_dataset(spec: DatasetSpec) -> ValidationResult:
    """Validate a dataset and apply its ``on_invalid_rows`` policy.

    Parameters
    ----------
    spec : DatasetSpec
        The dataset.

    Returns
    -------
    ValidationResult
        With ``on_invalid_rows: exclude``, the rows with problems are in ``excluded`` and
        counted in the summary; ``sessions`` holds the rest.

    Raises
    ------
    DataError
        For any file-level problem, and for any row-level problem under ``fail``.

    Examples
    --------
    >>> from allianceanalysis.config import DatasetSpec
    >>> data = load_dataset(DatasetSpec(name="demo", path=Path("data/demo/sessions.csv")))
    >>> list(data.sessions.columns[:3])
    ['client_id', 'therapist_id', 'site_id']
    """
    result = check_dataset(spec)
    if len(result.problems) and spec.on_invalid_rows == "fail":
        raise DataError(str(spec.path), result.problems)
    return result


def load_sessions(path: str | Path) -> pd.DataFrame:
    """The validated sessions of a file in the canonical format (``docs/data-format.md``):
    :func:`load_dataset` for a dataset named after the file, failing on any problem.

    For files that need a column mapping, read options or ``on_invalid_rows``, describe them
    in a :class:`~allianceanalysis.config.DatasetSpec` and call :func:`load_dataset`.

    Examples
    --------
    >>> sessions = load_sessions("data/demo/sessions.csv")
    >>> sessions["client_id"].nunique()
    300
    """
    path = Path(path)
    return load_dataset(DatasetSpec(name=path.stem, path=path)).sessions
