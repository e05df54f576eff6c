"""What the testbeds report when a run produced no result of its own, and how a
guest that stopped answering is told from a busy one."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from chaos import catalogue
from chaos.agent import start_heartbeat
from chaos.result import Result
from chaos.scenario import KillerSpec
from chaos.testbeds import unfinished
from chaos.testbeds.vm import VmRun, _log_slot_use, _silent_for
from chaos.testbeds.vm_runner import fresh_guest_reason, guest_fault, never_started

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


STALL_ON_INT3 = """[   37.399628] rcu: INFO: rcu_preempt self-detected stall on CPU
[   37.408023] NMI backtrace for cpu 0
[   37.415680]  asm_exc_int3+0x2a/0x40
[   37.415849] RIP: 0010:__schedule+0x1bd/0xa00"""


def test_a_stall_in_the_int3_trap_under_emulation_is_the_emulator(tmp_path: Path) -> None:
    """The guest hung to its deadline (no Oops): its console says a CPU was stuck
    trapping on text being patched."""
    (tmp_path / "stdout").write_text("chaos-agent: progress pressing\n")
    assert guest_fault(STALL_ON_INT3, tmp_path, "tcg")
    assert not guest_fault(STALL_ON_INT3, tmp_path, "kvm")  # real hardware: a finding
    plain = STALL_ON_INT3.replace("asm_exc_int3+0x2a/0x40", "shrink_node+0x1c/0x90")
    assert not guest_fault(plain, tmp_path, "tcg")  # a stall elsewhere: a finding
    hung = VmRun(exit_status=None, stdout="", stderr="", console=STALL_ON_INT3, accel="tcg",
                 boot_ms=4000.0, wall_s=182.0, hung=True, failure="guest still running")
    assert fresh_guest_reason(hung, tmp_path).endswith("self-detected stall on CPU")


def test_a_guest_that_never_came_up_or_faulted_gets_a_fresh_one(tmp_path: Path) -> None:
    def run(console: str, hung: bool, boot_ms: float | None, failure: str = "") -> VmRun:
        return VmRun(exit_status=None, stdout="", stderr="", console=console, accel="tcg",
                     boot_ms=boot_ms, wall_s=90.0, hung=hung, failure=failure)

    never = run("[    0.827391] acpi PNP0A03:00: fail to add MMCONFIG", True, None,
                "guest did not come up within 90 s (kernel 6.1.0-56-amd64, tcg)")
    assert fresh_guest_reason(never, tmp_path) == (
        "never came up: guest did not come up within 90 s (kernel 6.1.0-56-amd64, tcg)")
    assert "Oops: int3" in fresh_guest_reason(run(INT3, False, 4000.0), tmp_path)
    # hung after it came up (the scenario's deadline): a finding, not retried
    assert fresh_guest_reason(run("", True, 4000.0, "guest still running"), tmp_path) == ""
    assert fresh_guest_reason(run("", False, 4000.0), tmp_path) == ""
    # qemu itself crashed (a CI run: SIGSEGV 3.5 s into a boot); killed by us: not retried
    crashed = replace(run("", False, None, "qemu exited with status -11: "), qemu_signal=11)
    assert fresh_guest_reason(crashed, tmp_path) == "qemu crashed (SIGSEGV)"
    assert fresh_guest_reason(replace(crashed, qemu_signal=9), tmp_path) == ""
    (tmp_path / "result.json").write_text("{}")  # it had finished: keep the result
    assert fresh_guest_reason(crashed, tmp_path) == ""


DOUBLE_FAULT = """[   15.677637] traps: PANIC: double fault, error_code: 0x0
[   15.679116] Oops: double fault: 0000 [#1] PREEMPT SMP NOPTI
[   15.680571] RSP: 0018:ff5488a2804bb8d0 EFLAGS: {eflags}
[   15.682696] RSP: 002b:00007ffdaef53ae8 EFLAGS: 00000246 ORIG_RAX: 0000000000000038
[   15.683530] Kernel panic - not syncing: Fatal exception in interrupt"""


def test_an_oops_with_an_eflags_no_cpu_can_hold_is_the_emulator(tmp_path: Path) -> None:
    (tmp_path / "stdout").write_text("chaos-agent: progress pressing\n")  # mid-scenario
    corrupt = DOUBLE_FAULT.format(eflags="9c039ba2")  # from a fork_storm run under TCG
    assert guest_fault(corrupt, tmp_path, "tcg")
    assert not guest_fault(corrupt, tmp_path, "kvm")  # real hardware: a finding
    assert not guest_fault(DOUBLE_FAULT.format(eflags="00010246"), tmp_path, "tcg")
    assert not guest_fault(DOUBLE_FAULT.format(eflags="00200246"), tmp_path, "tcg")  # ID


def test_any_kernel_fault_before_the_scenario_began_is_not_a_finding(tmp_path: Path) -> None:
    assert guest_fault("BUG: unable to handle page fault", tmp_path, "kvm")
    (tmp_path / "stdout").write_text("chaos-agent: progress pressing\n")
    assert not guest_fault("BUG: unable to handle page fault", tmp_path, "kvm")



def _run_with_stubbed_boots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: int,
                            bad_run: VmRun,
                            edit: Callable[[str], str] = lambda text: text,
                            ) -> tuple[int, Result]:
    """vm_runner.run with boot stubbed (pure logic): the first ``bad`` guests end as
    ``bad_run``, the next writes a result (its text through ``edit``). Returns (guests
    booted, the run's result)."""
    from chaos.kernels import Kernel
    from chaos.testbeds import vm_runner

    scenario = catalogue.get("spike").build(KillerSpec("kernel"), "cgroup")
    share = tmp_path / "share"
    booted: list[int] = []

    def boot(*args: object, **kwargs: object) -> VmRun:
        booted.append(1)
        if len(booted) <= bad:
            return bad_run
        path = share / "result.json"
        Result(scenario="spike", run_id=scenario.run_id).write(path)
        path.write_text(edit(path.read_text()))
        return VmRun(0, "", "", "", "tcg", 4000.0, 20.0)

    monkeypatch.setattr(vm_runner, "boot", boot)
    monkeypatch.setattr(vm_runner, "resolve_accel", lambda cfg: "tcg")
    kernel = Kernel("x", "1.0", "p", tmp_path / "vmlinuz", None)
    result = vm_runner.run(scenario, kernel, tmp_path)
    return len(booted), result


@pytest.mark.parametrize("faults, boots, error", [
    (0, 1, ""), (2, 3, ""), (3, 3, "TESTBED_PANIC: the guest kernel panicked")],
    ids=["clean", "two-emulator-faults-then-a-result", "three-in-a-row"])
def test_a_run_takes_fresh_guests_after_emulator_faults(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faults: int, boots: int,
        error: str) -> None:
    """The retry policy alone: up to GUEST_ATTEMPTS guests, each emulator fault recorded;
    a guest that writes a result ends it."""
    from chaos.testbeds import vm_runner

    fault = VmRun(None, "", "", INT3, "tcg", 4000.0, 9.0, panicked=True,
                  failure="guest kernel panicked")
    n, r = _run_with_stubbed_boots(tmp_path, monkeypatch, faults, fault)
    assert n == boots == min(faults + 1, vm_runner.GUEST_ATTEMPTS)
    assert r.error == error
    retried = r.system.get("testbed_retried", "")
    assert retried.count("Oops: int3") == min(faults, vm_runner.GUEST_ATTEMPTS - 1)


def test_a_result_this_host_cannot_read_is_the_runs_error_not_the_batchs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest that ran newer code (a field this host does not know) ends its own run
    with TESTBED_ERROR and its text kept: vm_runner.run returns, the caller goes on."""
    written: list[str] = []

    def newer(text: str) -> str:
        assert '"victims": []' in text
        written.append(text.replace('"victims": []', '"victims": [{"instance": "hog", '
                                    '"pid": 7, "cgroup": "c", "from_a_newer_guest": true}]'))
        return written[0]

    n, r = _run_with_stubbed_boots(tmp_path, monkeypatch, 0, VmRun(0, "", "", "", "tcg",
                                                                    4000.0, 20.0), newer)
    assert n == 1
    assert r.error.startswith("TESTBED_ERROR: the guest's result is unreadable here")
    assert "from_a_newer_guest" in r.error and r.logs["guest_result"] == written[0]
    assert r.killer.name == "kernel" and r.testbed.boot_ms == 4000.0


@pytest.mark.parametrize("never, boots", [(1, 2), (3, 3)], ids=["once", "every-time"])
def test_a_run_boots_again_when_a_guest_never_came_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, never: int, boots: int) -> None:
    """A guest killed at its boot timeout never ran the scenario: the run gets a fresh
    one; only when none comes up is it TESTBED_HUNG."""
    hung = VmRun(None, "", "", "[    0.8] acpi PNP0A03:00: fail to add MMCONFIG", "tcg",
                 None, 90.0, hung=True, failure="guest did not come up within 90 s")
    n, r = _run_with_stubbed_boots(tmp_path, monkeypatch, never, hung)
    assert n == boots
    retried = r.system.get("testbed_retried", "")
    assert retried.count("never came up: guest did not come up") == boots - 1
    if never < boots:
        assert r.error == "" and r.testbed.boot_ms == 4000.0
    else:
        assert r.error == "TESTBED_HUNG: guest did not come up within 90 s"


# From the post-mortem of a 6.1 guest hung under TCG (2026-12-08, `pagecache`), cut down.
INT3_POST_MORTEM = """post-mortem: registers per vCPU (qemu's monitor)
CPU#0 RIP=ffffffffb8e44ffe CPL=0 HLT=0 RFL=00000002
CPU#1 RIP=ffffffffb8e44ffe CPL=0 HLT=0 RFL=00000002
the guest kernel answered the NMI:
[  186.369068] Uhhuh. NMI received for unknown reason 21 on CPU 0.
[  186.372363] CPU: 0 PID: 121 Comm: chaos-agent Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3
[  186.377150] RIP: 0010:exc_int3+0x4e/0x120
[  186.379151]  asm_exc_int3+0x35/0x40
[  186.379168] RIP: 0010:try_to_wake_up+0x9e/0x540
[  186.379895]  text_poke_bp_batch+0x29f/0x300
[  186.380224]  instance_rmdir+0x81/0x90
"""
LOOP_POST_MORTEM = """post-mortem: registers per vCPU (qemu's monitor)
CPU#0 RIP=0000559a1c2f1e4a CPL=3 HLT=0 RFL=00000246
the guest kernel answered the NMI:
[   60.100000] CPU: 0 PID: 88 Comm: sh Not tainted 6.1.0-57-amd64 #1  Debian 6.1.192-3
[   60.100100] RIP: 0033:0x559a1c2f1e4a
"""


@pytest.mark.parametrize("post_mortem, boots, error", [
    (INT3_POST_MORTEM, 2, ""),
    (LOOP_POST_MORTEM, 1, "TESTBED_HUNG: guest still running at its deadline (182 s)")],
    ids=["trapped-in-int3", "a-task-looping"])
def test_a_hung_guest_gets_a_fresh_one_only_when_its_nmi_answer_is_the_int3_trap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, post_mortem: str, boots: int,
        error: str) -> None:
    hung = VmRun(None, "", "", "chaos-init: root ready", "tcg", 4000.0, 182.0, hung=True,
                 failure="guest still running at its deadline (182 s)",
                 post_mortem=post_mortem)
    n, r = _run_with_stubbed_boots(tmp_path, monkeypatch, 1, hung)
    assert n == boots
    assert r.error == error
    assert ("int3 trap" in r.system.get("testbed_retried", "")) == (boots == 2)


def _beats(path: Path) -> int:
    text = path.read_text() if path.exists() else ""
    return int(text.split()[0]) if text.strip() else 0  # caught between truncate and write


def test_the_agents_heartbeat_is_rewritten_while_it_runs(tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    start_heartbeat(beat, every_s=0.05)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _beats(beat) < 3:
        time.sleep(0.02)
    assert _beats(beat) >= 3


def test_silence_is_counted_from_the_last_beat_and_only_after_the_first(tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    assert _silent_for(beat) == 0.0  # not started yet: the deadline alone applies
    beat.write_text("1 0\n")
    assert _silent_for(beat) < 5
    old = time.time() - 30
    os.utime(beat, (old, old))
    assert 29 < _silent_for(beat) < 40


def test_the_slot_log_says_who_held_a_guest_and_a_bad_path_costs_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "slots.jsonl"
    monkeypatch.setenv("CHAOS_VM_SLOT_LOG", str(log))
    monkeypatch.setenv("PYTEST_CURRENT_TEST", "tests/x.py::test_y (call)")
    _log_slot_use(0, 1.234, 20.5)
    line = json.loads(log.read_text())
    assert (line["who"], line["wait_s"], line["held_s"]) == (
        "tests/x.py::test_y (call)", 1.23, 20.5)
    monkeypatch.setenv("CHAOS_VM_SLOT_LOG", str(tmp_path / "no" / "such" / "dir"))
    _log_slot_use(0, 0.0, 1.0)  # must not raise: the guest's result matters more
    assert "CHAOS_VM_SLOT_LOG" in capsys.readouterr().err


def test_precompile_writes_the_bytecode_guests_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guests read the host's tree read-only: a module without fresh bytecode there is
    compiled by every guest process. The testbed writes it before booting."""
    import importlib.util

    import chaos.verdict
    from chaos.testbeds import vm

    cached = Path(importlib.util.cache_from_source(chaos.verdict.__file__))
    cached.unlink(missing_ok=True)
    monkeypatch.setattr(vm, "_precompiled", False)
    vm.precompile()
    assert cached.exists()
    source = Path(chaos.verdict.__file__).stat()
    header = cached.read_bytes()[8:16]  # flags, then the source's mtime and size
    assert int.from_bytes(header[:4], "little") == int(source.st_mtime)
    assert int.from_bytes(header[4:], "little") == source.st_size


def test_only_a_guest_that_never_came_up_is_booted_again_for_a_users_command() -> None:
    """`chaos testbed boot`: a user's command may panic its own guest; it must not run twice."""
    def run(boot_ms: float | None, status: int | None, failure: str) -> VmRun:
        return VmRun(exit_status=status, stdout="", stderr="", console="Kernel Offset",
                     accel="tcg", boot_ms=boot_ms, wall_s=9.0, hung=False, failure=failure,
                     panicked=True)

    assert never_started(run(None, None, "guest kernel panicked")) == "guest kernel panicked"
    assert never_started(run(4000.0, None, "guest kernel panicked")) == ""  # it ran: its panic
    assert never_started(run(4000.0, 3, "")) == ""
    assert never_started(run(None, None, "")) == "guest stopped before it came up"
