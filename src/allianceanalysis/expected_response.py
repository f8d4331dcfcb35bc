"""Expected treatment response and the not-on-track signal, fitted on a service's own data.

The expected outcome of a client at session t, given the intake score, is the fixed part of a
growth model of change since intake (Finch, Lambert & Schaalje, 2001; the recovery curves
behind Lambert's signal system)::

    change ~ intake_c + log_session + intake_log_session + (1 + log_session | client_id)

over sessions 2 and later with an observed outcome: ``change`` is the outcome minus the intake
(session 1) outcome, ``intake_c`` the intake centred at the sample's mean, ``log_session`` the
log of the session number (change is fast early and slows, the dose-effect shape of Howard et
al., 1986), ``intake_log_session`` their product (clients who start lower change faster). It is
a mixed model rather than empirical quantiles by intake band because a service's sessions thin
out quickly: by session 10 few clients of any one band are left, and the model borrows
strength across sessions and intake levels. A client is **not on track** at a session when the
outcome is beyond the ``percentile`` (default 10%) of what the model predicts for a new client
with that intake at that session: the fixed part plus the random intercept and slope and the
residual, ``expected ± z · sd`` in the worse direction. Lambert's system signals at comparable
tails of its expected recovery curves.

The signal is judged against how treatment ended (:func:`signal_accuracy`): among cases with an
intake and a final outcome, whether it was raised at a session before the final one, against
reliable deterioration at the end (Jacobson & Truax, 1991, with the instrument's reliable-change
threshold): sensitivity, specificity, positive and negative predictive value, and the lead time
from the first signal to the final session.

References
----------
Finch, A. E., Lambert, M. J., & Schaalje, B. G. (2001). Psychotherapy quality control: The
statistical generation of expected recovery curves for integration into an early warning
system. Clinical Psychology & Psychotherapy, 8(4), 231-242.
Howard, K. I., Kopta, S. M., Krause, M. S., & Orlinsky, D. E. (1986). The dose-effect
relationship in psychotherapy. American Psychologist, 41(2), 159-164.
Jacobson, N. S., & Truax, P. (1991). Clinical significance: A statistical approach to defining
meaningful change in psychotherapy research. Journal of Consulting and Clinical Psychology,
59(1), 12-19.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import tidy
from .derive import CaseOrder, case_keys
from .distributions import norm_ppf
from .effects import proportion
from .engine import DEFAULT_ENGINE, fit_lmm_pieces
from .errors import NotEstimable
from .instruments import get_instrument
from .models import tidy_fit
from .shards import ShardedTable, Spilled, frames
from .sums import exact_mean
from .tidy import TIDY_COLUMNS

__all__ = [
    "DEFAULT_PERCENTILE",
    "ETR_FORMULA",
    "ExpectedResponse",
    "accuracy_table",
    "expected_curves",
    "expected_response_analyses",
    "fit_expected_response",
    "not_on_track",
    "signal_accuracy",
    "signalled_cases",
]

ETR_FORMULA = "change ~ intake_c + log_session + intake_log_session + (1 + log_session | client_id)"
DEFAULT_PERCENTILE = 0.10
"""The tail of the predicted outcome beyond which a client is not on track (Lambert's systems
signal at tails of this order; configurable)."""


@dataclass(frozen=True)
class ExpectedResponse:
    """A fitted expected-treatment-response model (:func:`fit_expected_response`)."""

    outcome: str
    intake_mean: float
    fixed: pd.Series
    variances: dict[str, float]
    percentile: float
    table: pd.DataFrame

    @classmethod
    def from_table(cls, table: pd.DataFrame, outcome: str, percentile: float) -> ExpectedResponse:
        """The model again from its tidy rows (``table``, model ``expected_response``, as the
        early-warning table holds them): no refitting.

        Examples
        --------
        >>> from allianceanalysis.simulate import simulate_study
        >>> s = simulate_study(n_clients=300, seed=2).sessions
        >>> m = fit_expected_response(s)
        >>> again = ExpectedResponse.from_table(m.table, "ors", m.percentile)
        >>> bool(np.allclose(again.expected([20.0], [4.0]), m.expected([20.0], [4.0])))
        True
        """
        rows = table[table["model"] == "expected_response"].set_index("term")["estimate"]
        fixed = rows.reindex(["Intercept", "intake_c", "log_session", "intake_log_session"])
        variances = rows[rows.index.str.match("var_|cor_")].to_dict()
        return cls(outcome, float(rows["intake_mean"]), fixed, variances, percentile, table)

    def expected(self, intake: np.ndarray, session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The expected outcome and the not-on-track bound at ``session`` for ``intake``.

        Examples
        --------
        >>> m = ExpectedResponse("ors", 20.0, pd.Series({"Intercept": 1.0, "intake_c": -0.1,
        ...     "log_session": 4.0, "intake_log_session": 0.0}), {"var_client": 4.0,
        ...     "var_client_log_session": 1.0, "cor_client_log_session": 0.0,
        ...     "var_residual": 5.0}, 0.10, pd.DataFrame())
        >>> # at session 1: 20 + 1 expected; bound 21 - z(.90) · √(4 + 5) = 21 - 1.2816 · 3
        >>> [round(float(v[0]), 3) for v in m.expected(np.array([20.0]), np.array([1.0]))]
        [21.0, 17.155]
        """
        intake = np.asarray(intake, dtype=float)
        log_t = np.log(np.asarray(session, dtype=float))
        centred = intake - self.intake_mean
        b = self.fixed
        mean = (b["Intercept"] + b["intake_c"] * centred + b["log_session"] * log_t
                + b["intake_log_session"] * centred * log_t)  # fmt: skip
        v0, v1 = self.variances["var_client"], self.variances["var_client_log_session"]
        cov = self.variances["cor_client_log_session"] * np.sqrt(v0 * v1)
        sd = np.sqrt(v0 + 2 * cov * log_t + v1 * log_t**2 + self.variances["var_residual"])
        worse = -1.0 if get_instrument(self.outcome).higher_is_better else 1.0
        z = norm_ppf(1 - self.percentile)
        return intake + mean, intake + mean + worse * z * sd


