"""The program evaluator's annual report: one self-contained HTML and PDF per reporting year.

Two steps, so that nothing is refitted at render time:

1. :func:`report_tables` computes every number a report needs, for every reporting year, as
   tidy tables (:class:`ReportTables`: KPIs with their numerators and denominators, the
   accounting of cases, counts by site, endings by early alliance, the funnel table, the
   alliance histogram, the year's early-alliance estimates and shrunken therapist effects).
   These are internal: they hold unsuppressed counts.
2. :func:`annual_reports` reads only those tables, passes every published number through
   disclosure control (:mod:`allianceanalysis.disclosure`) in one place (:class:`Publisher`),
   draws the figures and writes the text; :func:`render_html` and :func:`render_pdf` turn
   each year's context into files with a jinja2 template.

Examples
--------
>>> from allianceanalysis.simulate import simulate_study
>>> study = simulate_study(n_clients=150, n_therapists=8, seed=3)
>>> settings = ReportSettings(dataset="demo", bootstrap=200)
>>> tables = report_tables(study.sessions, settings)
>>> reports = annual_reports(tables, settings)
>>> sorted(reports)
['2024/25', '2025/26']
>>> html = render_html(reports["2025/26"])
"""

from __future__ import annotations

import base64
import calendar
import io
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from .derive import case_keys, client_table
from .disclosure import SUPPRESSED, CountSystem, DisclosurePolicy, Protected
from .effects import (
    FUNNEL_LIMITS,
    KPI_COLUMNS,
    SeverityNorms,
    activity,
    client_outcomes,
    difference_of_proportions,
    funnel,
    nhs_talking_therapies,
    outcome_kpis,
    rate_row,
    session_bands,
    session_years,
)
from .errors import ConfigError, NotEstimable
from .expected_response import (
    DEFAULT_PERCENTILE,
    ExpectedResponse,
    not_on_track,
    signalled_cases,
)
from .figures import MAX_LABELLED_THERAPISTS, PALETTE, apa_r, cutoff_line, therapist_caterpillar
from .instruments import Instrument, get_instrument
from .models import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_SEED,
    clustered_ols,
    partial_correlation,
    therapist_codes,
)
from .models import therapist_effects as fit_therapist_effects
from .ruptures import DEFAULT_REPAIR_WITHIN, case_ruptures, detect_ruptures
from .tables import ApaTable

log = logging.getLogger("allianceanalysis")

__all__ = [
    "KPI_LABELS",
    "Publisher",
    "ReportSettings",
    "ReportTables",
    "annual_reports",
    "render_html",
    "render_pdf",
    "report_tables",
    "summarise_log",
    "year_file_name",
]

KPI_LABELS = {
    "clients_seen": "Clients seen in the year",
    "sessions_attended": "Sessions attended in the year",
    "episodes_ended": "Episodes ended in the year",
    "sessions_per_client_median": "Sessions per client (median, quartiles)",
    "paired_data_completeness": "Paired-data completeness (two or more sessions)",
    "finished": "Clients who finished (two or more sessions, paired scores)",
    "mean_improvement": "Mean improvement",
    "cohens_d": "Cohen's d (pre-SD standardiser)",
    "severity_adjusted_es": "Severity-adjusted effect size (clinical range at start)",
    "reliable_improvement": "Reliable improvement",
    "reliable_deterioration": "Reliable deterioration",
    "clinical_start": "In the clinical range at start",
    "recovery": "Recovery (clinically significant change)",
    "reliable_recovery": "Reliable recovery",
    "nhs_finished": "Finished a course of treatment (NHS TT)",
    "nhs_caseness_start": "At caseness at start (NHS TT)",
    "nhs_recovery": "Recovery (NHS TT)",
    "nhs_reliable_improvement": "Reliable improvement (NHS TT)",
    "nhs_reliable_deterioration": "Reliable deterioration (NHS TT)",
    "nhs_reliable_recovery": "Reliable recovery (NHS TT)",
    "alliance_sessions_below_cutoff": "Sessions with an alliance rating below the cut-off",
    "alliance_clients_below_cutoff": "Clients with any alliance rating below the cut-off",
    "unplanned_endings": "Unplanned endings (dropout)",
    "clients_with_rupture": "Clients with an alliance rupture (of those rated twice or more)",
    "ruptures_repaired": "Ruptures repaired within the window",
    "not_on_track": "Clients flagged not on track before their last session",
    "not_on_track_deteriorated": "Flagged clients who deteriorated reliably",
}
"""How each KPI reads in the report."""

KPI_SECTIONS = {
    "activity": [
        "clients_seen",
        "sessions_attended",
        "episodes_ended",
        "sessions_per_client_median",
        "paired_data_completeness",
        "finished",
    ],
    "outcomes": [
        "mean_improvement",
        "cohens_d",
        "severity_adjusted_es",
        "reliable_improvement",
        "reliable_deterioration",
        "clinical_start",
        "recovery",
        "reliable_recovery",
    ],
    "nhs": [
        "nhs_finished",
        "nhs_caseness_start",
        "nhs_recovery",
        "nhs_reliable_improvement",
        "nhs_reliable_deterioration",
        "nhs_reliable_recovery",
    ],
    "alliance": ["alliance_sessions_below_cutoff", "alliance_clients_below_cutoff"],
    "dropout": ["unplanned_endings"],
    "early_warning": [
        "clients_with_rupture",
        "ruptures_repaired",
        "not_on_track",
        "not_on_track_deteriorated",
    ],
}
"""Which KPIs each section of the report shows, in order."""

MIN_CLIENTS_FOR_MODELS = 10
"""Fewest eligible clients in a year for the early-alliance estimate and therapist effects."""


@dataclass(frozen=True)
class ReportSettings:
    """What an annual report depends on besides the data (workflow key ``annual_report`` and
    the dataset's instruments)."""

    dataset: str
    outcome: str = "ors"
    alliance: str = "srs"
    early_session: int = 3
    year_start_month: int = 4
    policy: DisclosurePolicy = field(default_factory=DisclosurePolicy)
    bootstrap: int = DEFAULT_BOOTSTRAP
    seed: int = DEFAULT_SEED
    severity_norms: SeverityNorms | None = None
    rupture_threshold: float | None = None
    repair_within: int = DEFAULT_REPAIR_WITHIN
    not_on_track_percentile: float = DEFAULT_PERCENTILE


