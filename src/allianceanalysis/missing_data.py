"""Missing data, faced: the client-level models after multilevel multiple imputation, a
tipping-point analysis for dropouts' final outcomes, and the missingness pattern.

**Target population.** Every case of the client table (every client, or episode, with at least
one attended session and its client-level covariates), including cases that never reached the
early session or left before any outcome after it: their early alliance, early outcome and
final outcome are imputed. A case missing a client-level covariate stays out (as in the
complete-case models; its count is in the rows' message).

**Imputation model** (:mod:`allianceanalysis.imputation`), one per early session k the models
use: the joint two-level normal model of the outcome at sessions 1 and k, the alliance at
session k, the final outcome (the last one after session k) and, as auxiliaries, both scores
at the two sessions before k (:data:`AUXILIARY_SESSIONS`), with therapist random intercepts
for each, given every case's number of attended sessions (log), how it ended (dropout,
planned, unknown or ongoing) and the client-level covariates. The early sessions' scores carry
what the attended sessions up to k say; the ending and the number of sessions carry why and
when a case left. Missing at random given these is the assumption.

**Analyses.** Each catalogue model (:data:`MI_MODELS`) is fitted to each completed data set by
its own function, with the same engine, and pooled by Rubin's rules (:mod:`allianceanalysis.
pooling`): coefficients with Barnard-Rubin degrees of freedom (the complete-data ones being the
fit's); the partial correlation on Fisher's z scale and its square from the pooled
correlation (Harel, 2009); odds ratios from the pooled log odds; variance components, the ICC
and R² as the mean over imputations (no interval: Rubin's rules need a standard error).

**Tipping point** (:func:`tipping_point`): the dropouts' imputed final outcomes are shifted by
delta points towards a worse outcome (a pattern-mixture, delta-adjusted analysis; Carpenter &
Kenward, 2013, ch. 10) and the alliance-outcome coefficient pooled again at each delta.

References
----------
Carpenter, J. R., & Kenward, M. G. (2013). Multiple imputation and its application. Wiley.
Harel, O. (2009). The estimation of R² and adjusted R² in incomplete data sets using multiple
imputation. Journal of Applied Statistics, 36(10), 1109-1118.
van Buuren, S. (2018). Flexible imputation of missing data (2nd ed.). CRC Press.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from . import tidy
from .covariates import Adjustment, adjusted
from .derive import CaseOrder, case_keys, case_order, client_frames
from .disclosure import DisclosurePolicy, suppress_small_rows
from .effects import wilson_interval
from .engine import DEFAULT_ENGINE, fit_lmm_each
from .errors import NotEstimable
from .formula import Formula, design
from .imputation import BETWEEN, BURN_IN, Imputations, impute
from .instruments import get_instrument
from .models import (
    CATALOGUE,
    NO_THERAPIST_LEVEL,
    alliance_disaggregated,
    alliance_outcome,
    dropout,
    early_alliance_at,
    therapist_icc,
    tidy_fit,
)
from .pooling import MI_COLUMNS, Pooled, pool
from .shards import ShardedTable, per_case_each, release_memory

__all__ = [
    "AUXILIARY_SESSIONS",
    "DEFAULT_M",
    "EARLY_SESSIONS",
    "HEADLINE_CHANGE",
    "MI_MODELS",
    "ImputationData",
    "ImputedClients",
    "combined_rows",
    "headline_changes",
    "imputation_data",
    "impute_clients",
    "imputed_sessions",
    "missingness",
    "missingness_rows",
    "multiple_imputation",
    "tipping_point",
    "tipping_shifts",
]

DEFAULT_M = 20
"""Imputations (the config's ``missing_data.m``). Twenty keep the relative efficiency above
.98 at a fraction of missing information of .3 and the Monte Carlo error of a pooled estimate
under a quarter of its between-imputation SD (van Buuren, 2018, sec. 2.8)."""

EARLY_SESSIONS = (1, 2, 3, 4, 5)
"""The early sessions of ``early_alliance_k*`` (as
:func:`allianceanalysis.models.early_alliance`)."""

MI_MODELS = ("alliance_outcome", "early_alliance", "alliance_disaggregated", "therapist_icc",
             "dropout")  # fmt: skip
"""The client-level catalogue models pooled over imputations (models ``<model>_mi``;
``early_alliance`` gives ``early_alliance_k<k>_mi``)."""

TIPPING_STEPS = 11
"""Points of the default delta grid (0 to :data:`TIPPING_SHARE` of the range, in equal
steps)."""

TIPPING_SHARE = 0.25
"""The default grid's largest shift as a share of the outcome instrument's range: 10 ORS
points (0-40), the scale of the shifts in the tipping-point examples of Carpenter & Kenward
(2013, ch. 10) and of a clinically meaningful difference on the ORS (5 points is its reliable
change; Miller et al., 2003)."""

SIZE_BANDS = ((1, 9, "1-9 cases"), (10, 29, "10-29 cases"), (30, np.inf, "30 or more cases"))
"""Therapist size bands of the missingness table (cases per therapist)."""


def _ending(clients: pd.DataFrame) -> pd.DataFrame:
    """The complete predictors of the imputation model besides the covariates."""
    status = clients.get("end_status")
    dropped = clients["dropout"].eq(1.0)
    unknown = clients["dropout"].isna()
    frame = pd.DataFrame(
        {
            "log_sessions": np.log(clients["sessions_attended"].to_numpy(float)),
            "ending_dropout": dropped.astype(float).to_numpy(),
            "ending_unknown": unknown.astype(float).to_numpy(),
        }
    )
    if status is not None:
        frame["ending_ongoing"] = status.eq("ongoing").astype(float).to_numpy()
    return frame


@dataclass(frozen=True)
class ImputedClients:
    """The client table of early session ``k`` and ``m`` imputations of its missing scores.

    Attributes
    ----------
    base : pandas.DataFrame
        The population's cases (without cases missing a covariate): the client table's
        columns of :data:`_BASE` and the covariates.
    variables : list of str
        The imputed columns (core and early-session scores), in the imputation's order.
    imputations : Imputations
    k : int
    excluded : int
        Cases left out for a missing client-level covariate.
    """

    base: pd.DataFrame
    variables: list[str]
    imputations: Imputations
    k: int
    excluded: int

    @property
    def m(self) -> int:
        """The number of imputations."""
        return self.imputations.m

    def was_missing(self, column: str) -> np.ndarray:
        """Which cases had ``column`` imputed."""
        return np.isnan(self.imputations.observed[:, self.variables.index(column)])

    def completed(self, j: int) -> pd.DataFrame:
        """The ``j``-th completed client table: every case eligible, the derived columns
        (early change, therapist mean and client deviation of the early alliance) recomputed.
        The auxiliary scores (the sessions before k) are the imputation model's, not the
        table's: they are not among its columns."""
        table = self.base.copy(deep=False)  # copy-on-write: the base's columns are kept
        imputed = [i for i, column in enumerate(self.variables) if column in table]
        columns = self.imputations.columns(j, imputed)
        for i, values in zip(imputed, columns, strict=True):  # a frame's setitem of several
            table[self.variables[i]] = values  # columns consolidates its blocks: a copy of all
        table["early_change"] = (
            table["outcome_early"] - table["outcome_intake"] if self.k > 1 else 0.0
        )
        table["eligible"], table["exclusion"] = True, ""
        if "alliance_early" in self.variables:
            mean = table.groupby("therapist_id", dropna=False)["alliance_early"].transform("mean")
            table["alliance_therapist_mean"] = mean
            table["alliance_client_dev"] = table["alliance_early"] - mean
        return table


_BASE = ("client_id", "therapist_id", "sessions_attended", "dropout", "outcome_intake",
         "alliance_early", "outcome_early", "outcome_final")  # fmt: skip
"""The client table's columns an :class:`ImputedClients` keeps (besides the covariates): what
the pooled models and the tipping point read, and the case. The others (site, ending, the
exclusion and the columns :meth:`ImputedClients.completed` derives again) are not carried
into every completed table: at 10M cases they are about 0.8 GB."""


AUXILIARY_SESSIONS = 2
"""The sessions just before k whose scores enter the imputation model as auxiliaries (the
outcome from session 2, the alliance from session 1). Two carry most of what the earlier ones
say about session k (scores a session apart correlate most) and keep the model small: each
further one adds two variables and, with them, missing-data patterns the sampler visits every
iteration."""


def _scores(
    ordered: CaseOrder, outcome: str, alliance: str | None, k: int
) -> dict[str, np.ndarray]:
    """The scores of the :data:`AUXILIARY_SESSIONS` sessions before k of each case, in
    client-table order (auxiliaries), from the ordered sessions."""
    before = range(max(1, k - AUXILIARY_SESSIONS), k)
    scores = {f"outcome_s{s}": ordered.at_session(outcome, s).to_numpy(float)
              for s in before if s > 1}  # fmt: skip
    if alliance is not None:
        scores |= {f"alliance_s{s}": ordered.at_session(alliance, s).to_numpy(float)
                   for s in before}  # fmt: skip
    return scores


_AUXILIARY = "_auxiliary_"
"""The prefix of the auxiliary scores while they travel with the client table."""


def client_data(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str,
    alliance: str | None,
    early_sessions: tuple[int, ...],
    adjustment: Adjustment | None = None,
    columns: Collection[str] | None = None,
) -> Iterator[tuple[int, pd.DataFrame, dict[str, np.ndarray]]]:
    """For each early session k in turn, the client table (its ``columns`` that it has, in
    its order; None: all) and the auxiliary scores of every case (:func:`_scores`), in case
    order, from sessions given whole or in shards (one in memory at a time, and one k's
    tables: the others wait on disk; a case lies in one shard, so the tables are the whole
    data's). The covariates of ``adjustment`` are checked in the same pass
    (:meth:`~allianceanalysis.covariates.Adjustment.check_facts`), before the first table is
    given.

    Raises
    ------
    ConfigError
        A covariate the data lack or cannot support, naming the config key and the column.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=50, n_therapists=5, seed=3).sessions
    >>> [(k, len(table), len(scores["alliance_s2"])) for k, table, scores
    ...  in client_data(s, "ors", "srs", (3,))]
    [(3, 50, 50)]
    """

    facts: list[dict[str, Any]] = []

    def piece(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
        if adjustment:  # what a shard shows of a problem stops it before its tables are made
            facts.append(adjustment.facts(frame, case_keys(frame)))
            adjustment.check_facts(facts[-1:], partial=True)
        ordered = case_order(frame, alliance)
        tables = client_frames(ordered, outcome, alliance, early_sessions, adjustment)
        if columns is not None:  # kept narrow: each shard's table waits on disk till all are made
            tables = {k: t[[c for c in t.columns if c in columns]] for k, t in tables.items()}
        return {k: tables[k].assign(**{_AUXILIARY + name: values for name, values
                                       in _scores(ordered, outcome, alliance, k).items()})
                for k in early_sessions}  # fmt: skip

    for k, table in per_case_each(sessions, piece):
        if facts:  # every shard made: the whole data's problems, before anything is imputed
            adjustment.check_facts(facts)
            facts.clear()
        aux = [c for c in table.columns if c.startswith(_AUXILIARY)]
        scores = {c.removeprefix(_AUXILIARY): table[c].to_numpy(float) for c in aux}
        # given, not kept: while the caller works, this generator holds neither
        held = [table.drop(columns=aux), scores]
        del table, scores
        release_memory()  # the pieces' concatenation's garbage
        yield k, held.pop(0), held.pop(0)


def impute_clients(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str | None = "srs",
    k: int = 3,
    *,
    adjustment: Adjustment | None = None,
    m: int = DEFAULT_M,
    seed: int = 0,
    burn_in: int = BURN_IN,
    between: int = BETWEEN,
) -> ImputedClients:
    """Impute the client table of early session ``k`` ``m`` times (module docstring).

    Parameters
    ----------
    sessions : pandas.DataFrame
        Validated sessions.
    outcome, alliance : str
        The score columns (``alliance`` None for data without an alliance measure).
    k : int
        The early session.
    adjustment : Adjustment, optional
        Covariates: client-level ones are predictors of the imputation model.
    m, seed, burn_in, between : int
        :func:`allianceanalysis.imputation.impute`.

    Returns
    -------
    ImputedClients

    Raises
    ------
    NotEstimable
        When a score the models need is observed in fewer than two cases.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=300, n_therapists=15, seed=3).sessions
    >>> imp = impute_clients(s, m=2, seed=1, burn_in=20, between=5)
    >>> bool(imp.completed(0)["outcome_final"].notna().all())
    True
    """
    data = imputation_data(sessions, outcome, alliance, k, adjustment=adjustment)
    return _imputed(data, k, m=m, seed=seed, burn_in=burn_in, between=between)


def _imputed(data: ImputationData, k: int, **options: Any) -> ImputedClients:
    """:func:`allianceanalysis.imputation.impute` of the imputation model's data."""
    imputations = impute(data.y.to_numpy(float), data.x.to_numpy(float), data.groups, **options)
    return ImputedClients(data.base, list(data.y.columns), imputations, k, data.excluded)


@dataclass(frozen=True)
class ImputationData:
    """The imputation model's data (:func:`imputation_data`)."""

    base: pd.DataFrame
    """The population's client table."""
    y: pd.DataFrame
    """The incomplete scores (core, then the early sessions' auxiliaries)."""
    x: pd.DataFrame
    """The complete predictors, by their design names (``Intercept`` first)."""
    groups: np.ndarray | None
    """Each case's therapist as 0 … T − 1 (None: fewer than two therapists)."""
    excluded: int
    """Cases left out for a missing client-level covariate."""


def imputation_data(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str | None = "srs",
    k: int = 3,
    *,
    adjustment: Adjustment | None = None,
) -> ImputationData:
    """The incomplete scores, the complete predictors and the therapists of the imputation
    model of early session ``k`` (module docstring), on the population's cases.

    Raises
    ------
    NotEstimable
        When a score the models need is observed in fewer than two cases.
    """
    ordered = case_order(sessions, alliance)
    table = client_frames(ordered, outcome, alliance, (k,), adjustment)[k]
    return _imputation_data(table, _scores(ordered, outcome, alliance, k), alliance, k, adjustment)


def _covariate_columns(adjustment: Adjustment | None) -> set[str]:
    """The client table's columns of the covariates and moderators of ``adjustment``."""
    if not adjustment:
        return set()
    return {c.column for c in (*adjustment.covariates, *adjustment.moderators)}


def _imputation_columns(adjustment: Adjustment | None) -> set[str]:
    """The client table's columns the imputation reads (:func:`_imputation_data`): those of
    :data:`_BASE`, the ending (:func:`_ending`) and the covariates. With the others (site,
    exclusion, the derived ones) the imputation of early session 3 at 10M clients held 0.67 GB
    more once the client table was made, and peaked at 4.19 GB making it (2.96 GB without)."""
    return {*_BASE, "end_status", *_covariate_columns(adjustment)}


def _imputation_data(
    table: pd.DataFrame,
    scores: Mapping[str, np.ndarray],
    alliance: str | None,
    k: int,
    adjustment: Adjustment | None,
) -> ImputationData:
    """:func:`imputation_data` from the client table of early session ``k`` and the
    auxiliary scores of every case (:func:`_scores`)."""
    keep = np.ones(len(table), dtype=bool)
    for spec in adjustment.client_level if adjustment else ():
        keep &= table[spec.column].notna().to_numpy()
    base = table if keep.all() else table[keep].reset_index(drop=True)  # no copy of them all
    core = ["outcome_intake", *(["alliance_early"] if alliance else []),
            *(["outcome_early"] if k > 1 else []), "outcome_final"]  # fmt: skip
    for column in core:
        seen = int(base[column].notna().sum())
        if seen < 2:
            raise NotEstimable(f"{column} is observed in {seen} cases: nothing to impute from")
    if not keep.all():
        scores = {name: values[keep] for name, values in scores.items()}
    scores = {name: values for name, values in scores.items() if np.isfinite(values).sum() >= 2}
    variables = [*core, *scores]
    # one copy of the scores, column-major as a frame made from an array copies it (the
    # sampler's sums are rounded as they are in that layout)
    y = np.empty((len(base), len(variables)), order="F")
    for j, values in enumerate([*(base[c].to_numpy(float) for c in core), *scores.values()]):
        y[:, j] = values
    predictors = _ending(base)
    covariates = _covariate_columns(adjustment)
    base = base[[c for c in base.columns if c in _BASE or c in covariates]]
    terms = adjustment.terms(base, "client") if adjustment else []
    named = [c for c in base.columns if c in covariates and c not in predictors]
    frame = pd.concat([predictors, base[named]], axis=1).assign(outcome_final=0.0)
    formula = Formula.parse(" + ".join(["outcome_final ~ 1", *predictors.columns, *terms]))
    fixed = design(formula, frame)
    del frame
    x, names = _identified(fixed.x, fixed.terms, ~np.isnan(y))
    groups = None
    if tidy.has_therapists(base):
        groups = pd.factorize(base["therapist_id"], use_na_sentinel=False)[0]
    if "therapist_id" in base:  # coded once, not by each fit of every completed table
        base = base.assign(therapist_id=base["therapist_id"].astype("category"))
    return ImputationData(base, pd.DataFrame(y, columns=variables, copy=False),
                          pd.DataFrame(x, columns=names, copy=False),
                          groups, int((~keep).sum()))  # fmt: skip


def _pooled_row(model: str, term: str, p: Pooled, method: str, transform: Callable = float,
                **common: object) -> dict[str, object]:  # fmt: skip
    """The tidy row of a pooled estimate, its interval mapped by ``transform``, with the
    :data:`~allianceanalysis.pooling.MI_COLUMNS`."""
    interval = {"ci_low": transform(p.ci_low), "ci_high": transform(p.ci_high)}
    se = {} if transform is not float else {"std_error": float(p.std_error)}
    row = tidy.row(model, term, transform(p.estimate), **se, **interval,
                   p_value=float(p.p_value), df=float(p.df), ci_method=f"rubin_{method}",
                   **common)  # fmt: skip
    mi = (p.m, float(p.fmi), float(p.riv), float(p.relative_efficiency))
    return row | dict(zip(MI_COLUMNS, mi, strict=True))


def _squared(r: float, low: float, high: float) -> tuple[float, float, float]:
    """r² and the square of r's interval (0 at the low end when it spans zero)."""
    ends = sorted([low**2, high**2])
    return r**2, 0.0 if low < 0 < high else ends[0], ends[1]


def _pooled_terms(model: str, term: str, group: pd.DataFrame, terms: set[str],
                  **common: object) -> list[dict[str, object]]:  # fmt: skip
    """One term's pooled rows (module docstring: which rule for which term)."""
    est, se = group["estimate"].to_numpy(float), group["std_error"].to_numpy(float)
    method = str(group["ci_method"].iloc[0])
    if term == "partial_r":
        z_var = 1 / (group["df"].to_numpy(float) - 1)  # df = n - 2 - k; Var(z) = 1/(n - 3 - k)
        p = pool(np.arctanh(est), z_var, float(group["df"].mean()) - 1)
        r, low, high = (float(v) for v in np.tanh([p.estimate, p.ci_low, p.ci_high]))
        square = _squared(r, low, high)
        return [
            _pooled_row(model, term, p, method, np.tanh, **common),
            _pooled_row(model, "r2_alliance", p, method, **common)
            | {"estimate": square[0], "ci_low": square[1], "ci_high": square[2],
               "std_error": np.nan},
        ]  # fmt: skip
    if np.isfinite(se).all():
        p = pool(est, se**2, float(group["df"].mean()) if method.endswith("_t") else np.inf)
        rows = [_pooled_row(model, term, p, method, **common)]
        if f"odds_ratio_{term}" in terms:
            rows.append(_pooled_row(model, f"odds_ratio_{term}", p, method, np.exp, **common))
        return rows
    if term == "r2_alliance" or term.startswith(("odds_ratio_", "loglik")):
        return []  # from partial_r's and the log odds' pooled rows; a log-likelihood is not pooled
    message = f"{common['message']}; the mean of the {len(est)} imputations' estimates (no "
    message += "standard error to pool by Rubin's rules)"
    return [tidy.row(model, term, float(est.mean()), **(common | {"message": message}))
            | {"m": len(est)}]  # fmt: skip


def _identified(
    x: np.ndarray, names: list[str], observed: np.ndarray
) -> tuple[np.ndarray, list[str]]:
    """The predictors whose coefficients every score's observed cases identify: a column
    (other than the intercept) is dropped when, among the cases observing some score, it is a
    combination of the columns before it — as the ending ``dropout`` is for the final outcome
    when every dropout left before it (nothing observed says how dropouts' final outcomes
    differ; under a flat prior the sampler would wander)."""
    grams = np.zeros((observed.shape[1], x.shape[1], x.shape[1]))
    for start in range(0, len(x), _ROWS):  # copies of a block of rows at a time
        rows, seen = x[start : start + _ROWS], observed[start : start + _ROWS]
        for gram, cases in zip(grams, seen.T, strict=True):
            chosen = rows[cases]
            gram += chosen.T @ chosen
    keep = [0]
    for j in range(1, x.shape[1]):
        block = np.ix_([*keep, j], [*keep, j])
        if all(_full_rank(gram[block]) for gram in grams):
            keep.append(j)
    if len(keep) == x.shape[1]:
        return x, names
    return x[:, keep], [names[j] for j in keep]


_ROWS = 1 << 20
"""Rows of the predictors :func:`_identified` copies at a time (their copies bounded)."""


def _full_rank(gram: np.ndarray) -> bool:
    """Whether a cross-product matrix is of full rank: the smallest eigenvalue of its
    correlation form above 1e-10 (an exact dependence leaves rounding error, ~1e-16)."""
    scale = np.sqrt(np.diag(gram))
    if (scale == 0).any():
        return False
    return bool(np.linalg.eigvalsh(gram / np.outer(scale, scale))[0] > 1e-10)


def _pool_frames(model: str, frames: list[pd.DataFrame], note: str) -> pd.DataFrame:
    """Pool one model's tidy rows from each imputation (a term must be in every one)."""
    stacked = pd.concat(frames, ignore_index=True)
    terms = set(stacked["term"])
    rows = []
    for term, group in stacked.groupby("term", sort=False):
        if len(group) == len(frames):
            common = {"n_obs": int(group["n_obs"].max()), "n_groups": group["n_groups"].max(),
                      "converged": bool(group["converged"].all()), "message": note}  # fmt: skip
            rows += _pooled_terms(model, str(term), group, terms, **common)
    table = tidy.frame(rows)
    table[MI_COLUMNS] = pd.DataFrame(rows, columns=MI_COLUMNS)
    return table.astype({"m": "Int64"})


def _mi_reason(model: str, reason: str) -> pd.DataFrame:
    table = tidy.reason_frame(model, reason)
    table[MI_COLUMNS] = [pd.NA, np.nan, np.nan, np.nan]
    return table.astype({"m": "Int64"})


def _model_fits(
    alliance: str | None, seed: int, engine: str, adjustment: Adjustment | None
) -> dict[str, Callable[[pd.DataFrame], pd.DataFrame]]:
    """Each pooled model's fit to one completed client table (at the configured k)."""
    fits: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
        "therapist_icc": lambda t: therapist_icc(t, engine=engine, adjustment=adjustment),
    }
    if alliance is not None:
        fits |= {
            "alliance_outcome": lambda t: alliance_outcome(
                t, bootstrap=0, seed=seed, engine=engine, adjustment=adjustment),
            "alliance_disaggregated": lambda t: alliance_disaggregated(
                t, engine=engine, adjustment=adjustment),
            "dropout": dropout,
        }  # fmt: skip
    return fits


def multiple_imputation(
    sessions: pd.DataFrame,
    outcome: str = "ors",
    alliance: str | None = "srs",
    early_session: int = 3,
    *,
    m: int = DEFAULT_M,
    seed: int = 0,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
    burn_in: int = BURN_IN,
    between: int = BETWEEN,
    early_sessions: Sequence[int] = EARLY_SESSIONS,
    seen: Callable[[int, pd.DataFrame], None] | None = None,
    only: Collection[int] | None = None,
) -> tuple[pd.DataFrame, ImputedClients | None]:
    """The client-level catalogue after multiple imputation: models ``<model>_mi``.

    Parameters
    ----------
    sessions : pandas.DataFrame or ShardedTable
        Validated sessions, whole or in shards (read one at a time, :func:`client_data`).
    outcome, alliance : str
        The score columns.
    early_session : int
        The configured k (``alliance_outcome``, ``alliance_disaggregated``,
        ``therapist_icc``, ``dropout``); ``early_alliance_k<k>_mi`` for k in
        :data:`EARLY_SESSIONS` each have their own imputations.
    m : int
        Imputations per early session (at least 2).
    seed : int
        The seed; each early session's sampler gets its own stream from it.
    engine : str
        The mixed-model engine of the fits.
    adjustment : Adjustment, optional
        Covariates of the models and of the imputation model.
    burn_in, between : int
        The sampler's iterations (:mod:`allianceanalysis.imputation`).
    early_sessions : sequence of int
        The k of the ``early_alliance_k<k>_mi`` models (empty: none).
    seen : callable, optional
        Called with each early session k and its client table (every case, before
        imputation; the columns the imputation reads: those of the case, the therapist, the
        ending, the scores and the covariates), as they are made: what else is wanted of them
        (the missingness pattern) needs no second pass over the sessions.
    only : collection of int, optional
        Impute these early sessions only (of :func:`imputed_sessions`; None: all). Each
        keeps the random stream it has when all are imputed, so the rows of parts made apart
        (one job per early session), put together by :func:`combined_rows`, are the rows of
        the whole.

    Returns
    -------
    (pandas.DataFrame, ImputedClients or None)
        Tidy rows with :data:`~allianceanalysis.pooling.MI_COLUMNS`; and the imputations at the
        configured k (for :func:`tipping_point`), None when they could not be made.

    Raises
    ------
    ConfigError
        A covariate the data lack or cannot support (checked as the sessions are read).

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=300, n_therapists=15, seed=3).sessions
    >>> table, _ = multiple_imputation(s, m=3, seed=1, burn_in=20, between=5)
    >>> sorted(table["model"].unique())[:2]
    ['alliance_disaggregated_mi', 'alliance_outcome_mi']
    """
    if m < 2:
        raise ValueError(f"missing_data.m must be at least 2 (Rubin's rules need two); got {m}")
    early_sessions = tuple(early_sessions) if alliance is not None else ()
    ks = imputed_sessions(early_session, alliance, early_sessions)
    if only is not None and set(only) - set(ks):
        raise ValueError(f"early sessions {sorted(set(only) - set(ks))} are not imputed here "
                         f"(the early sessions imputed are {ks})")  # fmt: skip
    streams = dict(zip(ks, np.random.SeedSequence(seed).spawn(len(ks)), strict=True))
    parts: dict[int, list[pd.DataFrame]] = {}
    main: ImputedClients | str = ""
    # the configured k last: its imputations, kept for the tipping point, are not held while
    # the other ks are imputed (each k keeps its own stream, so the draws are the same)
    chosen = [k for k in ks if only is None or k in only]
    last = sorted(chosen, key=lambda k: k == early_session)
    tables = client_data(sessions, outcome, alliance, tuple(last), adjustment,
                         _imputation_columns(adjustment))  # fmt: skip
    for k, table, scores in tables:
        if seen is not None:
            seen(k, table)
        stream = int(streams[k].generate_state(1)[0])
        population = table
        try:
            data = _imputation_data(table, scores, alliance, k, adjustment)
            population = data.base  # the whole table is not held while the sampler runs
            del table, scores
            release_memory()
            imputed: ImputedClients | str = _imputed(data, k, m=m, seed=stream,
                                                     burn_in=burn_in, between=between)  # fmt: skip
            del data
        except NotEstimable as exc:
            imputed = f"the imputation model cannot be estimated: {exc}"
        fits = _model_fits(alliance, seed, engine, adjustment) if k == early_session else {}
        if k in early_sessions:
            fits[f"early_alliance_k{k}"] = partial(early_alliance_at, k=k, engine=engine,
                                                   adjustment=adjustment)  # fmt: skip
        parts[k] = _pooled_or_reasons(fits, imputed, population, alliance)
        if k == early_session:
            main = imputed
        del imputed, population
    table = combined_rows([pd.concat(parts[k], ignore_index=True) for k in chosen])
    return table, main if isinstance(main, ImputedClients) else None


def imputed_sessions(
    early_session: int, alliance: str | None, early_sessions: Sequence[int] = EARLY_SESSIONS
) -> list[int]:
    """The early sessions :func:`multiple_imputation` imputes, each with its own sampler:
    the configured one, and those of ``early_alliance_k<k>_mi`` when there is an alliance.

    Examples
    --------
    >>> imputed_sessions(3, "srs"), imputed_sessions(6, "srs"), imputed_sessions(3, None)
    ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6], [3])
    """
    return sorted({early_session, *(early_sessions if alliance is not None else ())})


def combined_rows(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """The rows of :func:`multiple_imputation`'s parts (each early session's, in the order of
    :func:`imputed_sessions`) as one table, ordered by model as :data:`MI_MODELS` (every
    ``early_alliance_k<k>_mi`` in the place of ``early_alliance``)."""
    order = {f"{name}_mi": i for i, name in enumerate(MI_MODELS)}
    table = pd.concat(parts, ignore_index=True)
    rank = table["model"].map(lambda name: order.get(name, order["early_alliance_mi"]))
    return table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def _pooled_or_reasons(
    fits: Mapping[str, Callable[[pd.DataFrame], pd.DataFrame]],
    imputed: ImputedClients | str,
    population: pd.DataFrame,
    alliance: str | None,
) -> list[pd.DataFrame]:
    """Each model pooled over ``imputed``, or a row saying what the data lack for it (the
    catalogue entry's needs, checked on the population's cases)."""
    needs = {name: CATALOGUE["early_alliance" if name.startswith("early") else name].needs
             for name in fits}  # fmt: skip
    reasons = {name: tidy.unmet_need(needs[name], population, alliance) for name in fits}
    fitted = _pooled_models({n: f for n, f in fits.items() if reasons[n] is None}, imputed)
    return [_mi_reason(f"{name}_mi", reason) if reason else fitted[name]
            for name, reason in reasons.items()]  # fmt: skip


def _note(imputed: ImputedClients) -> str:
    parts = [f"{imputed.m} imputations of {len(imputed.base)} cases (two-level joint model, "
             f"early session {imputed.k})"]  # fmt: skip
    if imputed.excluded:
        parts.append(f"{imputed.excluded} cases missing a covariate left out")
    if not tidy.has_therapists(imputed.base):
        parts.append(NO_THERAPIST_LEVEL)
    return "; ".join(parts)


def _pooled_models(
    fits: Mapping[str, Callable[[pd.DataFrame], pd.DataFrame]],
    imputed: ImputedClients | str,
) -> dict[str, pd.DataFrame]:
    """Each model fitted to every completed table (made once per imputation) and pooled
    (model ``<name>_mi``); a reason row for one the data cannot support (``imputed`` is then
    the reason, or a fit raised :class:`~allianceanalysis.errors.NotEstimable`)."""
    if isinstance(imputed, str):
        return {name: _mi_reason(f"{name}_mi", imputed) for name in fits}
    rows: dict[str, list[pd.DataFrame]] = {name: [] for name in fits}
    reasons: dict[str, str] = {}
    for j in range(imputed.m):  # one completed table in memory at a time
        table = imputed.completed(j)
        for name, fit in fits.items():
            if name in reasons:
                continue
            try:
                frame = fit(table)
            except NotEstimable as exc:
                reasons[name] = str(exc)
                continue
            if (frame["term"] == "not_fitted").any():
                message = str(frame.loc[frame["term"] == "not_fitted", "message"].iloc[0])
                reasons[name] = message.removeprefix("not computed: ")
            rows[name].append(frame)
        del table  # before the next is made
    return {name: _mi_reason(f"{name}_mi", reasons[name]) if name in reasons
            else _pool_frames(f"{name}_mi", rows[name], _note(imputed))
            for name in fits}  # fmt: skip


def tipping_shifts(outcome: str, shifts: Sequence[float] | None = None) -> np.ndarray:
    """The delta grid in the outcome instrument's points: ``shifts`` as given (signed: a
    negative delta lowers the score), or by default 0 to :data:`TIPPING_SHARE` of the
    instrument's range in :data:`TIPPING_STEPS` steps towards a worse outcome (down for an
    instrument where higher is better, up for a symptom scale).

    Examples
    --------
    >>> tipping_shifts("ors").tolist()[:3]
    [0.0, -1.0, -2.0]
    >>> tipping_shifts("phq9").tolist()[-1]
    6.75
    >>> tipping_shifts("ors", [0, 3]).tolist()
    [0.0, 3.0]
    """
    if shifts is not None:
        return np.asarray(shifts, dtype=float)
    inst = get_instrument(outcome)
    worse = -1.0 if inst.higher_is_better else 1.0
    span = TIPPING_SHARE * (inst.total_max - inst.total_min)
    return worse * np.linspace(0.0, span, TIPPING_STEPS) + 0.0


def tipping_point(
    imputed: ImputedClients,
    outcome: str = "ors",
    shifts: Sequence[float] | None = None,
    *,
    engine: str = DEFAULT_ENGINE,
    adjustment: Adjustment | None = None,
    level: float = 0.05,
) -> pd.DataFrame:
    """How far from missing at random before the alliance-outcome association changes?

    For each delta of :func:`tipping_shifts`, the final outcomes imputed for dropouts are
    shifted by delta (by default towards a worse outcome), ``alliance_outcome``'s fixed part
    is fitted to each completed table and its ``alliance_early`` coefficient pooled. Rows
    ``alliance_early`` (one per delta, column ``delta``), then ``tipping_delta_significance``
    (the first delta at which the pooled p-value reaches ``level``) and ``tipping_delta_sign``
    (the first at which the estimate's sign differs from that at delta 0): their estimate is
    the delta, missing with a message when the grid does not reach it.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=300, n_therapists=15, seed=3).sessions
    >>> imp = impute_clients(s, m=3, seed=1, burn_in=20, between=5)
    >>> t = tipping_point(imp, shifts=[0, -5])
    >>> t["delta"].tolist()[:2]
    [0.0, -5.0]
    """
    model = "tipping_point"
    deltas = tipping_shifts(outcome, shifts)
    shifted = imputed.was_missing("outcome_final") & imputed.base["dropout"].eq(1.0).to_numpy()
    base_formula = "outcome_final ~ outcome_intake + alliance_early + (1 | therapist_id)"
    formula = adjusted(base_formula, imputed.base, adjustment)
    note = f"{_note(imputed)}; {int(shifted.sum())} dropouts' imputed final outcomes shifted"
    fits: list[list[pd.DataFrame]] = [[] for _ in deltas]
    for j in range(imputed.m):  # one completed table in memory at a time
        table = imputed.completed(j)
        final = table["outcome_final"].to_numpy(float)
        responses = (final + delta * shifted for delta in deltas)  # one held at a time
        for at, fit in zip(fits, fit_lmm_each(formula, table, responses, engine), strict=True):
            rows = tidy.frame(tidy_fit(model, fit))
            at.append(rows[rows["term"] == "alliance_early"])
        del table, final, responses  # before the next table is made
    frames = [_pool_frames(model, at, note).assign(delta=delta)
              for at, delta in zip(fits, deltas, strict=True)]  # fmt: skip
    table = pd.concat(frames, ignore_index=True)
    return pd.concat([table, _tipping_rows(table, level, note)], ignore_index=True)


def _tipping_rows(table: pd.DataFrame, level: float, note: str) -> pd.DataFrame:
    """The first delta of lost significance and of a changed sign."""
    sign0 = np.sign(table["estimate"].iloc[0])
    significant0 = table["p_value"].iloc[0] < level
    checks = {
        "tipping_delta_significance": (table["p_value"] >= level) if significant0 else None,
        "tipping_delta_sign": np.sign(table["estimate"]) != sign0,
    }
    rows = []
    for term, hit in checks.items():
        if hit is None:
            message = f"not significant at delta 0 (p = {table['p_value'].iloc[0]:.3g})"
            rows.append(tidy.row("tipping_point", term, np.nan, message=message))
        elif hit.any():
            delta = float(table.loc[hit.idxmax(), "delta"])
            rows.append(tidy.row("tipping_point", term, delta, message=note))
        else:
            last = float(table["delta"].iloc[-1])
            message = f"not reached within the grid (to delta {last:g})"
            rows.append(tidy.row("tipping_point", term, np.nan, message=message))
    out = tidy.frame(rows)
    out[MI_COLUMNS] = [pd.NA, np.nan, np.nan, np.nan]
    return out.astype({"m": "Int64"})


def missingness(clients: pd.DataFrame, alliance: str | None = "srs") -> pd.DataFrame:
    """Which pieces of the client-level models are missing how often, by therapist size band.

    One row per piece (``outcome_intake``, ``alliance_early``, ``outcome_early``,
    ``outcome_final`` and ``any``: a case missing one that ``alliance_outcome`` needs, so left
    out of the complete-case models) and band of
    :data:`SIZE_BANDS` (and ``all``): ``cases``, ``missing`` and ``share``. Counts are raw
    here; published copies go through :mod:`allianceanalysis.disclosure`.

    Examples
    --------
    >>> c = pd.DataFrame({"therapist_id": ["a"] * 3, "outcome_intake": [1.0, None, 2.0],
    ...                   "alliance_early": [1.0, 1.0, None], "outcome_early": [1.0] * 3,
    ...                   "outcome_final": [1.0, None, None]})
    >>> missingness(c).query("band == 'all'")[["piece", "missing"]].values.tolist()[-1]
    ['any', 2]
    """
    pieces = ["outcome_intake", *(["alliance_early"] if alliance else []), "outcome_early",
              "outcome_final"]  # fmt: skip
    missing = clients[pieces].isna()
    needed = ["outcome_intake", *(["alliance_early"] if alliance else []), "outcome_final"]
    missing["any"] = missing[needed].any(axis=1)
    size = clients.groupby("therapist_id", dropna=False)["therapist_id"].transform("size")
    size = size.fillna(len(clients)).to_numpy()
    bands = np.full(len(clients), "", dtype=object)
    for low, high, label in SIZE_BANDS:
        bands[(size >= low) & (size <= high)] = label
    rows = []
    for label in [*(b[2] for b in SIZE_BANDS), "all"]:
        chosen = np.ones(len(clients), dtype=bool) if label == "all" else bands == label
        if not chosen.any():
            continue
        for piece in missing.columns:
            count = int(missing.loc[chosen, piece].sum())
            rows.append({"piece": piece, "band": label, "cases": int(chosen.sum()),
                         "missing": count, "share": count / int(chosen.sum())})  # fmt: skip
    return pd.DataFrame(rows)


def missingness_rows(table: pd.DataFrame, policy: DisclosurePolicy | None = None) -> pd.DataFrame:
    """:func:`missingness` as tidy rows (model ``missingness``, term ``missing_<piece>`` for all
    cases and ``missing_<piece>_<band>`` per therapist size band: the share missing with its
    Wilson interval, ``n_obs`` the band's cases), fit to publish under ``policy``.

    A row resting on a small count is suppressed (:func:`~allianceanalysis.disclosure.
    suppress_small_rows`); the bands of a piece add up to its row for all cases, so when one of
    them is suppressed every band of that piece is (a single hidden one could be worked out).

    Examples
    --------
    >>> c = pd.DataFrame({"therapist_id": ["a"] * 20, "outcome_intake": [1.0] * 20,
    ...                   "alliance_early": [1.0] * 18 + [None] * 2, "outcome_early": 1.0,
    ...                   "outcome_final": 1.0})
    >>> rows = missingness_rows(missingness(c), DisclosurePolicy(5))
    >>> rows.set_index("term").loc["missing_alliance_early", "message"][:10]
    'suppressed'
    """
    rows = []
    for record in table.itertuples(index=False):
        band = "" if record.band == "all" else "_" + record.band.split(" ")[0].replace("-", "_")
        low, high = wilson_interval(record.missing, record.cases)
        where = "all cases" if record.band == "all" else f"therapists with {record.band}"
        rows.append(tidy.row("missingness", f"missing_{record.piece}{band}", record.share,
                             ci_low=low, ci_high=high, n_obs=record.cases, ci_method="wilson",
                             message=f"{record.piece} missing, {where}"))  # fmt: skip
    out = tidy.frame(rows)
    if policy is None:
        return out
    out = suppress_small_rows(out, policy)
    hidden = out["message"].str.startswith("suppressed")
    pieces = table["piece"].reset_index(drop=True)
    banded = (table["band"] != "all").reset_index(drop=True)
    spill = banded & pieces.isin(pieces[hidden & banded])
    numbers = ["estimate", "std_error", "ci_low", "ci_high", "p_value"]
    out.loc[spill & ~hidden, numbers] = np.nan
    out.loc[spill & ~hidden, "n_obs"] = pd.NA
    out.loc[spill & ~hidden, "message"] = (
        "suppressed: another band of this piece rests on a small count, and the bands add up "
        "to all cases"
    )
    return out


HEADLINE_CHANGE = 0.2
"""How much the imputed alliance-outcome coefficient may differ from the complete-case one,
as a share of it, before the annual report says that missing data could change the headline.
There is no published standard for this; a fifth is this project's choice, a change a reader
of the report would notice (the meta-analytic r = .28 becoming .22 or .34)."""


def headline_changes(
    complete: pd.Series, imputed: pd.Series, tipping: pd.DataFrame | None = None,
    level: float = 0.05,
) -> list[str]:  # fmt: skip
    """Why missing data could change the headline (the alliance-outcome association), in plain
    words; empty when it could not. ``complete`` and ``imputed`` are the ``alliance_early``
    rows of ``alliance_outcome`` and ``alliance_outcome_mi``; ``tipping`` the tipping-point
    table. The rule: the two differ in sign or in significance at ``level``, or by at least
    :data:`HEADLINE_CHANGE` of the complete-case estimate; or the tipping-point grid reaches a
    shift at which the association loses significance or changes sign.

    Examples
    --------
    >>> cc = pd.Series({"estimate": 0.5, "p_value": 0.01})
    >>> headline_changes(cc, pd.Series({"estimate": 0.35, "p_value": 0.02}))
    ['the estimate after imputation is 30% smaller']
    >>> headline_changes(cc, pd.Series({"estimate": 0.48, "p_value": 0.02}))
    []
    """
    reasons = []
    if np.sign(complete["estimate"]) != np.sign(imputed["estimate"]):
        reasons.append("the estimate after imputation has the opposite sign")
    elif (complete["p_value"] < level) != (imputed["p_value"] < level):
        clear = "clear" if imputed["p_value"] < level else "no longer clear"
        reasons.append(f"after imputation the association is {clear}")
    change = (imputed["estimate"] - complete["estimate"]) / abs(complete["estimate"])
    if abs(change) >= HEADLINE_CHANGE:
        size = "larger" if change > 0 else "smaller"
        reasons.append(f"the estimate after imputation is {abs(change):.0%} {size}")
    if tipping is not None:
        for term, what in (("tipping_delta_significance", "loses significance"),
                           ("tipping_delta_sign", "changes sign")):  # fmt: skip
            row = tipping[tipping["term"] == term]
            if len(row) and np.isfinite(row["estimate"].iloc[0]):
                reasons.append(f"{what} at a shift of {row['estimate'].iloc[0]:g} points")
    return reasons
