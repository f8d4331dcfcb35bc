"""Pooling the alliance-outcome correlation across datasets (or sites): two stages and one.

**Two-stage**: each study (a dataset, or a site within a dataset) contributes its partial
correlation of early alliance with final outcome controlling intake, on Fisher's z scale with
sampling variance 1 / (n - 4) (one covariate: 1 / (n - 3 - 1)). :func:`random_effects` pools
them by a random-effects meta-analysis: REML between-study variance tau² (statsmodels'
meta-analysis offers DerSimonian-Laird and Paule-Mandel but not REML, so the REML criterion
is maximised here), Hartung-Knapp(-Sidik-Jonkman) confidence interval and test with k - 1
degrees of freedom, Cochran's Q, I² with Higgins & Thompson's typical within-study variance,
and the prediction interval for a new study; estimates back-transformed to r. This follows
R's ``metafor::rma(yi, vi, method = "REML", test = "knha")``, against which it is tested.

**One-stage**: all studies' clients in one mixed model, with the study as a level:
``final_resid ~ alliance_resid + (1 | study) + (1 | study:therapist_id)``, where both
variables are residualised on intake and standardised within each study, so the slope is a
pooled partial correlation in the same metric.

References
----------
Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in adult
psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.
Hartung, J., & Knapp, G. (2001). On tests of the overall treatment effect in meta-analysis
with normally distributed responses. Statistics in Medicine, 20(12), 1771-1782.
Higgins, J. P. T., & Thompson, S. G. (2002). Quantifying heterogeneity in a meta-analysis.
Statistics in Medicine, 21(11), 1539-1558.
Veroniki, A. A., et al. (2016). Methods to estimate the between-study variance and its
uncertainty in meta-analysis. Research Synthesis Methods, 7(1), 55-79.
Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor package. Journal of
Statistical Software, 36(3), 1-48.

Examples
--------
>>> result = random_effects(np.array([0.30, 0.25, 0.35]), np.array([0.01, 0.02, 0.015]))
>>> round(result.estimate, 3), result.k
(0.304, 3)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from . import tidy
from .distributions import chi2_sf, t_ppf, t_sf
from .engine import DEFAULT_ENGINE, fit_lmm
from .models import _eligible, partial_correlation
from .tidy import TIDY_COLUMNS

__all__ = [
    "LITERATURE_R",
    "MetaResult",
    "one_stage",
    "pooled_table",
    "random_effects",
    "study_effects",
]

FEW_STUDIES = 5
"""Below this many studies the pooled rows carry a caution (random-effects meta-analyses of
few studies estimate tau² poorly; Veroniki et al., 2016)."""
LITERATURE_R = 0.278
"""The meta-analytic alliance-outcome correlation of Flückiger et al. (2018): r = .278,
95% CI [.256, .299], 295 studies; drawn as the forest plot's reference line."""


@dataclass
class MetaResult:
    """A random-effects meta-analysis on the scale of the inputs (Fisher's z here)."""

    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    tau2: float
    i2: float
    q: float
    q_p_value: float
    pi_low: float
    pi_high: float
    k: int
    weights: np.ndarray


def _reml_tau2(y: np.ndarray, v: np.ndarray) -> float:
    def negative_restricted_loglik(tau2: float) -> float:
        w = 1 / (v + tau2)
        mu = np.sum(w * y) / np.sum(w)
        return 0.5 * (np.sum(np.log(v + tau2)) + np.log(np.sum(w)) + np.sum(w * (y - mu) ** 2))

    upper = 10 * (np.var(y) + np.max(v)) + 1.0
    result = optimize.minimize_scalar(
        negative_restricted_loglik,
        bounds=(0.0, upper),
        method="bounded",
        options={"xatol": 1e-12},
    )
    at_zero = negative_restricted_loglik(0.0)
    return 0.0 if at_zero <= result.fun else float(result.x)


def random_effects(y: np.ndarray, v: np.ndarray, level: float = 0.95) -> MetaResult:
    """REML random-effects meta-analysis with Hartung-Knapp inference.

    Parameters
    ----------
    y : numpy.ndarray
        Study estimates.
    v : numpy.ndarray
        Their sampling variances.
    level : float
        Confidence level.

    Returns
    -------
    MetaResult
        On the scale of ``y``.
    """
    y, v = np.asarray(y, float), np.asarray(v, float)
    k = len(y)
    if k < 2:
        raise ValueError("a meta-analysis needs at least two studies")
    tau2 = _reml_tau2(y, v)
    w = 1 / (v + tau2)
    mu = float(np.sum(w * y) / np.sum(w))
    se = float(np.sqrt(np.sum(w * (y - mu) ** 2) / ((k - 1) * np.sum(w))))
    crit = t_ppf(0.5 + level / 2, k - 1)
    p_value = float(2 * t_sf(abs(mu / se), k - 1)) if se > 0 else 0.0
    w_fixed = 1 / v
    mu_fixed = np.sum(w_fixed * y) / np.sum(w_fixed)
    q = float(np.sum(w_fixed * (y - mu_fixed) ** 2))
    typical = (k - 1) * np.sum(w_fixed) / (np.sum(w_fixed) ** 2 - np.sum(w_fixed**2))
    pi_half = crit * np.sqrt(se**2 + tau2)
    return MetaResult(
        estimate=mu,
        std_error=se,
        ci_low=mu - crit * se,
        ci_high=mu + crit * se,
        p_value=p_value,
        tau2=tau2,
        i2=float(100 * tau2 / (tau2 + typical)),
        q=q,
        q_p_value=float(chi2_sf(q, k - 1)),
        pi_low=mu - pi_half,
        pi_high=mu + pi_half,
        k=k,
        weights=w / np.sum(w),
    )


