"""Set-up promises: pinned dependencies in sync, code style, the two commands documented."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .helpers import ROOT

# PyPI name -> conda-forge name where they differ
CONDA_NAMES: dict[str, str] = {}


def _split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$", requirement.strip())
    assert match, requirement
    return match.group(1).lower(), match.group(2).replace(" ", "")


def _environment() -> tuple[dict[str, str], list[str]]:
    """Conda dependencies (name -> version spec) and the pip section of environment.yml."""
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    conda = dict(
        _split(d)
        for d in environment["dependencies"]
        if isinstance(d, str) and d != "pip" and not d.startswith("python")
    )
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return conda, pip


def test_environment_yml_lists_the_runtime_dependencies_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = dict(_split(r) for r in project["dependencies"])
    conda, pip = _environment()
    from_pip = dict(_split(r) for r in pip)
    expected = {CONDA_NAMES.get(name, name): spec for name, spec in runtime.items()}
    assert {**conda, **from_pip} == expected
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in environment["dependencies"] if str(d).startswith("python"))
    assert python.replace(" ", "") == "python" + project["requires-python"]


def test_rules_use_the_environment_file_as_their_conda_environment() -> None:
    common = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    assert 'CONDA_ENV = "../../environment.yml"' in common
    assert (ROOT / "workflow" / "rules" / "../../environment.yml").resolve().is_file()


def test_readme_shows_the_two_commands_on_its_first_screen() -> None:
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:30])
    assert "make run" in first_screen and "make test" in first_screen


def test_ci_runs_make_test() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_code_is_ruff_clean() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    check = subprocess.run([str(ruff), "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [str(ruff), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout


def test_every_test_named_in_the_reliability_page_exists() -> None:
    """docs/reliability.md lists each promise with the test that checks it: every
    ``tests/<file>.py::<test>`` it names is a test function of that file."""
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"tests/(test_\w+)\.py::(test_\w+)", page)
    assert len(named) >= 15
    for module, test in named:
        source = (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8")
        assert f"def {test}(" in source, f"{module}::{test}"


def test_the_package_docstring_names_every_module() -> None:
    import allianceanalysis

    package = ROOT / "src" / "allianceanalysis"
    modules = {p.stem for p in package.glob("*.py") if not p.name.startswith("_")}
    modules |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    named = set(re.findall(r":mod:`~allianceanalysis\.(\w+)`", allianceanalysis.__doc__))
    assert named == modules


def test_no_stray_build_artefacts_are_committed() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode:
        pytest.skip("not a git checkout (an unpacked sdist)")
    stray = [f for f in tracked.stdout.splitlines() if f.endswith((".whl", ".tar.gz", ".egg"))]
    assert not stray
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (ROOT / "CHANGELOG.md").is_file()


def test_the_report_tables_step_does_not_import_the_rendering() -> None:
    """annual_report's names are imported when used: computing the tables (a step of its own)
    does not pay for matplotlib, jinja2 and weasyprint."""
    code = ("import sys\nfrom allianceanalysis.annual_report import ReportTables, report_tables\n"
            "print(sorted({'matplotlib', 'jinja2', 'weasyprint'} & set(sys.modules)))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
