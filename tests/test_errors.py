"""Errors that cannot hide bugs: only ``NotEstimable`` becomes a "not computed" row.

A bug inside an analysis (here a ``ValueError`` or ``KeyError`` injected into one, as pandas
raises) must fail its step, never be published as a row; an analysis the data cannot support
gives one row saying why. In the workflow the failed step's log keeps the traceback and the
user reads one plain line naming the dataset and the step.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from allianceanalysis import feedback, models, tidy
from allianceanalysis.cli import report_user_errors
from allianceanalysis.errors import NotEstimable
from allianceanalysis.layout import internal, published
from allianceanalysis.models import CATALOGUE, CatalogueEntry, fit_model
from allianceanalysis.pipeline import early_warning_step
from allianceanalysis.simulate import simulate_study

from .helpers import snakemake, write_config

SETTINGS = {"rupture_threshold": None, "repair_within": 3, "not_on_track_percentile": 0.1,
            "folds": 5}  # fmt: skip


def broken(*args: object, **kwargs: object) -> pd.DataFrame:
    raise ValueError("injected bug: cannot reindex on an axis with duplicate labels")


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sessions") / "sessions.parquet"
    simulate_study(n_clients=120, n_therapists=8, seed=3).sessions.to_parquet(path)
    return path


def run_early_warning(sessions: Path, folder: Path) -> pd.DataFrame:
    early_warning_step(sessions, table=folder / "t.csv", calibration=folder / "c.csv",
                       sequences=folder / "s.parquet", curves=folder / "e.csv", outcome="ors",
                       alliance="srs", early_session=3, settings=SETTINGS, seed=1)  # fmt: skip
    return pd.read_csv(folder / "t.csv")


def test_not_estimable_becomes_one_row_saying_why() -> None:
    def no_dropout() -> pd.DataFrame:
        raise NotEstimable("no dropout in the data")

    table = tidy.or_reason("dropout_risk", no_dropout)
    assert table[["model", "term", "message"]].values.tolist() == [
        ["dropout_risk", "not_fitted", "not computed: no dropout in the data"]
    ]
    assert list(table.columns) == tidy.TIDY_COLUMNS and not table["converged"].any()


@pytest.mark.parametrize("bug", [ValueError, KeyError, IndexError])
def test_any_other_exception_propagates_from_or_reason(bug: type[Exception]) -> None:
    def buggy() -> pd.DataFrame:
        raise bug("a bug")

    with pytest.raises(bug):
        tidy.or_reason("dropout_risk", buggy)


def test_not_estimable_is_no_value_error() -> None:
    """A bad argument or a library's ValueError must not pass for a verdict on the data."""
    assert not issubclass(NotEstimable, ValueError)


def test_a_bug_in_an_early_warning_analysis_fails_its_step(sessions, tmp_path, monkeypatch):
    monkeypatch.setattr(feedback, "feedback_effects", broken)
    with pytest.raises(ValueError, match="injected bug"):
        run_early_warning(sessions, tmp_path)
    assert not (tmp_path / "t.csv").exists()


def test_an_early_warning_analysis_the_data_cannot_support_is_a_row(sessions, tmp_path) -> None:
    """The simulated service has one condition: feedback's row says so; the rest is fitted."""
    table = run_early_warning(sessions, tmp_path)
    row = table[table["model"] == "feedback_outcome"]
    assert len(row) == 1 and row["estimate"].isna().all()
    assert table.loc[table["model"] == "dropout_risk", "estimate"].notna().any()


def test_a_bug_in_a_catalogue_model_fails_instead_of_a_not_fitted_row(monkeypatch) -> None:
    entry = CATALOGUE["dropout"]
    monkeypatch.setitem(CATALOGUE, "dropout", CatalogueEntry(broken, entry.data, entry.formula, ()))
    clients = pd.DataFrame({"dropout": [0.0, 1.0], "alliance_early": [30.0, 20.0]})
    with pytest.raises(ValueError, match="injected bug"):
        fit_model("dropout", clients)


def test_catalogue_entries_declare_the_settings_they_take(monkeypatch) -> None:
    seen = {}

    def record(data: pd.DataFrame, **options: object) -> pd.DataFrame:
        seen.update(options)
        return tidy.frame([])

    monkeypatch.setitem(CATALOGUE, "probe", CatalogueEntry(record, "clients", "y ~ x",
                                                           ("seed", "bootstrap")))  # fmt: skip
    fit_model("probe", pd.DataFrame(), seed=9, bootstrap=300, engine="mixedlm")
    assert seen == {"seed": 9, "bootstrap": 300}
    with pytest.raises(TypeError, match="unknown catalogue options: cores"):
        CatalogueEntry(record, "clients", "y ~ x", ("cores",))
    with pytest.raises(TypeError, match="unknown table 'client'"):
        CatalogueEntry(record, "client", "y ~ x")
    assert all(set(e.options) <= set(models.SETTINGS) for e in CATALOGUE.values())


def test_a_bug_in_a_step_logs_its_traceback_and_says_one_plain_line(tmp_path, capsys) -> None:
    log = tmp_path / "step.log"
    with pytest.raises(SystemExit) as stop, report_user_errors(log, "dataset 'demo'", "models"):
        broken()
    assert stop.value.code == 1
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0
    assert message.startswith("error: dataset 'demo', step 'models': the step failed with an "
                              "unexpected ValueError, a bug in allianceanalysis")  # fmt: skip
    assert str(log) in message
    logged = log.read_text()
    assert "Traceback (most recent call last)" in logged and "injected bug" in logged


def test_outside_a_workflow_step_a_bug_keeps_its_traceback() -> None:
    with pytest.raises(ValueError, match="injected bug"), report_user_errors():
        broken()


def test_an_injected_bug_fails_the_workflow(tmp_path: Path) -> None:
    """Through Snakemake: an analysis that raises (a ValueError, as pandas does) stops the
    run; no early-warning table is written; the log holds the traceback; the user reads which
    dataset and step failed."""
    simulate_study(n_clients=80, n_therapists=6, seed=5).sessions.to_csv(
        tmp_path / "service.csv", index=False
    )
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(
        "import allianceanalysis.feedback as feedback\n"
        "def broken(*args, **kwargs):\n"
        "    raise ValueError('injected bug: cannot reindex on an axis with duplicate labels')\n"
        "feedback.feedback_effects = broken\n"
    )
    config = write_config(tmp_path, {"service": {"path": "service.csv"}})
    target = published("service", "tables", "early_warning.csv")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "inject")}
    done = snakemake(tmp_path, target, "--configfile", str(config), env=env)
    assert done.returncode != 0
    assert not (tmp_path / target).exists()
    assert ("error: dataset 'service', step 'early_warning': the step failed with an unexpected "
            "ValueError") in done.stderr  # fmt: skip
    log = (tmp_path / internal("service", "logs", "early_warning.log")).read_text()
    assert "Traceback (most recent call last)" in log and "injected bug" in log
