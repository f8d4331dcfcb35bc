"""The annual report, step 2: each year's report drawn from the tables, never refitted.

:func:`annual_reports` reads only :class:`~allianceanalysis.annual_report.ReportTables`,
passes every published number through the :class:`~allianceanalysis.annual_report.Publisher`,
draws the figures and writes the text; :func:`render_html` and :func:`render_pdf` turn each
year's context into files with the jinja2 template ``templates/annual_report.html.j2``.
"""

from __future__ import annotations

import base64
import calendar
import io
import logging
import os
import warnings
from collections.abc import Mapping
from importlib import resources
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..disclosure import SUPPRESSED, DisclosurePolicy, Protected
from ..distributions import norm_ppf
from ..effects import (
    FUNNEL_LIMITS,
    difference_of_proportions,
)
from ..errors import ConfigError
from ..figures import MAX_LABELLED_THERAPISTS, PALETTE, apa_r, cutoff_line, therapist_caterpillar
from ..instruments import Instrument, get_instrument
from ..tables import ApaTable
from .publisher import KPI_LABELS, Publisher, other_measures
from .tables import (
    ReportSettings,
    ReportTables,
)

log = logging.getLogger("allianceanalysis")

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
    warning: pd.DataFrame, outcome: Instrument, alliance: Instrument | None
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
    if alliance and threshold is not None and unrepaired is not None and repaired is not None:

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


def missing_data_paragraph(
    missing: Mapping[str, pd.DataFrame] | None,
    outcome: Instrument,
    alliance: Instrument | None,
    k: int,
) -> str | None:
    """One plain paragraph when missing data could change the headline alliance-outcome
    finding (:func:`allianceanalysis.missing_data.headline_changes`), else None.

    ``missing`` holds the dataset's published tables ``models`` (complete cases),
    ``imputed`` (``multiple_imputation.csv``), ``tipping`` and ``missingness``. The share of
    clients left out is quoted only from the published missingness row (suppressed when it
    rests on a small count); no count is quoted. The tables cover all years of data.
    """
    from ..missing_data import headline_changes

    if missing is None or alliance is None:
        return None

    def row(table: pd.DataFrame, model: str) -> pd.Series | None:
        found = table[(table["model"] == model) & (table["term"] == "alliance_early")]
        ok = len(found) and np.isfinite(found[["estimate", "p_value"]].to_numpy(float)).all()
        return found.iloc[0] if ok else None

    complete = row(missing["models"], "alliance_outcome")
    imputed = row(missing["imputed"], "alliance_outcome_mi")
    if complete is None or imputed is None:
        return None
    reasons = headline_changes(complete, imputed, missing["tipping"])
    if not reasons:
        return None
    pattern = missing["missingness"]
    left_out = pattern.loc[pattern["term"] == "missing_any", "estimate"].dropna()
    share = (
        f"{_share(left_out.iloc[0])} of clients who started had no intake {outcome.short} "
        f"score, no {alliance.short} rating at session {k} or no final {outcome.short} score, "
        "so the complete-case results leave them out. "
        if len(left_out)
        else ""
    )
    return (
        f"Missing data could change the headline finding. {share}Among complete cases, each "
        f"{alliance.short} point at session {k} went with a final {outcome.short} "
        f"{complete['estimate']:.2f} points higher ({_interval(complete, 2)}); with the missing "
        f"scores filled in by multiple imputation from what was recorded about every client "
        f"who started, {imputed['estimate']:.2f} points ({_interval(imputed, 2)}). Why this "
        f"matters: {'; '.join(reasons)}. The imputed result assumes that clients with and "
        "without a final score were alike once what was recorded about them is allowed for."
    )


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


def _endings_table(
    publisher: Publisher, alliance: Instrument | None
) -> tuple[ApaTable | None, str]:
    counts = publisher.endings
    if alliance is None:
        return None, ""
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


