"""The workflow's steps as functions: files in, files out (atomic), counts in the log.

Each Snakemake rule's script calls one of these, so every step can be run and tested without
Snakemake. Outputs are written all together or not at all. Each step imports the modules it
uses when it runs, so a job starts by loading only its own (the figures' plotting libraries
are no part of a provenance job's start-up).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ._files import atomic_directory, atomic_outputs
from .derive import EXCLUSION_REASONS
from .pseudonyms import read_codes

if TYPE_CHECKING:
    from .annual_report import ReportSettings
    from .config import DatasetSpec

__all__ = [
    "DERIVED_SHARD_FILES",
    "VALIDATED_SHARD_FILES",
    "annual_report_step",
    "apa_tables_step",
    "client_accounting",
    "clinical_significance_step",
    "derive_shard_step",
    "derive_step",
    "early_warning_step",
    "figures_step",
    "impute_step",
    "ingest_shard_step",
    "merge_derived_step",
    "merge_validation_step",
    "missing_data_merge_step",
    "missing_data_step",
    "models_step",
    "part_path",
    "per_case_table",
    "pooled_step",
    "provenance_step",
    "report_settings",
    "report_tables_step",
    "simulation_batch_step",
    "simulation_summary_step",
    "split_step",
]

log = logging.getLogger("allianceanalysis")


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")


def client_accounting(clients: pd.DataFrame, both: int, pairs: int) -> pd.DataFrame:
    """Cases and sessions accounted for by the derivation (``derived/accounting.csv``).

    ``cases = eligible + excluded`` (one reason each, in the order of
    :data:`~allianceanalysis.derive.EXCLUSION_REASONS`); then the sessions with both scores
    (``both``: rm_corr, growth) and the session pairs (``pairs``: next-session models).

    Examples
    --------
    >>> c = pd.DataFrame({"eligible": [True, False],
    ...                   "exclusion": ["", "no outcome at session 1"]})
    >>> client_accounting(c, 0, 0)["count"].tolist()
    [2, 1, 1, 0, 0, 0, 0]
    """
    rows = [
        {"stage": "cases", "reason": "", "count": len(clients)},
        {"stage": "eligible", "reason": "", "count": int(clients["eligible"].sum())},
    ]
    reasons = [*EXCLUSION_REASONS]  # then a missing covariate's or moderator's, as found
    reasons += [r for r in dict.fromkeys(clients["exclusion"]) if r and r not in reasons]
    rows += [
        {
            "stage": "excluded",
            "reason": reason,
            "count": int((clients["exclusion"] == reason).sum()),
        }
        for reason in reasons
    ]
    rows += [
        {"stage": "sessions_with_both_scores", "reason": "", "count": both},
        {"stage": "session_pairs", "reason": "", "count": pairs},
    ]
    return pd.DataFrame(rows, columns=["stage", "reason", "count"])


def _derived_tables(
    sessions: str | Path,
    *,
    outcome: str,
    alliance: str,
    early_session: int,
    adjustment: Mapping[str, Any] | None = None,
    shard: bool = False,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The client table, session table and pairs of validated sessions (a dataset, or one of
    its shards), and what accounting, the therapists' codes and the covariates' check need of
    them (:meth:`~allianceanalysis.covariates.Adjustment.facts`)."""
    from .covariates import Adjustment
    from .derive import case_keys, client_table, session_pairs, session_table

    data = pd.read_parquet(sessions)
    adjusted = Adjustment.from_dict(adjustment)
    facts = adjusted.facts(data, case_keys(data))
    adjusted.check_facts([facts], partial=shard)  # a shard's facts decide the rest when merged
    table = session_table(data, outcome, alliance, adjusted)
    tables = {
        "clients": client_table(data, outcome, alliance, early_session, adjusted),
        "sessions": table,
        "pairs": session_pairs(data, outcome, alliance, adjusted),
    }
    counts = {
        "both": int(table[["alliance", "outcome"]].notna().all(axis=1).sum()),
        "pairs": len(tables["pairs"]),
        "therapists": [str(t) for t in data["therapist_id"].unique()],
        "covariates": facts,
    }
    return tables, counts


def _write_derived(
    tables: Mapping[str, pd.DataFrame | Callable[[Path], None]],
    counts: Mapping[str, Any],
    outputs: Mapping[str, str | Path],
    key: str | Path,
    early_session: int,
) -> None:
    """The derivation's files: the tables (those in ``tables``: a DataFrame, or a function
    that writes the table to the path it is given), the accounting and the therapists'
    codes."""
    from .pseudonyms import codes_frame, load_key, therapist_codes

    codes = codes_frame(therapist_codes(counts["therapists"], load_key(key)))
    with atomic_outputs(outputs["accounting"], outputs["codes"],
                        *(outputs[name] for name in tables)) as (a, k, *temps):  # fmt: skip
        for table, temp in zip(tables.values(), temps, strict=True):
            if isinstance(table, pd.DataFrame):
                table.to_parquet(temp, index=False)
            else:
                table(Path(temp))
        clients = pd.read_parquet(temps[list(tables).index("clients")],
                                  columns=["eligible", "exclusion"])  # fmt: skip
        _write_csv(client_accounting(clients, counts["both"], counts["pairs"]), a)
        _write_csv(codes, k)
    log.info(
        "%d cases, %d eligible (k = %d); %d sessions with both scores; %d session pairs",
        len(clients),
        int(clients["eligible"].sum()),
        early_session,
        counts["both"],
        counts["pairs"],
    )


