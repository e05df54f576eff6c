"""Parsing tracefs output and attributing deaths from it (real line formats of 6.1/6.12)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chaos.probes.attribution import attribute, exit_times
from chaos.probes.tracing import TraceSession, clock_skew_ns, parse
from chaos.skips import skip_unless_root

# ruff: noqa: E501  (real tracefs lines are long)

TRACE = """\
# tracer: nop
#
           <...>-171     [001] d..1.    18.623759: signal_generate: sig=9 errno=0 code=128 comm=python3 pid=171 grp=1 res=0
         python3-171     [001] .....    18.624369: mark_victim: pid=171
         python3-171     [001] .....    18.644554: sched_process_exit: comm=python3 pid=171 prio=120
         earlyoom-90     [000] d..1.    30.000001: signal_generate: sig=15 errno=0 code=0 comm=python3 pid=200 grp=1 res=0
 kworker/u4:1 foo-12     [000] d..1.    31.5: signal_generate: sig=9 errno=0 code=0 comm=x pid=300 grp=1 res=0
"""


def test_parse_lines() -> None:
    recs = parse(TRACE)
    assert [r.event for r in recs] == ["signal_generate", "mark_victim", "sched_process_exit",
                                       "signal_generate", "signal_generate"]
    assert recs[0].t_ns == 18_623_759_000
    assert recs[0].pid == 171 and recs[0].comm == "<...>"
    assert recs[0].int_field("sig") == 9
    assert recs[3].comm == "earlyoom" and recs[3].pid == 90
    assert recs[4].comm == "kworker/u4:1 foo" and recs[4].t_ns == 31_500_000_000


def test_kernel_oom_is_attributed_from_mark_victim() -> None:
    a = attribute({171}, parse(TRACE), killer_tids=set(), harness_tids=set())
    assert a.killed_by == "kernel" and a.signal == 9
    assert a.signal_t_ns == 18_623_759_000 and a.mark_victim_t_ns == 18_624_369_000


def test_killer_signal_is_attributed_to_the_sender_thread() -> None:
    recs = parse(TRACE)
    assert attribute({200}, recs, killer_tids={90}, harness_tids=set()).killed_by == "killer"
    other = attribute({200}, recs, killer_tids={91}, harness_tids=set())
    assert other.killed_by == "other" and other.sender_comm == "earlyoom"
    # the harness's own cleanup signals never count
    assert attribute({200}, recs, killer_tids=set(), harness_tids={90}).killed_by == ""


def test_events_after_the_exit_are_ignored_and_exit_times() -> None:
    recs = parse(TRACE)
    assert attribute({300}, recs, set(), set(), before_ns=31_000_000_000).killed_by == ""
    assert exit_times(recs) == {171: 18_644_554_000}


GROUP = """\
         earlyoom-90     [000] d..1.    40.000001: signal_generate: sig=9 errno=0 code=0 comm=python3 pid=402 grp=1 res=0
         python3-400     [001] d..1.    40.200000: signal_generate: sig=9 errno=0 code=0 comm=python3 pid=400 grp=1 res=0
"""


def test_a_group_is_killed_by_whoever_killed_a_member_first() -> None:
    """many_hogs: the killer kills child 402; the parent 400 re-raises SIGKILL on itself."""
    recs = parse(GROUP)
    assert attribute({400}, recs, killer_tids={90}, harness_tids=set()).killed_by == "other"
    group = attribute({400, 401, 402}, recs, killer_tids={90}, harness_tids=set())
    assert group.killed_by == "killer" and group.signal_t_ns == 40_000_001_000
    # a member's own signal to another member is never the cause
    assert attribute({400, 401}, parse(GROUP.splitlines()[1]), {90}, set()).killed_by == ""


def test_clock_skew_is_only_what_lies_outside_the_marker_bracket() -> None:
    mark = parse("          python-90     [000] .....    10.000000: tracing_mark_write: "
                 "chaos-clock r1\n")
    assert mark[0].t_ns == 10_000_000_000
    ns = 10_000_000_000
    # a write preempted for 6 ms, stamped near its start: same clock, no skew
    assert clock_skew_ns(mark, "chaos-clock r1", ns - 100_000, ns + 6_000_000) == 0
    assert clock_skew_ns(mark, "chaos-clock r1", ns + 2_000_000, ns + 3_000_000) == 2_000_000
    assert clock_skew_ns(mark, "chaos-clock r1", ns - 3_000_000, ns - 2_000_000) == -2_000_000
    assert clock_skew_ns(mark, "chaos-clock other", ns, ns) is None


def test_a_task_added_later_is_traced(tmp_path: Path) -> None:
    """add_pids on a real tracefs instance: a task that was not a child of a listed one."""
    skip_unless_root()
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    session = TraceSession(f"chaos-unit-{os.getpid()}", ("sched/sched_process_exit",),
                           pids=(os.getpid(),))
    try:
        session.start()
        session.add_pids([child.pid])
        assert child.stdin is not None
        child.stdin.close()  # it exits now
        child.wait(timeout=10)
        session.stop()
        assert child.pid in exit_times(session.records())
    finally:
        session.remove()
        if child.poll() is None:
            child.kill()


def test_a_throwaway_session_only_stops_tracing_at_remove() -> None:
    """In a VM that is discarded after the run, remove() leaves the events registered
    (unregistering one patches kernel text, where a TCG guest hung) and only stops the
    ring; a normal remove() then takes the instance away."""
    skip_unless_root()
    session = TraceSession(f"chaos-unit-keep-{os.getpid()}", ("sched/sched_process_exit",),
                           pids=(os.getpid(),), throwaway=True)
    try:
        session.start()
        session.remove()
        assert session.path.is_dir()
        assert (session.path / "tracing_on").read_text().strip() == "0"
        assert (session.path / "events/sched/sched_process_exit/enable").read_text()[0] == "1"
    finally:
        session.throwaway = False
        session.remove()
    assert not session.path.exists()
