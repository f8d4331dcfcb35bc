"""Sharded ingest: reading in pieces, splitting by therapist or site, validating each shard and
merging gives the files the whole-file ingest gives, byte for byte; refusals are as plain."""

from __future__ import annotations

import dataclasses
import filecmp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from allianceanalysis import shards
from allianceanalysis.config import DatasetSpec, ReadOptions, load_config
from allianceanalysis.covariates import Adjustment
from allianceanalysis.derive import in_case_order
from allianceanalysis.errors import DataError
from allianceanalysis.io import ingest, load_dataset
from allianceanalysis.io.read import csv_chunks, read_raw
from allianceanalysis.layout import internal, published
from allianceanalysis.missing_data import imputed_sessions
from allianceanalysis.pipeline import (
    DERIVED_SHARD_FILES,
    derive_shard_step,
    derive_step,
    merge_derived_step,
    models_step,
)
from allianceanalysis.shards import (
    ShardedTable,
    merge_validation,
    shard_number,
    split_dataset,
    validate_shard,
)

from .helpers import (
    CORPUS,
    DEMO,
    KEY_FILE,
    OUTPUTS,
    ROOT,
    demo_workdir,
    snakemake,
    spec_for,
    write_test_key,
)

FILES = ("sessions.parquet", "summary.json", "row_accounting.csv", "excluded_rows.csv")
CASES = yaml.safe_load((CORPUS / "bad" / "cases.yaml").read_text())
ROW_CASES = sorted(n for n, c in CASES.items() if c["level"] == "row" and n.endswith(".csv"))
GOOD = sorted(p.name for p in (CORPUS / "good").glob("*.csv") if p.name != "utf16_bom.csv")


def whole(spec: DatasetSpec, folder: Path) -> list[Path]:
    paths = [folder / f"whole_{name}" for name in FILES]
    ingest(spec, *paths)
    return paths


def sharded(
    spec: DatasetSpec, folder: Path, column: str = "therapist_id", count: int = 3,
    chunk_bytes: int = 200,
) -> list[Path]:  # fmt: skip
    """Split, validate each shard, merge: the dataset's four validation files."""
    parts = [folder / f"part{k}.parquet" for k in range(count)]
    split, aside = folder / "split.json", folder / "aside.parquet"
    split_dataset(spec, column, parts, split, aside, chunk_bytes=chunk_bytes)
    outputs = []
    for k, part in enumerate(parts):
        names = {"sessions": "parquet", "summary": "json", "problems": "parquet",
                 "excluded": "parquet"}  # fmt: skip
        out = {name: folder / f"shard{k}_{name}.{ext}" for name, ext in names.items()}
        validate_shard(spec, part, split, out)
        outputs.append(out)
    paths = [folder / f"merged_{name}" for name in FILES]
    merge_validation(spec, split, aside, outputs, dict(zip(
        ("sessions", "summary", "accounting", "excluded"), paths, strict=True)))  # fmt: skip
    return paths


def assert_same_files(left: list[Path], right: list[Path]) -> None:
    for a, b in zip(left, right, strict=True):
        if a.suffix == ".parquet":  # the same table (Parquet metadata names the writer)
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
        else:
            assert filecmp.cmp(a, b, shallow=False), (a.read_text()[:2000], b.read_text()[:2000])


def csv_pieces_equal_whole(path: Path, options: ReadOptions, chunk_bytes: int) -> None:
    full = read_raw(path, options)
    pieces = list(csv_chunks(path, options, chunk_bytes))
    frame = pd.concat([p.frame for p in pieces], ignore_index=True)
    pd.testing.assert_frame_equal(frame, full.frame, check_index_type=False)
    np.testing.assert_array_equal(np.concatenate([p.file_row for p in pieces]), full.file_row)
    aside = pd.concat([p.set_aside for p in pieces], ignore_index=True)
    pd.testing.assert_frame_equal(aside, full.set_aside.reset_index(drop=True))
    assert sum(p.blank_rows for p in pieces) == full.blank_rows


@pytest.mark.parametrize("chunk_bytes", [7, 64, 1000])
@pytest.mark.parametrize("name", [*GOOD, "ragged_rows.csv", "duplicate_client_session.csv"])
def test_csv_read_in_pieces_equals_the_whole_file(name: str, chunk_bytes: int) -> None:
    folder = "good" if name in GOOD else "bad"
    csv_pieces_equal_whole(CORPUS / folder / name, ReadOptions(), chunk_bytes)


def test_demo_read_in_pieces_equals_the_whole_file() -> None:
    csv_pieces_equal_whole(DEMO, ReadOptions(), 20_000)


@pytest.mark.parametrize(("column", "count"), [("therapist_id", 3), ("site_id", 2)])
def test_sharded_ingest_of_the_demo_writes_the_whole_file_ingest_bytes(
    tmp_path: Path, column: str, count: int
) -> None:
    spec = DatasetSpec(name="demo", path=DEMO)
    assert_same_files(whole(spec, tmp_path), sharded(spec, tmp_path, column, count, 20_000))


@pytest.mark.parametrize("name", GOOD)
def test_sharded_ingest_of_each_accepted_export_equals_the_whole_file_ingest(
    tmp_path: Path, name: str
) -> None:
    spec = spec_for(CORPUS / "good" / name)
    assert_same_files(whole(spec, tmp_path), sharded(spec, tmp_path))


