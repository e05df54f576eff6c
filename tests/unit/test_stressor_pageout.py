"""The pageout stressor against real processes of our own: pages really leave, locks really hold."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from owned import Spawn, move

from chaos.runtimes.dirs import is_tmpfs
from chaos.skips import skip_or_fail
from chaos.stressors import pageout
from chaos.stressors.common import subtree_ids

MAPPED_MIB = 8
# Maps a clean file of its own, touches every page every 50 ms; optionally mlockall first.
HOLDER = """
import ctypes, mmap, os, sys, time
path, lock = sys.argv[1], sys.argv[2] == "1"
if lock and ctypes.CDLL(None, use_errno=True).mlockall(3) != 0:
    sys.exit("mlockall failed")
fd = os.open(path, os.O_RDONLY)
m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
open(path + ".ready", "w").close()
while True:
    for off in range(0, len(m), 4096):
        m[off]
    time.sleep(0.05)
"""


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _majflt(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[9])


@pytest.fixture
def mapped_file() -> Iterator[Path]:
    base = Path("/var/tmp")
    if is_tmpfs(base):  # tmpfs pages are shmem: without swap nothing could leave
        skip_or_fail("needs /var/tmp on a block-backed filesystem")
    d = Path(os.path.realpath(base)) / f"chaos-pageout-test-{os.getpid()}"
    d.mkdir(exist_ok=True)
    path = d / "mapped"
    with open(path, "wb") as f:
        f.write(os.urandom(MAPPED_MIB << 20))
        f.flush()
        os.fsync(f.fileno())  # clean: reclaim may drop it without writing
    yield path
    for p in d.iterdir():
        p.unlink()
    d.rmdir()


def _holder(spawn: Spawn, path: Path, lock: bool) -> int:
    child = spawn(sys.executable, "-c", HOLDER, str(path), "1" if lock else "0")
    ready = Path(f"{path}.ready")
    deadline = time.monotonic() + 20
    while not ready.exists():
        assert child.poll() is None, "the holder exited"
        assert time.monotonic() < deadline, "the holder never mapped its file"
        time.sleep(0.05)
    ready.unlink()
    time.sleep(0.3)  # a full touch pass
    return child.pid


def test_pageout_drops_a_process_file_pages_and_it_faults_them_back(
    spawn: Spawn, mapped_file: Path
) -> None:
    pid = _holder(spawn, mapped_file, lock=False)
    before_kib, faults = _status(pid, "RssFile"), _majflt(pid)
    tally = pageout.Tally()
    pageout.page_out(pid, pageout.ADVICE["pageout"], tally)
    after_kib = _status(pid, "RssFile")
    assert tally.tasks == 1 and not tally.errors, tally
    assert tally.advised >= MAPPED_MIB << 20
    assert before_kib - after_kib >= (MAPPED_MIB << 10) * 3 // 4, (before_kib, after_kib)
    time.sleep(0.5)  # its next passes read the file back from disk
    assert _majflt(pid) > faults


def test_pageout_is_refused_for_locked_memory(spawn: Spawn, mapped_file: Path) -> None:
    if os.geteuid() != 0:
        skip_or_fail("mlockall of 8 MiB needs CAP_IPC_LOCK")
    pid = _holder(spawn, mapped_file, lock=True)
    before_kib, faults = _status(pid, "RssFile"), _majflt(pid)
    tally = pageout.Tally()
    pageout.page_out(pid, pageout.ADVICE["pageout"], tally)
    assert tally.refused >= MAPPED_MIB << 20 and tally.advised == 0, tally
    assert _status(pid, "RssFile") >= before_kib - 64
    time.sleep(0.3)
    assert _majflt(pid) == faults


def test_processes_lists_a_cgroup_subtree(spawn: Spawn, cg2: Path) -> None:
    a, b = spawn(), spawn()
    move(a.pid, cg2 / "killer")
    move(b.pid, cg2 / "killer" / "inner")
    assert sorted(subtree_ids(cg2 / "killer")) == sorted([a.pid, b.pid])
    assert pageout.resident([a.pid, b.pid])["target_rss_file_mib"] > 0