@dataclass
class ReportTables:
    """Every number of every year's report, as tidy tables (internal: unsuppressed).

    Attributes
    ----------
    kpis : :data:`~allianceanalysis.effects.KPI_COLUMNS`, every year.
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


def _alliance_kpis(year_sessions: pd.DataFrame, alliance: Instrument, year: str) -> list[dict]:
    data = year_sessions.dropna(subset=[alliance.key])
    if alliance.cutoff is None:
        return []
    below = data[alliance.key] < alliance.cutoff
    by_client = below.groupby([data[k] for k in case_keys(data)]).any()
    return [
        rate_row(year, "alliance_sessions_below_cutoff", int(below.sum()), len(below)),
        rate_row(year, "alliance_clients_below_cutoff", int(by_client.sum()), len(by_client)),
    ]


def _accounting(in_year: pd.DataFrame, year_clients: pd.DataFrame, year: str) -> pd.DataFrame:
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
        ("early alliance", "episodes ended", len(year_clients)),
        ("early alliance", "eligible (included)", int(year_clients["eligible"].sum())),
    ]
    excluded = year_clients.loc[~year_clients["eligible"], "exclusion"].value_counts(sort=False)
    rows += [("early alliance", f"excluded: {reason}", int(n)) for reason, n in excluded.items()]
    return pd.DataFrame(rows, columns=["analysis", "reason", "count"]).assign(year=year)


SITE_COLUMNS = {
    "clients_seen": ("Clients seen", "clients_seen", "count"),
    "sessions_attended": ("Sessions attended", "sessions_attended", "count"),
    "ended": ("Episodes ended", "episodes_ended", "count"),
    "finished": ("Finished", "finished", "count"),
    "reliable_improvement": ("Reliable improvement", "reliable_improvement", "events"),
}
"""The columns of the table by site: heading, and the KPI cell their total equals."""


def _sites(in_year: pd.DataFrame, seen: pd.DataFrame, year: str) -> pd.DataFrame:
    """Counts by site: clients and sessions by the session's site and date, episodes by the
    site of their last session."""
    if "site_id" not in in_year:
        return pd.DataFrame(columns=["year", "site_id", *SITE_COLUMNS])
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
        clients_seen=("client_id", "nunique"), sessions_attended=("session", "size")
    )
    counts = by_session.join(episodes, how="outer").fillna(0).astype(int)[list(SITE_COLUMNS)]
    return counts.reset_index().assign(year=year)


def _endings(year_clients: pd.DataFrame, alliance: Instrument, year: str) -> pd.DataFrame:
    data = year_clients.dropna(subset=["dropout", "alliance_early"])
    if alliance.cutoff is None:
        return pd.DataFrame(columns=["year", "early_alliance", "dropout", "planned"])
    low = data["alliance_early"] < alliance.cutoff
    groups = data.groupby(low.map({True: "below", False: "at_or_above"}))["dropout"]
    table = pd.DataFrame({"dropout": groups.sum(), "planned": groups.count() - groups.sum()})
    table = table.reindex(["below", "at_or_above"], fill_value=0).astype(int)
    return table.rename_axis("early_alliance").reset_index().assign(year=year)


def _alliance_bins(year_sessions: pd.DataFrame, alliance: Instrument, year: str) -> pd.DataFrame:
    edges = np.linspace(alliance.total_min, alliance.total_max, 11)
    counts, _ = np.histogram(year_sessions[alliance.key].dropna(), bins=edges)
    return pd.DataFrame(
        {"year": year, "bin_low": edges[:-1], "bin_high": edges[1:], "sessions": counts}
    )


def _early_alliance(eligible: pd.DataFrame, settings: ReportSettings, year: str) -> pd.DataFrame:
    if len(eligible) < MIN_CLIENTS_FOR_MODELS:
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
        effects = fit_therapist_effects(eligible, seed=settings.seed, codes=codes)
    except NotEstimable as exc:
        log.info("%s: therapist effects not computed: %s", year, exc)
        return pd.DataFrame()
    return effects.assign(year=year)


def _rupture_cases(sessions: pd.DataFrame, settings: ReportSettings) -> pd.DataFrame | None:
    """Per case: alliance ratings, ruptures, ruptures whose repair window is complete (or that
    were repaired) and those repaired; None when the instrument has no rupture threshold."""
    try:
        detected = detect_ruptures(sessions, settings.alliance,
                                   threshold=settings.rupture_threshold,
                                   repair_within=settings.repair_within)  # fmt: skip
    except NotEstimable as exc:
        log.info("rupture KPIs not computed: %s", exc)
        return None
    return case_ruptures(detected).set_index(case_keys(detected))


def _signal_cases(
    sessions: pd.DataFrame, settings: ReportSettings, warning: pd.DataFrame | None
) -> pd.DataFrame | None:
    """Per case, the not-on-track signal of the expected-response model in ``warning`` (the
    early-warning table: the model is not refitted); None without the model or a
    reliable-change threshold."""
    if warning is None or "intake_mean" not in set(warning["term"]):
        return None
    model = ExpectedResponse.from_table(warning, settings.outcome,
                                        settings.not_on_track_percentile)  # fmt: skip
    try:
        return signalled_cases(not_on_track(sessions, model), settings.outcome)
    except NotEstimable as exc:
        log.info("not-on-track KPIs not computed: %s", exc)
        return None


def _early_warning_kpis(
    in_year: pd.DataFrame,
    ruptures: pd.DataFrame | None,
    signals: pd.DataFrame | None,
    year: str,
) -> list[dict]:
    """Rupture and not-on-track KPIs of the cases ended in the year."""
    keys = case_keys(in_year)
    index = pd.MultiIndex.from_frame(in_year[keys]) if len(keys) > 1 else pd.Index(in_year[keys[0]])
    rows = []
    if ruptures is not None:
        cases = ruptures.reindex(index).dropna(subset=["ratings"])
        rated = cases[cases["ratings"] >= 2]
        rows += [
            rate_row(year, "clients_with_rupture", int((rated["ruptures"] > 0).sum()), len(rated)),
            rate_row(year, "ruptures_repaired", int(cases["repaired"].sum()),
                     int(cases["judged"].sum())),
        ]  # fmt: skip
    if signals is not None:
        cases = signals.reindex(index).dropna(subset=["signal"])
        signal = cases["signal"].astype(bool)
        deteriorated = cases["deteriorated"].astype(bool)
        rows += [
            rate_row(year, "not_on_track", int(signal.sum()), len(cases)),
            rate_row(year, "not_on_track_deteriorated", int((signal & deteriorated).sum()),
                     int(signal.sum())),
        ]  # fmt: skip
    return rows


def report_tables(
    sessions: pd.DataFrame, settings: ReportSettings, warning: pd.DataFrame | None = None
) -> ReportTables:
    """Compute every reporting year's numbers (step 1 of the report; no suppression yet).

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions (the session data contract).
    settings : ReportSettings
    warning : pandas.DataFrame, optional
        The early-warning table (``tables/early_warning.csv``), whose expected-response model
        flags clients not on track; without it the not-on-track KPIs are left out.

    Returns
    -------
    ReportTables
    """
    alliance = get_instrument(settings.alliance)
    keys = case_keys(sessions)
    outcomes = client_outcomes(sessions, settings.outcome, start_month=settings.year_start_month)
    clients = client_table(sessions, settings.outcome, settings.alliance, settings.early_session)
    clients = clients.merge(outcomes[[*keys, "year"]], on=keys, how="left")
    case_year = sessions[keys].merge(outcomes[[*keys, "year"]], on=keys, how="left")["year"]
    dated = session_years(sessions, settings.year_start_month)
    codes = therapist_codes(sessions["therapist_id"].unique(), settings.seed)
    ruptures, signals = _rupture_cases(sessions, settings), _signal_cases(sessions, settings,
                                                                          warning)  # fmt: skip
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in ReportTables.names()}
    for year in sorted(outcomes["year"].dropna().unique()):
        in_year = outcomes[outcomes["year"] == year]
        year_clients = clients[clients["year"] == year]
        year_sessions = sessions[(case_year == year).to_numpy()]
        seen = sessions[(dated == year).fillna(False).to_numpy()]
        eligible = year_clients[year_clients["eligible"]]
        dropout = in_year["dropout"]
        extra = [
            *_alliance_kpis(year_sessions, alliance, year),
            rate_row(year, "unplanned_endings", int(dropout.sum()), len(dropout)),
            *_early_warning_kpis(in_year, ruptures, signals, year),
        ]
        parts["kpis"] += [
            activity(seen, outcomes, year),
            outcome_kpis(in_year, settings.outcome, year, norms=settings.severity_norms),
            pd.DataFrame(extra, columns=KPI_COLUMNS),
        ]
        parts["accounting"].append(_accounting(in_year, year_clients, year))
        bands = session_bands(in_year["sessions"])
        parts["session_bands"].append(
            pd.DataFrame({"year": year, "band": bands.index, "clients": bands.to_numpy()})
        )
        parts["sites"].append(_sites(in_year, seen, year))
        parts["endings"].append(_endings(year_clients, alliance, year))
        finished = in_year[in_year["finished"]].dropna(subset=["reliable_improvement"])
        if len(finished):
            table = funnel(
                finished.assign(therapist=finished["therapist_id"].map(codes)),
                "therapist",
                "reliable_improvement",
            )
            parts["funnel"].append(table.assign(year=year, overall=table.attrs["overall"]))
        parts["alliance_bins"].append(_alliance_bins(year_sessions, alliance, year))
        parts["early_alliance"].append(_early_alliance(eligible, settings, year))
        parts["therapist_effects"].append(_therapist_effects(eligible, codes, settings, year))
    nhs = nhs_talking_therapies(sessions, start_month=settings.year_start_month)
    if nhs is not None:
        parts["kpis"].append(nhs)
    return ReportTables(**{name: _stack(frames) for name, frames in parts.items()})


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The years' rows of one table together; with no rows, the columns of the years' (empty)
    tables, so that a table with nothing to count (no sites) keeps its shape."""
    filled = [f for f in frames if len(f)]
    if filled:
        return pd.concat(filled, ignore_index=True)
    columns = max((list(f.columns) for f in frames), key=len, default=[])
    return pd.DataFrame(columns=list(dict.fromkeys(["year", *columns])))


