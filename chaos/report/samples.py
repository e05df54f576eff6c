"""Synthetic but realistic results, for the report's tests and for trying a report out.

One call builds what a 1 GiB VM testbed would record for an anon hog: 50 Hz
samples over 10 s, available memory falling to the danger line, pressure
rising, the killer's direct-reclaim episodes, the kill signal, the victim's
exit and recovery. Everything derives from the arguments (and ``seed``), so the
same call gives the same result.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from chaos.result import (
    BystanderOutcome,
    Event,
    KernelInfo,
    KillerInfo,
    Metrics,
    Result,
    TestbedResult,
    VictimOutcome,
)
from chaos.verdict import REASONS, judge, reason

MEMORY_KIB = 1024 * 1024
DANGER_KIB = MEMORY_KIB // 10


def sample_result(*, scenario: str = "anon_hog", run_id: str = "nightly-001",
                  killer: str = "earlyoom", release: str = "6.1.0-27-amd64",
                  kind: str = "vm", accel: str = "tcg", host: str = "runner-1",
                  started_ns: int = 5_000_000_000, ttk_ms: float | None = 420.0,
                  teardown_ms: float = 60.0, reclaim_ms: Sequence[float] = (12.0, 30.0),
                  fail: Sequence[str] = (), hz: int = 50, seconds: float = 10.0,
                  seed: int = 0, judged: bool = True) -> Result:
    """A result; ``fail`` lists reason codes to give it (``judged=False``: no verdict)."""
    rng = random.Random(f"{seed}/{scenario}/{run_id}/{killer}/{release}/{host}/{started_ns}")
    t0 = started_ns + 4_000_000_000
    killed = ttk_ms is not None
    exit_ns = t0 + int((ttk_ms or 0.0) * 1e6)
    signal_ns = exit_ns - int(teardown_ms * 1e6)
    n = int(seconds * hz)
    t_ns = [started_ns + int(i * 1e9 / hz) for i in range(n)]
    mem: list[float] = []
    some: list[float] = []
    full: list[float] = []
    for t in t_ns:
        if t < t0:
            frac = (t - started_ns) / (t0 - started_ns)
            kib = MEMORY_KIB * (0.8 - 0.7 * frac)
        elif not killed or t < exit_ns:
            kib = DANGER_KIB * (0.95 - 0.5 * min(1.0, (t - t0) / 3e9))
        else:
            kib = MEMORY_KIB * (0.8 - 0.7 * 0.5 ** ((t - exit_ns) / 3e8))
        mem.append(round(kib + rng.uniform(-2000, 2000), 1))
        if t < t0 - 500_000_000:
            pressure = 0.0
        elif killed and t > exit_ns:
            peak = min(95.0, (exit_ns - t0 + 5e8) / 4e7)
            pressure = max(0.0, peak - (t - exit_ns) / 5e7)
        else:
            pressure = min(95.0, (t - t0 + 5e8) / 4e7)
        some.append(round(max(0.0, pressure + rng.uniform(-1, 1)), 2))
        full.append(round(max(0.0, pressure * 0.6 + rng.uniform(-1, 1)), 2))
    events = [Event(t0, "danger", source="sampler", detail="MemAvailable < 10%")]
    t = t0 + 40_000_000
    for i, dur in enumerate(reclaim_ms):
        events.append(Event(t, "reclaim", pid=321, comm=killer[:15], source="tracefs",
                            detail=f"direct reclaim, duration_ms={dur}, order=0"))
        t += int(dur * 1e6) + 60_000_000 * (i + 1)
    victims = [VictimOutcome("hog", 4242, "workload/hog", stressor="anon_hog",
                             activity={"allocated_mib": 912.0})]
    if killed:
        by, comm = ("kernel", "kernel") if killer == "kernel" else ("killer", killer[:15])
        events += [
            Event(signal_ns, "oom_kill" if by == "kernel" else "signal", pid=4242, comm="hog",
                  sender_pid=0 if by == "kernel" else 321, sender_comm=comm, signal=9,
                  source="tracefs"),
            Event(exit_ns, "exit", pid=4242, comm="hog", source="pidfd"),
            Event(exit_ns + 1_200_000_000, "recovered", source="sampler"),
        ]
        victims[0] = VictimOutcome("hog", 4242, "workload/hog", died=True, exit_t_ns=exit_ns,
                                   exit_signal=9, killed_by=by, killer_comm=comm,
                                   signal_t_ns=signal_ns, stressor="anon_hog",
                                   activity={"allocated_mib": 912.0})
    ttk = ttk_ms
    metrics = Metrics(
        time_to_kill_ms=ttk, detect_ms=None if ttk is None else ttk - teardown_ms,
        teardown_ms=teardown_ms if killed else None, recover_ms=1200.0 if killed else None,
        samples=n - 1, samples_missed=1, sample_hz_achieved=hz * (n - 1) / n,
        bystander_worst_stall_ms=85.0, killer_reclaim_episodes=len(reclaim_ms),
        killer_reclaim_total_ms=float(sum(reclaim_ms)),
        killer_reclaim_longest_ms=float(max(reclaim_ms, default=0.0)),
        victim_teardown_on_cpu_ms=teardown_ms - 20.0 if killed else None,
        victim_teardown_runnable_ms=15.0 if killed else None,
        victim_teardown_preempted_by={"kswapd0": 10.0, "flood": 5.0} if killed else {},
        vcpu_steal_teardown_ms=4.0 if killed else None,
        victim_teardown_blocked_ms=5.0 if killed else None,
        victim_reclaim_after_signal_ms=0.0 if killed else None)
    result = Result(
        scenario=scenario, run_id=run_id,
        spec={"id": scenario, "run_id": run_id, "slo": {"time_to_kill_ms": 10000.0}},
        killer=KillerInfo(name=killer, version="1.7", pids=[321],
                          config=f"{killer} -m 10 -r 1 --prefer '(^|/)hog$'",
                          log=f"{killer}: sending SIGKILL to process 4242 \"hog\"\n"),
        kernel=KernelInfo(release=release, package=f"linux-image-{release}",
                          cmdline="console=ttyS0 panic=-1"),
        testbed=TestbedResult(kind=kind, accel=accel, memory_mib=1024, cpus=2, swap_mib=0,
                              host=host, boot_ms=2100.0),
        metrics=metrics, events=events,
        series={"t_ns": [float(x) for x in t_ns], "mem_available_kib": mem,
                "psi_some_avg10": some, "psi_full_avg10": full},
        victims=victims,
        bystanders=[BystanderOutcome("bystander", 4300, survived=True, worst_stall_ms=85.0,
                                     beats=980)],
        t0_ns=t0, started_ns=started_ns, ended_ns=started_ns + int(seconds * 1e9),
        logs={"console": "[    0.000000] Linux version " + release + "\n" * 3,
              "agent": "agent: scenario started\nagent: victim gone\n"},
        system={"uname": f"Linux testbed {release} x86_64", "MemTotal": "1024 MiB"},
        suite_revision="0123abcd")
    if judged:
        result.verdict = judge(result)
        for code in fail:
            if code not in REASONS:
                raise KeyError(code)
        if fail:
            result.verdict.passed = False
            result.verdict.details += [reason(code, f"synthetic {code}", seed=seed)
                                       for code in fail if code not in result.verdict.reasons]
            result.verdict.reasons = list(dict.fromkeys(result.verdict.reasons + list(fail)))
    return result
