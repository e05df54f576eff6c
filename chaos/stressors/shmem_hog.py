"""Shmem/tmpfs hog: files on tmpfs, memory that killing the writer does not free.

Tmpfs pages belong to the files, not to the process: after a kill they stay
(``Shmem`` in /proc/meminfo does not drop), charged to the cgroup that wrote
them, until someone deletes the files. A killer that counts only process RSS
sees nothing to gain here. The runtime provides the tmpfs (``CHAOS_DIR``) and
removes it at teardown, because nobody else will.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from chaos.scenario import Params
from chaos.stressors.common import (
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
)

NAME = "shmem_hog"


@dataclass(frozen=True)
class ShmemHogParams:
    size_mib: int = 512
    rate_mib_s: float = 0.0  # 0 = as fast as possible
    file_mib: int = 16
    hold_s: float = 3600.0
    seed: int = 0


def parse(raw: Params) -> ShmemHogParams:
    p = parse_params(ShmemHogParams, raw, NAME)
    check_rate(NAME, p.size_mib, p.rate_mib_s)
    require(p.file_mib >= 1, NAME, f"file_mib must be >= 1, got {p.file_mib}")
    require(p.hold_s >= 0, NAME, "hold_s must be >= 0")
    return p


def needs(p: ShmemHogParams) -> Needs:
    return Needs(directory="tmpfs", dir_mib=p.size_mib + p.file_mib)


def command(p: ShmemHogParams) -> list[str]:
    return argv_for("chaos.stressors.shmem_hog", p)


def run(p: ShmemHogParams) -> None:
    root = scratch_dir("tmpfs")
    block = fill_block(p.seed)
    pacer = Pacer(p.rate_mib_s)
    rep = Reporter()
    rep.tick("start", force=True, size_mib=p.size_mib, dir=root)
    done = 0
    index = 0
    while done < p.size_mib:
        path = os.path.join(root, f"shm-{os.getpid()}-{index:05d}")
        index += 1
        with open(path, "wb", buffering=0) as f:
            for _ in range(min(p.file_mib, p.size_mib - done)):
                f.write(block)
                done += 1
                rep.tick("write", written_mib=done, files=index, cpu_s=cpu_seconds())
                pacer.wait(done)
    rep.tick("holding", force=True, written_mib=done, files=index, cpu_s=cpu_seconds())
    time.sleep(p.hold_s)


def main(argv: list[str] | None = None) -> int:
    return main_for(ShmemHogParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
