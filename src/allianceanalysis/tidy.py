"""Tidy result rows: the one shape every analysis returns (like R's ``broom``).

Every analysis of the package returns a DataFrame with the columns :data:`TIDY_COLUMNS`, one
row per term: ``model, term, estimate, std_error, ci_low, ci_high, p_value, n_obs, n_groups,
converged`` and ``df``, ``ci_method``, ``message``. Figures, APA tables and reports read these
rows and never refit. An analysis the data cannot support raises
:class:`~allianceanalysis.errors.NotEstimable`; :func:`or_reason` turns that, and only that,
into one row saying why.

Examples
--------
>>> t = frame([row("my_model", "slope", 0.5, std_error=0.1, n_obs=40)])
>>> t[["model", "term", "estimate", "std_error", "n_obs"]].to_dict("records")
[{'model': 'my_model', 'term': 'slope', 'estimate': 0.5, 'std_error': 0.1, 'n_obs': 40}]
>>> from allianceanalysis.errors import NotEstimable
>>> def no_dropouts():
...     raise NotEstimable("no dropout in the data")
>>> or_reason("dropout", no_dropouts)["message"].item()
'not computed: no dropout in the data'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from .errors import NotEstimable

__all__ = [
    "NEEDS",
    "TIDY_COLUMNS",
    "frame",
    "has_therapists",
    "or_reason",
    "reason_frame",
    "row",
    "unmet_need",
]

NEEDS = {
    "alliance": "the data have no alliance measure (alliance: null in the configuration)",
    "therapists": "the data have fewer than two therapists (no therapist codes, or a single "
    "practitioner): there is no therapist level to analyse",
}
"""What an analysis (a catalogue model, a figure) may need of the data besides an outcome,
and the reason it gives when the data lack it."""


def has_therapists(data: pd.DataFrame | Any) -> bool:
    """Whether ``data`` (a table, or a :class:`~allianceanalysis.shards.ShardedTable`) have a
    therapist level: two or more therapists (data without codes have one,
    docs/data-format.md).

    Examples
    --------
    >>> has_therapists(pd.DataFrame({"therapist_id": ["t1", "t1"]}))
    False
    """
    from .shards import distinct

    return distinct(data, "therapist_id", 2) >= 2


def unmet_need(needs: tuple[str, ...], data: pd.DataFrame, alliance: object) -> str | None:
    """The reason (:data:`NEEDS`) of the first of ``needs`` that ``data`` (with the dataset's
    ``alliance`` instrument, None for none) do not meet; None when all are met."""
    for need in needs:
        if (need == "alliance" and alliance is None) or (
            need == "therapists" and not has_therapists(data)
        ):
            return NEEDS[need]
    return None


TIDY_COLUMNS = [
    "model",
    "term",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "n_obs",
    "n_groups",
    "converged",
    "df",
    "ci_method",
    "message",
]
"""The columns of every result table, in order."""


def row(model: str, term: str, estimate: float, **values: object) -> dict[str, object]:
    """One tidy row: ``model``, ``term``, ``estimate`` and any other of :data:`TIDY_COLUMNS`
    (missing ones are NaN; ``ci_method`` defaults to ``"none"``, ``message`` to empty)."""
    unknown = set(values) - set(TIDY_COLUMNS)
    if unknown:
        raise TypeError(f"not tidy columns: {', '.join(sorted(unknown))}")
    result = dict.fromkeys(TIDY_COLUMNS, np.nan)
    result.update(model=model, term=term, estimate=estimate, ci_method="none", message="")
    result.update(values)
    return result


def frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Rows of :func:`row` as a table with :data:`TIDY_COLUMNS` and their types (counts as
    nullable integers, ``converged`` as nullable boolean)."""
    table = pd.DataFrame(rows, columns=TIDY_COLUMNS)
    return table.astype({"n_obs": "Int64", "n_groups": "Int64", "converged": "boolean"})


def reason_frame(model: str, reason: str) -> pd.DataFrame:
    """One ``not_fitted`` row of ``model`` saying why it was not computed (``converged`` false,
    no estimate)."""
    message = f"not computed: {reason}"
    return frame([row(model, "not_fitted", np.nan, converged=False, message=message)])


def or_reason(model: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``compute()``, or, when it raises :class:`~allianceanalysis.errors.NotEstimable`, one
    row of ``model`` saying why. Any other exception propagates: it is a bug, not a finding."""
    try:
        return compute()
    except NotEstimable as exc:
        return reason_frame(model, str(exc))
