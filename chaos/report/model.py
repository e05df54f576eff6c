"""The report's model: results grouped into killer x kernel cells, with percentiles.

A column is a kernel release *on one kind of testbed with one accelerator*:
timings under software emulation are not comparable with KVM or bare metal,
so they are never pooled. The detail page of a killer on a release holds one
section per such column.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chaos.report import paths
from chaos.report.stats import Spread, rate
from chaos.report.store import Loaded
from chaos.result import Result


@dataclass(frozen=True)
class Column:
    release: str
    kind: str
    accel: str

    @property
    def sort_key(self) -> tuple[tuple[tuple[int, int, str], ...], str, str]:
        return (natural_key(self.release), self.kind, self.accel)

    @property
    def testbed(self) -> str:
        return f"{self.kind} · {self.accel}"

    @property
    def anchor(self) -> str:
        return "tb-" + paths.component(f"{self.kind}-{self.accel}")


ScenarioKey = tuple[str, Column, str]  # killer, column, scenario


def natural_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Sort '6.1.0-9' before '6.1.0-27' and '6.1' before '6.12'."""
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part)
                  for part in re.split(r"(\d+)", text) if part)
    return (*parts, (2, 0, text))  # ties ("01" vs "1") broken by the text itself


def column_of(result: Result) -> Column:
    return Column(result.kernel.release, result.testbed.kind, result.testbed.accel)


@dataclass(frozen=True)
class Phases:
    """Percentiles of each phase over a set of runs (metrics.*_ms)."""

    time_to_kill: Spread
    detect: Spread
    teardown: Spread
    recover: Spread

    @classmethod
    def of(cls, runs: Sequence[Loaded]) -> Phases:
        ms = [r.result.metrics for r in runs]
        return cls(Spread.of(m.time_to_kill_ms for m in ms), Spread.of(m.detect_ms for m in ms),
                   Spread.of(m.teardown_ms for m in ms), Spread.of(m.recover_ms for m in ms))


def reason_counts(runs: Iterable[Loaded]) -> tuple[tuple[str, int], ...]:
    """How many runs failed with each code, most frequent first."""
    counts = Counter(code for r in runs for code in dict.fromkeys(r.verdict.reasons))
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class ScenarioGroup:
    """All repeats of one scenario in one cell."""

    scenario: str
    runs: tuple[Loaded, ...]
    anchor: str

    @property
    def passed(self) -> int:
        return sum(1 for r in self.runs if r.verdict.passed)

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def pass_rate(self) -> float | None:
        return rate(self.passed, self.total)

    @property
    def phases(self) -> Phases:
        return Phases.of(self.runs)

    @property
    def reasons(self) -> tuple[tuple[str, int], ...]:
        return reason_counts(self.runs)


@dataclass(frozen=True)
class Cell:
    """One killer on one column: every scenario run there."""

    killer: str
    column: Column
    scenarios: tuple[ScenarioGroup, ...]
    page: str  # the detail page, relative to the report root

    @property
    def runs(self) -> tuple[Loaded, ...]:
        return tuple(r for g in self.scenarios for r in g.runs)

    @property
    def passed(self) -> int:
        return sum(g.passed for g in self.scenarios)

    @property
    def total(self) -> int:
        return sum(g.total for g in self.scenarios)

    @property
    def pass_rate(self) -> float | None:
        return rate(self.passed, self.total)

    @property
    def failed(self) -> bool:
        return self.passed < self.total

    @property
    def phases(self) -> Phases:
        return Phases.of(self.runs)

    @property
    def reasons(self) -> tuple[tuple[str, int], ...]:
        return reason_counts(self.runs)

    @property
    def link(self) -> str:
        return f"{self.page}#{self.column.anchor}"


@dataclass(frozen=True)
class DetailPage:
    path: str
    release: str
    killer: str
    cells: tuple[Cell, ...]  # one per testbed variant of the release


@dataclass(frozen=True)
class Matrix:
    killers: tuple[str, ...]
    columns: tuple[Column, ...]
    cells: dict[tuple[str, Column], Cell]

    def cell(self, killer: str, column: Column) -> Cell | None:
        return self.cells.get((killer, column))

    @property
    def pages(self) -> tuple[DetailPage, ...]:
        grouped: dict[tuple[str, str], list[Cell]] = {}
        for killer in self.killers:
            for column in self.columns:
                cell = self.cell(killer, column)
                if cell is not None:
                    grouped.setdefault((column.release, killer), []).append(cell)
        return tuple(DetailPage(cells[0].page, release, killer, tuple(cells))
                     for (release, killer), cells in grouped.items())


def build(results: Sequence[Loaded]) -> Matrix:
    """Group results (already unique) into cells; the order is fully determined by the data."""
    by_cell: dict[tuple[str, Column], dict[str, list[Loaded]]] = {}
    for loaded in sorted(results, key=lambda r: r.identity):
        key = (loaded.result.killer.name, column_of(loaded.result))
        by_cell.setdefault(key, {}).setdefault(loaded.result.scenario, []).append(loaded)
    killers = tuple(sorted({k for k, _ in by_cell}, key=natural_key))
    columns = tuple(sorted({c for _, c in by_cell}, key=lambda c: c.sort_key))
    cells: dict[tuple[str, Column], Cell] = {}
    for (killer, column), scenarios in by_cell.items():
        groups = tuple(
            ScenarioGroup(name, tuple(runs), f"{column.anchor}--{paths.component(name)}")
            for name, runs in sorted(scenarios.items(), key=lambda kv: natural_key(kv[0])))
        cells[(killer, column)] = Cell(killer, column, groups,
                                       paths.detail_page(column.release, killer))
    return Matrix(killers, columns, dict(sorted(
        cells.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1].sort_key))))
