"""Benchmark: faults of scale in input files, ours against pandas.read_csv in the same run.

Each fault is a file written here; each reader runs on it in a fresh process, so that its peak
memory (max RSS) is its own:

- ``file_5gb``: 5 GiB of valid session rows (about 115 million; written to disk, not sparse).
  Ours refuses it before reading (``read.max_file_mb``, 2048 MiB by default). The peer is
  pyarrow's streaming CSV reader counting the rows in bounded memory: reading it whole
  (pandas) would take about 50 GB;
- ``bad_rows_1m``: a million rows, every one with an alliance score that is not a number;
- ``duplicated_rows``: 300,000 sessions, each written twice;
- ``cells_10mb``: 200 rows of which 50 hold a 10 MiB string in an extra column (500 MiB);
- ``unclosed_quote``: a 45 MB file whose sixth row opens a quote that never closes.

For ours the outcome is the number of problems and the first rule (a clean
:class:`~allianceanalysis.errors.DataError` or row-level problems); for the peer, the rows it
read or the exception it raised. Usage: ``python benchmarks/input_faults.py [--out ...]``
(``make bench-faults``; needs about 6 GB of free disk in the temporary folder).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from ingest import machine

from allianceanalysis.simulate import simulate_study

READERS = {
    "check_dataset": (
        "from allianceanalysis.config import DatasetSpec\n"
        "from allianceanalysis.errors import DataError\n"
        "from allianceanalysis.io import check_dataset\n"
        "try:\n"
        "    r = check_dataset(DatasetSpec.from_mapping('b', {{'path': r'{path}'}}))\n"
        "    problems = r.problems\n"
        "except DataError as e:\n"
        "    problems = e.problems\n"
        "rule = problems['rule'].iloc[0] if len(problems) else ''\n"
        "outcome = f'{{len(problems)}} problems: {{rule[:60]}}'\n"
    ),
    "pandas.read_csv": (
        "import pandas as pd\n"
        "try:\n"
        "    outcome = f'{{len(pd.read_csv(r\"{path}\"))}} rows read'\n"
        "except Exception as e:\n"
        "    outcome = f'{{type(e).__name__}}: {{str(e)[:60]}}'\n"
    ),
    "pyarrow.csv.open_csv": (
        "import pyarrow.csv as c\n"
        "outcome = f'{{sum(b.num_rows for b in c.open_csv(r\"{path}\"))}} rows streamed'\n"
    ),
}
PEERS = {"file_5gb": "pyarrow.csv.open_csv"}
# Peak memory is the process's own high-water mark (VmHWM): ru_maxrss would carry over the
# benchmark's own peak, which a child inherits across fork and exec.
TIMED = (
    "import json, re, time\n"
    "t0 = time.perf_counter()\n"
    "{body}"
    "seconds = time.perf_counter() - t0\n"
    "status = open('/proc/self/status').read()\n"
    "peak = int(re.search(r'VmHWM:\\s+(\\d+)', status).group(1)) / 1024\n"
    "print(json.dumps({{'seconds': seconds, 'outcome': outcome, 'peak_mb': peak}}))\n"
)


def write_faults(folder: Path) -> dict[str, Path]:
    """Write the fault files; returns fault name -> path."""
    sessions = simulate_study(n_clients=160_000, n_therapists=1_600, n_sites=10, seed=1).sessions
    text = sessions.to_csv(index=False, float_format="%g", date_format="%Y-%m-%d")
    header, body = text.split("\n", 1)
    names = ("file_5gb", "bad_rows_1m", "duplicated_rows", "cells_10mb")
    paths = {name: folder / f"{name}.csv" for name in names}
    with paths["file_5gb"].open("w") as handle:
        handle.write(header + "\n")
        while handle.tell() < 5 << 30:
            handle.write(body)
    bad = sessions.assign(srs="x")
    bad.to_csv(paths["bad_rows_1m"], index=False, float_format="%g", date_format="%Y-%m-%d")
    twice = pd.concat([sessions.head(300_000)] * 2)
    twice.to_csv(paths["duplicated_rows"], index=False, float_format="%g", date_format="%Y-%m-%d")
    cells = sessions.head(200).assign(extra="")
    cells.loc[cells.index[:50], "extra"] = "a" * (10 << 20)
    cells.to_csv(paths["cells_10mb"], index=False, float_format="%g", date_format="%Y-%m-%d")
    lines = body.splitlines()
    paths["unclosed_quote"] = folder / "unclosed_quote.csv"
    paths["unclosed_quote"].write_text(
        "\n".join([header, *lines[:4], lines[4].replace(",", ',"', 1), *lines[5:1_800_000]])
    )
    return paths


def run_reader(reader: str, path: Path) -> dict:
    body = READERS[reader].format(path=path)
    done = subprocess.run(
        [sys.executable, "-c", TIMED.format(body=body)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/input_faults.csv")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for fault, path in write_faults(Path(folder)).items():
            for reader in ("check_dataset", PEERS.get(fault, "pandas.read_csv")):
                result = run_reader(reader, path)
                rows.append(
                    {"fault": fault, "file_mb": path.stat().st_size / 2**20, "reader": reader}
                    | result
                )
                print(
                    f"{fault:<15} {reader:<21} {result['seconds']:8.2f} s "
                    f"{result['peak_mb']:8.0f} MB  {result['outcome']}",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    peer = table[table["reader"] != "check_dataset"].set_index("fault")
    table["time_ratio_to_peer"] = table["seconds"] / table["fault"].map(peer["seconds"])
    table["memory_ratio_to_peer"] = table["peak_mb"] / table["fault"].map(peer["peak_mb"])
    table["machine"] = machine()
    table["date"] = time.strftime("%Y-%m-%d")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.3f")
    print(table.drop(columns=["machine", "date", "outcome"]).to_string(index=False))


if __name__ == "__main__":
    main()
