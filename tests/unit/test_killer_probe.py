"""The killer probe's major-fault evidence: read per thread, bracketed around a window."""

from __future__ import annotations

import mmap
import os
import threading
from pathlib import Path

from chaos.probes.killer import KillerProbe, _majflt


def _fault_once_in_a_thread() -> tuple[int, int | None, int | None]:
    """Evict a file's pages, then touch one through a mapping from a second thread:
    (that thread's tid, its majflt before, after)."""
    f = Path(__file__).resolve().parent / f".majflt-{os.getpid()}"  # on disk, not tmpfs
    out: list[tuple[int, int | None, int | None]] = []
    try:
        f.write_bytes(os.urandom(1 << 20))
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)

            def touch() -> None:
                tid = threading.get_native_id()
                before = _majflt(os.getpid(), tid)
                with mmap.mmap(fd, 1 << 20, prot=mmap.PROT_READ) as m:
                    _ = m[12345]
                out.append((tid, before, _majflt(os.getpid(), tid)))

            t = threading.Thread(target=touch)
            t.start()
            t.join()
        finally:
            os.close(fd)
    finally:
        f.unlink(missing_ok=True)
    return out[0]


def test_majflt_counts_a_page_read_back_from_disk_per_thread() -> None:
    main = threading.get_native_id()
    main_before = _majflt(os.getpid(), main)
    _tid, before, after = _fault_once_in_a_thread()
    assert before is not None and after is not None and after > before
    assert _majflt(os.getpid(), main) == main_before  # not the thread group's sum


def test_majflt_of_a_missing_thread_is_none() -> None:
    assert _majflt(os.getpid(), 2**22 + 1) is None


def test_major_faults_around_brackets_the_window() -> None:
    probe = KillerProbe(cgroup=Path("/nonexistent"))
    # (t_ns, run delay, throttled, major faults so far), 100 ms apart
    probe.cpu_series = [(0, 0, 0, 0), (100, 0, 0, 2), (200, 0, 0, 7), (300, 0, 0, 9)]
    assert probe.major_faults_around(120, 150) == 5  # from the 100 sample to the 200 one
    assert probe.major_faults_around(100, 200) == 5
    assert probe.major_faults_around(250, 900) == 2  # no sample after: the last one
    probe.cpu_series = []
    assert probe.major_faults_around(0, 1) == 0
