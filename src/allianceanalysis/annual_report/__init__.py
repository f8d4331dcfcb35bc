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

The package's names are imported from their module when first used, so a step that only
computes tables (``report_tables``) does not import the rendering (matplotlib, jinja2).

Examples
--------
>>> from allianceanalysis.annual_report import (
...     ReportSettings, annual_reports, render_html, report_tables)
>>> from allianceanalysis.simulate import simulate_study
>>> study = simulate_study(n_clients=150, n_therapists=8, seed=3)
>>> settings = ReportSettings(dataset="demo", bootstrap=200)
>>> tables = report_tables(study.sessions, settings)
>>> reports = annual_reports(tables, settings)
>>> sorted(reports)
['2024/25', '2025/26']
>>> html = render_html(reports["2025/26"])
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .publisher import KPI_LABELS, Publisher
    from .render import (
        annual_reports,
        early_warning_paragraphs,
        missing_data_paragraph,
        render_html,
        render_pdf,
        summarise_log,
        supervision_reports,
    )
    from .tables import ReportSettings, ReportTables, report_tables, year_file_name

_MODULE_OF = {
    "KPI_LABELS": "publisher",
    "Publisher": "publisher",
    "ReportSettings": "tables",
    "ReportTables": "tables",
    "annual_reports": "render",
    "early_warning_paragraphs": "render",
    "missing_data_paragraph": "render",
    "render_html": "render",
    "render_pdf": "render",
    "report_tables": "tables",
    "summarise_log": "render",
    "supervision_reports": "render",
    "year_file_name": "tables",
}
__all__ = [
    "KPI_LABELS",
    "Publisher",
    "ReportSettings",
    "ReportTables",
    "annual_reports",
    "early_warning_paragraphs",
    "missing_data_paragraph",
    "render_html",
    "render_pdf",
    "report_tables",
    "summarise_log",
    "supervision_reports",
    "year_file_name",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
