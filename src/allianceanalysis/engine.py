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
lme4 notation (:meth:`Formula.parse`): numeric columns in the fixed part, and in the random
part ``(1 | g)``; ``(x | g)`` or ``(1 + x | g)`` (correlated random intercept and slope);
``(1 | g1/g2)`` or ``(1 | g1) + (1 | g1:g2)`` (``g2`` nested in ``g1``). Any other term is
refused with an error naming it. Rows with a missing value in any variable of the formula are
dropped (complete cases).

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
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize

from . import lmm
from .distributions import chi2_ppf, norm_ppf, norm_sf, t_ppf, t_sf
from .errors import NotEstimable

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "OPTIONAL_GROUPS",
    "Formula",
    "MixedFit",
    "fit_lmm",
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


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
SUPPORTED = (
    "numeric columns in the fixed part; in the random part (1 | g), (x | g) or (1 + x | g), "
    "and (1 | g1/g2) or (1 | g1) + (1 | g1:g2)"
)
"""The formula shapes the engines fit (factors, interactions, transformations, uncorrelated
or crossed random effects: not yet)."""


def _unsupported(term: str, text: str) -> str:
    return f"unsupported term '{term}' in the formula {text!r}: supported are {SUPPORTED}"


def _terms(rhs: str) -> list[str]:
    """The terms of a formula's right-hand side, split at ``+`` outside parentheses."""
    terms, depth, current = [], 0, ""
    for char in rhs:
        depth += (char == "(") - (char == ")")
        if char == "+" and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    terms.append(current.strip())
    return [t for t in terms if t]


def _random_structure(
    randoms: list[tuple[str, str, str]], text: str
) -> tuple[tuple[str, ...], str | None]:
    """The grouping factors and random slope of the random terms, or an error naming one."""
    for term, left, right in randoms:
        parts = [p.strip() for p in left.split("+")]
        simple = all(_NAME.fullmatch(g) for g in re.split(r"[/:]", right))
        if not simple or not (left == "1" or _NAME.fullmatch(left) or (
                len(parts) == 2 and parts[0] == "1" and _NAME.fullmatch(parts[1]))):  # fmt: skip
            raise ValueError(_unsupported(term, text))
    if len(randoms) == 1:
        term, left, right = randoms[0]
        slope = None if left == "1" else left.split("+")[-1].strip()
        if ":" in right or (slope and "/" in right) or right.count("/") > 1:
            raise ValueError(_unsupported(term, text))
        return tuple(right.split("/")), slope
    if len(randoms) == 2 and all(left == "1" for _, left, _ in randoms):
        (_, _, a), (_, _, b) = sorted(randoms, key=lambda r: ":" in r[2])
        if ":" not in a and "/" not in a and b.count(":") == 1 and b.split(":")[0] == a:
            return (a, b.split(":")[1]), None
    if not randoms:
        raise ValueError(f"the formula {text!r} has no random effect: supported are {SUPPORTED}")
    raise ValueError(_unsupported(" + ".join(term for term, _, _ in randoms), text))


def group_label(column: str) -> str:
    """Short name of a grouping column in term names: ``therapist_id`` -> ``therapist``."""
    return _GROUP_LABELS.get(column, column)


