"""Paths and builders shared by the tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from allianceanalysis.config import DatasetSpec
from allianceanalysis.disclosure import CountSystem
from allianceanalysis.simulate import simulate_study

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "corpus"
DEMO = ROOT / "data" / "demo" / "sessions.csv"
REFERENCE = ROOT / "tests" / "reference"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
ALLIANCEANALYSIS = Path(sys.executable).with_name("allianceanalysis")
OUTPUTS = (
    "validated/sessions.parquet",
    "validation/summary.json",
    "validation/row_accounting.csv",
    "validation/excluded_rows.csv",
)
"""The ingest outputs of a dataset, under its internal folder (``results/<dataset>/internal/``,
:func:`allianceanalysis.layout.internal`)."""


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--cores", "2", *args]  # fmt: skip


def snakemake(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Snakemake on the repository's workflow in ``workdir`` (output captured)."""
    return subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True,
                          timeout=900, env=env)  # fmt: skip


def write_config(workdir: Path, datasets: dict, **settings: object) -> Path:
    """``workdir/config.yaml`` naming ``datasets`` (name: options) and global ``settings``."""
    lines = [f"{key}: {value}" for key, value in settings.items()] + ["datasets:"]
    for name, options in datasets.items():
        lines.append(f"  {name}:")
        lines += [f"    {key}: {value}" for key, value in options.items()]
    path = workdir / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


KEY_FILE = Path("keys") / "pseudonym.key"
"""The pseudonym key's place in a working directory (the workflow's default)."""
TEST_KEY = hashlib.sha256(b"allianceanalysis: the tests' pseudonym key").digest()
"""A fixed pseudonym key, for runs whose codes a test must know in advance (never a real
service's: a key comes from the operating system's entropy, allianceanalysis.pseudonyms)."""


def write_test_key(workdir: Path) -> None:
    """Put :data:`TEST_KEY` where the workflow looks for its key, owner-only."""
    (workdir / KEY_FILE).parent.mkdir(mode=0o700)
    (workdir / KEY_FILE).write_bytes(TEST_KEY.hex().encode() + b"\n")
    (workdir / KEY_FILE).chmod(0o600)


def demo_workdir(workdir: Path, key_from: Path | None = None) -> tuple[str, str]:
    """Copy the bundled demo data and configuration into ``workdir`` (and the pseudonym key of
    the working directory ``key_from``, for a run that must give its outputs byte for byte);
    the arguments that select that configuration."""
    shutil.copytree(ROOT / "data" / "demo", workdir / "data" / "demo")
    shutil.copy(ROOT / "config" / "config.yaml", workdir / "config.yaml")
    if key_from is not None:
        (workdir / KEY_FILE).parent.mkdir(mode=0o700)
        shutil.copy(key_from / KEY_FILE, workdir / KEY_FILE)
    return "--configfile", str(workdir / "config.yaml")


def published_bytes(workdir: Path, under: str = "") -> dict[str, bytes]:
    """Every output file under ``results/`` (or ``results/<under>/``) by its path relative to
    ``results/``, except the logs (timings), Snakemake's browsable report (it records when it
    was made) and provenance's creation time."""
    files = {}
    for path in sorted((workdir / "results" / under).rglob("*")):
        relative = path.relative_to(workdir / "results")
        if path.is_dir() or "logs" in relative.parts or path.name == "report.html":
            continue
        content = path.read_bytes()
        if path.name == "provenance.json":
            record = json.loads(content)
            record.pop("created_utc")
            content = json.dumps(record, sort_keys=True).encode()
        files[str(relative)] = content
    return files


def reference_sessions(name: str) -> pd.DataFrame:
    """The validated sessions of reference data set ``tests/reference/data/<name>.csv``."""
    from allianceanalysis.io import load_dataset

    spec = DatasetSpec(name=name, path=REFERENCE / "data" / f"{name}.csv")
    return load_dataset(spec).sessions


