"""How much of a killed victim's teardown can a userspace killer take off it? Prints a table.

A victim (private anonymous memory in 8 MiB mmaps, as the anon hog maps it; huge pages
where the kernel gives them, and ``--small-mib`` of it, or with ``--small`` all of it,
MADV_NOHUGEPAGE: 4 KiB pages, as a hog's tail is under pressure) is killed and freed
one of these ways, and timed from the signal to its exit (its pidfd readable: exit_mm is
done by then, so its memory is back):

  exit         SIGKILL; the victim frees its memory alone, in its exit
  exit_fifo    the same, the victim first given SCHED_FIFO 1 (oomguard's hasten)
  reap1_held   the victim held on the killer's CPU (SCHED_FIFO there), one
               process_mrelease, then let go
  reap2_held   the same, and a second thread reaping beside it on the other CPU
               (oomguard's way with a victim that has much memory in small pages)
  reap_beside  the victim hastened, not held; one process_mrelease right after the
               signal, beside its exit

By default in a throwaway guest (``--kernel``, software emulation here), otherwise
idle: no pressure, so this is the kernel's own freeing, without the reclaim and CPU
contention a scenario adds. ``--here`` runs the same on this machine, natively, in a
memory cgroup of its own (a few hundred MiB of a victim, no pressure). ``--trace
f1,f2`` times those kernel functions per CPU with ftrace's function_graph tracer over
each kill (the guest only; it slows the kill ~3x); ``--stacks FUNC`` records FUNC's
callers instead (e.g. which spinlock the reaps wait for).

    python benchmarks/teardown.py --kernel 6.1 --small --size 160 --rounds 8
    python benchmarks/teardown.py --kernel 6.1 --size 560 --small-mib 140   # spike's hog
    python benchmarks/teardown.py --here --small --size 160 --rounds 8
    python benchmarks/teardown.py --kernel 6.1 --small --size 160 --rounds 1 \\
        --way reap2_held --stacks native_queued_spin_lock_slowpath
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import mmap
import os
import re
import select
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

WAYS = ("exit", "exit_fifo", "reap1_held", "reap2_held", "reap_beside")
MiB = 1 << 20
CHUNK_MIB = 8
MADV_NOHUGEPAGE = 15
SYS_PIDFD_SEND_SIGNAL = 424
SYS_PROCESS_MRELEASE = 448
PR_SET_PDEATHSIG = 1
KILLER_PRIORITY = 10  # the killer's threads; the hastened victim gets 1
TRACING = Path("/sys/kernel/tracing")
ERRNAMES = {3: "ESRCH", 4: "EINTR", 11: "EAGAIN", 22: "EINVAL", 38: "ENOSYS"}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(nr: int, *args: int) -> str:
    """The syscall's outcome by name: "ok" or the errno's."""
    ret = _libc.syscall(ctypes.c_long(nr), *(ctypes.c_long(a) for a in args))
    if ret >= 0:
        return "ok"
    err = ctypes.get_errno()
    return ERRNAMES.get(err, str(err))


@dataclass
class Run:
    way: str
    round: int
    anon_mib: float
    small_mib: float  # anon not in huge pages
    teardown_ms: float  # signal -> the victim's pidfd readable
    reap_ms: float  # signal -> the main reap returned (0: no reap)
    reap2_ms: float  # signal -> the second reap returned (0: none)
    results: str  # the reaps' outcomes, main first
    freed_mib: float  # MemFree after - before


class VictimCgroup:
    """A memory cgroup per victim, so it is charged as a stressor's is: cgroup2 in a
    guest; on this machine its v1 memory controller, where that is what there is."""

    def __init__(self, root: Path, v1: bool) -> None:
        self.root, self.v1 = root, v1

    @classmethod
    def make_root(cls) -> VictimCgroup:
        v2 = Path("/sys/fs/cgroup")
        if (v2 / "cgroup.controllers").exists() and "memory" in (
                v2 / "cgroup.controllers").read_text().split():
            root = v2 / "chaos-teardown"
            root.mkdir(exist_ok=True)
            (v2 / "cgroup.subtree_control").write_text("+memory")
            (root / "cgroup.subtree_control").write_text("+memory")
            return cls(root, v1=False).swept()
        root = v2 / "memory" / "chaos-teardown"
        root.mkdir(exist_ok=True)
        return cls(root, v1=True).swept()

    def swept(self) -> VictimCgroup:
        """Without the victims' cgroups a killed run left (their victims died with it)."""
        for stale in self.root.iterdir():
            if stale.is_dir():
                self.remove(stale)
        return self

    def make(self, name: str, limit_mib: int) -> Path:
        cg = self.root / name
        cg.mkdir()
        (cg / ("memory.limit_in_bytes" if self.v1 else "memory.max")).write_text(
            str(limit_mib * MiB))
        return cg

    def anon_mib(self, cg: Path) -> tuple[float, float]:
        """(anon, anon in huge pages), MiB."""
        stat = dict(line.split() for line in (cg / "memory.stat").read_text().splitlines())
        if self.v1:
            return int(stat["rss"]) / MiB, int(stat["rss_huge"]) / MiB
        return int(stat["anon"]) / MiB, int(stat["anon_thp"]) / MiB

    def remove(self, cg: Path) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                cg.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def close(self) -> None:
        self.remove(self.root)