@dataclass(frozen=True)
class Formula:
    """A parsed catalogue formula.

    Attributes
    ----------
    response : str
    fixed : tuple of str
        Fixed-effect variables (an intercept is always included).
    groups : tuple of str
        Grouping columns, outermost first (two for a nested model; none once an optional
        level is dropped, :meth:`without`).
    slope : str or None
        Variable with a random slope (within the single grouping factor).
    """

    response: str
    fixed: tuple[str, ...]
    groups: tuple[str, ...]
    slope: str | None = None

    @classmethod
    def parse(cls, text: str) -> Formula:
        """Parse an lme4 formula of the shapes the engines fit.

        The fixed part is numeric columns (an intercept always). The random part is one of
        ``(1 | g)``; ``(x | g)`` or ``(1 + x | g)`` (correlated random intercept and slope,
        as lme4 reads both); ``(1 | g1/g2)`` or ``(1 | g1) + (1 | g1:g2)`` (``g2`` nested in
        ``g1``). Anything else is refused with an error naming the term.

        Raises
        ------
        ValueError
            Naming the unsupported term and what is supported.

        Examples
        --------
        >>> Formula.parse("y ~ a + (1 + t | g)")
        Formula(response='y', fixed=('a',), groups=('g',), slope='t')
        >>> Formula.parse("Reaction ~ Days + (Days | Subject)").lme4()
        'Reaction ~ Days + (1 + Days | Subject)'
        >>> Formula.parse("strength ~ 1 + (1 | batch) + (1 | batch:cask)").groups
        ('batch', 'cask')
        """
        response, _, rhs = text.partition("~")
        response = response.strip()
        if not _NAME.fullmatch(response):
            raise ValueError(_unsupported(response or "(no response)", text))
        fixed: list[str] = []
        randoms: list[tuple[str, str, str]] = []  # (term, left of |, right of |)
        for term in _terms(rhs):
            if term.startswith("(") and term.endswith(")") and "|" in term:
                inside = term[1:-1]
                if "||" in inside:
                    raise ValueError(_unsupported(term, text))
                left, _, right = inside.partition("|")
                randoms.append((term, " ".join(left.split()), "".join(right.split())))
            elif _NAME.fullmatch(term):
                fixed.append(term)
            elif term != "1":
                raise ValueError(_unsupported(term, text))
        groups, slope = _random_structure(randoms, text)
        return cls(response, tuple(fixed), groups, slope)

    @property
    def variables(self) -> list[str]:
        """Every column the model uses."""
        extra = [self.slope] if self.slope and self.slope not in self.fixed else []
        return [self.response, *self.fixed, *extra, *self.groups]

    def lme4(self) -> str:
        """The formula in lme4 notation (R's ``lm`` notation without a random effect)."""
        fixed = " + ".join(self.fixed) if self.fixed else "1"
        if not self.groups:
            return f"{self.response} ~ {fixed}"
        random = f"1 + {self.slope}" if self.slope else "1"
        return f"{self.response} ~ {fixed} + ({random} | {'/'.join(self.groups)})"

    def without(self, group: str) -> Formula:
        """The formula without the grouping factor ``group`` (and its random slope).

        Examples
        --------
        >>> Formula.parse("y ~ a + (1 | t/c)").without("t").lme4()
        'y ~ a + (1 | c)'
        >>> Formula.parse("y ~ a + (1 | t)").without("t").lme4()
        'y ~ a'
        """
        groups = tuple(g for g in self.groups if g != group)
        return Formula(self.response, self.fixed, groups, self.slope if groups else None)


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

    @property
    def random_variance(self) -> float:
        """Sum of the random-intercept variances (for Nakagawa's R² of intercept models)."""
        return sum(
            v
            for k, v in self.variances.items()
            if k.startswith("var_") and k != "var_residual" and k.count("_") == 1
        )


def _complete_cases(formula: Formula, data: pd.DataFrame, text_groups: bool = True) -> pd.DataFrame:
    """The model's columns, complete rows only; grouping columns as text unless
    ``text_groups`` is false (the core codes any labels itself, without a copy as text)."""
    missing = [c for c in formula.variables if c not in data]
    if missing:
        raise ValueError(f"the data have no column {missing[0]!r} for {formula.lme4()}")
    numeric = [formula.response, *formula.fixed, *([formula.slope] if formula.slope else [])]
    text = [c for c in numeric if not pd.api.types.is_numeric_dtype(data[c])]
    if text:
        raise ValueError(
            f"the column {text[0]!r} of {formula.lme4()} is not numeric (e.g. "
            f"{data[text[0]].dropna().iloc[0]!r}): the fixed part takes numeric columns "
            "(factors: not yet; code it as 0/1 columns)"
        )
    frame = data[formula.variables].dropna().reset_index(drop=True)
    for group in formula.groups if text_groups else ():
        frame[group] = frame[group].astype("str")
    return frame


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


