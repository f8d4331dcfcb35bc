"""Alliance ruptures and their repair, detected in session-by-session alliance ratings.

A *rupture* is a drop in the alliance rating from one rated session of a case to its next rated
session of at least a reliable-change threshold (Jacobson & Truax, 1991): a fall larger than
measurement error alone makes likely (Safran & Muran, 2000; Eubanks, Muran & Safran, 2018). It is
*repaired* when a rating within the next ``repair_within`` rated sessions returns to the rating
before the drop, the V of Stiles et al. (2004), and *unrepaired* otherwise. When the case has
fewer rated sessions left than the window and none of them returns, the repair window is
incomplete (``window_complete`` is false): the case ended or the data end first.

The threshold is the reliable-change criterion for a difference of two ratings,
``1.96 · √2 · SD · √(1 − r)``, with ``SD`` the standard deviation of the cases' first alliance
ratings in the data and ``r`` the instrument's test–retest reliability
(:data:`RETEST_RELIABILITY`), unless a threshold in points is given.

Outcome and dropout on rupture
------------------------------
Comparing cases by their rupture status (none / repaired / unrepaired) is biased by exposure:
a case seen for more sessions has more chances both to rupture and to improve, and a case that
drops out has no chance to repair. The two models therefore use the *first* rupture as a
time-varying state of each session (:func:`rupture_states`), with therapist random effects:

- :func:`rupture_outcome`: the outcome at each session compared within the case before and
  after its first rupture (``rupture_open`` between a rupture and its repair,
  ``rupture_repaired`` from the repair on, ``rupture_unrepaired`` after a rupture that was
  never repaired), net of the average course of change, with clients nested in therapists;
- :func:`rupture_dropout`: the discrete-time hazard of dropping out after a session
  (:mod:`allianceanalysis.dropout_risk`'s person-periods) while a rupture is unresolved
  (``rupture_unresolved``, from the rupture session until the return) or after it was repaired
  (``rupture_repaired``), using only what was known at that session.

References
----------
Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A meta-analysis.
Psychotherapy, 55(4), 508-519.
Howard, K. I., Kopta, S. M., Krause, M. S., & Orlinsky, D. E. (1986). The dose-effect
relationship in psychotherapy. American Psychologist, 41(2), 159-164.
Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to defining
meaningful change in psychotherapy research. Journal of Consulting and Clinical Psychology,
59(1), 12-19.
Safran, J. D., & Muran, J. C. (2000). Negotiating the therapeutic alliance. Guilford.
Stiles, W. B., et al. (2004). Patterns of alliance development and the rupture-repair
hypothesis. Journal of Counseling Psychology, 51(1), 81-92.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import tidy
from .derive import CaseOrder, case_keys, key_codes, rupture_windows
from .dropout_risk import person_periods
from .effects import proportion
from .engine import DEFAULT_ENGINE, fit_lmm_pieces
from .errors import NotEstimable
from .instruments import get_instrument
from .models import binomial_counts, therapist_logit, tidy_fit
from .shards import ShardedTable, Spilled, frames, release_memory
from .sums import exact_std
from .tidy import TIDY_COLUMNS

__all__ = [
    "DEFAULT_REPAIR_WITHIN",
    "RETEST_RELIABILITY",
    "RuptureCounts",
    "case_ruptures",
    "detect_ruptures",
    "reliable_drop",
    "rupture_analyses",
    "rupture_dropout",
    "rupture_outcome",
    "rupture_sequences",
    "rupture_states",
    "rupture_table",
]

RETEST_RELIABILITY = {
    "srs": (
        0.54,
        "The Psychometric Properties of the Session Rating Scale: A Narrative Review. Journal "
        "of Evidence-Based Social Work (2020), doi:10.1080/26408066.2020.1729281: test-retest "
        "estimates of .54 to .70 in four studies; the lowest is used, so that a drop counts "
        "only if it is reliable under the least favourable published estimate.",
    ),
}
"""Test–retest reliability of an alliance instrument, with its source: the ``r`` of the default
rupture threshold. Instruments without one need a threshold in points."""

DEFAULT_REPAIR_WITHIN = 3
"""Rated sessions after a rupture within which a return to the pre-rupture rating counts as
repair (the V-shaped sequences of Stiles et al., 2004, recover within a few sessions)."""

COURSE_TERMS = ("log_session", "log_session_2", "log_session_3")
"""The average course of change in the rupture-outcome model: a cubic polynomial in the log of
the session number, flexible enough not to impose a shape (fast early change that slows,
Howard et al., 1986; in simulations it gave the same rupture effects as session number as a
factor, to 0.02 points) with three columns instead of one per session: the mixed model's
per-group sums grow with the square of the columns, which at a million clients is gigabytes."""

_Z = 1.959963984540054
_BEFORE, _AFTER = 2, 3
"""Rated sessions shown before and after a rupture in the rupture figure's sequences."""


