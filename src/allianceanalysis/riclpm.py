"""The random-intercept cross-lagged panel model of alliance and outcome over sessions.

Alliance and outcome at a client's first T attended sessions (waves) are each split into a
stable between-client part (a random intercept, a factor loading 1 on every wave) and a
within-client deviation per wave; the within deviations follow a cross-lagged panel: each
wave's alliance and outcome deviations are regressed on both of the previous wave's
(autoregressive and cross-lagged paths), with a covariance of the two within each wave. The
cross-lagged paths are then purely within-person: does a client's better-than-usual alliance
precede a better-than-usual outcome at the next session, and the reverse (Hamaker, Kuiper &
Grasman, 2015)? Falkenström, Solomonov & Rubel (2022) recommend it as the check on the lagged
multilevel models of the catalogue.

The syntax is Mulder & Hamaker's (2021), as lavaan fits it with ``lavaan(model, data, missing =
"ML", meanstructure = TRUE, int.ov.free = TRUE)``: free intercepts at every wave (the average
trajectories), random intercepts uncorrelated with the first wave's within parts, and by
default the four lagged paths constrained equal over waves (``constrained``); the unconstrained
model is fitted beside it and the likelihood-ratio test between them is a row. Clients with
fewer than T sessions, or a missing rating, contribute what they have (full-information ML
over missing-data patterns, :mod:`allianceanalysis.sem`). Clients' nesting in therapists is
not modelled.

References
----------
Falkenström, F., Solomonov, N., & Rubel, J. A. (2022). How to model and interpret
cross-lagged effects in psychotherapy mechanisms of change research. Psychotherapy Research,
32(2), 206-222.
Hamaker, E. L., Kuiper, R. M., & Grasman, R. P. P. P. (2015). A critique of the cross-lagged
panel model. Psychological Methods, 20(1), 102-116.
Mulder, J. D., & Hamaker, E. L. (2021). Three extensions of the random intercept cross-lagged
panel model. Structural Equation Modeling, 28(4), 638-648.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import tidy
from .derive import CaseOrder
from .distributions import chi2_sf
from .errors import NotEstimable
from .sem import MLFit, Model, Patterns, fit_ml, saturated_moments
from .shards import ShardedTable, case_order, frames, release_memory

__all__ = ["DEFAULT_WAVES", "MIN_WAVES", "fit_indices", "riclpm", "riclpm_model", "wide_panel"]

DEFAULT_WAVES = 6
"""The first six attended sessions: the alliance forms over sessions 3-5 (Horvath &
Luborsky, 1993), and most routine episodes reach six sessions."""
MIN_WAVES = 3
"""Three waves at least: with two, the random intercepts and the lagged paths are not
separately identified (Hamaker et al., 2015)."""
PATHS = {
    "alliance_autoregression": ("a", "a"),
    "outcome_autoregression": ("y", "y"),
    "alliance_to_outcome": ("y", "a"),
    "outcome_to_alliance": ("a", "y"),
}
"""The lagged paths: name -> (the later wave's variable, the earlier wave's)."""


def riclpm_model(waves: int, constrained: bool = True, starts: dict | None = None) -> Model:
    """The RI-CLPM over ``waves`` waves of alliance (``a1``…) and outcome (``y1``…), lagged
    paths equal over waves when ``constrained`` (Mulder & Hamaker, 2021, with lavaan's
    names: random intercepts ``RIa``, ``RIy``; within parts ``wa1``…, ``wy1``…)."""
    starts = starts or {}
    observed = [f"{v}{t}" for v in "ay" for t in range(1, waves + 1)]
    latent = ["RIa", "RIy", *[f"w{v}{t}" for v in "ay" for t in range(1, waves + 1)]]
    model = Model([observed], [latent])
    for v in "ay":
        for t in range(1, waves + 1):
            model.add(0, "=~", f"RI{v}", f"{v}{t}", fixed=1.0)
            model.add(0, "=~", f"w{v}{t}", f"{v}{t}", fixed=1.0)
    for t in range(2, waves + 1):
        for name, (later, earlier) in PATHS.items():
            label = name if constrained else f"{name}_t{t}"
            model.add(
                0,
                "~",
                f"w{later}{t}",
                f"w{earlier}{t - 1}",
                label=label,
                start=0.2 if later == earlier else 0.0,
            )
    for t in range(1, waves + 1):
        model.add(0, "~~", f"wa{t}", f"wy{t}", label=f"cov_within_t{t}")
        for v, role in (("a", "alliance"), ("y", "outcome")):
            model.add(
                0,
                "~~",
                f"w{v}{t}",
                f"w{v}{t}",
                label=f"var_within_{role}_t{t}",
                start=starts.get(f"{v}{t}", 1.0) / 2,
            )
            model.add(
                0, "~1", f"{v}{t}", label=f"mean_{role}_t{t}", start=starts.get(f"m{v}{t}", 0.0)
            )
    model.add(0, "~~", "RIa", "RIa", label="var_ri_alliance", start=starts.get("a1", 1.0) / 2)
    model.add(0, "~~", "RIy", "RIy", label="var_ri_outcome", start=starts.get("y1", 1.0) / 2)
    model.add(0, "~~", "RIa", "RIy", label="cov_ri")
    return model


def wide_panel(
    sessions: pd.DataFrame, outcome: str, alliance: str, waves: int
) -> tuple[np.ndarray, int]:
    """Alliance and outcome at each case's first ``waves`` attended sessions, cases by
    (a1…aT, y1…yT), NaN where missing; and the number of cases (no loop over cases)."""
    cases = CaseOrder(sessions)
    return _wide(cases, outcome, alliance, waves), cases.n


def _wide(cases: CaseOrder, outcome: str, alliance: str, waves: int) -> np.ndarray:
    """:func:`wide_panel`'s array from the ordered sessions."""
    wave = np.arange(len(cases.case)) - cases.first[cases.case]
    keep = wave < waves
    panel = np.full((cases.n, 2 * waves), np.nan)
    rows, cols = cases.case[keep], wave[keep]
    for offset, column in ((0, alliance), (waves, outcome)):
        values = pd.to_numeric(cases.frame[column], errors="coerce").to_numpy(float)
        panel[rows, cols + offset] = values[keep]
    return panel


