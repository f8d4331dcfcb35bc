"""Fuzzing the configuration and the column mapping: a valid result or a clean, explained error.

Arbitrary YAML text, arbitrary YAML structures, and structures shaped by the config schema's own
keys go through :func:`~allianceanalysis.config.load_config`; what validates must build every
dataset's spec and read a real clinic export through its mapping, giving a frame or a
:class:`~allianceanalysis.errors.DataError`. Random headers meet random mappings in the loader.
Runs derandomized in the default suite (``tests/conftest.py``); explore further with
``pytest tests/test_fuzz_config.py --hypothesis-profile=deep``. Every crash found is kept below
as a regression test.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from allianceanalysis.config import DatasetSpec, config_schema, load_config, validate_config
from allianceanalysis.errors import ConfigError, DataError
from allianceanalysis.instruments import INSTRUMENTS
from allianceanalysis.io import check_dataset
from allianceanalysis.simulate import (
    CLINIC_DISCHARGE_LABELS,
    CLINIC_EXPORT_COLUMNS,
    simulate_study,
    write_clinic_export,
)

from .test_fuzz import check_bytes


def schema_words(node: Any) -> set[str]:
    """Every property name and string value the config schema mentions."""
    words: set[str] = set()
    if isinstance(node, dict):
        words |= set(node.get("properties", {}))
        for value in node.values():
            words |= schema_words(value)
    elif isinstance(node, list):
        words |= {v for v in node if isinstance(v, str)} | {
            w for v in node for w in schema_words(v)
        }
    return words


SCHEMA_WORDS = sorted(schema_words(config_schema()) | set(CLINIC_EXPORT_COLUMNS.values()))
WORD = st.one_of(st.sampled_from(SCHEMA_WORDS), st.text(max_size=8))
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    WORD,
    st.sampled_from(["../x.csv", "/etc/passwd", "a/b", "utf-16", "cp1250", "%d/%m/%Y", ";", ""]),
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(WORD, inner, max_size=5),
    max_leaves=30,
)
DATASET_KEYS = sorted(config_schema()["$defs"]["dataset"]["properties"])
DATASET = st.fixed_dictionaries(
    {"path": st.just("export.csv")},
    optional=dict.fromkeys([k for k in DATASET_KEYS if k != "path"], VALUE),
)
CONFIG = st.fixed_dictionaries(
    {"datasets": st.dictionaries(WORD, DATASET, min_size=1, max_size=2)},
    optional=dict.fromkeys(sorted(set(config_schema()["properties"]) - {"datasets"}), VALUE),
)


def from_schema(node: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy:
    """Values valid under the JSON Schema ``node`` (the keywords our config schema uses).

    hypothesis-jsonschema would do this, but its last release fails with current hypothesis.
    """
    if "$ref" in node:
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        node = {**root["$defs"][node["$ref"].removeprefix("#/$defs/")], **siblings}
    if "enum" in node:
        return st.sampled_from(node["enum"])
    if "const" in node:
        return st.just(node["const"])
    if "anyOf" in node or "oneOf" in node:
        return st.one_of([from_schema(n, root) for n in node.get("anyOf", node.get("oneOf"))])
    types = node.get("type", "string")
    if isinstance(types, list):
        return st.one_of([from_schema({**node, "type": t}, root) for t in types])
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if types == "null":
        return st.none()
    if types == "boolean":
        return st.booleans()
    if types == "integer":
        return st.integers(low, high).filter(lambda v: v != node.get("exclusiveMinimum"))
    if types == "number":
        return st.floats(
            low,
            high,
            exclude_min="exclusiveMinimum" in node,
            exclude_max="exclusiveMaximum" in node,
            allow_nan=False,
            allow_infinity=False,
        )
    if types == "string" and "pattern" in node:
        return st.from_regex(node["pattern"], fullmatch=True)
    if types == "string":
        size = dict(min_size=node.get("minLength", 0), max_size=node.get("maxLength", 12))
        words = st.sampled_from(SCHEMA_WORDS).filter(
            lambda w: size["min_size"] <= len(w) <= size["max_size"]
        )
        return st.one_of(words, st.text(**size))
    if types == "array":
        return st.lists(
            from_schema(node.get("items", {}), root),
            min_size=node.get("minItems", 0),
            max_size=node.get("maxItems", 4),
        )
    properties = node.get("properties", {})
    required = set(node.get("required", ()))
    fixed = st.fixed_dictionaries(
        {k: from_schema(v, root) for k, v in properties.items() if k in required},
        optional={k: from_schema(v, root) for k, v in properties.items() if k not in required},
    )
    extra = node.get("additionalProperties")
    if not isinstance(extra, dict):
        return fixed
    names = node.get("propertyNames", {})
    if "$ref" in names or "anyOf" in names:
        keys = from_schema(names, root)
    elif "enum" in names:
        keys = st.sampled_from(names["enum"])
    elif "pattern" in names:
        keys = st.from_regex(names["pattern"], fullmatch=True)
    else:
        keys = st.text(max_size=8)
    return st.dictionaries(
        keys, from_schema(extra, root), min_size=node.get("minProperties", 0), max_size=3
    )


VALID_CONFIG = from_schema(config_schema(), config_schema())


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clinic export (own column names, items, ``;``, decimal commas, day-first dates)."""
    path = tmp_path_factory.mktemp("export") / "export.csv"
    sessions = simulate_study(n_clients=12, n_therapists=3, n_sites=1, seed=3).sessions
    write_clinic_export(sessions, path, seed=3)
    return path


