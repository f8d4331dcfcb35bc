"""Derived variables: the client-level and session-level tables the models are fitted to.

Definitions (exact; ``docs/models.md``). The outcome and alliance columns are the dataset's
instruments (default ``ors`` and ``srs``); ``k`` is the early session (default 3). A *case* is a
client, or a client's episode when the data have ``episode_id`` (a client's sessions without an
episode id are one case).

Client level (:func:`client_table`), one row per case:

- ``outcome_intake``: outcome at session 1;
- ``alliance_early``: alliance at session ``k`` exactly;
- ``outcome_early``: outcome at session ``k``; ``early_change`` = ``outcome_early`` −
  ``outcome_intake`` (early symptom change up to the alliance session);
- ``outcome_final``: outcome at the highest-numbered session after ``k`` with an observed
  outcome; ``session_final`` is that session's number;
- ``eligible``: intake, early alliance and final outcome all observed; otherwise ``exclusion``
  names the first missing piece, in that order (for data without an alliance measure,
  ``alliance=None``: intake and final outcome, and every alliance variable is missing);
- ``alliance_therapist_mean``: mean ``alliance_early`` over the therapist's *eligible* cases;
  ``alliance_client_dev`` = ``alliance_early`` − ``alliance_therapist_mean`` (Baldwin, Wampold
  & Imel, 2007);
- ``sessions_attended``, ``end_status`` (the last non-missing value of the case), ``dropout``
  (see :func:`dropout_indicator`).

Session level (:func:`session_pairs`), one row per pair of consecutive attended sessions of a
case (ordered by ``session``; a gap in the numbering is allowed), kept when the outcome is
observed at both and the alliance at the first:

- ``session``: the earlier session's number; ``alliance``, ``outcome``: at the earlier session;
  ``outcome_next``: the outcome at the later one;
- ``alliance_client_mean`` / ``outcome_client_mean``: the case's mean over all its sessions where
  that score is observed; ``alliance_within`` = ``alliance`` − ``alliance_client_mean``;
  ``outcome_within`` = ``outcome`` − ``outcome_client_mean`` (Falkenström et al., 2013).

Both are computed with vectorised group operations (no loop over clients).

References
----------
Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.

Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts
symptomatic improvement session by session. Journal of Counseling Psychology, 60(3), 317-328.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .covariates import Adjustment

__all__ = [
    "EXCLUSION_REASONS",
    "CaseOrder",
    "case_keys",
    "case_order",
    "client_frames",
    "client_table",
    "client_tables",
    "dropout_indicator",
    "in_case_order",
    "key_codes",
    "pairs_of",
    "rupture_windows",
    "session_frame",
    "session_pairs",
    "session_table",
    "therapist_means",
]

EXCLUSION_REASONS = (
    "no outcome at session 1",
    "no alliance at the early session",
    "no outcome after the early session",
)
"""Why a case is not eligible for the client-level models, in the order they are checked."""


def case_keys(sessions: pd.DataFrame | Collection[str]) -> list[str]:
    """The columns that identify a case: ``client_id`` (and ``episode_id`` when present);
    ``sessions`` a table or its column names."""
    return ["client_id", "episode_id"] if "episode_id" in sessions else ["client_id"]


def case_order_keys(table: pd.DataFrame | Collection[str]) -> list[str]:
    """The columns a table (or its column names) is put in case order by: the case keys, then
    ``session`` when it has one (:func:`in_case_order`).

    Examples
    --------
    >>> case_order_keys(["session", "client_id", "ors"])
    ['client_id', 'session']
    """
    return [*case_keys(table), *(["session"] if "session" in table else [])]


def in_case_order(frame: pd.DataFrame) -> pd.DataFrame:
    """A table's rows by case (and session, when it has one), in the order the derivation
    writes them: a table put together from shards reads as the whole data's.

    Examples
    --------
    >>> t = pd.DataFrame({"client_id": ["b", "a", "a"], "session": [1, 2, 1]})
    >>> in_case_order(t).values.tolist()
    [['a', 1], ['a', 2], ['b', 1]]
    """
    return frame.sort_values(case_order_keys(frame), kind="stable").reset_index(drop=True)


def key_codes(frame: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """One integer per row, 0 … n − 1 in the sorted order of the ``keys`` values, equal for
    rows with equal values (a missing value is a value too).

    Examples
    --------
    >>> key_codes(pd.DataFrame({"c": ["b", "a", "b"], "s": [1, 1, 2]}), ["c", "s"]).tolist()
    [1, 0, 2]
    """
    codes = np.zeros(len(frame), dtype="int64")
    for key in keys:
        column, distinct = pd.factorize(frame[key], sort=True, use_na_sentinel=False)
        codes = codes * max(len(distinct), 1) + column
    if len(keys) > 1:
        codes = np.unique(codes, return_inverse=True)[1].reshape(-1)
    return codes


class CaseOrder:
    """Sessions ordered by case, then session number, with each row's case as an integer.

    Cases are numbered in the sorted order of their keys (:func:`key_codes`), so per-case
    values come from positions in numpy (no grouping on text keys: at a million clients that
    is the slow part). A missing ``episode_id`` is a case of its own (the client's sessions
    without an episode). Rows already in case and session order are not sorted.
    """

    def __init__(self, sessions: pd.DataFrame) -> None:
        self.keys = case_keys(sessions)
        codes = key_codes(sessions, self.keys)
        session = sessions["session"].to_numpy()
        step, rise = np.diff(codes), np.diff(session)
        if np.all((step > 0) | ((step == 0) & (rise >= 0))):  # exports are often in order
            self.frame, self.case = sessions.reset_index(drop=True), codes
        else:
            order = np.lexsort((session, codes))
            self.frame, self.case = sessions.iloc[order].reset_index(drop=True), codes[order]
        starts = np.ones(len(self.case), dtype=bool)
        starts[1:] = self.case[1:] != self.case[:-1]
        starts = np.flatnonzero(starts)
        self.first, self.n = starts, len(starts)

    def same_case_next(self) -> np.ndarray:
        """True where the next row belongs to the same case."""
        same = np.zeros(len(self.case), dtype=bool)
        same[:-1] = self.case[1:] == self.case[:-1]
        return same

    def take(self, column: str, rows: np.ndarray) -> pd.Series:
        """``column`` at one row per case (``rows``; -1 gives a missing value)."""
        values = self.frame[column].array.take(rows, allow_fill=True)
        return pd.Series(values, name=column)

    def last_where(self, mask: np.ndarray) -> np.ndarray:
        """Each case's last row where ``mask`` holds (-1 for none)."""
        return self._one_row_per_case(mask, last=True)

    def first_where(self, mask: np.ndarray) -> np.ndarray:
        """Each case's first row where ``mask`` holds (-1 for none)."""
        return self._one_row_per_case(mask, last=False)

    def _one_row_per_case(self, mask: np.ndarray, last: bool) -> np.ndarray:
        rows = np.flatnonzero(mask)
        cases = self.case[rows]
        chosen = np.ones(len(rows), dtype=bool)
        changes = cases[1:] != cases[:-1]
        if last:
            chosen[:-1] = changes
        else:
            chosen[1:] = changes
        out = np.full(self.n, -1, dtype="int64")
        out[cases[chosen]] = rows[chosen]
        return out

    def at_session(self, column: str, number: int) -> pd.Series:
        """``column`` of each case at session ``number`` (missing where the case has none)."""
        return self.take(column, self.last_where(self.frame["session"].to_numpy() == number))

    def mean(self, column: str) -> np.ndarray:
        """The case's mean of the observed values of ``column``, on every row."""
        values = self.frame[column].to_numpy(dtype="float64")
        seen = ~np.isnan(values)
        total = np.bincount(self.case, weights=np.where(seen, values, 0.0), minlength=self.n)
        count = np.bincount(self.case, weights=seen, minlength=self.n)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total / count)[self.case]


