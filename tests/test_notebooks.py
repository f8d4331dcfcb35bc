"""The student notebooks run top to bottom on the demo data, and are kept as the issue asks:
reviewed ``.py`` twins in sync with output-free ``.ipynb`` files, learning goals, exercises
with hidden solutions, and no analysis code outside the package."""

from __future__ import annotations

import ast
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

from .helpers import ROOT

NOTEBOOKS = ROOT / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
ALLOWED_IMPORTS = {"allianceanalysis", "numpy", "pandas"}


def _code_cells(notebook) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _cells(notebook) -> list[tuple]:
    """What a pair must agree on: each cell's type, source, tags and hidden state."""
    return [
        (cell.cell_type, cell.source, tuple(cell.metadata.get("tags", ())),
         cell.metadata.get("jupyter", {}).get("source_hidden", False))
        for cell in notebook.cells
    ]  # fmt: skip


def test_there_are_seven_notebooks_and_the_readme_names_each() -> None:
    assert [p.stem[:2] for p in SOURCES] == ["01", "02", "03", "04", "05", "06", "07"]
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    assert all(f"`{p.stem}`" in readme for p in SOURCES)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_and_shows_its_figures(source: Path) -> None:
    notebook = jupytext.read(source)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()  # fmt: skip
    outputs = [output for cell in _code_cells(notebook) for output in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure was displayed"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_is_in_sync_with_its_py_twin_and_has_no_outputs(source: Path) -> None:
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"run `make notebooks` to build {paired.name}"
    built = jupytext.read(paired)
    assert _cells(built) == _cells(jupytext.read(source)), f"run `make notebooks` ({paired.name})"
    for cell in _code_cells(built):
        assert cell.outputs == [] and cell.execution_count is None, paired.name


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_states_goals_and_has_two_exercises_with_hidden_solutions(source: Path) -> None:
    notebook = jupytext.read(source)
    assert "**Learning goals.**" in notebook.cells[0].source
    tags = [tuple(cell.metadata.get("tags", ())) for cell in notebook.cells]
    solutions = [cell for cell, t in zip(notebook.cells, tags, strict=True) if "solution" in t]
    assert sum("exercise" in t for t in tags) >= 2 and len(solutions) >= 2
    assert all(cell.metadata["jupyter"]["source_hidden"] is True for cell in solutions)
    # JupyterLab shows a folded cell's first line: a comment, so that it gives nothing away
    assert all(cell.source.startswith("# Solution") for cell in solutions)
    assert "## References" in notebook.cells[-1].source


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_cells_import_the_package_and_define_no_analysis_code(source: Path) -> None:
    cells = _code_cells(jupytext.read(source))
    assert "from allianceanalysis" in cells[0].source
    for cell in cells:
        tree = ast.parse("\n".join(line for line in cell.source.splitlines()
                                   if not line.startswith("%")))  # fmt: skip
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda), source.name
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [
                    alias.name for alias in node.names]  # fmt: skip
                assert {name.split(".")[0] for name in names} <= ALLOWED_IMPORTS, names
