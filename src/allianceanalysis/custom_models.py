"""Your own models: lme4 formulas from the config, fitted to the derived tables.

A researcher's own analyses run beside the catalogue, with its tidy rows, APA tables, report
and provenance. The config's ``models:`` (a dataset's own list replaces the global one):

.. code-block:: yaml

    models:
      - name: alliance_by_dose
        formula: outcome_final ~ alliance_early * sessions_attended + (1 | therapist_id)
      - name: next_session_alliance
        formula: alliance_next ~ outcome_within + session + (1 | client_id)
        table: pairs
      - name: dropout_hazard
        formula: event ~ alliance_change + poly(session, 2) + (1 | therapist_id)
        table: person_periods
        family: binomial

Fields: ``name`` (lower-case letters, digits and ``_``; the model's name in the tables, not a
catalogue name), ``formula`` (lme4 notation, :mod:`allianceanalysis.formula`), ``table`` (one of
:data:`TABLES`, default ``clients``) and ``family`` (``gaussian``, default, a linear mixed
model by REML through :func:`allianceanalysis.engine.fit_lmm`; or ``binomial``, a logistic
model: without random effects R's ``glm``, with one random intercept ``(1 | g)`` lme4's
``glmer`` by the Laplace approximation, :mod:`allianceanalysis.glmm`). The variables a
formula may use are the table's columns (``docs/models.md``, "Derived variables"), the
configured covariates and moderators, and any other column of the session data: constant
within a case for the ``clients`` table (a value that varies is refused), the session's value
for the session-level tables. Rows with a missing value in a variable are dropped and counted
in ``message``.

The rows of every custom model are the table ``custom_models``. A formula that cannot be
parsed, a name that is taken, a binomial model with another random structure, or a variable
no table has is refused before any model is fitted, by a plain error naming the config key.

Examples
--------
>>> specs = custom_models({"models": [{"name": "m1", "formula": "outcome_final ~ alliance_early"}]})
>>> specs[0].table, specs[0].family
('clients', 'gaussian')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import tidy
from .covariates import Adjustment, Covariate
from .engine import DEFAULT_ENGINE, Piece, fit_lmm_pieces, group_label
from .errors import ConfigError, NotEstimable
from .formula import Formula, design
from .shards import ShardedTable, Spilled, frames, per_case, schema

__all__ = [
    "FAMILIES",
    "TABLES",
    "CustomModel",
    "check_variables",
    "custom_models",
    "custom_models_table",
    "derived_table",
    "fit_custom",
    "table_columns",
]

TABLES = ("clients", "sessions", "pairs", "person_periods")
"""The tables a custom model is fitted to: the client table, the session table, the session
pairs (:mod:`allianceanalysis.derive`) and the dropout model's person-periods
(:func:`allianceanalysis.dropout_risk.person_periods`)."""
FAMILIES = ("gaussian", "binomial")
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True)
class CustomModel:
    """A model from the config's ``models:`` list (module docstring)."""

    name: str
    formula: str
    table: str = "clients"
    family: str = "gaussian"


def custom_models(config: Mapping[str, Any], dataset: str | None = None) -> tuple[CustomModel, ...]:
    """The custom models of ``dataset`` (its own list replaces the global one).

    Raises
    ------
    ConfigError
        Naming the key of every problem (the schema checks the fields' types first).
    """
    from .models import CATALOGUE

    entry = (config.get("datasets") or {}).get(dataset, {}) if dataset else {}
    key = f"datasets.{dataset}.models" if "models" in entry else "models"
    entries = entry["models"] if "models" in entry else config.get("models") or []
    found, problems = [], []
    for i, spec in enumerate(entries):
        model = CustomModel(**{k: spec[k] for k in ("name", "formula", "table", "family")
                               if k in spec})  # fmt: skip
        where = f"{key}[{i}]"
        if not _NAME.fullmatch(model.name) or model.name in CATALOGUE:
            problems.append(f"{where}.name: {model.name!r} is not a free model name (lower-case "
                            "letters, digits and '_', not a catalogue model's name)")  # fmt: skip
        try:
            parsed = Formula.parse(model.formula)
        except ValueError as error:
            problems.append(f"{where}.formula: {error}")
            continue
        simple = not parsed.random or (len(parsed.random) == 1 and not parsed.random[0].slopes
                                       and parsed.random[0].intercept
                                       and len(parsed.random[0].group) == 1)  # fmt: skip
        if model.family == "binomial" and not simple:
            random = " + ".join(t.lme4() for t in parsed.random)
            problems.append(f"{where}: a binomial model takes no random effect or one random "
                            f"intercept (1 | g), not {random}")  # fmt: skip
        found.append(model)
    names = [m.name for m in found]
    problems += [f"{key}: the name {n!r} is used twice" for n in dict.fromkeys(names)
                 if names.count(n) > 1]  # fmt: skip
    if problems:
        raise ConfigError(problems)
    return tuple(found)


