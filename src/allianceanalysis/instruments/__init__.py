"""Registry of the rating scales the package understands: built in, or defined as data.

Every number of a built-in scale (range, cut-off, reliable-change threshold, prorating rule,
reliability, norms) carries the published source it comes from in
:attr:`Instrument.sources`; where the primary source could not be checked the citation says
*unconfirmed* (:mod:`allianceanalysis.instruments.builtin`). A configuration's
``instruments:`` block defines more scales, or replaces a built-in one, with the same fields
(:func:`define_instrument`); :func:`use_instruments` puts them in use, after which they behave
exactly like built-in ones everywhere (validation, scoring, KPIs, reports, figure labels).

Totals live in a column named after the instrument key (``ors``, ``srs``, ``phq9`` ...). Item
columns, where the loader scores them, are named ``<key>_<item>`` (``ors_individually``,
``phq9_1`` ...), subscale scores ``<key>_<subscale>`` (``wai_sr_goal``). See
``docs/data-format.md`` and ``docs/instruments.md``.

Examples
--------
>>> from allianceanalysis.instruments import get_instrument
>>> ors = get_instrument("ors")
>>> ors.total_min, ors.total_max, ors.higher_is_better
(0.0, 40.0, True)
>>> ors.item_columns
('ors_individually', 'ors_interpersonally', 'ors_socially', 'ors_overall')
>>> with instruments_in_use({"hamd": {"name": "Hamilton Depression Rating Scale",
...         "construct": "outcome", "rater": "clinician", "total_range": [0, 52],
...         "higher_is_better": False, "source": "Hamilton (1960)"}}):
...     get_instrument("hamd").rater
'clinician'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from .builtin import BUILTIN
from .core import Instrument, Norms
from .define import define_instrument, instruments_from_definitions

__all__ = [
    "BUILTIN",
    "INSTRUMENTS",
    "Instrument",
    "Norms",
    "define_instrument",
    "get_instrument",
    "instrument_table",
    "instruments_in_use",
    "use_instruments",
]

_ACTIVE: dict[str, Instrument] = dict(BUILTIN)
INSTRUMENTS: MappingProxyType = MappingProxyType(_ACTIVE)
"""The instruments in use by key: the built-in ones (in registry order), then those defined by
the configuration in use (:func:`use_instruments`). A read-only view that follows it."""


def use_instruments(definitions: Mapping[str, Mapping[str, Any]] | None) -> MappingProxyType:
    """Put a configuration's ``instruments:`` definitions in use (replacing earlier ones).

    Parameters
    ----------
    definitions : mapping or None
        Key -> definition (:func:`define_instrument`); ``None`` or empty for the built-in
        instruments only.

    Returns
    -------
    MappingProxyType
        :data:`INSTRUMENTS`.

    Raises
    ------
    ConfigError
        When a definition breaks a rule; the registry in use is then unchanged.
    """
    defined = instruments_from_definitions(definitions)
    _ACTIVE.clear()
    _ACTIVE.update(BUILTIN)
    _ACTIVE.update(defined)
    return INSTRUMENTS


@contextmanager
def instruments_in_use(
    definitions: Mapping[str, Mapping[str, Any]] | None,
) -> Iterator[MappingProxyType]:
    """:func:`use_instruments` for a ``with`` block; the registry before it is restored after."""
    before = dict(_ACTIVE)
    try:
        yield use_instruments(definitions)
    finally:
        _ACTIVE.clear()
        _ACTIVE.update(before)


def get_instrument(key: str) -> Instrument:
    """Return the instrument in use under ``key``.

    Parameters
    ----------
    key : str
        Instrument key, e.g. ``"ors"`` or ``"phq9"``.

    Returns
    -------
    Instrument

    Raises
    ------
    KeyError
        With the list of known keys, when ``key`` is not in the registry.

    Examples
    --------
    >>> get_instrument("phq9").cutoff
    10.0
    """
    try:
        return INSTRUMENTS[key]
    except KeyError:
        raise KeyError(
            f"unknown instrument {key!r}; known instruments: {', '.join(INSTRUMENTS)} (define "
            "others under instruments: in the configuration)"
        ) from None


def instrument_table() -> list[dict[str, object]]:
    """The instruments in use as rows (one per instrument), for printing and documentation.

    Examples
    --------
    >>> [row["key"] for row in instrument_table()][:2]
    ['ors', 'srs']
    """
    return [
        {
            "key": inst.key,
            "short": inst.short,
            "name": inst.name,
            "construct": inst.construct,
            "rater": inst.rater,
            "items": inst.item_count,
            "range": f"{inst.total_min:g}-{inst.total_max:g}",
            "scoring": _scoring(inst),
            "direction": inst.direction,
            "cutoff": "" if inst.cutoff is None else f"{inst.cutoff_rule} {inst.cutoff:g}",
            "reliable_change": ""
            if inst.reliable_change_points is None
            else f"{inst.reliable_change_points:.3g}",
            "prorate_max_missing": ""
            if inst.prorate_max_missing is None
            else str(inst.prorate_max_missing),
            "subscales": ", ".join(inst.subscales),
            "defined": "config" if inst.user_defined else "built-in",
        }
        for inst in INSTRUMENTS.values()
    ]


def _scoring(inst: Instrument) -> str:
    if not inst.sums_items:
        return "total supplied"
    how = "sum" if inst.scoring == "sum" else "mean"
    if inst.scoring == "mean" and inst.scoring_factor != 1:
        how += f" x {inst.scoring_factor:g}"
    if inst.reverse_items:
        how += f"; {len(inst.reverse_items)} reversed"
    return how
