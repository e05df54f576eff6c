"""The sampler: MemAvailable, memory PSI and reclaim counters at a fixed rate.

It runs in the harness, which is under the same pressure it measures, so it
behaves like a careful OOM killer: every file is opened once and read with
``pread``, every column is a preallocated array (no allocation per sample
beyond transient floats), and it counts the samples it missed so a report
can show when the harness's own view was impaired.

Danger and recovery are decided here because only the sampler sees every
sample as it happens (definitions in ``DangerSpec`` and ``Sampler.recovered``).
"""

from __future__ import annotations

import os
import re
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos.procname import set_thread_name
from chaos.scenario import DangerSpec

MEMINFO_KEYS = {b"MemTotal": "mem_total_kib", b"MemAvailable": "mem_available_kib",
                b"AnonPages": "anon_kib", b"Cached": "cached_kib", b"Dirty": "dirty_kib",
                b"Writeback": "writeback_kib", b"Shmem": "shmem_kib", b"Mlocked": "mlocked_kib",
                b"SwapFree": "swap_free_kib"}
VMSTAT_KEYS = ("pgscan_direct", "pgsteal_direct", "pgscan_direct_throttle", "oom_kill",
               "pgscan_kswapd", "workingset_refault_file", "pswpout")

# The sampler runs at SCHED_FIFO beside what it measures and must stay cheap under
# emulation: a find per wanted key (C) costs half of one regex pass over the file.
_ALLOCSTALL_RE = re.compile(rb"^(allocstall_\w+) ", re.M)


def needles(keys: dict[bytes, str], sep: bytes) -> list[tuple[bytes, str]]:
    """What ``field_values`` looks for: each key at a line start, then ``sep``."""
    return [(b"\n" + key + sep, name) for key, name in keys.items()]


def field_values(text: bytes, wanted: list[tuple[bytes, str]]) -> dict[str, float]:
    """``name: value`` for each needle found in ``text``: the first word after it
    (meminfo's ``MemAvailable:   123 kB``, vmstat's ``oom_kill 0``)."""
    text = b"\n" + text
    out: dict[str, float] = {}
    for needle, name in wanted:
        i = text.find(needle)
        if i >= 0:
            start = i + len(needle)
            end = text.find(b"\n", start)
            words = text[start:end if end >= 0 else len(text)].split()
            if words:
                out[name] = float(words[0])
    return out


# Recovery: the first sample after the victim is gone at which available memory is back
# over the danger line and memory PSI 'some' over the last RECOVERY_WINDOW_MS is at most
# RECOVERY_PSI_PCT percent.
RECOVERY_WINDOW_MS = 250
RECOVERY_PSI_PCT = 10.0

COLUMNS = ("t_ns", "mem_available_kib", "anon_kib", "cached_kib", "dirty_kib", "writeback_kib",
           "shmem_kib", "mlocked_kib", "swap_free_kib", "psi_some_total_us", "psi_full_total_us",
           "psi_some_pct", "psi_full_pct", "allocstall", *VMSTAT_KEYS, "arena_usage_kib")


@dataclass
class ArenaSource:
    """Available memory of a memory-limited cgroup (limit - usage), for local arenas."""

    usage_file: Path
    limit_bytes: int