def _change_data(ordered: CaseOrder, outcome: str) -> pd.DataFrame:
    """The sessions of 2 or later with an outcome and an intake (session 1) outcome: the case
    keys, ``therapist_id``, ``session``, ``intake`` and ``outcome``, in case order."""
    rows = ordered.frame
    data = rows[[*ordered.keys, "therapist_id", "session"]].copy()
    data["intake"] = ordered.at_session(outcome, 1).to_numpy(dtype=float)[ordered.case]
    data["outcome"] = rows[outcome].to_numpy()
    data = data[data["session"] >= 2].dropna(subset=["intake", "outcome"])
    return data.reset_index(drop=True)


class _Prepared:
    """The sessions' change data (:func:`_change_data`), made piece by piece and kept
    (:class:`~allianceanalysis.shards.Spilled`), with what the model needs of all pieces: the
    mean intake of the clients it describes, their number, and every case's intake."""

    def __init__(
        self, sessions: pd.DataFrame | ShardedTable, outcome: str, percentile: float
    ) -> None:
        if not 0 < percentile < 0.5:
            raise ValueError("percentile must be between 0 and 0.5")
        self.outcome, self.percentile = outcome, percentile
        self.kept = Spilled(on_disk=not isinstance(sessions, pd.DataFrame))
        means, intakes = [], []
        for frame in frames(sessions, ["client_id", "episode_id", "therapist_id", "session",
                                       outcome]):  # fmt: skip
            ordered = CaseOrder(frame)
            data = _change_data(ordered, outcome)
            means.append(data.drop_duplicates("client_id")["intake"].to_numpy(dtype=float))
            intakes.append(ordered.at_session(outcome, 1).dropna().to_numpy(dtype=float))
            self.kept.add(data)
            del frame, ordered, data
        self.intake_mean = exact_mean(np.concatenate(means))
        self.clients = sum(map(len, means))
        self.intakes = np.concatenate(intakes)

    def pieces(self) -> list:
        """The model's rows, piece by piece (:func:`~allianceanalysis.engine.fit_lmm_pieces`)."""

        def rows(read, columns: list[str]) -> pd.DataFrame:
            data = read(None)
            data = data.assign(
                change=data["outcome"] - data["intake"],
                intake_c=data["intake"] - self.intake_mean,
                log_session=np.log(data["session"].astype(float)),
            )
            data["intake_log_session"] = data["intake_c"] * data["log_session"]
            return data[columns]

        return [functools.partial(rows, read) for read in self.kept.pieces()]

    def fit(self, engine: str) -> ExpectedResponse:
        """The model fitted to the pieces."""
        fit = fit_lmm_pieces(ETR_FORMULA, self.pieces(), engine)
        centre = tidy.row("expected_response", "intake_mean", self.intake_mean,
                          n_obs=self.clients)  # fmt: skip
        table = tidy.frame([*tidy_fit("expected_response", fit), centre])[TIDY_COLUMNS]
        return ExpectedResponse(self.outcome, self.intake_mean, fit.coefficients["estimate"],
                                dict(fit.variances), self.percentile, table)  # fmt: skip


