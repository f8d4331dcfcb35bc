"""State effects of the alliance on the next session's outcome, free of clients' own trends.

The catalogue's ``alliance_next_session`` (Falkenström et al., 2013) takes a session's alliance
as its deviation from the client's mean (the state) and asks whether it predicts the next
session's outcome. Two traps lie in it (docs/models.md):

- **Trends.** When a client's alliance and outcome both rise over treatment, the sessions
  above the client's mean alliance are the late ones, which are also the ones with good
  outcomes: a state effect appears without any session-to-session influence. Removing each
  client's own linear trend from the state (Wang & Maxwell, 2015; Falkenström et al., 2017)
  leaves the deviations from the client's trajectory.
- **The lagged outcome.** Centring the lagged outcome on the client's mean, which includes the
  later outcomes, biases its coefficient downwards by about (1 + ρ) / (T − 1) for T sessions
  (Nickell, 1981); leaving it uncentred with a random intercept biases it upwards. The
  truth is between; the table shows both, rather than assuming either.

:func:`alliance_next_session_detrended` fits, on the same session pairs:

- ``alliance_next_session_detrended``: ``outcome_next ~ outcome_detrended + alliance_detrended
  + alliance_client_mean + session + (1 | client_id)``, each client's alliance and outcome
  replaced by the residuals from the client's own least-squares line over session numbers
  (clients with at least :data:`MIN_SESSIONS` rated sessions of each);
- ``alliance_next_session_same_sample``: the catalogue model (person-mean centring, no
  detrending) on the same pairs, so that the difference is the detrending alone;
- ``alliance_next_session_lag_raw``: the catalogue model with the lagged outcome uncentred
  (``outcome``), the other side of the Nickell bias;

and the row ``nickell_bias_expected``: −(1 + ρ) / (T − 1), ρ the uncentred lag's estimate and
T the mean sessions per client in the pairs.

References
----------
Falkenström, F., Finkel, S., Sandell, R., Rubel, J. A., & Holmqvist, R. (2017). Dynamic models
of individual change in psychotherapy process research. Journal of Consulting and Clinical
Psychology, 85(6), 537-549.
Nickell, S. (1981). Biases in dynamic models with fixed effects. Econometrica, 49(6),
1417-1426.
Wang, L. P., & Maxwell, S. E. (2015). On disaggregating between-person and within-person
effects with longitudinal data using multilevel models. Psychological Methods, 20(1), 63-83.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import tidy
from .covariates import Adjustment, adjusted
from .derive import CaseOrder, pairs_of, session_frame
from .engine import DEFAULT_ENGINE, fit_lmm_pieces
from .errors import NotEstimable
from .shards import ShardedTable, Spilled

__all__ = ["MIN_SESSIONS", "alliance_next_session_detrended", "detrend", "detrended_pairs"]

MIN_SESSIONS = 3
"""A client's line needs three rated sessions to leave residuals (with two, both are zero)."""
MODEL = "alliance_next_session_detrended"


