"""Figures, drawn from the tidy model tables (never by refitting).

Every figure uses a colour-blind-safe palette (seaborn's ``colorblind``), labels its axes with
their units, and states n. :func:`save_figure` writes PNG (for reports) and SVG or PDF (for
papers) without time stamps, so identical tables give identical files. Figures are built as
plain :class:`~matplotlib.figure.Figure` objects (no pyplot state), so they display in a
notebook and leave its plotting backend alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ._files import atomic_outputs

__all__ = ["early_alliance_by_k", "save_figure"]

PALETTE = sns.color_palette("colorblind")
SVG_SALT = "allianceanalysis"
"""Fixed seed of matplotlib's SVG element ids, so identical figures give identical files."""


def early_alliance_by_k(
    models: pd.DataFrame, alliance: str = "SRS", outcome: str = "ORS"
) -> Figure:
    """The early-alliance coefficient, with its 95% CI, against the session k it was rated at.

    Parameters
    ----------
    models : pandas.DataFrame
        Tidy rows of the ``early_alliance_k1`` … ``_k5`` models (e.g. ``tables/models.csv``).
    alliance, outcome : str
        Instrument names for the axis labels.

    Returns
    -------
    matplotlib.figure.Figure

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
    figure = Figure(figsize=(6, 4), layout="constrained")  # no pyplot: no global state
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
    axis.set_ylabel(f"Final {outcome} points per {alliance} point\n(95% CI)")
    axis.margins(y=0.15)
    axis.set_title(
        "Early alliance and final outcome\n(controlling intake and, from k = 2, early change)",
        fontsize=11,
    )
    return figure


def save_figure(figure: Figure, paths: Iterable[str | Path]) -> None:
    """Write ``figure`` to each path (format from the extension), all or nothing."""
    paths = [Path(p) for p in paths]
    with atomic_outputs(*paths) as temps, matplotlib.rc_context({"svg.hashsalt": SVG_SALT}):
        for temp, path in zip(temps, paths, strict=True):
            fmt = path.suffix.lstrip(".")
            metadata = {"Date": None} if fmt in ("svg", "pdf") else {"Software": None}
            figure.savefig(temp, format=fmt, dpi=150, metadata=metadata)
