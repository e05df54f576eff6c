"""Watching the killer itself: is it stuck in reclaim, is it starved of CPU?

Three kinds of evidence, from cheapest to most precise:
- stack samples of every killer thread (``/proc/TID/stack``) at ``hz``: catch
  the long stalls (``throttle_direct_reclaim``, ``__alloc_pages_slowpath``,
  ``try_to_free_pages``, memcg reclaim) but miss short episodes;
- delay accounting (taskstats): total time each thread spent in direct
  reclaim and waiting for a CPU (run delay), and ``/proc/TID/schedstat``;
- the cgroup's ``cpu.stat`` throttled time (a CPU quota at work);
- major page faults of every thread (``/proc/TID/stat``): the killer's own pages
  were evicted under pressure and read back from disk (what ``mlockall`` prevents).
Tracepoint episodes (``vmscan:*``) are collected by the agent's killer trace
instance; this module covers what tracepoints do not.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.probes.taskstats import Delays, Taskstats
from chaos.procname import set_thread_name

RECLAIM_FRAMES = ("throttle_direct_reclaim", "__alloc_pages_slowpath", "try_to_free_pages",
                  "try_to_free_mem_cgroup_pages", "__perform_reclaim", "shrink_node",
                  "mem_cgroup_handle_over_high", "reclaim_high", "balance_dirty_pages",
                  "reclaim_throttle", "__alloc_pages_direct_compact")


@dataclass
class StackHit:
    t_ns: int
    tid: int
    frames: str  # the reclaim-related frames seen, comma-separated


@dataclass
class ThreadDelays:
    first: Delays | None = None
    last: Delays | None = None
    run_delay_first_ns: int = 0
    run_delay_last_ns: int = 0
    majflt_first: int = 0
    majflt_last: int = 0


@dataclass
class KillerProbe:
    """Samples the killer's threads until stopped; read the numbers after ``stop()``."""

    cgroup: Path
    hz: int = 50
    threads: dict[int, ThreadDelays] = field(default_factory=dict)
    stack_hits: list[StackHit] = field(default_factory=list)
    stack_samples: int = 0
    throttled_first_us: int | None = None
    throttled_last_us: int | None = None
    taskstats_error: str = ""
    # (t_ns, run delay of all threads so far in ns, cgroup throttled usec, major faults
    # of all threads so far) every refresh
    cpu_series: list[tuple[int, int, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-killer-probe",
                                        daemon=True)
        try:
            self._ts: Taskstats | None = Taskstats()
        except OSError as exc:
            self._ts = None
            self.taskstats_error = str(exc)

    def start(self) -> KillerProbe:
        self.throttled_first_us = self._throttled()
        self._thread.start()
        return self

    def tids(self) -> set[int]:
        return set(self.threads)

    def _pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.cgroup / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def _throttled(self) -> int | None:
        try:
            for line in (self.cgroup / "cpu.stat").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "throttled_usec":
                    return int(value)
        except OSError:
            pass
        return None

    def _refresh(self) -> list[int]:
        pid_of: dict[int, int] = {}  # every thread of the killer -> its process
        for pid in self._pids():
            try:
                pid_of.update(dict.fromkeys((int(t) for t in os.listdir(f"/proc/{pid}/task")),
                                            pid))
            except OSError:
                continue
        tids = list(pid_of)
        for tid in tids:
            new = tid not in self.threads
            td = self.threads.setdefault(tid, ThreadDelays())
            run_delay = _schedstat_run_delay(tid)
            if run_delay is not None:
                if new:
                    td.run_delay_first_ns = run_delay
                td.run_delay_last_ns = run_delay
            majflt = _majflt(pid_of[tid], tid)
            if majflt is not None:
                if new:
                    td.majflt_first = majflt
                td.majflt_last = majflt
            if self._ts is not None:
                d = self._ts.delays(tid)
                if d is not None:
                    td.first = td.first or d
                    td.last = d
        run_delay = sum(max(0, td.run_delay_last_ns - td.run_delay_first_ns)
                        for td in self.threads.values())
        self.cpu_series.append((time.monotonic_ns(), run_delay, self._throttled() or 0,
                                self.major_faults()))
        return tids

    def _sample_stacks(self, tids: list[int]) -> None:
        now = time.monotonic_ns()
        for tid in tids:
            try:
                text = Path(f"/proc/{tid}/stack").read_text()
            except OSError:
                continue
            hits = [f for f in RECLAIM_FRAMES if f in text]
            if hits:
                self.stack_hits.append(StackHit(now, tid, ",".join(hits)))
        self.stack_samples += 1

    def _run(self) -> None:
        set_thread_name("chaos-kprobe")
        period = 1.0 / self.hz
        tids: list[int] = []
        last_refresh = 0.0
        while not self._halt.is_set():
            t = time.monotonic()
            if t - last_refresh >= 0.1:
                tids = self._refresh()
                last_refresh = t
            self._sample_stacks(tids)
            self._halt.wait(max(0.0, period - (time.monotonic() - t)))

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._refresh()
        self.throttled_last_us = self._throttled()
        if self._ts is not None:
            self._ts.close()
            self._ts = None

    # -- summaries ------------------------------------------------------------------------------
    def reclaim_delay_ms(self) -> float:
        total = 0
        for td in self.threads.values():
            if td.first and td.last:
                total += td.last.reclaim_delay_ns - td.first.reclaim_delay_ns
        return round(total / 1e6, 3)

    def run_delay_ms(self) -> float:
        total = 0
        for td in self.threads.values():
            total += max(0, td.run_delay_last_ns - td.run_delay_first_ns)
        return round(total / 1e6, 3)

    def major_faults(self) -> int:
        """Major faults of every killer thread since it was first seen (after ready)."""
        return sum(max(0, td.majflt_last - td.majflt_first) for td in self.threads.values())

    def major_faults_around(self, start_ns: int, end_ns: int) -> int:
        """Major faults from the last sample before start to the first one after end:
        samples are 100 ms apart, so this brackets the window rather than missing it."""
        series = self.cpu_series
        if not series:
            return 0
        before = [p for p in series if p[0] <= start_ns]
        after = [p for p in series if p[0] >= end_ns]
        first = before[-1] if before else series[0]
        last = after[0] if after else series[-1]
        return max(0, last[3] - first[3])

    def starved_in(self, start_ns: int, end_ns: int) -> tuple[float, float]:
        """Run delay and throttled time (ms) accumulated between two instants."""
        inside = [p for p in self.cpu_series if start_ns <= p[0] <= end_ns]
        before = [p for p in self.cpu_series if p[0] < start_ns]
        if not inside:
            return 0.0, 0.0
        first = before[-1] if before else inside[0]
        last = inside[-1]
        return (round((last[1] - first[1]) / 1e6, 3), round((last[2] - first[2]) / 1000, 3))

    def throttled_ms(self) -> float:
        if self.throttled_first_us is None or self.throttled_last_us is None:
            return 0.0
        return round((self.throttled_last_us - self.throttled_first_us) / 1000, 3)


def _majflt(pid: int, tid: int) -> int | None:
    """Major page faults of one thread (field 12 of /proc/PID/task/TID/stat; /proc/TID/stat
    would sum the whole thread group)."""
    try:
        text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[9]) if len(fields) > 9 else None


def _schedstat_run_delay(tid: int) -> int | None:
    """Nanoseconds the thread waited on a run queue (second field of /proc/TID/schedstat)."""
    try:
        fields = Path(f"/proc/{tid}/schedstat").read_text().split()
    except OSError:
        return None
    return int(fields[1]) if len(fields) > 1 else None
