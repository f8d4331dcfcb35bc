"""Shared fixtures."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from .helpers import (
    ALLIANCEANALYSIS,
    AUDITED,
    SHAPES,
    demo_workdir,
    seeded_sessions,
    shape_of,
    shapes_service,
    snakemake,
    write_config,
    write_test_key,
)

settings.register_profile(
    "default",
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[..., Path]:
    """Write text (UTF-8) or bytes to a file in a temporary folder and return its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
        return path

    return write


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The bundled configuration (two demo services) run from scratch through the front door,
    ``allianceanalysis run config.yaml --directory WORKDIR``, as a new user would; shared by
    every test that only reads its outputs, and by the test workers: the first to need it
    runs it while the others wait (a lock in the session's shared folder), instead of each
    running the whole workflow again."""
    if worker_id == "master":  # one process
        return _run_demo(tmp_path_factory.mktemp("work"))
    shared = tmp_path_factory.getbasetemp().parent  # the workers' common folder
    workdir = shared / "demo_run"
    with (shared / "demo_run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workdir / "run_output.txt").is_file():  # not run, or a worker's run failed
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir()
            _run_demo(workdir)
    return workdir


def _run_demo(workdir: Path) -> Path:
    """:func:`demo_run` in ``workdir``."""
    _, config = demo_workdir(workdir)
    done = subprocess.run([str(ALLIANCEANALYSIS), "run", config, "--directory", str(workdir)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (workdir / "run_output.txt").write_text(done.stdout)
    return workdir


@pytest.fixture(scope="session")
def stranger_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data this project did not shape for the workflow, run to the end in one Snakemake run:
    a dataset per :data:`SHAPES` (the optional columns left out). The shape ``no_condition`` is
    the demo data with distinctive IDs, free text and a date of birth the user let through
    (``allow_identifier_columns``), in ``data/sessions.csv``: the privacy audit's service."""
    workdir = tmp_path_factory.mktemp("strangers")
    (workdir / "data").mkdir()
    write_test_key(workdir)  # the intruder test knows which codes to expect
    sessions = shapes_service()
    datasets: dict[str, dict[str, str]] = {}
    for name, dropped in SHAPES.items():
        if name == AUDITED:
            seeded_sessions().to_csv(workdir / "data" / "sessions.csv", index=False)
            datasets[name] = {"path": "data/sessions.csv", "allow_identifier_columns": "[dob]"}
        else:
            shape_of(sessions, dropped).to_csv(workdir / "data" / f"{name}.csv", index=False)
            datasets[name] = {"path": f"data/{name}.csv"}
            if "therapist_id" in dropped:
                datasets[name]["columns"] = "{therapist_id: null}"
    # Few bootstrap replicates and imputations: these runs check shapes, not precision.
    config = write_config(workdir, datasets, bootstrap=200, missing_data="{m: 2}")
    done = snakemake(workdir, "--configfile", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


# Coverage-guided fuzz targets need atheris and run for minutes: `make fuzz`, not pytest.
collect_ignore = ["fuzz"]
