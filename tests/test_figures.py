"""Figures are drawn from the tidy tables and saved reproducibly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from allianceanalysis.figures import early_alliance_by_k, save_figure

ROWS = pd.DataFrame(
    {
        "model": [f"early_alliance_k{k}" for k in range(1, 6)] + ["early_alliance_k3"],
        "term": ["alliance_early"] * 5 + ["outcome_intake"],
        "estimate": [0.5, 0.4, 0.3, 0.2, 0.1, 0.9],
        "ci_low": [0.3, 0.2, 0.1, 0.0, -0.1, 0.8],
        "ci_high": [0.7, 0.6, 0.5, 0.4, 0.3, 1.0],
        "n_obs": [300, 280, 260, 240, 220, 260],
    }
)


def test_one_point_per_k_with_its_interval() -> None:
    figure = early_alliance_by_k(ROWS, alliance="WAI-SR", outcome="PHQ-9")
    axis = figure.axes[0]
    line = axis.containers[0].lines[0]
    assert list(line.get_xdata()) == [1, 2, 3, 4, 5]
    assert list(line.get_ydata()) == [0.5, 0.4, 0.3, 0.2, 0.1]
    assert "PHQ-9 points per WAI-SR point" in axis.get_ylabel()
    assert [t.get_text() for t in axis.texts] == [f"n={n}" for n in (300, 280, 260, 240, 220)]


def test_saved_figures_are_identical_for_identical_tables(tmp_path: Path) -> None:
    first = [tmp_path / "a.png", tmp_path / "a.svg"]
    second = [tmp_path / "b.png", tmp_path / "b.svg"]
    save_figure(early_alliance_by_k(ROWS), first)
    save_figure(early_alliance_by_k(ROWS), second)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.suffix
