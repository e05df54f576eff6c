"""oomguard as a real process: it kills only what the config points at (children these
tests start), with evidence from the kernel (signal_generate tracepoint) for who sent
SIGKILL. No test creates global memory pressure: the floor trigger is MemAvailable
below 100% (always true), and the PSI test stalls a memory-limited cgroup of its own."""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import termios
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from owned import Spawn, cgroup2_mount, move, remove_cgroup_tree

import oomguard
from chaos.skips import skip_or_fail
from oomguard.guards import CAP_IPC_LOCK, CAP_SYS_NICE, CAP_SYS_RESOURCE, effective_caps
from oomguard.kfile import READ_SIZE

ROOT = Path(__file__).resolve().parents[2]
QUIET = {  # guards off unless a test is about them: faster, and no SCHED_FIFO on a shared host
    "mlockall": False,
    "prefault_heap": False,
    "oom_score_adj": False,
    "realtime": False,
    "watchdog": False,
}
Event = dict[str, Any]  # one parsed JSON log line


# -- helpers ---------------------------------------------------------------------------


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def toml(cfg: dict[str, object]) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for name, table in cfg.items():
        if isinstance(table, dict):
            lines.append(f"[{name}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


class Oomguard:
    """oomguard as a subprocess: started with a deadline, stopped by pid at the end."""

    def __init__(self, tmp_path: Path, cfg: dict[str, object], **popen: object) -> None:
        self.log = tmp_path / "oomguard.jsonl"
        self.stderr = tmp_path / "oomguard.stderr"
        self.config = tmp_path / "oomguard.toml"
        self.config.write_text(toml({"interval_ms": 50, "log": str(self.log), **cfg}))
        self.popen = popen
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Oomguard:
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "oomguard", "--config", str(self.config)],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.DEVNULL,
                stderr=err,
                **self.popen,  # type: ignore[call-overload]
            )
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)

    def events(self) -> list[Event]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def wait_event(self, event: str, timeout: float = 20.0, **match: object) -> Event:
        """The first `event` line whose fields include `match`; fails on deadline or death."""
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events():
                if e["event"] == event and all(e.get(k) == v for k, v in match.items()):
                    return e
            assert self.proc is not None
            dead = self.proc.poll() is not None
            if dead or time.monotonic() > deadline:
                tail = "\n".join(json.dumps(e) for e in self.events()[-15:])
                why = f"exited {self.proc.returncode}" if dead else "deadline passed"
                pytest.fail(
                    f"no '{event}' event ({why}); stderr: {self.stderr.read_text()!r}\n{tail}"
                )
            time.sleep(0.02)


class SignalTrace:
    """Who sent SIGKILL to given pids, from the kernel's own signal_generate tracepoint.

    Uses a private tracefs mount and its own instance, so nobody else's tracing is touched.
    """

    LINE = re.compile(
        r"-(?P<tid>\d+)\s+\(\s*(?P<tgid>\d+)\).*signal_generate: sig=9 .* pid=(?P<pid>\d+) "
        r"grp=\d+ res=(?P<res>\d+)"
    )

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.mnt = ""
        self.inst = Path()

    def __enter__(self) -> SignalTrace:
        if os.geteuid() != 0:
            skip_or_fail("signal attribution needs root (tracefs)")
        self.mnt = tempfile.mkdtemp(prefix="oomguard-tracefs-")
        r = subprocess.run(["mount", "-t", "tracefs", "nodev", self.mnt], capture_output=True)
        if r.returncode:
            os.rmdir(self.mnt)
            skip_or_fail(f"cannot mount tracefs: {r.stderr.decode().strip()}")
        self.inst = Path(self.mnt, "instances", f"oomguard-test-{uuid.uuid4().hex[:8]}")
        self.inst.mkdir()
        ev = self.inst / "events" / "signal" / "signal_generate"
        who = " || ".join(f"pid == {p}" for p in self.pids)
        (ev / "filter").write_text(f"({who}) && sig == 9")
        (self.inst / "options" / "record-tgid").write_text("1")
        (ev / "enable").write_text("1")
        return self

    def senders(self) -> dict[int, set[int]]:
        """target pid -> set of sender tgids (delivered signals only)."""
        out: dict[int, set[int]] = {}
        for line in (self.inst / "trace").read_text().splitlines():
            m = self.LINE.search(line)
            if m and m["res"] == "0":
                out.setdefault(int(m["pid"]), set()).add(int(m["tgid"]))
        return out

    def order(self) -> list[int]:
        """Target pids of the delivered signals, in the order they were sent."""
        lines = (self.inst / "trace").read_text().splitlines()
        return [int(m["pid"]) for m in map(self.LINE.search, lines) if m and m["res"] == "0"]

    def __exit__(self, *exc: object) -> None:
        try:
            (self.inst / "events" / "signal" / "signal_generate" / "enable").write_text("0")
            self.inst.rmdir()
        finally:
            subprocess.run(["umount", self.mnt], check=False)
            os.rmdir(self.mnt)


