"""Errors a user can act on, and the one way an analysis says the data cannot support it.

Every error raised for bad input or bad configuration derives from :class:`AllianceError`.
The command line and the workflow print such errors as plain text, without a traceback, and
exit non-zero. :class:`NotEstimable` is not an error of the user's: it is raised where an
analysis finds that the data cannot support it (too few rows or groups, no event, one
condition) and caught only where a row saying why is written. Anything else is a bug in the
package: the step fails, its log keeps the traceback and the user reads one plain line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

import pandas as pd

__all__ = [
    "PROBLEM_COLUMNS",
    "AllianceError",
    "ConfigError",
    "DataError",
    "NotEstimable",
    "did_you_mean",
    "format_problem_counts",
    "format_problems",
]

PROBLEM_COLUMNS = ["row", "column", "value", "rule"]
"""Columns of a problem table: the file's row as a person sees it (header = row 1; empty for a
problem with the whole file), the column as named in the file, the offending value as text
(empty when it is not shown), and the rule in plain words."""

_MAX_VALUE_CHARS = 40


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string.

    Examples
    --------
    >>> did_you_mean("colums", ["path", "columns"])
    " (did you mean 'columns'?)"
    """
    hint = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{hint[0]}'?)" if hint else ""


class AllianceError(Exception):
    """An error in the user's input or configuration, explained in plain words."""


class NotEstimable(Exception):  # noqa: N818 (a verdict on the data, not a failure)
    """The data cannot support this analysis; the message says why, in plain words.

    Raised where that is decided (too few complete rows or groups, no event, no rupture, an
    instrument without the reliability the analysis needs) and caught only where a row saying
    why is written (:func:`allianceanalysis.tidy.reason_frame`). It is deliberately not a
    ``ValueError``: a bad argument, or a bug inside pandas or numpy, must not be published as
    "not computed".

    Examples
    --------
    >>> try:
    ...     raise NotEstimable("no dropout in the data")
    ... except NotEstimable as exc:
    ...     print(f"not computed: {exc}")
    not computed: no dropout in the data
    """


class ConfigError(AllianceError):
    """The configuration file is missing, unreadable or breaks the schema."""

    def __init__(self, messages: list[str] | str, source: str = "config") -> None:
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        self.source = source
        lines = [f"{source}: {m}" for m in self.messages]
        super().__init__("\n".join(lines))


class DataError(AllianceError):
    """A data file breaks the session data contract.

    Parameters
    ----------
    file : str
        The file as the user named it.
    problems : pandas.DataFrame
        One row per problem, columns :data:`PROBLEM_COLUMNS`.
    max_shown : int
        Problems shown in full in the message; the rest are counted by column and rule.
    """

    def __init__(self, file: str, problems: pd.DataFrame, max_shown: int = 20) -> None:
        self.file = file
        self.problems = problems.reset_index(drop=True)
        super().__init__(format_problems(file, self.problems, max_shown))

    def without_values(self) -> str:
        """The message with counts and row numbers only, no values: for log files."""
        return format_problem_counts(self.file, self.problems)

    @classmethod
    def single(
        cls, file: str, rule: str, column: str = "", row: int | None = None, value: str = ""
    ) -> DataError:
        """A problem with the whole file (or one place in it)."""
        frame = pd.DataFrame(
            {"row": [row], "column": [column], "value": [value], "rule": [rule]}
        ).astype({"row": "Int64"})
        return cls(file, frame)


def _show_value(value: object) -> str:
    text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 1] + "…"
    return text


def _describe(row: pd.Series) -> str:
    where = "whole file" if pd.isna(row["row"]) else f"row {int(row['row'])}"
    if row["column"]:
        where += f", column '{row['column']}'"
    value = row["value"]
    if value is not None and not (isinstance(value, float) and pd.isna(value)) and value != "":
        return f"{where}: value '{_show_value(value)}': {row['rule']}"
    return f"{where}: {row['rule']}"


def format_problems(file: str, problems: pd.DataFrame, max_shown: int = 20) -> str:
    """Render a problem table as the message a user reads.

    The first ``max_shown`` problems are listed in full (file-wide problems first, then by
    row); the rest are summarised as counts per column and rule, the ``max_shown`` most
    frequent of them, then one count of the other kinds.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"row": [3], "column": ["ors"], "value": ["45"],
    ...                   "rule": ["must be between 0 and 40"]})
    >>> print(format_problems("s.csv", p))
    s.csv: 1 problem found; nothing was written.
      row 3, column 'ors': value '45': must be between 0 and 40
    """
    n = len(problems)
    ordered = problems.assign(_file_wide=problems["row"].isna()).sort_values(
        ["_file_wide", "row"], ascending=[False, True], kind="stable"
    )
    lines = [f"{file}: {n} problem{'s' if n != 1 else ''} found; nothing was written."]
    lines += ["  " + _describe(r) for _, r in ordered.head(max_shown).iterrows()]
    rest = ordered.iloc[max_shown:]
    if len(rest):
        counts = rest.groupby(["column", "rule"], sort=False).size().sort_values(ascending=False)
        lines.append(f"  … and {len(rest)} more:")
        lines += [
            f"    {count} × column '{column}': {rule}" if column else f"    {count} × {rule}"
            for (column, rule), count in counts.head(max_shown).items()
        ]
        if len(counts) > max_shown:
            others = counts.iloc[max_shown:]
            lines.append(f"    {others.sum()} × {len(others)} other kinds of problem")
    return "\n".join(lines)


def format_problem_counts(
    file: str, problems: pd.DataFrame, max_rows: int = 5, max_kinds: int = 20
) -> str:
    """Render a problem table as counts per column and rule (the first ``max_kinds``), with the
    first rows but no values.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"row": [3, 7], "column": ["ors", "ors"], "value": ["45", "41"],
    ...                   "rule": ["must be between 0 and 40"] * 2})
    >>> print(format_problem_counts("s.csv", p))
    s.csv: 2 problems found; nothing was written.
      2 × column 'ors': must be between 0 and 40 (rows 3, 7)
    """
    n = len(problems)
    lines = [f"{file}: {n} problem{'s' if n != 1 else ''} found; nothing was written."]
    groups = problems.groupby(["column", "rule"], sort=False)
    for kind, ((column, rule), group) in enumerate(groups):
        if kind == max_kinds:
            lines.append(f"  … and {groups.ngroups - max_kinds} other kinds of problem")
            break
        rows = [str(int(r)) for r in group["row"].dropna().head(max_rows)]
        where = f" (rows {', '.join(rows)}{' …' if group['row'].notna().sum() > max_rows else ''})"
        label = f"column '{column}': {rule}" if column else rule
        lines.append(f"  {len(group)} × {label}{where if rows else ''}")
    return "\n".join(lines)
