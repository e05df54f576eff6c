"""oomguard building blocks against the real kernel, touching only processes and cgroups
these tests start themselves: candidate sampling, detection, kill, watchdog."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from owned import Spawn, move

from chaos.skips import skip_or_fail
from oomguard.candidates import (
    PF_KTHREAD,
    SHARE_EVERY_NS,
    SHARE_STALE_NS,
    CgroupSource,
    ProcessSource,
    children,
    members,
    small_anon,
)
from oomguard.config import Detect, PsiTrigger, parse
from oomguard.daemon import Daemon
from oomguard.detect import ArmError, Detector, MemFloor, parse_pressure
from oomguard.guards import CAP_SYS_RESOURCE, RealtimeKeeper, effective_caps
from oomguard.kfile import READ_SIZE, KFile
from oomguard.kill import (
    KillError,
    Victim,
    hasten,
    kill_cgroup,
    kill_process,
    mrelease,
    pin_rest,
    wait_gone,
)
from oomguard.log import JsonLog, RateLimited
from oomguard.policy import rank
from oomguard.reap_plan import reap_plan
from oomguard.second_reaper import SecondReaper
from oomguard.watchdog import Handle, Watchdog

MRELEASE_OK = {"ok", "ESRCH", "EINVAL", "ENOSYS"}



def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.01)


# -- candidates ------------------------------------------------------------------------


@pytest.mark.parametrize("keep", [True, False], ids=["pread_fds", "naive"])
def test_process_source_samples_only_configured_pids(spawn: Spawn, keep: bool) -> None:
    child = spawn()
    src = ProcessSource((child.pid,), keep, want_score=True)
    try:
        (c,) = src.refresh()
        assert (c.key, c.name, c.pid) == (f"pid:{child.pid}", "sleep", child.pid)
        assert c.size > 0 and c.growth == 0 and c.starttime > 0
        assert c.oom_score_adj == int(Path(f"/proc/{child.pid}/oom_score_adj").read_text())
        (again,) = src.refresh()
        assert again.growth == again.size - c.size
        assert src.still_same(child.pid, c.starttime)
        assert not src.still_same(child.pid, c.starttime + 1)
        child.kill()
        child.wait()
        assert src.refresh() == []
        assert src.procs == {}
        assert not src.still_same(child.pid, c.starttime)
    finally:
        src.close()


def test_process_source_all_processes_skips_self_init_and_kernel_threads(spawn: Spawn) -> None:
    child = spawn()
    src = ProcessSource((), keep=True, want_score=False)
    try:
        pids = {c.pid for c in src.refresh()}
    finally:
        src.close()
    assert child.pid in pids
    assert os.getpid() not in pids and 1 not in pids
    kthreads = set()
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue  # exited meanwhile
        if int(stat[stat.rindex(b")") + 2 :].split()[6]) & PF_KTHREAD:
            kthreads.add(pid)
    assert kthreads == set()


def test_without_discovery_only_known_processes_are_read(spawn: Spawn) -> None:
    """The danger path re-reads sizes but lists no new processes (the tick does)."""
    known = spawn()
    src = ProcessSource((), keep=True, want_score=False)
    try:
        assert known.pid in {c.pid for c in src.refresh()}
        late = spawn()
        quick = {c.pid for c in src.refresh(discover=False)}
        assert known.pid in quick and late.pid not in quick
        known.kill()
        known.wait()
        assert known.pid not in {c.pid for c in src.refresh(discover=False)}
        assert late.pid in {c.pid for c in src.refresh()}
    finally:
        src.close()


def test_without_discovery_only_known_cgroups_are_read(spawn: Spawn, cg2: Path) -> None:
    child = spawn()
    move(child.pid, cg2 / "work" / "old")
    src = CgroupSource((f"{cg2}/work/*",), True, want_score=False)
    try:
        (c,) = src.refresh()
        other = spawn()
        move(other.pid, cg2 / "work" / "new")
        assert [x.key for x in src.refresh(discover=False)] == [c.key]
        assert {x.key for x in src.refresh()} == {c.key, str(cg2 / "work" / "new")}
    finally:
        src.close()


def test_a_parent_star_pattern_lists_what_the_glob_listed(tmp_path: Path) -> None:
    """'DIR/*' is read with one scandir, not a glob and a stat per entry: same paths."""
    for d in ("a", "b", ".hidden", "x/deeper"):
        (tmp_path / "work" / d).mkdir(parents=True)
    (tmp_path / "work" / "memory.current").write_text("0\n")
    (tmp_path / "work" / "link").symlink_to(tmp_path / "work" / "a")
    (tmp_path / "work" / "dangling").symlink_to(tmp_path / "nowhere")
    want = sorted(p for p in glob.glob(f"{tmp_path}/work/*") if os.path.isdir(p))
    assert sorted(children(f"{tmp_path}/work")) == want
    assert [Path(p).name for p in want] == ["a", "b", "link", "x"]
    assert children(f"{tmp_path}/missing") == []
    star = CgroupSource((f"{tmp_path}/work/*",), True, want_score=False)
    magic = CgroupSource((f"{tmp_path}/wor[k]/*",), True, want_score=False)  # the glob
    assert star._paths() == magic._paths() == want


def test_a_known_cgroups_members_come_from_its_held_fds(
        spawn: Spawn, cg2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision and the kill list a cgroup's pids from the cgroup.procs opened at
    discovery, opening nothing; one with a child cgroup is walked (cgroup.procs lists
    only its own)."""
    leaf, parent, child = spawn(), spawn(), spawn()
    move(leaf.pid, cg2 / "work" / "leaf")
    move(parent.pid, cg2 / "work" / "parent")
    move(child.pid, cg2 / "work" / "parent" / "child")
    src = CgroupSource((f"{cg2}/work/*",), True, want_score=False)
    try:
        src.refresh()
        old = str(cg2 / "work" / "leaf")
        assert src.members(old) == members(old) == [leaf.pid]
        nested = str(cg2 / "work" / "parent")
        assert src.members(nested) == members(nested) == [parent.pid, child.pid]
        with monkeypatch.context() as m:
            def no_open(*args: object, **kw: object) -> None:
                raise AssertionError(f"opened {args[0]}")
            m.setattr(os, "open", no_open)
            m.setattr(os, "scandir", no_open)
            m.setattr("builtins.open", no_open)
            assert src.members(old) == [leaf.pid]
            with pytest.raises(AssertionError, match="opened"):
                src.members(nested)  # the walk opens; shown so the patch is known to work
    finally:
        src.close()


