"""Benchmark: simulating and ingesting session data, against plain CSV readers as peers.

Each step runs in a fresh process so that its peak memory (max RSS) is its own. Steps:

- ``simulate``: :func:`allianceanalysis.simulate.simulate_study` for the tier's clients (then,
  untimed, written to the CSV the other steps read);
- ``pandas.read_csv``: pandas' C reader on the same CSV (a peer: reading, nothing checked);
- ``pyarrow.csv``: pyarrow's multi-threaded reader (the peer our reader is built on);
- ``check_dataset``: our read + map + validate (pandera) + privacy scan + row accounting.

Usage: ``python benchmarks/ingest.py [--tiers 125000 ...] [--out benchmarks/results/ingest.csv]``
(``make bench-ingest``). Tiers are numbers of clients; sessions are about 6.3 per client.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

STEPS = {
    "simulate": (
        "from allianceanalysis.simulate import simulate_study\n"
        "s = simulate_study(n_clients={clients}, n_therapists=max(20, {clients} // 100),"
        " n_sites=10, seed=1).sessions\n"
        "rows = len(s)\n"
    ),
    "pandas.read_csv": "import pandas as pd\nrows = len(pd.read_csv(r'{csv}'))\n",
    "pyarrow.csv": "import pyarrow.csv as c\nrows = c.read_csv(r'{csv}').num_rows\n",
    "check_dataset": (
        "from pathlib import Path\n"
        "from allianceanalysis.config import DatasetSpec\n"
        "from allianceanalysis.io import check_dataset\n"
        "rows = check_dataset(DatasetSpec(name='b', path=Path(r'{csv}'))).summary['rows']['used']\n"
    ),
}
WRITE_CSV = "s.to_csv(r'{csv}', index=False, float_format='%g', date_format='%Y-%m-%d')\n"
TIMED = (
    "import resource, time, json\n"
    "t0 = time.perf_counter()\n"
    "{body}"
    "elapsed = time.perf_counter() - t0\n"
    "{after}"
    "print(json.dumps({{'seconds': elapsed, 'rows': rows,"
    " 'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))\n"
)


def run_step(step: str, clients: int, csv: Path) -> dict:
    body = STEPS[step].format(clients=clients, csv=csv)
    after = WRITE_CSV.format(csv=csv) if step == "simulate" else ""
    done = subprocess.run(
        [sys.executable, "-c", TIMED.format(body=body, after=after)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiers", type=int, nargs="+", default=[16_000, 160_000])
    parser.add_argument("--out", default="benchmarks/results/ingest.csv")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for clients in args.tiers:
            csv = Path(folder) / f"sessions_{clients}.csv"
            for step in STEPS:
                result = run_step(step, clients, csv)
                rows.append({"clients": clients, "step": step, **result})
                print(
                    f"{clients:>9} clients  {step:<16} {result['seconds']:8.2f} s  "
                    f"{result['peak_mb']:8.0f} MB  {result['rows']} rows",
                    flush=True,
                )
    table = pd.DataFrame(rows)
    peer = table[table["step"] == "pandas.read_csv"].set_index("clients")["seconds"]
    table["ratio_to_pandas_read_csv"] = table["seconds"] / table["clients"].map(peer)
    table["machine"] = machine()
    table["date"] = time.strftime("%Y-%m-%d")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.3f")
    print(table.drop(columns=["machine", "date"]).to_string(index=False))


if __name__ == "__main__":
    main()
