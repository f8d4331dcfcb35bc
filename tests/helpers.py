"""Paths and builders shared by the tests."""

from __future__ import annotations

from pathlib import Path

from allianceanalysis.config import DatasetSpec

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "corpus"
DEMO = ROOT / "data" / "demo" / "sessions.csv"


def spec_for(path: Path, **options: object) -> DatasetSpec:
    """A dataset spec for ``path`` (canonical format unless options say otherwise)."""
    return DatasetSpec.from_mapping("test", {"path": str(path), **options})
