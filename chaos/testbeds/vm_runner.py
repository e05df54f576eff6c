"""Run one Scenario in a fresh VM: spec in through the shared directory, result out."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from chaos.kernels import Kernel
from chaos.result import Result
from chaos.scenario import Scenario
from chaos.state import RunRecord
from chaos.testbeds import initramfs
from chaos.testbeds.vm import VmConfig, boot, resolve_accel

GUEST_WORKDIR = "/tmp/chaos-agent"
# Beyond the scenario's own deadline: killer start, teardown, writing the result.
AGENT_MARGIN_S = 90.0


FAULT_MARKS = ("Oops:", "BUG:", "Kernel panic", "general protection fault")


def testbed_fault_before_start(console: str, share: Path) -> bool:
    """The guest kernel faulted before the agent began to wait on its stressors."""
    try:
        started = "chaos-agent: progress" in (share / "stdout").read_text(errors="replace")
    except OSError:
        started = False
    return (not started and not (share / "result.json").exists()
            and any(m in console for m in FAULT_MARKS))


def run(scenario: Scenario, kernel: Kernel, workdir: Path, record: RunRecord | None = None,
        on_progress: Callable[[str], None] | None = None) -> Result:
    cfg = VmConfig(kernel=kernel, memory_mib=scenario.testbed.memory_mib,
                   cpus=scenario.testbed.cpus, swap_mib=scenario.testbed.swap_mib)
    accel = resolve_accel(cfg)
    scenario = replace(scenario, testbed=replace(scenario.testbed, kind="vm", accel=accel))
    share = workdir / "share"
    share.mkdir(parents=True, exist_ok=True)
    (share / "result.json").unlink(missing_ok=True)
    (share / "spec.json").write_text(scenario.to_json())
    argv = [sys.executable, "-m", "chaos.agent", "--spec", f"{initramfs.SHARE_MOUNT}/spec.json",
            "--out", f"{initramfs.SHARE_MOUNT}/result.json", "--workdir", GUEST_WORKDIR]
    retried = ""
    for attempt in (1, 2):
        vm = boot(cfg, argv, share,
                  deadline_s=scenario.deadline_s + scenario.settle_s + AGENT_MARGIN_S,
                  record=record, accel=accel, name=f"chaos-{scenario.run_id}",
                  on_progress=on_progress, watch_for="chaos-agent: start")
        if attempt == 1 and testbed_fault_before_start(vm.console, share):
            # The guest kernel broke before the scenario began (seen under emulation:
            # an oops while tracepoints patch kernel text). Not a finding: boot again.
            retried = vm.console.strip().splitlines()[-1][:300] if vm.console.strip() else "?"
            if on_progress:
                on_progress("guest kernel faulted before the scenario started; booting again")
            continue
        break
    result_file = share / "result.json"
    if result_file.exists() and not vm.hung:
        result = Result.read(result_file)
    else:
        import dataclasses

        result = Result(scenario=scenario.id, run_id=scenario.run_id,
                        spec=dataclasses.asdict(scenario))
        if vm.hung:
            result.error = f"TESTBED_HUNG: {vm.failure}"
        elif vm.panicked:
            result.error = "TESTBED_PANIC: the guest kernel panicked"
        else:
            result.error = (f"TESTBED_ERROR: {vm.failure or 'no result written'}; agent said: "
                            + (vm.stderr.strip().splitlines() or ['nothing'])[-1][:300])
    result.kernel.package = kernel.package
    result.kernel.release = result.kernel.release or kernel.release
    result.testbed.kind = "vm"
    result.testbed.host = platform.node()  # the runner, not the guest
    result.testbed.accel = accel
    result.testbed.boot_ms = vm.boot_ms
    result.testbed.agent_ready_ms = vm.milestones.get("marker")
    result.testbed.memory_mib = result.testbed.memory_mib or cfg.memory_mib
    result.testbed.cpus = result.testbed.cpus or cfg.cpus
    result.logs["console"] = vm.console
    if vm.stdout or vm.stderr:
        result.logs["agent_output"] = (vm.stdout + vm.stderr)[-100_000:]
    result.system["vm_wall_s"] = str(vm.wall_s)
    if retried:
        result.system["testbed_retried"] = retried
    return result
