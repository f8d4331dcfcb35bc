"""A small, fast REML core for the catalogue's random-effect structures.

lme4 fits a linear mixed model by profiling the REML criterion over the relative covariance
parameters θ, using the sparse block structure of the random effects (Bates et al., 2015).
For the three structures of the catalogue the blocks are so simple that the criterion has a
closed form in a few sums per group, computed once, so that each evaluation is a vectorised
pass over the groups (no Python loop over clients, no matrix over clients or sessions):

``y ~ X + (1 | g)``
    With c_g = θ² / (1 + n_g θ²) and group sums s_g = Σ x, t_g = Σ y:
    X'V⁻¹X = X'X − Σ_g c_g s_g s_g', log|V| = Σ_g log(1 + n_g θ²) (V in units of σ²).
``y ~ X + (1 | g1/g2)``
    Inner levels (g2 within g1) as above with θ₂; the outer level is added by a second
    Woodbury step over the inner blocks, with e = 1 / (1 + n θ₂²) and m = Σ_inner n e.
``y ~ X + (1 + s | g)``
    Per group the 2 × 2 matrix M_g = I + Λ'Z_g'Z_gΛ (Λ lower-triangular, θ its three
    elements in lme4's order), with Z_g = [1, s]: X'V⁻¹X = X'X − Σ_g W_g'M_g⁻¹W_g,
    W_g = Λ'Z_g'X_g, log|V| = Σ_g log|M_g|.
``y ~ X + (1 + s || g)``
    The same with Λ diagonal (uncorrelated intercept and slope).

Given θ, the fixed effects are the generalised least-squares solution, the residual variance
is profiled out (σ̂² = r'V⁻¹r / (n − p)), and the REML criterion is

    d(θ) = log|V| + log|X'V⁻¹X| + (n − p)(1 + log(2π σ̂²)),

lme4's ``REMLcrit``. It is minimised over θ ≥ 0 (the off-diagonal of Λ is free) to a tight
tolerance; the fixed effects' covariance is σ̂²(X'V⁻¹X)⁻¹, and their Satterthwaite degrees of
freedom are computed as lmerTest does (Kuznetsova, Brockhoff & Christensen, 2017): from the
Hessian of the unprofiled criterion d(θ, σ) and the Jacobian of the covariance with respect to
(θ, σ), by central differences.

The engine's ``"lmm"`` engine (:func:`allianceanalysis.engine.fit_lmm`) wraps this core; the
other engines (``mixedlm``, statsmodels) and the lme4 fixtures test it.

References
----------
Bates, D., Mächler, M., Bolker, B., & Walker, S. (2015). Fitting linear mixed-effects models
using lme4. Journal of Statistical Software, 67(1), 1-48.
Kuznetsova, A., Brockhoff, P. B., & Christensen, R. H. B. (2017). lmerTest package: Tests in
linear mixed effects models. Journal of Statistical Software, 82(13), 1-26.

Examples
--------
>>> rng = np.random.default_rng(1)
>>> g = np.repeat(np.arange(50), 8)
>>> x = rng.normal(size=g.size)
>>> y = 2 + 0.5 * x + rng.normal(0, 1, 50)[g] + rng.normal(size=g.size)
>>> problem = RandomIntercept.of(y, np.column_stack([np.ones_like(x), x]), g)
>>> solution = solve(problem)
>>> np.round(solution.beta, 3).tolist(), round(float(solution.theta[0]), 3)
([2.01, 0.431], 0.942)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, sparse

from .sums import GroupSums, group_sums

__all__ = [
    "Nested",
    "RandomIntercept",
    "RandomSlope",
    "Solution",
    "UncorrelatedSlope",
    "contrast_df",
    "hessian",
    "jacobian",
    "solve",
]

MAX_SIZE_CLASSES = 256
"""A random-intercept problem with at most this many distinct group sizes gathers its sums by
size (:class:`RandomIntercept`)."""
MAX_SLOPE_PRODUCTS = 1 << 27
"""A random-slope problem lays out its groups' outer products (3 p² per group) once when
there are at most this many (1 GiB): 14 ms an evaluation at a million clients, against 26 ms
computed column by column, which larger problems do (no array of p² per group)."""
SINGULAR_TOLERANCE = 1e-4
"""A θ on its lower bound of 0 within this distance makes a fit singular (lme4's
``isSingular`` default tolerance)."""


@dataclass
class _Products:
    """X'V⁻¹X, X'V⁻¹y, y'V⁻¹y and log|V| at some θ (V in units of σ²)."""

    xvx: np.ndarray
    xvy: np.ndarray
    yvy: float
    logdet: float


