"""Mlock hog: memory reclaim can never take back (``Mlocked``/``Unevictable``).

``mlockall(MCL_CURRENT|MCL_FUTURE)`` first, so every later mapping is locked
and populated as it is made; then private anonymous chunks at the set rate.
Reclaim skips these pages entirely, so pressure lands on everything else and
only a kill frees them. Needs CAP_IPC_LOCK (or a large RLIMIT_MEMLOCK).
"""

from __future__ import annotations

import ctypes
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.scenario import Params
from chaos.stressors.common import (
    MiB,
    Needs,
    Reporter,
    argv_for,
    check_rate,
    cpu_seconds,
    main_for,
    parse_params,
    require,
)

NAME = "mlock_hog"
MCL_CURRENT, MCL_FUTURE = 1, 2


@dataclass(frozen=True)
class MlockHogParams:
    size_mib: int = 256
    rate_mib_s: float = 0.0  # 0 = as fast as possible
    chunk_mib: int = 4
    hold_s: float = 3600.0
    seed: int = 0


def parse(raw: Params) -> MlockHogParams:
    p = parse_params(MlockHogParams, raw, NAME)
    check_rate(NAME, p.size_mib, p.rate_mib_s)
    require(1 <= p.chunk_mib <= 256, NAME, f"chunk_mib must be 1..256, got {p.chunk_mib}")
    require(p.hold_s >= 0, NAME, "hold_s must be >= 0")
    return p


def needs(p: MlockHogParams) -> Needs:
    return Needs(caps=("IPC_LOCK",))


def command(p: MlockHogParams) -> list[str]:
    return argv_for("chaos.stressors.mlock_hog", p)


def locked_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmLck:"):
            return int(line.split()[1])
    return 0


def run(p: MlockHogParams) -> None:
    from chaos.stressors.anon_hog import allocate

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mlockall(MCL_CURRENT | MCL_FUTURE) != 0:
        raise SystemExit(f"mlockall failed: errno {ctypes.get_errno()} (needs CAP_IPC_LOCK)")
    rep = Reporter()
    rep.tick("start", force=True, size_mib=p.size_mib, locked_kib=locked_kib())

    def report(done: int) -> None:
        rep.tick("lock", allocated_mib=done, locked_kib=locked_kib(), cpu_s=cpu_seconds())

    maps = allocate(p.size_mib, p.rate_mib_s, p.chunk_mib, p.seed, report)
    rep.tick("holding", force=True, allocated_mib=sum(len(m) for m in maps) // MiB,
             locked_kib=locked_kib(), cpu_s=cpu_seconds())
    time.sleep(p.hold_s)


def main(argv: list[str] | None = None) -> int:
    return main_for(MlockHogParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