def _fixed_prediction_variance(formula: Formula, frame: pd.DataFrame, beta: pd.Series) -> float:
    prediction = _fixed_prediction(formula, frame, beta)
    return float(np.var(prediction, ddof=1)) if len(frame) > 1 else float("nan")


def _plain(message: str) -> str:
    return " ".join(str(message).split())


def _singular_message(variances: dict[str, float]) -> str:
    residual = variances["var_residual"]
    at_zero = [
        k.removeprefix("var_").replace("_", " slope of ")
        for k, v in variances.items()
        if k.startswith("var_") and k != "var_residual" and v <= 1e-6 * residual
    ]
    at_one = [k for k, v in variances.items() if k.startswith("cor_") and abs(v) > 0.999]
    parts = [f"the {name} variance is estimated at zero" for name in at_zero]
    parts += [f"the correlation {name.removeprefix('cor_')} is estimated at ±1" for name in at_one]
    detail = " and ".join(parts) or "a variance component is estimated at its boundary"
    return f"singular fit: {detail}; the data do not support that part of the model"


def _fit_mixedlm(formula: Formula, frame: pd.DataFrame) -> MixedFit:
    import mixedlm

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = mixedlm.lmer(formula.lme4(), frame, REML=True)
        tidy = model.tidy(ddf_method="Satterthwaite").set_index("term")
    fixef = pd.Series(model.fixef()).rename({"(Intercept)": "Intercept"})
    terms = list(fixef.index)
    std_error = np.sqrt(np.diag(np.asarray(model.vcov(), dtype=float)))
    df = tidy.rename(index={"(Intercept)": "Intercept"}).loc[terms, "df"].to_numpy(dtype=float)
    coefficients = _inference(fixef.to_numpy(dtype=float), std_error, df, terms)

    varcorr = model.VarCorr()
    variances: dict[str, float] = {}
    n_groups: dict[str, int] = {}
    levels = model.ngrps()
    for name, group in varcorr.groups.items():
        label = group_label(name.split(":")[-1])
        variances[f"var_{label}"] = float(group.variance["(Intercept)"])
        n_groups[label] = int(levels[name])
        if formula.slope:
            variances[f"var_{label}_{formula.slope}"] = float(group.variance[formula.slope])
            variances[f"cor_{label}_{formula.slope}"] = float(np.asarray(group.corr)[0, 1])
    variances["var_residual"] = float(varcorr.residual)

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
    return MixedFit(
        formula=formula,
        coefficients=coefficients,
        variances=variances,
        loglik=float(model.logLik().value),
        n_obs=int(model.nobs()),
        n_groups=n_groups,
        converged=converged,
        singular=singular,
        messages=tuple(dict.fromkeys(messages)),
        engine="mixedlm",
        ci_method="satterthwaite_t",
        theta=np.asarray(model.theta, dtype=float),
        deviance=model.as_function(),
        fixed_prediction_variance=_fixed_prediction_variance(formula, frame, fixef),
        random_effects=_random_intercepts(
            formula, frame, fixef, float(np.asarray(model.theta)[0]), variances["var_residual"]
        ),
    )


def _fixed_prediction(formula: Formula, frame: pd.DataFrame, beta: pd.Series) -> np.ndarray:
    prediction = np.full(len(frame), beta["Intercept"])
    for term in formula.fixed:
        prediction = prediction + beta[term] * frame[term].to_numpy(dtype=float)
    return prediction


