"""What a result's timeline chart shows, in seconds relative to danger (t0_ns).

* every numeric series besides ``t_ns``, grouped into panels by unit:
  ``*_kib`` -> memory (plotted in MiB), ``psi_*`` / ``*_pct`` / ``*avg10`` -> percent,
  anything else -> a panel of its own;
* shaded spans: killer direct-reclaim episodes (``reclaim`` events whose detail
  holds a duration, or ``reclaim_begin``/``reclaim_end`` pairs of one pid) and
  bystander stalls (``stall``/``bystander_stall`` likewise). An event with a
  duration marks the *start* of its episode;
* vertical markers: danger (x = 0), kill signals, victim exits, kernel OOM kills.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chaos.result import Event, Result

SPAN_KINDS = {"reclaim": "reclaim", "stall": "stall", "bystander_stall": "stall"}
MARKER_KINDS = {"signal": "signal", "exit": "exit", "oom_kill": "oom_kill"}
SPAN_LABELS = {"reclaim": "killer direct reclaim", "stall": "bystander stall"}
MARKER_LABELS = {"danger": "danger (t0)", "signal": "kill signal", "exit": "victim exit",
                 "oom_kill": "kernel OOM kill"}

_NUM = r"(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
_NAMED = re.compile(r"\b(?:duration|dur|took|elapsed|delay)(?:_(?P<sfx>ns|us|ms|s))?\s*[=:]?\s*"
                    + _NUM + r"\s*(?P<unit>ns|us|µs|ms|s)?\b", re.IGNORECASE)
_WITH_UNIT = re.compile(_NUM + r"\s*(?P<unit>ns|us|µs|ms|s)\b")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True)
class Series:
    name: str
    panel: str  # "memory", "percent" or the series' own name
    points: tuple[tuple[float, float | None], ...]  # (x seconds, y); None breaks the line


@dataclass(frozen=True)
class Span:
    kind: str  # "reclaim" or "stall"
    start: float
    end: float
    label: str
    open: bool = False  # a begin without an end: drawn to the end of the chart


@dataclass(frozen=True)
class Marker:
    kind: str  # "danger", "signal", "exit", "oom_kill"
    x: float
    label: str


@dataclass(frozen=True)
class Timeline:
    origin: str  # what x = 0 is
    series: tuple[Series, ...]
    spans: tuple[Span, ...]
    markers: tuple[Marker, ...]
    x_min: float
    x_max: float
    notes: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.series and not self.spans and not self.markers

    def window(self, lo: float, hi: float) -> Timeline:
        """The part of the timeline between ``lo`` and ``hi`` seconds (spans clipped)."""
        series = tuple(Series(s.name, s.panel, tuple(p for p in s.points if lo <= p[0] <= hi))
                       for s in self.series)
        spans = tuple(Span(s.kind, max(s.start, lo), min(s.end, hi), s.label, s.open)
                      for s in self.spans if s.end >= lo and s.start <= hi)
        return Timeline(self.origin, tuple(s for s in series if s.points), spans,
                        tuple(m for m in self.markers if lo <= m.x <= hi), lo, hi)

    def zoom(self) -> Timeline | None:
        """A close-up from danger to the victim's exit, when that is a sliver of the run."""
        events = [m.x for m in self.markers if m.kind != "danger"]
        if not events:
            return None
        first = min([0.0, *events]) if any(m.kind == "danger" for m in self.markers) \
            else min(events)
        last = max(events)
        spread = last - first
        if spread > 0.2 * (self.x_max - self.x_min):
            return None
        lo = max(self.x_min, first - max(0.25, 0.5 * spread))
        hi = min(self.x_max, last + max(0.5, spread))
        return self.window(lo, hi) if hi > lo else None


# Cumulative kernel counters: plotted as per-second rates in one panel. PSI's
# cumulative ``*_total_us`` are left out (the ``*_pct`` series are their rates).
CUMULATIVE = frozenset({"allocstall", "pgscan_direct", "pgsteal_direct", "pgscan_direct_throttle",
                        "pgscan_kswapd", "workingset_refault_file", "pswpout", "oom_kill"})
RATE_PANEL = "kernel counters (per second)"


def panel_of(name: str) -> str:
    low = name.lower()
    if low in CUMULATIVE:
        return RATE_PANEL
    if low.endswith("_kib"):
        return "memory"
    if low.startswith("psi") or low.endswith(("_pct", "avg10", "avg60", "avg300")):
        return "percent"
    return name


def duration_s(detail: str) -> float | None:
    """A duration in a free-text event detail ("duration_ms=12.5", "took 3 ms", "1.2s").

    A named duration without a unit is in milliseconds; a bare number is not a duration.
    """
    m = _NAMED.search(detail)
    if m is not None:
        unit = (m.group("sfx") or m.group("unit") or "ms").lower()
    else:
        m = _WITH_UNIT.search(detail)
        if m is None:
            return None
        unit = m.group("unit")
    value = float(m.group("num")) * _UNIT_S[unit]
    return value if math.isfinite(value) else None


