"""THP/compaction pressure: fragment memory, then keep asking for huge pages.

First ``fragment_mib`` of private memory (default: 90% of MemAvailable) is
touched and every other 4 KiB page given back (``MADV_DONTNEED``), which leaves
free memory scattered in single pages: only a fragment that covers most free
memory forces compaction, any untouched 2 MiB block would just be used. Then
2 MiB-aligned regions marked ``MADV_HUGEPAGE`` are faulted in at the set rate:
each fault wants an order-9 block, so the kernel compacts (``compact_stall``,
``compact_migrate_scanned``) or falls back (``thp_fault_fallback``).
Needs THP ``enabled`` = always or madvise.
"""

from __future__ import annotations

import mmap
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.scenario import Params
from chaos.stressors.common import (
    PAGE,
    MiB,
    Needs,
    Pacer,
    Reporter,
    argv_for,
    check_rate,
    cpu_seconds,
    main_for,
    parse_params,
    require,
)

NAME = "thp_compact"
HPAGE = 2 * MiB


@dataclass(frozen=True)
class ThpCompactParams:
    fragment_mib: int = 0  # memory left with every other page freed; 0 = 90% of MemAvailable
    size_mib: int = 512  # huge-page-backed memory to ask for
    rate_mib_s: float = 0.0  # 0 = as fast as possible
    hold_s: float = 3600.0


def parse(raw: Params) -> ThpCompactParams:
    p = parse_params(ThpCompactParams, raw, NAME)
    check_rate(NAME, p.size_mib, p.rate_mib_s)
    require(p.fragment_mib >= 0, NAME, f"fragment_mib must be >= 0, got {p.fragment_mib}")
    require(p.size_mib % 2 == 0, NAME, f"size_mib must be a multiple of 2 (huge pages), "
            f"got {p.size_mib}")
    require(p.hold_s >= 0, NAME, "hold_s must be >= 0")
    return p


def needs(p: ThpCompactParams) -> Needs:
    return Needs(thp=True)


def command(p: ThpCompactParams) -> list[str]:
    return argv_for("chaos.stressors.thp_compact", p)


def thp_mode() -> str:
    """The bracketed word of /sys/kernel/mm/transparent_hugepage/enabled."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "missing"
    return text.split("[", 1)[1].split("]", 1)[0] if "[" in text else text.strip()


def mem_available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def huge_kib() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1])
    return 0


def fragment(size_mib: int) -> mmap.mmap | None:
    if not size_mib:
        return None
    m = mmap.mmap(-1, size_mib * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.madvise(mmap.MADV_NOHUGEPAGE)
    for off in range(0, size_mib * MiB, PAGE):
        m[off] = 1
    for off in range(0, size_mib * MiB, 2 * PAGE):
        m.madvise(mmap.MADV_DONTNEED, off, PAGE)
    return m


def run(p: ThpCompactParams) -> None:
    rep = Reporter()
    rep.tick("start", force=True, thp=thp_mode(), fragment_mib=p.fragment_mib)
    size = p.fragment_mib or int(mem_available_mib() * 0.9)
    keep = fragment(size)
    rep.tick("fragmented", force=True, fragment_mib=size, cpu_s=cpu_seconds())
    pacer = Pacer(p.rate_mib_s)
    regions: list[mmap.mmap] = []
    done = 0
    while done < p.size_mib:
        m = mmap.mmap(-1, 2 * HPAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        m.madvise(mmap.MADV_HUGEPAGE)
        for off in range(0, 2 * HPAGE, PAGE):  # both halves: one of them is aligned
            m[off] = 1
        regions.append(m)
        done += 4
        rep.tick("huge", requested_mib=done, huge_kib=huge_kib(), cpu_s=cpu_seconds())
        pacer.wait(done)
    rep.tick("holding", force=True, requested_mib=done, huge_kib=huge_kib(),
             cpu_s=cpu_seconds(), fragments=1 if keep else 0)
    time.sleep(p.hold_s)


def main(argv: list[str] | None = None) -> int:
    return main_for(ThpCompactParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
