"""Column mapping, item totals and the other file formats (Parquet, Excel)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from allianceanalysis.config import DatasetSpec, validate_config
from allianceanalysis.errors import DataError
from allianceanalysis.io import load_dataset
from allianceanalysis.simulate import simulate_study, write_clinic_export

from .helpers import spec_for

CLINIC_CONFIG = """
datasets:
  clinic:
    path: {path}
    read: {{sep: ";", decimal: ",", date_format: "%d/%m/%Y"}}
    columns: {{client_id: "Client Code", therapist_id: "Clinician", session: "Session No",
               session_date: "Appointment Date"}}
    items:
      ors: ["ORS Individually", "ORS Interpersonally", "ORS Socially", "ORS Overall"]
      srs: ["SRS Relationship", "SRS Goals and Topics", "SRS Approach or Method", "SRS Overall"]
"""


@pytest.fixture(scope="module")
def study():
    return simulate_study(n_clients=60, n_therapists=6, n_sites=2, seed=11)


def clinic_export(study, folder: Path) -> Path:
    """The study written as a clinic's export: renamed columns, items, ';', decimal comma."""
    path = folder / "clinic.csv"
    write_clinic_export(study.sessions, path, seed=11)
    return path


def test_clinic_export_maps_onto_the_contract(study, tmp_path: Path) -> None:
    path = clinic_export(study, tmp_path)
    config = validate_config(yaml.safe_load(CLINIC_CONFIG.format(path=path)))
    result = load_dataset(DatasetSpec.from_config(config, "clinic"))
    expected = study.sessions
    assert result.sessions["client_id"].tolist() == expected["client_id"].tolist()
    assert result.sessions["session_date"].tolist() == expected["session_date"].tolist()
    np.testing.assert_allclose(result.sessions["ors"], expected["ors"], atol=1e-9)
    np.testing.assert_allclose(result.sessions["srs"], expected["srs"], atol=1e-9)
    assert result.summary["columns"]["mapped"]["client_id"] == "Client Code"
    assert result.summary["alliance"]["from"] == "items"


def test_mapped_column_missing_from_the_file_is_named_with_a_suggestion(write_file) -> None:
    path = write_file("x.csv", "Client Code,Clinician,session,ors,srs\nC1,T1,1,20,38\n")
    spec = spec_for(path, columns={"client_id": "Client Code", "therapist_id": "Clinican"})
    with pytest.raises(DataError) as info:
        load_dataset(spec)
    assert "column 'Clinican'" in str(info.value)
    assert "did you mean 'Clinician'?" in str(info.value)


def test_mapping_that_clashes_with_a_contract_named_column_is_refused(write_file) -> None:
    path = write_file("x.csv", "client_id,Code,therapist_id,session,ors,srs\nC1,C1,T1,1,20,38\n")
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path, columns={"client_id": "Code"}))
    assert "the file has a column named 'client_id'" in str(info.value)


def test_total_is_missing_when_an_item_is_missing(write_file) -> None:
    header = "client_id,therapist_id,session,ors,core10_" + ",core10_".join(map(str, range(1, 11)))
    path = write_file("x.csv", header + "\nC1,T1,1,20,1,1,1,1,1,1,1,1,1,\n")
    result = load_dataset(spec_for(path, alliance="ors", outcome="core10"))
    assert result.sessions["core10"].isna().all()


def test_prorating_follows_the_instrument_rule_when_switched_on(write_file) -> None:
    header = "client_id,therapist_id,session,ors,core10_" + ",core10_".join(map(str, range(1, 11)))
    one_missing = "C1,T1,1,20,2,2,2,2,2,2,2,2,2,\n"
    two_missing = "C1,T1,2,20,2,2,2,2,2,2,2,2,,\n"
    path = write_file("x.csv", header + "\n" + one_missing + two_missing)
    result = load_dataset(spec_for(path, alliance="ors", outcome="core10", prorate=True))
    assert result.sessions["core10"].iloc[0] == pytest.approx(20.0)
    assert np.isnan(result.sessions["core10"].iloc[1])
    assert result.summary["prorated_totals"] == {"core10": 1}