OUTCOME_BASE_PRIORITY, COUNT_PRIORITY, RATE_PRIORITY = 4, 3, 2
"""Secondary suppression hides the cells of breakdown tables, figures and totals (priority 0
and 1) before the parts of a KPI rate (2), before a headline count (3), and the clients who
finished (the base of every outcome KPI: hiding it hides them all) last. When the episodes
ended and the clients who finished differ by a small count, one of the two must go: it is
then the episodes ended (which hides the dropout rate and the median sessions with it)."""


IMPLIED_BY_KPIS = (
    (("finished", "count"),
     (("reliable_improvement", "events"), ("reliable_deterioration", "events")),
     "finished with no reliable change"),
    (("recovery", "events"), (("reliable_recovery", "events"),),
     "recovered without reliable improvement"),
    (("nhs_finished", "count"),
     (("nhs_reliable_improvement", "events"), ("nhs_reliable_deterioration", "events")),
     "finished with no reliable change (NHS)"),
    (("nhs_recovery", "events"), (("nhs_reliable_recovery", "events"),),
     "recovered without reliable improvement (NHS)"),
    (("episodes_ended", "count"), (("alliance_clients_below_cutoff", "n"),),
     "ended without an alliance rating"),
)  # fmt: skip
"""Counts never published but implied by KPIs: ``(total, parts, what)``, total = parts + the
rest (a KPI's events that are a subset of another's, as reliable recovery of recovery)."""


def _key(kpi: str, part: str) -> tuple[str, str, str]:
    return ("kpi", kpi, part)