@pytest.mark.parametrize("name", ROW_CASES)
def test_sharded_ingest_excludes_the_same_bad_rows_with_the_same_reasons(
    tmp_path: Path, name: str
) -> None:
    spec = dataclasses.replace(
        spec_for(CORPUS / "bad" / name, **CASES[name].get("spec", {})), on_invalid_rows="exclude"
    )
    assert_same_files(whole(spec, tmp_path), sharded(spec, tmp_path))


@pytest.mark.parametrize("name", ["duplicate_client_session.csv", "ragged_rows.csv"])
def test_sharded_ingest_under_fail_lists_every_shards_problems_as_the_whole_file(
    tmp_path: Path, name: str
) -> None:
    spec = spec_for(CORPUS / "bad" / name, **CASES[name].get("spec", {}))
    with pytest.raises(DataError) as whole_error:
        load_dataset(spec)
    with pytest.raises(DataError) as shard_error:
        sharded(spec, tmp_path)
    assert str(shard_error.value) == str(whole_error.value)


def test_a_file_level_refusal_is_the_whole_file_ingests(tmp_path: Path) -> None:
    spec = spec_for(CORPUS / "bad" / "missing_alliance.csv")
    with pytest.raises(DataError) as whole_error:
        load_dataset(spec)
    with pytest.raises(DataError) as shard_error:
        sharded(spec, tmp_path)
    assert str(shard_error.value) == str(whole_error.value)


def write_sessions(path: Path, rows: list[tuple]) -> Path:
    frame = pd.DataFrame(rows, columns=["client_id", "therapist_id", "site_id", "session", "ors",
                                        "srs"])  # fmt: skip
    frame.to_csv(path, index=False)
    return path


def test_a_client_who_changed_therapist_stays_in_one_shard(tmp_path: Path) -> None:
    rows = [(f"C{c}", f"T{c % 7}", "S1", s, 20.0, 35.0) for c in range(40) for s in (1, 2)]
    rows += [("C3", "T6", "S1", 3, 21.0, 36.0)]  # C3's third session with another therapist
    spec = DatasetSpec(name="x", path=write_sessions(tmp_path / "s.csv", rows))
    paths = sharded(spec, tmp_path, count=4)
    parts = [pd.read_parquet(tmp_path / f"shard{k}_sessions.parquet") for k in range(4)]
    assert [k for k, p in enumerate(parts) if "C3" in set(p["client_id"])] != []
    assert sum("C3" in set(p["client_id"]) for p in parts) == 1
    assert_same_files(whole(spec, tmp_path), paths)


def test_a_score_column_empty_in_one_shard_only_is_not_refused(tmp_path: Path) -> None:
    rows = [(f"C{c}", f"T{c % 5}", "S1", 1, 20.0, 35.0 if c % 5 else None) for c in range(50)]
    spec = DatasetSpec(name="x", path=write_sessions(tmp_path / "s.csv", rows))
    assert_same_files(whole(spec, tmp_path), sharded(spec, tmp_path, count=5))


def test_a_shard_column_not_in_the_file_is_refused_in_plain_words(tmp_path: Path) -> None:
    spec = spec_for(CORPUS / "good" / "no_optional_columns.csv")
    with pytest.raises(DataError, match=r"sharded by site_id .* no site_id column"):
        sharded(spec, tmp_path, column="site_id")


def test_sharding_by_site_refuses_a_therapist_at_sites_in_two_shards(tmp_path: Path) -> None:
    rows = [(f"C{c}", "T1", f"S{c}", 1, 20.0, 35.0) for c in range(20)]
    spec = DatasetSpec(name="x", path=write_sessions(tmp_path / "s.csv", rows))
    with pytest.raises(DataError, match="splits a therapist's clients over two shards"):
        sharded(spec, tmp_path, column="site_id", count=4)


def test_a_parquet_file_is_sharded_as_it_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "sessions.parquet"
    pd.read_csv(DEMO).to_parquet(path, index=False)
    spec = DatasetSpec(name="demo", path=path)
    assert_same_files(whole(spec, tmp_path), sharded(spec, tmp_path, chunk_bytes=20_000))


def test_a_utf16_file_is_refused_for_sharding_in_plain_words(tmp_path: Path) -> None:
    spec = spec_for(CORPUS / "good" / "utf16_bom.csv")
    with pytest.raises(DataError, match="only read whole; save it as UTF-8"):
        sharded(spec, tmp_path)


