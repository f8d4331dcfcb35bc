"""Clinical significance: reliable change, the Jacobson–Truax cut-offs, and each case's category.

For each case with a pre and a post score (:func:`pre_post` chooses them), the **reliable
change index** (RCI) says whether the change is larger than measurement error would make it,
and the **cut-off** whether the case moved from the clinical into the functional range. Five
published indices are available (``method``), all with the same categories:

================  =========================================================================
``jt``            Jacobson & Truax (1991): ``(x2 − x1) / S_diff``, ``S_diff = √2 · S1 · √(1 − r)``
``gln``           Gulliksen–Lord–Novick (Hsu, 1989): ``((x2 − M1) − r(x1 − M1)) / (S1 √(1 − r²))``
``hll``           Hsu–Linn–Lord (Hsu, 1995): ``((x2 − M2) − r(x1 − M1)) / (S1 √(1 − r²))``
``en``            Edwards–Nunnally (Speer, 1992): ``(x2 − (r(x1 − M1) + M1)) / (S1 √(1 − r))``
``ha``            Hageman & Arrindell (1999): ``((x2 − x1) r_dd + (M2 − M1)(1 − r_dd)) /
                  (√r_dd · √2 · SE)``, with the reliability of the difference ``r_dd``
================  =========================================================================

``x1, x2`` are a case's pre and post scores, ``M1, S1`` the mean and SD of the pre scores
(the sample's, or the instrument's clinical norms with ``reference="norms"``), ``M2, S2`` of
the post scores, ``r`` the instrument's reliability and ``SE = S1 √(1 − r)``. A change is
reliable when ``|RCI|`` exceeds 1.96 (two-sided 5%), or 1.65 for ``ha`` (one-sided 5%, as
Hageman & Arrindell propose).

Cut-offs (Jacobson & Truax, 1991), with ``d = +1`` when higher is better and ``−1`` when lower
is: **a** = ``Mc + 2d·Sc`` (two SDs beyond the clinical mean), **b** = ``Mf − 2d·Sf`` (within two
SDs of the functional mean), **c** = ``(Sc·Mf + Sf·Mc) / (Sc + Sf)`` (where the two
distributions meet), from the clinical (the sample's pre scores unless
``reference="norms"``) and functional norms; for ``ha`` the "true" cut-offs with ``Sc√rc`` and
``Sf√rf``. ``cutoff="published"`` uses the instrument's own cut-off and its rule.

Categories (the boundary rules of the clinicalsignificance R package, Claus et al., 2025):
**recovered** — reliably improved, clinical before and functional after; **improved** —
reliably improved otherwise; **deteriorated** — reliably worse otherwise; **harmed** —
reliably worse, not clinical before and not functional after; **unchanged** — no reliable
change. With a computed cut-off, clinical before means strictly on the clinical side of it and
functional after strictly on the functional side: a score exactly at the cut-off is neither.
With the published cut-off, its rule decides (ORS: below 25 is clinical, 25 is not). For
``ha``, functional after requires the post score to be reliably past the cut-off (its
``CS_indiv`` beyond 1.65), and harmed a reliable move into the clinical range. One deviation
from that package, stated in docs/models.md: cut-off **b** uses the functional SD, as Jacobson
& Truax define it (the package uses the clinical SD).

References
----------
Claus, B. B., Wager, J., & Bonnet, U. (2025). clinicalsignificance: Clinical significance
analyses of intervention studies in R. Journal of Statistical Software, 111(1).
Hageman, W. J. J. M., & Arrindell, W. A. (1999). Establishing clinically significant change:
Increment of precision and the distinction between individual and group level of analysis.
Behaviour Research and Therapy, 37(12), 1169-1193.
Hsu, L. M. (1989). Reliable changes in psychotherapy: Taking into account regression toward the
mean. Behavioral Assessment, 11(4), 459-467.
Hsu, L. M. (1995). Regression toward the mean associated with measurement error and the
identification of improvement and deterioration in psychotherapy. Journal of Consulting and
Clinical Psychology, 63(1), 141-144.
Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to defining
meaningful change in psychotherapy research. Journal of Consulting and Clinical Psychology,
59(1), 12-19.
Korn, E. L., & Graubard, B. I. (1998). Confidence intervals for proportions with small
expected number of positive counts estimated from survey data. Survey Methodology, 24(2),
193-201.
Speer, D. C. (1992). Clinically significant change: Jacobson and Truax (1991) revisited.
Journal of Consulting and Clinical Psychology, 60(3), 402-408.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from .derive import case_keys
from .effects import in_clinical_range, wilson_interval
from .errors import NotEstimable
from .instruments import Instrument, Norms
from .tidy import frame, row

__all__ = [
    "CATEGORIES",
    "CRITICAL",
    "CUTOFFS",
    "METHODS",
    "ChangeReference",
    "ClinicalSignificance",
    "category_summary",
    "clinical_significance",
    "cutoff_value",
    "pre_post",
    "reliable_change_index",
]

Method = Literal["jt", "gln", "hll", "en", "ha"]
Cutoff = Literal["a", "b", "c", "published"]

METHODS: tuple[str, ...] = ("jt", "gln", "hll", "en", "ha")
"""The reliable-change indices (module docstring)."""
CRITICAL = {"jt": 1.96, "gln": 1.96, "hll": 1.96, "en": 1.96, "ha": 1.65}
"""The |RCI| beyond which a change is reliable: the conventional 1.96 of a two-sided 5% test
(Jacobson & Truax, 1991), and 1.65 (one-sided 5%) for Hageman & Arrindell (1999), as in the
clinicalsignificance R package."""
CUTOFFS: tuple[str, ...] = ("a", "b", "c", "published")
"""Jacobson & Truax's cut-offs a, b and c, or the instrument's published cut-off."""
CATEGORIES: tuple[str, ...] = ("recovered", "improved", "unchanged", "deteriorated", "harmed")
"""The categories of change, from best to worst (module docstring)."""


@dataclass(frozen=True)
class ChangeReference:
    """The numbers a reliable-change index uses.

    Attributes
    ----------
    reliability : float
        Reliability ``r`` of the instrument.
    m_pre, sd_pre : float
        Mean and SD of the pre scores (``M1``, ``S1``): the sample's, or the clinical norms.
    m_post, sd_post : float
        Mean and SD of the sample's post scores (``M2``, ``S2``; used by ``hll`` and ``ha``).
    r_prepost : float
        Correlation of the sample's pre and post scores (used by ``ha``).
    """

    reliability: float
    m_pre: float
    sd_pre: float
    m_post: float
    sd_post: float
    r_prepost: float

    @classmethod
    def from_scores(
        cls, pre: np.ndarray, post: np.ndarray, reliability: float, clinical: Norms | None = None
    ) -> ChangeReference:
        """From the sample's scores; ``clinical`` norms replace the pre mean and SD."""
        if not 0 < reliability < 1:
            raise ValueError(f"a reliability must lie between 0 and 1, not {reliability}")
        m_pre, sd_pre = (
            (float(np.mean(pre)), float(np.std(pre, ddof=1)))
            if clinical is None
            else (clinical.mean, clinical.sd)
        )
        r = np.corrcoef(pre, post)[0, 1] if len(pre) > 2 else np.nan
        return cls(reliability, m_pre, sd_pre, float(np.mean(post)),
                   float(np.std(post, ddof=1)), float(r))  # fmt: skip

    @property
    def se_measurement(self) -> float:
        """The standard error of measurement ``S1 √(1 − r)``."""
        return self.sd_pre * np.sqrt(1.0 - self.reliability)

    def reliability_of(self, sd: float) -> float:
        """Hageman & Arrindell's reliability of scores with SD ``sd``: ``(sd² − SE²) / sd²``."""
        return (sd**2 - self.se_measurement**2) / sd**2


