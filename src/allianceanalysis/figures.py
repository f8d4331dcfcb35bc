"""Figures, drawn from the derived tables and the tidy model tables (never by refitting).

Every figure uses a colour-blind-safe palette (seaborn's ``colorblind``), labels its axes with
their units, and states n. Figures are plain :class:`~matplotlib.figure.Figure` objects (no
pyplot state), so they display in a notebook and leave its plotting backend alone.
:func:`save_figure` writes PNG (for reports) and SVG or PDF (for papers) without time stamps,
so identical tables give identical files. Therapists appear only under pseudonymous codes.

Examples
--------
>>> rows = pd.DataFrame({"model": ["therapist_effects"] * 2, "term": ["TH1", "TH2"],
...                      "estimate": [0.5, -0.5], "ci_low": [-0.5, -1.5],
...                      "ci_high": [1.5, 0.5], "n_obs": [12, 30]})
>>> therapist_caterpillar(rows).axes[0].get_ylabel()
'Therapist (pseudonymous code)'
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._files import atomic_outputs
from .derive import case_keys, in_case_order
from .instruments import Instrument, get_instrument
from .shards import ShardedTable, distinct, frames
from .shards import schema as _schema
from .sums import ExactSum
from .tables import TERM_LABELS, read_model_table
from .tidy import unmet_need

__all__ = [
    "FEEDBACK_TERMS",
    "FIGURES",
    "FIGURE_INPUTS",
    "FigureData",
    "FigureEntry",
    "alliance_components",
    "alliance_disaggregation",
    "alliance_outcome_scatter",
    "alliance_over_sessions",
    "apa_r",
    "clinical_significance_plot",
    "cutoff_line",
    "draw_figure",
    "early_alliance_by_k",
    "expected_response",
    "feedback_effects",
    "missing_data_plot",
    "outcome_trajectories",
    "pooled_forest",
    "power_plot",
    "rupture_profile",
    "save_figure",
    "shrinkage_plot",
    "therapist_caterpillar",
    "tipping_point_plot",
]

PALETTE = ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4",
           "#949494", "#ece133", "#56b4e9"]  # fmt: skip
"""seaborn's ``colorblind`` palette (Waskom, 2021, seaborn 0.13; tests/test_figures.py keeps it
equal), written out: importing seaborn for ten colours took 1.5 s of every figure job's start.

Waskom, M. L. (2021). seaborn: statistical data visualization. Journal of Open Source
Software, 6(60), 3021."""
SVG_SALT = "allianceanalysis"
"""Fixed seed of matplotlib's SVG element ids, so identical figures give identical files."""
SAVE_DPI = 150
"""Resolution of saved figures (PNG pixels per inch; the SVG's embedded images)."""
MAX_SESSION_SHOWN = 20
"""Trajectories are drawn up to this session (few clients attend more)."""
MIN_CLIENTS_FOR_MEAN = 10
"""Session means (and bands) are drawn only where at least this many clients contribute."""


def apa_r(value: float) -> str:
    """A correlation as APA style writes it: two decimals, no leading zero.

    Examples
    --------
    >>> apa_r(0.2834), apa_r(-0.05)
    ('.28', '-.05')
    """
    text = f"{value:.2f}"
    return text.replace("0.", ".", 1)


def _instrument(value: str | Instrument) -> Instrument:
    """An instrument given by its registry key or as itself."""
    return value if isinstance(value, Instrument) else get_instrument(value)


def _scale_label(inst: Instrument) -> str:
    return f"{inst.short} ({inst.total_min:g}-{inst.total_max:g}, {inst.direction})"


def cutoff_line(axis: Axes, inst: Instrument, label: str) -> None:
    """Mark an instrument's cut-off on a horizontal score axis (nothing without a cut-off)."""
    if inst.cutoff is None:
        return
    axis.axvline(inst.cutoff, color=PALETTE[3], linestyle="--", label=label)
    axis.legend(fontsize=8, loc="upper left")


def _rows(models: pd.DataFrame, model: str) -> pd.DataFrame:
    return models[models["model"] == model].set_index("term")


def _shown(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """The rows of ``frame`` with a ``value``, up to session :data:`MAX_SESSION_SHOWN`."""
    data = frame.dropna(subset=[value])
    return data[data["session"] <= MAX_SESSION_SHOWN]


def _band(
    table: pd.DataFrame | ShardedTable,
    keys: list[str],
    value: str,
    *,
    rows: Callable[[pd.DataFrame], pd.DataFrame] = lambda frame: frame,
    ceiling: float | None = None,
) -> pd.DataFrame:
    """Mean and 95% band of ``value`` per ``keys``, where at least
    :data:`MIN_CLIENTS_FOR_MEAN` values contribute (and with a ``ceiling``, the share of
    values at or above it), over the ``rows`` of each piece of ``table`` with a ``value``.

    Two passes, one piece in memory at a time, both sums exact
    (:class:`~allianceanalysis.sums.ExactSum`: the mean, then the squared deviations from it),
    so the band of a table in shards is the whole table's to the last bit.

    Examples
    --------
    >>> t = pd.DataFrame({"session": [1] * 10 + [2] * 3, "outcome": range(13)})
    >>> _band(t, ["session"], "outcome")[["mean", "count"]].to_dict("index")  # session 2: 3
    {1: {'mean': 4.5, 'count': 10}}
    """

    def cells() -> Iterable[tuple[object, np.ndarray]]:
        for frame in frames(table, [*keys, value, "session"]):
            data = rows(frame).dropna(subset=[value])
            for key, values in data.groupby(keys[0] if len(keys) == 1 else keys)[value]:
                yield key, values.to_numpy(dtype=float)[:, None]

    sums: dict[object, ExactSum] = {}
    counts: dict[object, list[int]] = {}
    for key, values in cells():
        sums.setdefault(key, ExactSum(1)).add(values)
        count = counts.setdefault(key, [0, 0])
        count[0] += len(values)
        count[1] += 0 if ceiling is None else int((values >= ceiling).sum())
    mean = {key: total.value()[0] / counts[key][0] for key, total in sums.items()}
    squares: dict[object, ExactSum] = {}
    for key, values in cells():
        squares.setdefault(key, ExactSum(1)).add((values - mean[key]) ** 2)
    order = sorted(sums)
    index = (pd.Index(order, name=keys[0]) if len(keys) == 1
             else pd.MultiIndex.from_tuples(order, names=keys))  # fmt: skip
    count = np.array([counts[key][0] for key in order], dtype="int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.sqrt(np.array([squares[key].value()[0] for key in order]) / (count - 1))
    stats = pd.DataFrame({"mean": [mean[key] for key in order], "std": std, "count": count},
                         index=index)  # fmt: skip
    if ceiling is not None:
        stats["ceiling"] = np.array([counts[key][1] for key in order]) / count
    stats = stats[stats["count"] >= MIN_CLIENTS_FOR_MEAN]
    half = 1.96 * stats["std"] / np.sqrt(stats["count"])
    return stats.assign(low=stats["mean"] - half, high=stats["mean"] + half)


def _clients(table: pd.DataFrame | ShardedTable, value: str, by: str | None) -> dict:
    """The clients with a ``value`` up to session :data:`MAX_SESSION_SHOWN`, sorted, per
    value of ``by`` (``None``: all), over the pieces of ``table`` (a client with episodes in
    two shards counted once)."""
    columns = ["client_id", *([by] if by else [])]
    seen = pd.concat(
        [_shown(frame, value)[columns].drop_duplicates()
         for frame in frames(table, [*columns, "session", value])],
        ignore_index=True,
    )  # fmt: skip
    if by is None:
        return {None: np.sort(seen["client_id"].unique())}
    return {group: np.sort(part["client_id"].unique())
            for group, part in seen.dropna(subset=[by]).groupby(by)}  # fmt: skip


def _client_count(table: pd.DataFrame | ShardedTable, value: str) -> int:
    """How many clients have a ``value`` up to session :data:`MAX_SESSION_SHOWN`, over the
    pieces of ``table`` (a client in two shards counted once): :func:`_clients`' count,
    counted in Arrow memory without sorting (at 10M clients the sorted Python strings added
    about 0.5 GB to the alliance figure's peak: 3,736 MB, 3,242 MB counted so)."""
    seen = [pa.array(_shown(frame, value)["client_id"].drop_duplicates(), type=pa.string())
            for frame in frames(table, ["client_id", "session", value])]  # fmt: skip
    return int(pc.count_distinct(pa.chunked_array(seen, type=pa.string())).as_py())


def _client_rows(
    table: pd.DataFrame | ShardedTable, value: str, chosen: np.ndarray, columns: list[str]
) -> pd.DataFrame:
    """The rows of the ``chosen`` clients with a ``value`` up to session
    :data:`MAX_SESSION_SHOWN`, in case order."""
    wanted = [*dict.fromkeys([*case_keys(_schema(table)), *columns, "session", value])]
    return in_case_order(pd.concat(
        [_shown(frame, value).loc[lambda f: f["client_id"].isin(chosen)]
         for frame in frames(table, wanted)],
        ignore_index=True,
    ))  # fmt: skip


def _panel(bands: pd.DataFrame, group: object) -> pd.DataFrame:
    """One panel's rows of bands by panel and session, indexed by session."""
    return bands[bands.index.get_level_values(0) == group].droplevel(0)


def _integer_sessions(axis: object) -> None:
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))