def _first_ratings(sessions: pd.DataFrame, alliance: str) -> np.ndarray:
    """Each case's first rating of ``alliance``."""
    rated = sessions.dropna(subset=[alliance]).sort_values("session", kind="stable")
    return rated.drop_duplicates(case_keys(rated))[alliance].to_numpy(dtype=float)


def reliable_drop(sessions: pd.DataFrame | ShardedTable, alliance: str = "srs") -> float:
    """The reliable-change threshold for a drop in ``alliance`` between two sessions.

    ``1.96 · √2 · SD · √(1 − r)`` (Jacobson & Truax, 1991), with ``SD`` the standard deviation
    of each case's first rating of ``alliance`` in ``sessions`` and ``r`` its test–retest
    reliability (:data:`RETEST_RELIABILITY`). ``SD`` is computed from exact sums
    (:func:`~allianceanalysis.sums.exact_std`), so sessions given in shards
    (:class:`~allianceanalysis.shards.ShardedTable`) give the same threshold to the last bit.

    Raises
    ------
    NotEstimable
        When the instrument has no test–retest reliability on record (give a threshold in
        points instead), or fewer than two cases have a rating.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": list("abcd"), "session": 1,
    ...                   "srs": [30.0, 34.0, 36.0, 40.0]})
    >>> round(reliable_drop(s), 2)  # 1.96 · √2 · 4.163 · √(1 − .54)
    7.83
    """
    if alliance not in RETEST_RELIABILITY:
        raise NotEstimable(
            f"no test-retest reliability is on record for {get_instrument(alliance).short}: "
            "give the rupture threshold in points"
        )
    columns = ["client_id", "episode_id", "session", alliance]
    first = np.concatenate([_first_ratings(f, alliance) for f in frames(sessions, columns)])
    if len(first) < 2:
        raise NotEstimable("fewer than two cases have an alliance rating")
    r = RETEST_RELIABILITY[alliance][0]
    return float(_Z * np.sqrt(2.0) * exact_std(first) * np.sqrt(1.0 - r))


