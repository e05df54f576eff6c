"""Anonymous-memory hog: private anonymous memory, every page touched, at a set rate.

Private (MAP_PRIVATE|MAP_ANONYMOUS) on purpose: Python's default anonymous
mmap is MAP_SHARED, which the kernel counts as shmem, not anon.

Shapes: a steady ramp (``rate_mib_s`` > 0), a spike (``rate_mib_s`` 0: as fast
as it can), a slow leak (a small rate, e.g. 1 MiB/s) and many small hogs
(``count`` processes sharing ``size_mib`` and the rate between them). With
``count`` > 1 the parent allocates nothing; it reports the children's total
from a shared page and exits once they are all gone, with the status of the
last one (so "all hogs killed" looks like "the hog was killed").
"""

from __future__ import annotations

import mmap
import os
import signal
import struct
import sys
import time
from dataclasses import dataclass

from chaos.procs import set_pdeathsig
from chaos.scenario import Params
from chaos.stressors.common import (
    MiB,
    Pacer,
    Reporter,
    argv_for,
    check_rate,
    cpu_seconds,
    fill_block,
    main_for,
    parse_params,
    require,
)

NAME = "anon_hog"
MAX_COUNT = 512


@dataclass(frozen=True)
class AnonHogParams:
    size_mib: int = 4096  # in total (over all ``count`` hogs); stop growing after this much
    rate_mib_s: float = 0.0  # in total; 0 = as fast as possible (a spike)
    chunk_mib: int = 8
    hold_s: float = 3600.0  # how long to hold the memory once size is reached
    start_delay_s: float = 0.0
    count: int = 1  # processes
    seed: int = 0  # page content: 0 = a constant pattern, else seeded random bytes


def parse(raw: Params) -> AnonHogParams:
    p = parse_params(AnonHogParams, raw, NAME)
    check_rate(NAME, p.size_mib, p.rate_mib_s)
    require(1 <= p.chunk_mib <= 1024, NAME, f"chunk_mib must be 1..1024, got {p.chunk_mib}")
    require(p.hold_s >= 0 and p.start_delay_s >= 0, NAME,
            "hold_s and start_delay_s must be >= 0")
    require(1 <= p.count <= MAX_COUNT, NAME, f"count must be 1..{MAX_COUNT}, got {p.count}")
    require(p.size_mib >= p.count, NAME, f"size_mib ({p.size_mib}) must give each of the "
            f"{p.count} hogs at least 1 MiB")
    require(p.seed >= 0, NAME, f"seed must be >= 0, got {p.seed}")
    return p


def command(p: AnonHogParams) -> list[str]:
    return argv_for("chaos.stressors.anon_hog", p)


def allocate(size_mib: int, rate_mib_s: float, chunk_mib: int, seed: int,
             on_chunk: object = None) -> list[mmap.mmap]:
    """Map and touch ``size_mib`` of private anonymous memory, paced to ``rate_mib_s``."""
    block = fill_block(seed)
    pacer = Pacer(rate_mib_s)
    maps: list[mmap.mmap] = []
    done = 0
    while done < size_mib:
        n = min(chunk_mib, size_mib - done)
        m = mmap.mmap(-1, n * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for _ in range(n):
            m.write(block)  # touches every page of the chunk
        maps.append(m)
        done += n
        if callable(on_chunk):
            on_chunk(done)
        pacer.wait(done)
    return maps


def run_one(p: AnonHogParams) -> None:
    rep = Reporter()
    rep.tick("start", force=True, size_mib=p.size_mib, rate_mib_s=p.rate_mib_s)

    def report(done: int) -> None:
        rep.tick("alloc", allocated_mib=done, cpu_s=cpu_seconds())

    maps = allocate(p.size_mib, p.rate_mib_s, p.chunk_mib, p.seed, report)
    rep.tick("holding", force=True, allocated_mib=sum(len(m) for m in maps) // MiB,
             cpu_s=cpu_seconds())
    time.sleep(p.hold_s)


def run_many(p: AnonHogParams) -> None:
    """``count`` children, each with its share; the parent sums their progress."""
    shared = mmap.mmap(-1, 8 * p.count)  # MAP_SHARED: one counter per child
    rep = Reporter()
    rep.tick("start", force=True, size_mib=p.size_mib, rate_mib_s=p.rate_mib_s, count=p.count)
    pids: list[int] = []
    for i in range(p.count):
        share = p.size_mib // p.count + (1 if i < p.size_mib % p.count else 0)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                set_pdeathsig(signal.SIGKILL)
                def mark(done: int, slot: int = i) -> None:
                    shared[8 * slot:8 * slot + 8] = struct.pack("q", done)

                held = allocate(share, p.rate_mib_s / p.count, min(p.chunk_mib, share),
                                p.seed + i, mark)
                time.sleep(p.hold_s)
                del held
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    last_status = 0
    alive = set(pids)
    while alive:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            alive.discard(pid)
            last_status = status
            continue
        total = sum(struct.unpack_from("q", shared, 8 * i)[0] for i in range(p.count))
        rep.tick("alloc", allocated_mib=total, alive=len(alive), cpu_s=cpu_seconds())
        time.sleep(0.05)
    rep.tick("gone", force=True, alive=0)
    if os.WIFSIGNALED(last_status):
        sig = os.WTERMSIG(last_status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    sys.exit(os.waitstatus_to_exitcode(last_status))


def run(p: AnonHogParams) -> None:
    time.sleep(p.start_delay_s)
    if p.count == 1:
        run_one(p)
    else:
        run_many(p)


def main(argv: list[str] | None = None) -> int:
    return main_for(AnonHogParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
