"""Provenance: what exactly produced a dataset's results.

:func:`provenance` records the package and dependency versions, Python and platform, the
configuration the dataset ran with, the checksums of its input file and of its key outputs,
the seed, and the time, so that a researcher can say exactly what produced a number.
"""

from __future__ import annotations

import hashlib
import platform
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["DEPENDENCIES", "file_record", "provenance", "software_versions"]

DEPENDENCIES = (
    "numpy",
    "pandas",
    "pyarrow",
    "pandera",
    "scipy",
    "statsmodels",
    "mixedlm",
    "matplotlib",
    "seaborn",
    "jinja2",
    "snakemake",
    "jsonschema",
    "pyyaml",
    "openpyxl",
    "weasyprint",
)
"""Distributions whose versions are recorded."""


def file_record(path: str | Path) -> dict[str, Any]:
    """Path, size and SHA-256 of a file.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "x.txt"
    >>> _ = f.write_text("abc")
    >>> file_record(f)["sha256"][:12]
    'ba7816bf8f01'
    """
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def software_versions() -> dict[str, str | None]:
    """The versions of this package and of its dependencies (``None``: not installed)."""
    return {"allianceanalysis": _version("allianceanalysis"),
            **{name: _version(name) for name in DEPENDENCIES}}  # fmt: skip


def provenance(
    dataset: str,
    config: Mapping[str, Any],
    inputs: Sequence[str | Path],
    outputs: Sequence[str | Path],
) -> dict[str, Any]:
    """The provenance record of one dataset's run.

    Parameters
    ----------
    dataset : str
    config : mapping
        The settings the dataset ran with (global keys and its own entry).
    inputs, outputs : sequence of paths
        Files to record by checksum.
    """
    return {
        "dataset": dataset,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "package": {"name": "allianceanalysis", "version": _version("allianceanalysis")},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "dependencies": {name: _version(name) for name in DEPENDENCIES},
        "config": dict(config),
        "seed": config.get("seed"),
        "inputs": [file_record(p) for p in inputs],
        "outputs": [file_record(p) for p in outputs],
    }