class Publisher:
    """Every number one year's report publishes passes through here (disclosure control).

    All the year's published counts are registered in one
    :class:`~allianceanalysis.disclosure.CountSystem`, with the equations that link them: each
    rate's ``n = events + non-events``, each table's totals, and every place where the same
    count appears twice or one table adds up to another (finished clients by site and in
    total; the accounting table, the sessions-per-client table and the KPIs). Suppression is
    solved jointly, so a cell hidden in one table cannot be worked back from another, and
    logged for the appendix.

    Parameters
    ----------
    part : mapping
        The year's rows of each of :class:`ReportTables`' tables.
    policy : DisclosurePolicy
    alliance : Instrument
    year : str
    validation : mapping, optional
        The validation summary's ``rows`` (read, used, excluded) and ``excluded_by_rule``,
        published in the data-quality appendix.
    """

    def __init__(
        self,
        part: Mapping[str, pd.DataFrame],
        policy: DisclosurePolicy,
        alliance: Instrument,
        year: str,
        validation: Mapping[str, Any] | None = None,
    ) -> None:
        self.policy, self.year = policy, year
        self.system = CountSystem(policy)
        self.counted_rows: dict[str, str] = {}
        self.kpis = part["kpis"].set_index("kpi")
        self._register_kpis()
        self.bands = (
            part["session_bands"]
            .set_index("band")[["clients"]]
            .rename(columns={"clients": "Clients"})
        )
        self._register(self.bands, "bands", f"Sessions per client ({year})", column_totals=True)
        self._same(("bands", "total", 0), _key("episodes_ended", "count"))
        two_plus = _key("paired_data_completeness", "n")
        if two_plus in self.system.values:  # episodes ended = one session + two or more
            self.system.equation(_key("episodes_ended", "count"), [("bands", 0, 0), two_plus])
        self.accounting = self._register_accounting(part["accounting"])
        self.sites = self._register_sites(part["sites"])
        self.endings = self._register_endings(part["endings"], alliance)
        self.bins = self._register_bins(part["alliance_bins"], alliance)
        self.funnel = self._register_funnel(part["funnel"])
        self.validation = self._register_validation(validation or {})
        self._register_implied()
        self.system.solve()

    @property
    def log(self) -> list[dict[str, str]]:
        """What was suppressed, where and why."""
        return self.system.log

    def _register(self, counts: pd.DataFrame, prefix: str, name: str, **totals: bool) -> None:
        self.system.table(counts, name=name, prefix=prefix, **totals)

    def _same(self, a: tuple, b: tuple) -> None:
        if a in self.system.values and b in self.system.values:
            self.system.equation(a, [b])

    def _register_kpis(self) -> None:
        name = f"Key figures ({self.year})"
        for kpi, row in self.kpis.iterrows():
            label = KPI_LABELS.get(kpi, kpi)
            if row["unit"] == "proportion":
                n, events = row["denominator"], row["numerator"]
                for part, value in (("events", events), ("non_events", n - events), ("n", n)):
                    column = part.replace("_", "-")
                    self.system.cell(_key(kpi, part), value, table=name, row=label, column=column,
                                     priority=RATE_PRIORITY)  # fmt: skip
                self.system.equation(_key(kpi, "n"), [_key(kpi, "events"), _key(kpi, "non_events")])
            elif pd.notna(row["numerator"]):
                priority = OUTCOME_BASE_PRIORITY if kpi == "finished" else COUNT_PRIORITY
                self.system.cell(_key(kpi, "count"), row["numerator"], table=name, row=label,
                                 priority=priority)  # fmt: skip
            elif pd.notna(row["denominator"]):
                self.system.cell(_key(kpi, "n"), row["denominator"], table=name, row=label,
                                 column="n", priority=RATE_PRIORITY)  # fmt: skip
        ended, finished = _key("episodes_ended", "count"), _key("finished", "count")
        for kpi in ("unplanned_endings", "sessions_per_client_median"):
            self._same(ended, _key(kpi, "n"))
        for kpi in (
            "mean_improvement",
            "cohens_d",
            "reliable_improvement",
            "reliable_deterioration",
            "clinical_start",
        ):
            self._same(finished, _key(kpi, "n"))
        self._same(finished, _key("paired_data_completeness", "events"))
        for kpi in ("recovery", "reliable_recovery", "severity_adjusted_es"):
            self._same(_key("clinical_start", "events"), _key(kpi, "n"))
        for kpi in ("nhs_caseness_start", "nhs_reliable_improvement", "nhs_reliable_deterioration"):
            self._same(_key("nhs_finished", "count"), _key(kpi, "n"))
        for kpi in ("nhs_recovery", "nhs_reliable_recovery"):
            self._same(_key("nhs_caseness_start", "events"), _key(kpi, "n"))
        self._same(_key("not_on_track", "events"), _key("not_on_track_deteriorated", "n"))

    def _register_accounting(self, accounting: pd.DataFrame) -> dict[str, pd.DataFrame]:
        tables = {}
        links = {
            "finished (included)": _key("finished", "count"),
            "excluded: fewer than two sessions": ("bands", 0, 0),
            "excluded: no outcome score at a later session": _key(
                "paired_data_completeness", "non_events"
            ),
        }
        for analysis, rows in accounting.groupby("analysis", sort=False):
            counts = rows.set_index("reason")[["count"]].iloc[1:]
            prefix = f"accounting:{analysis}"
            self._register(counts, prefix, f"Cases ({self.year}): {analysis}", column_totals=True)
            self._same((prefix, "total", 0), _key("episodes_ended", "count"))
            for i, reason in enumerate(counts.index):
                if analysis == "outcomes" and reason in links:
                    self._same((prefix, i, 0), links[reason])
            tables[analysis] = counts
        return tables

    def _register_sites(self, sites: pd.DataFrame) -> pd.DataFrame:
        """Counts by site; none (no table) when the data have no sites."""
        counts = sites.set_index("site_id")[list(SITE_COLUMNS)]
        counts.columns = [heading for heading, _, _ in SITE_COLUMNS.values()]
        if counts.empty:
            return counts
        self._register(counts, "sites", f"Activity by site ({self.year})", column_totals=True)
        for j, (_, kpi, part) in enumerate(SITE_COLUMNS.values()):
            target = _key(kpi, part)
            total = self.system.values.get(target)
            if total == counts.iloc[:, j].sum():  # not so when a client was seen at two sites
                self._same(("sites", "total", j), target)
        return counts

    def _register_endings(self, endings: pd.DataFrame, alliance: Instrument) -> pd.DataFrame:
        counts = endings.set_index("early_alliance")[["dropout", "planned"]].astype(int)
        if alliance.cutoff is not None:
            cut = f"{alliance.cutoff:g}"
            counts.index = counts.index.map(
                {"below": f"Below {cut}", "at_or_above": f"{cut} or above"}
            )
        counts.columns = ["Dropout", "Planned ending"]
        self._register(
            counts,
            "endings",
            f"Endings by early alliance ({self.year})",
            row_totals=True,
            column_totals=True,
        )
        return counts

    def _register_bins(self, bins: pd.DataFrame, alliance: Instrument) -> pd.DataFrame:
        counts = bins.set_index("bin_low")[["sessions"]]
        ranges = [f"{low:g}\u2013{high:g}" for low, high in zip(bins["bin_low"], bins["bin_high"],
                                                              strict=True)]  # fmt: skip
        self._register(counts.set_axis(ranges), "bins", f"Alliance ratings figure ({self.year})",
                       column_totals=True)  # fmt: skip
        below = _key("alliance_sessions_below_cutoff", "n")
        self._same(("bins", "total", 0), below)
        if alliance.cutoff is not None and alliance.cutoff in set(bins["bin_high"]):
            cut = int(np.flatnonzero(bins["bin_high"].to_numpy() == alliance.cutoff)[0])
            if _key("alliance_sessions_below_cutoff", "events") in self.system.values:
                self.system.equation(
                    _key("alliance_sessions_below_cutoff", "events"),
                    [("bins", i, 0) for i in range(cut + 1)],
                )
        return counts

    def _register_funnel(self, table: pd.DataFrame) -> pd.DataFrame:
        name = f"Funnel plot ({self.year})"
        self.counted_rows[name] = "therapists not drawn (codes withheld)"
        for row in table.itertuples():
            keys = [("therapist", row.therapist, part) for part in ("n", "events", "non_events")]
            for key, value in zip(keys, (row.n, row.events, row.n - row.events), strict=True):
                column = key[2].replace("_", "-")
                self.system.cell(key, value, table=name, row=row.therapist, column=column)
            self.system.equation(keys[0], keys[1:])
            self.system.group(keys)
        for part in ("n", "events", "non_events"):
            target = _key("reliable_improvement", part)
            members = [("therapist", t, part) for t in table["therapist"]]
            total = sum(self.system.values[m] for m in members)
            if members and target in self.system.values and total == self.system.values[target]:
                self.system.equation(target, members)
        return table

    def _implied_rest(self, total: tuple, parts: list[tuple], what: str) -> None:
        """Record that ``total`` = ``parts`` + a count never published (``what``), so that the
        rest cannot be worked out when it is small."""
        cells = [total, *parts]
        if not all(cell in self.system.values for cell in cells):
            return
        rest = self.system.values[total] - sum(self.system.values[c] for c in parts)
        name = f"Implied by the key figures ({self.year})"
        key = self.system.implied(("implied", *cells), rest, table=name, row=what)
        self.system.equation(total, [*parts, key])

    def _register_implied(self) -> None:
        """The counts the published ones imply without publishing them: subsets of a KPI's
        events published as another KPI, breakdowns that leave a remainder."""
        for total, parts, what in IMPLIED_BY_KPIS:
            self._implied_rest(_key(*total), [_key(*part) for part in parts], what)
        for j, part in enumerate(("events", "non_events")):
            what = f"endings ({part}) without an early alliance rating"
            self._implied_rest(_key("unplanned_endings", part), [("endings", "total", j)], what)
        ended, finished, improved = (list(SITE_COLUMNS).index(c) for c in
                                     ("ended", "finished", "reliable_improvement"))  # fmt: skip
        for i, site in enumerate(self.sites.index):
            self._implied_rest(("sites", i, ended), [("sites", i, finished)],
                               f"{site}: ended, not finished")  # fmt: skip
            self._implied_rest(("sites", i, finished), [("sites", i, improved)],
                               f"{site}: finished, not reliably improved")  # fmt: skip

    def _register_validation(self, validation: Mapping[str, Any]) -> list[tuple[str, tuple]]:
        """Rows read, used and excluded at validation (``read = used + excluded``) and the
        rows excluded by each rule (a row breaking two rules counts under both, so the rules
        add up to the excluded rows only when none does)."""
        if "rows" not in validation:
            return []
        name = "Rows at validation (whole file)"
        rows = validation["rows"]
        labels = [("Rows read", ("validation", "read")), ("Rows used", ("validation", "used")),
                  ("Rows excluded", ("validation", "excluded"))]  # fmt: skip
        for (label, key), part in zip(labels, ("read", "used", "excluded"), strict=True):
            self.system.cell(key, rows[part], table=name, row=label, priority=1)
        self.system.equation(labels[0][1], [labels[1][1], labels[2][1]])
        rules = []
        for i, entry in enumerate(validation.get("excluded_by_rule", [])):
            label = f"\u2003column {entry['column']}: {entry['rule']}"
            key = self.system.cell(("validation", "rule", i), entry["rows"], table=name, row=label)
            rules.append((label, key))
        if rules and sum(self.system.values[k] for _, k in rules) == rows["excluded"]:
            self.system.equation(labels[2][1], [k for _, k in rules])
        return labels + rules

    def validation_rows(self) -> list[tuple[str, str]]:
        """The validation's row counts as published: ``(label, count)`` pairs."""
        return [(label, self.system.text(key)) for label, key in self.validation]

    def shows(self, kpi: str) -> bool:
        """Whether a KPI's value is published this year."""
        row = self.kpis.loc[kpi]
        if row["unit"] == "proportion":
            return self.system.visible(*(_key(kpi, p) for p in ("events", "non_events", "n")))
        return self.system.visible(_key(kpi, "count" if pd.notna(row["numerator"]) else "n"))

    def kpi_table(self) -> pd.DataFrame:
        """The year's KPIs as published: ``year, kpi, label, value, ci, n, unit`` (what
        ``<year>_kpis.csv`` holds): ``*`` where suppressed, empty where not applicable."""
        rows = []
        for kpi, row in self.kpis.iterrows():
            n = self.system.text(_key(kpi, "n")) if _key(kpi, "n") in self.system.values else ""
            value, ci = self.published(kpi)
            rows.append({"year": self.year, "kpi": kpi, "label": KPI_LABELS.get(kpi, kpi),
                         "value": value, "ci": ci, "n": n, "unit": row["unit"]})  # fmt: skip
        return pd.DataFrame(rows, columns=["year", "kpi", "label", "value", "ci", "n", "unit"])

    def published(self, kpi: str) -> tuple[str, str]:
        """A KPI's value and interval as published (``*`` where suppressed)."""
        row = self.kpis.loc[kpi]
        if not self.shows(kpi):
            return SUPPRESSED, SUPPRESSED
        if row["unit"] != "proportion" and pd.notna(row["numerator"]):
            return self.system.text(_key(kpi, "count")), ""
        return _estimate_text(row, kpi)

    def count_text(self, key: tuple) -> str:
        """A registered count as published (``*`` when suppressed or not registered)."""
        return self.system.text(key) if key in self.system.values else SUPPRESSED

    def protected(self, prefix: str, counts: pd.DataFrame, **totals: bool) -> Protected:
        """A registered count table as published."""
        return self.system.protected(counts, prefix, **totals)


