"""Reading, mapping and validating session data (the session data contract).

The contract is documented in ``docs/data-format.md``. The entry points:

- :func:`load_dataset`: read, map and validate a dataset, applying its ``on_invalid_rows``
  policy; returns a :class:`ValidationResult`.
- :func:`check_dataset`: the same without the policy (every problem is returned).
- :func:`load_sessions`: the validated sessions of a file in the canonical format, in one call.
- :func:`write_validated`: write a result's files (sessions, summary, row accounting, excluded
  rows), all or nothing.
"""

from .mapping import CONTRACT_COLUMNS, END_STATUSES, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from .read import read_raw
from .validate import ValidationResult, check_dataset, load_dataset, load_sessions
from .write import ingest, row_accounting, write_validated

__all__ = [
    "CONTRACT_COLUMNS",
    "END_STATUSES",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "ValidationResult",
    "check_dataset",
    "ingest",
    "load_dataset",
    "load_sessions",
    "read_raw",
    "row_accounting",
    "write_validated",
]
