"""History: earlier nights' results, per-scenario trends, and regressions.

Each ``--history DIR`` is one earlier night, given oldest first (``nights/*``
sorts by name, so date-named directories come in order). A scenario is keyed
by (killer, column, scenario) exactly like the matrix.

A *regression* compares this report with the latest earlier night that ran
the same scenario on the same column:

* verdict flip: every run passed then, and at least one fails now;
* slower kill: time-to-kill p50 is worse by more than 25 % *and* by more than
  100 ms (both, so that neither noise on tiny values nor a small relative drift
  on large ones is flagged).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chaos.report.model import Matrix, ScenarioKey, column_of
from chaos.report.stats import percentile, rate
from chaos.report.store import Identity, Loaded

SLOWER_RATIO = 1.25
SLOWER_MIN_MS = 100.0
CURRENT_LABEL = "this report"


@dataclass(frozen=True)
class Night:
    label: str
    results: tuple[Loaded, ...]


@dataclass(frozen=True)
class Point:
    """One scenario on one night."""

    label: str
    passed: int
    total: int
    ttk_p50: float | None

    @property
    def pass_rate(self) -> float | None:
        return rate(self.passed, self.total)


@dataclass(frozen=True)
class Regression:
    key: ScenarioKey
    kind: str  # "verdict" or "time_to_kill"
    baseline: str  # the night compared with
    before: float  # pass rate (verdict) or p50 ms (time_to_kill)
    after: float

    @property
    def killer(self) -> str:
        return self.key[0]

    @property
    def scenario(self) -> str:
        return self.key[2]


@dataclass(frozen=True)
class History:
    labels: tuple[str, ...]  # earlier nights, oldest first, then CURRENT_LABEL
    trends: dict[ScenarioKey, tuple[Point | None, ...]]  # aligned with labels
    regressions: tuple[Regression, ...]

    @property
    def empty(self) -> bool:
        return len(self.labels) <= 1

    def regressions_of(self, key: ScenarioKey) -> tuple[Regression, ...]:
        return tuple(r for r in self.regressions if r.key == key)


def _points(results: Sequence[Loaded], label: str) -> dict[ScenarioKey, Point]:
    grouped: dict[ScenarioKey, list[Loaded]] = {}
    for loaded in results:
        r = loaded.result
        grouped.setdefault((r.killer.name, column_of(r), r.scenario), []).append(loaded)
    return {key: Point(label, sum(1 for x in runs if x.verdict.passed), len(runs),
                       percentile((x.result.metrics.time_to_kill_ms for x in runs), 50))
            for key, runs in grouped.items()}


def _unique_nights(nights: Sequence[Night], current: set[Identity]) -> list[Night]:
    """Drop results already in the current inputs, and keep each one in its latest night."""
    seen = set(current)
    kept: list[Night] = []
    for night in reversed(nights):
        fresh = tuple(r for r in night.results if r.identity not in seen)
        seen.update(r.identity for r in fresh)
        if fresh:  # a night with nothing new is not a point of its own
            kept.append(Night(night.label, fresh))
    return kept[::-1]


def build(nights: Sequence[Night], matrix: Matrix, current: Sequence[Loaded]) -> History:
    nights = _unique_nights(nights, {r.identity for r in current})
    earlier = [_points(n.results, n.label) for n in nights]
    now = _points(current, CURRENT_LABEL)
    labels = tuple(n.label for n in nights) + (CURRENT_LABEL,)
    trends: dict[ScenarioKey, tuple[Point | None, ...]] = {}
    regressions: list[Regression] = []
    for cell in matrix.cells.values():
        for group in cell.scenarios:
            key: ScenarioKey = (cell.killer, cell.column, group.scenario)
            trends[key] = tuple(p.get(key) for p in earlier) + (now.get(key),)
            regressions.extend(_compare(key, [p[key] for p in earlier if key in p], now[key]))
    return History(labels, trends, tuple(regressions))


def _compare(key: ScenarioKey, before: list[Point], now: Point) -> list[Regression]:
    out: list[Regression] = []
    if before:
        last = before[-1]
        if last.passed == last.total and now.passed < now.total:
            out.append(Regression(key, "verdict", last.label, 1.0, now.pass_rate or 0.0))
    timed = [p for p in before if p.ttk_p50 is not None]
    if timed and now.ttk_p50 is not None:
        base = timed[-1]
        assert base.ttk_p50 is not None
        if now.ttk_p50 > base.ttk_p50 * SLOWER_RATIO and now.ttk_p50 - base.ttk_p50 > SLOWER_MIN_MS:
            out.append(Regression(key, "time_to_kill", base.label, base.ttk_p50, now.ttk_p50))
    return out