def derive_step(
    sessions: str | Path,
    outputs: Mapping[str, str | Path],
    *,
    outcome: str,
    alliance: str,
    early_session: int,
    key: str | Path,
    adjustment: Mapping[str, Any] | None = None,
) -> None:
    """Rule ``derive``: validated sessions -> client table, session table, pairs, accounting,
    and the therapists' pseudonymous codes.

    ``outputs`` names the files: ``clients``, ``sessions``, ``pairs`` (Parquet),
    ``accounting`` and ``codes`` (CSV; internal: it maps each therapist ID to its code). ``key``
    is the pseudonym key file (:func:`allianceanalysis.pseudonyms.load_key`). ``adjustment``
    holds the covariates and moderators (:meth:`~allianceanalysis.covariates.Adjustment.as_dict`):
    checked against the data before anything is written (a plain error naming the config key
    and the column), then carried into the tables.
    """
    tables, counts = _derived_tables(
        sessions, outcome=outcome, alliance=alliance, early_session=early_session,
        adjustment=adjustment,
    )  # fmt: skip
    _write_derived(tables, counts, outputs, key, early_session)


DERIVED_SHARD_FILES = ("clients.parquet", "sessions.parquet", "pairs.parquet", "counts.json")
"""The files of one shard's derivation (:func:`derive_shard_step`), by name."""
VALIDATED_SHARD_FILES = ("sessions", "summary", "problems", "excluded")
"""The files of one validated shard (:func:`~allianceanalysis.shards.validate_shard`), in the
workflow's order."""


def _by_shard(files: Sequence[str | Path], names: Sequence[str]) -> list[dict[str, str | Path]]:
    """A merge rule's inputs (each shard's files ``names``, in turn) shard by shard."""
    n = len(names)
    return [dict(zip(names, files[i : i + n], strict=True)) for i in range(0, len(files), n)]


def part_path(parts: str | Path, shard: int) -> Path:
    """The file of shard ``shard`` in the split's folder ``parts``."""
    return Path(parts) / f"part{shard}.parquet"


def split_step(
    spec: DatasetSpec, shards: Mapping[str, Any], *, parts: str | Path, split: str | Path,
    aside: str | Path,
) -> None:  # fmt: skip
    """Rule ``split``: :func:`~allianceanalysis.shards.split_dataset` by the dataset's
    ``shards`` setting (``column``, ``count``) into the folder ``parts``."""
    from .shards import split_dataset

    Path(parts).mkdir(parents=True, exist_ok=True)
    paths = [part_path(parts, k) for k in range(shards["count"])]
    split_dataset(spec, shards["column"], paths, split, aside)


def ingest_shard_step(
    spec: DatasetSpec, parts: str | Path, shard: int, split: str | Path,
    outputs: Mapping[str, str | Path],
) -> None:  # fmt: skip
    """Rule ``ingest_shard``: :func:`~allianceanalysis.shards.validate_shard` of shard
    ``shard`` of the split's folder ``parts``; ``outputs`` names
    :data:`VALIDATED_SHARD_FILES`."""
    from .shards import validate_shard

    validate_shard(spec, part_path(parts, shard), split, outputs)


def merge_validation_step(
    spec: DatasetSpec,
    split: str | Path,
    aside: str | Path,
    shard_files: Sequence[str | Path],
    outputs: Mapping[str, str | Path],
) -> None:
    """Rule ``merge_validation``: :func:`~allianceanalysis.shards.merge_validation`;
    ``shard_files`` lists each shard's :data:`VALIDATED_SHARD_FILES` in turn; ``outputs``
    names ``sessions``, ``summary``, ``accounting``, ``excluded``."""
    from .shards import merge_validation

    shards = _by_shard(shard_files, VALIDATED_SHARD_FILES)
    merged = merge_validation(spec, split, aside, shards, outputs)
    rows = merged["rows"]
    log.info("%s: %d rows read, %d used, %d excluded, in %d shards", spec.name, rows["read"],
             rows["used"], rows["excluded"], len(shards))  # fmt: skip


def derive_shard_step(
    sessions: str | Path,
    outputs: Mapping[str, str | Path],
    *,
    outcome: str,
    alliance: str,
    early_session: int,
    adjustment: Mapping[str, Any] | None = None,
) -> None:
    """Rule ``derive_shard``: one shard's tables (:func:`derive_step`'s ``clients``,
    ``sessions``, ``pairs``) and ``counts`` (JSON: sessions with both scores, pairs, the
    therapists' IDs and the covariates' facts, for :func:`merge_derived_step`)."""
    tables, counts = _derived_tables(
        sessions, outcome=outcome, alliance=alliance, early_session=early_session,
        adjustment=adjustment, shard=True,
    )  # fmt: skip
    keys = ("clients", "sessions", "pairs", "counts")
    with atomic_outputs(*(outputs[k] for k in keys)) as (c, s, p, n):
        for table, temp in zip(tables.values(), (c, s, p), strict=True):
            table.to_parquet(temp, index=False)
        Path(n).write_text(json.dumps(counts) + "\n")
    log.info("%d cases, %d session pairs", len(tables["clients"]), counts["pairs"])