@pytest.fixture(scope="module")
def faulty_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's sessions with bad rows spread over every shard: scores out of range, a blank
    therapist, duplicated sessions, impossible dates and rows with a field too many."""
    lines = DEMO.read_text().splitlines()
    header, rows = lines[0], [line.split(",") for line in lines[1:]]
    columns = header.split(",")
    ors, therapist, date = (columns.index(c) for c in ("ors", "therapist_id", "session_date"))
    for i in range(0, len(rows), 97):
        rows[i][ors] = "99"
    for i in range(13, len(rows), 211):
        rows[i][therapist] = ""
    for i in range(29, len(rows), 173):
        rows[i][date] = "2021-02-30"
    text = [",".join(r) for r in rows]
    text += [text[i] for i in range(50, len(text), 301)]  # duplicated sessions, at the end
    for i in range(77, len(text), 389):
        text[i] += ",stray"
    path = tmp_path_factory.mktemp("faulty") / "sessions.csv"
    path.write_text("\n".join([header, *text]) + "\n")
    return path


@pytest.mark.parametrize(("column", "count"), [("therapist_id", 4), ("site_id", 3)])
def test_bad_rows_spread_over_shards_are_excluded_as_from_the_whole_file(
    tmp_path: Path, faulty_demo: Path, column: str, count: int
) -> None:
    spec = DatasetSpec(name="demo", path=faulty_demo, on_invalid_rows="exclude")
    paths = sharded(spec, tmp_path, column, count, 5_000)
    shard_rows = [len(pd.read_parquet(tmp_path / f"shard{k}_problems.parquet"))
                  for k in range(count)]  # fmt: skip
    assert sum(n > 0 for n in shard_rows) >= 2  # the problems are found in several shards
    assert_same_files(whole(spec, tmp_path), paths)


def test_bad_rows_spread_over_shards_fail_with_the_whole_files_message(
    tmp_path: Path, faulty_demo: Path
) -> None:
    spec = DatasetSpec(name="demo", path=faulty_demo)
    with pytest.raises(DataError) as whole_error:
        load_dataset(spec)
    with pytest.raises(DataError) as shard_error:
        sharded(spec, tmp_path, count=4, chunk_bytes=5_000)
    assert str(shard_error.value) == str(whole_error.value)


def test_the_workflow_shards_a_dataset_and_merges_the_unsharded_files(
    tmp_path: Path, demo_run: Path
) -> None:
    """The demo sharded by therapist into three, through Snakemake (split; three jobs each to
    validate and derive a shard; the merges; an imputation job per early session and their
    merge): the dataset's validation files, client-level derived tables and missing-data
    tables are the unsharded run's, and its sessions stay in the shards' files (no job puts
    them in one file), which together hold the unsharded run's validated sessions. The other
    jobs' outputs from shards are compared with the whole data's in the tests above and by
    make bench-scale."""
    config = Path(demo_workdir(tmp_path, key_from=demo_run)[1])
    settings = yaml.safe_load(config.read_text())
    settings["datasets"] = {"demo": {**settings["datasets"]["demo"],
                                     "shards": {"column": "therapist_id", "count": 3}}}  # fmt: skip
    config.write_text(yaml.safe_dump(settings))
    derived = [f"derived/{n}" for n in ("clients.parquet", "accounting.csv",
                                        "therapist_codes.csv")]  # fmt: skip
    merged = [n for n in OUTPUTS if n != "validated/sessions.parquet"]
    imputed = [published("demo", "tables", f"{name}.csv")
               for name in ("multiple_imputation", "tipping_point", "missingness")]  # fmt: skip
    names = (*merged, *derived, "tables/missingness.csv")
    targets = [f"{internal('demo')}/{name}" for name in names] + imputed
    done = snakemake(tmp_path, *targets, "--configfile", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / internal("demo")
    logs = folder / "logs"
    assert (
        len(list(logs.glob("ingest_shard*.log"))) == len(list(logs.glob("derive_shard*.log"))) == 3
    )
    assert len(list(logs.glob("impute_k*.log"))) == len(imputed_sessions(3, "srs"))
    assert_same_files([demo_run / t for t in targets], [tmp_path / t for t in targets])
    for whole_only in ("validated/sessions.parquet", "derived/sessions.parquet",
                       "derived/pairs.parquet"):  # fmt: skip
        assert not (folder / whole_only).exists()
    shards = pd.concat([pd.read_parquet(folder / "shards" / str(k) / "validated" /
                                        "sessions.parquet") for k in range(3)])  # fmt: skip
    whole_sessions = pd.read_parquet(demo_run / internal("demo") / "validated/sessions.parquet")
    pd.testing.assert_frame_equal(shards.sort_values("source_row").reset_index(drop=True),
                                  whole_sessions)  # fmt: skip


def test_too_few_shards_for_the_size_limit_are_refused_naming_the_setting(tmp_path: Path) -> None:
    spec = spec_for(DEMO, read={"max_file_mb": 0.05})
    with pytest.raises(DataError, match=r"each of its 2 shards would be larger .* more shards"):
        sharded(spec, tmp_path, count=2)
    assert_same_files(whole(dataclasses.replace(spec, read=ReadOptions()), tmp_path),
                      sharded(spec, tmp_path, count=4, chunk_bytes=20_000))  # fmt: skip


def derive_whole_and_sharded(
    spec: DatasetSpec, folder: Path, adjustment: dict | None, count: int = 3,
    column: str = "therapist_id",
) -> tuple:  # fmt: skip
    """The derivation of the whole validated data and of its shards merged: both file sets."""
    write_test_key(folder)
    key = folder / KEY_FILE
    sharded(spec, folder, column, count, chunk_bytes=20_000)
    options = {"outcome": "ors", "alliance": "srs", "early_session": 3, "adjustment": adjustment}
    names = ("clients", "sessions", "pairs", "accounting", "codes")
    ext = {"accounting": "csv", "codes": "csv"}
    whole_out = {n: folder / f"whole_{n}.{ext.get(n, 'parquet')}" for n in names}
    derive_step(folder / "merged_sessions.parquet", whole_out, key=key, **options)
    shards = []
    for k in range(count):
        out = {n.split(".")[0]: folder / f"d{k}_{n}" for n in DERIVED_SHARD_FILES}
        derive_shard_step(folder / f"shard{k}_sessions.parquet", out, **options)
        shards += [out[n.split(".")[0]] for n in DERIVED_SHARD_FILES]
    merged_out = {n: folder / f"merged_{n}.{ext.get(n, 'parquet')}" for n in names}
    merge_derived_step(shards, merged_out, key=key, early_session=3, adjustment=adjustment)
    return list(whole_out.values()), list(merged_out.values())


def test_derived_tables_of_the_shards_merged_are_the_whole_datas(tmp_path: Path) -> None:
    adjustment = Adjustment.from_config(load_config(ROOT / "config" / "config.yaml"), "demo")
    spec = DatasetSpec(name="demo", path=DEMO)
    assert_same_files(*derive_whole_and_sharded(spec, tmp_path, adjustment.as_dict()))


def test_derived_tables_of_shards_with_episodes_are_the_whole_datas(tmp_path: Path) -> None:
    spec = spec_for(CORPUS / "good" / "episodes.csv")
    assert_same_files(*derive_whole_and_sharded(spec, tmp_path, None))


def test_a_therapists_mean_counts_a_case_routed_to_another_shard(tmp_path: Path) -> None:
    """C1's lowest session number (0, with T1, shard 0 of 2) is invalid, so the case is routed
    to T1's shard while its first valid session is with T2 (shard 1): T2's alliance mean must
    still count C1 (means are derived over all shards)."""
    rows = [(f"C{c}", t, "S1", s, 20.0 + s, 30.0 + c % 7) for c, t in
            [(2, "T1"), (3, "T1"), (4, "T2"), (5, "T2")] for s in (1, 2, 3, 4)]  # fmt: skip
    rows += [("C1", "T1", "S1", 0, 20.0, 30.0)]
    rows += [("C1", "T2", "S1", s, 20.0 + s, 39.0) for s in (1, 2, 3, 4)]
    spec = DatasetSpec(name="x", path=write_sessions(tmp_path / "s.csv", rows),
                       on_invalid_rows="exclude")  # fmt: skip
    whole_files, merged_files = derive_whole_and_sharded(spec, tmp_path, None, count=2)
    clients = pd.read_parquet(merged_files[0]).set_index("client_id")
    assert clients.loc["C1", "therapist_id"] == "T2"
    assert clients.loc["C1", "alliance_therapist_mean"] == pytest.approx((39.0 + 34 + 35) / 3)
    shard_of_c1 = [
        k
        for k in range(2)
        if "C1" in set(pd.read_parquet(tmp_path / f"d{k}_clients.parquet")["client_id"])
    ]
    assert shard_of_c1 == [0]
    assert_same_files(whole_files, merged_files)


@pytest.mark.parametrize(("column", "count"), [("therapist_id", 3), ("site_id", 2)])
def test_models_fitted_from_the_shards_tables_are_the_whole_tables_byte_for_byte(
    tmp_path: Path, column: str, count: int
) -> None:
    """The models job given each shard's session table and pairs (read one shard at a time
    by the models fitted from sufficient statistics) writes the tables it writes from the
    merged files; the demo's three sites in two shards leave one shard empty."""
    derive_whole_and_sharded(DatasetSpec(name="demo", path=DEMO), tmp_path, None, count,
                             column)  # fmt: skip
    assert column == "therapist_id" or pd.read_parquet(tmp_path / "d0_pairs.parquet").empty
    options = {"outcome": "ors", "alliance": "srs", "early_session": 3, "riclpm_waves": 6,
               "bootstrap": 20, "seed": 1, "engine": "lmm", "adjustment": None}  # fmt: skip
    names = ["alliance_next_session", "alliance_next_session_nested", "growth",
             "outcome_growth", "rm_corr", "alliance_outcome"]  # fmt: skip
    written = {}
    for label, pieces in (("whole", ["whole"]), ("sharded", [f"d{k}" for k in range(count)])):
        folder = tmp_path / label
        folder.mkdir()
        inputs = {
            "clients": tmp_path / "whole_clients.parquet",
            "sessions": [tmp_path / f"{p}_sessions.parquet" for p in pieces],
            "pairs": [tmp_path / f"{p}_pairs.parquet" for p in pieces],
            "validated": tmp_path / "merged_sessions.parquet",
            "codes": tmp_path / "whole_codes.csv",
        }
        tables = [folder / f"{name}.csv" for name in names]
        models_step(inputs, tables=tables, combined=folder / "models.csv", options=options)
        written[label] = [t.read_bytes() for t in [*tables, folder / "models.csv"]]
    assert written["sharded"] == written["whole"]
    assert b"not_fitted" not in written["whole"][-1]


