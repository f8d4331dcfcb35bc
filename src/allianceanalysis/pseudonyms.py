"""Keyed pseudonyms: therapist codes and sample choices nobody can recompute without the key.

Published tables and figures show therapists under codes (``TH01`` …). A code must not be
recomputable from anything a reader of the report has: the list of therapist IDs (a board
member has the staff list), the configuration, the seed printed in ``provenance.json``. A
permutation seeded by the analysis seed failed that test (everyone who had the seed could
redo it). Codes therefore come from a **secret key**:

- the key is 32 random bytes from the operating system (:func:`secrets.token_bytes`), kept in
  a file outside ``results/`` (:data:`DEFAULT_KEY_FILE` in the working directory, or the
  workflow setting ``pseudonym_key``), readable by its owner only;
- a therapist's code is its rank in the order of ``HMAC-SHA256(key, "therapist" ‖ ID)``
  (RFC 2104), so without the key every assignment of codes to IDs is equally likely;
- random choices of what a published figure shows (the example sequences of a rupture, the
  sample of trajectories) are seeded by :func:`keyed_seed`, so the cases shown cannot be
  worked out either.

The key is created once (:func:`load_key` with ``create=True``) and reused, so reruns are
identical byte for byte; it is never written into provenance, logs or any output. Rotating it
(deleting the file) changes every code. The analysis seed stays what it was: the seed of the
statistics (bootstrap, cross-validation).

References
----------
Krawczyk, H., Bellare, M., & Canetti, R. (1997). HMAC: Keyed-hashing for message
authentication. RFC 2104.
ICO (2021). Anonymisation, pseudonymisation and privacy enhancing technologies guidance,
ch. 3: pseudonymisation with a secret key ("keyed hash").

Examples
--------
>>> key = bytes(range(32))
>>> therapist_codes(["ann", "bob", "cy", "dee"], key)
{'ann': 'TH1', 'dee': 'TH2', 'bob': 'TH3', 'cy': 'TH4'}
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ConfigError

__all__ = [
    "DEFAULT_KEY_FILE",
    "KEY_BYTES",
    "codes_frame",
    "keyed_seed",
    "load_key",
    "new_key",
    "read_codes",
    "seeded_codes",
    "seeded_positions",
    "therapist_codes",
]

KEY_BYTES = 32
"""Length of the key: 256 bits, the output length of SHA-256 (RFC 2104 §3: a key shorter
than the hash output weakens it; longer adds nothing)."""

DEFAULT_KEY_FILE = Path("keys") / "pseudonym.key"
"""Where the workflow keeps the key, relative to its working directory (outside
``results/``); the workflow setting ``pseudonym_key`` names another file."""


def new_key() -> bytes:
    """A fresh key from the operating system's entropy (:func:`secrets.token_bytes`)."""
    return secrets.token_bytes(KEY_BYTES)


def load_key(path: str | Path, *, create: bool = False) -> bytes:
    """The key in ``path``; with ``create``, a missing file is made first (owner-only).

    Parameters
    ----------
    path : str or pathlib.Path
        The key file: :data:`KEY_BYTES` bytes, written as hexadecimal text.
    create : bool
        Make a new key (and its folder, owner-only) when the file does not exist, and say so
        on standard error.

    Returns
    -------
    bytes

    Raises
    ------
    allianceanalysis.errors.ConfigError
        The file is missing (without ``create``), is not a key, or is readable or writable by
        anyone but its owner.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> key = load_key(folder / "keys" / "pseudonym.key", create=True)  # notice on stderr
    >>> len(key), oct((folder / "keys" / "pseudonym.key").stat().st_mode & 0o777)
    (32, '0o600')
    >>> load_key(folder / "keys" / "pseudonym.key") == key
    True
    """
    path = Path(path)
    if not path.exists():
        if not create:
            raise ConfigError("no pseudonym key here (the workflow creates one)", str(path))
        _write_key(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the pseudonym key is open to others (mode {stat.S_IMODE(mode):o}); it must be "
            f"the owner's only: chmod 600 {path}",
            str(path),
        )
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"not a pseudonym key ({KEY_BYTES * 2} hexadecimal digits expected); delete it "
            "to make a new one (every therapist code changes)",
            str(path),
        )
    return key