def _random_intercepts(
    formula: Formula,
    frame: pd.DataFrame,
    beta: pd.Series,
    theta: float,
    sigma2: float,
    problem: lmm.RandomIntercept | None = None,
) -> pd.DataFrame | None:
    """BLUPs and conditional variances of a single random intercept (levels sorted, as lme4).

    With relative SD θ and residual variance σ², level j's conditional mean given β̂ is
    θ² S_j / (1 + n_j θ²), S_j the sum of its residuals y − Xβ̂ over its n_j rows, and its
    conditional variance σ² θ² / (1 + n_j θ²): lme4's ``ranef(condVar = TRUE)`` for this model,
    in one vectorised pass (no solve per level).
    """
    if len(formula.groups) != 1 or formula.slope:
        return None
    group = formula.groups[0]
    if problem is None:
        problem = lmm.RandomIntercept(frame[formula.response], np.ones((len(frame), 1)),
                                      frame[group])  # fmt: skip
    residual = frame[formula.response].to_numpy(dtype=float) - _fixed_prediction(
        formula, frame, beta
    )
    sums = np.bincount(problem.codes, weights=residual, minlength=len(problem.levels))
    shrink = theta**2 / (1.0 + problem.size * theta**2)
    return pd.DataFrame(
        {"estimate": shrink * sums, "cond_var": sigma2 * shrink, "n_obs": problem.size.astype(int)},
        index=pd.Index(problem.levels, name=group),
    )


def _core_problem(formula: Formula, frame: pd.DataFrame) -> lmm._Problem:
    y = frame[formula.response].to_numpy(dtype=float)
    x = np.column_stack([np.ones(len(frame)), *(frame[t].to_numpy(dtype=float)
                                                 for t in formula.fixed)])  # fmt: skip
    groups = [frame[g] for g in formula.groups]
    if formula.slope:
        return lmm.RandomSlope(y, x, groups[0], frame[formula.slope].to_numpy(dtype=float))
    if len(groups) == 2:
        return lmm.Nested(y, x, groups[0], groups[1])
    return lmm.RandomIntercept(y, x, groups[0])


def _core_variances(formula: Formula, theta: np.ndarray, sigma2: float) -> dict[str, float]:
    """Variance components from θ and σ² (lme4's θ order), named as the other engines do."""
    labels = [group_label(g) for g in formula.groups]
    if formula.slope:
        t1, t2, t3 = theta
        slope_sd = float(np.hypot(t2, t3))
        cor = t2 / slope_sd if t1 > 0 and slope_sd > 0 else 0.0
        return {f"var_{labels[0]}": sigma2 * t1**2,
                f"var_{labels[0]}_{formula.slope}": sigma2 * slope_sd**2,
                f"cor_{labels[0]}_{formula.slope}": float(cor), "var_residual": sigma2}  # fmt: skip
    if len(labels) == 2:
        return {f"var_{labels[0]}": sigma2 * theta[1] ** 2,
                f"var_{labels[1]}": sigma2 * theta[0] ** 2, "var_residual": sigma2}  # fmt: skip
    return {f"var_{labels[0]}": sigma2 * theta[0] ** 2, "var_residual": sigma2}


def _fit_core(formula: Formula, frame: pd.DataFrame) -> MixedFit:
    problem = _core_problem(formula, frame)
    solution = lmm.solve(problem)
    terms = ["Intercept", *formula.fixed]
    beta = pd.Series(solution.beta, index=terms)
    sigma2 = solution.sigma**2
    variances = _core_variances(formula, solution.theta, sigma2)
    labels = [group_label(g) for g in formula.groups]
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
        messages=tuple(messages),
        engine="lmm",
        ci_method="satterthwaite_t",
        theta=solution.theta,
        deviance=problem.criterion,
        fixed_prediction_variance=_fixed_prediction_variance(formula, frame, beta),
        random_effects=_random_intercepts(
            formula, frame, beta, float(solution.theta[0]), sigma2, problem
        ),
    )


