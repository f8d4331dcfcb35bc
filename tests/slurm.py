"""A real single-node SLURM cluster on this machine, for the cluster test (``make
test-cluster``): Debian's Slurm 22.05 (``slurmctld``, ``slurmd``, ``slurm-client``) and
``munge``, started as root without systemd.

:func:`local_slurm` writes a minimal ``/etc/slurm/slurm.conf`` (one node, ``proctrack/linuxproc``,
``task/none``, no cgroups, no accounting database), starts munge (unless one already answers),
``slurmctld`` and ``slurmd`` in the foreground as its own children, and waits for the node to
be idle. On leaving, by success, failure or interrupt, it cancels every job, stops each daemon
it started (SIGTERM, then SIGKILL after 10 s), kills any job step that outlived them and
removes the configuration it wrote: a ``slurm.conf`` left behind with no controller makes
every later ``snakemake`` call about 9 s slower (the SLURM plugin's ``scontrol`` retries).
The configuration must be ``/etc/slurm/slurm.conf``: a job step strips ``SLURM_CONF`` from
the environment, so a configuration anywhere else makes every job fail ("Could not establish
a configuration source"). An existing ``slurm.conf`` that this module did not write is never
touched: the cluster test then stops with a message instead.

Without ``slurmdbd``, ``sacct`` never sees a job finish; the workflow is run with
``--slurm-status-command squeue`` and ``MinJobAge`` is an hour, so ``squeue`` still knows
finished jobs when Snakemake asks.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by allianceanalysis's cluster test (tests/slurm.py); removed when it ends"
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
COMMANDS = ("slurmctld", "slurmd", "munged", "sinfo", "sbatch", "squeue", "scancel", "setpriv")
PARTITION = "debug"
NO_ACCOUNTING = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks",
                 "2")  # fmt: skip
"""Snakemake's options for this cluster, which has no slurmdbd: job states come from squeue
(docs/cluster.md)."""


class ClusterUnavailableError(RuntimeError):
    """The cluster cannot be started here (not root, packages missing, a foreign config)."""


def missing_commands() -> list[str]:
    """The daemons and client commands this machine lacks."""
    return [name for name in COMMANDS if shutil.which(name) is None]


def config_text(workdir: Path, cpus: int, memory_mb: int) -> str:
    """A one-node ``slurm.conf`` keeping its state, spool, PID and log files in ``workdir``."""
    host = socket.gethostname().split(".")[0]
    return "\n".join([
        MARKER,
        "ClusterName=allianceanalysis-test",
        f"SlurmctldHost={host}(127.0.0.1)",  # loopback only, whether or not the name resolves
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "ReturnToService=2",
        "MinJobAge=3600",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        f"StateSaveLocation={workdir / 'state'}",
        f"SlurmdSpoolDir={workdir / 'spool'}",
        f"SlurmctldPidFile={workdir / 'slurmctld.pid'}",
        f"SlurmdPidFile={workdir / 'slurmd.pid'}",
        f"SlurmctldLogFile={workdir / 'slurmctld.log'}",
        f"SlurmdLogFile={workdir / 'slurmd.log'}",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])  # fmt: skip


def _munge_answers() -> bool:
    if not MUNGE_SOCKET.exists():
        return False
    done = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
    return done.returncode == 0


def _wait(condition: Callable[[], bool], what: str, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise ClusterUnavailableError(f"{what} within {seconds:g} s\n{tail}")
        time.sleep(0.2)


def _node_idle() -> bool:
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=10)
    return done.returncode == 0 and done.stdout.strip() == "idle"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _queue() -> set[str] | None:
    """The IDs of the cluster's jobs not yet gone (None when the controller does not answer)."""
    with suppress(OSError, subprocess.SubprocessError):
        queue = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                               timeout=10)  # fmt: skip
        if queue.returncode == 0:
            return set(queue.stdout.split())
    return None


def _cancel_all_jobs() -> set[str]:
    """Cancel every job of the test cluster (SIGTERM, then SIGKILL after 10 s) and wait, at
    most 25 s, until none is left; the IDs of the jobs there were."""
    jobs = _queue() or set()
    for signal_name, seconds in (("TERM", 10), ("KILL", 15)):
        if not _queue():
            break
        with suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["scancel", "--full", f"--signal={signal_name}", "--user", "root"],
                           capture_output=True, timeout=20)  # fmt: skip
        deadline = time.monotonic() + seconds
        while _queue() and time.monotonic() < deadline:
            time.sleep(0.5)
    return jobs


def _kill_leftover_steps(jobs: set[str]) -> None:
    """Kill any job step of ``jobs`` that outlived its daemons (``slurmstepd: [<job>.<step>]``
    and everything under it)."""
    import psutil

    for process in psutil.process_iter(["name", "cmdline"]):
        words = " ".join(process.info["cmdline"] or [])
        found = re.search(r"\[(\d+)\.", words)
        if process.info["name"] == "slurmstepd" and found and found.group(1) in jobs:
            with suppress(psutil.Error):
                for member in [*process.children(recursive=True), process]:
                    member.kill()


@contextmanager
def local_slurm(workdir: Path, cpus: int = 2, memory_mb: int = 8000) -> Iterator[str]:
    """A running one-node cluster (module docstring); yields its partition's name.

    Raises
    ------
    ClusterUnavailableError
        Not root, a command missing, a ``slurm.conf`` this module did not write, or a daemon
        that did not come up.
    """
    if os.geteuid() != 0:
        raise ClusterUnavailableError("the test cluster's daemons must be started as root")
    missing = missing_commands()
    if missing:
        raise ClusterUnavailableError(
            f"missing {', '.join(missing)}: run `make test-cluster`, which installs slurmctld, "
            "slurmd, slurm-client and munge"
        )
    if CONF.exists() and MARKER not in CONF.read_text(errors="replace"):
        raise ClusterUnavailableError(
            f"{CONF} exists and was not written by this test: a real cluster's configuration "
            "is never overwritten"
        )
    for folder in ("state", "spool"):
        (workdir / folder).mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []
    try:
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(config_text(workdir, cpus, memory_mb))
        if not _munge_answers():
            MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
            shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
            with (workdir / "munged.out").open("wb") as out:
                # setpriv execs munged as the munge user (its key and seed belong to it)
                started.append(subprocess.Popen(
                    ["setpriv", "--reuid=munge", "--regid=munge", "--init-groups", "munged",
                     "--foreground"], stdout=out, stderr=subprocess.STDOUT))  # fmt: skip
            _wait(_munge_answers, "munged did not answer", 15, workdir / "munged.out")
        for daemon in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
            with (workdir / f"{daemon[0]}.out").open("wb") as out:
                started.append(subprocess.Popen(daemon, stdout=out, stderr=subprocess.STDOUT))
        _wait(_node_idle, "the node did not become idle", 30, workdir / "slurmctld.log")
        yield PARTITION
    finally:
        jobs = _cancel_all_jobs() if started else set()
        for process in reversed(started):
            _stop(process)
        _kill_leftover_steps(jobs)
        with suppress(OSError):
            if CONF.exists() and MARKER in CONF.read_text(errors="replace"):
                CONF.unlink()
