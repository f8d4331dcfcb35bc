"""The annual report: tables per reporting year, disclosure control, HTML and PDF."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pypdfium2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playwright.sync_api import sync_playwright

from allianceanalysis.annual_report import (
    Publisher,
    ReportSettings,
    ReportTables,
    annual_reports,
    early_warning_paragraphs,
    render_html,
    render_pdf,
    report_tables,
    supervision_reports,
)
from allianceanalysis.annual_report import render as report_render
from allianceanalysis.annual_report import tables as report_steps
from allianceanalysis.disclosure import SUPPRESSED, DisclosurePolicy
from allianceanalysis.effects import client_outcomes
from allianceanalysis.expected_response import (
    ExpectedResponse,
    fit_expected_response,
    not_on_track,
    signalled_cases,
)
from allianceanalysis.feedback import DESIGNS
from allianceanalysis.instruments import get_instrument
from allianceanalysis.pipeline import annual_report_step, early_warning_step, report_settings
from allianceanalysis.ruptures import case_ruptures, detect_ruptures
from allianceanalysis.simulate import simulate_study

from .helpers import assert_nothing_small_can_be_worked_out
from .report_check import ARGS, CHROMIUM

SETTINGS = ReportSettings(dataset="test service", bootstrap=200, therapist_plots=True)
"""Settings of a service that publishes its therapists' coded plots (the strictest case for
disclosure control: the funnel plot's counts are published too)."""
APPENDIX = {"rows": {"read": 10, "used": 10, "excluded": 0}, "source": "sessions.csv",
            "software": {"allianceanalysis": "test"}}  # fmt: skip


@pytest.fixture(scope="module")
def study() -> pd.DataFrame:
    return simulate_study(n_clients=240, n_therapists=10, n_sites=3, seed=11).sessions


def early_warning_table(sessions: pd.DataFrame, folder: Path) -> pd.DataFrame:
    """The workflow's early-warning table of ``sessions`` (rule ``early_warning``)."""
    sessions.to_parquet(folder / "sessions.parquet")
    settings = {"rupture_threshold": None, "repair_within": 3, "not_on_track_percentile": 0.1,
                "folds": 5}  # fmt: skip
    early_warning_step(folder / "sessions.parquet", table=folder / "ew.csv",
                       calibration=folder / "c.csv", sequences=folder / "s.parquet",
                       curves=folder / "e.csv", outcome="ors", alliance="srs", early_session=3,
                       settings=settings, seed=20261125)  # fmt: skip
    return pd.read_csv(folder / "ew.csv")


@pytest.fixture(scope="module")
def warning(study: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return early_warning_table(study, tmp_path_factory.mktemp("early_warning"))


@pytest.fixture(scope="module")
def tables(study: pd.DataFrame, warning: pd.DataFrame) -> ReportTables:
    return report_tables(study, SETTINGS, warning)


@pytest.fixture(scope="module")
def reports(tables: ReportTables, warning: pd.DataFrame) -> dict:
    return annual_reports(tables, SETTINGS, appendix=APPENDIX, warning=warning)


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
        text = before.drop(columns=empty).select_dtypes(["object", "str"]).columns
        before = before.drop(columns=empty).astype({c: object for c in text})
        before[text] = before[text].mask(before[text] == "")  # so does an empty text cell
        pd.testing.assert_frame_equal(after.drop(columns=empty), before, check_dtype=False)


def test_reports_are_rendered_from_the_tables_without_refitting(tables, monkeypatch) -> None:
    def refit(*args, **kwargs):
        raise AssertionError("a model was fitted at render time")

    monkeypatch.setattr(report_steps, "fit_therapist_effects", refit)
    monkeypatch.setattr(report_steps, "partial_correlation", refit)
    monkeypatch.setattr(report_steps, "clustered_ols", refit)
    monkeypatch.setattr(report_steps, "detect_ruptures", refit)
    monkeypatch.setattr(report_steps, "not_on_track", refit)
    assert list(annual_reports(tables, SETTINGS)) == tables.years


def test_year_over_year_compares_each_year_with_the_earlier_ones(reports) -> None:
    assert reports["2024/25"]["year_over_year"] is None
    rows = reports["2025/26"]["year_over_year"].rows
    assert {row[1] for row in rows} == {"2024/25"}
    assert "Reliable improvement" in {row[0] for row in rows}


def test_early_alliance_result_is_one_plain_sentence(reports) -> None:
    sentence = reports["2025/26"]["alliance_sentence"]
    assert sentence.count(". ") <= 1 and "partial r = " in sentence and "r = .28" in sentence


def _early_rows(r: float, low: float, high: float, slope: float) -> pd.DataFrame:
    return pd.DataFrame({"term": ["partial_r", "slope"], "estimate": [r, slope],
                         "ci_low": [low, np.nan], "ci_high": [high, np.nan]})  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "r", "slope", "says"),
    [("ors", 0.3, 0.5, "with better ORS scores"), ("ors", -0.3, -0.5, "with worse ORS scores"),
     ("phq9", -0.31, -0.45, "with better PHQ-9 scores"), ("phq9", 0.3, 0.4, "with worse PHQ-9")],
)  # fmt: skip
def test_early_alliance_sentence_reads_the_sign_by_the_outcome_direction(outcome, r, slope, says):
    rows = _early_rows(r, r - 0.1, r + 0.1, slope)
    sentence = report_render._early_alliance_sentence(
        rows, get_instrument(outcome), get_instrument("srs"), 3, "120"
    )
    assert says in sentence
    assert ("points lower" if slope < 0 else "points higher") in sentence


