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

import functools
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import special

from . import tidy
from .derive import CaseOrder
from .distributions import norm_ppf
from .effects import proportion
from .errors import NotEstimable
from .logit import LogitFit, LogitRows, fit_logits
from .models import DEFAULT_SEED, _logit_rows, _nothing_to_fit
from .shards import ShardedTable, Spilled, frames, release_memory
from .tidy import TIDY_COLUMNS

__all__ = [
    "CALIBRATION_COLUMNS",
    "DEFAULT_FOLDS",
    "RISK_PREDICTORS",
    "RiskRows",
    "area_under_curve",
    "auc_interval",
    "calibration_table",
    "cross_validated_risk",
    "dropout_risk",
    "person_periods",
    "risk_analyses",
    "risk_table",
    "therapist_folds",
]

RISK_PREDICTORS = ["alliance_first", "alliance_change", "outcome_change", "session"]
CALIBRATION_COLUMNS = ["band", "predicted", "events", "n", "observed", "ci_low", "ci_high"]
"""The columns of :func:`calibration_table` (also of an empty one: nothing to calibrate)."""
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
    in their codes' sorted order, permuted by ``seed``, dealt to the folds in turn (so the
    folds do not depend on the order of the rows, nor on how they are split into shards).

    Examples
    --------
    >>> f = therapist_folds(pd.Series(["t1", "t2", "t1", "t3"]), folds=3, seed=1)
    >>> bool(f[0] == f[2]), sorted(set(f.tolist()))
    (True, [0, 1, 2])
    """
    codes, distinct = pd.factorize(therapists, sort=True)
    return _fold_of(len(distinct), folds, seed)[codes]


def _fold_of(therapists: int, folds: int, seed: int) -> np.ndarray:
    """The fold of each of ``therapists`` (in their sorted order)."""
    order = np.random.default_rng(seed).permutation(therapists)
    fold_of = np.empty(therapists, dtype="int64")
    fold_of[order] = np.arange(therapists) % folds
    return fold_of


class RiskRows:
    """The dropout-risk model's complete person-periods as numbers, made piece by piece and
    kept (in memory for one piece, on disk for shards,
    :class:`~allianceanalysis.shards.Spilled`): :data:`RISK_PREDICTORS`, ``event``,
    ``therapist`` (a code in the therapists' sorted order; rows without one share a code of
    their own) and ``fold`` (:func:`therapist_folds`).

    Parameters
    ----------
    periods : iterable of pandas.DataFrame
        :func:`person_periods` of each piece of the sessions (no case in two pieces).
    folds, seed : int
        The cross-validation folds and their seed.
    on_disk : bool
        Keep the pieces on disk (remove them with :meth:`close`).

    Attributes
    ----------
    therapists : numpy.ndarray
        The therapists of the complete rows, sorted.
    n_groups : int
        Therapists among all person-periods, complete or not.
    n_obs, events : int
        Complete rows, and their events.
    """

    def __init__(
        self, periods: Iterable[pd.DataFrame], folds: int, seed: int, on_disk: bool = False
    ) -> None:
        self.folds = folds
        everyone: set = set()
        complete: set = set()
        with Spilled(on_disk) as raw:
            for piece in periods:
                everyone.update(piece["therapist_id"].dropna().unique())
                data = piece.dropna(subset=RISK_PREDICTORS)
                complete.update(data["therapist_id"].dropna().unique())
                raw.add(data[["therapist_id", *RISK_PREDICTORS, "event"]].reset_index(drop=True))
                del piece, data
            self.therapists = np.array(sorted(complete), dtype=object)
            self.n_groups = len(everyone)
            fold_of = _fold_of(len(self.therapists) + 1, folds, seed)  # the last: no therapist
            self.kept = Spilled(on_disk)
            self.per_fold = np.zeros((folds, 2), dtype="int64")  # rows and events per fold
            self.missing_therapist = False
            for read in raw.pieces():
                data = read(None)
                code = pd.Categorical(data["therapist_id"], categories=self.therapists).codes
                code = np.where(code < 0, len(self.therapists), code).astype("int64")
                self.missing_therapist |= bool((code == len(self.therapists)).any())
                fold = fold_of[code]
                event = data["event"].to_numpy(dtype="int64")
                np.add.at(self.per_fold, (fold, 0), 1)
                np.add.at(self.per_fold, (fold, 1), event)
                numbers = data[RISK_PREDICTORS].astype(float)
                # narrow codes: the held-out table has one row per person-period (57M at 10M)
                self.kept.add(numbers.assign(event=event.astype(np.int8),
                                             therapist=code.astype(np.int32),
                                             fold=fold.astype(np.int16)))  # fmt: skip
        self.n_obs, self.events = (int(v) for v in self.per_fold.sum(axis=0))

    @classmethod
    def of_sessions(
        cls,
        sessions: pd.DataFrame | ShardedTable,
        outcome: str = "ors",
        alliance: str = "srs",
        folds: int = DEFAULT_FOLDS,
        seed: int = 0,
    ) -> RiskRows:
        """The rows of sessions given whole or in shards, one shard in memory at a time."""
        columns = ["client_id", "episode_id", "therapist_id", "session", "end_status", alliance,
                   outcome]  # fmt: skip
        periods = (person_periods(f, outcome, alliance) for f in frames(sessions, columns))
        return cls(periods, folds, seed, on_disk=not isinstance(sessions, pd.DataFrame))

    @property
    def clusters(self) -> int:
        """The number of therapist codes (the therapists, and one for rows without)."""
        return len(self.therapists) + int(self.missing_therapist)

    def pieces(self) -> list:
        """One callable per piece, giving its :class:`~allianceanalysis.logit.LogitRows`."""

        def rows(read) -> LogitRows:
            data = read(None)
            exog = np.empty((len(data), len(RISK_PREDICTORS) + 1))
            exog[:, 0] = 1.0
            for j, name in enumerate(RISK_PREDICTORS, start=1):
                exog[:, j] = data[name].to_numpy()
            return LogitRows(exog, data["event"].to_numpy(dtype=float),
                             data["fold"].to_numpy(), data["therapist"].to_numpy())  # fmt: skip

        return [lambda read=read: rows(read) for read in self.kept.pieces()]

    def close(self) -> None:
        """Remove the pieces kept on disk."""
        self.kept.close()


def _rows(periods: pd.DataFrame | RiskRows, folds: int, seed: int) -> RiskRows:
    return periods if isinstance(periods, RiskRows) else RiskRows([periods], folds, seed)


def cross_validated_risk(
    periods: pd.DataFrame | RiskRows,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    *,
    start: np.ndarray | None = None,
) -> pd.DataFrame:
    """Held-out predicted risks: each fold's person-periods scored by the model fitted to the
    other folds (:func:`therapist_folds`; :func:`~allianceanalysis.logit.fit_logits`, all
    folds' models in the same passes over the rows). Complete rows only; columns ``event``,
    ``risk``, ``fold`` and ``therapist`` (an integer code); no rows when no fold's training
    part holds both kinds of ending (no dropout at all, for one). ``periods`` is
    :func:`person_periods`' table, or its :class:`RiskRows` (then ``folds`` and ``seed`` are
    theirs). ``start``: the folds' models' first coefficients, such as the model of all rows'
    (:func:`~allianceanalysis.logit.fit_logits`)."""
    rows = _rows(periods, folds, seed)
    n, events = rows.per_fold[:, 0], rows.per_fold[:, 1]
    train_n, train_events = rows.n_obs - n, rows.events - events
    models = [k for k in range(rows.folds) if n[k] and 0 < train_events[k] < train_n[k]]
    fitted = fit_logits(rows.pieces(), models, start=start) if models else []
    fits = dict(zip(models, fitted, strict=True))
    parts: dict[str, list[np.ndarray]] = {"event": [], "risk": [], "fold": [], "therapist": []}
    for piece in rows.pieces():
        data = piece()
        risk = np.full(len(data.endog), np.nan)
        for k, fit in fits.items():
            test = data.fold == k
            risk[test] = special.expit(data.exog[test] @ fit.params)
        scored = ~np.isnan(risk)  # a fold without a model has no held-out risks
        for name, values in (("event", data.endog.astype(np.int8)), ("risk", risk),
                             ("fold", data.fold), ("therapist", data.cluster)):  # fmt: skip
            parts[name].append(values[scored])
        del data, risk
    # one column at a time, in narrow types: at 10M clients, 57M held-out rows in 0.9 GB
    held_out = pd.DataFrame({name: np.concatenate(values) if values else np.array([])
                             for name, values in parts.items()})  # fmt: skip
    del parts
    release_memory()  # the pieces' freed memory (another gigabyte at 10M) goes back
    return held_out


RISK_DECIMALS = 12
"""Decimals to which held-out risks are compared for the AUC and its interval: risks closer
than 1e-12 are ties. Below that their order is rounding in the fitted coefficients, which
depends on the order the sums were added in: between the same rows whole and in two shards
(60,000 simulated clients) it swapped a few near-equal pairs and moved the AUC by 1e-9 and its
standard error by 1e-8, relative, with the coefficients equal to 1e-15."""


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
    return _auc_and_interval(event, risk, cluster, level)[1:]


def _auc_and_interval(
    event: np.ndarray, risk: np.ndarray, cluster: np.ndarray, level: float = 0.95
) -> tuple[float, float, float, float]:
    """:func:`area_under_curve` (the mean of the events' placement values, without ranking
    every risk: at 10M clients the ranks of 57M risks took 2.5 GB) and :func:`auc_interval`."""
    event = np.asarray(event, dtype=bool)
    risk = np.asarray(risk, dtype=float)
    m, n = int(event.sum()), int((~event).sum())
    if not m or not n:
        return (np.nan, np.nan, np.nan, np.nan)
    v10, v01 = _placements(event, risk)
    auc = float(v10.mean())
    codes, present = _cluster_codes(np.asarray(cluster))
    k = int(present.sum())
    if k < 2:
        return (auc, np.nan, np.nan, np.nan)

    def centred(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per cluster: the sum of ``values`` minus the AUC times their count."""
        return np.bincount(codes[rows], weights=values - auc, minlength=len(present))[present]

    per, per0 = centred(event, v10), centred(~event, v01)
    factor = k / (k - 1)
    s10 = factor * np.sum(per**2) / m
    s01 = factor * np.sum(per0**2) / n
    s11 = factor * np.sum(per * per0)
    se = float(np.sqrt(s10 / m + s01 / n + 2 * s11 / (m * n)))
    z = norm_ppf(0.5 + level / 2)
    centre, half = special.logit(auc), z * se / (auc * (1 - auc))
    return auc, se, float(special.expit(centre - half)), float(special.expit(centre + half))


