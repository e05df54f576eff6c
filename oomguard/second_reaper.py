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
"""

from __future__ import annotations

import threading
import time

from .guards import RealtimeKeeper, start_small
from .kill import Victim, hasten, mrelease, release


class SecondReaper:
    def __init__(self, hasten_priority: int | None, keeper: RealtimeKeeper | None) -> None:
        """``hasten_priority``: hasten the victim after the reap with it (0: the CPU move
        only); None: only put it back on its own CPUs."""
        self.hasten_priority = hasten_priority
        self.keeper = keeper
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
            if victim is not None:
                self.results = mrelease(victim)
                self.reaped_ns = time.monotonic_ns()
                if self.hasten_priority is None:
                    release(victim)
                else:
                    hasten(victim, self.hasten_priority, self._cpu)
                self.released_ns = time.monotonic_ns()
            self._victim = None
            self._done.set()