def test_early_alliance_result_is_withheld_when_its_client_count_is_suppressed() -> None:
    rows = _early_rows(0.3, 0.1, 0.5, 0.5)
    ors, srs = get_instrument("ors"), get_instrument("srs")
    sentence = report_render._early_alliance_sentence(rows, ors, srs, 3, SUPPRESSED)
    assert sentence.startswith("Too few clients") and "partial r" not in sentence


def test_html_is_self_contained(html: str) -> None:
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", html)
    assert "<link" not in html and "<script" not in html
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 3 and all(i.startswith("data:image/png;base64,") for i in images)


@pytest.mark.parametrize(
    "section", ["summary", "activity", "outcomes", "alliance", "endings", "early-warning",
                "therapists", "trend", "appendix"],
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
    trend = reports[max(reports)]["year_over_year"].rows
    assert len({(row[0], row[1]) for row in trend}) == len(trend)  # NHS TT rows named apart


def _numbers(cell: str) -> list[int]:
    return [int(n) for n in re.findall(r"(?<![\d.])\d+(?![\d.%])", cell)]


def _published_counts(context: dict, truth: pd.DataFrame | None = None) -> list[tuple[str, int]]:
    """Every count a report context publishes: table cells, KPI values and denominators, and
    the event counts implied by published rates. When counts are rounded, a rate and its
    rounded denominator give the events only roughly: then the true events behind each
    published rate are taken from ``truth`` (the year's internal KPI table)."""
    rounded = context["settings"].policy.round_to > 1
    true = {} if truth is None else truth.set_index("kpi")
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
            if rounded:
                events, n = (
                    int(true.loc[row.kpi, "numerator"]),
                    int(true.loc[row.kpi, "denominator"]),
                )
            else:
                events = round(float(row.value[:-1]) / 100 * n)
            counts += [(f"{row.kpi} events", events), (f"{row.kpi} non-events", n - events)]
    counts += [(label, v) for label, cell in context["validation_rows"] for v in _numbers(cell)]
    if context["year_over_year"] is not None:  # each year's published values (not the change)
        rows = context["year_over_year"].rows
        counts += [("year over year", v) for row in rows for c in row[2:4] for v in _numbers(c)]
    return counts


def _kpi_counts(context: dict) -> dict[str, int]:
    """The counts a reader can read off the published KPI table: counts, denominators
    (``<kpi> n``) and the events behind a published rate (``<kpi> events``)."""
    counts = {}
    for row in context["kpis"].itertuples():
        if row.n.isdigit():
            counts[f"{row.kpi} n"] = int(row.n)
            if row.value.endswith("%"):
                counts[f"{row.kpi} events"] = round(float(row.value[:-1]) / 100 * int(row.n))
        elif row.value.isdigit():
            counts[row.kpi] = int(row.value)
    return counts


def _differences_a_reader_can_take(context: dict) -> list[tuple[str, int]]:
    """Counts that follow from published ones by subtraction, worked out from the published
    report alone (independently of the report's own model of its equations)."""
    kpis = _kpi_counts(context)
    found = []
    for total, parts in [
        ("finished", ["reliable_improvement events", "reliable_deterioration events"]),
        ("recovery events", ["reliable_recovery events"]),
        ("episodes_ended", ["alliance_clients_below_cutoff n"]),
        ("episodes_ended", ["finished"]),
        ("clinical_start events", ["recovery events"]),
    ]:
        if total in kpis and all(part in kpis for part in parts):
            found.append((f"{total} - {parts}", kpis[total] - sum(kpis[p] for p in parts)))
    endings = context["endings_table"]
    if endings is not None and "unplanned_endings events" in kpis:
        total_row = dict(zip(endings.header, endings.rows[-1], strict=True))
        if total_row["Dropout"].isdigit():
            rest = kpis["unplanned_endings events"] - int(total_row["Dropout"])
            found.append(("dropouts without an early rating", rest))
    sites = context["site_table"]
    for row in sites.rows[:-1] if sites is not None else []:
        cells = dict(zip(sites.header, row, strict=True))
        for bigger, smaller in (("Episodes ended", "Finished"),
                                ("Finished", "Reliable improvement")):  # fmt: skip
            if cells[bigger].isdigit() and cells[smaller].isdigit():
                found.append((f"site {row[0]}: {bigger} - {smaller}",
                              int(cells[bigger]) - int(cells[smaller])))  # fmt: skip
    return found


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
@given(small_services, policies, st.lists(st.integers(0, 9), max_size=3))
def test_no_published_count_is_small_or_recoverable_in_any_report(service, policy, rules) -> None:
    sessions = simulate_study(**service).sessions
    config = ReportSettings(dataset="s", bootstrap=100, policy=policy, therapist_plots=True)
    try:
        warning = fit_expected_response(sessions).table  # flags clients not on track
    except ValueError:
        warning = None
    tables = report_tables(sessions, config, warning)
    excluded = [{"column": "ors", "rule": f"rule {i}", "rows": n} for i, n in enumerate(rules)]
    rows = {"read": len(sessions) + sum(rules), "used": len(sessions), "excluded": sum(rules)}
    appendix = {"rows": rows, "excluded_by_rule": excluded}
    for year, context in annual_reports(tables, config, appendix=appendix).items():
        truth = tables.of_year(year)["kpis"]
        published = _published_counts(context, truth) + _differences_a_reader_can_take(context)
        for where, count in published:
            assert not policy.is_small(count), (year, where, count)
        part = tables.of_year(year)
        system = Publisher(part, policy, get_instrument("srs"), year, validation=appendix,
                           therapists=True).system  # fmt: skip
        assert_nothing_small_can_be_worked_out(system, year)
        for total, members in system.equations:  # a suppressed cell stays unknown
            unknown = [c for c in (total, *members) if not system.visible(c)]
            assert len(unknown) != 1 or unknown[0] in system.implicit, (year, total, members)


def test_a_small_service_shows_suppressed_cells_and_logs_them() -> None:
    sessions = simulate_study(n_clients=30, n_therapists=6, n_sites=2, seed=2).sessions
    reports = annual_reports(report_tables(sessions, SETTINGS), SETTINGS)
    context = reports[max(reports)]
    assert context["suppression_log"]
    page = render_html(context)
    assert f">{SUPPRESSED}<" in page
    assert context["funnel_counts"][1] > 0  # therapists with small numbers not shown


def test_the_published_report_shows_no_therapist_unless_configured(tables) -> None:
    default = replace(SETTINGS, therapist_plots=False)
    for context in annual_reports(tables, default).values():
        assert context["funnel_png"] is None and context["caterpillar_png"] is None
        assert "does not show therapists individually" in render_html(context)
        assert not any(t.startswith("Funnel") for t in (r["table"] for r in
                                                         context["suppression_log"]))  # fmt: skip


def test_publishing_the_therapists_plots_can_only_hide_more_kpis(tables) -> None:
    """The funnel's counts are suppressed jointly with the KPIs only when it is published:
    without it, no KPI is hidden that the report with it shows."""
    default = annual_reports(tables, replace(SETTINGS, therapist_plots=False))
    coded = annual_reports(tables, SETTINGS)
    for year in tables.years:
        shown = default[year]["kpis"]["value"] != SUPPRESSED
        assert (shown | (coded[year]["kpis"]["value"] == SUPPRESSED)).all()


def test_the_supervision_report_shows_every_therapist_under_their_id(tables) -> None:
    year = tables.years[-1]
    funnel = tables.of_year(year)["funnel"]
    names = {code: f"Dr {code[2:]}" for code in funnel["therapist"]}
    published = annual_reports(tables, SETTINGS)[year]
    context = supervision_reports(annual_reports(tables, SETTINGS), tables, names)[year]
    assert context["funnel_counts"] == [len(funnel), 0]
    assert published["funnel_counts"][1] > 0  # small caseloads hidden when published
    pd.testing.assert_frame_equal(context["kpis"], published["kpis"])
    page = render_html(context)
    assert "not for publication" in page and "<h1>Supervision report" in page


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
    facts = {"file": "/secret/path/sessions.csv", "rows": APPENDIX["rows"], "excluded_by_rule": []}
    summary.write_text(json.dumps(facts))
    annual_report_step(paths, summary, tmp_path / "annual_report", SETTINGS)
    written = sorted(p.name for p in (tmp_path / "annual_report").iterdir())
    assert written == ["2024-25.html", "2024-25.pdf", "2024-25_kpis.csv", "2025-26.html",
                       "2025-26.pdf", "2025-26_kpis.csv"]  # fmt: skip
    page = (tmp_path / "annual_report" / "2025-26.html").read_text()
    assert "/secret/path" not in page and "sessions.csv" in page


def test_validation_row_counts_in_the_appendix_are_protected_too(tables) -> None:
    rows = {"read": 400, "used": 397, "excluded": 3}
    rules = [{"column": "ors", "rule": "must be between 0 and 40", "rows": 3}]
    appendix = {**APPENDIX, "rows": rows, "excluded_by_rule": rules}
    context = annual_reports(tables, SETTINGS, appendix=appendix)["2025/26"]
    shown = dict(context["validation_rows"])
    assert shown["Rows read"] == "400"
    assert shown["Rows used"] == shown["Rows excluded"] == SUPPRESSED  # 397 would reveal the 3
    assert shown["\u2003column ors: must be between 0 and 40"] == SUPPRESSED


def test_severity_adjusted_effect_size_is_reported_with_configured_norms(study) -> None:
    norms = {"intercept": 14.0, "slope": -0.45, "mean_improvement": 7.0, "sd": 6.5,
             "source": "Example Norms Service (2026)"}  # fmt: skip
    workflow = {"outcome": "ors", "alliance": "srs", "early_session": 3, "bootstrap": 100,
                "seed": 1, "annual_report": {"severity_norms": {"ors": norms}}}  # fmt: skip
    config = report_settings("with norms", workflow)
    tables = report_tables(study, config)
    context = annual_reports(tables, config)["2025/26"]
    saes = context["kpis"].set_index("kpi").loc["severity_adjusted_es"]
    clinical = tables.of_year("2025/26")["kpis"].set_index("kpi").loc["clinical_start"]
    assert int(saes["n"]) == clinical["numerator"]  # clients in the clinical range at start
    assert re.fullmatch(r"-?\d+\.\d\d", saes["value"])
    page = render_html(context)
    assert "Example Norms Service (2026)" in page and "not reported" not in page


def test_without_norms_the_report_says_why_there_is_no_severity_adjusted_effect_size(html) -> None:
    assert "Severity-adjusted effect size: not reported" in html


CHROMIUM_ABSENT = "Chromium is not installed here (apt-get install chromium; .ci/run installs it)"


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=CHROMIUM_ABSENT)
@pytest.mark.parametrize(("media", "width"), [("screen", 1280), ("screen", 400), ("print", 794)])
def test_html_renders_in_headless_chromium(
    html: str, tmp_path: Path, media: str, width: int
) -> None:
    page_file = tmp_path / "report.html"
    page_file.write_text(html, encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.emulate_media(media=media)
        page.goto(page_file.as_uri())
        images = page.eval_on_selector_all(
            "img",
            "els => els.map(e => [e.complete, e.naturalWidth, e.getBoundingClientRect().width])",
        )
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        visible = page.eval_on_selector_all(
            "section", "els => els.map(e => [e.id, e.getBoundingClientRect().height])"
        )
        page.screenshot(path=str(tmp_path / f"report_{media}_{width}.png"), full_page=True)
        browser.close()
    assert len(images) == 3
    assert all(done and natural > 300 and 0 < shown <= width for done, natural, shown in images)
    assert overflow <= 0, "the page scrolls sideways"
    assert all(height > 20 for _, height in visible), visible
    assert (tmp_path / f"report_{media}_{width}.png").stat().st_size > 20_000


def _year_part(kpis: list[tuple[str, int, int | None]], accounting: list[tuple[str, int]],
               bands: list[int]):  # fmt: skip
    """One year's report tables with the given KPIs ``(kpi, numerator, denominator)`` (no
    denominator: a count), outcome accounting rows, clients by band of sessions (1, 2, 3-5)
    and nothing else."""
    rows = [{"year": "y", "group": "all", "kpi": kpi, "numerator": k,
             "denominator": np.nan if n is None else n, "estimate": k if n is None else k / n,
             "ci_low": np.nan, "ci_high": np.nan, "unit": "clients" if n is None else "proportion"}
            for kpi, k, n in kpis]  # fmt: skip
    empty = {name: pd.DataFrame(columns=columns) for name, columns in {
        "sites": ["year", "site_id", *report_steps.SITE_COLUMNS],
        "endings": ["year", "early_alliance", "dropout", "planned"],
        "alliance_bins": ["year", "bin_low", "bin_high", "sessions"],
        "funnel": ["year", "therapist", "n", "events", "rate", "overall"]}.items()}  # fmt: skip
    table = pd.DataFrame(accounting, columns=["reason", "count"]).assign(analysis="outcomes")
    clients = pd.DataFrame({"year": "y", "band": ["1", "2", "3-5"], "clients": bands})
    return {"kpis": pd.DataFrame(rows), "accounting": table, "session_bands": clients, **empty}


def test_when_ended_and_finished_differ_by_a_small_count_the_outcome_base_stays() -> None:
    part = _year_part(
        [("episodes_ended", 97, None), ("finished", 94, None),
         ("paired_data_completeness", 94, 95), ("reliable_improvement", 40, 94),
         ("unplanned_endings", 20, 97)],
        [("episodes ended", 97), ("finished (included)", 94),
         ("excluded: fewer than two sessions", 2),
         ("excluded: no outcome score at a later session", 1)],
        [2, 10, 85],
    )  # fmt: skip
    publisher = Publisher(part, DisclosurePolicy(), get_instrument("srs"), "y")
    # 97 - 94 = 3 clients who ended without finishing: one of the two counts must go
    assert publisher.shows("finished") and publisher.shows("reliable_improvement")
    assert not publisher.shows("episodes_ended") and not publisher.shows("unplanned_endings")


def test_early_warning_kpis_count_the_years_ended_cases(study, tables, warning) -> None:
    """The not-on-track KPIs of a year are the signals of the cases that ended in it, by the
    early-warning table's model (not refitted); the rupture KPIs those cases' ruptures."""
    year = "2025/26"
    ended = client_outcomes(study, "ors", start_month=4).loc[lambda c: c["year"] == year]
    model = ExpectedResponse.from_table(warning, "ors", 0.1)
    signals = signalled_cases(not_on_track(study, model))
    cases = signals.reindex(ended["client_id"]).dropna(subset=["signal"])
    kpis = tables.kpis[tables.kpis["year"] == year].set_index("kpi")
    assert kpis.loc["not_on_track", "numerator"] == cases["signal"].astype(bool).sum()
    assert kpis.loc["not_on_track", "denominator"] == len(cases)
    flagged = cases[cases["signal"].astype(bool)]
    assert kpis.loc["not_on_track_deteriorated", "numerator"] == flagged["deteriorated"].sum()
    detected = detect_ruptures(study)
    mine = case_ruptures(detected).set_index("client_id").reindex(ended["client_id"])
    mine = mine.dropna(subset=["ratings"])
    rated = mine[mine["ratings"] >= 2]
    assert kpis.loc["clients_with_rupture", "numerator"] == (rated["ruptures"] > 0).sum()
    assert kpis.loc["clients_with_rupture", "denominator"] == len(rated)


def test_without_the_expected_response_model_only_the_rupture_kpis_are_reported(study) -> None:
    kpis = set(report_tables(study, SETTINGS).kpis["kpi"])
    assert {"clients_with_rupture", "ruptures_repaired"} <= kpis
    assert not {"not_on_track", "not_on_track_deteriorated"} & kpis


def test_the_early_warning_section_quotes_the_findings_across_all_years(html) -> None:
    section = html[html.index('<section id="early-warning"') :]
    section = section[: section.index("</section>")]
    for phrase in ("Alliance ruptures", "Dropout risk", "Not on track", "Feedback: only one",
                   "Early-warning signals, 2025/26", "use all years of data"):  # fmt: skip
        assert phrase in section, phrase


WARNING_ROWS = pd.DataFrame(
    [("ruptures", "threshold", 5.4, np.nan, np.nan, ""),
     ("rupture_outcome", "rupture_unrepaired", 2.0, 1.0, 3.0, ""),
     ("rupture_outcome", "rupture_repaired", -0.5, -1.5, 0.5, ""),
     ("feedback_outcome", "feedback", -1.2, -2.0, -0.4, "x; " + DESIGNS["before_after"])],
    columns=["model", "term", "estimate", "ci_low", "ci_high", "message"],
)  # fmt: skip


def test_rupture_findings_read_higher_scores_as_worse_when_lower_is_better() -> None:
    """PHQ-9: 2 points higher after an unrepaired rupture is worse; dropout and signal rows
    absent from the table are left out; feedback carries the design's statement."""
    paragraphs = early_warning_paragraphs(WARNING_ROWS, get_instrument("phq9"),
                                          get_instrument("srs"))  # fmt: skip
    assert len(paragraphs) == 2
    assert "never repaired were 2.0 points higher (worse; 95% CI 1.0 to 3.0)" in paragraphs[0]
    assert "repaired rupture 0.5 points lower (better" in paragraphs[0]
    assert paragraphs[1].endswith(DESIGNS["before_after"])
    assert "-1.2 points" in paragraphs[1]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_services, policies)
