"""Benchmark: the latent disaggregation and the RI-CLPM against R's lavaan, on the same data.

Issue 20's tier. For each number of clients a service is simulated as in
``benchmarks/models.py`` (about 8 sessions per client, 100 clients per therapist) and written
once as sessions (Parquet, for us) and as the data lavaan is given (CSV): the eligible clients'
``therapist_id, outcome_final, alliance_early, outcome_intake`` for the latent model, and the
wide panel ``a1…a6, y1…y6`` (each client's first six attended sessions,
:func:`allianceanalysis.riclpm.wide_panel`) for the RI-CLPM. Each model is fitted in a fresh
process: ours from the validated sessions through the catalogue's front door
(:func:`allianceanalysis.models.run_model`, which also derives the table, fits the
observed-mean model beside the latent one, and for the RI-CLPM fits the constrained and the
unconstrained model, the independence baseline and the saturated model), and lavaan
(``benchmarks/lavaan_fit.R``: the same syntax as the reference values, the RI-CLPM
constrained and unconstrained with fit measures). Timed: the fit alone (reading and a warm-up
on 2,000 rows not timed); memory: the peak of the whole process, data included.

Goals: at 1M clients each model within 60 s and 4 GB; at the largest tier lavaan finishes in
10 minutes, at most 0.25× its time. lavaan is skipped above ``--peer-max`` clients.

Usage: ``python benchmarks/within_person.py [--tiers 10000 100000 1000000]``
(``make bench-within``). Results: ``results/within_person.csv``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ingest import machine
from models import ROOT, measured, merge, simulate

from allianceanalysis.derive import client_table
from allianceanalysis.riclpm import DEFAULT_WAVES, wide_panel

PEER = ROOT / "benchmarks" / "lavaan_fit.R"
PEER_TIMEOUT = 1200
"""Seconds after which a lavaan fit is stopped and recorded as not finished."""
MODELS = {"alliance_disaggregated_latent": "latent", "riclpm": "riclpm"}
SHARED = {
    "latent": {"bw": "alliance_client_dev", "bb": "alliance_therapist_mean",
               "g_outcome_intake": "outcome_intake"},
    "riclpm": {name: name for name in ("alliance_to_outcome", "outcome_to_alliance",
                                       "alliance_autoregression", "outcome_autoregression",
                                       "var_ri_alliance", "var_ri_outcome", "cov_ri")},
}  # fmt: skip
"""lavaan's labels and our terms for the estimates compared."""

OURS = """
import json, time
import pandas as pd
from allianceanalysis.models import run_model
sessions = pd.read_parquet(r'{path}')
first = sessions['client_id'].isin(sessions['client_id'].drop_duplicates().head(300))
run_model('{model}', sessions[first])  # warm-up: lazy imports, as R's library()
start = time.perf_counter()
table = run_model('{model}', sessions)
seconds = time.perf_counter() - start
own = table[table['model'] == '{model}']
print(json.dumps({{'seconds': seconds,
    'estimates': dict(zip(own['term'], own['estimate'].astype(float))),
    'converged': bool(own['converged'].fillna(True).all()),
    'message': ' | '.join(sorted(set(own['message'].fillna('')) - {{''}}))}}))
"""


def peer_inputs(sessions: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """The CSV files lavaan is given: the latent model's clients and the RI-CLPM's panel."""
    clients = client_table(sessions)
    columns = ["therapist_id", "outcome_final", "alliance_early", "outcome_intake"]
    latent = clients.loc[clients["eligible"], columns].dropna()
    panel, _ = wide_panel(sessions, "ors", "srs", DEFAULT_WAVES)
    names = [f"{v}{t}" for v in "ay" for t in range(1, DEFAULT_WAVES + 1)]
    paths = {"latent": folder / "latent.csv", "riclpm": folder / "riclpm.csv"}
    latent.to_csv(paths["latent"], index=False)
    wide = pd.DataFrame(panel, columns=names)
    wide[wide.notna().any(axis=1)].to_csv(paths["riclpm"], index=False)
    return paths


def fit_ours(path: Path, model: str) -> dict:
    done, peak = measured([sys.executable, "-c", OURS.format(path=path, model=model)])
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "peak_mb": peak}


def fit_lavaan(kind: str, data: Path, out: Path) -> dict | None:
    """lavaan's fit, or None where it did not finish within PEER_TIMEOUT."""
    try:
        _, peak = measured(["timeout", str(PEER_TIMEOUT), "Rscript", str(PEER), kind, str(data),
                            str(DEFAULT_WAVES), str(out)])  # fmt: skip
    except subprocess.CalledProcessError:
        return None
    return {**json.loads(out.read_text()), "peak_mb": peak}


def largest_difference(ours: dict, theirs: dict, kind: str) -> float:
    """The largest relative difference of the shared estimates (floor 1 on the scale); NaN
    where either side found no maximum (ours then reports no estimates)."""
    pairs = [(ours["estimates"][term], theirs["estimates"][label])
             for label, term in SHARED[kind].items() if label in theirs["estimates"]]  # fmt: skip
    return float(np.max([abs(a - b) / max(abs(b), 1.0) for a, b in pairs]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--peer-max", type=int, default=1_000_000,
                        help="largest tier lavaan is run on")  # fmt: skip
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "within_person.csv"))
    args = parser.parse_args()
    peer = shutil.which("Rscript") is not None
    rows = []
    for n_clients in args.tiers:
        sessions = simulate(n_clients)
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            path = folder / "sessions.parquet"
            sessions.to_parquet(path, index=False)
            inputs = peer_inputs(sessions, folder) if peer and n_clients <= args.peer_max else {}
            for model, kind in MODELS.items():
                ours = fit_ours(path, model)
                row = {"clients": n_clients, "sessions": len(sessions), "model": model,
                       "seconds": ours["seconds"], "peak_mb": ours["peak_mb"],
                       "converged": ours["converged"], "message": ours["message"]}  # fmt: skip
                if kind in inputs:
                    theirs = fit_lavaan(kind, inputs[kind], folder / f"{kind}.json")
                    row["lavaan_finished"] = theirs is not None
                    if theirs is not None:
                        row.update(lavaan_seconds=theirs["seconds"],
                                   lavaan_peak_mb=theirs["peak_mb"],
                                   lavaan_converged=theirs["converged"],
                                   max_rel_diff=largest_difference(ours, theirs, kind),
                                   time_ratio=ours["seconds"] / theirs["seconds"],
                                   memory_ratio=ours["peak_mb"] / theirs["peak_mb"])  # fmt: skip
                rows.append(row)
                print(json.dumps({k: round(v, 6) if isinstance(v, float) else v
                                  for k, v in row.items()}), flush=True)  # fmt: skip
    stamp = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    merge(pd.DataFrame(rows).assign(**stamp), Path(args.out), ["clients", "model"])


if __name__ == "__main__":
    main()