def reliable_change_index(
    pre: np.ndarray, post: np.ndarray, method: Method, ref: ChangeReference
) -> tuple[np.ndarray, np.ndarray]:
    """Each case's reliable change index and its standard error (the index's denominator).

    Parameters
    ----------
    pre, post : numpy.ndarray
        The cases' scores.
    method : {"jt", "gln", "hll", "en", "ha"}
        The index (module docstring).
    ref : ChangeReference
        Reliability and the sample's (or norms') means and SDs.

    Returns
    -------
    rci, se : numpy.ndarray
        The index (positive when the score rose) and the standard error it divides by.

    Examples
    --------
    >>> ref = ChangeReference(0.8, 20.0, 5.0, 15.0, 5.0, 0.5)
    >>> rci, se = reliable_change_index(np.array([25.0]), np.array([15.0]), "jt", ref)
    >>> round(float(se[0]), 4), round(float(rci[0]), 3)  # √2 · 5 · √0.2 = 3.1623
    (3.1623, -3.162)
    """
    r, m1, s1, m2 = ref.reliability, ref.m_pre, ref.sd_pre, ref.m_post
    se_meas = ref.se_measurement
    if method == "jt":
        numerator, se = post - pre, np.sqrt(2.0) * se_meas
    elif method == "gln":
        numerator, se = (post - m1) - r * (pre - m1), s1 * np.sqrt(1.0 - r**2)
    elif method == "hll":
        numerator, se = (post - m2) - r * (pre - m1), s1 * np.sqrt(1.0 - r**2)
    elif method == "en":
        numerator, se = post - (r * (pre - m1) + m1), se_meas
    elif method == "ha":
        r1, r2, r12 = ref.reliability_of(s1), ref.reliability_of(ref.sd_post), ref.r_prepost
        s2 = ref.sd_post
        r_dd = (s1**2 * r1 + s2**2 * r2 - 2 * s1 * s2 * r12) / (s1**2 + s2**2 - 2 * s1 * s2 * r12)
        if not r_dd > 0:
            raise NotEstimable(
                f"the reliability of the pre-post differences is {r_dd:.3g}, not positive: "
                "the Hageman-Arrindell index is undefined for these data"
            )
        numerator = (post - pre) * r_dd + (m2 - m1) * (1.0 - r_dd)
        se = np.sqrt(r_dd) * np.sqrt(2.0) * se_meas
    else:
        raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    numerator = np.asarray(numerator, dtype=float)
    return numerator / se, np.full(numerator.shape, float(se))


