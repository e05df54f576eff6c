"""Page-cache flood: file pages on a real block device, clean or dirty.

- ``clean``: write a file set once, then re-read it in a loop. A set larger
  than memory allows keeps reclaim busy evicting and refaulting file pages.
- ``dirty``: overwrite the file set in a loop, never syncing, faster than the
  device writes back, so ``Dirty``/``Writeback`` grow until the writer is
  throttled in ``balance_dirty_pages``.

The files must live on a block-backed filesystem (the runtime's ``block``
directory, ``CHAOS_DIR``): on tmpfs the same bytes would be shmem, with no
writeback at all. In a VM that is an ext4 on the scratch virtio disk.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from chaos.scenario import Params
from chaos.stressors.common import (
    MiB,
    Needs,
    Pacer,
    Reporter,
    argv_for,
    check_rate,
    cpu_seconds,
    fill_block,
    main_for,
    parse_params,
    require,
    scratch_dir,
    until,
)

NAME = "page_cache"
MODES = ("clean", "dirty")


@dataclass(frozen=True)
class PageCacheParams:
    mode: str = "clean"
    size_mib: int = 1536  # the file set
    file_mib: int = 64
    rate_mib_s: float = 0.0  # reads (clean) or writes (dirty); 0 = as fast as possible
    duration_s: float = 0.0  # 0 = until stopped
    block_kib: int = 1024  # one read()/write()
    seed: int = 0


def parse(raw: Params) -> PageCacheParams:
    p = parse_params(PageCacheParams, raw, NAME)
    require(p.mode in MODES, NAME, f"mode must be one of {', '.join(MODES)}, got {p.mode!r}")
    check_rate(NAME, p.size_mib, p.rate_mib_s)
    require(p.file_mib >= 1, NAME, f"file_mib must be >= 1, got {p.file_mib}")
    require(4 <= p.block_kib <= 65536, NAME, f"block_kib must be 4..65536, got {p.block_kib}")
    require(p.duration_s >= 0, NAME, "duration_s must be >= 0")
    return p


def needs(p: PageCacheParams) -> Needs:
    return Needs(directory="block", dir_mib=p.size_mib + p.size_mib // 8 + 64)


def command(p: PageCacheParams) -> list[str]:
    return argv_for("chaos.stressors.page_cache", p)


def _files(p: PageCacheParams, root: str) -> list[str]:
    n = max(1, p.size_mib // min(p.file_mib, p.size_mib))
    return [os.path.join(root, f"flood-{i:04d}") for i in range(n)]


def _write_file(path: str, p: PageCacheParams, block: bytes, stats: dict[str, float],
                pacer: Pacer, rep: Reporter, event: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(min(p.file_mib, p.size_mib) * MiB // len(block)):
            t = time.monotonic()
            os.write(fd, block)
            took = time.monotonic() - t
            stats["write_s"] += took
            stats["max_write_ms"] = max(stats["max_write_ms"], took * 1000)
            stats["written_mib"] += len(block) / MiB
            rep.emit(event, {**_rounded(stats), "cpu_s": cpu_seconds()})
            pacer.wait(stats["written_mib"])
    finally:
        os.close(fd)


def _rounded(stats: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in stats.items()}


def run(p: PageCacheParams) -> None:
    root = scratch_dir("block-backed")
    files = _files(p, root)
    block = fill_block(p.seed, p.block_kib * 1024)
    stats = {"written_mib": 0.0, "read_mib": 0.0, "passes": 0.0, "write_s": 0.0,
             "max_write_ms": 0.0, "read_s": 0.0}
    rep = Reporter()
    rep.tick("start", force=True, mode=p.mode, size_mib=p.size_mib, files=len(files))
    end = until(p.duration_s)
    if p.mode == "dirty":
        pacer = Pacer(p.rate_mib_s)
        while time.monotonic() < end:
            for path in files:
                _write_file(path, p, block, stats, pacer, rep, "write")
                if time.monotonic() >= end:
                    break
            stats["passes"] += 1
    else:
        for path in files:  # the set to re-read; not paced
            _write_file(path, p, block, stats, Pacer(0), rep, "fill")
        pacer = Pacer(p.rate_mib_s)
        buf = bytearray(len(block))
        while time.monotonic() < end:
            for path in files:
                fd = os.open(path, os.O_RDONLY)
                try:
                    while True:
                        t = time.monotonic()
                        n = os.readv(fd, [buf])
                        stats["read_s"] += time.monotonic() - t
                        if n <= 0:
                            break
                        stats["read_mib"] += n / MiB
                        rep.emit("read", {**_rounded(stats), "cpu_s": cpu_seconds()})
                        pacer.wait(stats["read_mib"])
                finally:
                    os.close(fd)
                if time.monotonic() >= end:
                    break
            stats["passes"] += 1
    rep.emit("done", {**_rounded(stats), "cpu_s": cpu_seconds()}, force=True)


def main(argv: list[str] | None = None) -> int:
    return main_for(PageCacheParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
