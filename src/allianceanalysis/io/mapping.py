"""Mapping a file's columns onto the session data contract.

A dataset's ``columns:`` entry renames a clinic's export to the contract's names; ``items:``
names the item columns the loader sums into a total. Columns already named as in the contract
(``client_id``, ``ors``, ``ors_individually`` ...) need no mapping. Everything else is an extra
column: kept, listed in the validation summary, never an error.

The checks here concern the file as a whole (header, mapping, required columns, identifying
column names); any failure stops with every such problem listed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from ..config import DatasetSpec
from ..errors import DataError, did_you_mean
from ..instruments import INSTRUMENTS
from .privacy import identifier_name_reason
from .read import RawTable

__all__ = [
    "CONTRACT_COLUMNS",
    "END_STATUSES",
    "NO_THERAPIST",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "ColumnPlan",
    "plan_columns",
]

REQUIRED_COLUMNS = ("client_id", "therapist_id", "session")
"""Required besides an outcome (and an alliance) score; ``therapist_id`` may be declared absent
(``columns: {therapist_id: null}``) for data without therapist codes."""
NO_THERAPIST = "(no therapist codes)"
"""The ``therapist_id`` of every row of a dataset declared to have no therapist codes: one
"therapist", so every analysis drops the therapist level and says so (docs/data-format.md)."""
OPTIONAL_COLUMNS = ("site_id", "session_date", "episode_id", "end_status", "condition")
CONTRACT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
END_STATUSES = ("planned", "dropout", "ongoing")
"""Allowed values of ``end_status`` (after the dataset's ``recode:``)."""


@dataclass
class ColumnPlan:
    """Where each contract column comes from in the file.

    Attributes
    ----------
    source : dict
        Contract column (including instrument totals) -> the file's column name.
    items : dict
        Instrument key -> the file's item columns, in form order.
    extras : list of str
        The file's other columns (kept as they are).
    warnings : list of str
        Notes for the validation summary (e.g. empty unnamed columns dropped).
    absent : list of str
        Contract columns the configuration declares absent (``therapist_id: null``).
    """

    source: dict[str, str]
    items: dict[str, tuple[str, ...]]
    extras: list[str]
    warnings: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def instruments(self) -> list[str]:
        """Instrument keys with a total or items in the file, in registry order."""
        return [k for k in INSTRUMENTS if k in self.source or k in self.items]


def _problem(rule: str, column: str = "") -> dict[str, object]:
    return {"row": pd.NA, "column": column, "value": "", "rule": rule}


def _required_hint(key: str) -> str:
    inst = INSTRUMENTS[key]
    hint = f"the total column '{key}'"
    if inst.sums_items:
        hint += f" or its {inst.item_count} item columns {', '.join(inst.item_columns)}"
    return hint


def _drop_unnamed(raw: RawTable, problems: list[dict], warnings: list[str]) -> None:
    """Drop unnamed columns that are entirely empty (a trailing delimiter); refuse others."""
    keep = []
    for position, name in enumerate(raw.header):
        if name.strip():
            keep.append(position)
            continue
        column = raw.frame.iloc[:, position]
        empty = column.isna() | (column.astype("str").str.strip() == "")
        if bool(empty.all()):
            warnings.append(f"column {position + 1} has no name and no values; ignored")
        else:
            problems.append(_problem(f"column {position + 1} has values but no name in the header"))
            keep.append(position)
    raw.frame = raw.frame.iloc[:, keep]
    raw.header = [raw.header[p] for p in keep]


def plan_columns(raw: RawTable, spec: DatasetSpec) -> ColumnPlan:
    """Check the header and work out the mapping of ``raw`` onto the contract.

    Parameters
    ----------
    raw : RawTable
        The file as read (its frame may lose empty unnamed columns).
    spec : DatasetSpec
        Mapping, items, instruments and allow-list of the dataset.

    Returns
    -------
    ColumnPlan

    Raises
    ------
    DataError
        Listing every file-level problem: duplicated or missing column names, mapped columns
        absent from the file, clashes between a mapping and a same-named column, missing
        required columns, and column names that look like direct identifiers.
    """
    problems: list[dict] = []
    warnings: list[str] = []
    _drop_unnamed(raw, problems, warnings)
    header = [h.strip() for h in raw.header]
    raw.frame.columns = header
    raw.header = header
    for name, count in Counter(header).items():
        if count > 1 and name:
            problems.append(_problem(f"the column name appears {count} times in the header", name))
    allowed = set(spec.allow_identifier_columns)
    for name in header:
        reason = identifier_name_reason(name)
        if reason and name not in allowed:
            problems.append(
                _problem(
                    f"the column name suggests it holds {reason}, a direct identifier; remove it "
                    "from the export, or list it under allow_identifier_columns for this dataset "
                    "if it holds no personal data",
                    name,
                )
            )

    present = set(header)
    source: dict[str, str] = {}
    absent = [contract for contract, column in spec.columns.items() if column is None]
    for contract, column in spec.columns.items():
        if column is None:
            continue
        if column not in present:
            problems.append(
                _problem(
                    f"the config maps {contract} to this column, but the file has no such "
                    f"column{did_you_mean(column, header)}",
                    column,
                )
            )
            continue
        if column != contract and contract in present:
            problems.append(
                _problem(
                    f"the file has a column named '{contract}' and the config maps '{column}' "
                    f"to {contract} too; rename one of them or drop the mapping",
                    contract,
                )
            )
        source[contract] = column
    for contract in (*CONTRACT_COLUMNS, *INSTRUMENTS):
        if contract not in source and contract in present:
            source[contract] = contract

    items: dict[str, tuple[str, ...]] = {}
    for key, inst in INSTRUMENTS.items():
        configured = spec.items.get(key)
        if configured is not None:
            missing = [c for c in configured if c not in present]
            for column in missing:
                problems.append(
                    _problem(
                        f"the config lists this column among the {inst.name} items, but the "
                        f"file has no such column{did_you_mean(column, header)}",
                        column,
                    )
                )
            if not missing:
                items[key] = tuple(configured)
            continue
        found = [c for c in inst.item_columns if c in present]
        if found and len(found) == inst.item_count:
            items[key] = inst.item_columns
        elif found and key not in source and key in spec.roles().values():
            missing_items = [c for c in inst.item_columns if c not in present]
            problems.append(
                _problem(
                    f"only some {inst.name} item columns are present; missing: "
                    + ", ".join(missing_items),
                    found[0],
                )
            )
        elif found:
            warnings.append(
                f"only some {inst.name} item columns are present ({', '.join(found)}); "
                "they are kept as extra columns"
            )

    for contract in REQUIRED_COLUMNS:
        if contract not in source and contract not in absent:
            hint = (
                ", or set columns: {therapist_id: null} if the data have no therapist codes"
                if contract == "therapist_id"
                else ""
            )
            problems.append(
                _problem(
                    f"the required column '{contract}' is missing{did_you_mean(contract, header)}; "
                    f"add it or map the file's column to it under columns:{hint}",
                    contract,
                )
            )
    for role, key in spec.roles().items():
        if key not in source and key not in items:
            problems.append(
                _problem(
                    f"the {role} score ({INSTRUMENTS[key].name}) is missing: the file needs "
                    f"{_required_hint(key)}, or a mapping under columns:/items:",
                    key,
                )
            )
    if problems:
        raise DataError(str(spec.path), pd.DataFrame(problems).astype({"row": "Int64"}))

    used = set(source.values()) | {c for cols in items.values() for c in cols}
    extras = [h for h in header if h not in used]
    return ColumnPlan(source=source, items=items, extras=extras, warnings=warnings, absent=absent)