def _estimate_text(row: pd.Series, kpi: str) -> tuple[str, str]:
    """A rate (as %) or mean and its 95% interval as text (a median: its interquartile range);
    empty when not estimable."""
    if pd.isna(row["estimate"]):
        return "", ""
    if row["unit"] == "proportion":
        return f"{100 * row['estimate']:.1f}%", (
            f"[{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]")  # fmt: skip
    if kpi == "sessions_per_client_median":
        return f"{row['estimate']:g}", f"IQR {row['ci_low']:g}\u2013{row['ci_high']:g}"
    return f"{row['estimate']:.2f}", f"[{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=130, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


PUBLISHED_AVERAGE = (
    "across published studies the average association of a better alliance with a better "
    "outcome is r = .28."
)
"""Flückiger, Del Re, Wampold & Horvath (2018), Psychotherapy 55(4): r = .278, 95% CI [.256,
.299], 295 studies."""


def _early_alliance_sentence(
    rows: pd.DataFrame, outcome: Instrument, alliance: Instrument, k: int, clients: str
) -> str:
    """The year's early-alliance result in one plain sentence; ``clients`` is the published
    count of eligible clients (when it is suppressed, so is the result)."""
    if rows.empty or clients == SUPPRESSED:
        return (
            f"Too few clients had an alliance rating at session {k} and a final "
            f"{outcome.short} score this year to estimate how the two go together."
        )
    r = rows.set_index("term").loc["partial_r"]
    slope = rows.set_index("term").loc["slope"]
    interval = (
        f"partial r = {apa_r(r['estimate'])}, 95% CI [{apa_r(r['ci_low'])}, {apa_r(r['ci_high'])}]"
    )
    if r["ci_low"] <= 0 <= r["ci_high"]:
        return (
            f"This year, how clients rated the alliance at session {k} showed no clear "
            f"association with their final {outcome.short} score once their starting score "
            f"is allowed for ({interval}; {clients} clients); {PUBLISHED_AVERAGE}"
        )
    direction = "better" if (r["estimate"] > 0) == outcome.higher_is_better else "worse"
    higher = "higher" if slope["estimate"] > 0 else "lower"
    return (
        f"Clients who rated the alliance higher at session {k} ended therapy with {direction} "
        f"{outcome.short} scores than clients who started at the same level: each "
        f"{alliance.short} point went with a final {outcome.short} "
        f"{abs(slope['estimate']):.2f} points {higher} ({interval}; {clients} clients); "
        f"{PUBLISHED_AVERAGE}"
    )


def _interval(row: pd.Series, digits: int = 1) -> str:
    return f"95% CI {row['ci_low']:.{digits}f} to {row['ci_high']:.{digits}f}"


def _share(value: float) -> str:
    return f"{100 * value:.0f}%"