def _categories_table(publisher: Publisher, basis: str, outcome: Instrument) -> ApaTable | None:
    """The year's finished clients by category of change, or None without categories."""
    counts = publisher.categories
    if counts.empty or counts.to_numpy().sum() == 0:
        return None
    differs = ""
    if outcome.cutoff is not None and "cut-off published" not in basis:
        rule = "below" if outcome.cutoff_rule == "below" else "at or above"
        differs = (
            f" The recovery rates of the outcomes table use the {outcome.short}'s published "
            f"cut-off (clinical {rule} {outcome.cutoff:g}); this table's cut-off comes from "
            "clinical and functional reference samples (Jacobson & Truax, 1991), so the two "
            "can differ."
        )
    protected = publisher.protected("categories", counts, column_totals=True)
    rows = [[label.capitalize(), *rest] for label, *rest in _count_rows(protected, counts.index)]
    return ApaTable(
        f"Clinical significance ({publisher.year})",
        ["Category of change", "Clients"],
        rows,
        f"Clients who finished in the year, by reliable change and cut-off: {basis}. "
        "Recovered: reliably improved and moved from the clinical into the functional range; "
        "improved: reliably improved otherwise; deteriorated: reliably worse; harmed: reliably "
        'worse and moved into the clinical range (docs/models.md, "Clinical significance").'
        + differs
        + " "
        + SUPPRESSION_NOTE.format(below=publisher.policy.suppress_below),
    )


def _distinct(*instruments: Instrument | None) -> list[Instrument]:
    """The instruments named, each once, in order (none for a missing one)."""
    seen: dict[str, Instrument] = {}
    for inst in instruments:
        if inst is not None:
            seen.setdefault(inst.key, inst)
    return list(seen.values())


def _first(table: pd.DataFrame, column: str) -> str:
    return str(table[column].iloc[0]) if len(table) and column in table else ""


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


def _funnel_figure(
    table: pd.DataFrame, shown: pd.DataFrame, smallest: float
) -> tuple[str | None, int, int]:
    """The funnel plot of the year's ``table`` drawing the therapists ``shown`` (labelled by
    their ``therapist`` column), control limits from caseload ``smallest`` on; the figure and
    the counts shown and not shown."""
    if table.empty:
        return None, 0, 0
    overall = float(table["overall"].iloc[0])
    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axis = figure.subplots()
    grid = np.linspace(max(smallest, 2), max(table["n"].max(), 10) * 1.05, 200)
    for level, style in zip(FUNNEL_LIMITS, ("--", ":"), strict=True):
        half = norm_ppf(0.5 + level / 2) * np.sqrt(overall * (1 - overall) / grid)
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
    effects: pd.DataFrame, shown: pd.DataFrame, outcome: Instrument, *labels: str
) -> tuple[str | None, int, int]:
    """The caterpillar plot (:func:`allianceanalysis.figures.therapist_caterpillar`) of the
    year's therapist ``effects`` drawing the rows ``shown``; the figure and the counts shown
    and hidden."""
    hidden = len(effects) - len(shown)
    if shown.empty:
        return None, 0, hidden
    return _png(therapist_caterpillar(shown, outcome, *labels)), len(shown), hidden


def _published_therapists(
    part: Mapping[str, pd.DataFrame], outcome: Instrument, publisher: Publisher
) -> dict[str, Any]:
    """The published report's therapist plots, under codes: in the funnel the therapists
    whose counts the publisher shows, in the caterpillar plot those with caseloads at or above
    the suppression threshold."""
    funnel, effects = part["funnel"], part["therapist_effects"]
    if len(funnel):  # an empty table may have no columns
        funnel_shown = funnel[[publisher.system.visible(("therapist", t, "n"))
                               for t in funnel["therapist"]]]  # fmt: skip
    else:
        funnel_shown = funnel
    if len(effects):
        effects_shown = effects[effects["n_obs"] >= publisher.policy.suppress_below]
    else:
        effects_shown = effects
    funnel_png, *funnel_counts = _funnel_figure(funnel, funnel_shown,
                                                publisher.policy.suppress_below)  # fmt: skip
    caterpillar_png, *caterpillar_counts = _caterpillar_figure(effects, effects_shown, outcome)
    return {
        "funnel_png": funnel_png,
        "funnel_counts": funnel_counts,
        "caterpillar_png": caterpillar_png,
        "caterpillar_counts": caterpillar_counts,
    }


