"""Writing a validated dataset: analysable sessions, summary, row accounting, excluded rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd

from .._files import atomic_outputs
from ..config import DatasetSpec
from .validate import ValidationResult, load_dataset

__all__ = ["ingest", "row_accounting", "write_validated"]

log = logging.getLogger("allianceanalysis")


def row_accounting(summary: dict) -> pd.DataFrame:
    """The rows of a dataset accounted for, as a tidy table.

    One row each for rows ``read``, ``excluded`` and ``used`` (``read = used + excluded``),
    then one ``excluded_by_rule`` row per column and rule (a row with several problems counts
    under each of them).

    Examples
    --------
    >>> s = {"rows": {"read": 10, "used": 9, "excluded": 1},
    ...      "excluded_by_rule": [{"column": "ors", "rule": "must be between 0 and 40",
    ...                            "rows": 1}]}
    >>> row_accounting(s)["rows"].tolist()
    [10, 1, 9, 1]
    """
    rows = summary["rows"]
    table = [
        {"stage": "read", "column": "", "rule": "", "rows": rows["read"]},
        {"stage": "excluded", "column": "", "rule": "", "rows": rows["excluded"]},
        {"stage": "used", "column": "", "rule": "", "rows": rows["used"]},
    ]
    table += [{"stage": "excluded_by_rule", **entry} for entry in summary["excluded_by_rule"]]
    return pd.DataFrame(table, columns=["stage", "column", "rule", "rows"])


def write_validated(
    result: ValidationResult,
    sessions: str | Path,
    summary: str | Path,
    accounting: str | Path,
    excluded: str | Path,
) -> None:
    """Write the four files of a validated dataset, all or nothing.

    Parameters
    ----------
    result : ValidationResult
        From :func:`~allianceanalysis.io.load_dataset`.
    sessions : path
        Parquet file of the analysable sessions.
    summary : path
        JSON validation summary.
    accounting : path
        CSV row accounting (:func:`row_accounting`).
    excluded : path
        CSV of the excluded rows with their reasons (header only when none). It holds
        row-level data: keep it with the data, do not publish it.
    """
    with atomic_outputs(sessions, summary, accounting, excluded) as tmp:
        result.sessions.to_parquet(tmp[0], index=False)
        tmp[1].write_text(json.dumps(result.summary, indent=2, ensure_ascii=False) + "\n")
        row_accounting(result.summary).to_csv(tmp[2], index=False, lineterminator="\n")
        result.excluded.to_csv(tmp[3], index=False, lineterminator="\n")


def ingest(
    spec: DatasetSpec,
    sessions: str | Path,
    summary: str | Path,
    accounting: str | Path,
    excluded: str | Path,
) -> ValidationResult:
    """Validate a dataset (applying its ``on_invalid_rows`` policy) and write its files.

    The workflow's ``ingest`` rule. Logs counts only, never data.

    Raises
    ------
    DataError
        As :func:`~allianceanalysis.io.load_dataset`; nothing is written then.
    """
    result = load_dataset(spec)
    write_validated(result, sessions, summary, accounting, excluded)
    rows, counts = result.summary["rows"], result.summary["counts"]
    log.info(
        "%s: %d rows read, %d used, %d excluded; %d clients, %s therapists",
        spec.name,
        rows["read"],
        rows["used"],
        rows["excluded"],
        counts["clients"],
        counts["therapists"],
    )
    for entry in result.summary["excluded_by_rule"]:
        log.info("excluded %d rows: column %r: %s", entry["rows"], entry["column"], entry["rule"])
    for warning in result.summary["warnings"]:
        log.warning("%s (%d)", warning["rule"], warning["count"])
    return result