def cutoff_value(
    kind: Cutoff,
    clinical: Norms,
    functional: Norms | None,
    higher_is_better: bool,
    ha: ChangeReference | None = None,
) -> float:
    """The Jacobson–Truax cut-off ``a``, ``b`` or ``c`` (module docstring).

    With ``ha`` (the reference of a Hageman–Arrindell analysis), the "true" cut-off:
    each SD is multiplied by the square root of the reliability of scores with that SD.

    Examples
    --------
    >>> clinical, functional = Norms(35.48, 8.16), Norms(7.69, 7.52)  # BDI-II, lower is better
    >>> round(cutoff_value("c", clinical, functional, higher_is_better=False), 2)
    21.02
    """
    d = 1.0 if higher_is_better else -1.0
    sc = clinical.sd if ha is None else clinical.sd * np.sqrt(ha.reliability_of(clinical.sd))
    if kind == "a":
        return float(clinical.mean + d * 2.0 * sc)
    if functional is None:
        raise NotEstimable(f"cut-off {kind} needs the norms of a functional sample")
    sf = functional.sd if ha is None else functional.sd * np.sqrt(ha.reliability_of(functional.sd))
    if kind == "b":
        return float(functional.mean - d * 2.0 * sf)
    if kind == "c":
        return float((sc * functional.mean + sf * clinical.mean) / (sc + sf))
    raise ValueError(f"unknown cut-off {kind!r}; cut-offs: {', '.join(CUTOFFS)}")


@dataclass
class ClinicalSignificance:
    """Each case's change and category, and the numbers they were decided with.

    Attributes
    ----------
    cases : pandas.DataFrame
        The input columns, then ``change``, ``rci``, ``se_rci``, ``band_low`` and
        ``band_high`` (the post scores between which the change would not be reliable),
        ``reliable_improvement``,
        ``reliable_deterioration``, ``clinical_pre``, ``functional_post`` and ``category``.
    parameters : dict
        ``method``, ``critical``, ``cutoff`` (its kind) and ``cutoff_value``, ``reliability``
        and its source, ``reference`` and the :class:`ChangeReference` values, the norms.
    """

    cases: pd.DataFrame
    parameters: dict[str, object] = field(default_factory=dict)


