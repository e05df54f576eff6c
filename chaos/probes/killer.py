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
from chaos.procfiles import open_ro, reread
from chaos.procname import set_thread_name

RECLAIM_FRAMES = ("throttle_direct_reclaim", "__alloc_pages_slowpath", "try_to_free_pages",
                  "try_to_free_mem_cgroup_pages", "__perform_reclaim", "shrink_node",
                  "mem_cgroup_handle_over_high", "reclaim_high", "balance_dirty_pages",
                  "reclaim_throttle", "__alloc_pages_direct_compact")
RECLAIM_FRAMES_B = tuple((f, f.encode()) for f in RECLAIM_FRAMES)


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


class _ThreadFiles:
    """One killer thread's /proc files, opened once and re-read with pread: under
    emulation an open-read-close through pathlib costs ~0.4 ms, a pread ~0.01-0.03 ms,
    and the probe runs at SCHED_FIFO beside the victims whose death it times."""

    def __init__(self, pid: int, tid: int) -> None:
        base = f"/proc/{pid}/task/{tid}"
        self.fds = {name: open_ro(f"{base}/{name}") for name in ("stack", "schedstat", "stat")}

    def read(self, name: str) -> bytes | None:
        return reread(self.fds.get(name))  # None: the thread is gone

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds = {}


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
        self._files: dict[int, _ThreadFiles] = {}  # live killer threads
        self._procs_fd = open_ro(self.cgroup / "cgroup.procs")
        self._cpu_stat_fd = open_ro(self.cgroup / "cpu.stat")
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
        text = reread(self._procs_fd)
        return [int(p) for p in text.split()] if text else []

    def _throttled(self) -> int | None:
        for line in (reread(self._cpu_stat_fd) or b"").splitlines():
            key, _, value = line.partition(b" ")
            if key == b"throttled_usec":
                return int(value)
        return None

    def _refresh(self) -> list[int]:
        pid_of: dict[int, int] = {}  # every thread of the killer -> its process
        for pid in self._pids():
            try:
                pid_of.update(dict.fromkeys((int(t) for t in os.listdir(f"/proc/{pid}/task")),
                                            pid))
            except OSError:
                continue
        for tid in [t for t in self._files if t not in pid_of]:
            self._files.pop(tid).close()
        tids = list(pid_of)
        for tid in tids:
            new = tid not in self.threads
            td = self.threads.setdefault(tid, ThreadDelays())
            files = self._files.get(tid)
            if files is None:
                files = self._files[tid] = _ThreadFiles(pid_of[tid], tid)
            run_delay = _run_delay(files.read("schedstat"))
            if run_delay is not None:
                if new:
                    td.run_delay_first_ns = run_delay
                td.run_delay_last_ns = run_delay
            majflt = _majflt(files.read("stat"))
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
            files = self._files.get(tid)
            text = files.read("stack") if files is not None else None
            if text is None:
                continue
            hits = [f for f, b in RECLAIM_FRAMES_B if b in text]
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
        for files in self._files.values():
            files.close()
        self._files = {}
        for fd in (self._procs_fd, self._cpu_stat_fd):
            if fd is not None:
                os.close(fd)
        self._procs_fd = self._cpu_stat_fd = None

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


def _majflt(stat: bytes | None) -> int | None:
    """Major page faults of one thread: field 12 of /proc/PID/task/TID/stat (/proc/TID/stat
    would sum the whole thread group)."""
    if not stat:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # fields[0] is field 3 (state)
    return int(fields[9]) if len(fields) > 9 else None


def _run_delay(schedstat: bytes | None) -> int | None:
    """Nanoseconds the thread waited on a run queue (second field of its schedstat)."""
    fields = schedstat.split() if schedstat else []
    return int(fields[1]) if len(fields) > 1 else None