def names(events: list[Event]) -> list[object]:
    return [e["event"] for e in events]


def first(events: list[Event], event: str) -> Event:
    return next(e for e in events if e["event"] == event)


# -- process mode ----------------------------------------------------------------------


@pytest.mark.parametrize("pread_fds", [True, False], ids=["pread_fds", "naive"])
def test_floor_trigger_kills_the_configured_pid(
    tmp_path: Path, spawn: Spawn, pread_fds: bool
) -> None:
    child = spawn()
    cfg = {
        "detect": {"mem_available_min_pct": 100},
        "policy": {"pids": [child.pid], "kill_timeout_ms": 5000, "reap_after_ms": 0},
        "guards": {**QUIET, "pread_fds": pread_fds},
    }
    with SignalTrace([child.pid]) as trace, Oomguard(tmp_path, cfg) as og:
        og.wait_event("exit", target=f"pid:{child.pid}")
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert trace.senders() == {child.pid: {og.pid}}
        og.wait_event("no_candidate")  # nothing else is ever signalled
        assert og.stop() == 0
    events = og.events()
    assert all(isinstance(e["t_ns"], int) and e["event"] for e in events)
    ran_ms = (int(str(events[-1]["t_ns"])) - int(str(events[0]["t_ns"]))) / 1e6
    # a late line measures from when the loop meant to wake: never from before it started
    assert all(float(str(e["by_ms"])) < ran_ms for e in events if e["event"] == "late")
    order = names(events)
    want = ["start", "ready", "trigger", "decision", "signal", "mrelease", "exit"]
    assert [order.index(n) for n in want] == sorted(order.index(n) for n in want)
    start = first(events, "start")
    assert start["version"] == oomguard.__version__ and start["pid"] == og.pid
    assert start["guards"] == {
        **{k: False for k in QUIET},
        "pread_fds": pread_fds,
        "cgroup": False,
        "kernel_reserve": False,
    }
    trig = first(events, "trigger")
    assert trig["source"] == "floor"
    assert int(str(trig["mem_available_kib"])) < int(str(trig["floor_kib"]))
    decision = first(events, "decision")
    assert decision["chosen"]["pid"] == child.pid
    assert decision["candidates"][0]["size"] > 0
    assert str(decision["reason"]).startswith("select=size: highest size")
    sig = first(events, "signal")
    assert sig["method"] == "pidfd_send_signal" and sig["signal"] == "SIGKILL"
    assert sig["target"] == f"pid:{child.pid}" and sig["source"] == "main"
    assert sig["hastened"] == {str(child.pid): "ok"}  # its exit at SCHED_FIFO (parts test)
    assert first(events, "mrelease")["results"][str(child.pid)] in {"ok", "ESRCH", "EINVAL"}
    done = first(events, "exit")
    assert int(str(done["t_ns"])) >= int(str(sig["sent_ns"]))
    assert float(str(done["after_ms"])) >= 0
    assert events[-1]["event"] == "stop" and events[-1]["reason"] == "SIGTERM"


