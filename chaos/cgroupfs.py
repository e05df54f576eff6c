"""A scenario's cgroup tree, on cgroup v2 or (local arenas only) the v1 memory controller.

The agent creates one tree per scenario (``chaos-<run id>``), labelled by name
so a later run can sweep what a killed run left behind. Teardown follows the
kernel's own cgroup selftests: kill, then retry ``rmdir`` until the cgroup is
really gone, deepest first.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.procfiles import open_ro, reread

V2_ROOT = Path("/sys/fs/cgroup")
V1_MEMORY_ROOT = Path("/sys/fs/cgroup/memory")
PREFIX = "chaos-"


class CgroupError(RuntimeError):
    pass


def v2_memory_root() -> Path | None:
    """The cgroup2 mount that has the memory controller, if any."""
    for candidate in (V2_ROOT, V2_ROOT / "unified"):
        controllers = candidate / "cgroup.controllers"
        try:
            if "memory" in controllers.read_text().split():
                return candidate
        except OSError:
            continue
    return None


@dataclass
class CgroupTree:
    """The cgroups of one scenario below ``root`` (which this object owns)."""

    root: Path
    version: int  # 2 or 1 (v1: memory controller only)

    @classmethod
    def create(cls, name: str, parent: Path | None = None) -> CgroupTree:
        v2 = v2_memory_root()
        if parent is None:
            if v2 is not None:
                parent, version = v2, 2
            elif (V1_MEMORY_ROOT / "cgroup.procs").exists():
                parent, version = V1_MEMORY_ROOT, 1
            else:
                raise CgroupError("no cgroup v2 memory controller and no v1 memory hierarchy")
        else:
            version = 2 if (parent / "cgroup.controllers").exists() else 1
        tree = cls(root=parent / name, version=version)
        tree.root.mkdir(exist_ok=False)
        if version == 2:
            tree._enable_controllers(parent)
            tree._enable_controllers(tree.root)
        return tree

    def _enable_controllers(self, path: Path) -> None:
        try:
            available = (path / "cgroup.controllers").read_text().split()
        except OSError:
            return
        for ctrl in ("memory", "cpu", "pids", "io", "cpuset"):
            if ctrl in available:
                try:
                    (path / "cgroup.subtree_control").write_text(f"+{ctrl}")
                except OSError:
                    pass  # e.g. cpu busy with realtime threads; memory is what matters

    def path(self, rel: str = "") -> Path:
        return self.root / rel if rel else self.root

    def make(self, rel: str) -> Path:
        """Create ``rel`` and its parents, enabling controllers on the way down (v2)."""
        current = self.root
        parts = [p for p in rel.split("/") if p]
        for i, part in enumerate(parts):
            current = current / part
            current.mkdir(exist_ok=True)
            if self.version == 2 and i < len(parts) - 1:
                self._enable_controllers(current)
        return current

    def write(self, rel: str, name: str, value: str) -> None:
        target = self.path(rel) / self.v1_name(name)
        try:
            target.write_text(value)
        except OSError as exc:
            raise CgroupError(f"cannot write {value!r} to {target}: {exc.strerror}") from None

    def read(self, rel: str, name: str) -> str:
        return (self.path(rel) / self.v1_name(name)).read_text()

    def v1_name(self, name: str) -> str:
        if self.version == 2:
            return name
        return {"memory.max": "memory.limit_in_bytes", "memory.current": "memory.usage_in_bytes",
                "memory.peak": "memory.max_usage_in_bytes"}.get(name, name)

    def set_memory_max(self, rel: str, nbytes: int) -> None:
        self.write(rel, "memory.max", str(nbytes))

    def add_pid(self, rel: str, pid: int) -> None:
        self.write(rel, "cgroup.procs", str(pid))

    def pids(self, rel: str = "") -> list[int]:
        out: list[int] = []
        for d in self._walk(self.path(rel)):
            try:
                out += [int(x) for x in (d / "cgroup.procs").read_text().split()]
            except OSError:
                continue
        return out

    def _walk(self, top: Path) -> list[Path]:
        """All cgroup dirs below and including ``top``, deepest first."""
        found: list[Path] = []
        for dirpath, dirnames, _ in os.walk(top):
            for d in dirnames:
                found.append(Path(dirpath) / d)
        found.sort(key=lambda p: len(p.parts), reverse=True)
        if top.exists():
            found.append(top)
        return found

    def kill(self, rel: str = "") -> None:
        """SIGKILL every process below ``rel`` (cgroup.kill where the kernel has it)."""
        top = self.path(rel)
        if self.version == 2 and (top / "cgroup.kill").exists():
            try:
                (top / "cgroup.kill").write_text("1")
                return
            except OSError:
                pass
        for pid in self.pids(rel):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def destroy(self, deadline_s: float = 10.0) -> None:
        """Kill everything in the tree and remove it; retries until gone or the deadline."""
        remove_tree(self.root, deadline_s, self.version)


def remove_tree(root: Path, deadline_s: float = 10.0, version: int = 2) -> None:
    tree = CgroupTree(root=root, version=version)
    end = time.monotonic() + deadline_s
    while root.exists():
        tree.kill()
        busy: list[Path] = []
        for d in tree._walk(root):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                    busy.append(d)
                else:
                    raise
        if not busy:
            return
        if time.monotonic() > end:
            raise CgroupError(f"cgroup {busy[0]} still busy after {deadline_s:.0f} s")
        time.sleep(0.05)


def leftover_trees() -> list[tuple[Path, int]]:
    """Scenario cgroup trees (ours, by name) that exist on this machine now."""
    found: list[tuple[Path, int]] = []
    v2 = v2_memory_root()
    if v2 is not None:
        found += [(p, 2) for p in v2.glob(PREFIX + "*") if p.is_dir()]
    if (V1_MEMORY_ROOT / "cgroup.procs").exists():
        found += [(p, 1) for p in V1_MEMORY_ROOT.glob(PREFIX + "*") if p.is_dir()]
    return found


class GroupPids:
    """The pids of one cgroup and its descendants, read often and cheaply: its
    ``cgroup.procs`` and ``cgroup.stat`` stay open and are re-read with pread, and the
    subtree is walked only while ``cgroup.stat`` says it has descendants (a walk lists
    every control file of every cgroup: milliseconds under emulation, at 10 Hz)."""

    def __init__(self, tree: CgroupTree, rel: str) -> None:
        self.tree, self.rel = tree, rel
        top = tree.path(rel)
        self._procs = open_ro(top / "cgroup.procs")
        self._stat = open_ro(top / "cgroup.stat")

    def pids(self) -> list[int]:
        if self._procs is None or self._stat is None or self._has_descendants():
            return self.tree.pids(self.rel)
        text = reread(self._procs)  # None: the cgroup is gone
        return [int(x) for x in text.split()] if text else []

    def _has_descendants(self) -> bool:
        text = reread(self._stat)
        if text is None:
            return False  # the cgroup is gone
        for line in text.splitlines():
            key, _, value = line.partition(b" ")
            if key == b"nr_descendants":
                return value.strip() != b"0"
        return True  # no such line (cgroup v1): walk

    def close(self) -> None:
        for fd in (self._procs, self._stat):
            if fd is not None:
                os.close(fd)
        self._procs = self._stat = None