def detect_ruptures(
    sessions: pd.DataFrame,
    alliance: str = "srs",
    *,
    threshold: float | None = None,
    repair_within: int = DEFAULT_REPAIR_WITHIN,
) -> pd.DataFrame:
    """Flag ruptures and their repair in each case's sequence of alliance ratings.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions (case keys, ``therapist_id``, ``session``, the alliance column).
    alliance : str
        The alliance instrument's column (higher is better for every alliance instrument in
        the registry; for one where lower is better a rise is the drop).
    threshold : float, optional
        The smallest drop, in points, that is a rupture; by default :func:`reliable_drop`.
    repair_within : int
        Rated sessions after the rupture within which a return to the pre-rupture rating is a
        repair.

    Returns
    -------
    pandas.DataFrame
        One row per rated session, in case and session order: the case keys,
        ``therapist_id``, ``session``, ``alliance``, ``drop`` (from the previous rated session;
        missing at a case's first), ``rupture``, ``repaired`` and ``window_complete`` (missing
        where there is no rupture), ``repair_session`` (the first session back at the
        pre-rupture rating) and ``threshold``.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 5, "therapist_id": ["t"] * 5,
    ...                   "session": [1, 2, 3, 4, 5], "srs": [36.0, 37.0, 28.0, 33.0, 37.5]})
    >>> d = detect_ruptures(s, threshold=5.0)
    >>> d.loc[d["rupture"], ["session", "drop", "repaired", "repair_session"]]
       session  drop  repaired  repair_session
    2        3   9.0      True               5
    """
    if repair_within < 1:
        raise ValueError("repair_within must be at least 1")
    inst = get_instrument(alliance)
    limit = reliable_drop(sessions, alliance) if threshold is None else float(threshold)
    ordered = CaseOrder(sessions.dropna(subset=[alliance]))
    frame = ordered.frame[[*ordered.keys, "therapist_id", "session"]].copy()
    frame["alliance"] = ordered.frame[alliance].to_numpy(dtype=float)
    case = ordered.case
    score = frame["alliance"].to_numpy() * (1.0 if inst.higher_is_better else -1.0)
    n = len(frame)

    def ahead(k: int) -> tuple[np.ndarray, np.ndarray]:
        """The row k rated sessions on (clipped to the table), and whether it is the same
        case's; k = -1 is the row before."""
        index = np.clip(np.arange(n) + k, 0, max(n - 1, 0))
        inside = (np.arange(n) + k >= 0) & (np.arange(n) + k < n)
        return index, inside & (case[index] == case)

    previous, same_before = ahead(-1)
    before = score[previous]
    drop = np.where(same_before, before - score, np.nan)
    rupture = same_before & (drop >= limit)
    repaired = np.zeros(n, dtype=bool)
    repair_at = np.full(n, -1, dtype="int64")
    session = frame["session"].to_numpy()
    for k in range(1, repair_within + 1):  # a few offsets, each over every rupture at once
        index, same = ahead(k)
        back = rupture & same & ~repaired & (score[index] >= before)
        repair_at[back] = session[index][back]
        repaired |= back
    window = ahead(repair_within)[1]
    frame["drop"] = drop
    frame["rupture"] = rupture
    frame["repaired"] = pd.array(np.where(rupture, repaired, False), dtype="boolean")
    frame.loc[~rupture, "repaired"] = pd.NA
    frame["window_complete"] = pd.array(window | repaired, dtype="boolean")
    frame.loc[~rupture, "window_complete"] = pd.NA
    frame["repair_session"] = pd.arrays.IntegerArray(repair_at, repair_at < 0)
    frame["threshold"] = limit
    return frame


def case_ruptures(detected: pd.DataFrame) -> pd.DataFrame:
    """One row per case of :func:`detect_ruptures`: its ``ratings``, how many ruptures, how
    many of them are ``judged`` (repair window complete, or repaired) and ``repaired``, the
    session of the first, and ``rupture_status``: ``"none"``, ``"repaired"`` (every rupture
    repaired) or ``"unrepaired"`` (at least one not repaired, window complete or not).

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 3 + ["b"] * 2, "therapist_id": "t",
    ...                   "session": [1, 2, 3, 1, 2], "srs": [38.0, 30.0, 38.0, 36.0, 36.0]})
    >>> case_ruptures(detect_ruptures(s, threshold=5.0))["rupture_status"].tolist()
    ['repaired', 'none']
    """
    keys = case_keys(detected)
    repaired = detected["repaired"].fillna(False).astype(bool)
    flagged = detected.assign(
        unrepaired=detected["rupture"] & ~repaired,
        is_judged=detected["rupture"] & detected["window_complete"].fillna(False).astype(bool),
        is_repaired=repaired,
        first_rupture=detected["session"].where(detected["rupture"]),
    )
    cases = flagged.groupby(keys, sort=True, dropna=False).agg(
        therapist_id=("therapist_id", "first"),
        ratings=("session", "size"),
        ruptures=("rupture", "sum"),
        judged=("is_judged", "sum"),
        repaired=("is_repaired", "sum"),
        unrepaired=("unrepaired", "sum"),
        first_rupture_session=("first_rupture", "min"),
    )
    cases["rupture_status"] = np.select(
        [cases["ruptures"] == 0, cases["unrepaired"] == 0], ["none", "repaired"], "unrepaired"
    )
    return cases.drop(columns="unrepaired").reset_index()