def test_a_victim_gone_within_reap_after_ms_is_not_reaped(tmp_path: Path, spawn: Spawn) -> None:
    """process_mrelease is for a victim that cannot free its own memory; one that exits
    within ``reap_after_ms`` of its SIGKILL is left to do so (no reap contending)."""
    child = spawn()
    cfg = {
        "detect": {"mem_available_min_pct": 100},
        "policy": {"pids": [child.pid], "reap_after_ms": 3000, "hasten_victim": False},
        "guards": QUIET,
    }
    with Oomguard(tmp_path, cfg) as og:
        og.wait_event("exit", target=f"pid:{child.pid}")
        assert child.wait(timeout=5) == -signal.SIGKILL
        assert og.stop() == 0
    events = og.events()
    assert "signal" in names(events) and "mrelease" not in names(events)
    assert "hastened" not in first(events, "signal")
    assert float(str(first(events, "exit")["after_ms"])) < 3000


def test_protect_pids_patterns_and_adj_are_honoured(tmp_path: Path, spawn: Spawn) -> None:
    by_pid, by_comm, victim = spawn(), spawn("tail", "-f", "/dev/null"), spawn()
    kids = [by_pid, by_comm, victim]
    expected = {f"pid:{by_pid.pid}": "protect_pids", f"pid:{by_comm.pid}": "protect:ta?l"}
    by_adj = spawn()
    try:  # lowering oom_score_adj to -1000 needs CAP_SYS_RESOURCE
        Path(f"/proc/{by_adj.pid}/oom_score_adj").write_text("-1000")
        kids.append(by_adj)
        expected[f"pid:{by_adj.pid}"] = "oom_score_adj=-1000"
    except PermissionError:
        pass
    cfg = {
        "detect": {"mem_available_min_pct": 100},
        "policy": {
            "pids": [k.pid for k in kids],
            "protect_pids": [by_pid.pid],
            "protect": ["ta?l"],
        },
        "guards": QUIET,
    }
    with SignalTrace([k.pid for k in kids]) as trace, Oomguard(tmp_path, cfg) as og:
        og.wait_event("exit", target=f"pid:{victim.pid}")
        idle = og.wait_event("no_candidate")
        assert victim.wait(timeout=5) == -signal.SIGKILL
        assert [k.poll() for k in kids if k is not victim] == [None] * (len(kids) - 1)
        assert trace.senders() == {victim.pid: {og.pid}}
    excluded = {c["id"]: c["excluded"] for c in idle["candidates"]}
    assert excluded == expected
    decision = first(og.events(), "decision")
    assert decision["chosen"]["id"] == f"pid:{victim.pid}"
    assert decision["count"] == len(kids)


def test_dry_run_decides_but_never_signals(tmp_path: Path, spawn: Spawn) -> None:
    child = spawn()
    cfg = {
        "detect": {"mem_available_min_pct": 100},
        "policy": {"pids": [child.pid], "dry_run": True, "kill_timeout_ms": 200},
        "guards": QUIET,
    }
    with Oomguard(tmp_path, cfg) as og:
        og.wait_event("decision", dry_run=True)
        deadline = time.monotonic() + 20
        while sum(e["event"] == "decision" for e in og.events()) < 2:  # it carried on
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert child.poll() is None
    assert "signal" not in names(og.events())