class _Problem:
    """Common part: the sufficient statistics (:class:`~allianceanalysis.sums.GroupSums`) and
    their global products."""

    n_theta: int
    lower: tuple[float, ...]

    def __init__(self, sums: GroupSums) -> None:
        self.sums = sums
        self.n, self.p = sums.n, sums.p
        self.xtx, self.xty, self.yty = sums.xtx, sums.xty, sums.yty
        self.levels, self.size = sums.levels, sums.size
        self.sx, self.sy = sums.sx, sums.sy

    def products(self, theta: np.ndarray) -> _Products:
        raise NotImplementedError

    def start(self) -> np.ndarray:
        """lme4's starting values: 1 on the diagonal of Λ, 0 off it."""
        raise NotImplementedError

    def gls(self, theta: np.ndarray) -> tuple[np.ndarray, float, _Products, float]:
        """β̂(θ), the penalised residual sum of squares r'V⁻¹r, the products and log|X'V⁻¹X|."""
        prod = self.products(theta)
        chol = np.linalg.cholesky(prod.xvx)
        beta = np.linalg.solve(prod.xvx, prod.xvy)
        rss = max(prod.yvy - float(beta @ prod.xvy), 1e-300)
        return beta, rss, prod, 2.0 * float(np.log(np.diag(chol)).sum())

    def criterion(self, theta: np.ndarray) -> float:
        """The REML criterion d(θ) with β and σ profiled out (lme4's ``REMLcrit``)."""
        try:
            _, rss, prod, logdet_x = self.gls(np.asarray(theta, dtype=float))
        except np.linalg.LinAlgError:
            return np.inf
        dof = self.n - self.p
        return prod.logdet + logdet_x + dof * (1.0 + np.log(2.0 * np.pi * rss / dof))

    def criterion_sigma(self, varpar: np.ndarray) -> float:
        """The REML criterion at (θ, σ), σ not profiled (lmerTest's ``devfun_vp``)."""
        theta, sigma = varpar[:-1], varpar[-1]
        _, rss, prod, logdet_x = self.gls(theta)
        dof = self.n - self.p
        return (prod.logdet + logdet_x + dof * np.log(2.0 * np.pi * sigma**2)
                + rss / sigma**2)  # fmt: skip

    def covbeta(self, varpar: np.ndarray) -> np.ndarray:
        """The fixed effects' covariance σ²(X'V⁻¹X)⁻¹ at (θ, σ)."""
        return varpar[-1] ** 2 * np.linalg.inv(self.products(varpar[:-1]).xvx)


