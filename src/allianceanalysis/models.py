"""The model catalogue: the alliance-outcome analyses, defined exactly, as tidy tables.

Every analysis returns a DataFrame with the columns :data:`TIDY_COLUMNS`, one row per term
(like R's ``broom``): ``model, term, estimate, std_error, ci_low, ci_high, p_value, n_obs,
n_groups, converged`` and ``df``, ``ci_method``, ``message``. Linear mixed models are fitted by
REML through :func:`allianceanalysis.engine.fit_lmm`; their fixed effects carry
Satterthwaite t inference (lmerTest's), variance components are rows ``var_therapist``,
``var_client``, ``var_residual`` (estimates only), and ``loglik_reml`` is the REML
log-likelihood. A model that did not converge or is singular says so in ``converged`` and
``message``, in plain words. ``docs/models.md`` lists each model in lme4 notation with its
reference; :data:`CATALOGUE` maps the names to the functions.

Examples
--------
>>> from allianceanalysis.simulate import simulate_study
>>> from allianceanalysis.derive import client_table
>>> clients = client_table(simulate_study(n_clients=300, n_therapists=15, seed=2).sessions)
>>> table = alliance_outcome(clients, bootstrap=200, seed=1)
>>> table.loc[table["term"] == "alliance_early", "model"].item()
'alliance_outcome'
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import tidy
from .covariates import Adjustment, adjusted
from .custom_models import CustomModel, custom_models_table
from .derive import client_table, client_tables, session_pairs, session_table
from .detrended import FORMULAS as DETRENDED_FORMULAS
from .detrended import MODEL as DETRENDED
from .detrended import alliance_next_session_detrended
from .distributions import norm_ppf, norm_sf, t_sf
from .engine import (
    DEFAULT_ENGINE,
    MixedFit,
    fit_lmm,
    fit_lmm_pieces,
    group_label,
    profile_interval,
)
from .errors import NotEstimable
from .formula import Formula, design
from .instruments import get_instrument
from .latent_disaggregation import alliance_disaggregated_latent
from .logit import LogitRows, fit_logits
from .moderation import moderation
from .pseudonyms import therapist_codes
from .riclpm import DEFAULT_WAVES, riclpm
from .shards import ShardedTable, distinct, per_case, per_case_spilled
from .shards import schema as _schema
from .sums import ExactSum
from .tidy import NEEDS, TIDY_COLUMNS

__all__ = [
    "CATALOGUE",
    "TIDY_COLUMNS",
    "alliance_disaggregated",
    "alliance_disaggregated_latent",
    "alliance_icc",
    "alliance_next_session",
    "alliance_next_session_detrended",
    "alliance_next_session_nested",
    "alliance_outcome",
    "clustered_logit",
    "clustered_ols",
    "dropout",
    "early_alliance",
    "early_alliance_at",
    "fit_model",
    "growth",
    "moderation",
    "outcome_growth",
    "partial_correlation",
    "repeated_measures_correlation",
    "riclpm",
    "rm_corr",
    "run_model",
    "therapist_effects",
    "therapist_icc",
    "therapist_logit",
    "therapist_shrinkage",
]

DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 20261125


def _fit_common(fit: MixedFit) -> dict[str, object]:
    return {"n_obs": fit.n_obs, "converged": fit.converged, "message": "; ".join(fit.messages)}


def _outer_groups(fit: MixedFit) -> object:
    """The levels of the fit's outermost grouping factor (missing for a fit without one)."""
    groups = fit.formula.groups
    return fit.n_groups[group_label(groups[0])] if groups else pd.NA


def _coefficient_row(model: str, term: str, fit: MixedFit, coefficient: str) -> dict[str, object]:
    """A fixed-effect row named ``term`` from ``fit``'s coefficient ``coefficient``."""
    c = fit.coefficients.loc[coefficient]
    return tidy.row(
        model,
        term,
        c.estimate,
        std_error=c.std_error,
        ci_low=c.ci_low,
        ci_high=c.ci_high,
        p_value=c.p_value,
        df=c.df,
        ci_method=fit.ci_method,
        n_groups=_outer_groups(fit),
        **_fit_common(fit),
    )


def tidy_fit(model: str, fit: MixedFit) -> list[dict[str, object]]:
    """Rows for a mixed model's fixed effects, variance components and log-likelihood."""
    common = _fit_common(fit)
    rows = [_coefficient_row(model, term, fit, term) for term in fit.coefficients.index]
    labels = sorted(fit.n_groups, key=len, reverse=True)  # the longest label that fits
    for term, value in fit.variances.items():
        name = term.split("_", 1)[1]
        label = next((g for g in labels if name == g or name.startswith(f"{g}_")), None)
        rows.append(tidy.row(model, term, value, n_groups=fit.n_groups.get(label), **common))
    rows.append(tidy.row(model, "loglik_reml", fit.loglik, n_groups=_outer_groups(fit), **common))
    return rows


def _fisher_interval(r: float, se: float) -> tuple[float, float]:
    z = np.arctanh(np.clip(r, -0.999999999, 0.999999999))
    crit = norm_ppf(0.975)
    return float(np.tanh(z - crit * se)), float(np.tanh(z + crit * se))


def _square_interval(low: float, high: float) -> tuple[float, float]:
    if low >= 0:
        return low**2, high**2
    if high <= 0:
        return high**2, low**2
    return 0.0, max(low**2, high**2)


def _partial_r(m: np.ndarray) -> np.ndarray:
    """Partial correlation of x and y given the controls, from (stacked) cross-product matrices
    of the columns [1, x, y, controls…]: the Schur complement of the intercept and controls."""
    controls = [0, *range(3, m.shape[-1])]
    a = m[..., controls, :][..., controls]
    b = m[..., controls, :][..., [1, 2]]
    try:
        solved = np.linalg.solve(a, b)
    except np.linalg.LinAlgError:  # a replicate whose controls are collinear (a level unseen)
        solved = np.linalg.pinv(a) @ b
    s = m[..., [1, 2], :][..., [1, 2]] - np.swapaxes(b, -1, -2) @ solved
    with np.errstate(invalid="ignore", divide="ignore"):
        return s[..., 0, 1] / np.sqrt(s[..., 0, 0] * s[..., 1, 1])


def _cross_products(columns: np.ndarray, codes: np.ndarray | None = None) -> np.ndarray:
    """Σ w w' of the rows' columns w (rows × m): one matrix, or one per code (groups × m × m),
    one pass per pair of columns (no temporary of rows × m²)."""
    n_groups = 1 if codes is None else int(codes.max()) + 1
    codes = np.zeros(len(columns), dtype=np.int64) if codes is None else codes
    m = columns.shape[1]
    out = np.empty((n_groups, m, m))
    for i in range(m):
        for j in range(i, m):
            out[:, i, j] = out[:, j, i] = np.bincount(
                codes, weights=columns[:, i] * columns[:, j], minlength=n_groups
            )
    return out


def _cluster_bootstrap_partial_r(
    data: pd.DataFrame,
    x: str,
    y: str,
    covar: str | list[str],
    cluster: str,
    replicates: int,
    seed: int,
) -> np.ndarray:
    """Partial r in ``replicates`` resamples of whole clusters (vectorised via per-cluster
    cross-products).

    Each replicate draws as many clusters as there are, with replacement; its cross-products
    are the draw counts times the per-cluster ones, so no replicate touches the rows again.
    """
    controls = [covar] if isinstance(covar, str) else list(covar)
    columns = np.column_stack([np.ones(len(data)), data[[x, y, *controls]].to_numpy(float)])
    codes, _ = pd.factorize(data[cluster])
    per_cluster = _cross_products(columns, codes)
    n_clusters, m = per_cluster.shape[0], columns.shape[1]
    flat = per_cluster.reshape(n_clusters, m * m)
    rng = np.random.default_rng(seed)
    estimates = []
    for start in range(0, replicates, 250):
        size = min(250, replicates - start)
        counts = rng.multinomial(n_clusters, np.full(n_clusters, 1 / n_clusters), size=size)
        estimates.append(_partial_r((counts @ flat).reshape(size, m, m)))
    return np.concatenate(estimates)


