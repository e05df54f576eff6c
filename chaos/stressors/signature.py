"""Does each stressor produce its own kind of trouble? Its signature, from kernel counters.

Runs inside a testbed (as root), one case after another, each with the same
code path as the agent (``chaos.runtimes.launcher``) under the chosen runtime,
in a fresh cgroup tree of its own. Around every case it samples, at 10 Hz,
/proc/meminfo, /proc/vmstat, /proc/softirqs, /proc/net/sockstat, /proc/stat,
the stressor's own cgroup, a target cgroup and a probe task, and writes all of
it (plus the stressor's last progress line and its start-up cost) as JSON,
rewritten after every case so a guest that dies early still leaves data.
Used by tests/integration/test_stressors.py and benchmarks/stressors.py.

Usage: python -m chaos.stressors.signature --runtime cgroup --out FILE [--case NAME ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.cgroupfs import CgroupTree
from chaos.probes.tracing import TraceRecord, TraceSession
from chaos.procs import Child, last_json, protect_self, spawn
from chaos.result import write_atomic
from chaos.runtimes import dirs
from chaos.runtimes.base import Handle, Site
from chaos.runtimes.docker import DockerRuntime
from chaos.runtimes.launcher import Launcher, check
from chaos.scenario import KillerSpec, Scenario, SpecError, StressorSpec, TestbedInfo
from chaos.stressors.udp_storm import udp_mem_pages

MEMINFO = ("MemAvailable", "AnonPages", "Cached", "Dirty", "Writeback", "Shmem", "Mlocked",
           "Unevictable", "AnonHugePages", "KernelStack", "PageTables", "SUnreclaim")
VMSTAT = ("pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct",
          "workingset_refault_file", "nr_dirtied", "nr_written", "pgpgin", "pgpgout",
          "compact_stall", "compact_migrate_scanned", "compact_free_scanned", "compact_success",
          "thp_fault_alloc", "thp_fault_fallback", "oom_kill", "nr_dirty_threshold")
SCOPE_STAT = ("anon", "file", "file_dirty", "file_writeback", "shmem", "sock", "unevictable",
              "kernel_stack", "pagetables")
PROBE_CODE = "import time\nwhile True:\n    time.sleep(0.01)\n    sum(range(3000))\n"
# A probe with file pages of its own (a clean 16 MiB file it maps), touched every 50 ms.
MAPPED_PROBE_CODE = """
import mmap, os, sys, time
path = os.path.join(sys.argv[1], "mapped")
with open(path, "wb") as f:
    f.write(os.urandom(16 << 20))
    os.fsync(f.fileno())
m = mmap.mmap(os.open(path, os.O_RDONLY), 0, prot=mmap.PROT_READ)
while True:
    for off in range(0, len(m), 4096):
        m[off]
    time.sleep(0.05)
