"""Dropout risk after each session: a discrete-time survival model, checked out of sample.

After every attended session a case can end without plan (a dropout). The model is the
discrete-time hazard of that event (Singer & Willett, 2003, ch. 10-11): a logistic regression
over *person-periods*, one row per session at which the case was at risk,

``event ~ alliance_first + alliance_change + outcome_change + session``

with standard errors clustered by therapist (:func:`allianceanalysis.models.clustered_logit`).
``alliance_first`` is the case's first alliance rating (the early alliance; missing until it
is given), ``alliance_change`` the current rating minus that first one, ``outcome_change`` the
current outcome minus the intake (session 1) outcome, and ``session`` the session number. A
case's last session is a row only when the case then dropped out (``event`` = 1): after a
planned ending it was not at risk, and an ongoing or unknown ending is censored there.

How well the model would have warned is measured out of sample: therapists are split into
``folds`` groups (a seeded permutation), the model is fitted without each group and predicts
its person-periods, and the held-out predictions give the area under the ROC curve, the Brier
score, the calibration slope and intercept (Steyerberg, 2019) and a calibration table by
tenths of predicted risk. Splitting by therapist keeps a therapist's clients out of their own
model: a new therapist's clients are what a service will score.

References
----------
Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis. Oxford University
Press.
Steyerberg, E. W. (2019). Clinical prediction models (2nd ed.). Springer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from . import tidy
from .derive import CaseOrder
from .distributions import norm_ppf
from .effects import proportion
from .errors import NotEstimable
from .models import DEFAULT_SEED, clustered_logit
from .tidy import TIDY_COLUMNS

__all__ = [
    "DEFAULT_FOLDS",
    "RISK_PREDICTORS",
    "area_under_curve",
    "auc_interval",
    "calibration_table",
    "cross_validated_risk",
    "dropout_risk",
    "person_periods",
    "risk_table",
    "therapist_folds",
]

RISK_PREDICTORS = ["alliance_first", "alliance_change", "outcome_change", "session"]
DEFAULT_FOLDS = 5


def person_periods(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str = "srs",
    carry: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per attended session at which the case was at risk of dropping out after it.

    ``carry`` names further columns of the sessions to keep, at each row's session (a custom
    model's variables, :mod:`allianceanalysis.custom_models`).

    Returns
    -------
    pandas.DataFrame
        The case keys, ``therapist_id``, ``session``, :data:`RISK_PREDICTORS` and ``event`` (1
        when the case dropped out after this session). Rows with a missing predictor are kept
        (the model leaves them out).

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 3 + ["b"] * 2, "therapist_id": "t",
    ...                   "session": [1, 2, 3, 1, 2], "ors": [20.0, 22.0, 25.0, 18.0, 17.0],
    ...                   "srs": [30.0, 33.0, 35.0, 28.0, 26.0],
    ...                   "end_status": ["planned"] * 3 + ["dropout"] * 2})
    >>> person_periods(s)[["client_id", "session", "alliance_change", "event"]]
      client_id  session  alliance_change  event
    0         a        1              0.0      0
    1         a        2              3.0      0
    2         b        1              0.0      0
    3         b        2             -2.0      1
    """
    ordered = CaseOrder(sessions)
    rows, case = ordered.frame, ordered.case
    session = rows["session"].to_numpy()
    first_rating = ordered.first_where(rows[alliance].notna().to_numpy())
    first_value = ordered.take(alliance, first_rating).to_numpy(dtype=float)
    first_session = np.where(first_rating >= 0, session[first_rating], np.iinfo("int64").max)
    kept = [c for c in dict.fromkeys(carry) if c not in (*ordered.keys, "therapist_id", "session")]
    periods = rows[[*ordered.keys, "therapist_id", "session", *kept]].copy()
    known = session >= first_session[case]
    periods["alliance_first"] = np.where(known, first_value[case], np.nan)
    periods["alliance_change"] = rows[alliance].to_numpy() - periods["alliance_first"].to_numpy()
    intake = ordered.at_session(outcome, 1).to_numpy(dtype=float)
    periods["outcome_change"] = rows[outcome].to_numpy() - intake[case]
    last = ~ordered.same_case_next()
    status = rows["end_status"] if "end_status" in rows else pd.Series("", index=rows.index)
    dropped = (status == "dropout").to_numpy()
    periods["event"] = (last & dropped).astype("int64")
    return periods[~last | dropped].reset_index(drop=True)