def partial_correlation(
    data: pd.DataFrame,
    x: str,
    y: str,
    covar: str,
    *,
    model: str = "partial_correlation",
    cluster: str | None = None,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
) -> pd.DataFrame:
    """Partial correlation of ``x`` and ``y`` controlling ``covar``, and its square.

    Rows ``partial_r`` (95% CI by Fisher's z with SE 1/sqrt(n - 3 - k), p-value from t with
    n - 2 - k df for k controls, as pingouin's ``partial_corr``) and ``r2_alliance`` (its
    square: the share of outcome variance the alliance explains; CI from the squared
    bounds). With ``cluster``, also
    ``partial_r_bootstrap`` and ``r2_alliance_bootstrap``: the same estimates with percentile
    intervals from a cluster bootstrap (whole clusters resampled; ``bootstrap`` replicates,
    seeded).

    Parameters
    ----------
    data : pandas.DataFrame
    x, y : str
        Columns (rows with any missing are dropped).
    covar : str or list of str
        The column, or columns, controlled for (numeric: a factor enters as its indicator
        columns, :func:`alliance_outcome`).
    model : str
        Model name written in the table.
    cluster : str, optional
        Column of the clusters to resample (therapists).
    bootstrap : int
        Bootstrap replicates (0: no bootstrap rows).
    seed : int

    Returns
    -------
    pandas.DataFrame
        Tidy rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=500); x = z + rng.normal(size=500); y = z + x + rng.normal(size=500)
    >>> t = partial_correlation(pd.DataFrame({"x": x, "y": y, "z": z}), "x", "y", "z")
    >>> round(t.loc[t["term"] == "partial_r", "estimate"].item(), 2)
    0.67
    """
    controls = [covar] if isinstance(covar, str) else list(covar)
    columns = [x, y, *controls, *([cluster] if cluster else [])]
    frame = data[columns].dropna()
    n, k = len(frame), len(controls)
    if n < k + 4:
        raise NotEstimable(f"too few complete rows ({n}) for a partial correlation")
    values = np.column_stack([np.ones(n), frame[[x, y, *controls]].to_numpy(float)])
    r = float(_partial_r(_cross_products(values)[0]))
    dof = n - 2 - k
    t = r * np.sqrt(dof / (1 - r**2))
    p_value = float(2 * t_sf(abs(t), dof))
    low, high = _fisher_interval(r, 1 / np.sqrt(n - 3 - k))
    groups = frame[cluster].nunique() if cluster else pd.NA
    common = {"n_obs": n, "n_groups": groups, "converged": True, "p_value": p_value}
    rows = [
        tidy.row(
            model,
            "partial_r",
            r,
            ci_low=low,
            ci_high=high,
            df=dof,
            ci_method="fisher_z",
            **common,
        ),
        tidy.row(
            model,
            "r2_alliance",
            r**2,
            ci_low=_square_interval(low, high)[0],
            ci_high=_square_interval(low, high)[1],
            ci_method="fisher_z",
            **common,
        ),
    ]
    if cluster and bootstrap > 0:
        boot = _cluster_bootstrap_partial_r(frame, x, y, controls, cluster, bootstrap, seed)
        boot = boot[np.isfinite(boot)]
        message = f"{len(boot)} cluster-bootstrap replicates (seed {seed})"
        rows += [
            tidy.row(
                model,
                "partial_r_bootstrap",
                r,
                ci_low=np.quantile(boot, 0.025),
                ci_high=np.quantile(boot, 0.975),
                ci_method="cluster_bootstrap_percentile",
                message=message,
                **common,
            ),
            tidy.row(
                model,
                "r2_alliance_bootstrap",
                r**2,
                ci_low=np.quantile(boot**2, 0.025),
                ci_high=np.quantile(boot**2, 0.975),
                ci_method="cluster_bootstrap_percentile",
                message=message,
                **common,
            ),
        ]
    return tidy.frame(rows)


def _nakagawa_rows(model: str, fit: MixedFit) -> list[dict[str, object]]:
    """Marginal and conditional R² of a random-intercept model (Nakagawa & Schielzeth, 2013)."""
    vf, vr, ve = fit.fixed_prediction_variance, fit.random_variance, fit.variances["var_residual"]
    total = vf + vr + ve
    common = {**_fit_common(fit), "n_groups": _outer_groups(fit)}
    return [
        tidy.row(model, "r2_marginal", vf / total, **common),
        tidy.row(model, "r2_conditional", (vf + vr) / total, **common),
    ]


def _pieces(table: pd.DataFrame | Any, where: Callable | None = None) -> list:
    """A table's pieces for :func:`~allianceanalysis.engine.fit_lmm_pieces`: a DataFrame is
    one; a :class:`~allianceanalysis.shards.ShardedTable` has one per shard. ``where`` keeps
    rows (it may read columns the fit does not)."""
    if not isinstance(table, pd.DataFrame):
        return table.pieces(where)
    frame = table if where is None else where(table)
    return [lambda columns: frame[columns]]


def _eligible(clients: pd.DataFrame) -> pd.DataFrame:
    """The eligible cases: the table itself when all are (a completed table of multiple
    imputation), not a copy of every column."""
    if "eligible" not in clients:
        return clients
    eligible = clients["eligible"].to_numpy(bool)
    return clients if eligible.all() else clients[eligible]


