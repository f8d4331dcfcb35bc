"""Covariates and moderators: the researcher's own adjustment of the catalogue's models.

The config's ``covariates:`` and ``moderators:`` (global, or a dataset's own, which replaces
the global list) name columns of the session data, the extra columns the loader keeps:

.. code-block:: yaml

    covariates:
      - age_band                                  # type inferred: text is a factor
      - {column: diagnosis, type: categorical}
      - {column: sessions_planned, type: numeric, summary: first}
      - {column: weekly_hours, level: session}    # a session-level covariate
    moderators: [treatment]

Covariates
    A client-level covariate (the default ``level``) is one value per case: it must be
    constant within a case unless a ``summary`` rule is declared (``first`` or ``last``
    observed value, or the ``mean`` of a numeric one). It enters every client-level model
    of the catalogue (:data:`CLIENT_MODELS`) and, constant within the case, the session-level
    ones (:data:`SESSION_MODELS`); a session-level covariate enters the session-level models
    only, at the earlier session of each pair. Text columns are factors (treatment contrasts,
    the first level in sorted order the reference); ``type: categorical`` makes a numeric
    column a factor; ``type: numeric`` insists on numbers. Cases with a missing client-level
    covariate are excluded from the client-level models with the reason ``no <column>
    (covariate)`` in the accounting (``derived/accounting.csv``).
Moderators
    Each moderator's interaction with the alliance in ``alliance_outcome``,
    ``early_alliance`` (at the configured early session) and ``alliance_next_session``
    (:mod:`allianceanalysis.moderation`); a moderator is specified as a covariate is.

Bad input is refused before any model is fitted, by a plain error naming the config key and
the column (:func:`Adjustment.check`): a column the data do not have, one that is all
missing or constant, a factor with more levels than the cases allow (fewer than
:data:`MIN_CASES_PER_LEVEL` cases per level on average), a client-level covariate that varies
within a case without a summary rule, a ``mean`` of text, text declared numeric, or a column
name a formula cannot hold.

Examples
--------
>>> adjustment = Adjustment.from_config({"covariates": ["age_band", {"column": "dose"}],
...                                      "moderators": ["treatment"]})
>>> [c.column for c in adjustment.covariates], adjustment.moderators[0].column
(['age_band', 'dose'], 'treatment')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError

__all__ = [
    "CLIENT_MODELS",
    "KINDS",
    "LEVELS",
    "MIN_CASES_PER_LEVEL",
    "SESSION_MODELS",
    "SUMMARIES",
    "Adjustment",
    "Covariate",
    "adjusted",
    "case_values",
]

KINDS = ("numeric", "categorical")
LEVELS = ("client", "session")
SUMMARIES = ("first", "last", "mean")
MIN_CASES_PER_LEVEL = 10
"""A factor needs at least this many cases per level on average, the rule of thumb of ten
observations per estimated coefficient (Peduzzi et al., 1996; Harrell, 2015, section 4.4)."""

CLIENT_MODELS = (
    "alliance_outcome",
    "early_alliance",
    "alliance_disaggregated",
    "alliance_components",
    "therapist_icc",
    "therapist_effects",
    "alliance_disaggregated_latent",
)
"""The catalogue's client-level models that take the covariates (case-mix adjustment)."""
SESSION_MODELS = (
    "alliance_next_session",
    "alliance_next_session_nested",
    "alliance_next_session_detrended",
)
"""The catalogue's session-level models that take them."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


@dataclass(frozen=True)
class Covariate:
    """A covariate or moderator column and how to read it.

    Attributes
    ----------
    column : str
    kind : {"numeric", "categorical"} or None
        None infers it: text (and logical) columns are factors, numbers are numeric.
    level : {"client", "session"}
    summary : {"first", "last", "mean"} or None
        How a client-level value that varies within a case becomes the case's value (None: it
        must not vary).
    """

    column: str
    kind: str | None = None
    level: str = "client"
    summary: str | None = None

    def categorical(self, data: pd.DataFrame) -> bool:
        """Whether the column enters as a factor in ``data``."""
        if self.kind is not None:
            return self.kind == "categorical"
        values = data[self.column]
        return not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)

    def term(self, data: pd.DataFrame) -> str:
        """The covariate's term in a formula: the column, or ``factor(column)`` for a numeric
        column declared categorical."""
        numeric = pd.api.types.is_numeric_dtype(data[self.column])
        return f"factor({self.column})" if self.categorical(data) and numeric else self.column


def adjusted(
    formula: str,
    data: pd.DataFrame,
    adjustment: Adjustment | None,
    level: str = "client",
    extra: Sequence[str] = (),
) -> str:
    """``formula`` with the covariates of ``adjustment`` (:meth:`Adjustment.for_level`) and
    any ``extra`` terms added to its fixed part, in that order; unchanged without either.

    Examples
    --------
    >>> data = pd.DataFrame({"age_band": ["18-25", "26-35"]})
    >>> adjusted("y ~ x + (1 | g)", data, Adjustment.from_config({"covariates": ["age_band"]}))
    'y ~ x + age_band + (1 | g)'
    """
    from .formula import Formula

    terms = [*(adjustment.terms(data, level) if adjustment else []), *extra]
    if not terms:
        return formula
    parsed = Formula.parse(formula)
    return parsed.with_fixed(" + ".join([parsed.fixed, *terms])).lme4()


def _covariates(entries: Any, key: str) -> tuple[tuple[Covariate, ...], list[str]]:
    """Covariates from a config list (strings or mappings), and the problems, naming ``key``."""
    found, problems = [], []
    for i, entry in enumerate(entries or []):
        where = f"{key}[{i}]"
        spec = {"column": entry} if isinstance(entry, str) else dict(entry)
        column = spec.get("column")
        if not isinstance(column, str) or not _NAME.fullmatch(column):
            problems.append(
                f"{where}: {column!r} is not a column name a formula can hold (letters, digits, "
                "'_' and '.', starting with a letter); rename the column in the file"
            )
            continue
        kind, level, summary = spec.get("type"), spec.get("level", "client"), spec.get("summary")
        for name, value, allowed in (("type", kind, KINDS), ("level", level, LEVELS),
                                     ("summary", summary, SUMMARIES)):  # fmt: skip
            if value is not None and value not in allowed:
                problems.append(f"{where}.{name}: {value!r} is not one of {', '.join(allowed)}")
        if summary == "mean" and kind == "categorical":
            problems.append(f"{where}: the mean of a categorical column is not defined")
        found.append(Covariate(column, kind, level, summary))
    columns = [c.column for c in found]
    problems += [f"{key}: {c!r} is listed twice" for c in dict.fromkeys(columns)
                 if columns.count(c) > 1]  # fmt: skip
    return tuple(found), problems


@dataclass(frozen=True)
class Adjustment:
    """The covariates and moderators of a dataset's models.

    Attributes
    ----------
    covariates, moderators : tuple of Covariate
    source : str
        Where they were configured (``covariates`` or ``datasets.<name>.covariates``), for
        messages.
    """

    covariates: tuple[Covariate, ...] = ()
    moderators: tuple[Covariate, ...] = ()
    source: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], dataset: str | None = None) -> Adjustment:
        """The adjustment of ``dataset`` (its own lists replace the global ones).

        Raises
        ------
        ConfigError
            Naming the key of every problem.
        """
        entry = (config.get("datasets") or {}).get(dataset, {}) if dataset else {}
        lists, sources, problems = {}, {}, []
        for role in ("covariates", "moderators"):
            own = role in entry
            key = f"datasets.{dataset}.{role}" if own else role
            lists[role], found = _covariates(entry[role] if own else config.get(role), key)
            sources[role] = key
            problems += found
        overlap = {c.column for c in lists["covariates"]} & {c.column for c in lists["moderators"]}
        problems += [f"{sources['moderators']}: {c!r} is also a covariate (a moderator enters "
                     "its models as a main effect already)" for c in sorted(overlap)]  # fmt: skip
        if problems:
            raise ConfigError(problems)
        return cls(lists["covariates"], lists["moderators"], sources)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | None) -> Adjustment:
        """From :meth:`as_dict` (the workflow passes it as a job parameter)."""
        if not spec:
            return cls()
        return cls(
            tuple(Covariate(**c) for c in spec.get("covariates", ())),
            tuple(Covariate(**c) for c in spec.get("moderators", ())),
            dict(spec.get("source", {})),
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain data: a job parameter, so a change reruns exactly what depends on it."""
        return {
            "covariates": [asdict(c) for c in self.covariates],
            "moderators": [asdict(c) for c in self.moderators],
            "source": dict(self.source),
        }

    def __bool__(self) -> bool:
        return bool(self.covariates or self.moderators)

    @property
    def client_level(self) -> tuple[Covariate, ...]:
        """Covariates and moderators with one value per case."""
        return tuple(c for c in (*self.covariates, *self.moderators) if c.level == "client")

    @property
    def session_level(self) -> tuple[Covariate, ...]:
        return tuple(c for c in (*self.covariates, *self.moderators) if c.level == "session")

    def for_level(self, level: str = "client") -> tuple[Covariate, ...]:
        """The covariates a model at ``level`` takes: a client-level model the client-level
        ones, a session-level model all of them."""
        return tuple(c for c in self.covariates if level == "session" or c.level == "client")

    def terms(self, data: pd.DataFrame, level: str = "client") -> list[str]:
        """The formula terms of :meth:`for_level`'s covariates."""
        return [c.term(data) for c in self.for_level(level)]

    def check(self, sessions: pd.DataFrame, keys: Sequence[str]) -> None:
        """Refuse covariates and moderators the data cannot support, before any fitting.

        Parameters
        ----------
        sessions : pandas.DataFrame
            The validated sessions.
        keys : list of str
            The columns that identify a case (:func:`allianceanalysis.derive.case_keys`).

        Raises
        ------
        ConfigError
            One line per problem, naming the config key and the column.
        """
        self.check_facts([self.facts(sessions, keys)])

    def facts(self, sessions: pd.DataFrame, keys: Sequence[str]) -> dict[str, Any]:
        """What :meth:`check` decides from, for validated sessions or one shard of them (plain
        data, merged over shards by :meth:`check_facts`): the cases, and per column whether
        it is present, its observed values, its type, its levels (as many as a check needs)
        and the cases in which it varies."""
        n_cases = int(sessions[list(keys)].drop_duplicates().shape[0]) if len(sessions) else 0
        columns = {}
        for spec in (*self.covariates, *self.moderators):
            columns[spec.column] = _facts(spec, sessions, keys, n_cases)
        return {"cases": n_cases, "columns": columns}

    def check_facts(self, facts: Sequence[Mapping[str, Any]], *, partial: bool = False) -> None:
        """:meth:`check` from the :meth:`facts` of the whole data or of each of its shards
        (a case lies in one shard): the same problems, in the same words. With ``partial``
        (the facts of some shards only), only the problems that hold for the whole data when
        they hold for a part: a missing column, text where a number is needed.

        Raises
        ------
        ConfigError
            One line per problem, naming the config key and the column.
        """
        n_cases = sum(f["cases"] for f in facts)
        problems = []
        for role in ("covariates", "moderators"):
            for spec in getattr(self, role):
                problem = _problem(spec, [f["columns"][spec.column] for f in facts], n_cases,
                                   partial)  # fmt: skip
                if problem:
                    problems.append(f"{self.source.get(role, role)}: {problem}")
        if problems:
            raise ConfigError(problems)


