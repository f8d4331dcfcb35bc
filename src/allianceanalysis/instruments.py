"""Registry of the rating scales the package understands.

Every number here (range, cut-off, reliable-change threshold, prorating rule) carries the
published source it comes from in :attr:`Instrument.sources`. Where the primary source could
not be checked, the citation says *unconfirmed*; such values are used as documented defaults and
should be overridden where a service has its own norms.

Totals live in a column named after the instrument key (``ors``, ``srs``, ``phq9`` ...). Item
columns, where the loader can sum them, are named ``<key>_<item>`` (``ors_individually``,
``phq9_1`` ...). See ``docs/data-format.md``.

Examples
--------
>>> from allianceanalysis.instruments import get_instrument
>>> ors = get_instrument("ors")
>>> ors.total_min, ors.total_max, ors.higher_is_better
(0.0, 40.0, True)
>>> ors.item_columns
('ors_individually', 'ors_interpersonally', 'ors_socially', 'ors_overall')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = ["INSTRUMENTS", "Instrument", "get_instrument", "instrument_table"]

Construct = Literal["outcome", "alliance"]
CutoffRule = Literal["below", "at_or_above"]

# Citations, written once and referred to by the registry entries below.
MILLER_2003 = (
    "Miller, S. D., Duncan, B. L., Brown, J., Sparks, J. A., & Claud, D. A. (2003). The Outcome "
    "Rating Scale: A preliminary study of the reliability, validity, and feasibility of a brief "
    "visual analog measure. Journal of Brief Therapy, 2(2), 91-100."
)
DUNCAN_2003 = (
    "Duncan, B. L., Miller, S. D., Sparks, J. A., Claud, D. A., Reynolds, L. R., Brown, J., & "
    "Johnson, L. D. (2003). The Session Rating Scale: Preliminary psychometric properties of a "
    '"working" alliance measure. Journal of Brief Therapy, 3(1), 3-12.'
)
MILLER_DUNCAN_2004 = (
    "Miller, S. D., & Duncan, B. L. (2004). The Outcome and Session Rating Scales: "
    "Administration and scoring manual. Institute for the Study of Therapeutic Change."
)
HATCHER_2006 = (
    "Hatcher, R. L., & Gillaspy, J. A. (2006). Development and validation of a revised short "
    "version of the Working Alliance Inventory. Psychotherapy Research, 16(1), 12-25."
)
KROENKE_2001 = (
    "Kroenke, K., Spitzer, R. L., & Williams, J. B. W. (2001). The PHQ-9: Validity of a brief "
    "depression severity measure. Journal of General Internal Medicine, 16(9), 606-613."
)
SPITZER_2006 = (
    "Spitzer, R. L., Kroenke, K., Williams, J. B. W., & Löwe, B. (2006). A brief measure for "
    "assessing generalized anxiety disorder: The GAD-7. Archives of Internal Medicine, 166(10), "
    "1092-1097."
)
NHS_TT_MANUAL = (
    "NHS England & National Collaborating Centre for Mental Health. NHS Talking Therapies for "
    "anxiety and depression manual (caseness and reliable-change definitions used for the "
    "national recovery metrics)."
)
BARKHAM_2013 = (
    "Barkham, M., Bewick, B., Mullin, T., Gilbody, S., Connell, J., Cahill, J., Mellor-Clark, J., "
    "Richards, D., Unsworth, G., & Evans, C. (2013). The CORE-10: A short measure of "
    "psychological distress for routine use in the psychological therapies. Counselling and "
    "Psychotherapy Research, 13(1), 3-13."
)
CONNELL_BARKHAM_2007 = (
    "Connell, J., & Barkham, M. (2007). CORE-10 User Manual, Version 1.1. CORE System Trust & "
    "CORE Information Management Systems."
)
CORE_TRUST_PRORATING = (
    "CORE System Trust, 'CORE-10 information' (coresystemtrust.org.uk): the CORE-10 'can be "
    "prorated if only one item is omitted'."
)
LAMBERT_2004 = (
    "Lambert, M. J., Morton, J. J., Hatfield, D., Harmon, C., Hamilton, S., Reid, R. C., "
    "Shimokawa, K., Christopherson, C., & Burlingame, G. M. (2004). Administration and scoring "
    "manual for the Outcome Questionnaire-45. OQ Measures."
)


@dataclass(frozen=True)
class Instrument:
    """One rating scale: its range, direction, decision rules and their sources.

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
        Item names in form order. Empty when the loader does not sum items for this scale
        (the total must then be supplied).
    item_count : int
        Number of items of the scale (also when ``items`` is empty).
    item_min, item_max : float
        Range of one item.
    total_min, total_max : float
        Range of the total score.
    integer : bool
        Whether items and totals are whole numbers (Likert scales). Visual-analogue scales
        (ORS, SRS) are measured in centimetres to one decimal.
    higher_is_better : bool
        Direction of the scale.
    cutoff : float or None
        Clinical cut-off (for alliance scales: the threshold below which the alliance is
        flagged for discussion).
    cutoff_rule : {"below", "at_or_above"} or None
        ``"below"``: a score strictly below ``cutoff`` is in the clinical (flagged) range;
        ``"at_or_above"``: a score at or above ``cutoff`` is.
    reliable_change : float or None
        Change in points needed for reliable change (Jacobson & Truax, 1991).
    prorate_max_missing : int or None
        Largest number of missing items for which a total may be prorated (mean of the
        answered items times ``item_count``); ``None`` when no prorating rule is published.
    sources : mapping
        Citation for each field above that carries a number.
    notes : str
        Caveats a user should know.
    """

    key: str
    short: str
    name: str
    construct: Construct
    items: tuple[str, ...]
    item_count: int
    item_min: float
    item_max: float
    total_min: float
    total_max: float
    integer: bool
    higher_is_better: bool
    cutoff: float | None
    cutoff_rule: CutoffRule | None
    reliable_change: float | None
    prorate_max_missing: int | None
    sources: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    notes: str = ""

    @property
    def item_columns(self) -> tuple[str, ...]:
        """Canonical item column names, ``<key>_<item>`` in form order."""
        return tuple(f"{self.key}_{item}" for item in self.items)

    @property
    def sums_items(self) -> bool:
        """Whether the loader can compute the total from item columns."""
        return bool(self.items)

    @property
    def direction(self) -> str:
        """``"higher is better"`` or ``"lower is better"``, for tables and reports."""
        return "higher is better" if self.higher_is_better else "lower is better"


def _numbered(n: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(1, n + 1))


def _sources(**kwargs: str) -> MappingProxyType:
    return MappingProxyType(kwargs)


_REGISTRY = (
    Instrument(
        key="ors",
        short="ORS",
        name="Outcome Rating Scale",
        construct="outcome",
        items=("individually", "interpersonally", "socially", "overall"),
        item_count=4,
        item_min=0.0,
        item_max=10.0,
        total_min=0.0,
        total_max=40.0,
        integer=False,
        higher_is_better=True,
        cutoff=25.0,
        cutoff_rule="below",
        reliable_change=5.0,
        prorate_max_missing=None,
        sources=_sources(
            items=MILLER_2003,
            range=MILLER_2003,
            cutoff=MILLER_2003 + " Adult clinical cut-off 25 (child version CORS: 32).",
            reliable_change=MILLER_DUNCAN_2004
            + " Reliable change of 5 points; primary source unconfirmed.",
        ),
        notes="Four 10-cm visual analogue lines, each scored 0-10 to one decimal.",
    ),
    Instrument(
        key="srs",
        short="SRS",
        name="Session Rating Scale",
        construct="alliance",
        items=("relationship", "goals_and_topics", "approach_or_method", "overall"),
        item_count=4,
        item_min=0.0,
        item_max=10.0,
        total_min=0.0,
        total_max=40.0,
        integer=False,
        higher_is_better=True,
        cutoff=36.0,
        cutoff_rule="below",
        reliable_change=None,
        prorate_max_missing=None,
        sources=_sources(
            items=DUNCAN_2003,
            range=DUNCAN_2003,
            cutoff=MILLER_DUNCAN_2004
            + " A total below 36 flags a possible alliance problem; sources differ on whether "
            "36 itself is flagged: here it is not (strictly below).",
        ),
        notes=(
            "Strong ceiling: many sessions are rated 40. No published reliable-change "
            "threshold; rupture rules set their own."
        ),
    ),
    Instrument(
        key="wai_sr",
        short="WAI-SR",
        name="Working Alliance Inventory - Short Revised (client)",
        construct="alliance",
        items=(),
        item_count=12,
        item_min=1.0,
        item_max=5.0,
        total_min=12.0,
        total_max=60.0,
        integer=True,
        higher_is_better=True,
        cutoff=None,
        cutoff_rule=None,
        reliable_change=None,
        prorate_max_missing=None,
        sources=_sources(items=HATCHER_2006, range=HATCHER_2006),
        notes=(
            "Total of 12 items rated 1-5 (some studies report the item mean; multiply by 12). "
            "Supply the total: item keying is not handled by the loader."
        ),
    ),
    Instrument(
        key="phq9",
        short="PHQ-9",
        name="Patient Health Questionnaire-9",
        construct="outcome",
        items=_numbered(9),
        item_count=9,
        item_min=0.0,
        item_max=3.0,
        total_min=0.0,
        total_max=27.0,
        integer=True,
        higher_is_better=False,
        cutoff=10.0,
        cutoff_rule="at_or_above",
        reliable_change=6.0,
        prorate_max_missing=None,
        sources=_sources(
            items=KROENKE_2001,
            range=KROENKE_2001,
            cutoff=NHS_TT_MANUAL + " Caseness: PHQ-9 of 10 or more.",
            reliable_change=NHS_TT_MANUAL + " Reliable change: 6 points.",
        ),
    ),
    Instrument(
        key="gad7",
        short="GAD-7",
        name="Generalized Anxiety Disorder-7",
        construct="outcome",
        items=_numbered(7),
        item_count=7,
        item_min=0.0,
        item_max=3.0,
        total_min=0.0,
        total_max=21.0,
        integer=True,
        higher_is_better=False,
        cutoff=8.0,
        cutoff_rule="at_or_above",
        reliable_change=4.0,
        prorate_max_missing=None,
        sources=_sources(
            items=SPITZER_2006,
            range=SPITZER_2006,
            cutoff=NHS_TT_MANUAL + " Caseness: GAD-7 of 8 or more.",
            reliable_change=NHS_TT_MANUAL + " Reliable change: 4 points.",
        ),
    ),
    Instrument(
        key="core10",
        short="CORE-10",
        name="Clinical Outcomes in Routine Evaluation-10",
        construct="outcome",
        items=_numbered(10),
        item_count=10,
        item_min=0.0,
        item_max=4.0,
        total_min=0.0,
        total_max=40.0,
        integer=True,
        higher_is_better=False,
        cutoff=11.0,
        cutoff_rule="at_or_above",
        reliable_change=6.0,
        prorate_max_missing=1,
        sources=_sources(
            items=BARKHAM_2013,
            range=BARKHAM_2013,
            cutoff=BARKHAM_2013 + " Clinical score of 11 or more.",
            reliable_change=CONNELL_BARKHAM_2007
            + " Reliable change of 6 points; primary source unconfirmed.",
            prorate_max_missing=CORE_TRUST_PRORATING,
        ),
        notes=(
            "Item columns must hold item scores as printed on the form (the positively worded "
            "items are reverse-scored on the form itself); the loader does not re-key items."
        ),
    ),
    Instrument(
        key="oq45",
        short="OQ-45",
        name="Outcome Questionnaire-45.2",
        construct="outcome",
        items=(),
        item_count=45,
        item_min=0.0,
        item_max=4.0,
        total_min=0.0,
        total_max=180.0,
        integer=True,
        higher_is_better=False,
        cutoff=64.0,
        cutoff_rule="at_or_above",
        reliable_change=14.0,
        prorate_max_missing=None,
        sources=_sources(
            range=LAMBERT_2004,
            cutoff=LAMBERT_2004 + " Clinical cut-off 63/64; unconfirmed.",
            reliable_change=LAMBERT_2004 + " Reliable change index 14 points.",
        ),
        notes="Supply the total: nine items are reverse-keyed and the loader does not re-key them.",
    ),
)

INSTRUMENTS: MappingProxyType = MappingProxyType({inst.key: inst for inst in _REGISTRY})
"""All known instruments by key, in registry order."""


def get_instrument(key: str) -> Instrument:
    """Return the registry entry for ``key``.

    Parameters
    ----------
    key : str
        Instrument key, e.g. ``"ors"`` or ``"phq9"``.

    Returns
    -------
    Instrument

    Raises
    ------
    KeyError
        With the list of known keys, when ``key`` is not in the registry.

    Examples
    --------
    >>> get_instrument("phq9").cutoff
    10.0
    """
    try:
        return INSTRUMENTS[key]
    except KeyError:
        raise KeyError(
            f"unknown instrument {key!r}; known instruments: {', '.join(INSTRUMENTS)}"
        ) from None


def instrument_table() -> list[dict[str, object]]:
    """The registry as rows (one per instrument), for printing and documentation.

    Examples
    --------
    >>> [row["key"] for row in instrument_table()][:2]
    ['ors', 'srs']
    """
    return [
        {
            "key": inst.key,
            "short": inst.short,
            "name": inst.name,
            "construct": inst.construct,
            "items": inst.item_count,
            "range": f"{inst.total_min:g}-{inst.total_max:g}",
            "direction": inst.direction,
            "cutoff": "" if inst.cutoff is None else f"{inst.cutoff_rule} {inst.cutoff:g}",
            "reliable_change": "" if inst.reliable_change is None else f"{inst.reliable_change:g}",
            "prorate_max_missing": ""
            if inst.prorate_max_missing is None
            else str(inst.prorate_max_missing),
        }
        for inst in _REGISTRY
    ]
