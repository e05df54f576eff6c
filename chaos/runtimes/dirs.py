"""Directories a stressor asks for (``Needs.directory``), named after the run so they are swept.

- ``block``: on a filesystem with a real block device under it (page cache,
  dirty pages, writeback). In a VM: the scratch disk's ext4. Locally: /var/tmp
  when that is not tmpfs.
- ``tmpfs``: a tmpfs of its own, sized for the stressor, so the files outlive
  the process (the point of a shmem hog) but not the run: the runtime removes
  them at teardown, and ``sweep`` removes those of runs that died.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from chaos.runtimes import guest
from chaos.scenario import SpecError

TMPFS_ROOT = Path("/run/chaos-tmpfs")
LOCAL_BLOCK_ROOT = Path("/var/tmp")
TMPFS_MAGIC = 0x01021994
RUN_ID_RE = re.compile(r"^\d{8}T\d{6}-[0-9a-f]{6}")  # chaos.state.new_run_id()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


def free_mib(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize >> 20


def is_tmpfs(path: Path) -> bool:
    out = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True)
    return out.stdout.strip() == f"{TMPFS_MAGIC:x}"


def check(kind: str, mib: int) -> None:
    """Refuse before anything starts when the testbed cannot give this directory."""
    if kind == "block":
        if guest.in_guest():
            have = guest.scratch_mib()
            if have < mib:
                raise SpecError(f"needs a block-backed directory of {mib} MiB; this VM's "
                                f"scratch disk has {have} MiB")
        elif is_tmpfs(LOCAL_BLOCK_ROOT) or free_mib(LOCAL_BLOCK_ROOT) < mib:
            raise SpecError(f"needs {mib} MiB on a block-backed filesystem; {LOCAL_BLOCK_ROOT} "
                            "is tmpfs or too small")
    elif kind not in ("tmpfs", ""):
        raise SpecError(f"unknown directory kind {kind!r}")


def provide(kind: str, mib: int, run_id: str, instance: str) -> tuple[Path, Callable[[], None]]:
    """Create the directory; returns it and the function that removes it."""
    name = _safe(f"{run_id}-{instance}")
    if kind == "block":
        root = guest.scratch() if guest.in_guest() else LOCAL_BLOCK_ROOT
        path = root / f"chaos-{name}"
        if free_mib(root) < mib:
            raise SpecError(f"{root} has {free_mib(root)} MiB free, {instance} needs {mib}")
        path.mkdir(parents=True, exist_ok=False)
        return path, lambda: shutil.rmtree(path, ignore_errors=True)
    path = TMPFS_ROOT / name
    path.mkdir(parents=True, exist_ok=False)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m,mode=0777", "chaos-tmpfs",
                          str(path)], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        path.rmdir()
        raise SpecError(f"cannot mount a tmpfs for {instance}: {out.stderr.strip()}")
    return path, lambda: _unmount(path)


def _unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
    try:
        path.rmdir()
    except OSError:
        pass


def sweep(live_runs: set[str]) -> list[str]:
    """Remove tmpfs mounts and block directories of runs whose owner is gone."""
    removed: list[str] = []
    for root, prefix in ((TMPFS_ROOT, ""), (LOCAL_BLOCK_ROOT, "chaos-")):
        if not root.is_dir():
            continue
        for path in root.iterdir():
            name = path.name.removeprefix(prefix)
            if not path.name.startswith(prefix) or not RUN_ID_RE.match(name):
                continue
            if any(name.startswith(_safe(r)) for r in live_runs):
                continue
            if root == TMPFS_ROOT:
                _unmount(path)
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed.append(f"stressor directory {path}")
    return removed
