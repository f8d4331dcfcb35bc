"""Configuration: schema validation with plain-words errors, defaults, safe loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from allianceanalysis.config import DatasetSpec, config_schema, load_config, validate_config
from allianceanalysis.engine import DEFAULT_ENGINE, ENGINES
from allianceanalysis.errors import ConfigError
from allianceanalysis.instruments import BUILTIN

from .helpers import ROOT

MINIMAL = {"datasets": {"demo": {"path": "data/demo/sessions.csv"}}}


def messages(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    return info.value.messages


def test_bundled_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "config.yaml")
    assert list(config["datasets"]) == ["demo", "clinic_b"]


def test_defaults_are_filled_in_from_the_schema() -> None:
    config = validate_config(MINIMAL)
    assert (config["outcome"], config["alliance"]) == ("ors", "srs")
    dataset = config["datasets"]["demo"]
    assert dataset["on_invalid_rows"] == "fail"
    assert dataset["format"] == "auto"
    assert dataset["prorate"] is False


def test_unknown_key_is_named_with_a_suggestion() -> None:
    config = {"datasets": {"demo": {"path": "x.csv", "colums": {}}}}
    (message,) = messages(config)
    assert "unknown key 'datasets.demo.colums' (did you mean 'columns'?)" in message


def test_value_outside_its_set_lists_the_allowed_values() -> None:
    config = {"datasets": {"demo": {"path": "x.csv", "on_invalid_rows": "drop"}}}
    (message,) = messages(config)
    assert message == "'datasets.demo.on_invalid_rows' is 'drop'; allowed values: fail, exclude"


def test_unknown_instrument_is_refused() -> None:
    (message,) = messages({**MINIMAL, "outcome": "bdi"})
    assert "'outcome' is 'bdi'; allowed values: ors" in message


def test_wrong_type_is_explained() -> None:
    config = {"datasets": {"demo": {"path": "x.csv", "prorate": "yes"}}}
    (message,) = messages(config)
    assert message == "'datasets.demo.prorate' is 'yes'; it must be of type boolean"


def test_missing_path_is_explained() -> None:
    (message,) = messages({"datasets": {"demo": {"format": "csv"}}})
    assert message == "'datasets.demo' needs the key 'path'"


def test_mapping_to_an_unknown_contract_column_suggests_the_right_one() -> None:
    config = {"datasets": {"demo": {"path": "x.csv", "columns": {"client": "Code"}}}}
    (message,) = messages(config)
    assert "'client' is not allowed under 'datasets.demo.columns'" in message


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", "", "x" * 65])
def test_unsafe_dataset_names_are_refused(name: str) -> None:
    (message,) = messages({"datasets": {name: {"path": "x.csv"}}})
    assert "is not allowed" in message


def test_every_violation_is_reported_at_once() -> None:
    config = {"outcome": "x", "datasets": {"a": {"path": "x.csv", "sep": ";"}}, "extra": 1}
    assert len(messages(config)) == 3


def test_item_lists_must_match_the_instrument() -> None:
    config = {"datasets": {"demo": {"path": "x.csv", "items": {"ors": ["a", "b"]}}}}
    (message,) = messages(config)
    assert "lists 2 columns; Outcome Rating Scale has 4 items" in message


def test_outcome_and_alliance_must_differ() -> None:
    (message,) = messages({**MINIMAL, "alliance": "ors"})
    assert "outcome and alliance are both 'ors'" in message


def test_unknown_encoding_is_refused() -> None:
    config = {"datasets": {"demo": {"path": "x.csv", "read": {"encoding": "klingon"}}}}
    (message,) = messages(config)
    assert "not a known text encoding" in message


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("datasets: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError, match="line 1"):
        load_config(path)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("datasets:\n  demo: {path: x.csv\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
    assert "line 3" in str(info.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "none.yaml")


def test_dataset_inherits_the_global_instruments_unless_it_overrides_them() -> None:
    config = validate_config(
        {
            "outcome": "phq9",
            "datasets": {"a": {"path": "a.csv"}, "b": {"path": "b.csv", "outcome": "core10"}},
        }
    )
    assert DatasetSpec.from_config(config, "a").outcome == "phq9"
    assert DatasetSpec.from_config(config, "b").outcome == "core10"


def test_schema_instrument_keys_are_the_builtin_registry() -> None:
    schema = config_schema()
    assert schema["$defs"]["instrument_key"]["enum"] == list(BUILTIN)
    dataset = schema["$defs"]["dataset"]["properties"]
    for where in (
        schema["properties"]["outcome"],
        schema["properties"]["alliance"]["anyOf"][0],
        dataset["outcome"],
        dataset["items"]["propertyNames"],
        dataset["columns"]["propertyNames"]["anyOf"][1],
        schema["properties"]["annual_report"]["properties"]["severity_norms"]["propertyNames"],
    ):
        assert where["$ref"] == "#/$defs/instrument_key"


def test_schema_engines_are_the_engines_the_package_has() -> None:
    engine = config_schema()["properties"]["engine"]
    assert engine["enum"] == list(ENGINES) and engine["default"] == DEFAULT_ENGINE


def test_workflow_schema_is_the_package_schema() -> None:
    workflow_copy = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert workflow_copy == config_schema()
