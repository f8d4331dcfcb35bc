"""The workflow refusing what it cannot run: bad data, bad configuration, missing files, a
lint-clean Snakefile. Each test runs Snakemake on its own small working directory (the demo
runs are in tests/test_workflow.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd

from allianceanalysis.layout import internal

from .helpers import CORPUS, OUTPUTS, ROOT, SNAKEMAKE, snakemake, write_config


def test_failed_dataset_names_itself_and_leaves_no_outputs(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "bad" / "score_out_of_range.csv", tmp_path / "bad.csv")
    config = write_config(tmp_path, {"clinic": {"path": "bad.csv"}})
    done = snakemake(tmp_path, "--configfile", str(config))
    assert done.returncode != 0
    assert "dataset 'clinic': bad.csv: 2 problems found" in done.stderr
    assert "row 3, column 'ors': value '41'" in done.stderr
    for output in OUTPUTS:
        assert not (tmp_path / internal("clinic", output)).exists()


def test_exclude_policy_writes_excluded_rows_and_accounts_for_them(tmp_path: Path) -> None:
    shutil.copy(CORPUS / "bad" / "score_out_of_range.csv", tmp_path / "bad.csv")
    config = write_config(tmp_path, {"clinic": {"path": "bad.csv", "on_invalid_rows": "exclude"}})
    targets = [internal("clinic", output) for output in OUTPUTS]
    done = snakemake(tmp_path, *targets, "--configfile", str(config))
    assert done.returncode == 0, done.stderr
    results = tmp_path / internal("clinic")
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
    log = (tmp_path / internal("clinic", "logs", "ingest.log")).read_text()
    assert "1 × column 'ors': the ORS total must be between 0 and 40 (rows 3)" in log
    assert "'41'" not in log


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