def build(result: Result) -> Timeline:
    t_ns = [t for t in result.series.get("t_ns", []) if _is_num(t)]
    notes: list[str] = []
    if result.t0_ns is not None:
        zero, origin = result.t0_ns, "danger (t0)"
    elif t_ns:
        zero, origin = int(min(t_ns)), "the first sample (this run never reached danger)"
    else:
        zero, origin = result.started_ns, "the start of the run (no danger, no samples)"

    def sec(t: float) -> float:
        return (t - zero) / 1e9

    series = _series(result, sec, notes)
    spans = _spans(result.events, sec)
    markers = [Marker(MARKER_KINDS[e.kind], sec(e.t_ns), _event_label(e))
               for e in result.events if e.kind in MARKER_KINDS]
    if result.t0_ns is not None:
        markers.insert(0, Marker("danger", 0.0, "danger: the zero of this timeline"))
    xs = [x for s in series for x, _ in s.points] + [m.x for m in markers]
    xs += [v for s in spans if not s.open for v in (s.start, s.end)]
    xs += [s.start for s in spans if s.open]
    if not xs:
        return Timeline(origin, (), (), (), 0.0, 1.0, tuple(notes))
    x_min, x_max = min(xs), max(xs)
    if x_max - x_min < 1e-9:
        x_min, x_max = x_min - 0.5, x_max + 0.5
    spans = [Span(s.kind, s.start, x_max, s.label, True) if s.open else s for s in spans]
    return Timeline(origin, tuple(series), tuple(spans), tuple(markers), x_min, x_max,
                    tuple(notes))


def _is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _series(result: Result, sec: Callable[[float], float], notes: list[str]) -> list[Series]:
    t_ns = result.series.get("t_ns", [])
    out: list[Series] = []
    for name in sorted(result.series):
        if name == "t_ns" or name.endswith("_total_us"):
            continue
        values = result.series[name]
        if not any(_is_num(v) for v in values):
            continue
        if name in CUMULATIVE and min(values) == max(values):
            continue  # a counter that never moved: nothing to see, only clutter
        if name in CUMULATIVE:
            values = _rates(t_ns, values)
        if len(values) != len(t_ns):
            notes.append(f"series {name} has {len(values)} values for {len(t_ns)} timestamps; "
                         "only the common prefix is plotted")
        panel = panel_of(name)
        scale = 1 / 1024 if panel == "memory" else 1.0
        points = tuple(
            (sec(t), float(v) * scale if _is_num(v) else None)
            for t, v in zip(t_ns, values, strict=False) if _is_num(t))
        if points:
            out.append(Series(name, panel, points))
    return out


def _rates(t_ns: Sequence[float], values: Sequence[float]) -> list[float]:
    """Per-second rate of a cumulative counter (first point 0)."""
    out: list[float] = []
    for i, v in enumerate(values):
        if i == 0 or not (_is_num(v) and _is_num(values[i - 1])) or t_ns[i] <= t_ns[i - 1]:
            out.append(0.0)
        else:
            out.append((float(v) - float(values[i - 1])) / ((t_ns[i] - t_ns[i - 1]) / 1e9))
    return out


def _spans(events: Sequence[Event], sec: Callable[[float], float]) -> list[Span]:
    out: list[Span] = []
    open_: dict[tuple[str, int], Event] = {}
    for e in sorted(events, key=lambda e: (e.t_ns, e.kind, e.pid)):
        base, _, edge = e.kind.rpartition("_")
        if e.kind in SPAN_KINDS:
            dur = duration_s(e.detail)
            if dur is not None:
                out.append(Span(SPAN_KINDS[e.kind], sec(e.t_ns), sec(e.t_ns) + dur,
                                _event_label(e)))
        elif base in SPAN_KINDS and edge == "begin":
            open_.setdefault((SPAN_KINDS[base], e.pid), e)
        elif base in SPAN_KINDS and edge == "end":
            begin = open_.pop((SPAN_KINDS[base], e.pid), None)
            if begin is not None:
                out.append(Span(SPAN_KINDS[base], sec(begin.t_ns), sec(e.t_ns),
                                _event_label(begin)))
    for (kind, _pid), begin in sorted(open_.items(), key=lambda kv: (kv[1].t_ns, kv[0])):
        out.append(Span(kind, sec(begin.t_ns), sec(begin.t_ns), _event_label(begin) + " (no end)",
                        open=True))
    return out


def _event_label(e: Event) -> str:
    parts = [e.kind]
    if e.pid:
        parts.append(f"pid {e.pid}" + (f" ({e.comm})" if e.comm else ""))
    if e.signal:
        parts.append(f"signal {e.signal}")
    if e.sender_pid or e.sender_comm:
        parts.append(f"from {e.sender_comm or '?'} ({e.sender_pid})")
    if e.detail:
        parts.append(e.detail)
    return ", ".join(parts)
