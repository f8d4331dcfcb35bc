"""Simulated worlds whose within- and between-person truths are known exactly.

:func:`allianceanalysis.simulate.simulate_study` generates realistic sessions whose
within-person dynamics (gain curves, ruptures, feedback) have no closed-form cross-lagged
truth. The within-person methods need worlds where they do:

- :func:`simulate_panel`: alliance and outcome over sessions as a random-intercept
  cross-lagged panel (Hamaker, Kuiper & Grasman, 2015), optionally with client-specific linear
  trends in both (the trap of Wang & Maxwell, 2015), with dropout and missing ratings;
- :func:`simulate_contextual`: clients in therapists with a therapist-level alliance effect
  different from the client-level one (the multilevel latent covariate model of Lüdtke et al.,
  2008), with few clients per therapist when asked.

Both return sessions in the session data contract (``client_id``, ``therapist_id``,
``session``, ``session_date``, ``end_status``, ``ors``, ``srs``), in ORS/SRS points rounded to
0.1 and clipped to 0-40 (the defaults keep clipping rare), and the truth as a dict.

References
----------
Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the cross-lagged
panel model. Psychological Methods, 20(1), 102-116.
Lüdtke, O., et al. (2008). The multilevel latent covariate model. Psychological Methods, 13(3),
203-229.
Wang, L. P., & Maxwell, S. E. (2015). On disaggregating between-person and within-person
effects with longitudinal data using multilevel models. Psychological Methods, 20(1), 63-83.

Examples
--------
>>> world = simulate_panel(n_clients=50, waves=4, seed=1)
>>> int(world.sessions.groupby("client_id").size().max())
4
>>> world.truth["alliance_to_outcome"]
0.25
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .simulate import padded_ids

__all__ = ["SimulatedWorld", "simulate_contextual", "simulate_panel"]

START = pd.Timestamp("2025-01-06")


@dataclass(frozen=True)
class SimulatedWorld:
    """Simulated ``sessions`` (the data contract) and the ``truth`` behind them."""

    sessions: pd.DataFrame
    truth: dict[str, Any]


def _sessions(
    client: np.ndarray,
    therapist: np.ndarray,
    session: np.ndarray,
    ors: np.ndarray,
    srs: np.ndarray,
    n_clients: int,
    n_therapists: int,
    status: np.ndarray,
) -> pd.DataFrame:
    """Rows in the data contract, weekly sessions from a fixed start, scores rounded to 0.1
    and clipped to the SRS/ORS range."""
    return pd.DataFrame(
        {
            "client_id": pd.Series(padded_ids("C", n_clients)[client], dtype="str"),
            "therapist_id": pd.Series(
                padded_ids("T", n_therapists)[therapist[client]], dtype="str"
            ),
            "session": session.astype(np.int64),
            "session_date": START + pd.to_timedelta(7 * (session - 1) + client % 28, unit="D"),
            "end_status": pd.Series(status[client], dtype="str"),
            "ors": np.round(np.clip(ors, 0.0, 40.0), 1),
            "srs": np.round(np.clip(srs, 0.0, 40.0), 1),
        }
    )


def simulate_panel(
    *,
    n_clients: int = 1000,
    n_therapists: int = 50,
    waves: int = 8,
    seed: int,
    alliance_autoregression: float = 0.4,
    outcome_autoregression: float = 0.3,
    alliance_to_outcome: float = 0.25,
    outcome_to_alliance: float = 0.1,
    innovation_sd_alliance: float = 1.5,
    innovation_sd_outcome: float = 3.0,
    innovation_correlation: float = 0.2,
    ri_sd_alliance: float = 3.0,
    ri_sd_outcome: float = 5.0,
    ri_correlation: float = 0.3,
    trend_sd_alliance: float = 0.0,
    trend_sd_outcome: float = 0.0,
    trend_correlation: float = 0.0,
    dropout: float = 0.0,
    missing: float = 0.0,
) -> SimulatedWorld:
    """Alliance (SRS points) and outcome (ORS points) over sessions as an RI-CLPM.

    For client *i* at session *t* = 1…``waves``::

        A_it = 30 + 0.5 min(t - 1, 4) + RIa_i + ta_i (t - 1) + wa_it
        Y_it = 20 + 8 (1 - exp(-(t - 1) / 4)) + RIy_i + ty_i (t - 1) + wy_it
        wa_it = alliance_autoregression wa_i,t-1 + outcome_to_alliance wy_i,t-1 + za_it
        wy_it = outcome_autoregression wy_i,t-1 + alliance_to_outcome wa_i,t-1 + zy_it

    with (RIa, RIy), the trends (ta, ty) and the innovations (za, zy) bivariate normal with
    the given SDs and correlations, the first session's within parts drawn from the
    innovations. After each session a client leaves with probability ``dropout`` (MCAR), and
    each rating is missing with probability ``missing``. The grand trajectories (formation of
    the alliance over five sessions, an exponential gain; illustrative) are absorbed by the
    RI-CLPM's wave intercepts and the lagged models' session term.

    Returns
    -------
    SimulatedWorld
        ``truth`` holds every argument.
    """
    truth = {k: v for k, v in locals().items() if k != "truth"}
    rng = np.random.default_rng(seed)

    def pairs(sd_a: float, sd_y: float, rho: float, size: int) -> tuple[np.ndarray, np.ndarray]:
        cov = [[sd_a**2, rho * sd_a * sd_y], [rho * sd_a * sd_y, sd_y**2]]
        draw = rng.multivariate_normal([0.0, 0.0], cov, size=size)
        return draw[:, 0], draw[:, 1]

    therapist = rng.integers(0, n_therapists, n_clients)
    ri_a, ri_y = pairs(ri_sd_alliance, ri_sd_outcome, ri_correlation, n_clients)
    trend_a, trend_y = pairs(trend_sd_alliance, trend_sd_outcome, trend_correlation, n_clients)
    wa, wy = pairs(innovation_sd_alliance, innovation_sd_outcome, innovation_correlation, n_clients)
    active = np.ones(n_clients, dtype=bool)
    status = np.full(n_clients, "planned", dtype=object)
    columns: dict[str, list[np.ndarray]] = {"client": [], "session": [], "ors": [], "srs": []}
    for t in range(1, waves + 1):
        if t > 1:
            za, zy = pairs(
                innovation_sd_alliance, innovation_sd_outcome, innovation_correlation, n_clients
            )
            wa, wy = (
                alliance_autoregression * wa + outcome_to_alliance * wy + za,
                outcome_autoregression * wy + alliance_to_outcome * wa + zy,
            )
        idx = np.flatnonzero(active)
        alliance = 30.0 + 0.5 * min(t - 1, 4) + ri_a + trend_a * (t - 1) + wa
        outcome = 20.0 + 8.0 * (1.0 - np.exp(-(t - 1) / 4.0)) + ri_y + trend_y * (t - 1) + wy
        columns["client"].append(idx)
        columns["session"].append(np.full(idx.size, t))
        columns["srs"].append(np.where(rng.random(idx.size) < missing, np.nan, alliance[idx]))
        columns["ors"].append(np.where(rng.random(idx.size) < missing, np.nan, outcome[idx]))
        leaving = idx[rng.random(idx.size) < dropout] if t < waves else idx[:0]
        active[leaving] = False
        status[leaving] = "dropout"
    data = {k: np.concatenate(v) for k, v in columns.items()}
    order = np.lexsort((data["session"], data["client"]))
    data = {k: v[order] for k, v in data.items()}
    sessions = _sessions(
        data["client"],
        therapist,
        data["session"],
        data["ors"],
        data["srs"],
        n_clients,
        n_therapists,
        status,
    )
    return SimulatedWorld(sessions, truth)


def simulate_contextual(
    *,
    n_therapists: int = 200,
    clients_per_therapist: int = 4,
    seed: int,
    alliance_sd_therapist: float = 1.5,
    alliance_sd_client: float = 3.0,
    effect_between: float = 1.0,
    effect_within: float = 0.3,
    intake_effect: float = 0.6,
    outcome_sd_therapist: float = 1.0,
    residual_sd: float = 5.0,
) -> SimulatedWorld:
    """Clients in therapists whose alliance acts differently at the two levels.

    For client *i* of therapist *j*::

        alliance_early_ij = 30 + u_j + e_ij           u_j ~ N(0, alliance_sd_therapist²)
        intake_ij = 20 + N(0, 6²)                     e_ij ~ N(0, alliance_sd_client²)
        final_ij = 26 + effect_between u_j + effect_within e_ij
                   + intake_effect (intake_ij - 20) + o_j + N(0, residual_sd²)

    (o_j ~ N(0, outcome_sd_therapist²)). Each client has four sessions: the intake ORS at
    session 1, the alliance (SRS) at session 3, the final ORS at session 4. With the
    defaults the therapists hold 20% of the alliance variance and the observed mean of four
    clients has reliability 0.5, so the observed-mean between effect is biased towards the
    within effect (Lüdtke et al., 2008), and the latent one is not.

    Returns
    -------
    SimulatedWorld
        ``truth`` holds every argument and ``contextual`` = effect_between − effect_within.
    """
    truth = {k: v for k, v in locals().items() if k != "truth"}
    truth["contextual"] = effect_between - effect_within
    rng = np.random.default_rng(seed)
    n = n_therapists * clients_per_therapist
    therapist = np.repeat(np.arange(n_therapists), clients_per_therapist)
    u = rng.normal(0.0, alliance_sd_therapist, n_therapists)[therapist]
    e = rng.normal(0.0, alliance_sd_client, n)
    intake = 20.0 + rng.normal(0.0, 6.0, n)
    o = rng.normal(0.0, outcome_sd_therapist, n_therapists)[therapist]
    final = (
        26.0
        + effect_between * u
        + effect_within * e
        + intake_effect * (intake - 20.0)
        + o
        + rng.normal(0.0, residual_sd, n)
    )
    client = np.repeat(np.arange(n), 4)
    session = np.tile(np.arange(1, 5), n)
    nothing = np.full(n, np.nan)
    ors = np.column_stack([intake, nothing, nothing, final]).ravel()
    srs = np.column_stack([nothing, nothing, 30.0 + u + e, nothing]).ravel()
    status = np.full(n, "planned", dtype=object)
    sessions = _sessions(client, therapist, session, ors, srs, n, n_therapists, status)
    return SimulatedWorld(sessions, truth)