def test_clinical_significance_of_the_shards_is_the_whole_datas_byte_for_byte(
    tmp_path: Path, faulty_demo: Path
) -> None:
    from allianceanalysis.pipeline import clinical_significance_step

    spec = DatasetSpec(name="demo", path=faulty_demo, on_invalid_rows="exclude")
    sharded(spec, tmp_path, count=3, chunk_bytes=20_000)
    settings = load_config(ROOT / "config" / "config.yaml")["clinical_significance"]
    written = {}
    for label, sessions in (("whole", tmp_path / "merged_sessions.parquet"),
                            ("sharded", [tmp_path / f"shard{k}_sessions.parquet"
                                         for k in range(3)])):  # fmt: skip
        out = {name: tmp_path / f"{label}_{name}" for name in ("cases", "table", "published")}
        clinical_significance_step(sessions, **out, outcome="ors", settings=settings)
        written[label] = [path.read_bytes() for path in out.values()]
    assert written["sharded"] == written["whole"]


def test_a_covariate_missing_in_one_shard_only_is_not_refused(tmp_path: Path) -> None:
    """Sharded by site, one shard may hold no value of a covariate the others hold: the
    covariates are checked on all shards' facts together, as on the whole data (the demo's
    sites each record the covariates here; one site's are blanked)."""
    data = pd.read_csv(DEMO)
    site = data["site_id"].iloc[0]
    data.loc[data["site_id"] == site, "age_band"] = None
    path = tmp_path / "sessions.csv"
    data.to_csv(path, index=False)
    adjustment = Adjustment.from_config({"covariates": ["age_band"], "datasets": {"d": {}}}, "d")
    spec = DatasetSpec(name="demo", path=path)
    assert_same_files(*derive_whole_and_sharded(spec, tmp_path, adjustment.as_dict(), count=4))