def _reliability(inst: Instrument, reliability: float | None) -> tuple[float, str]:
    if reliability is not None:
        return float(reliability), "configured"
    if inst.reliability is None:
        raise NotEstimable(
            f"no reliability is on record for {inst.short}: configure one (instruments: "
            "reliability, or clinical_significance: reliability)"
        )
    return inst.reliability, f"{inst.short} registry ({inst.reliability_kind})"


def clinical_significance(
    pairs: pd.DataFrame,
    instrument: Instrument,
    *,
    method: Method = "jt",
    cutoff: Cutoff | None = None,
    reliability: float | None = None,
    reference: Literal["sample", "norms"] | None = None,
    functional: Norms | None = None,
) -> ClinicalSignificance:
    """Reliable change, the cut-off and the category of change of each case.

    Parameters
    ----------
    pairs : pandas.DataFrame
        One row per case with ``pre`` and ``post`` scores (:func:`pre_post`); other columns
        are kept.
    instrument : Instrument
        The outcome measure: direction, reliability, norms, published cut-off.
    method : {"jt", "gln", "hll", "en", "ha"}
        The reliable-change index (module docstring).
    cutoff : {"a", "b", "c", "published"}, optional
        Default: ``c`` when functional norms are known (Jacobson & Truax's choice when both
        distributions are), else ``published`` where the instrument has a cut-off, else ``a``.
    reliability : float, optional
        Overrides the instrument's reliability.
    reference : {"sample", "norms"}, optional
        Where the clinical mean and SD (``M1``, ``S1``; cut-offs a and c) come from: the
        sample's pre scores (as the R package does), or the instrument's clinical norms.
        Default: the norms where the instrument has them (so that reliable change is judged
        by the same threshold as the registry's, :attr:`Instrument.reliable_change_points`),
        else the sample.
    functional : Norms, optional
        Overrides the instrument's functional norms.

    Returns
    -------
    ClinicalSignificance

    Raises
    ------
    NotEstimable
        Fewer than three cases, no reliability, no norms for the cut-off asked for, or pre
        scores without spread.

    Examples
    --------
    >>> from allianceanalysis.instruments import get_instrument
    >>> pairs = pd.DataFrame({"pre": [30.0, 28, 35, 22, 40], "post": [10.0, 27, 33, 30, 12]})
    >>> cs = clinical_significance(pairs, get_instrument("bdi2"), cutoff="c")
    >>> cs.cases["category"].tolist()  # the BDI-II's norms: reliable change is 10 points
    ['recovered', 'unchanged', 'unchanged', 'unchanged', 'recovered']
    """
    clean = pairs.dropna(subset=["pre", "post"])
    if len(clean) < 3:
        raise NotEstimable(f"{len(clean)} cases have a pre and a post score; at least 3 needed")
    pre = clean["pre"].to_numpy(dtype=float)
    post = clean["post"].to_numpy(dtype=float)
    r, r_source = _reliability(instrument, reliability)
    if reference is None:
        reference = "norms" if instrument.clinical_norms is not None else "sample"
    if reference == "norms" and instrument.clinical_norms is None:
        raise NotEstimable(f"no clinical norms are on record for {instrument.short}")
    ref = ChangeReference.from_scores(
        pre, post, r, instrument.clinical_norms if reference == "norms" else None
    )
    if not ref.sd_pre > 0:
        raise NotEstimable("the pre scores do not vary: no reliable change can be computed")
    functional = functional if functional is not None else instrument.functional_norms
    if cutoff is None:
        cutoff = "c" if functional is not None else (
            "published" if instrument.cutoff is not None else "a")  # fmt: skip
    d = 1.0 if instrument.higher_is_better else -1.0
    rci, se = reliable_change_index(pre, post, method, ref)
    critical = CRITICAL[method]
    improved, worse = d * rci > critical, d * rci < -critical
    clinical = Norms(ref.m_pre, ref.sd_pre)
    if cutoff == "published":
        if instrument.cutoff is None:
            raise NotEstimable(f"{instrument.short} has no published cut-off")
        value = instrument.cutoff
        clinical_pre = in_clinical_range(pd.Series(pre), instrument).to_numpy(dtype=bool)
        functional_post = ~in_clinical_range(pd.Series(post), instrument).to_numpy(dtype=bool)
        clinical_post = ~functional_post
    else:
        value = cutoff_value(cutoff, clinical, functional, instrument.higher_is_better,
                             ha=ref if method == "ha" else None)  # fmt: skip
        clinical_pre = d * pre < d * value
        if method == "ha":
            r2 = ref.reliability_of(ref.sd_post)
            cs_indiv = (ref.m_post + (post - ref.m_post) * r2 - value) / (
                np.sqrt(r2) * ref.se_measurement
            )
            functional_post = clinical_pre & (d * cs_indiv > critical)
            clinical_post = ~clinical_pre & (d * cs_indiv < -critical)
        else:
            functional_post = d * post > d * value
            clinical_post = ~functional_post
    recovered = improved & clinical_pre & functional_post
    harmed = worse & ~clinical_pre & clinical_post
    category = np.select(
        [recovered, improved, harmed, worse],
        ["recovered", "improved", "harmed", "deteriorated"],
        default="unchanged",
    )
    # the index is linear in the post score: the post scores at which it is just reliable
    at_zero, _ = reliable_change_index(pre, np.zeros_like(post), method, ref)
    at_one, _ = reliable_change_index(pre, np.ones_like(post), method, ref)
    edges = np.stack([(critical - at_zero), (-critical - at_zero)]) / (at_one - at_zero)
    cases = clean.assign(
        change=post - pre,
        rci=rci,
        se_rci=se,
        band_low=edges.min(axis=0),
        band_high=edges.max(axis=0),
        reliable_improvement=improved,
        reliable_deterioration=worse,
        clinical_pre=clinical_pre,
        functional_post=functional_post,
        category=pd.Categorical(category, categories=CATEGORIES),
    )
    parameters = {
        "instrument": instrument.key,
        "method": method,
        "critical": critical,
        "cutoff": cutoff,
        "cutoff_value": float(value),
        "reliability": r,
        "reliability_source": r_source,
        "reference": reference,
        "m_pre": ref.m_pre,
        "sd_pre": ref.sd_pre,
        "m_post": ref.m_post,
        "sd_post": ref.sd_post,
        "functional_mean": None if functional is None else functional.mean,
        "functional_sd": None if functional is None else functional.sd,
        "cases_without_pair": len(pairs) - len(clean),
    }
    return ClinicalSignificance(cases.reset_index(drop=True), parameters)


