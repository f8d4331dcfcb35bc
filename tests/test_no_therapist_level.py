"""Data without therapist codes (or with one practitioner) and data without an alliance
measure: what each analysis does, and that what it fits is right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from allianceanalysis.derive import client_table
from allianceanalysis.engine import fit_lmm
from allianceanalysis.io.mapping import NO_THERAPIST
from allianceanalysis.models import CATALOGUE, NEEDS, run_model
from allianceanalysis.simulate import simulate_study

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"


@pytest.fixture(scope="module")
def sessions() -> pd.DataFrame:
    return simulate_study(n_clients=200, n_therapists=10, seed=3).sessions


def test_without_therapists_a_random_intercept_model_is_r_lm() -> None:
    # R: lm(dist ~ speed, cars) (tests/reference/lm_reference.R); relative 1e-10
    cars = pd.read_csv(REFERENCE / "data" / "cars.csv").assign(therapist_id=NO_THERAPIST)
    fit = fit_lmm("dist ~ speed + (1 | therapist_id)", cars)
    expected = pd.read_csv(REFERENCE / "lm_cars.csv").set_index("term")
    r_terms = expected.loc[["Intercept", "speed"]]
    for column in ("estimate", "std_error", "df", "p_value", "ci_low", "ci_high"):
        np.testing.assert_allclose(fit.coefficients[column], r_terms[column], rtol=1e-10)
    assert fit.variances["var_residual"] == pytest.approx(expected.loc["var_residual", "estimate"])
    assert fit.loglik == pytest.approx(expected.loc["loglik_reml", "estimate"], rel=1e-12)


def test_the_fit_says_it_dropped_the_therapist_level() -> None:
    cars = pd.read_csv(REFERENCE / "data" / "cars.csv").assign(therapist_id="t1")
    fit = fit_lmm("dist ~ speed + (1 | therapist_id)", cars)
    assert fit.messages[0].startswith("fitted without the therapist level as dist ~ speed")


def test_a_nested_model_keeps_its_client_level(sessions: pd.DataFrame) -> None:
    pairs = sessions.assign(therapist_id="t1")
    nested = fit_lmm("ors ~ session + (1 | therapist_id/client_id)", pairs)
    clients = fit_lmm("ors ~ session + (1 | client_id)", pairs)
    assert nested.formula.lme4() == "ors ~ session + (1 | client_id)"
    np.testing.assert_allclose(nested.coefficients["estimate"], clients.coefficients["estimate"])


@pytest.mark.parametrize("name", [n for n, e in CATALOGUE.items() if "therapists" in e.needs])
def test_therapist_analyses_say_why_they_were_not_fitted(sessions: pd.DataFrame, name: str) -> None:
    table = run_model(name, sessions.assign(therapist_id=NO_THERAPIST))
    assert table["term"].tolist() == ["not_fitted"]
    assert table["message"].item() == f"not computed: {NEEDS['therapists']}"


@pytest.mark.parametrize("name", ["alliance_outcome", "early_alliance", "dropout"])
def test_other_analyses_drop_the_therapist_level_and_say_so(
    sessions: pd.DataFrame, name: str
) -> None:
    table = run_model(name, sessions.assign(therapist_id=NO_THERAPIST))
    fitted = table[table["term"] == "alliance_early"]
    assert len(fitted) and fitted["message"].str.contains("without the therapist level").all()


def test_dropout_without_therapists_is_an_unclustered_glm(sessions: pd.DataFrame) -> None:
    clients = client_table(sessions.assign(therapist_id=NO_THERAPIST))
    table = run_model("dropout", sessions.assign(therapist_id=NO_THERAPIST)).set_index("term")
    data = clients.dropna(subset=["dropout", "alliance_early"])
    glm = sm.Logit(data["dropout"], sm.add_constant(data[["alliance_early"]])).fit(disp=0)
    assert table.loc["alliance_early", "estimate"] == pytest.approx(glm.params["alliance_early"])
    assert table.loc["alliance_early", "std_error"] == pytest.approx(glm.bse["alliance_early"])
    assert table.loc["alliance_early", "ci_method"] == "wald_z"


def test_alliance_outcome_without_therapists_has_no_cluster_bootstrap(
    sessions: pd.DataFrame,
) -> None:
    table = run_model("alliance_outcome", sessions.assign(therapist_id=NO_THERAPIST))
    assert "partial_r" in set(table["term"]) and "partial_r_bootstrap" not in set(table["term"])


@pytest.mark.parametrize("name", [n for n, e in CATALOGUE.items() if "alliance" in e.needs])
def test_alliance_analyses_of_outcome_only_data_say_why(sessions: pd.DataFrame, name: str) -> None:
    table = run_model(name, sessions.drop(columns=["srs"]), alliance=None)
    assert table["message"].tolist() == [f"not computed: {NEEDS['alliance']}"]


def test_outcome_only_cases_are_eligible_with_intake_and_final_outcome(
    sessions: pd.DataFrame,
) -> None:
    clients = client_table(sessions.drop(columns=["srs"]), alliance=None)
    complete = clients["outcome_intake"].notna() & clients["outcome_final"].notna()
    assert clients["eligible"].equals(complete)
    assert clients["alliance_early"].isna().all()


@pytest.mark.parametrize("name", ["therapist_icc", "outcome_growth"])
def test_outcome_analyses_run_on_outcome_only_data(sessions: pd.DataFrame, name: str) -> None:
    table = run_model(name, sessions.drop(columns=["srs"]), alliance=None)
    assert "not_fitted" not in set(table["term"]) and table["converged"].all()


def test_outcome_growth_is_the_growth_model_without_alliance(sessions: pd.DataFrame) -> None:
    table = run_model("outcome_growth", sessions).set_index("term")
    data = sessions.dropna(subset=["ors"]).rename(columns={"ors": "outcome"})
    fit = fit_lmm("outcome ~ session + (1 + session | client_id)", data, "mixedlm")
    assert table.loc["session", "estimate"] == pytest.approx(
        fit.coefficients.loc["session", "estimate"], rel=1e-6
    )