@dataclass(frozen=True)
class RuptureCounts:
    """What :func:`rupture_table` reports, counted in the rupture detection of one piece of
    the sessions (:meth:`of`) or added up over pieces (:meth:`total`).

    Attributes
    ----------
    cases_multi, cases_multi_ruptured : int
        Cases with two or more ratings, and those of them with a rupture.
    ruptures, transitions, judged, repaired : int
        Ruptures, pairs of consecutive ratings, ruptures whose repair window is complete or
        that were repaired, and repaired ruptures.
    rated : int
        Rated sessions.
    first_sessions : numpy.ndarray
        The session of each case's first rupture.
    threshold : float
        The rupture threshold in points.
    """

    cases_multi: int
    cases_multi_ruptured: int
    ruptures: int
    transitions: int
    judged: int
    repaired: int
    rated: int
    first_sessions: np.ndarray
    threshold: float

    @classmethod
    def of(cls, detected: pd.DataFrame) -> RuptureCounts:
        """The counts of one :func:`detect_ruptures` table."""
        cases = case_ruptures(detected)
        multi = cases[cases["ratings"] >= 2]
        return cls(
            cases_multi=len(multi),
            cases_multi_ruptured=int((multi["ruptures"] > 0).sum()),
            ruptures=int(cases["ruptures"].sum()),
            transitions=int(detected["drop"].notna().sum()),
            judged=int(cases["judged"].sum()),
            repaired=int(cases["repaired"].sum()),
            rated=len(detected),
            first_sessions=cases["first_rupture_session"].dropna().to_numpy(dtype=float),
            threshold=float(detected["threshold"].iloc[0]) if len(detected) else np.nan,
        )

    @classmethod
    def total(cls, parts: Sequence[RuptureCounts]) -> RuptureCounts:
        """The counts of the pieces' detections together (every piece used one threshold)."""
        counted = {
            f.name: sum(getattr(p, f.name) for p in parts)
            for f in dataclasses.fields(cls)
            if f.type == "int"
        }
        thresholds = [p.threshold for p in parts if not np.isnan(p.threshold)]
        return cls(**counted,
                   first_sessions=np.concatenate([p.first_sessions for p in parts]),
                   threshold=thresholds[0] if thresholds else np.nan)  # fmt: skip


def rupture_table(detected: pd.DataFrame | RuptureCounts, model: str = "ruptures") -> pd.DataFrame:
    """Rupture and repair rates as a tidy table (:data:`~allianceanalysis.models.TIDY_COLUMNS`).

    Rows: ``clients_with_rupture`` (share of cases with at least one rupture among cases with
    two or more ratings), ``ruptures_per_transition`` (ruptures per pair of consecutive ratings),
    ``repair_rate`` (repaired among ruptures whose repair window is complete or repaired),
    ``median_first_rupture_session``, and ``threshold`` (points). Proportions carry 95% Wilson
    intervals; ``n_obs`` is the denominator. ``detected`` is :func:`detect_ruptures`' table, or
    the :class:`RuptureCounts` of its pieces.
    """
    counts = RuptureCounts.of(detected) if isinstance(detected, pd.DataFrame) else detected
    rows = []
    for term, events, n in (
        ("clients_with_rupture", counts.cases_multi_ruptured, counts.cases_multi),
        ("ruptures_per_transition", counts.ruptures, counts.transitions),
        ("repair_rate", counts.repaired, counts.judged),
    ):
        estimate, low, high = proportion(events, n)
        rows.append(tidy.row(model, term, estimate, ci_low=low, ci_high=high, n_obs=n,
                         ci_method="wilson"))  # fmt: skip
    first = pd.Series(counts.first_sessions, dtype=float)
    median = float(first.median()) if len(first) else np.nan
    rows.append(tidy.row(model, "median_first_rupture_session", median, n_obs=len(first)))
    rows.append(tidy.row(model, "threshold", counts.threshold, n_obs=counts.rated))
    return tidy.frame(rows)[TIDY_COLUMNS]


