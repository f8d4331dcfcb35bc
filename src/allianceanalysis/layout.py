"""Where the workflow's outputs live, and which of them may be published.

Every output of a dataset is either **published** (safe to hand to anyone: no ID, no session
date, no count below the suppression rule, no therapist-level series unless asked for) or
**internal** (the service's own), and its path says which::

    results/<dataset>/published/   provenance.json
                                   tables/         model tables (tidy CSV), early warning,
                                                   expected-response curves, pooled sites
                                   tables/apa/     the model tables in APA style
                                   figures/        PNG and SVG
                                   annual_report/  per year: HTML, PDF, suppressed KPI table
    results/<dataset>/internal/    validated/      the analysable sessions
                                   validation/     summary, row accounting, excluded rows
                                   derived/        case-level tables, therapist_codes.csv
                                   missing_data/   each early session's multiple imputation
                                   tables/         therapist-level tables, dropout calibration
                                   figures/        therapist-level figures
                                   report_tables/  the annual report's unsuppressed numbers
                                   supervision/    the internal supervision report
                                   logs/           logs and benchmarks

The pooled analysis across datasets is ``results/_pooled/`` with the same two folders.
``allianceanalysis publish`` assembles the ``published/`` folders, and only them, after the
disclosure audit (:mod:`allianceanalysis.publish`).

Therapist-level series (a row or point per therapist: the ``therapist_effects`` model and its
caterpillar plot) are internal. Under keyed codes nobody can recompute who is who, but a
reader who knows the therapists' caseloads could match them by the number of clients each one
shows (docs/annual-report.md, "What an intruder can learn"). The published annual report
adds its coded funnel and caterpillar plots only when the configuration asks for them
(``annual_report: therapist_plots: true``).

Examples
--------
>>> published("demo", "tables", "models.csv")
'results/demo/published/tables/models.csv'
>>> internal("{dataset}", "logs", "models.log")
'results/{dataset}/internal/logs/models.log'
>>> model_table("demo", "therapist_effects")
'results/demo/internal/tables/therapist_effects.csv'
"""

from __future__ import annotations

from pathlib import PurePosixPath

__all__ = [
    "INTERNAL",
    "POOLED",
    "PUBLISHED",
    "RESULTS",
    "figure_file",
    "internal",
    "model_table",
    "published",
]

RESULTS = "results"
PUBLISHED = "published"
INTERNAL = "internal"
POOLED = "_pooled"
"""The pooled analysis across datasets (a folder beside the datasets')."""


def published(dataset: str, *parts: str) -> str:
    """A published output's path, relative to the working directory."""
    return str(PurePosixPath(RESULTS, dataset, PUBLISHED, *parts))


def internal(dataset: str, *parts: str) -> str:
    """An internal output's path, relative to the working directory."""
    return str(PurePosixPath(RESULTS, dataset, INTERNAL, *parts))


def _side(therapist_level: bool):
    return internal if therapist_level else published


def model_table(dataset: str, model: str, suffix: str = ".csv", *, apa: bool = False) -> str:
    """The table of catalogue model ``model``: published, or internal when it is
    therapist-level (:attr:`allianceanalysis.models.CatalogueEntry.therapist_level`)."""
    from .models import CATALOGUE

    folder = ("tables", "apa") if apa else ("tables",)
    return _side(CATALOGUE[model].therapist_level)(dataset, *folder, f"{model}{suffix}")


def figure_file(dataset: str, name: str, suffix: str) -> str:
    """The file of per-dataset figure ``name``: published, or internal when it is
    therapist-level (:attr:`allianceanalysis.figures.FigureEntry.therapist_level`)."""
    from .figures import FIGURES

    return _side(FIGURES[name].therapist_level)(dataset, "figures", f"{name}{suffix}")