def _mem_free_kib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemFree:"):
            return int(line.split()[1])
    return 0


def _victim(size_mib: int, small_mib: int, go_r: int, ready_w: int) -> None:
    """The child: back to a normal task, wait to be in its cgroup, map and touch, sleep.
    It dies with the measuring process, whatever ends that."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)  # the parent was gone before the prctl
    os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    os.sched_setaffinity(0, range(os.cpu_count() or 1))
    os.read(go_r, 1)
    page = b"\x5a" * 4096
    maps = []
    chunks = size_mib // CHUNK_MIB
    for i in range(chunks):
        m = mmap.mmap(-1, CHUNK_MIB * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if i >= chunks - small_mib // CHUNK_MIB:  # the tail, as a hog's under pressure
            m.madvise(MADV_NOHUGEPAGE)
        for _ in range(CHUNK_MIB * MiB // len(page)):
            m.write(page)
        maps.append(m)
    os.write(ready_w, b"r")
    while True:
        time.sleep(3600)


class SecondReaper(threading.Thread):
    """process_mrelease on another CPU when told to, as oomguard's second reaper does."""

    def __init__(self, cpu: int) -> None:
        super().__init__(daemon=True, name="reap2")
        self.cpu = cpu
        self.go = threading.Event()
        self.done = threading.Event()
        self.pidfd = -1
        self.result = ""
        self.end_ns = 0

    def run(self) -> None:
        os.sched_setaffinity(0, {self.cpu})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(KILLER_PRIORITY))
        while True:
            self.go.wait()
            self.go.clear()
            self.result = _syscall(SYS_PROCESS_MRELEASE, self.pidfd, 0)
            self.end_ns = time.monotonic_ns()
            self.done.set()


class Tracer:
    """ftrace over each kill: function_graph on a few functions (a duration per call),
    or the function tracer with their callers' stacks. Set up once, then only switched
    on and off: patching kernel text under emulation is slow (and risky, README)."""

    def __init__(self, funcs: list[str], stacks: bool) -> None:
        self.stacks = stacks
        (TRACING / "tracing_on").write_text("0")
        (TRACING / "buffer_size_kb").write_text("32768")
        (TRACING / "set_ftrace_filter").write_text("\n")
        for fn in funcs:
            try:
                with open(TRACING / "set_ftrace_filter", "a") as f:
                    f.write(fn + "\n")
            except OSError:
                print(f"# not traceable here: {fn}", flush=True)
        if stacks:
            (TRACING / "current_tracer").write_text("function")
            (TRACING / "options/func_stack_trace").write_text("1")
        else:
            (TRACING / "options/funcgraph-tail").write_text("1")
            (TRACING / "current_tracer").write_text("function_graph")

    def on(self) -> None:
        (TRACING / "trace").write_text("")
        (TRACING / "tracing_on").write_text("1")

    def off(self) -> None:
        (TRACING / "tracing_on").write_text("0")

    def summary(self) -> list[str]:
        text = (TRACING / "trace").read_text()
        return callers(text) if self.stacks else durations(text)


GRAPH_LINE = re.compile(r"^\s*(\d+)\)\s+[!#@*+$-]?\s*([\d.]+) us\s+\|\s+"
                        r"(?:\}\s*/\*\s*(\S+)\s*\*/|(\S+)\(\);)")


def _header(text: str) -> list[str]:
    """The buffer's "entries-in-buffer/entries-written" line: were events lost?"""
    return [ln.strip("# ") for ln in text.splitlines()[:5] if "entries-in-buffer" in ln]


