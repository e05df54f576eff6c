"""Time-to-kill in phases, and the killer's reclaim episodes, from a result's raw record.

Pure functions over events and victims, so they are unit-tested without a
kernel and a re-rendered report computes the same numbers.

Phases (all CLOCK_MONOTONIC ns of the testbed):
  danger (t0) --detect--> fatal signal sent --teardown--> victim gone --recover--> calm
Victim gone is the kernel's ``sched_process_exit`` where traced (the pidfd
wake-up otherwise); the signal is the kernel's ``signal_generate``.
A killer that acts before the danger line has detect = 0 (t0 = the signal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.probes.tracing import TraceRecord
from chaos.result import Metrics, VictimOutcome

BEGIN = {"mm_vmscan_direct_reclaim_begin", "mm_vmscan_memcg_reclaim_begin"}
END = {"mm_vmscan_direct_reclaim_end", "mm_vmscan_memcg_reclaim_end"}


def ns_to_ms(ns: float) -> float:
    return round(ns / 1e6, 3)


@dataclass(frozen=True)
class Episode:
    """One direct-reclaim episode of one thread (tracepoint begin/end pair)."""

    tid: int
    comm: str
    begin_ns: int
    end_ns: int

    @property
    def ms(self) -> float:
        return ns_to_ms(self.end_ns - self.begin_ns)

    def under_way_at(self, t_ns: int) -> bool:
        return self.begin_ns <= t_ns < self.end_ns

    def overlap_ms(self, start: int, end: int) -> float:
        lo, hi = max(start, self.begin_ns), min(end, self.end_ns)
        return ns_to_ms(hi - lo) if hi > lo else 0.0


def reclaim_episodes(records: list[TraceRecord], tids: set[int] | None = None,
                     end_of_trace_ns: int | None = None) -> list[Episode]:
    """Pair begin/end per thread; an episode still open at the end lasts until then."""
    open_at: dict[int, TraceRecord] = {}
    out: list[Episode] = []
    for rec in records:
        if tids is not None and rec.pid not in tids:
            continue
        if rec.event in BEGIN:
            open_at[rec.pid] = rec
        elif rec.event in END:
            begin = open_at.pop(rec.pid, None)
            if begin is not None:
                out.append(Episode(rec.pid, begin.comm, begin.t_ns, rec.t_ns))
    if end_of_trace_ns is not None:
        for tid, begin in open_at.items():
            out.append(Episode(tid, begin.comm, begin.t_ns, end_of_trace_ns))
    return sorted(out, key=lambda e: e.begin_ns)


def victim_gone_ns(v: VictimOutcome) -> int | None:
    return v.kernel_exit_t_ns or v.exit_t_ns


def first_signal_ns(victims: list[VictimOutcome]) -> int | None:
    signals = [v.signal_t_ns for v in victims if v.signal_t_ns is not None]
    return min(signals) if signals else None


def effective_t0(t0_ns: int | None, dead: list[VictimOutcome]) -> int | None:
    """Danger, or the first fatal signal to the expected victims if that came first (a
    killer that acts before the danger line: detect = 0)."""
    first_signal = first_signal_ns(dead)
    if t0_ns is None or (first_signal is not None and first_signal < t0_ns):
        return first_signal
    return t0_ns


def acted_before_danger(t0_ns: int | None, victims: list[VictimOutcome]) -> bool:
    """The fatal signal to an expected victim came before the danger line (or danger was
    never reached): such a time-to-kill is the victim's teardown alone, not a race from
    danger, and a side-by-side must say so."""
    t0 = effective_t0(t0_ns, [v for v in victims if v.expected and v.died])
    return t0 is not None and t0 != t0_ns


def fill_phases(m: Metrics, t0_ns: int | None, victims: list[VictimOutcome],
                recovered_ns: int | None) -> int | None:
    """Fill detect/teardown/time-to-kill/recover; returns the effective t0 (or None)."""
    expected = [v for v in victims if v.expected]
    dead = [v for v in expected if v.died and victim_gone_ns(v)]
    if not expected or len(dead) != len(expected):
        return t0_ns
    gone = max(victim_gone_ns(v) or 0 for v in dead)
    first_signal = first_signal_ns(dead)
    t0 = effective_t0(t0_ns, dead)
    if t0 is None:
        return None
    m.time_to_kill_ms = ns_to_ms(gone - t0)
    if first_signal is not None:
        m.detect_ms = ns_to_ms(first_signal - t0)
        m.teardown_ms = ns_to_ms(gone - first_signal)
    if recovered_ns is not None:
        m.recover_ms = ns_to_ms(max(0, recovered_ns - gone))
    lags = [v.exit_t_ns - v.kernel_exit_t_ns for v in dead
            if v.exit_t_ns and v.kernel_exit_t_ns]
    if lags:
        m.exit_lag_ms = ns_to_ms(max(lags))
    return t0


def reclaim_after_signal_ms(episodes: list[Episode], signal_ns: int) -> float:
    """How long a reclaim pass of the victim that was under way when its fatal signal was
    sent still ran after it: a task in direct reclaim dies only when the pass returns, so a
    slow teardown with this near its length is the victim's reclaim, not the killer."""
    return max((ns_to_ms(e.end_ns - signal_ns) for e in episodes if e.under_way_at(signal_ns)),
               default=0.0)


