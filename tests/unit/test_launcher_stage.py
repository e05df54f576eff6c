"""Staged stressors: started before the killer, held at a gate, let go by ``start``.

Real processes in a private cgroup v2 subtree (the ``cg2`` fixture); the hog is
small (32 MiB) and runs only inside that subtree.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.cgroupfs import CgroupTree
from chaos.procs import Child
from chaos.runtimes.base import Site
from chaos.runtimes.launcher import Launcher, scope
from chaos.scenario import StressorSpec, TestbedInfo

HOG_MIB = 32


@pytest.fixture
def launcher(cg2: Path, tmp_path: Path) -> Iterator[Launcher]:
    tree = CgroupTree.create("run", parent=cg2)
    launch = Launcher(Site("stage-test", tree, tmp_path, TestbedInfo(kind="local")))
    try:
        yield launch
    finally:
        launch.close()


def hog(runtime: str = "cgroup") -> StressorSpec:
    return StressorSpec(name="anon_hog", instance="hog", cgroup="workload/hog", runtime=runtime,
                        params={"size_mib": HOG_MIB, "rate_mib_s": 0})


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def at_gate(child: Child, timeout_s: float = 30.0) -> None:
    """Wait until the staged process sleeps reading its stdin pipe: imports done."""
    deadline = time.monotonic() + timeout_s
    while "pipe_read" not in Path(f"/proc/{child.pid}/wchan").read_text():
        assert child.popen.poll() is None, child.output()
        assert time.monotonic() < deadline, "the staged stressor never reached its gate"
        time.sleep(0.02)


def test_a_staged_hog_waits_in_its_cgroup_then_runs_on_go(launcher: Launcher) -> None:
    child = launcher.stage(hog())
    assert child is not None
    at_gate(child)
    procs = launcher.site.tree.path(scope("hog")) / "cgroup.procs"
    assert str(child.pid) in procs.read_text().split()
    time.sleep(0.3)
    assert not child.ready.is_set(), child.output()  # no "start" progress line yet
    assert rss_kib(child.pid) < HOG_MIB * 1024  # and no hog memory
    go_ns = time.monotonic_ns()
    assert launcher.start(hog()) is child  # the same process, let go
    assert child.ready.wait(30), child.output()
    assert child.ready_t_ns is not None and child.ready_t_ns >= go_ns
    deadline = time.monotonic() + 30
    while rss_kib(child.pid) < HOG_MIB * 1024:
        assert time.monotonic() < deadline, f"hog never reached {HOG_MIB} MiB"
        time.sleep(0.05)
    assert not launcher.staged


def test_a_staged_stressor_whose_stdin_closes_does_nothing(launcher: Launcher) -> None:
    """The agent died (or the run ended) before the go: the stressor exits 0, idle."""
    child = launcher.stage(hog())
    assert child is not None
    at_gate(child)
    assert child.popen.stdin is not None
    child.popen.stdin.close()
    assert child.popen.wait(timeout=10) == 0
    child.drain()
    assert not child.ready.is_set(), child.output()


def test_close_stops_a_stressor_never_let_go(launcher: Launcher) -> None:
    child = launcher.stage(hog())
    assert child is not None
    launcher.close()
    assert child.popen.wait(timeout=10) != 0  # killed with its scope
    assert not launcher.site.tree.path(scope("hog")).exists() or not (
        launcher.site.tree.path(scope("hog")) / "cgroup.procs").read_text().strip()


@pytest.mark.parametrize("spec", [
    hog("docker"),
    StressorSpec(name="cpu_starve", instance="starve", cgroup="workload/starve",
                 params={"target": "killer"}),
    StressorSpec(name="pageout", instance="pageout", cgroup="workload/pageout",
                 params={"target": "killer"}),
    StressorSpec(name="udp_storm", instance="udp", cgroup="workload/udp",
                 params={"source": "loopback"}),
], ids=["docker-runtime", "cpu_starve-prepares", "pageout-prepares", "udp_storm-prepares"])
def test_what_acts_at_its_start_is_not_staged(launcher: Launcher, spec: StressorSpec) -> None:
    assert launcher.stage(spec) is None
    assert not launcher.staged
    assert not launcher.site.tree.path(scope(spec.instance)).exists()


def test_the_host_flood_is_stopped_once_when_the_run_is_over(
        launcher: Launcher, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent asks the host to stop flooding the NIC as soon as the measured run ends
    (not at close, after the guest's teardown ran under the flood), and only once."""
    from chaos.runtimes import guest

    share = tmp_path / "share"
    share.mkdir()
    monkeypatch.setenv(guest.SHARE_ENV, str(share))
    launcher.ask_flood()  # as start() does for a udp_storm from outside
    assert (share / "flood.go").exists()
    (share / "flood.go").unlink()
    launcher.ask_flood()  # a second stressor that needs the flood: asked once
    assert not (share / "flood.go").exists()
    launcher.stop_flood()
    assert (share / "flood.stop").exists()
    (share / "flood.stop").unlink()
    launcher.close()
    assert not (share / "flood.stop").exists()
