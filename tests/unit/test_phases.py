"""Phases and reclaim episodes computed from raw events (no kernel needed)."""

from __future__ import annotations

from chaos.probes.phases import fill_phases, fill_reclaim, reclaim_episodes
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
