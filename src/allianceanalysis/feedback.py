"""Did feedback help? Outcome, alliance and dropout of cases seen with and without routine
feedback (the ``condition`` column: ``feedback`` or ``none``), and what the design can support.

A case's condition is that of its first session. Three models, each with a random intercept
per therapist (:func:`allianceanalysis.engine.fit_lmm` for the two linear ones,
:func:`allianceanalysis.models.therapist_logit` for dropout):

- ``feedback_outcome``: ``outcome_final ~ outcome_intake + feedback + (1 | therapist_id)``, cases
  with an intake outcome and a later one (the last observed);
- ``feedback_alliance``: ``alliance_early ~ feedback + (1 | therapist_id)``, the alliance at the
  early session k;
- ``feedback_dropout``: ``glmer(dropout ~ feedback + (1 | therapist_id), binomial)``, cases
  with a known ending.

How strong a causal reading the comparison allows depends on how the conditions were assigned,
which the data partly show (:func:`feedback_design`): conditions that vary within therapists and
overlap in time (as in trials randomising clients, e.g. Lambert et al., 2001; reviewed by de
Jong et al., 2021); conditions that split therapists (a comparison of therapists, confounded
with who they are); or conditions that split time, every feedback case starting after every other (a
before/after comparison, open to anything else that changed: it is not a trial).

References
----------
de Jong, K., et al. (2021). Using progress feedback to improve outcomes and reduce drop-out,
treatment duration, and deterioration: A multilevel meta-analysis. Clinical Psychology Review,
85, 102002.
Lambert, M. J., et al. (2001). The effects of providing therapists with feedback on patient
progress during psychotherapy: Are outcomes enhanced? Psychotherapy Research, 11(1), 49-68.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from . import tidy
from .derive import CaseOrder, case_keys, client_table
from .engine import DEFAULT_ENGINE, fit_lmm
from .models import therapist_logit, tidy_fit
from .shards import ShardedTable, frames
from .tidy import TIDY_COLUMNS

__all__ = ["DESIGNS", "feedback_design", "feedback_effects"]

DESIGNS = {
    "within_therapists": (
        "Feedback and no-feedback cases are seen by the same therapists over the same period. "
        "If clients were randomised this is a trial and the differences are effects of "
        "feedback; if not, they can still reflect who was offered feedback."
    ),
    "between_therapists": (
        "Each therapist saw cases in one condition only: the comparison is between therapists, "
        "and a difference can be theirs rather than feedback's."
    ),
    "before_after": (
        "Every feedback case started after every no-feedback case: a before/after comparison. "
        "It is not a trial: anything else that changed over time (staff, referrals, "
        "the season, data recording) is mixed into the difference."
    ),
    "one_condition": "Only one condition is in the data: there is nothing to compare.",
}
"""What each design can support, in the words the tables and the report use."""


def _case_conditions(sessions: pd.DataFrame) -> pd.DataFrame:
    """Each case's condition (that of its first session), therapist and first session date."""
    ordered = CaseOrder(sessions)
    keys, first = ordered.keys, ordered.frame.iloc[ordered.first]
    columns = [*keys, "therapist_id", "condition"]
    columns += ["session_date"] if "session_date" in first else []
    cases = first[columns].reset_index(drop=True)
    cases = cases[cases["condition"].isin(["feedback", "none"])]
    return cases.assign(feedback=(cases["condition"] == "feedback").astype(float))


def feedback_design(sessions: pd.DataFrame) -> dict[str, Any]:
    """What the data show of how feedback was assigned.

    Returns
    -------
    dict
        ``design`` (a key of :data:`DESIGNS`), ``statement`` (its text), ``cases`` per
        condition, ``therapists_with_both`` (therapists who saw cases in both conditions) and
        ``therapists``.

    Examples
    --------
    >>> s = pd.DataFrame({"client_id": ["a", "b", "c", "d"], "therapist_id": ["t", "t", "u", "u"],
    ...                   "session": 1, "condition": ["feedback", "none", "none", "feedback"]})
    >>> feedback_design(s)["design"]
    'within_therapists'
    """
    return _design(_case_conditions(sessions) if "condition" in sessions else pd.DataFrame())


