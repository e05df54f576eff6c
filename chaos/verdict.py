"""Verdicts: a result's raw record -> passed + reasons from one fixed vocabulary.

The verdict is a pure function of the result, so a report can recompute it
(for example with other SLOs) without re-running anything. Every reason
carries the numbers that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from chaos.result import Reason, Result, Verdict
from chaos.scenario import Slo

# The vocabulary. The report's glossary is rendered from this table.
REASONS: dict[str, str] = {
    "NO_DANGER": "The stressors never brought the testbed into danger; nothing was tested.",
    "NO_KILL": "The victim was still alive at the deadline.",
    "KERNEL_OOM_FIRST": "The kernel OOM killer killed before the userspace killer did.",
    "WRONG_VICTIM": "Something other than the expected victim was killed by the killer.",
    "OVERKILL": "The killer killed more than was needed (several victims or bystanders).",
    "SLOW_KILL": "Time-to-kill exceeded the scenario's SLO.",
    "KILLED_BY_OTHER": "The victim died from a signal that neither the killer nor the kernel "
                       "OOM killer sent, or exited by itself.",
    "KILLER_STUCK_IN_RECLAIM": "The killer spent longer than the SLO in direct reclaim or its "
                               "throttling while it should have been acting.",
    "KILLER_STARVED": "The killer waited longer than the SLO for a CPU (run delay / throttling).",
    "KILLER_DIED": "The killer process exited or was killed during the scenario.",
    "BYSTANDER_KILLED": "A workload that had to survive was killed.",
    "BYSTANDER_STALLED": "A bystander's heartbeat stalled for longer than the SLO "
                         "(counted from the stressors' start).",
    "HARNESS_IMPAIRED": "Around danger and the kill, the harness missed more than a quarter of its "
                        "samples; its own view of the timeline is impaired.",
    "TESTBED_HUNG": "The testbed stopped responding and was killed at its deadline.",
    "TESTBED_PANIC": "The testbed's kernel panicked.",
    "TESTBED_ERROR": "The run failed for a reason outside the scenario (see the error).",
}

FAILURE_CODES = frozenset(REASONS)
STARVED_FRACTION = 0.5
HARNESS_MISSED_FRACTION = 0.25


def reason(code: str, message: str, **evidence: float | int | str | None) -> Reason:
    if code not in REASONS:
        raise KeyError(f"unknown reason code {code}")
    return Reason(code=code, message=message, evidence=dict(evidence))


Check = Callable[[Result, Slo], list[Reason]]


def _testbed(result: Result, slo: Slo) -> list[Reason]:
    if not result.error:
        return []
    for code in ("TESTBED_HUNG", "TESTBED_PANIC"):
        if result.error.startswith(code):
            return [reason(code, result.error)]
    return [reason("TESTBED_ERROR", result.error)]


def _danger(result: Result, slo: Slo) -> list[Reason]:
    if result.t0_ns is None and not any(v.died for v in result.victims):
        return [reason("NO_DANGER", "available memory never fell under the danger line")]
    return []


def _victims(result: Result, slo: Slo) -> list[Reason]:
    out: list[Reason] = []
    expected_killer = _expected_killer(result)
    userspace = expected_killer != "kernel"
    for v in result.victims:
        if not v.expected:
            continue
        if not v.died:
            out.append(reason("NO_KILL", f"{v.instance} (pid {v.pid}) was alive at the deadline",
                              pid=v.pid))
            continue
        if v.killed_by == "kernel" and userspace:
            out.append(reason("KERNEL_OOM_FIRST",
                              f"the kernel OOM killer killed {v.instance} before {expected_killer}",
                              pid=v.pid, signal_t_ns=v.signal_t_ns))
        elif v.killed_by == "killer" and not userspace:
            out.append(reason("KILLED_BY_OTHER",
                              f"{v.instance} was killed by {v.killer_comm}, not the kernel",
                              pid=v.pid))
        elif v.killed_by not in ("killer", "kernel"):
            how = (f"signal {v.exit_signal} from {v.killer_comm or 'unknown'}"
                   if v.exit_signal else f"exit code {v.exit_code}")
            out.append(reason("KILLED_BY_OTHER", f"{v.instance} ended by {how}", pid=v.pid,
                              exit_signal=v.exit_signal, exit_code=v.exit_code))
    return out


def _bystanders(result: Result, slo: Slo) -> list[Reason]:
    out: list[Reason] = []
    killed = [b for b in result.bystanders if not b.survived]
    for b in killed:
        out.append(reason("BYSTANDER_KILLED", f"bystander {b.instance} (pid {b.pid}) died"
                          + (f", killed by {b.killed_by}" if b.killed_by else ""), pid=b.pid))
    for b in result.bystanders:
        stall = b.worst_stall_ms
        if b.survived and stall is not None and stall > slo.bystander_stall_ms:
            out.append(reason("BYSTANDER_STALLED",
                              f"bystander {b.instance} stalled {b.worst_stall_ms:.0f} ms",
                              worst_stall_ms=b.worst_stall_ms, slo_ms=slo.bystander_stall_ms))
    return out


def _collateral(result: Result, slo: Slo) -> list[Reason]:
    """The killer (or, for the baseline, the kernel) killed what it should not have.

    WRONG_VICTIM when the expected victims survived it; OVERKILL when it killed
    them *and* more.
    """
    actor = "kernel" if _expected_killer(result) == "kernel" else "killer"
    extra = [v.instance for v in result.victims
             if not v.expected and v.died and v.killed_by == actor]
    extra += [b.instance for b in result.bystanders if not b.survived and b.killed_by == actor]
    if not extra:
        return []
    expected = [v for v in result.victims if v.expected]
    if expected and all(v.died and v.killed_by == actor for v in expected):
        return [reason("OVERKILL", f"besides the victim, {actor} killed {', '.join(extra)}",
                       extra=len(extra))]
    return [reason("WRONG_VICTIM", f"{actor} killed {', '.join(extra)} instead of the victim",
                   extra=len(extra))]


def _expected_killer(result: Result) -> str:
    return str(result.spec.get("expected_killer") or result.killer.name)


def _speed(result: Result, slo: Slo) -> list[Reason]:
    ttk = result.metrics.time_to_kill_ms
    if ttk is not None and math.isfinite(ttk) and ttk > slo.time_to_kill_ms:
        return [reason("SLOW_KILL", f"time-to-kill {ttk:.0f} ms > SLO {slo.time_to_kill_ms:.0f} ms",
                       time_to_kill_ms=ttk, slo_ms=slo.time_to_kill_ms)]
    return []


def _killer(result: Result, slo: Slo) -> list[Reason]:
    out: list[Reason] = []
    m = result.metrics
    if result.killer.name != "kernel" and result.killer.exited:
        out.append(reason("KILLER_DIED", f"{result.killer.name} exited during the scenario "
                          f"(status {result.killer.exit_status})",
                          exit_status=result.killer.exit_status))
    stuck = max(m.killer_reclaim_total_ms, m.killer_reclaim_delay_ms)
    if stuck > slo.reclaim_stall_ms:
        out.append(reason("KILLER_STUCK_IN_RECLAIM",
                          f"{m.killer_reclaim_episodes} direct-reclaim episodes, "
                          f"{m.killer_reclaim_total_ms:.0f} ms in all (longest "
                          f"{m.killer_reclaim_longest_ms:.0f} ms, "
                          f"{m.killer_reclaim_in_window_ms:.0f} ms while it should have been "
                          f"acting); delay accounting: {m.killer_reclaim_delay_ms:.0f} ms",
                          episodes=m.killer_reclaim_episodes, total_ms=m.killer_reclaim_total_ms,
                          longest_ms=m.killer_reclaim_longest_ms,
                          in_window_ms=m.killer_reclaim_in_window_ms,
                          delayacct_ms=m.killer_reclaim_delay_ms, slo_ms=slo.reclaim_stall_ms))
    # Starved: while it should have been acting (danger -> its kill), the killer waited
    # for a CPU (run delay) or sat throttled by its quota for longer than the SLO and
    # for at least STARVED_FRACTION of that window. Whole-run totals are evidence only.
    starved = max(m.killer_run_delay_in_window_ms, m.killer_throttled_in_window_ms)
    window = m.killer_window_ms or 0.0
    if starved > slo.run_delay_ms and starved >= STARVED_FRACTION * window:
        out.append(reason("KILLER_STARVED",
                          f"in the {window:.0f} ms it should have been acting: run delay "
                          f"{m.killer_run_delay_in_window_ms:.0f} ms, throttled "
                          f"{m.killer_throttled_in_window_ms:.0f} ms",
                          run_delay_ms=m.killer_run_delay_in_window_ms,
                          throttled_ms=m.killer_throttled_in_window_ms, window_ms=window,
                          run_delay_total_ms=m.killer_run_delay_ms,
                          throttled_total_ms=m.killer_throttled_ms, slo_ms=slo.run_delay_ms))
    return out


def _harness(result: Result, slo: Slo) -> list[Reason]:
    """The harness's own view was impaired where it mattered (around danger and the kill)."""
    m = result.metrics
    expected = m.samples_expected_in_window
    if expected and m.samples_missed_in_window / expected > HARNESS_MISSED_FRACTION:
        return [reason("HARNESS_IMPAIRED",
                       f"missed {m.samples_missed_in_window} of {expected} samples around danger "
                       f"and the kill ({m.samples_missed} in the whole run)",
                       missed=m.samples_missed_in_window, expected=expected,
                       missed_total=m.samples_missed)]
    return []


CHECKS: tuple[Check, ...] = (_testbed, _danger, _victims, _bystanders, _collateral, _speed,
                             _killer, _harness)


def slo_of(result: Result, overrides: dict[str, float] | None = None) -> Slo:
    raw = result.spec.get("slo") or {}
    slo = Slo(**{k: float(v) for k, v in raw.items() if k in Slo.__dataclass_fields__})
    return replace(slo, **overrides) if overrides else slo


def judge(result: Result, overrides: dict[str, float] | None = None) -> Verdict:
    """Compute the verdict of a result; does not modify the result."""
    slo = slo_of(result, overrides)
    if result.error:
        details = _testbed(result, slo)
    else:
        details = [r for check in CHECKS[1:] for r in check(result, slo)]
    codes: list[str] = []
    for d in details:
        if d.code not in codes:
            codes.append(d.code)
    return Verdict(passed=not details, reasons=codes, details=details)
