"""The whole workflow on data shaped unlike the bundled demo (``stranger_run``, conftest.py).

Optional columns are optional through the whole workflow, annual report included:
docs/data-format.md lists ``site_id``, ``session_date``, ``episode_id``, ``end_status`` and
``condition`` as optional. One small simulated service holding all of them is written once per
shape, without one of them (and once without all five), and every shape is a dataset of one
Snakemake run of the whole workflow (``stranger_run`` in conftest.py), as a user's config of
several datasets would be.

Nothing leaks: the shape without ``condition`` is a service whose client and therapist IDs are
distinctive, with a free-text column and a date of birth the user let through; every file it
publishes is audited.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pypdfium2
import pytest

from allianceanalysis.annual_report import render_pdf

from .helpers import AUDITED, SHAPES


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
    html = (stranger_run / "results" / shape / "annual_report" / "all.html").read_text()
    assert "<h1>Report on all sessions</h1>" in html and "The data have no session dates" in html


def test_without_conditions_feedback_says_there_is_one_condition(stranger_run) -> None:
    table = pd.read_csv(stranger_run / "results" / "no_condition" / "tables" / "early_warning.csv")
    row = table[table["model"] == "feedback_outcome"]
    assert len(row) == 1 and row["estimate"].isna().all()
    assert row["converged"].eq(False).all()


PUBLISHED = ("tables", "figures", "annual_report")
"""What a run publishes per dataset, besides ``results/_pooled/``; the rest of ``results/``
(validated, validation, derived, report_tables, logs) is internal and holds row-level data."""


def published_text(path: Path) -> str:
    """The text a reader can get out of a published file: a PDF's text layer, an HTML page
    without its embedded images' base64, any other file as text."""
    if path.suffix == ".pdf":
        document = pypdfium2.PdfDocument(path)
        return "\n".join(page.get_textpage().get_text_range() for page in document)
    text = path.read_bytes().decode("utf-8", errors="replace")
    return re.sub(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+", "", text)


@pytest.fixture(scope="module")
def seeded_run(stranger_run: Path) -> tuple[Path, pd.DataFrame]:
    """The audited dataset of the shared run of data we did not make (conftest.py): the
    demo data with distinctive client and therapist IDs, a free-text column and a date of birth
    the user let through, and the sessions as they went in."""
    return stranger_run, pd.read_csv(stranger_run / "data" / "sessions.csv", dtype=str)


def test_no_published_file_holds_an_id_a_date_of_birth_a_session_date_or_free_text(
    seeded_run,
) -> None:
    """Every published table, figure (SVG text; PNGs are the same figures drawn as pixels)
    and annual report (HTML text, PDF text layer, KPI table) is read: no client ID, no
    therapist ID (therapists appear as pseudonymous codes), no session date, no date of birth
    and no free text appears."""
    workdir, sessions = seeded_run
    results = workdir / "results"
    files = [p for part in PUBLISHED for p in (results / AUDITED / part).rglob("*")
             if p.is_file() and p.suffix != ".png"]  # fmt: skip
    files += [p for p in (results / "_pooled").rglob("*") if p.is_file() and p.suffix != ".png"
              and "logs" not in p.parts]  # fmt: skip
    assert any(p.suffix == ".pdf" for p in files) and any(p.suffix == ".svg" for p in files)
    secrets = {*sessions["client_id"], *sessions["therapist_id"], *sessions["session_date"]}
    secrets |= {*sessions["dob"], *sessions["remarks"].str.split().str[-1]}
    found = {}
    for path in files:
        text = published_text(path)
        hits = [s for s in secrets if s in text]
        if hits:
            found[str(path.relative_to(results))] = hits[:3]
    assert not found, found


def test_the_audit_reads_the_text_of_pdf_reports_and_svg_figures(seeded_run, tmp_path) -> None:
    """The audit can fail: an ID printed in a PDF report is found in its (compressed) text
    layer, and figures' SVG text is kept as text, so a label would be found too."""
    workdir, sessions = seeded_run
    secret = sessions["client_id"].iloc[0]
    pdf = tmp_path / "leak.pdf"
    pdf.write_bytes(render_pdf(f"<html><body><p>Client {secret}</p></body></html>"))
    assert secret in published_text(pdf)
    svg = next((workdir / "results" / AUDITED / "figures").glob("*.svg"))
    assert "<text" in svg.read_text(encoding="utf-8")
