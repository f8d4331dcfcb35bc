"""A starter configuration from a clinic's export: ``allianceanalysis init EXPORT``.

:func:`propose` reads the head of an export (CSV, Excel or Parquet; never more than
:data:`SAMPLE_ROWS` rows or :data:`~allianceanalysis.io.read.SAMPLE_BYTES` of text, so a large
file costs no more than a small one), detects how it is written (delimiter, decimal mark,
encoding, date format), and proposes how its columns map onto the session data contract:
identifiers, session number and date, end status with its labels, and the total or item columns
of the instruments in the registry under their usual spellings ("ORS Individually",
``ors_1``, "Item 1 - Individually", "PHQ-9 item 3", "SRS total" ...). :meth:`Proposal.config`
writes it as a commented YAML configuration, listing plainly what could not be mapped.

Examples
--------
>>> proposal = propose(Path("data/demo/clinic_b.csv"))
>>> proposal.columns["therapist_id"], proposal.read["sep"], proposal.outcome
('Clinician', ';', 'ors')
>>> sorted(proposal.recode["end_status"].items())
[('Completed', 'planned'), ('Did not return', 'dropout'), ('Open', 'ongoing')]
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

from .config import DEFAULT_NA_VALUES
from .errors import DataError
from .instruments import INSTRUMENTS, Instrument
from .io.privacy import identifier_name_reason
from .io.read import SAMPLE_BYTES, detect_delimiter, detect_encoding, detect_format
from .io.validate import as_text, choose_date_format, detect_decimal

__all__ = ["SAMPLE_ROWS", "Proposal", "propose"]

SAMPLE_ROWS = 2000
"""Rows read from the head of an export to propose its mapping."""

CONTRACT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "client_id": ("clientid", "client", "clientcode", "clientno", "clientnumber", "patientid",
                  "patient", "patientcode", "participant", "participantid", "subject",
                  "subjectid", "caseid", "case", "person", "personid", "id", "pseudonym"),
    "therapist_id": ("therapistid", "therapist", "therapistcode", "clinician", "clinicianid",
                     "counsellor", "counselor", "practitioner", "practitionerid", "provider",
                     "providerid", "staff", "staffid", "worker", "workerid", "psychologist"),
    "session": ("session", "sessionno", "sessionnumber", "sessionnr", "sessionid",
                "appointmentno", "appointmentnumber", "visit", "visitno", "visitnumber",
                "contact", "contactno", "contactnumber", "time", "timepoint", "wave",
                "occasion", "measurement"),
    "session_date": ("sessiondate", "date", "appointmentdate", "visitdate", "contactdate",
                     "dateofsession", "dateofappointment"),
    "site_id": ("siteid", "site", "service", "serviceid", "clinic", "clinicid", "team",
                "location", "centre", "center", "practice"),
    "episode_id": ("episodeid", "episode", "referral", "referralid", "episodeofcare",
                   "course", "treatmentepisode"),
    "end_status": ("endstatus", "discharge", "dischargereason", "dischargestatus", "ending",
                   "endingtype", "endreason", "closure", "closurereason", "status",
                   "episodestatus", "outcomeofepisode"),
    "condition": ("condition", "feedback", "feedbackcondition", "arm", "feedbackarm"),
}  # fmt: skip
"""How exports name the contract's columns (compared with letters and digits only)."""

END_LABELS: dict[str, tuple[str, ...]] = {
    "planned": ("planned", "completed", "complete", "finished", "discharged", "agreed",
                "endedasplanned", "treatmentcompleted", "mutual", "goalsmet", "recovered"),
    "dropout": ("dropout", "droppedout", "didnotreturn", "dna", "didnotattend", "unplanned",
                "disengaged", "lost", "losttofollowup", "selfdischarged", "noshow",
                "withdrew", "withdrawn"),
    "ongoing": ("ongoing", "open", "active", "current", "intreatment", "inprogress"),
}  # fmt: skip
"""End-status labels recognised (letters and digits only, lower case) for ``recode``."""


