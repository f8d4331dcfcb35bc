"""Benchmark: the catalogue's linear mixed models against R's lme4, on the same data.

For each tier (a number of clients, about 8 sessions each) a service is simulated, the three
tables the catalogue fits to are derived, and each model's rows (after the catalogue's own
filtering) are written once, to Parquet for us and to CSV for R. Each model is then fitted
in a fresh process, by us (:func:`allianceanalysis.engine.fit_lmm` with each engine asked
for, by default the workflow's ``lmm`` core) and, when ``Rscript`` with lme4 is installed, by
``lme4::lmer`` (REML,
default controls; ``benchmarks/lme4_fit.R``). Recorded per fit: the wall time of the fit
alone (reading the data and a warm-up fit on its first 2,000 rows, which loads what both
packages load lazily, are not timed), the peak memory of the whole process (data included),
and the estimates. Reported: our time and memory as ratios to lme4's, and the largest
relative differences of the fixed effects, the variance components and the REML
log-likelihood.

The whole workflow (``--workflow``) is timed separately: Snakemake on the tier's sessions as
a CSV, every rule from ingest to the annual report, with each job's peak memory from its
benchmark file and the peak of all running jobs together (sampled every 0.2 s).

Usage: ``python benchmarks/models.py [--tiers 1000 10000 100000] [--workflow]``
(``make bench``; ``make bench BENCH_FULL=1`` adds the 1M tier).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import psutil
from ingest import machine

from allianceanalysis.derive import client_table, session_pairs, session_table
from allianceanalysis.engine import DEFAULT_ENGINE, ENGINES, Formula
from allianceanalysis.models import CATALOGUE, NEXT_SESSION_FIXED
from allianceanalysis.simulate import simulate_study

ROOT = Path(__file__).resolve().parents[1]
R_SCRIPT = ROOT / "benchmarks" / "lme4_fit.R"
MODELS = {
    "alliance_outcome": ("clients", CATALOGUE["alliance_outcome"].formula),
    "early_alliance_k3": (
        "clients",
        "outcome_final ~ outcome_intake + alliance_early + early_change + (1 | therapist_id)",
    ),
    "alliance_disaggregated": ("clients", CATALOGUE["alliance_disaggregated"].formula),
    "therapist_icc": ("clients", CATALOGUE["therapist_icc"].formula),
    "alliance_icc": ("all_clients", CATALOGUE["alliance_icc"].formula),
    "alliance_next_session": ("pairs", f"{NEXT_SESSION_FIXED} + (1 | client_id)"),
    "alliance_next_session_nested": (
        "pairs",
        f"{NEXT_SESSION_FIXED} + (1 | therapist_id/client_id)",
    ),
    "growth": ("sessions_table", CATALOGUE["growth"].formula),
}
"""Every linear mixed model of the catalogue (``early_alliance`` at k = 3: its five fits share
one structure), with the table it is fitted to."""

OURS = """
import json, time
import pandas as pd
from allianceanalysis.engine import fit_lmm
data = pd.read_parquet(r'{path}')
fit_lmm('{formula}', data.head(2000), '{engine}')  # warm-up: lazy imports, as R's library()
start = time.perf_counter()
fit = fit_lmm('{formula}', data, '{engine}')
seconds = time.perf_counter() - start
print(json.dumps({{'seconds': seconds,
    'fixed': fit.coefficients['estimate'].to_dict(), 'variances': fit.variances,
    'loglik': fit.loglik, 'converged': bool(fit.converged)}}))
"""


def simulate(clients: int) -> pd.DataFrame:
    """A service of ``clients`` clients, about 8 sessions each, 100 clients per therapist."""
    return simulate_study(n_clients=clients, n_therapists=max(20, clients // 100), n_sites=10,
                          planned_sessions_mean=11, seed=1).sessions  # fmt: skip


def model_tables(sessions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    clients = client_table(sessions)
    return {
        "clients": clients[clients["eligible"]],
        "all_clients": clients.dropna(subset=["alliance_early"]),
        "pairs": session_pairs(sessions),
        "sessions_table": session_table(sessions),
    }


def write_model_data(table: pd.DataFrame, formula: str, stem: Path) -> int:
    data = table[Formula.parse(formula).variables].dropna()
    data.to_parquet(stem.with_suffix(".parquet"), index=False)
    data.to_csv(stem.with_suffix(".csv"), index=False)
    return len(data)


def measured(command: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command under GNU time: its output and its peak memory (MB). A child forked
    straight from this process would start with this process's memory counted in its own."""
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *command], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return done, int(done.stderr.strip().splitlines()[-1]) / 1024


def fit_ours(stem: Path, formula: str, engine: str) -> dict:
    code = OURS.format(path=stem.with_suffix(".parquet"), formula=formula, engine=engine)
    done, peak = measured([sys.executable, "-c", code])
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "peak_mb": peak}


def fit_lme4(stem: Path, formula: str) -> dict:
    out = stem.with_suffix(".lme4.json")
    _, peak = measured(["Rscript", str(R_SCRIPT), str(stem.with_suffix(".csv")), formula, str(out)])
    return {**json.loads(out.read_text()), "peak_mb": peak}