CLIENT_COLUMNS = ("site_id", "therapist_id", "eligible", "alliance_early", "outcome_final",
                  "outcome_intake")  # fmt: skip
"""The client table's columns the pooled analyses read (the site, for pooling by site). The
rules read only these: at 10M clients ``pooled_sites`` peaked at 4.4 GB reading the whole
table, 2.4 GB reading these (``/usr/bin/time``, identical outputs)."""


def study_effects(studies: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Each study's partial correlation of early alliance with final outcome given intake.

    Parameters
    ----------
    studies : mapping
        Study name -> client table (:func:`allianceanalysis.derive.client_table`).

    Returns
    -------
    pandas.DataFrame
        ``study, n, r, ci_low, ci_high, z, var_z`` (var_z = 1 / (n - 4)).
    """
    rows = []
    for name, clients in studies.items():
        table = partial_correlation(
            _eligible(clients), "alliance_early", "outcome_final", "outcome_intake"
        )
        r = table.set_index("term").loc["partial_r"]
        n = int(r["n_obs"])
        rows.append(
            {
                "study": name,
                "n": n,
                "r": r["estimate"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "z": np.arctanh(r["estimate"]),
                "var_z": 1 / (n - 4),
            }
        )
    return pd.DataFrame(rows)


def _standardised_residuals(clients: pd.DataFrame) -> pd.DataFrame:
    data = clients[clients["eligible"]].dropna(
        subset=["alliance_early", "outcome_final", "outcome_intake"]
    )
    x = np.column_stack([np.ones(len(data)), data["outcome_intake"].to_numpy(float)])
    out = data[["therapist_id"]].copy()
    for source, target in (("alliance_early", "alliance_resid"), ("outcome_final", "final_resid")):
        values = data[source].to_numpy(float)
        resid = values - x @ np.linalg.lstsq(x, values, rcond=None)[0]
        out[target] = resid / resid.std(ddof=1)
    return out


def one_stage(studies: Mapping[str, pd.DataFrame], *, engine: str = DEFAULT_ENGINE) -> pd.DataFrame:
    """The one-stage model over all studies (tidy rows of model ``one_stage``)."""
    from .models import tidy_fit

    data = pd.concat(
        [_standardised_residuals(c).assign(study=name) for name, c in studies.items()],
        ignore_index=True,
    )
    fit = fit_lmm("final_resid ~ alliance_resid + (1 | study/therapist_id)", data, engine)
    return tidy.frame(tidy_fit("one_stage", fit))


def pooled_table(studies: Mapping[str, pd.DataFrame], model: str) -> pd.DataFrame:
    """Tidy rows of a two-stage pooled analysis: one row per study (``study:<name>``), the
    pooled correlation (``pooled_r``, Hartung-Knapp interval), ``prediction_interval`` (its
    bounds as the interval), ``tau2`` (z scale), ``i2`` (percent) and ``q`` (with its
    p-value). ``n_obs`` counts clients, ``n_groups`` studies."""
    effects = study_effects(studies)
    rows = [
        tidy.row(
            model,
            f"study:{e.study}",
            e.r,
            ci_low=e.ci_low,
            ci_high=e.ci_high,
            n_obs=e.n,
            n_groups=1,
            converged=True,
            ci_method="fisher_z",
        )
        for e in effects.itertuples()
    ]
    if len(effects) >= 2:
        meta = random_effects(effects["z"].to_numpy(), effects["var_z"].to_numpy())
        few = (
            f"only {meta.k} studies: tau² is imprecise and the Hartung-Knapp interval (t with "
            f"{meta.k - 1} df) is wide"
            if meta.k < FEW_STUDIES
            else ""
        )
        common = {
            "n_obs": int(effects["n"].sum()),
            "n_groups": meta.k,
            "converged": True,
            "message": few,
        }
        rows += [
            tidy.row(
                model,
                "pooled_r",
                np.tanh(meta.estimate),
                std_error=meta.std_error,
                ci_low=np.tanh(meta.ci_low),
                ci_high=np.tanh(meta.ci_high),
                p_value=meta.p_value,
                df=meta.k - 1,
                ci_method="hartung_knapp_t",
                **common,
            ),
            tidy.row(
                model,
                "prediction_interval",
                np.tanh(meta.estimate),
                ci_low=np.tanh(meta.pi_low),
                ci_high=np.tanh(meta.pi_high),
                df=meta.k - 1,
                ci_method="prediction_t",
                **common,
            ),
            tidy.row(model, "tau2", meta.tau2, ci_method="reml", **common),
            tidy.row(model, "i2", meta.i2, **common),
            tidy.row(model, "q", meta.q, p_value=meta.q_p_value, df=meta.k - 1, **common),
        ]
    return tidy.frame(rows)[TIDY_COLUMNS]
