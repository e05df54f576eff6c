"""What the testbeds report when a run produced no result of its own."""

from __future__ import annotations

from pathlib import Path

from chaos import catalogue
from chaos.scenario import KillerSpec
from chaos.testbeds import unfinished
from chaos.testbeds.vm_runner import guest_fault

INT3 = "[   23.726550] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\nKernel panic - not syncing"


def test_a_run_without_a_result_is_filed_under_its_own_killer() -> None:
    s = catalogue.get("spike").build(KillerSpec("nohang"), "cgroup")
    r = unfinished(s, "TESTBED_PANIC: the guest kernel panicked")
    assert (r.scenario, r.killer.name, r.error) == (
        "spike", "nohang", "TESTBED_PANIC: the guest kernel panicked")


def test_an_int3_oops_under_emulation_without_a_result_is_the_emulator(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_text("chaos-agent: progress pressing\n")  # mid-scenario
    assert guest_fault(INT3, tmp_path, "tcg")
    assert not guest_fault(INT3, tmp_path, "kvm")  # real hardware: a finding
    assert not guest_fault("Oops: general protection fault", tmp_path, "tcg")
    (tmp_path / "result.json").write_text("{}")  # the agent finished: keep its result
    assert not guest_fault(INT3, tmp_path, "tcg")


def test_any_kernel_fault_before_the_scenario_began_is_not_a_finding(tmp_path: Path) -> None:
    assert guest_fault("BUG: unable to handle page fault", tmp_path, "kvm")
    (tmp_path / "stdout").write_text("chaos-agent: progress pressing\n")
    assert not guest_fault("BUG: unable to handle page fault", tmp_path, "kvm")