def test_stdout_log_and_clean_stop(tmp_path: Path, spawn: Spawn) -> None:
    child = spawn()
    cfg = {"detect": {"mem_available_min_mib": 1}, "policy": {"pids": [child.pid]}, "guards": QUIET}
    og = Oomguard(tmp_path, {**cfg, "log": "-"}, stdout=subprocess.PIPE)
    with og:
        assert og.proc is not None and og.proc.stdout is not None
        lines: list[Event] = []
        deadline = time.monotonic() + 20
        buf = b""
        while not any(e["event"] == "ready" for e in lines):
            assert time.monotonic() < deadline, lines
            ready, _, _ = select.select([og.proc.stdout], [], [], 0.1)
            if ready:
                buf += os.read(og.proc.stdout.fileno(), 65536)
                *done, buf = buf.split(b"\n")
                lines.extend(json.loads(x) for x in done if x)
        assert og.stop() == 0
        rest = og.proc.stdout.read()
    lines.extend(json.loads(x) for x in (buf + rest).splitlines() if x)
    assert names(lines)[0] == "start" and names(lines)[-1] == "stop"
    assert lines[-1]["reason"] == "SIGTERM"
    assert child.poll() is None  # 1 MiB floor: never in danger here


def test_cli_version_as_a_program() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "oomguard", "--version"], cwd=ROOT, capture_output=True, text=True
    )
    assert (out.returncode, out.stdout) == (0, f"oomguard {oomguard.__version__}\n")


# -- guards ----------------------------------------------------------------------------


def _status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def test_all_guards_are_applied_and_it_still_kills(tmp_path: Path, spawn: Spawn) -> None:
    if os.geteuid() != 0:
        skip_or_fail("guards need root")
    has_resource = bool(effective_caps() >> CAP_SYS_RESOURCE & 1)
    root = cgroup2_mount()
    base = root / f"oomguard-test-{uuid.uuid4().hex[:8]}" if root else None
    child = spawn()
    guards = {
        "mlockall": True,
        "prefault_heap": True,
        "heap_mib": 8,
        "pread_fds": True,
        "oom_score_adj": has_resource,  # refused (exit 2) without CAP_SYS_RESOURCE: see below
        "realtime": True,
        "realtime_priority": 1,
        "cgroup": str(base / "killer") if base else False,
        "watchdog": True,
        "watchdog_deadline_ms": 1000,
        "kernel_reserve": True,
        "kernel_reserve_prctl": [0x4F4F4D47, 1],  # no kernel knows this option: EINVAL
    }
    cfg = {
        "detect": {"mem_available_min_pct": 100},
        "policy": {"pids": [child.pid]},
        "guards": guards,
    }
    try:
        with Oomguard(tmp_path, cfg) as og:
            ready = og.wait_event("ready")
            pid = og.pid
            assert ready["guards"] == {
                "mlockall": "applied",
                "prefault_heap": "applied",
                "pread_fds": "applied",
                "oom_score_adj": "applied" if has_resource else "off",
                "realtime": "applied",
                # partial where the cgroup2 tree has no memory/cpu controllers (hybrid hosts)
                "cgroup": ready["guards"]["cgroup"] if base else "off",
                "watchdog": "applied",
                "kernel_reserve": "unsupported",
            }
            assert int(_status(pid, "VmLck").split()[0]) > 0
            for tid in os.listdir(f"/proc/{pid}/task"):  # the watchdog thread too
                assert os.sched_getscheduler(int(tid)) & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
            assert os.sched_getparam(pid).sched_priority == 1
            assert b"PYTHONMALLOC=malloc\0" in Path(f"/proc/{pid}/environ").read_bytes()
            assert len(os.listdir(f"/proc/{pid}/task")) >= 2  # the watchdog thread
            if has_resource:
                assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "-1000"
            if base and root:
                assert ready["guards"]["cgroup"] in ("applied", "partial")
                rel = "/" + str((base / "killer").relative_to(root))
                assert f"0::{rel}\n" in Path(f"/proc/{pid}/cgroup").read_text()
            og.wait_event("exit", target=f"pid:{child.pid}")
            assert child.wait(timeout=5) == -signal.SIGKILL
            assert og.stop() == 0
        start = first(og.events(), "start")
        assert start["allocator"] == "malloc"
        assert all(start["guards"][k] for k in ("mlockall", "realtime", "watchdog"))
    finally:
        if base is not None and base.exists():
            remove_cgroup_tree(base)