def _controls(
    data: pd.DataFrame, adjustment: Adjustment | None, columns: list[str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """The client-level controls: ``outcome_intake`` and the covariates, a factor as its
    indicator columns (``_control1`` …), on the rows complete in ``columns`` and them; with
    each control column's R name (``diagnosisdepression`` …)."""
    terms = adjustment.terms(data, "client") if adjustment else []
    if not terms:
        return data, {"outcome_intake": "outcome_intake"}
    parsed = Formula.parse(" + ".join(["outcome_final ~ outcome_intake", *terms]))
    frame = data.dropna(subset=list(dict.fromkeys([*parsed.variables, *columns])))
    frame = frame.reset_index(drop=True)
    fixed = design(parsed, frame)
    names = [f"_control{j}" for j in range(1, fixed.x.shape[1])]
    frame = frame.assign(**dict(zip(names, fixed.x[:, 1:].T, strict=True)))
    return frame, dict(zip(names, fixed.terms[1:], strict=True))


NO_THERAPIST_LEVEL = (
    "fitted without the therapist level: the data have fewer than two therapists (no "
    "therapist codes, or a single practitioner)"
)
"""What a model that drops the therapist level says on its rows (models that are about
therapists are not fitted: :data:`CatalogueEntry.needs`)."""


def alliance_outcome(
    clients: pd.DataFrame,
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """Early alliance and final outcome: ``outcome_final ~ outcome_intake + alliance_early +
    (1 | therapist_id)``, plus the covariates of ``adjustment`` (which the partial
    correlation then controls for too).

    Adds the partial correlation of early alliance with final outcome controlling intake
    (``partial_r``, with Fisher-z and therapist-cluster-bootstrap intervals), its square
    ``r2_alliance`` (the share of outcome variance the alliance explains: the literature's
    "about 10%" is .28² ≈ .08; Flückiger et al., 2018), and Nakagawa's marginal and
    conditional R² of the model.

    Parameters
    ----------
    clients : pandas.DataFrame
        From :func:`allianceanalysis.derive.client_table` (eligible cases are used).
    bootstrap, seed : int
        Cluster-bootstrap replicates and their seed.
    engine : str
        The mixed-model engine (:data:`~allianceanalysis.engine.ENGINES`).

    Returns
    -------
    pandas.DataFrame
        Tidy rows of model ``alliance_outcome``.

    References
    ----------
    Flückiger, C., Del Re, A. C., Wampold, B. E., & Horvath, A. O. (2018). The alliance in adult
    psychotherapy: A meta-analytic synthesis. Psychotherapy, 55(4), 316-340.
    Nakagawa, S., & Schielzeth, H. (2013). A general and simple method for obtaining R² from
    generalized linear mixed-effects models. Methods in Ecology and Evolution, 4(2), 133-142.
    """
    model = "alliance_outcome"
    data = _eligible(clients)
    formula = "outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)"
    fit = fit_lmm(adjusted(formula, data, adjustment), data, engine)
    cluster = "therapist_id" if tidy.has_therapists(data) else None
    frame, named = _controls(data, adjustment, ["alliance_early", *filter(None, [cluster])])
    controls = list(named)
    correlation = partial_correlation(
        frame,
        "alliance_early",
        "outcome_final",
        controls,
        model=model,
        cluster=cluster,
        bootstrap=bootstrap,
        seed=seed,
    )
    return pd.concat(
        [tidy.frame(tidy_fit(model, fit) + _nakagawa_rows(model, fit)), correlation],
        ignore_index=True,
    )


def early_alliance(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    alliance: str = "srs",
    *,
    early_sessions: tuple[int, ...] = (1, 2, 3, 4, 5),
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """Does early alliance predict outcome beyond early improvement? One model per k.

    ``outcome_final ~ outcome_intake + alliance_early + early_change + (1 | therapist_id)``
    with the client table derived for k = 1..5 (model names ``early_alliance_k1`` ...). At
    k = 1 the early change is zero by definition and is left out. Answers the standard
    critique that the alliance merely reflects early symptom change (DeRubeis & Feeley, 1990;
    Flückiger et al., 2020).

    References
    ----------
    DeRubeis, R. J., & Feeley, M. (1990). Determinants of change in cognitive therapy for
    depression. Cognitive Therapy and Research, 14(5), 469-482.
    Flückiger, C., et al. (2020). The reciprocal relationship between alliance and early
    treatment symptoms. Journal of Consulting and Clinical Psychology, 88(9), 829-843.
    """
    tables = per_case_spilled(
        sessions, lambda frame: client_tables(frame, outcome, alliance, early_sessions, adjustment)
    )  # one k's table at a time, each read a shard at a time (never whole)
    frames = [
        _early_alliance_fit(k, kept.columns, _eligible_pieces(kept.pieces()), engine, adjustment)
        for k, kept in tables
    ]
    return pd.concat(frames, ignore_index=True)


def early_alliance_at(
    clients: pd.DataFrame,
    k: int,
    *,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """Model ``early_alliance_k<k>`` of :func:`early_alliance`, fitted to the client table of
    early session ``k`` (eligible cases)."""
    eligible = _eligible(clients)  # one piece, all its columns: no copy of the 10M-row table
    return _early_alliance_fit(k, clients, [lambda columns: eligible], engine, adjustment)


def _early_alliance_fit(
    k: int, columns: pd.DataFrame, pieces: list, engine: str, adjustment: Adjustment | None
) -> pd.DataFrame:
    """Model ``early_alliance_k<k>`` fitted to the pieces of the client table of early
    session ``k`` (``columns``: the table, or its columns and types)."""
    change = " + early_change" if k > 1 else ""
    formula = f"outcome_final ~ outcome_intake + alliance_early{change} + (1 | therapist_id)"
    fit = fit_lmm_pieces(adjusted(formula, columns, adjustment), pieces, engine)
    return tidy.frame(tidy_fit(f"early_alliance_k{k}", fit))


def _eligible_pieces(pieces: list) -> list:
    """Pieces of a client table (:meth:`~allianceanalysis.shards.Spilled.pieces`) that give
    the eligible cases' rows only."""

    def read(piece: Callable, columns: list[str]) -> pd.DataFrame:
        frame = piece([*dict.fromkeys([*columns, "eligible"])])
        return frame.loc[frame["eligible"].to_numpy(bool), columns]

    return [functools.partial(read, piece) for piece in pieces]


def alliance_disaggregated(
    clients: pd.DataFrame,
    *,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """Therapist and client parts of the alliance (Baldwin, Wampold & Imel, 2007).

    ``outcome_final ~ outcome_intake + alliance_therapist_mean + alliance_client_dev +
    (1 | therapist_id)``, plus the row ``between_minus_within`` (the contextual effect: the
    between-therapist minus the within-therapist slope). It is estimated, with its own
    Satterthwaite degrees of freedom, as the ``alliance_therapist_mean`` coefficient of the
    equivalent model with ``alliance_early`` in place of ``alliance_client_dev`` (same
    likelihood; Raudenbush & Bryk, 2002, ch. 5).

    References
    ----------
    Baldwin, S. A., Wampold, B. E., & Imel, Z. E. (2007). Untangling the alliance-outcome
    correlation. Journal of Consulting and Clinical Psychology, 75(6), 842-852.
    """
    model = "alliance_disaggregated"
    data = _eligible(clients)
    fixed = "outcome_final ~ outcome_intake + alliance_therapist_mean"
    fit = fit_lmm(
        adjusted(f"{fixed} + alliance_client_dev + (1 | therapist_id)", data, adjustment),
        data,
        engine,
    )
    contextual = fit_lmm(
        adjusted(f"{fixed} + alliance_early + (1 | therapist_id)", data, adjustment), data, engine
    )
    rows = tidy_fit(model, fit)
    rows.append(
        _coefficient_row(model, "between_minus_within", contextual, "alliance_therapist_mean")
    )
    return tidy.frame(rows)


def _icc(model: str, formula: str, data: pd.DataFrame, engine: str) -> pd.DataFrame:
    fit = fit_lmm(formula, data, engine)
    var_t, var_e = fit.variances["var_therapist"], fit.variances["var_residual"]
    rows = tidy_fit(model, fit)
    values: dict[str, object] = {
        "n_obs": fit.n_obs,
        "n_groups": fit.n_groups["therapist"],
        "converged": fit.converged,
    }
    if fit.deviance is not None:
        low, high = profile_interval(fit)
        values.update(
            ci_low=low**2 / (1 + low**2),
            ci_high=high**2 / (1 + high**2),
            ci_method="profile_likelihood",
        )
    rows.append(tidy.row(model, "icc", var_t / (var_t + var_e), **values))
    return tidy.frame(rows)


def therapist_icc(
    clients: pd.DataFrame,
    *,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """Therapist effects on outcome: ``outcome_final ~ outcome_intake + (1 | therapist_id)``.

    Row ``icc`` = var_therapist / (var_therapist + var_residual), the therapists' share of
    the outcome variance left after intake, with a profile-likelihood interval (the ICC is a
    monotone function of lme4's theta; see :func:`allianceanalysis.engine.profile_interval`).
    Counselling-centre studies find about 2-8% (Johns et al., 2019).

    References
    ----------
    Johns, R. G., Barkham, M., Kellett, S., & Saxon, D. (2019). A systematic review of
    therapist effects. Clinical Psychology Review, 67, 78-93.
    """
    data = _eligible(clients)
    formula = adjusted("outcome_final ~ outcome_intake + (1 | therapist_id)", data, adjustment)
    return _icc("therapist_icc", formula, data, engine)


def therapist_effects(
    clients: pd.DataFrame,
    *,
    codes: Mapping[str, str] | None = None,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """Shrunken therapist effects on outcome, for caterpillar and funnel plots (adjusted for
    the covariates of ``adjustment``: case-mix adjustment).

    The predicted random intercepts (BLUPs) of :func:`therapist_icc`'s model, one row per
    therapist: ``term`` is a pseudonymous code (``TH01`` …) from ``codes`` (therapist ID to
    code; the workflow's come from its secret key, :mod:`allianceanalysis.pseudonyms`, and are
    kept in the internal ``derived/therapist_codes.csv``; without ``codes``, codes from a
    fresh random key, different at each call); ``estimate`` the effect in outcome points (positive
    = better than expected when higher is better); ``std_error`` the square root of its
    conditional variance; 95% intervals ± 1.96 SE; ``n_obs`` the therapist's clients. Shrinkage
    pulls therapists with few clients towards zero, which is why league tables of raw means
    mislead (Goldstein & Spiegelhalter, 1996).

    References
    ----------
    Goldstein, H., & Spiegelhalter, D. J. (1996). League tables and their limitations.
    Journal of the Royal Statistical Society A, 159(3), 385-443.
    """
    model = "therapist_effects"
    data = _eligible(clients)
    formula = adjusted("outcome_final ~ outcome_intake + (1 | therapist_id)", data, adjustment)
    fit = fit_lmm(formula, data, engine)
    effects = fit.random_effects
    if effects is None:
        raise ValueError("therapist effects need the mixedlm engine")
    codes = codes if codes is not None else therapist_codes(effects.index)
    se = np.sqrt(effects["cond_var"].to_numpy())
    crit = norm_ppf(0.975)
    rows = [
        tidy.row(
            model,
            codes[therapist],
            row.estimate,
            std_error=s,
            ci_low=row.estimate - crit * s,
            ci_high=row.estimate + crit * s,
            n_obs=int(row.n_obs),
            converged=fit.converged,
            ci_method="conditional_variance",
            message="; ".join(fit.messages),
        )
        for (therapist, row), s in zip(effects.iterrows(), se, strict=True)
    ]
    return tidy.frame(rows).sort_values("term", kind="stable").reset_index(drop=True)


def therapist_shrinkage(
    clients: pd.DataFrame,
    *,
    codes: Mapping[str, str] | None = None,
    engine: str = DEFAULT_ENGINE,
) -> pd.DataFrame:
    """Raw and shrunken therapist effects side by side: why league tables of raw means mislead.

    From :func:`therapist_effects`' model, ``outcome_final ~ outcome_intake + (1 |
    therapist_id)``: a therapist's ``raw`` effect is the mean, over their clients, of the
    final outcome minus what the fixed part predicts from intake; the ``shrunken`` effect is
    the BLUP, which for this model is exactly ``shrinkage * raw`` with ``shrinkage`` = τ² / (τ²
    + σ² / n), τ² the therapist variance, σ² the residual variance and n the therapist's
    clients (Raudenbush & Bryk, 2002, ch. 3). Therapists with few clients are pulled hardest
    towards the average, so the extremes of a raw league table are mostly the smallest
    caseloads (Goldstein & Spiegelhalter, 1996).

    Parameters
    ----------
    clients : pandas.DataFrame
        From :func:`allianceanalysis.derive.client_table` (eligible cases are used).
    codes : mapping, optional
        Therapist ID to pseudonymous code (as :func:`therapist_effects`).
    engine : str
        The mixed-model engine (``mixedlm``: the one that predicts random effects).

    Returns
    -------
    pandas.DataFrame
        One row per therapist: ``therapist`` (code), ``n_obs``, ``raw``, ``shrunken``,
        ``shrinkage``, and ``rank_raw`` / ``rank_shrunken`` (1 = the largest effect: the best
        therapist when higher outcome scores are better, the worst on a scale like the PHQ-9).

    References
    ----------
    Goldstein, H., & Spiegelhalter, D. J. (1996). League tables and their limitations.
    Journal of the Royal Statistical Society A, 159(3), 385-443.
    Raudenbush, S. W., & Bryk, A. S. (2002). Hierarchical linear models (2nd ed.). Sage.

    Examples
    --------
    >>> from allianceanalysis.derive import client_table
    >>> from allianceanalysis.simulate import simulate_study
    >>> clients = client_table(simulate_study(n_clients=400, n_therapists=12, seed=3).sessions)
    >>> table = therapist_shrinkage(clients)
    >>> bool((table["shrunken"].abs() <= table["raw"].abs() + 1e-9).all())
    True
    """
    data = _eligible(clients)
    fit = fit_lmm("outcome_final ~ outcome_intake + (1 | therapist_id)", data, engine)
    if fit.random_effects is None:
        raise ValueError("shrunken effects need the mixedlm engine")
    beta = fit.coefficients["estimate"]
    residual = data["outcome_final"] - beta["Intercept"] - beta["outcome_intake"] * data[
        "outcome_intake"]  # fmt: skip
    by_therapist = residual.groupby(data["therapist_id"])
    table = pd.DataFrame({"n_obs": by_therapist.size(), "raw": by_therapist.mean()})
    tau2, sigma2 = fit.variances["var_therapist"], fit.variances["var_residual"]
    table["shrunken"] = fit.random_effects["estimate"].reindex(table.index)
    table["shrinkage"] = tau2 / (tau2 + sigma2 / table["n_obs"])
    table["rank_raw"] = table["raw"].rank(ascending=False, method="min").astype(int)
    table["rank_shrunken"] = table["shrunken"].rank(ascending=False, method="min").astype(int)
    codes = codes if codes is not None else therapist_codes(table.index)
    table.index = table.index.map(codes)
    return table.rename_axis("therapist").sort_index().reset_index()


def alliance_icc(clients: pd.DataFrame, *, engine: str = DEFAULT_ENGINE) -> pd.DataFrame:
    """Therapist differences in early alliance: ``alliance_early ~ 1 + (1 | therapist_id)``.

    Fitted to every case with an early alliance rating (eligible for outcome or not); row
    ``icc`` as in :func:`therapist_icc`. Therapists differ more than clients in the alliances
    they build (Baldwin et al., 2007; Del Re et al., 2012).
    """
    data = clients.dropna(subset=["alliance_early"])
    return _icc("alliance_icc", "alliance_early ~ 1 + (1 | therapist_id)", data, engine)


NEXT_SESSION_FIXED = (
    "outcome_next ~ outcome_within + alliance_within + alliance_client_mean + session"
)


def alliance_next_session(
    pairs: pd.DataFrame,
    *,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """Session-by-session: state and trait alliance and next-session outcome.

    ``outcome_next ~ outcome_within + alliance_within + alliance_client_mean + session +
    (1 | client_id)`` on :func:`allianceanalysis.derive.session_pairs`. ``alliance_within``
    is the client's state (session) alliance, ``alliance_client_mean`` the trait. Beware
    Nickell bias of the person-centred lagged outcome (about -(1 + rho)/(T - 1)) and
    person-specific trends (Falkenström et al., 2013, 2017; Zilcha-Mano, 2014).

    References
    ----------
    Falkenström, F., Granström, F., & Holmqvist, R. (2013). Therapeutic alliance predicts
    symptomatic improvement session by session. Journal of Counseling Psychology, 60(3),
    317-328.
    """
    formula = adjusted(f"{NEXT_SESSION_FIXED} + (1 | client_id)", _schema(pairs), adjustment,
                       "session")  # fmt: skip
    fit = fit_lmm_pieces(formula, _pieces(pairs), engine)
    return tidy.frame(tidy_fit("alliance_next_session", fit))


def alliance_next_session_nested(
    pairs: pd.DataFrame,
    *,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """As :func:`alliance_next_session` with clients nested in therapists:
    ``(1 | therapist_id/client_id)``."""
    random = "(1 | therapist_id/client_id)"
    formula = adjusted(f"{NEXT_SESSION_FIXED} + {random}", _schema(pairs), adjustment, "session")
    fit = fit_lmm_pieces(formula, _pieces(pairs), engine)
    return tidy.frame(tidy_fit("alliance_next_session_nested", fit))


def repeated_measures_correlation(
    data: pd.DataFrame, x: str, y: str, subject: str
) -> tuple[float, int, float, tuple[float, float], int, int]:
    """Repeated-measures correlation in O(N) by demeaning within subject (``data``: a table,
    or a :class:`~allianceanalysis.shards.ShardedTable` whose subjects each lie in one shard).

    The same r as the ANCOVA with subject as a factor (Bakdash & Marusich, 2017) and as
    :func:`pingouin.rm_corr`, without its dense observations-by-subjects design matrix.

    Returns
    -------
    tuple
        ``(r, dof, p_value, (ci_low, ci_high), n_obs, n_subjects)`` with dof = N - k - 1, the
        p-value of t = r sqrt(dof / (1 - r²)), and a Fisher-z interval with SE 1/sqrt(dof - 1)
        (pingouin's).
    """
    total, n, k = ExactSum(3), 0, 0
    for piece in _pieces(data):
        frame = piece([x, y, subject]).dropna()
        groups = frame.groupby(subject, sort=False)
        xw = (frame[x] - groups[x].transform("mean")).to_numpy()
        yw = (frame[y] - groups[y].transform("mean")).to_numpy()
        total.add(np.column_stack([xw * yw, xw**2, yw**2]))  # exact: any order, any shards
        n, k = n + len(frame), k + groups.ngroups
    xy, xx, yy = total.value()
    r = float(xy / np.sqrt(xx * yy))
    dof = n - k - 1
    if dof < 3:
        raise NotEstimable(
            f"too few repeated observations ({n} rows of {k} subjects) for a repeated-measures "
            "correlation"
        )
    t = r * np.sqrt(dof / (1 - r**2))
    p_value = float(2 * t_sf(abs(t), dof))
    return r, dof, p_value, _fisher_interval(r, 1 / np.sqrt(dof - 1)), n, k


def rm_corr(table: pd.DataFrame) -> pd.DataFrame:
    """Within-client association of alliance and outcome at the same session.

    Repeated-measures correlation (Bakdash & Marusich, 2017) of ``alliance`` and ``outcome``
    over sessions where both are observed, clients as subjects; term ``r``.

    References
    ----------
    Bakdash, J. Z., & Marusich, L. R. (2017). Repeated measures correlation. Frontiers in
    Psychology, 8, 456.
    """
    r, dof, p_value, (low, high), n, k = repeated_measures_correlation(
        table, "alliance", "outcome", "client_id"
    )
    return tidy.frame(
        [
            tidy.row(
                "rm_corr",
                "r",
                r,
                ci_low=low,
                ci_high=high,
                p_value=p_value,
                df=dof,
                n_obs=n,
                n_groups=k,
                converged=True,
                ci_method="fisher_z",
            )
        ]
    )


def growth(table: pd.DataFrame, *, engine: str = DEFAULT_ENGINE) -> pd.DataFrame:
    """Outcome trajectories with state and trait alliance and a random slope of session.

    ``outcome ~ session + alliance_within + alliance_client_mean + (1 + session | client_id)``
    on :func:`allianceanalysis.derive.session_table` (sessions with both scores). Extra rows
    ``var_client_session`` and ``cor_client_session`` describe the random slope.

    References
    ----------
    Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis. Oxford
    University Press.
    """
    formula = (
        "outcome ~ session + alliance_within + alliance_client_mean + (1 + session | client_id)"
    )
    pieces = _pieces(table, lambda d: d.dropna(subset=["outcome", "alliance"]))
    return tidy.frame(tidy_fit("growth", fit_lmm_pieces(formula, pieces, engine)))


def alliance_components(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    alliance: str = "srs",
    *,
    early_session: int = 3,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """The alliance's components (Bordin, 1979: goals, tasks, bond) and outcome, one at a time.

    For each component of the alliance instrument
    (:attr:`~allianceanalysis.instruments.Instrument.component_columns`: the WAI-SR's goal,
    task and bond subscales; the SRS's items read as bond, goal, task and overall), the
    client table is derived with the component at session ``k`` as ``alliance_early``, and
    :func:`alliance_outcome` (model ``alliance_component_<name>``: the mixed model, Nakagawa's
    R² and the partial correlation with its Fisher-z and cluster-bootstrap intervals) and the
    early-alliance model with early change (``early_alliance_component_<name>``, from k = 2)
    are fitted. Components share most of their variance (Horvath & Greenberg, 1989): read the
    differences between their correlations with their intervals.

    Raises
    ------
    NotEstimable
        When the instrument has no components on record, or the data do not carry them (a
        file of totals).

    References
    ----------
    Bordin, E. S. (1979). The generalizability of the psychoanalytic concept of the working
    alliance. Psychotherapy: Theory, Research & Practice, 16(3), 252-260.
    Horvath, A. O., & Greenberg, L. S. (1989). Development and validation of the Working
    Alliance Inventory. Journal of Counseling Psychology, 36(2), 223-233.
    """
    inst = get_instrument(alliance)
    columns = inst.component_columns
    if not columns:
        raise NotEstimable(f"the {inst.short} has no components (subscales) on record")
    present = {c: col for c, col in columns.items() if distinct(sessions, col, 1)}
    if not present:
        items = ", ".join(inst.item_columns)
        raise NotEstimable(f"the data carry no {inst.short} components: supply its items "
                           f"({items}) to analyse them")  # fmt: skip
    formula = "outcome_final ~ outcome_intake + alliance_early + early_change + (1 | therapist_id)"
    frames = []
    for name, column in present.items():
        clients = per_case(sessions, lambda frame, column=column: client_table(
            frame, outcome, column, early_session, adjustment))  # fmt: skip
        model = f"alliance_component_{name}"
        frames.append(tidy.or_reason(model, lambda c=clients, m=model: alliance_outcome(
            c, bootstrap=bootstrap, seed=seed, engine=engine, adjustment=adjustment,
        ).assign(model=m)))  # fmt: skip
        if early_session > 1:
            early, eligible = f"early_alliance_component_{name}", _eligible(clients)
            frames.append(tidy.or_reason(early, lambda c=eligible, m=early: tidy.frame(
                tidy_fit(m, fit_lmm(adjusted(formula, c, adjustment), c, engine)))))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def outcome_growth(table: pd.DataFrame, *, engine: str = DEFAULT_ENGINE) -> pd.DataFrame:
    """The average course of the outcome over sessions, with each client's own course.

    ``outcome ~ session + (1 + session | client_id)`` on
    :func:`allianceanalysis.derive.session_table` (every session with an outcome score): the
    linear growth model of routine outcome data (Singer & Willett, 2003, ch. 4). ``session``
    is the average change per session; ``var_client_session`` how much clients' slopes
    differ. It needs no alliance measure, so it runs on outcome-only data too.

    References
    ----------
    Singer, J. D., & Willett, J. B. (2003). Applied longitudinal data analysis. Oxford
    University Press.
    """
    pieces = _pieces(table, lambda d: d.dropna(subset=["outcome"]))
    fit = fit_lmm_pieces("outcome ~ session + (1 + session | client_id)", pieces, engine)
    return tidy.frame(tidy_fit("outcome_growth", fit))


def _logit_data(
    model: str, data: pd.DataFrame, response: str, predictors: list[str], cluster: str
) -> tuple[pd.DataFrame, pd.DataFrame] | list[dict[str, object]]:
    """The complete rows and the design (with ``Intercept``) of a logistic model by
    ``cluster``, or one row saying why there is nothing to fit (fewer than two clusters, or a
    single kind of response). Only the model's columns are kept: the rows left out of a
    national client table (each pooled imputation's) are not copied in every other column."""
    columns = list(dict.fromkeys([response, *predictors, *([cluster] if cluster else [])]))
    data = data[columns].dropna(subset=[response, *predictors])
    if data[response].nunique() < 2 or (cluster is not None and data[cluster].nunique() < 2):
        return _nothing_to_fit(model, predictors, len(data))
    exog = data[predictors].astype(float)
    return data, exog.assign(Intercept=1.0)[["Intercept", *predictors]]


def _nothing_to_fit(model: str, predictors: list[str], n_obs: int) -> list[dict[str, object]]:
    """The row of a logistic model with fewer than two clusters or one kind of response."""
    message = "too few cases with a known ending, or only one kind of ending, to fit"
    return [tidy.row(model, predictors[0], np.nan, converged=False, message=message,
                     n_obs=n_obs)]  # fmt: skip


def _separated(counts: pd.DataFrame, response: str, predictors: list[str]) -> list[str]:
    """Messages for each 0/1 predictor one of whose levels has only one kind of response
    (quasi-complete separation): its log-odds are not estimable, the estimate runs off
    towards infinity and its standard error with it. ``counts`` holds ``events`` out of
    ``trials`` per row (:func:`binomial_counts`)."""
    messages = []
    for predictor in predictors:
        values = counts[predictor]
        if not values.isin([0, 1]).all():
            continue
        by_level = counts.groupby(values)[["events", "trials"]].sum()
        for level, (events, trials) in by_level.iterrows():
            if events in (0, trials):
                messages.append(f"separation: every {response} is the same where {predictor} = "
                                f"{level:g}; its coefficient is not estimable")  # fmt: skip
    return messages


def _logit_rows(
    model: str,
    terms: list[str],
    estimate: np.ndarray,
    std_error: np.ndarray,
    **common: object,
) -> list[dict[str, object]]:
    """A row per log-odds coefficient (Wald z interval and p-value) and an ``odds_ratio_``
    row per predictor (every term but the intercept)."""
    z = norm_ppf(0.975)
    low, high = estimate - z * std_error, estimate + z * std_error
    p_value = 2 * norm_sf(np.abs(estimate / std_error))
    with np.errstate(over="ignore"):  # an unbounded interval's end is infinite
        odds = np.exp(np.stack([estimate, low, high]))
    rows = [
        tidy.row(model, term, estimate[i], std_error=std_error[i], ci_low=low[i], ci_high=high[i],
             p_value=p_value[i], **common)
        for i, term in enumerate(terms)
    ]  # fmt: skip
    rows += [
        tidy.row(model, f"odds_ratio_{term}", odds[0, i], ci_low=odds[1, i], ci_high=odds[2, i],
             p_value=p_value[i], **common)
        for i, term in enumerate(terms) if term != "Intercept"
    ]  # fmt: skip
    return rows


def clustered_logit(
    model: str, data: pd.DataFrame, response: str, predictors: list[str], cluster: str | None
) -> list[dict[str, object]]:
    """A logistic regression with standard errors clustered by ``cluster``: tidy rows (one
    per coefficient, plus ``odds_ratio_<predictor>`` rows).

    Fitted by Newton's method from sums (:func:`allianceanalysis.logit.fit_logits`, held to
    statsmodels' ``Logit`` in ``tests/test_logit.py``). Standard errors are CR1, equal to R's
    ``sandwich::vcovCL(type = "HC1")``, with Wald z intervals; with ``cluster=None``, the
    model-based ones (R's ``glm``). Rows with a missing value in any of the columns are left
    out. With fewer than two clusters or a single kind of response, one row says why nothing
    was fitted.
    """
    prepared = _logit_data(model, data, response, predictors, cluster)
    if isinstance(prepared, list):
        return prepared
    data, exog = prepared
    codes = None if cluster is None else pd.factorize(data[cluster])[0]
    rows = LogitRows(exog.to_numpy(float), data[response].to_numpy(float), cluster=codes)
    clusters = None if codes is None else int(codes.max()) + 1
    [fit] = fit_logits([lambda: rows], clusters=clusters)
    problems = [fit.message] if fit.message else []
    problems += _separated(data.assign(events=data[response], trials=1), response, predictors)
    common = {
        "n_obs": fit.n_obs,
        "n_groups": clusters if cluster else pd.NA,
        "converged": fit.converged and not problems,
        "message": "; ".join(problems),
        "ci_method": "wald_z_cluster" if cluster else "wald_z",
    }
    p = len(exog.columns)
    covariance = fit.covariance if fit.covariance is not None else np.full((p, p), np.nan)
    return _logit_rows(model, list(exog.columns), fit.params, np.sqrt(np.diag(covariance)),
                       **common)  # fmt: skip


def clustered_ols(
    model: str, data: pd.DataFrame, response: str, predictors: list[str], cluster: str
) -> list[dict[str, object]]:
    """A linear regression with standard errors clustered by ``cluster``: one tidy row per
    coefficient (``Intercept`` and each predictor).

    ``lm(response ~ predictors)`` with the cluster-robust covariance of statsmodels
    (``cov_type="cluster"``: CR1 with its small-sample correction, as Stata's ``vce(cluster)``)
    and Wald intervals; ``n_groups`` is the number of clusters.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> d = pd.DataFrame({"x": rng.normal(size=60), "g": np.repeat(range(12), 5)})
    >>> d["y"] = 2 * d["x"] + rng.normal(size=60)
    >>> rows = clustered_ols("m", d, "y", ["x"], "g")
    >>> [r["term"] for r in rows], rows[1]["n_groups"]
    (['Intercept', 'x'], 12)
    """
    import statsmodels.formula.api as smf

    groups = data[cluster].astype("category").cat.codes
    fit = smf.ols(f"{response} ~ {' + '.join(predictors)}", data=data).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    intervals = fit.conf_int()
    return [
        tidy.row(model, term, fit.params[term], std_error=fit.bse[term],
                 ci_low=intervals.loc[term, 0], ci_high=intervals.loc[term, 1],
                 p_value=fit.pvalues[term], n_obs=int(fit.nobs),
                 n_groups=data[cluster].nunique(), converged=True,
                 ci_method="wald_cluster_robust")
        for term in ["Intercept", *predictors]
    ]  # fmt: skip


def binomial_counts(
    data: pd.DataFrame,
    response: str,
    predictors: list[str],
    cluster: str,
    trials: str | None = None,
) -> pd.DataFrame:
    """Rows with the same ``cluster`` and ``predictors`` collapsed into ``events`` (the sum of
    the 0/1 ``response``) and ``trials`` (their number), sorted by them: the same binomial
    likelihood as the rows, in as many rows as there are distinct ones. With ``trials``, the
    rows are counts already (``response`` events out of ``trials``), to be added up: counts
    made piece by piece, then added, are those of the whole. Rows missing the response or a
    predictor are left out.

    Examples
    --------
    >>> d = pd.DataFrame({"t": ["a", "a", "b"], "x": [1, 1, 0], "y": [1, 0, 1]})
    >>> binomial_counts(d, "y", ["x"], "t")[["x", "t", "events", "trials"]].to_numpy().tolist()
    [[0, 'b', 1, 1], [1, 'a', 1, 2]]
    """
    data = data.dropna(subset=[response, *predictors])
    counted = data.groupby([*predictors, cluster], sort=True, dropna=False).agg(
        events=(response, "sum"), trials=(trials or response, "sum" if trials else "size")
    )
    return counted.reset_index()


def therapist_logit(
    model: str,
    data: pd.DataFrame,
    response: str,
    predictors: list[str],
    cluster: str = "therapist_id",
    *,
    nagq: int = 1,
    trials: str | None = None,
) -> list[dict[str, object]]:
    """A logistic regression with a random intercept per therapist (``cluster``):
    ``glmer(response ~ predictors + (1 | cluster), family = binomial)`` by
    :func:`allianceanalysis.glmm.fit_logit_glmm` (Laplace approximation by default, as lme4).

    Tidy rows: one per coefficient (log-odds, conditional on the therapist; Wald z intervals
    and p-values as ``summary.glmerMod``), ``odds_ratio_<predictor>`` rows,
    ``var_therapist`` (the therapists' variance on the logit scale) and ``loglik``. Rows with
    a missing value are left out; with fewer than two therapists or a single kind of
    response, one row says why nothing was fitted. With ``trials``, ``data`` holds counts
    (``response`` events out of ``trials``, :func:`binomial_counts`): the fit is that of the
    rows they count. Therapists are numbered in the sorted order of their codes, so the fit
    does not depend on the order of the rows.
    """
    from .glmm import fit_logit_glmm

    counts = binomial_counts(data, response, predictors, cluster, trials)
    events, size = counts["events"].to_numpy(dtype=float), counts["trials"].to_numpy(dtype=float)
    if not 0 < events.sum() < size.sum() or counts[cluster].nunique() < 2:
        return _nothing_to_fit(model, predictors, int(size.sum()))
    exog = counts[predictors].astype(float).assign(Intercept=1.0)[["Intercept", *predictors]]
    fit = fit_logit_glmm(events, exog.to_numpy(), pd.factorize(counts[cluster], sort=True)[0],
                         nagq=nagq, trials=size)  # fmt: skip
    problems = [m for m in [fit.message, *_separated(counts, response, predictors)] if m]
    common = {
        "n_obs": fit.n_obs,
        "n_groups": fit.n_groups,
        "converged": fit.converged and not problems,
        "message": "; ".join(problems),
    }
    rows = _logit_rows(model, list(exog.columns), fit.beta, fit.std_error, ci_method="wald_z",
                       **common)  # fmt: skip
    label = f"var_{group_label(cluster)}"
    rows.append(tidy.row(model, label, fit.theta**2, **common))
    rows.append(tidy.row(model, "loglik", fit.loglik, **common))
    return rows


def dropout(clients: pd.DataFrame) -> pd.DataFrame:
    """Unplanned ending and early alliance: logistic regression with therapist-clustered SEs.

    ``dropout ~ alliance_early`` (``glm(family = binomial)``), on cases with a known ending
    and an early alliance rating; standard errors clustered by therapist (CR1, as
    ``sandwich::vcovCL`` type HC1); Wald z intervals (:func:`clustered_logit`). Row
    ``odds_ratio_alliance_early`` is the odds ratio per alliance point. Note the sample: only
    cases that reached the early session (Sharf, Primavera & Diener, 2010).

    References
    ----------
    Sharf, J., Primavera, L. H., & Diener, M. J. (2010). Dropout and therapeutic alliance: A
    meta-analysis of adult individual psychotherapy. Psychotherapy, 47(4), 637-645.
    """
    several = tidy.has_therapists(clients)
    rows = clustered_logit("dropout", clients, "dropout", ["alliance_early"],
                           "therapist_id" if several else None)  # fmt: skip
    if not several:
        for row in rows:
            row["message"] = "; ".join(filter(None, [NO_THERAPIST_LEVEL, row["message"]]))
    return tidy.frame(rows)


CLIENT_MODEL_COLUMNS = (
    "therapist_id", "eligible", "dropout", "outcome_intake", "alliance_early", "early_change",
    "outcome_final", "alliance_therapist_mean", "alliance_client_dev",
)  # fmt: skip
"""The columns of the client table the models fitted to it read, besides the client-level
covariates (:func:`client_model_columns`)."""


def client_model_columns(adjustment: Adjustment | None = None) -> list[str]:
    """The columns of the client table that the models fitted to it (``data="clients"``) read:
    :data:`CLIENT_MODEL_COLUMNS` and the client-level covariates and moderators. The rule
    ``models`` reads no others: at 10M clients the rest (identifiers, text) are half of the
    table's 1.6 GB, and each model's eligible rows were a copy of them all.

    Examples
    --------
    >>> client_model_columns()[:3]
    ['therapist_id', 'eligible', 'dropout']
    """
    extra = [c.column for c in adjustment.client_level] if adjustment else []
    return list(dict.fromkeys([*CLIENT_MODEL_COLUMNS, *extra]))


DATA_TABLES = ("clients", "pairs", "sessions_table", "sessions")
"""The tables a catalogue model is fitted to: the derived client table, session pairs and
session table, or the validated sessions (``results/<dataset>/internal/derived/``,
``validated/``)."""


def _riclpm(
    sessions: pd.DataFrame | ShardedTable, *, outcome: str, alliance: str, riclpm_waves: int
) -> pd.DataFrame:
    """:func:`allianceanalysis.riclpm.riclpm` with the configured waves."""
    return riclpm(sessions, outcome=outcome, alliance=alliance, waves=riclpm_waves)


SETTINGS = ("outcome", "alliance", "early_session", "riclpm_waves", "bootstrap", "seed", "engine",
            "codes", "adjustment", "custom")  # fmt: skip
"""The workflow settings a catalogue model may take (:attr:`CatalogueEntry.options`):
``riclpm_waves`` is the RI-CLPM's T (:func:`allianceanalysis.riclpm.riclpm`'s ``waves``);
``codes`` are the therapists' pseudonymous codes (:mod:`allianceanalysis.pseudonyms`);
``adjustment`` the covariates and moderators (:mod:`allianceanalysis.covariates`);
``custom`` the config's own models (:mod:`allianceanalysis.custom_models`)."""


@dataclass(frozen=True)
class CatalogueEntry:
    """A model of the catalogue: its function, the table it is fitted to, its formula, which
    of the workflow's :data:`SETTINGS` it takes as keyword arguments, whether its rows are
    therapists (``therapist_level``: its table is internal, :mod:`allianceanalysis.layout`),
    and what it :data:`NEEDS` of the data (an alliance measure, therapists); a table that
    holds models beside the entry's own names their formulas in ``companions``."""

    function: Callable[..., pd.DataFrame]
    data: str  # one of DATA_TABLES
    formula: str
    options: tuple[str, ...] = ("engine",)
    therapist_level: bool = False
    needs: tuple[str, ...] = ("alliance",)
    companions: Mapping[str, str] = field(default_factory=dict)
    """The formulas of the other models its table holds, by model name (the APA notes)."""

    def __post_init__(self) -> None:
        unknown = set(self.options) - set(SETTINGS)
        if unknown:
            raise TypeError(f"unknown catalogue options: {', '.join(sorted(unknown))}")
        if set(self.needs) - set(NEEDS):
            raise TypeError(f"unknown catalogue needs: {', '.join(self.needs)}")
        if self.data not in DATA_TABLES:
            raise TypeError(f"unknown table {self.data!r}; one of {', '.join(DATA_TABLES)}")


ALLIANCE_DISAGGREGATED_FORMULA = (
    "outcome_final ~ outcome_intake + alliance_therapist_mean + alliance_client_dev"
    " + (1 | therapist_id)"
)

CATALOGUE: dict[str, CatalogueEntry] = {
    "alliance_outcome": CatalogueEntry(
        alliance_outcome, "clients",
        "outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)",
        ("bootstrap", "seed", "engine", "adjustment")),
    "early_alliance": CatalogueEntry(
        early_alliance, "sessions",
        "outcome_final ~ outcome_intake + alliance_early + early_change + (1 | therapist_id)"
        " (early_change from k = 2)", ("outcome", "alliance", "engine", "adjustment")),
    "alliance_disaggregated": CatalogueEntry(
        alliance_disaggregated, "clients", ALLIANCE_DISAGGREGATED_FORMULA, ("engine", "adjustment"),
        needs=("alliance", "therapists")),
    "therapist_icc": CatalogueEntry(
        therapist_icc, "clients", "outcome_final ~ outcome_intake + (1 | therapist_id)",
        ("engine", "adjustment"), needs=("therapists",)),
    "therapist_effects": CatalogueEntry(
        therapist_effects, "clients", "outcome_final ~ outcome_intake + (1 | therapist_id)",
        ("codes", "engine", "adjustment"), therapist_level=True, needs=("therapists",)),
    "alliance_icc": CatalogueEntry(
        alliance_icc, "clients", "alliance_early ~ 1 + (1 | therapist_id)",
        needs=("alliance", "therapists")),
    "alliance_next_session": CatalogueEntry(
        alliance_next_session, "pairs", f"{NEXT_SESSION_FIXED} + (1 | client_id)",
        ("engine", "adjustment")),
    "alliance_next_session_nested": CatalogueEntry(
        alliance_next_session_nested, "pairs",
        f"{NEXT_SESSION_FIXED} + (1 | therapist_id/client_id)", ("engine", "adjustment"),
        needs=("alliance", "therapists")),
    "rm_corr": CatalogueEntry(
        rm_corr, "sessions_table", "repeated-measures correlation of alliance and outcome", ()),
    "growth": CatalogueEntry(
        growth, "sessions_table",
        "outcome ~ session + alliance_within + alliance_client_mean + (1 + session | client_id)"),
    "dropout": CatalogueEntry(
        dropout, "clients", "glm(dropout ~ alliance_early, family = binomial)", ()),
    "alliance_components": CatalogueEntry(
        alliance_components, "sessions",
        "alliance_outcome and the early-alliance model for each component of the alliance "
        "(alliance_early = the component at session k)",
        ("outcome", "alliance", "early_session", "bootstrap", "seed", "engine", "adjustment")),
    "outcome_growth": CatalogueEntry(
        outcome_growth, "sessions_table", "outcome ~ session + (1 + session | client_id)",
        needs=()),
    "moderation": CatalogueEntry(
        moderation, "sessions",
        "alliance_outcome, early_alliance (k = early_session) and alliance_next_session with "
        "the alliance term's interaction with each moderator (models <model>_by_<moderator>)",
        ("outcome", "alliance", "early_session", "engine", "adjustment")),
    "custom_models": CatalogueEntry(
        custom_models_table, "sessions", "the config's own models (models:), each its formula",
        ("outcome", "alliance", "early_session", "engine", "adjustment", "custom"), needs=()),
    "alliance_disaggregated_latent": CatalogueEntry(
        alliance_disaggregated_latent, "clients",
        "level 1: outcome_final ~ bw*alliance_early + outcome_intake; level 2: outcome_final ~ "
        "bb*alliance_early + outcome_intake (two-level SEM, latent therapist means; covariates "
        "at both levels, one coefficient each)",
        ("engine", "adjustment"), needs=("alliance", "therapists"),
        companions={"alliance_disaggregated_observed": ALLIANCE_DISAGGREGATED_FORMULA}),
    "alliance_next_session_detrended": CatalogueEntry(
        alliance_next_session_detrended, "sessions", DETRENDED_FORMULAS[DETRENDED],
        ("outcome", "alliance", "engine", "adjustment"),
        companions={m: f"{f}, on the detrended model's pairs"
                    for m, f in DETRENDED_FORMULAS.items() if m != DETRENDED}),
    "riclpm": CatalogueEntry(
        _riclpm, "sessions",
        "random-intercept cross-lagged panel model of alliance and outcome over each case's "
        "first T attended sessions (riclpm_waves), lagged paths equal over sessions, FIML "
        "(Mulder & Hamaker, 2021)", ("outcome", "alliance", "riclpm_waves"),
        companions={"riclpm_unconstrained": "the RI-CLPM with lagged paths free over sessions "
                                            "(Mulder & Hamaker, 2021)"}),
}  # fmt: skip
"""The catalogue: table names (``results/<dataset>/published/tables/<name>.csv``, or
``internal/`` for therapist-level ones) and their functions."""


def fit_model(
    name: str,
    data: pd.DataFrame,
    *,
    outcome: str = "ors",
    alliance: str = "srs",
    early_session: int = 3,
    riclpm_waves: int = DEFAULT_WAVES,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    engine: str = DEFAULT_ENGINE,
    codes: Mapping[str, str] | None = None,
    adjustment: Adjustment | None = None,
    custom: Sequence[CustomModel] = (),
) -> pd.DataFrame:
    """Fit catalogue model ``name`` to its table (``CATALOGUE[name].data`` says which), passing
    the settings its entry declares (``CATALOGUE[name].options``); a model the data cannot
    support gives one ``not_fitted`` row saying why. ``adjustment`` holds the covariates and
    moderators; the table must carry their columns (:func:`run_model` derives it so).
    """
    entry = CATALOGUE[name]
    settings = {"outcome": outcome, "alliance": alliance, "early_session": early_session,
                "riclpm_waves": riclpm_waves, "bootstrap": bootstrap, "seed": seed,
                "engine": engine, "codes": codes, "adjustment": adjustment,
                "custom": custom}  # fmt: skip
    reason = tidy.unmet_need(entry.needs, data, alliance)
    if reason is not None:
        return tidy.reason_frame(name, reason)
    try:
        return entry.function(data, **{option: settings[option] for option in entry.options})
    except NotEstimable as exc:
        return tidy.reason_frame(name, str(exc))


def run_model(
    name: str,
    sessions: pd.DataFrame,
    *,
    outcome: str = "ors",
    alliance: str = "srs",
    early_session: int = 3,
    riclpm_waves: int = DEFAULT_WAVES,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = DEFAULT_SEED,
    engine: str = DEFAULT_ENGINE,
    codes: Mapping[str, str] | None = None,
    adjustment: Adjustment | None = None,
    custom: Sequence[CustomModel] = (),
) -> pd.DataFrame:
    """Derive the model's table from validated sessions and fit catalogue model ``name``.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=200, n_therapists=10, seed=4).sessions
    >>> run_model("rm_corr", s)["term"].tolist()
    ['r']
    """
    kind = CATALOGUE[name].data
    derived = {
        "clients": lambda: client_table(sessions, outcome, alliance, early_session, adjustment),
        "pairs": lambda: session_pairs(sessions, outcome, alliance, adjustment),
        "sessions_table": lambda: session_table(sessions, outcome, alliance, adjustment),
        "sessions": lambda: sessions,
    }[kind]()
    return fit_model(
        name,
        derived,
        outcome=outcome,
        alliance=alliance,
        early_session=early_session,
        riclpm_waves=riclpm_waves,
        bootstrap=bootstrap,
        seed=seed,
        engine=engine,
        codes=codes,
        adjustment=adjustment,
        custom=custom,
    )
