"""Every verdict reason is produced, in a real VM, by a killer that has exactly that fault.

The faulty killer (tests/killers/faulty.py) runs as an ``exec:`` target, so
this also exercises the no-code path for adding a killer. Two workloads:
``spike`` (a hog the kernel would OOM-kill) and ``hold`` (a hog that puts
the guest in danger and stays there without an OOM kill).
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from chaos import catalogue
from chaos.kernels import Kernel
from chaos.result import Result
from chaos.scenario import DangerSpec, KillerSpec, Scenario, Slo, StressorSpec, TestbedInfo
from chaos.session import Session, TestbedChoice
from tests.integration.checks import check_started

pytestmark = pytest.mark.integration

FAULTY = Path(__file__).resolve().parent.parent / "killers" / "faulty.py"


def faulty(mode: str, line: float, **extra: str) -> KillerSpec:
    args = [sys.executable, str(FAULTY), "--mode", mode, "--line", str(line),
            "--workload", "{workload}", "--bystanders", "{bystanders}", "--killer", "{killer}"]
    for k, v in extra.items():
        args += [f"--{k.replace('_', '-')}", v]
    return KillerSpec(name=f"exec:faulty-{mode}={shlex.join(args)}",
                      options={"ready_pattern": "ready"})


def hold(killer: KillerSpec, deadline_s: float = 40.0, guest_mib: int = 640,
         **slo: float) -> Scenario:
    """A hog that puts the guest under a 20% danger line, short of an OOM kill, in a guest
    of ``guest_mib`` (``run`` boots that size): 340 MiB in 640 MiB, 680 MiB in 1 GiB.

    The hog fills at ~80 MiB/s under emulation, so the smaller guest is in danger ~4 s
    sooner. A killer that never kills the hog is only stopped by the deadline (counted
    from the stressors' start), so those tests pass NO_KILL_DEADLINE_S: every second of
    it is a second of CI's one VM slot."""
    return Scenario(
        id="hold", run_id="unset", killer=killer,
        stressors=(StressorSpec(name="anon_hog", instance="hog", cgroup="workload/hog",
                                params={"size_mib": HOLD_HOG_MIB[guest_mib], "rate_mib_s": 0}),),
        danger=DangerSpec(mem_available_pct=20.0), deadline_s=deadline_s, slo=Slo(**slo),
        testbed=TestbedInfo(memory_mib=guest_mib))


HOLD_HOG_MIB = {640: 340, 1024: 680}
NO_KILL_DEADLINE_S = 16.0


def spike(killer: KillerSpec, guest_mib: int = 640, **slo: float) -> Scenario:
    """The catalogue's spike (an 8 GiB hog the kernel would OOM-kill) in a guest of
    ``guest_mib``: at ~80 MiB/s under emulation, the OOM comes ~4 s sooner in 640 MiB."""
    return dataclasses.replace(catalogue.spike(killer), slo=Slo(**slo), deadline_s=45.0,
                               testbed=TestbedInfo(memory_mib=guest_mib))


def run(session: Session, kernel: Kernel, scenario: Scenario) -> Result:
    result = session.run(scenario, TestbedChoice(kind="vm", kernel=kernel.package,
                                                 memory_mib=scenario.testbed.memory_mib))
    assert not result.error, result.error + "\n" + result.logs.get("console", "")[-1500:]
    return result


def test_healthy_killer_passes(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, spike(faulty("healthy", 15)))
    assert r.verdict.passed, r.verdict
    assert r.victims[0].killed_by == "killer"
    assert r.victims[0].killer_comm.startswith("python")
    assert r.metrics.time_to_kill_ms is not None and r.metrics.time_to_kill_ms >= 0


def test_never_kills_no_kill(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, hold(faulty("never", 20), NO_KILL_DEADLINE_S))
    assert "NO_KILL" in r.verdict.reasons
    assert r.t0_ns is not None  # it was in danger


def test_never_kills_kernel_first(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, spike(faulty("never", 10)))
    assert r.verdict.reasons == ["KERNEL_OOM_FIRST"]
    assert r.victims[0].killed_by == "kernel" and r.metrics.oom_kill_delta >= 1


def test_late_killer_slow_kill(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, hold(faulty("late", 20, delay_s="3"), time_to_kill_ms=1000))
    assert r.victims[0].killed_by == "killer"
    assert "SLOW_KILL" in r.verdict.reasons
    assert r.metrics.detect_ms is not None and r.metrics.detect_ms > 1000


def test_kills_bystander(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, hold(faulty("bystander", 20), NO_KILL_DEADLINE_S))
    assert {"BYSTANDER_KILLED", "WRONG_VICTIM", "NO_KILL"} <= set(r.verdict.reasons)
    assert r.bystanders[0].killed_by == "killer"


def test_kills_everything(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, hold(faulty("everything", 20)))
    assert {"BYSTANDER_KILLED", "OVERKILL"} <= set(r.verdict.reasons)
    assert "WRONG_VICTIM" not in r.verdict.reasons
    assert r.victims[0].killed_by == "killer"


def test_exits_under_pressure(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, hold(faulty("exits", 20), NO_KILL_DEADLINE_S))
    assert "KILLER_DIED" in r.verdict.reasons
    assert r.killer.exit_status == 3


def test_starved_by_cpu_quota(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, hold(faulty("starved", 20, delay_s="2")))
    assert "KILLER_STARVED" in r.verdict.reasons
    assert r.metrics.killer_throttled_ms > 1000


def test_allocating_killer_is_stuck_in_reclaim(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel,
            # 1 GiB: the killer churns 5 x 48 MiB of its own from the start
            hold(faulty("allocating", 20, alloc_mib="48", delay_s="5"), guest_mib=1024,
                 reclaim_stall_ms=1))
    m = r.metrics
    assert m.killer_reclaim_episodes > 0 and m.killer_reclaim_total_ms > 0
    assert "KILLER_STUCK_IN_RECLAIM" in r.verdict.reasons
    assert any(e.kind == "reclaim" for e in r.events)


def test_idle_mlocked_killer_has_no_reclaim(default_kernel: Kernel, session: Session) -> None:
    """The detector's negative control: an idle, mlocked process under the same pressure.
    Also the exec target's other options: ready when alive ``ready_after_s`` (no pattern),
    and a version given, not asked of the command."""
    idle = KillerSpec(name="exec:idle=python3 -c 'import ctypes,time; "
                      "ctypes.CDLL(None).mlockall(3); print(\"mlocked\", flush=True); "
                      "time.sleep(3600)'",
                      options={"ready_after_s": 2.0, "version": "idle as given"})
    r = run(session, default_kernel, spike(idle))
    check_started(r, idle.name)
    assert r.killer.version == "idle as given"
    assert r.metrics.killer_reclaim_episodes == 0
    assert r.metrics.killer_stack_reclaim_samples == 0
    assert r.victims[0].killed_by == "kernel"
    # the harness's clock and the tracepoints' clock are one clock
    assert r.metrics.clock_skew_ms is not None and abs(r.metrics.clock_skew_ms) < 1.0


def small(killer: KillerSpec, hold_s: float, **slo: float) -> Scenario:
    """A 96 MiB hog: never near the danger line."""
    return Scenario(
        id="small", run_id="unset", killer=killer,
        stressors=(StressorSpec(name="anon_hog", instance="hog", cgroup="workload/hog",
                                params={"size_mib": 96, "rate_mib_s": 0, "hold_s": hold_s}),),
        deadline_s=12.0, slo=Slo(**slo))


def test_no_danger_and_a_stalled_bystander(default_kernel: Kernel, session: Session) -> None:
    r = run(session, default_kernel, small(KillerSpec(name="kernel"), hold_s=3600,
                                           bystander_stall_ms=0.001))
    assert r.t0_ns is None
    assert {"NO_DANGER", "NO_KILL", "BYSTANDER_STALLED"} <= set(r.verdict.reasons)
    stalled = next(d for d in r.verdict.details if d.code == "BYSTANDER_STALLED")
    assert isinstance(stalled.evidence["worst_stall_ms"], float)


def test_victim_that_exits_by_itself_is_killed_by_other(default_kernel: Kernel,
                                                        session: Session) -> None:
    r = run(session, default_kernel, small(KillerSpec(name="kernel"), hold_s=1))
    assert r.victims[0].died and r.victims[0].exit_code == 0
    assert "KILLED_BY_OTHER" in r.verdict.reasons


def test_stopped_harness_is_harness_impaired(default_kernel: Kernel, session: Session) -> None:
    """The agent is frozen for 3 s around danger, so its sampler misses ~150 of its samples.

    (An earlier version asked for 1000 samples a second and hoped the guest could
    not keep up; on a faster CI host it could, and the test failed.)
    """
    r = run(session, default_kernel, hold(faulty("stops-harness", 20, stop_s="3")))
    assert "HARNESS_IMPAIRED" in r.verdict.reasons
    assert r.victims[0].died
    assert r.metrics.samples_missed_in_window > r.metrics.samples_expected_in_window / 4


def test_docker_engine_that_stops_answering_is_an_error(default_kernel: Kernel,
                                                        session: Session,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The guest's engine is frozen mid-run: the run ends as an error, not a hang.

    The engine-call deadline is cut from 30 s to 20 s (the override is passed into the
    guest): each second of it is a second of CI's one VM slot. A healthy engine's
    slowest call, starting a container, took 6-8 s in earlier CI guests, and more than
    12 s in one on 2026-12-07 (a slow host: the run ended there, before any freeze)."""
    from chaos.runtimes.dockerd import CALL_TIMEOUT_ENV

    monkeypatch.setenv(CALL_TIMEOUT_ENV, "20")
    scenario = hold(faulty("stops-engine", 20), guest_mib=1024)  # room for the engine
    scenario = dataclasses.replace(scenario, stressors=tuple(
        dataclasses.replace(st, runtime="docker") for st in scenario.stressors))
    r = session.run(scenario, TestbedChoice(kind="vm", kernel=default_kernel.package))
    # The agent's own deadline on the engine call fired, not the VM's (TESTBED_HUNG).
    # (No wall-clock bound here: boot and engine start-up under emulation vary 2x by host.)
    assert r.error.startswith("TESTBED_ERROR: the Docker engine stopped answering"), r.error
    assert "within 20 s" in r.error, r.error
    assert "starting the container" not in r.error  # frozen mid-run, not before it
    assert "EngineUnresponsive" in r.logs["agent"]
    assert "dockerd" in r.logs
    assert r.victims[0].died  # the kill itself went through cgroup.kill, not the engine


def test_killer_that_panics_the_testbed(default_kernel: Kernel, session: Session) -> None:
    panic = KillerSpec(name="exec:panic=sh -c 'echo ready; sleep 8; "
                       "echo c > /proc/sysrq-trigger'", options={"ready_pattern": "ready"})
    # 1 GiB: the panic comes 8 s after the killer is ready, before the kernel's OOM kill
    r = session.run(spike(panic, guest_mib=1024),
                    TestbedChoice(kind="vm", kernel=default_kernel.package))
    assert r.verdict.reasons == ["TESTBED_PANIC"]
    assert "Kernel panic" in r.logs["console"]
    assert r.killer.name == panic.name  # no result from the guest: still its killer's cell
    # A sysrq crash is not the emulator's fault and is never retried; a guest that died of
    # the emulator's int3 fault first (once in CI, at 1.9 s of boot) is, and says so.
    retried = r.system.get("testbed_retried")
    assert retried is None or "Oops: int3" in retried, retried


def test_killer_that_freezes_the_testbed(default_kernel: Kernel, tmp_path: Path) -> None:
    """Real-time spinners on every CPU with RT throttling off: the guest stops answering.
    Run as a user would, `chaos run --vm-silence 15`, so the option is tried end to end."""
    freeze = ("exec:freeze=chrt -f 99 sh -c 'echo -1 > /proc/sys/kernel/sched_rt_runtime_us; "
              "(while :; do :; done) & (while :; do :; done) & wait'")
    results = tmp_path / "results"
    out = subprocess.run(
        [sys.executable, "-m", "chaos.cli", "run", "-k", "spike", "--killer", freeze,
         "--testbed", "vm", "--kernel", default_kernel.package, "--vm-silence", "15",
         "--results-dir", str(results), "-o", str(tmp_path / "reports")],
        capture_output=True, text=True, timeout=600)
    files = list(results.glob("*/*--spike.json"))
    assert len(files) == 1, out.stdout[-2000:] + out.stderr[-2000:]
    r = Result.read(files[0])
    assert r.verdict.reasons == ["TESTBED_HUNG"]
    assert "no heartbeat for 15 s" in r.error, r.error  # not the deadline's 90 + 90 s
    assert r.logs["console"]