def test_realtime_is_put_back_when_someone_demotes_it(tmp_path: Path, spawn: Spawn) -> None:
    """What the suite's cpu_starve does to a killer: every thread to SCHED_IDLE."""
    if os.geteuid() != 0:
        skip_or_fail("SCHED_FIFO needs root")
    child = spawn()
    cfg = {
        "detect": {"mem_available_min_mib": 1},  # never in danger
        "policy": {"pids": [child.pid]},
        "guards": {**QUIET, "realtime": True, "realtime_priority": 1, "watchdog": True},
    }
    with Oomguard(tmp_path, cfg) as og:
        og.wait_event("ready")
        tids = [int(t) for t in os.listdir(f"/proc/{og.pid}/task")]
        assert len(tids) == 2  # the main loop and the watchdog
        assert [os.sched_getscheduler(t) & ~os.SCHED_RESET_ON_FORK for t in tids] == [
            os.SCHED_FIFO, os.SCHED_FIFO]
        for tid in tids:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        back = og.wait_event("guard", guard="realtime", status="reapplied")
        assert "was SCHED_IDLE" in str(back["detail"])
        deadline = time.monotonic() + 10
        while any(os.sched_getscheduler(t) & ~os.SCHED_RESET_ON_FORK != os.SCHED_FIFO
                  for t in tids):
            assert time.monotonic() < deadline, "a thread stayed demoted"
            time.sleep(0.02)
        assert og.stop() == 0
    assert child.poll() is None  # and nobody was killed for it


CAP_CASES = [
    ("oom_score_adj", CAP_SYS_RESOURCE, "CAP_SYS_RESOURCE"),
    ("realtime", CAP_SYS_NICE, "CAP_SYS_NICE"),
    ("mlockall", CAP_IPC_LOCK, "CAP_IPC_LOCK"),
]


@pytest.mark.parametrize(("guard", "cap", "cap_name"), CAP_CASES, ids=[c[0] for c in CAP_CASES])
def test_refuses_to_start_without_privileges(
    tmp_path: Path, spawn: Spawn, guard: str, cap: int, cap_name: str
) -> None:
    if os.geteuid() != 0:
        skip_or_fail("drops a capability from root's bounding set")
    child = spawn()
    libc = ctypes.CDLL(None, use_errno=True)

    def drop() -> None:  # in the child, before exec: root's caps become the bounding set
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))
        resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))

    cfg = {
        "detect": {"mem_available_min_pct": 100},
        "policy": {"pids": [child.pid]},
        "guards": {**QUIET, guard: True},
    }
    og = Oomguard(tmp_path, cfg, preexec_fn=drop)
    with og:
        assert og.proc is not None
        assert og.proc.wait(timeout=20) == 2
    err = og.stderr.read_text()
    assert err.count("\n") == 1 and err.startswith("oomguard: refusing to start:")
    assert cap_name in err
    assert not og.log.exists()  # refused before anything started
    assert child.poll() is None


# -- cgroup mode (cgroup v2) -----------------------------------------------------------