def test_prorating_does_nothing_for_instruments_without_a_rule(write_file) -> None:
    path = write_file(
        "x.csv",
        "client_id,therapist_id,session,ors_individually,ors_interpersonally,ors_socially,"
        "ors_overall,srs\nC1,T1,1,5,5,5,,38\n",
    )
    assert load_dataset(spec_for(path, prorate=True)).sessions["ors"].isna().all()


def test_parquet_file_is_read_with_its_types(study, tmp_path: Path) -> None:
    path = tmp_path / "sessions.parquet"
    study.sessions.to_parquet(path, index=False)
    result = load_dataset(spec_for(path))
    assert result.summary["format"] == "parquet"
    pd.testing.assert_frame_equal(
        result.sessions.drop(columns="source_row"), study.sessions, check_dtype=False
    )


def test_parquet_with_an_out_of_range_score_names_its_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "client_id": ["C1", "C2"],
            "therapist_id": ["T1", "T1"],
            "session": [1, 1],
            "ors": [20.0, 55.0],
            "srs": [38.0, 38.0],
        }
    )
    path = tmp_path / "s.parquet"
    frame.to_parquet(path)
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path))
    assert "row 2, column 'ors': value '55'" in str(info.value)


def test_excel_file_is_read_and_rows_numbered_as_in_the_sheet(study, tmp_path: Path) -> None:
    path = tmp_path / "sessions.xlsx"
    study.sessions.head(30).to_excel(path, index=False)
    result = load_dataset(spec_for(path))
    assert result.summary["format"] == "excel"
    assert result.sessions["source_row"].tolist() == list(range(2, 32))
    np.testing.assert_allclose(result.sessions["ors"], study.sessions["ors"].head(30))
    assert (
        result.sessions["session_date"].tolist() == study.sessions["session_date"].head(30).tolist()
    )


def test_excel_with_a_bad_value_names_the_sheet_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "client_id": ["C1", "C2"],
            "therapist_id": ["T1", "T1"],
            "session": [1, "two"],
            "ors": [20.0, 21.0],
            "srs": [38.0, 38.0],
        }
    )
    path = tmp_path / "s.xlsx"
    frame.to_excel(path, index=False)
    with pytest.raises(DataError) as info:
        load_dataset(spec_for(path))
    assert "row 3, column 'session': value 'two': is not a number" in str(info.value)


def test_missing_excel_sheet_is_a_clear_error(study, tmp_path: Path) -> None:
    path = tmp_path / "sessions.xlsx"
    study.sessions.head(3).to_excel(path, index=False)
    with pytest.raises(DataError, match="cannot read the sheet 'Sessions'"):
        load_dataset(spec_for(path, read={"sheet": "Sessions"}))


def test_file_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="the file does not exist"):
        load_dataset(spec_for(tmp_path / "nope.csv"))


def test_a_parquet_date_column_reads_as_its_csv_twin(study, tmp_path: Path) -> None:
    """Parquet's dates (date32, cast to ISO text by Arrow, io.read._dates_as_text) give the
    sessions the same dates written as text in a CSV give, a missing one too."""
    sessions = study.sessions.assign(session_date=study.sessions["session_date"].dt.date)
    sessions.loc[3, "session_date"] = None
    sessions.to_csv(tmp_path / "s.csv", index=False)
    sessions.to_parquet(tmp_path / "s.parquet", index=False)
    assert str(pd.read_parquet(tmp_path / "s.parquet").dtypes["session_date"]) == "object"
    from_csv, from_parquet = (
        load_dataset(spec_for(tmp_path / f"s.{kind}", on_invalid_rows="exclude"))
        for kind in ("csv", "parquet")
    )
    assert from_parquet.sessions["session_date"].isna().sum() == 1
    pd.testing.assert_frame_equal(from_parquet.sessions.drop(columns="source_row"),
                                  from_csv.sessions.drop(columns="source_row"))  # fmt: skip
