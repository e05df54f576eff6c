"""Results: the raw record of one scenario run, as the testbed observed it.

A result keeps the spec it ran, the system it ran on, every event and every
sampled series, so verdicts and reports can be recomputed later without
re-running anything (the resctl-bench model). The field names below are a
public schema: reports and other tools read them.

Timestamps are CLOCK_MONOTONIC nanoseconds *of the testbed* (the tracefs
``mono`` clock uses the same base). ``t0_ns`` is the moment of danger.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.scenario import SpecError, build

RESULT_SCHEMA = 1


@dataclass
class KillerInfo:
    name: str = "kernel"
    version: str = ""
    pids: list[int] = field(default_factory=list)
    config: str = ""  # the rendered configuration, verbatim
    log: str = ""  # the killer's own output (supporting evidence only)
    exited: bool = False  # the killer process ended before the scenario did
    exit_status: int | None = None


@dataclass
class KernelInfo:
    release: str = ""
    package: str = ""  # Debian package name, or the path of a local build
    cmdline: str = ""


@dataclass
class TestbedResult:
    __test__ = False

    kind: str = "vm"
    accel: str = "none"
    memory_mib: int = 0
    cpus: int = 0
    swap_mib: int = 0
    arena_mib: int = 0
    host: str = ""  # the runner's hostname
    boot_ms: float | None = None  # qemu start -> the guest's userspace runs (stage 2)
    agent_ready_ms: float | None = None  # qemu start -> the agent has read its spec
    # the host kept the vCPUs waiting for a CPU this share of the time they wanted one
    # (chaos.testbeds.steal); raw: t_ns on the testbed clock, per vCPU cumulative ms
    vcpu_steal_pct: float | None = None
    vcpu_wait: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Event:
    """One thing that happened, from kernel evidence where possible."""

    t_ns: int
    kind: str  # danger, signal, exit, oom_kill, mark_victim, killer_exit, recovered, ...
    pid: int = 0
    comm: str = ""
    sender_pid: int = 0
    sender_comm: str = ""
    signal: int = 0
    source: str = ""  # tracefs, pidfd, vmstat, kmsg, killer-log, sampler
    detail: str = ""


@dataclass
class VictimOutcome:
    instance: str
    pid: int
    cgroup: str
    died: bool = False
    exit_t_ns: int | None = None  # pidfd readable (harness clock)
    # when its first progress line ("start") was read: its work began (cgroup runtime only)
    work_start_t_ns: int | None = None
    kernel_exit_t_ns: int | None = None  # sched_process_exit (tracefs, same clock)
    exit_signal: int | None = None  # signal that ended it, if any
    exit_code: int | None = None
    killed_by: str = ""  # "killer", "kernel", "other", "" (not killed)
    killer_comm: str = ""
    signal_t_ns: int | None = None
    expected: bool = True  # the scenario expects this one to die
    stressor: str = ""
    activity: dict[str, float] = field(default_factory=dict)  # what it actually did
    # started ahead while the killer started, gated until then (Launcher.stage)
    staged: bool = False


@dataclass
class BystanderOutcome:
    instance: str
    pid: int
    survived: bool
    worst_stall_ms: float | None = None
    beats: int = 0
    killed_by: str = ""


@dataclass
class Metrics:
    time_to_kill_ms: float | None = None  # danger -> victim gone (detect + teardown)
    detect_ms: float | None = None  # danger -> fatal signal sent
    teardown_ms: float | None = None  # fatal signal -> victim gone
    recover_ms: float | None = None  # victim gone -> memory and pressure back to normal
    samples: int = 0
    samples_missed: int = 0
    samples_missed_in_window: int = 0  # from 1 s before danger to 1 s after the victim is gone
    samples_expected_in_window: int = 0
    sample_hz_achieved: float = 0.0
    oom_kill_delta: int = 0
    bystander_worst_stall_ms: float | None = None
    killer_reclaim_episodes: int = 0
    killer_reclaim_total_ms: float = 0.0
    killer_reclaim_longest_ms: float = 0.0
    killer_reclaim_in_window_ms: float = 0.0  # tracepoint reclaim between danger and kill
    killer_reclaim_delay_ms: float = 0.0  # delay accounting (taskstats freepages delay)
    killer_stack_reclaim_samples: int = 0  # stack samples caught inside reclaim
    killer_run_delay_ms: float = 0.0  # whole run
    killer_throttled_ms: float = 0.0  # whole run
    killer_window_ms: float | None = None  # danger -> first fatal signal (or the end)
    killer_run_delay_in_window_ms: float = 0.0
    killer_throttled_in_window_ms: float = 0.0
    killer_major_faults: int = 0  # after ready: its own pages evicted and read back
    killer_major_faults_in_window: int = 0  # bracketing danger -> kill (100 ms samples)
    exit_lag_ms: float | None = None  # pidfd wake-up minus sched_process_exit, for the victim
    # part of teardown: a victim's reclaim pass already under way when its fatal signal came
    # ran on this long (the kernel acts on the signal when the pass returns); None: not traced
    victim_reclaim_after_signal_ms: float | None = None
    # teardown of the victim gone last, from its context switches: running (the kernel
    # freeing its memory), runnable but waiting for a CPU, asleep; None: not traced
    victim_teardown_on_cpu_ms: float | None = None
    victim_teardown_runnable_ms: float | None = None
    victim_teardown_blocked_ms: float | None = None
    # its waiting for a CPU, by the task that took the CPU from it (comm -> ms)
    victim_teardown_preempted_by: dict[str, float] = field(default_factory=dict)
    clock_skew_ms: float | None = None  # harness clock minus tracefs clock (trace_marker)
    # vCPU time the host took away (summed over vCPUs): danger -> victim gone, and the
    # teardown alone; the testbed's share of those phases, not the killer's or the kernel's
    vcpu_steal_in_window_ms: float | None = None
    vcpu_steal_teardown_ms: float | None = None


@dataclass
class Reason:
    """A reason code plus the evidence that produced it."""

    code: str
    message: str = ""
    evidence: dict[str, float | int | str | None] = field(default_factory=dict)


@dataclass
class Verdict:
    passed: bool = False
    reasons: list[str] = field(default_factory=list)  # upper-case codes (chaos.verdict)
    details: list[Reason] = field(default_factory=list)


@dataclass
class Result:
    scenario: str
    run_id: str
    schema: int = RESULT_SCHEMA
    spec: dict[str, Any] = field(default_factory=dict)  # the Scenario, as JSON
    killer: KillerInfo = field(default_factory=KillerInfo)
    kernel: KernelInfo = field(default_factory=KernelInfo)
    testbed: TestbedResult = field(default_factory=TestbedResult)
    verdict: Verdict = field(default_factory=Verdict)
    metrics: Metrics = field(default_factory=Metrics)
    events: list[Event] = field(default_factory=list)
    # Columnar time series: "t_ns" and one list per measured quantity, same length.
    series: dict[str, list[float]] = field(default_factory=dict)
    victims: list[VictimOutcome] = field(default_factory=list)
    bystanders: list[BystanderOutcome] = field(default_factory=list)
    t0_ns: int | None = None  # danger
    started_ns: int = 0
    ended_ns: int = 0
    error: str = ""  # set when the run itself failed (agent crash, testbed hung)
    logs: dict[str, str] = field(default_factory=dict)  # name -> text (console, agent, ...)
    system: dict[str, str] = field(default_factory=dict)  # uname, meminfo totals, versions
    suite_revision: str = ""
    # sha256 of the spec as canonical JSON without run_id and accelerator, plus SLO
    # overrides: results of "the same configuration" from many runners share it.
    config_hash: str = ""

    def to_json(self) -> str:
        # The series are JSON already (lists of numbers): asdict would walk each of their
        # ~15 000 values, half a second of a guest's time under emulation. They are written
        # compact, by json's C encoder (an indent means its pure-Python one: 1.1 s of a
        # guest's time a run); the rest stays indented for a reader.
        data = dataclasses.asdict(dataclasses.replace(self, series={}))
        data["series"] = _SERIES_SLOT
        text = json.dumps(data, indent=1, sort_keys=True)
        series = json.dumps(self.series, sort_keys=True, separators=(",", ":"))
        return text.replace(json.dumps(_SERIES_SLOT), series, 1)

    def write(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or none, never half of one."""
        write_atomic(path, self.to_json())

    @classmethod
    def from_json(cls, text: str) -> Result:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"result is not valid JSON: {exc}") from None
        return result_from_dict(raw)

    @classmethod
    def read(cls, path: Path) -> Result:
        return cls.from_json(Path(path).read_text())


