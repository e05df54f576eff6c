"""Kernel files the harness re-reads many times a second, opened once and read with pread.

Under emulation an open-read-close through pathlib costs ~0.4 ms, a pread of a file kept
open 0.01-0.03 ms (measured in a guest); the probes that do this run at SCHED_FIFO beside
the victims whose death they time. Reads go in 64 KiB chunks: the harness is mlockall'd,
and a large buffer for every read would want fresh locked pages under memory pressure.
"""

from __future__ import annotations

import os
from pathlib import Path

CHUNK = 64 * 1024


def open_ro(path: str | Path) -> int | None:
    """A read-only fd, or None if the file is not there (yet, or any more)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def pread_all(fd: int, offset: int = 0) -> bytes:
    """Everything from ``offset`` to the end; raises OSError (a task or cgroup gone)."""
    chunks = []
    while True:
        data = os.pread(fd, CHUNK, offset)
        chunks.append(data)
        if len(data) < CHUNK:
            return b"".join(chunks)
        offset += len(data)


def reread(fd: int | None) -> bytes | None:
    """The whole file again, or None if it cannot be read."""
    if fd is None:
        return None
    try:
        return pread_all(fd)
    except OSError:
        return None