def durations(text: str) -> list[str]:
    """function_graph output -> per CPU and function: calls and their total time."""
    totals: dict[tuple[int, str], list[float]] = {}
    for line in text.splitlines():
        m = GRAPH_LINE.match(line)
        if m:
            key = (int(m.group(1)), m.group(3) or m.group(4))
            totals.setdefault(key, []).append(float(m.group(2)))
    return _header(text) + [f"cpu{cpu} {fn}: calls {len(v)}, {sum(v) / 1000:.1f} ms"
                            for (cpu, fn), v in sorted(totals.items())]


def callers(text: str) -> list[str]:
    """function tracer output with stacks -> how often each function was on them."""
    seen = collections.Counter(ln.split()[1] for ln in text.splitlines()
                               if ln.lstrip().startswith("=> "))
    return _header(text) + [f"{n:5d} {fn}" for fn, n in seen.most_common(25)]


def one(way: str, rnd: int, size_mib: int, small_mib: int, cgroups: VictimCgroup,
        reaper: SecondReaper, tracer: Tracer | None) -> Run:
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _victim(size_mib, small_mib, go_r, ready_w)
        finally:
            os._exit(1)
    pidfd = os.pidfd_open(pid)
    cg = cgroups.make(f"v{rnd}-{way}", size_mib + 64)
    try:
        (cg / "cgroup.procs").write_text(str(pid))
        os.write(go_w, b"g")
        ready, _, _ = select.select([ready_r, pidfd], [], [], 600)
        if ready_r not in ready:
            raise RuntimeError(f"the victim did not map its {size_mib} MiB")
        anon, thp = cgroups.anon_mib(cg)
        time.sleep(0.2)  # the victim asleep, the machine quiet
        everywhere = os.sched_getaffinity(pid)
        if way in ("exit_fifo", "reap_beside"):
            os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(1))
        held = way.endswith("_held")
        if held:
            os.sched_setaffinity(pid, {os.sched_getaffinity(0).pop()})
        free0 = _mem_free_kib()
        if tracer:
            tracer.on()
        reap_ns = reap2_ns = 0
        results = []
        t0 = time.monotonic_ns()
        _syscall(SYS_PIDFD_SEND_SIGNAL, pidfd, signal.SIGKILL, 0, 0)
        if way == "reap2_held":
            reaper.pidfd = pidfd
            reaper.done.clear()
            reaper.go.set()
        if way.startswith("reap"):
            results.append(_syscall(SYS_PROCESS_MRELEASE, pidfd, 0))
            reap_ns = time.monotonic_ns() - t0
        if way == "reap2_held":
            reaper.done.wait(60)
            reap2_ns = reaper.end_ns - t0
            results.append(reaper.result)
        if held:
            try:
                os.sched_setaffinity(pid, everywhere)
            except OSError:
                pass  # gone already
        select.select([pidfd], [], [], 60)
        t1 = time.monotonic_ns()
        if tracer:
            tracer.off()
        free1 = _mem_free_kib()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for fd in (go_r, go_w, ready_r, ready_w, pidfd):
            os.close(fd)
        cgroups.remove(cg)
    return Run(way, rnd, round(anon, 1), round(anon - thp, 1), (t1 - t0) / 1e6,
               reap_ns / 1e6, reap2_ns / 1e6, ",".join(results) or "-",
               round((free1 - free0) / 1024, 1))


