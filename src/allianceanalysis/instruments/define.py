"""Instruments defined as data: a configuration's ``instruments:`` block, checked in plain words.

A definition has the fields of a built-in scale (docs/instruments.md, "Your own instruments").
:func:`define_instrument` checks one against the schema (``$defs/instrument`` of the
configuration schema) and against the rules a schema cannot express, and reports every problem
as a sentence naming the key.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from .builtin import BUILTIN
from .core import Instrument, Norms, jacobson_truax_change

__all__ = ["define_instrument", "instruments_from_definitions"]

RESERVED_KEYS = (
    "client_id",
    "therapist_id",
    "site_id",
    "session",
    "session_date",
    "episode_id",
    "end_status",
    "condition",
    "source_row",
    "exclusion_reasons",
    "raw_line",
    "outcome",
    "alliance",
)
"""Names an instrument key may not take: the contract's columns and the package's own."""


def _range(spec: Mapping[str, Any], name: str) -> tuple[float, float] | None:
    value = spec.get(name)
    return None if value is None else (float(value[0]), float(value[1]))


def _fmt(value: float) -> str:
    return f"{value:g}"


class _Checker:
    """Collects the problems of one definition, each prefixed with where it is."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.messages: list[str] = []

    def add(self, field: str, message: str) -> None:
        at = f"{self.where}.{field}" if field else self.where
        self.messages.append(f"'{at}': {message}")


def _items(spec: Mapping[str, Any], check: _Checker) -> tuple[str, ...]:
    raw = spec.get("items")
    if raw is None:
        return ()
    if isinstance(raw, int):
        return tuple(str(i) for i in range(1, raw + 1))
    names = tuple(str(v) for v in raw)
    for name, count in Counter(names).items():
        if count > 1:
            check.add("items", f"item '{name}' is listed {count} times")
    return names


def _item_list(
    spec: Mapping[str, Any], field: str, values: Any, items: tuple[str, ...], check: _Checker
) -> tuple[str, ...]:
    names = tuple(str(v) for v in values)
    for name, count in Counter(names).items():
        if count > 1:
            check.add(field, f"item '{name}' is listed {count} times")
    unknown = [n for n in dict.fromkeys(names) if n not in items]
    if unknown and items:
        check.add(
            field,
            f"{', '.join(repr(n) for n in unknown)} {'is' if len(unknown) == 1 else 'are'} not "
            f"among the items ({', '.join(items)})",
        )
    elif unknown:
        check.add(field, "names items, but the instrument lists no items")
    return names


def _totals(
    spec: Mapping[str, Any],
    items: tuple[str, ...],
    item_range: tuple[float, float] | None,
    check: _Checker,
) -> tuple[float, float]:
    """The total's range: as given, or from the items' range and the scoring."""
    given = _range(spec, "total_range")
    for name, pair in (("item_range", item_range), ("total_range", given)):
        if pair is not None and not pair[0] < pair[1]:
            check.add(name, f"[{_fmt(pair[0])}, {_fmt(pair[1])}]: the minimum must be below the "
                      "maximum")  # fmt: skip
    if item_range is None or not items:
        if given is None:
            check.add(
                "",
                "needs items with an item_range (to score items), or a total_range (for a "
                "scale supplied as totals only)",
            )
            return (0.0, 1.0)
        return given
    factor = float(spec.get("scoring_factor", 1.0))
    n = len(items)
    low, high = item_range
    derived = (
        (low * n, high * n)
        if spec.get("scoring", "sum") == "sum"
        else (low * factor, high * factor)
    )
    if given is not None and not all(
        math.isclose(a, b) for a, b in zip(given, derived, strict=True)
    ):
        how = (
            f"the sum of {n} items rated {_fmt(low)}-{_fmt(high)}"
            if spec.get("scoring", "sum") == "sum"
            else f"the item mean ({_fmt(low)}-{_fmt(high)}) times {_fmt(factor)}"
        )
        check.add(
            "total_range",
            f"[{_fmt(given[0])}, {_fmt(given[1])}] does not match {how}: "
            f"[{_fmt(derived[0])}, {_fmt(derived[1])}]",
        )
    return derived


def _norms(spec: Mapping[str, Any], kind: str) -> Norms | None:
    value = spec.get("norms", {}).get(kind)
    return None if value is None else Norms(mean=float(value["mean"]), sd=float(value["sd"]))


