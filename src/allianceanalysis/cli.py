"""The ``allianceanalysis`` command line.

Commands
--------
``allianceanalysis validate PATH [--config FILE --dataset NAME]``
    Check a session file against the data contract; print every problem (file, row, column,
    value, rule) or a summary. Writes nothing. Exit status 0 when the file is valid, 1 when
    any problem is found (also rows that ``on_invalid_rows: exclude`` would drop), 2 for a
    usage error.
``allianceanalysis simulate OUT [--preset demo | --clients N ...] [--truth FILE]``
    Write a simulated dataset (CSV, Parquet or Excel by OUT's extension) and, optionally, its
    true parameters as JSON.
``allianceanalysis init EXPORT [--output FILE] [--dataset NAME]``
    Propose a starter configuration for a clinic's export (:mod:`allianceanalysis.starter`):
    how it is written and how its columns map onto the data contract; writes a commented
    YAML file (never over an existing one) and lists what it could not map.
``allianceanalysis instruments [--config FILE]``
    List the instrument registry (with the configuration's own instruments).
``allianceanalysis run CONFIG [--cores N] [--directory DIR] [--dry-run]``
    Run the whole workflow on CONFIG in DIR (default: here), one line per finished job, then
    build ``results/report.html``; ends with where the results and reports are.
``allianceanalysis report CONFIG [--cores N] [--directory DIR]``
    Rebuild the annual reports and ``results/report.html``.
``allianceanalysis publish CONFIG [--directory DIR] [--output PATH]``
    Bundle the publishable outputs of a finished run (``results/published.zip`` or a folder)
    after the disclosure audit (:mod:`allianceanalysis.publish`); exit status 1, and nothing
    written, when the audit finds anything.

Errors in the user's input are printed as plain sentences, never as a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import __version__
from .config import DatasetSpec, load_config
from .errors import AllianceError, DataError, format_problems
from .instruments import BUILTIN, INSTRUMENTS, instrument_table, use_instruments

__all__ = ["main", "report_user_errors", "workflow_step"]

log = logging.getLogger("allianceanalysis")


@contextmanager
def report_user_errors(
    log_file: str | Path | None = None, context: str = "", step: str = ""
) -> Iterator[None]:
    """Turn :class:`~allianceanalysis.errors.AllianceError` into a message and exit status 1.

    Used by the command line and by the workflow's scripts. When ``log_file`` is given, the
    package's log goes there too, with the error as counts and row numbers only (the values a
    data error quotes go to standard error, never to a log file); ``context`` (e.g.
    ``"dataset 'clinic'"``) starts the message. In a workflow step (``log_file`` given), any
    other exception is a bug: its traceback goes to the log and standard error gets one plain
    line naming the context, the ``step`` and the log; the step exits with status 1.
    """
    handlers: list[logging.Handler] = []
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    prefix = f"{context}: " if context else ""
    try:
        yield
    except AllianceError as exc:
        logged = exc.without_values() if isinstance(exc, DataError) else str(exc)
        log.error("%s%s", prefix, logged)
        print(f"error: {prefix}{exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as exc:
        if log_file is None:
            raise
        where = ", ".join(filter(None, [context, f"step '{step}'" if step else ""]))
        log.exception("%s: unexpected %s (a bug)", where, type(exc).__name__)
        print(f"error: {where}: the step failed with an unexpected {type(exc).__name__}, a bug "
              f"in allianceanalysis, not in your data; the traceback is in {log_file}",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(1) from None
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()


def workflow_step(job: Any, context: str | None = None) -> AbstractContextManager[None]:
    """:func:`report_user_errors` for a Snakemake job (a rule's ``snakemake`` object): its log,
    its rule as the step and, unless ``context`` says otherwise, ``dataset '<name>'`` from its
    ``dataset`` wildcard.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> job = SimpleNamespace(log=["derive.log"], rule="derive", wildcards={"dataset": "demo"})
    >>> isinstance(workflow_step(job), AbstractContextManager)
    True
    """
    if context is None:
        dataset = dict(job.wildcards.items()).get("dataset") if job.wildcards else None
        context = f"dataset '{dataset}'" if dataset else ""
    # the configuration's own instruments, as the workflow checked them (common.smk)
    use_instruments(getattr(job, "config", {}).get("instruments"))
    return report_user_errors(job.log[0], context=context, step=job.rule)


def _validate(args: argparse.Namespace) -> int:
    from .io import check_dataset

    path = Path(args.path)
    if args.config:
        config = load_config(args.config)
        use_instruments(config["instruments"])
        if args.dataset is None:
            if len(config["datasets"]) != 1:
                names = ", ".join(config["datasets"])
                print(f"error: --dataset is needed to choose one of: {names}", file=sys.stderr)
                return 2
            args.dataset = next(iter(config["datasets"]))
        spec = replace(DatasetSpec.from_config(config, args.dataset), path=path)
    else:
        spec = DatasetSpec(name=path.stem, path=path)
    unknown = [k for k in (args.outcome, args.alliance) if k and k not in INSTRUMENTS]
    if unknown:
        print(f"error: unknown instrument '{unknown[0]}'; known instruments: "
              f"{', '.join(INSTRUMENTS)}", file=sys.stderr)  # fmt: skip
        return 2
    if args.outcome or args.alliance:
        spec = replace(
            spec, outcome=args.outcome or spec.outcome, alliance=args.alliance or spec.alliance
        )
    result = check_dataset(spec)
    if len(result.problems):
        print(format_problems(str(path), result.problems, args.max_problems), file=sys.stderr)
        return 1
    s = result.summary
    opts = s["read_options"]
    read = ", ".join(f"{k} {v!r}" for k, v in opts.items())
    therapists = s["counts"]["therapists"]
    therapists = "no therapist codes" if therapists is None else f"{therapists} therapists"
    print(
        f"{path}: valid. {s['rows']['read']} rows read, {s['rows']['used']} used; "
        f"{s['counts']['clients']} clients, {therapists}."
    )
    alliance = s["alliance"]
    alliance = "none" if alliance is None else f"{alliance['name']} ({alliance['from']})"
    print(f"  outcome: {s['outcome']['name']} ({s['outcome']['from']}); alliance: {alliance}.")
    print(f"  read as {s['format']}: {read}")
    if s["columns"]["extra"]:
        print(f"  extra columns kept: {', '.join(s['columns']['extra'])}")
    for warning in s["warnings"]:
        print(f"  warning: {warning['rule']} ({warning['count']})")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from .simulate import DEMO_SEED, PRESETS, simulate_study, with_items, write_clinic_export

    changes = dict(PRESETS[args.preset]) if args.preset else {}
    for option, parameter in (
        ("clients", "n_clients"),
        ("therapists", "n_therapists"),
        ("sites", "n_sites"),
        ("feedback", "feedback"),
        ("outcome", "outcome"),
        ("alliance", "alliance"),
    ):
        value = getattr(args, option)
        if value is not None:
            changes[parameter] = value
    seed = args.seed if args.seed is not None else DEMO_SEED
    try:
        study = simulate_study(seed=seed, **changes)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sessions = with_items(study.sessions, seed) if args.items else study.sessions
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = out.suffix.lower()
    if args.clinic_export:
        write_clinic_export(study.sessions, out, seed)
    elif suffix == ".parquet":
        sessions.to_parquet(out, index=False)
    elif suffix == ".xlsx":
        sessions.to_excel(out, index=False)
    else:
        sessions.to_csv(
            out, index=False, float_format="%g", date_format="%Y-%m-%d", lineterminator="\n"
        )
    if args.truth:
        Path(args.truth).write_text(json.dumps(study.truth(), indent=2) + "\n")
    print(
        f"{out}: {len(sessions)} sessions of {study.parameters.n_clients} simulated clients "
        f"(seed {seed})"
    )
    return 0


def _instruments(args: argparse.Namespace) -> int:
    if args.config:
        use_instruments(load_config(args.config)["instruments"])
    rows = instrument_table()
    headers = list(rows[0])
    widths = [max(len(h), *(len(str(r[h])) for r in rows)) for h in headers]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(str(row[h]).ljust(w) for h, w in zip(headers, widths, strict=True)))
    return 0


def _init(args: argparse.Namespace) -> int:
    from .starter import propose

    export = Path(args.export)
    output = Path(args.output or f"{export.stem}.yaml")
    if output.exists():
        print(f"error: {output} already exists; choose another --output", file=sys.stderr)
        return 1
    proposal = propose(export)
    output.write_text(proposal.config(args.dataset, str(export)), encoding="utf-8")
    print(f"{export}: {proposal.format}, first {proposal.rows_read} rows read")
    for key, value in proposal.read.items():
        print(f"  read.{key}: {value!r}")
    for contract, column in proposal.columns.items():
        print(f"  {contract} <- {column if column is not None else '(none: declared absent)'}")
    for key, column in proposal.totals.items():
        print(f"  {key} <- {column}")
    for key, columns in proposal.items.items():
        print(f"  {key} items <- {', '.join(columns)}")
    print(f"  outcome: {proposal.outcome}; alliance: {proposal.alliance}")
    for problem in [*proposal.unmapped, *(f"looks like a direct identifier: {c}"
                                          for c in proposal.identifiers)]:  # fmt: skip
        print(f"  not mapped: {problem}")
    print(f"wrote {output}; check it, then: allianceanalysis run {output}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .run import report_workflow, run_workflow

    if args.command == "report":
        return report_workflow(args.config, cores=args.cores, directory=args.directory)
    return run_workflow(args.config, cores=args.cores, directory=args.directory,
                        dry_run=args.dry_run)  # fmt: skip


def _publish(args: argparse.Namespace) -> int:
    from .publish import publish, summary

    target, audit = publish(args.config, directory=args.directory, output=args.output)
    print(summary(target, audit), end="")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="allianceanalysis",
        description="Process-outcome analytics for psychotherapy alliance and outcome data.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser(
        "validate", help="check a session file against the data contract (writes nothing)"
    )
    validate.add_argument("path", help="CSV, Parquet or Excel file")
    validate.add_argument("--config", help="workflow config with the dataset's mapping")
    validate.add_argument("--dataset", help="dataset name in the config (its path is ignored)")
    validate.add_argument("--outcome", help="outcome instrument (a registry key)")
    validate.add_argument("--alliance", help="alliance instrument (a registry key)")
    validate.add_argument(
        "--max-problems", type=int, default=20, help="problems shown in full (default 20)"
    )
    validate.set_defaults(func=_validate)

    simulate = commands.add_parser("simulate", help="write a simulated dataset")
    simulate.add_argument("out", help="output file: .csv, .parquet or .xlsx")
    simulate.add_argument(
        "--preset", choices=["demo", "demo-clinic-b"], help="a named parameter set"
    )
    simulate.add_argument("--clients", type=int, help="number of clients")
    simulate.add_argument("--therapists", type=int, help="number of therapists")
    simulate.add_argument("--sites", type=int, help="number of sites")
    simulate.add_argument("--seed", type=int, help="random seed (default: the demo seed)")
    simulate.add_argument(
        "--feedback", choices=["none", "client", "therapist", "date"], help="feedback design"
    )
    simulate.add_argument("--outcome", choices=list(BUILTIN), help="outcome instrument")
    simulate.add_argument("--alliance", choices=list(BUILTIN), help="alliance instrument")
    simulate.add_argument(
        "--items", action="store_true", help="write item columns instead of totals"
    )
    simulate.add_argument(
        "--clinic-export",
        action="store_true",
        help="write items under a clinic's own column names, ';', decimal commas, dd/mm/yyyy",
    )
    simulate.add_argument("--truth", help="also write the true parameters to this JSON file")
    simulate.set_defaults(func=_simulate)

    init = commands.add_parser("init", help="propose a starter configuration for a clinic's export")
    init.add_argument("export", help="the export: CSV, Excel (.xlsx) or Parquet")
    init.add_argument("--output", help="the configuration to write (default: <export>.yaml)")
    init.add_argument("--dataset", default="clinic", help="the dataset's name (default clinic)")
    init.set_defaults(func=_init)

    instruments = commands.add_parser("instruments", help="list the instrument registry")
    instruments.add_argument(
        "--config", help="also list the instruments this configuration defines"
    )
    instruments.set_defaults(func=_instruments)

    front_door = {
        "run": "run the whole workflow on a configuration, then its reports",
        "report": "rebuild the annual reports and results/report.html",
    }
    for name, text in front_door.items():
        command = commands.add_parser(name, help=text)
        command.add_argument("config", help="workflow configuration (e.g. config/config.yaml)")
        command.add_argument("--cores", type=int, default=2, help="jobs at once (default 2)")
        command.add_argument(
            "--directory", default=".", help="working directory: data paths and results/ are "
            "relative to it (default: the current directory)"
        )  # fmt: skip
        if name == "run":
            command.add_argument("--dry-run", action="store_true", help="show, run nothing")
        command.set_defaults(func=_run)

    bundle = commands.add_parser(
        "publish", help="bundle the publishable outputs after a disclosure audit"
    )
    bundle.add_argument("config", help="the workflow configuration of the run")
    bundle.add_argument("--directory", default=".", help="the run's working directory")
    bundle.add_argument("--output", help="a .zip file or a folder (default results/published.zip)")
    bundle.set_defaults(func=_publish)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    with report_user_errors():
        return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
