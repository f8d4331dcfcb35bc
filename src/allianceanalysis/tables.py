"""Tables the workflow publishes, built from the tidy model tables (never by refitting)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["read_model_table"]


def read_model_table(path: str | Path) -> pd.DataFrame:
    """Read a tidy model table written by the workflow (``tables/<model>.csv``)."""
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    return table.astype({"n_obs": "Int64", "n_groups": "Int64", "converged": "boolean"})