LEVELS_KEPT = 100_000
"""The distinct values of a column the check keeps per shard: more than any factor can have
(a factor needs :data:`MIN_CASES_PER_LEVEL` cases per level)."""


def _facts(spec: Covariate, sessions: pd.DataFrame, keys: Sequence[str], n_cases: int) -> dict:
    column = spec.column
    if column not in sessions:
        return {"present": False}
    values = sessions[column]
    observed = values.dropna()
    rows = (sessions["source_row"] if "source_row" in sessions
            else pd.Series(np.arange(len(values)), index=values.index))  # fmt: skip
    first = observed.index[0] if len(observed) else None
    varying = 0
    if spec.level == "client" and spec.summary is None:
        pairs = pd.DataFrame({"k": _case_codes(sessions, keys), "v": values}).dropna()
        distinct = pairs.drop_duplicates()["k"]
        varying = int(distinct[distinct.duplicated()].nunique())
    levels = pd.unique(observed)[: LEVELS_KEPT + 1]
    return {
        "present": True,
        "observed": len(observed),
        "numeric": bool(pd.api.types.is_numeric_dtype(values)
                        and not pd.api.types.is_bool_dtype(values)),
        "categorical": bool(spec.categorical(sessions)),
        "first": None if first is None else [int(rows.loc[first]), _plain(observed.loc[first])],
        "levels": [_plain(v) for v in levels],
        "varying": varying,
    }  # fmt: skip