def fit_expected_response(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    *,
    percentile: float = DEFAULT_PERCENTILE,
    engine: str = DEFAULT_ENGINE,
) -> ExpectedResponse:
    """Fit the expected-treatment-response model (``ETR_FORMULA``) to a service's sessions,
    given whole or in shards (:class:`~allianceanalysis.shards.ShardedTable`: the fit is from
    the shards' sufficient statistics, and the intake mean from an exact sum, so it is the
    whole table's to the last bit).

    Returns
    -------
    ExpectedResponse
        With ``table``, the fit as tidy rows (model ``expected_response``).
    """
    prepared = _Prepared(sessions, outcome, percentile)
    with prepared.kept:
        return prepared.fit(engine)


def _curves(intakes: np.ndarray, model: ExpectedResponse, last_session: int) -> pd.DataFrame:
    levels = pd.Series(intakes).quantile([0.25, 0.5, 0.75]).to_numpy()
    session = np.arange(2, last_session + 1, dtype=float)
    grid = pd.DataFrame({"intake_quartile": np.repeat([25, 50, 75], len(session)),
                         "intake": np.repeat(levels, len(session)),
                         "session": np.tile(session, 3).astype(int)})  # fmt: skip
    grid["expected"], grid["bound"] = model.expected(grid["intake"].to_numpy(),
                                                     grid["session"].to_numpy())  # fmt: skip
    return grid


def expected_curves(
    sessions: pd.DataFrame, model: ExpectedResponse, last_session: int = 12
) -> pd.DataFrame:
    """The expected outcome and the not-on-track bound, sessions 2 (the first the model
    describes) to ``last_session``, for clients starting at the quartiles of the intake
    outcome: the points of the expected treatment response figure (no client's data, only the
    model's curves).

    Returns
    -------
    pandas.DataFrame
        ``intake_quartile`` (25, 50, 75), ``intake``, ``session``, ``expected``, ``bound``.
    """
    intake = CaseOrder(sessions).at_session(model.outcome, 1)  # each case's intake outcome
    return _curves(intake.dropna().to_numpy(dtype=float), model, last_session)


def _flags(data: pd.DataFrame, model: ExpectedResponse) -> pd.DataFrame:
    expected, bound = model.expected(data["intake"].to_numpy(), data["session"].to_numpy())
    worse = -1.0 if get_instrument(model.outcome).higher_is_better else 1.0
    flagged = worse * (data["outcome"].to_numpy() - bound) > 0
    return data.assign(expected=expected, bound=bound, not_on_track=flagged)


def not_on_track(sessions: pd.DataFrame, model: ExpectedResponse) -> pd.DataFrame:
    """Every session of 2 or later with an observed outcome and intake: ``expected``, ``bound``
    and ``not_on_track`` (the outcome beyond the bound, in the worse direction)."""
    return _flags(_change_data(CaseOrder(sessions), model.outcome), model)


