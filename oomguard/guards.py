"""The self-protection guards, each switchable for ablation, and the privilege check.

A guard that cannot be applied is reported (never silently skipped); only a
missing privilege stops the start, because then the config lies about what runs.
"""

from __future__ import annotations

import errno
import gc
import os
import resource
import threading
from dataclasses import dataclass

from . import libc
from .config import Config, Guards

CAP_IPC_LOCK = 14
CAP_SYS_NICE = 23
CAP_SYS_RESOURCE = 24
MIB = 1024 * 1024


@dataclass(slots=True)
class GuardResult:
    name: str
    status: str  # "applied" | "partial" | "unsupported" | "failed"
    detail: str = ""

    def as_log(self) -> dict[str, object]:
        return {"guard": self.name, "status": self.status, "detail": self.detail}


def effective_caps() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"CapEff:"):
                return int(line.split()[1], 16)
    return 0


def _has(caps: int, cap: int) -> bool:
    return bool(caps >> cap & 1)


def _adj_already_min() -> bool:
    try:
        with open("/proc/self/oom_score_adj", "rb") as f:
            return int(f.read()) == -1000
    except (OSError, ValueError):
        return False


def missing_privileges(cfg: Config, caps: int | None = None) -> str:
    """One line naming every enabled guard we cannot apply for lack of privilege, or ''."""
    caps = effective_caps() if caps is None else caps
    g = cfg.guards
    missing: list[str] = []
    if g.mlockall and not _has(caps, CAP_IPC_LOCK):
        soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        if soft != resource.RLIM_INFINITY:
            missing.append("mlockall needs CAP_IPC_LOCK (or an unlimited RLIMIT_MEMLOCK)")
    if g.realtime and not _has(caps, CAP_SYS_NICE):
        soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
        if soft != resource.RLIM_INFINITY and soft < g.realtime_priority:
            missing.append(
                f"realtime needs CAP_SYS_NICE (or RLIMIT_RTPRIO >= {g.realtime_priority})"
            )
    if g.oom_score_adj and not _has(caps, CAP_SYS_RESOURCE) and not _adj_already_min():
        missing.append("oom_score_adj=-1000 needs CAP_SYS_RESOURCE")
    if g.cgroup:
        probe = g.cgroup  # the cgroup's procs file, or the nearest ancestor we would mkdir in
        while not os.path.exists(probe) and probe != "/":
            probe = os.path.dirname(probe)
        if probe == g.cgroup:
            probe = os.path.join(probe, "cgroup.procs")
        if not os.access(probe, os.W_OK):
            missing.append(f"cgroup needs write access to {probe}")
    if not _has(caps, CAP_SYS_RESOURCE):
        for t in cfg.detect.psi:
            if t.window_us % 2_000_000:
                missing.append(
                    f"psi window {t.window_us // 1000} ms on {t.file} needs CAP_SYS_RESOURCE "
                    "(or a multiple of 2000 ms)"
                )
    if not missing:
        return ""
    return "refusing to start: " + "; ".join(missing) + " (or switch the guard off)"


def _write(path: str, text: str) -> str:
    """Write a control file; '' on success, else a short reason."""
    try:
        with open(path, "w") as f:
            f.write(text)
        return ""
    except OSError as e:
        return f"{os.path.basename(path)}: {e.strerror}"


def apply_cgroup(g: Guards) -> GuardResult:
    """Create our own cgroup, protect its memory, raise its CPU weight, move into it."""
    path = g.cgroup
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return GuardResult("cgroup", "failed", f"mkdir {path}: {e.strerror}")
    knobs = {"memory.min": str(g.memory_min_mib * MIB), "cpu.weight": str(g.cpu_weight)}
    want = {"memory.min": "+memory", "cpu.weight": "+cpu"}
    parent = os.path.dirname(path)
    problems: list[str] = []
    for knob, value in knobs.items():
        if not os.path.exists(os.path.join(path, knob)):
            # Controller not enabled for us: ask the parent (fails if it is not allowed to).
            why = _write(os.path.join(parent, "cgroup.subtree_control"), want[knob])
            if why:
                problems.append(f"{knob} unavailable (enabling {want[knob]} in parent: {why})")
                continue
        why = _write(os.path.join(path, knob), value)
        if why:
            problems.append(why)
    why = _write(os.path.join(path, "cgroup.procs"), str(os.getpid()))
    if why:
        return GuardResult("cgroup", "failed", f"{path}: {why}")
    if problems:
        return GuardResult("cgroup", "partial", f"moved to {path}; " + "; ".join(problems))
    return GuardResult(
        "cgroup", "applied", f"{path} memory.min={knobs['memory.min']} cpu.weight={g.cpu_weight}"
    )


def apply_oom_score_adj() -> GuardResult:
    why = _write("/proc/self/oom_score_adj", "-1000")
    if why:
        return GuardResult("oom_score_adj", "failed", why)
    return GuardResult("oom_score_adj", "applied", "-1000")