def _plain(value: object) -> object:
    """A value as JSON keeps it (numpy scalars as Python numbers)."""
    return value.item() if hasattr(value, "item") else value


def _problem(spec: Covariate, facts: list[dict], n_cases: int, partial: bool = False) -> str:
    """What makes ``spec`` unusable on these data (the facts of each piece; ``partial``: of
    some pieces, so only what holds for the whole), or ""."""
    column = spec.column
    if not all(f["present"] for f in facts):
        return f"the data have no column {column!r}"
    seen = [f for f in facts if f["observed"]]
    numeric = all(f["numeric"] for f in seen)
    if seen and spec.kind == "numeric" and not numeric:
        example = min(f["first"] for f in seen if not f["numeric"])[1]
        return f"the column {column!r} is declared numeric but holds text (e.g. {example!r})"
    if seen and spec.summary == "mean" and not numeric:
        return f"the column {column!r} holds text: its mean is not defined (use first or last)"
    if partial:
        return ""
    if not seen:
        return f"the column {column!r} is missing in every row"
    example = min(f["first"] for f in seen)[1]
    distinct = len({level for f in seen for level in f["levels"]})
    if distinct < 2:
        return f"the column {column!r} is constant ({example!r}): it cannot be estimated"
    if any(f["categorical"] for f in facts) and distinct * MIN_CASES_PER_LEVEL > n_cases:
        return (
            f"the column {column!r} has {distinct} levels for {n_cases} cases: a factor needs "
            f"at least {MIN_CASES_PER_LEVEL} cases per level on average"
        )
    varying = sum(f["varying"] for f in facts)
    if varying:
        return (
            f"the column {column!r} varies within {varying} cases: declare "
            "summary: first, last or mean, or level: session"
        )
    return ""


def _case_codes(sessions: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    from .derive import key_codes

    return key_codes(sessions, list(keys))


def case_values(ordered: Any, spec: Covariate) -> pd.Series:
    """One value of a client-level covariate per case (rows of a
    :class:`~allianceanalysis.derive.CaseOrder`), by its summary rule (``first`` when
    none: the value is constant within the case)."""
    observed = ordered.frame[spec.column].notna().to_numpy()
    if spec.summary == "mean":
        return pd.Series(ordered.mean(spec.column)[ordered.first], name=spec.column)
    rows = ordered.last_where(observed) if spec.summary == "last" else ordered.first_where(observed)
    return ordered.take(spec.column, rows)