def _effective_n(flags: np.ndarray, groups: np.ndarray | None) -> tuple[float, int | None]:
    """The sample size a proportion's interval uses: ``n``, or with clusters ``n / deff``,
    the design effect the ratio of the cluster-robust to the binomial variance (at least 1;
    Korn & Graubard, 1998)."""
    n = len(flags)
    if groups is None:
        return float(n), None
    codes, _ = pd.factorize(pd.Series(groups))
    k = int(codes.max()) + 1 if n else 0
    p = flags.mean() if n else np.nan
    if k < 2 or not 0 < p < 1:
        return float(n), k
    events = np.bincount(codes, weights=flags.astype(float), minlength=k)
    sizes = np.bincount(codes, minlength=k)
    robust = k / (k - 1) * np.sum((events - p * sizes) ** 2) / n**2
    deff = max(1.0, robust / (p * (1 - p) / n))
    return n / deff, k


def category_summary(
    result: ClinicalSignificance, model: str = "clinical_significance", by: str | None = None
) -> pd.DataFrame:
    """The share of cases in each category, as tidy rows with 95% Wilson intervals.

    With ``by`` (a column of the cases, e.g. ``therapist_id``), cases are clustered: the
    interval uses the effective sample size ``n / deff`` (:func:`_effective_n`), so clients
    of the same therapist are not counted as independent evidence. ``ci_method`` says which.

    Returns
    -------
    pandas.DataFrame
        Tidy rows (:mod:`allianceanalysis.tidy`), ``term`` the category, ``estimate`` the
        proportion, ``n_obs`` the cases, ``n_groups`` the clusters; ``message`` the count and
        the method, cut-off and reliability used.

    Examples
    --------
    >>> from allianceanalysis.instruments import get_instrument
    >>> pairs = pd.DataFrame({"pre": [30.0, 28, 35, 22, 40], "post": [10.0, 27, 33, 30, 12]})
    >>> cs = clinical_significance(pairs, get_instrument("bdi2"), cutoff="c")
    >>> category_summary(cs)[["term", "estimate"]].to_dict("list")
    {'term': ['recovered', 'improved', 'unchanged', 'deteriorated', 'harmed'], \
'estimate': [0.4, 0.0, 0.6, 0.0, 0.0]}
    """
    cases = result.cases
    p = result.parameters
    groups = cases[by].to_numpy() if by is not None else None
    n = len(cases)
    note = (f"{p['method']} index (|RCI| > {p['critical']:g}), cut-off {p['cutoff']} = "
            f"{p['cutoff_value']:.4g}, reliability {p['reliability']:.3g}")  # fmt: skip
    rows = []
    for category in CATEGORIES:
        flags = (cases["category"] == category).to_numpy()
        count = int(flags.sum())
        n_eff, k = _effective_n(flags, groups)
        low, high = wilson_interval(count / n * n_eff, n_eff) if n else (np.nan, np.nan)
        rows.append(row(
            model, category, count / n if n else np.nan, ci_low=low, ci_high=high, n_obs=n,
            n_groups=k, converged=True,
            ci_method="wilson" if k is None else f"wilson, clustered by {by}",
            message=f"{count} of {n}; {note}"))  # fmt: skip
    return frame(rows)


