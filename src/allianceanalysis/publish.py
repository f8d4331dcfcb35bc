"""Publishing: one bundle of the publishable outputs, written only when a disclosure audit of
everything in it finds nothing.

``allianceanalysis publish CONFIG`` collects the ``published/`` folder of every configured
dataset (and of the pooled analysis; :mod:`allianceanalysis.layout`) into one zip file or
folder. Before it writes anything it reads every file of the bundle as a reader could (a PDF's
text layer, an HTML page's text without its embedded images, SVG and CSV as text, every file's
raw bytes) and looks for what must never be published, using the internal files the bundle
leaves behind:

- **client or therapist IDs** (whole tokens, from the validated sessions);
- **session dates** (``YYYY-MM-DD`` and ``DD/MM/YYYY``);
- **small counts**: a count column of a table (:data:`COUNT_COLUMNS`, and the ``value`` of a
  count KPI) from 1 to below the configured ``suppress_below``;
- **key material**: the pseudonym key, raw, in hex or in base64;
- **recomputable therapist codes**: codes that follow the order of the IDs, or that a
  permutation seeded by any integer in the bundle (the seed in ``provenance.json`` above all)
  reproduces, as the codes of earlier versions did (:func:`~allianceanalysis.pseudonyms.
  seeded_codes`).

A finding names the file, what was found and how often, never the value. IDs too short to tell
from ordinary text (fewer than :data:`MIN_ID_LENGTH` characters, or digits only and fewer than
:data:`MIN_NUMERIC_ID_DIGITS`) cannot be searched for; the audit says how many there were.

The report's own disclosure control (:class:`~allianceanalysis.annual_report.Publisher`)
decides which counts a report shows; the audit is the second, independent line: it does not
trust the code that made the files.

Examples
--------
>>> finding = Finding("demo/published/tables/models.csv", "therapist ID", 3)
>>> str(finding)
'demo/published/tables/models.csv: 3 × therapist ID'
"""

from __future__ import annotations

import base64
import io
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import AllianceError
from .layout import INTERNAL, POOLED, PUBLISHED, RESULTS, internal, published
from .pseudonyms import load_key, seeded_positions

__all__ = [
    "COUNT_COLUMNS",
    "Audit",
    "DisclosureError",
    "Finding",
    "audit_bundle",
    "bundle_files",
    "publish",
    "published_text",
    "summary",
]

COUNT_COLUMNS = frozenset({"n", "n_obs", "count", "clients", "sessions", "events", "non_events",
                           "numerator", "denominator"})  # fmt: skip
"""Columns of published tables that count people or sessions (``n_groups``, the number of
therapists a model pools, is not a count of cases)."""
MIN_ID_LENGTH = 3
MIN_NUMERIC_ID_DIGITS = 7
"""IDs shorter than this, or of fewer digits when digits only, read as ordinary numbers and
words (``12`` clients, session ``3``): the audit cannot search for them and says so."""
_TOKEN = re.compile(r"[^\s,;\"'<>()\[\]{}|=*&]+")
_DATE = re.compile(r"(?<![\d-])(\d{4}-\d{2}-\d{2}|\d{2}/\d{2}/\d{4})(?![\d-])")
_INTEGER = re.compile(r"(?<![\d.])\d{1,18}(?![\d.])")
_IMAGE = re.compile(rb"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+")
_TEXT_SUFFIXES = {".csv", ".json", ".html", ".svg", ".md", ".tex", ".txt"}


class DisclosureError(AllianceError):
    """The disclosure audit found something in the bundle: nothing was written."""


@dataclass(frozen=True)
class Finding:
    """What the audit found in one file of the bundle (never the value itself)."""

    file: str
    kind: str
    count: int

    def __str__(self) -> str:
        return f"{self.file}: {self.count} × {self.kind}"


@dataclass
class Audit:
    """The audit of a bundle: its files, what was found, and how many IDs could not be
    searched for (too short to tell from ordinary text)."""

    files: list[str]
    findings: list[Finding] = field(default_factory=list)
    unsearchable_ids: int = 0

    @property
    def passed(self) -> bool:
        """True when nothing was found."""
        return not self.findings


@dataclass
class _Secrets:
    """What must not appear in the bundle, from one dataset's internal files."""

    dataset: str
    ids: dict[str, str]  # ID -> "client ID" / "therapist ID"
    dates: set[str]
    codes: dict[str, str]  # therapist ID -> code
    unsearchable: int = 0


def published_text(path: str | Path) -> str:
    """The text a reader can get out of a published file: a PDF's text layer, an HTML page
    without its embedded images' base64, any other text file as text; nothing for images.

    Examples
    --------
    >>> import tempfile
    >>> page = Path(tempfile.mkdtemp()) / "a.html"
    >>> _ = page.write_text('<p>T07</p><img src="data:image/png;base64,VDA3">')
    >>> published_text(page)
    '<p>T07</p><img src="">'
    """
    path = Path(path)
    if path.suffix == ".pdf":
        import pypdfium2

        document = pypdfium2.PdfDocument(path)
        try:
            return "\n".join(page.get_textpage().get_text_range() for page in document)
        finally:
            document.close()
    if path.suffix not in _TEXT_SUFFIXES:
        return ""
    return _IMAGE.sub(b"", path.read_bytes()).decode("utf-8", errors="replace")


