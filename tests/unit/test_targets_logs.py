"""Killer logs -> supporting events, from lines the real killers printed in a testbed.

These events are evidence next to the kernel's, never attribution: they carry the
pid and signal the killer *claims*, and the time the line appeared (or the time
written in the line, for oomguard's JSON).
"""

from __future__ import annotations

import json
import sys
import time

from chaos import targets
from chaos.procs import spawn
from chaos.result import Event
from chaos.scenario import KillerSpec


def parse(name: str, text: str) -> list[Event]:
    return targets.load(KillerSpec(name=name)).parse_log(text)


EARLYOOM = """\
earlyoom v1.7
sending SIGTERM when mem <= 10.00% and swap <= 100.00%,
        SIGKILL when mem <=  5.00% and swap <= 100.00%
mem avail:    90 of   965 MiB ( 9.40%), swap free:    0 of    0 MiB ( 0.00%)
low memory! at or below SIGTERM limits: mem 10.00%, swap 100.00%
sending SIGTERM to process 179 uid 0 "python": badness 1122, VmRSS 659 MiB
escalating to SIGKILL after 0.5 seconds
sending SIGKILL to process 179 uid 0 "python": badness 1122, VmRSS 700 MiB
process exited after 0.6 seconds
"""


def test_earlyoom_kill_lines() -> None:
    events = parse("earlyoom", EARLYOOM)
    assert [(e.pid, e.signal, e.comm) for e in events] == [
        (179, 15, "python"), (0, 0, ""), (179, 9, "python"), (0, 0, "")]
    assert events[1].detail == "escalating to SIGKILL after 0.5 seconds"
    assert events[3].detail == "process exited after 0.6 seconds"
    assert all(e.kind == "killer_log" and e.source == "killer-log" and e.t_ns == 0
               for e in events)


OOMD = """\
[Oomd.cpp:118] Running oomd
[Ruleset.cpp:161] DetectorGroup=system memory use has fired for Ruleset=chaos r. Running action chain.
[Ruleset.cpp:177] Running Action=kill_by_memory_size_or_growth
[OomdContext.cpp:190] name=chaos-r/arena/workload/hog
[KillMemoryGrowth-inl.h:155] Picked "chaos-r/arena/workload/hog" (754MB) based on size > 50% of total 754MB with kill preference NORMAL
[BaseKillPlugin.cpp:429] Trying to kill /sys/fs/cgroup/chaos-r/arena/workload/hog
[BaseKillPlugin.cpp:478] Killed 1: 183(python)
oomd kill: 0.00 0.00 0.00 chaos-r/arena/workload/hog 201256960 ruleset:[chaos r] detectorgroup:[x] killer:kill_by_memory_size_or_growth v2
"""  # noqa: E501


def test_oomd_kill_lines() -> None:
    events = parse("oomd", OOMD)
    assert len(events) == 5
    assert "has fired" in events[0].detail and events[1].detail.startswith("[KillMemory")
    killed = events[3]
    assert (killed.pid, killed.comm, killed.signal) == (183, "python", 9)
    assert events[4].detail.startswith("oomd kill:")


def test_oomd_action_that_killed_nothing_is_kept() -> None:
    (e,) = parse("oomd", "[Ruleset.cpp:193] Action=kill_by_memory_size_or_growth returned "
                         "CONTINUE. Continuing action chain.\n")
    assert "returned CONTINUE" in e.detail


NOHANG = """\
Monitoring has started!
Process with highest badness (found in 37ms):
  PID: 180, Name: python, badness: 1300
Implementing a corrective action:
  Sending SIGTERM to the victim
OK; total response time: 161ms
The victim died in 0.031s
"""


def test_nohang_kill_lines() -> None:
    events = parse("nohang", NOHANG)
    assert [(e.pid, e.signal) for e in events] == [(180, 0), (0, 15), (0, 0), (0, 0)]
    assert events[0].comm == "python"
    assert events[-1].detail == "The victim died in 0.031s"


def test_oomguard_json_lines_keep_their_own_time() -> None:
    lines = [
        {"t_ns": 100, "event": "ready", "pid": 7},
        {"t_ns": 200, "event": "trigger", "source": "floor"},
        {"t_ns": 300, "event": "decision", "chosen": {"id": "/x/hog"}},
        {"t_ns": 400, "event": "signal", "target": "/sys/fs/cgroup/c/arena/workload/hog",
         "sent_ns": 350, "pids": [180], "signal": "SIGKILL"},
        {"t_ns": 450, "event": "mrelease", "target": "/sys/fs/cgroup/c/arena/workload/hog",
         "results": {"180": "ESRCH"}, "after_ms": 2.5},
        {"t_ns": 500, "event": "exit", "target": "/sys/fs/cgroup/c/arena/workload/hog"},
        {"t_ns": 600, "event": "late", "step": "warm_top", "by_ms": 2100.5},  # its own stall
        {"t_ns": 700, "event": "candidates", "count": 2},  # not kept
    ]
    text = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n{broken\n"
    events = parse("oomguard", text)
    assert [e.t_ns for e in events] == [200, 300, 350, 450, 500, 600]
    assert '"warm_top"' in events[-1].detail
    signal, reap = events[2], events[3]
    assert (signal.pid, signal.signal, signal.comm) == (180, 9, "hog")
    assert (reap.pid, reap.signal) == (0, 0) and '"ESRCH"' in reap.detail


def test_arrival_time_fills_lines_without_their_own() -> None:
    target = targets.load(KillerSpec(name="earlyoom"))
    lines = [(10, "earlyoom v1.7"), (20, 'sending SIGTERM to process 5 uid 0 "a": badness 1, '
                                         'VmRSS 1 MiB')]
    (e,) = target.log_events(lines)
    assert e.t_ns == 20 and e.pid == 5
    og = targets.load(KillerSpec(name="oomguard"))
    (e,) = og.log_events([(999, json.dumps({"t_ns": 5, "event": "exit", "target": "/a"}))])
    assert e.t_ns == 5


def test_kernel_and_exec_parse_nothing() -> None:
    assert parse("kernel", EARLYOOM) == []
    assert targets.load(KillerSpec(name="exec:k=true")).parse_log(EARLYOOM) == []


# -- the killer's lines, stamped by the thread that reads its pipe ----------------------------
def test_a_childs_lines_are_stamped_when_they_are_read() -> None:
    """The stamp is when the line reached the harness, not when the child started or
    stopped: the second line is printed only after ``before``, on a go over stdin."""
    code = ("import sys; print('first', flush=True); sys.stdin.readline();"
            " print('second'); sys.stdout.write('unterminated')")
    child = spawn("killer", [sys.executable, "-c", code], stdin_pipe=True, stamp_lines=10,
                  ready_pattern="first")
    try:
        assert child.ready.wait(30)
        time.sleep(0.05)
        before = time.monotonic_ns()
        assert child.popen.stdin is not None
        child.popen.stdin.write(b"go\n")
        child.popen.stdin.close()
        child.popen.wait(timeout=30)
    finally:
        child.stop()
    assert child.stamped is not None
    lines = list(child.stamped)
    assert [line for _, line in lines] == ["first", "second", "unterminated"]
    assert lines[0][0] < before <= lines[1][0] <= lines[2][0]
    assert child.ready_t_ns == lines[0][0]  # the ready line has one stamp, not two


def test_only_a_child_asked_to_keeps_stamped_lines() -> None:
    child = spawn("other", [sys.executable, "-c", "print('x')"])
    child.popen.wait(timeout=30)
    child.stop()
    assert child.stamped is None and list(child.lines) == ["x"]
