"""Multilevel multiple imputation: the joint two-level normal model, by data augmentation.

The incomplete variables of a case, ``y`` (d of them), are modelled as

    y_i = B' x_i + b_t(i) + e_i,    b_t ~ N(0, Psi),    e_i ~ N(0, Sigma),

with ``x_i`` complete case-level predictors (auxiliaries), ``b_t`` the random intercepts of
the case's therapist (one per variable, correlated: ``Psi`` unstructured) and ``Sigma`` the
unstructured within-therapist covariance. This is the model of R's jomo (``jomo1rancon``) and
pan (Schafer & Yucel, 2002): a therapist-level mean for every variable, so the imputations keep
the therapist differences and the between- and within-therapist associations (Enders, Mistler
& Keller, 2016). Without therapists (fewer than two), ``b`` is left out.

It is fitted by one Gibbs sampler (data augmentation; Schafer & Yucel, 2002): missing values
given the parameters and random effects, the random effects, ``B`` (flat prior), ``Sigma`` and
``Psi`` (inverse-Wishart priors with ``d`` degrees of freedom and identity scale, jomo's
defaults; Quartagno, Grund & Carpenter, 2019). After ``burn_in`` iterations an imputation is
kept every ``between`` iterations, so the model is fitted once for all ``m`` imputations, not
once per imputation.

Every step works on sufficient statistics: the cross-products of complete cases are summed
once, and each iteration touches only the cases with a missing value (no matrix over cases,
no loop over cases or therapists; the loop is over missing-data patterns).

References
----------
Schafer, J. L. (1997). Analysis of incomplete multivariate data. Chapman & Hall.
Schafer, J. L., & Yucel, R. M. (2002). Computational strategies for multivariate linear
mixed-effects models with missing values. Journal of Computational and Graphical Statistics,
11(2), 437-457.
Enders, C. K., Mistler, S. A., & Keller, B. T. (2016). Multilevel multiple imputation: A review
and evaluation of joint modeling and chained equations imputation. Psychological Methods,
21(2), 222-240.
Quartagno, M., Grund, S., & Carpenter, J. (2019). jomo: A flexible package for two-level joint
modelling multiple imputation. The R Journal, 11(2), 205-228.
"""

from __future__ import annotations

import io
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .errors import NotEstimable

__all__ = ["BETWEEN", "BURN_IN", "Imputations", "impute"]

BURN_IN = 100
"""Iterations before the first imputation is kept. The sampler starts from the regression on
mean-filled data; data augmentation converges at the rate of the largest fraction of missing
information (Schafer, 1997, ch. 3), so 100 iterations leave under 0.85**100 (1e-7) of the start
at a fraction of .85, the largest in the demo. Checked by the recovery tests
(``tests/test_imputation.py``, ``tests/test_missing_data_recovery.py``)."""

BETWEEN = 20
"""Iterations between kept imputations (thinning; their autocorrelation at this lag is about
the fraction of missing information to the 20th power)."""