def test_no_year_republishes_what_another_year_suppressed(service, policy) -> None:
    """Across years (the intruder with both years' reports): the year-over-year table of a
    later year shows an earlier year's KPI only when that year's own report shows it, so no
    value hidden in one year's report can be read from the next one's."""
    sessions = simulate_study(**service, start_date="2023-04-01", end_date="2025-03-31").sessions
    config = ReportSettings(dataset="s", bootstrap=50, policy=policy, therapist_plots=True)
    reports = annual_reports(report_tables(sessions, config), config)
    hidden = {(year, row.label) for year, c in reports.items()
              for row in c["kpis"].itertuples() if row.value == SUPPRESSED}  # fmt: skip
    for context in reports.values():
        table = context["year_over_year"]
        for label, before, then, *_ in table.rows if table is not None else []:
            if (before, label) in hidden:
                assert then == SUPPRESSED, (before, label, then)


def test_a_site_of_one_therapist_is_not_published_on_its_own(study) -> None:
    """The threshold rule for sites: a site whose counts are one therapist's caseload is merged
    with others until the merged row has at least three therapists."""
    one = study["therapist_id"].iloc[0]
    sessions = study.assign(site_id=study["site_id"].where(study["therapist_id"] != one, "solo"))
    sites = report_tables(sessions, SETTINGS).sites
    other = report_steps.OTHER_SITES
    assert "solo" not in set(sites["site_id"]) and other in set(sites["site_id"])
    every = report_tables(study, SETTINGS).sites
    sessions_by_year = sites.groupby("year")["sessions_attended"].sum()
    assert sessions_by_year.equals(every.groupby("year")["sessions_attended"].sum())