@dataclass(frozen=True)
class _SizeClasses:
    """Groups' sums gathered by group size: per distinct size, the number of groups and the
    sums over them of s s', s t and t² (s a group's column sums, t its response sum). A
    weight that depends on a group's size alone then costs the distinct sizes, not the
    groups."""

    sizes: np.ndarray
    count: np.ndarray
    bxx: np.ndarray
    bxy: np.ndarray
    byy: np.ndarray

    @classmethod
    def of(cls, size: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> _SizeClasses | None:
        """The classes of groups of these sizes and sums; None with more than
        :data:`MAX_SIZE_CLASSES` distinct sizes."""
        sizes, bucket = np.unique(size, return_inverse=True)
        if len(sizes) > MAX_SIZE_CLASSES:
            return None
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(len(sizes) + 1))
        blocks = [order[a:b] for a, b in itertools.pairwise(bounds)]
        return cls(
            sizes=sizes,
            count=np.bincount(bucket).astype(float),
            bxx=np.stack([sx[i].T @ sx[i] for i in blocks]),
            bxy=np.stack([sx[i].T @ sy[i] for i in blocks]),
            byy=np.bincount(bucket, weights=sy**2),
        )

    def weighted(self, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Σ_g w_g s s', Σ_g w_g s t and Σ_g w_g t² for a weight per distinct size."""
        return (np.einsum("s,sij->ij", weight, self.bxx), weight @ self.bxy,
                float(weight @ self.byy))  # fmt: skip


class RandomIntercept(_Problem):
    """``y ~ X + (1 | g)``, from the sums of :func:`~allianceanalysis.sums.group_sums` (or
    from rows: :meth:`of`).

    A group's weight c_g = θ² / (1 + n_g θ²) depends on its size alone, so the per-group sums
    are gathered once by group size (Σ s s', Σ s t, Σ t² over the groups of each size), and an
    evaluation costs the distinct sizes, not the groups: clients with a handful of sessions
    each have a few dozen sizes among a million groups. With more than
    :data:`MAX_SIZE_CLASSES` distinct sizes the per-group form is used.
    """

    n_theta = 1
    lower = (0.0,)

    def __init__(self, sums: GroupSums) -> None:
        super().__init__(sums)
        self.by_size = _SizeClasses.of(self.size, self.sx, self.sy)

    @classmethod
    def of(cls, y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> RandomIntercept:
        """The problem of rows: response, design and each row's group."""
        return cls(group_sums(y, x, groups))

    def start(self) -> np.ndarray:
        return np.array([1.0])

    def products(self, theta: np.ndarray) -> _Products:
        t2 = float(theta[0]) ** 2
        if self.by_size is not None:
            c = t2 / (1.0 + self.by_size.sizes * t2)
            xvx, xvy, yvy = self.by_size.weighted(c)
            logdet = float(self.by_size.count @ np.log1p(self.by_size.sizes * t2))
            return _Products(self.xtx - xvx, self.xty - xvy, self.yty - yvy, logdet)
        c = t2 / (1.0 + self.size * t2)
        return _Products(
            xvx=self.xtx - (self.sx * c[:, None]).T @ self.sx,
            xvy=self.xty - (self.sx * c[:, None]).T @ self.sy,
            yvy=self.yty - float(c @ self.sy**2),
            logdet=float(np.log1p(self.size * t2).sum()),
        )


class Nested(_Problem):
    """``y ~ X + (1 | outer/inner)``: inner levels (the combinations of outer and inner) nested
    in outer levels, from sums with ``outer`` (or rows: :meth:`of`). θ = (θ_inner, θ_outer),
    lme4's order (the term with more levels first).

    An inner level's weights depend on its size alone, so its sums are gathered once into
    classes of the same outer level and size (a few per therapist and session count, not one
    per client), and the inner term's products by size (:class:`_SizeClasses`; per inner
    level with more than :data:`MAX_SIZE_CLASSES` distinct sizes): an evaluation costs the
    classes, not the inner levels.
    """

    n_theta = 2
    lower = (0.0, 0.0)

    def __init__(self, sums: GroupSums) -> None:
        super().__init__(sums)
        outer_of_inner, self.outer_levels = pd.factorize(sums.outer, sort=True)
        self.n_outer = len(self.outer_levels)
        self.by_size = _SizeClasses.of(self.size, self.sx, self.sy)
        sizes = self.size.astype(np.int64)
        span = int(sizes.max(initial=0)) + 1
        classes, keys = pd.factorize(outer_of_inner.astype(np.int64) * span + sizes)
        n_classes = len(keys)

        def per_class(values: np.ndarray) -> np.ndarray:
            return np.bincount(classes, weights=values, minlength=n_classes)

        self.class_size = (keys % span).astype(float)
        self.class_count = np.bincount(classes, minlength=n_classes).astype(float)
        self.class_sx = np.column_stack([per_class(c) for c in self.sx.T]).reshape(n_classes, -1)
        self.class_sy = per_class(self.sy)
        self.to_outer = sparse.csr_matrix(
            (np.ones(n_classes), (keys // span, np.arange(n_classes))),
            shape=(self.n_outer, n_classes),
        )

    @classmethod
    def of(cls, y: np.ndarray, x: np.ndarray, outer: np.ndarray, inner: np.ndarray) -> Nested:
        """The problem of rows: response, design, each row's outer and inner group."""
        return cls(group_sums(y, x, inner, outer=outer))

    def start(self) -> np.ndarray:
        return np.array([1.0, 1.0])

    def products(self, theta: np.ndarray) -> _Products:
        t_in, t_out = float(theta[0]) ** 2, float(theta[1]) ** 2
        if self.by_size is not None:
            a = t_in / (1.0 + self.by_size.sizes * t_in)
            inner_xvx, inner_xvy, inner_yvy = self.by_size.weighted(a)
            logdet = float(self.by_size.count @ np.log1p(self.by_size.sizes * t_in))
        else:
            a = t_in / (1.0 + self.size * t_in)
            weighted = self.sx * a[:, None]
            inner_xvx, inner_xvy = weighted.T @ self.sx, weighted.T @ self.sy
            inner_yvy, logdet = float(a @ self.sy**2), float(np.log1p(self.size * t_in).sum())
        e = 1.0 / (1.0 + self.class_size * t_in)
        q = self.to_outer @ (self.class_sx * e[:, None])
        r = self.to_outer @ (self.class_sy * e)
        m = self.to_outer @ (self.class_count * self.class_size * e)
        k = t_out / (1.0 + t_out * m)
        return _Products(
            xvx=self.xtx - inner_xvx - (q * k[:, None]).T @ q,
            xvy=self.xty - inner_xvy - (q * k[:, None]).T @ r,
            yvy=self.yty - inner_yvy - float(k @ r**2),
            logdet=logdet + float(np.log1p(t_out * m).sum()),
        )


def _unique_columns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``numpy.unique(values, axis=1, return_inverse=True)``: the distinct columns in
    lexicographic order (first row first) and each column's index among them, by one
    ``lexsort`` (a million columns of three rows in 0.3 s, against 2 s for ``unique``'s
    structured sort)."""
    n = values.shape[1]
    if n == 0:
        return values, np.zeros(0, dtype=np.intp)
    order = np.lexsort(values[::-1])
    ordered = values[:, order]
    first = np.ones(n, dtype=bool)
    first[1:] = np.any(ordered[:, 1:] != ordered[:, :-1], axis=0)
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[:, first], inverse


class RandomSlope(_Problem):
    """``y ~ X + (1 + s | g)``: correlated random intercept and slope of ``s`` per group, from
    sums with ``slope`` (or rows: :meth:`of`). θ = (Λ₁₁, Λ₂₁, Λ₂₂), lme4's order.

    A group's weights depend on its Z'Z alone (its size, Σ s and Σ s²), which few groups do
    not share with many others when ``s`` is a session number: the groups' products are
    gathered once into classes of the same Z'Z, and an evaluation costs the classes, not the
    groups. With more products than :data:`MAX_SLOPE_PRODUCTS` (a continuous slope variable
    over millions of groups) they are computed column by column per group instead.
    """

    n_theta = 3
    lower = (0.0, -np.inf, 0.0)

    def __init__(self, sums: GroupSums) -> None:
        super().__init__(sums)
        s1, s2, self.x1, self.y1 = sums.slope
        ztz = np.vstack([self.size, s1, s2])  # Z'Z entries per group, Z_g = [1, s]
        x0, x1, y0, y1, p = self.sx, self.x1, self.sy, self.y1, self.p
        self.ztz, codes = _unique_columns(ztz)
        self.count = np.bincount(codes).astype(float)
        n = self.ztz.shape[1]
        self.columns = None
        if 3 * p * p * n > MAX_SLOPE_PRODUCTS:  # per group, column by column, contiguous
            self.ztz, self.count = ztz, np.ones(len(self.size))
            self.columns = (np.asfortranarray(x0), np.asfortranarray(x1))
            self.pyy = np.concatenate([y0 * y0, 2.0 * y0 * y1, y1 * y1])
            return

        def per_class(values: np.ndarray) -> np.ndarray:
            return np.bincount(codes, weights=values, minlength=n)

        # per class, once: Σ x0x0', Σ (x0x1' + x1x0'), Σ x1x1' laid out so that each
        # evaluation is one matrix product over classes: pxx[i·p + j, k·C + c]
        pxx = np.empty((p, p, 3, n))
        for i, j in zip(*np.triu_indices(p), strict=True):
            pxx[i, j, 0] = pxx[j, i, 0] = per_class(x0[:, i] * x0[:, j])
            pxx[i, j, 1] = pxx[j, i, 1] = per_class(x0[:, i] * x1[:, j] + x1[:, i] * x0[:, j])
            pxx[i, j, 2] = pxx[j, i, 2] = per_class(x1[:, i] * x1[:, j])
        self.pxx = pxx.reshape(p * p, 3 * n)
        self.pxy = np.vstack([np.column_stack([per_class(c * y) for c in x.T]).reshape(n, p)
                              for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1))]).T  # fmt: skip
        self.pyy = np.concatenate([per_class(y0 * y0), 2.0 * per_class(y0 * y1),
                                   per_class(y1 * y1)])  # fmt: skip

    @classmethod
    def of(cls, y: np.ndarray, x: np.ndarray, groups: np.ndarray, s: np.ndarray) -> RandomSlope:
        """The problem of rows: response, design, each row's group and slope value."""
        return cls(group_sums(y, x, groups, slope=s))

    def start(self) -> np.ndarray:
        return np.array([1.0, 0.0, 1.0])

    def products(self, theta: np.ndarray) -> _Products:
        """With Λ = [[a, 0], [b, c]] and M = I + Λ'Z'ZΛ per class (2 x 2, written out), and
        W = Λ'Z'X = [a·x0 + b·x1; c·x1] (x0 = Σ x, x1 = Σ s·x): Σ W'M⁻¹W =
        Σ α x0x0' + β (x0x1' + x1x0') + γ x1x1', where (α, β, γ) are linear in
        M⁻¹ = adj(M) / det(M): one matrix product over the classes' products, laid out
        once (or, above :data:`MAX_SLOPE_PRODUCTS`, column by column per group); likewise
        X'V⁻¹y and y'V⁻¹y."""
        a, b, c = (float(t) for t in theta)
        m = np.array([[a * a, 2 * a * b, b * b], [0.0, c * a, c * b], [0.0, 0.0, c * c]]) @ self.ztz
        m[0] += 1.0
        m[2] += 1.0
        det = m[0] * m[2] - m[1] * m[1]
        inverse = np.vstack([m[2], -m[1], m[0]]) / det  # (i00, i01, i11) per class
        alpha, beta, gamma = (
            np.array([[a * a, 0, 0], [a * b, a * c, 0], [b * b, 2 * b * c, c * c]]) @ inverse
        )
        weights = np.concatenate([alpha, beta, gamma])
        if self.columns is None:
            weighted = (self.pxx @ weights).reshape(self.p, self.p)
            xvy = self.pxy @ np.concatenate([alpha, beta, beta, gamma])
        else:  # column by column: no array of p² per group
            x0f, x1f = self.columns
            weighted = np.empty((self.p, self.p))
            for i in range(self.p):
                left = x0f[:, i] * alpha + x1f[:, i] * beta
                right = x0f[:, i] * beta + x1f[:, i] * gamma
                weighted[i] = left @ x0f + right @ x1f
            y0, y1 = self.sy, self.y1
            xvy = x0f.T @ (alpha * y0 + beta * y1) + x1f.T @ (beta * y0 + gamma * y1)
        return _Products(
            xvx=self.xtx - weighted,
            xvy=self.xty - xvy,
            yvy=self.yty - float(self.pyy @ weights),
            logdet=float(self.count @ np.log(det)),
        )


class UncorrelatedSlope(RandomSlope):
    """``y ~ X + (1 | g) + (0 + s | g)``, lme4's ``(1 + s || g)``: a random intercept and slope
    per group, uncorrelated. θ = (Λ₁₁, Λ₂₂): :class:`RandomSlope` with Λ₂₁ = 0."""

    n_theta = 2
    lower = (0.0, 0.0)

    def start(self) -> np.ndarray:
        return np.array([1.0, 1.0])

    def products(self, theta: np.ndarray) -> _Products:
        return super().products(np.array([theta[0], 0.0, theta[1]]))


@dataclass(frozen=True)
class Solution:
    """The REML fit of a problem: θ̂, σ̂, β̂ with its covariance and Satterthwaite degrees of
    freedom, the REML criterion, and how the optimisation went; for contrasts
    (:func:`contrast_df`), the covariance of (θ, σ) and the Jacobian of β̂'s covariance."""

    theta: np.ndarray
    sigma: float
    beta: np.ndarray
    vcov: np.ndarray
    df: np.ndarray
    criterion: float
    converged: bool
    singular: bool
    message: str
    varpar_covariance: np.ndarray | None = None
    vcov_jacobian: np.ndarray | None = None


def _minimise(problem: _Problem, start: np.ndarray) -> optimize.OptimizeResult:
    """L-BFGS-B within θ's bounds, with central-difference gradients; Nelder–Mead from there
    only when L-BFGS-B reports a failure (the better of the two is kept)."""
    bounds = [(low if np.isfinite(low) else None, None) for low in problem.lower]
    result = optimize.minimize(problem.criterion, start, method="L-BFGS-B", jac="3-point",
                               bounds=bounds,
                               options={"ftol": 1e-12, "gtol": 1e-6, "maxiter": 1000})  # fmt: skip
    if not result.success:
        polish = {"xatol": 1e-10, "fatol": 1e-10, "maxfev": 2000}
        polished = optimize.minimize(problem.criterion, result.x, method="Nelder-Mead",
                                     options=polish)  # fmt: skip
        if polished.fun <= result.fun:
            polished.x = np.maximum(polished.x, problem.lower)
            return polished
    return result


def _away_from_zero(problem: _Problem, theta: np.ndarray, value: float) -> np.ndarray | None:
    """A better θ with one of its diagonal elements moved off 0, or None.

    The criterion depends on a diagonal element through its square, so its gradient is zero
    at 0: a gradient method that lands there stays, though a positive value may be better
    (lme4's derivative-free optimiser does not have this trap). Each such element is searched
    on its own by Brent's method."""
    for i, (t, low) in enumerate(zip(theta, problem.lower, strict=True)):
        if low != 0.0 or t > SINGULAR_TOLERANCE:
            continue

        def along(x: float, i: int = i) -> float:
            trial = theta.copy()
            trial[i] = x
            return problem.criterion(trial)

        upper = max(1.0, 4.0 * float(np.max(np.abs(theta))))
        found = optimize.minimize_scalar(along, bounds=(0.0, upper), method="bounded")
        if found.fun < value - 1e-9 * max(1.0, abs(value)):
            better = theta.copy()
            better[i] = found.x
            return better
    return None


def _optimise(problem: _Problem) -> tuple[np.ndarray, bool, str]:
    """θ̂: Brent's method for one parameter; otherwise L-BFGS-B from lme4's start, restarted
    wherever an element stuck at 0 does better off it."""
    if problem.n_theta == 1:
        return _optimise_scalar(problem)
    result = _minimise(problem, problem.start())
    for _ in range(2 * problem.n_theta):
        restart = _away_from_zero(problem, result.x, result.fun)
        if restart is None:
            break
        result = _minimise(problem, restart)
    theta, value = np.asarray(result.x, dtype=float), float(result.fun)
    for i, low in enumerate(problem.lower):  # on the boundary, report it as lme4 does: 0
        if low == 0.0 and 0.0 < theta[i] < SINGULAR_TOLERANCE:
            trial = theta.copy()
            trial[i] = 0.0
            if _no_worse(problem.criterion(trial), value):
                theta, value = trial, problem.criterion(trial)
    converged = bool(result.success)
    return theta, converged, "" if converged else str(result.message)


def _no_worse(boundary: float, inside: float) -> bool:
    """Whether the criterion on the boundary (a variance at 0) is no worse than just inside it,
    up to its rounding (1e-12 relative): a variance that close to 0 is reported as 0, as lme4
    reports it, however the sums were rounded."""
    return boundary <= inside + 1e-12 * max(1.0, abs(inside))


def _optimise_scalar(problem: _Problem) -> tuple[np.ndarray, bool, str]:
    """θ of a single random intercept: bracket, then Brent's method to 1e-10; θ = 0 when the
    criterion is no worse there (a singular fit, as lme4 reports it; :func:`_no_worse`)."""
    upper = 4.0
    while problem.criterion([upper]) < problem.criterion([upper / 2]) and upper < 1e6:
        upper *= 4.0
    result = optimize.minimize_scalar(lambda t: problem.criterion([t]), bounds=(0.0, upper),
                                      method="bounded", options={"xatol": 1e-10})  # fmt: skip
    theta = float(result.x)
    if theta < SINGULAR_TOLERANCE and _no_worse(
        problem.criterion([0.0]), problem.criterion([theta])
    ):
        theta = 0.0
    return np.array([theta]), bool(result.success), "" if result.success else str(result.message)


def _richardson(estimate, steps: np.ndarray, levels: int = 3) -> np.ndarray:
    """Richardson extrapolation of a central-difference estimate whose error is a series in
    even powers of the step: estimates at steps h, h/2, h/4, … combined level by level, as
    numDeriv (which lmerTest uses) does."""
    table = [np.asarray(estimate(steps / 2**k), dtype=float) for k in range(levels)]
    for m in range(1, levels):
        table = [(4**m * table[k + 1] - table[k]) / (4**m - 1) for k in range(len(table) - 1)]
    return table[0]


def _steps(x: np.ndarray) -> np.ndarray:
    """numDeriv's starting steps: a tenth of each coordinate, 1e-4 for coordinates near 0."""
    return np.where(np.abs(x) < 1.78e-5, 1e-4, 0.1 * np.abs(x))


def hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Hessian of ``f`` at ``x`` by central differences with Richardson extrapolation."""
    k = len(x)
    f0 = f(x)

    def at_step(h: np.ndarray) -> np.ndarray:
        e = np.diag(h)
        out = np.empty((k, k))
        for i in range(k):
            out[i, i] = (f(x + e[i]) - 2 * f0 + f(x - e[i])) / h[i] ** 2
            for j in range(i):
                out[i, j] = out[j, i] = (f(x + e[i] + e[j]) - f(x + e[i] - e[j])
                                         - f(x - e[i] + e[j]) + f(x - e[i] - e[j])
                                         ) / (4 * h[i] * h[j])  # fmt: skip
        return out

    return _richardson(at_step, _steps(x))


def jacobian(f: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Derivatives of an array-valued ``f`` along each coordinate of ``x`` (first axis)."""
    k = len(x)

    def at_step(h: np.ndarray) -> np.ndarray:
        e = np.diag(h)
        return np.stack([(f(x + e[i]) - f(x - e[i])) / (2 * h[i]) for i in range(k)])

    return _richardson(at_step, _steps(x))


def _satterthwaite(
    problem: _Problem, varpar: np.ndarray, vcov: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Satterthwaite degrees of freedom of each fixed effect (lmerTest's method): the
    covariance of (θ, σ) from the Hessian of the unprofiled criterion, and the gradient of
    each coefficient's variance along (θ, σ). Also returns that covariance and the Jacobian
    of the coefficients' covariance (None when the Hessian is singular), for contrasts."""
    try:
        a = 2.0 * np.linalg.inv(hessian(problem.criterion_sigma, varpar))
    except np.linalg.LinAlgError:
        return np.full(problem.p, np.nan), None, None
    jac = jacobian(problem.covbeta, varpar)
    grads = np.einsum("kii->ik", jac)
    denominator = np.einsum("ik,kl,il->i", grads, a, grads)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(denominator > 0, 2.0 * np.diag(vcov) ** 2 / denominator, np.nan)
    return df, a, jac


def contrast_df(solution: Solution, weights: np.ndarray) -> float:
    """Satterthwaite degrees of freedom of the contrast w'β (lmerTest's ``contest1D``): with
    the variance v = w'Vw and its gradient g along (θ, σ), df = 2v² / (g'Ag).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(30), 5)
    >>> x = np.column_stack([np.ones(150), rng.normal(size=150)])
    >>> s = solve(RandomIntercept.of(x[:, 1] + rng.normal(size=30)[g] + rng.normal(size=150), x, g))
    >>> bool(np.isclose(contrast_df(s, np.array([0.0, 1.0])), s.df[1]))
    True
    """
    if solution.varpar_covariance is None or solution.vcov_jacobian is None:
        return float("nan")
    w = np.asarray(weights, dtype=float)
    variance = float(w @ solution.vcov @ w)
    gradient = np.einsum("i,kij,j->k", w, solution.vcov_jacobian, w)
    denominator = float(gradient @ solution.varpar_covariance @ gradient)
    return 2.0 * variance**2 / denominator if denominator > 0 else float("nan")


def solve(problem: _Problem) -> Solution:
    """Fit a problem by REML: optimise θ, then β̂, σ̂, the covariance and the degrees of
    freedom at the optimum."""
    theta, converged, message = _optimise(problem)
    beta, rss, prod, _ = problem.gls(theta)
    sigma = float(np.sqrt(rss / (problem.n - problem.p)))
    vcov = sigma**2 * np.linalg.inv(prod.xvx)
    diagonal = [t for t, low in zip(theta, problem.lower, strict=True) if low == 0.0]
    df, varpar_covariance, vcov_jacobian = _satterthwaite(problem, np.append(theta, sigma), vcov)
    return Solution(
        theta=theta,
        sigma=sigma,
        beta=beta,
        vcov=vcov,
        df=df,
        criterion=float(problem.criterion(theta)),
        converged=converged,
        singular=any(t < SINGULAR_TOLERANCE for t in diagonal),
        message=message,
        varpar_covariance=varpar_covariance,
        vcov_jacobian=vcov_jacobian,
    )
