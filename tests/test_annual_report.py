"""The annual report: tables per reporting year, disclosure control, HTML and PDF."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pypdfium2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allianceanalysis import report
from allianceanalysis.disclosure import SUPPRESSED, DisclosurePolicy
from allianceanalysis.instruments import get_instrument
from allianceanalysis.pipeline import annual_report_step
from allianceanalysis.report import (
    Publisher,
    ReportSettings,
    ReportTables,
    annual_reports,
    render_html,
    render_pdf,
    report_tables,
)
from allianceanalysis.simulate import simulate_study

SETTINGS = ReportSettings(dataset="test service", bootstrap=200)
APPENDIX = {"rows": {"read": 10, "used": 10, "excluded": 0}, "source": "sessions.csv",
            "software": {"allianceanalysis": "test"}}  # fmt: skip


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return simulate_study(n_clients=240, n_therapists=10, n_sites=3, seed=11).sessions


@pytest.fixture(scope="module")
def tables(study: pd.DataFrame) -> ReportTables:
    return report_tables(study, SETTINGS)


@pytest.fixture(scope="module")
def reports(tables: ReportTables) -> dict:
    return annual_reports(tables, SETTINGS, appendix=APPENDIX)


@pytest.fixture(scope="module")
def html(reports: dict) -> str:
    return render_html(reports["2025/26"])


def test_each_reporting_year_with_ended_episodes_gets_a_report(tables, reports) -> None:
    assert tables.years == ["2024/25", "2025/26"]
    assert list(reports) == tables.years


def test_every_ended_episode_is_included_or_excluded_with_a_reason(tables) -> None:
    for year in tables.years:
        part = tables.of_year(year)
        ended = part["kpis"].set_index("kpi").loc["episodes_ended", "estimate"]
        for analysis, rows in part["accounting"].groupby("analysis"):
            assert rows["count"].iloc[0] == ended, (year, analysis)
            assert rows["count"].iloc[1:].sum() == ended, (year, analysis)
        assert part["session_bands"]["clients"].sum() == ended


def test_report_tables_round_trip_through_csv(tables, tmp_path) -> None:
    paths = {name: tmp_path / f"{name}.csv" for name in ReportTables.names()}
    tables.write(paths)
    again = ReportTables.read(paths)
    for name in ReportTables.names():
        before = getattr(tables, name).reset_index(drop=True)
        after = getattr(again, name).reset_index(drop=True)
        empty = before.columns[(before == "").all()]  # empty text reads back as missing
        assert after[empty].isna().all().all()
        pd.testing.assert_frame_equal(
            after.drop(columns=empty), before.drop(columns=empty), check_dtype=False
        )


def test_reports_are_rendered_from_the_tables_without_refitting(tables, monkeypatch) -> None:
    def refit(*args, **kwargs):
        raise AssertionError("a model was fitted at render time")

    monkeypatch.setattr(report, "fit_therapist_effects", refit)
    monkeypatch.setattr(report, "partial_correlation", refit)
    monkeypatch.setattr(report.smf, "ols", refit)
    assert list(annual_reports(tables, SETTINGS)) == tables.years


def test_year_over_year_compares_each_year_with_the_earlier_ones(reports) -> None:
    assert reports["2024/25"]["year_over_year"] is None
    rows = reports["2025/26"]["year_over_year"].rows
    assert {row[1] for row in rows} == {"2024/25"}
    assert "Reliable improvement" in {row[0] for row in rows}


def test_early_alliance_result_is_one_plain_sentence(reports) -> None:
    sentence = reports["2025/26"]["alliance_sentence"]
    assert sentence.count(". ") <= 1 and "partial r = " in sentence and "r = .28" in sentence


def test_html_is_self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<link" not in html and "<script" not in html
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 3 and all(i.startswith("data:image/png;base64,") for i in images)


@pytest.mark.parametrize(
    "section", ["summary", "activity", "outcomes", "alliance", "endings", "therapists", "trend",
                "appendix"],
)  # fmt: skip
def test_html_has_every_section(html: str, section: str) -> None:
    assert f'<section id="{section}"' in html


def test_html_prints_definitions_instrument_sources_and_software(html: str) -> None:
    for text in ("Reliable improvement and deterioration", "Jacobson &amp; Truax",
                 "Miller, S. D.", "allianceanalysis test", "Suppression log",
                 "Severity-adjusted effect size: not reported"):  # fmt: skip
        assert text in html, text


def test_nhs_talking_therapies_section_appears_with_phq9_and_gad7() -> None:
    sessions = simulate_study(n_clients=200, n_therapists=8, outcome="phq9", seed=5).sessions
    noise = np.random.default_rng(5).normal(0, 1.5, len(sessions))
    sessions["gad7"] = (sessions["phq9"] * 21 / 27 + noise).round().clip(0, 21)
    settings_phq = ReportSettings(dataset="iapt", outcome="phq9", bootstrap=200)
    reports = annual_reports(report_tables(sessions, settings_phq), settings_phq)
    page = render_html(reports[max(reports)])
    assert "NHS Talking Therapies measures" in page
    assert "PHQ-9 ≥ 10 or GAD-7 ≥ 8" in page
    assert "Generalized Anxiety Disorder" in page  # GAD-7's sources in the appendix


def _numbers(cell: str) -> list[int]:
    return [int(n) for n in re.findall(r"(?<![\d.])\d+(?![\d.%])", cell)]


def _published_counts(context: dict) -> list[tuple[str, int]]:
    """Every count a report context publishes: table cells, KPI values and denominators, and
    the event counts implied by published rates."""
    counts = []
    for name in ("bands_table", "site_table", "endings_table", "accounting_table"):
        table = context[name]
        if table is not None:
            counts += [(name, v) for row in table.rows for cell in row[1:] for v in _numbers(cell)]
    for row in context["kpis"].itertuples():
        n = int(row.n) if row.n.isdigit() else None
        if n is not None:
            counts.append((f"{row.kpi} n", n))
        if n is None and row.value.isdigit():  # a count has no denominator; a median has one
            counts.append((row.kpi, int(row.value)))
        if row.unit == "proportion" and row.value.endswith("%") and n is not None:
            events = round(float(row.value[:-1]) / 100 * n)
            counts += [(f"{row.kpi} events", events), (f"{row.kpi} non-events", n - events)]
    return counts


small_services = st.integers(2, 9).flatmap(
    lambda therapists: st.fixed_dictionaries(
        {
            "n_clients": st.integers(12, 90),
            "n_therapists": st.just(therapists),
            "n_sites": st.integers(1, min(3, therapists)),  # every site has a therapist
            "seed": st.integers(0, 10_000),
        }
    )
)
policies = st.sampled_from([DisclosurePolicy(), DisclosurePolicy(8, 5), DisclosurePolicy(3)])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_services, policies)
def test_no_published_count_is_small_or_recoverable_in_any_report(service, policy) -> None:
    sessions = simulate_study(**service).sessions
    config = ReportSettings(dataset="s", bootstrap=100, policy=policy)
    tables = report_tables(sessions, config)
    for year, context in annual_reports(tables, config).items():
        for where, count in _published_counts(context):
            assert not policy.is_small(count), (year, where, count)
        system = Publisher(tables.of_year(year), policy, get_instrument("srs"), year).system
        for total, members in system.equations:
            hidden = [c for c in (total, *members) if not system.visible(c)]
            assert len(hidden) != 1, (year, total, members)
            if system.visible(total):
                hidden_sum = sum(system.values[m] for m in members if not system.visible(m))
                assert not policy.is_small(hidden_sum), (year, total, members)


def test_a_small_service_shows_suppressed_cells_and_logs_them() -> None:
    sessions = simulate_study(n_clients=30, n_therapists=6, n_sites=2, seed=2).sessions
    reports = annual_reports(report_tables(sessions, SETTINGS), SETTINGS)
    context = reports[max(reports)]
    assert context["suppression_log"]
    page = render_html(context)
    assert f">{SUPPRESSED}<" in page
    assert context["funnel_counts"][1] > 0  # therapists with small numbers not shown


def test_pdf_converts_to_png_pages_with_content(html: str, tmp_path) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render_pdf(html))
    document = pypdfium2.PdfDocument(pdf)
    assert len(document) >= 5
    for index in range(len(document)):
        image = document[index].render(scale=1).to_pil().convert("L")
        image.save(tmp_path / f"page_{index + 1}.png")
        assert image.getextrema()[0] < 100, f"page {index + 1} is blank"
    width, height = document[0].get_size()
    assert (round(width), round(height)) == (595, 842)  # A4 in points


def test_annual_report_step_writes_each_year_from_the_tables(tables, tmp_path) -> None:
    paths = {name: tmp_path / "tables" / f"{name}.csv" for name in ReportTables.names()}
    paths["kpis"].parent.mkdir()
    tables.write(paths)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"file": "/secret/path/sessions.csv", "rows": APPENDIX["rows"]}))
    annual_report_step(paths, summary, tmp_path / "annual_report", SETTINGS)
    written = sorted(p.name for p in (tmp_path / "annual_report").iterdir())
    assert written == ["2024-25.html", "2024-25.pdf", "2024-25_kpis.csv", "2025-26.html",
                       "2025-26.pdf", "2025-26_kpis.csv"]  # fmt: skip
    page = (tmp_path / "annual_report" / "2025-26.html").read_text()
    assert "/secret/path" not in page and "sessions.csv" in page
