"""A host-side session: sweep leftovers, run scenarios on a testbed, store results.

Used by the pytest plugin and by ``chaos run``. Every result is judged and
written atomically as soon as it is known, so a crash loses at most the
scenario in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from chaos import kernels
from chaos.kernels import Kernel
from chaos.result import Result
from chaos.scenario import Scenario, TestbedInfo
from chaos.state import RunRecord, new_run_id, sweep
from chaos.verdict import judge


@dataclass(frozen=True)
class TestbedChoice:
    """Which testbed a session runs scenarios on, and its size."""

    __test__ = False

    kind: str = "vm"  # vm | local
    kernel: str = kernels.DEFAULT_KERNEL  # alias, package, or PATH[:MODULES]
    memory_mib: int = 1024
    cpus: int = 2
    swap_mib: int = 0
    arena_mib: int = 0  # local only; 0 = default arena (or global with allow_host_pressure)
    allow_host_pressure: bool = False
    # vm only: a guest whose agent is silent this long is TESTBED_HUNG (0: at the deadline,
    # which is the scenario's plus a 90 s margin for the killer's start-up and teardown)
    silence_s: float = 0.0

    def info(self) -> TestbedInfo:
        return TestbedInfo(kind=self.kind, memory_mib=self.memory_mib, cpus=self.cpus,
                           swap_mib=self.swap_mib, arena_mib=self.arena_mib)


@dataclass
class Session:
    results_dir: Path
    run_id: str = field(default_factory=new_run_id)
    slo_overrides: dict[str, float] = field(default_factory=dict)
    record: RunRecord | None = None
    swept: list[str] = field(default_factory=list)
    counter: int = 0

    @property
    def record_id(self) -> str:
        """This process's share of the run (xdist workers share a run id, not a record)."""
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        return f"{self.run_id}.{worker}" if worker else self.run_id

    def __enter__(self) -> Session:
        self.swept = sweep()
        self.record = RunRecord.open(self.record_id)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.record is not None:
            self.record.close()

    @property
    def run_dir(self) -> Path:
        return self.results_dir / self.run_id

    def next_scenario_run_id(self) -> str:
        self.counter += 1
        return f"{self.record_id}.{self.counter}"

    def kernel(self, spec: str) -> Kernel:
        return kernels.get(spec)

    def run(self, scenario: Scenario, testbed: TestbedChoice,
            on_progress: Callable[[str], None] | None = None) -> Result:
        """Run one scenario; the returned result is judged and already on disk."""
        scenario = replace(scenario, run_id=self.next_scenario_run_id(),
                           testbed=testbed.info())
        scenario.validate()
        from chaos.runtimes import validate as validate_stressors

        validate_stressors(scenario)  # bad stressor input: refused before a testbed boots
        work = self.run_dir / "work" / safe_name(scenario.run_id)
        if testbed.kind == "vm":
            from chaos.testbeds import vm_runner

            kernel = self.kernel(testbed.kernel)
            result = vm_runner.run(scenario, kernel, work, self.record, on_progress,
                                   silence_s=testbed.silence_s)
        else:
            from chaos.testbeds import local

            result = local.run(scenario, work, self.record, testbed.allow_host_pressure,
                               on_progress)
        result.suite_revision = suite_revision()
        result.config_hash = config_hash(result.spec, self.slo_overrides)
        result.verdict = judge(result, self.slo_overrides or None)
        path = self.result_path(result)
        result.write(path)
        result.logs.setdefault("result_path", str(path))
        if not os.environ.get("CHAOS_KEEP_WORK"):
            shutil.rmtree(work, ignore_errors=True)
        return result

    def result_path(self, result: Result) -> Path:
        return self.run_dir / f"{safe_name(result.run_id)}--{safe_name(result.scenario)}.json"


def config_hash(spec: dict[str, object], slo_overrides: dict[str, float]) -> str:
    """Identity of a configuration across runs and runners (see Result.config_hash)."""
    canon = json.loads(json.dumps(spec))
    canon.pop("run_id", None)
    if isinstance(canon.get("testbed"), dict):
        canon["testbed"].pop("accel", None)
    blob = json.dumps({"spec": canon, "slo": slo_overrides}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", text)[:150]


def suite_revision() -> str:
    """The suite's git revision (with -dirty), so results from many runners can be merged.

    Read per run, not once per session: the guest runs the host's working tree as it is
    when the VM boots, so a tree edited mid-session must show in the runs after the edit.
    """
    here = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return rev or "unknown"
