"""Workflow configuration: loading, schema validation with plain-words errors, defaults.

The schema (``schemas/config.schema.yaml``, also reachable as
``workflow/schemas/config.schema.yaml``) is the single source of the keys, their allowed
values and their defaults. :func:`validate_config` checks a configuration against it, reports
*every* violation as a sentence naming the key, and returns a copy with defaults filled in.

Examples
--------
>>> cfg = validate_config({"datasets": {"demo": {"path": "data/demo/sessions.csv"}}})
>>> cfg["outcome"], cfg["alliance"], cfg["datasets"]["demo"]["on_invalid_rows"]
('ors', 'srs', 'fail')
>>> spec = DatasetSpec.from_config(cfg, "demo")
>>> spec.outcome, spec.path.name
('ors', 'sessions.csv')
"""

from __future__ import annotations

import codecs
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import ConfigError, did_you_mean
from .instruments import BUILTIN, Instrument, instruments_from_definitions

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "DEFAULT_NA_VALUES",
    "DatasetSpec",
    "ReadOptions",
    "check_instrument_schema",
    "config_schema",
    "dataset_entry",
    "load_config",
    "validate_config",
]

DEFAULT_NA_VALUES: tuple[str, ...] = (
    "",
    "NA",
    "N/A",
    "n/a",
    "na",
    "NaN",
    "nan",
    "NULL",
    "null",
    "None",
    "-",
    ".",
)
"""Cell texts read as missing unless a dataset sets ``read.na_values`` (surrounding spaces are
ignored)."""


@cache
def config_schema() -> dict[str, Any]:
    """The configuration's JSON Schema (draft 2020-12), as a dictionary."""
    text = resources.files("allianceanalysis").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def _schema_with(keys: list[str]) -> dict[str, Any]:
    """The schema with instrument keys ``keys`` allowed besides the built-in ones."""
    schema = config_schema()
    if not keys:
        return schema
    schema = copy.deepcopy(schema)
    known = schema["$defs"]["instrument_key"]["enum"]
    known.extend(k for k in keys if k not in known)
    return schema


def _defined_keys(config: Mapping[str, Any]) -> list[str]:
    block = config.get("instruments")
    return [str(k) for k in block] if isinstance(block, Mapping) else []


def check_instrument_schema(key: str, spec: Any, where: str) -> list[str]:
    """The schema problems of one instrument definition, in plain words (empty if none).

    Checks ``spec`` against ``$defs/instrument`` of the configuration schema, naming keys
    from ``where`` (e.g. ``instruments.bdi``).
    """
    import jsonschema

    root = config_schema()
    schema = {**root["$defs"]["instrument"], "$defs": root["$defs"]}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(spec), key=lambda e: list(e.absolute_path))
    return [m for e in errors for m in _explain(e, schema, where.split("."))]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    siblings = {k: v for k, v in schema.items() if k != "$ref"}  # e.g. a default beside it
    return {**node, **siblings} if siblings else node


def _fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any]) -> None:
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return
    properties = schema.get("properties", {})
    for key, sub in properties.items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in properties:
                _fill_defaults(value, extra, root)


def _where(path: list[Any]) -> str:
    return ".".join(str(p) for p in path) if path else "(top level)"


def _explain(
    error: jsonschema.ValidationError, root: dict[str, Any], prefix: list[str] | None = None
) -> list[str]:
    path = [*(prefix or []), *error.absolute_path]
    where = _where(path)
    validator = error.validator
    if validator == "additionalProperties":
        allowed = list(_resolve(error.schema, root).get("properties", {}))
        return [
            f"unknown key '{_where([*path, key])}'{did_you_mean(str(key), allowed)}; "
            "allowed here: " + ", ".join(allowed)
            for key in sorted(set(error.instance) - set(allowed))
        ]
    allowed = _allowed_values(error)
    if "propertyNames" in error.schema_path:
        if allowed is not None:
            suggestion = did_you_mean(str(error.instance), allowed)
            return [
                f"'{error.instance}' is not allowed under '{where}'{suggestion}; allowed: "
                + ", ".join(allowed)
                + _instrument_hint(allowed, root)
            ]
        rule = error.schema.get("description", "").strip()
        return [f"name '{error.instance}' under '{where}' is not allowed: {rule}"]
    if validator == "required":
        missing = error.message.split("'")[1]
        return [f"'{where}' needs the key '{missing}'"]
    if allowed is not None:
        return [
            f"'{where}' is {error.instance!r}; allowed values: "
            + ", ".join(allowed)
            + _instrument_hint(allowed, root)
        ]
    if validator in ("anyOf", "oneOf"):
        options = [_describe(_resolve(sub, root)) for sub in error.validator_value]
        return [f"'{where}' is {error.instance!r}; it must be " + " or ".join(options)]
    if validator == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return [f"'{where}' is {error.instance!r}; it must be of type {wanted}"]
    if validator == "pattern" and "description" in error.schema:
        return [f"'{where}' is {error.instance!r}, not allowed here. {error.schema['description']}"]
    if validator == "minProperties" and path == ["datasets"]:
        return ["'datasets' is empty; name at least one dataset with its path"]
    return [f"'{where}': {error.message}"]


