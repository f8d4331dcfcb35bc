"""Normal, Student t and chi-square tail probabilities and quantiles for tests and intervals.

The package's p-values and confidence intervals need six functions of three distributions.
They are the ``scipy.special`` functions that ``scipy.stats`` itself evaluates for them
(scipy 1.17, ``scipy/stats/_continuous_distns.py``: ``norm``, ``t`` and ``chi2``), so the
numbers are the same to the last bit; ``tests/test_distributions.py`` checks that against
``scipy.stats`` on a grid. Calling them directly spares every workflow job the import of
``scipy.stats`` (about 0.7 s, most of it building the docstrings of a hundred distributions),
the largest part of a small job's start-up.

Arguments broadcast as NumPy arrays do; a scalar argument gives a NumPy scalar.

Examples
--------
>>> round(float(norm_ppf(0.975)), 6)
1.959964
>>> round(float(2 * t_sf(2.0, 10)), 6)
0.073388
>>> round(float(chi2_ppf(0.95, 1)), 6)
3.841459
"""

from __future__ import annotations

from typing import Any

from scipy import special

__all__ = ["chi2_ppf", "chi2_sf", "norm_ppf", "norm_sf", "t_ppf", "t_sf"]


def norm_sf(x: Any) -> Any:
    """Upper tail of the standard normal, P(Z > x) (``scipy.stats.norm.sf``)."""
    return special.ndtr(-x)


def norm_ppf(q: Any) -> Any:
    """Quantile of the standard normal (``scipy.stats.norm.ppf``)."""
    return special.ndtri(q)


def t_sf(x: Any, df: Any) -> Any:
    """Upper tail of Student's t with ``df`` degrees of freedom (``scipy.stats.t.sf``)."""
    return special.stdtr(df, -x)


def t_ppf(q: Any, df: Any) -> Any:
    """Quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    return special.stdtrit(df, q)


def chi2_sf(x: Any, df: Any) -> Any:
    """Upper tail of the chi-square with ``df`` degrees of freedom (``scipy.stats.chi2.sf``)."""
    return special.chdtrc(df, x)


def chi2_ppf(q: Any, df: Any) -> Any:
    """Quantile of the chi-square with ``df`` degrees of freedom (``scipy.stats.chi2.ppf``)."""
    return 2 * special.gammaincinv(df / 2, q)
