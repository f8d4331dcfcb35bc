"""Benchmark: multilevel multiple imputation and the pooled client-level models, against R's mice.

Issue 21's tier. For each number of clients a service is simulated as in
``benchmarks/models.py`` (about 8 sessions per client, 100 clients per therapist) and written
as validated sessions (Parquet). Ours runs in a fresh process through the package's front door
(:func:`allianceanalysis.missing_data.multiple_imputation`, m = 20: the imputations for the
configured k and for k = 1 … 5, and every pooled client-level model) and then the
tipping-point analysis (11 shifts, :func:`~allianceanalysis.missing_data.tipping_point`); the
imputation alone (:func:`~allianceanalysis.missing_data.impute_clients` at k = 3) is timed for
the comparison with mice, which imputes the same data
(:func:`~allianceanalysis.missing_data.imputation_data`, written as CSV) by
``benchmarks/mice_fit.R`` (2l.pan, m = 20, 20 iterations). Timed: the work alone (reading and
a warm-up on 300 clients not timed); memory: the peak of the whole process, data included.

Goals: at 1M clients the imputation and all pooled models within 180 s and 6 GB; at the
largest tier mice finishes within ``--peer-timeout`` seconds (10 minutes), our imputation at
most 0.25x mice's time.

Usage: ``python benchmarks/missing_data.py [--tiers 1000 10000 100000 1000000]``
(``make bench-missing``). Results: ``results/missing_data.csv``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from ingest import machine
from models import ROOT, measured, merge, simulate

from allianceanalysis.missing_data import imputation_data

PEER = ROOT / "benchmarks" / "mice_fit.R"

OURS = """
import json, time
import pandas as pd
from allianceanalysis.missing_data import impute_clients, multiple_imputation, tipping_point
sessions = pd.read_parquet(r'{path}')
first = sessions['client_id'].isin(sessions['client_id'].drop_duplicates().head(300))
multiple_imputation(sessions[first], m=2, burn_in=2, between=1)  # warm-up: lazy imports
start = time.perf_counter()
if {imputation_only}:
    impute_clients(sessions, m=20, seed=1)
    print(json.dumps({{'seconds': time.perf_counter() - start}}))
else:
    table, imputed = multiple_imputation(sessions, m=20, seed=1)
    middle = time.perf_counter()
    tipping = tipping_point(imputed)
    row = table.query("model == 'alliance_outcome_mi' and term == 'alliance_early'").iloc[0]
    print(json.dumps({{'seconds': middle - start, 'tipping_seconds': time.perf_counter() - middle,
                      'estimate': float(row['estimate']), 'fmi': float(row['fmi'])}}))
"""


def run_ours(path: Path, imputation_only: bool) -> dict:
    code = OURS.format(path=path, imputation_only=imputation_only)
    done, peak = measured([sys.executable, "-c", code])
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "peak_mb": peak}


def run_mice(data: Path, out: Path, timeout: int) -> dict | None:
    """mice's imputation, or None where it did not finish within ``timeout`` seconds."""
    try:
        _, peak = measured(["timeout", str(timeout), "Rscript", str(PEER), str(data), str(out)])
    except subprocess.CalledProcessError:
        return None
    return {**json.loads(out.read_text()), "peak_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, nargs="+",
                        default=[1_000, 10_000, 100_000, 1_000_000])  # fmt: skip
    parser.add_argument("--peer-max", type=int, default=10_000,
                        help="largest tier mice is run on")  # fmt: skip
    parser.add_argument("--peer-timeout", type=int, default=600)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "missing_data.csv"))
    args = parser.parse_args()
    rows = []
    for n_clients in args.tiers:
        sessions = simulate(n_clients)
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            path = folder / "sessions.parquet"
            sessions.to_parquet(path, index=False)
            ours = run_ours(path, imputation_only=False)
            row = {"clients": n_clients, "sessions": len(sessions), "seconds": ours["seconds"],
                   "tipping_seconds": ours["tipping_seconds"], "peak_mb": ours["peak_mb"],
                   "estimate": ours["estimate"], "fmi": ours["fmi"]}  # fmt: skip
            if n_clients <= args.peer_max:
                data = imputation_data(sessions, "ors", "srs", 3)
                frame = pd.concat([data.base[["client_id", "therapist_id"]], data.y,
                                   data.x.drop(columns="Intercept")], axis=1)  # fmt: skip
                frame.to_csv(folder / "clients.csv", index=False)
                alone = run_ours(path, imputation_only=True)
                theirs = run_mice(folder / "clients.csv", folder / "mice.json", args.peer_timeout)
                row.update(imputation_seconds=alone["seconds"], imputation_peak_mb=alone["peak_mb"],
                           mice_finished=theirs is not None)  # fmt: skip
                if theirs is not None:
                    row.update(mice_seconds=theirs["seconds"], mice_peak_mb=theirs["peak_mb"],
                               time_ratio=alone["seconds"] / theirs["seconds"])  # fmt: skip
            rows.append(row)
            print(json.dumps({k: round(v, 6) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)  # fmt: skip
    stamp = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    merge(pd.DataFrame(rows).assign(**stamp), Path(args.out), ["clients"])


if __name__ == "__main__":
    main()