def rupture_states(frame: pd.DataFrame, detected: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (any rows with the case keys and ``session``, e.g. sessions or
    person-periods) with the state of its case's first rupture at each session.

    Columns added (0/1): ``rupture_unresolved`` (from the first rupture's session until the
    return to the pre-rupture rating, or for ever without one: known at the session),
    ``rupture_open`` (after the rupture session, before a repair that came),
    ``rupture_repaired`` (from the repair session on) and ``rupture_unrepaired`` (after the
    rupture session, in a case whose first rupture was never repaired: known only in
    hindsight).

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 5, "therapist_id": "t",
    ...                   "session": [1, 2, 3, 4, 5], "srs": [38.0, 30.0, 33.0, 38.0, 38.0]})
    >>> r = rupture_states(s, detect_ruptures(s, threshold=5.0))
    >>> r[["session", "rupture_unresolved", "rupture_open", "rupture_repaired"]]
       session  rupture_unresolved  rupture_open  rupture_repaired
    0        1                 0.0           0.0               0.0
    1        2                 1.0           0.0               0.0
    2        3                 1.0           1.0               0.0
    3        4                 0.0           0.0               1.0
    4        5                 0.0           0.0               1.0
    """
    keys = case_keys(detected)
    first = detected.loc[detected["rupture"].to_numpy(), [*keys, "session", "repaired",
                                                           "repair_session"]]  # fmt: skip
    first = first.drop_duplicates(keys)  # detected is in case and session order
    at = frame[keys].merge(first, on=keys, how="left")
    session = frame["session"].to_numpy(dtype=float)
    rupture = at["session"].to_numpy(dtype=float)
    repair = at["repair_session"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    repaired = session >= repair
    after = session > rupture
    states = {
        "rupture_unresolved": (session >= rupture) & ~repaired,
        "rupture_open": after & (session < repair),
        "rupture_repaired": repaired,
        "rupture_unrepaired": after & np.isnan(repair),
    }
    return frame.assign(**{k: v.astype(float) for k, v in states.items()})


OUTCOME_STATES = ("rupture_open", "rupture_repaired", "rupture_unrepaired")
"""The first rupture's states in the rupture-outcome model (:func:`rupture_states`)."""
DROPOUT_STATES = ("rupture_unresolved", "rupture_repaired")
"""The first rupture's states in the rupture-dropout model: those known at the session."""


def _present(present: pd.Series) -> list[str]:
    """The states some session is in (``present``: whether each is; a state no session is in
    cannot be estimated); none at all is an error."""
    states = [str(c) for c, seen in present.items() if seen]
    if not states:
        raise NotEstimable("no rupture was detected in the sessions the model uses")
    return states


def _outcome_data(
    sessions: pd.DataFrame, detected: pd.DataFrame, outcome: str, first_case: int = 0
) -> pd.DataFrame:
    """The rows of the rupture-outcome model: every session with an outcome, its states and
    course terms, and ``case`` (integers from ``first_case``, in the order of the case keys)."""
    data = rupture_states(sessions.dropna(subset=[outcome]), detected)
    log_session = np.log(data["session"].to_numpy(dtype=float))
    course = dict(zip(COURSE_TERMS, (log_session, log_session**2, log_session**3), strict=True))
    data = data.assign(case=first_case + key_codes(data, case_keys(data)), **course)
    return data[[outcome, "therapist_id", "case", *COURSE_TERMS, *OUTCOME_STATES]]


def _outcome_fit(pieces: list, present: pd.Series, outcome: str, engine: str) -> pd.DataFrame:
    """The rupture-outcome model fitted to the pieces of :func:`_outcome_data`."""
    states = _present(present)
    formula = f"{outcome} ~ {' + '.join([*COURSE_TERMS, *states])} + (1 | therapist_id/case)"
    fit = fit_lmm_pieces(formula, pieces, engine)
    return tidy.frame(tidy_fit("rupture_outcome", fit))[TIDY_COLUMNS]


def _dropout_counts(
    sessions: pd.DataFrame, detected: pd.DataFrame, outcome: str, alliance: str
) -> pd.DataFrame:
    """The rupture-dropout model's person-periods as events and trials per therapist, session
    and state (:func:`~allianceanalysis.models.binomial_counts`)."""
    periods = rupture_states(person_periods(sessions, outcome, alliance), detected)
    counts = binomial_counts(periods, "event", ["session", *DROPOUT_STATES], "therapist_id")
    return counts.rename(columns={"events": "event"})


def _dropout_fit(counts: pd.DataFrame) -> pd.DataFrame:
    """The rupture-dropout model fitted to :func:`_dropout_counts` (of one piece or more)."""
    states = _present(counts[list(DROPOUT_STATES)].astype(bool).any())
    rows = therapist_logit("rupture_dropout", counts, "event", ["session", *states],
                           trials="trials")  # fmt: skip
    return tidy.frame(rows)[TIDY_COLUMNS]