def merge_derived_step(
    shard_files: Sequence[str | Path],
    outputs: Mapping[str, str | Path],
    *,
    key: str | Path,
    early_session: int,
    adjustment: Mapping[str, Any] | None = None,
) -> None:
    """Rule ``merge_derived``: the shards' tables (:func:`derive_shard_step`) as the dataset's,
    the files :func:`derive_step` writes from the whole data: each table in case order, the
    therapists' means over all their cases, the accounting and codes over all shards.
    ``shard_files`` lists each shard's :data:`DERIVED_SHARD_FILES` in turn; ``adjustment``'s
    covariates are checked on all shards' facts together before anything is written. The
    session tables are put together only when ``outputs`` names them (``sessions``,
    ``pairs``): the workflow leaves them out, as every step reads the shards' own."""
    from .covariates import Adjustment
    from .derive import therapist_means
    from .shards import together_file

    shards = _by_shard(shard_files, DERIVED_SHARD_FILES)
    parts = [json.loads(Path(s["counts.json"]).read_text()) for s in shards]
    Adjustment.from_dict(adjustment).check_facts([p["covariates"] for p in parts])

    def means(cases: pd.DataFrame) -> dict[str, np.ndarray]:
        therapist_means(cases)
        return {c: cases[c].to_numpy() for c in ("alliance_therapist_mean", "alliance_client_dev")}

    tables = {
        name: functools.partial(
            together_file, [s[f"{name}.parquet"] for s in shards],
            amend=means if name == "clients" else None,
            reads=("therapist_id", "alliance_early", "eligible"),
        )
        for name in ("clients", "sessions", "pairs")
        if name in outputs
    }  # fmt: skip
    counts = {
        "both": sum(p["both"] for p in parts),
        "pairs": sum(p["pairs"] for p in parts),
        "therapists": list(dict.fromkeys(t for p in parts for t in p["therapists"])),
    }
    _write_derived(tables, counts, outputs, key, early_session)


def models_step(
    inputs: Mapping[str, str | Path],
    *,
    tables: Iterable[str | Path],
    combined: str | Path,
    options: Mapping[str, Any],
) -> None:
    """Rule ``models``: fit every catalogue model; write each table and all of them together.

    ``inputs`` names the files ``clients``, ``sessions``, ``pairs`` (derived; for a sharded
    dataset, ``sessions`` and ``pairs`` may list the shards' files, read one at a time by the
    models fitted from sufficient statistics), ``validated`` (the validated sessions, or each
    shard's, for the models that derive their own tables a shard at a time) and ``codes``
    (the therapists' pseudonymous codes); ``tables`` lists one path per catalogue model,
    named ``<model>.csv``; ``combined`` gets every model's rows but the therapist-level ones
    (which are internal, :mod:`allianceanalysis.layout`); ``options`` holds ``outcome``,
    ``alliance``, ``bootstrap``, ``seed`` and ``engine``.
    """
    import pyarrow.parquet as pq

    from .covariates import Adjustment
    from .custom_models import CustomModel, check_variables
    from .models import CATALOGUE, client_model_columns, fit_model
    from .shards import release_memory

    custom = [CustomModel(**m) for m in options.get("custom", ())]
    check_variables(custom, pq.read_schema(_paths(inputs["validated"])[0]).names)  # before fits
    options = {**options, "codes": read_codes(inputs["codes"]), "custom": custom,
               "adjustment": Adjustment.from_dict(options.get("adjustment"))}  # fmt: skip
    files = {"clients": "clients", "sessions_table": "sessions", "pairs": "pairs",
             "sessions": "validated"}  # fmt: skip
    paths = {Path(p).stem: Path(p) for p in tables}
    fitted = {}
    for source, file in files.items():  # one table in memory at a time (8M rows at 1M clients)
        names = [name for name in paths if CATALOGUE[name].data == source]
        if names:
            data = _table(inputs[file], client_model_columns(options["adjustment"])
                          if source == "clients" else None)  # fmt: skip
            for name in names:
                release_memory()  # the read's or the last fit's freed memory goes back
                fitted[name] = fit_model(name, data, **options)
            del data
    results = {name: fitted[name] for name in paths}
    together = [table for name, table in results.items() if not CATALOGUE[name].therapist_level]
    with atomic_outputs(*paths.values(), combined) as temps:
        for table, temp in zip(results.values(), temps[: len(results)], strict=True):
            _write_csv(table, temp)
        _write_csv(pd.concat(together, ignore_index=True), temps[-1])
    for name, table in results.items():
        problems = table.loc[table["message"].fillna("") != "", ["model", "message"]]
        for _, row in problems.drop_duplicates().iterrows():
            log.warning("%s: %s", row["model"], row["message"])
        log.info("%s: %d rows", name, len(table))


def per_case_table(
    sessions: str | Path | Sequence[str | Path],
    function: Callable[[pd.DataFrame], pd.DataFrame],
) -> pd.DataFrame:
    """A per-case table (one row per case, computed from each case's sessions alone) of the
    validated sessions in ``sessions``, or of their shards, one shard in memory at a time: the
    shards' rows in case order, as the whole data give them."""
    from .derive import in_case_order

    files = _paths(sessions)
    if len(files) == 1:
        return function(pd.read_parquet(files[0]))
    return in_case_order(pd.concat([function(pd.read_parquet(f)) for f in files],
                                   ignore_index=True))  # fmt: skip


def _paths(paths: str | Path | Sequence[str | Path]) -> list[str | Path]:
    """One file, or a list of them (a sharded dataset's), as a list."""
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def _table(paths: str | Path | Sequence[str | Path], columns: Sequence[str] | None = None) -> Any:
    """A table's file read whole (its ``columns`` that it has, or all), or its shards' files
    as a :class:`~allianceanalysis.shards.ShardedTable` (the models that take one read it a
    shard at a time)."""
    files = _paths(paths)
    if len(files) == 1:
        if columns is not None:
            present = set(pq.read_schema(files[0]).names)
            columns = [c for c in columns if c in present]
        return pd.read_parquet(files[0], columns=columns)
    from .shards import ShardedTable

    return ShardedTable.of(files)


