"""The Snakemake workflow: runs anywhere, reruns nothing, fails cleanly, accounts for rows."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from allianceanalysis.figures import FIGURES
from allianceanalysis.layout import figure_file, internal, model_table, published
from allianceanalysis.models import CATALOGUE, TIDY_COLUMNS
from allianceanalysis.moderation import MODELS as MODERATION_MODELS

from .helpers import (
    ALLIANCEANALYSIS,
    DEMO,
    OUTPUTS,
    ROOT,
    demo_workdir,
    published_bytes,
    snakemake,
    snakemake_command,
)
from .report_check import check_report


def test_workflow_writes_every_output_under_the_working_directory(demo_run: Path) -> None:
    for output in OUTPUTS:
        assert (demo_run / internal("demo", output)).is_file()
    assert not (ROOT / "results" / "demo" / "nonexistent").exists()


def test_every_catalogue_model_has_its_table_and_the_published_ones_are_in_models_csv(
    demo_run: Path,
) -> None:
    for name in CATALOGUE:
        assert (demo_run / model_table("demo", name)).is_file(), name
    combined = pd.read_csv(demo_run / published("demo", "tables", "models.csv"))
    assert list(combined.columns) == TIDY_COLUMNS
    expanded = ("early_alliance", "moderation", "custom_models")  # tables of several models
    expected = {m for m, entry in CATALOGUE.items()
                if m not in expanded and not entry.therapist_level}  # fmt: skip
    expected |= {f"early_alliance_k{k}" for k in range(1, 6)}
    expected |= {f"{m}_by_treatment" for m in MODERATION_MODELS}  # the demo's moderator
    expected |= {"alliance_by_dose", "dropout_after_session"}  # the demo config's own models
    expected |= {
        "alliance_disaggregated_observed",
        "alliance_next_session_same_sample",
        "alliance_next_session_lag_raw",
        "riclpm_unconstrained",
    }  # shown beside
    assert set(combined["model"]) == expected


def test_early_alliance_figure_is_drawn(demo_run: Path) -> None:
    figures = demo_run / published("demo", "figures")
    assert (figures / "early_alliance_by_k.png").stat().st_size > 10_000
    assert (figures / "early_alliance_by_k.svg").read_text().startswith("<?xml")


def test_derived_accounting_adds_up(demo_run: Path) -> None:
    accounting = pd.read_csv(demo_run / internal("demo", "derived", "accounting.csv"))
    count = accounting.groupby("stage")["count"].sum()
    assert count["cases"] == count["eligible"] + count["excluded"]
    clients = pd.read_parquet(demo_run / internal("demo", "derived", "clients.parquet"))
    assert count["cases"] == len(clients) == pd.read_csv(DEMO)["client_id"].nunique()


def test_validated_sessions_hold_every_demo_row(demo_run: Path) -> None:
    sessions = pd.read_parquet(demo_run / internal("demo", "validated", "sessions.parquet"))
    assert len(sessions) == len(pd.read_csv(DEMO))
    summary = json.loads((demo_run / internal("demo", "validation", "summary.json")).read_text())
    assert summary["rows"] == {
        "read": len(sessions),
        "used": len(sessions),
        "excluded": 0,
        "blank_rows_ignored": 0,
    }


def test_rerun_with_nothing_changed_does_nothing(demo_run: Path) -> None:
    done = snakemake(demo_run, "--configfile", str(demo_run / "config.yaml"))
    assert done.returncode == 0
    assert "Nothing to be done" in done.stdout + done.stderr


def test_adding_a_dataset_plans_only_its_jobs_and_the_pooling(demo_run: Path) -> None:
    shutil.copy(DEMO, demo_run / "second.csv")
    config = (demo_run / "config.yaml").read_text() + "  second:\n    path: second.csv\n"
    (demo_run / "extended.yaml").write_text(config)
    done = snakemake(demo_run, "--configfile", str(demo_run / "extended.yaml"), "--dry-run")
    assert done.returncode == 0, done.stderr
    planned = done.stdout + done.stderr
    assert "dataset=second" in planned
    assert "dataset=demo" not in planned and "dataset=clinic_b" not in planned
    assert "rule pooled_datasets" in planned


def test_demo_gives_a_two_year_annual_report_out_of_the_box(demo_run: Path) -> None:
    for dataset in ("demo", "clinic_b"):
        folder = demo_run / published(dataset, "annual_report")
        written = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        assert written == [  # Snakemake adds .snakemake_timestamp to a directory output
            "2024-25.html", "2024-25.pdf", "2024-25_kpis.csv",
            "2025-26.html", "2025-26.pdf", "2025-26_kpis.csv",
        ]  # fmt: skip
        kpis = pd.read_csv(folder / "2025-26_kpis.csv", dtype=str)
        assert list(kpis.columns) == ["year", "kpi", "label", "value", "ci", "n", "unit"]
        assert (folder / "2025-26.pdf").read_bytes().startswith(b"%PDF")


def test_log_holds_counts_and_no_data(demo_run: Path) -> None:
    log = (demo_run / internal("demo", "logs", "ingest.log")).read_text()
    assert "rows read" in log
    first_client = pd.read_csv(DEMO)["client_id"].iloc[0]
    assert first_client not in log


def test_apa_tables_exist_in_three_formats(demo_run: Path) -> None:
    for name in CATALOGUE:
        for ext in (".md", ".tex", ".html"):
            apa = demo_run / model_table("demo", name, ext, apa=True)
            assert apa.stat().st_size > 100, (name, ext)


def test_provenance_records_versions_config_and_checksums(demo_run: Path) -> None:
    record = json.loads((demo_run / published("demo", "provenance.json")).read_text())
    assert record["package"]["name"] == "allianceanalysis"
    assert record["dependencies"]["mixedlm"] == "1.3.0"
    assert record["config"]["dataset"]["path"] == "data/demo/sessions.csv"
    assert record["seed"] == 20261125
    expected = hashlib.sha256(DEMO.read_bytes()).hexdigest()
    assert record["inputs"][0]["sha256"] == expected
    assert {Path(o["path"]).name for o in record["outputs"]} == {"sessions.parquet", "models.csv"}


def test_mapped_clinic_export_is_analysed_like_the_canonical_demo(demo_run: Path) -> None:
    summary = internal("clinic_b", "validation", "summary.json")
    summary = json.loads((demo_run / summary).read_text())
    assert summary["rows"]["excluded"] == 0
    assert summary["columns"]["mapped"]["client_id"] == "Client Code"
    assert summary["read_options"]["date_format"] == "%d/%m/%Y"
    assert (demo_run / published("clinic_b", "tables", "models.csv")).is_file()


def test_two_datasets_are_pooled_with_a_forest_plot(demo_run: Path) -> None:
    pooled = pd.read_csv(demo_run / published("_pooled", "tables", "pooled_datasets.csv"))
    assert {"study:demo", "study:clinic_b", "pooled_r", "tau2", "i2", "q"} <= set(pooled["term"])
    assert (pooled["model"] == "one_stage").any()
    forest = demo_run / published("_pooled", "figures", "forest_datasets.png")
    assert forest.stat().st_size > 10_000


def test_early_warning_table_holds_each_analysis(demo_run: Path) -> None:
    table = pd.read_csv(demo_run / published("demo", "tables", "early_warning.csv"))
    assert {"ruptures", "dropout_risk", "expected_response", "not_on_track_signal",
            "feedback_outcome"} <= set(table["model"])  # fmt: skip
    calibration = pd.read_csv(demo_run / internal("demo", "tables", "dropout_calibration.csv"))
    assert calibration["n"].sum() == table.query("term == 'auc_cv'")["n_obs"].iloc[0]


def interrupt(workdir: Path, config: tuple[str, str], stop: signal.Signals, once: str) -> None:
    """Run the workflow in ``workdir`` and stop it (SIGTERM, or SIGKILL of every process) once
    ``<once>`` exists; a SIGTERM that Snakemake does not act on within 60 s is followed
    by SIGKILL."""
    process = subprocess.Popen(snakemake_command(workdir, *config), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (workdir / once).exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the workflow did not get that far"
        time.sleep(0.05)
    assert process.poll() is None, "the workflow finished before it could be stopped"
    os.killpg(process.pid, stop)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        # Snakemake 9.27 can deadlock on SIGTERM arriving while it post-processes a finished
        # job (its signal handler waits on a lock its error callback holds; seen with
        # py-spy): then SIGKILL, as SLURM sends after its grace period.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


def resume(workdir: Path, config: tuple[str, str], *extra: str) -> None:
    """Unlock the stopped run's working directory (a SIGKILL leaves Snakemake's lock, as its
    message says) and run again with ``--rerun-incomplete``."""
    assert snakemake(workdir, *config, "--unlock").returncode == 0
    done = snakemake(workdir, *config, "--rerun-incomplete", *extra)
    assert done.returncode == 0, done.stderr


@dataclass
class SecondRun:
    """The second run: its working directory, and the files it had left when it was stopped."""

    workdir: Path
    left: dict[str, bytes]


@pytest.fixture(scope="module")
def second_run(tmp_path_factory: pytest.TempPathFactory, demo_run: Path) -> SecondRun:
    """The bundled configuration's ``demo`` dataset run again from scratch in another working
    directory, as ``make run`` runs the workflow (its browsable report aside), except that it
    is stopped by SIGKILL of every process once the demo's early-warning table exists, and
    resumed: one run serves the interrupted-run check (what it left) and the identical-rerun
    check (how it ended). One dataset of the two halves the run; both datasets and their
    pooling are run twice in the slow suite
    (:func:`test_two_runs_of_every_dataset_give_byte_identical_outputs`)."""
    workdir = tmp_path_factory.mktemp("again")
    config = demo_only(workdir, key_from=demo_run)
    interrupt(workdir, config, signal.SIGKILL, published("demo", "tables", "early_warning.csv"))
    left = published_bytes(workdir, "demo")
    resume(workdir, config)
    return SecondRun(workdir, left)


def assert_identical(first: dict[str, bytes], again: dict[str, bytes]) -> None:
    """The same files with the same bytes."""
    assert sorted(first) == sorted(again)
    different = [name for name in first if first[name] != again[name]]
    assert not different, different


def test_two_runs_on_the_same_inputs_give_byte_identical_outputs(demo_run, second_run) -> None:
    """Tables, figures (PNG, SVG), Parquet, the annual reports (HTML, PDF) and provenance
    (but its creation time) are identical byte for byte; only the logs' timings and the
    browsable report differ (the second run does not build one). The first run went through
    the front door (``allianceanalysis run``), the second as ``make run`` runs Snakemake
    (stopped and resumed on the way, as the next test checks)."""
    assert (demo_run / "results" / "report.html").stat().st_size > 100_000
    first = published_bytes(demo_run, "demo")
    assert len(first) > 100
    assert_identical(first, published_bytes(second_run.workdir, "demo"))


@pytest.mark.slow
def test_two_runs_of_every_dataset_give_byte_identical_outputs(
    demo_run: Path, tmp_path: Path
) -> None:
    """The whole bundled configuration (both datasets and their pooling) run again, as
    ``make run`` runs it, gives every output of the front-door run byte for byte."""
    config = demo_workdir(tmp_path, key_from=demo_run)
    assert snakemake(tmp_path, *config).returncode == 0
    first = published_bytes(demo_run)
    assert len(first) > 300
    assert_identical(first, published_bytes(tmp_path))


def test_a_killed_run_leaves_nothing_half_written_and_resumes_to_the_same_outputs(
    demo_run: Path, second_run: SecondRun
) -> None:
    """Every file the run killed by SIGKILL (once the demo's early-warning table existed)
    left under results/demo/ (logs and hidden ``.<name>.<pid>.tmp`` files aside) equals the
    uninterrupted run's: no truncated file looks complete. Unlocked and rerun with
    ``--rerun-incomplete``, it finished with the uninterrupted run's outputs and no temporary
    file left behind (the byte-identity test above)."""
    reference = published_bytes(demo_run, "demo")
    assert 0 < len(second_run.left) < len(reference)
    assert_nothing_half_written(second_run.left, reference)
    assert not [name for name in published_bytes(second_run.workdir) if _temporary(name)]


def test_the_configured_seed_drives_the_bootstrap_only(demo_run: Path, tmp_path: Path) -> None:
    """Another ``seed`` (same pseudonym key) moves the bootstrap intervals, and no estimate
    that is not drawn at random and no therapist's code (the codes come from the key)."""
    target = published("demo", "tables", "models.csv")
    config = demo_workdir(tmp_path, key_from=demo_run)
    done = snakemake(tmp_path, *config, "--config", "seed=7", "--", target)
    assert done.returncode == 0, done.stderr
    ours = pd.read_csv(tmp_path / target).set_index(["model", "term"])
    theirs = pd.read_csv(demo_run / target).set_index(["model", "term"]).reindex(ours.index)
    bootstrap = ours["ci_method"].fillna("").str.contains("bootstrap")
    assert bootstrap.any()
    assert not np.allclose(ours.loc[bootstrap, "ci_low"], theirs.loc[bootstrap, "ci_low"])
    np.testing.assert_allclose(ours["estimate"], theirs["estimate"], rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop", "once"),
    [
        (signal.SIGTERM, internal("demo", "validated", "sessions.parquet")),
        (signal.SIGKILL, published("demo", "tables", "models.csv")),
    ],
)  # the default suite stops one run (second_run, above); make test-slow stops two more
def test_an_interrupted_run_leaves_nothing_half_written_and_resumes_to_the_same_outputs(
    demo_run: Path, tmp_path: Path, stop: signal.Signals, once: str
) -> None:
    """The demo dataset's run is stopped (SIGTERM, or SIGKILL of every process) once an output
    exists: every file it left under results/ (logs and hidden ``.<name>.<pid>.tmp`` files
    aside) equals the uninterrupted run's; resumed, it finishes with the same outputs and no
    temporary file left behind."""
    config = demo_only(tmp_path, key_from=demo_run)
    interrupt(tmp_path, config, stop, once)
    reference = published_bytes(demo_run, "demo")
    left = published_bytes(tmp_path, "demo")
    assert len(left) < len(reference)
    assert_nothing_half_written(left, reference)
    resume(tmp_path, config)
    assert published_bytes(tmp_path, "demo") == reference


def demo_only(workdir: Path, key_from: Path) -> tuple[str, str]:
    """The bundled configuration with its ``demo`` dataset only (half the jobs of the two),
    and the pseudonym key of the run in ``key_from``."""
    config = demo_workdir(workdir, key_from)
    settings = yaml.safe_load(Path(config[1]).read_text())
    settings["datasets"] = {"demo": settings["datasets"]["demo"]}
    Path(config[1]).write_text(yaml.safe_dump(settings))
    return config


def assert_nothing_half_written(left: dict[str, bytes], reference: dict[str, bytes]) -> None:
    """Every file a stopped run left (writers' hidden temporaries aside) equals the
    uninterrupted run's: no truncated file looks complete."""
    half = [name for name, content in left.items()
            if not _temporary(name) and reference.get(name) != content]  # fmt: skip
    assert not half, half


def _temporary(name: str) -> bool:
    """A path inside, or of, a writer's hidden temporary (``.<name>.<pid>.tmp``)."""
    return any(part.startswith(".") and part.endswith(".tmp") for part in Path(name).parts)


def test_run_shows_one_line_per_finished_job_and_where_the_results_are(demo_run: Path) -> None:
    """The shared demo run went through ``allianceanalysis run`` (conftest.py)."""
    shown = (demo_run / "run_output.txt").read_text().splitlines()
    jobs = [line for line in shown if line.startswith("[")]
    assert jobs[0].startswith("[1/") and jobs[-1].split("]")[0] == "[{0}/{0}".format(len(jobs))
    assert any(line.endswith("] annual_report, dataset=clinic_b") for line in jobs)
    assert f"  demo: {demo_run / published('demo')} (tables/, figures/, annual_report/)" in shown
    assert shown[-1] == f"Report: {demo_run / 'results' / 'report.html'}"
    assert not any(line.startswith(("    input:", "localrule", "SNAKEMAKE")) for line in shown)


def test_report_rebuilds_the_reports_of_a_finished_run(demo_run: Path) -> None:
    command = [str(ALLIANCEANALYSIS), "report", str(demo_run / "config.yaml"), "--directory",
               str(demo_run)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"Report: {demo_run / 'results' / 'report.html'}"


@pytest.mark.browser
def test_every_figure_of_every_dataset_displays_in_a_browser(
    demo_run: Path, tmp_path: Path
) -> None:
    """The browsable report of the shared demo run in headless Chromium."""
    seen = check_report(
        demo_run / "results" / "report.html", ["demo", "clinic_b"], screenshots=tmp_path
    )
    public = [name for name, entry in FIGURES.items() if not entry.therapist_level]
    for category, figures in seen.items():
        assert len(figures) == len(public), category
        for name, (width, height) in figures.items():
            assert width > 300 and height > 300, (category, name)
    assert len(list(tmp_path.glob("*.png"))) == 2 * len(public)


def test_therapist_level_outputs_are_internal(demo_run: Path) -> None:
    """The therapist-level table and figure are written under ``internal/`` only."""
    for path in (model_table("demo", "therapist_effects"),
                 figure_file("demo", "therapist_caterpillar", ".png")):  # fmt: skip
        assert Path(path).parts[2] == "internal"
        assert (demo_run / path).is_file()
        assert not (demo_run / path.replace("/internal/", "/published/")).exists()


def test_supervision_report_names_the_therapists_the_published_report_does_not(
    demo_run: Path,
) -> None:
    supervision = (demo_run / internal("demo", "supervision", "2025-26.html")).read_text()
    report = (demo_run / published("demo", "annual_report", "2025-26.html")).read_text()
    assert "not for publication" in supervision
    assert (demo_run / internal("demo", "supervision", "2025-26.pdf")).read_bytes()[:4] == b"%PDF"
    assert "This report does not show therapists individually" in report
    assert "Funnel plot" in supervision and "Funnel plot" not in report  # nor its reference
    assert not (demo_run / internal("demo", "supervision", "2025-26_kpis.csv")).exists()
