"""Fork storm: many processes, quickly, each holding a little memory.

Exercises what a killer must do per process (scan /proc, pick one of
thousands, kill a group) and fills the page tables, kernel stacks and task
structs that no single process's RSS shows. Children touch ``child_kib`` of
private memory and sleep; they die with the parent (parent-death signal).
Fork failures (``EAGAIN`` under ``pids.max``) are counted, not fatal.
"""

from __future__ import annotations

import mmap
import os
import signal
import sys
import time
from dataclasses import dataclass

from chaos.procs import set_pdeathsig
from chaos.scenario import Params
from chaos.stressors.common import (
    Pacer,
    Reporter,
    argv_for,
    cpu_seconds,
    main_for,
    parse_params,
    require,
    until,
)

NAME = "fork_storm"


@dataclass(frozen=True)
class ForkStormParams:
    count: int = 2000  # processes to keep alive at most
    rate_per_s: float = 0.0  # forks per second; 0 = as fast as possible
    child_kib: int = 256  # private memory each child touches
    duration_s: float = 0.0  # 0 = until stopped


def parse(raw: Params) -> ForkStormParams:
    p = parse_params(ForkStormParams, raw, NAME)
    require(1 <= p.count <= 100_000, NAME, f"count must be 1..100000, got {p.count}")
    require(p.rate_per_s >= 0, NAME, f"rate_per_s must be >= 0, got {p.rate_per_s:g}")
    require(0 <= p.child_kib <= 1 << 20, NAME, f"child_kib must be 0..1048576, got {p.child_kib}")
    require(p.duration_s >= 0, NAME, "duration_s must be >= 0")
    return p


def command(p: ForkStormParams) -> list[str]:
    return argv_for("chaos.stressors.fork_storm", p)


def _child(kib: int) -> None:
    set_pdeathsig(signal.SIGKILL)
    if kib:
        m = mmap.mmap(-1, kib * 1024, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for off in range(0, kib * 1024, 4096):
            m[off] = 1
    while True:
        signal.pause()


def run(p: ForkStormParams) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    end = until(p.duration_s)
    pacer = Pacer(p.rate_per_s)
    rep = Reporter(0.2)
    rep.tick("start", force=True, count=p.count)
    forked = errors = 0
    while time.monotonic() < end:
        if forked < p.count:
            try:
                pid = os.fork()
            except OSError:
                errors += 1
                time.sleep(0.01)
            else:
                if pid == 0:
                    _child(p.child_kib)
                forked += 1
            pacer.wait(forked)
        else:
            time.sleep(0.05)
        rep.tick("fork", forked=forked, fork_errors=errors, cpu_s=cpu_seconds())
    rep.tick("done", force=True, forked=forked, fork_errors=errors)


def main(argv: list[str] | None = None) -> int:
    return main_for(ForkStormParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