def figures_step(
    inputs: Mapping[str, str | Path | Sequence[str | Path]],
    outputs: Iterable[str | Path],
    *,
    outcome: str,
    alliance: str | None,
    early_session: int,
    key: str | Path,
) -> None:
    """Rule ``figures``: every per-dataset figure of the registry
    (:data:`~allianceanalysis.figures.FIGURES`).

    ``inputs`` names the files of :data:`~allianceanalysis.figures.FIGURE_INPUTS`;
    ``outputs`` lists ``<figure>.<png|svg|pdf>`` paths; ``key`` is the pseudonym key file,
    which seeds the choice of the cases a figure shows
    (:func:`~allianceanalysis.pseudonyms.keyed_seed`), so nobody can work out whose they are.
    """
    from . import figures
    from .pseudonyms import keyed_seed, load_key
    from .shards import release_memory

    seed = keyed_seed(load_key(key), "figures")
    data = figures.FigureData(inputs, outcome, alliance, early_session, seed)
    paths: dict[str, list[Path]] = {}
    for path in map(Path, outputs):
        paths.setdefault(path.stem, []).append(path)
    to_draw = list(paths)
    for name, targets in paths.items():
        figures.save_figure(figures.draw_figure(name, data), targets)
        to_draw.remove(name)
        data.forget({i for n in to_draw for i in figures.FIGURES[n].inputs})
        release_memory()
    log.info("%d figures", len(paths))


def early_warning_step(
    sessions: str | Path | Sequence[str | Path],
    *,
    table: str | Path,
    calibration: str | Path,
    sequences: str | Path,
    curves: str | Path,
    outcome: str,
    alliance: str | None,
    early_session: int,
    settings: Mapping[str, Any],
    seed: int,
    engine: str = "lmm",
    published: str | Path | None = None,
    suppress_below: int = 5,
) -> None:
    """Rule ``early_warning``: ruptures and repair, dropout risk, the expected treatment
    response and its not-on-track signal, and feedback, as one tidy table (``table``,
    internal; ``published``, the same with every row that rests on a count below
    ``suppress_below`` suppressed, :func:`~allianceanalysis.disclosure.suppress_small_rows`); the
    dropout model's calibration table (``calibration``), the alliance around each rupture
    (``sequences``, Parquet, no case keys) and the expected-response curves (``curves``): the
    data of the early-warning figures.

    ``settings`` is the config's ``early_warning`` block: ``rupture_threshold`` (points, or
    None for the reliable-change default), ``repair_within``, ``not_on_track_percentile`` and
    ``folds``. An analysis the data cannot support (no rupture threshold for the instrument, no
    dropouts, one condition) gives a row saying why. ``sessions`` is the validated sessions'
    file, or its shards' files: each analysis then reads one shard at a time, and gives what
    it gives on the whole file.
    """
    from . import dropout_risk, expected_response, feedback, ruptures, tidy
    from .disclosure import DisclosurePolicy, suppress_small_rows
    from .tidy import NEEDS

    data = _table(sessions)
    figure_data = {
        "sequences": pd.DataFrame(columns=["rupture", "offset", "alliance", "change", "kind"]),
        "curves": pd.DataFrame(columns=["intake_quartile", "intake", "session", "expected",
                                        "bound"]),
    }  # fmt: skip

    def rupture_rows() -> pd.DataFrame:
        rows, figure_data["sequences"] = ruptures.rupture_analyses(
            data, outcome, alliance, threshold=settings.get("rupture_threshold"),
            repair_within=settings["repair_within"], engine=engine)  # fmt: skip
        return rows

    def signal_rows() -> pd.DataFrame:
        rows, figure_data["curves"] = expected_response.expected_response_analyses(
            data, outcome, percentile=settings["not_on_track_percentile"], engine=engine
        )
        return rows

    points = pd.DataFrame(columns=dropout_risk.CALIBRATION_COLUMNS)
    if alliance is None:  # ruptures and the dropout-risk model rest on the alliance
        no_alliance = NEEDS["alliance"]
        alliance_parts = [tidy.reason_frame(m, no_alliance) for m in ("ruptures", "dropout_risk")]
    else:
        risk, points = dropout_risk.risk_analyses(data, outcome, alliance,
                                                  folds=settings["folds"], seed=seed)  # fmt: skip
        alliance_parts = [tidy.or_reason("ruptures", rupture_rows), risk]
    parts = [
        *alliance_parts,
        tidy.or_reason("expected_response", signal_rows),
        tidy.or_reason("feedback_outcome", lambda: feedback.feedback_effects(
            data, outcome, alliance, early_session=early_session, engine=engine)),
    ]  # fmt: skip
    combined = pd.concat([p for p in parts if len(p)], ignore_index=True)[tidy.TIDY_COLUMNS]
    outputs = [table, calibration, sequences, curves, *([published] if published else [])]
    with atomic_outputs(*outputs) as (t, c, s, e, *p):
        _write_csv(combined, t)
        _write_csv(points, c)
        figure_data["sequences"].to_parquet(s, index=False)
        _write_csv(figure_data["curves"], e)
        if p:
            _write_csv(suppress_small_rows(combined, DisclosurePolicy(suppress_below)), p[0])
    for model, rows in combined.groupby("model", sort=False):
        log.info("%s: %d rows", model, len(rows))


