"""Disclosure control: small counts in published tables are suppressed, and cannot be
worked back from totals or from other tables.

The rules, applied in one place (:class:`CountSystem`; :func:`protect` for a single table) to
every number the annual report publishes:

- **Primary suppression**: a count from 1 to ``suppress_below - 1`` is replaced by ``*``
  (default ``suppress_below = 5``; NHS Digital's sub-national practice suppresses 1-7, i.e.
  ``suppress_below = 8``, and rounds other counts to the nearest 5: ``round_to = 5``). Zero is
  shown.
- **Secondary suppression**: published counts form equations: each row and each column of a
  table sums to its total, the same count published in two places is one cell, and tables
  that add up to each other are linked (the clients who finished, by site, sum to all who
  finished). No equation may have exactly one suppressed cell, or that cell could be
  recovered by subtraction, and the suppressed cells of an equation may not add up to a small
  count; while one does, the smallest other cell of that equation (a non-zero one first, the
  total last) is suppressed too. A rate is the equation ``n = events + non-events``, so a
  rate is published only when neither cell is suppressed.
- **Derived values**: rates, means and intervals built on a suppressed count are suppressed.
- **Rounding**: with ``round_to > 1``, every published count is rounded to the nearest
  multiple (rates keep their exact values).

Every suppression is logged (table, row, column, why) for the report's appendix.

Examples
--------
>>> counts = pd.DataFrame({"finished": [40, 3, 12]}, index=["S1", "S2", "S3"])
>>> result = protect(counts, DisclosurePolicy(), table="by site", column_totals=True)
>>> result.cells["finished"].tolist(), result.totals_row.tolist()
(['40', '*', '*'], ['55'])
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "SUPPRESSED",
    "CountSystem",
    "DisclosurePolicy",
    "Protected",
    "protect",
    "protect_rate",
    "suppress_small_rows",
]

SUPPRESSED = "*"
"""How a suppressed cell reads."""


@dataclass(frozen=True)
class DisclosurePolicy:
    """Suppression threshold and rounding (configurable per workflow: ``annual_report``)."""

    suppress_below: int = 5
    round_to: int = 1

    def __post_init__(self) -> None:
        if self.suppress_below < 1 or self.round_to < 1:
            raise ValueError("suppress_below and round_to must be at least 1")

    def is_small(self, count: float) -> bool:
        """Whether a count is in the suppressed range (1 to ``suppress_below - 1``)."""
        return 1 <= count < self.suppress_below

    def show(self, count: float) -> str:
        """A visible count, rounded per the policy."""
        value = (
            int(round(count / self.round_to) * self.round_to) if self.round_to > 1 else int(count)
        )
        return str(value)


@dataclass
class Protected:
    """A count table after suppression: cells (strings), optional totals, and the log."""

    cells: pd.DataFrame
    suppressed: pd.DataFrame
    totals_row: pd.Series | None = None
    totals_column: pd.Series | None = None
    log: list[dict[str, str]] = field(default_factory=list)


class CountSystem:
    """Linked published counts and the equations between them; suppression solved jointly.

    A report publishes the same count in several places (the clients who finished are a KPI,
    a denominator of rates, a total of the table by site, a row of the accounting table), and
    its tables add up to each other. Protecting each table alone would let a cell hidden in one
    be worked back from another. Here every published count is one cell, registered once
    (:meth:`cell`); :meth:`equation` records ``total = sum(members)`` (an equality is an
    equation with one member) and :meth:`group` cells published only together (a therapist's
    point in a funnel plot: clients and events). Counts that are never published but follow
    from published ones (the clients who finished without a reliable change follow from the
    finished, improved and deteriorated counts) are :meth:`implied` cells, each a member of
    one equation. :meth:`solve` then applies, until nothing changes:

    - primary suppression of every count in the suppressed range;
    - all-or-nothing groups;
    - no equation with exactly one hidden cell (it could be recovered by subtraction): the
      smallest other member (non-zero first) is hidden, or else the total; an implied cell
      may be recovered when it is not itself small;
    - no equation whose hidden members add up to a count in the suppressed range while the
      total and the other members are visible (their sum could be recovered): one more member
      is hidden.

    Only the equations of a cell just hidden are checked again (a worklist), so solving is
    linear in the size of the system for the thousands of therapists of a national service.

    Examples
    --------
    >>> system = CountSystem(DisclosurePolicy())
    >>> for key, value in {"finished": 40, "one_session": 3, "no_post": 12, "ended": 55}.items():
    ...     _ = system.cell(key, value, table="Cases", row=key)
    >>> system.equation("ended", ["finished", "one_session", "no_post"])
    >>> system.solve()
    >>> [system.text(k) for k in ("finished", "one_session", "no_post", "ended")]
    ['40', '*', '*', '55']
    """

    def __init__(self, policy: DisclosurePolicy) -> None:
        self.policy = policy
        self.values: dict[Hashable, float] = {}
        self.priority: dict[Hashable, int] = {}
        self.labels: dict[Hashable, tuple[str, str, str]] = {}
        self.equations: list[tuple[Hashable, list[Hashable]]] = []
        self.groups: list[list[Hashable]] = []
        self.hidden: set[Hashable] = set()
        self.implicit: set[Hashable] = set()
        self.log: list[dict[str, str]] = []
        self._logged: list[Hashable] = []

    def cell(
        self,
        key: Hashable,
        value: float,
        *,
        table: str,
        row: str = "",
        column: str = "",
        priority: int = 0,
    ) -> Hashable:
        """Register a published count (once; later registrations of the key are ignored).

        ``priority`` ranks what secondary suppression hides last: of the cells that could
        protect a suppressed one, the lowest priority is hidden first (then non-zero before
        zero, then the smallest). A cell's effective priority is the highest among the cells
        it is equal to (one-member equations), so a headline count is not hidden through a
        copy of it.
        """
        if key not in self.values:
            self.values[key] = float(value)
            self.labels[key] = (table, row, column)
            self.priority[key] = priority
        return key

    def implied(self, key: Hashable, value: float, *, table: str, row: str = "") -> Hashable:
        """Register a count that is never published but follows from published ones: make it
        a member of exactly one equation. It is protected like a suppressed count when it is
        in the suppressed range, and never appears in the log or in a table."""
        self.cell(key, value, table=table, row=row)
        self.hidden.add(key)
        self.implicit.add(key)
        return key

    def equation(self, total: Hashable, members: Sequence[Hashable]) -> None:
        """Record that ``total`` is the sum of ``members`` (all registered cells)."""
        self.equations.append((total, list(members)))

    def group(self, keys: Sequence[Hashable]) -> None:
        """Record cells that are published together or not at all."""
        self.groups.append(list(keys))

    def _hide(self, key: Hashable, reason: str) -> None:
        self.hidden.add(key)
        self._logged.append(key)
        table, row, column = self.labels[key]
        self.log.append({"table": table, "row": row, "column": column, "reason": reason})

    def _pick(self, members: Sequence[Hashable], total: Hashable) -> Hashable:
        pool = [c for c in (*members, total) if c not in self.hidden]
        return min(
            pool,
            key=lambda c: (self._rank[c], self.values[c] == 0, self.values[c], str(c)),
        )

    def _ranks(self) -> dict[Hashable, int]:
        """Effective priorities: the maximum over each class of equal cells."""
        parent = {key: key for key in self.values}

        def root(key: Hashable) -> Hashable:
            while parent[key] != key:
                parent[key] = parent[parent[key]]
                key = parent[key]
            return key

        for total, members in self.equations:
            if len(members) == 1:
                parent[root(total)] = root(members[0])
        best: dict[Hashable, int] = {}
        for key, priority in self.priority.items():
            best[root(key)] = max(best.get(root(key), priority), priority)
        return {key: best[root(key)] for key in self.values}

    def _recoverable(self, cell: Hashable) -> bool:
        """Whether a hidden cell, the only hidden one of an equation, may be worked out."""
        return cell in self.implicit and not self.policy.is_small(self.values[cell])

    def _check_group(self, keys: list[Hashable]) -> Hashable | None:
        shown = [k for k in keys if k not in self.hidden]
        if shown and len(shown) < len(keys):
            self._hide(shown[0], "published together with a suppressed count")
            return shown[0]
        return None

    def _check_equation(self, total: Hashable, members: list[Hashable]) -> Hashable | None:
        unknown = [c for c in (total, *members) if c in self.hidden]
        if len(unknown) == 1 and not self._recoverable(unknown[0]):
            key = self._pick(members, total)
            self._hide(key, "protects a suppressed count that could be worked back from a total "
                       "(secondary)")  # fmt: skip
            return key
        hidden_sum = sum(self.values[m] for m in members if m in self.hidden)
        shown = [m for m in members if m not in self.hidden]
        if total not in self.hidden and shown and self.policy.is_small(hidden_sum):
            key = self._pick(members, total)
            self._hide(key, "the suppressed counts of a total would add up to a small count "
                       "(secondary)")  # fmt: skip
            return key
        return None

    def solve(self) -> None:
        """Apply primary and secondary suppression (idempotent)."""
        self._rank = self._ranks()
        for key in sorted(self.values, key=str):
            if key not in self.hidden and self.policy.is_small(self.values[key]):
                self._hide(key, f"count below {self.policy.suppress_below} (primary)")
        checks = [("group", i) for i in range(len(self.groups))]
        checks += [("equation", i) for i in range(len(self.equations))]
        touching: dict[Hashable, list[tuple[str, int]]] = {}
        for kind, i in checks:
            cells = self.groups[i] if kind == "group" else [self.equations[i][0],
                                                            *self.equations[i][1]]  # fmt: skip
            for cell in cells:
                touching.setdefault(cell, []).append((kind, i))
        if any(len(touching.get(cell, ())) != 1 for cell in self.implicit):
            raise ValueError("an implied count must be a member of exactly one equation")
        queue, queued = deque(checks), set(checks)
        while queue:
            kind, i = queue.popleft()
            queued.discard((kind, i))
            hidden = (
                self._check_group(self.groups[i])
                if kind == "group"
                else self._check_equation(*self.equations[i])
            )
            if hidden is not None:
                for item in [(kind, i), *touching[hidden]]:
                    if item not in queued:
                        queue.append(item)
                        queued.add(item)

    def visible(self, *keys: Hashable) -> bool:
        """Whether every one of ``keys`` is published."""
        return not any(key in self.hidden for key in keys)

    def text(self, key: Hashable) -> str:
        """A cell as published: ``*`` or the (rounded) count."""
        return SUPPRESSED if key in self.hidden else self.policy.show(self.values[key])

    def table(
        self,
        counts: pd.DataFrame,
        *,
        name: str,
        prefix: Hashable,
        row_totals: bool = False,
        column_totals: bool = False,
    ) -> None:
        """Register a table of counts: cells ``(prefix, i, j)``, its totals ``(prefix, i,
        "total")``, ``(prefix, "total", j)``, ``(prefix, "total", "total")`` and the row and
        column equations between them. Read it back with :meth:`protected`."""
        values = counts.to_numpy(dtype=float)
        rows, cols = values.shape
        for i, row in enumerate(counts.index):
            for j, column in enumerate(counts.columns):
                self.cell(
                    (prefix, i, j), values[i, j], table=name, row=str(row), column=str(column)
                )
        if row_totals:
            for i, row in enumerate(counts.index):
                self.cell(
                    (prefix, i, "total"),
                    values[i].sum(),
                    table=name,
                    row=str(row),
                    column="Total",
                    priority=1,
                )
                self.equation((prefix, i, "total"), [(prefix, i, j) for j in range(cols)])
        if column_totals:
            for j, column in enumerate(counts.columns):
                self.cell(
                    (prefix, "total", j),
                    values[:, j].sum(),
                    table=name,
                    row="Total",
                    column=str(column),
                    priority=1,
                )
                self.equation((prefix, "total", j), [(prefix, i, j) for i in range(rows)])
        if row_totals and column_totals:
            grand = (prefix, "total", "total")
            self.cell(grand, values.sum(), table=name, row="Total", column="Total", priority=1)
            self.equation(grand, [(prefix, i, "total") for i in range(rows)])
            self.equation(grand, [(prefix, "total", j) for j in range(cols)])

    def protected(
        self,
        counts: pd.DataFrame,
        prefix: Hashable,
        *,
        row_totals: bool = False,
        column_totals: bool = False,
    ) -> Protected:
        """A table registered with :meth:`table`, as published (after :meth:`solve`)."""
        rows, cols = counts.shape
        cells = pd.DataFrame(
            [[self.text((prefix, i, j)) for j in range(cols)] for i in range(rows)],
            index=counts.index,
            columns=counts.columns,
            dtype=object,
        )
        mask = pd.DataFrame(
            [[not self.visible((prefix, i, j)) for j in range(cols)] for i in range(rows)],
            index=counts.index,
            columns=counts.columns,
        )
        totals_column = totals_row = None
        if row_totals:
            totals_column = pd.Series(
                [self.text((prefix, i, "total")) for i in range(rows)],
                index=counts.index,
                dtype=object,
            )
        if column_totals:
            entries = [self.text((prefix, "total", j)) for j in range(cols)]
            if row_totals:
                entries.append(self.text((prefix, "total", "total")))
            totals_row = pd.Series(entries, dtype=object)
        log = [
            entry
            for key, entry in zip(self._logged, self.log, strict=True)
            if isinstance(key, tuple) and key[:1] == (prefix,)
        ]
        return Protected(cells, mask, totals_row, totals_column, log)


def protect(
    counts: pd.DataFrame,
    policy: DisclosurePolicy,
    *,
    table: str,
    row_totals: bool = False,
    column_totals: bool = False,
) -> Protected:
    """Apply primary and secondary suppression to one table of counts on its own.

    Parameters
    ----------
    counts : pandas.DataFrame
        Non-negative whole counts (rows x columns).
    policy : DisclosurePolicy
    table : str
        The table's name, for the log.
    row_totals, column_totals : bool
        Whether the table publishes each row's total (a column "Total") and each column's
        total (a row "Total"); both: also the grand total.

    Returns
    -------
    Protected
    """
    system = CountSystem(policy)
    totals = {"row_totals": row_totals, "column_totals": column_totals}
    system.table(counts, name=table, prefix="t", **totals)
    system.solve()
    return system.protected(counts, "t", **totals)


def protect_rate(events: float, n: float, policy: DisclosurePolicy) -> tuple[bool, str]:
    """Whether a rate (events of n) may be published, and why not.

    A rate is the table (events, non-events) over n: it is suppressed when n, the events or the
    non-events are in the suppressed range (any one of them would let the others be worked
    back).

    Examples
    --------
    >>> protect_rate(3, 120, DisclosurePolicy())
    (False, 'events 3 below 5')
    >>> protect_rate(118, 120, DisclosurePolicy())
    (False, 'non-events 2 below 5')
    >>> protect_rate(60, 120, DisclosurePolicy())
    (True, '')
    """
    if np.isnan(n) or np.isnan(events):
        return True, ""
    for name, value in (("denominator", n), ("events", events), ("non-events", n - events)):
        if policy.is_small(value):
            return False, f"{name} {int(value)} below {policy.suppress_below}"
    return True, ""


def suppress_small_rows(
    table: pd.DataFrame, policy: DisclosurePolicy, partition: Sequence[str] = ()
) -> pd.DataFrame:
    """A tidy table fit to publish: the numbers of every row that rests on a small count
    removed, the row kept and saying why.

    A row is suppressed when its ``n_obs`` is small (1 to ``suppress_below - 1``), or when it
    is a proportion (``ci_method`` ``wilson``, clustered or not) whose events or non-events,
    ``estimate × n_obs`` and the rest, are small: a published rate and its denominator give
    its counts.
    The same rule as the annual report's (Hundepool et al., 2012, ch. 5: threshold rule).

    ``partition`` names terms whose shares divide the same cases (the categories of change:
    recovered … harmed): their counts add up to ``n_obs``, so a single hidden one could be
    worked out from the others; they are protected together as one table with its total
    (:class:`CountSystem`), and a share hidden that way says so.

    Parameters
    ----------
    table : pandas.DataFrame
        Tidy rows (:data:`allianceanalysis.tidy.TIDY_COLUMNS`).
    policy : DisclosurePolicy
    partition : sequence of str
        Terms of proportion rows whose counts add up to their common ``n_obs``.

    Returns
    -------
    pandas.DataFrame
        The same rows; suppressed ones with no estimate, standard error, interval, p-value or
        ``n_obs``, and ``message`` "suppressed: …".

    References
    ----------
    Hundepool, A., et al. (2012). *Statistical Disclosure Control*. Wiley.

    Examples
    --------
    >>> rows = pd.DataFrame({"term": ["rate", "big"], "estimate": [0.25, 0.5],
    ...                      "n_obs": [4, 200], "ci_method": ["wilson", "wilson"],
    ...                      "std_error": None, "ci_low": None, "ci_high": None,
    ...                      "p_value": None, "message": ""})
    >>> published = suppress_small_rows(rows, DisclosurePolicy(5))
    >>> published["estimate"].tolist(), published["message"].iloc[0]
    ([nan, 0.5], 'suppressed: fewer than 5 cases or events')
    """
    out = table.copy()
    n = pd.to_numeric(out["n_obs"], errors="coerce")
    estimate = pd.to_numeric(out["estimate"], errors="coerce")
    events = (estimate * n).round()
    rate = out["ci_method"].astype("str").str.startswith("wilson")
    small = n.between(1, policy.suppress_below - 1)
    small |= rate & (events.between(1, policy.suppress_below - 1)
                     | (n - events).between(1, policy.suppress_below - 1))  # fmt: skip
    numbers = ["estimate", "std_error", "ci_low", "ci_high", "p_value"]
    out[numbers] = out[numbers].astype(float)
    out.loc[small, numbers] = np.nan
    out["n_obs"] = out["n_obs"].astype("Int64").where(~small)
    out["message"] = out["message"].astype(object)
    reason = f"suppressed: fewer than {policy.suppress_below} cases or events"
    out.loc[small, "message"] = reason
    shares = out.index[out["term"].isin(partition)]
    if len(shares):
        hidden = _hidden_shares(events[shares], n[shares], policy)
        extra = hidden & ~small.loc[shares]
        out.loc[hidden.index[hidden], numbers] = np.nan
        out.loc[hidden.index[hidden], "n_obs"] = pd.NA
        out.loc[extra.index[extra], "message"] = (
            "suppressed: it would reveal a small count by subtraction from the others"
        )
    return out


def _hidden_shares(events: pd.Series, n: pd.Series, policy: DisclosurePolicy) -> pd.Series:
    """Which of the counts ``events`` (adding up to ``n``) must be hidden, solved as one table
    with its total (:class:`CountSystem`)."""
    system = CountSystem(policy)
    total = system.cell("total", float(n.max()), table="shares", row="total")
    cells = [system.cell(i, float(v), table="shares", row=str(i)) for i, v in events.items()]
    system.equation(total, cells)
    system.solve()
    return pd.Series([c in system.hidden for c in cells], index=events.index)
