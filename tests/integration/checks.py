"""Assertions on a scenario's result that more than one test module makes."""

from __future__ import annotations

import math

from chaos.result import Result
from tests.integration.conftest import Record


def explain(result: Result) -> str:
    return (f"error={result.error!r} reasons={result.verdict.reasons} victims={result.victims}\n"
            f"--- killer log (last lines)\n" + "\n".join(result.killer.log.splitlines()[-15:]))


def check_started(result: Result, name: str) -> None:
    """The target itself worked: it ran, said it was ready, and its version and log are kept."""
    assert not result.error, explain(result)
    assert result.killer.name == name
    assert result.killer.version, "no version captured"
    assert result.killer.log, "no killer log kept"
    assert result.killer.pids and not result.killer.exited, explain(result)
    assert any(e.kind == "killer_ready" for e in result.events)


def check_killer_killed(result: Result, name: str, record: Record,
                        comm: str = "") -> None:
    check_started(result, name)
    (hog,) = result.victims
    assert hog.died and hog.killed_by == "killer", explain(result)
    if comm:
        assert hog.killer_comm == comm, explain(result)
    assert hog.exit_signal in (9, 15)
    assert result.metrics.oom_kill_delta == 0, "the kernel OOM killer fired as well"
    ttk = result.metrics.time_to_kill_ms
    assert ttk is not None and math.isfinite(ttk) and ttk >= 0
    # the victim's teardown was traced: its context switches account for all of it, and
    # what it had left of a reclaim pass at the signal is a part of it
    m = result.metrics
    split = (m.victim_teardown_on_cpu_ms, m.victim_teardown_runnable_ms,
             m.victim_teardown_blocked_ms)
    assert m.teardown_ms is not None and None not in split, explain(result)
    assert abs(sum(s or 0.0 for s in split) - m.teardown_ms) < 1.0, (split, m.teardown_ms)
    assert m.victim_reclaim_after_signal_ms is not None
    assert 0 <= m.victim_reclaim_after_signal_ms <= m.teardown_ms
    # the host watched the vCPU threads and mapped its clock onto the guest's (heartbeat)
    assert result.testbed.vcpu_steal_pct is not None, explain(result)
    assert {"cpu0_wait_ms", "cpu1_wait_ms"} <= set(result.testbed.vcpu_wait)
    steal = m.vcpu_steal_in_window_ms
    assert steal is not None and 0 <= steal <= ttk * result.testbed.cpus + 1, (steal, ttk)
    claims = [e for e in result.events if e.kind == "killer_log"]
    assert claims, "the killer's log says nothing about the kill"
    assert all(e.t_ns > 0 for e in claims)
    (by,) = result.bystanders
    assert by.survived
    check_staged_hog_waited(result)
    record("time_to_kill_ms", ttk)
    record("killer_version", result.killer.version)
    record("verdict", ",".join(result.verdict.reasons) or "passed")


def check_staged_hog_waited(result: Result) -> None:
    """The hog was started ahead, while the killer started, and did no work until the
    agent let it go: its own first progress line comes after its ``stressor_start``."""
    (start,) = [e for e in result.events if e.kind == "stressor_start"]
    (hog,) = result.victims
    assert hog.staged, start.detail
    assert hog.work_start_t_ns is not None, "the hog never said it started"
    assert start.t_ns <= hog.work_start_t_ns < start.t_ns + 30_000_000_000


def check_oomd_default_config(result: Result, record: Record) -> None:
    """A record, not a race to win: the target must work; who killed is the finding
    (oomd, or the kernel first: KERNEL_OOM_FIRST)."""
    check_started(result, "oomd")
    (hog,) = result.victims
    assert hog.died, explain(result)
    record("swap_mib", result.testbed.swap_mib)
    record("killed_by", hog.killed_by)
    record("time_to_kill_ms", result.metrics.time_to_kill_ms)
    record("verdict", ",".join(result.verdict.reasons) or "passed")
    print(f"\noomd default config, swap {result.testbed.swap_mib} MiB: killed by "
          f"{hog.killed_by} ({hog.killer_comm}), time-to-kill "
          f"{result.metrics.time_to_kill_ms} ms, verdict {result.verdict.reasons}")
    if hog.killed_by == "killer":
        assert hog.killer_comm == "oomd", explain(result)
    else:
        assert hog.killed_by == "kernel", explain(result)
        assert "KERNEL_OOM_FIRST" in result.verdict.reasons


def check_kernel_kill(result: Result) -> None:
    """The kernel alone against an anon hog, from the facts it recorded."""
    assert not result.error, result.error + result.logs.get("console", "")[-2000:]
    (hog,) = result.victims
    assert hog.died and hog.exit_signal == 9
    assert hog.killed_by == "kernel"
    assert any(e.kind == "mark_victim" and e.pid == hog.pid for e in result.events)
    assert result.metrics.oom_kill_delta >= 1
    assert hog.activity["allocated_mib"] > 100  # it really allocated
    (by,) = result.bystanders
    assert by.survived and by.beats > 10
    ttk = result.metrics.time_to_kill_ms
    assert ttk is not None and math.isfinite(ttk) and ttk > 0
    assert result.t0_ns is not None
    assert result.metrics.sample_hz_achieved >= 20
    n = len(result.series["t_ns"])
    # a kill in a small local arena can end a run within half a second (CI: 0.48 s,
    # 20 samples at 50 Hz): samples, all columns aligned, not a minimum length
    assert n >= 10 and all(len(v) == n for v in result.series.values())
    assert min(result.series["mem_available_kib"]) < max(result.series["mem_available_kib"]) / 2
    assert result.verdict.passed, result.verdict
