"""The front door: run the workflow on a configuration without typing Snakemake's command line.

``allianceanalysis run CONFIG`` runs the package's Snakemake workflow (the same ``Snakefile``
``make run`` uses) in a working directory, shows one line per finished job instead of
Snakemake's job blocks, passes every error through unchanged, and ends with where the results
and reports are; then it builds the browsable report (``results/report.html``), as ``make run``
does. ``allianceanalysis report CONFIG`` rebuilds the annual reports and that report.

Examples
--------
>>> cmd = snakemake_command("config/config.yaml", cores=2, directory=".", dry_run=True)
>>> cmd[1:3], "--dry-run" in cmd
(['-m', 'snakemake'], True)
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .errors import AllianceError
from .layout import POOLED, RESULTS, internal, published

__all__ = ["SNAKEFILE", "Progress", "report_workflow", "run_workflow", "snakemake_command"]

SNAKEFILE = Path(__file__).resolve().parents[2] / "Snakefile"
"""The workflow: the repository's ``Snakefile`` beside ``src/`` (a source checkout or an
editable install, as ``make`` sets up)."""

_JOB = re.compile(r"^(?:local)?rule (?P<rule>\w+):$")
_JOBID = re.compile(r"^\s+jobid: (?P<id>\d+)$")
_WILDCARDS = re.compile(r"^\s+wildcards: (?P<wildcards>.+)$")
_FINISHED = re.compile(r"^Finished jobid: (?P<id>\d+) \(Rule: (?P<rule>\w+)\)$")
_STEPS = re.compile(r"^(?P<done>\d+) of (?P<total>\d+) steps \(.*\) done$")
_STAMP = re.compile(r"^\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$")
_HEADER = re.compile(
    r"^(SNAKEMAKE|=+|  (Date|Workflow ID|Platform|Host|User|Snakemake version|Python version|"
    r"Command|Snakefile|Base directory|Run directory|Working directory|Config file\(s\)|"
    r"Config MD5): .*|Adding .+ \([\d.]+ (bytes|KB|MB|GB)\)\.|Loading script code for rule \w+)$"
)
_NOISE = (
    "Assuming unrestricted shared filesystem usage.",
    "Building DAG of jobs...",
    "Select jobs to execute...",
    "host: ",
    "Using shell: ",
    "Provided cores: ",
    "Rules claiming more threads will be scaled down.",
    "Execute ",
    "Job stats:",
    "job ",
    "----",
    "Complete log(s): ",
    "Conda environments: ",
)


def _is_noise(text: str) -> bool:
    """Scheduling chatter: time stamps, the run's header, report assembly, blank lines."""
    return (
        bool(_STAMP.match(text) or _HEADER.match(text))
        or not text.strip()
        or (text.startswith(_NOISE))
    )


@dataclass
class Progress:
    """Reads Snakemake's log line by line and writes what a user needs: one line per finished
    job (``[3/11] derive, dataset=demo``), errors and anything unrecognised unchanged, job
    blocks and scheduling chatter left out.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress(out)
    >>> for line in ["localrule derive:", "    jobid: 2", "    wildcards: dataset=demo",
    ...              "Finished jobid: 2 (Rule: derive)", "1 of 11 steps (9%) done"]:
    ...     p.line(line)
    >>> out.getvalue()
    '[1/11] derive, dataset=demo\\n'
    """

    out: TextIO
    jobs: dict[str, str] = field(default_factory=dict)
    _rule: str = ""
    _jobid: str = ""
    _finished: str = ""
    _in_block: bool = False

    def line(self, text: str) -> None:
        """Take one line of Snakemake's output."""
        text = text.rstrip("\n")
        if match := _JOB.match(text):
            self._rule, self._in_block = match["rule"], True
        elif self._in_block and (match := _JOBID.match(text)):
            self._jobid = match["id"]
            self.jobs[self._jobid] = self._rule
        elif self._in_block and (match := _WILDCARDS.match(text)):
            self.jobs[self._jobid] = f"{self._rule}, {match['wildcards']}"
        elif self._in_block and text.startswith("    "):
            return
        elif match := _FINISHED.match(text):
            self._in_block = False
            self._finished = self.jobs.get(match["id"], match["rule"])
        elif match := _STEPS.match(text):
            self._in_block = False
            print(f"[{match['done']}/{match['total']}] {self._finished}", file=self.out)
        elif _is_noise(text):
            self._in_block = False
        elif re.match(r"^\w+\s+\d+$", text) or text.startswith("total "):
            return  # a row of the job-stats table
        else:
            self._in_block = False
            print(text, file=self.out)