def _panel(
    sessions: pd.DataFrame | ShardedTable, outcome: str, alliance: str, waves: int
) -> np.ndarray:
    """:func:`wide_panel`'s array of sessions given whole or in shards: each shard's panel is
    made from its sessions, and the shards' rows are placed in the whole data's case order
    (the case keys sorted once, :func:`~allianceanalysis.shards.case_order`). The panel is
    held twice at most and never as a pandas frame: at 10M clients the RI-CLPM alone peaked
    at 3.66 GB this way, 3.88 GB with the shards' panels and keys concatenated and sorted as
    pandas frames."""
    panels, keys = [], []
    for frame in frames(sessions):
        cases = CaseOrder(frame)
        panels.append(_wide(cases, outcome, alliance, waves))
        keys.append(cases.frame[cases.keys].iloc[cases.first].reset_index(drop=True))
        del frame, cases
    if len(panels) == 1:
        return panels[0]
    order = case_order(keys)  # each row of the shards' panels, one after another: its place
    place = np.empty_like(order)
    place[order] = np.arange(len(order))
    del keys, order
    release_memory()  # the shards' reading: kept by the allocators, the fit would add to it
    panel = np.empty((len(place), 2 * waves))
    start = 0
    for k, part in enumerate(panels):
        panel[place[start : start + len(part)]] = part
        start += len(part)
        panels[k] = None  # placed: its memory goes
    return panel


def _starts(panel: np.ndarray, waves: int) -> dict[str, float]:
    variances = np.nanvar(panel, axis=0)
    means = np.nanmean(panel, axis=0)
    names = [f"{v}{t}" for v in "ay" for t in range(1, waves + 1)]
    return {
        **dict(zip(names, variances, strict=True)),
        **{f"m{n}": m for n, m in zip(names, means, strict=True)},
    }