def rupture_outcome(
    sessions: pd.DataFrame,
    detected: pd.DataFrame,
    outcome: str = "ors",
    *,
    engine: str = DEFAULT_ENGINE,
) -> pd.DataFrame:
    """Outcome before and after a case's first rupture, repaired or not: a linear mixed model.

    ``outcome ~ log_session + log_session_2 + log_session_3 + rupture_open +
    rupture_repaired + rupture_unrepaired + (1 | therapist_id/case)`` over every session with
    an outcome (:func:`rupture_states`; the course of change :data:`COURSE_TERMS`). With a
    random intercept per case the states are compared within cases, so longer treatments do
    not weigh more; coefficients are outcome points (the instrument's direction).

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions.
    detected : pandas.DataFrame
        :func:`detect_ruptures` of the same sessions.
    outcome : str
        The outcome column.
    engine : str
        The engine (:func:`allianceanalysis.engine.fit_lmm`).

    Returns
    -------
    pandas.DataFrame
        Tidy rows of model ``rupture_outcome``.

    References
    ----------
    Eubanks, C. F., Muran, J. C., & Safran, J. D. (2018). Alliance rupture repair: A
    meta-analysis. Psychotherapy, 55(4), 508-519.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=400, n_therapists=20, seed=3).sessions
    >>> t = rupture_outcome(s, detect_ruptures(s)).set_index("term")
    >>> "rupture_unrepaired" in t.index
    True
    """
    data = _outcome_data(sessions, detected, outcome)
    return _outcome_fit([lambda columns: data[columns]], data[list(OUTCOME_STATES)].any(),
                        outcome, engine)  # fmt: skip


def rupture_dropout(
    sessions: pd.DataFrame, detected: pd.DataFrame, outcome: str = "ors", alliance: str = "srs"
) -> pd.DataFrame:
    """Dropping out after a session while a rupture is unresolved, or after it was repaired.

    The discrete-time hazard ``glmer(event ~ session + rupture_unresolved + rupture_repaired +
    (1 | therapist_id), binomial)`` over :func:`allianceanalysis.dropout_risk.person_periods`
    (:func:`allianceanalysis.models.therapist_logit`). The
    states are those known at the session (:func:`rupture_states`): a case that drops out
    straight after a rupture counts as unresolved, not as unrepaired.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=400, n_therapists=20, seed=3).sessions
    >>> t = rupture_dropout(s, detect_ruptures(s)).set_index("term")
    >>> bool(t.loc["rupture_unresolved", "estimate"] > 0)
    True
    """
    return _dropout_fit(_dropout_counts(sessions, detected, outcome, alliance))


def _windows(detected: pd.DataFrame, before: int, after: int) -> pd.DataFrame:
    """:func:`rupture_sequences`' rows of one piece, with the case keys and session."""
    kind = pd.Series(np.where(detected["repaired"].fillna(False).astype(bool), "repaired",
                              "unrepaired"), index=detected.index)  # fmt: skip
    return rupture_windows(detected, detected["rupture"], "alliance", before=before,
                           after=after, kind=kind)  # fmt: skip


def _sequences(windows: Spilled, offsets: int) -> pd.DataFrame:
    """The pieces' :func:`_windows` (``offsets`` rows per rupture) in case and session order,
    ruptures numbered in it, the case keys dropped."""
    if windows.columns is None:  # no pieces
        return pd.DataFrame(columns=["rupture", "offset", "alliance", "change", "kind"])
    keys = [*case_keys(windows.columns), "session", "offset"]
    long = windows.sorted_by(keys, ["offset", "alliance", "change", "kind"])
    return long.assign(rupture=np.arange(len(long)) // offsets)[
        ["rupture", "offset", "alliance", "change", "kind"]]  # fmt: skip


def rupture_sequences(
    detected: pd.DataFrame, before: int = _BEFORE, after: int = _AFTER
) -> pd.DataFrame:
    """The alliance around each detected rupture, aligned on the rupture session, labelled
    ``repaired`` or ``unrepaired``, without the case keys: the data of the rupture figure
    (:func:`allianceanalysis.figures.rupture_profile`).

    Returns
    -------
    pandas.DataFrame
        :func:`allianceanalysis.derive.rupture_windows` columns ``rupture``, ``offset``,
        ``alliance``, ``change`` and ``kind``.
    """
    with Spilled(on_disk=False) as windows:
        windows.add(_windows(detected, before, after))
        return _sequences(windows, before + after + 1)