def supervision_reports(
    reports: Mapping[str, dict[str, Any]], tables: ReportTables, names: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The internal supervision report of each year: the published report's context (the
    same numbers, the same suppression) with both therapist plots drawing every therapist
    under their own ID, headed as not for publication.

    Parameters
    ----------
    reports : mapping
        From :func:`annual_reports`.
    tables : ReportTables
        The tables the reports were built from.
    names : mapping
        Therapist ID by pseudonymous code.
    """
    supervision = {}
    for year, context in reports.items():
        part = tables.of_year(year)
        funnel, effects = part["funnel"], part["therapist_effects"]
        if len(funnel):
            funnel = funnel.assign(therapist=funnel["therapist"].map(names))
        if len(effects):
            effects = effects.assign(term=effects["term"].map(names))
        smallest = funnel["n"].min() if len(funnel) else 0
        funnel_png, *funnel_counts = _funnel_figure(funnel, funnel, smallest)
        caterpillar_png, *caterpillar_counts = _caterpillar_figure(
            effects, effects, context["outcome"], "Therapist"
        )
        supervision[year] = {**context, "supervision": True, "therapists": True,
                             "funnel_png": funnel_png, "funnel_counts": funnel_counts,
                             "caterpillar_png": caterpillar_png,
                             "caterpillar_counts": caterpillar_counts}  # fmt: skip
    return supervision


def _alliance_figure(publisher: Publisher, alliance: Instrument | None) -> str | None:
    bins = publisher.bins
    if alliance is None or bins.empty or bins["sessions"].sum() == 0:
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
        crit = norm_ppf(0.975)
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
    missing: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every reporting year's report context, with disclosure control applied (step 2).

    Reads only ``tables`` (nothing is refitted). Every number the context holds has been
    through the year's :class:`Publisher`. The report shows therapists only when
    ``settings.therapist_plots`` asks for it (a funnel and a caterpillar plot, under
    pseudonymous codes, small caseloads not shown); :func:`supervision_reports` makes the
    internal supervision report from these contexts.

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
    missing : mapping, optional
        The published ``models``, ``imputed``, ``tipping`` and ``missingness`` tables, for
        the paragraph on missing data (:func:`missing_data_paragraph`).

    Returns
    -------
    dict
        Year -> context for :func:`render_html`; ``context["kpis"]`` is the published KPI table
        (``<year>_kpis.csv``) and ``context["suppression_log"]`` the appendix's log.
    """
    outcome = get_instrument(settings.outcome)
    alliance = None if settings.alliance is None else get_instrument(settings.alliance)
    parts = {year: tables.of_year(year) for year in tables.years}
    facts = dict(appendix or {})
    has_therapists = facts.get("therapists", 2) not in (None, 0, 1)
    publishers = {
        year: Publisher(
            part,
            settings.policy,
            alliance,
            year,
            validation=facts,
            therapists=settings.therapist_plots,
        )
        for year, part in parts.items()
    }
    paragraphs = [] if warning is None else early_warning_paragraphs(warning, outcome, alliance)
    missing_paragraph = missing_data_paragraph(missing, outcome, alliance, settings.early_session)
    reports = {}
    for year, publisher in publishers.items():
        published = publisher.kpi_table()
        sections = {
            name: published.set_index("kpi")
            .reindex([k for k in kpis if k in set(published["kpi"])])
            .reset_index()
            for name, kpis in KPI_SECTIONS.items()
        }
        other_outcomes = [
            (get_instrument(key), published[published["kpi"].str.startswith(f"{key}:")])
            for key in other_measures(published["kpi"])
        ]
        endings_table, endings_text = _endings_table(publisher, alliance)
        therapists = (
            _published_therapists(parts[year], outcome, publisher)
            if settings.therapist_plots
            else {"funnel_png": None, "funnel_counts": [0, 0], "caterpillar_png": None,
                  "caterpillar_counts": [0, 0]}
        )  # fmt: skip
        nhs_instruments = [
            get_instrument(key)
            for key in ("phq9", "gad7")
            if not sections["nhs"].empty and key != outcome.key
        ]
        reports[year] = {
            "dataset": settings.dataset,
            "year": year,
            "supervision": False,
            "therapists": settings.therapist_plots,
            "has_therapists": has_therapists,
            "settings": settings,
            "outcome": outcome,
            "alliance": alliance,
            "kpis": published,
            "sections": sections,
            "other_outcomes": other_outcomes,
            "bands_table": _bands_table(publisher),
            "categories_table": _categories_table(
                publisher, _first(parts[year]["change_categories"], "basis"), outcome
            ),
            "site_table": _site_table(publisher),
            "alliance_png": _alliance_figure(publisher, alliance),
            "alliance_sentence": ""
            if alliance is None
            else _early_alliance_sentence(
                parts[year]["early_alliance"],
                outcome,
                alliance,
                settings.early_session,
                publisher.count_text(("accounting:early alliance", 0, 0)),
            ),
            "endings_table": endings_table,
            "endings_text": endings_text,
            **therapists,
            "year_over_year": _year_over_year(publishers, year),
            "early_warning_paragraphs": paragraphs,
            "missing_data_paragraph": missing_paragraph,
            "accounting_table": _accounting_table(publisher),
            "appendix": facts,
            "validation_rows": publisher.validation_rows(),
            "instruments": _distinct(
                outcome, alliance, *nhs_instruments, *(o for o, _ in other_outcomes)
            ),
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
