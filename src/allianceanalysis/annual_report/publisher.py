"""The annual report's disclosure publisher: every number a year's report publishes passes
through :class:`Publisher`, which registers the year's counts and the equations that link
them in one :class:`~allianceanalysis.disclosure.CountSystem` and solves suppression jointly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..disclosure import SUPPRESSED, CountSystem, DisclosurePolicy, Protected
from ..instruments import INSTRUMENTS, Instrument
from .tables import (
    SITE_COLUMNS,
)

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
    alliance : Instrument or None
        None for data without an alliance measure.
    year : str
    validation : mapping, optional
        The validation summary's ``rows`` (read, used, excluded) and ``excluded_by_rule``,
        published in the data-quality appendix.
    therapists : bool
        Whether the report publishes the funnel plot: its therapists' counts then pass through
        the same suppression (``annual_report: therapist_plots``).
    """

    def __init__(
        self,
        part: Mapping[str, pd.DataFrame],
        policy: DisclosurePolicy,
        alliance: Instrument | None,
        year: str,
        validation: Mapping[str, Any] | None = None,
        therapists: bool = False,
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
        self.categories = self._register_categories(
            part.get("change_categories", pd.DataFrame(columns=["category", "clients"]))
        )
        self.funnel = self._register_funnel(part["funnel"] if therapists else part["funnel"][:0])
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
            label = kpi_label(kpi)
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
        for kpi in OUTCOME_BASED:
            self._same(finished, _key(kpi, "n"))
        self._same(finished, _key("paired_data_completeness", "events"))
        for kpi in ("recovery", "reliable_recovery", "severity_adjusted_es"):
            self._same(_key("clinical_start", "events"), _key(kpi, "n"))
        for kpi in ("nhs_caseness_start", "nhs_reliable_improvement", "nhs_reliable_deterioration"):
            self._same(_key("nhs_finished", "count"), _key(kpi, "n"))
        for measure in other_measures(self.kpis.index):
            finished = _key(f"{measure}:finished", "count")
            for kpi in OUTCOME_BASED:  # another outcome measure's rates are of its finished
                self._same(finished, _key(f"{measure}:{kpi}", "n"))
            for kpi in ("recovery", "reliable_recovery"):
                self._same(_key(f"{measure}:clinical_start", "events"),
                           _key(f"{measure}:{kpi}", "n"))  # fmt: skip
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

    def _register_endings(self, endings: pd.DataFrame, alliance: Instrument | None) -> pd.DataFrame:
        counts = endings.set_index("early_alliance")[["dropout", "planned"]].astype(int)
        if alliance is not None and alliance.cutoff is not None:
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

    def _register_categories(self, categories: pd.DataFrame) -> pd.DataFrame:
        counts = categories.set_index("category")[["clients"]].astype(int)
        counts.columns = ["Clients"]
        if len(counts):
            self._register(counts, "categories", f"Clinical significance ({self.year})",
                           column_totals=True)  # fmt: skip
        return counts

    def _register_bins(self, bins: pd.DataFrame, alliance: Instrument | None) -> pd.DataFrame:
        if alliance is None:
            return bins.set_index("bin_low")[["sessions"]]
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
        if table.empty:  # no therapist to draw (its columns may be absent too)
            return table
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
            rows.append({"year": self.year, "kpi": kpi, "label": kpi_label(kpi),
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


OUTCOME_BASED = ("mean_improvement", "cohens_d", "reliable_improvement",
                 "reliable_deterioration", "clinical_start")  # fmt: skip
"""KPIs whose denominator is the clients who finished with paired scores."""


def other_measures(kpis: Iterable[str]) -> list[str]:
    """The other outcome measures among KPI names (``phq9:recovery`` -> ``phq9``), in
    registry order (:func:`~allianceanalysis.annual_report.tables.other_outcomes`).

    Examples
    --------
    >>> other_measures(["finished", "phq9:finished", "gad7:recovery", "phq9:cohens_d"])
    ['phq9', 'gad7']
    """
    keys = {kpi.split(":")[0] for kpi in kpis if ":" in kpi}
    return [key for key in INSTRUMENTS if key in keys]


def kpi_label(kpi: str) -> str:
    """A KPI's label in tables; another outcome measure's (``phq9:recovery``) reads as the
    primary's KPI of that name.

    Examples
    --------
    >>> kpi_label("phq9:recovery") == kpi_label("recovery")
    True
    """
    base = kpi.split(":")[-1]
    return KPI_LABELS.get(base, base)


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