def _check_numbers(
    spec: Mapping[str, Any],
    totals: tuple[float, float],
    items: tuple[str, ...],
    check: _Checker,
) -> None:
    low, high = totals
    cutoff = spec.get("cutoff")
    if cutoff is not None and not low < cutoff < high:
        check.add("cutoff", f"{_fmt(cutoff)} is outside the total's range "
                  f"({_fmt(low)}-{_fmt(high)}); it must lie strictly inside")  # fmt: skip
    if spec.get("cutoff_rule") is not None and cutoff is None:
        check.add("cutoff_rule", "is set but there is no cutoff")
    if (spec.get("reliability") is None) != (spec.get("reliability_kind") is None):
        check.add(
            "reliability" if spec.get("reliability") is None else "reliability_kind",
            "reliability and reliability_kind go together (internal_consistency or "
            "test_retest); give both or neither",
        )
    for kind in ("clinical", "functional"):
        norm = spec.get("norms", {}).get(kind)
        if norm is not None and not low <= norm["mean"] <= high:
            check.add(f"norms.{kind}.mean", f"{_fmt(norm['mean'])} is outside the total's range "
                      f"({_fmt(low)}-{_fmt(high)})")  # fmt: skip
    change = spec.get("reliable_change")
    if change == "jacobson_truax" and (
        spec.get("reliability") is None or "clinical" not in spec.get("norms", {})
    ):
        check.add(
            "reliable_change",
            "jacobson_truax needs a reliability and the clinical sample's SD (norms.clinical)",
        )
    elif isinstance(change, int | float) and not 0 < change < high - low:
        check.add("reliable_change", f"{_fmt(change)} points must be above 0 and below the "
                  f"total's span ({_fmt(high - low)})")  # fmt: skip
    prorate = spec.get("prorate_max_missing")
    if prorate is not None and not items:
        check.add("prorate_max_missing", "needs the items the total is prorated from")
    elif prorate is not None and prorate >= len(items):
        check.add("prorate_max_missing", f"{prorate} must be below the number of items "
                  f"({len(items)})")  # fmt: skip
    if spec.get("scoring", "sum") == "sum" and "scoring_factor" in spec:
        check.add("scoring_factor", "applies only to scoring: mean")


