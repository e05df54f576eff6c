"""The suite survives its own chaos: interrupted runs leave nothing behind.

A real `pytest chaos -k spike` is started in a subprocess with a known run
id, interrupted in the middle of a scenario (stressor running) with SIGINT,
SIGTERM or SIGKILL, and then everything the run could have left is counted:
its processes (by pid, collected before the signal), its cgroups and
tracefs instances (they carry the run id), its run record. SIGINT and SIGTERM
must clean up at once; after SIGKILL the next start's sweep must.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from chaos.cgroupfs import leftover_trees
from chaos.probes.tracing import leftover_instances
from chaos.skips import skip_unless_qemu, skip_unless_root
from chaos.state import state_dir, sweep

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)  # a child may exit between two reads


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except GONE:
        return False


def cmdline(k: psutil.Process) -> str:
    try:
        return " ".join(k.cmdline())
    except GONE:
        return ""


def name(k: psutil.Process) -> str:
    try:
        return k.name()
    except GONE:
        return ""


def leftovers(run_id: str, pids: set[int]) -> list[str]:
    found = [f"process {p}" for p in pids if alive(p)]
    found += [f"cgroup {p}" for p, _ in leftover_trees() if p.name.startswith(f"chaos-{run_id}")]
    found += [f"tracefs {p}" for p in leftover_instances() if p.name.startswith(f"chaos-{run_id}")]
    if (state_dir() / run_id).exists():
        found.append(f"run record {state_dir() / run_id}")
    return found


def as_in_a_terminal() -> None:
    """SIGINT handled as a terminal's Ctrl-C finds it. A shell that starts a job in the
    background (as CI may be started) leaves SIGINT ignored in everything below it, and
    then the run ignored the signal and passed by finishing on its own."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(run_id: str, testbed: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CHAOS_RUN_ID": run_id}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(ROOT / "chaos"),
         "-k", "spike", "--killer", "kernel", "--testbed", testbed,
         "--results-dir", str(tmp_path / "results"), "-p", "no:xdist"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=as_in_a_terminal)


def agent_waiting_on_stressors(results: Path) -> bool:
    """The guest's agent reports progress once a second while its stressors run."""
    return any("chaos-agent: progress" in p.read_text(errors="replace")
               for p in results.glob("*/work/*/share/stdout"))


def wait_for_stressor(proc: subprocess.Popen[bytes], testbed: str, results: Path,
                      timeout: float) -> set[int]:
    """Wait until the scenario is under way; return every descendant pid seen by then."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
        kids = psutil.Process(proc.pid).children(recursive=True)
        seen |= {k.pid for k in kids}
        # short-lived children (git describe for each result) come and go meanwhile
        names = " ".join(cmdline(k) for k in kids)
        if testbed == "local" and "chaos.stressors.anon_hog" in names:
            return seen
        # not any qemu child: `qemu-system-x86_64 --version` runs before the guest does
        if testbed == "vm" and agent_waiting_on_stressors(results):
            return seen | {k.pid for k in psutil.Process(proc.pid).children(recursive=True)}
        time.sleep(0.05)
    raise AssertionError("the scenario never got under way")


@pytest.mark.parametrize("testbed", ["local", "vm"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_interrupted_run_leaves_nothing(sig: signal.Signals, testbed: str,
                                        tmp_path: Path) -> None:
    skip_unless_root()
    if testbed == "vm":
        skip_unless_qemu()
    run_id = f"leak{uuid.uuid4().hex[:8]}"
    proc = start_run(run_id, testbed, tmp_path)
    try:
        pids = wait_for_stressor(proc, testbed, tmp_path / "results",
                                 timeout=600)  # may wait for a VM slot
        os.kill(proc.pid, sig)  # the pytest process we started
        proc.wait(timeout=60)  # 1-2 s on an idle host
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # pytest's "interrupted", not a run that finished before the signal could matter
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 2)
    if sig == signal.SIGKILL:
        deadline = time.monotonic() + 10  # guests and agents die with their parent
        while time.monotonic() < deadline and leftovers(run_id, pids):
            time.sleep(0.2)
        sweep()  # what the next start does
    else:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and leftovers(run_id, pids):
            time.sleep(0.1)
    assert leftovers(run_id, pids) == []