"""


@dataclass(frozen=True)
class Case:
    """One measurement: a stressor with params, how long to watch, and when to stop early."""

    stressor: str
    params: dict[str, Any]
    observe_s: float
    done: Callable[[dict[str, Any]], bool] = lambda a: False  # on the last progress line
    # a task in the ``killer`` cgroup: "waking" (run delay, throttling) or "mapped" (maps a
    # file of its own: major faults, RssFile)
    probe: str = ""
    kill_then_s: float = 0.0  # SIGKILL the stressor, then keep watching this long
    flood: bool = False  # ask the host to flood the guest's NIC (flood.go / flood.stop)
    trace: tuple[str, ...] = ()  # tracepoints to count while it runs ("group/event")


WRITEBACK_EVENTS = ("writeback/balance_dirty_pages", "vmscan/mm_vmscan_throttled")


MANY_MIB = 160  # anon_many's total: done once all of it is allocated

# Early stops are set at 2-3x what tests/integration/test_stressors.py asserts: a case
# watched past that point only costs CI time (the VM slot).
CASES: dict[str, Case] = {
    "anon_ramp": Case("anon_hog", {"size_mib": 240, "rate_mib_s": 40, "hold_s": 60}, 9.0,
                      lambda a: a.get("event") == "holding"),
    "anon_spike": Case("anon_hog", {"size_mib": 240, "rate_mib_s": 0, "hold_s": 60}, 8.0,
                       lambda a: a.get("event") == "holding"),
    "anon_leak": Case("anon_hog", {"size_mib": 64, "rate_mib_s": 2, "chunk_mib": 1,
                                   "hold_s": 60}, 8.0),
    "anon_many": Case("anon_hog", {"size_mib": MANY_MIB, "rate_mib_s": 40, "count": 8,
                                   "hold_s": 60}, 8.0,
                      lambda a: int(a.get("allocated_mib", 0)) >= MANY_MIB),
    "anon_oom": Case("anon_hog", {"size_mib": 600, "rate_mib_s": 0, "memory_max_mib": 128,
                                  "hold_s": 60}, 20.0),
    # Re-reading starts right after the fill, and refaults with it: 128 MiB into the first
    # pass it has shown everything the test asks (the second pass cost CI 20 s more).
    "page_cache_clean": Case("page_cache", {"mode": "clean", "size_mib": 1024,
                                            "file_mib": 64}, 90.0,
                             lambda a: float(a.get("read_mib", 0)) >= 128),
    "page_cache_dirty": Case("page_cache", {"mode": "dirty", "size_mib": 768,
                                            "file_mib": 64}, 10.0, trace=WRITEBACK_EVENTS),
    "udp_loopback": Case("udp_storm", {"source": "loopback", "sockets": 8, "rcvbuf_mib": 64,
                                       "udp_mem_mib": 480}, 10.0,
                         lambda a: int(a.get("queued_kib", 0)) >= 128 << 10),
    "udp_external": Case("udp_storm", {"source": "external", "sockets": 4, "rcvbuf_mib": 128,
                                       "udp_mem_mib": 480}, 12.0,
                         lambda a: int(a.get("queued_kib", 0)) >= 48 << 10, flood=True),
    "cpu_starve": Case("cpu_starve", {"target": "killer", "quota_pct": 2, "policy": "idle"},
                       8.0, probe="waking"),
    "shmem_hog": Case("shmem_hog", {"size_mib": 160, "hold_s": 60}, 8.0,
                      lambda a: a.get("event") == "holding", kill_then_s=2.0),
    "mlock_hog": Case("mlock_hog", {"size_mib": 128, "hold_s": 60}, 8.0,
                      lambda a: a.get("event") == "holding"),
    "fork_storm": Case("fork_storm", {"count": 400, "child_kib": 64}, 10.0,
                       lambda a: int(a.get("forked", 0)) >= 400),
    "pageout": Case("pageout", {"target": "killer", "every_s": 0.5}, 6.0, probe="mapped"),
    # Watched to the end: in one CI run its first 32 MiB of huge faults found free huge
    # pages, no compaction yet (a stop there, tried, made its test fail).
    "thp_compact": Case("thp_compact", {"size_mib": 160, "hold_s": 60}, 60.0,
                        lambda a: a.get("event") == "holding"),
    "startup": Case("anon_hog", {"size_mib": 1, "hold_s": 60}, 0.5,
                    lambda a: a.get("event") == "holding"),
}


def case(name: str) -> Case:
    """A named case; ``NAME#N`` repeats one; ``anon_rate:R`` is an anon ramp at R MiB/s."""
    base = name.split("#")[0]
    if base.startswith("anon_rate:"):
        rate = float(base.split(":", 1)[1])
        size = max(16, min(320, int(rate * 5)))
        return Case("anon_hog", {"size_mib": size, "rate_mib_s": rate, "hold_s": 60},
                    size / max(rate, 1) + 10, lambda a: a.get("event") == "holding")
    return CASES[base]


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _kv(text: str, sep: str = " ") -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(sep)
        out[k.strip()] = v.strip()
    return out