@dataclass(frozen=True)
class CpuSplit:
    """Where one task's time between two instants went (sched_switch records)."""

    on_cpu_ms: float
    runnable_ms: float  # switched out still runnable (preempted): waiting for a CPU
    blocked_ms: float  # switched out asleep (D, S, ...)
    # runnable time by the task that took the CPU when it was preempted (its comm)
    preempted_by: dict[str, float] = field(default_factory=dict)


def cpu_split(records: list[TraceRecord], pid: int, start_ns: int, end_ns: int) -> CpuSplit:
    """On a CPU, waiting for one, or asleep: what a victim did between signal and exit.
    Until its first switch in the records a task counts as on CPU. Each wait for a CPU is
    put down to the task that preempted it (others may have run on that CPU before it
    got back on, which the victim's own switches do not show)."""
    acc = {"on": 0, "runnable": 0, "blocked": 0}
    behind: dict[str, int] = {}
    state, since, preemptor = "on", start_ns, ""
    for rec in records:
        if rec.event != "sched_switch":
            continue
        if rec.t_ns > end_ns:
            break
        prev, nxt = rec.int_field("prev_pid", -1), rec.int_field("next_pid", -1)
        if pid not in (prev, nxt):
            continue
        t = max(rec.t_ns, start_ns)  # switches before the window only set the state
        acc[state] += t - since
        if state == "runnable":
            behind[preemptor] = behind.get(preemptor, 0) + t - since
        if nxt == pid:
            state = "on"
        else:  # "R" or "R+": preempted, still runnable
            state = "runnable" if rec.fields.get("prev_state", "").startswith("R") else "blocked"
            preemptor = rec.fields.get("next_comm", "?")
        since = t
    acc[state] += max(0, end_ns - since)
    if state == "runnable":
        behind[preemptor] = behind.get(preemptor, 0) + max(0, end_ns - since)
    return CpuSplit(ns_to_ms(acc["on"]), ns_to_ms(acc["runnable"]), ns_to_ms(acc["blocked"]),
                    {comm: ns_to_ms(ns) for comm, ns in behind.items() if ns > 0})


def fill_reclaim(m: Metrics, episodes: list[Episode], window: tuple[int, int] | None) -> None:
    """Count, total, longest, and the part inside the window the killer should act in."""
    m.killer_reclaim_episodes = len(episodes)
    m.killer_reclaim_total_ms = round(sum(e.ms for e in episodes), 3)
    m.killer_reclaim_longest_ms = max((e.ms for e in episodes), default=0.0)
    if window is not None:
        m.killer_reclaim_in_window_ms = round(sum(e.overlap_ms(*window) for e in episodes), 3)
