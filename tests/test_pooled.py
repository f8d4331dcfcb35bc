"""Pooled analysis: equal to R's metafor (two-stage) and lme4 (one-stage) on the same data.

Reference values: ``tests/reference/metafor_<analysis>.csv`` from
``tests/reference/metafor_reference.R`` (``make reference``). Tolerances: relative 1e-6 for
the meta-analysis (the same closed forms, REML tau² optimised to 1e-12), 1e-4 for the
one-stage mixed model (as the catalogue's fixed effects).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from allianceanalysis.config import DatasetSpec
from allianceanalysis.derive import client_table
from allianceanalysis.figures import pooled_forest
from allianceanalysis.io import load_dataset
from allianceanalysis.pooled import LITERATURE_R, one_stage, pooled_table, random_effects

from .helpers import ROOT

REFERENCE = ROOT / "tests" / "reference"
DATASETS = {"ors_srs": ("ors", "srs"), "phq9_wai": ("phq9", "wai_sr")}


def clients(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    outcome, alliance = DATASETS[name]
    spec = DatasetSpec(
        name=name, path=REFERENCE / "data" / f"{name}.csv", outcome=outcome, alliance=alliance
    )
    sessions = load_dataset(spec).sessions
    table = client_table(sessions, outcome, alliance)
    site = sessions.drop_duplicates("client_id").set_index("client_id")["site_id"]
    return table.assign(site_id=table["client_id"].map(site)), sessions


def by_site(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {site: part for site, part in table.groupby("site_id")}


def compare(ours: pd.DataFrame, reference_file: Path) -> None:
    reference = pd.read_csv(reference_file)
    merged = reference.merge(ours, on=["model", "term"], suffixes=("_r", ""), how="left")
    assert merged["estimate"].notna().all(), merged.loc[merged["estimate"].isna(), "term"]
    for column in ("estimate", "std_error", "ci_low", "ci_high", "p_value"):
        present = merged[merged[f"{column}_r"].notna()]
        rtol = 1e-4 if (present["model"] == "one_stage").any() else 1e-6
        for _, row in present.iterrows():
            tol = 1e-4 if row["model"] == "one_stage" else rtol
            assert np.isclose(row[column], row[f"{column}_r"], rtol=tol, atol=1e-10), (
                row["model"],
                row["term"],
                column,
                row[column],
                row[f"{column}_r"],
            )


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_pooling_sites_equals_metafor_and_lme4(name: str) -> None:
    table, _ = clients(name)
    sites = by_site(table)
    ours = pd.concat([pooled_table(sites, "pooled_sites"), one_stage(sites)])
    compare(ours, REFERENCE / f"metafor_{name}_sites.csv")


def test_pooling_datasets_equals_metafor_and_lme4() -> None:
    studies = {name: clients(name)[0] for name in sorted(DATASETS)}
    ours = pd.concat([pooled_table(studies, "pooled_datasets"), one_stage(studies)])
    compare(ours, REFERENCE / "metafor_datasets.csv")


def test_homogeneous_studies_have_zero_tau2_and_hk_interval() -> None:
    result = random_effects(np.array([0.3, 0.3, 0.3]), np.array([0.01, 0.02, 0.03]))
    assert result.tau2 == 0.0
    assert result.i2 == 0.0
    assert result.ci_low == result.ci_high == pytest.approx(0.3)


def test_one_study_cannot_be_pooled() -> None:
    with pytest.raises(ValueError, match="at least two studies"):
        random_effects(np.array([0.3]), np.array([0.01]))


def test_pooled_table_with_one_study_lists_it_without_pooling() -> None:
    table, _ = clients("ors_srs")
    rows = pooled_table({"only": table}, "pooled_sites")
    assert rows["term"].tolist() == ["study:only"]


def test_forest_plot_marks_the_literature_anchor() -> None:
    table, _ = clients("ors_srs")
    figure = pooled_forest(pooled_table(by_site(table), "pooled_sites"), "Sites")
    axis = figure.axes[0]
    anchors = [line for line in axis.lines if list(line.get_xdata()) == [LITERATURE_R] * 2]
    assert anchors, "no reference line at r = .278"
    labels = [t.get_text() for t in axis.get_yticklabels()]
    assert labels[0] == "S1" and labels[-1] == "Pooled (95% CI)"


def test_pooling_by_site_merges_a_site_of_one_therapist(tmp_path: Path) -> None:
    """The published pooled-sites table and forest plot follow the report's threshold rule: a
    site where one therapist saw every client is not a study of its own."""
    from allianceanalysis.annual_report.tables import OTHER_SITES
    from allianceanalysis.pipeline import pooled_step

    table, _ = clients("ors_srs")
    one = table["therapist_id"].iloc[0]
    table = table.assign(site_id=table["site_id"].where(table["therapist_id"] != one, "solo"))
    table.to_parquet(tmp_path / "clients.parquet")
    pooled_step({"d": tmp_path / "clients.parquet"}, tmp_path / "t.csv", [tmp_path / "f.png"],
                by_site=True, label="Sites", alliance={"d": "srs"})  # fmt: skip
    terms = set(pd.read_csv(tmp_path / "t.csv")["term"])
    assert "study:solo" not in terms and f"study:{OTHER_SITES}" in terms


def test_pooling_reads_only_the_client_columns_it_names(tmp_path: Path) -> None:
    """The rules read CLIENT_COLUMNS of the client table: a table of only those gives the
    same table as the whole one."""
    from allianceanalysis.pipeline import pooled_step
    from allianceanalysis.pooled import CLIENT_COLUMNS

    table, _ = clients("ors_srs")
    assert set(table.columns) > set(CLIENT_COLUMNS)
    for name, frame in (("whole", table), ("narrow", table[list(CLIENT_COLUMNS)])):
        frame.to_parquet(tmp_path / f"{name}.parquet")
        pooled_step({"d": tmp_path / f"{name}.parquet"}, tmp_path / f"{name}.csv",
                    [tmp_path / f"{name}.png"], by_site=True, label="Sites",
                    alliance={"d": "srs"})  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "whole.csv"),
                                  pd.read_csv(tmp_path / "narrow.csv"))  # fmt: skip


def test_pooling_a_site_without_an_analysable_client_gives_a_row_saying_why(tmp_path: Path) -> None:
    """Too few clients for any correlation is a finding (one not_fitted row and a figure that
    says so), not a failed step."""
    from allianceanalysis.pipeline import pooled_step

    table, _ = clients("ors_srs")
    table.head(3).to_parquet(tmp_path / "clients.parquet")
    pooled_step({"d": tmp_path / "clients.parquet"}, tmp_path / "t.csv", [tmp_path / "f.png"],
                by_site=True, label="Sites", alliance={"d": "srs"})  # fmt: skip
    rows = pd.read_csv(tmp_path / "t.csv")
    assert rows["term"].tolist() == ["not_fitted"]
    assert rows["message"].iloc[0].startswith("not computed: too few")
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_pooling_data_without_an_alliance_measure_says_so(tmp_path: Path) -> None:
    """A dataset without an alliance measure is not a study: its not_fitted row names it and
    the missing measure (tidy.NEEDS), not "too few complete rows (0)"."""
    from allianceanalysis.pipeline import pooled_step
    from allianceanalysis.tidy import NEEDS

    table, _ = clients("ors_srs")
    table.assign(alliance_early=np.nan).to_parquet(tmp_path / "clients.parquet")
    pooled_step({"d": tmp_path / "clients.parquet"}, tmp_path / "t.csv", [tmp_path / "f.png"],
                by_site=True, label="Sites", alliance={"d": None})  # fmt: skip
    rows = pd.read_csv(tmp_path / "t.csv")
    assert rows["term"].tolist() == ["not_fitted"]
    assert rows["message"].iloc[0] == f"not computed: dataset 'd': {NEEDS['alliance']}"


def test_pooling_datasets_leaves_out_one_without_an_alliance_measure(tmp_path: Path) -> None:
    """Across datasets, those with an alliance measure are pooled as before and the one
    without gets a row saying why it is not a study."""
    from allianceanalysis.pipeline import pooled_step

    table, _ = clients("ors_srs")
    paths = {name: tmp_path / f"{name}.parquet" for name in ("a", "b", "none")}
    for path in paths.values():
        table.to_parquet(path)
    pooled_step({"a": paths["a"], "b": paths["b"]}, tmp_path / "two.csv", [tmp_path / "two.png"],
                by_site=False, label="Datasets", alliance={"a": "srs", "b": "srs"})  # fmt: skip
    pooled_step(paths, tmp_path / "three.csv", [tmp_path / "three.png"], by_site=False,
                label="Datasets", alliance={"a": "srs", "b": "srs", "none": None})  # fmt: skip
    two, three = pd.read_csv(tmp_path / "two.csv"), pd.read_csv(tmp_path / "three.csv")
    pd.testing.assert_frame_equal(three.iloc[: len(two)], two, check_dtype=False)
    assert three["term"].iloc[len(two) :].tolist() == ["not_fitted"]
    assert "dataset 'none'" in three["message"].iloc[-1]