def test_read_all_reads_past_one_read_size(tmp_path: Path) -> None:
    data = b"".join(b"%d\n" % i for i in range(READ_SIZE))  # several READ_SIZEs long
    (tmp_path / "procs").write_bytes(data)
    for keep in (True, False):
        kf = KFile(str(tmp_path / "procs"), keep)
        try:
            assert kf.read_all() == data
        finally:
            kf.close()


@pytest.mark.parametrize("keep", [True, False], ids=["pread_fds", "naive"])
def test_cgroup_source_lists_populated_cgroups(spawn: Spawn, cg2: Path, keep: bool) -> None:
    child = spawn()
    move(child.pid, cg2 / "work" / "busy")
    (cg2 / "work" / "idle").mkdir()
    src = CgroupSource((f"{cg2}/work/*",), keep, want_score=True)
    try:
        (c,) = src.refresh()
        assert c.key == str(cg2 / "work" / "busy") and c.pid == 0
        has_memory = (cg2 / "work" / "busy" / "memory.current").exists()
        assert (c.size > 0) == has_memory
        assert c.oom_score == int(Path(f"/proc/{child.pid}/oom_score").read_text())
        assert src.kill_file(c.key) is not None and src.events_file(c.key) is not None
        child.kill()
        child.wait()
        assert src.refresh() == []
    finally:
        src.close()


# -- detection -------------------------------------------------------------------------


def fake_meminfo(path: Path, total_kib: int, avail_kib: int) -> None:
    path.write_text(
        f"MemTotal:       {total_kib} kB\nMemFree:        {avail_kib // 2} kB\n"
        f"MemAvailable:   {avail_kib} kB\nBuffers:        100 kB\n"
    )


@pytest.mark.parametrize("keep", [True, False], ids=["pread_fds", "naive"])
def test_floor_reads_fresh_values_each_check(tmp_path: Path, keep: bool) -> None:
    meminfo = tmp_path / "meminfo"
    fake_meminfo(meminfo, 1_000_000, 600_000)
    floor = MemFloor(Detect(mem_available_min_pct=50, meminfo=str(meminfo)), keep)
    try:
        assert floor.floor_kib == 500_000
        assert floor.check() is None
        fake_meminfo(meminfo, 1_000_000, 400_000)  # same inode: a held fd sees it
        t = floor.check()
        assert t is not None and t.source == "floor"
        assert t.fields == {
            "mem_available_kib": 400_000,
            "mem_total_kib": 1_000_000,
            "floor_kib": 500_000,
        }
    finally:
        floor.close()