def snakemake_command(
    config: str | Path,
    *,
    cores: int,
    directory: str | Path,
    dry_run: bool = False,
    targets: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> list[str]:
    """The Snakemake command line for ``config`` (run by this Python, from its environment)."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE),
               "--configfile", str(Path(config).resolve()), "--directory", str(directory),
               "--cores", str(cores), "--rerun-incomplete"]  # fmt: skip
    if dry_run:
        command.append("--dry-run")
    return [*command, *extra, *targets]


def _check(config: str | Path, directory: str | Path) -> list[str]:
    """The configured dataset names; a plain error for a missing workflow, configuration or
    working directory."""
    from .config import load_config

    if not SNAKEFILE.is_file():
        raise AllianceError(
            f"the workflow is not installed with this copy of allianceanalysis (no {SNAKEFILE}): "
            "install it from a source checkout (`pip install -e .`, as `make` does)"
        )
    if not Path(directory).is_dir():
        raise AllianceError(f"{directory}: no such working directory")
    return list(load_config(config)["datasets"])


def _snakemake(command: list[str], out: TextIO, progress: bool) -> int:
    """Run Snakemake, its output through :class:`Progress` (or unchanged); its exit status."""
    reader = Progress(out) if progress else None
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          bufsize=1) as process:  # fmt: skip
        assert process.stdout is not None
        for text in process.stdout:
            if reader is None:
                out.write(text)
            else:
                reader.line(text)
        return process.wait()


def _where(datasets: Iterable[str], directory: str | Path, out: TextIO) -> None:
    root = Path(directory).resolve()
    print("Results (published/ may be shared; internal/ stays with the service):", file=out)
    for name in datasets:
        print(f"  {name}: {root / published(name)} (tables/, figures/, annual_report/)", file=out)
        print(f"  {' ' * len(name)}  {root / internal(name)} (supervision/, derived/, logs/ …)",
              file=out)  # fmt: skip
    if (root / published(POOLED)).is_dir():
        print(f"  pooled across datasets: {root / published(POOLED)}", file=out)
    print(f"Report: {root / RESULTS / 'report.html'}", file=out)


def run_workflow(
    config: str | Path,
    *,
    cores: int = 2,
    directory: str | Path = ".",
    dry_run: bool = False,
    out: TextIO | None = None,
) -> int:
    """Run the whole workflow on ``config`` in ``directory``, then build ``results/report.html``
    (``make run``); the exit status (0 when every job finished).

    Parameters
    ----------
    config : path
        A workflow configuration (``config/config.yaml`` is the bundled demo's); its data paths
        are relative to ``directory``.
    cores : int
        Jobs run at once.
    directory : path
        The working directory: results go to ``<directory>/results/``.
    dry_run : bool
        Show what would run, and run nothing.
    out : text stream, optional
        Where progress goes (standard output by default).
    """
    out = out if out is not None else sys.stdout
    datasets = _check(config, directory)
    status = _snakemake(snakemake_command(config, cores=cores, directory=directory,
                                          dry_run=dry_run), out, progress=not dry_run)  # fmt: skip
    if status or dry_run:
        return status
    return _report_html(config, cores, directory, datasets, out)


def _report_html(
    config: str | Path, cores: int, directory: str | Path, datasets: Sequence[str], out: TextIO
) -> int:
    """Build ``results/report.html`` and say where everything is; the exit status."""
    report = ["--report", "results/report.html"]
    status = _snakemake(snakemake_command(config, cores=cores, directory=directory, extra=report),
                        out, progress=True)  # fmt: skip
    if status == 0:
        _where(datasets, directory, out)
    return status


def report_workflow(
    config: str | Path,
    *,
    cores: int = 2,
    directory: str | Path = ".",
    out: TextIO | None = None,
    datasets: Sequence[str] | None = None,
) -> int:
    """Rebuild each dataset's annual report and supervision report (rerunning what they need)
    and ``results/report.html`` (``make report``); the exit status."""
    out = out if out is not None else sys.stdout
    names = list(datasets) if datasets is not None else _check(config, directory)
    targets = [
        target
        for name in names
        for target in (published(name, "annual_report"), internal(name, "supervision"))
    ]
    status = _snakemake(snakemake_command(config, cores=cores, directory=directory,
                                          targets=targets), out, progress=True)  # fmt: skip
    if status:
        return status
    return _report_html(config, cores, directory, names, out)
