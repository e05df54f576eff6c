"""What a hung guest was doing, asked of qemu before the guest is killed.

Two guests in ~170 hung right after the agent's start with both vCPUs busy and nothing
on their console (docs/measurements.md): a livelock in the guest kernel, or in the
emulator under it? qemu's monitor (QMP on its stdio, idle until then) gives each
vCPU's registers, and an injected NMI asks the guest kernel itself: booted with
``unknown_nmi_panic panic_print=0x40``, a kernel that still runs code panics on it,
printing a symbolic backtrace of the CPU it took the NMI on, an NMI backtrace of every
other CPU (or "idling"), and its KASLR offset, then reboots, which ends qemu
(-no-reboot). No answer within the wait means no vCPU ran guest code: a stall below
the guest. Nothing of this runs unless a guest hung; TCG has no NMI source of its own,
so the boot options change nothing else.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

QEMU_ARGS = ["-chardev", "stdio,id=qmp,signal=off", "-mon", "chardev=qmp,mode=control"]
KERNEL_ARGS = ["unknown_nmi_panic", "panic_print=0x40"]
NMI_WAIT_S = 3.0
_CPU = re.compile(r"^CPU#(\d+)")
_RIP = re.compile(r"^RIP=(\S+) RFL=(\S+) .*CPL=(\d) .*HLT=(\d)")


@dataclass
class PostMortem:
    registers: list[str] = field(default_factory=list)  # a line per vCPU
    console: str = ""  # what the guest printed after the NMI
    exited: bool = False  # qemu ended within the wait (the guest rebooted)
    error: str = ""  # why qemu could not be asked

    @property
    def nmi_answered(self) -> bool:
        return "NMI" in self.console

    def text(self) -> str:
        if self.error:
            return f"post-mortem: qemu not asked: {self.error}\n"
        if self.nmi_answered:
            answer = "the guest kernel answered the NMI:"
        elif self.exited:
            answer = "qemu ended after the NMI; the guest printed nothing"
        else:
            answer = (f"no answer to the NMI within {NMI_WAIT_S:.0f} s: no vCPU ran guest "
                      "code (a stall below the guest, in the emulator?)")
        return "\n".join(["post-mortem: registers per vCPU (qemu's monitor)",
                          *self.registers, answer, self.console.rstrip()]).rstrip() + "\n"


def registers(hmp: str) -> list[str]:
    """``info registers -a`` -> "CPU#n RIP=... CPL=c HLT=h RFL=..." per vCPU."""
    out: list[str] = []
    cpu = ""
    for line in hmp.replace("\r", "").splitlines():
        if m := _CPU.match(line):
            cpu = f"CPU#{m.group(1)}"
        elif (m := _RIP.match(line)) and cpu:
            out.append(f"{cpu} RIP={m.group(1)} CPL={m.group(3)} HLT={m.group(4)} "
                       f"RFL={m.group(2)}")
            cpu = ""
    return out


def qemu_messages(out: str) -> str:
    """qemu's own output without the monitor's JSON lines (its greeting, replies)."""
    return "\n".join(line for line in out.splitlines()
                     if not line.startswith(('{"QMP"', '{"return"', '{"error"', '{"event"',
                                             '{"timestamp"')))


def ask(proc: subprocess.Popen[bytes], console: Path, offset: int) -> tuple[PostMortem, str]:
    """Registers, then an NMI, then up to NMI_WAIT_S for the guest's answer (its console
    from ``offset`` on); qemu is killed after. Returns the post-mortem and qemu's whole
    output (for its own messages)."""
    pm = PostMortem()
    try:
        assert proc.stdin is not None
        for command in ({"execute": "qmp_capabilities"},
                        {"execute": "human-monitor-command",
                         "arguments": {"command-line": "info registers -a"}},
                        {"execute": "inject-nmi"}):
            proc.stdin.write(json.dumps(command).encode() + b"\n")
        proc.stdin.flush()
    except (OSError, ValueError, AssertionError) as e:
        pm.error = str(e) or type(e).__name__
    deadline = time.monotonic() + (0 if pm.error else NMI_WAIT_S)
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pm.exited = proc.poll() is not None
    if not pm.exited:
        proc.kill()
    out = proc.communicate(timeout=30)[0].decode(errors="replace")
    for line in out.splitlines():
        if line.startswith('{"return"'):
            with_registers = json.loads(line).get("return")
            if isinstance(with_registers, str) and "CPU#" in with_registers:
                pm.registers = registers(with_registers)
    pm.console = _read_from(console, offset)
    return pm, out


def size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(20_000).decode(errors="replace")
    except OSError:
        return ""
