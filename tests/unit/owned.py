"""Children and cgroups that the oomguard tests start themselves, and their clean-up.

Everything here is stopped by pid or removed by path, never by name pattern.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from chaos.skips import skip_or_fail

Spawn = Callable[..., subprocess.Popen[bytes]]


def spawner() -> Iterator[Spawn]:
    """Start children (default `sleep 300`); any still alive at the end is killed by pid."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*argv: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(list(argv) or ["sleep", "300"], stdin=subprocess.DEVNULL)
        procs.append(p)
        settled(p.pid)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def private_cgroup2() -> Iterator[Path]:
    """A private cgroup v2 subtree (with cgroup.kill), removed at the end."""
    root = cgroup2_mount()
    if root is None or os.geteuid() != 0:
        skip_or_fail("needs root and a cgroup2 mount")
    base = root / f"oomguard-test-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    try:
        if not (base / "cgroup.kill").exists():
            skip_or_fail("kernel without cgroup.kill")
        yield base
    finally:
        remove_cgroup_tree(base)


def settled(pid: int, timeout: float = 5.0) -> None:
    """Wait until a fresh child has finished exec and has resident memory (RSS > 0)."""
    deadline = time.monotonic() + timeout
    while True:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        if int(stat[stat.rindex(b")") + 2 :].split()[21]) > 0:
            return
        assert time.monotonic() < deadline, f"child {pid} never got an RSS"
        time.sleep(0.005)


def cgroup2_mount() -> Path | None:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return Path(left.split()[4])
    return None


def remove_cgroup_tree(base: Path, timeout: float = 10.0) -> None:
    """Kill what is left in our own subtree, then rmdir bottom-up until it is really gone."""
    deadline = time.monotonic() + timeout
    if (base / "cgroup.kill").exists():
        (base / "cgroup.kill").write_text("1")
    while base.exists():
        dirs = sorted((p for p in base.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for d in [*dirs, base]:
            try:
                d.rmdir()
            except OSError:
                pass
        if base.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"could not remove {base}")
            time.sleep(0.05)


def move(pid: int, cgroup: Path) -> None:
    cgroup.mkdir(parents=True, exist_ok=True)
    (cgroup / "cgroup.procs").write_text(str(pid))
