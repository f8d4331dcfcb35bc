"""Logistic regression by Newton's method, from sums over the rows' pieces.

``glm(y ~ x1 + … , family = binomial)``: Newton–Raphson on the log-likelihood, each iteration
one pass over the rows, which are given in pieces (a dataset's shards): each piece adds its
``X'WX``, ``X'(y − μ)`` and log-likelihood, so one piece is in memory at a time, and several
models over the same rows (cross-validation, each leaving one fold out) are fitted in the same
passes. A step that lowers the log-likelihood is halved. Standard errors are model-based
(``glm``) or clustered (CR1: ``sandwich::vcovCL(type = "HC1")``, statsmodels'
``cov_type="cluster"``), from the clusters' scores added up per cluster over the pieces.

Written for the dropout-risk model at a national scale: statsmodels' ``Logit`` needs the
whole design in memory (72 million person-periods at 10 million clients, several copies of
them while it fits). The tests hold it to statsmodels on the same rows.

References
----------
McCullagh, P., & Nelder, J. A. (1989). Generalized linear models (2nd ed.). Chapman & Hall.
Zeileis, A., Köll, S., & Graham, N. (2020). Various versatile variances: An object-oriented
implementation of clustered covariances in R. Journal of Statistical Software, 95(1), 1-36.

Examples
--------
>>> rng = np.random.default_rng(1)
>>> x = rng.normal(size=2000)
>>> y = (rng.random(2000) < 1 / (1 + np.exp(0.5 - x))).astype(float)
>>> rows = LogitRows(np.column_stack([np.ones_like(x), x]), y)
>>> fit = fit_logits([lambda: rows])[0]
>>> np.round(fit.params, 2).tolist(), fit.converged  # the truth: -0.5 and 1
([-0.37, 0.91], True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["LogitFit", "LogitRows", "fit_logits", "logistic_terms", "softplus"]

MAX_ITERATIONS = 50
"""Newton iterations (and step halvings) before a fit is reported as not converged
(statsmodels stops at 35 Newton steps; the log-likelihood is concave, so a fit that converges
at all does so in a handful)."""
TOLERANCE = 1e-10
"""Converged when no coefficient's step exceeds this, relative to its size (one more step
after statsmodels' 1e-8, whose next step would be of order 1e-16)."""

_BLOCK = 1 << 14
"""Rows added at a time: a block's working arrays (linear predictor, weights, residuals) stay
in cache, and a fold's rows are masked within it rather than copied out. Of 4,096 to 65,536
rows, 16,384 added five predictors' rows fastest (37% faster than 65,536, whose design of
2.6 MB leaves the cache: this machine, 3.6 million rows)."""
_RUN = 1 << 10
"""Rows summed in float64 before their sum joins the total in extended precision. The score is
what the root is defined by; summed in float64 over millions of rows its rounding, which
depends on the order of the rows, moved the coefficients by up to 1e-9 relative between the
same rows whole and in shards. Summed in runs of 1,024 (BLAS, 20 times faster than products
in extended precision), each run's rounding is of the order of 1e-17 of the score's terms,
and the runs' sums are added in extended precision (64-bit mantissa): the shards' fit is the
whole table's to rounding (``tests/test_logit.py``)."""


def softplus(eta: np.ndarray) -> np.ndarray:
    """log(1 + e^η), the log-likelihood's normaliser of a logistic model, without overflow:
    ``numpy.logaddexp(0, η)`` to rounding (4e-16), in 60% of its time.

    Examples
    --------
    >>> softplus(np.array([-800.0, 0.0, 800.0])).tolist()
    [0.0, 0.6931471805599453, 800.0]
    """
    return np.log1p(np.exp(-np.abs(eta))) + np.maximum(eta, 0.0)


