"""The program evaluator's annual report: one self-contained HTML and PDF per reporting year.

Three parts, two steps, so that nothing is refitted at render time:

1. :mod:`~allianceanalysis.annual_report.tables`: :func:`report_tables` computes every number
   a report needs, for every reporting year, as tidy tables (:class:`ReportTables`: KPIs with
   their numerators and denominators, the accounting of cases, counts by site, endings by
   early alliance, the funnel table, the alliance histogram, the year's early-alliance
   estimates and shrunken therapist effects). These are internal: they hold unsuppressed
   counts.
2. :mod:`~allianceanalysis.annual_report.render`: :func:`annual_reports` reads only those
   tables, passes every published number through disclosure control
   (:mod:`allianceanalysis.disclosure`) in one place
   (:class:`Publisher`, :mod:`~allianceanalysis.annual_report.publisher`),
   draws the figures and writes the text; :func:`render_html` and :func:`render_pdf` turn
   each year's context into files with a jinja2 template.

Examples
--------
>>> from allianceanalysis.simulate import simulate_study
>>> study = simulate_study(n_clients=150, n_therapists=8, seed=3)
>>> settings = ReportSettings(dataset="demo", bootstrap=200)
>>> tables = report_tables(study.sessions, settings)
>>> reports = annual_reports(tables, settings)
>>> sorted(reports)
['2024/25', '2025/26']
>>> html = render_html(reports["2025/26"])
"""

from .publisher import KPI_LABELS, Publisher
from .render import annual_reports, early_warning_paragraphs, render_html, render_pdf, summarise_log
from .tables import ReportSettings, ReportTables, report_tables, year_file_name

__all__ = [
    "KPI_LABELS",
    "Publisher",
    "ReportSettings",
    "ReportTables",
    "annual_reports",
    "early_warning_paragraphs",
    "render_html",
    "render_pdf",
    "report_tables",
    "summarise_log",
    "year_file_name",
]
