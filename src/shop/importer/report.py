"""What an import did or would do: counts per table, problems, and the progress shown meanwhile."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Problem", "Progress", "Report", "TableCounts"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One odd source row and what the import did about it."""

    table: str
    row_id: int
    rule: str
    """The documented rule that applied (docs/migrating-from-django.md)."""
    detail: str
    refused: bool
    """True: the row was not imported. False: imported as the rule says (a warning)."""


@dataclass(slots=True)
class TableCounts:
    source: int = 0
    inserted: int = 0
    updated: int = 0
    refused: int = 0

    @property
    def unchanged(self) -> int:
        return max(self.source - self.inserted - self.updated - self.refused, 0)


@dataclass
class Report:
    dry_run: bool = False
    tables: dict[str, TableCounts] = field(default_factory=lambda: defaultdict(TableCounts))
    problems: list[Problem] = field(default_factory=list)
    blocked: str | None = None
    """Why the import stopped before writing anything (e-mail twins), or None."""
    notes: list[str] = field(default_factory=list)
    """Other things done: history entries, items removed, products archived, invoices queued."""
    seconds: float = 0.0

    @property
    def refused(self) -> int:
        return sum(1 for p in self.problems if p.refused)

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if not p.refused)

    @property
    def ok(self) -> bool:
        """False when anything was refused or the import was blocked: the exit status is 1."""
        return self.blocked is None and self.refused == 0

    def print(self, out: TextIO, *, problems_per_rule: int | None = 20) -> None:
        """The summary: problems grouped by rule (``problems_per_rule`` lines each, None = all), then counts."""
        by_rule: dict[tuple[str, str, bool], list[Problem]] = defaultdict(list)
        for problem in self.problems:
            by_rule[(problem.table, problem.rule, problem.refused)].append(problem)
        for (table, rule, refused), found in by_rule.items():
            what = "refused" if refused else "warning"
            out.write(f"{what}: {table}: {rule} ({len(found)})\n")
            shown = found if problems_per_rule is None else found[:problems_per_rule]
            for problem in shown:
                out.write(f"  {table} {problem.row_id}: {problem.detail}\n")
            if len(found) > len(shown):
                out.write(f"  ... and {len(found) - len(shown)} more (--all-problems lists them)\n")
        if self.blocked:
            out.write(f"import stopped, nothing was written: {self.blocked}\n")
            return
        verb = "would be" if self.dry_run else "were"
        out.write(f"summary ({'dry run, nothing written' if self.dry_run else 'committed'}):\n")
        for name, counts in self.tables.items():
            out.write(
                f"  {name:<12} {counts.source:>9} in source: {counts.inserted} {verb} imported, "
                f"{counts.updated} updated, {counts.unchanged} unchanged, {counts.refused} refused\n"
            )
        for note in self.notes:
            out.write(f"  {note}\n")
        out.write(f"  {self.refused} refused, {self.warnings} warnings, in {self.seconds:.1f} s\n")


class Progress:
    """A bar per step on a terminal; on anything else a plain line every few seconds and at the end."""

    def __init__(self, out: TextIO, *, every: float = 5.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = every
        self._label = ""
        self._total = 0
        self._done = 0
        self._last = self._started = 0.0

    def start(self, label: str, total: int) -> None:
        self._label, self._total, self._done = label, total, 0
        self._last = self._started = time.monotonic()
        self._show(force=self.tty)

    def advance(self, count: int) -> None:
        self._done += count
        self._show()

    def finish(self, note: str = "") -> None:
        self._done = max(self._done, self._total)
        elapsed = time.monotonic() - self._started
        line = self._line() + (f" {note}" if note else "") + f" in {elapsed:.1f} s"
        self.out.write(("\r" + line + "\n") if self.tty else line + "\n")
        self.out.flush()

    def step(self, label: str) -> None:
        """A step without a count; `done` ends it."""
        self._label, self._started = label, time.monotonic()
        self.out.write(f"{label} ...\n")
        self.out.flush()

    def done(self, note: str = "") -> None:
        elapsed = time.monotonic() - self._started
        self.out.write(f"{self._label}: {note + ' ' if note else ''}in {elapsed:.1f} s\n")
        self.out.flush()

    def _line(self) -> str:
        if self.tty and self._total:
            width = 30
            filled = min(width, width * self._done // self._total)
            bar = "#" * filled + "." * (width - filled)
            return f"{self._label:<22} [{bar}] {self._done}/{self._total}"
        return f"{self._label}: {self._done}/{self._total}"

    def _show(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self._last >= 0.1:
                self._last = now
                self.out.write("\r" + self._line())
                self.out.flush()
        elif now - self._last >= self.every:
            self._last = now
            self.out.write(self._line() + "\n")
            self.out.flush()
