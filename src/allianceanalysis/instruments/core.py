"""One rating scale: what it is, how its items are scored, and the numbers its decisions use."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

__all__ = ["Instrument", "Norms", "jacobson_truax_change"]

Construct = Literal["outcome", "alliance"]
CutoffRule = Literal["below", "at_or_above"]
Rater = Literal["client", "therapist", "observer", "clinician"]
Scoring = Literal["sum", "mean"]
ReliabilityKind = Literal["internal_consistency", "test_retest"]

_Z = 1.959963984540054
"""The two-sided 95% normal quantile of the Jacobson–Truax reliable change index."""


def jacobson_truax_change(sd: float, reliability: float) -> float:
    """The change in points needed for reliable change, ``1.96 · √2 · SD · √(1 − r)``
    (Jacobson & Truax, 1991, p. 14).

    Examples
    --------
    >>> round(jacobson_truax_change(12.75, 0.92), 3)
    9.996
    """
    return _Z * math.sqrt(2.0) * sd * math.sqrt(1.0 - reliability)


@dataclass(frozen=True)
class Norms:
    """Mean and standard deviation of a reference sample (clinical or functional)."""

    mean: float
    sd: float


def _empty() -> MappingProxyType:
    return MappingProxyType({})


@dataclass(frozen=True)
class Instrument:
    """One rating scale: its range, scoring, direction, decision rules and their sources.

    Attributes
    ----------
    key : str
        Column name of the total score, e.g. ``"ors"``.
    short : str
        Abbreviation used in messages and tables, e.g. ``"ORS"``.
    name : str
        Full name of the scale.
    construct : {"outcome", "alliance"}
        What the scale measures.
    items : tuple of str
        Item names in form order. Empty when the loader does not score items for this scale
        (the total must then be supplied).
    item_count : int
        Number of items of the scale (also when ``items`` is empty; 0 when unknown).
    item_min, item_max : float or None
        Range of one item (``None`` for a scale whose total is all that is known).
    total_min, total_max : float
        Range of the total score.
    integer : bool
        Whether items and totals are whole numbers (Likert scales summed). Visual-analogue
        scales (ORS, SRS) are measured in centimetres to one decimal; mean-scored totals are
        not whole numbers.
    higher_is_better : bool
        Direction of the scale.
    cutoff : float or None
        Clinical cut-off (for alliance scales: the threshold below which the alliance is
        flagged for discussion).
    cutoff_rule : {"below", "at_or_above"} or None
        ``"below"``: a score strictly below ``cutoff`` is in the clinical (flagged) range;
        ``"at_or_above"``: a score at or above ``cutoff`` is.
    reliable_change : float or None
        Change in points needed for reliable change (Jacobson & Truax, 1991), as published;
        see :attr:`reliable_change_points` for the value used.
    prorate_max_missing : int or None
        Largest number of missing items for which a total may be prorated (from the answered
        items); ``None`` when no prorating rule is published.
    sources : mapping
        Citation for each field above that carries a number.
    notes : str
        Caveats a user should know.
    rater : {"client", "therapist", "observer", "clinician"}
        Whose rating the scale is (an observer-rated alliance scale is accepted as an alliance
        score; tables show the perspective).
    scoring : {"sum", "mean"}
        How the total is formed from the (re-keyed) items: their sum, or their mean times
        ``scoring_factor`` (the CORE-OM clinical score is the item mean times 10).
    scoring_factor : float
        Multiplier of the item mean under ``scoring="mean"``.
    reverse_items : tuple of str
        Items scored in reverse (``item_min + item_max - response``) before scoring.
    subscales : mapping of str to tuple of str
        Named subscales and their items, scored like the total.
    reliability : float or None
        Reliability of the total, of the kind in ``reliability_kind``.
    reliability_kind : {"internal_consistency", "test_retest"} or None
    clinical_norms, functional_norms : Norms or None
        Mean and SD of a clinical and a functional (non-clinical) reference sample, for the
        Jacobson–Truax cut-offs (:mod:`allianceanalysis.clinical_significance`).
    components : mapping of str to str
        For a scale without subscales whose single items stand for the alliance's components
        (the SRS): component name -> item. :attr:`component_columns` gives the columns.
    user_defined : bool
        Defined in a configuration's ``instruments:`` block rather than built in.
    """

    key: str
    short: str
    name: str
    construct: Construct
    items: tuple[str, ...]
    item_count: int
    item_min: float | None
    item_max: float | None
    total_min: float
    total_max: float
    integer: bool
    higher_is_better: bool
    cutoff: float | None = None
    cutoff_rule: CutoffRule | None = None
    reliable_change: float | None = None
    prorate_max_missing: int | None = None
    sources: MappingProxyType = field(default_factory=_empty)
    notes: str = ""
    rater: Rater = "client"
    scoring: Scoring = "sum"
    scoring_factor: float = 1.0
    reverse_items: tuple[str, ...] = ()
    subscales: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    reliability: float | None = None
    reliability_kind: ReliabilityKind | None = None
    clinical_norms: Norms | None = None
    functional_norms: Norms | None = None
    components: Mapping[str, str] = field(default_factory=_empty)
    user_defined: bool = False

    @property
    def item_columns(self) -> tuple[str, ...]:
        """Canonical item column names, ``<key>_<item>`` in form order."""
        return tuple(f"{self.key}_{item}" for item in self.items)

    @property
    def subscale_columns(self) -> dict[str, str]:
        """Subscale name -> its score's column, ``<key>_<subscale>``."""
        return {name: f"{self.key}_{name}" for name in self.subscales}

    @property
    def component_columns(self) -> dict[str, str]:
        """The alliance's components and their columns: the subscales' scores, or the items
        that stand for them (:attr:`components`); empty for a scale without either.

        Examples
        --------
        >>> from allianceanalysis.instruments import get_instrument
        >>> get_instrument("wai_sr").component_columns["bond"]
        'wai_sr_bond'
        >>> get_instrument("srs").component_columns["goal"]
        'srs_goals_and_topics'
        """
        if self.subscales:
            return self.subscale_columns
        return {name: f"{self.key}_{item}" for name, item in self.components.items()}

    @property
    def sums_items(self) -> bool:
        """Whether the loader can compute the total from item columns."""
        return bool(self.items)

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"``, for tables and reports."""
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def reliable_change_points(self) -> float | None:
        """The reliable-change threshold in points used by the package.

        The published :attr:`reliable_change` where there is one; otherwise the
        Jacobson–Truax value ``1.96 · √2 · SD · √(1 − r)`` from :attr:`reliability` and the
        clinical sample's SD (Jacobson & Truax, 1991, p. 14); ``None`` when neither is known.

        Examples
        --------
        >>> from allianceanalysis.instruments import get_instrument
        >>> round(get_instrument("bdi2").reliable_change_points, 3)
        9.996
        """
        if self.reliable_change is not None:
            return self.reliable_change
        if self.reliability is None or self.clinical_norms is None:
            return None
        return jacobson_truax_change(self.clinical_norms.sd, self.reliability)

    def score(
        self, items: pd.DataFrame, prorate: bool = False, subset: tuple[str, ...] | None = None
    ) -> tuple[pd.Series, pd.Series]:
        """The total (or a subscale's score) from item responses.

        Reverse-keyed items are re-keyed (``item_min + item_max − response``), then the
        items are summed or averaged (times :attr:`scoring_factor`) as the scale prescribes.
        A score is missing when an item is missing, unless ``prorate`` is set and the scale
        has a prorating rule: then up to :attr:`prorate_max_missing` missing items (scaled to
        the subset's length for a subscale) are filled by the mean of the answered ones.

        Parameters
        ----------
        items : pandas.DataFrame
            One column per item, in :attr:`item_columns` order (or the ``subset``'s order).
        prorate : bool
            Apply the prorating rule.
        subset : tuple of str, optional
            The item names scored (a subscale); all items by default.

        Returns
        -------
        score, prorated : pandas.Series
            The scores, and whether each was prorated.

        Examples
        --------
        >>> from allianceanalysis.instruments import get_instrument
        >>> haq = get_instrument("haq2")
        >>> responses = pd.DataFrame([[6] * 19], columns=haq.item_columns)
        >>> haq.score(responses)[0].tolist()  # items 4, 8, 11, 16, 19 re-keyed to 1
        [89.0]
        """
        names = self.items if subset is None else subset
        columns = [f"{self.key}_{name}" for name in names]
        values = items[columns].to_numpy(dtype="float64", copy=True)
        if self.reverse_items:
            flip = np.isin(np.asarray(names), self.reverse_items)
            values[:, flip] = self.item_min + self.item_max - values[:, flip]
        n = len(names)
        answered = (~np.isnan(values)).sum(axis=1)
        sums = np.nansum(values, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / answered
        complete = answered == n
        prorated = np.zeros(len(items), dtype=bool)
        if prorate and self.prorate_max_missing:
            allowed = math.floor(self.prorate_max_missing * n / max(self.item_count, 1))
            prorated = (answered < n) & (answered >= n - allowed) & (answered > 0)
        usable = complete | prorated
        if self.scoring == "mean":
            total = mean * self.scoring_factor
        else:
            total = np.where(complete, sums, mean * n)
        total = np.where(usable, total, np.nan)
        return pd.Series(total, index=items.index), pd.Series(prorated, index=items.index)
