"""Covariates and moderators: configuration, refusals, derived columns, and the adjusted and
moderated models against R.

R reference: ``tests/reference/covariates_reference.R`` (lme4, lmerTest ``contest1D``) on
``tests/reference/data/covariates.csv`` (simulated, ``make_covariates_data.py``). Tolerances
as the issue states them: fixed effects, SEs and Satterthwaite df relative 1e-4 (conditional
effects too), variance components 1e-3, the REML log-likelihood 1e-6; the partial r and the
Johnson–Neyman bounds 1e-4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pingouin
import pytest

from allianceanalysis.covariates import Adjustment, adjusted
from allianceanalysis.derive import case_keys, client_table, session_pairs
from allianceanalysis.errors import ConfigError
from allianceanalysis.models import alliance_outcome, tidy_fit
from allianceanalysis.moderation import moderation

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"
CONFIG = {"covariates": ["age_band", "diagnosis"], "moderators": ["treatment", "severity"]}


@pytest.fixture(scope="module")
def sessions() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "data" / "covariates.csv")


@pytest.fixture(scope="module")
def adjustment() -> Adjustment:
    return Adjustment.from_config(CONFIG)


@pytest.fixture(scope="module")
def ours(sessions: pd.DataFrame, adjustment: Adjustment) -> pd.DataFrame:
    clients = client_table(sessions, adjustment=adjustment)
    fitted = alliance_outcome(clients, bootstrap=0, adjustment=adjustment)
    return pd.concat([fitted, moderation(sessions, adjustment=adjustment)], ignore_index=True)


def test_adjusted_and_moderated_models_equal_lme4_and_lmertest(ours: pd.DataFrame) -> None:
    expected = pd.read_csv(REFERENCE / "covariates.csv")
    table = ours.set_index(["model", "term"])
    for row in expected.itertuples():
        got = table.loc[(row.model, row.term)]
        covariance = row.term.startswith(("var_", "cor_"))
        tolerance = 1e-6 if row.term == "loglik_reml" else 1e-3 if covariance else 1e-4
        assert got["estimate"] == pytest.approx(row.estimate, rel=tolerance), row
        for column in ("std_error", "df", "ci_low", "ci_high"):
            if not pd.isna(getattr(row, column)):
                assert got[column] == pytest.approx(getattr(row, column), rel=1e-4), (column, row)


def test_partial_r_with_covariates_equals_pingouin(sessions, adjustment) -> None:
    clients = client_table(sessions, adjustment=adjustment).query("eligible")
    table = alliance_outcome(clients, bootstrap=0, adjustment=adjustment).set_index("term")
    dummies = pd.get_dummies(clients[["age_band", "diagnosis"]], drop_first=True, dtype=float)
    data = pd.concat([clients[["alliance_early", "outcome_final", "outcome_intake"]], dummies],
                     axis=1)  # fmt: skip
    covar = ["outcome_intake", *dummies.columns]
    peer = pingouin.partial_corr(data, x="alliance_early", y="outcome_final", covar=covar)
    assert table.loc["partial_r", "estimate"] == pytest.approx(peer["r"].item(), rel=1e-10)
    assert table.loc["partial_r", "p_value"] == pytest.approx(peer["p_val"].item(), rel=1e-6)


def test_a_covariate_enters_the_fixed_part_and_a_numeric_factor_as_factor() -> None:
    adjustment = Adjustment.from_config(
        {"covariates": ["age_band", {"column": "stage", "type": "categorical"}]}
    )
    data = pd.DataFrame({"age_band": ["a", "b"], "stage": [1, 2]})
    assert adjusted("y ~ x + (1 | g)", data, adjustment) == (
        "y ~ x + age_band + factor(stage) + (1 | g)"
    )


def test_a_session_level_covariate_enters_only_session_models() -> None:
    adjustment = Adjustment.from_config({"covariates": [{"column": "hours", "level": "session"}]})
    data = pd.DataFrame({"hours": [1.0, 2.0]})
    assert adjusted("y ~ x + (1 | g)", data, adjustment, "client") == "y ~ x + (1 | g)"
    assert adjusted("y ~ x + (1 | g)", data, adjustment, "session") == "y ~ x + hours + (1 | g)"


def test_a_case_missing_a_covariate_is_excluded_with_that_reason(sessions, adjustment) -> None:
    data = sessions.copy()
    data.loc[data["client_id"] == "C0001", "age_band"] = np.nan
    clients = client_table(data, adjustment=adjustment).set_index("client_id")
    assert not clients.loc["C0001", "eligible"]
    assert clients.loc["C0001", "exclusion"] == "no age_band (covariate)"


@pytest.mark.parametrize(
    ("summary", "expected"), [("first", 1.0), ("last", 3.0), ("mean", 2.0)]
)  # fmt: skip
def test_a_varying_client_covariate_is_summarised_by_its_rule(summary, expected) -> None:
    data = pd.DataFrame({"client_id": "a", "therapist_id": "t", "session": [1, 2, 3],
                         "ors": [20.0, 25.0, 30.0], "srs": 35.0,
                         "dose": [1.0, 2.0, 3.0]})  # fmt: skip
    adjustment = Adjustment.from_config({"covariates": [{"column": "dose", "summary": summary}]})
    assert client_table(data, adjustment=adjustment)["dose"].item() == expected


def test_session_pairs_carry_client_and_session_covariates() -> None:
    data = pd.DataFrame({"client_id": "a", "therapist_id": "t", "session": [1, 2, 3],
                         "ors": [20.0, 25.0, 30.0], "srs": 35.0, "group": "x",
                         "hours": [1.0, 2.0, 3.0]})  # fmt: skip
    adjustment = Adjustment.from_config(
        {"covariates": ["group", {"column": "hours", "level": "session"}]}
    )
    pairs = session_pairs(data, adjustment=adjustment)
    assert pairs["group"].tolist() == ["x", "x"]
    assert pairs["hours"].tolist() == [1.0, 2.0]  # the earlier session's


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"covariates": ["age band"]}, "covariates[0]: 'age band' is not a column name"),
        ({"covariates": [{"column": "x", "type": "text"}]}, "covariates[0].type: 'text'"),
        ({"covariates": ["x", "x"]}, "covariates: 'x' is listed twice"),
        ({"covariates": ["x"], "moderators": ["x"]}, "moderators: 'x' is also a covariate"),
        ({"covariates": [{"column": "x", "type": "categorical", "summary": "mean"}]},
         "the mean of a categorical column"),
    ],
)  # fmt: skip
def test_a_bad_configuration_is_refused_naming_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Adjustment.from_config(config)


def test_a_datasets_own_list_replaces_the_global_one() -> None:
    config = {"covariates": ["a"], "datasets": {"b": {"covariates": ["c"]}, "d": {}}}
    assert [c.column for c in Adjustment.from_config(config, "b").covariates] == ["c"]
    assert [c.column for c in Adjustment.from_config(config, "d").covariates] == ["a"]


@pytest.mark.parametrize(
    ("column", "change", "message"),
    [
        ("nope", None, "covariates: the data have no column 'nope'"),
        ("blank", lambda s: s.assign(blank=np.nan), "'blank' is missing in every row"),
        ("one", lambda s: s.assign(one="x"), "'one' is constant ('x')"),
        ("many", lambda s: s.assign(many=s["client_id"]), "a factor needs at least 10 cases"),
        ("ors", None, "'ors' varies within 1386 cases: declare summary"),
    ],
)  # fmt: skip
def test_a_column_the_data_cannot_support_is_refused_before_fitting(
    sessions, column, change, message
) -> None:
    data = change(sessions) if change else sessions
    adjustment = Adjustment.from_config({"covariates": [column]})
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        adjustment.check(data, case_keys(data))


def test_text_declared_numeric_is_refused(sessions) -> None:
    adjustment = Adjustment.from_config({"covariates": [{"column": "age_band", "type": "numeric"}]})
    with pytest.raises(ConfigError, match="declared numeric but holds text"):
        adjustment.check(sessions, case_keys(sessions))


def test_without_moderators_the_moderation_table_says_why(sessions) -> None:
    from allianceanalysis.models import fit_model

    table = fit_model("moderation", sessions, adjustment=Adjustment())
    assert table["message"].item() == (
        "not computed: no moderators are configured (moderators: in the config)"
    )


def test_conditional_effects_cover_every_level_and_the_range(ours: pd.DataFrame) -> None:
    terms = ours.loc[ours["model"] == "alliance_outcome_by_severity", "term"]
    grid = [t for t in terms if t.startswith("alliance_early|severity=") and "mean" not in t]
    assert len(grid) == 21
    treatment = ours.loc[ours["model"] == "alliance_next_session_by_treatment", "term"]
    assert {"alliance_within|treatment=CBT", "alliance_within|treatment=PDT"} <= set(treatment)


def test_the_moderated_model_recovers_the_simulated_moderation(ours: pd.DataFrame) -> None:
    """The data were simulated with a stronger within-therapist alliance effect under PDT:
    the interaction is positive and its interval excludes zero (at n = 1,003)."""
    row = ours.set_index(["model", "term"]).loc[
        ("alliance_outcome_by_treatment", "alliance_early:treatmentPDT")
    ]
    assert row["ci_low"] > 0


def test_tidy_fit_rows_name_groups_with_underscores() -> None:
    from allianceanalysis.engine import fit_lmm

    rng = np.random.default_rng(1)
    data = pd.DataFrame({"clinic_code": np.repeat(list("abcdefgh"), 10), "x": rng.normal(size=80)})
    data["y"] = data["x"] + rng.normal(size=80) + np.repeat(rng.normal(size=8), 10)
    rows = pd.DataFrame(tidy_fit("m", fit_lmm("y ~ x + (1 | clinic_code)", data)))
    assert rows.set_index("term").loc["var_clinic_code", "n_groups"] == 8
