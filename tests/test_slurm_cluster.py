"""The workflow through a real SLURM cluster: the bundled profile, a one-node cluster on this
machine (tests/slurm.py), every job a SLURM job, and every output equal to a local run's.

Marked ``cluster``: ``make test-cluster`` installs the Debian packages when missing, runs these
tests and checks afterwards that no daemon and no configuration is left; ``.ci/run`` runs it
after the default suite. The small configuration (both demo services, 200 bootstrap replicates,
two imputations, a two-batch simulation study) keeps the run to a few minutes: each SLURM job
starts Snakemake twice (the batch job, then its ``srun`` step).
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .helpers import ROOT, SNAKEMAKE, published_bytes, write_test_key
from .slurm import NO_ACCOUNTING, ClusterUnavailableError, local_slurm

pytestmark = pytest.mark.cluster

PROFILE = ROOT / "workflow" / "profiles" / "slurm"
SIMULATION = "results/_simulation/power.csv"
SMALL = {
    "bootstrap": 200,
    "missing_data": {"m": 2, "tipping_shifts": None},
    "simulation_study": {"designs": [{"n_clients": 120, "n_therapists": 12}], "replicates": 4,
                         "batch_size": 2},
}  # fmt: skip
"""The bundled configuration (both demo services) with few bootstrap replicates and
imputations, and a simulation study of two batches."""


@dataclass
class Run:
    workdir: Path
    seconds: float
    log: str


def small_workdir(workdir: Path) -> Path:
    """The demo data, the small configuration and the tests' pseudonym key in ``workdir``."""
    (workdir / "data" / "demo").mkdir(parents=True)
    for name in ("sessions.csv", "clinic_b.csv"):
        (workdir / "data" / "demo" / name).write_bytes((ROOT / "data" / "demo" / name).read_bytes())
    write_test_key(workdir)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text()) | SMALL
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def run_workflow(workdir: Path, *executor: str) -> Run:
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(workdir / "config.yaml"), *executor,
               "all", SIMULATION]  # fmt: skip
    start = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-4000:]
    return Run(workdir, seconds, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def partition(tmp_path_factory: pytest.TempPathFactory):
    try:
        with local_slurm(tmp_path_factory.mktemp("slurm")) as name:
            yield name
    except ClusterUnavailableError as exc:
        pytest.fail(f"no test cluster: {exc}")


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_workflow(small_workdir(tmp_path_factory.mktemp("local")), "--cores", "2")


@pytest.fixture(scope="module")
def cluster(partition: str, tmp_path_factory: pytest.TempPathFactory, local: Run) -> Run:
    run = run_workflow(small_workdir(tmp_path_factory.mktemp("cluster")), "--profile",
                       str(PROFILE), *NO_ACCOUNTING)  # fmt: skip
    jobs = len(submitted(run.log))
    print(f"\nlocal {local.seconds:.1f} s, SLURM {run.seconds:.1f} s for {jobs} jobs: "
          f"{(run.seconds - local.seconds) / jobs:.1f} s more per job")  # fmt: skip
    return run


def finished(log: str) -> dict[str, str]:
    """The rule of each job the run finished, by Snakemake's job ID."""
    return dict(re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", log))


def submitted(log: str) -> list[str]:
    """The rule of each job the run submitted to SLURM."""
    rules = finished(log)
    return [rules[job] for job in re.findall(r"Job (\d+) has been submitted with SLURM jobid", log)]


def test_every_job_but_the_final_target_runs_as_a_slurm_job(cluster: Run, local: Run) -> None:
    jobs = [rule for rule in finished(local.log).values() if rule != "all"]
    assert len(jobs) > 20
    assert sorted(submitted(cluster.log)) == sorted(jobs)
    assert "all" in finished(cluster.log).values()


def test_the_slurm_run_gives_the_local_run_s_outputs_byte_for_byte(
    cluster: Run, local: Run
) -> None:
    """Tables, data, figures and reports under results/ (logs, the provenance record's
    creation time and Snakemake's browsable report aside)."""
    ours, theirs = published_bytes(cluster.workdir), published_bytes(local.workdir)
    assert sorted(ours) == sorted(theirs)
    assert len(ours) > 300
    assert [name for name in ours if ours[name] != theirs[name]] == []


def test_the_simulation_study_fans_out_one_slurm_job_per_batch(cluster: Run) -> None:
    rules = submitted(cluster.log)
    assert rules.count("simulation_batch") == 2
    assert rules.count("simulation_study") == 1
    assert (cluster.workdir / SIMULATION).stat().st_size > 0
