"""GroupPids: a victim group's pids from open files, walking only when it has children.

Real sleeping processes in a private cgroup v2 subtree (the ``cg2`` fixture)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chaos.cgroupfs import CgroupTree, GroupPids


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_group_pids_follow_the_cgroup_and_its_children(cg2: Path) -> None:
    tree = CgroupTree.create("run", parent=cg2)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        tree.make("workload/hog")
        watch = GroupPids(tree, "workload/hog")
        assert watch.pids() == []
        procs.append(sleeper())
        tree.add_pid("workload/hog", procs[0].pid)
        assert watch.pids() == [procs[0].pid]  # the same open file, read again
        tree.make("workload/hog/child")  # a child cgroup: now a walk finds its members
        procs.append(sleeper())
        tree.add_pid("workload/hog/child", procs[1].pid)
        assert sorted(watch.pids()) == sorted(p.pid for p in procs)
        assert sorted(watch.pids()) == sorted(tree.pids("workload/hog"))
        watch.close()
        assert sorted(watch.pids()) == sorted(p.pid for p in procs)  # closed: walks
    finally:
        for p in procs:
            p.kill()
            p.wait()
        tree.destroy()


def test_a_group_that_does_not_exist_has_no_pids(cg2: Path) -> None:
    tree = CgroupTree.create("run", parent=cg2)
    try:
        assert GroupPids(tree, "workload/none").pids() == []
    finally:
        tree.destroy()