def bundle_files(datasets: Iterable[str], directory: str | Path = ".") -> dict[str, Path]:
    """The files of the bundle: every file of each dataset's ``published/`` folder and of the
    pooled analysis's, by their name in the bundle (``<dataset>/published/…``); hidden files
    (Snakemake's timestamps, writers' temporaries) left out.

    Raises
    ------
    AllianceError
        A dataset has not been run (no published annual report or provenance).
    """
    root = Path(directory)
    folders = []
    for name in datasets:
        folder = root / published(name)
        if not (folder / "provenance.json").is_file() or not (folder / "annual_report").is_dir():
            raise AllianceError(f"dataset '{name}': {folder} is not complete; run the workflow "
                                "first (allianceanalysis run CONFIG)")  # fmt: skip
        folders.append(folder)
    if (root / published(POOLED)).is_dir():
        folders.append(root / published(POOLED))
    files = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(root / RESULTS)
            if path.is_file() and not any(p.startswith(".") for p in relative.parts):
                files[relative.as_posix()] = path
    return files


def _dataset_secrets(name: str, directory: Path) -> _Secrets:
    """IDs, session dates and codes of one dataset, from its internal files (the validated
    sessions' file, or each shard's; both when both are there, as after runs with and without
    shards: an audit looking for more IDs misses none)."""
    sessions_file = directory / internal(name, "validated", "sessions.parquet")
    shard_files = sorted(
        (directory / internal(name, "shards")).glob("*/validated/sessions.parquet")
    )
    codes_file = directory / internal(name, "derived", "therapist_codes.csv")
    for needed in (sessions_file, codes_file):
        if not needed.is_file() and not (needed == sessions_file and shard_files):
            raise AllianceError(f"dataset '{name}': the audit needs {needed} (the dataset's "
                                "internal files stay beside what is published)")  # fmt: skip
    from .shards import ShardedTable, frames

    table = ShardedTable.of([*([sessions_file] if sessions_file.is_file() else []), *shard_files])
    wanted = ("client_id", "therapist_id", "session_date")
    sessions = pd.concat(
        [frame.drop_duplicates() for frame in frames(table, wanted)], ignore_index=True
    )
    ids: dict[str, str] = {}
    unsearchable = 0
    for column, kind in (("client_id", "client ID"), ("therapist_id", "therapist ID")):
        if column not in sessions:
            continue
        values = pd.Series(pd.unique(sessions[column].astype(str)))
        digits = values.str.isdigit()
        length = values.str.len()
        searchable = (digits & (length >= MIN_NUMERIC_ID_DIGITS)) | (
            ~digits & (length >= MIN_ID_LENGTH)
        )
        ids.update(dict.fromkeys(values[searchable], kind))
        unsearchable += int((~searchable).sum())
    dates: set[str] = set()
    if "session_date" in sessions:
        days = pd.Series(pd.unique(sessions["session_date"].dropna()))
        days = pd.to_datetime(days)
        dates = set(days.dt.strftime("%Y-%m-%d")) | set(days.dt.strftime("%d/%m/%Y"))
    codes = pd.read_csv(codes_file, dtype=str, keep_default_na=False)
    return _Secrets(name, ids, dates, dict(zip(codes["therapist_id"], codes["code"], strict=True)),
                    unsearchable)  # fmt: skip


def _key_forms(key: bytes) -> list[bytes]:
    """The key as it could be written: raw, hex (either case), base64 (standard, URL-safe)."""
    return [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key),
            base64.urlsafe_b64encode(key), base64.b64encode(key).rstrip(b"=")]  # fmt: skip


def _small_counts(path: Path, suppress_below: int) -> int:
    """Cells of a published CSV's count columns from 1 to below ``suppress_below``."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    cells = [table[c] for c in table.columns if c in COUNT_COLUMNS]
    if {"value", "unit"} <= set(table.columns):  # a KPI table: the value of a count KPI
        cells.append(table.loc[table["unit"] == "count", "value"])
    small = 0
    for column in cells:
        numbers = pd.to_numeric(column, errors="coerce")
        small += int(((numbers >= 1) & (numbers < suppress_below)).sum())
    return small


def _recomputable(codes: Mapping[str, str], candidates: Iterable[int]) -> str | None:
    """How the codes could be recomputed without the key, or None: in the order of the IDs,
    or by the seeded permutation of an earlier version with one of the ``candidates``. A
    single therapist's code reveals no order."""
    if len(codes) < 2:
        return None
    ids = sorted(codes)
    positions = np.array([int(codes[t][2:]) - 1 for t in ids])
    if np.array_equal(positions, np.arange(len(ids))):
        return "therapist codes in the order of the therapist IDs"
    for seed in candidates:
        if np.array_equal(seeded_positions(len(ids), seed), positions):
            return "therapist codes recomputable from a number in the bundle (a seed)"
    return None