def _cluster_codes(cluster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each observation's cluster code and, per code, whether any observation has it:
    non-negative integer labels (the held-out rows' therapist codes) are their own codes (a
    factorisation of 57M of them makes 0.46 GB of int64 codes), other labels are factorised."""
    if cluster.dtype.kind in "iu" and len(cluster) and cluster.min() >= 0:
        return cluster, np.bincount(cluster) > 0
    codes, clusters = pd.factorize(cluster)
    return codes, np.ones(len(clusters), dtype=bool)


def _placements(event: np.ndarray, risk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each event's share of the non-events it outranks, and each non-event's share of the
    events that outrank it (ties counting half), in the order of the events and of the
    non-events: binary searches among the other kind's sorted risks.

    Both kinds are searched for in sorted order, so that each search starts where the last
    one ended. In random order every step missed the cache: at 10M clients (60 million
    person-periods) the searches took 55 s of 60, against a few seconds for the sorts."""
    events, others = risk[event], risk[~event]
    by_event, by_other = np.argsort(events), np.argsort(others)
    events, others = events[by_event], others[by_other]
    return (_shares(events, others, by_event),
            _shares(others, events, by_other, outranking=True))  # fmt: skip


_SEARCHED = 1 << 22
"""Values searched for at a time by :func:`_shares` (their two positions each: 64 MB)."""


def _shares(
    values: np.ndarray, reference: np.ndarray, positions: np.ndarray, outranking: bool = False
) -> np.ndarray:
    """The share of the sorted ``reference`` below each of the sorted ``values``, ties
    counting half (one minus it, the share above, when ``outranking``), put at the values'
    ``positions``."""
    shares = np.empty(len(values))
    for start in range(0, len(values), _SEARCHED):
        part = values[start : start + _SEARCHED]
        below = np.searchsorted(reference, part, side="left")
        tied = np.searchsorted(reference, part, side="right") - below
        share = (below + 0.5 * tied) / len(reference)
        shares[positions[start : start + _SEARCHED]] = 1.0 - share if outranking else share
    return shares


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
    risk, event = held_out["risk"].to_numpy(), held_out["event"].to_numpy()

    def rows(start: int) -> LogitRows:
        part = slice(start, start + _CALIBRATED)
        logit = special.logit(np.clip(risk[part], 1e-12, 1 - 1e-12))
        return LogitRows(np.column_stack([np.ones(len(logit)), logit]),
                         event[part].astype(float))  # fmt: skip

    starts = range(0, max(len(risk), 1), _CALIBRATED)
    fit = fit_logits([functools.partial(rows, start) for start in starts])[0]
    return float(fit.params[1]), float(fit.params[0])


_CALIBRATED = 1 << 22
"""Held-out risks in each piece of the calibration fit (its design: 64 MB), so that the
fit's rows are never all held at once (57M at 10M clients: the fit took 2.0 GB above the
held-out table)."""


def dropout_risk(
    sessions: pd.DataFrame | ShardedTable,
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
    whose ``n_obs`` is the number of person-periods scored. ``sessions`` may be given in
    shards (:class:`~allianceanalysis.shards.ShardedTable`).
    """
    return risk_analyses(sessions, outcome, alliance, folds=folds, seed=seed)[0]


def risk_analyses(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    alliance: str = "srs",
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = DEFAULT_SEED,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`dropout_risk`'s table and the calibration plot's points
    (:func:`calibration_table`; no rows when there is nothing to calibrate), from sessions
    given whole or in shards: the person-periods are made shard by shard and kept as numbers
    (:class:`RiskRows`), and every logistic regression is fitted from sums over them
    (:func:`~allianceanalysis.logit.fit_logits`), so only the held-out risks are held whole.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=600, n_therapists=30, seed=4).sessions
    >>> table, points = risk_analyses(s)
    >>> "auc_cv" in set(table["term"]), len(points)
    (True, 10)
    """
    rows = RiskRows.of_sessions(sessions, outcome, alliance, folds, seed)
    try:
        whole = _whole_fit(rows)
        start = whole.params if whole is not None and whole.converged else None
        held_out = cross_validated_risk(rows, start=start)
        points = pd.DataFrame(columns=CALIBRATION_COLUMNS)
        if len(held_out):
            points = calibration_table(held_out)
        table = tidy.or_reason("dropout_risk", lambda: risk_table(rows, held_out, folds, whole))
        return table, points
    finally:
        rows.close()


def _whole_fit(rows: RiskRows) -> LogitFit | None:
    """The risk model of all complete rows (therapist-clustered CR1 covariance), or None when
    the rows cannot support it: one kind of ending, or fewer than two therapists."""
    if not 0 < rows.events < rows.n_obs or len(rows.therapists) < 2:
        return None
    return fit_logits(rows.pieces(), [None], clusters=rows.clusters)[0]


def _risk_model(
    model: str, rows: RiskRows, whole: LogitFit | None = None
) -> tuple[list[dict[str, object]], bool]:
    """The coefficient rows of the risk model over all complete rows (therapist-clustered CR1
    standard errors; ``whole``, its fit if made already), and whether it was fitted."""
    fit = whole if whole is not None else _whole_fit(rows)
    if fit is None:
        return _nothing_to_fit(model, RISK_PREDICTORS, rows.n_obs), False
    se = (np.sqrt(np.diag(fit.covariance)) if fit.covariance is not None
          else np.full(len(fit.params), np.nan))  # fmt: skip
    common = {"n_obs": rows.n_obs, "n_groups": len(rows.therapists),
              "converged": fit.converged, "message": fit.message,
              "ci_method": "wald_z_cluster"}  # fmt: skip
    return _logit_rows(model, ["Intercept", *RISK_PREDICTORS], fit.params, se, **common), True


def risk_table(
    periods: pd.DataFrame | RiskRows,
    held_out: pd.DataFrame,
    folds: int,
    whole: LogitFit | None = None,
) -> pd.DataFrame:
    """:func:`dropout_risk`'s table from its person-periods (or their :class:`RiskRows`) and
    their held-out risks (so that a caller who also wants the calibration table
    cross-validates once); ``whole``, the model of all rows if fitted already."""
    model = "dropout_risk"
    rows = _rows(periods, folds, DEFAULT_SEED)
    coefficients, fitted = _risk_model(model, rows, whole)
    if not fitted:
        return tidy.frame(coefficients)[TIDY_COLUMNS]
    if held_out.empty:
        raise NotEstimable(
            "no held-out predictions: cross-validation by therapist was not possible"
        )
    event, risk = held_out["event"].to_numpy(), held_out["risk"].to_numpy()
    ranked = np.round(risk, RISK_DECIMALS)  # closer risks are ties (RISK_DECIMALS)
    slope, intercept = _calibration(held_out)
    common = {"n_obs": len(held_out), "n_groups": rows.n_groups,
              "ci_method": f"{folds}-fold cross-validation by therapist"}  # fmt: skip
    area, se, low, high = _auc_and_interval(event, ranked, held_out["therapist"].to_numpy())
    del ranked
    interval = f"{common['ci_method']}; interval clustered by therapist (Obuchowski, 1997)"
    auc = tidy.row(model, "auc_cv", area, std_error=se, ci_low=low, ci_high=high,
                   **{**common, "ci_method": interval})  # fmt: skip
    rows_out = [
        *coefficients,
        auc,
        tidy.row(model, "brier_cv", float(np.mean((risk - event) ** 2)), **common),
        tidy.row(model, "calibration_slope_cv", slope, **common),
        tidy.row(model, "calibration_intercept_cv", intercept, **common),
    ]
    return tidy.frame(rows_out)[TIDY_COLUMNS]