def measure(a: argparse.Namespace) -> int:
    """The killer's side, SCHED_FIFO on one CPU as oomguard runs; the second reaper on
    another. Prints a JSON line per run (and the tracer's lines, "# "-prefixed)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        print("teardown.py: needs two CPUs (the second reaper's)", file=sys.stderr)
        return 2
    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # through the finally blocks: victim, cgroups

    signal.signal(signal.SIGTERM, stop)
    cgroups = VictimCgroup.make_root()
    os.sched_setaffinity(0, {cpus[0]})
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(KILLER_PRIORITY))
    reaper = SecondReaper(cpu=cpus[1])
    reaper.start()
    funcs = a.trace.split(",") if a.trace else [a.stacks] if a.stacks else []
    tracer = Tracer(funcs, bool(a.stacks)) if funcs else None
    try:
        for rnd in range(a.rounds):
            for way in a.way or WAYS:
                run = one(way, rnd, a.size, a.small_mib, cgroups, reaper, tracer)
                print(json.dumps(asdict(run)), flush=True)
                for line in tracer.summary() if tracer else []:
                    print(f"# {rnd} {way}: {line}", flush=True)
    finally:
        if tracer:
            (TRACING / "current_tracer").write_text("nop")
        cgroups.close()
    return 0


def table(runs: list[Run]) -> str:
    rows = ["| way | runs | small MiB | teardown p50 (min-max) | main reap p50 | "
            "2nd reap p50 | reaps |", "|---|---|---|---|---|---|---|"]
    for way in WAYS:
        rs = [r for r in runs if r.way == way]
        if not rs:
            continue
        td = [r.teardown_ms for r in rs]
        reaps = [_p50([r.reap_ms for r in rs if r.reap_ms]),
                 _p50([r.reap2_ms for r in rs if r.reap2_ms])]
        rows.append(f"| {way} | {len(rs)} | {statistics.median(r.small_mib for r in rs):.0f} "
                    f"| {statistics.median(td):.0f} ({min(td):.0f}-{max(td):.0f}) "
                    f"| {reaps[0]} | {reaps[1]} | {' '.join(sorted({r.results for r in rs}))} |")
    return "\n".join(rows)


def _p50(values: list[float]) -> str:
    return f"{statistics.median(values):.0f}" if values else "-"


def in_guest(a: argparse.Namespace) -> tuple[str, str, int]:
    """Boot the kernel, run this script's measure() in the guest: (stdout, stderr, status)."""
    from chaos import kernels
    from chaos.testbeds.vm import VmConfig, boot

    kernel = kernels.get(a.kernel)
    argv = [sys.executable, str(Path(__file__).resolve()), "--measure", "--size", str(a.size),
            "--rounds", str(a.rounds), "--small-mib", str(a.small_mib),
            *(["--trace", a.trace] if a.trace else []),
            *(["--stacks", a.stacks] if a.stacks else [])]
    for w in a.way:
        argv += ["--way", w]
    with tempfile.TemporaryDirectory() as tmp:
        run = boot(VmConfig(kernel=kernel, memory_mib=a.memory), argv, Path(tmp),
                   deadline_s=a.timeout)
    print(f"kernel {kernel.release} in a {a.memory} MiB guest ({run.accel})")
    err = run.stderr + (f"\n{run.failure}" if run.failure else "")
    return run.stdout, err, run.exit_status if run.exit_status is not None else -1


def here(a: argparse.Namespace) -> tuple[str, str, int]:
    """This machine, natively: the same measurement as a child process."""
    import subprocess

    argv = [sys.executable, str(Path(__file__).resolve()), "--measure", "--size", str(a.size),
            "--rounds", str(a.rounds), "--small-mib", str(a.small_mib)]
    for w in a.way:
        argv += ["--way", w]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=a.timeout)
    print(f"this machine, kernel {os.uname().release}, natively")
    return done.stdout, done.stderr, done.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--kernel", default="6.1")
    ap.add_argument("--here", action="store_true", help="on this machine, not in a guest")
    ap.add_argument("--memory", type=int, default=1024, help="guest MiB")
    ap.add_argument("--size", type=int, default=160, help="victim MiB")
    ap.add_argument("--small", action="store_true", help="MADV_NOHUGEPAGE: all small pages")
    ap.add_argument("--small-mib", type=int, default=0,
                    help="this much of the victim MADV_NOHUGEPAGE (its last mmaps)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--way", action="append", default=[], choices=WAYS)
    ap.add_argument("--timeout", type=float, default=1200)
    ap.add_argument("--trace", help="kernel functions to time, comma-separated (guest only)")
    ap.add_argument("--stacks", help="a kernel function whose callers to record (guest only)")
    ap.add_argument("--raw", help="keep the JSON lines in this file")
    ap.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not CHUNK_MIB <= a.size <= a.memory // 2:
        ap.error(f"--size must be {CHUNK_MIB}..{a.memory // 2} MiB (half the guest)")
    if a.here and (a.trace or a.stacks):
        ap.error("--trace and --stacks are for guests: they patch the running kernel")
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    if a.small:
        a.small_mib = a.size
    if not 0 <= a.small_mib <= a.size or a.small_mib % CHUNK_MIB:
        ap.error(f"--small-mib must be 0..--size, in steps of {CHUNK_MIB}")
    if a.measure:
        return measure(a)
    out, err, status = here(a) if a.here else in_guest(a)
    runs = [Run(**json.loads(line)) for line in out.splitlines() if line.startswith("{")]
    if a.raw:
        Path(a.raw).write_text(out)
    print(f"victim {a.size} MiB, {a.small_mib} MiB of it MADV_NOHUGEPAGE, "
          f"{a.rounds} round(s); ms")
    print(table(runs))
    for line in out.splitlines():
        if line.startswith("#"):
            print(line)
    if status != 0:
        print(err[-3000:], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
