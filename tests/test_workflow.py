"""The Snakemake workflow: runs anywhere, reruns nothing, fails cleanly, accounts for rows."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pypdfium2
import pytest
import yaml

from allianceanalysis.annual_report import render_pdf
from allianceanalysis.models import CATALOGUE, TIDY_COLUMNS

from .helpers import (
    CORPUS,
    DEMO,
    ROOT,
    SNAKEMAKE,
    demo_workdir,
    published_bytes,
    run_demo,
    snakemake,
    snakemake_command,
    write_config,
)

OUTPUTS = (
    "validated/sessions.parquet",
    "validation/summary.json",
    "validation/row_accounting.csv",
    "validation/excluded_rows.csv",
)


def test_workflow_writes_every_output_under_the_working_directory(demo_run: Path) -> None:
    for output in OUTPUTS:
        assert (demo_run / "results" / "demo" / output).is_file()
    assert not (ROOT / "results" / "demo" / "nonexistent").exists()


def test_every_catalogue_model_has_its_table_and_all_are_in_models_csv(demo_run: Path) -> None:
    tables = demo_run / "results" / "demo" / "tables"
    for name in CATALOGUE:
        assert (tables / f"{name}.csv").is_file(), name
    combined = pd.read_csv(tables / "models.csv")
    assert list(combined.columns) == TIDY_COLUMNS
    expected = {m for m in CATALOGUE if m != "early_alliance"}
    expected |= {f"early_alliance_k{k}" for k in range(1, 6)}
    assert set(combined["model"]) == expected


def test_early_alliance_figure_is_drawn(demo_run: Path) -> None:
    figures = demo_run / "results" / "demo" / "figures"
    assert (figures / "early_alliance_by_k.png").stat().st_size > 10_000
    assert (figures / "early_alliance_by_k.svg").read_text().startswith("<?xml")


def test_derived_accounting_adds_up(demo_run: Path) -> None:
    accounting = pd.read_csv(demo_run / "results/demo/derived/accounting.csv")
    count = accounting.groupby("stage")["count"].sum()
    assert count["cases"] == count["eligible"] + count["excluded"]
    clients = pd.read_parquet(demo_run / "results/demo/derived/clients.parquet")
    assert count["cases"] == len(clients) == pd.read_csv(DEMO)["client_id"].nunique()


def test_validated_sessions_hold_every_demo_row(demo_run: Path) -> None:
    sessions = pd.read_parquet(demo_run / "results/demo/validated/sessions.parquet")
    assert len(sessions) == len(pd.read_csv(DEMO))
    summary = json.loads((demo_run / "results/demo/validation/summary.json").read_text())
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
        folder = demo_run / "results" / dataset / "annual_report"
        written = sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        assert written == [  # Snakemake adds .snakemake_timestamp to a directory output
            "2024-25.html", "2024-25.pdf", "2024-25_kpis.csv",
            "2025-26.html", "2025-26.pdf", "2025-26_kpis.csv",
        ]  # fmt: skip
        kpis = pd.read_csv(folder / "2025-26_kpis.csv", dtype=str)
        assert list(kpis.columns) == ["year", "kpi", "label", "value", "ci", "n", "unit"]
        assert (folder / "2025-26.pdf").read_bytes().startswith(b"%PDF")


def test_log_holds_counts_and_no_data(demo_run: Path) -> None:
    log = (demo_run / "results/demo/logs/ingest.log").read_text()
    assert "rows read" in log
    first_client = pd.read_csv(DEMO)["client_id"].iloc[0]
    assert first_client not in log


def test_failed_dataset_names_itself_and_leaves_no_outputs(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "bad" / "score_out_of_range.csv", tmp_path / "bad.csv")
    config = write_config(tmp_path, {"clinic": {"path": "bad.csv"}})
    done = snakemake(tmp_path, "--configfile", str(config))
    assert done.returncode != 0
    assert "dataset 'clinic': bad.csv: 2 problems found" in done.stderr
    assert "row 3, column 'ors': value '41'" in done.stderr
    for output in OUTPUTS:
        assert not (tmp_path / "results" / "clinic" / output).exists()


def test_exclude_policy_writes_excluded_rows_and_accounts_for_them(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "bad" / "score_out_of_range.csv", tmp_path / "bad.csv")
    config = write_config(tmp_path, {"clinic": {"path": "bad.csv", "on_invalid_rows": "exclude"}})
    targets = [f"results/clinic/{output}" for output in OUTPUTS]
    done = snakemake(tmp_path, *targets, "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    results = tmp_path / "results" / "clinic"
    excluded = pd.read_csv(results / "validation/excluded_rows.csv")
    assert excluded["source_row"].tolist() == [3, 4]
    assert "the ORS total must be between 0 and 40" in excluded["exclusion_reasons"].iloc[0]
    accounting = pd.read_csv(results / "validation/row_accounting.csv").set_index("stage")
    assert accounting.loc["read", "rows"] == 3
    assert accounting.loc["used", "rows"] + accounting.loc["excluded", "rows"] == 3
    assert len(pd.read_parquet(results / "validated/sessions.parquet")) == 1


def test_invalid_config_is_reported_in_plain_words(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"path": "demo.csv", "on_invalid_row": "fail"}})
    done = snakemake(tmp_path, "--configfile", str(config))
    assert done.returncode != 0
    assert "unknown key 'datasets.demo.on_invalid_row' (did you mean 'on_invalid_rows'?)" in (
        done.stderr
    )


def test_missing_input_file_is_named(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"demo": {"path": "nowhere.csv"}})
    done = snakemake(tmp_path, "--configfile", str(config))
    assert done.returncode != 0
    assert "nowhere.csv" in done.stderr


def test_failed_dataset_log_holds_counts_and_rows_but_no_values(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "bad" / "score_out_of_range.csv", tmp_path / "bad.csv")
    config = write_config(tmp_path, {"clinic": {"path": "bad.csv"}})
    assert snakemake(tmp_path, "--configfile", str(config)).returncode != 0
    log = (tmp_path / "results/clinic/logs/ingest.log").read_text()
    assert "1 × column 'ors': the ORS total must be between 0 and 40 (rows 3)" in log
    assert "'41'" not in log


def test_apa_tables_exist_in_three_formats(demo_run: Path) -> None:
    apa = demo_run / "results" / "demo" / "tables" / "apa"
    for name in CATALOGUE:
        for ext in ("md", "tex", "html"):
            assert (apa / f"{name}.{ext}").stat().st_size > 100, (name, ext)


def test_provenance_records_versions_config_and_checksums(demo_run: Path) -> None:
    record = json.loads((demo_run / "results" / "demo" / "provenance.json").read_text())
    assert record["package"]["name"] == "allianceanalysis"
    assert record["dependencies"]["mixedlm"] == "1.3.0"
    assert record["config"]["dataset"]["path"] == "data/demo/sessions.csv"
    assert record["seed"] == 20261125
    expected = hashlib.sha256(DEMO.read_bytes()).hexdigest()
    assert record["inputs"][0]["sha256"] == expected
    assert {Path(o["path"]).name for o in record["outputs"]} == {"sessions.parquet", "models.csv"}


def test_mapped_clinic_export_is_analysed_like_the_canonical_demo(demo_run: Path) -> None:
    summary = json.loads((demo_run / "results/clinic_b/validation/summary.json").read_text())
    assert summary["rows"]["excluded"] == 0
    assert summary["columns"]["mapped"]["client_id"] == "Client Code"
    assert summary["read_options"]["date_format"] == "%d/%m/%Y"
    assert (demo_run / "results/clinic_b/tables/models.csv").is_file()


def test_two_datasets_are_pooled_with_a_forest_plot(demo_run: Path) -> None:
    pooled = pd.read_csv(demo_run / "results/_pooled/tables/pooled_datasets.csv")
    assert {"study:demo", "study:clinic_b", "pooled_r", "tau2", "i2", "q"} <= set(pooled["term"])
    assert (pooled["model"] == "one_stage").any()
    assert (demo_run / "results/_pooled/figures/forest_datasets.png").stat().st_size > 10_000


def test_workflow_is_lint_clean() -> None:
    done = subprocess.run(
        [
            str(SNAKEMAKE),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--lint",
            "--configfile",
            str(ROOT / "config" / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert "Congratulations, your workflow is in a good condition!" in done.stdout + done.stderr


def test_early_warning_table_holds_each_analysis(demo_run: Path) -> None:
    table = pd.read_csv(demo_run / "results" / "demo" / "tables" / "early_warning.csv")
    assert {"ruptures", "dropout_risk", "expected_response", "not_on_track_signal",
            "feedback_outcome"} <= set(table["model"])  # fmt: skip
    calibration = pd.read_csv(demo_run / "results" / "demo" / "tables" / "dropout_calibration.csv")
    assert calibration["n"].sum() == table.query("term == 'auc_cv'")["n_obs"].iloc[0]


@pytest.fixture(scope="module")
def second_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled configuration run again, from scratch, in another working directory."""
    return run_demo(tmp_path_factory.mktemp("again"))


