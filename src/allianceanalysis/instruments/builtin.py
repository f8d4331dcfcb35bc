"""The built-in instrument registry: each scale with the published source of every number.

Where the primary source could not be checked, the citation says *unconfirmed*; such values are
documented defaults, to be overridden where a service has its own norms (a configuration's
``instruments:`` block can replace a built-in scale: docs/instruments.md).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from .core import Instrument, Norms

__all__ = ["BUILTIN"]

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


HORVATH_GREENBERG_1989 = (
    "Horvath, A. O., & Greenberg, L. S. (1989). Development and validation of the Working "
    "Alliance Inventory. Journal of Counseling Psychology, 36(2), 223-233."
)
TICHENOR_HILL_1989 = (
    "Tichenor, V., & Hill, C. E. (1989). A comparison of six measures of working alliance. "
    "Psychotherapy, 26(2), 195-199 (the observer form, WAI-O)."
)
MUNDER_2010 = (
    "Munder, T., Wilmers, F., Leonhart, R., Linster, H. W., & Barth, J. (2010). Working "
    "Alliance Inventory-Short Revised (WAI-SR): Psychometric properties in outpatients and "
    "inpatients. Clinical Psychology & Psychotherapy, 17(3), 231-239."
)
GASTON_1991 = (
    "Gaston, L. (1991). Reliability and criterion-related validity of the California "
    "Psychotherapy Alliance Scales-patient version. Psychological Assessment, 3(1), 68-74."
)
GASTON_MARMAR_1994 = (
    "Gaston, L., & Marmar, C. R. (1994). The California Psychotherapy Alliance Scales. In A. O. "
    "Horvath & L. S. Greenberg (Eds.), The working alliance: Theory, research, and practice "
    "(pp. 85-108). Wiley."
)
LUBORSKY_1996 = (
    "Luborsky, L., Barber, J. P., Siqueland, L., Johnson, S., Najavits, L. M., Frank, A., & "
    "Daley, D. (1996). The Revised Helping Alliance Questionnaire (HAq-II): Psychometric "
    "properties. Journal of Psychotherapy Practice and Research, 5(3), 260-271."
)
DUNCAN_2006 = (
    "Duncan, B. L., Sparks, J. A., Miller, S. D., Bohanske, R. T., & Claud, D. A. (2006). "
    "Giving youth a voice: A preliminary study of the reliability and validity of a brief "
    "outcome measure for children, adolescents, and caretakers. Journal of Brief Therapy, "
    "5(2), 71-87."
)
BECK_1996 = (
    "Beck, A. T., Steer, R. A., & Brown, G. K. (1996). Manual for the Beck Depression "
    "Inventory-II. Psychological Corporation."
)
EVANS_2002 = (
    "Evans, C., Connell, J., Barkham, M., Margison, F., McGrath, G., Mellor-Clark, J., & Audin, "
    "K. (2002). Towards a standardised brief outcome measure: Psychometric properties and "
    "utility of the CORE-OM. British Journal of Psychiatry, 180, 51-60."
)
CONNELL_2007 = (
    "Connell, J., Barkham, M., Stiles, W. B., Twigg, E., Singleton, N., Evans, O., & Miles, J. "
    "N. V. (2007). Distribution of CORE-OM scores in a general population, clinical cut-off "
    "points and comparison with the CIS-R. British Journal of Psychiatry, 190, 69-74."
)
LAMBERT_OQ30 = (
    "Lambert, M. J., et al. OQ-30.2 administration and scoring manual. OQ Measures "
    "(unconfirmed: the manual could not be checked)."
)
KESSLER_2002 = (
    "Kessler, R. C., Andrews, G., Colpe, L. J., Hiripi, E., Mroczek, D. K., Normand, S.-L. T., "
    "Walters, E. E., & Zaslavsky, A. M. (2002). Short screening scales to monitor population "
    "prevalences and trends in non-specific psychological distress. Psychological Medicine, "
    "32(6), 959-976."
)
ANDREWS_SLADE_2001 = (
    "Andrews, G., & Slade, T. (2001). Interpreting scores on the Kessler Psychological "
    "Distress Scale (K10). Australian and New Zealand Journal of Public Health, 25(6), 494-497."
)
TENNANT_2007 = (
    "Tennant, R., Hiller, L., Fishwick, R., Platt, S., Joseph, S., Weich, S., Parkinson, J., "
    "Secker, J., & Stewart-Brown, S. (2007). The Warwick-Edinburgh Mental Well-being Scale "
    "(WEMWBS): Development and UK validation. Health and Quality of Life Outcomes, 5, 63."
)


def _numbered(n: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(1, n + 1))


def _sources(**kwargs: str) -> MappingProxyType:
    return MappingProxyType(kwargs)


def _subscales(**kwargs: tuple[int, ...]) -> MappingProxyType:
    return MappingProxyType({name: tuple(map(str, items)) for name, items in kwargs.items()})


def _scale(
    key: str,
    short: str,
    name: str,
    construct: str,
    *,
    items: tuple[str, ...],
    item_range: tuple[float, float],
    higher_is_better: bool,
    item_count: int | None = None,
    integer: bool | None = None,
    scoring: str = "sum",
    scoring_factor: float = 1.0,
    **fields: Any,
) -> Instrument:
    """A registry entry whose totals follow from its items: ``item_count`` (default: the
    items'), the total's range (the item range times the count, or times ``scoring_factor``
    for a mean) and whether it is whole (default: summed whole-numbered items)."""
    low, high = (float(v) for v in item_range)
    count = len(items) if item_count is None else item_count
    span = count if scoring == "sum" else scoring_factor
    whole = low.is_integer() and high.is_integer()
    return Instrument(
        key=key,
        short=short,
        name=name,
        construct=construct,
        items=items,
        item_count=count,
        item_min=low,
        item_max=high,
        total_min=low * span,
        total_max=high * span,
        integer=(scoring == "sum" and whole) if integer is None else integer,
        higher_is_better=higher_is_better,
        scoring=scoring,
        scoring_factor=scoring_factor,
        **fields,
    )


def _wai(key: str, short: str, form: str, rater: str, source: str) -> Instrument:
    return _scale(
        key=key,
        short=short,
        name=f"Working Alliance Inventory ({form} form)",
        construct="alliance",
        items=(),
        item_count=36,
        item_range=(1.0, 7.0),
        higher_is_better=True,
        rater=rater,
        sources=_sources(items=source, range=source),
        notes=(
            "36 items rated 1-7 in three 12-item subscales (goal, task, bond). Supply the "
            "total: which items are reverse-keyed and which belong to each subscale differ "
            "between forms and could not be checked against the primary source (unconfirmed), "
            "so they are not built in; define them under instruments: (replaces_builtin: true) "
            "to score items."
        ),
    )


_BUILTIN = (
    _scale(
        key="ors",
        short="ORS",
        name="Outcome Rating Scale",
        construct="outcome",
        items=("individually", "interpersonally", "socially", "overall"),
        item_range=(0.0, 10.0),
        integer=False,
        higher_is_better=True,
        cutoff=25.0,
        cutoff_rule="below",
        reliable_change=5.0,
        sources=_sources(
            items=MILLER_2003,
            range=MILLER_2003,
            cutoff=MILLER_2003 + " Adult clinical cut-off 25 (child version CORS: 32).",
            reliable_change=MILLER_DUNCAN_2004
            + " Reliable change of 5 points; primary source unconfirmed.",
        ),
        notes="Four 10-cm visual analogue lines, each scored 0-10 to one decimal.",
    ),
    _scale(
        key="srs",
        short="SRS",
        name="Session Rating Scale",
        construct="alliance",
        items=("relationship", "goals_and_topics", "approach_or_method", "overall"),
        item_range=(0.0, 10.0),
        integer=False,
        higher_is_better=True,
        cutoff=36.0,
        cutoff_rule="below",
        components=MappingProxyType(
            {
                "bond": "relationship",
                "goal": "goals_and_topics",
                "task": "approach_or_method",
                "overall": "overall",
            }
        ),
        sources=_sources(
            items=DUNCAN_2003,
            range=DUNCAN_2003,
            components=DUNCAN_2003
            + " The items were written after Bordin's (1979) working alliance: relationship "
            "(bond), goals and topics (goals), approach or method (tasks), and an overall "
            "rating. Reading each item as that component is an interpretation, not a validated "
            "subscale (one item each).",
            cutoff=MILLER_DUNCAN_2004
            + " A total below 36 flags a possible alliance problem; sources differ on whether "
            "36 itself is flagged: here it is not (strictly below).",
        ),
        notes="Strong ceiling: many sessions are rated 40. No published reliable-change "
        "threshold; rupture rules set their own.",
    ),
    _scale(
        key="wai_sr",
        short="WAI-SR",
        name="Working Alliance Inventory - Short Revised (client)",
        construct="alliance",
        items=_numbered(12),
        item_range=(1.0, 5.0),
        higher_is_better=True,
        subscales=_subscales(goal=(4, 6, 8, 11), task=(1, 2, 10, 12), bond=(3, 5, 7, 9)),
        sources=_sources(
            items=HATCHER_2006,
            range=HATCHER_2006,
            subscales=HATCHER_2006
            + " Goal items 4, 6, 8, 11; task 1, 2, 10, 12; bond 3, 5, 7, 9, as used by "
            + MUNDER_2010
            + " Unconfirmed against the primary source's item table.",
        ),
        notes="12 items rated 1-5, all positively worded (none reverse-keyed), total the sum "
        "(some studies report the item mean; multiply by 12). A therapist form exists "
        "(WAI-SRT) but its items could not be confirmed, so it is not built in.",
    ),
    _wai("wai", "WAI", "client", "client", HORVATH_GREENBERG_1989),
    _wai("wai_t", "WAI-T", "therapist", "therapist", HORVATH_GREENBERG_1989),
    _wai("wai_o", "WAI-O", "observer", "observer", TICHENOR_HILL_1989),
    _scale(
        key="calpas",
        short="CALPAS",
        name="California Psychotherapy Alliance Scales (patient version)",
        construct="alliance",
        items=(),
        item_count=24,
        item_range=(1.0, 7.0),
        higher_is_better=True,
        scoring="mean",
        sources=_sources(items=GASTON_1991, range=GASTON_MARMAR_1994),
        notes="24 items rated 1-7 in four 6-item scales (patient commitment, patient working "
        "capacity, therapist understanding and involvement, working strategy consensus); "
        "the total is the mean (1-7). Supply the total: the item-to-scale key and the "
        "reverse-keyed items could not be checked (unconfirmed).",
    ),
    _scale(
        key="haq2",
        short="HAq-II",
        name="Revised Helping Alliance Questionnaire (patient version)",
        construct="alliance",
        items=_numbered(19),
        item_range=(1.0, 6.0),
        higher_is_better=True,
        reverse_items=("4", "8", "11", "16", "19"),
        sources=_sources(
            items=LUBORSKY_1996,
            range=LUBORSKY_1996 + " 19 items rated 1 (strongly disagree) to 6 (strongly agree).",
            reverse_items=LUBORSKY_1996
            + " The five negatively worded items (4, 8, 11, 16, 19) are reverse-scored; read "
            "from the published item wording.",
        ),
        notes="Item columns hold the responses as ticked (1-6); the loader re-keys items 4, 8, "
        "11, 16 and 19. Some studies report the item mean; multiply by 19.",
    ),
    _scale(
        key="cors",
        short="CORS",
        name="Child Outcome Rating Scale",
        construct="outcome",
        items=("me", "family", "school", "everything"),
        item_range=(0.0, 10.0),
        integer=False,
        higher_is_better=True,
        cutoff=32.0,
        cutoff_rule="below",
        sources=_sources(
            items=DUNCAN_2006,
            range=DUNCAN_2006,
            cutoff=DUNCAN_2006 + " Clinical cut-off 32 for children aged 6-12; unconfirmed.",
        ),
        notes="Four 10-cm visual analogue lines (children 6-12), each scored 0-10.",
    ),
    _scale(
        key="csrs",
        short="CSRS",
        name="Child Session Rating Scale",
        construct="alliance",
        items=("listened", "how_important", "what_we_did", "overall"),
        item_range=(0.0, 10.0),
        integer=False,
        higher_is_better=True,
        sources=_sources(
            items=MILLER_DUNCAN_2004 + " Item names unconfirmed.",
            range=MILLER_DUNCAN_2004,
        ),
        notes="Four 10-cm visual analogue lines (children 6-12); no published cut-off was "
        "confirmed.",
    ),
    _scale(
        key="phq9",
        short="PHQ-9",
        name="Patient Health Questionnaire-9",
        construct="outcome",
        items=_numbered(9),
        item_range=(0.0, 3.0),
        higher_is_better=False,
        cutoff=10.0,
        cutoff_rule="at_or_above",
        reliable_change=6.0,
        sources=_sources(
            items=KROENKE_2001,
            range=KROENKE_2001,
            cutoff=NHS_TT_MANUAL + " Caseness: PHQ-9 of 10 or more.",
            reliable_change=NHS_TT_MANUAL + " Reliable change: 6 points.",
        ),
    ),
    _scale(
        key="gad7",
        short="GAD-7",
        name="Generalized Anxiety Disorder-7",
        construct="outcome",
        items=_numbered(7),
        item_range=(0.0, 3.0),
        higher_is_better=False,
        cutoff=8.0,
        cutoff_rule="at_or_above",
        reliable_change=4.0,
        sources=_sources(
            items=SPITZER_2006,
            range=SPITZER_2006,
            cutoff=NHS_TT_MANUAL + " Caseness: GAD-7 of 8 or more.",
            reliable_change=NHS_TT_MANUAL + " Reliable change: 4 points.",
        ),
    ),
    _scale(
        key="core10",
        short="CORE-10",
        name="Clinical Outcomes in Routine Evaluation-10",
        construct="outcome",
        items=_numbered(10),
        item_range=(0.0, 4.0),
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
        notes="Item columns must hold item scores as printed on the form (the positively worded "
        "items are reverse-scored on the form itself); the loader does not re-key items.",
    ),
    _scale(
        key="oq45",
        short="OQ-45",
        name="Outcome Questionnaire-45.2",
        construct="outcome",
        items=_numbered(45),
        item_range=(0.0, 4.0),
        higher_is_better=False,
        cutoff=64.0,
        cutoff_rule="at_or_above",
        reliable_change=14.0,
        reverse_items=("1", "12", "13", "20", "21", "24", "31", "37", "43"),
        sources=_sources(
            range=LAMBERT_2004,
            cutoff=LAMBERT_2004 + " Clinical cut-off 63/64; unconfirmed.",
            reliable_change=LAMBERT_2004 + " Reliable change index 14 points.",
            reverse_items=LAMBERT_2004
            + " The nine positively worded items 1, 12, 13, 20, 21, 24, 31, 37, 43 are "
            "reverse-scored; from secondary scoring keys, unconfirmed.",
        ),
        notes="Item columns hold the responses as ticked (0 = never ... 4 = almost always); "
        "the loader re-keys the nine positively worded items.",
    ),
    _scale(
        key="oq30",
        short="OQ-30",
        name="Outcome Questionnaire-30.2",
        construct="outcome",
        items=(),
        item_count=30,
        item_range=(0.0, 4.0),
        higher_is_better=False,
        sources=_sources(range=LAMBERT_OQ30),
        notes="Supply the total. Its cut-off, reliable change and reverse-keyed items could not "
        "be confirmed; configure your own (instruments:, replaces_builtin: true).",
    ),
    _scale(
        key="bdi2",
        short="BDI-II",
        name="Beck Depression Inventory-II",
        construct="outcome",
        items=_numbered(21),
        item_range=(0.0, 3.0),
        higher_is_better=False,
        cutoff=14.0,
        cutoff_rule="at_or_above",
        reliability=0.92,
        reliability_kind="internal_consistency",
        clinical_norms=Norms(mean=22.45, sd=12.75),
        functional_norms=Norms(mean=12.56, sd=9.93),
        sources=_sources(
            items=BECK_1996,
            range=BECK_1996,
            cutoff=BECK_1996 + " 0-13 minimal, 14-19 mild, 20-28 moderate, 29-63 severe: 14 "
            "or more is above minimal.",
            reliability=BECK_1996 + " Coefficient alpha .92 in outpatients (as reported in "
            "reviews of the manual; primary source unconfirmed).",
            norms=BECK_1996 + " Outpatients M 22.45, SD 12.75; college students M 12.56, SD "
            "9.93; unconfirmed.",
        ),
        notes="No published reliable-change value is built in: the Jacobson-Truax value from "
        "the reliability and the outpatients' SD is used.",
    ),
    _scale(
        key="core_om",
        short="CORE-OM",
        name="Clinical Outcomes in Routine Evaluation - Outcome Measure",
        construct="outcome",
        items=_numbered(34),
        item_range=(0.0, 4.0),
        higher_is_better=False,
        cutoff=10.0,
        cutoff_rule="at_or_above",
        reliable_change=5.0,
        prorate_max_missing=3,
        scoring="mean",
        scoring_factor=10.0,
        subscales=_subscales(
            wellbeing=(4, 14, 17, 31),
            problems=(2, 5, 8, 11, 13, 15, 18, 20, 23, 27, 28, 30),
            functioning=(1, 3, 7, 10, 12, 19, 21, 25, 26, 29, 32, 33),
            risk=(6, 9, 16, 22, 24, 34),
        ),
        sources=_sources(
            items=EVANS_2002,
            range=EVANS_2002 + " The clinical score is the item mean times 10 (0-40).",
            subscales=EVANS_2002 + " Well-being, problems, functioning and risk items as on "
            "the scoring sheet; from secondary scoring keys, unconfirmed.",
            cutoff=CONNELL_2007 + " Clinical cut-off 10 (item mean 1.0).",
            reliable_change=CONNELL_2007 + " Reliable change of 5 clinical-score points; "
            "unconfirmed.",
            prorate_max_missing=EVANS_2002 + " Up to 3 missing items; unconfirmed.",
        ),
        notes="Item columns hold item scores as printed on the form (the positively worded "
        "items are reverse-scored on the form itself); the loader does not re-key them. "
        "Subscales are scored like the total (item mean times 10).",
    ),
    _scale(
        key="k10",
        short="K10",
        name="Kessler Psychological Distress Scale",
        construct="outcome",
        items=_numbered(10),
        item_range=(1.0, 5.0),
        higher_is_better=False,
        cutoff=22.0,
        cutoff_rule="at_or_above",
        sources=_sources(
            items=KESSLER_2002,
            range=KESSLER_2002,
            cutoff=ANDREWS_SLADE_2001 + " 10-15 low, 16-21 moderate, 22-29 high, 30-50 very "
            "high distress: 22 or more is high; unconfirmed.",
        ),
    ),
    _scale(
        key="wemwbs",
        short="WEMWBS",
        name="Warwick-Edinburgh Mental Well-being Scale",
        construct="outcome",
        items=_numbered(14),
        item_range=(1.0, 5.0),
        higher_is_better=True,
        reliability=0.91,
        reliability_kind="internal_consistency",
        functional_norms=Norms(mean=50.7, sd=8.79),
        sources=_sources(
            items=TENNANT_2007,
            range=TENNANT_2007,
            reliability=TENNANT_2007 + " Cronbach's alpha .91 in the population sample; "
            "unconfirmed.",
            norms=TENNANT_2007 + " Population M 50.7, SD 8.79; unconfirmed.",
        ),
        notes="All 14 items are positively worded. No clinical norms are built in.",
    ),
)

BUILTIN: MappingProxyType = MappingProxyType({inst.key: inst for inst in _BUILTIN})
"""The built-in instruments by key, in registry order."""