def early_warning_paragraphs(
    warning: pd.DataFrame, outcome: Instrument, alliance: Instrument
) -> list[str]:
    """The early-warning findings across all years of data, one plain paragraph each:
    ruptures and repair, the dropout-risk model, the not-on-track signal and feedback, from
    the early-warning table (nothing is refitted). A finding the table does not hold (not
    computed, or no estimate) is left out; feedback without two conditions says so.

    Model estimates, not counts of clients, are quoted: no small count is published.
    """
    rows = {m: g.set_index("term") for m, g in warning.groupby("model")}
    paragraphs = []

    def value(model: str, term: str) -> pd.Series | None:
        table = rows.get(model)
        if table is None or term not in table.index or pd.isna(table.loc[term, "estimate"]):
            return None
        return table.loc[term]

    threshold = value("ruptures", "threshold")
    unrepaired = value("rupture_outcome", "rupture_unrepaired")
    repaired = value("rupture_outcome", "rupture_repaired")
    if threshold is not None and unrepaired is not None and repaired is not None:

        def points(row: pd.Series) -> str:
            higher = row["estimate"] > 0
            better = "better" if higher == outcome.higher_is_better else "worse"
            return (f"{abs(row['estimate']):.1f} points {'higher' if higher else 'lower'} "
                    f"({better}; {_interval(row)})")  # fmt: skip

        paragraphs.append(
            f"Alliance ruptures (a drop of at least {threshold['estimate']:.1f} {alliance.short} "
            f"points from one rated session to the next, more than measurement error explains): "
            f"across all years of data, {outcome.short} scores after a rupture that was never "
            f"repaired were {points(unrepaired)} than the same clients' scores before it, and "
            f"after a repaired rupture {points(repaired)}, allowing for the usual course of "
            "change. These are associations within clients, not proof that repair helps."
        )
    auc, slope = value("dropout_risk", "auc_cv"), value("dropout_risk", "calibration_slope_cv")
    if auc is not None and slope is not None:
        paragraphs.append(
            f"Dropout risk: a model of ending therapy without a plan after each session, from "
            f"the early alliance, changes in alliance and {outcome.short} and the session "
            f"number, ranked a session after which the client dropped out above one after which "
            f"they stayed {_share(auc['estimate'])} of the time when tried on therapists it was "
            f"not fitted to (AUC {auc['estimate']:.2f}, {_interval(auc, 2)}; 50% is chance; "
            f"calibration slope "
            f"{slope['estimate']:.2f}, 1 is ideal)."
        )
    sensitivity, ppv = (
        value("not_on_track_signal", "sensitivity"),
        value("not_on_track_signal", "ppv"),
    )
    lead = value("not_on_track_signal", "median_lead_time")
    if sensitivity is not None and ppv is not None:
        ahead = (
            f", a median of {lead['estimate']:.0f} sessions before the end"
            if lead is not None
            else ""
        )
        paragraphs.append(
            f"Not on track: clients whose {outcome.short} fell below the range expected for "
            f"their starting score (this service's own expected treatment response) were "
            f"flagged. The flag caught {_share(sensitivity['estimate'])} of the clients who "
            f"went on to deteriorate reliably{ahead}; {_share(ppv['estimate'])} of flagged "
            "clients did deteriorate, so a flag is a prompt to review, not a prediction."
        )
    effect = value("feedback_outcome", "feedback")
    if effect is not None:
        statement = str(effect["message"]).split("; ")[-1]
        paragraphs.append(
            f"Feedback: clients seen with routine outcome feedback ended with final "
            f"{outcome.short} scores {effect['estimate']:+.1f} points against clients seen "
            f"without it, for the same starting score ({_interval(effect)}). {statement}"
        )
    elif "feedback_outcome" in rows:
        reason = rows["feedback_outcome"]["message"].dropna()
        paragraphs.append(
            "Feedback: " + (reason.iloc[0].lower() if len(reason) else "not computed.")
        )
    return paragraphs


def _count_rows(protected: Protected, index: pd.Index) -> list[list[str]]:
    rows = []
    for name in index:
        row = [str(name), *protected.cells.loc[name].tolist()]
        if protected.totals_column is not None:
            row.append(protected.totals_column[name])
        rows.append(row)
    if protected.totals_row is not None:
        rows.append(["Total", *protected.totals_row.tolist()])
    return rows


SUPPRESSION_NOTE = (
    "Counts below {below} are shown as *, with further cells hidden where they would reveal them."
)


def _endings_table(publisher: Publisher, alliance: Instrument) -> tuple[ApaTable | None, str]:
    counts = publisher.endings
    if alliance.cutoff is None or counts.to_numpy().sum() == 0:
        return None, "No ended episodes with an early alliance rating this year."
    protected = publisher.protected("endings", counts, row_totals=True, column_totals=True)
    table = ApaTable(
        f"Endings by early alliance ({publisher.year})",
        [f"Early {alliance.short}", "Dropout", "Planned ending", "Total"],
        _count_rows(protected, counts.index),
        "Clients whose episode ended this year and who rated the alliance at the "
        "early session. " + SUPPRESSION_NOTE.format(below=publisher.policy.suppress_below),
    )
    if protected.suppressed.to_numpy().any() or (protected.totals_column == SUPPRESSED).any():
        return (
            table,
            "The dropout rates of the two groups are not compared: the numbers are too small.",
        )
    (x1, p1), (x0, p0) = counts.to_numpy()
    difference, low, high = difference_of_proportions(x1, x1 + p1, x0, x0 + p0)
    if pd.isna(difference):
        return (
            table,
            "One of the two groups is empty this year: the dropout rates are not compared.",
        )
    cut = f"{alliance.cutoff:g}"
    return table, (
        f"Clients whose alliance rating at the early session was below {cut} dropped out in "
        f"{100 * x1 / (x1 + p1):.0f}% of cases, against {100 * x0 / (x0 + p0):.0f}% of the others: "
        f"a difference of {100 * difference:+.1f} percentage points (95% CI {100 * low:+.1f} to "
        f"{100 * high:+.1f})."
    )


def _site_table(publisher: Publisher) -> ApaTable | None:
    counts = publisher.sites
    if len(counts) < 2:
        return None
    protected = publisher.protected("sites", counts, column_totals=True)
    return ApaTable(
        f"Activity by site ({publisher.year})",
        ["Site", *counts.columns],
        _count_rows(protected, counts.index),
        "Clients seen and sessions attended: sessions dated in the year, by the site of the "
        "session; episodes: those ended in the year, by the site of their last session. "
        + SUPPRESSION_NOTE.format(below=publisher.policy.suppress_below),
    )


def _bands_table(publisher: Publisher) -> ApaTable:
    protected = publisher.protected("bands", publisher.bands, column_totals=True)
    return ApaTable(
        f"Sessions per client ({publisher.year})",
        ["Sessions attended", "Clients"],
        _count_rows(protected, publisher.bands.index),
        "Episodes ended in the year, by the number of sessions attended. "
        + SUPPRESSION_NOTE.format(below=publisher.policy.suppress_below),
    )


