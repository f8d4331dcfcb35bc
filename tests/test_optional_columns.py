"""Optional columns are optional through the whole workflow, annual report included.

docs/data-format.md lists ``site_id``, ``session_date``, ``episode_id``, ``end_status`` and
``condition`` as optional. One small simulated service holding all of them is written once per
shape, without one of them (and once without all five), and every shape runs through one
Snakemake run of the whole workflow, as a user's config of several datasets would.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from allianceanalysis.simulate import simulate_study

from .test_workflow import snakemake, write_config

OPTIONAL = ("site_id", "session_date", "episode_id", "end_status", "condition")
SHAPES = {f"no_{column}": (column,) for column in OPTIONAL} | {"required_only": OPTIONAL}


def service() -> pd.DataFrame:
    """A small service with every optional column: two sites, dated sessions, endings,
    feedback by client, and a second episode for every fifth client."""
    sessions = simulate_study(n_clients=150, n_therapists=8, n_sites=2, feedback="client",
                              seed=16).sessions  # fmt: skip
    number = sessions["client_id"].str[1:].astype(int)
    second = (number % 5 == 0) & (sessions["session"] > 4)
    sessions["episode_id"] = second.map({True: "E2", False: "E1"})
    sessions["session"] = sessions["session"].where(~second, sessions["session"] - 4)
    return sessions


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every shape as a dataset of one config, run to the end (annual reports included)."""
    workdir = tmp_path_factory.mktemp("shapes")
    sessions = service()
    for name, dropped in SHAPES.items():
        shape = sessions.copy()
        if "episode_id" in dropped:  # a service without episode codes: one episode per client ID
            second = shape["episode_id"] == "E2"
            shape["client_id"] = shape["client_id"].where(~second, shape["client_id"] + "-2")
        shape.drop(columns=list(dropped)).to_csv(workdir / f"{name}.csv", index=False)
    config = write_config(workdir, {name: {"path": f"{name}.csv"} for name in SHAPES})
    config.write_text(config.read_text() + "bootstrap: 200\n")
    done = snakemake(workdir, "--configfile", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir


def annual_reports(workdir: Path, shape: str) -> list[str]:
    folder = workdir / "results" / shape / "annual_report"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_dataset_without_optional_columns_runs_to_its_annual_report(shapes_run, shape) -> None:
    written = annual_reports(shapes_run, shape)
    assert written and all(Path(n).suffix in (".html", ".pdf", ".csv") for n in written), written
    results = shapes_run / "results" / shape
    for output in ("tables/models.csv", "tables/early_warning.csv", "provenance.json",
                   "figures/therapist_caterpillar.png", "tables/pooled_sites.csv"):  # fmt: skip
        assert (results / output).is_file(), output


@pytest.mark.parametrize("shape", ["no_site_id", "required_only"])
def test_without_sites_the_report_has_no_table_by_site(shapes_run, shape) -> None:
    html = [p for p in (shapes_run / "results" / shape / "annual_report").glob("*.html")]
    assert html and not any("Activity by site" in p.read_text() for p in html)
    with_sites = (shapes_run / "results" / "no_condition" / "annual_report").glob("*.html")
    assert any("Activity by site" in p.read_text() for p in with_sites)


@pytest.mark.parametrize("shape", ["no_session_date", "required_only"])
def test_without_dates_the_report_covers_one_period(shapes_run, shape) -> None:
    assert annual_reports(shapes_run, shape) == ["all.html", "all.pdf", "all_kpis.csv"]


def test_without_conditions_feedback_says_there_is_one_condition(shapes_run) -> None:
    table = pd.read_csv(shapes_run / "results" / "no_condition" / "tables" / "early_warning.csv")
    row = table[table["model"] == "feedback_outcome"]
    assert len(row) == 1 and row["estimate"].isna().all()
    assert row["converged"].eq(False).all()