def expected_response_analyses(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    *,
    percentile: float = DEFAULT_PERCENTILE,
    engine: str = DEFAULT_ENGINE,
    last_session: int = 12,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The expected-response rows of the early-warning table and the figure's curves, from
    sessions given whole or in shards, one shard in memory at a time: the model
    (:func:`fit_expected_response`), how well its signal foretold deterioration
    (:func:`signal_accuracy`; a row saying why when the instrument has no reliable-change
    threshold) and :func:`expected_curves`. The shards' change data are read once and kept on
    disk for the fit and the signal.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=300, seed=2).sessions
    >>> rows, curves = expected_response_analyses(s)
    >>> sorted(set(rows["model"])), len(curves)
    (['expected_response', 'not_on_track_signal'], 33)
    """
    prepared = _Prepared(sessions, outcome, percentile)
    with prepared.kept:
        model = prepared.fit(engine)

        def accuracy() -> pd.DataFrame:
            cases = [signalled_cases(_flags(read(None), model), outcome)
                     for read in prepared.kept.pieces()]  # fmt: skip
            return accuracy_table(pd.concat(cases))

        rows = pd.concat([model.table, tidy.or_reason("not_on_track_signal", accuracy)],
                         ignore_index=True)  # fmt: skip
    return rows, _curves(prepared.intakes, model, last_session)


def signalled_cases(flags: pd.DataFrame, outcome: str = "ors") -> pd.DataFrame:
    """Each case with a final outcome after at least one earlier session: ``signal`` (not on
    track at a session before the final one), ``first_signal`` (its session), ``deteriorated``
    (reliable deterioration at the final session) and the final ``session``, indexed by the
    case keys (:func:`signal_accuracy`'s cases).

    Raises
    ------
    NotEstimable
        When the instrument has no reliable-change threshold.
    """
    inst = get_instrument(outcome)
    if inst.reliable_change_points is None:
        raise NotEstimable(f"{inst.short} has no reliable-change threshold to judge the signal by")
    worse = -1.0 if inst.higher_is_better else 1.0
    keys = case_keys(flags)
    last = ~flags.duplicated(keys, keep="last").to_numpy()
    final = flags[last].set_index(keys)
    earlier = flags[~last]
    signalled = earlier.groupby(keys)["not_on_track"].any()
    first_signal = earlier[earlier["not_on_track"]].groupby(keys)["session"].min()
    cases = final.join(signalled.rename("signal"), how="inner")
    cases["signal"] = cases["signal"].astype(bool)
    cases["first_signal"] = first_signal.reindex(cases.index)
    cases["deteriorated"] = (
        worse * (cases["outcome"] - cases["intake"]) >= inst.reliable_change_points
    )
    return cases[["session", "signal", "first_signal", "deteriorated"]]


def signal_accuracy(
    flags: pd.DataFrame, outcome: str = "ors", model: str = "not_on_track_signal"
) -> pd.DataFrame:
    """How well the not-on-track signal foretold reliable deterioration, as a tidy table.

    ``flags`` is :func:`not_on_track`'s. A case counts when its final outcome comes after at
    least one earlier session; the signal is whether any session before the final one was not
    on track; the event is reliable deterioration at the final session (change in the worse
    direction of at least the ``outcome`` instrument's reliable-change threshold). Rows:
    ``sensitivity``, ``specificity``, ``ppv``, ``npv`` and ``deterioration_rate`` (95% Wilson
    intervals; ``n_obs`` the denominator) and ``median_lead_time`` (sessions from the first
    signal to the final session, among signalled cases that deteriorated).

    Raises
    ------
    NotEstimable
        When the instrument has no reliable-change threshold.
    """
    return accuracy_table(signalled_cases(flags, outcome), model)


def accuracy_table(cases: pd.DataFrame, model: str = "not_on_track_signal") -> pd.DataFrame:
    """:func:`signal_accuracy`'s rows from its cases (:func:`signalled_cases`, of one piece
    of the sessions or of several put together)."""
    signal, deteriorated = cases["signal"], cases["deteriorated"]
    rows = []
    for term, events, n in (
        ("sensitivity", int((signal & deteriorated).sum()), int(deteriorated.sum())),
        ("specificity", int((~signal & ~deteriorated).sum()), int((~deteriorated).sum())),
        ("ppv", int((signal & deteriorated).sum()), int(signal.sum())),
        ("npv", int((~signal & ~deteriorated).sum()), int((~signal).sum())),
        ("deterioration_rate", int(deteriorated.sum()), len(cases)),
    ):
        estimate, low, high = proportion(events, n)
        rows.append(tidy.row(model, term, estimate, ci_low=low, ci_high=high, n_obs=n,
                         ci_method="wilson"))  # fmt: skip
    lead = (cases["session"] - cases["first_signal"])[signal & deteriorated]
    rows.append(tidy.row(model, "median_lead_time", float(lead.median()) if len(lead) else np.nan,
                     n_obs=len(lead)))  # fmt: skip
    return tidy.frame(rows)[TIDY_COLUMNS]
