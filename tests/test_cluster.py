"""The SLURM profile parses and plans the same jobs as a local run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from .helpers import ROOT, SNAKEMAKE

PROFILE = ROOT / "workflow" / "profiles" / "slurm"


def planned_jobs(workdir: Path, *extra: str) -> dict[str, int]:
    done = subprocess.run(
        [
            str(SNAKEMAKE),
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--directory",
            str(workdir),
            "--configfile",
            str(workdir / "config.yaml"),
            "--dry-run",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    stats = text[text.index("Job stats:") :]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}


def test_profile_uses_the_slurm_executor_with_resources() -> None:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert {"runtime", "mem_mb"} <= set(profile["default-resources"])


def test_profile_names_no_placeholder_account_or_partition() -> None:
    """A placeholder fails at the first submission where accounts are enforced; without one
    the plugin uses the user's default account and the cluster's default partition."""
    resources = yaml.safe_load((PROFILE / "config.yaml").read_text())["default-resources"]
    assert not {"slurm_account", "slurm_partition"} & set(resources)


def test_dry_run_with_the_slurm_profile_plans_the_same_jobs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "data" / "demo", tmp_path / "data" / "demo")
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config.yaml")
    local = planned_jobs(tmp_path, "--cores", "2")
    cluster = planned_jobs(tmp_path, "--profile", str(PROFILE))
    assert cluster == local
    assert local["ingest"] == local["models"] == 2
    assert local["pooled_datasets"] == 1


def test_simulation_study_fans_out_one_cluster_job_per_batch(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "data" / "demo", tmp_path / "data" / "demo")
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config.yaml")
    target = "results/_simulation/power.csv"
    planned = planned_jobs(tmp_path, "--profile", str(PROFILE), target)
    # the schema's default study: 5 designs x 200 replicates in batches of 50
    assert planned == {"simulation_batch": 20, "simulation_study": 1, "total": 21}
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text("simulation_study: {replicates: 1000, batch_size: 25}\n")
    more = planned_jobs(tmp_path, "--profile", str(PROFILE), target, "--configfile",
                        str(tmp_path / "config.yaml"), str(bigger))  # fmt: skip
    assert more["simulation_batch"] == 5 * 40