def test_two_runs_on_the_same_inputs_give_byte_identical_outputs(demo_run, second_run) -> None:
    """Tables, figures (PNG, SVG), Parquet, the annual reports (HTML, PDF) and provenance
    (but its creation time) are identical byte for byte; only the logs' timings and the
    browsable report's date differ. The first run went through the front door
    (``allianceanalysis run``), the second as ``make run`` does (Snakemake, then its report)."""
    for run in (demo_run, second_run):
        assert (run / "results" / "report.html").stat().st_size > 100_000
    first, again = published_bytes(demo_run), published_bytes(second_run)
    assert sorted(first) == sorted(again)
    assert len(first) > 150
    different = [name for name in first if first[name] != again[name]]
    assert not different, different


def test_the_configured_seed_drives_the_bootstrap(demo_run: Path, tmp_path: Path) -> None:
    """Another ``seed`` moves the bootstrap intervals and the pseudonymous therapist codes
    (a seeded permutation), and no estimate that is not drawn at random."""
    target = "results/demo/tables/models.csv"
    done = snakemake(tmp_path, *demo_workdir(tmp_path), "--config", "seed=7", "--", target)
    assert done.returncode == 0, done.stderr
    ours = pd.read_csv(tmp_path / target).set_index(["model", "term"])
    theirs = pd.read_csv(demo_run / target).set_index(["model", "term"]).reindex(ours.index)
    bootstrap = ours["ci_method"].fillna("").str.contains("bootstrap")
    assert bootstrap.any()
    assert not np.allclose(ours.loc[bootstrap, "ci_low"], theirs.loc[bootstrap, "ci_low"])
    coded = ours.index.get_level_values("model") == "therapist_effects"
    assert not np.allclose(ours.loc[coded, "estimate"], theirs.loc[coded, "estimate"])
    np.testing.assert_allclose(ours.loc[~coded, "estimate"], theirs.loc[~coded, "estimate"],
                               rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize(
    ("stop", "once"),
    [pytest.param(signal.SIGTERM, "demo/validated/sessions.parquet", marks=pytest.mark.slow),
     pytest.param(signal.SIGKILL, "demo/tables/models.csv", marks=pytest.mark.slow),
     (signal.SIGKILL, "demo/tables/early_warning.csv")],
)  # one point by default (a whole run each); make test-slow stops at all three  # fmt: skip
def test_an_interrupted_run_leaves_nothing_half_written_and_resumes_to_the_same_outputs(
    demo_run: Path, tmp_path: Path, stop: signal.Signals, once: str
) -> None:
    """The workflow is stopped (SIGTERM, or SIGKILL of every process) once an output exists.
    (A SIGTERM that Snakemake does not act on within 60 s is followed by SIGKILL.)
    Every file it left under results/ (logs and hidden ``.<name>.<pid>.tmp`` files aside)
    equals the uninterrupted run's: no truncated file looks complete. After a SIGKILL
    Snakemake's lock stays (``snakemake --unlock``, as its message says); run again with
    ``--rerun-incomplete``, the workflow finishes with outputs identical to the uninterrupted
    run's and no temporary file left behind."""
    config = demo_only(tmp_path)
    command = snakemake_command(tmp_path, *config)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (tmp_path / "results" / once).exists() and process.poll() is None:
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
    reference = published_bytes(demo_run, "demo")
    left = published_bytes(tmp_path, "demo")
    assert len(left) < len(reference)
    half = [name for name, content in left.items()
            if not _temporary(name) and reference.get(name) != content]  # fmt: skip
    assert not half, half
    assert snakemake(tmp_path, *config, "--unlock").returncode == 0
    done = snakemake(tmp_path, *config, "--rerun-incomplete")
    assert done.returncode == 0, done.stderr
    assert published_bytes(tmp_path, "demo") == reference


def demo_only(workdir: Path) -> tuple[str, str]:
    """The bundled configuration with its ``demo`` dataset only (half the jobs of the two)."""
    config = demo_workdir(workdir)
    settings = yaml.safe_load(Path(config[1]).read_text())
    settings["datasets"] = {"demo": settings["datasets"]["demo"]}
    Path(config[1]).write_text(yaml.safe_dump(settings))
    return config


def _temporary(name: str) -> bool:
    """A path inside, or of, a writer's hidden temporary (``.<name>.<pid>.tmp``)."""
    return any(part.startswith(".") and part.endswith(".tmp") for part in Path(name).parts)


PUBLISHED = ("tables", "figures", "annual_report")
"""What a run publishes per dataset, besides ``results/_pooled/``; the rest of ``results/``
(validated, validation, derived, report_tables, logs) is internal and holds row-level data."""


def published_text(path: Path) -> str:
    """The text a reader can get out of a published file: a PDF's text layer, an HTML page
    without its embedded images' base64, any other file as text."""
    if path.suffix == ".pdf":
        document = pypdfium2.PdfDocument(path)
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    text = path.read_bytes().decode("utf-8", errors="replace")
    return re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "", text)


