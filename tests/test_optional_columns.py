"""Optional columns are optional through the whole workflow, annual report included.

docs/data-format.md lists ``site_id``, ``session_date``, ``episode_id``, ``end_status`` and
``condition`` as optional. One small simulated service holding all of them is written once per
shape, without one of them (and once without all five), and every shape is a dataset of one
Snakemake run of the whole workflow (``stranger_run`` in conftest.py), as a user's config of
several datasets would be.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from .helpers import SHAPES


def annual_reports(workdir: Path, shape: str) -> list[str]:
    folder = workdir / "results" / shape / "annual_report"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_dataset_without_optional_columns_runs_to_its_annual_report(stranger_run, shape) -> None:
    written = annual_reports(stranger_run, shape)
    assert written and all(Path(n).suffix in (".html", ".pdf", ".csv") for n in written), written
    results = stranger_run / "results" / shape
    for output in ("tables/models.csv", "tables/early_warning.csv", "provenance.json",
                   "figures/therapist_caterpillar.png", "tables/pooled_sites.csv"):  # fmt: skip
        assert (results / output).is_file(), output


@pytest.mark.parametrize("shape", ["no_site_id", "required_only"])
def test_without_sites_the_report_has_no_table_by_site(stranger_run, shape) -> None:
    html = [p for p in (stranger_run / "results" / shape / "annual_report").glob("*.html")]
    assert html and not any("Activity by site" in p.read_text() for p in html)
    with_sites = (stranger_run / "results" / "no_condition" / "annual_report").glob("*.html")
    assert any("Activity by site" in p.read_text() for p in with_sites)


@pytest.mark.parametrize("shape", ["no_session_date", "required_only"])
def test_without_dates_the_report_covers_one_period(stranger_run, shape) -> None:
    assert annual_reports(stranger_run, shape) == ["all.html", "all.pdf", "all_kpis.csv"]


def test_without_conditions_feedback_says_there_is_one_condition(stranger_run) -> None:
    table = pd.read_csv(stranger_run / "results" / "no_condition" / "tables" / "early_warning.csv")
    row = table[table["model"] == "feedback_outcome"]
    assert len(row) == 1 and row["estimate"].isna().all()
    assert row["converged"].eq(False).all()
