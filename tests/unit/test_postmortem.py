"""A hung guest's post-mortem, as read from qemu's monitor and the guest's console."""

from __future__ import annotations

import json

from chaos.testbeds.postmortem import PostMortem, qemu_messages, registers

# As `info registers -a` answers through QMP's human-monitor-command (6.12 guest, TCG):
# a CPU in user space, busy, and one halted in the kernel; the rest of each dump cut.
HMP = ("\r\nCPU#0\r\nRAX=0000000000000000 RBX=0000000000000000 RCX=0000556a13d788c0 "
       "RDX=0f2c858575bd5cb2\r\nRIP=0000556a13d5dcf3 RFL=00000202 [-------] CPL=3 II=0 A20=1 "
       "SMM=0 HLT=0\r\nES =0000 0000000000000000 00000000 00000000\r\n\r\nCPU#1\r\n"
       "RAX=0000000000000000\r\nRIP=ffffffff92ee705f RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 "
       "SMM=0 HLT=1\r\nCR0=80050033\r\n")


def test_each_vcpu_gives_one_line_with_where_it_was_and_whether_it_halted() -> None:
    assert registers(HMP) == [
        "CPU#0 RIP=0000556a13d5dcf3 CPL=3 HLT=0 RFL=00000202",
        "CPU#1 RIP=ffffffff92ee705f CPL=0 HLT=1 RFL=00000246",
    ]
    assert registers("") == []


def test_the_monitors_lines_are_not_qemus_messages() -> None:
    out = "\n".join([
        json.dumps({"QMP": {"version": {}, "capabilities": ["oob"]}}),
        "qemu-system-x86_64: terminating on signal 15",
        json.dumps({"return": {}}),
        json.dumps({"timestamp": {"seconds": 1}, "event": "RESET"}),
        json.dumps({"error": {"class": "GenericError"}}),
    ])
    assert qemu_messages(out) == "qemu-system-x86_64: terminating on signal 15"


def test_the_text_says_whether_the_guest_kernel_answered() -> None:
    regs = ["CPU#0 RIP=ffffffff92ee705f CPL=0 HLT=0 RFL=00000246"]
    answered = PostMortem(regs, "[ 10.9] Uhhuh. NMI received for unknown reason 21 on CPU 0.\n",
                          exited=True)
    assert answered.nmi_answered
    assert answered.text().splitlines()[1:3] == [regs[0], "the guest kernel answered the NMI:"]
    silent = PostMortem(regs, "", exited=False)
    assert not silent.nmi_answered
    assert "no answer to the NMI within 3 s: no vCPU ran guest code" in silent.text()
    assert "the guest printed nothing" in PostMortem(regs, "", exited=True).text()
    assert PostMortem(error="Broken pipe").text() == "post-mortem: qemu not asked: Broken pipe\n"
