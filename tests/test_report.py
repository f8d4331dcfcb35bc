"""The Snakemake report opens in a browser with every figure visible (headless Chromium).

Marked ``browser``: it needs Chromium (``apt-get install chromium``), which ``.ci/run``
installs before ``make test-browser``; the default suite (``make test``) leaves it out so that
a fresh machine with only Python and make passes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from allianceanalysis.figures import FIGURES

from .report_check import check_report

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report(demo_run: Path) -> Path:
    """The browsable report of the shared demo run (``allianceanalysis run``, conftest.py)."""
    return demo_run / "results" / "report.html"


def test_every_figure_of_every_dataset_displays(report: Path, tmp_path: Path) -> None:
    seen = check_report(report, ["demo", "clinic_b"], screenshots=tmp_path)
    for category, figures in seen.items():
        assert len(figures) == len(FIGURES), category
        for name, (width, height) in figures.items():
            assert width > 300 and height > 300, (category, name)
    assert len(list(tmp_path.glob("*.png"))) == 2 * len(FIGURES)
