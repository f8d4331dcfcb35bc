"""Your own models from the config: parsing, refusals, the tables they run on, and the logistic
family against R.

R reference: ``tests/reference/glmm_formula_reference.R`` (lme4 1.1.31 ``glmer``, Laplace with
tightened tolerances; R's ``glm``) on lme4's VerbAgg (``tests/reference/data/README.md``).
Tolerances: estimates relative 1e-4 (glmer) and 1e-6 (glm), glmer's standard errors 1e-3 (lme4
takes them from a finite-difference Hessian of its deviance, ``deriv12``, whose error the
uncentred ``Anger`` magnifies: the intercept's differs from our Richardson-extrapolated one by
3e-4), glm's 1e-6, the variance 1e-3, the log-likelihood 1e-6.
"""

from __future__ import annotations

import pandas as pd
import pytest

from allianceanalysis.custom_models import (
    CustomModel,
    custom_models,
    custom_models_table,
    fit_custom,
)
from allianceanalysis.errors import ConfigError
from allianceanalysis.models import fit_model

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"
DEMO = ROOT / "data" / "demo" / "sessions.csv"
VERBAGG = "r2 ~ Anger + Gender + btype + situ"


@pytest.fixture(scope="module")
def verbagg() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "data" / "verbagg.csv")


@pytest.fixture(scope="module")
def sessions() -> pd.DataFrame:
    return pd.read_csv(DEMO)


@pytest.mark.parametrize(
    ("model", "formula", "tolerance"),
    [("verbagg_glmer", f"{VERBAGG} + (1 | id)", 1e-4), ("verbagg_glm", VERBAGG, 1e-6)],
)
def test_a_binomial_model_with_factors_equals_glmer_and_glm(verbagg, model, formula, tolerance):
    se_tolerance = 1e-3 if model == "verbagg_glmer" else tolerance
    spec = CustomModel(model, formula, family="binomial")
    ours = pd.DataFrame(fit_custom(spec, verbagg)).set_index("term")
    expected = pd.read_csv(REFERENCE / "glmm_formula.csv").query("model == @model")
    assert sorted(ours.index) == sorted(expected["term"])
    for row in expected.itertuples():
        rel = 1e-3 if row.term.startswith("var_") else 1e-6 if row.term == "loglik" else tolerance
        assert ours.loc[row.term, "estimate"] == pytest.approx(row.estimate, rel=rel), row
        if not pd.isna(row.std_error):
            assert ours.loc[row.term, "std_error"] == pytest.approx(row.std_error, rel=se_tolerance)


def test_every_table_takes_a_model_and_the_datas_own_columns(sessions) -> None:
    specs = custom_models({"models": [
        {"name": "by_dose", "formula": "outcome_final ~ alliance_early * sessions_attended"
                                       " + age_band + (1 | therapist_id)"},
        {"name": "by_session", "formula": "outcome ~ session + treatment + (session | client_id)",
         "table": "sessions"},
        {"name": "next", "formula": "outcome_next ~ alliance_within + (1 | client_id)",
         "table": "pairs"},
        {"name": "hazard", "formula": "event ~ alliance_change + session + (1 | therapist_id)",
         "table": "person_periods", "family": "binomial"},
    ]})  # fmt: skip
    table = custom_models_table(sessions, custom=specs)
    assert list(dict.fromkeys(table["model"])) == ["by_dose", "by_session", "next", "hazard"]
    assert table["estimate"].notna().all()
    assert {"alliance_early:sessions_attended", "age_band26-35", "treatmentPDT",
            "odds_ratio_alliance_change"} <= set(table["term"])  # fmt: skip


def test_rows_left_out_for_missing_values_are_counted(sessions) -> None:
    spec = CustomModel("m", "outcome_final ~ alliance_early + (1 | therapist_id)")
    table = custom_models_table(sessions, custom=[spec])
    assert table["n_obs"].iloc[0] == 210  # complete in outcome_final and alliance_early
    assert "90 rows with a missing value left out" in table["message"].iloc[0]


def test_without_models_the_table_says_why(sessions) -> None:
    table = fit_model("custom_models", sessions)
    assert table["message"].item() == (
        "not computed: no models of your own are configured (models: in the config)"
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "alliance_outcome", "formula": "y ~ x"}, "models[0].name: 'alliance_outcome'"),
        ({"name": "m", "formula": "y ~ x + (x:z | g)"}, "unsupported term '(x:z | g)'"),
        ({"name": "m", "formula": "y ~ x + (x | g)", "family": "binomial"},
         "a binomial model takes no random effect or one random intercept"),
    ],
)  # fmt: skip
def test_a_bad_model_is_refused_naming_its_key(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("|", r"\|").replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        custom_models({"models": [entry]})


def test_a_name_used_twice_is_refused() -> None:
    entry = {"name": "m", "formula": "y ~ x"}
    with pytest.raises(ConfigError, match="the name 'm' is used twice"):
        custom_models({"models": [entry, entry]})


def test_an_unknown_variable_is_refused_with_the_tables_columns(sessions) -> None:
    spec = CustomModel("m", "outcome_final ~ severity + (1 | therapist_id)")
    with pytest.raises(ConfigError, match="the clients table has no variable 'severity' "
                                          r"\(it has therapist_id, site_id"):  # fmt: skip
        custom_models_table(sessions, custom=[spec])


def test_a_client_variable_that_varies_within_cases_is_refused(sessions) -> None:
    spec = CustomModel("m", "outcome_final ~ srs + (1 | therapist_id)")
    with pytest.raises(ConfigError, match="the formula of m: the column 'srs' varies within"):
        custom_models_table(sessions, custom=[spec])


def test_a_response_that_is_not_binary_is_refused_by_name(sessions) -> None:
    spec = CustomModel("m", "outcome_final ~ alliance_early", family="binomial")
    with pytest.raises(ValueError, match="the response 'outcome_final' of m is not 0/1"):
        custom_models_table(sessions, custom=[spec])