def detrend(values: np.ndarray, time: np.ndarray, case: np.ndarray) -> np.ndarray:
    """Residuals of each case's least-squares line of ``values`` on ``time``; NaN where the
    value is missing or the case has fewer than :data:`MIN_SESSIONS` values (or one time).
    Sums per case by ``bincount``: no loop over cases.

    Examples
    --------
    >>> detrend(np.array([1.0, 2, 4, 5, 5]), np.array([1, 2, 3, 1, 2]), np.array([0, 0, 0, 1, 1]))
    array([ 0.16666667, -0.33333333,  0.16666667,         nan,         nan])
    """
    seen = ~np.isnan(values)
    n_cases = int(case.max(initial=-1)) + 1
    w = seen.astype(float)
    y, t = np.where(seen, values, 0.0), np.where(seen, time.astype(float), 0.0)

    def per_case(x: np.ndarray) -> np.ndarray:
        return np.bincount(case, weights=x, minlength=n_cases)

    count = per_case(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean, y_mean = per_case(t) / count, per_case(y) / count
        tc = np.where(seen, t - t_mean[case], 0.0)
        stt = per_case(tc * tc)
        slope = per_case(tc * (y - y_mean[case])) / stt
    residual = y - y_mean[case] - slope[case] * tc
    usable = seen & (count[case] >= MIN_SESSIONS) & (stt[case] > 0)
    return np.where(usable, residual, np.nan)


def detrended_pairs(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str = "srs",
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """:func:`allianceanalysis.derive.session_pairs` with ``alliance_detrended`` and
    ``outcome_detrended`` (each client's residuals from their own line over sessions), on the
    pairs where both are defined."""
    cases = CaseOrder(sessions)
    frame = session_frame(cases, outcome, alliance, adjustment)
    session = frame["session"].to_numpy()
    for name in ("alliance", "outcome"):
        values = frame[name].to_numpy(dtype=float)
        frame[f"{name}_detrended"] = detrend(values, session, cases.case)
    pairs = pairs_of(cases, frame)
    keep = pairs["alliance_detrended"].notna() & pairs["outcome_detrended"].notna()
    return pairs[keep].reset_index(drop=True)


FORMULAS = {
    MODEL: "outcome_next ~ outcome_detrended + alliance_detrended + alliance_client_mean"
    " + session + (1 | client_id)",
    "alliance_next_session_same_sample": "outcome_next ~ outcome_within + alliance_within"
    " + alliance_client_mean + session + (1 | client_id)",
    "alliance_next_session_lag_raw": "outcome_next ~ outcome + alliance_within"
    " + alliance_client_mean + session + (1 | client_id)",
}
"""The three models of the table, fitted to the same pairs."""


def alliance_next_session_detrended(
    sessions: pd.DataFrame | ShardedTable,
    *,
    outcome: str = "ors",
    alliance: str = "srs",
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """The next-session model with detrended states, beside the undetrended model and the
    uncentred lag on the same pairs (see the module's notes).

    Parameters
    ----------
    sessions : pandas.DataFrame or ShardedTable
        Validated sessions, whole or in shards (a shard at a time).
    outcome, alliance : str
        The score columns.
    engine : str
        The mixed-model engine.
    adjustment : Adjustment, optional
        Covariates, entered as in ``alliance_next_session``.

    Returns
    -------
    pandas.DataFrame
        The tidy rows of the three models (REML, Satterthwaite t), and
        ``nickell_bias_expected`` in ``alliance_next_session_detrended``.

    References
    ----------
    Wang, L. P., & Maxwell, S. E. (2015). On disaggregating between-person and within-person
    effects with longitudinal data using multilevel models. Psychological Methods, 20(1),
    63-83.

    Examples
    --------
    >>> from allianceanalysis.simulate_within import simulate_panel
    >>> s = simulate_panel(n_clients=200, waves=6, seed=2).sessions
    >>> table = alliance_next_session_detrended(s)
    >>> sorted(set(table["model"]))[:2]
    ['alliance_next_session_detrended', 'alliance_next_session_lag_raw']
    """
    from .models import tidy_fit

    counts: list[tuple[int, int]] = []  # each piece's pairs and clients

    def pairs_of(frame: pd.DataFrame) -> pd.DataFrame:
        pairs = detrended_pairs(frame, outcome, alliance, adjustment)
        counts.append((len(pairs), pairs["client_id"].nunique()))
        return pairs

    with Spilled.of(sessions, pairs_of) as kept:
        n_pairs, clients = (sum(column) for column in zip(*counts, strict=True))
        if clients < 2:
            raise NotEstimable(
                f"too few clients to detrend: it needs clients with at least "
                f"{MIN_SESSIONS} sessions rated on both measures and a next session; "
                f"{clients} have them"
            )
        rows: list[dict[str, object]] = []
        for model, formula in FORMULAS.items():
            full = adjusted(formula, kept.columns, adjustment, "session")
            fit = fit_lmm_pieces(full, kept.pieces(), engine)
            rows += tidy_fit(model, fit)
            if model == "alliance_next_session_lag_raw":
                rho = fit.coefficients.loc["outcome", "estimate"]
            del fit  # a fit holds each client's random intercept: one at a time
    t = n_pairs / clients + 1.0
    rows.append(
        tidy.row(
            MODEL,
            "nickell_bias_expected",
            -(1.0 + rho) / (t - 1.0),
            n_obs=n_pairs,
            n_groups=clients,
            message=f"-(1 + rho) / (T - 1) with rho = {rho:.3f} (the uncentred "
            f"lag) and T = {t:.2f} sessions per client (Nickell, 1981)",
        )
    )
    return tidy.frame(rows)
