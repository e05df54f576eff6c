"""Anonymous-memory hog: private anonymous memory, every page touched, at a set rate.

Private (MAP_PRIVATE|MAP_ANONYMOUS) on purpose: Python's default anonymous
mmap is MAP_SHARED, which the kernel counts as shmem, not anon.
"""

from __future__ import annotations

import argparse
import mmap
import sys
import time
from dataclasses import dataclass

from chaos.scenario import Params, SpecError
from chaos.stressors.common import parse_params, progress

MiB = 1 << 20


@dataclass(frozen=True)
class AnonHogParams:
    size_mib: int = 4096  # stop growing after this much (then hold)
    rate_mib_s: float = 0.0  # 0 = as fast as possible (a spike)
    chunk_mib: int = 8
    hold_s: float = 3600.0  # how long to hold the memory once size is reached
    start_delay_s: float = 0.0


def parse(raw: Params) -> AnonHogParams:
    p = parse_params(AnonHogParams, raw, "anon_hog")
    if p.size_mib <= 0:
        raise SpecError(f"stressor anon_hog: size_mib must be > 0, got {p.size_mib}")
    if p.rate_mib_s < 0:
        raise SpecError(f"stressor anon_hog: rate_mib_s must be >= 0 (0 = spike), "
                        f"got {p.rate_mib_s}")
    if not 1 <= p.chunk_mib <= 1024:
        raise SpecError(f"stressor anon_hog: chunk_mib must be 1..1024, got {p.chunk_mib}")
    if p.hold_s < 0 or p.start_delay_s < 0:
        raise SpecError("stressor anon_hog: hold_s and start_delay_s must be >= 0")
    return p


def command(p: AnonHogParams) -> list[str]:
    return [sys.executable, "-m", "chaos.stressors.anon_hog", "--size-mib", str(p.size_mib),
            "--rate-mib-s", str(p.rate_mib_s), "--chunk-mib", str(p.chunk_mib),
            "--hold-s", str(p.hold_s), "--start-delay-s", str(p.start_delay_s)]


def run(p: AnonHogParams) -> None:
    time.sleep(p.start_delay_s)
    chunk = p.chunk_mib * MiB
    pattern = b"\x5a" * MiB
    maps: list[mmap.mmap] = []
    done = 0
    start = time.monotonic()
    last_report = 0.0
    progress(event="start", size_mib=p.size_mib, rate_mib_s=p.rate_mib_s)
    while done < p.size_mib * MiB:
        m = mmap.mmap(-1, chunk, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        for _ in range(p.chunk_mib):
            m.write(pattern)  # touches every page of the chunk
        maps.append(m)
        done += chunk
        now = time.monotonic()
        if now - last_report >= 0.1:
            progress(event="alloc", allocated_mib=done // MiB, elapsed_s=round(now - start, 3))
            last_report = now
        if p.rate_mib_s > 0:
            due = start + (done / MiB) / p.rate_mib_s
            if due > now:
                time.sleep(due - now)
    progress(event="holding", allocated_mib=done // MiB,
             elapsed_s=round(time.monotonic() - start, 3))
    time.sleep(p.hold_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="anon_hog")
    ap.add_argument("--size-mib", type=int, default=AnonHogParams.size_mib)
    ap.add_argument("--rate-mib-s", type=float, default=AnonHogParams.rate_mib_s)
    ap.add_argument("--chunk-mib", type=int, default=AnonHogParams.chunk_mib)
    ap.add_argument("--hold-s", type=float, default=AnonHogParams.hold_s)
    ap.add_argument("--start-delay-s", type=float, default=AnonHogParams.start_delay_s)
    a = ap.parse_args(argv)
    try:
        p = parse({"size_mib": a.size_mib, "rate_mib_s": a.rate_mib_s, "chunk_mib": a.chunk_mib,
                   "hold_s": a.hold_s, "start_delay_s": a.start_delay_s})
    except SpecError as exc:
        print(f"anon_hog: {exc}", file=sys.stderr)
        return 2
    run(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
