"""Change indices and key performance indicators (KPIs) of a service, per reporting year.

Everything here works per the instrument registry, for any outcome scale (ORS as PHQ-9):
"improvement" is a change in the better direction of the scale.

Definitions (printed in the annual report's appendix)
------------------------------------------------------
- **Reporting year** (:func:`reporting_year`): years start in ``start_month`` (4 = April, the UK
  financial year, labelled "2024/25"; 1 = calendar years, labelled "2024"). A client belongs to
  the year in which their episode **ended**: the date of their last attended session, for
  episodes that ended (``end_status`` planned or dropout). Ongoing episodes (no end status)
  count in activity but not in outcomes. A dataset without an ``end_status`` column is taken
  as a file of ended episodes, with the derivation's dropout rule (fewer than 3 sessions,
  :func:`~allianceanalysis.derive.dropout_indicator`). Without session dates, all data form
  one period, "all".
- **Finished** (:func:`client_outcomes`): the episode ended, with at least two attended sessions
  and an outcome score at the first and at a later session ("paired scores"); pre = the first
  score, post = the last. This follows NHS Talking Therapies' "finished a course of treatment"
  (at least two attended treatment sessions).
- **Reliable improvement / deterioration**: an improvement (deterioration) of at least the
  instrument's reliable-change threshold in points (Jacobson & Truax, 1991; thresholds and
  their sources in the registry).
- **Clinical at start / recovery**: at start in the clinical range by the instrument's cut-off
  rule; recovered = clinical at start and not clinical at the end (clinically significant
  change, Jacobson & Truax criterion c as operationalised by the cut-off); rates among the
  clients who were clinical at start. **Reliable recovery** = recovery with reliable
  improvement.
- **NHS Talking Therapies** (:func:`nhs_talking_therapies`), when a dataset has both PHQ-9 and
  GAD-7: caseness = PHQ-9 ≥ 10 or GAD-7 ≥ 8; recovery = at caseness at the first score and at
  neither at the last, among finished referrals at caseness; reliable improvement = a reliable
  decrease (PHQ-9 ≥ 6, GAD-7 ≥ 4 points) on at least one measure and no reliable increase on
  the other, among all finished; reliable deterioration = the mirror image; reliable recovery =
  recovery and reliable improvement.
- **Cohen's d** (pre-SD standardiser): mean improvement / SD of the pre scores, with the CI of
  Becker (1988): var(d) = 2(1 - r)/n + d²/(2n), r the pre-post correlation.
- **Severity-adjusted effect size** (:func:`severity_adjusted_effect_size`; Seidel, Miller &
  Chow, 2014), only where reference norms for the instrument are supplied
  (:class:`SeverityNorms`): among finished clients in the clinical range at start,
  (reference mean improvement + the client's improvement beyond what the reference regression
  predicts from their intake) / reference SD; the service's value is the mean, with a t
  interval.

References
----------
Becker, B. J. (1988). Synthesizing standardized mean-change measures. British Journal of
Mathematical and Statistical Psychology, 41(2), 257-278.
Seidel, J. A., Miller, S. D., & Chow, D. L. (2014). Effect size calculations for the
clinician: Methods and comparability. Psychotherapy Research, 24(4), 470-484.
Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to defining
meaningful change in psychotherapy research. Journal of Consulting and Clinical Psychology,
59(1), 12-19.
Spiegelhalter, D. J. (2005). Funnel plots for comparing institutional performance. Statistics
in Medicine, 24(8), 1185-1202.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .derive import case_keys, dropout_indicator
from .distributions import norm_ppf, t_ppf
from .instruments import Instrument, get_instrument

__all__ = [
    "FUNNEL_LIMITS",
    "SeverityNorms",
    "activity",
    "binomial_effect_size_display",
    "client_outcomes",
    "cohens_d",
    "difference_of_proportions",
    "funnel",
    "in_clinical_range",
    "mean_interval",
    "nhs_talking_therapies",
    "outcome_kpis",
    "proportion",
    "rate_row",
    "reporting_year",
    "session_bands",
    "session_years",
    "severity_adjusted_effect_size",
    "wilson_interval",
]

SESSION_BANDS = ((1, 1), (2, 2), (3, 5), (6, 10), (11, None))
"""Bands of sessions per client in the activity table (1, 2, 3-5, 6-10, 11 or more)."""

FUNNEL_LIMITS = (0.95, 0.998)
"""Control limits of funnel plots: 95% and 99.8% (about 2 and 3 SD; Spiegelhalter, 2005)."""


def reporting_year(dates: pd.Series, start_month: int = 4) -> pd.Series:
    """The reporting year of each date: ``"2024/25"`` style, or ``"2024"`` when years start in
    January; missing for missing dates.

    Examples
    --------
    >>> reporting_year(pd.Series(pd.to_datetime(["2025-03-31", "2025-04-01"]))).tolist()
    ['2024/25', '2025/26']
    >>> reporting_year(pd.Series(pd.to_datetime(["2025-03-31"])), start_month=1).tolist()
    ['2025']
    """
    if not 1 <= start_month <= 12:
        raise ValueError("start_month must be 1 to 12")
    first = dates.dt.year - (dates.dt.month < start_month).astype(int)
    if start_month == 1:
        labels = first.astype("Int64").astype("str")
    else:
        labels = (
            first.astype("Int64").astype("str")
            + "/"
            + ((first + 1) % 100).astype("Int64").astype("str").str.zfill(2)
        )
    return labels.where(dates.notna())


def in_clinical_range(scores: pd.Series, inst: Instrument) -> pd.Series:
    """Whether each score is in the instrument's clinical range (missing stays missing).

    Examples
    --------
    >>> in_clinical_range(pd.Series([24.9, 25.0]), get_instrument("ors")).tolist()
    [True, False]
    >>> in_clinical_range(pd.Series([9, 10]), get_instrument("phq9")).tolist()
    [False, True]
    """
    if inst.cutoff is None:
        return pd.Series(pd.NA, index=scores.index, dtype="boolean")
    flag = scores < inst.cutoff if inst.cutoff_rule == "below" else scores >= inst.cutoff
    return flag.astype("boolean").mask(scores.isna())


def client_outcomes(sessions: pd.DataFrame, outcome: str, *, start_month: int = 4) -> pd.DataFrame:
    """One row per case: pre and post scores, change, change categories, reporting year.

    Columns: case keys, ``therapist_id``, ``site_id`` (when present), ``sessions``,
    ``end_status``, ``dropout`` (1 unplanned, 0 planned, missing while ongoing), ``ended``,
    ``end_date``, ``year`` (of the ending; ``"all"`` without dates),
    ``pre``, ``post``, ``finished``, ``improvement`` (positive = better),
    ``reliable_improvement``, ``reliable_deterioration``, ``clinical_start``, ``clinical_end``,
    ``recovered``, ``reliable_recovery`` (the categories are missing where not defined).
    """
    inst = get_instrument(outcome)
    keys = case_keys(sessions)
    ordered = sessions.sort_values([*keys, "session"], kind="stable")
    grouped = ordered.groupby(keys, sort=True)
    cases = grouped.agg(therapist_id=("therapist_id", "first"), sessions=("session", "size"))
    for optional in ("site_id", "end_status"):
        if optional in ordered:
            cases[optional] = grouped[optional].last()
    cases["dropout"] = dropout_indicator(cases.rename(columns={"sessions": "sessions_attended"}))
    cases["ended"] = cases["dropout"].notna()
    if "session_date" in ordered:
        cases["end_date"] = grouped["session_date"].max()
        cases["year"] = reporting_year(cases["end_date"], start_month).where(cases["ended"])
    else:
        cases["end_date"] = pd.NaT
        cases["year"] = pd.Series("all", index=cases.index).where(cases["ended"])
    scored = ordered.dropna(subset=[outcome])
    first = scored.groupby(keys).first()
    last = scored.groupby(keys).last()
    cases["pre"] = first[outcome]
    cases["post"] = last[outcome].where(last["session"] > first["session"])
    cases["finished"] = cases["ended"] & (cases["sessions"] >= 2) & cases["post"].notna()
    sign = 1.0 if inst.higher_is_better else -1.0
    improvement = sign * (cases["post"] - cases["pre"])
    cases["improvement"] = improvement.where(cases["finished"])
    finished = cases["finished"]
    change = inst.reliable_change_points
    if change is not None:
        cases["reliable_improvement"] = (improvement >= change).where(finished)
        cases["reliable_deterioration"] = (improvement <= -change).where(finished)
    cases["clinical_start"] = in_clinical_range(cases["pre"], inst).where(finished)
    cases["clinical_end"] = in_clinical_range(cases["post"], inst).where(finished)
    at_start = cases["clinical_start"].fillna(False).astype(bool)
    cases["recovered"] = (~cases["clinical_end"].fillna(True).astype(bool)).where(
        finished & at_start
    )
    if "reliable_improvement" in cases:
        cases["reliable_recovery"] = (
            cases["recovered"].fillna(False).astype(bool)
            & cases["reliable_improvement"].fillna(False).astype(bool)
        ).where(finished & at_start)
    return cases.reset_index()


Z_95 = float(-norm_ppf(0.025))
"""The normal's upper 2.5% point (1.959964...), for two-sided 95% intervals of proportions."""


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (Wilson, 1927).

    With q = successes / n and z the normal's upper 2.5% point: centre
    (q + z²/2n) / (1 + z²/n), half-width z √(q(1 - q)/n + z²/4n²) / (1 + z²/n), clipped to
    [0, 1]. The same arithmetic, in the same order, as statsmodels'
    ``proportion_confint(method="wilson")``, which ``tests/test_effects.py`` checks it against;
    computed here because importing ``statsmodels.stats.proportion`` (it imports
    ``scipy.stats``) took 0.8 s, a quarter of the report-tables step.

    Parameters
    ----------
    successes, n : int
        The count of events and of trials (``n > 0``).

    Returns
    -------
    (low, high) : tuple of float

    References
    ----------
    Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference.
    Journal of the American Statistical Association, 22(158), 209-212.

    Examples
    --------
    >>> tuple(round(x, 4) for x in wilson_interval(30, 100))
    (0.2189, 0.3958)
    """
    z2 = Z_95**2
    q = successes / n
    denominator = 1 + z2 / n
    centre = (q + z2 / (2 * n)) / denominator
    half = Z_95 * np.sqrt(q * (1.0 - q) / n + z2 / (4.0 * n**2))
    half /= denominator
    return float(np.clip(centre - half, 0, 1)), float(np.clip(centre + half, 0, 1))


def proportion(successes: int, n: int) -> tuple[float, float, float]:
    """A proportion with its 95% Wilson interval (:func:`wilson_interval`; NaN for n = 0).

    Examples
    --------
    >>> tuple(round(x, 3) for x in proportion(30, 100))
    (0.3, 0.219, 0.396)
    """
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    return successes / n, *wilson_interval(successes, n)


def difference_of_proportions(x1: int, n1: int, x0: int, n0: int) -> tuple[float, float, float]:
    """p1 - p0 with Newcombe's hybrid-score 95% interval (NaN if a group is empty).

    Newcombe's method 10: with (l1, u1) and (l0, u0) the groups' Wilson intervals, the
    difference d = p1 - p0 has the interval d - √((p1 - l1)² + (u0 - p0)²) to
    d + √((p0 - l0)² + (u1 - p1)²). The same arithmetic as statsmodels'
    ``confint_proportions_2indep(method="newcomb", compare="diff")`` (checked in
    ``tests/test_effects.py``).

    References
    ----------
    Newcombe, R. G. (1998). Interval estimation for the difference between independent
    proportions: comparison of eleven methods. Statistics in Medicine, 17(8), 873-890.

    Examples
    --------
    >>> tuple(round(x, 4) for x in difference_of_proportions(30, 100, 20, 100))
    (0.1, -0.0202, 0.2167)
    """
    if min(n1, n0) == 0:
        return float("nan"), float("nan"), float("nan")
    p1, p0 = x1 / n1, x0 / n0
    low1, high1 = wilson_interval(x1, n1)
    low0, high0 = wilson_interval(x0, n0)
    difference = p1 - p0
    low = difference - np.sqrt((p1 - low1) ** 2 + (high0 - p0) ** 2)
    high = difference + np.sqrt((p0 - low0) ** 2 + (high1 - p1) ** 2)
    return difference, float(low), float(high)


def binomial_effect_size_display(r: float) -> tuple[float, float]:
    """A correlation as two success rates: the binomial effect size display (BESD).

    Split clients at the median of the alliance and of the outcome: a correlation r then
    corresponds to a "success" rate of .5 + r/2 among clients with the better alliance and
    .5 - r/2 among the others (Rosenthal & Rubin, 1982). The literature's r = .28
    (Flückiger et al., 2018) reads as 64% against 36%: a modest-sounding r² of .08 is a large
    practical difference.

    References
    ----------
    Rosenthal, R., & Rubin, D. B. (1982). A simple, general purpose display of magnitude of
    experimental effect. Journal of Educational Psychology, 74(2), 166-169.

    Examples
    --------
    >>> binomial_effect_size_display(0.28)
    (0.64, 0.36)
    """
    if not -1 <= r <= 1:
        raise ValueError("a correlation lies between -1 and 1")
    return round(0.5 + r / 2, 10), round(0.5 - r / 2, 10)


def cohens_d(pre: pd.Series, post: pd.Series, higher_is_better: bool) -> tuple[float, float, float]:
    """Pre-post Cohen's d with the pre-SD standardiser and Becker's (1988) 95% interval.

    Positive = improvement. Returns ``(d, ci_low, ci_high)``.
    """
    pair = pd.DataFrame({"pre": pre, "post": post}).dropna()
    n = len(pair)
    if n < 3:
        return float("nan"), float("nan"), float("nan")
    sign = 1.0 if higher_is_better else -1.0
    d = sign * (pair["post"] - pair["pre"]).mean() / pair["pre"].std(ddof=1)
    r = pair["pre"].corr(pair["post"])
    se = np.sqrt(2 * (1 - r) / n + d**2 / (2 * n))
    crit = norm_ppf(0.975)
    return float(d), float(d - crit * se), float(d + crit * se)


@dataclass(frozen=True)
class SeverityNorms:
    """Reference norms of an outcome instrument for the severity-adjusted effect size.

    From a large reference sample of clients who started in the clinical range (Seidel,
    Miller & Chow, 2014): the linear regression of improvement (positive = better, in points)
    on the intake score, ``predicted = intercept + slope * intake``; the sample's
    ``mean_improvement``; and ``sd``, the standard deviation of its intake scores. No
    instrument ships with norms: the published reference samples (ACORN, the ORS/SRS
    platforms) do not publish their coefficients, so a service supplies its licensed norms in
    the configuration (``annual_report.severity_norms``) with their ``source``.
    """

    intercept: float
    slope: float
    mean_improvement: float
    sd: float
    source: str

    def __post_init__(self) -> None:
        if not self.sd > 0:
            raise ValueError("the reference SD must be positive")


def severity_adjusted_effect_size(
    outcomes: pd.DataFrame, norms: SeverityNorms
) -> tuple[float, float, float, int]:
    """The severity-adjusted effect size (SAES) of finished clients in the clinical range.

    Parameters
    ----------
    outcomes : pandas.DataFrame
        :func:`client_outcomes` rows (``finished``, ``clinical_start``, ``pre``,
        ``improvement``).
    norms : SeverityNorms
        The instrument's reference norms.

    Returns
    -------
    tuple
        ``(saes, ci_low, ci_high, n)``: the mean of the clients' values with its 95% t interval
        (NaN with fewer than 2 clients) and the number of clients.

    References
    ----------
    Seidel, J. A., Miller, S. D., & Chow, D. L. (2014). Effect size calculations for the
    clinician: Methods and comparability. Psychotherapy Research, 24(4), 470-484.

    Examples
    --------
    >>> norms = SeverityNorms(intercept=20, slope=-0.6, mean_improvement=8, sd=6, source="x")
    >>> rows = pd.DataFrame({"finished": [True, True], "clinical_start": [True, True],
    ...                      "pre": [15.0, 20.0], "improvement": [12.0, 6.0]})
    >>> round(severity_adjusted_effect_size(rows, norms)[0], 4)  # residuals +1 and -2
    1.25
    """
    base = outcomes[outcomes["finished"] & outcomes["clinical_start"].fillna(False).astype(bool)]
    predicted = norms.intercept + norms.slope * base["pre"]
    values = (norms.mean_improvement + base["improvement"] - predicted) / norms.sd
    return (*mean_interval(values), len(values))


KPI_COLUMNS = [
    "year",
    "group",
    "kpi",
    "numerator",
    "denominator",
    "estimate",
    "ci_low",
    "ci_high",
    "unit",
]


def mean_interval(values: pd.Series) -> tuple[float, float, float]:
    """A mean with its 95% t interval (NaN interval with fewer than 2 values).

    Examples
    --------
    >>> tuple(round(x, 4) for x in mean_interval(pd.Series([1.0, 2.0, 3.0])))
    (2.0, -0.4841, 4.4841)
    """
    values = values.dropna()
    n = len(values)
    mean = float(values.mean()) if n else float("nan")
    if n < 2:
        return mean, float("nan"), float("nan")
    half = float(t_ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half


def _estimate_row(
    year: str,
    group: str,
    kpi: str,
    estimate: tuple[float, float, float],
    unit: str,
    *,
    numerator: float = np.nan,
    denominator: float = np.nan,
) -> dict[str, object]:
    value, low, high = estimate
    return {"year": year, "group": group, "kpi": kpi, "numerator": numerator,
            "denominator": denominator, "estimate": value, "ci_low": low, "ci_high": high,
            "unit": unit}  # fmt: skip


def rate_row(year: str, kpi: str, events: int, n: int, group: str = "all") -> dict[str, object]:
    """A KPI row (:data:`KPI_COLUMNS`) for ``events`` of ``n`` with its Wilson interval."""
    return _estimate_row(year, group, kpi, proportion(events, n), "proportion",
                         numerator=events, denominator=n)  # fmt: skip


def _rate_row(year: str, group: str, kpi: str, flags: pd.Series) -> dict[str, object]:
    flags = flags.dropna().astype(bool)
    return rate_row(year, kpi, int(flags.sum()), len(flags), group)


def outcome_kpis(
    outcomes: pd.DataFrame,
    outcome: str,
    year: str,
    group: str = "all",
    norms: SeverityNorms | None = None,
) -> pd.DataFrame:
    """The outcome KPIs of one year (and group) from :func:`client_outcomes` rows.

    Rows (``kpi``): ``finished`` (count), ``mean_improvement`` (points, t interval),
    ``cohens_d``, ``severity_adjusted_es`` (with ``norms`` only), ``reliable_improvement``,
    ``reliable_deterioration`` (with a reliable-change threshold), ``clinical_start``,
    ``recovery``, ``reliable_recovery`` (with a cut-off) (proportions with Wilson intervals;
    numerator and denominator kept for disclosure control).
    """
    inst = get_instrument(outcome)
    rows = outcomes[outcomes["finished"]]
    n = len(rows)
    result = [
        _estimate_row(year, group, "finished", (n, np.nan, np.nan), "clients", numerator=n),
        _estimate_row(year, group, "mean_improvement", mean_interval(rows["improvement"]),
                      f"{inst.short} points", denominator=n),
        _estimate_row(year, group, "cohens_d", cohens_d(rows["pre"], rows["post"],
                      inst.higher_is_better), "SD of intake", denominator=n),
    ]  # fmt: skip
    if norms is not None:
        *saes, clients = severity_adjusted_effect_size(rows, norms)
        result.append(_estimate_row(year, group, "severity_adjusted_es", tuple(saes),
                                    "reference SD", denominator=clients))  # fmt: skip
    at_start = rows[rows["clinical_start"].fillna(False).astype(bool)]
    for kpi, column, base in (
        ("reliable_improvement", "reliable_improvement", rows),
        ("reliable_deterioration", "reliable_deterioration", rows),
        ("clinical_start", "clinical_start", rows),
        ("recovery", "recovered", at_start),
        ("reliable_recovery", "reliable_recovery", at_start),
    ):
        needs_cutoff = kpi in ("clinical_start", "recovery", "reliable_recovery")
        if column in base and (inst.cutoff is not None or not needs_cutoff):
            result.append(_rate_row(year, group, kpi, base[column]))
    return pd.DataFrame(result, columns=KPI_COLUMNS)


def nhs_talking_therapies(sessions: pd.DataFrame, *, start_month: int = 4) -> pd.DataFrame | None:
    """The NHS Talking Therapies recovery metrics per reporting year, when the data have both
    PHQ-9 and GAD-7 (``None`` otherwise). Definitions: module docstring.

    Rows (``kpi``): ``nhs_finished``, ``nhs_caseness_start``, ``nhs_recovery``,
    ``nhs_reliable_improvement``, ``nhs_reliable_deterioration``, ``nhs_reliable_recovery``.
    """
    if not {"phq9", "gad7"} <= set(sessions.columns):
        return None
    return nhs_recovery(client_outcomes(sessions, "phq9", start_month=start_month),
                        client_outcomes(sessions, "gad7", start_month=start_month))  # fmt: skip


def nhs_recovery(phq: pd.DataFrame, gad: pd.DataFrame) -> pd.DataFrame:
    """:func:`nhs_talking_therapies` from each case's PHQ-9 and GAD-7 outcomes
    (:func:`client_outcomes` of each)."""
    keys = case_keys(phq)
    both = phq.merge(gad[[*keys, "pre", "post", "finished"]], on=keys, suffixes=("_phq", "_gad"))
    finished = both[both["finished_phq"] & both["finished_gad"]]
    phq_change = finished["post_phq"] - finished["pre_phq"]
    gad_change = finished["post_gad"] - finished["pre_gad"]
    phq_rc, gad_rc = get_instrument("phq9").reliable_change, get_instrument("gad7").reliable_change
    improved = ((phq_change <= -phq_rc) & ~(gad_change >= gad_rc)) | (
        (gad_change <= -gad_rc) & ~(phq_change >= phq_rc)
    )
    deteriorated = ((phq_change >= phq_rc) & ~(gad_change <= -gad_rc)) | (
        (gad_change >= gad_rc) & ~(phq_change <= -phq_rc)
    )
    case_start = (finished["pre_phq"] >= 10) | (finished["pre_gad"] >= 8)
    case_end = (finished["post_phq"] >= 10) | (finished["post_gad"] >= 8)
    recovered = case_start & ~case_end
    rows = []
    for year, index in finished.groupby("year").groups.items():
        count = (len(index), np.nan, np.nan)
        rows.append(_estimate_row(year, "all", "nhs_finished", count, "referrals",
                                  numerator=len(index)))  # fmt: skip
        at_case = case_start.loc[index]
        rows.append(_rate_row(year, "all", "nhs_caseness_start", at_case))
        rows.append(_rate_row(year, "all", "nhs_recovery", recovered.loc[index][at_case]))
        rows.append(_rate_row(year, "all", "nhs_reliable_improvement", improved.loc[index]))
        rows.append(_rate_row(year, "all", "nhs_reliable_deterioration", deteriorated.loc[index]))
        rows.append(
            _rate_row(
                year, "all", "nhs_reliable_recovery", (recovered & improved).loc[index][at_case]
            )
        )
    return pd.DataFrame(rows, columns=KPI_COLUMNS)


def session_years(sessions: pd.DataFrame, start_month: int = 4) -> pd.Series:
    """The reporting year each session is dated in (``"all"`` for every session of a dataset
    without dates, the period :func:`client_outcomes` uses then).

    Examples
    --------
    >>> dated = pd.DataFrame({"session_date": pd.to_datetime(["2025-03-31", "2025-04-01"])})
    >>> session_years(dated).tolist()
    ['2024/25', '2025/26']
    """
    if "session_date" not in sessions:
        return pd.Series("all", index=sessions.index)
    return reporting_year(sessions["session_date"], start_month)


def activity(
    clients_seen: int,
    sessions_attended: int,
    outcomes: pd.DataFrame,
    year: str,
    group: str = "all",
) -> pd.DataFrame:
    """Activity KPIs of one year: clients seen and sessions attended in the year (counted over
    the sessions dated in it, :func:`session_years`), and, among episodes ending in the year
    (``outcomes``: :func:`client_outcomes`), sessions per client (median, quartiles), finished
    clients and the completeness of paired data."""
    ended = outcomes[outcomes["ended"] & (outcomes["year"] == year)]
    two_plus = ended[ended["sessions"] >= 2]
    quartiles = (
        ended["sessions"].quantile([0.25, 0.5, 0.75])
        if len(ended)
        else pd.Series([np.nan] * 3, index=[0.25, 0.5, 0.75])
    )
    rows = [
        {"kpi": "clients_seen", "numerator": clients_seen, "unit": "clients"},
        {"kpi": "sessions_attended", "numerator": sessions_attended, "unit": "sessions"},
        {"kpi": "episodes_ended", "numerator": len(ended), "unit": "clients"},
        {
            "kpi": "sessions_per_client_median",
            "numerator": np.nan,
            "denominator": len(ended),
            "estimate": quartiles[0.5],
            "ci_low": quartiles[0.25],
            "ci_high": quartiles[0.75],
            "unit": "sessions",
        },
    ]
    for row in rows[:3]:
        row.update(denominator=np.nan, estimate=row["numerator"], ci_low=np.nan, ci_high=np.nan)
    complete = _rate_row(year, group, "paired_data_completeness", two_plus["finished"])
    table = pd.DataFrame(rows).assign(year=year, group=group)
    return pd.concat([table, pd.DataFrame([complete])], ignore_index=True)[KPI_COLUMNS]


def funnel(flags: pd.DataFrame, unit: str, value: str) -> pd.DataFrame:
    """Per-unit rates with the funnel plot's control limits (Spiegelhalter, 2005).

    Parameters
    ----------
    flags : pandas.DataFrame
        One row per client: ``unit`` (e.g. a therapist code) and a boolean ``value``.

    Returns
    -------
    pandas.DataFrame
        ``unit, n, events, rate`` and, for each limit in :data:`FUNNEL_LIMITS`, the lower and
        upper limits at that unit's n around the overall rate (normal approximation), plus
        ``outside_95`` / ``outside_998`` flags.
    """
    data = flags.dropna(subset=[value])
    overall = data[value].astype(bool).mean()
    flags = data[value].astype(bool).groupby(data[unit])
    table = pd.DataFrame({"n": flags.size(), "events": flags.sum().astype(int)}).rename_axis(unit)
    table["rate"] = table["events"] / table["n"]
    for level in FUNNEL_LIMITS:
        z = norm_ppf(0.5 + level / 2)
        half = z * np.sqrt(overall * (1 - overall) / table["n"])
        tag = str(level).replace("0.", "").replace(".", "")
        table[f"low_{tag}"] = (overall - half).clip(lower=0)
        table[f"high_{tag}"] = (overall + half).clip(upper=1)
        table[f"outside_{tag}"] = (table["rate"] < table[f"low_{tag}"]) | (
            table["rate"] > table[f"high_{tag}"]
        )
    table.attrs["overall"] = overall
    return table.reset_index()


def session_bands(sessions_per_client: pd.Series) -> pd.Series:
    """Clients per band of sessions attended (:data:`SESSION_BANDS`), every band listed.

    Examples
    --------
    >>> session_bands(pd.Series([1, 2, 2, 4, 12])).tolist()
    [1, 2, 1, 0, 1]
    """
    counts = {}
    for low, high in SESSION_BANDS:
        label = str(low) if low == high else (f"{low}-{high}" if high else f"{low} or more")
        upper = np.inf if high is None else high
        counts[label] = int(sessions_per_client.between(low, upper).sum())
    return pd.Series(counts, name="clients")