def lme4_variances(varcorr: list[dict]) -> dict[str, float]:
    """lme4's VarCorr rows under our names (``var_therapist``, ``var_client``, ...); the JSON
    leaves out R's NA fields."""
    names = {"therapist_id": "therapist", "client_id": "client",
             "client_id:therapist_id": "client", "Residual": "residual"}  # fmt: skip
    out = {}
    for row in varcorr:
        group, var1, var2 = names[row["grp"]], row.get("var1"), row.get("var2")
        if var2:
            out[f"cor_{group}_{var2}"] = row["sdcor"]
        elif var1 and var1 != "(Intercept)":
            out[f"var_{group}_{var1}"] = row["vcov"]
        else:
            out[f"var_{group}"] = row["vcov"]
    return out


def relative_differences(ours: dict, theirs: dict, floor: float) -> dict[str, float]:
    return {k: abs(ours[k] - theirs[k]) / max(abs(theirs[k]), floor) for k in theirs}


def compare(ours: dict, theirs: dict) -> dict:
    """Largest relative differences from lme4 (and the term; for a coefficient near zero, such
    as a centred model's intercept, also in units of its standard error), and how much higher
    our REML log-likelihood is (positive: our optimum is the better one)."""

    def renamed(values: dict) -> dict:
        return {("Intercept" if k == "(Intercept)" else k): v for k, v in values.items()}

    fixed, se = renamed(theirs["fixed"]), renamed(theirs["se"])
    by_term = relative_differences(ours["fixed"], fixed, 1e-8)
    worst = max(by_term, key=by_term.get)
    variances = relative_differences(ours["variances"], lme4_variances(theirs["varcorr"]), 1e-6)
    return {
        "rel_diff_fixed": by_term[worst],
        "rel_diff_fixed_term": worst,
        "diff_fixed_in_se": max(abs(ours["fixed"][k] - fixed[k]) / se[k] for k in fixed),
        "rel_diff_variances": max(variances.values()),
        "rel_diff_loglik": abs(ours["loglik"] - theirs["loglik"]) / abs(theirs["loglik"]),
        "loglik_gain": ours["loglik"] - theirs["loglik"],
    }


def run_workflow(sessions: pd.DataFrame, folder: Path) -> tuple[dict, pd.DataFrame]:
    """The whole workflow on the tier's data: wall time, the largest job's peak memory and the
    peak of all jobs together; and each job's time and peak memory."""
    work = folder / "workflow"
    work.mkdir()
    sessions.to_csv(work / "sessions.csv", index=False, float_format="%g",
                    date_format="%Y-%m-%d")  # fmt: skip
    (work / "config.yaml").write_text("datasets:\n  bench:\n    path: sessions.csv\n")
    summary, per_job, failure = measured_workflow(work)
    if failure:
        raise RuntimeError(f"the workflow failed:\n{failure}")
    return summary, per_job


def measured_workflow(
    work: Path, targets: Sequence[str] = (), executor: Sequence[str] = ("--cores", "2"),
    daemons: Callable[[], list[psutil.Process]] = list,
) -> tuple[dict, pd.DataFrame, str]:  # fmt: skip
    """Snakemake (``executor``: 2 local cores, or a profile's) on ``work/config.yaml`` in
    ``work`` (its ``targets``, or the whole workflow): wall time, the largest job's peak memory
    and the peak of all jobs together, each job's time and peak memory, and the end of
    Snakemake's messages when it failed ("" when it did not). ``daemons`` gives the processes
    whose descendants run jobs besides Snakemake's own (a SLURM node's job steps)."""
    snakemake = Path(sys.executable).with_name("snakemake")
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(snakemake), *targets, "--snakefile", str(ROOT / "Snakefile"), "--directory",
         str(work), "--configfile", str(work / "config.yaml"), *executor, "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    high_water: dict[str, float] = {}
    total_peak = tree_peak_mb(process, jobs=high_water, daemons=daemons)
    failure = process.stderr.read()[-20_000:] if process.wait() != 0 else ""
    seconds = time.perf_counter() - start
    jobs = [pd.read_csv(p, sep="\t").assign(rule=p.name.split(".")[0])
            for p in (work / "results").rglob("*.benchmark.tsv")]  # fmt: skip
    table = pd.concat(jobs, ignore_index=True) if jobs else pd.DataFrame(
        {"rule": [""], "s": [0.0], "max_rss": [0.0]})  # fmt: skip
    table["hwm_mb"] = table["rule"].map(high_water)
    table["peak"] = table["hwm_mb"].fillna(table["max_rss"])
    largest = table.loc[table["peak"].idxmax()]
    summary = {"seconds": seconds, "peak_mb": float(largest["peak"]),
               "largest_job": largest["rule"], "total_peak_mb": total_peak, "jobs": len(jobs),
               "job_seconds": float(table["s"].sum())}  # fmt: skip
    per_job = table[["rule", "s", "max_rss", "hwm_mb"]].rename(
        columns={"s": "seconds", "max_rss": "peak_mb"})  # fmt: skip
    return summary, per_job, failure