class Imputations:
    """``m`` completed copies of an incomplete matrix. The imputed values wait on disk, an
    imputation at a time, and are read back one imputation at a time (:meth:`row`): twenty
    imputations of a national dataset's missing cells would otherwise hold 1.3 GB while the
    models are fitted to one completed table after another.

    Attributes
    ----------
    observed : numpy.ndarray
        Cases × variables, NaN where missing.
    """

    def __init__(self, observed: np.ndarray) -> None:
        self.observed = observed
        self._cells = np.flatnonzero(np.isnan(observed))
        self._variables = (self._cells % observed.shape[1]).astype(np.int32)
        # open for the object's life, closed (and so removed) with it
        self._file = tempfile.TemporaryFile(prefix="allianceanalysis-")  # noqa: SIM115
        weakref.finalize(self, self._file.close)
        self.m = 0
        """The number of imputations."""

    def add(self, values: np.ndarray) -> None:
        """Keep one imputation's values (the missing cells, in the order of
        ``numpy.flatnonzero(numpy.isnan(observed))``)."""
        if len(values) != len(self._cells):
            raise ValueError(f"{len(values)} values for {len(self._cells)} missing cells")
        self._file.seek(0, io.SEEK_END)
        np.asarray(values, dtype=np.float64).tofile(self._file)
        self.m += 1

    def row(self, j: int) -> np.ndarray:
        """The ``j``-th imputation's values, read from disk."""
        if not 0 <= j < self.m:
            raise IndexError(f"imputation {j} of {self.m}")
        self._file.seek(j * len(self._cells) * 8)
        return np.fromfile(self._file, dtype=np.float64, count=len(self._cells))

    @property
    def values(self) -> np.ndarray:
        """Imputations × missing cells: every imputed value (all read into memory)."""
        self._file.seek(0)
        values = np.fromfile(self._file, dtype=np.float64, count=self.m * len(self._cells))
        return values.reshape(self.m, len(self._cells))

    def columns(self, j: int, which: Iterable[int] | None = None) -> list[np.ndarray]:
        """The ``j``-th completed matrix's columns ``which`` (indices; None: all), copies made
        one variable at a time: no matrix of them all besides the observed one."""
        values = self.row(j)
        columns = []
        for i in range(self.observed.shape[1]) if which is None else which:
            column = self.observed[:, i].copy()
            column[np.isnan(column)] = values[self._variables == i]
            columns.append(column)
        return columns

    def completed(self, j: int) -> np.ndarray:
        """The ``j``-th completed matrix (a copy)."""
        full = self.observed.copy()
        full.flat[self._cells] = self.row(j)
        return full