def _accounting_table(publisher: Publisher) -> ApaTable:
    rows = []
    for analysis, counts in publisher.accounting.items():
        protected = publisher.protected(f"accounting:{analysis}", counts, column_totals=True)
        rows.append([f"{analysis.capitalize()}: episodes ended", protected.totals_row.iloc[0]])
        rows += [[f"\u2003{reason}", value] for reason, value in protected.cells["count"].items()]
    return ApaTable(
        f"Cases in and out of the analyses ({publisher.year})",
        ["Cases", "Count"],
        rows,
        "Every episode that ended in the year is either included in an "
        "analysis or excluded for one reason.",
    )


def _funnel_figure(publisher: Publisher) -> tuple[str | None, int, int]:
    table = publisher.funnel
    if table.empty:
        return None, 0, 0
    keep = [publisher.system.visible(("therapist", t, "n")) for t in table["therapist"]]
    shown = table[keep]
    overall = float(table["overall"].iloc[0])
    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axis = figure.subplots()
    grid = np.linspace(
        max(publisher.policy.suppress_below, 2), max(table["n"].max(), 10) * 1.05, 200
    )
    for level, style in zip(FUNNEL_LIMITS, ("--", ":"), strict=True):
        half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(overall * (1 - overall) / grid)
        axis.plot(
            grid,
            np.clip(overall + half, 0, 1) * 100,
            color="0.35",
            linestyle=style,
            label=f"{100 * level:g}% limits",
        )
        axis.plot(grid, np.clip(overall - half, 0, 1) * 100, color="0.35", linestyle=style)
    axis.axhline(overall * 100, color="0.35", linewidth=1, label="service rate")
    labelled = len(shown) <= MAX_LABELLED_THERAPISTS
    axis.scatter(shown["n"], shown["rate"] * 100, color=PALETTE[0], zorder=3,
                 s=20 if labelled else 6, alpha=1 if labelled else 0.5)  # fmt: skip
    for row in shown.itertuples() if labelled else ():
        axis.annotate(row.therapist, (row.n, row.rate * 100), fontsize=7, xytext=(3, 3),
                      textcoords="offset points")  # fmt: skip
    axis.set_xlabel("Clients who finished with the therapist")
    axis.set_ylabel("Reliable improvement (%)")
    axis.set_ylim(-2, 102)
    axis.legend(fontsize=8, loc="lower right")
    return _png(figure), len(shown), len(table) - len(shown)


def _caterpillar_figure(
    effects: pd.DataFrame, outcome: Instrument, publisher: Publisher
) -> tuple[str | None, int, int]:
    """The caterpillar plot of the therapists with caseloads at or above the suppression
    threshold (:func:`allianceanalysis.figures.therapist_caterpillar`); counts shown and
    hidden."""
    if effects.empty:
        return None, 0, 0
    shown = effects[effects["n_obs"] >= publisher.policy.suppress_below]
    hidden = len(effects) - len(shown)
    if shown.empty:
        return None, 0, hidden
    return _png(therapist_caterpillar(shown, outcome)), len(shown), hidden


def _alliance_figure(publisher: Publisher, alliance: Instrument) -> str | None:
    bins = publisher.bins
    if bins.empty or bins["sessions"].sum() == 0:
        return None
    hidden = publisher.protected("bins", bins, column_totals=True).suppressed["sessions"].to_numpy()
    edges = bins.index.to_numpy(float)
    width = (alliance.total_max - alliance.total_min) / len(bins)
    share = np.where(hidden, 0, bins["sessions"]) / bins["sessions"].sum() * 100
    figure = Figure(figsize=(6, 3.2), layout="constrained")
    axis = figure.subplots()
    axis.bar(edges, share, width=width, align="edge", color=PALETTE[2], edgecolor="white")
    if alliance.cutoff is not None:
        cutoff_line(axis, alliance, f"cut-off ({alliance.cutoff:g})")
    note = " (bars with small counts not drawn)" if hidden.any() else ""
    axis.set_xlabel(
        f"{alliance.short} total ({alliance.total_min:g} to {alliance.total_max:g}){note}"
    )
    axis.set_ylabel("Sessions (%)")
    return _png(figure)


YEAR_OVER_YEAR = (
    "clients_seen",
    "sessions_attended",
    "episodes_ended",
    "finished",
    "mean_improvement",
    "cohens_d",
    "severity_adjusted_es",
    "reliable_improvement",
    "reliable_deterioration",
    "recovery",
    "reliable_recovery",
    "nhs_recovery",
    "nhs_reliable_improvement",
    "alliance_clients_below_cutoff",
    "unplanned_endings",
)
"""The KPIs compared with earlier years."""


def _change(this: pd.Series, before: pd.Series, policy: DisclosurePolicy) -> list[str]:
    """Earlier value, this year's value and the change with its 95% CI. Rates: Newcombe's
    interval; means: normal approximation from the two intervals (independent years); counts:
    the difference, without an interval (none when counts are rounded)."""
    if this["unit"] == "proportion":
        d, low, high = difference_of_proportions(
            this["numerator"], this["denominator"], before["numerator"], before["denominator"]
        )
        return [
            f"{100 * before['estimate']:.1f}%",
            f"{100 * this['estimate']:.1f}%",
            f"{100 * d:+.1f} pp [{100 * low:+.1f}, {100 * high:+.1f}]",
        ]
    if pd.isna(this["numerator"]):
        crit = stats.norm.ppf(0.975)
        se = [(r["ci_high"] - r["ci_low"]) / (2 * crit) for r in (this, before)]
        d = this["estimate"] - before["estimate"]
        half = crit * np.hypot(*se)
        return [
            f"{before['estimate']:.2f}",
            f"{this['estimate']:.2f}",
            f"{d:+.2f} [{d - half:+.2f}, {d + half:+.2f}]",
        ]
    change = "—" if policy.round_to > 1 else f"{int(this['numerator'] - before['numerator']):+d}"
    return [policy.show(before["numerator"]), policy.show(this["numerator"]), change]


def _year_over_year(publishers: Mapping[str, Publisher], year: str) -> ApaTable | None:
    earlier = [y for y in publishers if y < year]
    if not earlier:
        return None
    this_year = publishers[year]
    rows = []
    for kpi in YEAR_OVER_YEAR:
        for before in earlier:
            then = publishers[before]
            if kpi not in this_year.kpis.index or kpi not in then.kpis.index:
                continue
            label = KPI_LABELS[kpi]
            if this_year.shows(kpi) and then.shows(kpi):
                rows.append(
                    [
                        label,
                        before,
                        *_change(this_year.kpis.loc[kpi], then.kpis.loc[kpi], this_year.policy),
                    ]
                )
            else:
                shown = [then.published(kpi)[0], this_year.published(kpi)[0]]
                rows.append([label, before, *shown, SUPPRESSED])
    return ApaTable(
        f"Year over year ({year})",
        ["KPI", "Compared with", "Then", year, "Change [95% CI]"],
        rows,
        "Rates: difference in percentage points (pp) with Newcombe's interval; means and "
        "effect sizes: difference with a normal-approximation interval; counts: "
        f"difference only. {SUPPRESSED}: suppressed (a change: suppressed in either year).",
    )