def dropout_indicator(cases: pd.DataFrame) -> pd.Series:
    """1 for an unplanned ending, 0 for a planned one, missing for ongoing or unknown.

    Uses ``end_status``. When a dataset has no ``end_status`` at all, the documented rule is:
    a case that attended fewer than 3 sessions is taken as a dropout, others as planned
    endings (a proxy used in routine-outcome studies when discharge codes are absent; see
    ``docs/models.md``). Needs ``sessions_attended`` and, when present, ``end_status``.
    """
    if "end_status" in cases:
        status = cases["end_status"]
        return status.map({"dropout": 1.0, "planned": 0.0}).astype("float64")
    return (cases["sessions_attended"] < 3).astype("float64")


def client_table(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str | None = "srs",
    early_session: int = 3,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """One row per case with the client-level variables of the model catalogue.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions (the session data contract).
    outcome, alliance : str
        The score columns; ``alliance`` is ``None`` for data without an alliance measure.
    early_session : int
        ``k``, the session whose alliance rating is the early alliance.
    adjustment : Adjustment, optional
        Covariates and moderators (:mod:`allianceanalysis.covariates`): each client-level one
        becomes a column (one value per case, by its summary rule), and a case missing one is
        not eligible (``exclusion``: ``no <column> (covariate)`` or ``(moderator)``).

    Returns
    -------
    pandas.DataFrame
        Columns: the case keys, ``therapist_id`` (and ``site_id``), ``sessions_attended``,
        ``end_status`` (when present), ``dropout``, ``outcome_intake``, ``alliance_early``,
        ``outcome_early``, ``early_change``, ``outcome_final``, ``session_final``, ``eligible``,
        ``exclusion``, ``alliance_therapist_mean``, ``alliance_client_dev``; and the
        client-level covariates and moderators.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 4, "therapist_id": ["t"] * 4,
    ...                   "session": [1, 2, 3, 4], "ors": [20.0, 22.0, 25.0, 30.0],
    ...                   "srs": [35.0, 36.0, 37.0, 38.0]})
    >>> client_table(s)[["outcome_intake", "alliance_early", "outcome_final", "early_change"]]
       outcome_intake  alliance_early  outcome_final  early_change
    0            20.0            37.0           30.0           5.0
    """
    return client_tables(sessions, outcome, alliance, (early_session,), adjustment)[early_session]


def client_tables(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str | None = "srs",
    early_sessions: tuple[int, ...] = (1, 2, 3, 4, 5),
    adjustment: Adjustment | None = None,
) -> dict[int, pd.DataFrame]:
    """:func:`client_table` for each early session k, ordering the sessions once.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 4, "therapist_id": ["t"] * 4,
    ...                   "session": [1, 2, 3, 4], "ors": [20.0, 22.0, 25.0, 30.0],
    ...                   "srs": [35.0, 36.0, 37.0, 38.0]})
    >>> {k: t["alliance_early"].item() for k, t in client_tables(s, early_sessions=(2, 3)).items()}
    {2: 36.0, 3: 37.0}
    """
    return client_frames(case_order(sessions, alliance), outcome, alliance, early_sessions,
                         adjustment)  # fmt: skip


def client_frames(
    cases: CaseOrder,
    outcome: str,
    alliance: str | None,
    early_sessions: tuple[int, ...],
    adjustment: Adjustment | None = None,
) -> dict[int, pd.DataFrame]:
    """:func:`client_tables` from sessions already ordered by :func:`case_order` (for a caller
    that reads more from the same ordering)."""
    if min(early_sessions) < 1:
        raise ValueError("early_session must be at least 1")
    return {k: _client_table(cases, outcome, alliance, k, adjustment) for k in early_sessions}


def case_order(sessions: pd.DataFrame, alliance: str | None) -> CaseOrder:
    """The sessions in case order, with the all-missing alliance of data without one
    (:data:`NO_ALLIANCE`): the ordering every derived table is read from."""
    return CaseOrder(_with_alliance(sessions, alliance))


NO_ALLIANCE = "_no_alliance"
"""The all-missing column that stands for the alliance of data without an alliance measure."""


def _with_alliance(sessions: pd.DataFrame, alliance: str | None) -> pd.DataFrame:
    """``sessions``, with an all-missing :data:`NO_ALLIANCE` column when there is no alliance."""
    return sessions if alliance is not None else sessions.assign(**{NO_ALLIANCE: np.nan})


def _client_table(
    ordered: CaseOrder,
    outcome: str,
    alliance: str | None,
    early_session: int,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    rows, session = ordered.frame, ordered.frame["session"].to_numpy()
    cases = rows.iloc[ordered.first][ordered.keys].reset_index(drop=True)
    first_therapist = ordered.first_where(rows["therapist_id"].notna().to_numpy())
    cases["therapist_id"] = ordered.take("therapist_id", first_therapist)
    cases["sessions_attended"] = np.diff(np.r_[ordered.first, len(session)])
    for optional in ("site_id", "end_status"):
        if optional in rows:
            last = ordered.last_where(rows[optional].notna().to_numpy())
            cases[optional] = ordered.take(optional, last)
    cases["dropout"] = dropout_indicator(cases)
    cases["outcome_intake"] = ordered.at_session(outcome, 1).to_numpy()
    cases["alliance_early"] = ordered.at_session(alliance or NO_ALLIANCE, early_session).to_numpy()
    cases["outcome_early"] = ordered.at_session(outcome, early_session).to_numpy()
    cases["early_change"] = cases["outcome_early"] - cases["outcome_intake"]
    final = ordered.last_where((session > early_session) & rows[outcome].notna().to_numpy())
    cases["outcome_final"] = ordered.take(outcome, final).to_numpy()
    cases["session_final"] = pd.arrays.IntegerArray(session[final].astype("int64"), final < 0)

    missing = [
        cases["outcome_intake"].isna(),
        cases["alliance_early"].isna() & (alliance is not None),
        cases["outcome_final"].isna(),
    ]
    reasons = list(EXCLUSION_REASONS)
    for spec in adjustment.client_level if adjustment else ():
        from .covariates import case_values

        cases[spec.column] = case_values(ordered, spec).array
        missing.append(cases[spec.column].isna())
        role = "moderator" if spec in adjustment.moderators else "covariate"
        reasons.append(f"no {spec.column} ({role})")
    cases["exclusion"] = np.select(missing, reasons, default="")
    cases["eligible"] = cases["exclusion"] == ""
    return therapist_means(cases)


def therapist_means(cases: pd.DataFrame) -> pd.DataFrame:
    """Set ``alliance_therapist_mean`` (the mean ``alliance_early`` over the therapist's
    eligible cases) and ``alliance_client_dev`` of a client table, in place; returns it.

    A client table merged from shards (:mod:`allianceanalysis.shards`) gets them here again,
    over all of each therapist's cases.

    Examples
    --------
    >>> c = pd.DataFrame({"therapist_id": ["t", "t", "u"], "alliance_early": [30.0, 34.0, 36.0],
    ...                   "eligible": [True, True, False]})
    >>> therapist_means(c)["alliance_client_dev"].tolist()
    [-2.0, 2.0, nan]
    """
    eligible_early = cases["alliance_early"].where(cases["eligible"])
    cases["alliance_therapist_mean"] = eligible_early.groupby(cases["therapist_id"]).transform(
        "mean"
    )
    cases["alliance_client_dev"] = eligible_early - cases["alliance_therapist_mean"]
    cases["alliance_therapist_mean"] = cases["alliance_therapist_mean"].where(cases["eligible"])
    return cases


def session_table(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str | None = "srs",
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """One row per attended session with the case means and within-case deviations (and
    ``site_id`` when the data have it).

    ``alliance_client_mean`` / ``outcome_client_mean`` are the case's means over all its
    sessions where that score is observed; ``alliance_within`` and ``outcome_within`` are the
    session's deviations from them (missing where the session's score is missing). The
    ``growth`` and ``rm_corr`` analyses use this table; :func:`session_pairs` builds on it.
    With an ``adjustment``, its client-level covariates and moderators (the case's value on
    every session) and its session-level ones (the session's value) are columns too.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a", "a"], "therapist_id": ["t", "t"],
    ...                   "session": [1, 2], "ors": [20.0, 24.0], "srs": [30.0, None]})
    >>> session_table(s)[["session", "alliance_client_mean", "outcome_within"]]
       session  alliance_client_mean  outcome_within
    0        1                  30.0            -2.0
    1        2                  30.0             2.0
    """
    return session_frame(case_order(sessions, alliance), outcome, alliance, adjustment)


def session_frame(
    cases: CaseOrder, outcome: str, alliance: str | None, adjustment: Adjustment | None = None
) -> pd.DataFrame:
    """:func:`session_table` of sessions already in ``cases``' order (aligned with it)."""
    alliance = alliance or NO_ALLIANCE
    ordered = cases.frame
    carried = [c for c in ("site_id",) if c in ordered]
    frame = ordered[[*cases.keys, "therapist_id", *carried, "session"]].copy()
    frame["alliance"] = ordered[alliance]
    frame["outcome"] = ordered[outcome]
    frame["alliance_client_mean"] = cases.mean(alliance)
    frame["outcome_client_mean"] = cases.mean(outcome)
    frame["alliance_within"] = frame["alliance"] - frame["alliance_client_mean"]
    frame["outcome_within"] = frame["outcome"] - frame["outcome_client_mean"]
    if adjustment:
        from .covariates import case_values

        for spec in adjustment.client_level:  # the case's value on each of its sessions
            frame[spec.column] = case_values(cases, spec).array.take(cases.case)
        for spec in adjustment.session_level:
            frame[spec.column] = ordered[spec.column].array
    return frame


def session_pairs(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str | None = "srs",
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """One row per pair of consecutive attended sessions with the session-level variables.

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions.
    outcome, alliance : str
        The score columns.
    adjustment : Adjustment, optional
        Covariates and moderators, carried as :func:`session_table` carries them.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`session_table` for the earlier session, plus ``session_next``
        and ``outcome_next``.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 3, "therapist_id": ["t"] * 3,
    ...                   "session": [1, 2, 4], "ors": [20.0, 24.0, 28.0],
    ...                   "srs": [30.0, 34.0, None]})
    >>> session_pairs(s)[["session", "session_next", "outcome_next", "alliance_within"]]
       session  session_next  outcome_next  alliance_within
    0        1             2          24.0             -2.0
    1        2             4          28.0              2.0
    """
    cases = case_order(sessions, alliance)
    return pairs_of(cases, session_frame(cases, outcome, alliance, adjustment))


def pairs_of(cases: CaseOrder, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a session frame (aligned with ``cases``) that have a next session of the
    same case, with its ``session_next`` and ``outcome_next``, where the outcome at both and
    the alliance at the first are observed (:func:`session_pairs`)."""
    following = np.minimum(np.arange(1, len(frame) + 1), len(frame) - 1)  # last: itself
    frame["session_next"] = frame["session"].to_numpy()[following]
    frame["outcome_next"] = frame["outcome"].to_numpy()[following]
    keep = (
        cases.same_case_next()
        & frame["outcome"].notna().to_numpy()
        & frame["outcome_next"].notna().to_numpy()
        & frame["alliance"].notna().to_numpy()
    )
    return frame[keep].reset_index(drop=True)


def rupture_windows(
    sessions: pd.DataFrame,
    ruptures: pd.Series,
    alliance: str = "srs",
    *,
    before: int = 2,
    after: int = 3,
    kind: pd.Series | None = None,
) -> pd.DataFrame:
    """The alliance around each rupture, aligned on the rupture session (the "V" of rupture
    and repair; Safran & Muran, 2000; Stiles et al., 2004).

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions.
    ruptures : pandas.Series
        Boolean, aligned with ``sessions`` (same index): the sessions where a rupture happened
        (from a detection rule, or a simulator's truth).
    alliance : str
        The alliance column.
    before, after : int
        Attended sessions shown before and after the rupture session.
    kind : pandas.Series, optional
        A label per session, aligned like ``ruptures`` (e.g. repaired / unrepaired), carried
        to the rupture's rows.

    Returns
    -------
    pandas.DataFrame
        One row per rupture and offset (``-before`` … ``after`` attended sessions from the
        rupture; missing beyond the case's sessions): ``rupture`` (a number), the case keys,
        ``session`` (of the rupture), ``offset``, ``alliance``, ``change`` (from the session
        before the rupture) and ``kind``.

    References
    ----------
    Safran, J. D., & Muran, J. C. (2000). Negotiating the therapeutic alliance. Guilford.
    Stiles, W. B., et al. (2004). Patterns of alliance development and the rupture-repair
    hypothesis. Journal of Counseling Psychology, 51(1), 81-92.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a"] * 5, "therapist_id": ["t"] * 5,
    ...                   "session": [1, 2, 3, 4, 5], "srs": [36.0, 37.0, 29.0, 33.0, 37.0]})
    >>> w = rupture_windows(s, pd.Series([False, False, True, False, False]), before=1, after=2)
    >>> w[["offset", "alliance", "change"]].to_numpy().tolist()
    [[-1.0, 37.0, 0.0], [0.0, 29.0, -8.0], [1.0, 33.0, -4.0], [2.0, 37.0, 0.0]]
    """
    keys = case_keys(sessions)
    ordered = sessions.sort_values([*keys, "session"], kind="stable")
    flags = ruptures.reindex(ordered.index).fillna(False).to_numpy(dtype=bool)
    grouped = ordered.groupby(keys, sort=False)[alliance]
    base = ordered.loc[flags, [*keys, "session"]].reset_index(drop=True)
    base["rupture"] = np.arange(len(base))
    if kind is not None:
        base["kind"] = kind.reindex(ordered.index).to_numpy()[flags]
    pre = grouped.shift(1).to_numpy()[flags]
    frames = []
    for offset in range(-before, after + 1):
        values = grouped.shift(-offset).to_numpy()[flags]
        frames.append(base.assign(offset=offset, alliance=values, change=values - pre))
    columns = ["rupture", *keys, "session", "offset", "alliance", "change"]
    columns += ["kind"] if kind is not None else []
    long = pd.concat(frames, ignore_index=True)[columns]
    return long.sort_values(["rupture", "offset"], kind="stable").reset_index(drop=True)
