"""Sending the kill and following the victim until it is gone.

cgroup.kill where the kernel has it (one write kills a whole subtree, forks
included), else SIGKILL through a pidfd to every task; then process_mrelease so
the memory comes back even if the victim is stuck in the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import libc
from .candidates import members, populated
from .kfile import KFile

MAX_SWEEPS = 8  # signal-every-task passes, to catch tasks forked while we kill
# Tasks pinned (and held) before a cgroup.kill: enough for a container's processes,
# few enough that a fork storm's hundreds do not delay the signal (the rest are pinned
# after the reap).
PIN_FIRST = 16


class KillError(Exception):
    """The victim could not be signalled (already gone, pid reused, no permission)."""


@dataclass(slots=True)
class Victim:
    """A kill in flight: what was signalled, how, and the handles to watch it die."""

    kind: str  # "process" | "cgroup"
    label: str  # "pid:<n>" or the cgroup path
    method: str  # "pidfd_send_signal" | "cgroup.kill"
    sent_ns: int
    source: str = "main"  # "main" | "watchdog"
    pidfds: dict[int, int] = field(default_factory=dict)
    events: KFile | None = None
    errors: list[str] = field(default_factory=list)
    hastened: dict[str, str] = field(default_factory=dict)  # pid -> "ok" | errno name
    affinity: dict[int, set[int]] = field(default_factory=dict)  # before a hold(): pid -> CPUs
    before_ms: dict[str, float] = field(default_factory=dict)  # the steps before the signal

    def close(self) -> None:
        for fd in self.pidfds.values():
            os.close(fd)
        self.pidfds.clear()


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def kill_process(pid: int, still_same: Callable[[], bool], source: str = "main") -> Victim:
    """SIGKILL one process through a pidfd, after checking the pid was not reused."""
    fd = _pidfd(pid)
    if fd is None:
        raise KillError(f"pid {pid} already gone")
    if not still_same():
        os.close(fd)
        raise KillError(f"pid {pid} was reused or exited before the kill")
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError as e:
        os.close(fd)
        raise KillError(f"pidfd_send_signal({pid}): {e.strerror}") from None
    sent = time.monotonic_ns()
    return Victim("process", f"pid:{pid}", "pidfd_send_signal", sent, source, {pid: fd})


def kill_process_fd(pid: int, pidfd: int, source: str) -> Victim:
    """SIGKILL through a pidfd opened earlier (the watchdog's preallocated handle)."""
    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    sent = time.monotonic_ns()
    return Victim("process", f"pid:{pid}", "pidfd_send_signal", sent, source, {pid: os.dup(pidfd)})


def kill_leader(fd: int, grace_ms: int) -> int:
    """SIGKILL one process through its pinned pidfd and wait up to grace_ms for it to
    exit: the sent time, or 0 when it could not be signalled.

    Killed together with the rest of its group, a busy main process is woken last
    (its siblings slept, so the scheduler owes them time) and outlives hundreds of
    them: ~0.8 s for a fork storm's parent on 2 emulated CPUs, against ~10 ms alone.
    Its supervisor learns of the kill when it exits."""
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except OSError:
        return 0
    sent = time.monotonic_ns()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    poller.poll(grace_ms)
    return sent


def pin(pids: list[int]) -> dict[int, int]:
    """A pidfd for each pid still there. Taken before the kill, so the reap can follow
    the signal at once: a killed task detaches its memory within ~3 ms on 6.1 (TCG),
    after which process_mrelease finds nothing (ESRCH). Pids are handed out cyclically,
    so one freed between the listing and the open is not reused in that window."""
    out = {}
    for pid in pids:
        fd = _pidfd(pid)
        if fd is not None:
            out[pid] = fd
    return out


def hold(pidfds: dict[int, int], cpu: int) -> dict[int, set[int]]:
    """Confine tasks about to be killed to ``cpu``, where oomguard runs under SCHED_FIFO:
    none of them runs again until oomguard sleeps or lets it go, so the reaps that follow
    the kill find each one's memory still attached. A task running on another CPU when
    it is killed detaches it within ~3 ms (6.1, TCG), before a reap can start. Returns
    the CPUs each was allowed before, for hasten() and release()."""
    before = {}
    for pid in pidfds:
        try:
            allowed = os.sched_getaffinity(pid)
            os.sched_setaffinity(pid, {cpu})
        except OSError:
            continue  # exiting already, or not ours to move: it is killed all the same
        before[pid] = allowed
    return before


def release(victim: Victim) -> None:
    """Put held tasks back on the CPUs they had (hasten() does so, and more)."""
    for pid, allowed in victim.affinity.items():
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, allowed)


