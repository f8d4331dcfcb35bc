"""A public clinical study through the front door: outcome-only, no therapist codes, four time
points, a user-defined instrument beside a built-in one.

The BDI-II and HAM-D of Claus, Scherbaum & Bonnet (2020), 43 inpatients at four measurements
(``tests/reference/data/README.md``: source and licence), run as a researcher would with
``allianceanalysis run``: the configuration maps the file's own column names, declares that
there are no therapist codes and no alliance measure, and defines the HAM-D.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from allianceanalysis.layout import figure_file, internal, published
from allianceanalysis.tidy import NEEDS

from .helpers import ALLIANCEANALYSIS, ROOT, write_test_key

CONFIG = """\
outcome: bdi2
alliance: null
bootstrap: 200
instruments:
  hamd:
    name: Hamilton Rating Scale for Depression
    short: HAM-D
    construct: outcome
    rater: clinician
    items: 17
    total_range: [0, 52]
    higher_is_better: false
    source: "Hamilton, M. (1960). A rating scale for depression. J Neurol Neurosurg Psychiatry."
models:
  - name: bdi_by_treatment
    formula: outcome ~ session * treatment + (1 | client_id)
    table: sessions
datasets:
  claus:
    path: claus_2020.csv
    columns: {client_id: id, session: time, therapist_id: null, bdi2: bdi}
"""


@pytest.fixture(scope="session")
def public_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("public")
    shutil.copy(ROOT / "tests" / "reference" / "data" / "claus_2020.csv", workdir)
    (workdir / "study.yaml").write_text(CONFIG)
    write_test_key(workdir)
    done = subprocess.run([str(ALLIANCEANALYSIS), "run", "study.yaml"], cwd=workdir,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return workdir


def models(workdir: Path) -> pd.DataFrame:
    return pd.read_csv(workdir / published("claus", "tables", "models.csv"))


def test_every_alliance_model_says_the_data_have_no_alliance(public_study: Path) -> None:
    table = models(public_study)
    own = ["therapist_icc", "outcome_growth", "bdi_by_treatment"]  # need no alliance
    alliance = table[~table["model"].isin(own)]
    assert set(alliance["message"]) == {f"not computed: {NEEDS['alliance']}"}


def test_a_researchers_own_model_equals_lme4_through_the_front_door(public_study: Path) -> None:
    """The study's own question, the BDI-II's course by treatment arm, as a model of the
    config: equal to lmer(bdi ~ time * treatment + (1 | id)) (tests/reference/formula_reference.R,
    model claus_custom), at the catalogue's tolerances."""
    ours = models(public_study).query("model == 'bdi_by_treatment'").set_index("term")
    expected = pd.read_csv(ROOT / "tests" / "reference" / "formula_lme4.csv")
    for row in expected.query("model == 'claus_custom'").itertuples():
        covariance = row.term.startswith("var_")
        tolerance = 1e-6 if row.term == "loglik_reml" else 1e-3 if covariance else 1e-4
        assert ours.loc[row.term, "estimate"] == pytest.approx(row.estimate, rel=tolerance), row
        if not pd.isna(row.std_error):
            assert ours.loc[row.term, "df"] == pytest.approx(row.df, rel=1e-4), row
    apa = (public_study / published("claus", "tables", "apa", "custom_models.md")).read_text()
    assert "Model: outcome ~ session * treatment + (1 | client_id)" in apa


def test_therapist_effects_say_there_are_no_therapists(public_study: Path) -> None:
    table = models(public_study)
    icc = table[table["model"] == "therapist_icc"]
    assert icc["message"].tolist() == [f"not computed: {NEEDS['therapists']}"]


def test_the_outcome_growth_model_is_fitted_to_every_client(public_study: Path) -> None:
    growth = models(public_study).query("model == 'outcome_growth'").set_index("term")
    assert growth.loc["session", "n_groups"] == 43 and growth["converged"].all()
    assert growth.loc["session", "ci_high"] < 0  # BDI-II scores fall over treatment


def test_clinical_significance_classifies_every_client_with_two_scores(public_study: Path) -> None:
    cases = pd.read_parquet(public_study / internal("claus", "derived",
                                                    "clinical_significance.parquet"))  # fmt: skip
    assert len(cases) == 43 and cases["category"].notna().sum() == 40
    table = pd.read_csv(public_study / internal("claus", "tables", "clinical_significance.csv"))
    shares = table[table["ci_method"] == "wilson"]
    assert shares["estimate"].sum() == pytest.approx(1.0) and set(shares["n_obs"]) == {40}


def test_the_published_categories_hide_what_subtraction_would_reveal(public_study: Path) -> None:
    table = pd.read_csv(public_study / published("claus", "tables",
                                                 "clinical_significance.csv"))  # fmt: skip
    shares = table[table["ci_method"] == "wilson"]
    assert shares["estimate"].isna().sum() != 1


def test_the_user_defined_instrument_is_validated_and_kept(public_study: Path) -> None:
    sessions = pd.read_parquet(public_study / internal("claus", "validated", "sessions.parquet"))
    assert sessions["hamd"].notna().sum() == 164 and sessions["hamd"].max() <= 52


def test_the_annual_report_leaves_alliance_and_therapists_out(public_study: Path) -> None:
    html = (public_study / published("claus", "annual_report", "all.html")).read_text()
    assert 'id="alliance"' not in html and 'id="therapists"' not in html
    assert "the data have no alliance measure" in html and "Clinical significance" in html


def test_alliance_figures_say_why_they_are_empty(public_study: Path) -> None:
    svg = (public_study / figure_file("claus", "alliance_over_sessions", ".svg")).read_text()
    assert "no alliance measure" in svg
    scatter = public_study / figure_file("claus", "clinical_significance", ".png")
    assert scatter.stat().st_size > 20_000


def test_the_annual_report_covers_the_second_outcome_measure(public_study: Path) -> None:
    kpis = pd.read_csv(public_study / published("claus", "annual_report", "all_kpis.csv"))
    hamd = kpis[kpis["kpi"].str.startswith("hamd:")].set_index("kpi")
    assert hamd.loc["hamd:finished", "value"] == "41"
    assert hamd.loc["hamd:mean_improvement", "unit"] == "HAM-D points"
    html = (public_study / published("claus", "annual_report", "all.html")).read_text()
    assert (
        "Hamilton Rating Scale for Depression (HAM-D)" in html and "rated by the clinician" in html
    )


def test_without_dates_the_report_covers_one_period(public_study: Path) -> None:
    html = (public_study / published("claus", "annual_report", "all.html")).read_text()
    assert "<h1>Report on all sessions</h1>" in html and "The data have no session dates" in html


def test_validate_through_the_front_door_reports_what_the_data_lack(public_study: Path) -> None:
    done = subprocess.run([str(ALLIANCEANALYSIS), "validate", "claus_2020.csv", "--config",
                           "study.yaml"], cwd=public_study, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "43 clients, no therapist codes" in done.stdout and "alliance: none" in done.stdout


def test_a_deleted_figure_is_drawn_again_by_the_next_run(public_study: Path) -> None:
    figure = public_study / figure_file("claus", "clinical_significance", ".svg")
    aside = figure.with_suffix(".aside")
    figure.rename(aside)
    try:
        command = [str(ALLIANCEANALYSIS), "run", "study.yaml", "--dry-run"]
        done = subprocess.run(command, cwd=public_study, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
    finally:
        aside.rename(figure)
    assert done.returncode == 0, done.stderr
    assert "figures" in done.stdout and "dataset=claus" in done.stdout
