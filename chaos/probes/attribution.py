"""Attribution: who sent the fatal signal, from the kernel's own evidence.

- ``kernel``: the OOM killer marked the task as its victim (``oom:mark_victim``);
  the vmstat ``oom_kill`` counter and the kernel log corroborate.
- ``killer``: the first fatal signal to the task was generated in the context of
  one of the killer's threads (``signal:signal_generate`` fires in the sender).
- ``other``: anyone else (including the victim's own exit).
The killer's log is never used to decide; it is kept beside the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chaos.probes.tracing import TraceRecord

FATAL_SIGNALS = frozenset({9, 15, 6, 2})  # SIGKILL, SIGTERM, SIGABRT, SIGINT


@dataclass
class Attribution:
    killed_by: str  # "kernel", "killer", "other", ""
    signal_t_ns: int | None
    sender_pid: int
    sender_comm: str
    signal: int
    mark_victim_t_ns: int | None = None


def attribute(group: set[int], records: Iterable[TraceRecord], killer_tids: set[int],
              harness_tids: set[int], before_ns: int | None = None) -> Attribution:
    """Attribute the death of a group of processes that dies as one (a stressor's parent
    and its children; often just one process), using events up to ``before_ns`` (its exit).

    For a group, the first fatal signal to any member counts, except one a member sent
    to another (a parent passing its child's fate on, docker-init forwarding a signal).
    """
    first_signal: TraceRecord | None = None
    mark: TraceRecord | None = None
    for r in records:
        if before_ns is not None and r.t_ns > before_ns:
            break
        if r.event == "mark_victim" and r.int_field("pid") in group and mark is None:
            mark = r
        elif (r.event == "signal_generate" and r.int_field("pid") in group
              and r.int_field("sig") in FATAL_SIGNALS and r.int_field("res", 0) in (0, 2)
              and first_signal is None and r.pid not in harness_tids
              and (len(group) == 1 or r.pid not in group)):
            # res: 0 delivered, 2 already pending (still sent by this task)
            first_signal = r
    if mark is not None:
        # The OOM killer's SIGKILL is generated in the allocating task's context:
        # the mark is the evidence, the signal (if traced) gives the time.
        t = first_signal.t_ns if first_signal else mark.t_ns
        return Attribution("kernel", t, first_signal.pid if first_signal else 0,
                           "oom-killer", 9, mark_victim_t_ns=mark.t_ns)
    if first_signal is None:
        return Attribution("", None, 0, "", 0)
    by = "killer" if first_signal.pid in killer_tids else "other"
    return Attribution(by, first_signal.t_ns, first_signal.pid, first_signal.comm,
                       first_signal.int_field("sig"))


def exit_times(records: Iterable[TraceRecord]) -> dict[int, int]:
    """pid -> the kernel's sched_process_exit timestamp (thread-group leaders only)."""
    out: dict[int, int] = {}
    for r in records:
        if r.event == "sched_process_exit":
            out.setdefault(r.int_field("pid"), r.t_ns)
    return out