def _compact(text: str) -> str:
    """Lower case, letters and digits only: ``"Session No."`` -> ``"sessionno"``."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


@dataclass
class Proposal:
    """A proposed configuration for one export.

    Attributes
    ----------
    path : Path
    format : str
        ``csv``, ``excel`` or ``parquet``.
    read : dict
        Read options that differ from the defaults (``sep``, ``decimal``, ``encoding``,
        ``date_format``).
    columns : dict
        Contract column -> the export's column (``therapist_id`` None when there is none).
    items : dict
        Instrument key -> its item columns in form order.
    totals : dict
        Instrument key -> the export's total column (mapped under ``columns``).
    recode : dict
        ``end_status`` -> {label: contract value} for the labels recognised.
    outcome, alliance : str or None
        The instruments proposed as outcome and alliance (the first of each construct found).
    unmapped : list of str
        What could not be mapped, in plain words (columns, labels, incomplete item sets).
    identifiers : list of str
        Columns whose names suggest direct identifiers (to remove before any run).
    rows_read : int
        Rows of the head that were read.
    """

    path: Path
    format: str
    read: dict[str, str] = field(default_factory=dict)
    columns: dict[str, str | None] = field(default_factory=dict)
    items: dict[str, list[str]] = field(default_factory=dict)
    totals: dict[str, str] = field(default_factory=dict)
    recode: dict[str, dict[str, str]] = field(default_factory=dict)
    outcome: str | None = None
    alliance: str | None = None
    unmapped: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    rows_read: int = 0

    def config(self, dataset: str = "clinic", path: str | None = None) -> str:
        """The proposal as a commented YAML configuration (docs/data-format.md).

        Parameters
        ----------
        dataset : str
            The dataset's name (its results folder).
        path : str, optional
            The export's path as the configuration should give it (default: as given).
        """
        entry: dict[str, object] = {"path": path or str(self.path)}
        if self.read:
            entry["read"] = dict(self.read)
        columns = {k: v for k, v in self.columns.items() if v is not None and v != k}
        columns.update({k: v for k, v in self.totals.items() if v != k})
        if self.columns.get("therapist_id", "") is None:
            columns["therapist_id"] = None
        if columns:
            entry["columns"] = columns
        items = {k: v for k, v in self.items.items() if v != list(INSTRUMENTS[k].item_columns)}
        if items:
            entry["items"] = items
        if self.recode:
            entry["recode"] = self.recode
        body = yaml.safe_dump(
            {"outcome": self.outcome, "alliance": self.alliance,
             "datasets": {dataset: entry}},
            sort_keys=False, allow_unicode=True, width=100,
        )  # fmt: skip
        lines = [
            f"# Starter configuration for {self.path.name}, proposed by `allianceanalysis init`",
            f"# from its first {self.rows_read} rows. Check every mapping below before a run:",
            "# docs/data-format.md explains each key, docs/instruments.md the instruments.",
            "# Run with: allianceanalysis run <this file>",
            "#",
        ]
        if self.outcome is None:
            lines.append("# No outcome measure was recognised: set `outcome:` and map its column.")
        if self.alliance is None:
            lines.append("# No alliance measure was recognised: `alliance: null` runs the "
                         "outcome analyses only.")  # fmt: skip
        if self.columns.get("therapist_id", "") is None:
            lines.append("# No therapist column was recognised: `therapist_id: null` declares "
                         "the data have no therapist codes.")  # fmt: skip
        if self.identifiers:
            lines.append("# Columns that look like direct identifiers (remove them from the "
                         "export): " + ", ".join(self.identifiers))  # fmt: skip
        if self.unmapped:
            lines.append("# Not mapped (kept as extra columns unless they block a run):")
            lines += [f"#   - {problem}" for problem in self.unmapped]
        return "\n".join(lines) + "\n" + body


def _head(path: Path) -> tuple[pd.DataFrame, dict[str, str], str]:
    """The head of the export as text cells, the read options detected, and its format."""
    kind = detect_format(path)
    if kind == "legacy-excel":
        raise DataError.single(str(path), "this is an old-style Excel .xls file; save it as "
                               ".xlsx or CSV")  # fmt: skip
    if kind == "parquet":
        batch = next(pq.ParquetFile(path).iter_batches(batch_size=SAMPLE_ROWS), None)
        frame = batch.to_pandas() if batch is not None else pd.DataFrame()
        return frame, {}, kind
    if kind == "excel":
        return pd.read_excel(path, nrows=SAMPLE_ROWS, dtype=object), {}, kind
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if not sample:
        raise DataError.single(str(path), "the file is empty")
    whole = len(sample) < SAMPLE_BYTES
    encoding = detect_encoding(sample, whole_file=whole)
    text = sample.decode(encoding, errors="replace")
    if not whole:
        text = text[: text.rfind("\n") + 1]  # the last line may be cut short
    text = text.lstrip("\ufeff")
    sep = detect_delimiter(text.split("\n", 1)[0])
    frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, nrows=SAMPLE_ROWS,
                        keep_default_na=False, skipinitialspace=True)  # fmt: skip
    read = {"sep": sep} if sep != "," else {}
    if encoding not in ("utf-8",):
        read["encoding"] = encoding
    return frame, read, kind


def _aliases(inst: Instrument) -> list[str]:
    """Compact spellings of an instrument's name in column headers, longest first."""
    names = {_compact(inst.key), _compact(inst.short)}
    names |= {n.replace("ii", "2") for n in names if n.endswith("ii")}
    return sorted(names, key=len, reverse=True)


def _item_index(rest: str, inst: Instrument) -> int | None:
    """Which item a header's remainder (after the instrument's name) names, if any."""
    rest = re.sub(r"^(item|question|q|i)(?=\d)", "", rest)
    if rest.isdigit() and 1 <= int(rest) <= len(inst.items):
        return int(rest) - 1
    for position, item in enumerate(inst.items):
        if rest and _compact(item) in (rest, re.sub(r"^\d+", "", rest)):
            return position
    return None


