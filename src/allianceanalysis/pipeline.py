"""The workflow's steps as functions: files in, files out (atomic), counts in the log.

Each Snakemake rule's script calls one of these, so every step can be run and tested without
Snakemake. Outputs are written all together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ._files import atomic_outputs
from .derive import EXCLUSION_REASONS, client_table, session_pairs, session_table
from .figures import early_alliance_by_k, save_figure
from .instruments import get_instrument
from .models import CATALOGUE, fit_model
from .tables import combine_model_tables, read_model_table

__all__ = [
    "client_accounting",
    "derive_step",
    "early_alliance_figure_step",
    "model_step",
    "models_table_step",
]

log = logging.getLogger("allianceanalysis")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")


def client_accounting(
    clients: pd.DataFrame, pairs: pd.DataFrame, table: pd.DataFrame
) -> pd.DataFrame:
    """Cases and sessions accounted for by the derivation (``derived/accounting.csv``).

    ``cases = eligible + excluded`` (one reason each, in the order of
    :data:`~allianceanalysis.derive.EXCLUSION_REASONS`); then the sessions with both scores
    (rm_corr, growth) and the session pairs (next-session models).

    Examples
    --------
    >>> c = pd.DataFrame({"eligible": [True, False],
    ...                   "exclusion": ["", "no outcome at session 1"]})
    >>> empty = pd.DataFrame({"alliance": [], "outcome": []})
    >>> client_accounting(c, empty, empty)["count"].tolist()
    [2, 1, 1, 0, 0, 0, 0]
    """
    rows = [
        {"stage": "cases", "reason": "", "count": len(clients)},
        {"stage": "eligible", "reason": "", "count": int(clients["eligible"].sum())},
    ]
    rows += [
        {
            "stage": "excluded",
            "reason": reason,
            "count": int((clients["exclusion"] == reason).sum()),
        }
        for reason in EXCLUSION_REASONS
    ]
    both = table.dropna(subset=["alliance", "outcome"]) if len(table) else table
    rows += [
        {"stage": "sessions_with_both_scores", "reason": "", "count": len(both)},
        {"stage": "session_pairs", "reason": "", "count": len(pairs)},
    ]
    return pd.DataFrame(rows, columns=["stage", "reason", "count"])


def derive_step(
    sessions: str | Path,
    outputs: Mapping[str, str | Path],
    *,
    outcome: str,
    alliance: str,
    early_session: int,
) -> None:
    """Rule ``derive``: validated sessions -> client table, session table, pairs, accounting.

    ``outputs`` names the files: ``clients``, ``sessions``, ``pairs`` (Parquet) and
    ``accounting`` (CSV).
    """
    data = pd.read_parquet(sessions)
    clients = client_table(data, outcome, alliance, early_session)
    table = session_table(data, outcome, alliance)
    pairs = session_pairs(data, outcome, alliance)
    accounting = client_accounting(clients, pairs, table)
    keys = ("clients", "sessions", "pairs", "accounting")
    with atomic_outputs(*(outputs[k] for k in keys)) as (c, s, p, a):
        clients.to_parquet(c, index=False)
        table.to_parquet(s, index=False)
        pairs.to_parquet(p, index=False)
        _write_csv(accounting, a)
    log.info(
        "%d cases, %d eligible (k = %d); %d sessions with both scores; %d session pairs",
        len(clients),
        int(clients["eligible"].sum()),
        early_session,
        len(table),
        len(pairs),
    )


def model_step(
    name: str, inputs: Mapping[str, str | Path], output: str | Path, options: Mapping[str, Any]
) -> None:
    """Rule ``model``: fit catalogue model ``name`` to the derived tables; write its table.

    ``inputs`` names the files ``clients``, ``sessions``, ``pairs`` (derived) and ``validated``
    (the validated sessions, for the per-k models); ``options`` holds ``outcome``,
    ``alliance``, ``bootstrap``, ``seed`` and ``engine``.
    """
    data = {
        "clients": pd.read_parquet(inputs["clients"]),
        "sessions_table": pd.read_parquet(inputs["sessions"]),
        "pairs": pd.read_parquet(inputs["pairs"]),
        "sessions": pd.read_parquet(inputs["validated"]),
    }
    table = fit_model(name, data[CATALOGUE[name].data], **options)
    with atomic_outputs(output) as (path,):
        _write_csv(table, path)
    problems = table.loc[table["message"].fillna("") != "", ["model", "message"]].drop_duplicates()
    for _, row in problems.iterrows():
        log.warning("%s: %s", row["model"], row["message"])
    log.info("%s: %d rows", name, len(table))


def models_table_step(tables: Iterable[str | Path], output: str | Path) -> None:
    """Rule ``models_table``: every model table of a dataset in ``tables/models.csv``."""
    combined = combine_model_tables(tables)
    with atomic_outputs(output) as (path,):
        _write_csv(combined, path)


def early_alliance_figure_step(
    table: str | Path, outputs: Iterable[str | Path], *, outcome: str, alliance: str
) -> None:
    """Rule ``figure_early_alliance``: the early-alliance coefficient against k."""
    figure = early_alliance_by_k(
        read_model_table(table),
        alliance=get_instrument(alliance).short,
        outcome=get_instrument(outcome).short,
    )
    save_figure(figure, outputs)