def assert_equals_reference(
    ours: pd.DataFrame, reference_file: str, models: list[str] | None = None
) -> None:
    """Every row of an R reference file (``tests/reference/<reference_file>``), or of its
    ``models``, equals ours.

    Tolerances as the catalogue's (tests/test_models_reference.py): relative 1e-4; 1e-3 for
    variances, correlations, degrees of freedom and p-values; p-values far in the tail within
    an absolute 1e-12. Estimates near zero may also differ by 1e-4 of the reference's standard
    error (two fits at the optimum to ~1e-10 in the log-likelihood still differ there in the
    8th decimal), and interval ends, ``estimate ± 1.96 SE``, by 3e-4 of it.
    """
    reference = pd.read_csv(REFERENCE / reference_file)
    if models is not None:
        reference = reference[reference["model"].isin(models)]
    merged = reference.merge(ours, on=["model", "term"], suffixes=("_r", ""), how="left")
    assert merged["estimate"].notna().all(), "a reference row has no counterpart"
    for column in ("estimate", "std_error", "ci_low", "ci_high", "df", "p_value"):
        present = merged[merged[f"{column}_r"].notna()]
        loose = present["term"].str.match("var_|cor_") | (column in ("df", "p_value"))
        rtol = np.where(loose, 1e-3, 1e-4)
        atol = 1e-12
        if column in ("estimate", "ci_low", "ci_high"):
            share = 1e-4 if column == "estimate" else 3e-4
            atol = np.fmax(share * present["std_error_r"].fillna(0.0).to_numpy(), 1e-12)
        expected = present[f"{column}_r"].to_numpy()
        error = np.abs(present[column].to_numpy() - expected)
        wrong = ~(error <= atol + rtol * np.abs(expected))
        shown = present.loc[wrong, ["model", "term", column, f"{column}_r"]]
        assert not wrong.any(), (column, shown.values.tolist())


def spec_for(path: Path, **options: object) -> DatasetSpec:
    """A dataset spec for ``path`` (canonical format unless options say otherwise)."""
    return DatasetSpec.from_mapping("test", {"path": str(path), **options})


# Simulator settings under which simple estimators are unbiased for each mechanism: no ceiling,
# no formation trend, no ruptures, no missing ratings, no dropout, eight sessions each.
CLEAN = dict(
    alliance_mean=20.0,
    alliance_growth=0.0,
    improvement_to_alliance=0.0,
    alliance_ar=0.0,
    rupture_rate=0.0,
    missing_alliance=0.0,
    missing_outcome=0.0,
    dropout_base=1e-12,
    dropout_alliance=0.0,
    planned_sessions_mean=8,
    planned_sessions_size=None,
    max_sessions=8,
    caseload_shape=1e6,
    start_date="2000-01-01",
    end_date="2030-12-31",
)
UNBOUNDED_OUTCOME = dict(
    intake_mean=20.0, intake_sd=4.0, gain_mean=3.0, gain_sd_client=2.0, change_sessions=1e-9
)  # outcomes stay far from 0 and 40, and all change happens by session 2
ROUNDING_VAR = 0.1**2 / 12  # variance added by recording scores to one decimal


def complete(sessions: pd.DataFrame, n: int = 8) -> pd.DataFrame:
    """Sessions of clients who attended all ``n`` sessions (the rest were cut by the data
    extraction date, which is unrelated to any score)."""
    counts = sessions.groupby("client_id")["session"].transform("size")
    return sessions[counts == n].sort_values(["client_id", "session"], kind="stable")


def within(frame: pd.DataFrame, column: str, by: str = "client_id") -> pd.Series:
    """Deviation of ``column`` from its mean within ``by``."""
    return frame[column] - frame.groupby(by)[column].transform("mean")


def worked_out(system: CountSystem) -> set:
    """Every cell of a solved :class:`CountSystem` a reader can know: the published ones and
    any that follow from them by subtraction (an equation with one unknown), repeatedly. Written
    independently of the solver, to check it."""
    known = {key for key in system.values if system.visible(key)}
    changed = True
    while changed:
        changed = False
        for total, members in system.equations:
            unknown = [c for c in (total, *members) if c not in known]
            if len(unknown) == 1:
                known.add(unknown[0])
                changed = True
    return known