def _inverse_wishart(df: float, scale: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of an inverse-Wishart(``df``, ``scale``) matrix, by Bartlett's decomposition of
    the Wishart(``df``, ``scale``^-1) draw it inverts (as ``scipy.stats.invwishart``;
    ``tests/test_imputation.py`` checks the two agree in distribution)."""
    d = len(scale)
    lower = np.linalg.cholesky(np.linalg.inv(scale))
    bartlett = np.tril(rng.standard_normal((d, d)), -1)
    bartlett[np.diag_indices(d)] = np.sqrt(rng.chisquare(df - np.arange(d)))
    factor = lower @ bartlett
    return np.linalg.inv(factor @ factor.T)


_ROWS = 1 << 20
"""Rows of the complete cases' sums computed at a time (their copies bounded)."""

_CHUNK = 8192
"""Rows of a pattern's cases drawn at a time: their design (up to about 12 columns of 8
bytes, under 1 MB) stays in a core's cache (the machine's L2 is 1 MB per core) while its
products with the new values are summed."""


class _Patterns:
    """The missing-data patterns of the incomplete cases, with each pattern's rows."""

    def __init__(self, missing: np.ndarray) -> None:
        incomplete = np.flatnonzero(missing.any(axis=1))
        codes = missing[incomplete] @ (1 << np.arange(missing.shape[1]))
        order = np.argsort(codes, kind="stable")
        codes, incomplete = codes[order], incomplete[order]
        self.rows = incomplete
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        bounds = np.r_[starts, len(codes)]
        masks = [missing[incomplete[start]] for start in starts]
        self.masks = np.array(masks, dtype=bool).reshape(len(masks), missing.shape[1])
        """Each pattern's missing variables (patterns × variables)."""
        self.groups = [
            (slice(bounds[g], bounds[g + 1]), np.flatnonzero(mask)) for g, mask in enumerate(masks)
        ]
        """Each pattern's rows (a slice of :attr:`rows`) and missing variables."""


@dataclass
class _Block:
    """One pattern's incomplete cases, as the sampler holds them."""

    missing: np.ndarray
    """The missing variables."""
    observed: np.ndarray
    """The observed variables."""
    design: np.ndarray
    """The complete predictors and the observed scores side by side (rows × (p + observed)),
    fixed: what the missing scores are regressed on."""
    groups: np.ndarray | None
    """Each row's therapist."""
    values: np.ndarray
    """The missing scores' current values (rows × missing): a view of the sampler's buffer."""

    def __post_init__(self) -> None:
        # the index pairs of the blocks of a variables x variables matrix, made once
        self.mm = np.ix_(self.missing, self.missing)
        self.om = np.ix_(self.observed, self.missing)


class _Sampler:
    """The Gibbs sampler's state and its sufficient statistics.

    The sampler holds the incomplete cases only, a block per missing-data pattern (each
    block's observed scores beside its predictors, its missing scores a view of one buffer);
    what the complete cases and the observed scores add to the sums is summed once."""

    def __init__(
        self, y: np.ndarray, x: np.ndarray, groups: np.ndarray | None, rng: np.random.Generator
    ) -> None:
        self.rng = rng
        missing = np.isnan(y)
        self.n, self.d = y.shape
        self.p = x.shape[1]
        patterns = _Patterns(missing)
        self.masks = patterns.masks
        inc = patterns.rows
        self.xtx = x.T @ x
        self.xtx_inv = np.linalg.inv(self.xtx)
        self.xtx_inv_chol = np.linalg.cholesky(self.xtx_inv)
        self.xty_fixed = np.zeros((self.p, self.d))
        self.yty_fixed = np.zeros((self.d, self.d))
        complete = np.ones(self.n, dtype=bool)
        complete[inc] = False
        for start in range(0, self.n, _ROWS):  # the complete cases' sums, a block at a time
            keep = complete[start : start + _ROWS]
            xc, yc = x[start : start + _ROWS][keep], y[start : start + _ROWS][keep]
            self.xty_fixed += xc.T @ yc
            self.yty_fixed += yc.T @ yc
        # the buffer of missing cells: by pattern, then row, then variable
        cells = np.flatnonzero(missing[inc])
        del missing, complete  # each index array of the cells is freed once used: at 10M cases
        cases, variables = inc[cells // self.d], cells % self.d  # the imputation model of
        del cells  # early session 5 has 18.4M missing cells (147 MB an int64 array)
        self.values = np.nanmean(y, axis=0)[variables]  # the start: mean-filled
        self.order = np.argsort(cases * self.d + variables)
        """The buffer's positions of the full matrix's missing cells, in its order."""
        self.grouped = groups is not None
        if self.grouped:
            self.cell_groups = groups[cases] * self.d + variables
            """Each buffer cell's therapist and variable, as one code (its Z'Y cell)."""
        del cases, variables
        self.blocks: list[_Block] = []
        offset = 0
        for mask, (rows, m) in zip(patterns.masks, patterns.groups, strict=True):
            r = inc[rows]
            o = np.flatnonzero(~mask)
            observed = y[np.ix_(r, o)]
            design = np.column_stack([x[r], observed])
            self.xty_fixed[:, o] += design[:, : self.p].T @ observed
            self.yty_fixed[np.ix_(o, o)] += observed.T @ observed
            size = len(r) * len(m)
            values = self.values[offset : offset + size].reshape(len(r), len(m))
            offset += size
            block_groups = groups[r] if self.grouped else None
            self.blocks.append(_Block(m, o, design, block_groups, values))
        if self.grouped:
            t = int(groups.max()) + 1
            self.n_t = np.bincount(groups, minlength=t).astype(float)

            def per_therapist(columns: Iterable[np.ndarray]) -> np.ndarray:
                sums = [np.bincount(groups, weights=c, minlength=t) for c in columns]
                return np.column_stack(sums).reshape(t, -1)

            self.zx = per_therapist(x.T)
            self.zy_fixed = per_therapist(np.where(np.isnan(c), 0.0, c) for c in y.T)
            self.b = np.zeros((t, self.d))
        self._start()

    def _sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """X'Y, Y'Y and Z'Y of the current completed data: the fixed sums and each block's
        products with its missing scores."""
        products = [(block.design.T @ block.values, block.values.T @ block.values)
                    for block in self.blocks]  # fmt: skip
        return self._completed_sums(products)

    def _completed_sums(
        self, products: list[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """X'Y, Y'Y and Z'Y from the fixed sums and each block's products of its design and of
        its missing scores with its missing scores."""
        xty = self.xty_fixed.copy()
        beside = np.zeros((self.d, self.d))  # observed x missing (the transpose added below)
        both = np.zeros((self.d, self.d))  # missing x missing
        for block, (cross, square) in zip(self.blocks, products, strict=True):
            xty[:, block.missing] += cross[: self.p]
            beside[block.om] += cross[self.p :]
            both[block.mm] += square
        yty = self.yty_fixed + beside + beside.T + both
        if not self.grouped:
            return xty, yty, None
        cells = np.bincount(self.cell_groups, weights=self.values, minlength=self.b.size)
        return xty, yty, self.zy_fixed + cells.reshape(self.b.shape)

    def _start(self) -> None:
        xty, yty, _ = self._sums()
        self.beta = self.xtx_inv @ xty
        residual = yty - xty.T @ self.beta
        self.sigma = residual / max(self.n - self.p, 1) + 1e-8 * np.eye(self.d)
        self.psi = 0.1 * np.diag(np.diag(self.sigma))

    def step(self) -> None:
        """One iteration: missing values, random effects, B, Sigma, Psi."""
        xty, yty, zy = self._draw_missing()
        xty_star = xty
        chol = np.linalg.cholesky(self.sigma)
        if self.grouped:
            self._draw_random_effects(zy - self.zx @ self.beta, chol)
            xty_star = xty - self.zx.T @ self.b
        noise = self.rng.standard_normal((self.p, self.d))
        self.beta = self.xtx_inv @ xty_star + self.xtx_inv_chol @ noise @ chol.T
        cross = self._residual_cross_products(xty, yty, zy)
        self.sigma = _inverse_wishart(self.n + self.d, cross + np.eye(self.d), self.rng)
        if self.grouped:
            t = len(self.b)
            self.psi = _inverse_wishart(t + self.d, self.b.T @ self.b + np.eye(self.d), self.rng)

    def _residual_cross_products(
        self, xty: np.ndarray, yty: np.ndarray, zy: np.ndarray | None
    ) -> np.ndarray:
        """E'E for E = Y - X B - Z b, from the sufficient statistics."""
        bxty = self.beta.T @ xty
        cross = yty - bxty - bxty.T + self.beta.T @ self.xtx @ self.beta
        if not self.grouped:
            return cross
        cb = (zy - self.zx @ self.beta).T @ self.b
        return cross - cb - cb.T + (self.b * self.n_t[:, None]).T @ self.b

    def _draw_random_effects(self, sums: np.ndarray, chol: np.ndarray) -> None:
        """b_t | Y, B, Sigma, Psi for every therapist at once (simultaneous diagonalisation of
        Sigma^-1 and Psi^-1: the posterior precision Psi^-1 + n_t Sigma^-1 in one basis);
        ``chol`` is Sigma's lower Cholesky factor."""
        psi_inv = np.linalg.inv(self.psi)
        lam, q = np.linalg.eigh(chol.T @ psi_inv @ chol)
        w = chol @ q
        u = np.linalg.solve(chol, sums.T).T @ q
        scale = lam[None, :] + self.n_t[:, None]
        z = self.rng.standard_normal(u.shape)
        self.b = (u / scale + z / np.sqrt(scale)) @ w.T

    def _draw_missing(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Y_mis | Y_obs, b, B, Sigma; and the sums of the completed data (:meth:`_sums`).

        With Q = Sigma^-1 and mu = B'x + b, a case's missing scores are normal with covariance
        (Q_mm)^-1 and mean mu_m + C (y_o - mu_o), where C = -(Q_mm)^-1 Q_mo: with W the
        variables x missing matrix of I on the missing rows and -C' on the observed ones, the
        mean is mu W + y_o C' = x'B W + b W + y_o C', one product per pattern with its fixed
        design. Every pattern's (Q_mm)^-1, C and noise factor come from one batched inverse of
        Q with its observed rows and columns replaced by the identity's. A block is drawn
        :data:`_CHUNK` rows at a time, and each chunk's products summed while its design is in
        the cache (the sums would otherwise read every design a second time)."""
        q = np.linalg.inv(self.sigma)
        missing = self.masks
        both = missing[:, :, None] & missing[:, None, :]
        blocks = np.where(both, q, 0.0) + np.eye(self.d) * ~missing[:, None, :]
        # -C' on the observed rows of the missing columns; 0 on their missing rows
        regression = np.linalg.inv(blocks) @ np.where(missing[:, None, :], 0.0, q)
        gains = np.eye(self.d) + regression.transpose(0, 2, 1)
        noise_factor = np.linalg.inv(np.linalg.cholesky(blocks))  # L^-1: L^-T z has cov A^-1
        products = []
        for g, block in enumerate(self.blocks):
            w = gains[g][:, block.missing]
            coefficients = np.vstack([self.beta @ w, -w[block.observed]])
            factor = noise_factor[g][block.mm]
            # b W of each row: made per therapist and gathered, or gathered and made per row,
            # whichever is fewer
            per_therapist = self.b @ w if self.grouped and len(self.b) < len(block.groups) else None
            cross = np.zeros((len(coefficients), len(block.missing)))
            square = np.zeros((len(block.missing), len(block.missing)))
            for start in range(0, len(block.values), _CHUNK):
                rows = slice(start, start + _CHUNK)
                design, mean = block.design[rows], block.values[rows]  # made in place
                np.matmul(design, coefficients, out=mean)
                if per_therapist is not None:
                    mean += np.take(per_therapist, block.groups[rows], axis=0)
                elif self.grouped:
                    mean += np.take(self.b, block.groups[rows], axis=0) @ w
                z = self.rng.standard_normal(mean.shape)
                if len(block.missing) == 1:  # z times a 1 x 1 factor: the product's one term
                    z *= factor[0, 0]
                else:
                    z = z @ factor
                mean += z
                cross += design.T @ mean
                square += mean.T @ mean
            products.append((cross, square))
        return self._completed_sums(products)

    def missing_values(self) -> np.ndarray:
        """The current imputed values, in the order of the full matrix's missing cells."""
        return self.values.take(self.order)


def impute(
    y: np.ndarray,
    x: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    m: int = 20,
    seed: int = 0,
    burn_in: int = BURN_IN,
    between: int = BETWEEN,
) -> Imputations:
    """Multiple imputation of ``y`` under the joint two-level normal model (module docstring).

    Parameters
    ----------
    y : numpy.ndarray
        Cases × incomplete variables, NaN where missing. A case may miss every variable.
    x : numpy.ndarray
        Cases × complete predictors (include a column of ones for an intercept).
    groups : numpy.ndarray, optional
        Each case's therapist as an integer 0 … T − 1; None for no therapist level.
    m : int
        Imputations (at least 2).
    seed : int
        Seed of the sampler.
    burn_in, between : int
        Iterations before the first kept imputation and between kept imputations.

    Returns
    -------
    Imputations

    Raises
    ------
    NotEstimable
        A variable observed in fewer than two cases, or predictors of less than full rank.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y = rng.normal(size=(200, 2)); y[:50, 1] = np.nan
    >>> imps = impute(y, np.ones((200, 1)), m=3, seed=2, burn_in=20, between=5)
    >>> imps.values.shape, bool(np.isnan(imps.completed(0)).any())
    ((3, 50), False)
    """
    if m < 2:
        raise ValueError(f"m must be at least 2 imputations (Rubin's rules need two); got {m}")
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    seen = (~np.isnan(y)).sum(axis=0)
    if (seen < 2).any():
        raise NotEstimable(
            f"variable {int(np.argmin(seen))} is observed in {int(seen.min())} cases"
        )
    if np.linalg.matrix_rank(x.T @ x) < x.shape[1]:
        raise NotEstimable("the imputation model's predictors are linearly dependent")
    sampler = _Sampler(y, x, groups, np.random.default_rng(seed))
    imputations = Imputations(y)
    for iteration in range(burn_in + (m - 1) * between + 1):
        sampler.step()
        if iteration >= burn_in and (iteration - burn_in) % between == 0:
            imputations.add(sampler.missing_values())
    return imputations