def audit_bundle(
    files: Mapping[str, Path],
    secrets: Iterable[_Secrets],
    *,
    key: bytes,
    suppress_below: int,
) -> Audit:
    """Read every file of the bundle and report what must not be published (module docs).

    Parameters
    ----------
    files : mapping
        Name in the bundle to file (:func:`bundle_files`).
    secrets : iterable
        Each dataset's IDs, session dates and codes (from its internal files).
    key : bytes
        The pseudonym key.
    suppress_below : int
        The suppression rule: counts from 1 to below this must not be published.
    """
    secrets = list(secrets)
    ids: dict[str, str] = {}
    for part in secrets:
        ids.update(part.ids)
    dates = set().union(*(part.dates for part in secrets)) if secrets else set()
    loose = {value: kind for value, kind in ids.items() if _TOKEN.fullmatch(value) is None}
    audit = Audit(files=list(files), unsearchable_ids=sum(p.unsearchable for p in secrets))
    integers: set[int] = set()
    forms = _key_forms(key)
    for name, path in files.items():
        found: dict[str, int] = {}
        raw = path.read_bytes()
        if any(form in raw for form in forms):
            found["pseudonym key"] = 1
        text = published_text(path)
        tokens = set(_TOKEN.findall(text))
        tokens |= {token.rstrip(".:") for token in tokens}
        for token in tokens & ids.keys():
            found[ids[token]] = found.get(ids[token], 0) + 1
        for value, kind in loose.items():
            if value in text:
                found[kind] = found.get(kind, 0) + 1
        hits = {d for d in _DATE.findall(text) if d in dates}
        if hits:
            found["session date"] = len(hits)
        if path.suffix == ".csv":
            small = _small_counts(path, suppress_below)
            if small:
                found[f"count below {suppress_below}"] = small
        integers |= {int(i) for i in _INTEGER.findall(text)}
        audit.findings += [Finding(name, kind, count) for kind, count in found.items()]
    for part in secrets:
        how = _recomputable(part.codes, sorted(integers))
        if how:
            audit.findings.append(Finding(f"{part.dataset} (codes)", how, len(part.codes)))
    return audit


def _write_zip(files: Mapping[str, Path], target: Path) -> None:
    """A zip file that depends on the files' names and contents only (fixed times, modes and
    order), written next to ``target`` and moved onto it."""
    from ._files import atomic_outputs

    with atomic_outputs(target) as (temp,), zipfile.ZipFile(temp, "w") as bundle:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, files[name].read_bytes())


def _write_folder(files: Mapping[str, Path], target: Path) -> None:
    from ._files import atomic_directory

    with atomic_directory(target) as folder:
        for name, path in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(path.read_bytes())


def publish(
    config: str | Path, *, directory: str | Path = ".", output: str | Path | None = None
) -> tuple[Path, Audit]:
    """Assemble the publishable outputs of a finished run into one bundle, after the audit.

    Parameters
    ----------
    config : path
        The workflow configuration the results were made with.
    directory : path
        The working directory of the run (its ``results/``).
    output : path, optional
        A ``.zip`` file or a folder, relative to ``directory``; default
        ``results/published.zip``.

    Returns
    -------
    tuple
        The bundle's path and its :class:`Audit`.

    Raises
    ------
    DisclosureError
        The audit found something: every finding is listed, and nothing is written.
    """
    from .config import load_config

    root = Path(directory)
    settings: dict[str, Any] = load_config(config)
    datasets = list(settings["datasets"])
    files = bundle_files(datasets, root)
    key_file = Path(settings["pseudonym_key"])
    key = load_key(key_file if key_file.is_absolute() else root / key_file)
    secrets = [_dataset_secrets(name, root) for name in datasets]
    audit = audit_bundle(files, secrets, key=key,
                         suppress_below=settings["annual_report"]["suppress_below"])  # fmt: skip
    if not audit.passed:
        lines = "\n".join(f"  {finding}" for finding in audit.findings)
        raise DisclosureError(f"the disclosure audit found {len(audit.findings)} problem(s); "
                             f"nothing was written:\n{lines}")  # fmt: skip
    target = root / (output if output is not None else Path(RESULTS) / "published.zip")
    if target.resolve().is_relative_to((root / RESULTS).resolve()) and any(
        part in (INTERNAL, PUBLISHED) for part in target.resolve().parts
    ):
        raise AllianceError(f"{target}: write the bundle outside the results' own folders")
    target.parent.mkdir(parents=True, exist_ok=True)
    (_write_zip if target.suffix == ".zip" else _write_folder)(files, target)
    return target, audit


def summary(target: Path, audit: Audit) -> str:
    """What ``allianceanalysis publish`` prints when it wrote the bundle."""
    out = io.StringIO()
    print(f"Published {len(audit.files)} files to {target}", file=out)
    print("Disclosure audit: no IDs, session dates, small counts, key material or recomputable "
          "codes found.", file=out)  # fmt: skip
    if audit.unsearchable_ids:
        print(f"Note: {audit.unsearchable_ids} IDs are too short to tell from ordinary text and "
              "were not searched for; check the bundle by eye.", file=out)  # fmt: skip
    return out.getvalue()
