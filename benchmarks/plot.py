"""Draw the benchmark results: time against clients, ours and lme4's, on log-log axes, and the
tables of docs/performance.md.

Usage: ``python benchmarks/plot.py`` (``make bench`` runs it) reads
``benchmarks/results/models.csv`` (and ``workflow.csv``, ``scale.csv``) and writes
``docs/performance_models.png``, ``docs/performance_scale.png`` and
``benchmarks/results/models.md``, whose tables it also
puts into ``docs/performance.md`` (between its ``bench:start`` and ``bench:end`` markers).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from allianceanalysis.figures import PALETTE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def plot(table: pd.DataFrame, path: Path) -> None:
    models = list(dict.fromkeys(table["model"]))
    figure = Figure(figsize=(11, 6.5), layout="constrained")
    axes = figure.subplots(2, 4, sharex=True).ravel()
    for axis, model in zip(axes, models, strict=False):
        rows = table[table["model"] == model]
        peer = rows.drop_duplicates("clients")
        axis.loglog(peer["clients"], peer["lme4_seconds"], color="0.3", linestyle="--",
                    marker="s", markersize=4, label="lme4")  # fmt: skip
        for colour, (engine, group) in zip(PALETTE, rows.groupby("engine"), strict=False):
            axis.loglog(group["clients"], group["seconds"], color=colour, marker="o",
                        markersize=4, label=engine)  # fmt: skip
        axis.set_title(model, fontsize=9)
        axis.grid(True, which="major", linewidth=0.4, alpha=0.5)
    for axis in axes[len(models) :]:
        axis.set_visible(False)
    for axis in axes[4:]:
        axis.set_xlabel("Clients (about 8 sessions each)")
    for axis in axes[::4]:
        axis.set_ylabel("Fit time (s)")
    axes[0].legend(fontsize=8)
    machine = table["machine"].iloc[0]
    figure.suptitle(f"Linear mixed models of the catalogue against lme4 ({machine})", fontsize=10)
    figure.savefig(path, dpi=110, metadata={"Software": None})


SCALE_JOBS = {
    "imputation": ("missing_data", "merge_missing_data", "impute_"),
    "early_warning": ("early_warning",),
    "models": ("models",),
    "report_tables": ("report_tables",),
    "split": ("split",),
}
"""The sharded workflow's largest jobs in :func:`plot_scale`, by the rules' names (or their
prefix): the imputation is one job, or one per early session and their merge."""


def plot_scale(runs: pd.DataFrame, jobs: pd.DataFrame, path: Path) -> None:
    """The sharded workflow's time and memory against clients on log-log axes
    (``scale.csv``, ``scale_jobs.csv`` of ``benchmarks/scale.py``): wall time and job-seconds;
    the largest jobs' seconds (a job's several parts added); the peak memory of all jobs
    together and of the largest job (its exact peak, ``hwm_mb``, where the run recorded it,
    else Snakemake's sampled one, a lower bound). Each has the line of linear growth from its
    smallest tier."""
    runs = runs[runs["run"] == "sharded"].sort_values("clients")
    jobs = jobs[jobs["run"] == "sharded"]
    figure = Figure(figsize=(15, 4.5), layout="constrained")
    whole, parts, memory = figure.subplots(1, 3, sharex=True)

    def line(axis, x: pd.Series, y: pd.Series, colour: str, label: str) -> None:
        axis.loglog(x, y, color=colour, marker="o", markersize=4, label=label)
        axis.loglog(x, y.iloc[0] * x / x.iloc[0], color=colour, linestyle=":", linewidth=1)

    line(whole, runs["clients"], runs["seconds"], PALETTE[0], "wall time")
    line(whole, runs["clients"], runs["job_seconds"], PALETTE[1], "job-seconds")
    whole.axhline(1800, color="0.3", linestyle="--", linewidth=1, label="goal at 10M (1,800 s)")
    for colour, (name, prefixes) in zip(PALETTE, SCALE_JOBS.items(), strict=False):
        mine = jobs[jobs["rule"].str.startswith(prefixes)]
        seconds = mine.groupby("clients")["seconds"].sum().reindex(runs["clients"]).dropna()
        line(parts, seconds.index.to_series(), seconds, colour, name)
    exact = jobs["hwm_mb"] if "hwm_mb" in jobs else pd.Series(float("nan"), index=jobs.index)
    largest = exact.fillna(jobs["peak_mb"]).groupby(jobs["clients"]).max()
    line(memory, runs["clients"], runs["total_peak_mb"], PALETTE[0], "all jobs together")
    line(memory, runs["clients"], runs["clients"].map(largest), PALETTE[1], "largest job")
    memory.axhline(16_000, color="0.3", linestyle="--", linewidth=1, label="goal together (16 GB)")
    memory.axhline(4_000, color="0.5", linestyle="-.", linewidth=1, label="goal per job (4 GB)")
    whole.set_title("The sharded workflow (dotted: linear from the first tier)", fontsize=9)
    parts.set_title("Its largest jobs (seconds, a job's parts added)", fontsize=9)
    memory.set_title("Peak memory (a job's exact peak where recorded)", fontsize=9)
    for axis in (whole, parts, memory):
        axis.set_xlabel("Clients (about 8 sessions each)")
        axis.grid(True, which="major", linewidth=0.4, alpha=0.5)
        axis.legend(fontsize=8)
    whole.set_ylabel("Seconds")
    memory.set_ylabel("MB")
    machine = runs["machine"].iloc[-1]
    figure.suptitle(f"A national decade in shards, 1M to 10M clients ({machine})", fontsize=10)
    figure.savefig(path, dpi=110, metadata={"Software": None})


def markdown(table: pd.DataFrame) -> str:
    columns = {
        "clients": "clients",
        "model": "model",
        "engine": "engine",
        "seconds": "ours (s)",
        "lme4_seconds": "lme4 (s)",
        "time_ratio": "time ratio",
        "peak_mb": "ours (MB)",
        "lme4_peak_mb": "lme4 (MB)",
        "memory_ratio": "memory ratio",
        "rel_diff_fixed": "fixed effects (rel.)",
        "diff_fixed_in_se": "fixed effects (SE)",
        "rel_diff_variances": "variances (rel.)",
        "rel_diff_loglik": "loglik (rel.)",
    }
    shown = table[list(columns)].rename(columns=columns)
    return _pipe_table(shown)


def _pipe_table(shown: pd.DataFrame) -> str:
    """A Markdown table of ``shown``: integers with thousands separators, floats to 3 digits."""
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + " --- |" * len(shown.columns)]
    for row in shown.itertuples(index=False):
        cells = [f"{v:,}" if isinstance(v, int) else (f"{v:.3g}" if isinstance(v, float) else v)
                 for v in row]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def job_table(jobs: pd.DataFrame) -> str:
    """Each rule's time (s) and peak memory (MB) at each size: the sizing table for a cluster."""
    sizes = sorted(jobs["clients"].unique())
    lines = ["| rule | " + " | ".join(f"{c:,} clients: s, MB" for c in sizes) + " |",
             "| --- |" + " --- |" * len(sizes)]  # fmt: skip
    for rule, rows in jobs.groupby("rule", sort=False):
        cells = rows.set_index("clients").reindex(sizes)
        lines.append(f"| {rule} | " + " | ".join(
            f"{r.seconds:.1f}, {r.peak_mb:.0f}" for r in cells.itertuples()) + " |")  # fmt: skip
    return "\n".join(lines) + "\n"


def within_table(table: pd.DataFrame) -> str:
    """The within-person models against lavaan: time, memory, agreement and convergence."""
    columns = {"clients": "clients", "model": "model", "seconds": "ours (s)",
               "lavaan_seconds": "lavaan (s)", "time_ratio": "time ratio",
               "peak_mb": "ours (MB)", "lavaan_peak_mb": "lavaan (MB)",
               "memory_ratio": "memory ratio", "max_rel_diff": "estimates (rel.)",
               "converged": "ours converged", "lavaan_converged": "lavaan converged"}  # fmt: skip
    shown = table.reindex(columns=list(columns))
    for name in ("converged", "lavaan_converged"):
        shown[name] = shown[name].map({True: "yes", False: "no"}).fillna("not run")
    shown["max_rel_diff"] = shown["max_rel_diff"].map(lambda v: "–" if pd.isna(v) else f"{v:.2g}")
    shown = shown.rename(columns=columns)
    return _pipe_table(shown)


def main() -> None:
    table = pd.read_csv(RESULTS / "models.csv")
    plot(table, ROOT / "docs" / "performance_models.png")
    text = markdown(table)
    workflow = RESULTS / "workflow.csv"
    if workflow.exists():
        runs = pd.read_csv(workflow)
        text += ("\n| clients | sessions | workflow (s) | all jobs together (MB) | "
                 "largest job (MB) | job |\n| --- | --- | --- | --- | --- | --- |\n")  # fmt: skip
        for row in runs.itertuples():
            text += (f"| {row.clients:,} | {row.sessions:,} | {row.seconds:.0f} | "
                     f"{row.total_peak_mb:.0f} | {row.peak_mb:.0f} | "
                     f"{row.largest_job} |\n")  # fmt: skip
    jobs = RESULTS / "workflow_jobs.csv"
    if jobs.exists():
        text += "\n" + job_table(pd.read_csv(jobs))
    glmm = RESULTS / "glmm.csv"
    if glmm.exists():
        text += ("\nThe logistic model with therapist random effects (`rupture_dropout`, "
                 "`allianceanalysis.glmm`, Laplace) against `lme4::glmer` (Laplace, default "
                 "controls) on the person-periods of each tier:\n\n")  # fmt: skip
        text += markdown(pd.read_csv(glmm))
    covariates = RESULTS / "covariates.csv"
    if covariates.exists():
        text += ("\nThe catalogue with 10 covariates (one a 5-level factor) and a moderator "
                 "(`benchmarks/covariates.py`, `make bench-covariates`) against "
                 "`lme4::lmer`:\n\n")  # fmt: skip
        text += markdown(pd.read_csv(covariates).assign(engine="lmm"))
    within = RESULTS / "within_person.csv"
    if within.exists():
        text += ("\nThe latent disaggregation and the RI-CLPM (`benchmarks/within_person.py`, "
                 "`make bench-within`) against lavaan: ours from the 8 sessions per client "
                 "(the table derived too), lavaan from the table it is given:\n\n")  # fmt: skip
        text += within_table(pd.read_csv(within))
    scale = RESULTS / "scale.csv"
    if scale.exists():
        plot_scale(pd.read_csv(scale), pd.read_csv(RESULTS / "scale_jobs.csv"),
                   ROOT / "docs" / "performance_scale.png")  # fmt: skip
    (RESULTS / "models.md").write_text(text)
    insert(ROOT / "docs" / "performance.md", text)
    print(text)


def insert(page: Path, text: str) -> None:
    """Put ``text`` between the page's ``<!-- bench:start -->`` and ``<!-- bench:end -->``."""
    start, end = "<!-- bench:start -->\n", "<!-- bench:end -->"
    if not page.exists():
        return
    before, rest = page.read_text().split(start)
    page.write_text(before + start + text + end + rest.split(end)[1])


if __name__ == "__main__":
    main()