@dataclass
class Counters:
    """Where the counters of one case come from."""

    scope: Path | None = None  # the stressor's cgroup
    target: Path | None = None  # a cgroup a stressor acts on
    probe_pid: int = 0
    stressor_pid: int = 0

    def read(self) -> dict[str, float]:
        c: dict[str, float] = {}
        mem = _kv(_read("/proc/meminfo"), ":")
        for k in MEMINFO:
            c[f"meminfo.{k}"] = float(mem.get(k, "0 kB").split()[0])
        vm = _kv(_read("/proc/vmstat"))
        for k in VMSTAT:
            c[f"vmstat.{k}"] = float(vm.get(k, 0))
        c["vmstat.allocstall"] = float(sum(int(v) for k, v in vm.items()
                                           if k.startswith("allocstall_")))
        for line in _read("/proc/softirqs").splitlines():
            name, _, rest = line.partition(":")
            if name.strip() in ("NET_RX", "NET_TX", "BLOCK"):
                c[f"softirq.{name.strip()}"] = float(sum(int(x) for x in rest.split()))
        c["sockstat.udp_mem_pages"] = float(udp_mem_pages())
        stat = _kv(_read("/proc/stat"))
        c["stat.processes"] = float(stat.get("processes", 0))
        if self.scope is not None:
            ms = _kv(_read(self.scope / "memory.stat"))
            for k in SCOPE_STAT:
                c[f"scope.{k}"] = float(ms.get(k, 0))
            c["scope.pids"] = float(_read(self.scope / "pids.current").strip() or 0)
            cpu = _kv(_read(self.scope / "cpu.stat"))
            c["scope.usage_usec"] = float(cpu.get("usage_usec", 0))
        if self.target is not None:
            cpu = _kv(_read(self.target / "cpu.stat"))
            for k in ("usage_usec", "nr_throttled", "throttled_usec"):
                c[f"target.{k}"] = float(cpu.get(k, 0))
        if self.probe_pid:
            fields = _read(f"/proc/{self.probe_pid}/schedstat").split()
            if len(fields) >= 2:
                c["probe.cpu_ns"], c["probe.run_delay_ns"] = float(fields[0]), float(fields[1])
            after_comm = _read(f"/proc/{self.probe_pid}/stat").rsplit(")", 1)[-1].split()
            if len(after_comm) > 9:
                c["probe.majflt"] = float(after_comm[9])
            probe_status = _kv(_read(f"/proc/{self.probe_pid}/status"), ":")
            c["probe.rss_file_kib"] = float(probe_status.get("RssFile", "0 kB").split()[0])
        if self.stressor_pid:
            status = _kv(_read(f"/proc/{self.stressor_pid}/status"), ":")
            c["stressor.rss_kib"] = float(status.get("VmRSS", "0 kB").split()[0])
        return c


@dataclass
class Outcome:
    case: str
    stressor: str
    runtime: str
    params: dict[str, Any]
    start_ms: float = 0.0  # runtime start call to the process running
    ready_ms: float = 0.0  # runtime start call to its first progress line
    observed_s: float = 0.0
    baseline: dict[str, float] = field(default_factory=dict)  # probe cases: before the wait
    baseline_s: float = 0.0
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    after_kill: dict[str, float] = field(default_factory=dict)
    samples: list[dict[str, float]] = field(default_factory=list)
    activity: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    exit_signal: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, float] = field(default_factory=dict)  # EVENT: count, EVENT.FIELD: sum
    error: str = ""