def _design(cases: pd.DataFrame) -> dict[str, Any]:
    """:func:`feedback_design` from the cases' conditions (:func:`_case_conditions`)."""
    counts = cases["condition"].value_counts().to_dict() if len(cases) else {}
    both = cases.groupby("therapist_id")["condition"].nunique() if len(cases) else pd.Series()
    if len(counts) < 2:
        design = "one_condition"
    elif "session_date" in cases and (
        cases.loc[cases["feedback"] == 0, "session_date"].max()
        < cases.loc[cases["feedback"] == 1, "session_date"].min()
    ):
        design = "before_after"
    elif (both == 2).any():
        design = "within_therapists"
    else:
        design = "between_therapists"
    return {
        "design": design,
        "statement": DESIGNS[design],
        "cases": {k: int(counts.get(k, 0)) for k in ("feedback", "none")},
        "therapists_with_both": int((both == 2).sum()),
        "therapists": len(both),
    }


def _case_tables(
    sessions: pd.DataFrame, outcome: str, alliance: str | None, early_session: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The cases' conditions, and the columns the feedback models use of the client table at
    the early session and at the first (the final outcome), for the cases with a condition."""
    conditions = _case_conditions(sessions)
    keys = case_keys(sessions)
    assigned = conditions[[*keys, "feedback"]]
    columns = [*keys, "therapist_id", "outcome_intake", "outcome_final", "alliance_early",
               "dropout"]  # fmt: skip
    early, final = (
        client_table(sessions, outcome, alliance, session).reindex(columns=columns)
        .merge(assigned, on=keys)
        for session in (early_session, 1)
    )  # fmt: skip
    return conditions, early, final


def feedback_effects(
    sessions: pd.DataFrame | ShardedTable,
    outcome: str = "ors",
    alliance: str | None = "srs",
    *,
    early_session: int = 3,
    engine: str = DEFAULT_ENGINE,
) -> pd.DataFrame:
    """The three feedback models as one tidy table; every row's ``message`` carries the design's
    statement (:func:`feedback_design`), and a data set without both conditions gives one row
    saying so. ``sessions`` may be given in shards
    (:class:`~allianceanalysis.shards.ShardedTable`): the models' client-level rows are made
    shard by shard.

    Examples
    --------
    >>> from allianceanalysis.simulate import simulate_study
    >>> s = simulate_study(n_clients=600, n_therapists=20, feedback="client", seed=5).sessions
    >>> t = feedback_effects(s)
    >>> sorted(set(t["model"]))
    ['feedback_alliance', 'feedback_dropout', 'feedback_outcome']
    """
    schema = sessions if isinstance(sessions, pd.DataFrame) else sessions.schema()
    parts = [
        _case_tables(frame, outcome, alliance, early_session)
        for frame in (frames(sessions) if "condition" in schema else [])
    ]
    tables = [pd.concat(p, ignore_index=True) for p in zip(*parts, strict=True)]
    conditions, early, final = tables or [pd.DataFrame()] * 3
    design = _design(conditions)
    if design["design"] == "one_condition":
        return tidy.frame([tidy.row("feedback_outcome", "feedback", np.nan, converged=False,
                            message=design["statement"])])[TIDY_COLUMNS]  # fmt: skip
    final = final.dropna(subset=["outcome_intake", "outcome_final"])
    models = {
        "feedback_outcome": (
            "outcome_final ~ outcome_intake + feedback + (1 | therapist_id)",
            final,
        ),
        "feedback_alliance": (
            "alliance_early ~ feedback + (1 | therapist_id)",
            early.dropna(subset=["alliance_early"]),
        ),
    }
    if alliance is None:  # outcome-only data
        del models["feedback_alliance"]
    rows: list[dict[str, Any]] = []
    for name, (formula, data) in models.items():
        rows += tidy_fit(name, fit_lmm(formula, data, engine))
    rows += therapist_logit("feedback_dropout", early, "dropout", ["feedback"])
    table = tidy.frame(rows)[TIDY_COLUMNS]
    table["message"] = [
        "; ".join(filter(None, [m, design["statement"]])) for m in table["message"].fillna("")
    ]
    return table