def clinical_significance_step(
    sessions: str | Path,
    *,
    cases: str | Path,
    table: str | Path,
    published: str | Path,
    outcome: str,
    settings: Mapping[str, Any],
    suppress_below: int = 5,
) -> None:
    """Rule ``clinical_significance``: each case's reliable change and category of change
    (``cases``, internal Parquet), the share of cases in each category as tidy rows
    (``table``, internal; ``published``, with rows resting on small counts suppressed).
    ``sessions`` is the validated sessions' file, or its shards' files (:func:`per_case_table`).

    ``settings`` is the config's ``clinical_significance`` block: ``pre`` and ``post`` (which
    scores, :func:`~allianceanalysis.clinical_significance.pre_post`), ``method``, ``cutoff``,
    ``reliability`` and ``reference``. Shares are clustered by therapist where the data have
    two or more therapists. Data that cannot support it give a row saying why (no reliability
    on record, too few pairs).
    """
    from . import tidy
    from .clinical_significance import (
        CATEGORIES,
        category_summary,
        clinical_significance,
        pre_post,
    )
    from .disclosure import DisclosurePolicy, suppress_small_rows
    from .errors import NotEstimable
    from .instruments import get_instrument

    model = "clinical_significance"
    pairs = per_case_table(
        sessions, lambda data: pre_post(data, outcome, pre=settings["pre"], post=settings["post"])
    )
    per_case = pairs.assign(category=pd.Series(dtype="str"))
    try:
        result = clinical_significance(
            pairs,
            get_instrument(outcome),
            method=settings["method"],
            cutoff=settings["cutoff"],
            reliability=settings["reliability"],
            reference=settings["reference"],
        )
    except NotEstimable as exc:
        summary = tidy.reason_frame(model, str(exc))
    else:  # every case with a pre score; those without a post one have no category
        unpaired = pairs[pairs["post"].isna()]
        per_case = pd.concat([result.cases, unpaired], ignore_index=True)
        by = "therapist_id" if tidy.has_therapists(per_case) else None
        summary = pd.concat([
            category_summary(result, model, by=by),
            tidy.frame(_clinical_significance_parameters(model, result.parameters)),
        ], ignore_index=True)  # fmt: skip
    with atomic_outputs(cases, table, published) as (c, t, p):
        per_case.astype({"category": "str"}).to_parquet(c, index=False)
        _write_csv(summary, t)
        policy = DisclosurePolicy(suppress_below)
        _write_csv(suppress_small_rows(summary, policy, partition=CATEGORIES), p)
    log.info("clinical significance: %d cases with a pre score, %d with a pair", len(pairs),
             int(pairs["post"].notna().sum()))  # fmt: skip


def missing_data_step(
    sessions: str | Path | Sequence[str | Path],
    *,
    imputed: str | Path,
    tipping: str | Path,
    pattern: str | Path,
    published_pattern: str | Path,
    options: Mapping[str, Any],
    settings: Mapping[str, Any],
    suppress_below: int = 5,
) -> None:
    """Rule ``missing_data``: the client-level models after multiple imputation
    (``imputed``: models ``<model>_mi``), the tipping-point analysis (``tipping``), and the
    missingness pattern (``pattern`` internal, raw counts; ``published_pattern`` as tidy
    shares with small counts suppressed), every early session in one process.
    :mod:`allianceanalysis.missing_data`. ``sessions`` is the validated sessions' file, or each
    shard's (read one at a time). For a sharded dataset the workflow makes the same tables in
    one job per early session (:func:`impute_step`) and one that puts them together
    (:func:`missing_data_merge_step`).

    ``options`` are the model options (``outcome``, ``alliance``, ``early_session``,
    ``seed``, ``engine``, ``adjustment``); ``settings`` the config's ``missing_data`` block
    (``m``, ``tipping_shifts``).
    """
    table, points, patterns = _missing_data_part(_table(sessions), options, settings)
    _write_missing_data(table, points, patterns[options["early_session"]], suppress_below,
                        imputed=imputed, tipping=tipping, pattern=pattern,
                        published_pattern=published_pattern)  # fmt: skip


