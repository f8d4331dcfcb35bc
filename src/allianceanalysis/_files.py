"""Writing outputs so that no partial file is ever left looking complete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_outputs"]


@contextmanager
def atomic_outputs(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths to write to; move them onto ``paths`` only if all succeed.

    Each temporary file sits next to its target (same file system, so the final
    :func:`os.replace` is atomic). On any exception the temporary files are removed and the
    targets are left untouched.

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
    try:
        yield temps
        for temp, target in zip(temps, targets, strict=True):
            temp.replace(target)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