def summarise_log(
    log: list[dict[str, str]], counted: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """The suppression log for the appendix: one line per table and reason, listing its cells.

    ``counted`` names tables whose rows are counted, not named (table -> what a row is), in
    one line per table whatever the reasons: the funnel plot's rows are therapists, and naming
    the codes with small caseloads would single them out.

    Examples
    --------
    >>> log = [{"table": "t", "row": "a", "column": "n", "reason": "small"},
    ...        {"table": "t", "row": "a", "column": "events", "reason": "small"},
    ...        {"table": "t", "row": "b", "column": "n", "reason": "with a small one"}]
    >>> summarise_log(log)[0]
    {'table': 't', 'reason': 'small', 'cells': 'a: n, events'}
    >>> summarise_log(log, counted={"t": "therapists not drawn"})
    [{'table': 't', 'reason': 'small; with a small one', 'cells': '2 therapists not drawn'}]
    """
    counted = counted or {}
    grouped: dict[tuple[str, str], dict[str, list[str]]] = {}
    reasons: dict[tuple[str, str], list[str]] = {}
    for entry in log:
        key = (entry["table"], "" if entry["table"] in counted else entry["reason"])
        rows = grouped.setdefault(key, {})
        rows.setdefault(entry["row"], []).extend([entry["column"]] if entry["column"] else [])
        if entry["reason"] not in reasons.setdefault(key, []):
            reasons[key].append(entry["reason"])
    summary = []
    for (table, _), rows in grouped.items():
        if table in counted:
            text = f"{len(rows)} {counted[table]}"
        else:
            text = "; ".join(f"{row}: {', '.join(c)}" if c else row for row, c in rows.items())
        summary.append({"table": table, "reason": "; ".join(reasons[table, _]), "cells": text})
    return summary


def annual_reports(
    tables: ReportTables,
    settings: ReportSettings,
    *,
    appendix: Mapping[str, Any] | None = None,
    warning: pd.DataFrame | None = None,
) -> dict[str, dict[str, Any]]:
    """Every reporting year's report context, with disclosure control applied (step 2).

    Reads only ``tables`` (nothing is refitted). Every number the context holds has been
    through the year's :class:`Publisher`.

    Parameters
    ----------
    tables : ReportTables
        From :func:`report_tables`.
    settings : ReportSettings
    appendix : mapping, optional
        Facts for the methods appendix: ``rows`` (the validation's row accounting:
        read / used / excluded) and ``excluded_by_rule`` (both published through disclosure
        control), ``software`` (package versions), ``source`` (input file name).
    warning : pandas.DataFrame, optional
        The early-warning table, for the early-warning findings across all years
        (:func:`early_warning_paragraphs`).

    Returns
    -------
    dict
        Year -> context for :func:`render_html`; ``context["kpis"]`` is the published KPI table
        (``<year>_kpis.csv``) and ``context["suppression_log"]`` the appendix's log.
    """
    outcome, alliance = get_instrument(settings.outcome), get_instrument(settings.alliance)
    parts = {year: tables.of_year(year) for year in tables.years}
    facts = dict(appendix or {})
    publishers = {
        year: Publisher(part, settings.policy, alliance, year, validation=facts)
        for year, part in parts.items()
    }
    paragraphs = [] if warning is None else early_warning_paragraphs(warning, outcome, alliance)
    reports = {}
    for year, publisher in publishers.items():
        published = publisher.kpi_table()
        sections = {
            name: published.set_index("kpi")
            .reindex([k for k in kpis if k in set(published["kpi"])])
            .reset_index()
            for name, kpis in KPI_SECTIONS.items()
        }
        endings_table, endings_text = _endings_table(publisher, alliance)
        funnel_png, *funnel_counts = _funnel_figure(publisher)
        caterpillar_png, *caterpillar_counts = _caterpillar_figure(
            parts[year]["therapist_effects"], outcome, publisher
        )
        nhs_instruments = [
            get_instrument(key)
            for key in ("phq9", "gad7")
            if not sections["nhs"].empty and key != outcome.key
        ]
        reports[year] = {
            "dataset": settings.dataset,
            "year": year,
            "settings": settings,
            "outcome": outcome,
            "alliance": alliance,
            "kpis": published,
            "sections": sections,
            "bands_table": _bands_table(publisher),
            "site_table": _site_table(publisher),
            "alliance_png": _alliance_figure(publisher, alliance),
            "alliance_sentence": _early_alliance_sentence(
                parts[year]["early_alliance"],
                outcome,
                alliance,
                settings.early_session,
                publisher.count_text(("accounting:early alliance", 0, 0)),
            ),
            "endings_table": endings_table,
            "endings_text": endings_text,
            "funnel_png": funnel_png,
            "funnel_counts": funnel_counts,
            "caterpillar_png": caterpillar_png,
            "caterpillar_counts": caterpillar_counts,
            "year_over_year": _year_over_year(publishers, year),
            "early_warning_paragraphs": paragraphs,
            "accounting_table": _accounting_table(publisher),
            "appendix": facts,
            "validation_rows": publisher.validation_rows(),
            "instruments": [outcome, alliance, *nhs_instruments],
            "suppression_log": summarise_log(publisher.log, counted=publisher.counted_rows),
        }
    return reports


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: (
            resources.files("allianceanalysis")
            .joinpath(f"templates/{name}")
            .read_text(encoding="utf-8")
        )
    ),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.globals["month_name"] = lambda month: calendar.month_name[month]


def render_html(context: Mapping[str, Any]) -> str:
    """One year's report as self-contained HTML (figures embedded, print styles included)."""
    return _TEMPLATES.get_template("annual_report.html.j2").render(**context)


def render_pdf(html: str) -> bytes:
    """A report's HTML as PDF (WeasyPrint; page size and breaks from the print styles).

    WeasyPrint needs the Pango text library of the operating system (present on most Linux
    desktops and Python images; otherwise ``apt-get install libpango-1.0-0 libpangoft2-1.0-0``).
    """
    try:
        with warnings.catch_warnings():
            # WeasyPrint 66-70 warn at import when HarfBuzz-Subset is absent (most fresh
            # machines): a notice about future versions, which pyproject's range excludes.
            warnings.filterwarnings("ignore", "HarfBuzz-Subset", DeprecationWarning)
            import weasyprint
    except OSError as exc:
        raise ConfigError(
            "the PDF report needs the Pango library, which WeasyPrint could not load "
            f"({exc}); install it (Debian/Ubuntu: apt-get install libpango-1.0-0 "
            "libpangoft2-1.0-0) and run again",
            source="environment",
        ) from None
    # Without HarfBuzz-Subset WeasyPrint subsets fonts with fontTools, which stamps each subset
    # with the time (head.modified) unless SOURCE_DATE_EPOCH is set (reproducible-builds.org):
    # a fixed stamp keeps reruns byte-identical; a user's own SOURCE_DATE_EPOCH is kept.
    preset = "SOURCE_DATE_EPOCH" in os.environ
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")
    try:
        return weasyprint.HTML(string=html).write_pdf()
    finally:
        if not preset:
            del os.environ["SOURCE_DATE_EPOCH"]