def outcome_trajectories(
    table: pd.DataFrame,
    outcome: str | Instrument,
    *,
    by: str | None = None,
    sample: int = 30,
    seed: int = 0,
) -> Figure:
    """Outcome over sessions: a sample of clients' lines, the mean and its 95% band.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`allianceanalysis.derive.session_table` (``outcome`` by ``session``).
    outcome : Instrument
        The outcome instrument (axis label).
    by : str, optional
        Column to draw one panel per value of (e.g. ``site_id``).
    sample : int
        Clients drawn as thin lines per panel (a seeded sample; no line is labelled).
    seed : int
    """
    outcome = _instrument(outcome)
    by = by if by and by in _schema(table) else None
    panels = _clients(table, "outcome", by)
    groups = sorted(panels) if by else [None]
    figure = Figure(figsize=(4.2 * len(groups), 4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(groups), sharey=True, squeeze=False)[0])
    rng = np.random.default_rng(seed)
    chosen = {}
    for group in groups:
        clients = panels[group]
        chosen[group] = rng.choice(clients, size=min(sample, len(clients)), replace=False)
    lines = _client_rows(table, "outcome", np.concatenate(list(chosen.values())),
                         [by] if by else [])  # fmt: skip
    bands = _band(table, [by, "session"] if by else ["session"], "outcome",
                  rows=lambda frame: _shown(frame, "outcome"))  # fmt: skip
    for axis, group in zip(axes, groups, strict=True):
        part = lines if group is None else lines[lines[by] == group]
        for _, client in part[part["client_id"].isin(chosen[group])].groupby("client_id"):
            axis.plot(client["session"], client["outcome"], color="0.75", linewidth=0.6)
        band = bands if group is None else _panel(bands, group)
        clients = panels[group]
        axis.fill_between(
            band.index, band["low"], band["high"], color=PALETTE[0], alpha=0.25, linewidth=0
        )
        axis.plot(band.index, band["mean"], color=PALETTE[0], linewidth=2, label="mean (95% CI)")
        title = f"n = {len(clients):,} clients"
        axis.set_title(title if group is None else f"{group}: {title}", fontsize=10)
        axis.set_xlabel("Session")
        _integer_sessions(axis)
        axis.set_ylim(outcome.total_min, outcome.total_max)
    axes[0].set_ylabel(_scale_label(outcome))
    axes[0].legend(loc="lower right", fontsize=8)
    figure.suptitle(
        "Outcome trajectories (grey: a random sample of clients; mean where "
        f"n ≥ {MIN_CLIENTS_FOR_MEAN})",
        fontsize=11,
    )
    return figure


def alliance_over_sessions(
    table: pd.DataFrame, clients: pd.DataFrame, alliance: str | Instrument, early_session: int
) -> Figure:
    """Alliance by session (with the share of ratings at the scale's maximum: the ceiling) and
    the distribution of the early alliance rating, with the instrument's cut-off."""
    alliance = _instrument(alliance)
    figure = Figure(figsize=(9, 4), layout="constrained")
    left, right = figure.subplots(1, 2)
    band = _band(table, ["session"], "alliance", ceiling=alliance.total_max,
                 rows=lambda frame: _shown(frame, "alliance"))  # fmt: skip
    left.fill_between(
        band.index, band["low"], band["high"], color=PALETTE[2], alpha=0.25, linewidth=0
    )
    left.plot(band.index, band["mean"], color=PALETTE[2], linewidth=2, label="mean (95% CI)")
    left.set_xlabel("Session")
    _integer_sessions(left)
    left.set_ylabel(_scale_label(alliance))
    rated = _client_count(table, "alliance")
    left.set_title(f"Alliance by session (n = {rated:,} clients)", fontsize=10)
    ceiling = band["ceiling"]
    twin = left.twinx()
    twin.bar(
        ceiling.index,
        ceiling.to_numpy() * 100,
        color=PALETTE[7],
        alpha=0.35,
        width=0.6,
        label=f"% at {alliance.total_max:g}",
    )
    twin.set_ylabel(f"% of ratings at the maximum ({alliance.total_max:g})")
    twin.set_ylim(0, 100)
    left.set_zorder(twin.get_zorder() + 1)
    left.patch.set_visible(False)
    handles = left.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    left.legend(handles=handles, loc="lower right", fontsize=8)

    early = clients["alliance_early"].dropna()
    right.hist(
        early,
        bins=np.linspace(alliance.total_min, alliance.total_max, 21),
        color=PALETTE[2],
        edgecolor="white",
    )
    if alliance.cutoff is not None:
        share = (early < alliance.cutoff).mean() * 100
        cutoff_line(right, alliance, f"cut-off {alliance.cutoff:g} ({share:.0f}% below)")
    right.set_xlabel(f"{_scale_label(alliance)} at session {early_session}")
    right.set_ylabel("Clients")
    right.set_title(f"Early alliance (n = {len(early):,})", fontsize=10)
    return figure


def alliance_outcome_scatter(
    clients: pd.DataFrame,
    models: pd.DataFrame,
    outcome: str | Instrument,
    alliance: str | Instrument,
) -> Figure:
    """Early alliance against final outcome adjusted for intake, with the fitted partial slope.

    The y axis is the final outcome minus its regression on intake, plus its mean (an added-
    variable plot), so the line's slope is the partial slope and the title quotes the partial
    correlation from the ``alliance_outcome`` table. Beyond :data:`MAX_SCATTER_POINTS` clients
    the points are binned (hexagons shaded by count).
    """
    outcome, alliance = _instrument(outcome), _instrument(alliance)
    data = clients.loc[clients["eligible"].to_numpy(bool),  # only the columns drawn are copied
                       ["alliance_early", "outcome_final", "outcome_intake"]]  # fmt: skip
    x, y, z = (
        data[c].to_numpy(float) for c in ("alliance_early", "outcome_final", "outcome_intake")
    )
    design = np.column_stack([np.ones(len(z)), z])
    adjusted = y - design @ np.linalg.lstsq(design, y, rcond=None)[0] + y.mean()
    x_resid = x - design @ np.linalg.lstsq(design, x, rcond=None)[0]
    slope = float(x_resid @ (adjusted - adjusted.mean()) / (x_resid @ x_resid))
    figure = Figure(figsize=(5.5, 4.5), layout="constrained")
    axis = figure.subplots()
    if len(x) <= MAX_SCATTER_POINTS:
        axis.scatter(x, adjusted, s=10, alpha=0.5, color=PALETTE[0], edgecolor="none")
    else:
        shades = axis.hexbin(x, adjusted, gridsize=60, mincnt=1, bins="log", cmap="Blues")
        figure.colorbar(shades, ax=axis, label="Clients (log scale)")
    grid = np.linspace(x.min(), x.max(), 50)
    axis.plot(grid, adjusted.mean() + slope * (grid - x.mean()), color=PALETTE[3], linewidth=2)
    row = _rows(models, "alliance_outcome").loc["partial_r"]
    axis.set_title(
        f"Partial r = {apa_r(row['estimate'])}, 95% CI [{apa_r(row['ci_low'])}, "
        f"{apa_r(row['ci_high'])}], n = {int(row['n_obs']):,}",
        fontsize=10,
    )
    axis.set_xlabel(f"Early alliance: {_scale_label(alliance)}")
    axis.set_ylabel(f"Final {outcome.short}, adjusted for intake")
    return figure


def early_alliance_by_k(
    models: pd.DataFrame, alliance: str | Instrument = "srs", outcome: str | Instrument = "ors"
) -> Figure:
    """The early-alliance coefficient, with its 95% CI, against the session k it was rated at.

    Parameters
    ----------
    models : pandas.DataFrame
        Tidy rows of the ``early_alliance_k1`` … ``_k5`` models (e.g. ``tables/models.csv``).
    alliance, outcome : str or Instrument
        The instruments (registry key or :class:`~allianceanalysis.instruments.Instrument`),
        named in the axis labels.

    Examples
    --------
    >>> rows = pd.DataFrame({"model": [f"early_alliance_k{k}" for k in (1, 2)],
    ...                      "term": "alliance_early", "estimate": [0.5, 0.3],
    ...                      "ci_low": [0.3, 0.1], "ci_high": [0.7, 0.5], "n_obs": [200, 180]})
    >>> early_alliance_by_k(rows).axes[0].get_xlabel()
    'Session of the alliance rating (k)'
    """
    rows = models[
        models["model"].str.fullmatch(r"early_alliance_k\d+") & (models["term"] == "alliance_early")
    ].copy()
    rows["k"] = rows["model"].str.extract(r"(\d+)$")[0].astype(int)
    rows = rows.sort_values("k")
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    axis.axhline(0, color="0.6", linewidth=0.8)
    axis.errorbar(
        rows["k"],
        rows["estimate"],
        yerr=[rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]],
        fmt="o-",
        color=PALETTE[0],
        capsize=4,
    )
    for _, row in rows.iterrows():
        axis.annotate(
            f"n={int(row['n_obs'])}",
            (row["k"], row["ci_high"]),
            textcoords="offset points",
            xytext=(0, 5),
            ha="center",
            fontsize=8,
        )
    axis.set_xticks(rows["k"])
    axis.set_xlabel("Session of the alliance rating (k)")
    outcome, alliance = _instrument(outcome), _instrument(alliance)
    axis.set_ylabel(f"Final {outcome.short} points per {alliance.short} point\n(95% CI)")
    axis.margins(y=0.15)
    axis.set_title(
        "Early alliance and final outcome\n(controlling intake and, from k = 2, early change)",
        fontsize=11,
    )
    return figure