def fit_indices(fit: MLFit, data: Patterns, h1: tuple, baseline: MLFit) -> dict[str, tuple]:
    """lavaan's χ², CFI, RMSEA (with its 90% interval) and SRMR (Bentler's, with the means)
    of ``fit`` against the saturated model ``h1`` (EM; :func:`saturated_moments`) and the
    independence ``baseline``; each value with its df and p-value where it has them."""
    sigma_h1, mu_h1, loglik_h1 = h1
    p = sigma_h1.shape[0]
    moments = p * (p + 3) // 2
    n = data.n
    chisq = max(2.0 * (loglik_h1 - fit.loglik), 0.0)
    df = moments - fit.n_parameters
    base_chisq = 2.0 * (loglik_h1 - baseline.loglik)
    base_df = moments - baseline.n_parameters
    excess = max(chisq - df, 0.0)
    cfi = 1.0 - excess / max(base_chisq - base_df, excess, 1e-300)
    rmsea = float(np.sqrt(excess / (df * n))) if df > 0 else np.nan
    low = high = np.nan
    if df > 0:
        low = _noncentrality(chisq, df, 0.95)
        high = _noncentrality(chisq, df, 0.05)
        low, high = np.sqrt(low / (df * n)), np.sqrt(high / (df * n))
    sigma, mu = fit.model.moments(fit.theta)[0]
    sd = np.sqrt(np.diag(sigma_h1))
    residual = (sigma_h1 - sigma) / np.outer(sd, sd)
    mean_residual = (mu_h1 - mu) / sd
    upper = residual[np.triu_indices(p)]
    srmr = float(np.sqrt((np.sum(upper**2) + np.sum(mean_residual**2)) / moments))
    return {
        "chisq": (chisq, df, float(chi2_sf(chisq, df)) if df > 0 else np.nan),
        "cfi": (cfi, np.nan, np.nan),
        "rmsea": (rmsea, low, high),
        "srmr": (srmr, np.nan, np.nan),
    }


def _noncentrality(chisq: float, df: int, probability: float) -> float:
    """The non-centrality at which χ² is the ``probability`` quantile (0 if none is).
    ``scipy.stats`` is imported here, not with the module: only the RI-CLPM's fit measures
    need the non-central chi-square, and every job importing the catalogue would pay 0.4 s."""
    from scipy import stats

    if stats.chi2.cdf(chisq, df) < probability:
        return 0.0
    upper = max(chisq, 1.0)
    while stats.ncx2.cdf(chisq, df, upper) > probability:
        upper *= 2.0
    from scipy.optimize import brentq

    return float(brentq(lambda lam: stats.ncx2.cdf(chisq, df, lam) - probability, 0.0, upper))


def _baseline(waves: int, starts: dict[str, float]) -> Model:
    observed = [f"{v}{t}" for v in "ay" for t in range(1, waves + 1)]
    model = Model([observed])
    for v in observed:
        model.add(0, "~~", v, v, start=starts[v])
        model.add(0, "~1", v, start=starts[f"m{v}"])
    return model


def _rows(model: str, fit: MLFit, n: int, message: str) -> list[dict[str, object]]:
    messages = "; ".join(filter(None, [*fit.messages, message]))
    return [
        fit.wald_row(model, name, {name: 1.0}, n_obs=n, converged=fit.converged,
                     message=messages)
        for name in fit.model.names
    ]  # fmt: skip