def define_instrument(key: str, spec: Mapping[str, Any], where: str = "instruments") -> Instrument:
    """An :class:`Instrument` from a definition (one entry of a configuration's
    ``instruments:`` block).

    Parameters
    ----------
    key : str
        The instrument's key: the name of its total column (lower-case letters, digits, ``_``).
    spec : mapping
        The definition: ``name``, ``construct``, ``higher_is_better`` and ``source`` are
        required; items (a count or names) with ``item_range``, or a ``total_range`` alone;
        optionally ``short``, ``rater``, ``scoring`` (``sum`` or ``mean``) and
        ``scoring_factor``, ``reverse_keyed``, ``subscales``, ``integer``, ``cutoff`` and
        ``cutoff_rule``, ``reliability`` and ``reliability_kind``, ``norms`` (``clinical``
        and ``functional``: ``mean``, ``sd``), ``reliable_change`` (points, or
        ``jacobson_truax``), ``prorate_max_missing``, ``sources`` (per field), ``notes``,
        ``replaces_builtin``. docs/instruments.md explains each.
    where : str
        Where the definition is, for messages (the configuration key above it).

    Returns
    -------
    Instrument

    Raises
    ------
    ConfigError
        Listing every problem in plain words (an item listed twice, a reverse-keyed item not
        among the items, a cut-off outside the range, a built-in key reused silently ...).

    Examples
    --------
    >>> bdi = define_instrument("bdi", {
    ...     "name": "Beck Depression Inventory-II", "construct": "outcome", "items": 21,
    ...     "item_range": [0, 3], "higher_is_better": False, "cutoff": 14,
    ...     "source": "Beck, Steer & Brown (1996)"})
    >>> bdi.total_min, bdi.total_max, bdi.cutoff_rule, bdi.item_columns[:2]
    (0.0, 63.0, 'at_or_above', ('bdi_1', 'bdi_2'))
    """
    from ..config import check_instrument_schema

    place = f"{where}.{key}"
    schema_problems = check_instrument_schema(key, spec, place)
    if schema_problems:
        raise ConfigError(schema_problems)
    check = _Checker(place)
    if key in RESERVED_KEYS:
        check.add("", f"'{key}' is a column of the data contract; choose another key")
    replaces = bool(spec.get("replaces_builtin", False))
    if key in BUILTIN and not replaces:
        check.add(
            "",
            f"'{key}' is the key of the built-in {BUILTIN[key].name}; set replaces_builtin: "
            "true to replace it, or choose another key",
        )
    elif replaces and key not in BUILTIN:
        check.add("replaces_builtin", f"there is no built-in instrument '{key}' to replace")
    listed = _items(spec, check)
    item_range = _range(spec, "item_range")
    if item_range is not None and not listed:
        check.add("item_range", "is set but there are no items; give items (a count or names)")
    for field in ("reverse_keyed", "subscales", "prorate_max_missing"):
        if field in spec and listed and item_range is None:
            check.add(field, "needs the items' range (item_range) to score items")
    # without an item range the items are only counted: the total must be supplied
    items = listed if item_range is not None else ()
    totals = _totals(spec, items, item_range, check)
    reverse = _item_list(spec, "reverse_keyed", spec.get("reverse_keyed", ()), listed, check)
    subscales = {
        name: _item_list(spec, f"subscales.{name}", members, listed, check)
        for name, members in spec.get("subscales", {}).items()
    }
    clash = sorted(set(subscales) & set(listed))
    if clash:
        check.add("subscales", f"{', '.join(clash)}: a subscale may not share an item's name "
                  "(both would be the column " f"{key}_{clash[0]})")  # fmt: skip
    _check_numbers(spec, totals, items, check)
    if check.messages:
        raise ConfigError(check.messages)

    higher = bool(spec["higher_is_better"])
    cutoff = spec.get("cutoff")
    scoring = spec.get("scoring", "sum")
    whole_range = item_range is None or all(float(v).is_integer() for v in item_range)
    integer = spec.get("integer", scoring == "sum" and whole_range)
    sources = {"range": spec["source"], **spec.get("sources", {})}
    reliability = spec.get("reliability")
    clinical = _norms(spec, "clinical")
    change = spec.get("reliable_change")
    if change == "jacobson_truax":
        change = jacobson_truax_change(clinical.sd, reliability)
        sources.setdefault(
            "reliable_change",
            f"Jacobson & Truax (1991): 1.96 x sqrt(2) x SD {clinical.sd:g} x sqrt(1 - "
            f"{reliability:g}) = {change:.2f} points",
        )
    return Instrument(
        key=key,
        short=spec.get("short", key.upper()),
        name=spec["name"],
        construct=spec["construct"],
        items=items,
        item_count=len(listed),
        item_min=None if item_range is None else item_range[0],
        item_max=None if item_range is None else item_range[1],
        total_min=totals[0],
        total_max=totals[1],
        integer=bool(integer),
        higher_is_better=higher,
        cutoff=None if cutoff is None else float(cutoff),
        cutoff_rule=None
        if cutoff is None
        else spec.get("cutoff_rule", "below" if higher else "at_or_above"),
        reliable_change=None if change is None else float(change),
        prorate_max_missing=spec.get("prorate_max_missing"),
        sources=MappingProxyType(sources),
        notes=spec.get("notes", ""),
        rater=spec.get("rater", "client"),
        scoring=scoring,
        scoring_factor=float(spec.get("scoring_factor", 1.0)),
        reverse_items=reverse,
        subscales=MappingProxyType(subscales),
        reliability=None if reliability is None else float(reliability),
        reliability_kind=spec.get("reliability_kind"),
        clinical_norms=clinical,
        functional_norms=_norms(spec, "functional"),
        user_defined=True,
    )


def instruments_from_definitions(
    definitions: Mapping[str, Mapping[str, Any]] | None, where: str = "instruments"
) -> dict[str, Instrument]:
    """Every definition of an ``instruments:`` block as an :class:`Instrument`, by key.

    Raises
    ------
    ConfigError
        With the problems of all definitions together.
    """
    result: dict[str, Instrument] = {}
    messages: list[str] = []
    for key, spec in (definitions or {}).items():
        try:
            result[key] = define_instrument(key, spec, where)
        except ConfigError as exc:
            messages.extend(exc.messages)
    if messages:
        raise ConfigError(messages)
    return result
