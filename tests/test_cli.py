"""The command line: clean messages, exit statuses, nothing written by validate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from .helpers import ALLIANCEANALYSIS, CORPUS, DEMO, ROOT


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ALLIANCEANALYSIS), *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_validate_accepts_the_demo_data() -> None:
    done = run("validate", str(DEMO))
    assert done.returncode == 0, done.stderr
    assert "valid." in done.stdout
    assert "rows read" in done.stdout


@pytest.mark.parametrize(
    "name", ["score_out_of_range.csv", "empty.csv", "not_text.csv", "name_column.csv"]
)
def test_validate_reports_problems_without_a_traceback(name: str) -> None:
    done = run("validate", str(CORPUS / "bad" / name))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert str(CORPUS / "bad" / name) in done.stderr
    assert "problem" in done.stderr


def test_validate_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text((CORPUS / "bad" / "score_out_of_range.csv").read_text())
    before = sorted(tmp_path.rglob("*"))
    assert run("validate", str(bad), cwd=tmp_path).returncode == 1
    assert sorted(tmp_path.rglob("*")) == before


def test_validate_is_non_zero_when_rows_would_be_excluded(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("datasets:\n  x:\n    path: ignored.csv\n    on_invalid_rows: exclude\n")
    done = run("validate", str(CORPUS / "bad" / "score_out_of_range.csv"), "--config", str(config))
    assert done.returncode == 1
    assert "row 3, column 'ors': value '41'" in done.stderr


def test_validate_uses_the_config_mapping(tmp_path: Path) -> None:
    data = tmp_path / "export.csv"
    data.write_text("Code;Clinician;Session No;ORS;SRS\nC1;T1;1;20,5;38\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "datasets:\n  clinic:\n    path: export.csv\n    columns: {client_id: Code, "
        "therapist_id: Clinician, session: Session No, ors: ORS, srs: SRS}\n"
    )
    done = run("validate", str(data), "--config", str(config), "--dataset", "clinic")
    assert done.returncode == 0, done.stderr
    assert "decimal ','" in done.stdout


def test_validate_with_a_broken_config_is_a_clean_error(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("datasets:\n  x:\n    pth: a.csv\n")
    done = run("validate", str(DEMO), "--config", str(config))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "needs the key 'path'" in done.stderr


def test_simulate_writes_data_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "sim.parquet"
    done = run(
        "simulate",
        str(out),
        "--clients",
        "40",
        "--therapists",
        "4",
        "--sites",
        "2",
        "--seed",
        "3",
        "--truth",
        str(tmp_path / "truth.json"),
    )
    assert done.returncode == 0, done.stderr
    assert pd.read_parquet(out)["client_id"].nunique() == 40
    assert run("validate", str(out)).returncode == 0
    assert '"seed": 3' in (tmp_path / "truth.json").read_text()


def test_simulate_with_items_writes_item_columns(tmp_path: Path) -> None:
    out = tmp_path / "sim.csv"
    assert (
        run(
            "simulate", str(out), "--clients", "10", "--therapists", "2", "--sites", "1", "--items"
        ).returncode
        == 0
    )
    header = out.read_text().splitlines()[0]
    assert "srs_relationship" in header and ",srs," not in header
    assert run("validate", str(out)).returncode == 0


def test_simulate_with_bad_parameters_exits_with_a_message(tmp_path: Path) -> None:
    done = run("simulate", str(tmp_path / "x.csv"), "--clients", "0")
    assert done.returncode == 2
    assert "n_clients must be at least 1" in done.stderr


def test_instruments_lists_the_registry() -> None:
    done = run("instruments")
    assert done.returncode == 0
    assert "PHQ-9" in done.stdout and "at_or_above 10" in done.stdout


def test_instruments_lists_a_configurations_own_instruments(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(
        "outcome: hamd\nalliance: null\ninstruments:\n  hamd:\n    name: Hamilton\n"
        "    short: HAM-D\n    construct: outcome\n    rater: clinician\n"
        "    total_range: [0, 52]\n    higher_is_better: false\n    source: Hamilton 1960\n"
        "datasets:\n  trial:\n    path: trial.csv\n"
    )
    done = run("instruments", "--config", str(tmp_path / "study.yaml"))
    assert done.returncode == 0, done.stderr
    line = next(row for row in done.stdout.splitlines() if row.startswith("hamd"))
    assert "HAM-D" in line and "clinician" in line and line.rstrip().endswith("config")


def test_instruments_with_a_broken_definition_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(
        "instruments:\n  hamd:\n    name: Hamilton\n    construct: outcome\n"
        "    total_range: [0, 52]\n    higher_is_better: false\n    cutoff: 60\n"
        "    source: Hamilton 1960\ndatasets:\n  trial:\n    path: trial.csv\n"
    )
    done = run("instruments", "--config", str(tmp_path / "study.yaml"))
    assert done.returncode == 1 and "'instruments.hamd.cutoff': 60 is outside" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_dry_run_plans_the_jobs_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "service.csv").write_bytes(DEMO.read_bytes())
    (tmp_path / "my.yaml").write_text("datasets:\n  service:\n    path: service.csv\n")
    done = run("run", "my.yaml", "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "dataset=service" in done.stdout and "annual_report" in done.stdout
    assert not (tmp_path / "results").exists()


def test_run_with_a_broken_config_is_one_plain_error(tmp_path: Path) -> None:
    (tmp_path / "my.yaml").write_text("datasets:\n  service:\n    pth: service.csv\n")
    done = run("run", "my.yaml", cwd=tmp_path)
    assert done.returncode == 1
    assert "unknown key 'datasets.service.pth' (did you mean 'path'?)" in done.stderr
    assert "Traceback" not in done.stderr
