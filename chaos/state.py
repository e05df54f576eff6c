"""The run registry: what each run started, so a later run can sweep it.

Cleanup that lives only in in-process finalizers leaks when pytest is killed.
So every run records, before it starts anything, an owner (pid + start time)
and then each process it starts (pid + start time). ``sweep()`` at the next
start stops exactly those processes of runs whose owner is gone — by pid,
verified by start time, never by name pattern — and removes the run's
cgroups and tracefs instances, which carry the run id in their names.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from chaos.cgroupfs import leftover_trees, remove_tree
from chaos.probes.tracing import leftover_instances


def state_dir() -> Path:
    return Path(os.environ.get("CHAOS_STATE", "/run/chaos"))


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (identity beyond the pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int, started: int | None) -> bool:
    return started is not None and start_time(pid) == started


@dataclass
class RunRecord:
    """The on-disk record of one run: <state>/<run_id>/owner.json and procs/<pid>."""

    run_id: str
    root: Path

    @classmethod
    def open(cls, run_id: str) -> RunRecord:
        root = state_dir() / run_id
        (root / "procs").mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "start": start_time(os.getpid())}
        (root / "owner.json").write_text(json.dumps(owner))
        return cls(run_id, root)

    def add_process(self, pid: int, what: str) -> None:
        (self.root / "procs" / str(pid)).write_text(
            json.dumps({"start": start_time(pid), "what": what}))

    def remove_process(self, pid: int) -> None:
        (self.root / "procs" / str(pid)).unlink(missing_ok=True)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _owner_alive(run_dir: Path) -> bool:
    try:
        owner = json.loads((run_dir / "owner.json").read_text())
    except (OSError, ValueError):
        return False
    return alive(int(owner["pid"]), owner.get("start"))


def sweep() -> list[str]:
    """Clean up after runs whose owner is gone; returns what was removed (one line each)."""
    removed: list[str] = []
    root = state_dir()
    live_runs: set[str] = set()
    if root.is_dir():
        for run_dir in sorted(p for p in root.iterdir()
                              if p.is_dir() and not p.name.startswith(".")):
            if _owner_alive(run_dir):
                live_runs.add(run_dir.name)
                continue
            for proc in (run_dir / "procs").glob("*"):
                try:
                    info = json.loads(proc.read_text())
                except (OSError, ValueError):
                    continue
                pid = int(proc.name)
                if alive(pid, info.get("start")):
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"process {pid} ({info.get('what', '?')}) of run {run_dir.name}")
            shutil.rmtree(run_dir, ignore_errors=True)
    for path, version in leftover_trees():
        if any(path.name.startswith(f"chaos-{r}") for r in live_runs):
            continue
        try:
            remove_tree(path, 5.0, version)
            removed.append(f"cgroup {path}")
        except (OSError, RuntimeError):
            pass
    from chaos.runtimes import sweep as sweep_runtimes  # containers, tmpfs mounts, dirs

    removed += sweep_runtimes(live_runs)
    for inst in leftover_instances():
        if any(inst.name.startswith(f"chaos-{r}") for r in live_runs):
            continue
        try:
            (inst / "tracing_on").write_text("0")
            inst.rmdir()
            removed.append(f"tracefs instance {inst.name}")
        except OSError:
            pass
    return removed