def test_cgroup_mode_kills_a_whole_cgroup(tmp_path: Path, spawn: Spawn, cg2: Path) -> None:
    work = cg2 / "workload"
    victim, victim2, kept, shielded = spawn(), spawn(), spawn(), spawn()
    move(victim.pid, work / "victim")
    move(victim2.pid, work / "victim" / "nested")
    move(kept.pid, work / "keep")
    move(shielded.pid, work / "shielded")  # holds a protected pid: vetoed as a whole
    cfg = {
        "detect": {"mem_available_min_pct": 100},
        "policy": {
            "cgroups": [f"{work}/*"],
            "protect": ["keep"],
            "protect_pids": [shielded.pid],
        },
        "guards": {**QUIET, "watchdog": True, "watchdog_deadline_ms": 2000},
    }
    pids = [victim.pid, victim2.pid, kept.pid, shielded.pid]
    with SignalTrace(pids) as trace, Oomguard(tmp_path, cfg) as og:
        gone = og.wait_event("exit", target=str(work / "victim"))
        idle = og.wait_event("no_candidate")
        assert [victim.wait(timeout=5), victim2.wait(timeout=5)] == [-signal.SIGKILL] * 2
        assert kept.poll() is None and shielded.poll() is None
        assert trace.senders() == {victim.pid: {og.pid}, victim2.pid: {og.pid}}
        order = trace.order()
    events = og.events()
    sig = first(events, "signal")
    assert sig["method"] == "leader first, then cgroup.kill" and sig["kind"] == "cgroup"
    assert sorted(sig["pids"]) == sorted([victim.pid, victim2.pid])  # pinned before the kill
    assert list(sig["before_ms"]) == ["list", "pin", "kill"]  # no hold: not reaped at once
    assert order[0] == victim.pid  # the group's first-listed process went first
    assert float(str(gone["after_ms"])) >= 0
    decision = first(events, "decision")
    assert decision["chosen"]["id"] == str(work / "victim")
    rows = {c["id"]: c.get("excluded") for c in decision["candidates"]}
    assert rows == {
        str(work / "victim"): None,
        str(work / "keep"): "protect:keep",
        str(work / "shielded"): f"contains protected pid {shielded.pid}",
    }
    left = {c["id"]: c["excluded"] for c in idle["candidates"]}
    assert left == {
        str(work / "keep"): "protect:keep",
        str(work / "shielded"): f"contains protected pid {shielded.pid}",
    }


# -- PSI -------------------------------------------------------------------------------

THRASH = """
import os, sys, time
for procs in sys.argv[2:]:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
end = time.monotonic() + 60
while time.monotonic() < end:  # re-read a file larger than our memory limit: reclaim stalls
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_NORMAL)
    off = 0
    while chunk := os.pread(fd, 1 << 20, off):
        off += len(chunk)
"""


def memory_limited_cgroup(cg2: Path, limit: int) -> tuple[list[Path], Path, Path | None]:
    """(cgroup.procs files to join, the memory.pressure to watch, a v1 dir to remove)."""
    psi = cg2 / "psi"
    if "memory" in (cg2 / "cgroup.controllers").read_text().split():
        (cg2 / "cgroup.subtree_control").write_text("+memory")
        psi.mkdir()
        (psi / "memory.max").write_text(str(limit))
        return [psi / "cgroup.procs"], psi / "memory.pressure", None
    # Hybrid host: limit memory with the v1 controller, watch the v2 cgroup's pressure.
    own = next(
        (
            line.split(":", 2)[2].strip()
            for line in open("/proc/self/cgroup")
            if line.split(":")[1] == "memory"
        ),
        None,
    )
    v1 = Path("/sys/fs/cgroup/memory")
    if own is None or not (v1 / own.lstrip("/")).is_dir():
        skip_or_fail("no memory controller to limit a cgroup with")
    memcg = v1 / own.lstrip("/") / cg2.name  # unique: named after our cgroup2 subtree
    memcg.mkdir()
    (memcg / "memory.limit_in_bytes").write_text(str(limit))
    psi.mkdir()
    return [memcg / "cgroup.procs", psi / "cgroup.procs"], psi / "memory.pressure", memcg