def test_a_constant_covariate_is_refused_after_the_shards_as_on_the_whole_data(
    tmp_path: Path,
) -> None:
    """Constant in every shard, so constant: no shard can tell alone; the merge refuses it in
    the words of the whole data's check, before writing anything."""
    from allianceanalysis.errors import ConfigError

    adjustment = Adjustment.from_config({"covariates": ["nope"], "datasets": {"d": {}}}, "d")
    path = tmp_path / "sessions.csv"
    pd.read_csv(DEMO).assign(nope="x").to_csv(path, index=False)
    spec = DatasetSpec(name="demo", path=path)
    sharded(spec, tmp_path, count=3, chunk_bytes=20_000)
    write_test_key(tmp_path)
    options = {"outcome": "ors", "alliance": "srs", "early_session": 3,
               "adjustment": adjustment.as_dict()}  # fmt: skip
    with pytest.raises(ConfigError) as whole:
        derive_step(tmp_path / "merged_sessions.parquet", {}, key=tmp_path / KEY_FILE, **options)
    files = []
    for k in range(3):
        out = {n.split(".")[0]: tmp_path / f"d{k}_{n}" for n in DERIVED_SHARD_FILES}
        derive_shard_step(tmp_path / f"shard{k}_sessions.parquet", out, **options)
        files += [out[n.split(".")[0]] for n in DERIVED_SHARD_FILES]
    outputs = {n: tmp_path / f"m_{n}" for n in ("clients", "sessions", "pairs", "accounting",
                                                 "codes")}  # fmt: skip
    with pytest.raises(ConfigError) as merged:
        merge_derived_step(files, outputs, key=tmp_path / KEY_FILE, early_session=3,
                           adjustment=adjustment.as_dict())  # fmt: skip
    assert str(merged.value) == str(whole.value)
    assert "'nope' is constant ('x')" in str(merged.value)
    assert not any(p.exists() for p in outputs.values())


def test_sharding_by_therapist_data_without_therapist_codes_is_refused_in_plain_words(
    tmp_path: Path,
) -> None:
    """The public study (no therapist codes, tests/reference/data/claus_2020.csv)."""
    spec = DatasetSpec(name="claus", path=ROOT / "tests" / "reference" / "data" / "claus_2020.csv",
                       columns={"client_id": "id", "session": "time", "therapist_id": None,
                                "bdi2": "bdi"},
                       outcome="bdi2", alliance=None)  # fmt: skip
    with pytest.raises(DataError, match=r"declares that the data have no therapist_id"):
        sharded(spec, tmp_path)


def test_a_quoted_decimal_comma_in_a_comma_file_is_read_as_the_whole_file_reads_it(
    tmp_path: Path,
) -> None:
    """In a comma-delimited file the decimal mark is a point whatever the cells hold: a
    quoted "3,5" is not a number, in the shards as in the whole file."""
    rows = "".join(f'C{c},T{c % 3},{s},"2{c % 9},5",30\n' for c in range(12) for s in (1, 2))
    path = tmp_path / "s.csv"
    path.write_text("client_id,therapist_id,session,ors,srs\n" + rows)
    spec = DatasetSpec(name="x", path=path, on_invalid_rows="exclude")
    assert_same_files(whole(spec, tmp_path), sharded(spec, tmp_path))


def test_a_nested_parquet_column_is_refused_by_the_split_as_by_the_whole_file_reader(
    tmp_path: Path,
) -> None:
    path = tmp_path / "nested.parquet"
    pd.read_csv(DEMO).head(4).assign(tags=[[1], [2, 3], [], [4]]).to_parquet(path, index=False)
    spec = DatasetSpec(name="x", path=path)
    with pytest.raises(DataError) as whole_error:
        load_dataset(spec)
    with pytest.raises(DataError) as shard_error:
        sharded(spec, tmp_path)
    assert str(shard_error.value) == str(whole_error.value)