@pytest.fixture(scope="module")
def seeded_run(stranger_run: Path) -> tuple[Path, pd.DataFrame]:
    """The ``service`` dataset of the shared run of data we did not make (conftest.py): the
    demo data with distinctive client and therapist IDs, a free-text column and a date of birth
    the user let through, and the sessions as they went in."""
    return stranger_run, pd.read_csv(stranger_run / "data" / "sessions.csv", dtype=str)


def test_no_published_file_holds_an_id_a_date_of_birth_a_session_date_or_free_text(
    seeded_run,
) -> None:
    """Every published table, figure (SVG text; PNGs are the same figures drawn as pixels)
    and annual report (HTML text, PDF text layer, KPI table) is read: no client ID, no
    therapist ID (therapists appear as pseudonymous codes), no session date, no date of birth
    and no free text appears."""
    workdir, sessions = seeded_run
    results = workdir / "results"
    files = [p for part in PUBLISHED for p in (results / "service" / part).rglob("*")
             if p.is_file() and p.suffix != ".png"]  # fmt: skip
    files += [p for p in (results / "_pooled").rglob("*") if p.is_file() and p.suffix != ".png"
              and "logs" not in p.parts]  # fmt: skip
    assert any(p.suffix == ".pdf" for p in files) and any(p.suffix == ".svg" for p in files)
    secrets = {*sessions["client_id"], *sessions["therapist_id"], *sessions["session_date"]}
    secrets |= {*sessions["dob"], *sessions["remarks"].str.split().str[-1]}
    found = {}
    for path in files:
        text = published_text(path)
        hits = [s for s in secrets if s in text]
        if hits:
            found[str(path.relative_to(results))] = hits[:3]
    assert not found, found


def test_the_audit_reads_the_text_of_pdf_reports_and_svg_figures(seeded_run, tmp_path) -> None:
    """The audit can fail: an ID printed in a PDF report is found in its (compressed) text
    layer, and figures' SVG text is kept as text, so a label would be found too."""
    workdir, sessions = seeded_run
    secret = sessions["client_id"].iloc[0]
    pdf = tmp_path / "leak.pdf"
    pdf.write_bytes(render_pdf(f"<html><body><p>Client {secret}</p></body></html>"))
    assert secret in published_text(pdf)
    svg = next((workdir / "results" / "service" / "figures").glob("*.svg"))
    assert "<text" in svg.read_text(encoding="utf-8")
