"""Fitting the catalogue's linear mixed models by REML: one interface, three engines.

Every linear mixed model of the catalogue goes through :func:`fit_lmm`, which takes an lme4
formula and returns a :class:`MixedFit` (fixed effects with standard errors, Satterthwaite
degrees of freedom, p-values and confidence intervals; variance components; the REML
log-likelihood; convergence and singularity in plain words), so the engine can be swapped
without touching the analyses.

Engines
-------
``"lmm"`` (default)
    The package's own REML core (:mod:`allianceanalysis.lmm`): the REML criterion of each of
    the catalogue's three random-effect structures from per-group sums, one vectorised pass
    over the groups per evaluation; Satterthwaite degrees of freedom as lmerTest computes them.
    Equal to the lme4 fixtures and to ``mixedlm`` (``docs/models.md``, "The engine"), and the
    fastest by far at scale (``docs/performance.md``).
``"mixedlm"``
    The ``mixedlm`` package (a Rust implementation of lme4's algorithms, pinned), the second
    engine the core is tested against. Equal to lme4 1.1-31 to a relative 1e-7 in fixed
    effects and 1e-12 in the REML log-likelihood for random intercepts (1e-4 or better for
    nested and random-slope models); its Satterthwaite degrees of freedom equal lmerTest's.
    Inference: t statistics with Satterthwaite degrees of freedom, as lmerTest reports them
    (Kuznetsova, Brockhoff & Christensen, 2017); 95% intervals ``estimate ± t(0.975, df) · SE``.
``"statsmodels"``
    statsmodels' MixedLM, kept as an independent cross-check on small data (it slows down
    sharply with many groups, and nested models need dense per-group design matrices). Several
    optimisers are tried and the best REML likelihood kept (MixedLM can stop at a worse optimum
    with random slopes). Inference: Wald z (no Satterthwaite degrees of freedom); its standard
    errors of fixed effects come from its joint Hessian and differ from lme4's by a few percent
    (estimates, variance components and likelihoods agree).

Formulas
--------
lme4 notation, read with R's semantics by :mod:`allianceanalysis.formula`: factors,
interactions and transformations in the fixed part; in the random part intercepts and slopes,
correlated or not (``||``), nested and crossed. Rows with a missing value in any variable of
the formula are dropped (complete cases) and counted (:attr:`MixedFit.n_dropped`).

Which algorithm fits the random part: the fast core has a closed form for the structures of
:class:`Structure` (one random intercept; two nested ones; a correlated or uncorrelated
random intercept and slope). Any other structure (crossed random intercepts such as clients
who change therapist, several slopes, three levels) is fitted by lme4's own algorithm (a
penalised least-squares problem with a sparse Cholesky factor) through the ``mixedlm`` engine,
and the fit's ``messages`` say so; never a wrong answer, only a slower one.

The therapist level is optional (:data:`OPTIONAL_GROUPS`): data without therapist codes, or
with a single practitioner, have fewer than two therapists, and a model with ``(1 |
therapist_id)`` is then fitted without it (``(1 | therapist_id/client_id)`` becomes ``(1 |
client_id)``; with no random effect left, an ordinary least-squares fit with t inference on
the residual degrees of freedom, as R's ``lm``), and its ``messages`` say so.

Examples
--------
>>> from allianceanalysis.simulate import simulate_study
>>> from allianceanalysis.derive import client_table
>>> clients = client_table(simulate_study(n_clients=200, n_therapists=10, seed=1).sessions)
>>> fit = fit_lmm("outcome_final ~ outcome_intake + (1 | therapist_id)", clients)
>>> list(fit.coefficients.index), sorted(fit.variances)
(['Intercept', 'outcome_intake'], ['var_residual', 'var_therapist'])
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize

from . import lmm
from .distributions import chi2_ppf, norm_ppf, norm_sf, t_ppf, t_sf
from .errors import NotEstimable
from .formula import SUPPORTED, Design, Formula, aliased_from_crossproducts, design
from .sums import GroupSums, group_sums, group_sums_each, merge_sums

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "OPTIONAL_GROUPS",
    "SUPPORTED",
    "Formula",
    "MixedFit",
    "Structure",
    "core_structure",
    "fit_lmm",
    "fit_lmm_each",
    "fit_lmm_pieces",
    "group_label",
    "profile_interval",
]


ENGINES = ("lmm", "mixedlm", "statsmodels")
DEFAULT_ENGINE = "lmm"
"""The engine every analysis uses unless told otherwise (the workflow's ``engine``)."""
_GROUP_LABELS = {"therapist_id": "therapist", "client_id": "client", "site_id": "site"}
OPTIONAL_GROUPS = ("therapist_id",)
"""Grouping factors a model loses, saying so, when the data have fewer than two levels: data
may have no therapist codes (docs/data-format.md)."""


def group_label(column: str) -> str:
    """Short name of a grouping column in term names: ``therapist_id`` -> ``therapist``."""
    return _GROUP_LABELS.get(column, column)


@dataclass(frozen=True)
class Structure:
    """A random-effect structure the fast core has a closed form for.

    ``kind`` is ``"intercept"`` (``(1 | g)``), ``"nested"`` (``(1 | g1/g2)``, or ``(1 | g1) +
    (1 | g2)`` with every level of ``g2`` in one level of ``g1``), ``"slope"`` (``(1 + s |
    g)``) or ``"uncorrelated"`` (``(1 | g) + (0 + s | g)``); ``groups`` outermost first.
    """

    kind: str
    groups: tuple[str, ...]
    slope: str | None = None


def _nested_in(inner: str, outer: str, frame: pd.DataFrame) -> bool:
    """Whether every level of ``inner`` lies in a single level of ``outer``."""
    return bool(frame.groupby(inner, sort=False)[outer].nunique().max() <= 1)


def core_structure(formula: Formula, frame: pd.DataFrame) -> Structure | None:
    """The fast core's structure of the formula's random part on these data, or None.

    Examples
    --------
    >>> data = pd.DataFrame({"g": list("aabb"), "h": list("wxyz"), "s": [0.0, 1, 0, 1]})
    >>> core_structure(Formula.parse("y ~ 1 + (1 | g) + (1 | h)"), data)
    Structure(kind='nested', groups=('g', 'h'), slope=None)
    >>> core_structure(Formula.parse("y ~ s + (s || g)"), data).kind
    'uncorrelated'
    """
    terms = formula.random
    simple = [t for t in terms if len(t.group) == 1]
    if len(terms) == 1 and simple and terms[0].intercept and len(terms[0].slopes) <= 1:
        term = terms[0]
        return Structure("slope" if term.slopes else "intercept", term.group,
                         term.slopes[0] if term.slopes else None)  # fmt: skip
    if len(terms) != 2:
        return None
    a, b = terms
    if (len(simple) == 2 and a.group == b.group and a.intercept and not a.slopes
            and not b.intercept and len(b.slopes) == 1):  # fmt: skip
        return Structure("uncorrelated", a.group, b.slopes[0])
    if any(t.slopes or not t.intercept for t in terms):
        return None
    for outer, inner in ((a, b), (b, a)):
        if len(outer.group) == 1 and inner.group[:-1] == outer.group and len(inner.group) == 2:
            return Structure("nested", inner.group)
    if len(simple) == 2:
        for outer, inner in ((a, b), (b, a)):
            if _nested_in(inner.group[0], outer.group[0], frame):
                return Structure("nested", (outer.group[0], inner.group[0]))
    return None


@dataclass
class MixedFit:
    """A fitted linear mixed model, engine-independent.

    Attributes
    ----------
    formula : Formula
    coefficients : pandas.DataFrame
        Index: term (``Intercept`` and the fixed variables); columns ``estimate``,
        ``std_error``, ``df``, ``statistic``, ``p_value``, ``ci_low``, ``ci_high``.
    variances : dict
        ``var_<group>`` for each random intercept, ``var_residual``; with a random slope also
        ``var_<group>_<slope>`` and ``cor_<group>_<slope>``.
    loglik : float
        REML log-likelihood.
    n_obs : int
        Rows used (complete cases).
    n_groups : dict
        Levels of each grouping factor (a nested factor counts its combinations).
    converged, singular : bool
    messages : tuple of str
        Convergence and singularity problems in plain words (empty when there are none).
    engine : str
    ci_method : str
        How p-values and intervals were computed.
    theta : numpy.ndarray
        Relative covariance parameters (lme4's theta).
    deviance : callable or None
        The REML criterion as a function of theta, with the fixed effects and the residual
        variance profiled out (for profile-likelihood intervals).
    fixed_prediction_variance : float
        Sample variance (n - 1) of the fixed-effect predictions, for Nakagawa's R².
    random_effects : pandas.DataFrame or None
        For a single random intercept: one row per group level (index), with the predicted
        effect (``estimate``, the BLUP) and its conditional variance (``cond_var``, lme4's
        ``ranef(condVar = TRUE)``), and ``n_obs``, the level's rows.
    n_dropped : int
        Rows dropped for a missing value in a variable of the formula.
    vcov : numpy.ndarray
        The fixed effects' covariance (terms × terms, in the order of ``coefficients``).
    contrast_df : callable or None
        The Satterthwaite degrees of freedom of a contrast w'β (lmerTest's ``contest1D``) for
        the fast core; the residual degrees of freedom for a fit without random effects; None
        where the engine gives none (intervals of contrasts are then Wald z).
    """

    formula: Formula
    coefficients: pd.DataFrame
    variances: dict[str, float]
    loglik: float
    n_obs: int
    n_groups: dict[str, int]
    converged: bool
    singular: bool
    messages: tuple[str, ...]
    engine: str
    ci_method: str
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    deviance: Callable[[np.ndarray], float] | None = None
    fixed_prediction_variance: float = float("nan")
    random_effects: pd.DataFrame | None = None
    n_dropped: int = 0
    vcov: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    contrast_df: Callable[[np.ndarray], float] | None = None

    def contrast(self, weights: Mapping[str, float], term: str = "contrast") -> pd.DataFrame:
        """A linear combination of the fixed effects, with its SE, Satterthwaite df, p-value
        and 95% interval (one row, index ``term``): e.g. the alliance's effect at a level of a
        moderator, ``{"alliance_early": 1, "alliance_early:treatmentB": 1}``.

        Examples
        --------
        >>> from allianceanalysis.simulate import simulate_study
        >>> from allianceanalysis.derive import client_table
        >>> c = client_table(simulate_study(n_clients=200, n_therapists=10, seed=1).sessions)
        >>> fit = fit_lmm("outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)", c)
        >>> row = fit.contrast({"alliance_early": 1.0})
        >>> bool(np.isclose(row["df"].item(), fit.coefficients.loc["alliance_early", "df"]))
        True
        """
        terms = list(self.coefficients.index)
        unknown = [t for t in weights if t not in terms]
        if unknown:
            raise ValueError(f"the model has no coefficient {unknown[0]!r}")
        w = np.array([float(weights.get(t, 0.0)) for t in terms])
        estimate = float(w @ self.coefficients["estimate"].to_numpy())
        std_error = float(np.sqrt(w @ self.vcov @ w))
        df = self.contrast_df(w) if self.contrast_df is not None else float("inf")
        return _inference(np.array([estimate]), np.array([std_error]), np.array([df]), [term])

    @property
    def random_variance(self) -> float:
        """Sum of the random-intercept variances (for Nakagawa's R² of intercept models)."""
        return sum(self.variances.get(f"var_{label}", 0.0) for label in self.n_groups)


def _complete_cases(formula: Formula, data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The model's columns, complete rows only, and how many rows were dropped."""
    missing = [c for c in formula.variables if c not in data]
    if missing:
        raise ValueError(f"the data have no column {missing[0]!r} for {formula.lme4()}")
    numeric = [formula.response, *formula.slopes]
    text = [c for c in numeric if not pd.api.types.is_numeric_dtype(data[c])]
    if text:
        values = data[text[0]].dropna()
        example = f" (e.g. {values.iloc[0]!r})" if len(values) else ""
        raise ValueError(
            f"the column {text[0]!r} of {formula.lme4()} is not numeric{example}: the response "
            "and random slopes are numeric columns (factors belong in the fixed part)"
        )
    frame = data[formula.variables]
    complete = frame.notna().all(axis=1).to_numpy()
    if complete.all():
        return frame.reset_index(drop=True), 0
    return frame[complete].reset_index(drop=True), int((~complete).sum())


def _inference(
    estimate: np.ndarray, std_error: np.ndarray, df: np.ndarray, terms: list[str]
) -> pd.DataFrame:
    statistic = estimate / std_error
    finite = np.isfinite(df)
    p_t = 2 * t_sf(np.abs(statistic), np.where(finite, df, 1.0))
    p_z = 2 * norm_sf(np.abs(statistic))
    p_value = np.where(finite, p_t, p_z)
    quantile = np.where(finite, t_ppf(0.975, np.where(finite, df, 1.0)), norm_ppf(0.975))
    return pd.DataFrame(
        {
            "estimate": estimate,
            "std_error": std_error,
            "df": df,
            "statistic": statistic,
            "p_value": p_value,
            "ci_low": estimate - quantile * std_error,
            "ci_high": estimate + quantile * std_error,
        },
        index=pd.Index(terms, name="term"),
    )


def _prediction_variance(x: np.ndarray, beta: np.ndarray) -> float:
    """Sample variance (n - 1) of the fixed-effect predictions Xβ."""
    return float(np.var(x @ beta, ddof=1)) if len(x) > 1 else float("nan")


def _plain(message: str) -> str:
    return " ".join(str(message).split())


def _singular_message(variances: dict[str, float]) -> str:
    residual = variances["var_residual"]
    at_zero = [
        k.removeprefix("var_").replace("_", " slope of ", 1)
        for k, v in variances.items()
        if k.startswith("var_") and k != "var_residual" and v <= 1e-6 * residual
    ]
    at_one = [k for k, v in variances.items() if k.startswith("cor_") and abs(v) > 0.999]
    parts = [f"the {name} variance is estimated at zero" for name in at_zero]
    parts += [f"the correlation {name.removeprefix('cor_')} is estimated at ±1" for name in at_one]
    detail = " and ".join(parts) or "a variance component is estimated at its boundary"
    return f"singular fit: {detail}; the data do not support that part of the model"


def _numeric_frame(
    formula: Formula, frame: pd.DataFrame, x: np.ndarray
) -> tuple[pd.DataFrame, str]:
    """The response, the design's columns as ``_x0`` …, the slopes and the groups (as text), and
    the formula over them: other engines see the fixed part exactly as the design built it."""
    columns = {"_y": frame[formula.response].to_numpy(dtype=float)}
    columns |= {f"_x{j}": x[:, j] for j in range(x.shape[1])}
    columns |= {s: frame[s].to_numpy(dtype=float) for s in formula.slopes}
    columns |= {g: frame[g].astype("str").to_numpy() for g in formula.groups}
    fixed = " + ".join(["0", *(f"_x{j}" for j in range(x.shape[1]))])
    return pd.DataFrame(columns), " + ".join([f"_y ~ {fixed}", *(t.lme4() for t in formula.random)])


def _term_label(name: str) -> str:
    """lme4's name of a random term's group (``Subject.1``, ``batch:cask``) -> its label."""
    return group_label(re.sub(r"\.\d+$", "", name).split(":")[-1])


def _mixedlm_variances(varcorr) -> dict[str, float]:
    variances: dict[str, float] = {}
    for name, group in varcorr.groups.items():
        label = _term_label(name)
        components = list(group.variance)
        for component, value in group.variance.items():
            key = label if component == "(Intercept)" else f"{label}_{component}"
            variances[f"var_{key}"] = float(value)
        corr = None if group.corr is None else np.asarray(group.corr, dtype=float)
        for i in range(len(components) if corr is not None else 0):
            for j in range(i + 1, len(components)):
                pair = [c for c in (components[i], components[j]) if c != "(Intercept)"]
                variances[f"cor_{label}_{'_'.join(pair)}"] = float(corr[i, j])
    variances["var_residual"] = float(varcorr.residual)
    return variances


def _fit_mixedlm(formula: Formula, frame: pd.DataFrame, fixed: Design,
                 structure: Structure | None) -> MixedFit:  # fmt: skip
    import mixedlm

    numeric, text = _numeric_frame(formula, frame, fixed.x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = mixedlm.lmer(text, numeric, REML=True)
        tidy = model.tidy(ddf_method="Satterthwaite")
    beta = np.array(list(model.fixef().values()), dtype=float)
    vcov = np.asarray(model.vcov(), dtype=float)
    std_error = np.sqrt(np.diag(vcov))
    df = tidy.loc[tidy["effect"] == "fixed", "df"].to_numpy(dtype=float)
    variances = _mixedlm_variances(model.VarCorr())
    n_groups = {_term_label(name): int(n) for name, n in model.ngrps().items()}
    singular = bool(model.isSingular())
    converged = bool(model.converged)
    messages = [
        _plain(w.message)
        for w in caught
        if not issubclass(w.category, DeprecationWarning) and "singular" not in str(w.message)
    ]
    if not converged:
        messages.insert(0, f"the optimiser did not converge ({_plain(model.message)})")
    if singular:
        messages.append(_singular_message(variances))
    theta = np.asarray(model.theta, dtype=float)
    return MixedFit(
        formula=formula,
        coefficients=_inference(beta, std_error, df, fixed.terms),
        variances=variances,
        loglik=float(model.logLik().value),
        n_obs=int(model.nobs()),
        n_groups=n_groups,
        converged=converged,
        singular=singular,
        messages=tuple(dict.fromkeys(messages)),
        engine="mixedlm",
        ci_method="satterthwaite_t",
        theta=theta,
        deviance=model.as_function(),
        fixed_prediction_variance=_prediction_variance(fixed.x, beta),
        vcov=vcov,
        random_effects=_random_intercepts(
            structure,
            _residual_sums(
                structure, frame, frame[formula.response].to_numpy(float) - fixed.x @ beta
            ),
            np.zeros(0),
            float(theta[0]),
            variances["var_residual"],
        ),
    )


def _random_intercepts(
    structure: Structure | None,
    sums: lmm._Problem | GroupSums | None,
    beta: np.ndarray,
    theta: float,
    sigma2: float,
) -> pd.DataFrame | None:
    """BLUPs and conditional variances of a single random intercept (levels sorted, as lme4).

    With relative SD θ and residual variance σ², level j's conditional mean given β̂ is
    θ² S_j / (1 + n_j θ²), S_j the sum of its residuals y − Xβ̂ over its n_j rows (from the
    level's sums: Σ y − (Σ x)'β̂; or the sums of the residuals themselves, with no columns
    and no β̂), and its conditional variance σ² θ² / (1 + n_j θ²): lme4's
    ``ranef(condVar = TRUE)`` for this model, in one vectorised pass (no solve per level).
    """
    if structure is None or sums is None or structure.kind != "intercept":
        return None
    residual = sums.sy - sums.sx @ beta
    shrink = theta**2 / (1.0 + sums.size * theta**2)
    return pd.DataFrame(
        {"estimate": shrink * residual, "cond_var": sigma2 * shrink,
         "n_obs": sums.size.astype(int)},
        index=pd.Index(sums.levels, name=structure.groups[0]),
    )  # fmt: skip


def _residual_sums(
    structure: Structure | None, frame: pd.DataFrame, residual: np.ndarray
) -> GroupSums | None:
    """Per level of a single random intercept, the sums of the residuals (another engine's
    fit, for :func:`_random_intercepts`); None for any other structure."""
    if structure is None or structure.kind != "intercept":
        return None
    return group_sums(residual, np.zeros((len(frame), 0)), frame[structure.groups[0]])


def structure_sums(
    structure: Structure, y: np.ndarray, x: np.ndarray, frame: pd.DataFrame
) -> GroupSums:
    """The sufficient statistics a structure's core needs, from complete rows."""
    [sums] = structure_sums_each(structure, [y], x, frame)
    return sums


def structure_sums_each(
    structure: Structure, responses: Iterable[np.ndarray], x: np.ndarray, frame: pd.DataFrame
) -> list[GroupSums]:
    """:func:`structure_sums` of each response with the same design and groups
    (:func:`~allianceanalysis.sums.group_sums_each`)."""
    groups = [frame[g] for g in structure.groups]
    if structure.kind in ("slope", "uncorrelated"):
        slope = frame[structure.slope].to_numpy(dtype=float)
        return group_sums_each(responses, x, groups[0], slope=slope)
    if structure.kind == "nested":
        return group_sums_each(responses, x, groups[1], outer=groups[0])
    return group_sums_each(responses, x, groups[0])


def _core_problem(structure: Structure, sums: GroupSums) -> lmm._Problem:
    if structure.kind in ("slope", "uncorrelated"):
        return (lmm.RandomSlope if structure.kind == "slope" else lmm.UncorrelatedSlope)(sums)
    if structure.kind == "nested":
        return lmm.Nested(sums)
    return lmm.RandomIntercept(sums)


def _core_variances(structure: Structure, theta: np.ndarray, sigma2: float) -> dict[str, float]:
    """Variance components from θ and σ² (lme4's θ order), named as the other engines do."""
    labels = [group_label(g) for g in structure.groups]
    if structure.kind == "slope":
        t1, t2, t3 = theta
        slope_sd = float(np.hypot(t2, t3))
        cor = t2 / slope_sd if t1 > 0 and slope_sd > 0 else 0.0
        return {f"var_{labels[0]}": sigma2 * t1**2,
                f"var_{labels[0]}_{structure.slope}": sigma2 * slope_sd**2,
                f"cor_{labels[0]}_{structure.slope}": float(cor),
                "var_residual": sigma2}  # fmt: skip
    if structure.kind == "uncorrelated":
        return {f"var_{labels[0]}": sigma2 * theta[0] ** 2,
                f"var_{labels[0]}_{structure.slope}": sigma2 * theta[1] ** 2,
                "var_residual": sigma2}  # fmt: skip
    if structure.kind == "nested":
        return {f"var_{labels[0]}": sigma2 * theta[1] ** 2,
                f"var_{labels[1]}": sigma2 * theta[0] ** 2, "var_residual": sigma2}  # fmt: skip
    return {f"var_{labels[0]}": sigma2 * theta[0] ** 2, "var_residual": sigma2}


def _fit_core(
    formula: Formula, structure: Structure, sums: GroupSums, terms: list[str],
    notes: list[str],
) -> MixedFit:  # fmt: skip
    """The fast core's fit from sufficient statistics; columns of X that are combinations of
    earlier ones are dropped here, from X'X (as lme4 drops them)."""
    aliased = aliased_from_crossproducts(sums.xtx) if sums.p else []
    if aliased:
        keep = [j for j in range(sums.p) if j not in aliased]
        notes = [*notes, _aliased_note([terms[j] for j in aliased])]
        sums, terms = sums.columns(keep), [terms[j] for j in keep]
    if sums.n <= sums.p + 1:
        raise NotEstimable(f"too few complete rows ({sums.n}) or groups to fit {formula.lme4()}")
    problem = _core_problem(structure, sums)
    solution = lmm.solve(problem)
    sigma2 = solution.sigma**2
    variances = _core_variances(structure, solution.theta, sigma2)
    labels = [group_label(g) for g in structure.groups]
    if isinstance(problem, lmm.Nested):
        n_groups = {labels[0]: problem.n_outer, labels[1]: len(problem.size)}
    else:
        n_groups = {labels[0]: len(problem.levels)}
    messages = [] if solution.converged else [
        f"the optimiser did not converge ({solution.message})"]  # fmt: skip
    if solution.singular:
        messages.append(_singular_message(variances))
    std_error = np.sqrt(np.diag(solution.vcov))
    return MixedFit(
        formula=formula,
        coefficients=_inference(solution.beta, std_error, solution.df, terms),
        variances=variances,
        loglik=-solution.criterion / 2,
        n_obs=problem.n,
        n_groups=n_groups,
        converged=solution.converged,
        singular=solution.singular,
        messages=(*notes, *messages),
        engine="lmm",
        ci_method="satterthwaite_t",
        theta=solution.theta,
        deviance=problem.criterion,
        fixed_prediction_variance=_sums_prediction_variance(sums, solution.beta),
        vcov=solution.vcov,
        contrast_df=lambda w: lmm.contrast_df(solution, w),
        random_effects=_random_intercepts(
            structure, problem, solution.beta, float(solution.theta[0]), sigma2
        ),
    )


def _sums_prediction_variance(sums: GroupSums, beta: np.ndarray) -> float:
    """:func:`_prediction_variance` from X'X and the column sums of X."""
    n = sums.n
    if n < 2:
        return float("nan")
    total = float(sums.column_sums @ beta)
    return float((beta @ sums.xtx @ beta - total * total / n) / (n - 1))


def _aliased_note(dropped: Sequence[str]) -> str:
    return ("the fixed-effect model matrix is rank deficient: dropped "
            + ", ".join(f"'{t}'" for t in dropped)
            + " (a linear combination of the other columns), as lme4 does")  # fmt: skip


def _fit_statsmodels(formula: Formula, frame: pd.DataFrame, fixed: Design,
                     structure: Structure) -> MixedFit:  # fmt: skip
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    numeric, _ = _numeric_frame(formula, frame, fixed.x)
    outer_column = structure.groups[0]
    options: dict = {"groups": numeric[outer_column], "re_formula": "1"}
    if structure.kind == "slope":
        options["re_formula"] = f"~{structure.slope}"
    if structure.kind == "nested":
        options["vc_formula"] = {structure.groups[1]: f"0 + C({structure.groups[1]})"}
    fixed_text = " + ".join(["0", *(f"_x{j}" for j in range(fixed.x.shape[1]))])
    model = smf.mixedlm(f"_y ~ {fixed_text}", numeric, **options)
    candidates = []
    for method in ("lbfgs", "bfgs", "powell"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = model.fit(reml=True, method=method)
            except (np.linalg.LinAlgError, ValueError):
                continue
        if np.isfinite(result.llf):
            problems = [
                _plain(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)
            ]
            candidates.append((bool(result.converged), result.llf, result, problems))
    if not candidates:
        raise RuntimeError(f"statsmodels could not fit {formula.lme4()}")
    # the best REML likelihood among converged fits (any fit when none converged)
    _, _, best, best_messages = max(candidates, key=lambda c: (c[0], c[1]))
    estimate = best.fe_params.to_numpy(dtype=float)
    std_error = best.bse_fe.to_numpy(dtype=float)
    coefficients = _inference(estimate, std_error, np.full(len(estimate), np.inf), fixed.terms)
    outer = group_label(outer_column)
    cov_re = np.asarray(best.cov_re, dtype=float)
    variances = {f"var_{outer}": float(cov_re[0, 0])}
    n_groups = {outer: int(frame[outer_column].nunique())}
    if structure.kind == "slope":
        variances[f"var_{outer}_{structure.slope}"] = float(cov_re[1, 1])
        variances[f"cor_{outer}_{structure.slope}"] = float(
            cov_re[0, 1] / np.sqrt(cov_re[0, 0] * cov_re[1, 1])
        )
    if structure.kind == "nested":
        inner = group_label(structure.groups[1])
        variances[f"var_{inner}"] = float(np.asarray(best.vcomp)[0])
        n_groups[inner] = int(frame[list(structure.groups)].drop_duplicates().shape[0])
    variances["var_residual"] = float(best.scale)
    converged = bool(best.converged) and not best_messages
    messages = list(best_messages)
    if not bool(best.converged):
        messages.insert(0, "the optimiser did not converge")
    return MixedFit(
        formula=formula,
        coefficients=coefficients,
        variances=variances,
        loglik=float(best.llf),
        n_obs=len(frame),
        n_groups=n_groups,
        converged=converged,
        singular=any(v < 1e-8 for k, v in variances.items() if k.startswith("var_")),
        messages=tuple(messages),
        engine="statsmodels",
        ci_method="wald_z",
        fixed_prediction_variance=_prediction_variance(fixed.x, estimate),
        vcov=np.asarray(best.cov_params(), dtype=float)[: len(estimate), : len(estimate)],
    )


def _one_level(values: pd.Series) -> bool:
    """Whether a grouping column has fewer than two levels (missing values aside): one pass
    of comparisons with its first value (5 ms at a million rows), not a count of its levels
    (13 ms)."""
    values = values.dropna()
    return values.empty or not bool(values.ne(values.iloc[0]).any())


def _prepared(
    formula: str, data: pd.DataFrame
) -> tuple[Formula, pd.DataFrame, int, list[str], list[str], Structure | None]:
    """The parsed formula (an optional grouping factor with one level dropped), its complete
    rows, how many were dropped, the notes of what was dropped, the grouping factors with
    fewer than two levels, and the fast core's structure (None when it cannot fit it)."""
    parsed = Formula.parse(formula)
    frame, n_dropped = _complete_cases(parsed, data)
    dropped = [g for g in OPTIONAL_GROUPS if g in parsed.groups and _one_level(frame[g])]
    for group in dropped:
        parsed = parsed.without(group)
    notes = [_dropped_note(group, parsed) for group in dropped[:1]]
    few_groups = [g for g in parsed.groups if _one_level(frame[g])]
    structure = core_structure(parsed, frame) if parsed.random and not few_groups else None
    return parsed, frame, n_dropped, notes, few_groups, structure


def fit_lmm_each(
    formula: str, data: pd.DataFrame, responses: Iterable[np.ndarray],
    engine: str = DEFAULT_ENGINE,
) -> list[MixedFit]:  # fmt: skip
    """:func:`fit_lmm` of the formula with each of several responses in place of its own, on
    the same rows (a sensitivity analysis that shifts the response): the fast core builds the
    design and the groups' sums once, and each response adds only its own sums. The
    responses are taken one at a time: given by a generator, only one is held.

    Parameters
    ----------
    formula : str
        lme4 notation; its response column names what each response replaces.
    data : pandas.DataFrame
        The model's variables.
    responses : iterable of numpy.ndarray
        Responses aligned with ``data``'s rows, complete wherever the data's own response is.
    engine : str
        As :func:`fit_lmm`; other engines, or data with incomplete rows, fit each in turn.

    Returns
    -------
    list of MixedFit
        One per response, as :func:`fit_lmm` fits it.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"g": np.repeat(list("abcdefgh"), 6), "x": rng.normal(size=48)})
    >>> d["y"] = d["x"] + rng.normal(size=8).repeat(6) + rng.normal(size=48)
    >>> fits = fit_lmm_each("y ~ x + (1 | g)", d, [d["y"].to_numpy(), d["y"].to_numpy() + 1])
    >>> a, b = (float(f.coefficients.loc["Intercept", "estimate"]) for f in fits)
    >>> round(b - a, 6)  # the response shifted by 1, the intercept with it
    1.0
    """
    _check_engine(engine)
    parsed, frame, n_dropped, notes, _, structure = _prepared(formula, data)
    if engine != "lmm" or structure is None or n_dropped:
        return [fit_lmm(formula, data.assign(**{parsed.response: np.asarray(r)}), engine)
                for r in responses]  # fmt: skip
    each, terms = _core_sums_each(parsed, structure, frame, responses)
    return [_fit_core(parsed, structure, sums, terms, notes) for sums in each]


def fit_lmm(formula: str, data: pd.DataFrame, engine: str = DEFAULT_ENGINE) -> MixedFit:
    """Fit a linear mixed model by REML.

    Parameters
    ----------
    formula : str
        lme4 notation (:mod:`allianceanalysis.formula`).
    data : pandas.DataFrame
        The model's variables; rows with a missing value are dropped and counted.
    engine : {"lmm", "mixedlm", "statsmodels"}
        ``"lmm"`` fits the structures of :class:`Structure` with the fast core and any other
        with lme4's algorithm (``mixedlm``), saying so; ``"statsmodels"`` fits only the
        structures of :class:`Structure`.

    Returns
    -------
    MixedFit

    Raises
    ------
    ValueError
        For an unsupported formula or engine, or a column the data do not have.
    NotEstimable
        When too few complete rows or groups are left to fit.

    Examples
    --------
    >>> sleep = pd.DataFrame({"Subject": np.repeat(list("abcdef"), 5),
    ...                       "Days": np.tile(np.arange(5.0), 6)})
    >>> sleep["Reaction"] = 250 + 10 * sleep["Days"] + np.sin(np.arange(30.0)) * 9
    >>> fit = fit_lmm("Reaction ~ Days + (Days || Subject)", sleep)
    >>> fit.engine, round(float(fit.coefficients.loc["Days", "estimate"]), 2)
    ('lmm', 9.69)
    """
    _check_engine(engine)
    parsed, frame, n_dropped, notes, few_groups, structure = _prepared(formula, data)
    if engine == "lmm" and structure is not None:
        sums, terms = _core_sums(parsed, structure, frame)
        fit = _fit_core(parsed, structure, sums, terms, notes)
        fit.n_dropped = n_dropped
        return fit
    fixed = design(parsed, frame)
    if len(frame) <= fixed.x.shape[1] + 1 or few_groups:
        raise NotEstimable(f"too few complete rows ({len(frame)}) or groups to fit {parsed.lme4()}")
    if fixed.dropped:
        notes.append(_aliased_note(fixed.dropped))
    if not parsed.random:
        fit = _fit_ols(parsed, frame, fixed)
    elif engine == "statsmodels":
        if structure is None:
            raise ValueError(
                f"the statsmodels engine fits one random intercept, two nested ones or a random "
                f"slope, not {' + '.join(t.lme4() for t in parsed.random)}: use engine 'lmm'"
            )
        fit = _fit_statsmodels(parsed, frame, fixed, structure)
    else:
        fit = _fit_mixedlm(parsed, frame, fixed, structure)
        if engine == "lmm":
            notes.append(
                "fitted by lme4's algorithm (the mixedlm engine): the fast core has no closed "
                f"form for {' + '.join(t.lme4() for t in parsed.random)}"
            )
    fit.messages = (*notes, *fit.messages)
    fit.n_dropped = n_dropped
    return fit


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")


def _dropped_note(group: str, parsed: Formula) -> str:
    return (
        f"fitted without the {group_label(group)} level as {parsed.lme4()}: the data "
        f"have fewer than two {group_label(group)}s (no codes, or a single one)"
    )


Piece = Callable[[list[str]], pd.DataFrame]
"""A piece of a table (a shard): called with the columns to read, it returns them."""


def fit_lmm_pieces(formula: str, pieces: Sequence[Piece], engine: str = DEFAULT_ENGINE) -> MixedFit:
    """:func:`fit_lmm` of a table given in pieces (its shards), one piece in memory at a time.

    Each group of the random part (each client, or each therapist) must lie in one piece. The
    fast core (engine ``lmm``) is fitted from the pieces' sufficient statistics
    (:mod:`allianceanalysis.sums`): per-group sums, and global sums that are exact. The fit is
    therefore :func:`fit_lmm`'s on the whole table, to the last bit, whatever the pieces. A
    model the core cannot fit from sums (another engine or structure, or a formula whose
    terms are computed from all rows, such as ``scale()``) is fitted to the pieces' rows put
    together.

    Parameters
    ----------
    formula : str
        lme4 notation.
    pieces : list of callable
        Each returns its piece's columns (a DataFrame) when called with their names.
    engine : str
        As :func:`fit_lmm`.

    Returns
    -------
    MixedFit

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> data = pd.DataFrame({"g": np.repeat(np.arange(40), 5), "x": rng.normal(size=200)})
    >>> data["y"] = data["x"] + rng.normal(size=40)[data["g"]] + rng.normal(size=200)
    >>> halves = [data[data["g"] < 25], data[data["g"] >= 25]]
    >>> pieces = [lambda columns, h=h: h[columns] for h in halves]
    >>> a, b = fit_lmm("y ~ x + (1 | g)", data), fit_lmm_pieces("y ~ x + (1 | g)", pieces)
    >>> bool((a.coefficients == b.coefficients).all().all()), a.loglik == b.loglik
    (True, True)
    """
    from .shards import release_memory

    _check_engine(engine)
    parsed = Formula.parse(formula)
    columns = parsed.variables
    if len(pieces) == 1 or engine != "lmm" or not parsed.random or parsed.plain_fixed is None:
        return _fit_together(formula, pieces, columns, engine)
    sums, terms, structure, n_dropped, optional = [], None, None, 0, {}
    for piece in pieces:
        frame, dropped_rows = _complete_cases(parsed, piece(parsed.variables))
        n_dropped += dropped_rows
        if not len(frame):  # an empty shard (or one without complete rows) adds nothing
            continue
        part_structure = core_structure(parsed, frame)
        if part_structure is None or structure not in (None, part_structure):
            return _fit_together(formula, pieces, columns, engine)
        part_sums, part_terms = _core_sums(parsed, part_structure, frame)
        if terms not in (None, part_terms):
            return _fit_together(formula, pieces, columns, engine)
        structure, terms = part_structure, part_terms
        for group in (g for g in OPTIONAL_GROUPS if g in parsed.groups):
            optional.setdefault(group, set()).update(frame[group].unique()[:2].tolist())
        sums.append(part_sums)
        del frame
        release_memory()  # the piece's rows: otherwise the pieces' freed pages stay resident
    if not sums or any(len(levels) < 2 for levels in optional.values()):
        return _fit_together(formula, pieces, columns, engine)
    merged = merge_sums(sums)
    del sums  # the pieces' sums: the merged ones replace them
    counts = [len(merged.levels)] + ([] if merged.outer is None else [merged.outer.nunique()])
    if min(counts) < 2:
        raise NotEstimable(f"too few complete rows ({merged.n}) or groups to fit {parsed.lme4()}")
    fit = _fit_core(parsed, structure, merged, terms, [])
    fit.n_dropped = n_dropped
    return fit


def _fit_together(formula: str, pieces: Sequence[Piece], columns: list[str],
                  engine: str) -> MixedFit:  # fmt: skip
    """:func:`fit_lmm` on the pieces' rows put together (one piece as it is: no copy)."""
    if len(pieces) == 1:
        return fit_lmm(formula, pieces[0](columns), engine)
    data = pd.concat([piece(columns) for piece in pieces], ignore_index=True)
    return fit_lmm(formula, data, engine)


def _core_sums(
    parsed: Formula, structure: Structure, frame: pd.DataFrame
) -> tuple[GroupSums, list[str]]:
    """The core's sufficient statistics of complete rows, and the design's terms (aliased
    columns kept: they are dropped from the merged sums, :func:`_fit_core`)."""
    y = frame[parsed.response].to_numpy(dtype=float)
    [sums], terms = _core_sums_each(parsed, structure, frame, [y])
    return sums, terms


def _core_sums_each(
    parsed: Formula, structure: Structure, frame: pd.DataFrame, responses: Iterable[np.ndarray]
) -> tuple[list[GroupSums], list[str]]:
    """:func:`_core_sums` of each response in place of the formula's own (one design)."""
    fixed = design(parsed, frame, drop_aliased=False)
    ys = (np.asarray(r, dtype=float) for r in responses)
    return structure_sums_each(structure, ys, fixed.x, frame), fixed.terms


def _fit_ols(formula: Formula, frame: pd.DataFrame, fixed: Design) -> MixedFit:
    """Ordinary least squares with t inference on ``n - p`` degrees of freedom (R's ``lm``);
    the log-likelihood is the REML one, as R's ``logLik(fit, REML = TRUE)``."""
    x, terms = fixed.x, fixed.terms
    y = frame[formula.response].to_numpy(float)
    n, p = x.shape
    q, r = np.linalg.qr(x)
    beta = np.linalg.solve(r, q.T @ y)
    residual = y - x @ beta
    sigma2 = float(residual @ residual) / (n - p)
    r_inv = np.linalg.inv(r)
    std_error = np.sqrt(np.sum(r_inv**2, axis=1) * sigma2)
    df = np.full(p, float(n - p))
    logdet = 2 * np.sum(np.log(np.abs(np.diag(r))))
    loglik = -0.5 * ((n - p) * np.log(2 * np.pi * sigma2) + logdet + (n - p))
    return MixedFit(
        formula=formula,
        coefficients=_inference(beta, std_error, df, terms),
        variances={"var_residual": sigma2},
        loglik=float(loglik),
        n_obs=n,
        n_groups={},
        converged=True,
        singular=False,
        messages=(),
        engine="ols",
        ci_method="t",
        fixed_prediction_variance=_prediction_variance(x, beta),
        vcov=sigma2 * r_inv @ r_inv.T,
        contrast_df=lambda w: float(n - p),
    )


def profile_interval(fit: MixedFit, level: float = 0.95) -> tuple[float, float]:
    """Profile-likelihood interval for theta of a single random-intercept model.

    The REML criterion d(theta) has the fixed effects and the residual variance profiled
    out, so {theta : d(theta) - d(theta_hat) <= chi2(level, 1)} is the profile-likelihood
    interval for theta, and for any monotone function of it, such as the intraclass correlation
    theta² / (1 + theta²).

    Returns
    -------
    tuple of float
        ``(theta_low, theta_high)``; the lower end is 0 when the criterion at 0 is within the
        cut-off.
    """
    if fit.deviance is None or fit.theta.size != 1:
        raise ValueError("profile intervals need a single random intercept (mixedlm engine)")
    theta_hat = float(fit.theta[0])
    cutoff = float(fit.deviance(fit.theta)) + chi2_ppf(level, 1)

    def excess(theta: float) -> float:
        return float(fit.deviance(np.array([theta]))) - cutoff

    low = 0.0 if excess(0.0) <= 0 else optimize.brentq(excess, 0.0, theta_hat)
    high = max(theta_hat, 1e-3) * 2
    while excess(high) < 0:
        high *= 2
    return low, optimize.brentq(excess, theta_hat, high)
