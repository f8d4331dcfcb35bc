"""Benchmark: the catalogue with covariates and a moderator against R's lme4, on the same data.

Issue 19's tier: 10 covariates (``age_band``, a 5-level factor; ``diagnosis``, 3 levels; eight
numeric client-level covariates ``c1`` … ``c8``) and one moderator (``treatment``) in the
client-level ``alliance_outcome`` and the session-level ``alliance_next_session``, adjusted and
moderated (the formulas the catalogue builds: :func:`allianceanalysis.models.adjusted` and
:mod:`allianceanalysis.moderation`). Each fit in a fresh process, ours
(:func:`allianceanalysis.engine.fit_lmm`, the ``lmm`` core with the formula layer) and
``lme4::lmer`` (``benchmarks/lme4_fit.R``), timed and measured as in ``benchmarks/models.py``.
Goal: each model at most 0.1× lme4's time and 0.5× its peak memory at 1M clients.

Usage: ``python benchmarks/covariates.py [--tiers 100000 1000000]`` (``make bench-covariates``).
Results: ``results/covariates.csv``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ingest import machine
from models import ROOT, compare, fit_lme4, fit_ours, merge, write_model_data

from allianceanalysis.covariates import Adjustment, adjusted
from allianceanalysis.derive import client_table, session_pairs
from allianceanalysis.models import NEXT_SESSION_FIXED
from allianceanalysis.moderation import MODELS as MODERATED
from allianceanalysis.moderation import _moderated_formula
from allianceanalysis.simulate import simulate_study

NUMERIC = [f"c{i}" for i in range(1, 9)]
ADJUSTMENT = Adjustment.from_config(
    {"covariates": ["age_band", "diagnosis", *NUMERIC], "moderators": ["treatment"]}
)


def simulate(clients: int) -> pd.DataFrame:
    """As ``benchmarks/models.py``'s services, with the demo's covariates and eight numeric
    client-level ones (seeded draws)."""
    sessions = simulate_study(n_clients=clients, n_therapists=max(20, clients // 100),
                              n_sites=10, planned_sessions_mean=11, covariates=True,
                              treatment_alliance_effect=0.5, seed=1).sessions  # fmt: skip
    codes, _ = pd.factorize(sessions["client_id"])
    draws = np.random.default_rng(2).normal(size=(codes.max() + 1, len(NUMERIC)))
    return sessions.assign(**{name: draws[codes, j] for j, name in enumerate(NUMERIC)})


def formulas(clients: pd.DataFrame, pairs: pd.DataFrame) -> dict[str, tuple[str, str]]:
    treatment = ADJUSTMENT.moderators[0]
    outcome = "outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)"
    next_session = f"{NEXT_SESSION_FIXED} + (1 | client_id)"
    return {
        "alliance_outcome": ("clients", adjusted(outcome, clients, ADJUSTMENT)),
        "alliance_outcome_by_treatment": ("clients", _moderated_formula(
            MODERATED["alliance_outcome"][1], "alliance_early", treatment, clients, ADJUSTMENT)),
        "alliance_next_session": ("pairs", adjusted(next_session, pairs, ADJUSTMENT, "session")),
        "alliance_next_session_by_treatment": ("pairs", _moderated_formula(
            MODERATED["alliance_next_session"][1], "alliance_within", treatment, pairs,
            ADJUSTMENT)),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "covariates.csv"))
    args = parser.parse_args()
    peer = shutil.which("Rscript") is not None
    rows = []
    for n_clients in args.tiers:
        sessions = simulate(n_clients)
        tables = {"clients": client_table(sessions, adjustment=ADJUSTMENT).query("eligible"),
                  "pairs": session_pairs(sessions, adjustment=ADJUSTMENT)}  # fmt: skip
        with tempfile.TemporaryDirectory() as name:
            for model, (table, formula) in formulas(tables["clients"], tables["pairs"]).items():
                stem = Path(name) / model
                n = write_model_data(tables[table], formula, stem)
                ours = fit_ours(stem, formula, "lmm")
                row = {"clients": n_clients, "model": model, "rows": n, "formula": formula,
                       "seconds": ours["seconds"], "peak_mb": ours["peak_mb"]}  # fmt: skip
                if peer:
                    theirs = fit_lme4(stem, formula)
                    row.update(lme4_seconds=theirs["seconds"], lme4_peak_mb=theirs["peak_mb"],
                               **compare(ours, theirs))  # fmt: skip
                    row["time_ratio"] = row["seconds"] / row["lme4_seconds"]
                    row["memory_ratio"] = row["peak_mb"] / row["lme4_peak_mb"]
                rows.append(row)
                print(json.dumps({k: round(v, 6) if isinstance(v, float) else v
                                  for k, v in row.items()}), flush=True)  # fmt: skip
    stamp = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    merge(pd.DataFrame(rows).assign(**stamp), Path(args.out), ["clients", "model"])


if __name__ == "__main__":
    main()
