"""Verdicts: each reason code comes from the facts that define it."""

from __future__ import annotations

import dataclasses

from chaos import catalogue
from chaos.result import BystanderOutcome, Result, VictimOutcome
from chaos.scenario import KillerSpec
from chaos.verdict import REASONS, judge


def result(killer: str = "earlyoom", killed_by: str = "killer", died: bool = True,
           ttk: float | None = 500.0) -> Result:
    s = catalogue.spike(KillerSpec(name=killer))
    r = Result(scenario="spike", run_id="r", spec=dataclasses.asdict(s))
    r.killer.name = killer
    r.t0_ns = 1_000
    r.victims = [VictimOutcome(instance="hog", pid=10, cgroup="workload/hog", died=died,
                               exit_t_ns=2_000 if died else None,
                               exit_signal=9 if died else None,
                               killed_by=killed_by if died else "")]
    r.bystanders = [BystanderOutcome(instance="bystander", pid=11, survived=True,
                                     worst_stall_ms=5.0)]
    r.metrics.time_to_kill_ms = ttk if died else None
    r.metrics.samples = 100
    return r


def test_healthy_userspace_kill_passes() -> None:
    v = judge(result())
    assert v.passed and v.reasons == []


def test_kernel_baseline_passes_when_the_kernel_kills() -> None:
    assert judge(result(killer="kernel", killed_by="kernel")).passed


def test_kernel_first() -> None:
    v = judge(result(killed_by="kernel"))
    assert v.reasons == ["KERNEL_OOM_FIRST"]
    assert not v.passed


def test_no_kill_and_no_danger() -> None:
    r = result(died=False)
    assert judge(r).reasons == ["NO_KILL"]
    r.t0_ns = None
    assert judge(r).reasons == ["NO_DANGER", "NO_KILL"]


def test_slow_kill_uses_slo_and_overrides() -> None:
    r = result(ttk=20_000.0)
    v = judge(r)
    assert v.reasons == ["SLOW_KILL"]
    assert v.details[0].evidence["time_to_kill_ms"] == 20_000.0
    assert judge(r, {"time_to_kill_ms": 30_000.0}).passed


def test_bystander_killed_and_overkill() -> None:
    r = result()
    r.bystanders[0].survived = False
    r.bystanders[0].killed_by = "killer"
    assert "BYSTANDER_KILLED" in judge(r).reasons


def test_killer_died_stuck_starved() -> None:
    r = result()
    r.killer.exited = True
    r.metrics.killer_reclaim_total_ms = 900.0
    r.metrics.killer_reclaim_episodes = 12
    r.metrics.killer_window_ms = 8000.0
    r.metrics.killer_throttled_in_window_ms = 5000.0
    assert judge(r).reasons == ["KILLER_DIED", "KILLER_STUCK_IN_RECLAIM", "KILLER_STARVED"]
    r.metrics.killer_window_ms = 20000.0  # a quarter of the window: contention, not starvation
    assert "KILLER_STARVED" not in judge(r).reasons


def test_testbed_errors_replace_everything_else() -> None:
    r = result()
    r.error = "TESTBED_HUNG: guest still running at its deadline"
    assert judge(r).reasons == ["TESTBED_HUNG"]
    r.error = "TESTBED_PANIC: the guest kernel panicked"
    assert judge(r).reasons == ["TESTBED_PANIC"]
    r.error = "agent crashed"
    assert judge(r).reasons == ["TESTBED_ERROR"]


def test_every_code_is_upper_case_and_documented() -> None:
    for code, text in REASONS.items():
        assert code == code.upper() and text.endswith(".")


def test_wrong_victim_versus_overkill() -> None:
    r = result(died=False)
    r.bystanders[0].survived = False
    r.bystanders[0].killed_by = "killer"
    assert set(judge(r).reasons) == {"NO_KILL", "BYSTANDER_KILLED", "WRONG_VICTIM"}
    r = result()
    r.bystanders[0].survived = False
    r.bystanders[0].killed_by = "killer"
    assert set(judge(r).reasons) == {"BYSTANDER_KILLED", "OVERKILL"}


def test_stuck_in_reclaim_from_delay_accounting_alone() -> None:
    r = result()
    r.metrics.killer_reclaim_delay_ms = 500.0
    v = judge(r)
    assert v.reasons == ["KILLER_STUCK_IN_RECLAIM"]
    assert v.details[0].evidence["delayacct_ms"] == 500.0


def test_harness_impaired_only_around_the_kill() -> None:
    r = result()
    r.metrics.samples_missed = 900  # a bad moment elsewhere in the run: evidence only
    r.metrics.samples_expected_in_window = 200
    r.metrics.samples_missed_in_window = 20
    assert judge(r).passed
    r.metrics.samples_missed_in_window = 80
    v = judge(r)
    assert v.reasons == ["HARNESS_IMPAIRED"] and v.details[0].evidence["missed"] == 80
