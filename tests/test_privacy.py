"""The privacy guard: identifying columns and values are refused unless allow-listed."""

from __future__ import annotations

import pandas as pd
import pytest

from allianceanalysis.errors import DataError
from allianceanalysis.io import load_dataset
from allianceanalysis.io.privacy import (
    identifier_name_reason,
    identifier_value_reasons,
    nhs_number_valid,
)

from .helpers import CORPUS, spec_for


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Client Name", "people's names"),
        ("first_name", "people's names"),
        ("LastName", "people's names"),
        ("therapist name", "people's names"),
        ("Email", "email addresses"),
        ("e-mail", "email addresses"),
        ("Mobile", "phone numbers"),
        ("Tel. No", "phone numbers"),
        ("Street", "a postal address"),
        ("Postcode", "a postal address"),
        ("DOB", "dates of birth"),
        ("date of birth", "dates of birth"),
        ("NHS No", "national health, insurance or record numbers"),
        ("National Insurance Number", "national health, insurance or record numbers"),
        ("SSN", "national health, insurance or record numbers"),
    ],
)
def test_identifying_column_names_are_recognised(name: str, reason: str) -> None:
    assert identifier_name_reason(name) == reason


@pytest.mark.parametrize(
    "name",
    [
        "client_id",
        "therapist_id",
        "session_date",
        "site_id",
        "Site name",
        "Client Code",
        "Session No",
        "Clinician",
        "end_status",
        "referral_source",
        "NHS Trust",
        "Scale name",
    ],
)
def test_ordinary_column_names_are_not_flagged(name: str) -> None:
    assert identifier_name_reason(name) is None


def test_allow_list_overrides_a_name_false_positive(write_file) -> None:
    path = write_file(
        "x.csv", "client_id,therapist_id,session,ors,srs,Intervention name\nC1,T1,1,20,38,CBT\n"
    )
    with pytest.raises(DataError, match="people's names"):
        load_dataset(spec_for(path))
    result = load_dataset(spec_for(path, allow_identifier_columns=["Intervention name"]))
    assert result.sessions["Intervention name"].tolist() == ["CBT"]


def test_allow_list_overrides_a_value_false_positive() -> None:
    path = CORPUS / "bad" / "phone_in_notes.csv"
    result = load_dataset(spec_for(path, allow_identifier_columns=["notes"]))
    assert result.summary["rows"]["used"] == 2


def test_nhs_number_check_digit() -> None:
    values = pd.Series(["9434765919", "943-476-5919", "9434765918", "12345", "abcdefghij"])
    assert nhs_number_valid(values).tolist() == [True, True, False, False, False]


def test_random_ten_digit_codes_are_not_taken_for_nhs_numbers() -> None:
    codes = pd.Series([f"{1000000000 + 7919 * i}" for i in range(200)], dtype="str")
    assert not [r for r, _ in identifier_value_reasons(codes, free_text=False)]


def test_long_numeric_ids_are_not_taken_for_phone_numbers() -> None:
    ids = pd.Series(["000123456789", "000123456790"], dtype="str")
    assert identifier_value_reasons(ids, free_text=False) == []


@pytest.mark.parametrize(
    "text",
    [
        "ring 07700 900123",
        "tel +44 7700 900123",
        "(020) 7946 0958 after 5",
        "555-123-4567",
        "07700900123",
    ],
)
def test_phone_numbers_in_free_text_are_found(text: str) -> None:
    reasons = identifier_value_reasons(pd.Series([text], dtype="str"), free_text=True)
    assert [r for r, _ in reasons] == ["phone numbers"]


@pytest.mark.parametrize("text", ["session 3 of 12", "scored 23.5 on 2024-03-01", "ok"])
def test_ordinary_free_text_is_not_flagged(text: str) -> None:
    assert identifier_value_reasons(pd.Series([text], dtype="str"), free_text=True) == []
