"""Power by simulation: how many clients and therapists a study needs.

For each design (numbers of clients and therapists) :func:`power_curve` simulates many studies
with known effects (:func:`allianceanalysis.simulate.simulate_study`), fits the catalogue
model that would be used on the real data, and counts how often the effect is detected at the
chosen alpha. The share detected estimates the power; its Monte Carlo standard error says how
many replicates are enough (Morris, White & Crowther, 2019).

The default question is the one therapist-effects research asks of the alliance: is there a
*between-therapist* alliance effect, a therapist whose clients rate the alliance higher getting
better outcomes (Baldwin, Wampold & Imel, 2007)? It is the ``alliance_therapist_mean``
coefficient of the catalogue's ``alliance_disaggregated`` model; ``between_minus_within`` (the
contextual effect) can be asked instead. Power depends mostly on the number of therapists,
not of clients: the effect is estimated from differences between therapists.

References
----------
Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.
Morris, T. P., White, I. R., & Crowther, M. J. (2019). Using simulation studies to evaluate
statistical methods. Statistics in Medicine, 38(11), 2074-2102.

Examples
--------
>>> curve = power_curve([{"n_clients": 200, "n_therapists": 10}], replicates=5, seed=1)
>>> curve[["n_clients", "n_therapists", "replicates"]].to_dict("records")
[{'n_clients': 200, 'n_therapists': 10, 'replicates': 5}]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .derive import client_table
from .effects import proportion
from .errors import NotEstimable
from .models import alliance_disaggregated
from .simulate import SimulationParameters, simulate_study

__all__ = ["POWER_COLUMNS", "REPLICATE_COLUMNS", "power_curve", "run_replicates", "summarise"]

REPLICATE_COLUMNS = [
    "design",
    "n_clients",
    "n_therapists",
    "replicate",
    "term",
    "estimate",
    "std_error",
    "p_value",
    "ci_low",
    "ci_high",
    "truth",
]
"""Columns of :func:`run_replicates`' table: one row per simulated study."""

POWER_COLUMNS = [
    "n_clients",
    "n_therapists",
    "term",
    "alpha",
    "replicates",
    "fitted",
    "power",
    "mc_se",
    "ci_low",
    "ci_high",
    "mean_estimate",
    "truth",
    "coverage",
]
"""Columns of :func:`power_curve`'s and :func:`summarise`'s table."""

TRUTHS = {
    "alliance_therapist_mean": "alliance_effect_between",
    "alliance_client_dev": "alliance_effect_within",
}
"""The simulator parameter each tested term estimates (``between_minus_within``: their
difference)."""


def _truth(params: SimulationParameters, term: str) -> float:
    """The simulator's value of the effect ``term`` estimates, in outcome points per alliance
    point of the simulated instruments (the parameters are set on the ORS/SRS metric)."""
    if term == "between_minus_within":
        effect = params.alliance_effect_between - params.alliance_effect_within
    else:
        effect = float(getattr(params, TRUTHS[term]))
    implied = params.implied()
    return effect * implied["outcome_scale"] / implied["alliance_scale"]