def test_psi_trigger_in_a_memory_limited_cgroup(tmp_path: Path, spawn: Spawn, cg2: Path) -> None:
    if not (cg2 / "memory.pressure").exists():
        skip_or_fail("kernel without PSI")
    data = tmp_path / "thrash.bin"
    with open(data, "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1 << 20))
        f.flush()
        os.fsync(f.fileno())  # clean pages, so the thrasher's FADV_DONTNEED really drops them
    procs, pressure, memcg = memory_limited_cgroup(cg2, 32 << 20)
    thrasher = None
    try:
        thrasher = spawn(sys.executable, "-c", THRASH, str(data), *map(str, procs))
        cfg = {
            "detect": {
                "psi": [{"file": str(pressure), "kind": "some", "stall_ms": 10, "window_ms": 2000}],
            },
            "policy": {"pids": [thrasher.pid]},
            "guards": QUIET,
        }
        with Oomguard(tmp_path, cfg) as og:
            og.wait_event("exit", timeout=45, target=f"pid:{thrasher.pid}")
            assert thrasher.wait(timeout=5) == -signal.SIGKILL
        trig = first(og.events(), "trigger")
        assert trig["source"] == "psi" and trig["file"] == str(pressure)
        assert trig["kind"] == "some" and trig["stall_us"] == 10_000
        assert trig["window_us"] == 2_000_000 and "some_total" in trig
        assert first(og.events(), "ready")["triggers"] == [
            {"source": "psi", "file": str(pressure), "spec": "some 10000 2000000"}
        ]
    finally:
        if thrasher is not None and thrasher.poll() is None:
            thrasher.kill()
            thrasher.wait(timeout=10)
        if memcg is not None:
            deadline = time.monotonic() + 10
            while memcg.exists():
                try:
                    memcg.rmdir()
                except OSError:
                    assert time.monotonic() < deadline, f"cannot remove {memcg}"
                    time.sleep(0.05)


# -- watchdog --------------------------------------------------------------------------


class MeminfoFifo:
    """A FIFO standing in for /proc/meminfo (pread_fds off, so oomguard opens and reads
    the path every tick). While feeding, one calm snapshot of exactly READ_SIZE bytes is
    kept queued; when feeding pauses, the main loop blocks in read(): a genuinely stuck
    main loop, without any test hook in oomguard."""

    SNAPSHOT = "MemTotal: 1000000 kB\nMemFree: 800000 kB\nMemAvailable: 900000 kB\n"

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # O_RDWR: never blocks, no EOF
        self.data = self.SNAPSHOT.ljust(READ_SIZE).encode()
        self.feeding = threading.Event()
        self.done = threading.Event()
        self.written = 0
        self.thread = threading.Thread(target=self._feed, daemon=True)

    def queued(self) -> int:
        return int.from_bytes(fcntl.ioctl(self.fd, termios.FIONREAD, b"\0" * 4), sys.byteorder)

    def _feed(self) -> None:
        while not self.done.is_set():
            if self.feeding.is_set() and self.queued() == 0:
                os.write(self.fd, self.data)
                self.written += 1
            time.sleep(0.001)

    def __enter__(self) -> MeminfoFifo:
        self.feeding.set()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        os.close(self.fd)


def test_watchdog_kills_when_the_main_loop_is_stuck(tmp_path: Path, spawn: Spawn) -> None:
    child = spawn()
    cfg = {
        "detect": {"mem_available_min_pct": 10, "meminfo": str(tmp_path / "meminfo")},
        "policy": {"pids": [child.pid]},
        "guards": {
            **QUIET,
            "pread_fds": False,
            "watchdog": True,
            "watchdog_deadline_ms": 300,
            "watchdog_needs_danger": False,  # the FIFO blocks every reader: deadline only
        },
    }
    with MeminfoFifo(tmp_path / "meminfo") as fifo, SignalTrace([child.pid]) as trace:
        with Oomguard(tmp_path, cfg) as og:
            og.wait_event("ready")
            fed = fifo.written
            deadline = time.monotonic() + 10
            while fifo.written < fed + 3:  # the loop runs normally for a few ticks
                assert time.monotonic() < deadline
                time.sleep(0.01)
            fifo.feeding.clear()  # next tick blocks in open(): the main loop is stuck
            fired = og.wait_event("watchdog")
            assert child.wait(timeout=5) == -signal.SIGKILL
            assert "trigger" not in names(og.events())  # never in danger: only the deadline
            fifo.feeding.set()  # unstick: the main loop follows the watchdog's victim
            gone = og.wait_event("exit", source="watchdog")
            assert og.stop() == 0
        senders = trace.senders()
    assert senders == {child.pid: {og.pid}}
    assert fired["target"] == f"pid:{child.pid}" and fired["late_ms"] >= 300
    sig = first(og.events(), "signal")
    assert sig["source"] == "watchdog" and sig["method"] == "pidfd_send_signal"
    assert gone["target"] == f"pid:{child.pid}"


def test_a_late_wake_up_says_how_long_it_waited_for_a_cpu(
        tmp_path: Path, spawn: Spawn) -> None:
    """A stopped killer is late without having waited for a CPU: the late line's
    queued_ms (the main thread's run delay since its last wake-up) tells that apart from
    starvation (on a 6.1 guest under evict: late 52-72 ms, queued 50-70)."""
    child = spawn()
    cfg = {
        "detect": {"mem_available_min_pct": 1},  # never in danger here
        "policy": {"pids": [child.pid]},
        "guards": QUIET,
    }
    with Oomguard(tmp_path, cfg) as og:
        og.wait_event("ready")
        time.sleep(0.3)  # a few wake-ups on time
        os.kill(og.pid, signal.SIGSTOP)
        time.sleep(0.6)
        os.kill(og.pid, signal.SIGCONT)
        late = og.wait_event("late", step="wake")
        assert og.stop() == 0
    assert child.poll() is None
    by, queued = float(late["by_ms"]), float(late["queued_ms"])
    assert by >= 400 and int(late["timeout_ms"]) >= 0
    assert 0 <= queued < by / 2  # stopped, not ready: little of it was run delay


def test_a_stuck_log_reader_does_not_hold_up_the_kill(
    tmp_path: Path, spawn: Spawn, cg2: Path
) -> None:
    """The log goes to a pipe whose reader stops reading (a wedged journald, a full
    terminal): the kill (and a reap at once) go first, and the log lines wait for them."""
    work = cg2 / "workload"
    work.mkdir()
    victim = spawn()
    cfg: dict[str, object] = {
        "log": "-",
        "detect": {"mem_available_min_pct": 100},
        "policy": {"cgroups": [f"{work}/*"], "reap_after_ms": 0},
        "guards": QUIET,
    }
    r, w = os.pipe()
    try:
        with Oomguard(tmp_path, cfg, stdout=w) as og:
            seen = b""
            deadline = time.monotonic() + 20
            while b'"no_candidate"' not in seen:  # in danger, nothing to kill yet
                assert og.proc is not None and og.proc.poll() is None, seen[-2000:]
                assert time.monotonic() < deadline, seen[-2000:]
                if select.select([r], [], [], 0.1)[0]:
                    seen += os.read(r, 65536)
            os.set_blocking(w, False)  # fill the pipe: oomguard's next write blocks
            for chunk in (4096, 1):  # to the last byte: even a short line must block
                try:
                    while True:
                        os.write(w, b"x" * chunk)
                except BlockingIOError:
                    pass
            os.set_blocking(w, True)
            move(victim.pid, work / "victim")
            assert victim.wait(timeout=10) == -signal.SIGKILL
            time.sleep(1.0)  # the log stays stuck a while longer: the reap must not wait
            drained = b""
            while b'"exit"' not in drained:  # unstick it, then it logs what it did
                assert og.proc is not None and og.proc.poll() is None
                if select.select([r], [], [], 10)[0]:
                    drained += os.read(r, 65536)
            drained = drained.lstrip(b"x")  # the filler ahead of oomguard's lines
            lines = [json.loads(x) for x in drained.split(b"\n") if x]
    finally:
        os.close(r)
        os.close(w)
    want = ["trigger", "decision", "signal", "exit"]
    assert [e["event"] for e in lines if e["event"] in want][:4] == want
    trig, decision, sig = (first(lines, n) for n in want[:3])
    assert trig["t_ns"] == decision["t_ns"] <= sig["sent_ns"]  # stamped when decided
    assert decision["read_ns"] <= decision["t_ns"]
    assert decision["chosen"]["id"] == str(work / "victim")
    # reap_after_ms 0: the reap went before the stuck lines, not a second later
    assert float(str(first(lines, "mrelease")["after_ms"])) < 500
