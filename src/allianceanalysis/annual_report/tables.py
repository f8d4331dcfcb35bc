"""The annual report, step 1: every number of every reporting year, as tidy tables.

:func:`report_tables` computes, from the validated sessions, what each year's report needs
(:class:`ReportTables`: KPIs with their numerators and denominators, the accounting of cases,
counts by site, endings by early alliance, the funnel table, the alliance histogram, the
year's early-alliance estimates and shrunken therapist effects). These tables are internal:
they hold unsuppressed counts (``results/<dataset>/internal/report_tables/``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from ..derive import case_keys, client_table
from ..disclosure import DisclosurePolicy
from ..effects import (
    KPI_COLUMNS,
    SeverityNorms,
    activity,
    client_outcomes,
    funnel,
    nhs_recovery,
    outcome_kpis,
    rate_row,
    session_bands,
    session_years,
)
from ..errors import NotEstimable
from ..expected_response import (
    DEFAULT_PERCENTILE,
    ExpectedResponse,
    not_on_track,
    signalled_cases,
)
from ..instruments import INSTRUMENTS, Instrument, get_instrument
from ..models import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_SEED,
    clustered_ols,
    partial_correlation,
)
from ..models import therapist_effects as fit_therapist_effects
from ..pseudonyms import therapist_codes
from ..ruptures import DEFAULT_REPAIR_WITHIN, case_ruptures, detect_ruptures, reliable_drop
from ..shards import ShardedTable, Spilled, frames, together
from ..tidy import has_therapists

log = logging.getLogger("allianceanalysis")

MIN_CLIENTS_FOR_MODELS = 10
"""Fewest eligible clients in a year for the early-alliance estimate and therapist effects."""


@dataclass(frozen=True)
class ReportSettings:
    """What an annual report depends on besides the data (workflow key ``annual_report`` and
    the dataset's instruments)."""

    dataset: str
    outcome: str = "ors"
    alliance: str | None = "srs"
    early_session: int = 3
    year_start_month: int = 4
    policy: DisclosurePolicy = field(default_factory=DisclosurePolicy)
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED
    severity_norms: SeverityNorms | None = None
    rupture_threshold: float | None = None
    repair_within: int = DEFAULT_REPAIR_WITHIN
    not_on_track_percentile: float = DEFAULT_PERCENTILE
    therapist_plots: bool = False


@dataclass
class ReportTables:
    """Every number of every year's report, as tidy tables (internal: unsuppressed).

    Attributes
    ----------
    kpis : :data:`~allianceanalysis.effects.KPI_COLUMNS`, every year; the outcome KPIs of
        every other outcome measure in the data under ``<key>:<kpi>`` (:func:`other_outcomes`).
    accounting : ``year, analysis, reason, count``: cases in and out of each analysis.
    session_bands : ``year, band, clients``: sessions per client among episodes ended.
    sites : ``year, site_id, clients_seen, sessions_attended`` (by session date),
        ``ended, finished, reliable_improvement`` (episodes ended in the year).
    endings : ``year, early_alliance, dropout, planned``.
    funnel : ``year, therapist, n, events, rate, overall`` and the control limits.
    alliance_bins : ``year, bin_low, bin_high, sessions``.
    early_alliance : ``year`` and tidy rows ``partial_r`` (cluster-bootstrap interval) and
        ``slope`` (final outcome points per alliance point, intake held constant; therapist-
        clustered standard errors).
    therapist_effects : ``year`` and the tidy rows of :func:`models.therapist_effects`.
    change_categories : ``year, category, clients, basis``: the clients who finished in the
        year by category of change (:mod:`allianceanalysis.clinical_significance`), every
        category; ``basis`` says by which index, cut-off and reliability.
    """

    kpis: pd.DataFrame
    accounting: pd.DataFrame
    session_bands: pd.DataFrame
    sites: pd.DataFrame
    endings: pd.DataFrame
    funnel: pd.DataFrame
    alliance_bins: pd.DataFrame
    early_alliance: pd.DataFrame
    therapist_effects: pd.DataFrame
    change_categories: pd.DataFrame

    @classmethod
    def names(cls) -> list[str]:
        """The table names (one CSV each)."""
        return [f.name for f in fields(cls)]

    @property
    def years(self) -> list[str]:
        """The reporting years, oldest first."""
        return sorted(self.kpis["year"].dropna().unique())

    def of_year(self, year: str) -> dict[str, pd.DataFrame]:
        """Each table's rows of one reporting year."""
        return {name: getattr(self, name).loc[lambda t: t["year"] == year] for name in self.names()}

    def write(self, paths: Mapping[str, str | Path]) -> None:
        """Write each table to ``paths[name]`` (CSV)."""
        for name in self.names():
            getattr(self, name).to_csv(paths[name], index=False, lineterminator="\n")

    @classmethod
    def read(cls, paths: Mapping[str, str | Path]) -> ReportTables:
        """Read the tables :meth:`write` wrote."""
        return cls(**{n: pd.read_csv(paths[n], dtype={"year": str}) for n in cls.names()})


def year_file_name(year: str) -> str:
    """A reporting year as a file name: ``"2024/25"`` -> ``"2024-25"``."""
    return year.replace("/", "-")


def _alliance_kpis(in_year: pd.DataFrame, alliance: Instrument | None, year: str) -> list[dict]:
    """Sessions and clients below the alliance cut-off among the year's ended cases, from each
    case's counts of rated sessions and of those below (:func:`_alliance_counts`)."""
    if alliance is None or alliance.cutoff is None:
        return []
    rated = in_year[in_year["alliance_rated"] > 0]
    return [
        rate_row(year, "alliance_sessions_below_cutoff", int(rated["alliance_below"].sum()),
                 int(rated["alliance_rated"].sum())),
        rate_row(year, "alliance_clients_below_cutoff", int((rated["alliance_below"] > 0).sum()),
                 len(rated)),
    ]  # fmt: skip


def _accounting(
    in_year: pd.DataFrame, year_clients: pd.DataFrame, year: str, alliance: bool = True
) -> pd.DataFrame:
    finished = in_year["finished"]
    rows = [
        ("outcomes", "episodes ended", len(in_year)),
        ("outcomes", "finished (included)", int(finished.sum())),
        ("outcomes", "excluded: fewer than two sessions", int((in_year["sessions"] < 2).sum())),
        (
            "outcomes",
            "excluded: no outcome score at a later session",
            int(((in_year["sessions"] >= 2) & ~finished).sum()),
        ),
    ]
    if alliance:
        rows += [
            ("early alliance", "episodes ended", len(year_clients)),
            ("early alliance", "eligible (included)", int(year_clients["eligible"].sum())),
        ]
        excluded = year_clients.loc[~year_clients["eligible"], "exclusion"]
        rows += [("early alliance", f"excluded: {reason}", int(n))
                 for reason, n in excluded.value_counts(sort=False).items()]  # fmt: skip
    return pd.DataFrame(rows, columns=["analysis", "reason", "count"]).assign(year=year)


SITE_COLUMNS = {
    "clients_seen": ("Clients seen", "clients_seen", "count"),
    "sessions_attended": ("Sessions attended", "sessions_attended", "count"),
    "ended": ("Episodes ended", "episodes_ended", "count"),
    "finished": ("Finished", "finished", "count"),
    "reliable_improvement": ("Reliable improvement", "reliable_improvement", "events"),
}
"""The columns of the table by site: heading, and the KPI cell their total equals."""


MIN_SITE_THERAPISTS = 3
"""A site is published on its own only when at least this many therapists saw clients there
in the year: the threshold rule of statistical disclosure control (at least three
contributors to a cell; Hundepool et al., 2012, sec. 4.2). Otherwise a site's counts are one
or two therapists' caseloads and results, and anyone who knows who works there reads them."""
OTHER_SITES = f"Other sites (fewer than {MIN_SITE_THERAPISTS} therapists each)"


def site_groups(seen: pd.DataFrame) -> dict[str, str]:
    """The published name of each site: its own, or :data:`OTHER_SITES` for the sites with
    fewer than :data:`MIN_SITE_THERAPISTS` therapists in the year, merged; while the merged
    sites still have fewer therapists between them, the smallest other site joins them.

    Examples
    --------
    >>> seen = pd.DataFrame({"site_id": ["A", "A", "A", "B", "C", "C"],
    ...                      "therapist_id": ["t1", "t2", "t3", "t4", "t5", "t6"]})
    >>> groups = site_groups(seen)
    >>> groups["A"], groups["B"] == groups["C"] == OTHER_SITES
    ('A', True)
    """
    therapists = seen.groupby("site_id")["therapist_id"].agg(set)
    order = sorted(therapists.index, key=lambda site: (len(therapists[site]), str(site)))
    merged: list = [site for site in order if len(therapists[site]) < MIN_SITE_THERAPISTS]
    rest = [site for site in order if site not in merged]
    while merged and rest and len(set().union(*therapists[merged])) < MIN_SITE_THERAPISTS:
        merged.append(rest.pop(0))
    return {site: OTHER_SITES if site in merged else site for site in order}


def _sites(in_year: pd.DataFrame, seen: pd.DataFrame, year: str) -> pd.DataFrame:
    """Counts by site: clients and sessions by the session's site and date (``seen``: the
    year's rows of :func:`_seen`), episodes by the site of their last session; sites with few
    therapists merged (:func:`site_groups`)."""
    if "site_id" not in in_year:
        return pd.DataFrame(columns=["year", "site_id", *SITE_COLUMNS])
    groups = site_groups(seen)

    def grouped(sites: pd.Series) -> pd.Series:  # a site not seen in the year had no therapist
        return sites.map(groups).fillna(OTHER_SITES).where(sites.notna())

    in_year = in_year.assign(site_id=grouped(in_year["site_id"]))
    seen = seen.assign(site_id=grouped(seen["site_id"]))
    improved = in_year["reliable_improvement"].astype("boolean").fillna(False).astype(int)
    episodes = (
        in_year.assign(improved=improved)
        .groupby("site_id")
        .agg(
            ended=("ended", "sum"),
            finished=("finished", "sum"),
            reliable_improvement=("improved", "sum"),
        )
    )
    by_session = seen.groupby("site_id").agg(
        clients_seen=("client_id", "nunique"), sessions_attended=("sessions", "sum")
    )
    counts = by_session.join(episodes, how="outer").fillna(0).astype(int)[list(SITE_COLUMNS)]
    return counts.reset_index().assign(year=year)


def _endings(year_clients: pd.DataFrame, alliance: Instrument | None, year: str) -> pd.DataFrame:
    data = year_clients.dropna(subset=["dropout", "alliance_early"])
    if alliance is None or alliance.cutoff is None:
        return pd.DataFrame(columns=["year", "early_alliance", "dropout", "planned"])
    low = data["alliance_early"] < alliance.cutoff
    groups = data.groupby(low.map({True: "below", False: "at_or_above"}))["dropout"]
    table = pd.DataFrame({"dropout": groups.sum(), "planned": groups.count() - groups.sum()})
    table = table.reindex(["below", "at_or_above"], fill_value=0).astype(int)
    return table.rename_axis("early_alliance").reset_index().assign(year=year)


def _alliance_bins(bins: Mapping[str, np.ndarray], alliance: Instrument | None,
                   year: str) -> pd.DataFrame:  # fmt: skip
    """The histogram of the year's alliance ratings (:func:`_alliance_histograms`)."""
    if alliance is None:
        return pd.DataFrame(columns=["year", "bin_low", "bin_high", "sessions"])
    edges = _alliance_edges(alliance)
    counts = bins.get(year, np.zeros(len(edges) - 1, dtype="int64"))
    return pd.DataFrame(
        {"year": year, "bin_low": edges[:-1], "bin_high": edges[1:], "sessions": counts}
    )


def _alliance_edges(alliance: Instrument) -> np.ndarray:
    """The alliance histogram's edges: ten equal bins over the instrument's range."""
    return np.linspace(alliance.total_min, alliance.total_max, 11)


def _early_alliance(eligible: pd.DataFrame, settings: ReportSettings, year: str) -> pd.DataFrame:
    if settings.alliance is None or len(eligible) < MIN_CLIENTS_FOR_MODELS:
        return pd.DataFrame()
    if not has_therapists(eligible):  # a cluster bootstrap needs clusters
        return pd.DataFrame()
    table = partial_correlation(
        eligible,
        "alliance_early",
        "outcome_final",
        "outcome_intake",
        model="early_alliance_year",
        cluster="therapist_id",
        bootstrap=settings.bootstrap,
        seed=settings.seed,
    )
    table = table[table["term"] == "partial_r_bootstrap"].assign(term="partial_r")
    rows = clustered_ols("early_alliance_year", eligible, "outcome_final",
                         ["outcome_intake", "alliance_early"], "therapist_id")  # fmt: skip
    slope = {**rows[-1], "term": "slope"}
    return pd.concat([table, pd.DataFrame([slope])], ignore_index=True).assign(year=year)


def _therapist_effects(
    eligible: pd.DataFrame, codes: dict[str, str], settings: ReportSettings, year: str
) -> pd.DataFrame:
    if eligible["therapist_id"].nunique() < 3 or len(eligible) < MIN_CLIENTS_FOR_MODELS:
        return pd.DataFrame()
    try:
        effects = fit_therapist_effects(eligible, codes=codes)
    except NotEstimable as exc:
        log.info("%s: therapist effects not computed: %s", year, exc)
        return pd.DataFrame()
    return effects.assign(year=year)


def other_outcomes(sessions: pd.DataFrame, outcome: str) -> list[str]:
    """The outcome measures in the data besides the configured ``outcome``, registry order:
    the report covers each (a PHQ-9 beside the ORS, a HAM-D beside the BDI-II).

    Examples
    --------
    >>> s = pd.DataFrame({"ors": [20.0], "phq9": [12.0], "srs": [36.0], "gad7": [None]})
    >>> other_outcomes(s, "ors")
    ['phq9']
    """
    return [key for key in _outcome_measures(sessions)
            if key != outcome and sessions[key].notna().any()]  # fmt: skip


def _outcome_measures(sessions: pd.DataFrame) -> list[str]:
    """The outcome measures with a column in ``sessions``, registry order."""
    return [k for k, inst in INSTRUMENTS.items() if inst.construct == "outcome" and k in sessions]


def _change_categories(
    in_year: pd.DataFrame, change: pd.DataFrame | None, year: str
) -> pd.DataFrame:
    """The year's finished clients by category of change (none without categories)."""
    from ..clinical_significance import CATEGORIES

    if change is None or change["category"].isna().all():
        return pd.DataFrame(columns=["year", "category", "clients", "basis"])
    keys = case_keys(in_year)
    finished = in_year.loc[in_year["finished"], keys]
    cases = finished.merge(change[[*keys, "category"]].dropna(), on=keys)
    counts = cases["category"].value_counts().reindex(list(CATEGORIES), fill_value=0)
    return pd.DataFrame({"year": year, "category": counts.index, "clients": counts.to_numpy()})


def _rupture_threshold(
    sessions: pd.DataFrame | ShardedTable, settings: ReportSettings
) -> float | None:
    """The drop that is a rupture: the configured one, or the reliable drop over all the
    sessions (:func:`~allianceanalysis.ruptures.reliable_drop`); None without an alliance or a
    threshold."""
    if settings.alliance is None:
        return None
    if settings.rupture_threshold is not None:
        return float(settings.rupture_threshold)
    try:
        return reliable_drop(sessions, settings.alliance)
    except NotEstimable as exc:
        log.info("rupture KPIs not computed: %s", exc)
        return None


def _signal_model(
    settings: ReportSettings, warning: pd.DataFrame | None
) -> ExpectedResponse | None:
    """The expected-response model in ``warning`` (the early-warning table: the model is not
    refitted) that flags clients not on track; None without the model or a reliable-change
    threshold to judge the signal by."""
    if warning is None or "intake_mean" not in set(warning["term"]):
        return None
    inst = get_instrument(settings.outcome)
    if inst.reliable_change_points is None:
        log.info("not-on-track KPIs not computed: %s has no reliable-change threshold", inst.short)
        return None
    return ExpectedResponse.from_table(warning, settings.outcome,
                                       settings.not_on_track_percentile)  # fmt: skip


RUPTURE_COUNTS = {"ratings": "rupture_ratings", "ruptures": "ruptures",
                  "judged": "ruptures_judged", "repaired": "ruptures_repaired"}  # fmt: skip
"""The per-case rupture counts (:func:`~allianceanalysis.ruptures.case_ruptures`) a case's
outcome row carries, and their names there."""
SIGNAL_FLAGS = {"signal": "signal", "deteriorated": "signal_deteriorated"}
"""The per-case not-on-track flags (:func:`~allianceanalysis.expected_response.signalled_cases`)
a case's outcome row carries, and their names there."""


def _case_flags(
    sessions: pd.DataFrame,
    settings: ReportSettings,
    alliance: Instrument | None,
    threshold: float | None,
    model: ExpectedResponse | None,
) -> list[pd.DataFrame]:
    """Per case, indexed by the case keys: the alliance ratings and those below the cut-off,
    the rupture counts (with a ``threshold``) and the not-on-track flags (with a ``model``)."""
    keys = case_keys(sessions)
    flags = []
    if alliance is not None and alliance.cutoff is not None:
        scores = sessions[alliance.key]
        counts = pd.DataFrame({"alliance_rated": scores.notna(),
                               "alliance_below": scores < alliance.cutoff})  # fmt: skip
        flags.append(counts.groupby([sessions[k] for k in keys]).sum())
    if threshold is not None:
        detected = detect_ruptures(sessions, settings.alliance, threshold=threshold,
                                   repair_within=settings.repair_within)  # fmt: skip
        cases = case_ruptures(detected).set_index(keys)
        flags.append(cases[list(RUPTURE_COUNTS)].rename(columns=RUPTURE_COUNTS))
    if model is not None:
        cases = signalled_cases(not_on_track(sessions, model), settings.outcome)
        flags.append(cases[list(SIGNAL_FLAGS)].rename(columns=SIGNAL_FLAGS))
    return flags


@dataclass
class _Cases:
    """What the report's years are cut from, of one piece of the sessions (all of them, or a
    shard): the cases' rows and the sessions' counts, no session row.

    Attributes
    ----------
    outcomes : :func:`~allianceanalysis.effects.client_outcomes` of the outcome, with each
        case's flags (:func:`_case_flags`).
    clients : :func:`~allianceanalysis.derive.client_table` with the case's ``year``.
    measures : every other outcome measure with a column, its ``client_outcomes``.
    scored : the other outcome measures with a score.
    seen : :func:`_seen`.
    bins : the alliance histogram of the sessions of the cases ended in each year.
    """

    outcomes: pd.DataFrame
    clients: pd.DataFrame
    measures: dict[str, pd.DataFrame]
    scored: set[str]
    seen: pd.DataFrame
    bins: dict[str, np.ndarray]


class _Kept:
    """The pieces' :class:`_Cases`, kept (on disk for a dataset in shards,
    :class:`~allianceanalysis.shards.Spilled`) and read back a reporting year at a time
    (:meth:`of_year`): a year's rows of all the pieces in memory, not the decade's."""

    def __init__(self, on_disk: bool) -> None:
        self._on_disk = on_disk
        self._tables: dict[str, Spilled] = {}
        self.scored: set[str] = set()
        self.bins: dict[str, np.ndarray] = {}
        self.years: set[str] = set()
        self.therapists: dict = {}
        """The therapists seen, in the order of the pieces (a dict as an ordered set)."""

    def add(self, piece: _Cases) -> None:
        """Keep one piece's tables and add its counts."""
        tables = {"outcomes": piece.outcomes, "clients": piece.clients, "seen": piece.seen,
                  **piece.measures}  # fmt: skip
        for name, table in tables.items():
            if name not in self._tables:
                self._tables[name] = Spilled(self._on_disk)
            self._tables[name].add(table)
        self.scored |= piece.scored
        for year, counts in piece.bins.items():
            self.bins[year] = self.bins[year] + counts if year in self.bins else counts
        self.years.update(piece.outcomes["year"].dropna().unique())
        self.therapists.update(dict.fromkeys(piece.seen["therapist_id"].unique()))

    def measures(self) -> set[str]:
        """The other outcome measures with per-case rows (:attr:`_Cases.measures`)."""
        return set(self._tables) - {"outcomes", "clients", "seen"}

    def of_year(self, name: str, year: str) -> pd.DataFrame:
        """The rows of the table ``name`` (``outcomes``, ``clients``, ``seen`` or an outcome
        measure's key) of the cases ended in ``year`` (``seen``: of the sessions dated in it),
        all the pieces' together in case order (``seen`` concatenated): the whole data's
        (a case lies in one shard, :mod:`allianceanalysis.shards`)."""
        parts = self._tables[name].equal("year", year)
        parts = [p for p in parts if len(p)] or parts[:1]
        if name == "seen":
            return pd.concat(parts, ignore_index=True)
        return together(parts)

    def close(self) -> None:
        """Remove the pieces' files."""
        for table in self._tables.values():
            table.close()


def _seen(sessions: pd.DataFrame, start_month: int) -> pd.DataFrame:
    """The sessions counted by the reporting year they are dated in, site, therapist and
    client (``year, site_id, therapist_id, client_id, sessions``): what the activity KPIs and
    the table by site count, a row per client and year instead of per session."""
    dated = session_years(sessions, start_month)
    site = sessions["site_id"] if "site_id" in sessions else pd.Series(np.nan, index=sessions.index)
    by = [dated.rename("year"), site.rename("site_id"), sessions["therapist_id"],
          sessions["client_id"]]  # fmt: skip
    counts = sessions.groupby(by, dropna=False, sort=False, observed=True).size()
    return counts.rename("sessions").reset_index().dropna(subset=["year"])


CASE_FLAGS = ("reliable_improvement", "reliable_deterioration", "clinical_start", "recovered",
              "reliable_recovery", "signal", "signal_deteriorated")  # fmt: skip
"""The per-case flags of the report's outcome rows, kept as nullable booleans (as Python
objects they took 35 bytes a case each: a third of the rows' memory at a million cases)."""


def _narrow(outcomes: pd.DataFrame) -> pd.DataFrame:
    """:func:`client_outcomes` rows with what the report reads: the flags as nullable
    booleans, without the ending's status and date and the clinical range at the end."""
    outcomes = outcomes.drop(columns=["end_status", "end_date", "clinical_end"], errors="ignore")
    flags = [c for c in CASE_FLAGS if c in outcomes]
    return outcomes.astype(dict.fromkeys(flags, "boolean"))


def _piece_cases(
    sessions: pd.DataFrame,
    settings: ReportSettings,
    alliance: Instrument | None,
    threshold: float | None,
    model: ExpectedResponse | None,
) -> _Cases:
    """:class:`_Cases` of one piece of the sessions (all of them, or a shard)."""
    keys = case_keys(sessions)
    start = settings.year_start_month
    outcomes = client_outcomes(sessions, settings.outcome, start_month=start)
    for flags in _case_flags(sessions, settings, alliance, threshold, model):
        outcomes = outcomes.merge(flags, left_on=keys, right_index=True, how="left")
    years = outcomes[[*keys, "year"]]
    clients = client_table(sessions, settings.outcome, settings.alliance, settings.early_session)
    bins = {}
    if alliance is not None:
        case_year = sessions[keys].merge(years, on=keys, how="left")["year"].to_numpy()
        scores = sessions[alliance.key].to_numpy(dtype=float)
        rated = ~np.isnan(scores)
        for year in pd.unique(case_year[rated & pd.notna(case_year)]):
            in_year = rated & (case_year == year)
            bins[year] = np.histogram(scores[in_year], bins=_alliance_edges(alliance))[0]
    measures = _outcome_measures(sessions)
    return _Cases(
        outcomes=_narrow(outcomes),
        clients=clients.merge(years, on=keys, how="left"),
        measures={
            key: _narrow(client_outcomes(sessions, key, start_month=start))
            for key in measures
            if key != settings.outcome
        },
        scored={key for key in measures if sessions[key].notna().any()},
        seen=_seen(sessions, start),
        bins=bins,
    )


def _early_warning_kpis(
    in_year: pd.DataFrame, ruptures: bool, signals: bool, year: str
) -> list[dict]:
    """Rupture (with ``ruptures``) and not-on-track (with ``signals``) KPIs of the cases ended
    in the year, from the flags on their rows (:func:`_case_flags`)."""
    rows = []
    if ruptures:
        cases = in_year.dropna(subset=["rupture_ratings"])
        rated = cases[cases["rupture_ratings"] >= 2]
        rows += [
            rate_row(year, "clients_with_rupture", int((rated["ruptures"] > 0).sum()), len(rated)),
            rate_row(year, "ruptures_repaired", int(cases["ruptures_repaired"].sum()),
                     int(cases["ruptures_judged"].sum())),
        ]  # fmt: skip
    if signals:
        cases = in_year.dropna(subset=["signal"])
        signal = cases["signal"].astype(bool)
        deteriorated = cases["signal_deteriorated"].astype(bool)
        rows += [
            rate_row(year, "not_on_track", int(signal.sum()), len(cases)),
            rate_row(year, "not_on_track_deteriorated", int((signal & deteriorated).sum()),
                     int(signal.sum())),
        ]  # fmt: skip
    return rows


def report_tables(
    sessions: pd.DataFrame | ShardedTable,
    settings: ReportSettings,
    warning: pd.DataFrame | None = None,
    codes: Mapping[str, str] | None = None,
    change: pd.DataFrame | None = None,
    change_basis: str = "",
) -> ReportTables:
    """Compute every reporting year's numbers (step 1 of the report; no suppression yet).

    The sessions are read a piece at a time (all of them, or one shard of a
    :class:`~allianceanalysis.shards.ShardedTable`) into per-case rows and per-year counts,
    which are put together before the years are cut from them: a dataset in shards gives the
    tables of the whole (the ruptures judged by one threshold over all the shards).

    Parameters
    ----------
    sessions : pandas.DataFrame or ShardedTable
        Validated sessions (the session data contract), whole or in shards.
    settings : ReportSettings
    warning : pandas.DataFrame, optional
        The early-warning table (``tables/early_warning.csv``), whose expected-response model
        flags clients not on track; without it the not-on-track KPIs are left out.
    codes : mapping, optional
        Therapist ID to pseudonymous code (the workflow's ``derived/therapist_codes.csv``,
        :mod:`allianceanalysis.pseudonyms`); without it, codes from a fresh random key.
    change : pandas.DataFrame, optional
        Each case's category of change (case keys and ``category``; the workflow's
        ``derived/clinical_significance.parquet``); without it, no table of categories.
    change_basis : str
        The index, cut-off and reliability the categories were decided by, for the report.

    Returns
    -------
    ReportTables

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=300, n_therapists=15, seed=2).sessions
    >>> tables = report_tables(s, ReportSettings(dataset="demo", bootstrap=99))
    >>> bool(tables.kpis.query("kpi == 'episodes_ended'")["estimate"].sum() > 0)
    True
    """
    alliance = None if settings.alliance is None else get_instrument(settings.alliance)
    threshold = _rupture_threshold(sessions, settings)
    model = _signal_model(settings, warning)
    kept = _Kept(on_disk=not isinstance(sessions, pd.DataFrame))
    try:
        for piece in frames(sessions):
            kept.add(_piece_cases(piece, settings, alliance, threshold, model))
            del piece
        if codes is None:
            codes = therapist_codes(list(kept.therapists))
        return _year_tables(kept, settings, alliance, threshold, model, codes, change,
                            change_basis)  # fmt: skip
    finally:
        kept.close()


def _year_tables(
    kept: _Kept,
    settings: ReportSettings,
    alliance: Instrument | None,
    threshold: float | None,
    model: ExpectedResponse | None,
    codes: Mapping[str, str],
    change: pd.DataFrame | None,
    change_basis: str,
) -> ReportTables:
    """:func:`report_tables` from the pieces' cases, a reporting year at a time."""
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in ReportTables.names()}
    measures = kept.measures()
    others = [k for k in INSTRUMENTS if k in kept.scored and k != settings.outcome]
    other_kpis: dict[str, list[pd.DataFrame]] = {key: [] for key in others}
    nhs = []
    for year in sorted(kept.years):
        in_year = kept.of_year("outcomes", year)
        year_clients = kept.of_year("clients", year)
        year_seen = kept.of_year("seen", year)
        eligible = year_clients[year_clients["eligible"]]
        dropout = in_year["dropout"]
        extra = [
            *_alliance_kpis(in_year, alliance, year),
            rate_row(year, "unplanned_endings", int(dropout.sum()), len(dropout)),
            *_early_warning_kpis(in_year, threshold is not None, model is not None, year),
        ]
        parts["kpis"] += [
            activity(year_seen["client_id"].nunique(), int(year_seen["sessions"].sum()),
                     in_year, year),
            outcome_kpis(in_year, settings.outcome, year, norms=settings.severity_norms),
            pd.DataFrame(extra, columns=KPI_COLUMNS),
        ]  # fmt: skip
        parts["accounting"].append(_accounting(in_year, year_clients, year, alliance is not None))
        bands = session_bands(in_year["sessions"])
        parts["session_bands"].append(
            pd.DataFrame({"year": year, "band": bands.index, "clients": bands.to_numpy()})
        )
        parts["sites"].append(_sites(in_year, year_seen, year))
        parts["endings"].append(_endings(year_clients, alliance, year))
        finished = in_year[in_year["finished"]].dropna(subset=["reliable_improvement"])
        if len(finished) and has_therapists(finished):
            table = funnel(
                finished.assign(therapist=finished["therapist_id"].map(codes)),
                "therapist",
                "reliable_improvement",
            )
            parts["funnel"].append(table.assign(year=year, overall=table.attrs["overall"]))
        parts["alliance_bins"].append(_alliance_bins(kept.bins, alliance, year))
        parts["early_alliance"].append(_early_alliance(eligible, settings, year))
        parts["therapist_effects"].append(_therapist_effects(eligible, codes, settings, year))
        parts["change_categories"].append(
            _change_categories(in_year, change, year).assign(basis=change_basis)
        )
        for key in others:
            kpis = outcome_kpis(kept.of_year(key, year), key, year)
            other_kpis[key].append(kpis.assign(kpi=key + ":" + kpis["kpi"]))
        if {"phq9", "gad7"} <= {settings.outcome, *measures}:  # a case's year is each measure's
            phq, gad = (in_year if key == settings.outcome else kept.of_year(key, year)
                        for key in ("phq9", "gad7"))  # fmt: skip
            nhs.append(nhs_recovery(phq, gad))
    for key in others:
        parts["kpis"] += other_kpis[key]
    parts["kpis"] += nhs
    return ReportTables(**{name: _stack(tables) for name, tables in parts.items()})


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The years' rows of one table together; with no rows, the columns of the years' (empty)
    tables, so that a table with nothing to count (no sites) keeps its shape."""
    filled = [f for f in frames if len(f)]
    if filled:
        return pd.concat(filled, ignore_index=True)
    columns = max((list(f.columns) for f in frames), key=len, default=[])
    return pd.DataFrame(columns=list(dict.fromkeys(["year", *columns])))