def _instrument_columns(headers: list[str], proposal: Proposal, taken: set[str]) -> None:
    """Totals and complete item sets of the registry's instruments among ``headers``."""
    for key, inst in INSTRUMENTS.items():
        found: dict[int, str] = {}
        for header in headers:
            if header in taken:
                continue
            compact = _compact(header)
            alias = next((a for a in _aliases(inst) if compact.startswith(a)), None)
            if alias is None:
                # "Item 1 - Individually": an item named in words, without the scale's name
                words = _compact(re.sub(r"(?i)^\s*item\s*\d+\W*", "", header))
                named = [i for i, item in enumerate(inst.items) if _compact(item) == words]
                if named and compact.startswith("item") and len(inst.items) > 0:
                    found.setdefault(named[0], header)
                continue
            rest = compact[len(alias) :]
            if rest in ("", "total", "score", "sum", "totalscore"):
                proposal.totals.setdefault(key, header)
                continue
            index = _item_index(rest, inst) if inst.sums_items else None
            if index is not None:
                found.setdefault(index, header)
        if inst.sums_items and len(found) == inst.item_count:
            proposal.items[key] = [found[i] for i in range(inst.item_count)]
        elif found and key not in proposal.totals:
            missing = inst.item_count - len(found)
            proposal.unmapped.append(
                f"{len(found)} of the {inst.item_count} {inst.short} item columns "
                f"({', '.join(found.values())}); {missing} missing, so the total cannot be scored"
            )
        if key in proposal.totals or key in proposal.items:
            taken.update([proposal.totals.get(key, ""), *proposal.items.get(key, [])])


def _end_labels(values: pd.Series, proposal: Proposal) -> None:
    labels = sorted(set(values.dropna().astype(str).str.strip()) - {""})
    mapping: dict[str, str] = {}
    for label in labels:
        compact = _compact(label)
        if compact in END_LABELS:  # already the contract's value
            continue
        status = next((s for s, words in END_LABELS.items() if compact in words), None)
        if status is None:
            proposal.unmapped.append(f"end-status label '{label}': map it to planned, dropout "
                                     "or ongoing under recode: end_status:")  # fmt: skip
        else:
            mapping[label] = status
    if mapping:
        proposal.recode["end_status"] = mapping


def propose(path: str | Path) -> Proposal:
    """Propose a configuration for a clinic's export.

    Parameters
    ----------
    path : str or Path
        A CSV, Excel (.xlsx) or Parquet export, one row per session.

    Returns
    -------
    Proposal

    Raises
    ------
    DataError
        When the file is missing, empty or not a table.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError.single(str(path), "the file does not exist (or is not a regular file)")
    frame, read, kind = _head(path)
    proposal = Proposal(path=path, format=kind, read=read, rows_read=len(frame))
    headers = [str(h).strip() for h in frame.columns]
    frame.columns = headers
    proposal.identifiers = [h for h in headers if identifier_name_reason(h)]
    taken: set[str] = set(proposal.identifiers)
    for contract, spellings in CONTRACT_SPELLINGS.items():
        match = next((h for s in spellings for h in headers
                      if h not in taken and _compact(h) == s), None)  # fmt: skip
        if match is not None:
            proposal.columns[contract] = match
            taken.add(match)
    proposal.columns.setdefault("therapist_id", None)
    for required in ("client_id", "session"):
        if required not in proposal.columns:
            proposal.unmapped.append(f"no column for the required {required}: map it under "
                                     "columns:")  # fmt: skip
    _instrument_columns([h for h in headers if h not in taken], proposal, taken)
    found = [k for k in INSTRUMENTS if k in proposal.items or k in proposal.totals]
    proposal.outcome = next((k for k in found if INSTRUMENTS[k].construct == "outcome"), None)
    proposal.alliance = next((k for k in found if INSTRUMENTS[k].construct == "alliance"), None)
    texts = {h: as_text(frame[h], DEFAULT_NA_VALUES) for h in headers}
    numeric = [texts[h] for k in found for h in [proposal.totals.get(k), *proposal.items.get(k, [])]
               if h is not None and texts[h].dtype == "str"]  # fmt: skip
    if kind == "csv" and detect_decimal(numeric, read.get("sep", ",")) == ",":
        proposal.read["decimal"] = ","
    date = proposal.columns.get("session_date")
    if date is not None and texts[date].dtype == "str" and texts[date].notna().any():
        try:
            fmt = choose_date_format(texts[date], str(path), date)
        except DataError as exc:  # ambiguous day and month
            proposal.unmapped.append(exc.problems["rule"].iloc[0])
        else:
            if fmt != "%Y-%m-%d":
                proposal.read["date_format"] = fmt
    if "end_status" in proposal.columns:
        _end_labels(frame[proposal.columns["end_status"]], proposal)
    unused = [h for h in headers if h not in taken and h not in proposal.columns.values()]
    if unused:
        proposal.unmapped.append("other columns, kept as extra columns: " + ", ".join(unused))
    return proposal
