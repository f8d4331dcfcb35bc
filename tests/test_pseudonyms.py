"""Keyed pseudonyms (allianceanalysis.pseudonyms): codes from a secret key, kept owner-only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from allianceanalysis.errors import ConfigError
from allianceanalysis.pseudonyms import keyed_seed, load_key, new_key, therapist_codes

THERAPISTS = [f"therapist-{i}" for i in range(40)]


def test_a_missing_key_is_created_owner_only_and_announced(tmp_path: Path, capsys) -> None:
    path = tmp_path / "keys" / "pseudonym.key"
    load_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert capsys.readouterr().err.count("\n") == 1


def test_the_key_is_reused_so_codes_repeat(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.key"
    first = therapist_codes(THERAPISTS, load_key(path, create=True))
    assert therapist_codes(THERAPISTS, load_key(path, create=True)) == first


def test_without_create_a_missing_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no pseudonym key"):
        load_key(tmp_path / "pseudonym.key")


def test_a_key_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pseudonym.key"
    load_key(path, create=True)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_key(path)


@pytest.mark.parametrize("content", ["", "not hex at all", "ab" * 16])
def test_a_file_that_is_not_a_key_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pseudonym.key"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="not a pseudonym key"):
        load_key(path)


def test_codes_are_one_per_therapist_and_zero_padded() -> None:
    codes = therapist_codes(THERAPISTS + THERAPISTS[:5], new_key())
    assert sorted(codes) == sorted(THERAPISTS)
    assert sorted(codes.values()) == [f"TH{i:02d}" for i in range(1, 41)]


def test_codes_do_not_depend_on_the_order_of_the_ids() -> None:
    key = new_key()
    assert therapist_codes(THERAPISTS, key) == therapist_codes(THERAPISTS[::-1], key)


def test_another_key_gives_other_codes() -> None:
    """40 therapists: two keys give the same assignment with probability 1/40!."""
    assert therapist_codes(THERAPISTS, new_key()) != therapist_codes(THERAPISTS, new_key())


def test_codes_do_not_follow_the_order_of_the_ids() -> None:
    """Sorted IDs would be recomputable from the staff list: with 40 therapists, the keyed
    order agrees with the sorted order in about one place in 40 (expected 1, here under 6)."""
    codes = therapist_codes(THERAPISTS, new_key())
    in_place = sum(codes[t] == f"TH{i:02d}" for i, t in enumerate(sorted(THERAPISTS), start=1))
    assert in_place < 6


def test_keyed_seeds_differ_by_key_and_by_purpose() -> None:
    key = new_key()
    assert keyed_seed(key, "figures") == keyed_seed(key, "figures")
    assert keyed_seed(key, "figures") != keyed_seed(key, "other")
    assert keyed_seed(key, "figures") != keyed_seed(new_key(), "figures")
