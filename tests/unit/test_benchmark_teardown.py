"""benchmarks/teardown.py's pure parts: reading ftrace's output, the table, bad input."""

from __future__ import annotations

import sys
from types import ModuleType

import benchmark_script
import pytest

# As function_graph prints calls of filtered functions (6.1 guest, funcgraph-tail on):
# leaves on one line, a nested call's time on its closing line.
GRAPH = """\
# tracer: function_graph
#
# entries-in-buffer/entries-written: 6/6   #P:2
# CPU  DURATION                  FUNCTION CALLS
# |     |   |                     |   |   |   |
 0)               |  __oom_reap_task_mm() {
 0) + 27.462 us   |    release_pages();
 0) ! 112.500 us  |    release_pages();
 1)   8.123 us    |    native_queued_spin_lock_slowpath();
 0) # 1623.413 us |  } /* __oom_reap_task_mm */
 1) $ 1500000.0 us |  exit_mmap();
"""

STACKS = """\
# tracer: function
#
# entries-in-buffer/entries-written: 2/2   #P:2
 <...>-77 [001] d..2. 1.0: native_queued_spin_lock_slowpath <-_raw_spin_lock_irqsave
           <...>-77      [001] d..2.   1.0: <stack trace>
 => native_queued_spin_lock_slowpath
 => folio_lruvec_lock_irqsave
 => release_pages
           <...>-78      [000] d..2.   1.1: <stack trace>
 => native_queued_spin_lock_slowpath
 => _raw_spin_lock
"""


@pytest.fixture(scope="module")
def teardown() -> ModuleType:
    return benchmark_script.load("teardown")


def test_durations_are_summed_per_cpu_and_function(teardown: ModuleType) -> None:
    assert teardown.durations(GRAPH) == [
        "entries-in-buffer/entries-written: 6/6   #P:2",
        "cpu0 __oom_reap_task_mm: calls 1, 1.6 ms",
        "cpu0 release_pages: calls 2, 0.1 ms",
        "cpu1 exit_mmap: calls 1, 1500.0 ms",
        "cpu1 native_queued_spin_lock_slowpath: calls 1, 0.0 ms",
    ]


def test_callers_are_counted_over_every_stack(teardown: ModuleType) -> None:
    assert teardown.callers(STACKS) == [
        "entries-in-buffer/entries-written: 2/2   #P:2",
        "    2 native_queued_spin_lock_slowpath",
        "    1 folio_lruvec_lock_irqsave",
        "    1 release_pages",
        "    1 _raw_spin_lock",
    ]


def test_the_table_has_a_row_per_way_measured(teardown: ModuleType) -> None:
    run = teardown.Run
    runs = [run("exit", 0, 160, 160, 180.0, 0, 0, "-", 160),
            run("exit", 1, 160, 160, 160.0, 0, 0, "-", 160),
            run("exit", 2, 160, 160, 200.0, 0, 0, "-", 160),
            run("reap2_held", 0, 160, 150, 110.0, 100.0, 104.0, "ok,ok", 160),
            run("reap2_held", 1, 160, 150, 120.0, 112.0, 108.0, "ESRCH,ok", 160)]
    rows = teardown.table(runs).splitlines()
    assert len(rows) == 4  # header, rule, the two ways measured
    assert rows[2] == "| exit | 3 | 160 | 180 (160-200) | - | - | - |"
    assert rows[3] == "| reap2_held | 2 | 150 | 115 (110-120) | 106 | 106 | ESRCH,ok ok,ok |"


@pytest.mark.parametrize("args, says", [
    (["--size", "4"], "--size must be 8..512 MiB"),
    (["--size", "600"], "--size must be 8..512 MiB"),
    (["--here", "--trace", "release_pages"], "--trace and --stacks are for guests"),
    (["--rounds", "0"], "--rounds must be >= 1"),
    (["--small-mib", "12"], "--small-mib must be 0..--size, in steps of 8"),
    (["--size", "160", "--small-mib", "168"], "--small-mib must be 0..--size"),
    (["--way", "nope"], "invalid choice: 'nope'"),
])
def test_bad_input_is_refused_before_anything_starts(
        teardown: ModuleType, args: list[str], says: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["teardown.py", *args])
    with pytest.raises(SystemExit) as exit_:
        teardown.main()
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert says in err and out == ""