def logistic_terms(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ = 1/(1 + e^−η) and log(1 + e^η) (:func:`softplus`) from one exponential,
    e^−|η|: a logistic log-likelihood's mean and normaliser, ``scipy.special.expit`` and
    :func:`softplus` to rounding (2e-16), in about half their time.

    Examples
    --------
    >>> mu, normaliser = logistic_terms(np.array([-800.0, 0.0, 800.0]))
    >>> mu.tolist(), normaliser.tolist()
    ([0.0, 0.5, 1.0], [0.0, 0.6931471805599453, 800.0])
    """
    small = np.exp(-np.abs(eta))
    ratio = 1.0 / (1.0 + small)
    mu = np.where(eta >= 0.0, ratio, small * ratio)
    return mu, np.log1p(small) + np.maximum(eta, 0.0)


def _extended_products(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left.T @ right`` (rows × a, rows × b) in float64 over each run of :data:`_RUN` rows,
    the runs' products added in extended precision."""
    full = len(left) - len(left) % _RUN
    a, b = left.shape[1], right.shape[1]
    runs = np.matmul(left[:full].reshape(-1, _RUN, a).transpose(0, 2, 1),
                     right[:full].reshape(-1, _RUN, b))  # fmt: skip
    total = runs.astype(np.longdouble).sum(axis=0)
    return total + (left[full:].T @ right[full:]).astype(np.longdouble)


@dataclass(frozen=True)
class LogitRows:
    """One piece of a logistic regression's rows.

    Attributes
    ----------
    exog : numpy.ndarray
        The design (rows x p, with its intercept column).
    endog : numpy.ndarray
        0/1 responses.
    fold : numpy.ndarray, optional
        Each row's cross-validation fold (0, 1, …).
    cluster : numpy.ndarray, optional
        Each row's cluster, an integer code 0 … G − 1 shared by all pieces.
    """

    exog: np.ndarray
    endog: np.ndarray
    fold: np.ndarray | None = None
    cluster: np.ndarray | None = None


@dataclass(frozen=True)
class LogitFit:
    """A fitted logistic regression.

    Attributes
    ----------
    params : numpy.ndarray
        Coefficients (log-odds).
    covariance : numpy.ndarray or None
        Their covariance: clustered (CR1) when the rows have clusters and the fit was asked
        for them, model-based otherwise; None when the information matrix is singular.
    loglik : float
    n_obs : int
    converged : bool
    message : str
        Why the fit is not to be trusted, if it is not.
    """

    params: np.ndarray
    covariance: np.ndarray | None
    loglik: float
    n_obs: int
    converged: bool
    message: str


class _Sums:
    """One model's sums over the rows, at one value of its coefficients: the information in
    extended precision too when it is ``final`` (the one the covariance is computed from)."""

    def __init__(self, p: int, clusters: int | None, final: bool = False) -> None:
        self.information = np.zeros((p, p), dtype=np.longdouble if final else float)
        self.score = np.zeros(p, dtype=np.longdouble)
        self.loglik = 0.0
        self.n = 0
        self.by_cluster = None if clusters is None else np.zeros((clusters, p))

    def add(self, exog: np.ndarray, endog: np.ndarray, params: np.ndarray,
            cluster: np.ndarray | None, keep: np.ndarray | None = None) -> None:  # fmt: skip
        """Add the rows (those where ``keep`` is true, if given), :data:`_BLOCK` at a time: a
        block's working arrays stay in cache, and a left-out row adds exact zeros (its weight
        and residual masked), so a fold's rows are not copied out."""
        for start in range(0, len(endog), _BLOCK):
            block = slice(start, start + _BLOCK)
            rows, response = exog[block], endog[block]
            eta = rows @ params
            mu, normaliser = logistic_terms(eta)
            residual = response - mu
            weight = mu * (1.0 - mu)
            loglik = response * eta - normaliser
            if keep is not None:
                kept = keep[block]
                residual *= kept
                weight *= kept
                loglik = loglik[kept]
            self.score += _extended_products(rows, residual[:, None])[:, 0]
            if self.information.dtype == float:  # X'WX as (W½X)'(W½X): BLAS's syrk
                root = rows * np.sqrt(weight)[:, None]
                self.information += root.T @ root
            else:
                self.information += _extended_products(rows * weight[:, None], rows)
            self.loglik += float(np.sum(loglik))
            if self.by_cluster is not None and cluster is not None:
                codes, g = cluster[block], len(self.by_cluster)
                for j in range(rows.shape[1]):
                    self.by_cluster[:, j] += np.bincount(codes, weights=rows[:, j] * residual,
                                                         minlength=g)  # fmt: skip
        self.n += len(endog) if keep is None else int(np.count_nonzero(keep))


def _passes(
    pieces: Sequence[Callable[[], LogitRows]],
    models: Sequence[int | None],
    params: list[np.ndarray],
    active: list[bool],
    clusters: int | None = None,
    final: bool = False,
) -> list[_Sums | None]:
    """One pass over the pieces: each active model's sums at its coefficients, over its rows
    (all, or those not in its left-out fold); the ``final`` pass's information in extended
    precision."""
    p = len(params[0])
    sums = [_Sums(p, clusters, final) if on else None for on in active]
    for piece in pieces:
        rows = piece()
        for k, fold in enumerate(models):
            if sums[k] is None:
                continue
            keep = None if fold is None else rows.fold != fold
            sums[k].add(rows.exog, rows.endog, params[k], rows.cluster, keep)
    return sums


def fit_logits(
    pieces: Sequence[Callable[[], LogitRows]],
    models: Sequence[int | None] = (None,),
    *,
    clusters: int | None = None,
    start: np.ndarray | None = None,
) -> list[LogitFit]:
    """Logistic regressions of the same rows, given in pieces, fitted together.

    Parameters
    ----------
    pieces : list of callable
        Each returns its piece's :class:`LogitRows` (read again at every pass).
    models : list of int or None
        One model per entry: None fits all rows; a fold number fits the rows not in that fold.
    clusters : int, optional
        The number of clusters: the covariance of the models of all rows is then clustered
        by the pieces' ``cluster`` codes (CR1, with statsmodels' and ``sandwich``'s
        small-sample factor ``G/(G − 1) · (n − 1)/(n − p)``).
    start : numpy.ndarray, optional
        Every model's first coefficients (zeros if not given): a cross-validation's models
        started from the model of all rows are a Newton step or two from their own, where
        from zeros they take six or seven. The log-likelihood is concave, so the fits reach
        the same coefficients to :data:`TOLERANCE` from either.

    Returns
    -------
    list of LogitFit
        One per model. A model whose rows hold one kind of response, or whose information
        matrix is singular (collinear predictors), or that did not converge (separation),
        says so in ``message``.
    """
    if not pieces:
        raise ValueError("no pieces to fit")
    p = pieces[0]().exog.shape[1]
    params = [np.zeros(p) if start is None else np.array(start, dtype=float) for _ in models]
    steps = [np.zeros(p) for _ in models]
    best = [-np.inf] * len(models)
    active = [True] * len(models)
    messages = [""] * len(models)
    last: list[_Sums | None] = [None] * len(models)
    for _ in range(MAX_ITERATIONS):
        if not any(active):
            break
        sums = _passes(pieces, models, params, active)
        for k, s in enumerate(sums):
            if s is None:
                continue
            if not np.isfinite(s.loglik) or s.loglik < best[k] - 1e-12 * abs(best[k]):
                steps[k] = steps[k] / 2  # overshot: go half as far from the last point
                params[k] = params[k] - steps[k]
                continue
            best[k], last[k] = s.loglik, s
            try:
                steps[k] = np.linalg.solve(s.information, s.score.astype(float))
            except np.linalg.LinAlgError:
                active[k], messages[k] = False, "the information matrix is singular"
                continue
            params[k] = params[k] + steps[k]
            if np.all(np.abs(steps[k]) <= TOLERANCE * np.maximum(1.0, np.abs(params[k]))):
                active[k] = False
    converged = [not on and not m for on, m in zip(active, messages, strict=True)]
    for k, on in enumerate(active):
        if on:
            messages[k] = f"Newton's method did not converge in {MAX_ITERATIONS} iterations"
    whole = [fold is None and ok for fold, ok in zip(models, converged, strict=True)]
    final = _passes(pieces, models, params, whole, clusters, final=True) if any(whole) else last
    fits = []
    for k in range(len(models)):
        s = final[k] if whole[k] else last[k]
        fits.append(_fit(params[k], s, converged[k], messages[k]))
    return fits


def _fit(params: np.ndarray, sums: _Sums | None, converged: bool, message: str) -> LogitFit:
    """The fit from its coefficients and its sums at them (a covariance only then)."""
    if sums is None:
        return LogitFit(params, None, np.nan, 0, False, message or "no rows to fit")
    covariance = None
    if converged:
        try:
            covariance = np.linalg.inv(sums.information.astype(float))
        except np.linalg.LinAlgError:
            message = "the information matrix is singular"
    if covariance is not None and sums.by_cluster is not None:
        n, p, g = sums.n, len(params), len(sums.by_cluster)
        meat = sums.by_cluster.T @ sums.by_cluster
        factor = g / (g - 1) * (n - 1) / (n - p)
        covariance = factor * covariance @ meat @ covariance
    return LogitFit(params, covariance, sums.loglik, sums.n, converged and not message, message)