class Runner:
    """Runs cases one by one under one runtime; ``engine_start_s`` for docker."""

    def __init__(self, runtime: str, out: Path, share: Path | None) -> None:
        self.runtime, self.out, self.share = runtime, out, share
        self.results: dict[str, Any] = {"runtime": runtime, "kernel": os.uname().release,
                                        "cpus": os.cpu_count(), "cases": []}
        self.docker: DockerRuntime | None = None  # one engine for all cases

    def run(self, names: list[str]) -> None:
        protect_self()
        self.results["thp"] = _read("/sys/kernel/mm/transparent_hugepage/enabled").strip()
        home = CgroupTree.create(f"chaos-sig-{os.getpid()}")  # this runner and the engine
        home.make("harness")
        home.add_pid("harness", os.getpid())
        try:
            if self.runtime == "docker":
                self.docker = DockerRuntime(Site(f"sig-{os.getpid()}", home, Path("/tmp"),
                                                 _testbed()))
                self.docker.connect()
                self.results["engine_start_s"] = self.docker.engine_start_s
                self.results["image_s"] = self.docker.image_s
            for i, name in enumerate(names):
                out = self.one(name, case(name), i)
                self.results["cases"].append(dataclasses.asdict(out))
                # After every case (a panic keeps what was done), so compact: with an
                # indent json encodes in pure Python, and the rewrites of 15 cases' samples
                # cost the guest ~10 s under emulation.
                write_atomic(self.out, json.dumps(self.results))
        finally:
            if self.docker is not None:
                self.docker.close()
            (home.root.parent / "cgroup.procs").write_text(str(os.getpid()))
            home.destroy()
        write_atomic(self.out, json.dumps(self.results))

    def one(self, name: str, case: Case, index: int) -> Outcome:
        run_id = f"sig-{os.getpid()}-{index}"
        out = Outcome(name, case.stressor, self.runtime, case.params)
        spec = StressorSpec(name=case.stressor, instance="s", cgroup="workload/s",
                            params=case.params, runtime=self.runtime)
        testbed = _testbed()
        try:
            check(Scenario(id=name, run_id=run_id, killer=KillerSpec(), stressors=(spec,),
                           testbed=testbed))
        except SpecError as exc:
            out.error = f"SpecError: {exc}"
            return out
        tree = CgroupTree.create(f"chaos-{run_id}")
        for rel in ("killer", "arena/workload"):
            tree.make(rel)
        launcher = Launcher(Site(run_id, tree, Path("/tmp"), testbed))
        launcher.docker = self.docker
        probe: Child | None = None
        handle: Handle | None = None
        trace: TraceSession | None = None
        try:
            counters = Counters(scope=tree.path("arena/workload/s"))
            if case.probe == "mapped":
                home, remove = dirs.provide("block", 32, run_id, "probe")
                launcher.undo.append(remove)
                probe = spawn("probe", [sys.executable, "-c", MAPPED_PROBE_CODE, str(home)],
                              tree.path("killer"))
            elif case.probe == "waking":
                probe = spawn("probe", [sys.executable, "-c", PROBE_CODE], tree.path("killer"))
            if probe is not None:
                counters.probe_pid, counters.target = probe.pid, tree.path("killer")
                if case.probe == "mapped":  # its file written and mapped before the baseline
                    _wait_until(lambda: counters.read().get("probe.rss_file_kib", 0) >= 16384,
                                60.0)
                time.sleep(0.5)
                out.baseline, t_base = counters.read(), time.monotonic()
                time.sleep(2.0)  # a baseline of its run delay before the trouble
                out.baseline_s = round(time.monotonic() - t_base, 3)
            if case.trace:
                trace = TraceSession(f"chaos-sig-{os.getpid()}-{index}", case.trace,
                                     buffer_kb=8192).start()
            out.before = counters.read()
            t0 = time.monotonic()
            handle = launcher.start(spec)
            out.start_ms = launcher.start_ms["s"]
            counters.stressor_pid = handle.pid
            ready = _wait_ready(handle, 300.0)
            out.ready_ms = round((ready - t0) * 1000, 1)
            if case.flood and self.share is not None:
                (self.share / "flood.go").write_text("go")  # its sockets are bound now
            out.samples = _sample(counters, handle, case, ready)
            out.observed_s = round(time.monotonic() - ready, 3)
            out.after = counters.read()
            if trace is not None:
                trace.stop()
                out.trace = _count(trace.records())
                out.trace["missing"] = float(len(trace.missing))
            if case.kill_then_s and handle.alive():
                handle.signal(signal.SIGKILL)
                time.sleep(case.kill_then_s)
                out.after_kill = counters.read()
            handle.stop(grace_s=1.0)
            out.activity = handle.last_json()
            out.exit_code, out.exit_signal = handle.exit_code, handle.exit_signal
            if out.exit_code:
                out.error = f"exit {out.exit_code}: " + handle.output()[-800:]
            out.extra = {k: getattr(handle, k) for k in ("oom_killed", "container_exit_code")
                         if hasattr(handle, k)}
            if not out.activity:
                out.error = "no progress line: " + handle.output()[-500:]
        except Exception as exc:  # noqa: BLE001 - record it, go on with the next case
            out.error = f"{type(exc).__name__}: {exc}"
        finally:
            if case.flood and self.share is not None:
                (self.share / "flood.stop").write_text("stop")
            if handle is not None:
                handle.stop(grace_s=1.0)
            if probe is not None:
                probe.stop(grace_s=0.5)
            if trace is not None:
                trace.remove()
            launcher.docker = None  # the engine stays for the next case
            launcher.close()
            tree.destroy()
        return out