def early_warning_whole_and_sharded(tmp_path: Path, spec: DatasetSpec, count: int) -> dict:
    """The early-warning step's files from the merged validated sessions and from the shards'
    (read one shard at a time), as tables."""
    from allianceanalysis.pipeline import early_warning_step

    sharded(spec, tmp_path, count=count, chunk_bytes=20_000)
    settings = load_config(ROOT / "config" / "config.yaml")["early_warning"]
    written = {}
    for label, sessions in (("whole", tmp_path / "merged_sessions.parquet"),
                            ("sharded", [tmp_path / f"shard{k}_sessions.parquet"
                                         for k in range(count)])):  # fmt: skip
        out = {name: tmp_path / f"{label}_{name}.{ext}" for name, ext in
               (("table", "csv"), ("calibration", "csv"), ("sequences", "parquet"),
                ("curves", "csv"), ("published", "csv"))}  # fmt: skip
        early_warning_step(sessions, **out, outcome="ors", alliance="srs", early_session=3,
                           settings=settings, seed=1)  # fmt: skip
        written[label] = {name: pd.read_parquet(path) if path.suffix == ".parquet"
                          else pd.read_csv(path) for name, path in out.items()}  # fmt: skip
    return written


def test_early_warning_of_the_shards_is_the_whole_datas(tmp_path: Path) -> None:
    """Every early-warning file from three shards equals the whole data's. The figures' rupture
    sequences and curves exactly; the tables and the calibration points to 1e-10 relative,
    since two models add their sums in another order (the rupture-outcome model numbers its
    cases shard by shard; the dropout-risk regressions add X'WX shard by shard); the rates,
    the rupture-dropout model and the expected response to the last bit (exact or
    order-free sums)."""
    written = early_warning_whole_and_sharded(tmp_path, DatasetSpec(name="demo", path=DEMO), 3)
    whole, shards = written["whole"], written["sharded"]
    for name in ("sequences", "curves"):
        pd.testing.assert_frame_equal(shards[name], whole[name], check_exact=True)
    for name in ("table", "published", "calibration"):
        pd.testing.assert_frame_equal(shards[name], whole[name], check_exact=False, rtol=1e-10,
                                      atol=0)  # fmt: skip
    for name in ("table", "published"):
        exact = ~whole[name]["model"].isin(["rupture_outcome", "dropout_risk"])
        pd.testing.assert_frame_equal(shards[name][exact], whole[name][exact], check_exact=True)
    table = whole["table"].set_index("model")
    fitted = table.loc[["rupture_outcome", "dropout_risk", "expected_response"], "converged"]
    assert fitted.dropna().astype(bool).all()
    assert {"ruptures", "rupture_outcome", "rupture_dropout", "dropout_risk",
            "expected_response", "not_on_track_signal"} <= set(table.index)  # fmt: skip


def test_feedback_models_of_the_shards_are_the_whole_datas(tmp_path: Path) -> None:
    """A service comparing feedback with none: the three feedback models from three shards
    are the whole data's (client-level rows made shard by shard), to 1e-10 relative."""
    from allianceanalysis.simulate import simulate_study

    data = simulate_study(n_clients=400, n_therapists=20, feedback="client", seed=5).sessions
    path = tmp_path / "feedback.csv"
    data.assign(session_date=data["session_date"].dt.date).to_csv(path, index=False)
    written = early_warning_whole_and_sharded(tmp_path, spec_for(path), 3)
    whole, shards = (written[k]["table"] for k in ("whole", "sharded"))
    feedback = whole["model"].str.startswith("feedback")
    assert set(whole.loc[feedback, "model"]) == {"feedback_outcome", "feedback_alliance",
                                                 "feedback_dropout"}  # fmt: skip
    pd.testing.assert_frame_equal(shards, whole, check_exact=False, rtol=1e-10, atol=0)


def in_shards(sessions: pd.DataFrame, folder: Path, count: int) -> ShardedTable:
    """``sessions`` split by therapist into ``count`` Parquet files."""
    number = shard_number(sessions["therapist_id"], count)
    paths = [folder / f"report_shard{k}.parquet" for k in range(count)]
    for k, path in enumerate(paths):
        sessions[number == k].to_parquet(path, index=False)
    return ShardedTable.of(paths)


def test_report_tables_of_the_shards_are_the_whole_datas(tmp_path: Path) -> None:
    """Every report table from three shards equals the whole data's to the last bit: sites,
    PHQ-9 and GAD-7 beside the ORS (other outcomes, NHS metrics), rupture and not-on-track
    KPIs, and a client whose second episode is with a therapist in another shard (seen once,
    not twice, in a year with sessions of both)."""
    from allianceanalysis.annual_report import ReportSettings, report_tables
    from allianceanalysis.simulate import simulate_study

    from .test_annual_report import early_warning_table

    data = simulate_study(n_clients=400, n_therapists=12, n_sites=4, seed=8).sessions
    data["phq9"] = (27 - data["ors"] * 27 / 40).round().clip(0, 27)
    data["gad7"] = (data["phq9"] * 21 / 27).round()
    first = data.drop_duplicates("client_id").set_index("client_id")["therapist_id"]
    number = pd.Series(shard_number(first, 3), index=first.index)
    one, other = number[number == 0].index[0], number[number == 1].index[0]
    data["episode_id"] = np.where(data["client_id"] == other, 2, 1)
    data["client_id"] = data["client_id"].replace(other, one)
    warning = early_warning_table(data, tmp_path)
    codes = {t: f"code{k}" for k, t in enumerate(sorted(data["therapist_id"].unique()))}
    settings = ReportSettings(dataset="demo", bootstrap=199)
    whole = report_tables(data, settings, warning, codes)
    shards = report_tables(in_shards(data, tmp_path, 3), settings, warning, codes)
    assert {"phq9:finished", "nhs_recovery", "clients_with_rupture", "not_on_track"} <= set(
        whole.kpis["kpi"]
    )
    assert whole.sites["site_id"].nunique() > 1
    for name in whole.names():
        pd.testing.assert_frame_equal(getattr(shards, name), getattr(whole, name),
                                      check_exact=True)  # fmt: skip