def check_yaml(text: str) -> dict | None:
    """Load ``text`` as a config file: a validated dict or a ConfigError naming the file."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            config = load_config(path)
        except ConfigError as error:
            assert str(error).startswith(str(path))
            assert error.messages and all(m.strip() for m in error.messages)
            event("config refused")
            return None
    event("config valid")
    return config


def check_datasets(config: dict, export: Path) -> None:
    """Every dataset of a valid config builds its spec and reads the export cleanly."""
    for name in config["datasets"]:
        spec = DatasetSpec.from_config(config, name)
        spec = replace(spec, path=export)
        try:
            result = check_dataset(spec)
        except DataError as error:
            assert str(error).startswith(str(export))
            event("dataset refused")
            continue
        event("dataset read")
        rows = result.summary["rows"]
        assert rows["read"] == rows["used"] + rows["excluded"]


@given(st.text(max_size=400))
def test_arbitrary_text_as_config_gives_a_config_or_a_clean_error(text: str) -> None:
    check_yaml(text)


@given(VALUE)
def test_arbitrary_yaml_structures_give_a_config_or_a_clean_error(value: Any) -> None:
    check_yaml(yaml.safe_dump(value, allow_unicode=True))


@given(config=CONFIG)
def test_schema_shaped_configs_give_a_config_or_a_clean_error(config: dict, export: Path) -> None:
    loaded = check_yaml(yaml.safe_dump(config, allow_unicode=True))
    if loaded is not None:
        check_datasets(loaded, export)


SEMANTIC_RULES = (
    "they must differ",
    "items",
    "is not a known text encoding",
    "'instruments.",  # the rules of an instrument definition (tests/test_instruments.py)
    "only therapist_id may be declared absent",
    "is listed twice",  # covariates and moderators (tests/test_covariates.py)
    "is also a covariate",
    "the mean of a categorical column",
    "is not a free model name",  # custom models (tests/test_custom_models.py)
    "is used twice",
    "unsupported term",
    "a binomial model takes",
)


@given(config=VALID_CONFIG)
def test_configs_valid_under_the_schema_validate_and_read_the_export(
    config: dict, export: Path
) -> None:
    """Anything the schema allows either passes or breaks one of the rules the schema cannot
    express (distinct instruments, item counts, known encodings)."""
    try:
        loaded = validate_config(config)
    except ConfigError as error:
        assert all(any(r in m for r in SEMANTIC_RULES) for m in error.messages), error.messages
        event("refused by a semantic rule")
        return
    check_datasets(loaded, export)


CONTRACT = sorted(
    {"client_id", "therapist_id", "session", "session_date", "end_status", "site_id"}
    | set(INSTRUMENTS)
)
ITEMS = sorted({c for inst in INSTRUMENTS.values() for c in inst.item_columns})


EXPORT_COLUMNS = sorted(CLINIC_EXPORT_COLUMNS.values())
RIGHT_ENTRY = {
    "read": {"sep": ";", "decimal": ",", "date_format": "%d/%m/%Y"},
    "columns": {
        contract: CLINIC_EXPORT_COLUMNS[contract]
        for contract in ("client_id", "therapist_id", "site_id", "session", "session_date")
    }
    | {"end_status": "Discharge"},
    "items": {
        key: [CLINIC_EXPORT_COLUMNS[c] for c in INSTRUMENTS[key].item_columns]
        for key in ("ors", "srs")
    },
    "recode": {"end_status": {v: k for k, v in CLINIC_DISCHARGE_LABELS.items()}},
}


@st.composite
def mutated_entry(draw: st.DrawFn) -> dict:
    """The clinic export's right dataset entry, then a few random changes to it."""
    entry = {k: {**v} for k, v in RIGHT_ENTRY.items()}
    for _ in range(draw(st.integers(0, 3))):
        part = draw(st.sampled_from(["read", "columns", "items", "recode", "policy"]))
        if part == "policy":
            entry["on_invalid_rows"] = draw(st.sampled_from(["fail", "exclude"]))
        elif part == "read":
            key = draw(st.sampled_from(["sep", "decimal", "date_format", "encoding", "na_values"]))
            options = {
                "sep": [",", ";", "\t", "|"],
                "decimal": [".", ","],
                "date_format": ["%Y-%m-%d", "%m/%d/%Y", "%d/%m/%Y %H:%M"],
                "encoding": ["utf-16", "latin-1", "cp1252"],
                "na_values": [[], ["Open"], ["0"]],
            }
            entry["read"][key] = draw(st.sampled_from(options[key]))
        elif part == "columns":
            contract = draw(st.sampled_from(CONTRACT))
            entry["columns"][contract] = draw(st.sampled_from([*EXPORT_COLUMNS, "Missing"]))
            if draw(st.booleans()):
                del entry["columns"][contract]
        elif part == "items":
            key = draw(st.sampled_from(["ors", "srs"]))
            entry["items"][key] = draw(st.permutations(EXPORT_COLUMNS))[:4]
        else:
            entry["recode"] = {}
    return entry


