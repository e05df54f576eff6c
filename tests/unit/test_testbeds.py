"""What the testbeds report when a run produced no result of its own."""

from __future__ import annotations

from pathlib import Path

from chaos import catalogue
from chaos.scenario import KillerSpec
from chaos.testbeds import unfinished
from chaos.testbeds.vm_runner import emulator_fault

INT3 = "[   23.726550] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI\nKernel panic - not syncing"


def test_a_run_without_a_result_is_filed_under_its_own_killer() -> None:
    s = catalogue.get("spike").build(KillerSpec("nohang"), "cgroup")
    r = unfinished(s, "TESTBED_PANIC: the guest kernel panicked")
    assert (r.scenario, r.killer.name, r.error) == (
        "spike", "nohang", "TESTBED_PANIC: the guest kernel panicked")


def test_an_int3_oops_under_emulation_without_a_result_is_the_emulator(tmp_path: Path) -> None:
    assert emulator_fault(INT3, tmp_path, "tcg")
    assert not emulator_fault(INT3, tmp_path, "kvm")  # real hardware: a finding
    assert not emulator_fault("Oops: general protection fault", tmp_path, "tcg")
    (tmp_path / "result.json").write_text("{}")  # the agent finished: keep its result
    assert not emulator_fault(INT3, tmp_path, "tcg")