def _write_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(new_key().hex() + "\n")
    print(
        f"allianceanalysis: created a new pseudonym key in {path} (keep it private and keep "
        "it: the therapist codes depend on it; docs/annual-report.md)",
        file=sys.stderr,
    )


def _digest(key: bytes, kind: str, value: str) -> str:
    return hmac.new(key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()


def therapist_codes(therapists: Iterable[object], key: bytes | None = None) -> dict[str, str]:
    """Pseudonymous codes ``TH1`` … ``THn`` (zero-padded to one width) for therapist IDs.

    A therapist's code is its rank among the given therapists in the order of
    ``HMAC-SHA256(key, "therapist" ‖ ID)``. The same key and the same therapists give the same
    codes; without the key they cannot be recomputed.

    Parameters
    ----------
    therapists : iterable
        Therapist IDs (duplicates are ignored; IDs are compared as text).
    key : bytes, optional
        The secret key (:func:`load_key`). Without one a fresh random key is used, so codes
        differ from call to call: pass a key to get the same codes twice.

    Returns
    -------
    dict
        Therapist ID (text) to code.

    Examples
    --------
    >>> codes = therapist_codes([f"T{i}" for i in range(12)], key=b"k" * 32)
    >>> sorted(codes.values())[:3], len(set(codes.values()))
    (['TH01', 'TH02', 'TH03'], 12)
    """
    key = new_key() if key is None else key
    ids = sorted({str(therapist) for therapist in therapists})
    order = sorted(ids, key=lambda therapist: _digest(key, "therapist", therapist))
    width = len(str(len(ids)))
    return {therapist: f"TH{rank:0{width}d}" for rank, therapist in enumerate(order, start=1)}


def keyed_seed(key: bytes | None, purpose: str) -> int:
    """A seed for a published random choice (which cases a figure shows), from the key.

    ``HMAC-SHA256(key, "seed" ‖ purpose)``, its first 8 bytes as an integer: the same for the
    same key and purpose, unknowable without the key. Without a key, a random seed.

    Examples
    --------
    >>> keyed_seed(b"k" * 32, "rupture examples") == keyed_seed(b"k" * 32, "rupture examples")
    True
    """
    key = new_key() if key is None else key
    return int(_digest(key, "seed", purpose)[:16], 16)


def codes_frame(codes: dict[str, str]) -> pd.DataFrame:
    """The key's table (internal): ``therapist_id, code``, in code order."""
    frame = pd.DataFrame({"therapist_id": list(codes), "code": list(codes.values())})
    return frame.sort_values("code", kind="stable").reset_index(drop=True)


def read_codes(path: str | Path) -> dict[str, str]:
    """Therapist ID to code, from a table written from :func:`codes_frame`."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return dict(zip(frame["therapist_id"], frame["code"], strict=True))


def seeded_codes(therapists: Iterable[object], seed: int) -> dict[str, str]:
    """The codes of versions before keyed pseudonyms: a permutation of the sorted IDs seeded by
    the analysis seed, which ``provenance.json`` prints. Anyone with the staff list and the
    seed recomputes them (20 of 20 therapists of the demo); kept so that the publish audit
    (:mod:`allianceanalysis.publish`) and the intruder test can try it, never used for codes.

    Examples
    --------
    >>> seeded_codes(["ann", "bob", "cy"], seed=1) == seeded_codes(["cy", "bob", "ann"], seed=1)
    True
    """
    ids = sorted({str(therapist) for therapist in therapists})
    width = len(str(len(ids)))
    pairs = zip(ids, seeded_positions(len(ids), seed), strict=True)
    return {therapist: f"TH{position + 1:0{width}d}" for therapist, position in pairs}


def seeded_positions(count: int, seed: int) -> np.ndarray:
    """The 0-based code position of each of ``count`` sorted therapist IDs under
    :func:`seeded_codes` (``TH`` + position + 1): the permutation itself, cheap to compare.

    Examples
    --------
    >>> sorted(seeded_positions(3, seed=1).tolist())
    [0, 1, 2]
    """
    return np.random.default_rng(seed).permutation(count)