def test_session_figures_of_the_shards_are_the_whole_datas_byte_for_byte(tmp_path: Path) -> None:
    """The figures drawn from the derived sessions (trajectories by site, with their sample
    of clients; the alliance over sessions) from three shards are the whole table's, SVG byte
    for byte; a client with episodes in two shards is one client."""
    from allianceanalysis.derive import client_table, session_table
    from allianceanalysis.figures import alliance_over_sessions, outcome_trajectories, save_figure
    from allianceanalysis.simulate import simulate_study

    data = simulate_study(n_clients=300, n_therapists=12, n_sites=3, seed=4).sessions
    first = data.drop_duplicates("client_id").set_index("client_id")["therapist_id"]
    number = pd.Series(shard_number(first, 3), index=first.index)
    one, other = number[number == 0].index[0], number[number == 1].index[0]
    data["episode_id"] = np.where(data["client_id"] == other, 2, 1)
    data["client_id"] = data["client_id"].replace(other, one)
    table = session_table(data)
    clients = client_table(data)
    drawn = {}
    for label, sessions in (("whole", table), ("sharded", in_shards(table, tmp_path, 3))):
        figures = {"trajectories": outcome_trajectories(sessions, "ors", by="site_id", seed=7),
                   "alliance": alliance_over_sessions(sessions, clients, "srs", 3)}  # fmt: skip
        for name, figure in figures.items():
            save_figure(figure, [tmp_path / f"{label}_{name}.svg"])
            drawn[label, name] = (tmp_path / f"{label}_{name}.svg").read_bytes()
    for name in ("trajectories", "alliance"):
        assert drawn["sharded", name] == drawn["whole", name]
    rated = table.dropna(subset=["alliance"]).query("session <= 20")["client_id"].nunique()
    assert f"n = {rated:,} clients".encode() in drawn["whole", "alliance"]


def test_multiple_imputation_of_the_shards_is_the_whole_datas(tmp_path: Path) -> None:
    """The client tables and auxiliary scores of three shards, put in case order, are the
    whole data's, so the imputations and every pooled model are too, to the last bit."""
    from allianceanalysis.missing_data import multiple_imputation
    from allianceanalysis.simulate import simulate_study

    data = simulate_study(n_clients=240, n_therapists=12, seed=6).sessions
    data.loc[data.sample(frac=0.1, random_state=1).index, "srs"] = np.nan
    options = {"m": 2, "seed": 3, "burn_in": 20, "between": 5, "early_sessions": (2, 3)}
    whole, _ = multiple_imputation(data, **options)
    shards, _ = multiple_imputation(in_shards(data, tmp_path, 3), **options)
    assert whole["converged"].dropna().astype(bool).any()
    pd.testing.assert_frame_equal(shards, whole, check_exact=True)


def test_models_deriving_their_tables_from_the_shards_are_the_whole_datas_byte_for_byte(
    tmp_path: Path,
) -> None:
    """The models that derive their own tables from the validated sessions (per-k early
    alliance, components, moderation, detrended next session, RI-CLPM, the demo's own
    models) given each shard's validated sessions write the tables they write from the
    merged file."""
    config = load_config(ROOT / "config" / "config.yaml")
    adjustment = Adjustment.from_config(config, "demo").as_dict()
    from allianceanalysis.pseudonyms import codes_frame, therapist_codes

    (tmp_path / "v").mkdir()
    sharded(DatasetSpec(name="demo", path=DEMO), tmp_path / "v", count=3, chunk_bytes=20_000)
    therapists = pd.read_parquet(tmp_path / "v" / "merged_sessions.parquet")["therapist_id"]
    codes_frame(therapist_codes(therapists.unique(), b"k" * 32)).to_csv(
        tmp_path / "whole_codes.csv", index=False
    )
    options = {"outcome": "ors", "alliance": "srs", "early_session": 3, "riclpm_waves": 6,
               "bootstrap": 20, "seed": 1, "engine": "lmm", "adjustment": adjustment,
               "custom": config["models"]}  # fmt: skip
    names = ["early_alliance", "alliance_components", "moderation", "custom_models",
             "alliance_next_session_detrended", "riclpm"]  # fmt: skip
    written = {}
    for label, validated in (("whole", tmp_path / "v" / "merged_sessions.parquet"),
                             ("sharded", [tmp_path / "v" / f"shard{k}_sessions.parquet"
                                          for k in range(3)])):  # fmt: skip
        folder = tmp_path / label
        folder.mkdir()
        inputs = {"clients": tmp_path / "whole_clients.parquet",
                  "sessions": tmp_path / "whole_sessions.parquet",
                  "pairs": tmp_path / "whole_pairs.parquet", "validated": validated,
                  "codes": tmp_path / "whole_codes.csv"}  # fmt: skip
        tables = [folder / f"{name}.csv" for name in names]
        models_step(inputs, tables=tables, combined=folder / "models.csv", options=options)
        written[label] = [t.read_bytes() for t in [*tables, folder / "models.csv"]]
    assert written["sharded"] == written["whole"]
    combined = pd.read_csv(tmp_path / "whole" / "models.csv")
    fitted = combined.loc[combined["term"] != "not_fitted", "model"]
    assert {"early_alliance_k1", "riclpm", "alliance_next_session_detrended",
            "alliance_by_dose", "dropout_after_session"} <= set(fitted)  # fmt: skip
    assert fitted.str.contains("_by_treatment").any()


