"""A small structural equation core: normal maximum likelihood on sufficient statistics.

Two kinds of data, the two the within-person analyses need:

- **one level, missing values** (full-information ML): the cases are grouped by their pattern
  of observed variables, and a pattern enters the likelihood only through its count, mean and
  scatter, so an evaluation costs the patterns, not the cases (:class:`Patterns`);
- **two levels, complete** (clients in therapists): clusters are grouped by size, and a size
  enters through its count and the sums of its cluster means and their cross-products, with
  the pooled within-cluster scatter (:class:`Clusters`), the likelihood of lavaan's two-level
  ML (Rosseel, 2021; Muthén, 1990).

A model is written as lavaan writes it, as a table of parameters (:class:`Model`): regressions
``~``, loadings ``=~``, (co)variances ``~~`` and intercepts ``~1``, each free, fixed or tied to
others by a shared label, in RAM form (McArdle & McDonald, 1984): ``Sigma = F (I - A)^-1 S
(I - A)^-T F'`` and ``mu = F (I - A)^-1 m``. The gradient is analytic in the moments and exact
in the parameters (complex-step derivatives of the RAM map, Martins et al., 2003); the
estimates are lavaan's (BFGS to a gradient of 1e-9 per case, then Newton steps); standard
errors come from the observed information, the negative Hessian of the log-likelihood by
central differences of the analytic gradient (lavaan's default with missing data and with two
levels). Variances are not bounded: a negative variance (a Heywood case) is reported, as lavaan
reports it, and flagged.

References
----------
McArdle, J. J., & McDonald, R. P. (1984). Some algebraic properties of the reticular action
model for moment structures. British Journal of Mathematical and Statistical Psychology, 37,
234-251.
Martins, J. R. R. A., Sturdza, P., & Alonso, J. J. (2003). The complex-step derivative
approximation. ACM Transactions on Mathematical Software, 29(3), 245-262.
Muthén, B. O. (1990). Mean and covariance structure analysis of hierarchical data. UCLA
Statistics Series, 62.
Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
Statistical Software, 48(2), 1-36.
Rosseel, Y. (2021). Evaluating the observed log-likelihood function in two-level structural
equation modeling with missing data. Psychometrika, 86(4), 1154-1183.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> x = rng.normal(size=500)
>>> data = np.column_stack([x, 0.5 * x + rng.normal(size=500)])
>>> model = Model([["x", "y"]])
>>> model.add(0, "~", "y", "x", start=0.0)
>>> for v in ("x", "y"):
...     model.add(0, "~~", v, v, start=1.0)
...     model.add(0, "~1", v, start=0.0)
>>> fit = fit_ml(model, Patterns.from_array(data))
>>> round(float(fit.estimates["y~x"]), 1)
0.5
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from . import tidy
from .distributions import norm_ppf, norm_sf

__all__ = [
    "Clusters",
    "MLFit",
    "Model",
    "Patterns",
    "fit_ml",
    "saturated_moments",
]

LOG_2PI = float(np.log(2.0 * np.pi))
STEP = 1e-30
"""The complex step: derivatives exact to rounding (Martins et al., 2003)."""
GRADIENT_TOLERANCE = 1e-9
"""Convergence: the largest gradient component of the log-likelihood per case."""
MAX_ITERATIONS = 2000
SCORING_ITERATIONS = 100
SCORING_GRADIENT = 1e-4
BFGS_REACHED = 1e-8
"""BFGS has reached the maximum when its largest gradient component per case is below this
(it often stops just above GRADIENT_TOLERANCE by precision loss; the trust region would only
polish digits far below the standard errors)."""
TRUST_ITERATIONS = 50
"""Trust-region Newton iterations after BFGS: it converges in under 25 where the model is
identified (seen on every reference fit); more only prolong a fit the data cannot support."""


@dataclass
class _Entry:
    block: int
    op: str
    lhs: str
    rhs: str
    index: int  # the free parameter, or -1 for fixed
    value: float  # the fixed value, or the start


@dataclass
class Model:
    """A structural model as a parameter table, one block per level (or group).

    Parameters
    ----------
    observed : list of list of str
        The observed variables of each block, in the data's column order.
    latent : list of list of str, optional
        The latent variables of each block.

    Use :meth:`add` for each parameter. Parameters sharing a ``label`` are one free parameter
    (an equality constraint, within or across blocks).
    """

    observed: list[list[str]]
    latent: list[list[str]] = field(default_factory=list)
    entries: list[_Entry] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    _cache: tuple = field(default=(None, -1), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.latent = self.latent or [[] for _ in self.observed]

    def add(
        self,
        block: int,
        op: str,
        lhs: str,
        rhs: str = "",
        *,
        label: str | None = None,
        start: float = 0.0,
        fixed: float | None = None,
    ) -> None:
        """Add a parameter: ``op`` is ``~`` (``lhs`` regressed on ``rhs``), ``=~`` (``rhs``
        loads on latent ``lhs``), ``~~`` (covariance) or ``~1`` (intercept of ``lhs``); free
        from ``start`` unless ``fixed``; free parameters with the same ``label`` are equal."""
        if op not in ("~", "=~", "~~", "~1"):
            raise ValueError(f"unknown operator {op!r}")
        if fixed is not None:
            self.entries.append(_Entry(block, op, lhs, rhs, -1, float(fixed)))
            return
        name = label or f"{lhs}{op}{rhs}" + (f"@{block}" if block else "")
        if name in self.names:
            if label is None:
                raise ValueError(f"parameter {name} given twice")
            index = self.names.index(name)
        else:
            index = len(self.names)
            self.names.append(name)
            self.starts.append(float(start))
        self.entries.append(_Entry(block, op, lhs, rhs, index, float(start)))

    def _layout(self) -> list[tuple]:
        """Per block: the matrix size, the number observed, and for each of A, S (both
        triangles) and m the positions, the free parameter (-1: fixed) and the fixed value."""
        if self._cache[1] == len(self.entries):
            return self._cache[0]
        layout = []
        for b, observed in enumerate(self.observed):
            pos = {v: i for i, v in enumerate(observed + self.latent[b])}
            parts: dict[str, list[tuple[int, int, int, float]]] = {"a": [], "s": [], "m": []}
            for e in self.entries:
                if e.block != b:
                    continue
                if e.op == "~":
                    parts["a"].append((pos[e.lhs], pos[e.rhs], e.index, e.value))
                elif e.op == "=~":
                    parts["a"].append((pos[e.rhs], pos[e.lhs], e.index, e.value))
                elif e.op == "~~":
                    parts["s"].append((pos[e.lhs], pos[e.rhs], e.index, e.value))
                    if e.lhs != e.rhs:
                        parts["s"].append((pos[e.rhs], pos[e.lhs], e.index, e.value))
                else:
                    parts["m"].append((pos[e.lhs], 0, e.index, e.value))
            arrays = {
                key: tuple(np.array(c) for c in zip(*rows, strict=True))
                if rows
                else (np.array([], int), np.array([], int), np.array([], int), np.array([]))
                for key, rows in parts.items()
            }
            layout.append((len(pos), len(observed), arrays))
        self._cache = (layout, len(self.entries))
        return layout

    def moments(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The model-implied covariance matrix and mean vector of each block's observed
        variables at ``theta`` (real or complex; a stack of parameter vectors, shape (b, q),
        gives stacks of moments)."""
        out = []
        batch = theta.shape[:-1]
        for k, n, arrays in self._layout():
            filled = {}
            for key, shape in (("a", (k, k)), ("s", (k, k)), ("m", (k,))):
                rows, cols, index, fixed = arrays[key]
                matrix = np.zeros((*batch, *shape), dtype=theta.dtype)
                values = np.where(index >= 0, theta[..., np.maximum(index, 0)], fixed)
                if key == "m":
                    matrix[..., rows] = values
                else:
                    matrix[..., rows, cols] = values
                filled[key] = matrix
            inverse = np.linalg.inv(np.eye(k) - filled["a"])[..., :n, :]
            sigma = inverse @ filled["s"] @ np.swapaxes(inverse, -1, -2)
            out.append((sigma, np.einsum("...ij,...j->...i", inverse, filled["m"])))
        return out

    def jacobian(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each block's derivatives of (Sigma, mu) with respect to the free parameters, shapes
        (q, p, p) and (q, p), by complex steps (exact: the RAM map is analytic), all
        parameters in one stacked evaluation."""
        shifted = np.tile(theta.astype(complex), (theta.size, 1))
        shifted[np.diag_indices(theta.size)] += STEP * 1j
        return [(s.imag / STEP, m.imag / STEP) for s, m in self.moments(shifted)]


def _normal_information(
    counts: np.ndarray, sigma: np.ndarray, d_sigma: np.ndarray, d_mu: np.ndarray | None
) -> np.ndarray:
    """Σ_g counts_g (½ tr(S_g⁻¹ dS_gi S_g⁻¹ dS_gj) + dmu_giᵀ S_g⁻¹ dmu_gj): the expected
    information of groups of normal cases with covariances ``sigma`` (g, k, k), derivatives
    ``d_sigma`` (q, g, k, k) and ``d_mu`` (q, g, k; None for known means)."""
    q = d_sigma.shape[0]
    inv = np.linalg.inv(sigma)
    a = inv[None] @ d_sigma
    weighted = (a * counts[None, :, None, None]).reshape(q, -1)
    total = 0.5 * weighted @ np.swapaxes(a, -1, -2).reshape(q, -1).T
    if d_mu is not None:
        scaled = (d_mu[:, :, None, :] @ inv[None])[:, :, 0, :] * counts[None, :, None]
        total += scaled.reshape(q, -1) @ d_mu.reshape(q, -1).T
    return total


@dataclass(frozen=True)
class Patterns:
    """One-level data with missing values as sufficient statistics by missingness pattern.

    ``observed`` (pattern count, variables) booleans; ``counts``; ``means`` (pattern count,
    variables; NaN where unobserved); ``scatter`` (pattern count, variables, variables): the sum
    of squares and cross-products about the pattern mean, zero where unobserved. Cases with
    no observed value are left out (as lavaan leaves them out).
    """

    observed: np.ndarray
    counts: np.ndarray
    means: np.ndarray
    scatter: np.ndarray

    @classmethod
    def from_array(cls, data: np.ndarray) -> Patterns:
        """Group the rows of ``data`` (cases by variables, NaN for missing) by pattern, with
        no loop over cases (a loop over the distinct patterns)."""
        data = np.asarray(data, dtype=float)
        codes = ~np.isnan(data) @ (1 << np.arange(data.shape[1], dtype=np.int64))
        unique, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
        del codes
        p = data.shape[1]
        order = np.argsort(inverse, kind="stable")
        del inverse
        bounds = np.concatenate([[0], np.cumsum(counts)])
        first = int(unique[0] == 0)  # pattern 0, cases with no observed value, is left out
        unique, counts = unique[first:], counts[first:]
        means = np.full((unique.size, p), np.nan)
        scatter = np.zeros((unique.size, p, p))
        observed = ((unique[:, None] >> np.arange(p)) & 1).astype(bool)
        for g in range(unique.size):
            cols = np.flatnonzero(observed[g])
            # the pattern's rows, copied a column at a time into column-major order (as their
            # sums are rounded so) and centred in place: the data are not copied whole (at 10M
            # clients the RI-CLPM's panel is 0.8 GB)
            which = order[bounds[g + first] : bounds[g + first + 1]]
            rows = np.empty((len(which), len(cols)), order="F")
            for j, column in enumerate(cols):
                rows[:, j] = data[which, column]
            mean = rows.mean(axis=0)
            rows -= mean
            means[g, cols] = mean
            scatter[g][np.ix_(cols, cols)] = rows.T @ rows
        return cls(observed, counts.astype(float), means, scatter)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def _groups(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """The patterns grouped by their number of observed variables k: each group's pattern
        indices, observed columns (g, k), means (g, k) and scatter (g, k, k)."""
        groups = []
        sizes = self.observed.sum(axis=1)
        for k in np.unique(sizes):
            which = np.flatnonzero(sizes == k)
            cols = np.stack([np.flatnonzero(o) for o in self.observed[which]])
            means = np.take_along_axis(self.means[which], cols, axis=1)
            scatter = self.scatter[which[:, None, None], cols[:, :, None], cols[:, None, :]]
            groups.append((which, cols, means, scatter))
        return groups

    def loglik(
        self, sigma: np.ndarray, mu: np.ndarray, gradient: bool = False
    ) -> tuple[float, np.ndarray | None, np.ndarray | None]:
        """The log-likelihood, and with ``gradient`` its derivatives with respect to Sigma
        (every entry, symmetric) and mu; the patterns with the same number of observed
        variables in one stacked (batched) evaluation."""
        if "_grouped" not in self.__dict__:
            object.__setattr__(self, "_grouped", self._groups())
        total = 0.0
        g_sigma = np.zeros_like(sigma) if gradient else None
        g_mu = np.zeros_like(mu) if gradient else None
        for which, cols, means, scatter in self._grouped:
            n = self.counts[which]
            s = sigma[cols[:, :, None], cols[:, None, :]]
            d = means - mu[cols]
            chol = np.linalg.cholesky(s)
            inv = np.linalg.inv(s)
            moment = scatter + n[:, None, None] * d[:, :, None] * d[:, None, :]
            logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            k = cols.shape[1]
            total -= 0.5 * float(n @ (k * LOG_2PI + logdet) + np.sum(inv * moment))
            if gradient:
                part = -0.5 * (n[:, None, None] * inv - inv @ moment @ inv)
                np.add.at(g_sigma, (cols[:, :, None], cols[:, None, :]), part)
                np.add.at(g_mu, cols, n[:, None] * np.einsum("gij,gj->gi", inv, d))
        return total, g_sigma, g_mu

    def information(self, moments: list, jacobian: list) -> np.ndarray:
        """The expected information of the free parameters given the model's ``moments``
        and ``jacobian`` (:meth:`Model.moments`, :meth:`Model.jacobian`): the sum over
        patterns of the normal's information on their observed variables."""
        if "_grouped" not in self.__dict__:
            object.__setattr__(self, "_grouped", self._groups())
        sigma, (d_sigma, d_mu) = moments[0][0], jacobian[0]
        total = np.zeros((d_sigma.shape[0],) * 2)
        for which, cols, _, _ in self._grouped:
            total += _normal_information(
                self.counts[which],
                sigma[cols[:, :, None], cols[:, None, :]],
                d_sigma[:, cols[:, :, None], cols[:, None, :]],
                d_mu[:, cols],
            )
        return total


@dataclass(frozen=True)
class Clusters:
    """Complete two-level data as sufficient statistics: the pooled within-cluster scatter,
    and for each distinct cluster size its count of clusters, the sum of their means and the
    sum of their means' cross-products (lavaan groups clusters by size the same way)."""

    within_scatter: np.ndarray
    n_cases: int
    sizes: np.ndarray
    counts: np.ndarray
    mean_sums: np.ndarray
    mean_products: np.ndarray

    @classmethod
    def from_array(cls, data: np.ndarray, cluster: np.ndarray) -> Clusters:
        """From ``data`` (cases by variables, complete) and integer ``cluster`` codes."""
        data = np.asarray(data, dtype=float)
        _, code = np.unique(cluster, return_inverse=True)
        size = np.bincount(code).astype(float)
        sums = np.stack([np.bincount(code, weights=c) for c in data.T], axis=1)
        means = sums / size[:, None]
        centred = data - means[code]
        sizes, by_size = np.unique(size, return_inverse=True)
        counts = np.bincount(by_size).astype(float)
        p = data.shape[1]
        mean_sums = np.stack([np.bincount(by_size, weights=c) for c in means.T], axis=1)
        products = np.einsum("ji,jk->jik", means, means).reshape(len(means), p * p)
        mean_products = np.stack(
            [np.bincount(by_size, weights=c, minlength=sizes.size) for c in products.T], axis=1
        ).reshape(sizes.size, p, p)
        return cls(centred.T @ centred, data.shape[0], sizes, counts, mean_sums, mean_products)

    @property
    def n(self) -> int:
        return self.n_cases

    @property
    def n_clusters(self) -> int:
        return int(self.counts.sum())

    def loglik(
        self,
        within: tuple[np.ndarray, np.ndarray],
        between: tuple[np.ndarray, np.ndarray],
        gradient: bool = False,
    ) -> tuple[float, tuple | None]:
        """The two-level log-likelihood of (Sigma_W, within means: zero) and (Sigma_B, mu),
        and with ``gradient`` its derivatives with respect to Sigma_W, Sigma_B and mu."""
        sigma_w, sigma_b, mu = within[0], between[0], between[1]
        p = sigma_w.shape[0]
        n_within = self.n_cases - self.n_clusters
        inv_w = np.linalg.inv(sigma_w)
        total = -0.5 * (
            self.n_cases * p * LOG_2PI
            + n_within * np.linalg.slogdet(sigma_w)[1]
            + np.sum(inv_w * self.within_scatter)
        )
        g_w = -0.5 * (n_within * inv_w - inv_w @ self.within_scatter @ inv_w)
        sizes, counts = self.sizes[:, None, None], self.counts[:, None, None]
        inv = np.linalg.inv(sigma_w + sizes * sigma_b)  # one per cluster size, batched
        cross = np.einsum("i,gj->gij", mu, self.mean_sums)
        dev = self.mean_products - cross - cross.transpose(0, 2, 1) + counts * np.outer(mu, mu)
        total -= 0.5 * float(
            self.counts @ np.linalg.slogdet(sigma_w + sizes * sigma_b)[1]
            + self.sizes @ np.einsum("gij,gij->g", inv, dev)
        )
        g_b = g_mu = None
        if gradient:
            part = counts * inv - sizes * (inv @ dev @ inv)
            g_w = g_w - 0.5 * part.sum(axis=0)
            g_b = -0.5 * np.einsum("g,gij->ij", self.sizes, part)
            residual = self.mean_sums - self.counts[:, None] * mu
            g_mu = np.einsum("g,gij,gj->i", self.sizes, inv, residual)
        return total, ((g_w, g_b, g_mu) if gradient else None)

    def information(self, moments: list, jacobian: list) -> np.ndarray:
        """The expected information of the free parameters given the model's within and
        between ``moments`` and ``jacobian``: the within scatter's (n − clusters degrees of
        freedom on Sigma_W) and, per cluster size s, the cluster means' (covariance
        Sigma_W + s Sigma_B, mean mu, the mean's part weighted by s)."""
        (sigma_w, _), (sigma_b, _) = moments
        (d_w, _), (d_b, d_mu) = jacobian
        total = _normal_information(
            np.array([self.n_cases - self.n_clusters], dtype=float),
            sigma_w[None],
            d_w[:, None],
            None,
        )
        sizes = self.sizes[:, None, None]
        return total + _normal_information(
            self.counts,
            sigma_w + sizes * sigma_b,
            d_w[:, None] + sizes[None] * d_b[:, None],
            np.sqrt(self.sizes)[None, :, None] * d_mu[:, None, :],
        )


@dataclass(frozen=True)
class MLFit:
    """A maximum-likelihood fit: ``estimates`` and ``std_errors`` by parameter name (Series-like
    dicts), ``vcov`` (free parameters, from the observed information), ``loglik``, ``n``,
    ``converged``, ``messages``, ``theta`` and the ``model``."""

    model: Model
    theta: np.ndarray
    vcov: np.ndarray
    loglik: float
    n: int
    converged: bool
    messages: tuple[str, ...]
    at_maximum: bool = True
    """False where the optimiser found no maximum (the gradient is not zero): the parameters
    are then where it stopped, not estimates."""

    @property
    def estimates(self) -> dict[str, float]:
        return dict(zip(self.model.names, self.theta.tolist(), strict=True))

    @property
    def std_errors(self) -> dict[str, float]:
        se = np.sqrt(np.clip(np.diag(self.vcov), 0.0, None))
        return dict(zip(self.model.names, se.tolist(), strict=True))

    @property
    def n_parameters(self) -> int:
        return self.theta.size

    def contrast(self, weights: dict[str, float]) -> tuple[float, float]:
        """Estimate and standard error of a linear combination of the parameters (lavaan's
        ``:=`` for a linear definition)."""
        w = np.array([weights.get(name, 0.0) for name in self.model.names])
        return float(w @ self.theta), float(np.sqrt(max(w @ self.vcov @ w, 0.0)))

    def wald_row(
        self, model: str, term: str, weights: dict[str, float], *, test: bool = True, **fields
    ) -> dict[str, object]:
        """A tidy row of a linear combination of the parameters with its 95% Wald interval
        and, with ``test``, its p-value; no estimate where the fit found no maximum (the
        parameters are then where the optimiser stopped)."""
        estimate, se = self.contrast(weights)
        if not self.at_maximum:
            estimate = se = float("nan")
        half = norm_ppf(0.975) * se
        extra = {"p_value": 2.0 * norm_sf(abs(estimate / se))} if test else {}
        return tidy.row(model, term, estimate, std_error=se, ci_low=estimate - half,
                        ci_high=estimate + half, ci_method="wald_observed_information",
                        **extra, **fields)  # fmt: skip


def _objective(model: Model, data: Patterns | Clusters):
    """The log-likelihood, its gradient in the free parameters, and the gradient with the
    expected information (one evaluation of the moments and their Jacobian serves both)."""

    def value(theta: np.ndarray) -> float:
        moments = model.moments(theta)
        if isinstance(data, Clusters):
            return data.loglik(moments[0], moments[1])[0]
        return data.loglik(*moments[0])[0]

    def _gradient(moments: list, jac: list) -> np.ndarray:
        if isinstance(data, Clusters):
            _, (g_w, g_b, g_mu) = data.loglik(moments[0], moments[1], gradient=True)
            (dw, _), (db, dm) = jac
            return np.einsum("qij,ij->q", dw, g_w) + np.einsum("qij,ij->q", db, g_b) + dm @ g_mu
        _, g_sigma, g_mu = data.loglik(*moments[0], gradient=True)
        ds, dm = jac[0]
        return np.einsum("qij,ij->q", ds, g_sigma) + dm @ g_mu

    def gradient(theta: np.ndarray) -> np.ndarray:
        return _gradient(model.moments(theta), model.jacobian(theta))

    def scored(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        moments, jac = model.moments(theta), model.jacobian(theta)
        return _gradient(moments, jac), data.information(moments, jac)

    return value, gradient, scored


def _scoring(
    model: Model, data: Patterns | Clusters, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Fisher scoring from ``theta`` with step halving until the largest gradient component
    per case is below SCORING_GRADIENT. The expected information is a sum of small matrices
    over patterns, so a step costs about one gradient; scoring gets near the maximum in a
    dozen steps but, with missing data, closes in only linearly. Returns the point and its
    expected information (to start BFGS's curvature from)."""
    value, _, scored = _objective(model, data)
    current = value(theta)
    info = np.eye(theta.size) * data.n
    for _ in range(SCORING_ITERATIONS):
        g, info = scored(theta)
        if np.max(np.abs(g)) / data.n < SCORING_GRADIENT:
            break
        try:
            step = np.linalg.solve(info, g)
        except np.linalg.LinAlgError:
            break
        for _ in range(30):
            candidate = theta + step
            try:
                new = value(candidate)
            except np.linalg.LinAlgError:
                new = -np.inf
            if new >= current:
                break
            step = step / 2.0
        else:
            break
        theta, current = candidate, new
    return theta, info


def _hessian(gradient, theta: np.ndarray) -> np.ndarray:
    """Central differences of the analytic gradient (error of order h², h = 1e-5 relative),
    symmetrised."""
    hessian = np.empty((theta.size, theta.size))
    for i in range(theta.size):
        h = 1e-5 * max(1.0, abs(theta[i]))
        up, down = theta.copy(), theta.copy()
        up[i] += h
        down[i] -= h
        hessian[i] = (gradient(up) - gradient(down)) / (2.0 * h)
    return (hessian + hessian.T) / 2.0


def fit_ml(
    model: Model,
    data: Patterns | Clusters,
    theta0: np.ndarray | None = None,
    *,
    standard_errors: bool = True,
) -> MLFit:
    """Fit ``model`` to ``data`` by maximum likelihood (see the module's notes).

    Parameters
    ----------
    model : Model
        The parameter table.
    data : Patterns or Clusters
        One-level data with missing values, or complete two-level data.
    theta0 : numpy.ndarray, optional
        Start values (default: the table's).
    standard_errors : bool
        False skips the information matrix and the checks on it (for a model whose
        likelihood alone is wanted, such as the baseline of the CFI).

    Returns
    -------
    MLFit
        Non-convergence, a Hessian that is not negative definite and negative variances are
        in ``messages`` (and the first two in ``converged``).
    """
    value, gradient, scored = _objective(model, data)
    n = data.n
    theta = np.array(model.starts if theta0 is None else theta0, dtype=float)
    messages: list[str] = []

    def objective(t: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            return -value(t) / n, -gradient(t) / n
        except np.linalg.LinAlgError:
            return np.inf, np.zeros_like(t)

    options = {"gtol": GRADIENT_TOLERANCE, "maxiter": MAX_ITERATIONS}
    if isinstance(data, Patterns):
        theta, info = _scoring(model, data, theta)
        inverse = np.linalg.pinv((info + info.T) / (2.0 * n), hermitian=True)
        inverse = (inverse + inverse.T) / 2.0
        if np.all(np.linalg.eigvalsh(inverse) > 0):
            options["hess_inv0"] = inverse
    result = optimize.minimize(objective, theta, jac=True, method="BFGS", options=options)
    reached = np.isfinite(result.fun) and np.max(np.abs(result.jac)) < BFGS_REACHED
    if not reached:
        # A trust region on the Hessian reaches the optimum where BFGS stops at the edge of
        # the positive-definite region (seen with covariates whose between variance is near
        # zero); where BFGS got close it polishes from there.
        near = np.isfinite(result.fun) and np.max(np.abs(result.jac)) < 1e-6
        result = optimize.minimize(
            objective,
            result.x if near else theta,
            jac=True,
            method="trust-exact",
            hess=lambda t: scored(t)[1] / n,
            options={"gtol": GRADIENT_TOLERANCE, "maxiter": TRUST_ITERATIONS},
        )
    theta = result.x
    if not np.isfinite(result.fun):
        raise np.linalg.LinAlgError("the model's implied covariance is not positive definite")
    if not standard_errors:
        found = bool(reached or result.success)
        nan = np.full((theta.size, theta.size), np.nan)
        return MLFit(model, theta, nan, float(value(theta)), n, found, (), found)
    hessian = _hessian(gradient, theta)
    converged = at_maximum = bool(np.max(np.abs(gradient(theta))) / n < 1e-6)
    if not converged:
        messages.append(
            "did not converge: no maximum of the likelihood was found (the model "
            "may not be identified by these data)"
        )
    information = -hessian
    try:
        np.linalg.cholesky(information)
        vcov = np.linalg.inv(information)
    except np.linalg.LinAlgError:
        converged = False
        messages.append(
            "the information matrix is not positive definite: the model is not "
            "identified by these data (standard errors not computed)"
        )
        vcov = np.full((theta.size, theta.size), np.nan)
    negative = [
        model.names[e.index]
        for e in model.entries
        if e.op == "~~" and e.lhs == e.rhs and e.index >= 0 and theta[e.index] < 0
    ]
    if negative:
        messages.append("negative variance (a Heywood case): " + ", ".join(dict.fromkeys(negative)))
    return MLFit(model, theta, vcov, float(value(theta)), n, converged, tuple(messages), at_maximum)


def saturated_moments(data: Patterns, iterations: int = 10_000, tol: float = 1e-12):
    """The unrestricted ML mean vector and covariance matrix with missing values, by the EM
    algorithm over patterns (Dempster, Laird & Rubin, 1977; lavaan's H1 model with ``missing =
    "ml"``). Returns ``(sigma, mu, loglik)``."""
    p = data.observed.shape[1]
    n = data.counts.sum()
    full = data.observed.all(axis=1)
    weights = data.counts[:, None] * data.observed
    mu = np.nansum(np.nan_to_num(data.means) * weights, axis=0) / weights.sum(axis=0)
    sigma = np.diag(np.einsum("gii->i", data.scatter) / weights.sum(axis=0) + 1e-3)
    if full.any():
        sigma = data.scatter[full].sum(axis=0) / data.counts[full].sum()
    previous = -np.inf
    for _ in range(iterations):
        t1 = np.zeros(p)
        t2 = np.zeros((p, p))
        for obs, count, mean, scatter in zip(
            data.observed, data.counts, data.means, data.scatter, strict=True
        ):
            o, m = np.flatnonzero(obs), np.flatnonzero(~obs)
            expected = mu.copy()
            expected[o] = mean[o]
            conditional = np.zeros((p, p))
            block = scatter.copy()
            if m.size:
                coef = np.linalg.solve(sigma[np.ix_(o, o)], sigma[np.ix_(o, m)]).T
                expected[m] = mu[m] + coef @ (mean[o] - mu[o])
                conditional[np.ix_(m, m)] = sigma[np.ix_(m, m)] - coef @ sigma[np.ix_(o, m)]
                block[np.ix_(m, o)] = coef @ scatter[np.ix_(o, o)]
                block[np.ix_(o, m)] = block[np.ix_(m, o)].T
                block[np.ix_(m, m)] = coef @ scatter[np.ix_(o, o)] @ coef.T
            t1 += count * expected
            t2 += block + count * (np.outer(expected, expected) + conditional)
        mu = t1 / n
        sigma = t2 / n - np.outer(mu, mu)
        loglik = data.loglik(sigma, mu)[0]
        if loglik - previous < tol * abs(loglik):
            break
        previous = loglik
    return sigma, mu, loglik
