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
from .engine import InsufficientDataError
from .models import alliance_disaggregated
from .simulate import SimulationParameters, simulate_study

__all__ = ["POWER_COLUMNS", "power_curve"]

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
]
"""Columns of :func:`power_curve`'s table."""


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
        p < alpha, its Monte Carlo standard error ``mc_se`` and 95% Wilson interval, and the
        mean estimate of ``term`` (against the truth, a check of bias).
    """
    base = params or SimulationParameters()
    rows = []
    designs = list(designs)
    streams = np.random.SeedSequence(seed).spawn(len(designs))
    for design, stream in zip(designs, streams, strict=True):
        design = {"n_sites": 1, **design}
        detected, fitted, estimates = 0, 0, []
        for child in stream.spawn(replicates):
            study = simulate_study(base, seed=int(child.generate_state(1)[0]), **design)
            clients = client_table(study.sessions, base.outcome, base.alliance, early_session)
            try:
                row = alliance_disaggregated(clients).set_index("term").loc[term]
            except InsufficientDataError:
                continue
            if pd.notna(row["p_value"]):
                fitted += 1
                estimates.append(row["estimate"])
                detected += int(row["p_value"] < alpha)
        power, low, high = proportion(detected, replicates)
        rows.append(
            {
                "n_clients": design["n_clients"],
                "n_therapists": design["n_therapists"],
                "term": term,
                "alpha": alpha,
                "replicates": replicates,
                "fitted": fitted,
                "power": power,
                "mc_se": float(np.sqrt(power * (1 - power) / replicates)),
                "ci_low": low,
                "ci_high": high,
                "mean_estimate": float(np.mean(estimates)) if estimates else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=POWER_COLUMNS)