def pin_rest(victim: Victim, lister: Callable[[str], list[int]] = members) -> None:
    """Pin the tasks of a killed cgroup that were not pinned before its kill (forked in
    between, or all of them after kill_cgroup_fd): dying tasks are still listed. A
    process, or a cgroup killed task by task (whose sweep pinned each), has none left."""
    if victim.kind != "cgroup" or victim.method == "pidfd_send_signal":
        return
    for pid in lister(victim.label):
        if pid not in victim.pidfds:
            fd = _pidfd(pid)
            if fd is not None:
                victim.pidfds[pid] = fd


def kill_cgroup_fd(path: str, kill: KFile | None, source: str) -> Victim:
    """Kill a cgroup subtree by a write to its cgroup.kill opened earlier (the watchdog's
    preallocated handle), listing nothing before it: a listing walks paths (opens,
    allocations), which is what a watchdog firing for a stuck main loop must not wait
    on. pin_rest() pins its tasks after. Without the handle, or when the write fails,
    kill_cgroup's SIGKILL to each task."""
    error = ""
    if kill is not None:
        t = time.monotonic_ns()
        try:
            kill.write(b"1")
        except OSError as e:
            error = f"cgroup.kill: {e.strerror}"
        else:
            steps: dict[str, float] = {}
            sent = _step(steps, "kill", t)
            return Victim("cgroup", path, "cgroup.kill", sent, source, before_ms=steps)
    victim = kill_cgroup(path, None, None, source)
    if error:
        victim.errors.insert(0, error)
    return victim


def kill_cgroup(
    path: str, kill: KFile | None, events: KFile | None, source: str = "main",
    leader_grace_ms: int = 0, lister: Callable[[str], list[int]] = members,
    hold_on: int = -1,
) -> Victim:
    """Kill every task in a cgroup subtree: cgroup.kill (after its first-listed process,
    given leader_grace_ms to exit), or SIGKILL to each task via pidfds. ``lister`` gives
    the subtree's pids, its own first (CgroupSource.members reads held fds). With
    cgroup.kill the tasks are pinned before it (and held on CPU ``hold_on``, if >= 0,
    until they are hastened); pin_rest() pins any forked since."""
    pinned: dict[int, int] = {}
    held: dict[int, set[int]] = {}
    first = 0  # when the leader was signalled, if it was
    first_error = ""
    steps: dict[str, float] = {}
    if kill is not None:
        t = time.monotonic_ns()
        pids = lister(path)
        t = _step(steps, "list", t)
        pinned = pin(pids[:PIN_FIRST])
        t = _step(steps, "pin", t)
        held = hold(pinned, hold_on) if hold_on >= 0 else {}
        if held:
            t = _step(steps, "hold", t)
        leader = pids[0] if leader_grace_ms and len(pids) > 1 else 0  # alone: nobody to outlive
        if leader in pinned:
            first = kill_leader(pinned[leader], leader_grace_ms)
        try:
            kill.write(b"1")
        except OSError as e:
            first_error = f"cgroup.kill: {e.strerror}"
            for pid in [p for p in pinned if not (first and p == leader)]:
                os.close(pinned.pop(pid))  # the sweep below signals them itself
        else:
            sent = _step(steps, "kill", t)
            method = "cgroup.kill" if not first else "leader first, then cgroup.kill"
            return Victim("cgroup", path, method, first or sent, source,
                          pinned, events=events, affinity=held, before_ms=steps)
    victim = Victim("cgroup", path, "pidfd_send_signal", first, source, pinned, events=events,
                    affinity=held)
    if first_error:
        victim.errors.append(first_error)
    for _ in range(MAX_SWEEPS):
        new = [pid for pid in lister(path) if pid not in victim.pidfds]
        if not new:
            break
        for pid in new:
            fd = _pidfd(pid)
            if fd is None:
                continue
            victim.pidfds[pid] = fd
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError as e:
                victim.errors.append(f"pid {pid}: {e.strerror}")
                continue
            if not victim.sent_ns:
                victim.sent_ns = time.monotonic_ns()
    if not victim.sent_ns:
        release(victim)  # not killed: let them run where they did
        victim.close()
        raise KillError(f"{path}: no task could be signalled ({'; '.join(victim.errors)})")
    return victim