@given(entry=mutated_entry())
def test_mappings_of_a_clinic_export_give_a_frame_or_a_clean_error(
    entry: dict, export: Path
) -> None:
    try:
        config = validate_config({"datasets": {"clinic": {"path": str(export), **entry}}})
    except ConfigError:
        event("config refused")
        return
    check_datasets(config, export)


@given(
    header=st.lists(
        st.one_of(
            st.sampled_from([*CONTRACT, *ITEMS, "", " ", "Client Name"]), st.text(max_size=6)
        ),
        min_size=1,
        max_size=10,
    ),
    columns=st.dictionaries(st.sampled_from(CONTRACT), st.text(max_size=6), max_size=3),
)
def test_random_headers_under_random_mappings_give_a_frame_or_a_clean_error(
    header: list[str], columns: dict
) -> None:
    header = [h.replace('"', "").replace("\n", "") for h in header]
    line = ",".join(f'"{h}"' for h in header)
    data = "\n".join([line, ",".join(["1"] * len(header)), ",".join(["2"] * len(header))])
    try:
        validate_config({"datasets": {"d": {"path": "x.csv", "columns": columns}}})
    except ConfigError:
        return
    check_bytes(data.encode(), columns=columns)


def test_an_encoding_name_with_a_nul_character_is_refused_in_plain_words() -> None:
    """Found by the fuzzer (deep profile): ``codecs.lookup`` raised ValueError, not
    LookupError, for ``encoding: "\\x00"``."""
    config = {"datasets": {"d": {"path": "x.csv", "read": {"encoding": "\x00"}}}}
    with pytest.raises(ConfigError, match="is not a known text encoding"):
        validate_config(config)


@pytest.mark.parametrize("sep", ["\x80", "é", '"', "ab"])
def test_a_delimiter_that_is_not_one_ascii_character_is_refused_in_plain_words(sep: str) -> None:
    """Found by the fuzzer (deep profile): ``sep: "\\x80"`` passed the schema and pyarrow
    raised 'Expecting an ASCII character' from inside the loader."""
    config = {"datasets": {"d": {"path": "x.csv", "read": {"sep": sep}}}}
    with pytest.raises(ConfigError, match="one ASCII character other than the double quote"):
        validate_config(config)
