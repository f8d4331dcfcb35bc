"""``allianceanalysis init``: a starter configuration from a clinic's export, in several
dialects, that validates the export unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from allianceanalysis.config import DatasetSpec, load_config
from allianceanalysis.io import check_dataset
from allianceanalysis.simulate import simulate_study
from allianceanalysis.starter import propose

from .helpers import ALLIANCEANALYSIS, ROOT

CLINIC_B = ROOT / "data" / "demo" / "clinic_b.csv"


def starter(path: Path, tmp_path: Path) -> DatasetSpec:
    """The proposal's configuration written, loaded and turned into the dataset's spec."""
    config = tmp_path / "starter.yaml"
    config.write_text(propose(path).config("clinic", str(path)))
    return DatasetSpec.from_config(load_config(config), "clinic")


def sessions(n: int = 40) -> pd.DataFrame:
    return simulate_study(n_clients=n, n_therapists=4, seed=12).sessions


def test_the_demo_export_gets_the_mapping_written_by_hand(tmp_path: Path) -> None:
    proposed = yaml.safe_load(propose(CLINIC_B).config("clinic_b", "data/demo/clinic_b.csv"))
    by_hand = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    entry, expected = proposed["datasets"]["clinic_b"], by_hand["datasets"]["clinic_b"]
    for key in ("read", "columns", "items", "recode"):
        assert entry[key] == expected[key], key
    assert (proposed["outcome"], proposed["alliance"]) == ("ors", "srs")


def test_the_starter_config_validates_the_demo_export_unchanged(tmp_path: Path) -> None:
    result = check_dataset(starter(CLINIC_B, tmp_path))
    assert result.problems.empty and result.summary["rows"]["used"] > 1000


def test_an_excel_export_with_numbered_phq9_items(tmp_path: Path) -> None:
    data = sessions().dropna(subset=["session_date"])
    frame = pd.DataFrame({"Client": data["client_id"], "Therapist": data["therapist_id"],
                          "Session number": data["session"], "Date": data["session_date"],
                          "SRS total": data["srs"]})  # fmt: skip
    rng = np.random.default_rng(1)
    for item in range(1, 10):
        frame[f"PHQ-9 item {item}"] = rng.integers(0, 4, len(frame))
    path = tmp_path / "export.xlsx"
    frame.to_excel(path, index=False)
    proposal = propose(path)
    assert proposal.items["phq9"][0] == "PHQ-9 item 1" and proposal.totals["srs"] == "SRS total"
    assert (proposal.outcome, proposal.alliance) == ("phq9", "srs")
    assert check_dataset(starter(path, tmp_path)).problems.empty


def test_a_parquet_export_with_its_own_end_labels(tmp_path: Path) -> None:
    data = sessions()
    labels = {"planned": "Completed", "dropout": "DNA", "ongoing": "Transferred"}
    frame = pd.DataFrame({"patient_id": data["client_id"], "clinician": data["therapist_id"],
                          "visit": data["session"], "ors_total": data["ors"],
                          "srs_total": data["srs"],
                          "Status": data["end_status"].map(labels)})  # fmt: skip
    path = tmp_path / "export.parquet"
    frame.to_parquet(path, index=False)
    proposal = propose(path)
    assert proposal.columns["client_id"] == "patient_id"
    assert proposal.recode["end_status"] == {"Completed": "planned", "DNA": "dropout"}
    assert any("'Transferred'" in problem for problem in proposal.unmapped)


def test_a_windows_export_with_items_named_in_words(tmp_path: Path) -> None:
    data = sessions().dropna(subset=["session_date"])
    comma = "{:.1f}".format
    frame = pd.DataFrame({"Client ID": data["client_id"], "Counsellor": data["therapist_id"],
                          "Session": data["session"],
                          "Date": data["session_date"].dt.strftime("%d.%m.%Y"),
                          "SRS Score": data["srs"].map(comma).str.replace(".", ",")})  # fmt: skip
    for i, item in enumerate(["Individually", "Interpersonally", "Socially", "Overall"], 1):
        values = (data["ors"] / 4).round(1).map(comma).str.replace(".", ",")
        frame[f"Item {i} \u2013 {item}"] = values
    path = tmp_path / "export.txt"
    frame.to_csv(path, sep="\t", index=False, encoding="cp1252")
    proposal = propose(path)
    assert proposal.read == {"sep": "\t", "encoding": "cp1252", "decimal": ",",
                             "date_format": "%d.%m.%Y"}  # fmt: skip
    assert proposal.items["ors"][0] == "Item 1 \u2013 Individually"
    assert check_dataset(starter(path, tmp_path)).problems.empty


def test_what_could_not_be_mapped_is_listed(tmp_path: Path) -> None:
    frame = pd.DataFrame({"Client": ["C1", "C2"], "Visit": [1, 1], "ORS 1": [5.0, 6.0],
                          "ORS 2": [5.0, 6.0], "Mood": ["ok", "low"]})  # fmt: skip
    path = tmp_path / "partial.csv"
    frame.to_csv(path, index=False)
    proposal = propose(path)
    text = proposal.config("clinic", str(path))
    assert "2 of the 4 ORS item columns" in text and "Mood" in text
    assert "therapist_id: null" in text and "No outcome measure was recognised" in text


def test_only_the_head_of_a_large_export_is_read(tmp_path: Path) -> None:
    # a valid first megabyte, then bytes no text reader accepts: reading them would fail
    path = tmp_path / "large.csv"
    data = sessions(400)
    data.to_csv(path, index=False)
    with path.open("ab") as handle:
        handle.write(b"\x00\xff" * (3 << 20))
    proposal = propose(path)
    assert proposal.outcome == "ors" and 0 < proposal.rows_read <= 2000


def test_init_writes_a_config_that_validates_through_the_front_door(tmp_path: Path) -> None:
    out = tmp_path / "clinic.yaml"
    done = subprocess.run([str(ALLIANCEANALYSIS), "init", str(CLINIC_B), "--output", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "therapist_id <- Clinician" in done.stdout
    checked = subprocess.run([str(ALLIANCEANALYSIS), "validate", str(CLINIC_B), "--config",
                              str(out)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_init_does_not_overwrite_a_config(tmp_path: Path) -> None:
    out = tmp_path / "clinic.yaml"
    out.write_text("mine")
    done = subprocess.run([str(ALLIANCEANALYSIS), "init", str(CLINIC_B), "--output", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and "already exists" in done.stderr and out.read_text() == "mine"