def test_a_service_of_one_client_gets_both_reports() -> None:
    """One client, one session, no optional column: nothing to draw of therapists, and both
    variants still render."""
    sessions = pd.DataFrame({"client_id": ["C1"], "therapist_id": ["T1"], "session": [1],
                             "ors": [20.0], "srs": [38.0]})  # fmt: skip
    settings = replace(SETTINGS, bootstrap=10)
    tables = report_tables(sessions, settings)
    reports = annual_reports(tables, settings)
    for context in supervision_reports(reports, tables, {}).values():
        assert context["funnel_png"] is None and "Supervision report" in render_html(context)


def test_another_outcome_measure_is_reported_and_protected_like_the_first() -> None:
    sessions = simulate_study(n_clients=60, n_therapists=6, n_sites=2, seed=5).sessions
    sessions["phq9"] = (27 - sessions["ors"] * 27 / 40).round().clip(0, 27)
    tables = report_tables(sessions, SETTINGS)
    assert {"phq9:finished", "phq9:reliable_improvement"} <= set(tables.kpis["kpi"])
    for year, context in annual_reports(tables, SETTINGS).items():
        published = context["kpis"]
        assert published["kpi"].str.startswith("phq9:").any()
        assert [inst.key for inst, _ in context["other_outcomes"]] == ["phq9"]
        system = Publisher(tables.of_year(year), SETTINGS.policy, get_instrument("srs"),
                           year).system  # fmt: skip
        assert_nothing_small_can_be_worked_out(system, year)
        html = render_html(context)
        assert "Patient Health Questionnaire-9 (PHQ-9)" in html