def _fit_statsmodels(formula: Formula, frame: pd.DataFrame) -> MixedFit:
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    fixed = " + ".join(formula.fixed) if formula.fixed else "1"
    options: dict = {"groups": frame[formula.groups[0]], "re_formula": "1"}
    if formula.slope:
        options["re_formula"] = f"~{formula.slope}"
    if len(formula.groups) == 2:
        options["vc_formula"] = {formula.groups[1]: f"0 + C({formula.groups[1]})"}
    model = smf.mixedlm(f"{formula.response} ~ {fixed}", frame, **options)
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
    terms = list(best.fe_params.index)
    estimate = best.fe_params.to_numpy(dtype=float)
    std_error = best.bse_fe.to_numpy(dtype=float)
    coefficients = _inference(estimate, std_error, np.full(len(terms), np.inf), terms)
    outer = group_label(formula.groups[0])
    cov_re = np.asarray(best.cov_re, dtype=float)
    variances = {f"var_{outer}": float(cov_re[0, 0])}
    n_groups = {outer: int(frame[formula.groups[0]].nunique())}
    if formula.slope:
        variances[f"var_{outer}_{formula.slope}"] = float(cov_re[1, 1])
        variances[f"cor_{outer}_{formula.slope}"] = float(
            cov_re[0, 1] / np.sqrt(cov_re[0, 0] * cov_re[1, 1])
        )
    if len(formula.groups) == 2:
        inner = group_label(formula.groups[1])
        variances[f"var_{inner}"] = float(np.asarray(best.vcomp)[0])
        n_groups[inner] = int(frame[list(formula.groups)].drop_duplicates().shape[0])
    variances["var_residual"] = float(best.scale)
    converged = bool(best.converged) and not best_messages
    messages = list(best_messages)
    if not bool(best.converged):
        messages.insert(0, "the optimiser did not converge")
    beta = best.fe_params
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
        fixed_prediction_variance=_fixed_prediction_variance(formula, frame, beta),
    )


def fit_lmm(formula: str, data: pd.DataFrame, engine: str = DEFAULT_ENGINE) -> MixedFit:
    """Fit a linear mixed model by REML.

    Parameters
    ----------
    formula : str
        lme4 notation, one of the supported shapes (module docstring).
    data : pandas.DataFrame
        The model's variables; rows with a missing value are dropped.
    engine : {"mixedlm", "statsmodels"}

    Returns
    -------
    MixedFit

    Raises
    ------
    ValueError
        For an unsupported formula or engine.
    NotEstimable
        When too few complete rows or groups are left to fit.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    parsed = Formula.parse(formula)
    frame = _complete_cases(parsed, data, text_groups=engine != "lmm")
    dropped = [g for g in OPTIONAL_GROUPS if g in parsed.groups and frame[g].nunique() < 2]
    for group in dropped:
        parsed = parsed.without(group)
    few_groups = bool(parsed.groups) and frame[parsed.groups[0]].nunique() < 2
    if len(frame) <= len(parsed.fixed) + 2 or few_groups:
        raise NotEstimable(f"too few complete rows ({len(frame)}) or groups to fit {parsed.lme4()}")
    if not parsed.groups:
        fit = _fit_ols(parsed, frame)
    else:
        engines = {"lmm": _fit_core, "mixedlm": _fit_mixedlm, "statsmodels": _fit_statsmodels}
        fit = engines[engine](parsed, frame)
    if dropped:
        note = (
            f"fitted without the {group_label(dropped[0])} level as {parsed.lme4()}: the data "
            f"have fewer than two {group_label(dropped[0])}s (no codes, or a single one)"
        )
        fit.messages = (note, *fit.messages)
    return fit


def _fit_ols(formula: Formula, frame: pd.DataFrame) -> MixedFit:
    """Ordinary least squares with t inference on ``n - p`` degrees of freedom (R's ``lm``);
    the log-likelihood is the REML one, as R's ``logLik(fit, REML = TRUE)``."""
    terms = ["Intercept", *formula.fixed]
    x = np.column_stack([np.ones(len(frame)), *(frame[c].to_numpy(float) for c in formula.fixed)])
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
        fixed_prediction_variance=float(np.var(x @ beta, ddof=1)),
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