def riclpm(
    sessions: pd.DataFrame | ShardedTable,
    *,
    outcome: str = "ors",
    alliance: str = "srs",
    waves: int = DEFAULT_WAVES,
) -> pd.DataFrame:
    """Fit the RI-CLPM of alliance and outcome over the first ``waves`` attended sessions.

    Parameters
    ----------
    sessions : pandas.DataFrame or ShardedTable
        Validated sessions (one row per attended session), whole or in shards (a shard at a
        time).
    outcome, alliance : str
        The score columns.
    waves : int
        T, the number of waves: each case's first T attended sessions (default 6).

    Returns
    -------
    pandas.DataFrame
        Tidy rows of two models. ``riclpm`` (lagged paths equal over waves):
        ``alliance_to_outcome`` (a client's within-person alliance at one session on their
        outcome at the next), ``outcome_to_alliance``, ``alliance_autoregression``,
        ``outcome_autoregression``, the within-wave covariances ``cov_within_t*``, variances
        ``var_within_*``, intercepts ``mean_*``, the random intercepts' ``var_ri_alliance``,
        ``var_ri_outcome``, ``cov_ri`` and ``cor_ri``, and the fit: ``chisq`` (``df``,
        ``p_value``), ``cfi``, ``rmsea`` (90% interval), ``srmr``, ``loglik``; and
        ``lrt_time_invariance``, the likelihood-ratio test of the constraints against
        ``riclpm_unconstrained`` (its paths per wave, ``alliance_to_outcome_t2`` = from wave 1
        to 2 …). Wald intervals from the observed information (lavaan's with missing data).
        ``n_obs`` counts the clients with at least one rating.

    References
    ----------
    Mulder, J. D., & Hamaker, E. L. (2021). Three extensions of the random intercept
    cross-lagged panel model. Structural Equation Modeling, 28(4), 638-648.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=300, n_therapists=10, seed=3).sessions
    >>> table = riclpm(s, waves=4)
    >>> sorted(set(table["model"]))
    ['riclpm', 'riclpm_unconstrained']
    """
    if waves < MIN_WAVES:
        raise NotEstimable(
            f"too few waves: the RI-CLPM needs at least {MIN_WAVES} (waves = {waves})"
        )
    panel = _panel(sessions, outcome, alliance, waves)
    longest = int(
        np.max(np.sum(~np.isnan(panel[:, waves:]) | ~np.isnan(panel[:, :waves]), axis=1), initial=0)
    )
    reached = np.flatnonzero((~np.isnan(panel)).reshape(len(panel), 2, waves).any(axis=(0, 1)))
    if reached.size < waves:
        raise NotEstimable(
            f"too few sessions for waves = {waves}: no client has a rating at "
            f"session position {reached.size + 1} or later (the longest has "
            f"{longest})"
        )
    data = Patterns.from_array(panel)
    starts = _starts(panel, waves)
    constrained = riclpm_model(waves, True, starts)
    if data.n <= len(constrained.names):
        raise NotEstimable(
            f"{data.n} clients with a rating are too few for the RI-CLPM's "
            f"{len(constrained.names)} parameters"
        )
    fits = {}
    try:
        fits["riclpm"] = fit_ml(constrained, data)
        fits["riclpm_unconstrained"] = fit_ml(riclpm_model(waves, False, starts), data)
        baseline = fit_ml(_baseline(waves, starts), data, standard_errors=False)
        h1 = saturated_moments(data)
    except np.linalg.LinAlgError as exc:
        raise NotEstimable(f"the RI-CLPM could not be estimated from these data ({exc})") from exc
    note = "clients' nesting in therapists is not modelled"
    rows: list[dict[str, object]] = []
    for name, fit in fits.items():
        rows += _rows(name, fit, data.n, note)
        est = fit.estimates
        shown = 1.0 if fit.at_maximum else np.nan
        common = {"n_obs": data.n, "converged": fit.converged,
                  "message": "; ".join([*fit.messages, note])}  # fmt: skip
        cor = (
            est["cov_ri"] / np.sqrt(est["var_ri_alliance"] * est["var_ri_outcome"])
            if min(est["var_ri_alliance"], est["var_ri_outcome"]) > 0
            else np.nan
        )
        rows.append(tidy.row(name, "cor_ri", cor * shown, **common))
        for term, (value, a, b) in fit_indices(fit, data, h1, baseline).items():
            extra = (
                {"df": a, "p_value": b}
                if term == "chisq"
                else {"ci_low": a, "ci_high": b}
                if term == "rmsea"
                else {}
            )
            rows.append(tidy.row(name, term, value * shown, **extra, **common))
        rows.append(tidy.row(name, "loglik", fit.loglik * shown, **common))
    free, tied = fits["riclpm_unconstrained"], fits["riclpm"]
    reached = free.at_maximum and tied.at_maximum
    difference = max(2.0 * (free.loglik - tied.loglik), 0.0) if reached else np.nan
    df = free.n_parameters - tied.n_parameters
    rows.append(
        tidy.row(
            "riclpm",
            "lrt_time_invariance",
            difference,
            df=df,
            p_value=float(chi2_sf(difference, df)),
            n_obs=data.n,
            converged=tied.converged and free.converged,
            message="likelihood-ratio test of lagged paths equal over waves "
            "(riclpm) against free (riclpm_unconstrained)",
        )
    )
    return tidy.frame(rows)