class Sampler(threading.Thread):
    """Samples at ``hz`` until stopped; ``on_danger`` is called once, from this thread."""

    def __init__(self, hz: int, capacity_s: float, danger: DangerSpec,
                 psi_path: Path = Path("/proc/pressure/memory"),
                 arena: ArenaSource | None = None,
                 on_danger: Callable[[int], None] | None = None) -> None:
        super().__init__(name="chaos-sampler", daemon=True)
        self.period_ns = int(1e9 / hz)
        self.capacity = int(capacity_s * hz) + 16
        self.danger = danger
        self.arena = arena
        self.on_danger = on_danger
        self.cols: dict[str, array[float]] = {
            c: array("d", bytes(8 * self.capacity)) for c in COLUMNS
        }
        self.n = 0
        self.missed = 0
        self.gaps: list[tuple[int, int]] = []  # (when noticed, samples missed)
        self._window_start: dict[int, int] = {danger.psi_window_ms: 0, RECOVERY_WINDOW_MS: 0}
        self.danger_t_ns: int | None = None
        self.victim_gone_t_ns: int | None = None
        self.recovered_t_ns: int | None = None
        self._halt = threading.Event()
        self._meminfo = os.open("/proc/meminfo", os.O_RDONLY)
        self._vmstat = os.open("/proc/vmstat", os.O_RDONLY)
        # allocstall_dma32, _normal, _movable, ...: this kernel's zones, summed
        self._allocstall_keys = [k.decode() for k in _ALLOCSTALL_RE.findall(
            os.pread(self._vmstat, 65536, 0))]
        self._vmstat_needles = needles(
            {k.encode(): k for k in (*VMSTAT_KEYS, *self._allocstall_keys)}, b" ")
        self._meminfo_needles = needles(MEMINFO_KEYS, b":")
        try:
            self._psi: int | None = os.open(psi_path, os.O_RDONLY)
        except OSError:
            self._psi = None
        self._arena_fd = os.open(arena.usage_file, os.O_RDONLY) if arena else None
        self._buf_size = 64 * 1024
        self.mem_total_kib = float(self._read_meminfo()["mem_total_kib"])
        if arena is not None:
            self.mem_total_kib = arena.limit_bytes / 1024
        self.danger_line_kib = self.mem_total_kib * danger.mem_available_pct / 100.0

    # -- reading ---------------------------------------------------------------------------
    def _pread(self, fd: int) -> bytes:
        return os.pread(fd, self._buf_size, 0)

    def _read_meminfo(self) -> dict[str, float]:
        return field_values(self._pread(self._meminfo), self._meminfo_needles)

    def _read_vmstat(self) -> dict[str, float]:
        found = field_values(self._pread(self._vmstat), self._vmstat_needles)
        out = {k: found.get(k, 0.0) for k in VMSTAT_KEYS}
        out["allocstall"] = sum(found.get(k, 0.0) for k in self._allocstall_keys)
        return out

    def _read_psi(self) -> tuple[float, float]:
        if self._psi is None:
            return 0.0, 0.0
        some = full = 0.0
        for line in self._pread(self._psi).split(b"\n"):
            if line.startswith(b"some"):
                some = float(line.rsplit(b"total=", 1)[1])
            elif line.startswith(b"full"):
                full = float(line.rsplit(b"total=", 1)[1])
        return some, full

    # -- the loop ---------------------------------------------------------------------------
    def sample_once(self) -> None:
        if self.n >= self.capacity:
            return
        t = time.monotonic_ns()
        mem = self._read_meminfo()
        vm = self._read_vmstat()
        some, full = self._read_psi()
        i = self.n
        c = self.cols
        c["t_ns"][i] = t
        for name in ("anon_kib", "cached_kib", "dirty_kib", "writeback_kib", "shmem_kib",
                     "mlocked_kib", "swap_free_kib"):
            c[name][i] = mem.get(name, 0.0)
        if self._arena_fd is not None and self.arena is not None:
            usage_kib = float(os.pread(self._arena_fd, 64, 0)) / 1024
            c["arena_usage_kib"][i] = usage_kib
            c["mem_available_kib"][i] = max(0.0, self.mem_total_kib - usage_kib)
        else:
            c["mem_available_kib"][i] = mem.get("mem_available_kib", 0.0)
        c["psi_some_total_us"][i] = some
        c["psi_full_total_us"][i] = full
        for k, v in vm.items():
            c[k][i] = v
        c["psi_some_pct"][i] = self._window_pct("psi_some_total_us", i, self.danger.psi_window_ms)
        c["psi_full_pct"][i] = self._window_pct("psi_full_total_us", i, self.danger.psi_window_ms)
        self.n = i + 1
        self._judge(i, t)

    def _window_pct(self, col: str, i: int, window_ms: int) -> float:
        """Percent of wall time stalled over (about) the last ``window_ms``."""
        t = self.cols["t_ns"]
        start = t[i] - window_ms * 1e6
        # The window's first sample only moves forward: keep it per window size, so a
        # sample costs O(1) amortised instead of a walk back over the whole window.
        j = self._window_start.get(window_ms, 0)
        while j < i and t[j] < start:
            j += 1
        self._window_start[window_ms] = j
        if j == i:
            j = max(0, i - 1)
        dt_us = (t[i] - t[j]) / 1000
        if dt_us <= 0:
            return 0.0
        return 100.0 * (self.cols[col][i] - self.cols[col][j]) / dt_us

    def _judge(self, i: int, t: int) -> None:
        avail = self.cols["mem_available_kib"][i]
        if self.danger_t_ns is None:
            psi_hit = (self.danger.psi_some_pct > 0
                       and self.cols["psi_some_pct"][i] > self.danger.psi_some_pct)
            if avail < self.danger_line_kib or psi_hit:
                self.danger_t_ns = t
                if self.on_danger is not None:
                    self.on_danger(t)
        gone = self.victim_gone_t_ns
        if gone is not None and self.recovered_t_ns is None and t >= gone:
            calm = self._window_pct("psi_some_total_us", i, RECOVERY_WINDOW_MS)
            if avail >= self.danger_line_kib and calm <= RECOVERY_PSI_PCT:
                self.recovered_t_ns = t

    def run(self) -> None:
        set_thread_name("chaos-sampler")
        next_t = time.monotonic_ns()
        while not self._halt.is_set():
            self.sample_once()
            next_t += self.period_ns
            now = time.monotonic_ns()
            if now > next_t + self.period_ns:
                late = (now - next_t) // self.period_ns
                self.missed += int(late)
                self.gaps.append((now, int(late)))
                next_t += late * self.period_ns
            delay = (next_t - now) / 1e9
            if delay > 0:
                self._halt.wait(delay)

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=5)
        for fd in (self._meminfo, self._vmstat, self._psi, self._arena_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def series(self) -> dict[str, list[float]]:
        n = self.n
        out = {c: self.cols[c][:n].tolist() for c in COLUMNS}
        if self.arena is None:
            del out["arena_usage_kib"]
        return out

    def missed_between(self, start_ns: int, end_ns: int) -> int:
        return sum(n for t, n in self.gaps if start_ns <= t <= end_ns + self.period_ns * n)

    def value_at_start(self, col: str) -> float:
        return self.cols[col][0] if self.n else 0.0

    def value_at_end(self, col: str) -> float:
        return self.cols[col][self.n - 1] if self.n else 0.0
