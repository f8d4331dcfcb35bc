"""Rubin's rules: one estimate from the analyses of ``m`` imputed data sets.

For an estimate ``q_j`` with squared standard error ``u_j`` in imputation ``j``:
``q̄ = mean(q)``, within variance ``ū = mean(u)``, between variance ``b = var(q)``, total
``t = ū + (1 + 1/m) b`` (Rubin, 1987). The relative increase in variance is
``riv = (1 + 1/m) b / ū``, the share of variance due to missing data ``lambda = (1 + 1/m) b / t``,
the degrees of freedom Barnard and Rubin's (1999) small-sample ones, the fraction of missing
information ``fmi = (riv + 2 / (df + 3)) / (riv + 1)`` and the relative efficiency of ``m``
imputations against infinitely many ``1 / (1 + fmi / m)``. These are R's ``mice::pool`` formulas
(van Buuren, 2018, ch. 2.3), ``lambda`` floored at 1e-4 in the degrees of freedom as there.

References
----------
Rubin, D. B. (1987). Multiple imputation for nonresponse in surveys. Wiley.
Barnard, J., & Rubin, D. B. (1999). Small-sample degrees of freedom with multiple imputation.
Biometrika, 86(4), 948-955.
van Buuren, S. (2018). Flexible imputation of missing data (2nd ed.). CRC Press.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .distributions import t_ppf, t_sf

__all__ = ["MI_COLUMNS", "Pooled", "barnard_rubin", "pool"]

MI_COLUMNS = ["m", "fmi", "riv", "relative_efficiency"]
"""The columns a pooled table has beside the tidy ones: imputations, fraction of missing
information, relative increase in variance and relative efficiency."""


def barnard_rubin(m: int, b: np.ndarray, t: np.ndarray, dfcom: np.ndarray) -> np.ndarray:
    """Barnard & Rubin's (1999) degrees of freedom (``dfcom``: the complete-data ones; inf for
    a z-based estimate).

    Examples
    --------
    >>> float(barnard_rubin(20, np.array(0.5), np.array(2.0), np.array(100.0))).__round__(2)
    57.29
    """
    lam = np.maximum((1 + 1 / m) * np.asarray(b) / np.asarray(t), 1e-4)
    old = (m - 1) / lam**2
    dfcom = np.asarray(dfcom, dtype=float)
    with np.errstate(invalid="ignore"):
        observed = (dfcom + 1) / (dfcom + 3) * dfcom * (1 - lam)
        return np.where(np.isinf(dfcom), old, old * observed / (old + observed))


@dataclass(frozen=True)
class Pooled:
    """Pooled estimates (arrays over terms)."""

    estimate: np.ndarray
    std_error: np.ndarray
    df: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    fmi: np.ndarray
    riv: np.ndarray
    relative_efficiency: np.ndarray
    m: int


def pool(
    estimates: np.ndarray, variances: np.ndarray, dfcom: np.ndarray | float, level: float = 0.95
) -> Pooled:
    """Pool ``m`` estimates and their squared standard errors by Rubin's rules.

    Parameters
    ----------
    estimates, variances : numpy.ndarray
        Imputations × terms (or one term: a vector of length m).
    dfcom : float or numpy.ndarray
        The complete-data degrees of freedom per term (inf for z-based estimates).
    level : float
        Confidence level of the interval (t with the pooled degrees of freedom).

    Returns
    -------
    Pooled

    Examples
    --------
    >>> p = pool(np.array([1.0, 1.2, 0.9, 1.1]), np.array([0.04, 0.05, 0.04, 0.05]), 50)
    >>> round(float(p.estimate), 3), round(float(p.std_error), 3), round(float(p.fmi), 2)
    (1.05, 0.257, 0.39)
    """
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = q.shape[0]
    if m < 2:
        raise ValueError(f"pooling needs at least 2 imputations; got {m}")
    qbar, ubar = q.mean(axis=0), u.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = ubar + (1 + 1 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = (1 + 1 / m) * b / ubar
        df = barnard_rubin(m, b, t, np.broadcast_to(np.asarray(dfcom, dtype=float), qbar.shape))
        fmi = (riv + 2 / (df + 3)) / (riv + 1)
        se = np.sqrt(t)
        crit = t_ppf(0.5 + level / 2, df)
        p_value = 2 * t_sf(np.abs(qbar / se), df)
    return Pooled(
        estimate=qbar,
        std_error=se,
        df=df,
        ci_low=qbar - crit * se,
        ci_high=qbar + crit * se,
        p_value=p_value,
        fmi=fmi,
        riv=riv,
        relative_efficiency=1 / (1 + fmi / m),
        m=m,
    )