def alliance_components(
    models: pd.DataFrame, outcome: str | Instrument = "ors", alliance: str | Instrument = "srs"
) -> Figure:
    """The partial correlation of each component of the alliance with final outcome
    (controlling intake), with its 95% interval, beside the whole scale's.

    The cluster-bootstrap interval where the table has it (therapists), else Fisher's z.

    Parameters
    ----------
    models : pandas.DataFrame
        Tidy rows of the ``alliance_component_<name>`` models and of ``alliance_outcome``
        (e.g. ``tables/models.csv``); or the one row saying why they were not computed.
    outcome, alliance : str or Instrument

    Examples
    --------
    >>> rows = pd.DataFrame({"model": ["alliance_component_bond", "alliance_component_goal"],
    ...                      "term": "partial_r", "estimate": [0.2, 0.3], "ci_low": [0.1, 0.2],
    ...                      "ci_high": [0.3, 0.4], "n_obs": 200, "message": ""})
    >>> sorted(t.get_text() for t in alliance_components(rows).axes[0].get_yticklabels())
    ['bond', 'goal']
    """
    outcome, alliance = _instrument(outcome), _instrument(alliance)
    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axis = figure.subplots()
    parts = models[models["model"].str.startswith("alliance_component_")]
    whole = models[models["model"] == "alliance_outcome"]
    if parts.empty:
        reason = models.loc[models["model"] == "alliance_components", "message"]
        return _not_computed(figure, axis, str(reason.iloc[0]) if len(reason) else "")
    rows = []
    for model, table in [*parts.groupby("model", sort=False), ("whole", whole)]:
        terms = table.set_index("term")
        term = "partial_r_bootstrap" if "partial_r_bootstrap" in terms.index else "partial_r"
        if term in terms.index:
            label = model.removeprefix("alliance_component_")
            if model == "whole":
                label = f"whole {alliance.short}"
            rows.append((label, *terms.loc[term, ["estimate", "ci_low", "ci_high"]]))
    table = pd.DataFrame(rows, columns=["label", "r", "low", "high"]).iloc[::-1]
    position = np.arange(len(table))
    for y, row in zip(position, table.itertuples(), strict=True):
        colour = PALETTE[7] if row.label.startswith("whole") else PALETTE[0]
        spread = [[row.r - row.low], [row.high - row.r]]
        axis.errorbar(row.r, y, xerr=spread, fmt="o", color=colour, capsize=3)
    axis.axvline(0, color="0.6", linewidth=0.8)
    axis.set_yticks(position, table["label"])
    axis.set_xlabel(f"Partial r with the final {outcome.short}, controlling intake (95% CI)")
    axis.set_title(f"Components of the {alliance.short} and outcome", fontsize=11)
    return figure


MODERATED_TITLES = {
    "alliance_outcome": "Early alliance and final outcome",
    "early_alliance": "... beyond early change",
    "alliance_next_session": "Session alliance and next outcome",
}
"""Panel titles of the moderated models (:data:`allianceanalysis.moderation.MODELS`)."""


def conditional_effects(models: pd.DataFrame, outcome: str | Instrument = "ors") -> Figure:
    """The alliance's conditional effect on outcome at each level of every moderator (a
    categorical one) or across its range with the Johnson–Neyman region (a continuous one),
    with 95% intervals: one panel per moderated model (rows: moderators).

    Parameters
    ----------
    models : pandas.DataFrame
        Tidy rows of the ``<model>_by_<moderator>`` models (e.g. ``tables/models.csv``); or
        the ``moderation`` row saying why there are none.

    Examples
    --------
    >>> terms = ["alliance_early|treatment=CBT", "alliance_early|treatment=PDT"]
    >>> rows = pd.DataFrame({"model": "alliance_outcome_by_treatment", "term": terms,
    ...                      "estimate": [0.3, 0.6], "ci_low": [0.1, 0.4], "ci_high": [0.5, 0.8],
    ...                      "message": ""})
    >>> [t.get_text() for t in conditional_effects(rows).axes[0].get_xticklabels()]
    ['CBT', 'PDT']
    """
    outcome = _instrument(outcome)
    effects = models[models["term"].str.contains("|", regex=False)]
    moderated = list(dict.fromkeys(effects["model"]))
    if not moderated:
        figure = Figure(figsize=(7, 2.5), layout="constrained")
        reason = models.loc[models["model"] == "moderation", "message"]
        return _not_computed(figure, figure.subplots(), str(reason.iloc[0]) if len(reason) else "")
    stems = [s for s in MODERATED_TITLES if any(m.startswith(f"{s}_by_") for m in moderated)]
    moderators = list(dict.fromkeys(m.split("_by_", 1)[1] for m in moderated))
    figure = Figure(figsize=(3.4 * len(stems), 2.8 * len(moderators)), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(moderators), len(stems), squeeze=False))
    for row, moderator in enumerate(moderators):
        for column, stem in enumerate(stems):
            axis = axes[row, column]
            table = models[models["model"] == f"{stem}_by_{moderator}"]
            _conditional_panel(axis, table, moderator)
            axis.axhline(0, color="0.6", linewidth=0.8)
            if row == 0:
                axis.set_title(MODERATED_TITLES[stem], fontsize=10)
            if column == 0:
                axis.set_ylabel(f"{outcome.short} points per alliance point")
    figure.suptitle("The alliance's effect by moderator (95% CI)", fontsize=11)
    return figure


def _conditional_panel(axis: Axes, table: pd.DataFrame, moderator: str) -> None:
    rows = table[table["term"].str.contains("|", regex=False)].copy()
    if rows.empty:
        message = table["message"].iloc[0] if len(table) else "not computed"
        axis.text(0.5, 0.5, textwrap.fill(str(message), 40), ha="center", va="center",
                  transform=axis.transAxes, fontsize=7)  # fmt: skip
        axis.set_xticks([])
        return
    rows["value"] = rows["term"].str.split("=", n=1).str[1]
    summary = rows["value"].isin(["mean-1sd", "mean", "mean+1sd"])
    if not summary.any():  # a categorical moderator: a point per level
        position = np.arange(len(rows))
        spread = [rows["estimate"] - rows["ci_low"], rows["ci_high"] - rows["estimate"]]
        axis.errorbar(position, rows["estimate"], yerr=spread, fmt="o", color=PALETTE[0],
                      capsize=4)  # fmt: skip
        axis.set_xticks(position, rows["value"])
        axis.set_xlabel(moderator)
        return
    grid = rows[~summary].assign(at=lambda r: r["value"].astype(float))
    axis.plot(grid["at"], grid["estimate"], color=PALETTE[0])
    axis.fill_between(grid["at"], grid["ci_low"], grid["ci_high"], color=PALETTE[0], alpha=0.2)
    bounds = table.loc[table["term"].str.startswith("johnson_neyman"), "estimate"].dropna()
    low, high = grid["at"].min(), grid["at"].max()
    shown = bounds[(bounds >= low) & (bounds <= high)]
    for bound in shown:
        axis.axvline(bound, color=PALETTE[3], linestyle="--", linewidth=1)
    axis.set_xlabel(moderator + (" (dashed: Johnson–Neyman bound)" if len(shown) else ""))


