"""Coverage-guided fuzzing with atheris (libFuzzer): ``make fuzz``, not part of ``make test``.

Two targets, each fed arbitrary bytes and instrumented over ``allianceanalysis``:

- ``loader``: the bytes as a session file through :func:`~allianceanalysis.io.check_dataset`
  (seeded with ``tests/corpus``);
- ``config``: the bytes as a YAML config through :func:`~allianceanalysis.config.load_config`,
  then every dataset it defines read through its mapping (seeded with ``config/``).

The only allowed outcomes are a result whose rows add up, or a clean ``DataError`` /
``ConfigError`` naming the file; anything else, including an exception printed as "ignored",
is a crash, saved by libFuzzer under ``results/_fuzz/``. Keep every crash as a regression test
in ``tests/test_fuzz.py`` or ``tests/test_fuzz_config.py``.

Usage: ``python tests/fuzz/atheris_targets.py {loader|config} CORPUS_DIR [libFuzzer flags]``.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["allianceanalysis"]):
    from allianceanalysis.config import DatasetSpec, load_config
    from allianceanalysis.errors import ConfigError, DataError
    from allianceanalysis.io import check_dataset

FOLDER = Path(tempfile.mkdtemp())
DATA = FOLDER / "input.csv"
CONFIG = FOLDER / "config.yaml"


def check(spec: DatasetSpec) -> None:
    try:
        result = check_dataset(spec)
    except DataError as error:
        assert str(error).startswith(str(spec.path))
        return
    rows = result.summary["rows"]
    assert rows["read"] == rows["used"] + rows["excluded"]


def loader(data: bytes) -> None:
    DATA.write_bytes(data)
    check(DatasetSpec(name="fuzz", path=DATA))


def config(data: bytes) -> None:
    CONFIG.write_bytes(data)
    try:
        loaded = load_config(CONFIG)
    except ConfigError as error:
        assert str(error).startswith(str(CONFIG))
        return
    for name in loaded["datasets"]:
        spec = DatasetSpec.from_config(loaded, name)
        check(replace(spec, path=Path("data/demo/sessions.csv")))


IGNORED: list[BaseException] = []


def strict(target: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """The target, failing also on an exception Python would only print as "ignored"."""

    def run(data: bytes) -> None:
        target(data)
        if IGNORED:
            raise IGNORED.pop()

    return run


if __name__ == "__main__":
    target = {"loader": loader, "config": config}[sys.argv.pop(1)]
    sys.unraisablehook = lambda info: IGNORED.append(info.exc_value)
    atheris.Setup(sys.argv, strict(target))
    atheris.Fuzz()