def tree_peak_mb(
    process: subprocess.Popen, interval: float = 0.2, jobs: dict[str, float] | None = None,
    daemons: Callable[[], list[psutil.Process]] = list,
) -> float:  # fmt: skip
    """The largest sum of resident memory over a process and its descendants (jobs running
    side by side add up), and the descendants of the processes ``daemons`` gives, sampled
    until it ends. With ``jobs``, each Snakemake job's own peak
    is put in it too, keyed by the name of the job's log file (that of its benchmark file):
    the kernel's high-water mark of the job's resident memory (``VmHWM``), exact but for
    the last ``interval``. Snakemake's benchmark files sample a job's memory every 0.5 s for
    its first 15 s and every 30 s after that, so they can miss a long job's peak: the
    imputation at early session 5 on 10M clients peaked at 5.4 GB (``/usr/bin/time``) where
    its benchmark file said 4.6 GB."""
    root, peak = psutil.Process(process.pid), 0.0
    names: dict[tuple[int, float], str] = {}
    while process.poll() is None:
        total = 0
        others = []
        for daemon in daemons():
            with contextlib.suppress(psutil.Error):
                others += daemon.children(recursive=True)
        for member in [root, *root.children(recursive=True), *others]:
            with contextlib.suppress(psutil.Error, OSError):
                total += member.memory_info().rss
                if jobs is not None:
                    _job_high_water(member, names, jobs)
        peak = max(peak, total / 2**20)
        time.sleep(interval)
    return peak


def _job_high_water(
    member: psutil.Process, names: dict[tuple[int, float], str], jobs: dict[str, float]
) -> None:
    """Record ``member``'s high-water mark under its job's name (the stem of the log file it
    holds open under a ``logs`` folder; nothing for a process without one)."""
    key = (member.pid, member.create_time())
    if key not in names:
        logs = [f.path for f in member.open_files()
                if f.path.endswith(".log") and "/logs/" in f.path]  # fmt: skip
        if not logs:
            return
        names[key] = Path(logs[0]).stem
    status = Path(f"/proc/{member.pid}/status").read_text()
    marks = [int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")]
    if marks:  # an exiting process has none left
        jobs[names[key]] = max(jobs.get(names[key], 0.0), marks[0] / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--engines", nargs="+", default=[DEFAULT_ENGINE], choices=ENGINES[:2])
    parser.add_argument("--workflow", action="store_true", help="also time the whole workflow")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "models.csv"))
    args = parser.parse_args()
    peer = shutil.which("Rscript") is not None
    rows, workflow_rows, job_rows = [], [], []
    for clients in args.tiers:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            sessions = simulate(clients)
            tables = model_tables(sessions)
            for model in args.models:
                table, formula = MODELS[model]
                stem = folder / model
                n = write_model_data(tables[table], formula, stem)
                theirs = fit_lme4(stem, formula) if peer else None
                for engine in args.engines:
                    ours = fit_ours(stem, formula, engine)
                    row = {"clients": clients, "sessions": len(sessions), "model": model,
                           "rows": n, "engine": engine, "seconds": ours["seconds"],
                           "peak_mb": ours["peak_mb"], "converged": ours["converged"]}  # fmt: skip
                    if theirs is not None:
                        row.update(lme4_seconds=theirs["seconds"], lme4_peak_mb=theirs["peak_mb"],
                                   lme4_warnings=len(theirs["warnings"]))  # fmt: skip
                        row.update(compare(ours, theirs))
                        row["time_ratio"] = row["seconds"] / row["lme4_seconds"]
                        row["memory_ratio"] = row["peak_mb"] / row["lme4_peak_mb"]
                    rows.append(row)
                    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v
                                      for k, v in row.items()}), flush=True)  # fmt: skip
            if args.workflow:
                result, per_job = run_workflow(sessions, folder)
                workflow_rows.append({"clients": clients, "sessions": len(sessions), **result})
                job_rows.append(per_job.assign(clients=clients))
                print(json.dumps(workflow_rows[-1]), flush=True)
    stamp = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    merge(pd.DataFrame(rows).assign(**stamp), out, ["clients", "model", "engine"])
    if workflow_rows:
        merge(pd.DataFrame(workflow_rows).assign(**stamp), out.with_name("workflow.csv"),
              ["clients"])  # fmt: skip
        jobs = pd.concat(job_rows, ignore_index=True)[["clients", "rule", "seconds", "peak_mb"]]
        merge(jobs.assign(**stamp), out.with_name("workflow_jobs.csv"), ["clients", "rule"])


def merge(new: pd.DataFrame, path: Path, keys: list[str]) -> None:
    """Write ``new`` to ``path``, keeping earlier rows of other tiers (the 1M tier is run on
    its own) and replacing those measured again."""
    if path.exists():
        old = pd.read_csv(path)
        again = old.set_index(keys).index.isin(new.set_index(keys).index)
        new = pd.concat([old[~again], new], ignore_index=True).sort_values(keys, kind="stable")
    new.to_csv(path, index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