def alliance_disaggregation(
    models: pd.DataFrame, outcome: str | Instrument = "ors", alliance: str | Instrument = "srs"
) -> Figure:
    """Between- and within-therapist alliance slopes and their difference (Baldwin et al., 2007)."""
    rows = _rows(models, "alliance_disaggregated")
    terms = {
        "alliance_therapist_mean": "Between therapists\n(therapist mean)",
        "alliance_client_dev": "Within therapists\n(client deviation)",
        "between_minus_within": "Difference\n(between - within)",
    }
    shown = rows.loc[list(terms)]
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(terms))[::-1]
    axis.axvline(0, color="0.6", linewidth=0.8)
    axis.errorbar(
        shown["estimate"],
        positions,
        xerr=[shown["estimate"] - shown["ci_low"], shown["ci_high"] - shown["estimate"]],
        fmt="o",
        color=PALETTE[0],
        capsize=4,
    )
    axis.set_yticks(positions, list(terms.values()))
    outcome, alliance = _instrument(outcome), _instrument(alliance)
    axis.set_xlabel(f"Final {outcome.short} points per {alliance.short} point (95% CI)")
    n_obs = int(shown["n_obs"].iloc[0])
    n_groups = int(shown["n_groups"].iloc[0])
    axis.set_title(
        "Therapist and client parts of the alliance\n"
        f"(n = {n_obs:,} clients, {n_groups:,} therapists)",
        fontsize=10,
    )
    return figure


MAX_SCATTER_POINTS = 5_000
"""Scatter plots draw each client up to this many; beyond, a hexagonal 2-D histogram (a
million points make a 100 MB SVG and say less than their density)."""
MAX_LABELLED_THERAPISTS = 40
"""Therapist plots label each point with its code up to this many therapists; beyond it (a
national service has thousands) the points stand unlabelled, ranked, in a figure of fixed size."""


def therapist_caterpillar(
    models: pd.DataFrame,
    outcome: str | Instrument = "ors",
    label: str = "Therapist (pseudonymous code)",
) -> Figure:
    """Shrunken therapist effects (BLUPs) with 95% intervals, sorted; labelled by the rows'
    ``term`` (pseudonymous codes; the supervision report's own IDs, with its ``label``) up to
    :data:`MAX_LABELLED_THERAPISTS` therapists, ranked beyond."""
    rows = models[models["model"] == "therapist_effects"].sort_values("estimate")
    labelled = len(rows) <= MAX_LABELLED_THERAPISTS
    height = 0.18 * len(rows) + 1.5 if labelled else 6.0
    figure = Figure(figsize=(6, max(3.0, height)), layout="constrained")
    axis = figure.subplots()
    positions = np.arange(len(rows))
    axis.axvline(0, color="0.6", linewidth=0.8)
    excludes_zero = (rows["ci_low"] > 0) | (rows["ci_high"] < 0)
    colours = [PALETTE[3] if flag else PALETTE[0] for flag in excludes_zero]
    axis.hlines(positions, rows["ci_low"], rows["ci_high"], colors=colours,
                linewidth=1.5 if labelled else 0.4, rasterized=not labelled)  # fmt: skip
    axis.scatter(rows["estimate"], positions, color=colours, s=14 if labelled else 2, zorder=3,
                 rasterized=not labelled)  # fmt: skip
    if labelled:
        axis.set_yticks(positions, rows["term"], fontsize=7)
        axis.set_ylabel(label)
    else:
        axis.set_yticks([])
        axis.set_ylim(-1, len(rows))
        axis.set_ylabel("Therapists, ranked")
    outcome = _instrument(outcome)
    better = "higher" if outcome.higher_is_better else "lower"
    axis.set_xlabel(
        f"Effect on final {outcome.short} beyond intake (points, 95% interval; {better} is better)"
    )
    axis.set_title(
        f"Therapist effects, shrunken towards zero (n = {len(rows):,} therapists)", fontsize=10
    )
    return figure


def dropout_calibration(points: pd.DataFrame, warning: pd.DataFrame) -> Figure:
    """The dropout-risk model out of sample: the observed dropout rate (95% Wilson interval)
    against the mean predicted risk in tenths of predicted risk, with the line of perfect
    calibration; the title quotes the cross-validated AUC, Brier score and calibration slope.

    Parameters
    ----------
    points : pandas.DataFrame
        :func:`allianceanalysis.dropout_risk.calibration_table`
        (``tables/dropout_calibration.csv``).
    warning : pandas.DataFrame
        The tidy early-warning table (``tables/early_warning.csv``).
    """
    figure = Figure(figsize=(5, 4.5), layout="constrained")
    axis = figure.subplots()
    rows = warning[warning["model"] == "dropout_risk"].set_index("term")["estimate"]
    if points.empty or "auc_cv" not in rows:
        return _not_computed(figure, axis)
    top = float(max(points["ci_high"].max(), points["predicted"].max())) * 1.05
    axis.plot([0, top], [0, top], color="0.6", linestyle="--", linewidth=1,
              label="perfect calibration")  # fmt: skip
    below = points["observed"] - points["ci_low"]
    above = points["ci_high"] - points["observed"]
    axis.errorbar(points["predicted"], points["observed"], yerr=[below, above], fmt="o",
                  color=PALETTE[0], capsize=3, label="tenths of predicted risk")  # fmt: skip
    axis.set_xlim(0, top)
    axis.set_ylim(0, top)
    axis.set_xlabel("Predicted risk of dropping out after the session (held out)")
    axis.set_ylabel("Observed dropout rate (95% CI)")
    axis.set_title(
        f"AUC {rows['auc_cv']:.2f}, Brier {rows['brier_cv']:.3f}, "
        f"calibration slope {rows['calibration_slope_cv']:.2f}",
        fontsize=10,
    )
    axis.legend(fontsize=8, loc="upper left")
    return figure


CATEGORY_COLOURS = {"recovered": PALETTE[0], "improved": PALETTE[2], "unchanged": PALETTE[7],
                    "deteriorated": PALETTE[1], "harmed": PALETTE[3]}  # fmt: skip
"""Colours of the categories of change (clinical significance), best to worst."""


def clinical_significance_plot(
    cases: pd.DataFrame, table: pd.DataFrame, outcome: str | Instrument
) -> Figure:
    """The classic clinical-significance plot (Jacobson & Truax, 1991): each case's pre
    against post score, the diagonal of no change, the band of no reliable change, the cut-off
    on both axes, points coloured by category.

    Parameters
    ----------
    cases : pandas.DataFrame
        :attr:`allianceanalysis.clinical_significance.ClinicalSignificance.cases` (``pre``,
        ``post``, ``band_low``, ``band_high``, ``category``).
    table : pandas.DataFrame
        The tidy rows of the analysis (its ``cutoff`` row; or the one row saying why it was
        not computed).
    outcome : str or Instrument

    Examples
    --------
    >>> from allianceanalysis.clinical_significance import clinical_significance
    >>> from allianceanalysis.instruments import get_instrument
    >>> pairs = pd.DataFrame({"pre": [30.0, 28, 35, 22, 40], "post": [10.0, 27, 33, 30, 12]})
    >>> result = clinical_significance(pairs, get_instrument("bdi2"))
    >>> rows = pd.DataFrame([{"model": "clinical_significance", "term": "cutoff",
    ...                       "estimate": result.parameters["cutoff_value"], "message": ""}])
    >>> clinical_significance_plot(result.cases, rows, "bdi2").axes[0].get_xlabel()
    'BDI-II before (0-63, lower is better)'
    """
    inst = _instrument(outcome)
    figure = Figure(figsize=(5.5, 5.2), layout="constrained")
    axis = figure.subplots()
    rows = table.set_index("term")
    if "cutoff" not in rows.index:
        message = str(rows["message"].iloc[0]) if len(rows) else ""
        return _not_computed(figure, axis, message)
    low, high = inst.total_min, inst.total_max
    order = cases.sort_values("pre")
    axis.fill_between(order["pre"], order["band_low"], order["band_high"], color="#dddddd",
                      label="no reliable change", linewidth=0)  # fmt: skip
    axis.plot([low, high], [low, high], color="#777777", linewidth=0.8)
    cutoff = float(rows.loc["cutoff", "estimate"])
    axis.axvline(cutoff, color=PALETTE[3], linestyle="--", linewidth=1)
    axis.axhline(cutoff, color=PALETTE[3], linestyle="--", linewidth=1, label=f"cut-off "
                 f"({cutoff:.4g})")  # fmt: skip
    for category, colour in CATEGORY_COLOURS.items():
        shown = cases[cases["category"] == category]
        if len(shown):
            axis.scatter(shown["pre"], shown["post"], s=14, color=colour, label=category,
                         alpha=0.8)  # fmt: skip
    axis.set_xlim(low, high)
    axis.set_ylim(low, high)
    axis.set_aspect("equal")
    span = f"{low:g}-{high:g}, {inst.direction}"
    axis.set_xlabel(f"{inst.short} before ({span})")
    axis.set_ylabel(f"{inst.short} after")
    axis.legend(fontsize=7, loc="upper left" if not inst.higher_is_better else "lower right")
    return figure


def _not_computed(figure: Figure, axis: object, reason: str = "") -> Figure:
    """An empty figure that says the analysis was not computed, and why."""
    text = textwrap.fill(reason, 70) if reason else "Not computed (see tables/early_warning.csv)"
    axis.text(0.5, 0.5, text, ha="center", va="center")
    axis.set_axis_off()
    return figure


