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

import json
import math
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from allianceanalysis.annual_report import render_pdf
from allianceanalysis.layout import figure_file, internal, published
from allianceanalysis.pseudonyms import codes_frame, seeded_codes
from allianceanalysis.publish import DisclosureError, bundle_files, publish, published_text

from .helpers import ALLIANCEANALYSIS, AUDITED, SHAPES, TEST_KEY


def annual_reports(workdir: Path, shape: str) -> list[str]:
    folder = workdir / published(shape, "annual_report")
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_dataset_without_optional_columns_runs_to_its_annual_report(stranger_run, shape) -> None:
    written = annual_reports(stranger_run, shape)
    assert written and all(Path(n).suffix in (".html", ".pdf", ".csv") for n in written), written
    for output in (published(shape, "tables", "models.csv"),
                   published(shape, "tables", "early_warning.csv"),
                   published(shape, "provenance.json"),
                   figure_file(shape, "therapist_caterpillar", ".png"),
                   published(shape, "tables", "pooled_sites.csv")):  # fmt: skip
        assert (stranger_run / output).is_file(), output


@pytest.mark.parametrize("shape", ["no_site_id", "required_only"])
def test_without_sites_the_report_has_no_table_by_site(stranger_run, shape) -> None:
    html = [p for p in (stranger_run / published(shape, "annual_report")).glob("*.html")]
    assert html and not any("Activity by site" in p.read_text() for p in html)
    with_sites = (stranger_run / published("no_condition", "annual_report")).glob("*.html")
    assert any("Activity by site" in p.read_text() for p in with_sites)


@pytest.mark.parametrize("shape", ["required_only"])
def test_without_dates_the_report_covers_one_period(stranger_run, shape) -> None:
    assert annual_reports(stranger_run, shape) == ["all.html", "all.pdf", "all_kpis.csv"]
    html = (stranger_run / published(shape, "annual_report", "all.html")).read_text()
    assert "<h1>Report on all sessions</h1>" in html and "The data have no session dates" in html


def test_without_conditions_feedback_says_there_is_one_condition(stranger_run) -> None:
    table = pd.read_csv(stranger_run / published("no_condition", "tables", "early_warning.csv"))
    row = table[table["model"] == "feedback_outcome"]
    assert len(row) == 1 and row["estimate"].isna().all()
    assert row["converged"].eq(False).all()


@pytest.fixture(scope="module")
def seeded_run(stranger_run: Path) -> tuple[Path, pd.DataFrame]:
    """The audited dataset of the shared run of data we did not make (conftest.py): the
    demo data with distinctive client and therapist IDs, a free-text column and a date of birth
    the user let through, and the sessions as they went in."""
    return stranger_run, pd.read_csv(stranger_run / "data" / "sessions.csv", dtype=str)


def test_no_published_file_holds_an_id_a_date_of_birth_a_session_date_or_free_text(
    seeded_run,
) -> None:
    """Every file of the publish bundle of every dataset (tables, figures as SVG text, annual
    reports as HTML text, PDF text layer and KPI table, provenance; PNGs are the same figures
    drawn as pixels) is searched for each value as a substring (independently of the publish
    audit's own whole-token search): no client ID, no therapist ID, no session date, no date
    of birth and no free text appears."""
    workdir, sessions = seeded_run
    results = workdir / "results"
    files = [p for p in bundle_files(SHAPES, workdir).values() if p.suffix != ".png"]
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
    svg = next((workdir / published(AUDITED, "figures")).glob("*.svg"))
    assert "<text" in svg.read_text(encoding="utf-8")


