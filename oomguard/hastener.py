"""A second thread that hastens a victim while the main thread reaps it.

Reaped at once, a victim with much memory in small pages is torn down by whoever
gets there: the reap on oomguard's CPU, or the victim's own exit. Done in turn,
the two take as long as either alone (on 6.1, evict's ~480 MiB: a reap of 181-190
ms, and then an exit with nothing left to free). Hastened from this thread while
the reap runs, the victim's exit runs on another CPU beside it, and both free
pages of the same address space.
"""

from __future__ import annotations

import threading
import time

from .guards import RealtimeKeeper
from .kill import Victim, hasten


class Hastener:
    def __init__(self, priority: int, keeper: RealtimeKeeper | None) -> None:
        self.priority = priority
        self.keeper = keeper
        self._victim: Victim | None = None
        self._cpu = -1
        self._go = threading.Event()
        self._done = threading.Event()
        self._stop = False
        self.done_ns = 0  # when the last victim was hastened
        self._thread = threading.Thread(target=self._run, name="oomguard-hasten", daemon=True)

    def start(self, stack_kib: int = 256) -> None:
        # Under mlockall a thread stack is locked in full: keep it small.
        prev = threading.stack_size(stack_kib * 1024)
        try:
            self._thread.start()
        finally:
            threading.stack_size(prev)

    def go(self, victim: Victim, cpu: int) -> None:
        """Hasten ``victim`` off ``cpu`` (where the caller is about to reap it)."""
        self._victim, self._cpu = victim, cpu
        self._done.clear()
        self._go.set()

    def wait(self, timeout_s: float = 1.0) -> bool:
        """Until the victim is hastened; False if the thread did not get to it in time."""
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
                hasten(victim, self.priority, self._cpu)
                self.done_ns = time.monotonic_ns()
            self._victim = None
            self._done.set()