UNDEFINED_SHARES = {
    "sensitivity": ("sensitivity", "no client deteriorated reliably"),
    "specificity": ("specificity", "every client deteriorated reliably"),
    "ppv": ("PPV", "no client was flagged"),
}
"""The signal's shares quoted in :func:`expected_response`'s title, each with what leaves it
undefined (a share of no clients: :func:`~allianceanalysis.expected_response.signal_accuracy`
gives it as missing)."""


def expected_response(
    curves: pd.DataFrame, warning: pd.DataFrame, outcome: str | Instrument
) -> Figure:
    """The expected treatment response: the expected outcome (solid) and the not-on-track
    bound (dashed) by session from session 2, for clients starting at the quartiles of the
    intake outcome (the intake, session 1, as a point);
    the title quotes the signal's sensitivity, specificity and PPV against reliable
    deterioration.

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`allianceanalysis.expected_response.expected_curves`
        (``tables/expected_response_curves.csv``).
    warning : pandas.DataFrame
        The tidy early-warning table (``tables/early_warning.csv``).
    outcome : Instrument
    """
    outcome = _instrument(outcome)
    figure = Figure(figsize=(6, 4.5), layout="constrained")
    axis = figure.subplots()
    if curves.empty:
        return _not_computed(figure, axis)
    for colour, (quartile, curve) in zip(PALETTE, curves.groupby("intake_quartile"), strict=False):
        label = f"intake {curve['intake'].iloc[0]:.1f} ({quartile}th percentile)"
        axis.plot(curve["session"], curve["expected"], color=colour, marker="o", markersize=3,
                  label=label)  # fmt: skip
        axis.plot(curve["session"], curve["bound"], color=colour, linestyle="--", linewidth=1)
        axis.plot([1], [curve["intake"].iloc[0]], color=colour, marker="s", markersize=5)
    axis.plot([], [], color="0.4", linestyle="--", linewidth=1, label="not-on-track bound")
    axis.set_xlabel("Session")
    axis.set_ylabel(_scale_label(outcome))
    _integer_sessions(axis)
    signal = warning[warning["model"] == "not_on_track_signal"].set_index("term")["estimate"]
    if set(UNDEFINED_SHARES) <= set(signal.index):
        shares = [f"{label} {signal[term]:.2f}" if np.isfinite(signal[term])
                  else f"{label} undefined ({why})"
                  for term, (label, why) in UNDEFINED_SHARES.items()]  # fmt: skip
        axis.set_title("Signal against reliable deterioration: " + ", ".join(shares),
                       fontsize=9, wrap=True)  # fmt: skip
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    return figure


FEEDBACK_TERMS = {
    "feedback_outcome": "Final outcome (points)",
    "feedback_alliance": "Early alliance (points)",
    "feedback_dropout": "Dropout (log odds)",
}
"""The feedback rows drawn by :func:`feedback_effects`: the ``feedback`` term of each model."""


def feedback_effects(warning: pd.DataFrame) -> Figure:
    """Did feedback help: the difference between feedback and no-feedback cases in final
    outcome, early alliance and the log-odds of dropping out (95% intervals), each on its own
    axis, under the statement of what the design supports.

    Parameters
    ----------
    warning : pandas.DataFrame
        The tidy early-warning table (``tables/early_warning.csv``).
    """
    rows = warning[warning["model"].isin(list(FEEDBACK_TERMS))
                   & (warning["term"] == "feedback")].set_index("model")  # fmt: skip
    figure = Figure(figsize=(9, 2.8), layout="constrained")
    if rows["estimate"].isna().all():
        reason = warning.loc[warning["model"] == "feedback_outcome", "message"].dropna()
        return _not_computed(figure, figure.subplots(), reason.iloc[0] if len(reason) else "")
    rows = rows.dropna(subset=["estimate"])
    axes = figure.subplots(1, len(rows), squeeze=False)[0]
    for axis, (model, row) in zip(axes, rows.iterrows(), strict=True):
        axis.errorbar([row["estimate"]], [0], xerr=[[row["estimate"] - row["ci_low"]],
                      [row["ci_high"] - row["estimate"]]], fmt="o", color=PALETTE[0],
                      capsize=4)  # fmt: skip
        axis.axvline(0, color="0.6", linewidth=0.8, linestyle=":")
        axis.set_yticks([])
        axis.set_xlabel(f"Feedback − none: {FEEDBACK_TERMS[model]}", fontsize=9)
    statement = str(rows["message"].iloc[0]).split("; ")[-1]
    figure.suptitle(textwrap.fill(statement, 120), fontsize=8)
    return figure


def rupture_profile(
    windows: pd.DataFrame, alliance: str | Instrument, *, examples: int = 3, seed: int = 0
) -> Figure:
    """Ruptures and repair: example sequences and the average "V" around a rupture.

    Parameters
    ----------
    windows : pandas.DataFrame
        :func:`allianceanalysis.derive.rupture_windows` (one line per ``kind`` when present).
    alliance : Instrument
        The alliance instrument (axis label).
    examples : int
        Ruptures drawn as example sequences per kind (a seeded sample).
    seed : int
    """
    alliance = _instrument(alliance)
    figure = Figure(figsize=(10, 4), layout="constrained")
    if windows.empty:
        return _not_computed(figure, figure.subplots())
    data = windows.assign(kind=windows.get("kind", "all ruptures"))
    left, right = figure.subplots(1, 2, sharex=True)
    rng = np.random.default_rng(seed)
    for colour, (kind, group) in zip(PALETTE, data.groupby("kind", sort=True), strict=False):
        ids = group["rupture"].unique()
        for rupture in rng.choice(ids, size=min(examples, len(ids)), replace=False):
            line = group[group["rupture"] == rupture]
            left.plot(line["offset"], line["alliance"], color=colour, alpha=0.7, marker="o",
                      markersize=3)  # fmt: skip
        band = _band(group, ["offset"], "change")
        right.fill_between(band.index, band["low"], band["high"], color=colour, alpha=0.2)
        right.plot(band.index, band["mean"], color=colour, marker="o",
                   label=f"{kind} (n = {len(ids):,})")  # fmt: skip
    for axis in (left, right):
        axis.axvline(0, color="0.6", linewidth=0.8, linestyle=":")
        axis.set_xlabel("Sessions from the rupture")
        _integer_sessions(axis)
    left.set_ylabel(_scale_label(alliance))
    left.set_title("Example sequences", fontsize=10)
    right.axhline(0, color="0.6", linewidth=0.8)
    right.set_ylabel(f"Change from the session before ({alliance.short} points)")
    right.set_title("Average around a rupture (95% band)", fontsize=10)
    right.legend(fontsize=8, loc="lower right")
    return figure