def table_columns(table: str) -> tuple[str, ...]:
    """The columns of a derived table that formulas may use (besides the data's own)."""
    from .dropout_risk import RISK_PREDICTORS

    return {
        "clients": ("therapist_id", "site_id", "sessions_attended", "end_status", "dropout",
                    "outcome_intake", "alliance_early", "outcome_early", "early_change",
                    "outcome_final", "session_final", "alliance_therapist_mean",
                    "alliance_client_dev"),
        "sessions": ("therapist_id", "site_id", "session", "alliance", "outcome",
                     "alliance_client_mean", "outcome_client_mean", "alliance_within",
                     "outcome_within"),
        "pairs": ("therapist_id", "site_id", "session", "alliance", "outcome",
                  "alliance_client_mean", "outcome_client_mean", "alliance_within",
                  "outcome_within", "session_next", "outcome_next"),
        "person_periods": ("therapist_id", "session", *RISK_PREDICTORS, "event"),
    }[table] + ("client_id", "episode_id")  # fmt: skip


def _extra(model: CustomModel, session_columns: Sequence[str]) -> list[str]:
    """The model's variables that are columns of the sessions rather than of its table."""
    own = set(table_columns(model.table))
    return [v for v in Formula.parse(model.formula).variables
            if v not in own and v in session_columns]  # fmt: skip


def check_variables(
    models: Sequence[CustomModel], session_columns: Sequence[str], key: str = "models"
) -> None:
    """Refuse a variable that neither the model's table nor the session data have.

    Raises
    ------
    ConfigError
        Naming the model, the variable and the table's columns.
    """
    problems = []
    for i, model in enumerate(models):
        own = table_columns(model.table)
        for variable in Formula.parse(model.formula).variables:
            if variable not in own and variable not in session_columns:
                problems.append(
                    f"{key}[{i}].formula: the {model.table} table has no variable {variable!r} "
                    f"(it has {', '.join(own)} and the data's columns)"
                )
    if problems:
        raise ConfigError(problems)


def derived_table(
    sessions: pd.DataFrame | ShardedTable,
    model: CustomModel,
    outcome: str,
    alliance: str | None,
    early_session: int,
    adjustment: Adjustment | None = None,
) -> pd.DataFrame:
    """The model's table, carrying the session data's columns its formula uses (refused by a
    plain error when a client-level one varies within a case), from sessions whole or in
    shards (a shard at a time)."""
    return per_case(sessions, _table_of(sessions, model, outcome, alliance, early_session,
                                        adjustment))  # fmt: skip


