"""Tables the workflow publishes, built from the tidy model tables (never by refitting)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from .models import TIDY_COLUMNS

__all__ = ["combine_model_tables", "read_model_table"]


def read_model_table(path: str | Path) -> pd.DataFrame:
    """Read a tidy model table written by the workflow (``tables/<model>.csv``)."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return table.astype({"n_obs": "Int64", "n_groups": "Int64", "converged": "boolean"})


def combine_model_tables(paths: Iterable[str | Path]) -> pd.DataFrame:
    """All model tables of a dataset in one tidy table (``tables/models.csv``), in order.

    Examples
    --------
    >>> combine_model_tables([]).columns.tolist() == TIDY_COLUMNS
    True
    """
    tables = [read_model_table(p) for p in paths]
    if not tables:
        return pd.DataFrame(columns=TIDY_COLUMNS)
    return pd.concat(tables, ignore_index=True)[TIDY_COLUMNS]