def power_plot(curve: pd.DataFrame, target: float = 0.8) -> Figure:
    """Power against the number of therapists, one line per number of clients, with 95%
    Monte Carlo intervals (:func:`allianceanalysis.power.power_curve`)."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    for colour, (clients, group) in zip(PALETTE, curve.groupby("n_clients"), strict=False):
        group = group.sort_values("n_therapists")
        axis.errorbar(group["n_therapists"], group["power"],
                      yerr=[group["power"] - group["ci_low"], group["ci_high"] - group["power"]],
                      color=colour, marker="o", capsize=3,
                      label=f"{clients:,} clients")  # fmt: skip
    axis.axhline(target, color="0.5", linestyle="--", linewidth=1, label=f"power {target:g}")
    axis.set_ylim(0, 1.02)
    axis.set_xlabel("Therapists")
    axis.set_ylabel("Power (share of studies detecting the effect)")
    if len(curve):
        term, alpha = curve["term"].iloc[0], curve["alpha"].iloc[0]
        axis.set_title(f"Power to detect: {TERM_LABELS.get(term, term)} (alpha {alpha:g})",
                       fontsize=10)  # fmt: skip
    axis.legend(fontsize=8, loc="lower right")
    return figure


def shrinkage_plot(table: pd.DataFrame, outcome: str | Instrument = "ors") -> Figure:
    """Raw and shrunken therapist effects against caseload, each pair joined by a line
    (:func:`allianceanalysis.models.therapist_shrinkage`): small caseloads move furthest."""
    figure = Figure(figsize=(6.5, 4), layout="constrained")
    axis = figure.subplots()
    axis.axhline(0, color="0.6", linewidth=0.8)
    axis.vlines(table["n_obs"], table["raw"], table["shrunken"], color="0.7", linewidth=0.8)
    axis.scatter(table["n_obs"], table["raw"], facecolors="none", edgecolors=PALETTE[3],
                 label="raw mean (league table)")  # fmt: skip
    axis.scatter(table["n_obs"], table["shrunken"], color=PALETTE[0], s=18,
                 label="shrunken (multilevel model)")  # fmt: skip
    axis.set_xlabel("Clients of the therapist")
    axis.set_ylabel(f"Final {_instrument(outcome).short} beyond what intake predicts (points)")
    axis.set_title(f"Shrinkage of {len(table)} therapists' effects", fontsize=10)
    axis.legend(fontsize=8, loc="upper right")
    return figure


def pooled_forest(table: pd.DataFrame, study_label: str = "Study") -> Figure:
    """Forest plot of a pooled analysis (:func:`allianceanalysis.pooled.pooled_table`).

    Each study's partial r with its 95% CI (marker area proportional to n), the pooled r as a
    diamond spanning its Hartung-Knapp interval, the prediction interval as a thin line, and the
    literature's anchor, r = .278 (Flückiger et al., 2018), as a dashed reference line.
    """
    from .pooled import LITERATURE_R

    rows = table.set_index("term")
    studies = rows[rows.index.str.startswith("study:")]
    names = [term.removeprefix("study:") for term in studies.index]
    has_pool = "pooled_r" in rows.index
    labels = names + (["Pooled (95% CI)"] if has_pool else [])
    positions = np.arange(len(labels))[::-1].astype(float)
    figure = Figure(figsize=(6.5, 1.2 + 0.45 * len(labels)), layout="constrained")
    axis = figure.subplots()
    if not names:  # a not_fitted row says why
        return _not_computed(figure, axis, str(table["message"].iloc[0]))
    axis.axvline(0, color="0.6", linewidth=0.8)
    axis.plot(
        [LITERATURE_R] * 2,
        [-0.8, len(labels) - 0.2],
        color=PALETTE[3],
        linestyle="--",
        linewidth=1,
        label=f"Flückiger et al. (2018): r = {apa_r(LITERATURE_R)}",
    )
    sizes = 30 + 170 * studies["n_obs"] / studies["n_obs"].max()
    axis.hlines(positions[: len(names)], studies["ci_low"], studies["ci_high"], color=PALETTE[0])
    axis.scatter(
        studies["estimate"],
        positions[: len(names)],
        s=sizes,
        marker="s",
        color=PALETTE[0],
        zorder=3,
    )
    title = f"{study_label}: partial r of early alliance with final outcome"
    if has_pool:
        pooled, prediction = rows.loc["pooled_r"], rows.loc["prediction_interval"]
        y = positions[-1]
        axis.fill(
            [pooled["ci_low"], pooled["estimate"], pooled["ci_high"], pooled["estimate"]],
            [y, y + 0.25, y, y - 0.25],
            color=PALETTE[1],
            zorder=3,
        )
        axis.hlines(
            y,
            prediction["ci_low"],
            prediction["ci_high"],
            color=PALETTE[1],
            linewidth=1,
            label="prediction interval",
        )
        i2, tau2 = rows.loc["i2", "estimate"], rows.loc["tau2", "estimate"]
        title += f"\nk = {int(pooled['n_groups'])}, I² = {i2:.0f}%, τ² = {tau2:.3f} (z scale)"
    axis.set_yticks(positions, labels)
    axis.set_xlabel("Partial r, controlling intake (95% CI)")
    axis.set_title(title, fontsize=10)
    figure.legend(fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    return figure


WITHIN_PANELS = {
    "latent_disaggregation": (
        "Therapists: observed or latent mean", "Final {o} points per {a} point", [
            ("alliance_disaggregated_observed", "alliance_therapist_mean",
             "Between, observed mean"),
            ("alliance_disaggregated_latent", "alliance_therapist_mean", "Between, latent mean"),
            ("alliance_disaggregated_observed", "alliance_client_dev", "Within, observed mean"),
            ("alliance_disaggregated_latent", "alliance_client_dev", "Within, latent mean"),
        ]),
    "detrended_effects": (
        "Sessions: next outcome on alliance", "Next {o} points per {a} point", [
            ("alliance_next_session_same_sample", "alliance_within", "Person-mean centred"),
            ("alliance_next_session_detrended", "alliance_detrended", "Detrended"),
            ("alliance_next_session_lag_raw", "alliance_within", "Uncentred lagged outcome"),
        ]),
    "riclpm_paths": (
        "RI-CLPM: within-person paths", "Lagged path (raw units)", [
            ("riclpm", "alliance_to_outcome", "Alliance → next outcome"),
            ("riclpm", "outcome_to_alliance", "Outcome → next alliance"),
            ("riclpm", "alliance_autoregression", "Alliance → next alliance"),
            ("riclpm", "outcome_autoregression", "Outcome → next outcome"),
        ]),
}  # fmt: skip
"""The within-person figures (docs/models.md, "Within or between?"), each one panel: its title,
axis label (``{o}``, ``{a}``: the instruments) and (model, term, label) rows, top to bottom."""


def _estimates_panel(axis: Axes, models: pd.DataFrame, specs: list[tuple[str, str, str]]) -> None:
    """Estimates with 95% intervals of the (model, term) rows, top to bottom; a row without
    an estimate (not converged) is named with the reason, and a panel with none says why."""
    found = [_term_row(models, model, term) for model, term, _ in specs]
    if all(row is None or not np.isfinite(row["estimate"]) for row in found):
        held = models[models["model"].isin({model for model, _, _ in specs})]
        reasons = list(dict.fromkeys(held["message"].dropna().astype(str))) or ["not in this run"]
        reason = reasons[0] if reasons[0].startswith("not ") else f"not estimated: {reasons[0]}"
        axis.text(0.5, 0.5, textwrap.fill(reason[0].upper() + reason[1:], 40), ha="center",
                  va="center", fontsize=8)  # fmt: skip
        axis.set_axis_off()
        return
    positions = np.arange(len(specs))[::-1]
    labels = []
    for position, row, (model, _, label) in zip(positions, found, specs, strict=True):
        if row is None or not np.isfinite(row["estimate"]):
            rows = models.loc[models["model"] == model, "message"].dropna().astype(str)
            reason = rows.iloc[0].split(";")[0] if len(rows) else "not in this run"
            why = textwrap.fill(textwrap.shorten(f"not estimated: {reason}", 80), 34)
            why = why.replace("not estimated: not ", "not ")
            labels.append(f"{label}\n{why}")
            continue
        labels.append(label)
        low, high = row["ci_low"], row["ci_high"]
        xerr = [[row["estimate"] - low], [high - row["estimate"]]] if np.isfinite(low) else None
        axis.errorbar(row["estimate"], position, xerr=xerr, fmt="o", color=PALETTE[0],
                      capsize=4)  # fmt: skip
    axis.axvline(0, color="0.6", linewidth=0.8)
    axis.set_yticks(positions, labels, fontsize=8)
    axis.set_ylim(positions.min() - 0.6, positions.max() + 0.6)


def _term_row(models: pd.DataFrame, model: str, term: str) -> pd.Series | None:
    rows = models[(models["model"] == model) & (models["term"] == term)]
    return None if rows.empty else rows.iloc[0]


def within_person_figure(
    name: str,
    models: pd.DataFrame,
    outcome: str | Instrument = "ors",
    alliance: str | Instrument = "srs",
    axis: Axes | None = None,
) -> Figure:
    """One of the within-person sensitivity analyses (:data:`WITHIN_PANELS`) with 95%
    intervals: ``latent_disaggregation``, the therapist-level and client-level slopes with the
    therapist's observed and latent mean alliance (Lüdtke et al., 2008);
    ``detrended_effects``, the next-session effect centred, detrended (Wang & Maxwell, 2015)
    and with the uncentred lagged outcome (Nickell, 1981); ``riclpm_paths``, the RI-CLPM's
    within-person paths (Hamaker, Kuiper & Grasman, 2015).

    Parameters
    ----------
    name : str
        A key of :data:`WITHIN_PANELS`.
    models : pandas.DataFrame
        Tidy rows holding its models (e.g. ``tables/models.csv``); a model that is not in
        them, not fitted or without a maximum is named with the reason.
    outcome, alliance : str or Instrument
        The instruments (axis label).
    axis : matplotlib.axes.Axes, optional
        Draw into this axis (a panel of :func:`within_or_between`) instead of a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> rows = pd.DataFrame({"model": "riclpm", "term": ["alliance_to_outcome"],
    ...                      "estimate": [0.2], "ci_low": [0.1], "ci_high": [0.3], "message": ""})
    >>> figure = within_person_figure("riclpm_paths", rows)
    >>> figure.axes[0].get_title()
    'RI-CLPM: within-person paths'
    """
    title, label, specs = WITHIN_PANELS[name]
    if axis is None:
        axis = Figure(figsize=(5.5, 4), layout="constrained").subplots()
    outcome, alliance = _instrument(outcome), _instrument(alliance)
    _estimates_panel(axis, models, specs)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(label.format(o=outcome.short, a=alliance.short) + " (95% CI)")
    return axis.figure


def within_or_between(
    models: pd.DataFrame, outcome: str | Instrument = "ors", alliance: str | Instrument = "srs"
) -> Figure:
    """The three within-person figures (:func:`within_person_figure`) side by side.

    Examples
    --------
    >>> rows = pd.DataFrame({"model": "riclpm", "term": ["alliance_to_outcome"],
    ...                      "estimate": [0.2], "ci_low": [0.1], "ci_high": [0.3], "message": ""})
    >>> len(within_or_between(rows).axes)
    3
    """
    figure = Figure(figsize=(13, 4), layout="constrained")
    for axis, name in zip(figure.subplots(1, len(WITHIN_PANELS)), WITHIN_PANELS, strict=True):
        within_person_figure(name, models, outcome, alliance, axis)
    figure.suptitle("Within or between? The alliance's effect by method", fontsize=11)
    return figure


MISSING_DATA_TERMS = (
    ("alliance_outcome", "alliance_early", "Alliance → outcome"),
    *((f"early_alliance_k{k}", "alliance_early", f"Early alliance, k = {k}") for k in range(1, 6)),
    ("alliance_disaggregated", "alliance_therapist_mean", "Therapist mean alliance"),
    ("alliance_disaggregated", "alliance_client_dev", "Client deviation"),
)
"""The alliance coefficients of :func:`missing_data_plot`: model, term and label."""


def missing_data_plot(
    models: pd.DataFrame,
    imputed: pd.DataFrame,
    pattern: pd.DataFrame,
    outcome: str | Instrument = "ors",
    alliance: str | Instrument = "srs",
) -> Figure:
    """Complete-case and imputed estimates side by side, beside the missingness pattern.

    Left, each alliance coefficient of :data:`MISSING_DATA_TERMS` with its 95% interval from
    the complete-case model (``models``) and after multiple imputation (``imputed``, models
    ``<model>_mi``); right, the share of cases missing each piece, for all cases and by
    therapist size band (``pattern``: the published rows of
    :func:`allianceanalysis.missing_data.missingness_rows`; suppressed ones are left out).

    Examples
    --------
    >>> cc = pd.DataFrame({"model": ["alliance_outcome"], "term": ["alliance_early"],
    ...                    "estimate": [0.5], "ci_low": [0.3], "ci_high": [0.7]})
    >>> mi = cc.assign(model="alliance_outcome_mi", estimate=0.6)
    >>> pattern = pd.DataFrame({"term": ["missing_any"], "estimate": [0.3],
    ...                         "message": ["any missing, all cases"]})
    >>> [a.get_title() for a in missing_data_plot(cc, mi, pattern).axes]
    ['Complete cases and imputed', 'Missing pieces']
    """
    outcome, alliance = _instrument(outcome), _instrument(alliance)
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=[1.2, 1])
    found = [(label, _term_row(models, model, term), _term_row(imputed, f"{model}_mi", term))
             for model, term, label in MISSING_DATA_TERMS]  # fmt: skip
    found = [item for item in found if item[1] is not None or item[2] is not None]
    positions = np.arange(len(found))[::-1]
    for offset, index, name, color in ((0.15, 1, "complete cases", PALETTE[0]),
                                       (-0.15, 2, "multiple imputation", PALETTE[1])):  # fmt: skip
        shown = [(pos, item[index]) for pos, item in zip(positions, found, strict=True)
                 if item[index] is not None and np.isfinite(item[index]["estimate"])]  # fmt: skip
        if not shown:
            continue
        est = np.array([row["estimate"] for _, row in shown])
        err = np.array([[row["estimate"] - row["ci_low"], row["ci_high"] - row["estimate"]]
                        for _, row in shown]).T  # fmt: skip
        left.errorbar(est, [pos + offset for pos, _ in shown], xerr=err, fmt="o", capsize=3,
                      color=color, label=name)  # fmt: skip
    left.axvline(0, color="0.6", linewidth=0.8)
    left.set_yticks(positions, [item[0] for item in found], fontsize=8)
    left.set_xlabel(f"{outcome.short} points per {alliance.short} point (95% CI)")
    left.set_title("Complete cases and imputed", fontsize=10)
    if found:
        left.legend(fontsize=8, loc="lower right")
    shown = pattern[pattern["estimate"].notna()].copy()
    shown["piece"] = shown["message"].str.split(" missing, ").str[0]
    shown["band"] = shown["message"].str.split(" missing, ").str[1]
    order = ["outcome_intake", "alliance_early", "outcome_early", "outcome_final", "any"]
    pieces = sorted(dict.fromkeys(shown["piece"]),
                    key=lambda p: order.index(p) if p in order else len(order))  # fmt: skip
    bands = list(dict.fromkeys(shown["band"]))
    width = 0.8 / max(len(bands), 1)
    for j, band in enumerate(bands):
        rows = shown[shown["band"] == band].set_index("piece").reindex(pieces)
        right.bar(np.arange(len(pieces)) + j * width, rows["estimate"], width, label=band,
                  color=PALETTE[j % len(PALETTE)])  # fmt: skip
    right.set_xticks(np.arange(len(pieces)) + width * (len(bands) - 1) / 2,
                     [p.replace("_", " ") for p in pieces], fontsize=8, rotation=20)  # fmt: skip
    right.set_ylabel("Share of cases missing")
    right.set_title("Missing pieces", fontsize=10)
    if bands:
        right.legend(fontsize=7)
    return figure


def tipping_point_plot(tipping: pd.DataFrame, outcome: str | Instrument = "ors",
                       alliance: str | Instrument = "srs") -> Figure:  # fmt: skip
    """The alliance-outcome coefficient and its 95% interval against the shift ``delta`` of
    the dropouts' imputed final outcomes (:func:`allianceanalysis.missing_data.tipping_point`),
    the shifts where it loses significance or changes sign marked.

    Examples
    --------
    >>> rows = pd.DataFrame({"term": ["alliance_early"] * 2, "delta": [0.0, -5.0],
    ...                      "estimate": [0.5, 0.4], "ci_low": [0.2, 0.1],
    ...                      "ci_high": [0.8, 0.7], "message": ""})
    >>> tipping_point_plot(rows).axes[0].get_xlabel()
    "Shift of dropouts' imputed final ORS (points)"
    """
    outcome, alliance = _instrument(outcome), _instrument(alliance)
    axis = Figure(figsize=(6.5, 4.2), layout="constrained").subplots()
    grid = tipping[tipping["term"] == "alliance_early"].sort_values("delta")
    if grid.empty or grid["estimate"].isna().all():
        reason = tipping["message"].dropna().astype(str)
        text = reason.iloc[0] if len(reason) else "no tipping-point analysis in this run"
        axis.text(0.5, 0.5, textwrap.fill(text, 60), ha="center", va="center", fontsize=9)
        axis.set_axis_off()
        return axis.figure
    axis.fill_between(grid["delta"], grid["ci_low"], grid["ci_high"], color=PALETTE[0],
                      alpha=0.2, linewidth=0)  # fmt: skip
    axis.plot(grid["delta"], grid["estimate"], "o-", color=PALETTE[0], label="pooled estimate")
    axis.axhline(0, color="0.6", linewidth=0.8)
    for term, label, style in (("tipping_delta_significance", "loses significance", "--"),
                               ("tipping_delta_sign", "changes sign", ":")):  # fmt: skip
        row = tipping[tipping["term"] == term]
        if len(row) and np.isfinite(row["estimate"].iloc[0]):
            at = row["estimate"].iloc[0]
            axis.axvline(at, color="0.3", linestyle=style, label=label)
    summary = tipping["term"].str.startswith("tipping_delta_") & tipping["estimate"].isna()
    unreached = tipping.loc[summary, "message"].dropna().astype(str)
    if len(unreached):
        axis.text(0.02, 0.97, "Sign and significance: " + unreached.iloc[-1], va="top",
                  transform=axis.transAxes, fontsize=8, color="0.3")  # fmt: skip
    axis.set_xlabel(f"Shift of dropouts' imputed final {outcome.short} (points)")
    axis.set_ylabel(f"{outcome.short} points per {alliance.short} point")
    axis.set_title("Tipping point: how far from missing at random?", fontsize=10)
    axis.legend(fontsize=8)
    return axis.figure


FIGURE_INPUTS = {
    "sessions": "internal/derived/sessions.parquet",
    "change_cases": "internal/derived/clinical_significance.parquet",
    "change_table": "internal/tables/clinical_significance.csv",
    "clients": "internal/derived/clients.parquet",
    "models": "published/tables/models.csv",
    "therapist_effects": "internal/tables/therapist_effects.csv",
    "early_warning": "internal/tables/early_warning.csv",
    "calibration": "internal/tables/dropout_calibration.csv",
    "sequences": "internal/derived/rupture_sequences.parquet",
    "curves": "published/tables/expected_response_curves.csv",
    "imputed": "published/tables/multiple_imputation.csv",
    "tipping": "published/tables/tipping_point.csv",
    "missingness": "published/tables/missingness.csv",
}
"""The files of ``results/<dataset>/`` that figures are drawn from, by name
(:mod:`allianceanalysis.layout`)."""

FIGURE_COLUMNS = {"clients": ("eligible", "alliance_early", "outcome_final", "outcome_intake")}
"""The columns figures read of a table of :data:`FIGURE_INPUTS` that has more (only these are
read): the client table's 16 columns at 10M clients are about 1.4 GB."""