def therapist_folds(therapists: pd.Series, folds: int = DEFAULT_FOLDS, seed: int = 0) -> np.ndarray:
    """The cross-validation fold (0 … ``folds`` − 1) of each row, by its therapist: therapists
    in a seeded random order, dealt to the folds in turn.

    Examples
    --------
    >>> f = therapist_folds(pd.Series(["t1", "t2", "t1", "t3"]), folds=3, seed=1)
    >>> bool(f[0] == f[2]), sorted(set(f.tolist()))
    (True, [0, 1, 2])
    """
    codes, distinct = pd.factorize(therapists)
    order = np.random.default_rng(seed).permutation(len(distinct))
    fold_of = np.empty(len(distinct), dtype="int64")
    fold_of[order] = np.arange(len(distinct)) % folds
    return fold_of[codes]


def cross_validated_risk(
    periods: pd.DataFrame, folds: int = DEFAULT_FOLDS, seed: int = 0
) -> pd.DataFrame:
    """Held-out predicted risks: each fold's person-periods scored by the model fitted to the
    other folds (:func:`therapist_folds`). Complete rows only; columns ``event``, ``risk``,
    ``fold`` and ``therapist`` (an integer code); no rows when no fold's training part holds
    both kinds of ending (no dropout at all, for one)."""
    import statsmodels.api as sm

    data = periods.dropna(subset=RISK_PREDICTORS).reset_index(drop=True)
    fold = therapist_folds(data["therapist_id"], folds, seed)
    values = data[RISK_PREDICTORS].to_numpy(dtype=float)
    exog = np.column_stack([np.ones(len(data)), values])  # add_constant fails on no rows
    event = data["event"].to_numpy(dtype=float)
    risk = np.full(len(data), np.nan)
    for k in range(folds):  # a handful of folds, each a vectorised fit
        test = fold == k
        if test.any() and len(np.unique(event[~test])) == 2:
            fit = sm.Logit(event[~test], exog[~test]).fit(disp=0)
            risk[test] = fit.predict(exog[test])
    therapist = pd.factorize(data["therapist_id"])[0]
    held_out = pd.DataFrame({"event": event, "risk": risk, "fold": fold, "therapist": therapist})
    return held_out.dropna()


def area_under_curve(event: np.ndarray, risk: np.ndarray) -> float:
    """The area under the ROC curve: the probability that a random event has a higher risk than
    a random non-event, ties counting half (the Mann–Whitney statistic over n₁n₀).

    Examples
    --------
    >>> area_under_curve(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    event = np.asarray(event, dtype=bool)
    ranks = pd.Series(risk).rank().to_numpy()
    n1, n0 = int(event.sum()), int((~event).sum())
    if not n1 or not n0:
        return float("nan")
    return float((ranks[event].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_interval(
    event: np.ndarray, risk: np.ndarray, cluster: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """The standard error of the AUC when observations come in clusters, and its interval.

    Obuchowski's (1997) nonparametric estimator: each event's placement value (the share of
    non-events it outranks, ties half) and each non-event's (the share of events that outrank
    it) are summed per cluster, and the variance of the AUC follows from the clusters' sums
    (DeLong et al., 1988, when every cluster holds one observation). A client's person-periods
    share a therapist, so the clusters are therapists. The interval is Wald on the logit
    scale, which keeps it inside 0 to 1.

    Returns
    -------
    tuple of float
        ``(std_error, ci_low, ci_high)``; missing with fewer than two clusters or without both
        events and non-events.

    References
    ----------
    DeLong, E. R., DeLong, D. M., & Clarke-Pearson, D. L. (1988). Comparing the areas under
    two or more correlated receiver operating characteristic curves. Biometrics, 44, 837-845.
    Obuchowski, N. A. (1997). Nonparametric analysis of clustered ROC curve data. Biometrics,
    53(2), 567-578.

    Examples
    --------
    >>> e = np.array([0, 0, 1, 1, 0, 1])
    >>> r = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.6])
    >>> se, low, high = auc_interval(e, r, np.array([0, 0, 1, 1, 2, 2]))
    >>> bool(low < area_under_curve(e, r) < high)
    True
    """
    event = np.asarray(event, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    codes, clusters = pd.factorize(np.asarray(cluster))
    events, others = risk[event], np.sort(risk[~event])
    m, n = len(events), len(others)
    if not m or not n or len(clusters) < 2:
        return (np.nan, np.nan, np.nan)
    v10 = _placement(events, others)  # each event's share of non-events it outranks
    v01 = 1.0 - _placement(risk[~event], np.sort(events))  # of events outranking a non-event
    auc = v10.mean()
    k = len(clusters)

    def centred(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per cluster: the sum of ``values`` minus the AUC times their count."""
        return np.bincount(codes[rows], weights=values - auc, minlength=k)

    per, per0 = centred(event, v10), centred(~event, v01)
    factor = k / (k - 1)
    s10 = factor * np.sum(per**2) / m
    s01 = factor * np.sum(per0**2) / n
    s11 = factor * np.sum(per * per0)
    se = float(np.sqrt(s10 / m + s01 / n + 2 * s11 / (m * n)))
    z = norm_ppf(0.5 + level / 2)
    centre, half = special.logit(auc), z * se / (auc * (1 - auc))
    return se, float(special.expit(centre - half)), float(special.expit(centre + half))


