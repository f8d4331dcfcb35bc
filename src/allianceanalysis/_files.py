"""Writing outputs so that no partial file is ever left looking complete."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_directory", "atomic_outputs"]


@contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths to write to; move them onto ``paths`` only if all succeed.

    Each temporary file sits next to its target (same file system, so the final
    :func:`os.replace` is atomic). On any exception the temporary files are removed and the
    targets are left untouched; the temporary files of an earlier writer that was killed
    (no ``finally`` runs on SIGKILL) are removed first.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_outputs(target) as (tmp,):
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    targets = [Path(p) for p in paths]
    temps = [t.with_name(f".{t.name}.{os.getpid()}.tmp") for t in targets]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(target)
    try:
        yield temps
        for temp, target in zip(temps, targets, strict=True):
            temp.replace(target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory to fill; it replaces ``path`` only if all succeeds.

    Examples
    --------
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "report"
    >>> with atomic_directory(target) as tmp:
    ...     _ = (tmp / "a.txt").write_text("done")
    >>> sorted(p.name for p in target.iterdir())
    ['a.txt']
    """
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    _remove_stale(target)
    temp.mkdir(parents=True)
    try:
        yield temp
        shutil.rmtree(target, ignore_errors=True)
        temp.replace(target)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _remove_stale(target: Path) -> None:
    """Remove the temporary files or directories an interrupted writer left next to
    ``target`` (``.<name>.<pid>.tmp``)."""
    if not target.parent.is_dir():
        return
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