@dataclass
class FigureData:
    """What a dataset's figures are drawn from: its files (:data:`FIGURE_INPUTS`, each read
    once, when a figure first asks for it) and the settings figures use.

    Parameters
    ----------
    paths : mapping
        File of each input name (``sessions``, ``models`` …); for ``sessions``, a list of the
        shards' files for a sharded dataset (read one at a time).
    outcome, alliance : str or Instrument
        The dataset's instruments (``alliance`` None for data without one).
    early_session : int
        k, the session of the early alliance rating.
    seed : int
        Seed of the figures' random choices (the sample of trajectories, example sequences).
    """

    paths: Mapping[str, str | Path | Sequence[str | Path]]
    outcome: str | Instrument
    alliance: str | Instrument | None
    early_session: int = 3
    seed: int = 0
    _tables: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.outcome = _instrument(self.outcome)
        self.alliance = None if self.alliance is None else _instrument(self.alliance)

    def forget(self, keep: Iterable[str]) -> None:
        """Let go of the tables read but not named in ``keep`` (those no figure still to be
        drawn reads): at 10M clients the client table, the rupture windows and the cases'
        clinical significance would otherwise all be held by the last figures."""
        for name in set(self._tables) - set(keep):
            del self._tables[name]

    def lacks(self, needs: Iterable[str]) -> str | None:
        """Why the data cannot support a figure that ``needs`` these
        (:func:`~allianceanalysis.tidy.unmet_need`), or None."""
        return unmet_need(tuple(needs), self["sessions"], self.alliance)

    def __getitem__(self, name: str) -> pd.DataFrame | ShardedTable:
        if name not in self._tables:
            path = self.paths[name]
            if name == "sessions":  # a file, or each shard's: read a shard at a time
                self._tables[name] = ShardedTable.of(path)
            elif name == "models":
                self._tables[name] = read_model_table(path)
            elif Path(path).suffix == ".parquet":
                columns = FIGURE_COLUMNS.get(name)
                self._tables[name] = pd.read_parquet(path, columns=columns and list(columns))
            else:
                self._tables[name] = pd.read_csv(path)
        return self._tables[name]