def _count(records: list[TraceRecord]) -> dict[str, float]:
    """Per event: how many, and the sums of its ``pause`` (ms) and delay (us) fields."""
    out: dict[str, float] = {}
    for r in records:
        out[r.event] = out.get(r.event, 0) + 1
        for key in ("pause", "usect_delayed"):  # (sic: the kernel spells it so)
            if key in r.fields:
                value = max(0, r.int_field(key))  # a negative pause means no pause
                out[f"{r.event}.{key}"] = out.get(f"{r.event}.{key}", 0) + value
    return out


def _wait_ready(handle: Handle, timeout_s: float) -> float:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if last_json(handle.lines, "start"):
            return time.monotonic()
        if not handle.alive():
            raise RuntimeError("stressor exited before its first progress line: "
                               + handle.output()[-500:])
        time.sleep(0.01)
    raise RuntimeError(f"no first progress line within {timeout_s:.0f} s")


def _wait_until(ok: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not ready within {timeout_s:.0f} s")
        time.sleep(0.1)


def _sample(counters: Counters, handle: Handle, case: Case, t0: float) -> list[dict[str, float]]:
    samples = []
    end = t0 + case.observe_s
    while time.monotonic() < end:
        c = counters.read()
        c["t"] = round(time.monotonic() - t0, 3)
        samples.append(c)
        if not handle.alive() or case.done(last_json(handle.lines)):
            break
        time.sleep(0.1)
    return samples


def _testbed() -> TestbedInfo:
    mem = int(_kv(_read("/proc/meminfo"), ":")["MemTotal"].split()[0]) // 1024
    return TestbedInfo(kind="vm" if os.environ.get("CHAOS_GUEST_MODULES") else "local",
                       memory_mib=mem, cpus=os.cpu_count() or 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chaos.stressors.signature")
    ap.add_argument("--runtime", choices=("cgroup", "docker"), default="cgroup")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--share", type=Path, default=None, help="the VM's shared directory")
    ap.add_argument("--case", action="append", default=[],
                    help=f"NAME[#N] (default: all): {', '.join(CASES)}")
    a = ap.parse_args(argv)
    names = a.case or list(CASES)
    unknown = [n for n in names if n.split("#")[0] not in CASES
               and not n.startswith("anon_rate:")]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    subprocess.run(["sync"], check=False)
    Runner(a.runtime, a.out, a.share).run(names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
