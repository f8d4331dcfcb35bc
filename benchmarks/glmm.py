"""Benchmark: the logistic model with therapist random effects against R's ``lme4::glmer``.

For each tier (as ``benchmarks/models.py``: a simulated service of that many clients) the
person-periods of the rupture-dropout hazard are derived (``ruptures.rupture_states`` of
``dropout_risk.person_periods``) and written once, to Parquet for us and to CSV for R. The
model ``event ~ session + rupture_unresolved + rupture_repaired + (1 | therapist_id)`` is then
fitted in a fresh process by :func:`allianceanalysis.glmm.fit_logit_glmm` (Laplace) and by
``glmer`` (Laplace, lme4's default controls; ``benchmarks/glmer_fit.R``), each after a
warm-up on the first 2,000 rows. Recorded: the fit's wall time, the process's peak memory,
and the largest relative differences of the fixed effects (also in standard errors), the
therapist variance and the log-likelihood.

Usage: ``python benchmarks/glmm.py [--tiers 1000 10000 100000]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from ingest import machine
from models import ROOT, measured, merge, simulate

from allianceanalysis.dropout_risk import person_periods
from allianceanalysis.ruptures import detect_ruptures, rupture_states

R_SCRIPT = ROOT / "benchmarks" / "glmer_fit.R"
PREDICTORS = ["session", "rupture_unresolved", "rupture_repaired"]
OURS = """
import json, time
import numpy as np, pandas as pd
from allianceanalysis.glmm import fit_logit_glmm
data = pd.read_parquet(r'{path}')
def fit(rows):
    exog = np.column_stack([np.ones(len(rows)), rows[{predictors}].to_numpy(dtype=float)])
    return fit_logit_glmm(rows['event'].to_numpy(dtype=float), exog,
                          pd.factorize(rows['therapist_id'])[0])
fit(data.head(2000))  # warm-up: lazy imports, as R's library()
start = time.perf_counter()
result = fit(data)
seconds = time.perf_counter() - start
print(json.dumps({{'seconds': seconds, 'fixed': result.beta.tolist(),
    'se': result.std_error.tolist(), 'var_therapist': result.theta ** 2,
    'loglik': result.loglik, 'converged': result.converged}}))
"""


def periods(clients: int) -> pd.DataFrame:
    sessions = simulate(clients)
    data = rupture_states(person_periods(sessions), detect_ruptures(sessions))
    return data[["event", *PREDICTORS, "therapist_id"]].dropna()


def compare(ours: dict, theirs: dict) -> dict:
    fixed = np.array(ours["fixed"])
    peer = np.array(list(theirs["fixed"].values()))
    se = np.array(list(theirs["se"].values()))
    return {
        "rel_diff_fixed": float(np.max(np.abs(fixed - peer) / np.maximum(np.abs(peer), 1e-8))),
        "diff_fixed_in_se": float(np.max(np.abs(fixed - peer) / se)),
        "rel_diff_variances": abs(ours["var_therapist"] - theirs["var_therapist"])
        / max(theirs["var_therapist"], 1e-8),
        "rel_diff_loglik": abs(ours["loglik"] - theirs["loglik"]) / abs(theirs["loglik"]),
        "loglik_ours_minus_glmer": ours["loglik"] - theirs["loglik"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "glmm.csv"))
    args = parser.parse_args()
    peer = shutil.which("Rscript") is not None
    rows = []
    for clients in args.tiers:
        with tempfile.TemporaryDirectory() as name:
            stem = Path(name) / "periods"
            data = periods(clients)
            data.to_parquet(stem.with_suffix(".parquet"), index=False)
            data.to_csv(stem.with_suffix(".csv"), index=False)
            code = OURS.format(path=stem.with_suffix(".parquet"), predictors=PREDICTORS)
            done, peak = measured([sys.executable, "-c", code])
            ours = json.loads(done.stdout.strip().splitlines()[-1])
            row = {"clients": clients, "model": "rupture_dropout", "engine": "glmm",
                   "rows": len(data), "seconds": ours["seconds"], "peak_mb": peak,
                   "converged": ours["converged"]}  # fmt: skip
            if peer:
                out = stem.with_suffix(".json")
                _, r_peak = measured(["Rscript", str(R_SCRIPT), str(stem.with_suffix(".csv")),
                                      str(out)])  # fmt: skip
                theirs = json.loads(out.read_text())
                row.update(lme4_seconds=theirs["seconds"], lme4_peak_mb=r_peak,
                           lme4_warnings=len(theirs["warnings"]))  # fmt: skip
                row.update(compare(ours, theirs))
                row["time_ratio"] = row["seconds"] / row["lme4_seconds"]
                row["memory_ratio"] = row["peak_mb"] / row["lme4_peak_mb"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    stamp = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    merge(pd.DataFrame(rows).assign(**stamp), out, ["clients", "model", "engine"])


if __name__ == "__main__":
    main()
