"""Phases and reclaim episodes computed from raw events (no kernel needed)."""

from __future__ import annotations

from chaos.probes.phases import (
    acted_before_danger,
    cpu_split,
    fill_phases,
    fill_reclaim,
    reclaim_after_signal_ms,
    reclaim_episodes,
)
from chaos.probes.tracing import TraceRecord
from chaos.result import Metrics, VictimOutcome

MS = 1_000_000


def victim(**kw: object) -> VictimOutcome:
    base: dict[str, object] = dict(instance="hog", pid=5, cgroup="workload/hog", died=True,
                                   exit_t_ns=1500 * MS, kernel_exit_t_ns=1490 * MS,
                                   signal_t_ns=1200 * MS, killed_by="killer")
    base.update(kw)
    return VictimOutcome(**base)  # type: ignore[arg-type]


def test_phases_use_the_kernel_exit_time() -> None:
    m = Metrics()
    t0 = fill_phases(m, 1000 * MS, [victim()], recovered_ns=1700 * MS)
    assert t0 == 1000 * MS
    assert m.detect_ms == 200.0 and m.teardown_ms == 290.0 and m.time_to_kill_ms == 490.0
    assert m.recover_ms == 210.0 and m.exit_lag_ms == 10.0


def test_killer_acting_before_danger_has_zero_detect() -> None:
    m = Metrics()
    t0 = fill_phases(m, 1300 * MS, [victim()], None)
    assert t0 == 1200 * MS and m.detect_ms == 0.0 and m.time_to_kill_ms == 290.0


def test_a_kill_before_danger_or_without_danger_is_told_apart() -> None:
    assert acted_before_danger(1300 * MS, [victim()])  # signal at 1200
    assert acted_before_danger(None, [victim()])  # danger never came
    assert not acted_before_danger(1000 * MS, [victim()])
    assert not acted_before_danger(None, [victim(died=False, signal_t_ns=None)])
    assert not acted_before_danger(1300 * MS, [victim(expected=False)])  # a bystander


def test_no_phases_while_a_victim_lives() -> None:
    m = Metrics()
    fill_phases(m, 1000 * MS, [victim(), victim(instance="b", died=False, exit_t_ns=None,
                                                kernel_exit_t_ns=None)], None)
    assert m.time_to_kill_ms is None and m.detect_ms is None


def rec(t_ms: float, pid: int, event: str) -> TraceRecord:
    return TraceRecord(t_ns=int(t_ms * MS), comm="killer", pid=pid, event=event)


def test_reclaim_episodes_pair_per_thread_and_count_the_window() -> None:
    records = [rec(10, 1, "mm_vmscan_direct_reclaim_begin"),
               rec(12, 2, "mm_vmscan_direct_reclaim_begin"),
               rec(15, 1, "mm_vmscan_direct_reclaim_end"),
               rec(20, 2, "mm_vmscan_direct_reclaim_end"),
               rec(30, 3, "mm_vmscan_direct_reclaim_begin"),  # not the killer
               rec(31, 3, "mm_vmscan_direct_reclaim_end"),
               rec(40, 1, "mm_vmscan_memcg_reclaim_begin")]  # still open at the end
    eps = reclaim_episodes(records, tids={1, 2}, end_of_trace_ns=50 * MS)
    assert [(e.tid, e.ms) for e in eps] == [(1, 5.0), (2, 8.0), (1, 10.0)]
    m = Metrics()
    fill_reclaim(m, eps, (14 * MS, 45 * MS))
    assert m.killer_reclaim_episodes == 3 and m.killer_reclaim_total_ms == 23.0
    assert m.killer_reclaim_longest_ms == 10.0
    assert m.killer_reclaim_in_window_ms == 1.0 + 6.0 + 5.0


def test_reclaim_after_signal_is_the_rest_of_the_pass_under_way_at_the_signal() -> None:
    records = [rec(10, 5, "mm_vmscan_direct_reclaim_begin"),
               rec(11, 5, "mm_vmscan_direct_reclaim_end"),  # before the signal
               rec(12, 5, "mm_vmscan_memcg_reclaim_begin"),
               rec(150, 5, "mm_vmscan_memcg_reclaim_end"),  # the signal came at 20
               rec(160, 5, "mm_vmscan_direct_reclaim_begin"),
               rec(170, 5, "mm_vmscan_direct_reclaim_end")]  # after it: not this pass
    eps = reclaim_episodes(records)
    assert reclaim_after_signal_ms(eps, 20 * MS) == 130.0
    assert reclaim_after_signal_ms(eps, 11 * MS) == 0.0  # between passes
    assert reclaim_after_signal_ms([], 20 * MS) == 0.0


def switch(t_ms: float, prev: int, state: str, nxt: int, next_comm: str = "t") -> TraceRecord:
    return TraceRecord(t_ns=int(t_ms * MS), comm="x", pid=prev, event="sched_switch",
                       fields={"prev_pid": str(prev), "prev_state": state,
                               "next_pid": str(nxt), "next_comm": next_comm})


def test_cpu_split_tells_running_from_waiting_for_a_cpu_from_asleep() -> None:
    records = [switch(5, 9, "S", 7),  # before the window: 7 goes on CPU
               switch(20, 7, "R+", 9),  # preempted: runnable
               switch(50, 9, "S", 7),
               switch(60, 7, "D", 0),  # asleep
               switch(90, 0, "R", 7),
               switch(200, 7, "X", 0)]  # after the window
    split = cpu_split(records, 7, 10 * MS, 100 * MS)
    assert (split.on_cpu_ms, split.runnable_ms, split.blocked_ms) == (30.0, 30.0, 30.0)
    assert cpu_split([], 7, 10 * MS, 100 * MS).on_cpu_ms == 90.0  # never switched: running


def test_cpu_split_puts_each_wait_down_to_who_preempted() -> None:
    records = [switch(0, 9, "S", 7),
               switch(20, 7, "R+", 4, "kswapd0"),  # waits 10 behind kswapd0
               switch(30, 4, "R", 7),
               switch(40, 7, "R", 5, "flood"),  # 30 behind the flood
               switch(70, 5, "R", 7),
               switch(80, 7, "D", 0, "swapper/1"),  # asleep: behind no one
               switch(85, 0, "R", 7),
               switch(90, 7, "R", 4, "kswapd0")]  # 10 more, open at the window's end
    split = cpu_split(records, 7, 10 * MS, 100 * MS)
    assert split.preempted_by == {"kswapd0": 20.0, "flood": 30.0}
    assert split.runnable_ms == 50.0 and split.blocked_ms == 5.0
