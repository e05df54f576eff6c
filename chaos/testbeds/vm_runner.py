"""Run one Scenario in a fresh VM: spec in through the shared directory, result out."""

from __future__ import annotations

import os
import platform
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from chaos.kernels import Kernel
from chaos.result import Result
from chaos.runtimes.netflood import HostFlood
from chaos.scenario import Scenario, SpecError
from chaos.state import RunRecord
from chaos.testbeds import initramfs, unfinished
from chaos.testbeds.steal import fill_steal
from chaos.testbeds.vm import HEARTBEAT, VmConfig, VmRun, boot, resolve_accel

GUEST_WORKDIR = "/tmp/chaos-agent"
# Beyond the scenario's own deadline: killer start, teardown, writing the result.
AGENT_MARGIN_S = 90.0


FAULT_MARKS = ("Oops:", "BUG:", "Kernel panic", "general protection fault")
_EFLAGS = re.compile(r"EFLAGS: ([0-9a-f]+)")
EFLAGS_DEFINED = (1 << 22) - 1  # x86 defines bits 0-21; a CPU never reports the others set


def impossible_registers(console: str) -> bool:
    """An Oops whose register dump shows an EFLAGS no x86 CPU can have (bits above 21
    set): the emulator corrupted the vCPU's state. Seen once under multi-threaded TCG
    in 72 runs: a double fault in __kmalloc_node_noprof with EFLAGS 9c039ba2."""
    return any(int(v, 16) & ~EFLAGS_DEFINED for v in _EFLAGS.findall(console))


STALLS = ("self-detected stall", "detected stalls", "soft lockup")
# qemu itself dying of one of these is the emulator's fault: the suite only ever stops it
# with SIGTERM or SIGKILL (a CI run's 6.1 guest: SIGSEGV 3.5 s into its boot).
EMULATOR_CRASHES = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL,
                    signal.SIGFPE)


def stuck_on_int3(console: str) -> bool:
    """A CPU stall report whose backtrace is in the int3 trap: the same half-patched
    text as an int3 Oops, where the vCPU kept trapping instead of oopsing. Seen once
    under TCG in 144 runs (6.1, cpu_starve): RCU stall, NMI backtrace
    asm_exc_int3 -> __schedule+0x1bd on a NOP being patched, guest hung to its deadline."""
    return "asm_exc_int3" in console and any(s in console for s in STALLS)


def trapped_in_int3(post_mortem: str) -> bool:
    """A hung guest's NMI backtrace (postmortem) is in the int3 trap: the stall of
    stuck_on_int3 with nothing on the console. Seen in a 6.1 `pagecache` run under TCG
    (2026-12-08): both vCPUs in exc_int3 (a timer softirq in try_to_wake_up) while the
    agent's rmdir of a trace instance unregistered a tracepoint (text_poke_bp), at the
    run's end, before the result was written."""
    answer = post_mortem.partition("answered the NMI")[2]
    return "exc_int3" in answer


# Guests a run may take when the emulator, not the scenario, kills them (guest_fault):
# one CI run of ~60 guests had 5 such faults, two of them in a row in one cell.
GUEST_ATTEMPTS = 3


def guest_fault(console: str, share: Path, accel: str) -> bool:
    """The guest kernel died of something that is not the scenario's doing and left no
    result, so the run gets a fresh guest (GUEST_ATTEMPTS in all): a fault before the
    agent began to wait on its stressors, or, under emulation at any point, an int3 Oops
    or stall, or an Oops with register values no CPU can hold.
    Multi-threaded TCG has been seen to let a vCPU run half-patched kernel text while a
    static key or tracepoint was switched (text_poke_bp's int3; once mid-scenario in
    __schedule, 1 run in ~150; in one CI run 5 of ~60 guests, two in a row in one cell)."""
    if (share / "result.json").exists():
        return False
    if accel == "tcg" and ("Oops: int3" in console or impossible_registers(console)
                           or stuck_on_int3(console)):
        return True
    try:
        started = "chaos-agent: progress" in (share / "stdout").read_text(errors="replace")
    except OSError:
        started = False
    return not started and any(m in console for m in FAULT_MARKS)


def fresh_guest_reason(vm: VmRun, share: Path) -> str:
    """Why this guest's end is the testbed's, not the scenario's, so the run gets a fresh
    one (one line for the result), or "". A guest killed at its boot timeout never
    started the agent: one CI run's 6.1 guest stopped printing 0.8 s into its boot and
    was killed at 90 s (no fault on its console)."""
    if vm.hung and vm.boot_ms is None:
        return f"never came up: {vm.failure}"[:300]
    no_result = not (share / "result.json").exists()
    if vm.qemu_signal in EMULATOR_CRASHES and not vm.hung and no_result:
        return f"qemu crashed ({signal.Signals(vm.qemu_signal).name})"
    if vm.hung and vm.accel == "tcg" and no_result and trapped_in_int3(vm.post_mortem):
        return "hung in the int3 trap (its answer to the post-mortem NMI): half-patched text"
    if guest_fault(vm.console, share, vm.accel):
        lines = vm.console.strip().splitlines()
        oops = [line for line in lines
                if "Oops:" in line or "BUG:" in line or any(m in line for m in STALLS)]
        return (oops or lines or ["?"])[-1][:300]
    return ""