def test_floor_pct_and_mib_the_higher_floor_wins(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    fake_meminfo(meminfo, 1_048_576, 900_000)
    both = Detect(mem_available_min_pct=10, mem_available_min_mib=512, meminfo=str(meminfo))
    assert MemFloor(both, keep=False).floor_kib == 512 * 1024
    always = Detect(mem_available_min_pct=100)
    floor = MemFloor(always, keep=True)
    assert floor.check() is not None  # MemAvailable is always below MemTotal
    floor.close()


def test_floor_is_checked_sooner_the_closer_memory_is_to_it(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    fake_meminfo(meminfo, 1_024_000, 1_000_000)
    det = Detect(mem_available_min_mib=100, meminfo=str(meminfo), floor_fill_rate_mib_s=1000)
    floor = MemFloor(det, keep=False)
    waits = []
    for avail_mib in (900, 150, 110, 101, 50):  # 1000 MiB/s = 1 MiB per ms
        fake_meminfo(meminfo, 1_024_000, avail_mib * 1024)
        floor.check()
        waits.append(floor.next_check_ms(interval_ms=100))
    assert waits == [100, 50, 10, 1, 1]
    fixed = MemFloor(Detect(mem_available_min_mib=100, meminfo=str(meminfo),
                            floor_fill_rate_mib_s=0), keep=False)
    fixed.check()
    assert fixed.next_check_ms(interval_ms=100) == 100


def test_psi_trigger_arms_and_polls(cg2: Path) -> None:
    if not os.path.exists("/proc/pressure/memory"):
        skip_or_fail("kernel without PSI")
    # A window that is a multiple of 2 s works even without CAP_SYS_RESOURCE. An empty
    # cgroup never stalls; with the host's /proc/pressure/memory the trigger fired within
    # the 100 ms twice in a day, both times while guests ran on this host (once in CI).
    pressure = str(cg2 / "memory.pressure")
    trig = PsiTrigger(pressure, "full", 2_000_000, 2_000_000)
    det = Detector(Detect(psi=(trig,)), keep=True)
    try:
        det.arm()
        t0 = time.monotonic()
        assert det.wait(100) == []
        assert time.monotonic() - t0 >= 0.09
        assert det.armed() == [
            {"source": "psi", "file": pressure, "spec": "full 2000000 2000000"}
        ]
        fired = det.watches[next(iter(det.watches))].fired()
        assert fired.source == "psi" and "some_avg10" in fired.fields
    finally:
        det.close()


def test_psi_arm_errors_are_one_line(tmp_path: Path) -> None:
    det = Detector(Detect(psi=(PsiTrigger(str(tmp_path / "none"), "some", 1, 2_000_000),)), True)
    with pytest.raises(
        ArmError, match="cannot arm psi trigger 'some 1 2000000' on .*none: No such"
    ):
        det.arm()
    if not os.path.exists("/proc/pressure/memory") or effective_caps() >> CAP_SYS_RESOURCE & 1:
        return
    det = Detector(Detect(psi=(PsiTrigger("/proc/pressure/memory", "some", 1, 500_000),)), True)
    with pytest.raises(ArmError, match="multiple of 2000 ms"):
        det.arm()


def test_parse_pressure() -> None:
    data = b"some avg10=1.50 avg60=0.00 avg300=0.00 total=42\nfull avg10=0.25 total=7\n"
    assert parse_pressure(data) == {
        "some_avg10": 1.5,
        "some_avg60": 0.0,
        "some_avg300": 0.0,
        "some_total": 42.0,
        "full_avg10": 0.25,
        "full_total": 7.0,
    }


# -- kill ------------------------------------------------------------------------------


def test_kill_process_sigkill_then_mrelease(spawn: Spawn) -> None:
    child = spawn()
    victim = kill_process(child.pid, lambda: True)
    try:
        assert victim.method == "pidfd_send_signal" and victim.sent_ns > 0
        assert mrelease(victim)[str(child.pid)] in MRELEASE_OK
        gone = wait_gone(victim, 5_000_000_000, 20, lambda: None)
        assert gone >= victim.sent_ns
    finally:
        victim.close()
    assert child.wait(timeout=5) == -signal.SIGKILL


@pytest.mark.parametrize("priority", [1, 0], ids=["fifo", "cpu-move-only"])
def test_hasten_runs_a_killed_victim_at_fifo_or_off_the_reaping_cpu(
        spawn: Spawn, priority: int) -> None:
    """At SCHED_FIFO the victim keeps all its CPUs (the kernel moves it off one where a
    higher-priority thread wakes); without a priority it is moved off this one."""
    child = spawn()
    cpus = frozenset(os.sched_getaffinity(0))
    here = min(cpus)
    os.sched_setaffinity(0, {here})  # so "the CPU this thread runs on" holds still
    victim = kill_process(child.pid, lambda: True)
    try:
        hasten(victim, priority)
        assert victim.hastened == {str(child.pid): "ok"}
        # a killed child stays until it is waited for: its policy can be read back
        policy = os.SCHED_FIFO if priority else os.SCHED_OTHER
        assert os.sched_getscheduler(child.pid) == policy
        assert os.sched_getparam(child.pid).sched_priority == priority
        assert os.sched_getaffinity(child.pid) == (cpus if priority else cpus - {here} or cpus)
    finally:
        os.sched_setaffinity(0, cpus)
        victim.close()
    assert child.wait(timeout=5) == -signal.SIGKILL
    reaped = Victim("process", f"pid:{child.pid}", "pidfd_send_signal", 1, pidfds={child.pid: -1})
    hasten(reaped, priority)  # gone for good: said so, nothing raised
    assert reaped.hastened == {str(child.pid): "ESRCH"}


@contextlib.contextmanager
def _second_reap(spawn: Spawn, cg2: Path, reaper: SecondReaper
                 ) -> Iterator[tuple[subprocess.Popen[bytes], frozenset[int], Victim]]:
    """A child alone in a cgroup, killed while held on one of its CPUs, and ``reaper``
    told to go and done; yields the child, its CPUs and the victim."""
    group = cg2 / "victim"
    child = spawn()
    move(child.pid, group)
    cpus = frozenset(os.sched_getaffinity(child.pid))
    reaper.start()
    kill = KFile(str(group / "cgroup.kill"), True, write=True)
    victim = kill_cgroup(str(group), kill, None, hold_on=max(cpus))
    try:
        reaper.go(victim, max(cpus))
        assert reaper.wait(5)
        yield child, cpus, victim
    finally:
        victim.close()
        kill.close()
        reaper.stop()


@pytest.mark.parametrize("hasten_priority", [1, None], ids=["hasten", "release-only"])
def test_the_second_reaper_reaps_then_lets_the_held_victim_go(
        spawn: Spawn, cg2: Path, hasten_priority: int | None) -> None:
    """While the main thread reaps (here: waits), the second thread reaps the victim too,
    then lets it off the CPU it was held on: back on its own CPUs, hastened or not."""
    reaper = SecondReaper(hasten_priority, None)
    with _second_reap(spawn, cg2, reaper) as (child, cpus, victim):
        assert set(reaper.results) == {str(child.pid)}
        assert set(reaper.results.values()) <= MRELEASE_OK
        assert victim.sent_ns < reaper.reaped_ns <= reaper.released_ns
        if hasten_priority is None:
            assert victim.hastened == {}
            assert os.sched_getscheduler(child.pid) == os.SCHED_OTHER
        else:
            assert victim.hastened == {str(child.pid): "ok"}
            assert os.sched_getscheduler(child.pid) == os.SCHED_FIFO
        assert os.sched_getaffinity(child.pid) == cpus
    assert not reaper._thread.is_alive()
    assert child.wait(timeout=5) == -signal.SIGKILL


def test_beside_the_exit_the_second_reaper_lets_the_victim_go_first(
        spawn: Spawn, cg2: Path) -> None:
    """reap_beside_exit: the held victim is let go (hastened) before this thread's reap,
    which runs as a normal task under it; then the thread is realtime again, and the
    keeper, which left it alone meanwhile, watches it as before."""
    keeper = RealtimeKeeper(10)
    keeper.active = True
    reaper = SecondReaper(1, keeper, beside=True)
    with _second_reap(spawn, cg2, reaper) as (child, _, victim):
        assert victim.sent_ns < reaper.released_ns < reaper.reaped_ns
        assert set(reaper.results.values()) <= MRELEASE_OK
        assert victim.hastened == {str(child.pid): "ok"}
        assert child.wait(timeout=5) == -signal.SIGKILL
        tid = reaper._thread.native_id
        assert tid is not None and tid in keeper.tids and not keeper.excused
        assert os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO


def test_the_keeper_leaves_an_excused_thread_alone(spawn: Spawn) -> None:
    child = spawn()
    keeper = RealtimeKeeper(10)
    keeper.active = True
    keeper.add(child.pid)
    keeper.excuse(child.pid, True)
    assert keeper.check() == []
    assert os.sched_getscheduler(child.pid) == os.SCHED_OTHER
    keeper.excuse(child.pid, False)
    assert keeper.check() == [f"{child.pid}: was SCHED_OTHER"]
    assert os.sched_getscheduler(child.pid) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO


def test_kill_process_refuses_when_pid_changed(spawn: Spawn) -> None:
    child = spawn()
    with pytest.raises(KillError, match="reused or exited"):
        kill_process(child.pid, lambda: False)
    assert child.poll() is None


def open_pidfds() -> int:
    """How many pidfds this process holds now."""
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd) == "anon_inode:[pidfd]"
    return count


class PidfdsAtWrite(KFile):
    """cgroup.kill that notes how many pidfds were open when it was written."""

    __slots__ = ("pidfds_at_write",)

    def __init__(self, path: str, keep: bool, write: bool = False) -> None:
        super().__init__(path, keep, write)
        self.pidfds_at_write: list[int] = []

    def write(self, data: bytes) -> None:
        self.pidfds_at_write.append(open_pidfds())
        super().write(data)


@pytest.mark.parametrize("method", ["cgroup.kill", "pidfd_send_signal"])
def test_kill_cgroup(spawn: Spawn, cg2: Path, method: str) -> None:
    group = cg2 / "victim"
    kids = [spawn(), spawn()]
    move(kids[0].pid, group)
    move(kids[1].pid, group / "nested")
    kill = (PidfdsAtWrite(str(group / "cgroup.kill"), True, write=True)
            if method == "cgroup.kill" else None)
    events = KFile(str(group / "cgroup.events"), True)
    before = open_pidfds()
    victim = kill_cgroup(str(group), kill, events)
    try:
        assert victim.method == method
        # pinned before cgroup.kill (or while each is signalled): none has exited yet
        assert sorted(victim.pidfds) == sorted(k.pid for k in kids)
        if kill is not None:  # and before, not after: the reap can follow the signal
            assert kill.pidfds_at_write == [before + 2]
            assert list(victim.before_ms) == ["list", "pin", "kill"]  # each step's ms
            assert all(ms >= 0 for ms in victim.before_ms.values())
        assert set(mrelease(victim).values()) <= MRELEASE_OK
        assert wait_gone(victim, 5_000_000_000, 20, lambda: None) > 0
    finally:
        victim.close()
        events.close()
        if kill is not None:
            kill.close()
    assert [k.wait(timeout=5) for k in kids] == [-signal.SIGKILL] * 2


@pytest.mark.parametrize("priority", [1, 0], ids=["fifo", "cpu-move-only"])
def test_tasks_held_on_the_reaping_cpu_go_back_to_their_own_when_hastened(
        spawn: Spawn, cg2: Path, priority: int) -> None:
    """hold_on keeps the tasks on oomguard's CPU from before the kill, so none runs its
    exit (and detaches its memory) before the reap; hasten() then lets each go to the
    CPUs it had (less that one, when it gives no realtime priority)."""
    group = cg2 / "victim"
    child = spawn()
    move(child.pid, group)
    cpus = frozenset(os.sched_getaffinity(child.pid))
    reaping = min(cpus)
    kill = KFile(str(group / "cgroup.kill"), True, write=True)
    victim = kill_cgroup(str(group), kill, None, hold_on=reaping)
    try:
        assert victim.affinity == {child.pid: cpus}
        assert os.sched_getaffinity(child.pid) == {reaping}
        assert list(victim.before_ms) == ["list", "pin", "hold", "kill"]
        hasten(victim, priority, reaping)
        assert victim.hastened == {str(child.pid): "ok"}
        assert os.sched_getaffinity(child.pid) == (cpus if priority
                                                   else cpus - {reaping} or cpus)
    finally:
        victim.close()
        kill.close()
    assert child.wait(timeout=5) == -signal.SIGKILL


def test_tasks_forked_after_the_pinning_are_pinned_after_the_reap(
        spawn: Spawn, cg2: Path) -> None:
    """The tasks are pinned before cgroup.kill, so the reap can follow the signal; one
    that joined in between is killed too, and pin_rest() pins it for the wait."""
    group = cg2 / "victim"
    kids = [spawn(), spawn()]
    for k in kids:
        move(k.pid, group)
    listed = members(str(group))
    calls: list[str] = []

    def first_only(path: str) -> list[int]:  # as if kids[1] forked after the listing
        calls.append(path)  # (then both, as listed before the kill: a killed task that
        return [kids[0].pid] if len(calls) == 1 else listed  # is not held may be gone)

    kill = KFile(str(group / "cgroup.kill"), True, write=True)
    victim = kill_cgroup(str(group), kill, None, lister=first_only)
    try:
        assert list(victim.pidfds) == [kids[0].pid] and victim.method == "cgroup.kill"
        pin_rest(victim, first_only)
        assert sorted(victim.pidfds) == sorted(k.pid for k in kids)
    finally:
        victim.close()
        kill.close()
    assert [k.wait(timeout=5) for k in kids] == [-signal.SIGKILL] * 2


def test_a_group_killed_task_by_task_is_not_listed_again(spawn: Spawn, cg2: Path) -> None:
    """Without cgroup.kill the sweep pinned each task as it signalled it: pin_rest()
    has nothing to add and does not list the group (the daemon and the watchdog both
    call it whatever the method)."""
    group = cg2 / "victim"
    kid = spawn()
    move(kid.pid, group)
    victim = kill_cgroup(str(group), None, None)
    listed: list[str] = []

    def lister(path: str) -> list[int]:
        listed.append(path)
        return members(path)

    try:
        assert victim.method == "pidfd_send_signal" and list(victim.pidfds) == [kid.pid]
        pin_rest(victim, lister)
        assert listed == [] and list(victim.pidfds) == [kid.pid]
    finally:
        victim.close()
    assert kid.wait(timeout=5) == -signal.SIGKILL


def test_a_big_group_has_only_its_first_tasks_pinned_before_the_kill(
        spawn: Spawn, cg2: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinning (and holding) is a syscall or three per task before the signal: a fork
    storm's hundreds are pinned after the reap instead."""
    monkeypatch.setattr("oomguard.kill.PIN_FIRST", 2)
    group = cg2 / "victim"
    kids = [spawn(), spawn(), spawn()]
    for k in kids:
        move(k.pid, group)
    listed = members(str(group))  # the third, not held, may be gone from a listing after
    kill = KFile(str(group / "cgroup.kill"), True, write=True)
    victim = kill_cgroup(str(group), kill, None, hold_on=min(os.sched_getaffinity(0)))
    try:
        assert list(victim.pidfds) == [k.pid for k in kids[:2]]
        assert list(victim.affinity) == [k.pid for k in kids[:2]]
        pin_rest(victim, lambda path: listed)
        assert sorted(victim.pidfds) == sorted(k.pid for k in kids)
    finally:
        victim.close()
        kill.close()
    assert [k.wait(timeout=5) for k in kids] == [-signal.SIGKILL] * 3


@pytest.mark.parametrize("alone", [True, False])
def test_a_lone_process_is_not_killed_leader_first(spawn: Spawn, cg2: Path, alone: bool) -> None:
    """Leader first is for a main process among siblings; a cgroup of one is killed at
    once, so its reap need not wait out the leader's grace."""
    group = cg2 / "victim"
    kids = [spawn()] if alone else [spawn(), spawn()]
    for k in kids:
        move(k.pid, group)
    kill = KFile(str(group / "cgroup.kill"), True, write=True)
    events = KFile(str(group / "cgroup.events"), True)
    victim = kill_cgroup(str(group), kill, events, leader_grace_ms=200)
    try:
        want = "cgroup.kill" if alone else "leader first, then cgroup.kill"
        assert victim.method == want
        assert wait_gone(victim, 5_000_000_000, 20, lambda: None) > 0
    finally:
        victim.close()
        events.close()
        kill.close()
    assert [k.wait(timeout=5) for k in kids] == [-signal.SIGKILL] * len(kids)


def test_wait_gone_times_out_on_a_live_victim(spawn: Spawn) -> None:
    child = spawn()
    victim = kill_process(child.pid, lambda: True)
    victim.sent_ns = time.monotonic_ns()
    child.wait()  # reaped: the pidfd reports exit at once
    assert wait_gone(victim, 1_000_000_000, 10, lambda: None) > 0
    victim.close()
    alive = spawn()
    fd = os.pidfd_open(alive.pid)
    from oomguard.kill import Victim

    fake = Victim(
        "process", f"pid:{alive.pid}", "none", time.monotonic_ns(), pidfds={alive.pid: fd}
    )
    beats: list[int] = []
    assert wait_gone(fake, 150_000_000, 20, lambda: beats.append(1)) == 0
    assert len(beats) >= 3  # the main loop keeps beating while it waits
    fake.close()
    assert alive.poll() is None


# -- watchdog --------------------------------------------------------------------------


def read_log(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_watchdog_kills_top_candidate_when_main_loop_is_late(spawn: Spawn, tmp_path: Path) -> None:
    child = spawn()
    log = JsonLog.open(str(tmp_path / "log.jsonl"))
    wd = Watchdog(60, log, threading.Lock())
    wd.set_target(Handle("process", f"pid:{child.pid}", child.pid, os.pidfd_open(child.pid)))
    wd.last_beat = time.monotonic_ns() - 1_000_000_000  # the main loop is stuck
    wd.start()
    try:
        assert child.wait(timeout=5) == -signal.SIGKILL
        wait_until(lambda: wd.fired is not None)
    finally:
        wd.stop()
        log.close()
    assert wd.fired is not None and wd.fired.source == "watchdog"
    wd.fired.close()
    events = read_log(tmp_path / "log.jsonl")
    assert [e["event"] for e in events] == ["watchdog", "signal", "mrelease"]
    assert events[0]["target"] == f"pid:{child.pid}" and float(str(events[0]["late_ms"])) >= 60
    assert events[1]["source"] == "watchdog" and events[1]["method"] == "pidfd_send_signal"


def test_watchdog_waits_for_danger_when_the_main_loop_is_late(
    spawn: Spawn, tmp_path: Path
) -> None:
    """A late main loop with memory above the floor (CPU starvation, say) is no reason to
    kill: logged once; the kill comes when the floor is crossed, the loop still stuck."""
    child = spawn()
    log = JsonLog.open(str(tmp_path / "log.jsonl"))
    meminfo = tmp_path / "meminfo"
    fake_meminfo(meminfo, 1_000_000, 600_000)
    floor = MemFloor(Detect(mem_available_min_pct=50, meminfo=str(meminfo)), keep=False)
    wd = Watchdog(60, log, threading.Lock(), in_danger=lambda: floor.check() is not None)
    wd.set_target(Handle("process", f"pid:{child.pid}", child.pid, os.pidfd_open(child.pid)))
    wd.last_beat = time.monotonic_ns() - 1_000_000_000  # the main loop is stuck
    wd.start()
    try:
        wait_until(lambda: (tmp_path / "log.jsonl").read_text().count("watchdog_waived") == 1)
        time.sleep(0.3)  # several more periods: still no kill, no second line
        assert child.poll() is None
        fake_meminfo(meminfo, 1_000_000, 400_000)  # now in danger
        assert child.wait(timeout=5) == -signal.SIGKILL
        wait_until(lambda: wd.fired is not None)
    finally:
        wd.stop()
        log.close()
        floor.close()
    events = read_log(tmp_path / "log.jsonl")
    assert [e["event"] for e in events] == ["watchdog_waived", "watchdog", "signal", "mrelease"]
    assert wd.fired is not None
    wd.fired.close()


def test_watchdog_stays_quiet_while_beaten_or_while_main_loop_kills(
    spawn: Spawn, tmp_path: Path
) -> None:
    child = spawn()
    lock = threading.Lock()
    log = JsonLog.open(str(tmp_path / "log.jsonl"))
    wd = Watchdog(100, log, lock)
    wd.set_target(Handle("process", f"pid:{child.pid}", child.pid, os.pidfd_open(child.pid)))
    wd.start()
    try:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            wd.beat()
            time.sleep(0.01)
        assert child.poll() is None
        with lock:  # the main loop is mid-kill: the watchdog must not add a second kill
            assert wd.check_and_fire(10**9) is False
        assert child.poll() is None and wd.fired is None
    finally:
        wd.stop()
        log.close()
    assert (tmp_path / "log.jsonl").read_text() == ""


@pytest.mark.parametrize("hasten_priority", [1, None], ids=["hasten", "off"])
def test_watchdog_hastens_its_victim_as_the_main_loop_does(
        spawn: Spawn, tmp_path: Path, hasten_priority: int | None) -> None:
    """The watchdog's kill was the one left without it: on a 6.1 evict run its victim took
    469 ms to exit. Now it runs its exit at SCHED_FIFO too (when hasten_victim is on)."""
    child = spawn()
    log = JsonLog.open(str(tmp_path / "log.jsonl"))
    wd = Watchdog(50, log, threading.Lock(), hasten_priority=hasten_priority)
    wd.set_target(Handle("process", f"pid:{child.pid}", child.pid, os.pidfd_open(child.pid)))
    try:
        assert wd.check_and_fire(10**9) is True
        # killed but not yet waited for: its policy can be read back
        policy = os.SCHED_FIFO if hasten_priority else os.SCHED_OTHER
        assert os.sched_getscheduler(child.pid) == policy
    finally:
        wd.stop()
        log.close()
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert wd.fired is not None
    wd.fired.close()
    sig = [e for e in read_log(tmp_path / "log.jsonl") if e["event"] == "signal"][0]
    assert sig.get("hastened") == ({str(child.pid): "ok"} if hasten_priority else None)


def _watchdog_fires_at_a_cgroup(spawn: Spawn, cg2: Path, tmp_path: Path,
                                 open_flags: int
                                 ) -> tuple[subprocess.Popen[bytes], Watchdog, JsonLog]:
    """A watchdog aimed at a cgroup of one idle child through a cgroup.kill opened with
    ``open_flags``, fired late; the child is dead by SIGKILL when it returns."""
    child = spawn()
    group = cg2 / "top"
    move(child.pid, group)
    log = JsonLog.open(str(tmp_path / "log.jsonl"))
    wd = Watchdog(50, log, threading.Lock())
    fd = os.open(group / "cgroup.kill", open_flags | os.O_CLOEXEC)
    wd.set_target(Handle("cgroup", str(group), fd=fd, path=str(group)))
    assert wd.check_and_fire(10**9) is True
    assert child.wait(timeout=5) == -signal.SIGKILL
    assert wd.fired is not None
    return child, wd, log


def test_watchdog_kills_a_cgroup_through_its_preopened_fd(
    spawn: Spawn, cg2: Path, tmp_path: Path
) -> None:
    child, wd, log = _watchdog_fires_at_a_cgroup(spawn, cg2, tmp_path, os.O_WRONLY)
    assert wd.fired is not None and wd.fired.method == "cgroup.kill"
    # nothing listed by path before the write; its tasks are listed, pinned and reaped
    # after it, those still there: a task still in its exit is listed, one whose exit is
    # done is not (this idle child was gone 0.2 ms after the write in one CI run)
    assert list(wd.fired.before_ms) == ["kill"]
    pinned = [str(pid) for pid in wd.fired.pidfds]
    assert set(pinned) <= {str(child.pid)}
    wd.fired.close()
    wd.stop()
    log.close()
    reap = [e for e in read_log(tmp_path / "log.jsonl") if e["event"] == "mrelease"][0]
    results = reap["results"]
    assert isinstance(results, dict) and list(results) == pinned, results


def test_watchdog_cgroup_kill_falls_back_to_a_signal_per_task(
    spawn: Spawn, cg2: Path, tmp_path: Path
) -> None:
    """Its pre-opened cgroup.kill refuses the write (here: opened read-only): every task
    gets SIGKILL through a pidfd instead, and the refusal is kept."""
    child, wd, log = _watchdog_fires_at_a_cgroup(spawn, cg2, tmp_path, os.O_RDONLY)
    assert wd.fired is not None and wd.fired.method == "pidfd_send_signal"
    assert wd.fired.errors[0].startswith("cgroup.kill: "), wd.fired.errors
    assert list(wd.fired.pidfds) == [child.pid]
    wd.fired.close()
    wd.stop()  # (closes the handle's fd)
    log.close()


@pytest.mark.parametrize("why", ["protect_pids", "kill failed"])
def test_the_tick_aims_the_watchdog_past_a_vetoed_top(
        spawn: Spawn, cg2: Path, tmp_path: Path, why: str) -> None:
    """The watchdog fires at the tick's top candidate without a second look: that top
    must be what a kill would choose, never a cgroup holding a protected pid (or one
    whose kill just failed)."""
    work = cg2 / "workload"
    shielded, victim = spawn(), spawn()
    move(shielded.pid, work / "a")  # first of two equal candidates: the plain rank's top
    move(victim.pid, work / "b")
    protect = [shielded.pid] if why == "protect_pids" else []
    cfg = parse({"detect": {"mem_available_min_pct": 0.001},
                 "policy": {"cgroups": [f"{work}/*"], "protect_pids": protect},
                 "guards": {"mlockall": False, "prefault_heap": False, "oom_score_adj": False,
                            "realtime": False, "cgroup": False, "watchdog": True}})
    daemon = Daemon(cfg, JsonLog.open(str(tmp_path / "log.jsonl")))
    try:
        daemon.start()
        plain = rank(daemon.cands, daemon.rules).chosen
        assert plain is not None and plain.cand.key == str(work / "a")
        if why == "kill failed":
            daemon.failed[str(work / "a")] = (time.monotonic_ns() + 10**10, "kill failed")
        daemon._iterate(0)
        assert daemon.wd is not None and daemon.wd.target is not None
        assert daemon.wd.target.label == str(work / "b")
    finally:
        daemon.close()
    assert shielded.poll() is None and victim.poll() is None


@pytest.mark.parametrize("slow", ["refresh", "warm_top"])
def test_a_slow_step_of_the_tick_is_named_in_a_late_line(
        spawn: Spawn, cg2: Path, tmp_path: Path, slow: str) -> None:
    """A tick that overran says which of its steps took the time."""
    move(spawn().pid, cg2 / "workload" / "a")
    cfg = parse({"detect": {"mem_available_min_pct": 0.001},
                 "policy": {"cgroups": [f"{cg2}/workload/*"]},
                 "guards": {"mlockall": False, "prefault_heap": False, "oom_score_adj": False,
                            "realtime": False, "cgroup": False, "watchdog": False}})
    path = tmp_path / "log.jsonl"
    daemon = Daemon(cfg, JsonLog.open(str(path)))
    try:
        daemon.start()
        step = getattr(daemon, f"_{slow}")

        def stalled() -> None:
            time.sleep(0.05)  # 5 x LATE_NS
            step()

        setattr(daemon, f"_{slow}", stalled)
        daemon._iterate(0)
    finally:
        daemon.close()
        daemon.log.close()
    late = [e for e in read_log(path) if e["event"] == "late"]
    assert [e["step"] for e in late] == [slow] and 50 <= float(str(late[0]["by_ms"])) < 1000


def test_cgroup_veto_reads_each_members_oom_score_adj_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decision-time scan reads only tasks that appeared since the last scan."""
    import oomguard.candidates as cands

    reads: list[int] = []
    adjs = {101: 0, 102: 500, 103: -1000}

    def fake_adj(pid: int) -> int | None:
        reads.append(pid)
        return adjs.get(pid)

    monkeypatch.setattr(cands, "oom_score_adj", fake_adj)
    cg = tmp_path / "workload"
    (cg / "child").mkdir(parents=True)
    (cg / "cgroup.procs").write_text("101\n")
    (cg / "child" / "cgroup.procs").write_text("102\n")
    veto = cands.CgroupVeto(frozenset({7}), self_pid=9, lister=cands.members)
    assert veto.why(str(cg)) == "" and sorted(reads) == [101, 102]
    assert veto.why(str(cg)) == "" and len(reads) == 2  # nothing new: nothing read
    (cg / "child" / "cgroup.procs").write_text("102\n103\n")
    assert veto.why(str(cg)) == "contains pid 103 with oom_score_adj=-1000"
    assert reads[2:] == [103]
    (cg / "child" / "cgroup.procs").write_text("7\n")  # 102 and 103 exited
    assert veto.why(str(cg)) == "contains protected pid 7"
    (cg / "child" / "cgroup.procs").write_text("9\n")
    assert veto.why(str(cg)) == "contains oomguard itself"
    assert set(veto.adj[str(cg)]) == {101}  # exited pids are forgotten
    veto.forget(set())
    assert veto.adj == {}


def test_rate_limited_events_say_how_many_were_left_out(tmp_path: Path) -> None:
    log = JsonLog.open(str(tmp_path / "log.jsonl"))
    late = RateLimited(log, "late", key="step", every_ns=1_000)
    sent = [late.emit(t, step="refresh", by_ms=t) for t in (0, 10, 20, 999)]
    sent += [late.emit(30, step="wake", by_ms=1)]  # its own key, its own budget
    sent += [late.emit(1_000, step="refresh", by_ms=1_000),
             late.emit(2_500, step="refresh", by_ms=2_500)]
    log.close()
    assert sent == [True, False, False, False, True, True, True]
    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [(e["event"], e["step"], e["by_ms"], e.get("skipped")) for e in lines] == [
        ("late", "refresh", 0, None), ("late", "wake", 1, None),
        ("late", "refresh", 1_000, 3), ("late", "refresh", 2_500, None)]


MEMORY_STAT = (b"anon 367001600\nfile 4096\nkernel 12288\nanon_thp 220200960\n"
               b"file_thp 0\nshmem_thp 0\n")


def test_small_anon_is_anon_less_its_huge_pages() -> None:
    assert small_anon(MEMORY_STAT) == 367001600 - 220200960
    assert small_anon(b"anon 4096\nfile 0\n") == 4096  # a kernel without THP counters
    assert small_anon(b"file 4096\n") is None
    assert small_anon(b"anon 2097152\nanon_thp 4194304\n") == 0  # never below zero


def test_small_anon_comes_from_the_held_memory_stat(tmp_path: Path) -> None:
    """Read after the signal, so from the fd held since discovery (its new contents)."""
    hog = tmp_path / "work" / "hog"
    hog.mkdir(parents=True)
    for name in ("memory.current", "cgroup.procs", "cgroup.events"):
        (hog / name).write_text("0\n")
    (hog / "memory.stat").write_bytes(b"anon 4096\n")
    src = CgroupSource((f"{tmp_path}/work/*",), True, want_score=False)
    try:
        src.refresh()
        (hog / "memory.stat").write_bytes(MEMORY_STAT)  # same inode: the held fd sees it
        assert src.small_anon_bytes(str(hog)) == 367001600 - 220200960
        assert src.small_anon_bytes(str(tmp_path / "work" / "other")) is None
    finally:
        src.close()


def test_the_small_page_share_is_read_on_the_tick_and_scaled_at_the_kill(
        tmp_path: Path) -> None:
    """An at-once reap is decided before the kill, from the share of memory.current that
    was anonymous in small pages at a recent tick, times memory.current now: nothing is
    read between the signal and the reap."""
    hog = tmp_path / "work" / "hog"
    hog.mkdir(parents=True)
    for name in ("cgroup.procs", "cgroup.events"):
        (hog / name).write_text("0\n")
    (hog / "memory.current").write_text(f"{8 << 20}\n")
    (hog / "memory.stat").write_bytes(b"anon 4194304\n")
    src = CgroupSource((f"{tmp_path}/work/*",), True, want_score=False)
    path = str(hog)
    try:
        src.refresh()
        src.note_small_share(path, 10**10)  # 8 MiB: under SHARE_MIN_BYTES, not read
        assert src.small_anon_estimate(path, 10**10) is None
        (hog / "memory.current").write_text(f"{400 << 20}\n")
        (hog / "memory.stat").write_bytes(MEMORY_STAT)  # 140 of 350 MiB anon in small pages
        src.refresh(discover=False)
        src.note_small_share(path, 10**10)
        small = 367001600 - 220200960
        assert src.small_anon_estimate(path, 10**10) == pytest.approx(small, abs=1)
        (hog / "memory.stat").write_bytes(b"anon 0\n")  # not re-read within a second
        (hog / "memory.current").write_text(f"{800 << 20}\n")
        src.refresh(discover=False)
        src.note_small_share(path, 10**10 + SHARE_EVERY_NS - 1)
        assert src.small_anon_estimate(path, 10**10 + 1) == pytest.approx(2 * small, abs=1)
        assert src.small_anon_estimate(path, 10**10 + SHARE_STALE_NS + 1) is None
        src.note_small_share(path, 10**10 + SHARE_EVERY_NS)
        assert src.small_anon_estimate(path, 10**10 + SHARE_EVERY_NS) == 0
        assert src.small_anon_estimate(str(tmp_path / "work" / "other"), 10**10) is None
    finally:
        src.close()


@pytest.mark.parametrize(("small_mib", "at_once_mib", "second_reaper", "before_kill", "want"), [
    (140, 64, True, True, ("together", 0)),
    (140, 64, True, False, ("at_once", 0)),  # read after the signal: too late to hold it
    (140, 64, False, True, ("at_once", 0)),
    (10, 64, True, True, ("later", 50)),
    (None, 64, True, True, ("later", 50)),
    (140, 0, True, True, ("later", 50)),  # reap_at_once_mib = 0: never at once
])
def test_the_reap_plan_follows_the_victims_small_page_memory(
        small_mib: int | None, at_once_mib: int, second_reaper: bool, before_kill: bool,
        want: tuple[str, int]) -> None:
    """Measured on 6.1: a hog's exit that frees its memory page by page was faster with
    a reap beside it; one of huge pages (6.12) only contended, so it keeps the delay. Two
    reaps with the victim held need the estimate from before the kill (the hold starts
    before the signal); ``second_reaper = false`` leaves the main thread to reap alone
    beside the hastened victim."""
    policy = parse({"detect": {"mem_available_min_pct": 10},
                    "policy": {"cgroups": ["/x/*"], "reap_after_ms": 50,
                               "reap_at_once_mib": at_once_mib,
                               "second_reaper": second_reaper}}).policy
    small = None if small_mib is None else small_mib * 1024 * 1024
    plan = reap_plan(policy, small, before_kill)
    assert (plan.how, plan.after_ns // 1_000_000) == want
