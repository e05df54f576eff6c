"""Starting and watching the processes of a scenario.

The harness protects itself (``oom_score_adj -1000``, SCHED_FIFO, mlockall)
and children inherit the first two, so every child is reset here before it
executes anything: normal scheduling, ``oom_score_adj 0``, its own cgroup,
and a parent-death signal so nothing outlives the harness.
"""

from __future__ import annotations

import collections
import ctypes
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos.procname import set_thread_name

PR_SET_PDEATHSIG = 1
MCL_CURRENT, MCL_FUTURE = 1, 2

_libc = ctypes.CDLL(None, use_errno=True)


def set_pdeathsig(sig: int = signal.SIGKILL) -> None:
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def mlockall() -> bool:
    return _libc.mlockall(MCL_CURRENT | MCL_FUTURE) == 0


def protect_self(realtime_priority: int = 20) -> list[str]:
    """Make the harness hard to kill and hard to starve; returns what was applied."""
    applied: list[str] = []
    try:
        Path("/proc/self/oom_score_adj").write_text("-1000")
        applied.append("oom_score_adj=-1000")
    except OSError:
        pass
    if realtime_priority > 0:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(realtime_priority))
            applied.append(f"SCHED_FIFO:{realtime_priority}")
        except OSError:
            pass
    if mlockall():
        applied.append("mlockall")
    return applied


def _child_setup(cgroup_procs: str | None, nice: int) -> Callable[[], None]:
    def setup() -> None:
        set_pdeathsig(signal.SIGKILL)
        try:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        os.write(fd, b"0")
        os.close(fd)
        if nice:
            os.nice(nice)
        if cgroup_procs:
            fd = os.open(cgroup_procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)

    return setup


class ExitInfo:
    """How a watched process ended, from its return code; and its pidfd's release.

    Shared by plain processes (Child) and containers (runtimes.docker.ContainerHandle).
    """

    pidfd: int
    returncode: int | None

    def close(self) -> None:
        try:
            os.close(self.pidfd)
        except OSError:
            pass

    @property
    def exit_signal(self) -> int | None:
        rc = self.returncode
        return -rc if rc is not None and rc < 0 else None

    @property
    def exit_code(self) -> int | None:
        rc = self.returncode
        return rc if rc is not None and rc >= 0 else None


@dataclass
class Child(ExitInfo):
    """A started process: its pidfd, its output (bounded) and how it ended."""

    name: str
    popen: subprocess.Popen[bytes]
    pidfd: int
    lines: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=400))
    # every line with the time it was read (kept only when asked: a killer's log, whose
    # claims go on the timeline); stamped here, by the thread that reads the pipe
    stamped: collections.deque[tuple[int, str]] | None = None
    exit_t_ns: int | None = None
    returncode: int | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    ready_pattern: str = ""
    ready_t_ns: int | None = None  # when the ready line was read
    stopped_by_harness: bool = False  # still running at teardown: it did not die
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def start_reader(self, log_path: Path | None = None) -> None:
        def read() -> None:
            set_thread_name(f"chaos-r-{self.name}")
            assert self.popen.stdout is not None
            log = open(log_path, "ab") if log_path else None
            try:
                for raw in self.popen.stdout:
                    read_ns = time.monotonic_ns()  # one stamp a line, before the log's write
                    if log:
                        log.write(raw)
                        log.flush()
                    line = raw.decode(errors="replace").rstrip("\n")
                    self.lines.append(line)
                    if self.stamped is not None:
                        self.stamped.append((read_ns, line))
                    if not self.ready.is_set() and self.ready_pattern in line:
                        self.ready_t_ns = read_ns
                        self.ready.set()
            finally:
                if log:
                    log.close()

        self._reader = threading.Thread(target=read, name=f"read-{self.name}", daemon=True)
        self._reader.start()

    def output(self) -> str:
        return "\n".join(self.lines)

    def last_json(self, event: str | None = None) -> dict[str, object]:
        return last_json(self.lines, event)

    def alive(self) -> bool:
        return self.exit_t_ns is None and self.popen.poll() is None

    def reap(self, t_ns: int | None = None) -> None:
        """Record the exit (the pidfd became readable at ``t_ns``)."""
        if self.exit_t_ns is None:
            self.exit_t_ns = t_ns or time.monotonic_ns()
        self.returncode = self.popen.wait()

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            try:
                signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; always reaps."""
        if self.exit_t_ns is None and self.popen.poll() is None:
            self.stopped_by_harness = True
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.returncode = self.popen.wait()
        if self.exit_t_ns is None and not self.stopped_by_harness:
            self.exit_t_ns = time.monotonic_ns()  # ended unseen, between polls
        self.drain()

    def drain(self, timeout_s: float = 2.0) -> None:
        """After the process ended: wait until its last output lines have been read."""
        if self._reader:
            self._reader.join(timeout=timeout_s)



def spawn(name: str, argv: Sequence[str], cgroup_dir: Path | None = None, nice: int = 0,
          env: dict[str, str] | None = None, log_path: Path | None = None,
          ready_pattern: str = "", cwd: Path | None = None, stdin_pipe: bool = False,
          stamp_lines: int = 0) -> Child:
    """Start ``argv`` in ``cgroup_dir``; ``stdin_pipe`` keeps a pipe to its stdin
    (``popen.stdin``) instead of /dev/null, for a child that waits for a go;
    ``stamp_lines`` keeps up to that many of its lines with the time each was read."""
    procs = str(cgroup_dir / "cgroup.procs") if cgroup_dir else None
    stdin = subprocess.PIPE if stdin_pipe else subprocess.DEVNULL
    popen = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, preexec_fn=_child_setup(procs, nice),
                             env=env, cwd=cwd, close_fds=True)
    child = Child(name=name, popen=popen, pidfd=os.pidfd_open(popen.pid),
                  ready_pattern=ready_pattern,
                  stamped=collections.deque(maxlen=stamp_lines) if stamp_lines else None)
    child.start_reader(log_path)
    return child


def thread_cpu_s() -> dict[str, float]:
    """CPU time (s) of this process's live threads so far, summed by thread name, and of
    those gone (the process's total minus the live ones): what the harness itself cost."""
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                run_ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[comm] = out.get(comm, 0.0) + run_ns / 1e9
    times = os.times()  # the whole process, threads gone included (clock ticks)
    gone = times.user + times.system - sum(out.values())
    if gone > 0.01:
        out["(threads gone)"] = gone
    return out


def last_json(lines: collections.deque[str], event: str | None = None) -> dict[str, object]:
    """The last JSON progress line (of ``event``) among a child's output lines."""
    for line in reversed(list(lines)):  # a copy: the reader thread appends meanwhile
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and (event is None or data.get("event") == event):
                return dict(data)
    return {}