def rupture_analyses(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    alliance: str = "srs",
    *,
    threshold: float | None = None,
    repair_within: int = DEFAULT_REPAIR_WITHIN,
    engine: str = DEFAULT_ENGINE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rupture rows of the early-warning table and the rupture figure's data, from
    sessions given whole or in shards, one shard in memory at a time.

    Each piece's ruptures are detected with one threshold (:func:`reliable_drop` over all
    pieces, unless ``threshold`` is given); the rates are counted per piece and added up
    (:class:`RuptureCounts`); the rupture-outcome model is fitted to the pieces' rows from
    their sufficient statistics (:func:`~allianceanalysis.engine.fit_lmm_pieces`; kept on disk
    meanwhile), and the rupture-dropout model to the pieces' events and trials. A case lies in
    one shard (:mod:`allianceanalysis.shards`), so every result is that of the whole table:
    the rates and the dropout model to the last bit, the outcome model to rounding (its cases
    are numbered piece by piece).

    Returns
    -------
    tuple of pandas.DataFrame
        The tidy rows of :func:`rupture_table`, :func:`rupture_outcome` and
        :func:`rupture_dropout` (a model the data cannot support as a row saying why), and
        :func:`rupture_sequences`.

    Raises
    ------
    NotEstimable
        When there is no threshold (:func:`reliable_drop`).

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=400, n_therapists=20, seed=3).sessions
    >>> rows, sequences = rupture_analyses(s)
    >>> sorted(set(rows["model"]))
    ['rupture_dropout', 'rupture_outcome', 'ruptures']
    """
    limit = reliable_drop(sessions, alliance) if threshold is None else float(threshold)
    columns = ["client_id", "episode_id", "therapist_id", "session", "end_status", alliance,
               outcome]  # fmt: skip
    pieces = []
    first_case = 0
    on_disk = not isinstance(sessions, pd.DataFrame)
    # the outcome model's rows, the windows and the dropout counts wait on disk: at 10M
    # clients the windows alone took 0.9 GB, held through the outcome model's fit
    with Spilled(on_disk) as kept, Spilled(on_disk) as windows, Spilled(on_disk) as dropout:
        for frame in frames(sessions, columns):
            pieces.append(_piece(frame, alliance, outcome, limit, repair_within, first_case,
                                 (kept, windows, dropout)))  # fmt: skip
            first_case = pieces[-1][-1]
            del frame
        counts, present, _ = zip(*pieces, strict=True)
        release_memory()  # what the pieces' detection freed, before the fits
        rows = pd.concat([
            rupture_table(RuptureCounts.total(counts)),
            tidy.or_reason("rupture_outcome", lambda: _outcome_fit(
                kept.pieces(), pd.concat(present, axis=1).any(axis=1), outcome, engine)),
            tidy.or_reason("rupture_dropout", lambda: _dropout_fit(
                pd.concat([read(None) for read in dropout.pieces()]))),
        ], ignore_index=True)  # fmt: skip
        release_memory()
        sequences = _sequences(windows, _BEFORE + _AFTER + 1)
    return rows, sequences


def _piece(
    sessions: pd.DataFrame,
    alliance: str,
    outcome: str,
    limit: float,
    repair_within: int,
    first_case: int,
    kept: tuple[Spilled, Spilled, Spilled],
) -> tuple[RuptureCounts, pd.Series, int]:
    """:func:`rupture_analyses` of one piece: its counts, the outcome states its sessions are
    in and the next piece's first case number; the outcome model's rows, the windows and the
    dropout counts go to ``kept`` (in that order)."""
    detected = detect_ruptures(sessions, alliance, threshold=limit, repair_within=repair_within)
    data = _outcome_data(sessions, detected, outcome, first_case)
    rows, windows, dropout = kept
    rows.add(data)
    windows.add(_windows(detected, before=_BEFORE, after=_AFTER))
    dropout.add(_dropout_counts(sessions, detected, outcome, alliance))
    return (
        RuptureCounts.of(detected),
        data[list(OUTCOME_STATES)].any(),
        first_case + (int(data["case"].max()) + 1 if len(data) else 0),
    )
