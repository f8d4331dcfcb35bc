"""Moderators of the alliance–outcome association: for whom, and when, is the alliance more
strongly related to outcome?

For each moderator of the config (``moderators:``, :mod:`allianceanalysis.covariates`) three
catalogue models gain the alliance term's interaction with it (Flückiger et al., 2012, 2018
test moderators of the alliance–outcome association this way):

``alliance_outcome_by_<m>``
    ``outcome_final ~ outcome_intake + alliance_early * m + covariates + (1 | therapist_id)``;
``early_alliance_by_<m>``
    the same with ``early_change`` (at the configured early session k; from k = 2);
``alliance_next_session_by_<m>``
    ``outcome_next ~ outcome_within + alliance_within * m + alliance_client_mean + session +
    covariates + (1 | client_id)``.

Each table holds the model's rows (the interaction is the term ``<alliance>:<m level>`` or
``<alliance>:m``) and the alliance's **conditional effect** ``<alliance>|<m>=<value>``:

- at every level of a categorical moderator (the reference level included);
- at the mean and at one SD below and above it of a continuous one (``=mean-1sd``,
  ``=mean``, ``=mean+1sd``; the values in ``message``), and at :data:`GRID_POINTS` values
  spanning its observed range (``=<value>``, for the figure);

each a contrast of the fixed effects with its standard error, Satterthwaite degrees of
freedom (lmerTest's ``contest1D``, :func:`allianceanalysis.lmm.contrast_df`), p-value and 95%
interval. For a continuous moderator the **Johnson–Neyman** bounds (Johnson & Neyman, 1936;
Bauer & Curran, 2005) are the rows ``johnson_neyman_low`` and ``johnson_neyman_high``: the
moderator values where the conditional effect's 95% interval touches zero, found from the
quadratic (b₁ + b₃m)² = t²(v₁₁ + 2m v₁₃ + m² v₃₃) with t the 97.5% quantile on the
interaction's Satterthwaite degrees of freedom; ``message`` says where the effect is
significant and the observed range. Not estimable when the quadratic has no real roots (the
effect is significant everywhere or nowhere; the message says which).

References
----------
Bauer, D. J., & Curran, P. J. (2005). Probing interactions in fixed and multilevel regression:
Inferential and graphical techniques. Multivariate Behavioral Research, 40(3), 373-400.
Flückiger, C., Del Re, A. C., Wampold, B. E., Symonds, D., & Horvath, A. O. (2012). How
central is the alliance in psychotherapy? A multilevel longitudinal meta-analysis. Journal of
Counseling Psychology, 59(1), 10-17.
Johnson, P. O., & Neyman, J. (1936). Tests of certain linear hypotheses and their application
to some educational problems. Statistical Research Memoirs, 1, 57-93.

Examples
--------
>>> from allianceanalysis.covariates import Adjustment
>>> from allianceanalysis.simulate import simulate_study
>>> s = simulate_study(n_clients=300, n_therapists=10, seed=1).sessions
>>> s["group"] = s["client_id"].str[-1].isin(list("02468")).map({True: "even", False: "odd"})
>>> table = moderation(s, adjustment=Adjustment.from_config({"moderators": ["group"]}))
>>> [t for t in table["term"] if t.startswith("alliance_early|")][:2]
['alliance_early|group=even', 'alliance_early|group=odd']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import tidy
from .covariates import Adjustment, Covariate, adjusted
from .derive import client_table, session_pairs
from .distributions import t_ppf
from .engine import DEFAULT_ENGINE, MixedFit, fit_lmm_pieces
from .errors import NotEstimable
from .formula import Formula
from .shards import ShardedTable, Spilled, per_case

__all__ = ["GRID_POINTS", "MODELS", "conditional_effects", "johnson_neyman", "moderation"]

GRID_POINTS = 21
"""Values of a continuous moderator, spanning its observed range, at which the conditional
effect is tabulated for the figure."""

MODELS = {
    "alliance_outcome": (
        "alliance_early",
        "outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)",
    ),
    "early_alliance": (
        "alliance_early",
        "outcome_final ~ outcome_intake + alliance_early + early_change + (1 | therapist_id)",
    ),
    "alliance_next_session": (
        "alliance_within",
        "outcome_next ~ outcome_within + alliance_within + alliance_client_mean + session"
        " + (1 | client_id)",
    ),
}
"""The moderated models: the alliance term and the formula the moderator enters."""


def _moderated_formula(
    base: str, focal: str, moderator: Covariate, data: pd.DataFrame, adjustment: Adjustment
) -> str:
    level = "session" if "client_id" in Formula.parse(base).groups else "client"
    term = moderator.term(data)
    return adjusted(base, data, adjustment, level, extra=[term, f"{focal}:{term}"])


def _row(model: str, term: str, fit: MixedFit, contrast: pd.DataFrame, message: str) -> dict:
    c = contrast.iloc[0]
    return tidy.row(
        model, term, c.estimate, std_error=c.std_error, ci_low=c.ci_low, ci_high=c.ci_high,
        p_value=c.p_value, df=c.df, n_obs=fit.n_obs, n_groups=_groups(fit),
        converged=fit.converged,
        ci_method="satterthwaite_t" if np.isfinite(c.df) else "wald_z", message=message,
    )  # fmt: skip


def _groups(fit: MixedFit) -> object:
    return next(iter(fit.n_groups.values()), pd.NA)


def conditional_effects(
    fit: MixedFit, model: str, focal: str, moderator: Covariate, data: pd.DataFrame
) -> list[dict]:
    """The alliance's conditional effect at each level (categorical) or at the mean ± 1 SD and
    across the observed range (continuous) of ``moderator``; ``data`` are the fit's rows."""
    term = moderator.term(data)
    name = moderator.column
    coefficients = set(fit.coefficients.index)

    def effect(weights: dict[str, float], label: str, message: str) -> dict:
        missing = [t for t in weights if t not in coefficients]
        if missing:
            raise NotEstimable(f"the coefficient {missing[0]!r} was dropped (aliased)")
        return _row(model, f"{focal}|{name}={label}", fit, fit.contrast(weights), message)

    if moderator.categorical(data):
        levels = _levels(data[name])
        rows = [effect({focal: 1.0}, str(levels[0]), f"the alliance's effect where {name} = "
                       f"{levels[0]} (the reference level)")]  # fmt: skip
        rows += [effect({focal: 1.0, f"{focal}:{term}{level}": 1.0}, str(level),
                        f"the alliance's effect where {name} = {level}")
                 for level in levels[1:]]  # fmt: skip
        return rows
    values = data[name].to_numpy(dtype=float)
    mean, sd = float(values.mean()), float(values.std(ddof=1))
    interaction = f"{focal}:{term}"
    rows = [
        effect({focal: 1.0, interaction: at}, label,
               f"the alliance's effect where {name} = {at:.6g} (the {words})")
        for label, at, words in (("mean-1sd", mean - sd, "mean minus one SD"),
                                 ("mean", mean, "mean"),
                                 ("mean+1sd", mean + sd, "mean plus one SD"))
    ]  # fmt: skip
    grid = np.linspace(values.min(), values.max(), GRID_POINTS)
    rows += [effect({focal: 1.0, interaction: at}, f"{at:.6g}",
                    f"the alliance's effect where {name} = {at:.6g}") for at in grid]  # fmt: skip
    return rows


