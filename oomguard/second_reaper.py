"""A second thread that reaps a victim beside the main thread, then lets it go.

Reaped at once, a victim with much memory in small pages is torn down by whoever
holds its address space: process_mrelease holds the mmap lock (read) for the whole
reap. On the 6.1 guest's `evict` the victim's own exit could not run beside it:
khugepaged was working on that mm, so the exit waited in __khugepaged_exit for the
lock (write) until the reap was done (5 runs in 6; /proc/PID/stack), and the reap
alone took 170-308 ms. Two reaps share the lock as readers and free pages of the same
address space on two CPUs: 102-151 ms. The victim is held on the main thread's CPU
until both are done (kill.hold), so neither finds it gone and its exit does not queue
for the lock between them; then this thread lets it go (hasten, or only back to its
own CPUs).

With ``beside`` (reap_beside_exit) it lets the victim go first, once the main thread's
reap has its address space (HANDOVER_S after the go; the victim, held on the main
thread's CPU, cannot reach its exit before), and then reaps below the victim's priority:
the victim's exit frees pages on this CPU while the main thread reaps on its own, and
this reap fills in only while the exit waits (khugepaged's lock, as on `evict`). Unheld,
the main thread's reap has lost the race to the victim's exit_mm (ESRCH at ~3 ms, the
victim then freeing alone: 126-162 ms on 6.1 `spike` and `mlock`).
"""

from __future__ import annotations

import os
import threading
import time

from .guards import RealtimeKeeper, set_fifo, start_small
from .kill import Victim, hasten, mrelease, release

HANDOVER_S = 0.001  # go -> the main thread inside process_mrelease (~0.1 ms under TCG)


class SecondReaper:
    def __init__(self, hasten_priority: int | None, keeper: RealtimeKeeper | None,
                 beside: bool = False) -> None:
        """``hasten_priority``: hasten the victim after the reap with it (0: the CPU move
        only); None: only put it back on its own CPUs. ``beside``: let it go first."""
        self.hasten_priority = hasten_priority
        self.keeper = keeper
        self.beside = beside
        self._victim: Victim | None = None
        self._cpu = -1
        self._go = threading.Event()
        self._done = threading.Event()
        self._stop = False
        self.results: dict[str, str] = {}  # the last reap's, as kill.mrelease gives them
        self.reaped_ns = 0  # when it ended
        self.released_ns = 0  # when the victim was let go
        self._thread = threading.Thread(target=self._run, name="oomguard-reap2", daemon=True)

    def start(self) -> None:
        start_small(self._thread)

    def go(self, victim: Victim, cpu: int) -> None:
        """Reap ``victim`` too, then let it go off ``cpu`` (where the caller reaps it)."""
        self._victim, self._cpu = victim, cpu
        self._done.clear()
        self._go.set()

    def wait(self, timeout_s: float) -> bool:
        """Until the victim is reaped and let go; False if not done in time."""
        return self._done.wait(timeout_s)

    def stop(self) -> None:
        self._stop = True
        self._go.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _run(self) -> None:
        if self.keeper is not None:
            self.keeper.join()
        while True:
            self._go.wait()
            self._go.clear()
            if self._stop:
                return
            victim = self._victim
            if victim is not None and self.beside:
                time.sleep(HANDOVER_S)
                self._let_go(victim)
                self._reap_below(victim)
            elif victim is not None:
                self.results = mrelease(victim)
                self.reaped_ns = time.monotonic_ns()
                self._let_go(victim)
            self._victim = None
            self._done.set()

    def _let_go(self, victim: Victim) -> None:
        if self.hasten_priority is None:
            release(victim)
        else:
            hasten(victim, self.hasten_priority, self._cpu)
        self.released_ns = time.monotonic_ns()

    def _reap_below(self, victim: Victim) -> None:
        """Reap as a normal task, under the hastened victim (SCHED_FIFO 1): this CPU runs
        the victim's exit, and this reap only while the exit waits. (Not FIFO 1 too: a
        realtime task is pulled to a CPU only from one running a lower priority, so the
        victim would stay queued behind the main thread.) The keeper leaves this thread
        alone meanwhile. Without the realtime guard it is a normal task already."""
        keeper = self.keeper if self.hasten_priority else None
        tid = threading.get_native_id()
        if keeper is not None and keeper.active:
            keeper.excuse(tid, True)
            try:
                os.sched_setscheduler(0, os.SCHED_OTHER | os.SCHED_RESET_ON_FORK,
                                      os.sched_param(0))
            except OSError:
                keeper.excuse(tid, False)
        try:
            self.results = mrelease(victim)
            self.reaped_ns = time.monotonic_ns()
        finally:
            if keeper is not None and tid in keeper.excused:
                try:
                    set_fifo(0, keeper.priority)
                except OSError:
                    pass  # the keeper's check() puts it back
                keeper.excuse(tid, False)