def _describe(schema: dict[str, Any]) -> str:
    """A schema alternative in words: ``a number above 0``, ``'jacobson_truax'`` ..."""
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kind = schema.get("type", "value")
    text = f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    if "exclusiveMinimum" in schema:
        text += f" above {schema['exclusiveMinimum']}"
    elif "minimum" in schema:
        text += f" of at least {schema['minimum']}"
    return text


def _allowed_values(error: jsonschema.ValidationError) -> list[str] | None:
    """The values an ``enum`` (or an ``anyOf`` of enums and null) allows; ``None`` otherwise."""
    if error.validator == "enum":
        return [str(v) for v in error.validator_value]
    if error.validator != "anyOf":
        return None
    values: list[str] = []
    for sub in error.context or ():
        if sub.validator == "enum":
            values += [str(v) for v in sub.validator_value]
        elif sub.validator == "type" and sub.validator_value == "null":
            values.append("null")
        else:
            return None
    return values or None


def _instrument_hint(allowed: list[str], root: dict[str, Any]) -> str:
    if set(root["$defs"]["instrument_key"]["enum"]) <= set(allowed):
        return " (define other instruments under instruments:)"
    return ""


def validate_config(config: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """Check a configuration against the schema and return it with defaults filled in.

    Parameters
    ----------
    config : mapping
        The parsed configuration (e.g. Snakemake's ``config``).
    source : str
        Name of the configuration's origin, used in messages.

    Returns
    -------
    dict
        A deep copy of ``config`` with every schema default set.

    Raises
    ------
    ConfigError
        Listing every violation in plain words (unknown keys with a suggestion, values
        outside their allowed set, wrong types, missing keys, unsafe dataset names).
    """
    if not isinstance(config, Mapping):
        raise ConfigError("the configuration must be a mapping of keys to values", source)
    import jsonschema  # here, not at the top: importing it takes seconds (its format checkers)

    schema = _schema_with(_defined_keys(config))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.absolute_path))
    messages = [m for e in errors for m in _explain(e, schema)]
    result = copy.deepcopy(dict(config))
    if not messages:
        _fill_defaults(result, schema, schema)
        try:
            registry = {**BUILTIN, **instruments_from_definitions(result["instruments"])}
        except ConfigError as exc:
            raise ConfigError(exc.messages, source) from None
        messages = _check_semantics(result, registry)
    if messages:
        raise ConfigError(messages, source)
    return result


