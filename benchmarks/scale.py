"""Benchmark: the whole workflow on a national decade (1M to 10M clients), whole and sharded.

For each tier a service is simulated block by block (1M clients per block, each block its own
seed, therapists and clients prefixed by the block: a consortium of services), written to a
CSV and a Parquet file without holding more than a block in memory. The whole workflow (every
rule from ingest to the annual report, the default settings) then runs on it
with Snakemake (2 cores): sharded by therapist (``--shards``, the file read and validated in
pieces); with ``--whole``, unsharded as well, where it fits in memory; with ``--slurm``,
sharded again through the SLURM profile on a one-node cluster started for it (as root, with
Slurm and munge installed: ``make cluster-packages``). Recorded per run: the wall time, the
peak memory of all running jobs together (sampled every 0.2 s), each job's time and peak
memory (Snakemake's benchmark files, and the kernel's high-water mark); and, for the whole and
the SLURM run, whether every output is byte-identical to the local sharded run's (logs,
provenance's creation time and the browsable report aside).

With ``--faults`` the file has a million bad rows at 10M (an out-of-range ORS) and
duplicated sessions in every shard, and only the map runs (split, validation, derivation,
merges), under ``on_invalid_rows: exclude`` (recorded: the rows read, used and excluded) and
under ``fail`` (recorded: the refusal's length, start and last line: the problem summary is
bounded, 20 kinds then counts). ``--input parquet`` reads the Parquet file instead.

Usage: ``python benchmarks/scale.py --tiers 1000000 10000000 [--shards 16] [--whole]
[--slurm] [--map-only | --faults] [--input parquet]`` (``make bench-scale``; ``make bench
BENCH_SCALE=10000000``). Needs about 1 GB of free disk per million clients.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml
from ingest import machine
from models import measured_workflow, merge

from allianceanalysis.pseudonyms import load_key
from allianceanalysis.simulate import simulate_study

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the test cluster's module
from tests.slurm import NO_ACCOUNTING, local_slurm

ROOT = Path(__file__).resolve().parents[1]
IGNORED = ("report.html", "provenance.json")
"""Outputs that record when or how a run was made, not what it found."""
BLOCK = 1_000_000
"""Clients simulated at a time (about 1.5 GB of memory)."""


def write_dataset(clients: int, folder: Path, faults: bool = False) -> tuple[Path, Path, int]:
    """A CSV and a Parquet file of ``clients`` simulated clients, about 8 sessions each, 100
    clients per therapist, 10 sites per block; and the number of rows. With ``faults``, every
    :data:`BAD_EVERY`-th session's ORS is out of range and every :data:`DUPLICATE_EVERY`-th
    session is written twice, at the end of its block (so in every shard).

    Each block spans two reporting years, a year after the block before it, the last ending
    in March 2026: about a million episodes end in each year of a decade at 10M clients, as
    in a national programme (the simulator's default dates for one block)."""
    csv, parquet = folder / "sessions.csv", folder / "sessions.parquet"
    writer_csv = writer_parquet = None
    sessions = 0
    blocks = -(-clients // BLOCK)
    for block, start in enumerate(range(0, clients, BLOCK)):
        n = min(BLOCK, clients - start)
        first = 2024 - (blocks - 1 - block)
        frame = simulate_study(n_clients=n, n_therapists=max(20, n // 100), n_sites=10,
                               planned_sessions_mean=11, seed=1 + block,
                               start_date=f"{first}-04-01",
                               end_date=f"{first + 2}-03-31").sessions  # fmt: skip
        if clients > BLOCK:
            for column in ("client_id", "therapist_id"):
                frame[column] = f"B{block}-" + frame[column]
        frame["session_date"] = frame["session_date"].dt.date
        if faults:
            frame.loc[frame.index[::BAD_EVERY], "ors"] = 99.0  # ORS is 0-40
            frame = pd.concat([frame, frame.iloc[::DUPLICATE_EVERY]], ignore_index=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if writer_csv is None:
            writer_csv = pacsv.CSVWriter(csv, table.schema)
            writer_parquet = pq.ParquetWriter(parquet, table.schema)
        writer_csv.write_table(table)
        writer_parquet.write_table(table)
        sessions += len(frame)
        del frame, table
    writer_csv.close()
    writer_parquet.close()
    return csv, parquet, sessions


MAP_TARGETS = ("results/bench/internal/validation/summary.json",
               "results/bench/internal/derived/clients.parquet")  # fmt: skip
"""The map's ends (``--map-only``): the split, each shard's validation and derivation, and
the two merges."""
BAD_EVERY = 80
"""``--faults``: one session in this many has an out-of-range ORS (a million at 10M)."""
DUPLICATE_EVERY = 8_000
"""``--faults``: one session in this many is written twice (10,000 at 10M)."""


SNAKEMAKE_AFTER = ("\nError in rule", "\nRuleException", "\nShutting down", "\nExiting because")
"""What Snakemake writes after a failed job's own message."""
FAULT_RUNS = {"faults_exclude": "exclude", "faults_fail": "fail"}
"""``--faults``'s runs of the map and their ``on_invalid_rows``."""


def fault_outcome(label: str, work: Path, failure: str) -> dict:
    """What a ``--faults`` run made of the faults: under ``exclude`` the rows read, used and
    excluded (the validation summary), under ``fail`` the refusal's length, start and last
    line (the problem summary is bounded, 20 kinds then counts), with ``failed`` empty. Any
    other end (a failure under ``exclude``, no refusal under ``fail``) stays a failure."""
    if label == "faults_fail":
        if not failure:
            return {"failed": "not refused"}
        message = failure[failure.rfind("error: dataset") :]
        ends = [message.find(m) for m in SNAKEMAKE_AFTER if m in message]
        message = message[: min(ends)] if ends else message
        return {"message_chars": len(message), "message_start": message[:200],
                "message_end": message.rstrip().splitlines()[-1][:200], "failed": ""}  # fmt: skip
    if failure:
        return {"failed": failure}
    summary = json.loads((work / "results/bench/internal/validation/summary.json").read_text())
    return {f"rows_{name}": count for name, count in summary["rows"].items()}


def run_workflow(
    data: Path, work: Path, shards: int, key: Path, targets: Sequence[str] = (),
    slurm: bool = False, on_invalid_rows: str = "fail",
) -> tuple[dict, pd.DataFrame]:  # fmt: skip
    """The whole workflow (or its ``targets``) on ``data`` in ``work`` (``shards`` 0: read
    whole) with the pseudonym key ``key``, by 2 local cores or, with ``slurm``, through the
    SLURM profile on a one-node cluster started for it (:func:`tests.slurm.local_slurm`):
    wall time, the peak of all jobs together, each job's time and peak memory."""
    work.mkdir(parents=True)
    entry: dict = {"path": str(data), "on_invalid_rows": on_invalid_rows}
    if shards:
        entry["shards"] = {"column": "therapist_id", "count": shards}
    settings = {"pseudonym_key": str(key), "datasets": {"bench": entry}}
    (work / "config.yaml").write_text(yaml.safe_dump(settings))
    if not slurm:
        summary, per_job, failure = measured_workflow(work, targets)
        return {**summary, "failed": failure}, per_job
    with local_slurm(work.with_name(f"{work.name}_cluster"), memory_mb=CLUSTER_MB):
        summary, per_job, failure = measured_workflow(
            work, targets, ("--profile", str(PROFILE), *NO_ACCOUNTING), daemons=slurm_daemons
        )
    return {**summary, "failed": failure}, per_job


PROFILE = ROOT / "workflow" / "profiles" / "slurm"
CLUSTER_MB = 20_000
"""The one-node cluster's memory: room for two jobs of the profile's largest request (7 GB)
side by side, as two local cores run them, on this 24 GB machine."""


def slurm_daemons() -> list[psutil.Process]:
    """The running job steps (``slurmstepd``, which ``slurmd`` starts apart from itself):
    their descendants are the cluster's jobs."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "slurmstepd"]


WHOLE_ONLY = ("validated/sessions.parquet", "derived/sessions.parquet", "derived/pairs.parquet")
"""The session tables only an unsharded run writes in one file (tests/test_shards.py checks
that the shards' files hold the same rows)."""


def same_outputs(left: Path, right: Path) -> list[str]:
    """The outputs of two runs that differ (logs, shards, a sharded run's imputation parts
    (``internal/missing_data/``), the browsable report and provenance's creation time and
    settings aside; Parquet files compared as tables, CSV
    tables that are not byte-identical to 1e-10 relative): an empty list when they are the
    same."""

    def files(work: Path) -> dict[str, Path]:
        found = {}
        for path in (work / "results").rglob("*"):
            relative = path.relative_to(work / "results")
            parts = {"logs", "shards", "missing_data"} & set(relative.parts)
            skipped = parts or path.name in IGNORED
            if path.is_file() and not skipped:
                found[str(relative)] = path
        return found

    def same(x: Path, y: Path) -> bool:
        if x.read_bytes() == y.read_bytes():
            return True  # Parquet: the same table (the writer's page layout may differ)
        if x.suffix == ".parquet":
            return pd.read_parquet(x).equals(pd.read_parquet(y))
        if x.suffix != ".csv":
            return False
        try:  # sums added shard by shard in another order: equal to 1e-10 relative
            pd.testing.assert_frame_equal(pd.read_csv(x), pd.read_csv(y), check_exact=False,
                                          rtol=1e-10, atol=0)  # fmt: skip
        except AssertionError:
            return False
        return True

    a, b = (
        {name: path for name, path in files(work).items() if not name.endswith(WHOLE_ONLY)}
        for work in (left, right)
    )  # a sharded run keeps its sessions in the shards' files
    differ = sorted(set(a) ^ set(b))
    differ += [name for name in sorted(set(a) & set(b)) if not same(a[name], b[name])]
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--shards", type=int, default=16, help="shards at 10M (fewer below)")
    parser.add_argument("--whole", action="store_true", help="also run unsharded, compare")
    parser.add_argument("--slurm", action="store_true",
                        help="also sharded through the SLURM profile (root), compare")  # fmt: skip
    parser.add_argument("--map-only", action="store_true",
                        help="only the map (split, shards, merges): run sharded_map")  # fmt: skip
    parser.add_argument("--faults", action="store_true",
                        help="a million bad rows and duplicated sessions in the file: the map "
                             "under on_invalid_rows exclude, then fail")  # fmt: skip
    parser.add_argument("--input", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "scale.csv"))
    args = parser.parse_args()
    stamp = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    for clients in args.tiers:
        with tempfile.TemporaryDirectory(dir=ROOT.parent) as name:
            folder = Path(name)
            start = time.perf_counter()
            csv, parquet, sessions = write_dataset(clients, folder, args.faults)
            written = {"clients": clients, "sessions": sessions,
                       "written_s": round(time.perf_counter() - start, 1),
                       "csv_mb": round(csv.stat().st_size / 2**20)}  # fmt: skip
            print(json.dumps(written), flush=True)
            data = csv if args.input == "csv" else parquet
            shards = max(1, round(args.shards * clients / 10_000_000))
            runs = {"sharded": shards, **({"whole": 0} if args.whole else {}),
                    **({"slurm": shards} if args.slurm else {})}  # fmt: skip
            if args.map_only:
                runs = {"sharded_map": shards}
            if args.faults:
                runs = {"faults_exclude": shards, "faults_fail": shards}
            rows, jobs = [], []
            key = folder / "keys" / "pseudonym.key"
            load_key(key, create=True)  # one key: the same therapist codes in both runs
            for label, count in runs.items():
                targets = MAP_TARGETS if label in ("sharded_map", *FAULT_RUNS) else ()
                summary, per_job = run_workflow(
                    data,
                    folder / label,
                    count,
                    key,
                    targets,
                    slurm=label == "slurm",
                    on_invalid_rows=FAULT_RUNS.get(label, "fail"),
                )
                if label in FAULT_RUNS:
                    summary.update(fault_outcome(label, folder / label, summary["failed"]))
                row = {"clients": clients, "sessions": sessions, "input": args.input,
                       "run": label, "shards": count, **summary}  # fmt: skip
                rows.append(row)
                jobs.append(per_job.assign(clients=clients, input=args.input, run=label))
                print(json.dumps(row), flush=True)
            for other in [r for r in rows if r["run"] in ("whole", "slurm")]:
                if not rows[0]["failed"] and not other["failed"]:
                    differ = same_outputs(folder / "sharded", folder / other["run"])
                    rows[0]["outputs_differ"] = other["outputs_differ"] = len(differ)
                    print(json.dumps({other["run"]: differ[:20]}), flush=True)
            out = Path(args.out)
            merge(pd.DataFrame(rows).assign(**stamp), out, ["clients", "input", "run"])
            table = pd.concat(jobs, ignore_index=True)
            # a run measured again replaces all its jobs' rows: a job it no longer has (a rule
            # since renamed or split) must not stay behind with the new rows
            merge(table.assign(**stamp), out.with_name("scale_jobs.csv"),
                  ["clients", "input", "run"])  # fmt: skip
            for label in ("whole", "slurm"):
                shutil.rmtree(folder / label, ignore_errors=True)


if __name__ == "__main__":
    main()