def test_publish_bundles_every_published_file_and_nothing_internal(stranger_run, tmp_path) -> None:
    """``allianceanalysis publish`` through the front door: the bundle holds every file of
    the ``published/`` folders (and only those), after an audit that found nothing."""
    bundle = tmp_path / "bundle.zip"
    done = subprocess.run([str(ALLIANCEANALYSIS), "publish", "config.yaml", "--output",
                           str(bundle)], cwd=stranger_run, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"to {bundle}" in done.stdout
    names = zipfile.ZipFile(bundle).namelist()
    expected = sorted(bundle_files(SHAPES, stranger_run))
    assert names == expected and len(names) > 100
    assert all(Path(n).parts[1] == "published" for n in names)
    assert any(n.endswith(".pdf") for n in names) and any(n.endswith("_kpis.csv") for n in names)


def test_publish_writes_the_same_bundle_twice(stranger_run, tmp_path) -> None:
    first, _ = publish(stranger_run / "config.yaml", directory=stranger_run,
                       output=tmp_path / "a.zip")  # fmt: skip
    second, _ = publish(stranger_run / "config.yaml", directory=stranger_run,
                        output=tmp_path / "b.zip")  # fmt: skip
    assert first.read_bytes() == second.read_bytes()


@pytest.fixture
def leaky_run(stranger_run: Path, tmp_path: Path) -> Path:
    """A copy of the strangers' run, to plant leaks in."""
    workdir = tmp_path / "run"
    shutil.copytree(stranger_run, workdir, ignore=shutil.ignore_patterns(".snakemake"))
    return workdir


def planted(workdir: Path) -> dict[str, Callable[[], None]]:
    """Each kind of leak the audit must catch, planted in a copy of a finished run."""
    tables = workdir / published(AUDITED, "tables")
    sessions = pd.read_csv(workdir / "data" / "sessions.csv", dtype=str)
    codes = workdir / internal(AUDITED, "derived", "therapist_codes.csv")
    seed = json.loads((workdir / published(AUDITED, "provenance.json")).read_text())["seed"]

    def seeded() -> None:  # the codes of earlier versions
        roster = pd.read_csv(codes, dtype=str)["therapist_id"]
        codes_frame(seeded_codes(roster, seed)).to_csv(codes, index=False)

    return {
        "client ID": lambda: (tables / "notes.csv").write_text(
            f"case\n{sessions['client_id'].iloc[5]}\n"),
        "therapist ID": lambda: shutil.copy(codes, tables / "key.csv"),
        "session date": lambda: (tables / "dates.md").write_text(
            f"first session {sessions['session_date'].iloc[0]}\n"),
        "count below 5": lambda: shutil.copy(
            workdir / internal(AUDITED, "tables", "dropout_calibration.csv"), tables),
        "pseudonym key": lambda: (tables / "k.txt").write_text(TEST_KEY.hex()),
        "recomputable from a number in the bundle": seeded,
    }  # fmt: skip


def test_publish_refuses_a_bundle_with_leaks_names_each_and_writes_nothing(leaky_run) -> None:
    """Every kind of leak, planted in a copy of a finished run, is found and named (file and
    kind, never the value); nothing is written."""
    leaks = planted(leaky_run)
    for plant in leaks.values():
        plant()
    target = leaky_run / "out.zip"
    with pytest.raises(DisclosureError) as refused:
        publish(leaky_run / "config.yaml", directory=leaky_run, output=target)
    message = str(refused.value)
    assert "nothing was written" in message
    for leak in leaks:
        assert leak in message, leak
    assert TEST_KEY.hex() not in message
    assert not target.exists() and not list(leaky_run.glob(".out.zip*"))


def seeded_guesses(roster: list[str], bundle: dict[str, Path], truth: dict[str, str]) -> list[int]:
    """For every integer the bundle prints (the seed of provenance.json among them), how many
    therapists the earlier versions' code scheme gets right with it as the seed: what an
    intruder could do at best, even if told which guess was right."""
    text = "\n".join(published_text(path) for path in bundle.values())
    numbers = sorted({int(i) for i in re.findall(r"(?<![\d.])\d{1,18}(?![\d.])", text)})
    return [sum(seeded_codes(roster, n)[t] == truth[t] for t in roster) for n in numbers]


def chance_bound(guesses: int, alpha: float = 1e-4) -> int:
    """The most codes ``guesses`` random permutations get right by chance: the smallest k with
    guesses × P(k or more fixed points) below ``alpha`` (fixed points of a random permutation
    are Poisson(1), to within 1/n!)."""
    k, tail = 0, 1.0
    while guesses * tail >= alpha:
        tail -= math.exp(-1) / math.factorial(k)
        k += 1
    return k


def test_the_motivated_intruder_reidentifies_no_one(stranger_run) -> None:
    """The intruder has the staff list (every therapist ID), the configuration, both years'
    reports and every file of the bundle. Earlier versions' codes, a permutation seeded by the
    configured seed that provenance.json prints, gave all 20 therapists away; keyed codes are
    matched no better than chance by any number the bundle prints, and the default bundle
    shows no code and no therapist's caseload to match one to."""
    bundle = bundle_files(SHAPES, stranger_run)
    codes = pd.read_csv(stranger_run / internal(AUDITED, "derived", "therapist_codes.csv"),
                        dtype=str)  # fmt: skip
    truth = dict(zip(codes["therapist_id"], codes["code"], strict=True))
    roster = sorted(truth)
    printed = json.loads(bundle[f"{AUDITED}/published/provenance.json"].read_text())["seed"]
    configured = yaml.safe_load((stranger_run / "config.yaml").read_text()).get("seed", 20261125)
    assert printed == configured and len(roster) == 20
    earlier = seeded_codes(roster, configured)  # the codes an earlier version published
    assert max(seeded_guesses(roster, bundle, earlier)) == 20  # the old scheme: all 20 found
    right = seeded_guesses(roster, bundle, truth)
    assert max(right) < chance_bound(len(right))  # keyed: no better than chance
    assert sum(seeded_codes(roster, printed)[t] == truth[t] for t in roster) <= 4
    reports = [n for n in bundle if n.startswith(f"{AUDITED}/published/annual_report/")]
    assert sorted(n.rsplit("/", 1)[1] for n in reports if n.endswith(".html")) == [
        "2024-25.html", "2025-26.html"]  # fmt: skip
    text = "\n".join(published_text(path) for path in bundle.values())
    assert not re.search(r"\bTH\d+\b", text)  # no code, so no caseload to match a code to
    assert not any(n.endswith("therapist_effects.csv") for n in bundle)


def test_without_therapist_codes_models_drop_the_level_and_say_so(stranger_run) -> None:
    models = pd.read_csv(stranger_run / published("required_only", "tables", "models.csv"))
    rows = models.set_index(["model", "term"])
    assert "without the therapist level" in rows.loc[("alliance_outcome", "alliance_early"),
                                                     "message"]  # fmt: skip
    assert rows.loc[("therapist_icc", "not_fitted"), "message"].startswith(
        "not computed: the data have fewer than two therapists"
    )


def test_without_therapist_codes_the_report_has_no_therapist_section(stranger_run) -> None:
    html = list((stranger_run / published("required_only", "annual_report")).glob("*.html"))
    assert html and all('id="therapists"' not in p.read_text() for p in html)
    assert all("the data have no therapist codes" in p.read_text() for p in html)