def _check_semantics(config: dict[str, Any], registry: Mapping[str, Instrument]) -> list[str]:
    """Rules JSON Schema cannot express: item counts, encodings, distinct instruments."""
    from .covariates import Adjustment
    from .custom_models import custom_models

    messages = []
    for name, dataset in config["datasets"].items():
        for check in (Adjustment.from_config, custom_models):
            try:
                check(config, name)
            except ConfigError as exc:
                messages += [m for m in exc.messages if m not in messages]
        outcome = dataset.get("outcome", config["outcome"])
        alliance = dataset.get("alliance", config["alliance"])
        if outcome == alliance:
            messages.append(
                f"'datasets.{name}': outcome and alliance are both '{outcome}'; they must differ"
            )
        for key, columns in dataset.get("items", {}).items():
            inst = registry[key]
            if not inst.sums_items:
                messages.append(
                    f"'datasets.{name}.items.{key}': the loader does not score items of "
                    f"{inst.name} (supply its total, or define its items and their range under "
                    "instruments:)"
                )
            elif len(columns) != inst.item_count:
                messages.append(
                    f"'datasets.{name}.items.{key}' lists {len(columns)} columns; "
                    f"{inst.name} has {inst.item_count} items"
                )
        for contract, column in dataset.get("columns", {}).items():
            if column is None and contract != "therapist_id":
                messages.append(
                    f"'datasets.{name}.columns.{contract}' is null; only therapist_id may be "
                    "declared absent (data without therapist codes)"
                )
        encoding = dataset.get("read", {}).get("encoding")
        if encoding is not None:
            try:
                codecs.lookup(encoding)
            except (LookupError, ValueError):  # ValueError: a NUL character in the name
                messages.append(
                    f"'datasets.{name}.read.encoding' is {encoding!r}, which is not a known "
                    "text encoding (e.g. utf-8, cp1252, latin-1, utf-16)"
                )
    return messages


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file safely and validate it.

    Parameters
    ----------
    path : str or Path
        The YAML file.

    Returns
    -------
    dict
        The validated configuration with defaults (see :func:`validate_config`).

    Raises
    ------
    ConfigError
        When the file is missing, is not YAML, or breaks the schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError("file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot be read as UTF-8 text ({exc.__class__.__name__})", str(path)
        ) from None
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{where}{problem}", str(path)) from None
    if parsed is None:
        raise ConfigError("the file is empty", str(path))
    return validate_config(parsed, str(path))


@dataclass(frozen=True)
class ReadOptions:
    """How to read one file; ``None`` means detect."""

    sep: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    date_format: str | None = None
    sheet: str | int | None = None
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    max_file_mb: float = 2048


@dataclass(frozen=True)
class DatasetSpec:
    """Everything needed to read, map and validate one dataset.

    Build it with :meth:`from_config` (from a validated workflow configuration) or directly
    (a file in the canonical format needs only ``name`` and ``path``).
    """

    name: str
    path: Path
    format: str = "auto"
    read: ReadOptions = field(default_factory=ReadOptions)
    columns: Mapping[str, str | None] = field(default_factory=dict)
    items: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    recode: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    outcome: str = "ors"
    alliance: str | None = "srs"
    on_invalid_rows: str = "fail"
    prorate: bool = False
    allow_identifier_columns: tuple[str, ...] = ()
    instruments: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    shard: Path | None = None
    """One shard of ``path`` to validate instead of the whole file
    (:mod:`allianceanalysis.shards`); messages still name ``path`` and its rows."""

    def roles(self) -> dict[str, str]:
        """The instruments the dataset analyses, by role (no alliance for outcome-only data)."""
        roles = {"outcome": self.outcome}
        if self.alliance is not None:
            roles["alliance"] = self.alliance
        return roles

    @classmethod
    def from_mapping(cls, name: str, entry: Mapping[str, Any]) -> DatasetSpec:
        """Build from one validated ``datasets.<name>`` entry that carries its instruments."""
        read = dict(entry.get("read", {}))
        if "na_values" in read:
            read["na_values"] = tuple(read["na_values"])
        return cls(
            name=name,
            path=Path(entry["path"]),
            format=entry.get("format", "auto"),
            read=ReadOptions(**read),
            columns=dict(entry.get("columns", {})),
            items={k: tuple(v) for k, v in entry.get("items", {}).items()},
            recode={k: dict(v) for k, v in entry.get("recode", {}).items()},
            outcome=entry.get("outcome", "ors"),
            alliance=entry.get("alliance", "srs"),
            on_invalid_rows=entry.get("on_invalid_rows", "fail"),
            prorate=entry.get("prorate", False),
            allow_identifier_columns=tuple(entry.get("allow_identifier_columns", ())),
            instruments=dict(entry.get("instruments", {})),
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], name: str) -> DatasetSpec:
        """Build the spec of dataset ``name`` from a validated configuration."""
        return cls.from_mapping(name, dataset_entry(config, name))


def dataset_entry(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The dataset's configuration entry with its outcome and alliance instruments resolved,
    and the configuration's own instrument definitions (``instruments``) where there are any.

    This is what the workflow passes to a job, so that a change to it reruns the job.
    """
    try:
        entry = dict(config["datasets"][name])
    except KeyError:
        known = ", ".join(config.get("datasets", {}))
        raise ConfigError(f"no dataset named '{name}'; configured datasets: {known}") from None
    entry.setdefault("outcome", config.get("outcome", "ors"))
    entry.setdefault("alliance", config.get("alliance", "srs"))
    if config.get("instruments"):
        entry["instruments"] = config["instruments"]
    return entry