def prepare_heap(heap_mib: int) -> GuardResult:
    """Make malloc keep what it gets (no mmap, no trim, one arena), then fault in a warm heap."""
    opts = {
        "M_MMAP_MAX": (libc.M_MMAP_MAX, 0),
        "M_TRIM_THRESHOLD": (libc.M_TRIM_THRESHOLD, -1),
        "M_TOP_PAD": (libc.M_TOP_PAD, heap_mib * MIB),
        "M_ARENA_MAX": (libc.M_ARENA_MAX, 1),
    }
    failed = [name for name, (param, value) in opts.items() if not libc.mallopt(param, value)]
    warm = bytearray(heap_mib * MIB)  # zero-filled: every page touched
    del warm  # freed to malloc's heap, which never gives it back now
    allocator = os.environ.get("PYTHONMALLOC", "pymalloc")
    detail = f"heap_mib={heap_mib} allocator={allocator}"
    if failed:
        return GuardResult("prefault_heap", "partial", f"{detail}; mallopt failed: {failed}")
    return GuardResult("prefault_heap", "applied", detail)


def freeze_gc() -> None:
    """Everything allocated so far is permanent: keep the collector off the hot path."""
    gc.collect()
    gc.freeze()
    gc.disable()


def apply_mlockall() -> GuardResult:
    err = libc.mlockall()
    if err:
        return GuardResult("mlockall", "failed", errno.errorcode.get(err, str(err)))
    return GuardResult("mlockall", "applied", "MCL_CURRENT|MCL_FUTURE")


def start_small(thread: threading.Thread, stack_kib: int = 256) -> None:
    """Start a helper thread with a small stack: under mlockall a thread stack is
    locked in full."""
    prev = threading.stack_size(stack_kib * 1024)
    try:
        thread.start()
    finally:
        threading.stack_size(prev)


def set_fifo(tid: int, priority: int) -> None:
    """SCHED_FIFO for one thread (0 = this one), reset in any child; raises OSError."""
    os.sched_setscheduler(tid, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))


class RealtimeKeeper:
    """Puts oomguard's threads back on SCHED_FIFO when someone else changes their policy.

    A tool that demotes every task in a cgroup (SCHED_IDLE, nice 19) would otherwise
    silently undo the guard; checking is one syscall per thread, done by the main loop on
    every tick and by the watchdog on every period, so whichever still runs restores both.
    """

    def __init__(self, priority: int) -> None:
        self.priority = priority
        self.tids: list[int] = []
        self.lock = threading.Lock()
        self.active = False  # set once the guard itself was applied
        self.excused: set[int] = set()  # off FIFO on purpose for now (the second reaper)

    def add(self, tid: int) -> None:
        self.tids.append(tid)

    def excuse(self, tid: int, on: bool) -> None:
        """While ``on``, check() leaves ``tid`` on whatever policy it set itself."""
        if on:
            self.excused.add(tid)
        else:
            self.excused.discard(tid)

    def join(self) -> None:
        """Called by a thread as it starts: SCHED_RESET_ON_FORK gives a new thread
        SCHED_OTHER (it applies to every clone, threads too), so it claims FIFO itself."""
        tid = threading.get_native_id()
        self.add(tid)
        if self.active:
            try:
                set_fifo(tid, self.priority)
            except OSError:
                pass  # check() reports it when it can

    def check(self) -> list[str]:
        """Re-apply where lost; one 'tid: was POLICY' per thread put back."""
        if not self.active or not self.lock.acquire(blocking=False):
            return []  # the other thread is at it
        try:
            fixed = []
            for tid in self.tids:
                if tid in self.excused:
                    continue
                try:
                    policy = os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK
                    if policy == os.SCHED_FIFO:
                        continue
                    set_fifo(tid, self.priority)
                    fixed.append(f"{tid}: was {POLICY_NAMES.get(policy, str(policy))}")
                except OSError:
                    continue
            return fixed
        finally:
            self.lock.release()


POLICY_NAMES = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_BATCH: "SCHED_BATCH",
                os.SCHED_IDLE: "SCHED_IDLE", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}


def apply_realtime(priority: int) -> GuardResult:
    """SCHED_FIFO for this thread (threads started later inherit it), reset in any child."""
    try:
        set_fifo(0, priority)
    except OSError as e:
        return GuardResult("realtime", "failed", e.strerror or str(e))
    return GuardResult("realtime", "applied", f"SCHED_FIFO priority {priority}")


def apply_kernel_reserve(option: int, arg: int) -> GuardResult:
    err = libc.prctl(option, arg)
    if err == errno.EINVAL:
        return GuardResult("kernel_reserve", "unsupported", f"prctl({option}, {arg}): EINVAL")
    if err:
        code = errno.errorcode.get(err, str(err))
        return GuardResult("kernel_reserve", "failed", f"prctl({option}, {arg}): {code}")
    return GuardResult("kernel_reserve", "applied", f"prctl({option}, {arg})")


def raise_nofile() -> str:
    """Held fds need room: lift the soft RLIMIT_NOFILE to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    return f"nofile={soft}"
