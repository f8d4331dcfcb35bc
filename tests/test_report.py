"""The Snakemake report opens in a browser with every figure visible (headless Chromium).

Marked ``browser``: it needs Chromium (``apt-get install chromium``), which ``.ci/run``
installs before ``make test-browser``; the default suite (``make test``) leaves it out so that
a fresh machine with only Python and make passes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allianceanalysis.figures import FIGURES

from .helpers import ROOT
from .report_check import check_report

pytestmark = pytest.mark.browser
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("report")
    shutil.copytree(ROOT / "data" / "demo", workdir / "data" / "demo")
    shutil.copy(ROOT / "config" / "config.yaml", workdir / "config.yaml")
    common = [
        str(SNAKEMAKE),
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "2",
        "--configfile",
        str(workdir / "config.yaml"),
    ]
    subprocess.run(common, check=True, capture_output=True)
    subprocess.run([*common, "--report", "report.html"], check=True, capture_output=True)
    return workdir / "report.html"


def test_every_figure_of_every_dataset_displays(report: Path, tmp_path: Path) -> None:
    seen = check_report(report, ["demo", "clinic_b"], screenshots=tmp_path)
    for category, figures in seen.items():
        assert len(figures) == len(FIGURES), category
        for name, (width, height) in figures.items():
            assert width > 300 and height > 300, (category, name)
    assert len(list(tmp_path.glob("*.png"))) == 2 * len(FIGURES)
