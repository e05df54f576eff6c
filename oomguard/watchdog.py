"""A second thread that kills the top candidate itself when the main loop misses its deadline.

The main loop is the thing most likely to be stuck in reclaim, so the watchdog
works from a handle the main loop prepared earlier (an open pidfd, or a dup of the
cgroup.kill fd): firing is one syscall, no path walk, no /proc scan.

A late main loop alone is not a reason to kill: with a MemAvailable floor
configured, the watchdog first reads it (its own pre-opened fd) and fires only
in danger; a main loop late for another reason (starved of CPU) is logged once
per stall as ``watchdog_waived``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .guards import RealtimeKeeper, start_small
from .kfile import KFile
from .kill import KillError, Victim, hasten, kill_cgroup_fd, kill_process_fd, mrelease, pin_rest
from .log import JsonLog


@dataclass(frozen=True, slots=True)
class Handle:
    """Everything needed to kill the current top candidate without reading anything."""

    kind: str  # "process" | "cgroup"
    label: str
    pid: int = 0
    fd: int = -1  # pidfd (process) or cgroup.kill (cgroup); owned by the handle
    path: str = ""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


class Watchdog:
    def __init__(self, deadline_ms: int, log: JsonLog, kill_lock: threading.Lock,
                 in_danger: Callable[[], bool] | None = None,
                 keeper: RealtimeKeeper | None = None,
                 hasten_priority: int | None = None) -> None:
        self.deadline_ns = deadline_ms * 1_000_000
        self.hasten_priority = hasten_priority  # as the main loop's kill (None: off)
        self.in_danger = in_danger  # None: no floor to read, a late main loop is enough
        self.keeper = keeper
        self.log = log
        self.kill_lock = kill_lock
        self.last_beat = time.monotonic_ns()
        self.target: Handle | None = None
        self._retired: Handle | None = None
        self.fired: Victim | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="oomguard-watchdog", daemon=True)

    def beat(self) -> None:
        self.last_beat = time.monotonic_ns()

    def set_target(self, handle: Handle | None) -> None:
        """Swap the handle; the previous one stays open one more generation, so a watchdog
        that just read it never fires at a recycled fd number."""
        old, self._retired = self._retired, self.target
        self.target = handle
        if old is not None:
            old.close()

    def start(self) -> None:
        start_small(self._thread)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        for h in (self.target, self._retired):
            if h is not None:
                h.close()
        self.target = self._retired = None

    def _run(self) -> None:
        period = max(0.01, self.deadline_ns / 4e9)
        if self.keeper is not None:
            self.keeper.join()
        armed = True
        waived = False
        while not self._stop.wait(period):
            if self.keeper is not None:
                for fixed in self.keeper.check():
                    self.log.emit("guard", guard="realtime", status="reapplied",
                                  detail=fixed, by="watchdog")
            late = time.monotonic_ns() - self.last_beat
            if late < self.deadline_ns:
                armed, waived = True, False
                continue
            if not armed or self.fired is not None:
                continue
            if not self._danger():
                if not waived:
                    self.log.emit("watchdog_waived", late_ms=round(late / 1e6, 3),
                                  reason="main loop late, MemAvailable above the floor")
                    waived = True
                continue
            armed = not self.check_and_fire(late)

    def _danger(self) -> bool:
        if self.in_danger is None:
            return True
        try:
            return self.in_danger()
        except (OSError, ValueError):
            return True  # cannot tell: a stuck main loop is reason enough

    def check_and_fire(self, late_ns: int) -> bool:
        """Fire at the current target unless the main loop is itself killing; True if fired.

        Everything (kill, mrelease, log) happens under the kill lock, and `fired` is set
        before it is released, so the main loop follows this victim instead of killing again.
        """
        target = self.target
        if target is None or not self.kill_lock.acquire(blocking=False):
            return False
        try:
            try:
                victim = self._kill(target)
            except (OSError, KillError) as e:
                self.log.emit("error", where="watchdog", target=target.label, error=str(e))
                return True
            pin_rest(victim)  # a cgroup's tasks: listed by path, now that they are killed
            if self.hasten_priority is not None:  # its exit waits for nobody, as after
                hasten(victim, self.hasten_priority)  # the main loop's kill
            self.log.emit("watchdog", late_ms=round(late_ns / 1e6, 3), target=target.label)
            self.log.emit(
                "signal",
                target=victim.label,
                kind=victim.kind,
                method=victim.method,
                signal="SIGKILL",
                sent_ns=victim.sent_ns,
                source="watchdog",
                pids=sorted(victim.pidfds),
                **({"hastened": victim.hastened} if victim.hastened else {}),
            )
            self.log.emit("mrelease", target=victim.label, results=mrelease(victim))
            self.fired = victim
            return True
        finally:
            self.kill_lock.release()

    def _kill(self, h: Handle) -> Victim:
        if h.kind == "process":
            return kill_process_fd(h.pid, h.fd, "watchdog")
        kill = KFile.from_fd(f"{h.path}/cgroup.kill", h.fd) if h.fd >= 0 else None
        return kill_cgroup_fd(h.path, kill, "watchdog")