def _step(steps: dict[str, float], name: str, since: int) -> int:
    """Note how long a step before the signal took (ms); returns now."""
    now = time.monotonic_ns()
    steps[name] = round((now - since) / 1e6, 3)
    return now


def _outcome(err: int) -> str:
    """A per-task result for the log: "ok", or the errno's name (ESRCH, EINVAL...)."""
    return errno.errorcode.get(err, str(err)) if err else "ok"


def hasten(victim: Victim, priority: int, away_from: int = -1) -> None:
    """Let a dying victim run its exit now, and beside the reap rather than behind it.

    Each pinned task goes to SCHED_FIFO ``priority`` (under oomguard's own threads, over
    every normal task: a stressor no longer delays the exit), with every CPU it was
    allowed (a task held by hold() goes back to those). The kernel's realtime balancing
    then moves it off a CPU where a higher-priority thread (the reap, oomguard's own)
    wakes, to one that runs lower-priority work. It is not pinned away from the reap:
    on a two-CPU guest that leaves it one CPU, which it could not leave when
    higher-priority threads woke there (6.12 guest, 4 runs each of irq_storm, pageout
    and spike: p50 wait for a CPU in its exit 7-13 ms unpinned, 10-35 pinned). With
    ``priority`` 0 (oomguard without its realtime guard: the victim's policy is left
    alone) there is no such balancing, so the task is moved off the CPU where the reap
    runs (``away_from``; -1: this thread's CPU) to the rest of its own. lmkd raises the
    priority of the process it killed for the same reason. Called right after the
    signal: a killed task keeps its pid until its parent reaps it, and the pidfds pin
    each one, so the ids still name the victim's tasks. The main thread of each process
    only (its other threads would need a /proc walk)."""
    here = -1  # at SCHED_FIFO: no CPU to keep it off
    if not priority:
        here = away_from if away_from >= 0 else libc.sched_getcpu()
    param = os.sched_param(priority)
    for pid in victim.pidfds:
        err = 0
        try:
            held = victim.affinity.get(pid)
            if held:  # back to its own CPUs (less ``here``)
                os.sched_setaffinity(pid, _without(held, here))
            elif not priority:  # the only case that moves a task that was not held
                allowed = os.sched_getaffinity(pid)
                away = _without(allowed, here)
                if away != allowed:
                    os.sched_setaffinity(pid, away)
        except OSError as e:
            err = e.errno or 0
        try:
            if priority:
                os.sched_setscheduler(pid, os.SCHED_FIFO, param)
        except OSError as e:
            err = e.errno or 0
        victim.hastened[str(pid)] = _outcome(err)


def _without(cpus: set[int], cpu: int) -> set[int]:
    """``cpus`` less ``cpu``, unless that would leave none (or it is not among them)."""
    return cpus - {cpu} if cpu in cpus and len(cpus) > 1 else cpus


def mrelease(victim: Victim) -> dict[str, str]:
    """process_mrelease every pinned task; ENOSYS/EINVAL/ESRCH are expected and just reported."""
    out: dict[str, str] = {}
    for pid, fd in victim.pidfds.items():
        err = libc.process_mrelease(fd)
        out[str(pid)] = _outcome(err)
    return out


def is_gone(victim: Victim, exited: set[int]) -> bool:
    if victim.events is not None:
        try:
            return not populated(victim.events)
        except OSError:
            return True  # the cgroup itself was removed
    return len(exited) >= len(victim.pidfds)


def wait_gone(victim: Victim, timeout_ns: int, step_ms: int, beat: Callable[[], None]) -> int:
    """Block until the victim is gone; returns the monotonic ns it was seen gone, or 0."""
    poller = select.poll()
    by_fd = {fd: pid for pid, fd in victim.pidfds.items()}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    ev_fd = victim.events.fd if victim.events is not None else -1
    if ev_fd >= 0:
        poller.register(ev_fd, select.POLLPRI)
    exited: set[int] = set()
    deadline = victim.sent_ns + timeout_ns
    while True:
        beat()
        now = time.monotonic_ns()
        if is_gone(victim, exited):
            return now
        if now >= deadline:
            return 0
        wait_ms = min(step_ms, max(1, (deadline - now) // 1_000_000))
        for fd, _ev in poller.poll(wait_ms):
            if fd in by_fd:
                exited.add(by_fd[fd])
                poller.unregister(fd)