def run_replicates(
    design: Mapping[str, Any],
    numbers: Iterable[int],
    *,
    index: int = 0,
    term: str = "alliance_therapist_mean",
    params: SimulationParameters | None = None,
    early_session: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Simulate the replicates ``numbers`` of one design and fit each (one row per study).

    Replicate r of design ``index`` has its own random stream, seeded by ``(seed, index,
    r)``: a simulation study cut into batches (one cluster job each) gives the same rows as
    one run. A replicate where the model cannot be fitted has missing estimates.

    Parameters
    ----------
    design : mapping
        :class:`~allianceanalysis.simulate.SimulationParameters` changes, at least
        ``n_clients`` and ``n_therapists``; ``n_sites`` is 1 unless given.
    numbers : iterable of int
        The replicates to run (e.g. ``range(50, 100)`` for the second batch of 50).
    index : int
        The design's number in its study (part of every replicate's seed).
    term, params, early_session, seed
        As :func:`power_curve`.

    Returns
    -------
    pandas.DataFrame
        :data:`REPLICATE_COLUMNS`; ``truth`` is the value ``term`` estimates.
    """
    base = params or SimulationParameters()
    design = {"n_sites": 1, **design}
    truth = _truth(base.replace(**design), term)
    rows = []
    for number in numbers:
        stream = np.random.SeedSequence([seed, index, number])
        study = simulate_study(base, seed=int(stream.generate_state(1)[0]), **design)
        clients = client_table(study.sessions, base.outcome, base.alliance, early_session)
        try:
            fit = alliance_disaggregated(clients).set_index("term").loc[term]
        except NotEstimable:
            fit = pd.Series(dtype=float)
        rows.append({"design": index, "n_clients": design["n_clients"],
                     "n_therapists": design["n_therapists"], "replicate": number, "term": term,
                     **{k: fit.get(k, np.nan) for k in ("estimate", "std_error", "p_value",
                                                         "ci_low", "ci_high")},
                     "truth": truth})  # fmt: skip
    return pd.DataFrame(rows, columns=REPLICATE_COLUMNS)


def summarise(rows: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Power, its Monte Carlo error, the mean estimate and the coverage of the 95% intervals,
    per design, from :func:`run_replicates` rows (of one run, or of all batches together).

    A replicate that could not be fitted counts as not detecting the effect.
    """
    out = []
    for _, group in rows.groupby("design", sort=True):
        n = len(group)
        fitted = group["p_value"].notna()
        detected = int((group["p_value"] < alpha).sum())
        power, low, high = proportion(detected, n)
        covered = (group["ci_low"] <= group["truth"]) & (group["truth"] <= group["ci_high"])
        out.append(
            {
                "n_clients": int(group["n_clients"].iloc[0]),
                "n_therapists": int(group["n_therapists"].iloc[0]),
                "term": group["term"].iloc[0],
                "alpha": alpha,
                "replicates": n,
                "fitted": int(fitted.sum()),
                "power": power,
                "mc_se": float(np.sqrt(power * (1 - power) / n)),
                "ci_low": low,
                "ci_high": high,
                "mean_estimate": float(group["estimate"].mean()),
                "truth": float(group["truth"].iloc[0]),
                "coverage": float(covered[fitted].mean()) if fitted.any() else float("nan"),
            }
        )
    return pd.DataFrame(out, columns=POWER_COLUMNS)


def power_curve(
    designs: Iterable[Mapping[str, Any]],
    *,
    replicates: int = 200,
    alpha: float = 0.05,
    term: str = "alliance_therapist_mean",
    params: SimulationParameters | None = None,
    early_session: int = 3,
    seed: int = 0,
) -> pd.DataFrame:
    """Estimate power for each design by simulation.

    Parameters
    ----------
    designs : iterable of mappings
        Each a set of :class:`~allianceanalysis.simulate.SimulationParameters` changes; at
        least ``n_clients`` and ``n_therapists`` (e.g. ``{"n_clients": 400,
        "n_therapists": 20}``). ``n_sites`` is set to 1 unless given.
    replicates : int
        Studies simulated per design. The Monte Carlo standard error of a power near .8 is
        about .4 / sqrt(replicates): 200 replicates give ± .03.
    alpha : float
        Two-sided significance level of the test of ``term``.
    term : str
        The ``alliance_disaggregated`` row tested: ``alliance_therapist_mean`` (the
        between-therapist effect), ``alliance_client_dev`` (within) or
        ``between_minus_within`` (the contextual effect).
    params : SimulationParameters, optional
        The effects and everything else assumed (defaults: the simulator's; set
        ``alliance_effect_between`` to the effect to be detected).
    early_session : int
        The session whose alliance rating is analysed.
    seed : int
        Seed of the whole run; each replicate gets its own independent stream.

    Returns
    -------
    pandas.DataFrame
        One row per design (:data:`POWER_COLUMNS`): ``fitted`` replicates where the model
        could be fitted (the rest count as not detected), ``power`` = share of replicates with
        p < alpha, its Monte Carlo standard error ``mc_se`` and 95% Wilson interval, the mean
        estimate of ``term`` against its ``truth`` (a check of bias), and the ``coverage`` of
        the estimate's 95% intervals.
    """
    rows = [
        run_replicates(design, range(replicates), index=i, term=term, params=params,
                       early_session=early_session, seed=seed)
        for i, design in enumerate(designs)
    ]  # fmt: skip
    return summarise(pd.concat(rows, ignore_index=True), alpha)