def test_a_table_put_together_on_disk_a_few_rows_at_a_time_is_the_whole_in_case_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written 2 rows at a time, with a column amended over all pieces (each piece's slice of
    it): the same table as the pieces concatenated and sorted by pandas."""
    monkeypatch.setattr(shards, "ROWS_WRITTEN", 2)
    pieces = [
        pd.DataFrame({"client_id": ["c", "a", "a"], "episode_id": ["1", "2", "1"],
                      "x": [1.0, np.nan, 3.0]}),
        pd.DataFrame({"client_id": ["b", "d"], "episode_id": ["1", "1"], "x": [4.0, 5.0]}),
    ]  # fmt: skip
    paths = [tmp_path / f"{k}.parquet" for k in range(2)]
    for piece, path in zip(pieces, paths, strict=True):
        piece.to_parquet(path, index=False)
    shards.together_file(paths, tmp_path / "all.parquet", reads=["x"],
                         amend=lambda f: {"x": f["x"].fillna(0).cumsum().to_numpy()})  # fmt: skip
    expected = in_case_order(pd.concat(pieces, ignore_index=True))
    expected["x"] = expected["x"].fillna(0).cumsum()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "all.parquet"), expected)


def test_pieces_waiting_on_disk_put_together_in_arrow_are_the_pandas_concatenation() -> None:
    """Spilled.together sorts and converts in Arrow: the same frame (values, types, index)
    as the pieces concatenated and sorted by pandas (shards.together)."""
    pieces = [
        pd.DataFrame({"client_id": ["c", "a", "a"], "episode_id": ["1", "2", "1"],
                      "x": [1.0, np.nan, 3.0], "n": pd.array([1, None, 3], dtype="Int64"),
                      "ok": [True, False, True]}),
        pd.DataFrame({"client_id": ["b", "d"], "episode_id": ["1", "1"], "x": [4.0, 5.0],
                      "n": pd.array([4, 5], dtype="Int64"), "ok": [False, True]}),
    ]  # fmt: skip
    with shards.Spilled(on_disk=True) as kept:
        for piece in pieces:
            kept.add(piece)
        pd.testing.assert_frame_equal(kept.together(), shards.together(pieces))


def test_pieces_waiting_on_disk_sorted_in_arrow_are_the_pandas_sort() -> None:
    """Spilled.sorted_by (the rupture windows): on disk, sorted in Arrow and only the asked
    columns converted, the same frame as in memory, sorted by pandas (stable, ties kept in
    their order, missing keys last)."""
    pieces = [
        pd.DataFrame({"client_id": ["c", "a", "a", None], "session": [1, 2, 2, 1],
                      "x": [1.0, 2.0, 3.0, 4.0], "kind": ["r", "u", "r", "u"]}),
        pd.DataFrame({"client_id": ["b", "a"], "session": [1, 1], "x": [5.0, np.nan],
                      "kind": ["u", "r"]}),
    ]  # fmt: skip
    frames = {}
    for on_disk in (True, False):
        with shards.Spilled(on_disk=on_disk) as kept:
            for piece in pieces:
                kept.add(piece)
            frames[on_disk] = kept.sorted_by(["client_id", "session"], ["x", "kind"])
    pd.testing.assert_frame_equal(frames[True], frames[False])
    assert np.isnan(frames[True]["x"].iloc[0])
    assert frames[True]["x"].tolist()[1:] == [2.0, 3.0, 5.0, 1.0, 4.0]


def test_per_case_spilled_gives_each_tables_pieces_in_shard_order(tmp_path: Path) -> None:
    """per_case_spilled: each key's table in its pieces, one per shard, that put together
    are per_case_each's table."""
    frames = [pd.DataFrame({"client_id": ["b", "a"], "x": [1.0, 2.0]}),
              pd.DataFrame({"client_id": ["c"], "x": [3.0]})]  # fmt: skip
    paths = [tmp_path / f"{k}.parquet" for k in range(2)]
    for frame, path in zip(frames, paths, strict=True):
        frame.to_parquet(path, index=False)
    table = shards.ShardedTable.of(paths)

    def function(frame: pd.DataFrame) -> dict[int, pd.DataFrame]:
        return {1: frame, 2: frame.assign(x=frame["x"] * 2)}

    spilled = [(k, [read(["x"])["x"].tolist() for read in kept.pieces()])
               for k, kept in shards.per_case_spilled(table, function)]  # fmt: skip
    assert spilled == [(1, [[1.0, 2.0], [3.0]]), (2, [[2.0, 4.0], [6.0]])]
    whole = dict(shards.per_case_each(table, function))
    assert whole[2]["x"].tolist() == [4.0, 2.0, 6.0]