def _moderator_values(pieces: list, variables: list[str], moderator: Covariate) -> pd.DataFrame:
    """The moderator's column over the rows a fit to ``pieces`` uses (complete on its
    ``variables``), what :func:`conditional_effects` and :func:`johnson_neyman` read; a
    categorical one's distinct values only."""
    name = moderator.column
    parts = []
    for piece in pieces:
        values = piece(variables).dropna()[[name]]
        parts.append(values.drop_duplicates() if moderator.categorical(values) else values)
    return pd.concat(parts, ignore_index=True)


def _levels(values: pd.Series) -> list:
    """A factor's levels in R's order: a categorical's own, else sorted."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [c for c in values.cat.categories if (values == c).any()]
    return sorted(values.dropna().unique())


def johnson_neyman(
    fit: MixedFit, model: str, focal: str, moderator: Covariate, data: pd.DataFrame
) -> list[dict]:
    """The Johnson–Neyman bounds of a continuous moderator (module docstring)."""
    name = moderator.column
    interaction = f"{focal}:{moderator.term(data)}"
    terms = list(fit.coefficients.index)
    i, j = terms.index(focal), terms.index(interaction)
    b1, b3 = fit.coefficients["estimate"].iloc[[i, j]]
    v11, v13, v33 = fit.vcov[i, i], fit.vcov[i, j], fit.vcov[j, j]
    df = float(fit.coefficients["df"].iloc[j])
    t = t_ppf(0.975, df) if np.isfinite(df) else 1.959963984540054
    a, b, c = b3**2 - t**2 * v33, 2 * (b1 * b3 - t**2 * v13), b1**2 - t**2 * v11
    values = data[name].to_numpy(dtype=float)
    observed = f"observed {name} {values.min():.4g} to {values.max():.4g}"
    discriminant = b * b - 4 * a * c
    common = {"n_obs": fit.n_obs, "n_groups": _groups(fit), "converged": fit.converged,
              "df": df, "ci_method": "johnson_neyman"}  # fmt: skip
    if discriminant < 0 or a == 0:
        where = "everywhere" if a > 0 else "nowhere"
        reason = f"the alliance's effect is significant {where} ({observed})"
        return [tidy.row(model, k, np.nan, message=reason, **common)
                for k in ("johnson_neyman_low", "johnson_neyman_high")]  # fmt: skip
    low, high = sorted(
        ((-b - np.sqrt(discriminant)) / (2 * a), (-b + np.sqrt(discriminant)) / (2 * a))
    )
    region = (f"below {low:.4g} or above {high:.4g}" if a > 0
              else f"between {low:.4g} and {high:.4g}")  # fmt: skip
    message = f"the alliance's effect is significant (95%) where {name} is {region} ({observed})"
    return [tidy.row(model, "johnson_neyman_low", low, message=message, **common),
            tidy.row(model, "johnson_neyman_high", high, message=message, **common)]  # fmt: skip


def moderation(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    alliance: str = "srs",
    *,
    early_session: int = 3,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """The moderated models of every configured moderator (module docstring), tidy rows.

    Raises
    ------
    NotEstimable
        When no moderator is configured.
    """
    from .models import _eligible, tidy_fit

    if not adjustment or not adjustment.moderators:
        raise NotEstimable("no moderators are configured (moderators: in the config)")
    clients = _eligible(per_case(sessions, lambda frame: client_table(
        frame, outcome, alliance, early_session, adjustment)))  # fmt: skip
    tables = []

    def pairs_of(frame: pd.DataFrame) -> pd.DataFrame:
        return session_pairs(frame, outcome, alliance, adjustment)

    with Spilled.of(sessions, pairs_of) as kept:  # the pairs' rows stay in the pieces
        levels = {"alliance_within": (kept.columns, kept.pieces()),
                  "alliance_early": (clients, [lambda columns: clients[columns]])}  # fmt: skip
        for moderator in adjustment.moderators:
            for stem, (focal, base) in MODELS.items():
                if stem == "early_alliance" and early_session < 2:
                    continue  # no early change at k = 1: the model is alliance_outcome's
                model = f"{stem}_by_{moderator.column}"
                columns, pieces = levels[focal]

                def fit_one(model=model, focal=focal, base=base, columns=columns, pieces=pieces,
                            moderator=moderator):  # fmt: skip
                    formula = _moderated_formula(base, focal, moderator, columns, adjustment)
                    fit = fit_lmm_pieces(formula, pieces, engine)
                    used = _moderator_values(pieces, Formula.parse(formula).variables,
                                             moderator)  # fmt: skip
                    rows = tidy_fit(model, fit)
                    rows += conditional_effects(fit, model, focal, moderator, used)
                    if not moderator.categorical(used):
                        rows += johnson_neyman(fit, model, focal, moderator, used)
                    return tidy.frame(rows)

                tables.append(tidy.or_reason(model, fit_one))
    return pd.concat(tables, ignore_index=True)
