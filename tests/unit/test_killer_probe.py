"""The killer probe's major-fault evidence: read per thread, bracketed around a window."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
import threading
from pathlib import Path

from chaos.probes.killer import KillerProbe, _majflt, _ThreadFiles


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
                files = _ThreadFiles(os.getpid(), tid)  # opened once, re-read: as the probe
                before = _majflt(files.read("stat"))
                with mmap.mmap(fd, 1 << 20, prot=mmap.PROT_READ) as m:
                    _ = m[12345]
                out.append((tid, before, _majflt(files.read("stat"))))
                files.close()

            t = threading.Thread(target=touch)
            t.start()
            t.join()
        finally:
            os.close(fd)
    finally:
        f.unlink(missing_ok=True)
    return out[0]


def test_majflt_counts_a_page_read_back_from_disk_per_thread() -> None:
    main = _ThreadFiles(os.getpid(), threading.get_native_id())
    main_before = _majflt(main.read("stat"))
    _tid, before, after = _fault_once_in_a_thread()
    assert before is not None and after is not None and after > before
    assert _majflt(main.read("stat")) == main_before  # not the thread group's sum
    main.close()


def test_files_of_a_missing_or_ended_thread_read_none() -> None:
    assert _ThreadFiles(os.getpid(), 2**22 + 1).read("stat") is None
    done = threading.Event()
    tids: list[int] = []
    started = threading.Event()

    def wait_there() -> None:
        tids.append(threading.get_native_id())
        started.set()
        done.wait()

    t = threading.Thread(target=wait_there)
    t.start()
    started.wait()
    files = _ThreadFiles(os.getpid(), tids[0])
    assert files.read("schedstat")
    done.set()
    t.join()
    for _ in range(200):  # join() returns a moment before the OS thread is gone
        if not Path(f"/proc/self/task/{tids[0]}").exists():
            break
        threading.Event().wait(0.01)
    assert not files.read("schedstat")  # a thread that ended: nothing, not stale numbers
    files.close()


def test_the_probe_samples_a_real_cgroup_through_its_open_files(cg2: Path) -> None:
    """The probe's fds stay open between samples: cgroup.procs and /proc/TID files re-read
    with pread give current numbers (a process that joins later is found)."""
    probe = KillerProbe(cgroup=cg2, hz=100)
    assert probe._refresh() == []  # empty cgroup
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (cg2 / "cgroup.procs").write_text(str(child.pid))
        assert probe._refresh() == [child.pid]
        probe._sample_stacks([child.pid])
        assert probe.stack_samples == 1 and not probe.stack_hits  # asleep, not reclaiming
        assert probe.tids() == {child.pid}
        assert probe.cpu_series[-1][3] >= 0
    finally:
        child.kill()
        child.wait()
    probe.stop()
    assert probe._files == {}  # every fd closed


def test_major_faults_around_brackets_the_window() -> None:
    probe = KillerProbe(cgroup=Path("/nonexistent"))
    # (t_ns, run delay, throttled, major faults so far), 100 ms apart
    probe.cpu_series = [(0, 0, 0, 0), (100, 0, 0, 2), (200, 0, 0, 7), (300, 0, 0, 9)]
    assert probe.major_faults_around(120, 150) == 5  # from the 100 sample to the 200 one
    assert probe.major_faults_around(100, 200) == 5
    assert probe.major_faults_around(250, 900) == 2  # no sample after: the last one
    probe.cpu_series = []
    assert probe.major_faults_around(0, 1) == 0
