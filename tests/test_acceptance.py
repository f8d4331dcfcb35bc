"""What the loader must accept: the quirks of real exports (``corpus/good``)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from allianceanalysis.io import load_dataset

from .helpers import CORPUS, spec_for


def load(name: str, **options: object):
    return load_dataset(spec_for(CORPUS / "good" / name, **options))


def test_bom_and_crlf_line_endings_are_read() -> None:
    result = load("bom_crlf.csv")
    assert list(result.sessions.columns[:3]) == ["client_id", "therapist_id", "session"]
    assert result.sessions["ors"].tolist() == [20.0, 22.5]


def test_na_and_blank_cells_are_missing_scores() -> None:
    sessions = load("missing_values.csv").sessions
    assert sessions["ors"].isna().tolist() == [False, True, True, False]
    assert sessions["srs"].isna().tolist() == [False, True, True, True]


def test_missing_alliance_on_some_sessions_is_counted_not_refused() -> None:
    summary = load("missing_values.csv").summary
    assert summary["missing_scores"] == {"ors": 2, "srs": 3}
    assert summary["rows"]["used"] == 4


def test_optional_columns_may_be_absent() -> None:
    sessions = load("no_optional_columns.csv").sessions
    assert set(sessions.columns) == {
        "client_id",
        "therapist_id",
        "session",
        "ors",
        "srs",
        "source_row",
    }


def test_extra_columns_are_kept_and_reported() -> None:
    result = load("extra_columns.csv")
    assert result.summary["columns"]["extra"] == ["referral_source", "notes"]
    assert result.sessions.loc[0, "notes"] == "first session, went well"


def test_semicolon_delimiter_and_decimal_comma_are_detected() -> None:
    result = load("semicolon_decimal_comma.csv")
    assert result.summary["read_options"]["sep"] == ";"
    assert result.summary["read_options"]["decimal"] == ","
    assert result.sessions["ors"].tolist() == [20.5, 22.0]
    assert result.sessions["srs"].tolist() == [38.2, 39.0]


def test_windows_1252_text_is_decoded() -> None:
    assert load("cp1252.csv").sessions.loc[0, "site_id"] == "Café Nord"


def test_encoding_can_be_set_explicitly() -> None:
    result = load("cp1252.csv", read={"encoding": "cp1252"})
    assert result.summary["read_options"]["encoding"] == "cp1252"
    assert result.sessions.loc[0, "site_id"] == "Café Nord"


def test_utf16_with_byte_order_mark_is_read() -> None:
    assert load("utf16_bom.csv").sessions["ors"].tolist() == [20.0]


def test_quoted_value_spanning_lines_is_one_row() -> None:
    result = load("quoted_multiline.csv")
    assert result.sessions["comment"].tolist() == ["two\nlines", "ok"]
    assert result.sessions["source_row"].tolist() == [2, 3]


def test_trailing_delimiter_column_is_ignored_with_a_note() -> None:
    result = load("trailing_delimiter.csv")
    assert "column 6 has no name and no values; ignored" in result.summary["warnings"][0]["rule"]
    assert result.summary["rows"]["used"] == 2


def test_blank_lines_are_ignored_and_rows_keep_their_file_numbers() -> None:
    result = load("blank_lines.csv")
    assert result.summary["rows"]["blank_rows_ignored"] == 2
    assert result.sessions["source_row"].tolist() == [2, 4]


def test_day_first_dates_are_detected() -> None:
    result = load("dates_day_first.csv")
    assert result.summary["read_options"]["date_format"] == "%d/%m/%Y"
    assert result.sessions["session_date"].tolist() == [
        pd.Timestamp("2024-02-28"),
        pd.Timestamp("2024-03-06"),
    ]


def test_configured_date_format_resolves_ambiguous_dates() -> None:
    result = load_dataset(
        spec_for(CORPUS / "bad" / "ambiguous_dates.csv", read={"date_format": "%m/%d/%Y"})
    )
    assert result.sessions["session_date"].dt.month.tolist() == [3, 10]


def test_dates_going_backwards_are_a_warning_not_an_error() -> None:
    result = load("dates_backwards.csv")
    warning = result.summary["warnings"][0]
    assert "session dates go backwards" in warning["rule"]
    assert warning["rows"] == [3]
    assert result.summary["rows"]["excluded"] == 0


def test_item_columns_are_summed_into_totals() -> None:
    result = load("items_only.csv")
    assert result.sessions["ors"].tolist() == [20.5]
    assert math.isclose(result.sessions["srs"].iloc[0], 38.4)
    assert result.summary["outcome"]["from"] == "items"


def test_tab_delimiter_is_detected() -> None:
    assert load("tab_separated.csv").summary["read_options"]["sep"] == "\t"


def test_whole_number_written_as_decimal_is_a_valid_session() -> None:
    assert load("whole_number_floats.csv").sessions["session"].tolist() == [1]


def test_end_status_is_normalised_to_lower_case_without_spaces() -> None:
    sessions = load("end_status_values.csv").sessions
    assert sessions["end_status"].tolist()[:2] == ["planned", "dropout"]
    assert pd.isna(sessions["end_status"].iloc[2])


def test_end_status_labels_can_be_recoded() -> None:
    result = load_dataset(
        spec_for(
            CORPUS / "bad" / "end_status_unknown.csv",
            recode={"end_status": {"finished": "planned"}},
        )
    )
    assert result.sessions["end_status"].tolist() == ["planned"]


def test_same_session_number_in_different_episodes_is_not_a_duplicate() -> None:
    assert load("episodes.csv").summary["rows"]["used"] == 2


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "good").iterdir()))
def test_every_good_file_accounts_for_all_rows(name: str) -> None:
    rows = load(name).summary["rows"]
    assert rows["read"] == rows["used"]
    assert rows["excluded"] == 0
