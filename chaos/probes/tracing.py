"""Kernel tracepoints through a private tracefs instance.

The kernel's own record of who signalled whom (``signal:signal_generate``
runs in the sender's context), whom the OOM killer chose (``oom:mark_victim``),
when a task exited (``sched:sched_process_exit``) and when a task entered and
left direct reclaim (``vmscan:*``). A private instance (``instances/chaos-*``)
leaves anybody else's tracing alone and is removed (and swept) by name.
The ``mono`` trace clock makes timestamps comparable with time.monotonic_ns().
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

TRACEFS_CANDIDATES = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
PREFIX = "chaos-"

LINE_RE = re.compile(
    r"^\s*(?P<comm>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>\S{4,5})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>\w+):\s?(?P<body>.*)$"
)
FIELD_RE = re.compile(r"(\w[\w-]*)=(\S*)")


class TracingError(RuntimeError):
    pass


@dataclass
class TraceRecord:
    t_ns: int
    comm: str  # the task in whose context the event fired (for signals: the sender)
    pid: int  # that task's thread id
    event: str
    fields: dict[str, str] = field(default_factory=dict)
    raw: str = ""  # the event's text after its name

    def int_field(self, key: str, default: int = 0) -> int:
        try:
            return int(self.fields.get(key, default))
        except ValueError:
            return default


def tracefs_root(mount_if_missing: bool = False) -> Path | None:
    for root in TRACEFS_CANDIDATES:
        if (root / "instances").is_dir():
            return root
    if mount_if_missing and TRACEFS_CANDIDATES[0].is_dir():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS_CANDIDATES[0])],
                       check=False, capture_output=True)
        if (TRACEFS_CANDIDATES[0] / "instances").is_dir():
            return TRACEFS_CANDIDATES[0]
    return None


@dataclass
class TraceSession:
    """One tracefs instance with a set of events; use as a context manager."""

    name: str
    events: tuple[str, ...]  # "group/event"
    filters: dict[str, str] = field(default_factory=dict)
    pids: tuple[int, ...] = ()  # restrict to these tasks and their children (event-fork)
    buffer_kb: int = 4096
    root: Path | None = None
    # The testbed is thrown away after the run (a VM): ``remove`` only stops tracing.
    # Disabling an event unregisters its tracepoint, which patches kernel text
    # (text_poke_bp), and a 6.1 guest under TCG hung there in the int3 trap, at the
    # run's end, before its result was written (post-mortem: rmdir of the instance).
    throwaway: bool = False
    enabled: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def path(self) -> Path:
        assert self.root is not None
        return self.root / "instances" / self.name

    def start(self) -> TraceSession:
        self.root = self.root or tracefs_root(mount_if_missing=True)
        if self.root is None:
            raise TracingError("tracefs is not available (mount -t tracefs nodev "
                               "/sys/kernel/tracing)")
        try:
            self.path.mkdir()
        except FileExistsError:
            self.path.rmdir()
            self.path.mkdir()
        try:
            self._write("trace_clock", "mono")
            self._write("buffer_size_kb", str(self.buffer_kb))
            if self.pids:
                self._write("options/event-fork", "1")
                self._write("set_event_pid", " ".join(str(p) for p in self.pids))
            for ev in self.events:
                d = self.path / "events" / ev
                if not d.is_dir():
                    self.missing.append(ev)
                    continue
                if ev in self.filters:
                    (d / "filter").write_text(self.filters[ev])
                (d / "enable").write_text("1")
                self.enabled.append(ev)
            self._write("tracing_on", "1")
        except BaseException:
            self.remove()
            raise
        return self

    def _write(self, rel: str, value: str) -> None:
        (self.path / rel).write_text(value)

    def add_pids(self, pids: list[int]) -> None:
        """Trace these tasks too. A plain O_APPEND write: Python's open(..., "a") seeks to
        the end first, and tracefs then refuses the write with EINVAL."""
        if not pids:
            return
        fd = os.open(self.path / "set_event_pid", os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, (" ".join(str(p) for p in pids) + "\n").encode())
        finally:
            os.close(fd)

    def mark(self, text: str) -> tuple[int, int]:
        """Write ``text`` into the trace; returns the harness clock just before and after."""
        before = time.monotonic_ns()
        (self.path / "trace_marker").write_text(text)
        return before, time.monotonic_ns()

    def stop(self) -> None:
        try:
            self._write("tracing_on", "0")
        except OSError:
            pass

    def dropped(self) -> int:
        """Events lost to a full buffer, summed over CPUs."""
        total = 0
        per_cpu = self.path / "per_cpu"
        for stats in per_cpu.glob("cpu*/stats"):
            for line in stats.read_text().splitlines():
                if line.startswith("overrun:"):
                    total += int(line.split()[1])
        return total

    def records(self) -> list[TraceRecord]:
        text = (self.path / "trace").read_text(errors="replace")
        return parse(text)

    def remove(self) -> None:
        if self.root is None:
            return
        if self.throwaway:
            self.stop()
            return
        try:
            self.stop()
            for ev in self.enabled:
                (self.path / "events" / ev / "enable").write_text("0")
            os.rmdir(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> TraceSession:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def parse(text: str) -> list[TraceRecord]:
    out: list[TraceRecord] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE_RE.match(line)
        if not m:
            continue
        sec, _, frac = m["ts"].partition(".")
        t_ns = int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])
        fields = dict(FIELD_RE.findall(m["body"]))
        out.append(TraceRecord(t_ns=t_ns, comm=m["comm"].strip(), pid=int(m["pid"]),
                               event=m["event"], fields=fields, raw=m["body"]))
    return out


def clock_skew_ns(records: list[TraceRecord], marker: str, before: int, after: int) -> int | None:
    """Harness clock minus tracefs clock, from a marker written between ``before`` and ``after``.

    Zero skew means the harness's time.monotonic_ns() and the kernel's tracepoint
    timestamps are the same clock, so phases mixing both are exact. A marker stamped
    inside [before, after] shows no skew; only how far outside it lies is skew. (The
    midpoint of the two reads was used before: a write preempted on a loaded host made
    a same-clock marker look 3 ms off.)
    """
    for r in records:
        if r.event == "tracing_mark_write" and marker in " ".join(
                f"{k}={v}" for k, v in r.fields.items()) + r.raw:
            if r.t_ns < before:
                return before - r.t_ns
            return min(0, after - r.t_ns)
    return None


def leftover_instances() -> list[Path]:
    root = tracefs_root()
    if root is None:
        return []
    return [p for p in (root / "instances").glob(PREFIX + "*") if p.is_dir()]