def pre_post(
    sessions: pd.DataFrame,
    outcome: str,
    *,
    pre: Literal["first"] | int = "first",
    post: Literal["last"] | int | Sequence[int] = "last",
) -> pd.DataFrame:
    """Each case's pre and post score, from the sessions chosen.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions (case keys, ``session``, the outcome column; ``therapist_id`` and
        ``site_id`` are carried when present).
    outcome : str
        The outcome column.
    pre : "first" or int
        ``"first"``: the first rated session; an integer: the rating at that session.
    post : "last", int or [from, to]
        ``"last"``: the last rated session after the pre one; an integer: the rating at that
        session; a pair: the last rated session within that window (inclusive).

    Returns
    -------
    pandas.DataFrame
        One row per case with a rated pre session: case keys, ``therapist_id`` (and
        ``site_id``) when present, ``pre_session``, ``pre``, ``post_session``, ``post``
        (missing where no later rated session qualifies).

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 4 + ["b"] * 2, "session": [1, 2, 3, 4, 1, 2],
    ...                   "bdi": [30.0, 25, None, 12, 20, 22]})
    >>> pre_post(s, "bdi", post=[2, 3])[["client_id", "pre", "post_session", "post"]]
      client_id   pre  post_session  post
    0         a  30.0           2.0  25.0
    1         b  20.0           2.0  22.0
    """
    keys = case_keys(sessions)
    carried = [c for c in ("therapist_id", "site_id") if c in sessions]
    rated = sessions.dropna(subset=[outcome]).sort_values([*keys, "session"], kind="stable")
    if pre == "first":
        first = rated.drop_duplicates(keys, keep="first")
    else:
        first = rated[rated["session"] == int(pre)].drop_duplicates(keys, keep="first")
    result = first[[*keys, *carried, "session", outcome]].rename(
        columns={"session": "pre_session", outcome: "pre"}
    )
    later = rated.merge(result[[*keys, "pre_session"]], on=keys)
    later = later[later["session"] > later["pre_session"]]
    if post == "last":
        chosen = later
    elif isinstance(post, int | np.integer):
        chosen = later[later["session"] == int(post)]
    else:
        low, high = (int(v) for v in post)
        chosen = later[later["session"].between(low, high)]
    last = chosen.drop_duplicates(keys, keep="last")[[*keys, "session", outcome]].rename(
        columns={"session": "post_session", outcome: "post"}
    )
    merged = result.merge(last, on=keys, how="left")
    return merged.astype({"post_session": "float64"}).reset_index(drop=True)