def never_started(vm: VmRun) -> str:
    """Why a guest ended before its command could start (it never came up), or "". Such a
    guest ran nothing, so a fresh one may run the command: what `chaos testbed boot` does
    for a user's command, which, unlike the agent, may itself panic its guest once up and
    must not run twice. Under emulation a guest has died at boot of the emulator's doing
    (in CI: a panic at boot, console ending in "Kernel Offset")."""
    if vm.exit_status is not None or vm.boot_ms is not None:
        return ""
    return (vm.failure or "guest stopped before it came up")[:300]


def read_guest_result(scenario: Scenario, path: Path) -> Result:
    """The agent's result; one this host cannot read (a guest that ran other code: the
    source tree changed during a batch) is this run's error, its text kept in its logs,
    not the end of the batch."""
    try:
        return Result.read(path)
    except SpecError as exc:
        result = unfinished(scenario, f"TESTBED_ERROR: the guest's result is unreadable "
                                      f"here ({exc}); its text is in logs.guest_result")
        result.logs["guest_result"] = path.read_text(errors="replace")
        return result


def host_flood(scenario: Scenario, socket_dir: Path, share: Path) -> HostFlood | None:
    """The host side of every stressor that needs the flood NIC (one flood, all ports)."""
    from chaos.runtimes.base import make_plan

    testbed = replace(scenario.testbed, kind="vm")
    needs = [make_plan(st, testbed).needs for st in scenario.stressors]
    ports = [port for n in needs for port in n.flood_ports]
    if not ports:
        return None
    prefix = str(socket_dir / "flood")
    if len(prefix) > 90:  # a unix socket path has 108 bytes, and ".qemu" is added
        prefix = f"/tmp/chaos-flood-{os.getpid()}-{time.monotonic_ns()}"
    return HostFlood(prefix, share, ports, rate_mib_s=sum(n.flood_mib_s for n in needs),
                     deadline_s=scenario.deadline_s + scenario.settle_s + AGENT_MARGIN_S)


def run(scenario: Scenario, kernel: Kernel, workdir: Path, record: RunRecord | None = None,
        on_progress: Callable[[str], None] | None = None, silence_s: float = 0.0) -> Result:
    """Run the scenario in a fresh guest. ``silence_s``: a guest whose agent has not
    beaten its heartbeat for that long is TESTBED_HUNG at once (0: only at the deadline)."""
    share = workdir / "share"
    share.mkdir(parents=True, exist_ok=True)
    flood = host_flood(scenario, record.root if record else workdir, share)
    if flood is None:
        return _run(scenario, kernel, share, record, on_progress, "", silence_s)
    flood.start()
    try:
        result = _run(scenario, kernel, share, record, on_progress, flood.prefix, silence_s)
    finally:
        flood.stop()
    result.system["host_flood"] = (f"{flood.sent_bytes / (1 << 20):.1f} MiB to ports "
                                   f"{flood.ports[0]}..{flood.ports[-1]} in {flood.flood_s} s, "
                                   f"{flood.dropped} frames dropped")
    return result


def _run(scenario: Scenario, kernel: Kernel, share: Path, record: RunRecord | None,
         on_progress: Callable[[str], None] | None, flood_socket: str,
         silence_s: float) -> Result:
    cfg = VmConfig(kernel=kernel, memory_mib=scenario.testbed.memory_mib,
                   cpus=scenario.testbed.cpus, swap_mib=scenario.testbed.swap_mib,
                   flood_socket=flood_socket)
    accel = resolve_accel(cfg)
    scenario = replace(scenario, testbed=replace(scenario.testbed, kind="vm", accel=accel))
    (share / "result.json").unlink(missing_ok=True)
    (share / "spec.json").write_text(scenario.to_json())
    argv = [sys.executable, "-m", "chaos.agent", "--spec", f"{initramfs.SHARE_MOUNT}/spec.json",
            "--out", f"{initramfs.SHARE_MOUNT}/result.json", "--workdir", GUEST_WORKDIR,
            "--heartbeat", f"{initramfs.SHARE_MOUNT}/{HEARTBEAT}"]
    faults: list[str] = []
    for attempt in range(1, GUEST_ATTEMPTS + 1):
        vm = boot(cfg, argv, share,
                  deadline_s=scenario.deadline_s + scenario.settle_s + AGENT_MARGIN_S,
                  record=record, accel=accel, name=f"chaos-{scenario.run_id}",
                  on_progress=on_progress, watch_for="chaos-agent: start",
                  silence_s=silence_s)
        why = fresh_guest_reason(vm, share)
        if attempt < GUEST_ATTEMPTS and why:  # not a finding
            faults.append(why)
            if on_progress:
                on_progress("guest faulted or never came up (not the scenario's doing); "
                            "booting again")
            continue
        break
    retried = "; ".join(faults)
    result_file = share / "result.json"
    if result_file.exists() and not vm.hung:
        result = read_guest_result(scenario, result_file)
    elif vm.hung:
        result = unfinished(scenario, f"TESTBED_HUNG: {vm.failure}")
    elif vm.panicked:
        result = unfinished(scenario, "TESTBED_PANIC: the guest kernel panicked")
    else:
        result = unfinished(scenario, (
            f"TESTBED_ERROR: {vm.failure or 'no result written'}; agent said: "
            + (vm.stderr.strip().splitlines() or ['nothing'])[-1][:300]))
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
    if vm.post_mortem:
        result.logs["post_mortem"] = vm.post_mortem
    if vm.stdout or vm.stderr:
        result.logs["agent_output"] = (vm.stdout + vm.stderr)[-100_000:]
    result.system["vm_wall_s"] = str(vm.wall_s)
    fill_steal(result, vm.vcpu_wait)
    if retried:
        result.system["testbed_retried"] = retried
    return result