def impute_step(
    sessions: str | Path | Sequence[str | Path],
    *,
    early: int,
    rows: str | Path,
    pattern: str | Path,
    options: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> None:
    """Rule ``impute`` (a sharded dataset): early session ``early``'s part of
    :func:`missing_data_step` (its own sampler and random stream, so the parts are the rows of
    the whole): the pooled rows (``rows``, Parquet, unsuppressed; at the configured early
    session with the tipping point's rows, column ``delta``) and the missingness pattern of its
    client table (``pattern``, Parquet, raw counts). Internal files, read by
    :func:`missing_data_merge_step`."""
    table, points, patterns = _missing_data_part(_table(sessions), options, settings, early)
    with atomic_outputs(rows, pattern) as (r, p):
        pd.concat([table, *([points] if points is not None else [])],
                  ignore_index=True).to_parquet(r)  # fmt: skip
        patterns[early].to_parquet(p)


def missing_data_merge_step(
    parts: Sequence[str | Path],
    early_pattern: str | Path,
    *,
    imputed: str | Path,
    tipping: str | Path,
    pattern: str | Path,
    published_pattern: str | Path,
    suppress_below: int = 5,
) -> None:
    """Rule ``merge_missing_data`` (a sharded dataset): the tables of
    :func:`missing_data_step` from each early session's part (:func:`impute_step`, in the order of
    :func:`~allianceanalysis.missing_data.imputed_sessions`) and the configured early
    session's missingness pattern (``early_pattern``)."""
    from .missing_data import combined_rows

    frames = [pd.read_parquet(part) for part in parts]
    tipped = [frame["model"].eq("tipping_point") for frame in frames]
    points = pd.concat([f[t] for f, t in zip(frames, tipped, strict=True) if t.any()],
                       ignore_index=True)  # fmt: skip
    table = combined_rows([f[~t].drop(columns="delta", errors="ignore")
                           for f, t in zip(frames, tipped, strict=True)])  # fmt: skip
    _write_missing_data(table, points, pd.read_parquet(early_pattern), suppress_below,
                        imputed=imputed, tipping=tipping, pattern=pattern,
                        published_pattern=published_pattern)  # fmt: skip


def _missing_data_part(
    data: Any, options: Mapping[str, Any], settings: Mapping[str, Any], early: int | None = None
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[int, pd.DataFrame]]:
    """The pooled rows of early session ``early`` (None: of every one), the tipping point's
    rows when the configured early session is among them (else None), and the missingness
    pattern of each early session's client table (only the configured one's when all are
    imputed)."""
    from . import tidy
    from .covariates import Adjustment
    from .missing_data import missingness, multiple_imputation, tipping_point
    from .pooling import MI_COLUMNS

    outcome, alliance = options["outcome"], options["alliance"]
    # this step may run before derive checks them: multiple_imputation does, as it reads them
    adjustment = Adjustment.from_dict(options.get("adjustment"))
    k = options["early_session"]
    patterns: dict[int, pd.DataFrame] = {}

    def pattern_of(at: int, clients: pd.DataFrame) -> None:
        if at in (k, early):
            patterns[at] = missingness(clients, alliance)

    table, main = multiple_imputation(
        data, outcome, alliance, k, m=settings["m"], seed=options["seed"],
        engine=options["engine"], adjustment=adjustment, seen=pattern_of,
        only=None if early is None else [early],
    )  # fmt: skip
    if early not in (None, k):
        return table, None, patterns
    if main is None or alliance is None:
        why = tidy.unmet_need(("alliance",), data, alliance) or table["message"].iloc[0]
        points = tidy.reason_frame("tipping_point", str(why).removeprefix("not computed: "))
        points[[*MI_COLUMNS, "delta"]] = [pd.NA, None, None, None, None]
        points = points.astype({"m": "Int64"})  # as the pooled rows' (with which it is stored)
    else:
        points = tipping_point(main, outcome, settings["tipping_shifts"],
                               engine=options["engine"], adjustment=adjustment)  # fmt: skip
    return table, points, patterns


def _write_missing_data(
    table: pd.DataFrame,
    points: pd.DataFrame,
    pattern_table: pd.DataFrame,
    suppress_below: int,
    **paths: str | Path,
) -> None:
    """Write :func:`missing_data_step`'s tables (``paths``: ``imputed``, ``tipping``,
    ``pattern``, ``published_pattern``), the published ones with small counts suppressed."""
    from .disclosure import DisclosurePolicy, suppress_small_rows
    from .missing_data import missingness_rows

    policy = DisclosurePolicy(suppress_below)
    names = ("imputed", "tipping", "pattern", "published_pattern")
    with atomic_outputs(*(paths[name] for name in names)) as (i, t, p, q):
        _write_csv(suppress_small_rows(table, policy), i)
        _write_csv(suppress_small_rows(points, policy), t)
        _write_csv(pattern_table, p)
        _write_csv(missingness_rows(pattern_table, policy), q)
    for model, rows in table.groupby("model", sort=False):
        log.info("%s: %d rows", model, len(rows))
    log.info("tipping point: %d rows", len(points))


def _clinical_significance_parameters(
    model: str, parameters: Mapping[str, Any]
) -> list[dict[str, object]]:
    """The numbers the categories were decided by, as tidy rows: the cut-off and the
    reliability (their kind and source in ``message``)."""
    from . import tidy

    cutoff = f"cut-off {parameters['cutoff']}"
    return [
        tidy.row(model, "cutoff", parameters["cutoff_value"], message=cutoff),
        tidy.row(
            model,
            "reliability",
            parameters["reliability"],
            message=str(parameters["reliability_source"]),
        ),
        tidy.row(
            model, "sd_pre", parameters["sd_pre"], message=f"reference: {parameters['reference']}"
        ),
    ]


def apa_tables_step(
    models: Iterable[str | Path],
    outputs: Iterable[str | Path],
    adjustment: Mapping[str, Any] | None = None,
    custom: Iterable[Mapping[str, str]] = (),
) -> None:
    """Rule ``apa_tables``: each model table as APA-style Markdown, LaTeX and HTML.

    ``models`` lists the model tables (tidy CSV); ``outputs`` lists ``<model>.<md|tex|html>``
    paths, ``<model>`` a catalogue name, whose table may hold several models (``early_alliance``
    one per k, ``moderation`` one per moderated model, ``custom_models`` the config's own):
    each gets its APA table, in turn. ``adjustment`` (the covariates and moderators,
    :meth:`~allianceanalysis.covariates.Adjustment.as_dict`) is named in the notes of the models
    that take it; ``custom`` (the config's own models) gives their formulas.
    """
    from .covariates import CLIENT_MODELS, SESSION_MODELS, Adjustment
    from .models import CATALOGUE
    from .tables import ApaTable, apa_table, read_model_table

    adjusted = Adjustment.from_dict(adjustment)
    own = {m["name"]: m["formula"] for m in custom}

    def note(name: str, model: str) -> str:
        if name == "custom_models":
            return own.get(model, "")
        formula = CATALOGUE[name].companions.get(model, CATALOGUE[name].formula)
        level = "session" if name in SESSION_MODELS else "client"
        takes = name in (*CLIENT_MODELS, *SESSION_MODELS, "moderation")
        chosen = [c.column for c in adjusted.for_level(level)] if takes else []
        if name == "moderation" and adjusted.moderators:
            moderators = ", ".join(c.column for c in adjusted.moderators)
            formula += (f"; moderators: {moderators} (conditional effects: the alliance's effect "
                        "at each moderator value, Satterthwaite df per contrast)")  # fmt: skip
        return formula + (f"; covariates: {', '.join(chosen)}" if chosen else "")

    tables = {Path(p).stem: read_model_table(p) for p in models}
    paths = [Path(p) for p in outputs]
    with atomic_outputs(*paths) as temps:
        for path, temp in zip(paths, temps, strict=True):
            name = path.stem  # the catalogue entry: its table holds one model or several
            family = sorted(tables[name]["model"].unique())
            rendered = [apa_table(tables[name], m, note(name, m)) for m in family]
            render = {".md": ApaTable.markdown, ".tex": ApaTable.latex, ".html": ApaTable.html}
            temp.write_text("\n".join(render[path.suffix](t) for t in rendered), encoding="utf-8")
    log.info("%d APA tables", len(paths))


def provenance_step(
    dataset: str,
    config: Mapping[str, Any],
    inputs: Iterable[str | Path],
    outputs: Iterable[str | Path],
    output: str | Path,
) -> None:
    """Rule ``provenance``: ``results/<dataset>/published/provenance.json``."""
    from .provenance import provenance

    record = provenance(dataset, config, list(inputs), list(outputs))
    with atomic_outputs(output) as (path,):
        path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")


def pooled_step(
    clients: Mapping[str, str | Path],
    table: str | Path,
    figures_out: Iterable[str | Path],
    *,
    by_site: bool,
    label: str,
    alliance: Mapping[str, str | None],
) -> None:
    """Rules ``pooled_sites`` and ``pooled_datasets``: the two-stage pooled correlation (and
    the one-stage model when there are at least two studies), its table and forest plot.

    ``clients`` maps a dataset name to its client table; with ``by_site`` the one dataset's
    sites are the studies (a site where fewer than 3 therapists saw clients merged into "Other
    sites", :func:`~allianceanalysis.annual_report.tables.site_groups`), otherwise the
    datasets are. ``alliance`` maps each dataset to its alliance instrument: a dataset without
    one (None) is not a study, and a ``not_fitted`` row names it and says why
    (:data:`~allianceanalysis.tidy.NEEDS`).
    """
    from . import figures, tidy
    from .pooled import CLIENT_COLUMNS, one_stage, pooled_table

    model = "pooled_sites" if by_site else "pooled_datasets"
    lacking = [name for name in clients if alliance[name] is None]
    reasons = [tidy.reason_frame(model, f"dataset '{name}': {tidy.NEEDS['alliance']}")
               for name in lacking]  # fmt: skip
    frames = {
        name: _table(path, CLIENT_COLUMNS) for name, path in clients.items() if name not in lacking
    }
    studies = frames
    if by_site and frames:
        from .annual_report.tables import site_groups

        (only,) = frames.values()
        if "site_id" in only:  # sites of fewer than 3 therapists merged, as in the report
            key = only["site_id"].map(site_groups(only))
        else:
            key = pd.Series("all", index=only.index)
        studies = {str(site): part for site, part in only.groupby(key.fillna("unknown"))}
    result = tidy.or_reason(model, lambda: pooled_table(studies, model)) if studies else None
    if len(studies) >= 2 and not result["term"].eq("not_fitted").any():
        result = pd.concat([result, one_stage(studies)], ignore_index=True)
    result = pd.concat([part for part in (result, *reasons) if part is not None],
                       ignore_index=True)  # fmt: skip
    figure = figures.pooled_forest(result, label)
    with atomic_outputs(table) as (path,):
        _write_csv(result, path)
    figures.save_figure(figure, figures_out)
    log.info("%s: %d studies", model, len(studies))


def report_settings(dataset: str, settings: Mapping[str, Any]) -> ReportSettings:
    """The annual report's settings from the workflow's: ``outcome``, ``alliance``,
    ``early_session``, ``bootstrap``, ``seed`` and the ``annual_report`` block
    (``year_start_month``, ``suppress_below``, ``round_to``, ``therapist_plots``, and
    ``severity_norms`` by instrument, of which the outcome's are used)."""
    from .annual_report import ReportSettings
    from .disclosure import DisclosurePolicy
    from .effects import SeverityNorms

    block = settings.get("annual_report", {})
    policy = DisclosurePolicy(block.get("suppress_below", 5), block.get("round_to", 1))
    norms = block.get("severity_norms", {}).get(settings["outcome"])
    return ReportSettings(
        dataset=dataset,
        outcome=settings["outcome"],
        alliance=settings["alliance"],
        early_session=settings["early_session"],
        year_start_month=block.get("year_start_month", 4),
        therapist_plots=block.get("therapist_plots", False),
        policy=policy,
        bootstrap=settings["bootstrap"],
        seed=settings["seed"],
        severity_norms=SeverityNorms(**norms) if norms else None,
        **{k: v for k, v in settings.get("early_warning", {}).items() if k != "folds"},
    )


def report_tables_step(
    sessions: str | Path | Sequence[str | Path],
    outputs: Mapping[str, str | Path],
    settings: ReportSettings,
    warning: str | Path | None = None,
    codes: str | Path | None = None,
    change: str | Path | None = None,
    change_table: str | Path | None = None,
) -> None:
    """Rule ``report_tables``: every reporting year's numbers as internal tidy tables
    (``results/<dataset>/internal/report_tables/<table>.csv``; unsuppressed, not for publication)
    from the validated sessions' file, or each shard's (read one at a time). ``warning`` is
    the early-warning table, whose expected-response model flags clients not on track;
    ``codes`` the therapists' pseudonymous codes (``derived/therapist_codes.csv``);
    ``change`` each case's category of change (``derived/clinical_significance.parquet``) and
    ``change_table`` the analysis's tidy rows (``tables/clinical_significance.csv``), whose
    method, cut-off and reliability the report states."""
    from .annual_report import ReportTables, report_tables

    early = pd.read_csv(warning) if warning is not None else None
    key = read_codes(codes) if codes is not None else None
    categories = None
    if change is not None:
        kept = {"client_id", "episode_id", "category"}
        columns = [c for c in pq.read_schema(change).names if c in kept]
        categories = pd.read_parquet(change, columns=columns)
    basis = ""
    if change_table is not None:
        rows = pd.read_csv(change_table).set_index("term")
        if "recovered" in rows.index:  # "16 of 40; jt index (...), cut-off c = 25.14, ..."
            basis = str(rows.loc["recovered", "message"]).split("; ", 1)[-1]
    tables = report_tables(_table(sessions), settings, early, key, categories, basis)
    names = ReportTables.names()
    with atomic_outputs(*(outputs[n] for n in names)) as temps:
        tables.write(dict(zip(names, temps, strict=True)))
    log.info("report tables: %d reporting years", len(tables.years))


def annual_report_step(
    tables: Mapping[str, str | Path],
    summary: str | Path,
    output: str | Path,
    settings: ReportSettings,
    warning: str | Path | None = None,
    codes: str | Path | None = None,
    supervision: str | Path | None = None,
    missing: Mapping[str, str | Path] | None = None,
) -> None:
    """Rule ``annual_report``: per reporting year ``<year>.html``, ``<year>.pdf`` and the
    published KPI table ``<year>_kpis.csv`` in ``output``, and the internal supervision
    report's ``<year>.html`` and ``<year>.pdf`` in ``supervision`` (each a directory written
    all at once).

    ``tables`` names the files of :class:`~allianceanalysis.annual_report.ReportTables`; ``summary``
    is the validation summary (rows read, used, excluded) for the appendix; ``warning`` the
    early-warning table, for its findings across all years; ``codes`` the therapists' codes
    (``derived/therapist_codes.csv``), which the supervision report shows therapists' own IDs
    by; ``missing`` the published ``models``, ``imputed``, ``tipping`` and ``missingness``
    tables, for the paragraph on missing data. Nothing is refitted: the reports are built from
    the tables.
    """
    from .annual_report import (
        ReportTables,
        annual_reports,
        render_html,
        render_pdf,
        supervision_reports,
        year_file_name,
    )
    from .provenance import software_versions

    facts = json.loads(Path(summary).read_text(encoding="utf-8"))
    appendix = {
        "rows": facts["rows"],
        "excluded_by_rule": facts["excluded_by_rule"],
        "source": Path(facts["file"]).name,
        "software": software_versions(),
        "therapists": facts.get("counts", {}).get("therapists", 2),
    }
    early = pd.read_csv(warning) if warning is not None else None
    numbers = ReportTables.read(tables)
    missing_tables = (
        {name: pd.read_csv(path) for name, path in missing.items()} if missing else None
    )
    reports = annual_reports(numbers, settings, appendix=appendix, warning=early,
                             missing=missing_tables)  # fmt: skip
    variants = [(output, reports, True)]
    if supervision is not None:
        if codes is None:
            raise TypeError("the supervision report needs the therapists' codes")
        names = {code: therapist for therapist, code in read_codes(codes).items()}
        variants.append((supervision, supervision_reports(reports, numbers, names), False))
    with ExitStack() as stack:
        for target, contexts, kpis in variants:
            folder = stack.enter_context(atomic_directory(target))
            for year, context in contexts.items():
                stem = year_file_name(year)
                html = render_html(context)
                (folder / f"{stem}.html").write_text(html, encoding="utf-8")
                (folder / f"{stem}.pdf").write_bytes(render_pdf(html))
                if kpis:
                    _write_csv(context["kpis"], folder / f"{stem}_kpis.csv")
    log.info("annual reports: %s", ", ".join(reports) or "no reporting year with ended episodes")


def simulation_batch_step(
    study: Mapping[str, Any], *, design: int, batch: int, output: str | Path, seed: int
) -> None:
    """Rule ``simulation_batch``: replicates ``batch * batch_size`` … of design ``design`` of
    the ``simulation_study`` block (one row per simulated study,
    :data:`~allianceanalysis.power.REPLICATE_COLUMNS`)."""
    from .power import run_replicates

    size = study["batch_size"]
    numbers = range(batch * size, min((batch + 1) * size, study["replicates"]))
    rows = run_replicates(study["designs"][design], numbers, index=design, term=study["term"],
                          seed=seed)  # fmt: skip
    with atomic_outputs(output) as (temp,):
        _write_csv(rows, temp)
    log.info("design %d, batch %d: %d replicates", design, batch, len(rows))


def simulation_summary_step(
    batches: Iterable[str | Path], power: str | Path, replicates: str | Path, *, alpha: float
) -> None:
    """Rule ``simulation_study``: every batch's rows together, and per design the power, its
    Monte Carlo error, the mean estimate against the truth and the intervals' coverage."""
    from .power import summarise

    rows = pd.concat([pd.read_csv(path) for path in batches], ignore_index=True)
    rows = rows.sort_values(["design", "replicate"], kind="stable").reset_index(drop=True)
    with atomic_outputs(power, replicates) as (power_temp, rows_temp):
        _write_csv(summarise(rows, alpha), power_temp)
        _write_csv(rows, rows_temp)
    log.info("simulation study: %d replicates of %d designs", len(rows), rows["design"].nunique())
