"""The local testbed: the agent runs on this machine.

Without ``--allow-host-pressure`` the workload and bystanders run inside an
*arena*: a memory-limited cgroup (v2, or the v1 memory controller), so the
pressure is real but confined, and the result says so (``testbed.arena_mib``).
Global pressure is for dedicated runners only.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from chaos.procs import set_pdeathsig
from chaos.result import Result
from chaos.scenario import Scenario, SpecError
from chaos.state import RunRecord, state_dir
from chaos.testbeds import unfinished

DEFAULT_ARENA_MIB = 512
AGENT_MARGIN_S = 90.0
AGENT_STOP_S = 20.0
MIN_FREE_FOR_GLOBAL_MIB = 2048


def check_host_pressure_allowed(scenario: Scenario, allow: bool) -> None:
    """Refuse global pressure on this machine without the opt-in and enough free memory."""
    if scenario.testbed.arena_mib:
        return
    if not allow:
        raise SpecError("global pressure on the local testbed needs --allow-host-pressure "
                        "(dedicated runners only); without it scenarios run in an arena")
    avail = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            avail = int(line.split()[1]) // 1024
    if avail < MIN_FREE_FOR_GLOBAL_MIB:
        raise SpecError(f"only {avail} MiB available; global pressure needs at least "
                        f"{MIN_FREE_FOR_GLOBAL_MIB} MiB free")


def run(scenario: Scenario, workdir: Path, record: RunRecord | None = None,
        allow_host_pressure: bool = False,
        on_progress: Callable[[str], None] | None = None) -> Result:
    if not scenario.testbed.arena_mib and not allow_host_pressure:
        scenario = replace(scenario, testbed=replace(scenario.testbed,
                                                     arena_mib=DEFAULT_ARENA_MIB))
    check_host_pressure_allowed(scenario, allow_host_pressure)
    scenario = replace(scenario, testbed=replace(scenario.testbed, kind="local", accel="none"))
    with _host_pressure_lock(scenario):
        return _run(scenario, workdir, record, allow_host_pressure)


@contextlib.contextmanager
def _host_pressure_lock(scenario: Scenario) -> Iterator[None]:
    """Scenarios that press on the host's own memory run one at a time (across xdist workers)."""
    if scenario.testbed.arena_mib:
        yield
        return
    lock = state_dir() / ".host-pressure.lock"  # dot: not a run, never swept
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _run(scenario: Scenario, workdir: Path, record: RunRecord | None,
         allow_host_pressure: bool) -> Result:
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / "spec.json"
    out = workdir / "result.json"
    out.unlink(missing_ok=True)
    spec.write_text(scenario.to_json())
    env = dict(os.environ)
    if allow_host_pressure:
        env["CHAOS_ALLOW_HOST_PRESSURE"] = "1"
    proc = subprocess.Popen([sys.executable, "-m", "chaos.agent", "--spec", str(spec), "--out",
                             str(out), "--workdir", str(workdir / "agent")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=set_pdeathsig)
    if record is not None:
        record.add_process(proc.pid, "agent")
    try:
        output, _ = proc.communicate(timeout=scenario.deadline_s + scenario.settle_s
                                     + AGENT_MARGIN_S)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        hung = True
    except BaseException:
        # Interrupted (SIGINT/SIGTERM): the agent tears its scenario down on SIGTERM
        # and writes its result; SIGKILL only if it does not finish in time.
        proc.terminate()
        try:
            proc.communicate(timeout=AGENT_STOP_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
        raise
    finally:
        if record is not None and proc.poll() is not None:
            record.remove_process(proc.pid)
    text = output.decode(errors="replace")
    if out.exists() and not hung:
        result = Result.read(out)
    else:
        result = unfinished(scenario, (
            "TESTBED_HUNG: the agent did not finish by its deadline" if hung else
            f"TESTBED_ERROR: agent exited {proc.returncode}: "
            + (text.strip().splitlines() or ["no output"])[-1][:300]))
    result.testbed.kind = "local"
    result.logs["agent_output"] = text[-100_000:]
    return result