def _placement(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The share of the sorted ``reference`` below each value, ties counting half."""
    below = np.searchsorted(reference, values, side="left")
    tied = np.searchsorted(reference, values, side="right") - below
    return (below + 0.5 * tied) / len(reference)


def calibration_table(held_out: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Mean predicted risk against the observed rate (95% Wilson interval) in tenths (or
    ``bins``) of predicted risk: the points of a calibration plot (fewer bands when risks tie).

    Examples
    --------
    >>> h = pd.DataFrame({"event": [0, 1, 0, 1], "risk": [0.2, 0.2, 0.6, 0.6]})
    >>> calibration_table(h, bins=2)[["band", "predicted", "events", "n"]].to_numpy().tolist()
    [[0.0, 0.2, 1.0, 2.0], [1.0, 0.6, 1.0, 2.0]]
    """
    if held_out.empty:
        raise NotEstimable("no held-out predictions to calibrate")
    band = pd.qcut(held_out["risk"], bins, labels=False, duplicates="drop")
    grouped = held_out.groupby(band)
    table = grouped.agg(predicted=("risk", "mean"), events=("event", "sum"),
                        n=("event", "size")).reset_index(names="band")  # fmt: skip
    intervals = [proportion(int(e), int(n)) for e, n in zip(table["events"], table["n"],
                                                             strict=True)]  # fmt: skip
    columns = ["observed", "ci_low", "ci_high"]
    return table.join(pd.DataFrame(intervals, columns=columns, index=table.index))


def _calibration(held_out: pd.DataFrame) -> tuple[float, float]:
    """Calibration slope and intercept: the logistic regression of the event on the logit of
    the held-out risk (1 and 0 when the predictions are calibrated)."""
    import statsmodels.api as sm

    logit = special.logit(np.clip(held_out["risk"].to_numpy(), 1e-12, 1 - 1e-12))
    fit = sm.Logit(held_out["event"].to_numpy(), sm.add_constant(logit)).fit(disp=0)
    return float(fit.params[1]), float(fit.params[0])


def dropout_risk(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str = "srs",
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """The dropout-risk model and how well it predicts out of sample, as a tidy table.

    Rows: the coefficients of :data:`RISK_PREDICTORS` (log-odds per unit, therapist-clustered
    standard errors) and their odds ratios; ``auc_cv`` (with its interval,
    :func:`auc_interval`), ``brier_cv``, ``calibration_slope_cv`` and
    ``calibration_intercept_cv`` from the held-out predictions of :func:`cross_validated_risk`,
    whose ``n_obs`` is the number of person-periods scored.
    """
    periods = person_periods(sessions, outcome, alliance)
    return risk_table(periods, cross_validated_risk(periods, folds, seed), folds)


def risk_table(periods: pd.DataFrame, held_out: pd.DataFrame, folds: int) -> pd.DataFrame:
    """:func:`dropout_risk`'s table from its person-periods and their held-out risks (so that a
    caller who also wants the calibration table cross-validates once)."""
    model = "dropout_risk"
    rows, result = clustered_logit(model, periods, "event", RISK_PREDICTORS, "therapist_id")
    if result is None:
        return tidy.frame(rows)[TIDY_COLUMNS]
    if held_out.empty:
        raise NotEstimable(
            "no held-out predictions: cross-validation by therapist was not possible"
        )
    event, risk = held_out["event"].to_numpy(), held_out["risk"].to_numpy()
    slope, intercept = _calibration(held_out)
    common = {"n_obs": len(held_out), "n_groups": periods["therapist_id"].nunique(),
              "ci_method": f"{folds}-fold cross-validation by therapist"}  # fmt: skip
    se, low, high = auc_interval(event, risk, held_out["therapist"].to_numpy())
    interval = f"{common['ci_method']}; interval clustered by therapist (Obuchowski, 1997)"
    auc = tidy.row(model, "auc_cv", area_under_curve(event, risk), std_error=se, ci_low=low,
               ci_high=high, **{**common, "ci_method": interval})  # fmt: skip
    rows += [
        auc,
        tidy.row(model, "brier_cv", float(np.mean((risk - event) ** 2)), **common),
        tidy.row(model, "calibration_slope_cv", slope, **common),
        tidy.row(model, "calibration_intercept_cv", intercept, **common),
    ]
    return tidy.frame(rows)[TIDY_COLUMNS]