def _table_of(
    sessions: pd.DataFrame | ShardedTable,
    model: CustomModel,
    outcome: str,
    alliance: str | None,
    early_session: int,
    adjustment: Adjustment | None,
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """:func:`derived_table` of one piece of the sessions, once the columns the model carries
    are checked on all of them."""
    from .derive import case_keys, client_table, session_pairs, session_table
    from .dropout_risk import person_periods

    extra = _extra(model, list(schema(sessions).columns))
    level = "client" if model.table == "clients" else "session"
    carried = [c for c in extra if not adjustment or c not in {a.column for a in (
        *adjustment.covariates, *adjustment.moderators)}]  # fmt: skip
    own = Adjustment(tuple(Covariate(c, level=level) for c in carried),
                     source={"covariates": f"the formula of {model.name}"})  # fmt: skip
    own.check_facts([own.facts(frame, case_keys(frame)) for frame in frames(sessions)])
    combined = Adjustment((*(adjustment.covariates if adjustment else ()), *own.covariates),
                          adjustment.moderators if adjustment else ())  # fmt: skip
    columns = [c.column for c in (*combined.covariates, *combined.moderators)]

    def table(frame: pd.DataFrame) -> pd.DataFrame:
        if model.table == "clients":
            return client_table(frame, outcome, alliance, early_session, combined)
        if model.table == "sessions":
            return session_table(frame, outcome, alliance, combined)
        if model.table == "pairs":
            return session_pairs(frame, outcome, alliance, combined)
        return person_periods(frame, outcome, alliance or "_no_alliance", carry=columns)

    return table


def _dropped(rows: int, used: int) -> str:
    return f"{rows - used} rows with a missing value left out" if rows > used else ""


def fit_custom(model: CustomModel, data: pd.DataFrame, engine: str = DEFAULT_ENGINE) -> list:
    """Tidy rows of one custom model fitted to its table."""
    return _fit_pieces(model, [lambda columns: data[columns]], engine)


def _fit_pieces(model: CustomModel, pieces: Sequence[Piece], engine: str) -> list:
    """:func:`fit_custom` of a table given in pieces: a linear mixed model from their
    sufficient statistics (:func:`~allianceanalysis.engine.fit_lmm_pieces`), a logistic one
    on the formula's columns of all pieces, in the pieces' order."""
    from .models import tidy_fit

    if model.family == "gaussian":
        fit = fit_lmm_pieces(model.formula, pieces, engine)
        note = _dropped(fit.n_obs + fit.n_dropped, fit.n_obs)
        if note:
            fit.messages = (*fit.messages, note)
        return tidy_fit(model.name, fit)
    columns = Formula.parse(model.formula).variables
    return _fit_binomial(model, pd.concat([piece(columns) for piece in pieces],
                                          ignore_index=True))  # fmt: skip


def _fit_binomial(model: CustomModel, data: pd.DataFrame) -> list:
    """A logistic model: ``glm`` without random effects, ``glmer`` (Laplace) with one random
    intercept; Wald z inference and odds-ratio rows (as the catalogue's logistic models)."""
    import statsmodels.api as sm

    from .glmm import fit_logit_glmm
    from .models import _logit_rows

    parsed = Formula.parse(model.formula)
    frame = data[parsed.variables].dropna().reset_index(drop=True)
    y = frame[parsed.response].to_numpy(dtype=float)
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"the response {parsed.response!r} of {model.name} is not 0/1")
    if len(np.unique(y)) < 2 or len(frame) < 3:
        raise NotEstimable(f"too few rows ({len(frame)}) or a single kind of response to fit")
    fixed = design(parsed, frame)
    note = _dropped(len(data), len(frame))
    if not parsed.random:
        result = sm.Logit(y, fixed.x).fit(disp=0)
        common = {"n_obs": len(frame), "converged": bool(result.mle_retvals["converged"]),
                  "message": note, "ci_method": "wald_z"}  # fmt: skip
        return _logit_rows(model.name, fixed.terms, np.asarray(result.params),
                           np.asarray(result.bse), **common)  # fmt: skip
    group = parsed.random[0].group[0]
    fit = fit_logit_glmm(y, fixed.x, pd.factorize(frame[group])[0])
    message = "; ".join(m for m in (fit.message, note) if m)
    common = {"n_obs": fit.n_obs, "n_groups": fit.n_groups, "converged": fit.converged,
              "message": message}  # fmt: skip
    rows = _logit_rows(model.name, fixed.terms, fit.beta, fit.std_error, ci_method="wald_z",
                       **common)  # fmt: skip
    rows.append(tidy.row(model.name, f"var_{group_label(group)}", fit.theta**2, **common))
    rows.append(tidy.row(model.name, "loglik", fit.loglik, **common))
    return rows


def custom_models_table(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    alliance: str | None = "srs",
    *,
    early_session: int = 3,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
    custom: Sequence[CustomModel | Mapping[str, Any]] = (),
) -> pd.DataFrame:
    """Every custom model's rows (a model the data cannot support: one row saying why).

    Raises
    ------
    NotEstimable
        When no custom model is configured.
    """
    models = [m if isinstance(m, CustomModel) else CustomModel(**m) for m in custom]
    if not models:
        raise NotEstimable("no models of your own are configured (models: in the config)")
    check_variables(models, list(schema(sessions).columns))
    rows = []
    for model in models:
        table = _table_of(sessions, model, outcome, alliance, early_session, adjustment)
        if model.family != "gaussian":  # fitted to its rows, in case order
            data = per_case(sessions, table)
            rows.append(tidy.or_reason(model.name, lambda m=model, d=data: tidy.frame(
                fit_custom(m, d, engine))))  # fmt: skip
            continue
        with Spilled.of(sessions, table) as kept:
            pieces = kept.pieces()
            rows.append(tidy.or_reason(model.name, lambda m=model, p=pieces: tidy.frame(
                _fit_pieces(m, p, engine))))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def as_dicts(models: Sequence[CustomModel]) -> list[dict[str, str]]:
    """Plain data for a job parameter (a change reruns what depends on it)."""
    return [asdict(m) for m in models]