_SERIES_SLOT = "\0series\0"  # stands in for the series in the indented part


def write_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def result_from_dict(raw: Any) -> Result:
    if not isinstance(raw, dict):
        raise SpecError("result must be a JSON object")
    raw = dict(raw)
    if raw.get("schema") != RESULT_SCHEMA:
        raise SpecError(f"result schema {raw.get('schema')!r} is not {RESULT_SCHEMA}")
    simple = {"killer": KillerInfo, "kernel": KernelInfo, "testbed": TestbedResult,
              "metrics": Metrics}
    for key, cls in simple.items():
        if key in raw:
            raw[key] = _build_lists(cls, raw[key], key)
    if "verdict" in raw:
        v = dict(raw["verdict"])
        v["details"] = [_build_lists(Reason, d, "verdict.details") for d in v.get("details", [])]
        raw["verdict"] = _build_lists(Verdict, v, "verdict")
    raw["events"] = [_build_lists(Event, e, "events") for e in raw.get("events", [])]
    raw["victims"] = [_build_lists(VictimOutcome, e, "victims") for e in raw.get("victims", [])]
    raw["bystanders"] = [_build_lists(BystanderOutcome, e, "bystanders")
                         for e in raw.get("bystanders", [])]
    return _build_lists(Result, raw, "result")


def _build_lists(cls: type[Any], raw: Any, where: str) -> Any:
    """Like scenario.build, but keeps JSON lists as lists (results are mutable)."""
    obj = build(cls, raw, where)
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, tuple):
            setattr(obj, f.name, list(value))
    return obj