def assert_nothing_small_can_be_worked_out(system: CountSystem, context: object = "") -> None:
    """No cell a reader can know, and no sum of unknown members of an equation whose total is
    known, is a count in the suppressed range."""
    known = worked_out(system)
    small = system.policy.is_small
    for key in known:
        assert not small(system.values[key]), (context, key, system.values[key])
    for total, members in system.equations:
        if total in known:
            rest = sum(system.values[m] for m in members if m not in known)
            assert not small(rest), (context, total, members)


OPTIONAL = ("site_id", "session_date", "episode_id", "end_status", "condition")
"""The optional columns of the data contract (docs/data-format.md)."""
SHAPES = {
    f"no_{column}": (column,) for column in OPTIONAL if column not in ("episode_id", "session_date")
} | {"required_only": (*OPTIONAL, "therapist_id")}
"""A dataset without each optional column, and one with only what is required: client,
session and the two scores, without therapist codes either (declared absent,
``columns: {therapist_id: null}``). Two absences have no shape of their own, which would add a
dataset's run to the suite's longest setup and no code path: data without ``episode_id`` are
run as ``required_only``, as the audited service (``no_condition``) and as the bundled demo
(every workflow test); data without ``session_date`` as ``required_only`` and as the public
study (tests/test_public_study.py)."""
AUDITED = "no_condition"
"""The shape whose data are the privacy audit's seeded service (:func:`seeded_sessions`)."""


def shapes_service() -> pd.DataFrame:
    """A small service with every optional column: two sites, dated sessions in one reporting
    year, endings, feedback by client, and a second episode for every fifth client."""
    sessions = simulate_study(n_clients=100, n_therapists=8, n_sites=2, feedback="client",
                              start_date="2024-04-01", end_date="2025-03-31",
                              seed=16).sessions  # fmt: skip
    number = sessions["client_id"].str[1:].astype(int)
    second = (number % 5 == 0) & (sessions["session"] > 4)
    sessions["episode_id"] = second.map({True: "E2", False: "E1"})
    sessions["session"] = sessions["session"].where(~second, sessions["session"] - 4)
    return sessions


def shape_of(sessions: pd.DataFrame, dropped: tuple[str, ...]) -> pd.DataFrame:
    """``sessions`` without the ``dropped`` columns; without episode codes a client's second
    episode is recorded under an ID of its own, as such a service would."""
    shape = sessions.copy()
    if "episode_id" in dropped:
        second = shape["episode_id"] == "E2"
        shape["client_id"] = shape["client_id"].where(~second, shape["client_id"] + "-2")
    return shape.drop(columns=list(dropped))


def seeded_sessions() -> pd.DataFrame:
    """The demo data with distinctive client and therapist IDs (allowed columns: pseudonymous
    in the contract, yet what a service must not publish), a free-text column and a date of
    birth. It holds every optional column but ``condition`` (the demo services did not vary
    feedback), so it is also the shape ``no_condition`` of :data:`SHAPES`."""
    sessions = pd.read_csv(DEMO, dtype=str)

    def token(prefix: str, value: str) -> str:
        return prefix + hashlib.sha256(value.encode()).hexdigest()[:10].upper()

    sessions["client_id"] = sessions["client_id"].map(lambda v: token("CLIENTQZ", v))
    sessions["therapist_id"] = sessions["therapist_id"].map(lambda v: token("Dr_THERAPISTQZ", v))
    sessions["remarks"] = sessions["client_id"].map(lambda v: "felt low after " + token("FTQZ", v))
    born = pd.Timestamp("1940-01-01") + pd.to_timedelta(sessions.index % 9000, unit="D")
    sessions["dob"] = born.strftime("%Y-%m-%d")
    sessions["episode_id"] = "1"
    return sessions