@dataclass(frozen=True)
class FigureEntry:
    """A per-dataset figure: its title in the workflow report, the :data:`FIGURE_INPUTS` it
    is drawn from, and how (``draw`` takes a :class:`FigureData`). Its caption is
    ``workflow/report/<name>.rst``. A ``therapist_level`` figure (a point per therapist) is
    internal (:mod:`allianceanalysis.layout`)."""

    title: str
    inputs: tuple[str, ...]
    draw: Callable[[FigureData], Figure]
    therapist_level: bool = False
    needs: tuple[str, ...] = ("alliance",)

    def __post_init__(self) -> None:
        unknown = set(self.inputs) - set(FIGURE_INPUTS)
        if unknown:
            raise TypeError(f"unknown figure inputs: {', '.join(sorted(unknown))}")


def _site_column(sessions: pd.DataFrame | ShardedTable) -> str | None:
    """``site_id`` when the data have two or more sites (trajectories by site), else None."""
    return "site_id" if distinct(sessions, "site_id", 2) > 1 else None


FIGURES: dict[str, FigureEntry] = {
    "outcome_trajectories": FigureEntry(
        "Outcome trajectories", ("sessions",),
        lambda d: outcome_trajectories(d["sessions"], d.outcome, by=_site_column(d["sessions"]),
                                       seed=d.seed), needs=()),
    "alliance_over_sessions": FigureEntry(
        "Alliance over sessions", ("sessions", "clients"),
        lambda d: alliance_over_sessions(d["sessions"], d["clients"], d.alliance,
                                         d.early_session)),
    "alliance_outcome_scatter": FigureEntry(
        "Early alliance and final outcome", ("clients", "models"),
        lambda d: alliance_outcome_scatter(d["clients"], d["models"], d.outcome, d.alliance)),
    "early_alliance_by_k": FigureEntry(
        "Early alliance by session k", ("models",),
        lambda d: early_alliance_by_k(d["models"], d.alliance, d.outcome)),
    "alliance_disaggregation": FigureEntry(
        "Therapist and client parts of the alliance", ("models",),
        lambda d: alliance_disaggregation(d["models"], d.outcome, d.alliance),
        needs=("alliance", "therapists")),
    "alliance_components": FigureEntry(
        "Components of the alliance", ("models",),
        lambda d: alliance_components(d["models"], d.outcome, d.alliance)),
    "therapist_caterpillar": FigureEntry(
        "Therapist effects", ("therapist_effects",),
        lambda d: therapist_caterpillar(d["therapist_effects"], d.outcome), therapist_level=True,
        needs=("therapists",)),
    "dropout_calibration": FigureEntry(
        "Dropout risk: calibration out of sample", ("calibration", "early_warning"),
        lambda d: dropout_calibration(d["calibration"], d["early_warning"])),
    "rupture_profile": FigureEntry(
        "Ruptures and repair", ("sequences",),
        lambda d: rupture_profile(d["sequences"], d.alliance, seed=d.seed)),
    "expected_response": FigureEntry(
        "Expected treatment response", ("curves", "early_warning"),
        lambda d: expected_response(d["curves"], d["early_warning"], d.outcome), needs=()),
    "feedback_effects": FigureEntry(
        "Did feedback help?", ("early_warning",),
        lambda d: feedback_effects(d["early_warning"]), needs=()),
    "clinical_significance": FigureEntry(
        "Clinical significance", ("change_cases", "change_table"),
        lambda d: clinical_significance_plot(d["change_cases"], d["change_table"], d.outcome),
        needs=()),
    "conditional_effects": FigureEntry(
        "The alliance's effect by moderator", ("models",),
        lambda d: conditional_effects(d["models"], d.outcome)),
    "latent_disaggregation": FigureEntry(
        "Therapist and client parts: observed or latent mean", ("models",),
        lambda d: within_person_figure("latent_disaggregation", d["models"], d.outcome,
                                       d.alliance), needs=("alliance", "therapists")),
    "detrended_effects": FigureEntry(
        "Next-session effect: centred or detrended", ("models",),
        lambda d: within_person_figure("detrended_effects", d["models"], d.outcome,
                                       d.alliance)),
    "riclpm_paths": FigureEntry(
        "Random-intercept cross-lagged paths", ("models",),
        lambda d: within_person_figure("riclpm_paths", d["models"], d.outcome, d.alliance)),
    "missing_data": FigureEntry(
        "Complete cases and multiple imputation", ("models", "imputed", "missingness"),
        lambda d: missing_data_plot(d["models"], d["imputed"], d["missingness"], d.outcome,
                                    d.alliance)),
    "tipping_point": FigureEntry(
        "Tipping point of the alliance-outcome association", ("tipping",),
        lambda d: tipping_point_plot(d["tipping"], d.outcome, d.alliance)),
}  # fmt: skip
"""The per-dataset figures, ``results/<dataset>/published/figures/<name>.png`` (and ``.svg``;
``internal/`` for therapist-level ones): one entry
each drives the workflow's ``figures`` rule (inputs and outputs), its report entry (title and
caption ``workflow/report/<name>.rst``) and :func:`allianceanalysis.pipeline.figures_step`."""


def draw_figure(name: str, data: FigureData) -> Figure:
    """Registry figure ``name`` drawn from ``data``, or a figure saying why the data cannot
    support it (:attr:`FigureEntry.needs`)."""
    entry = FIGURES[name]
    reason = data.lacks(entry.needs)
    if reason is None:
        return entry.draw(data)
    figure = Figure(figsize=(7, 2.5), layout="constrained")
    return _not_computed(figure, figure.subplots(), f"Not computed: {reason}.")


def save_figure(figure: Figure, paths: Iterable[str | Path]) -> None:
    """Write ``figure`` to each path (format from the extension), all or nothing.

    The figure is laid out once, at the PNG's resolution, and every format is drawn with that
    layout: the PNG is what a layout per save gave, and the figures step takes a third less
    time (a constrained layout costs about as much as drawing the figure).
    """
    paths = [Path(p) for p in paths]
    style = {"svg.hashsalt": SVG_SALT, "svg.fonttype": "none"}  # SVG text stays text
    dpi, engine = figure.get_dpi(), figure.get_layout_engine()
    with atomic_outputs(*paths) as temps, matplotlib.rc_context(style):
        figure.set_dpi(SAVE_DPI)
        figure.draw_without_rendering()
        figure.set_layout_engine(None)
        try:
            for temp, path in zip(temps, paths, strict=True):
                fmt = path.suffix.lstrip(".")
                metadata = {"Date": None} if fmt in ("svg", "pdf") else {"Software": None}
                figure.savefig(temp, format=fmt, dpi=SAVE_DPI, metadata=metadata)
        finally:
            figure.set_layout_engine(engine)
            figure.set_dpi(dpi)
