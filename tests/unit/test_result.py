"""Results: lossless JSON round trips and atomic writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from chaos.result import (
    BystanderOutcome,
    Event,
    Reason,
    Result,
    VictimOutcome,
    write_atomic,
)
from chaos.scenario import SpecError


def sample() -> Result:
    r = Result(scenario="spike", run_id="run.1")
    r.killer.name = "earlyoom"
    r.killer.version = "earlyoom v1.7"
    r.kernel.release = "6.12.117+deb12-amd64"
    r.testbed.accel = "tcg"
    r.verdict.passed = False
    r.verdict.reasons = ["SLOW_KILL"]
    r.verdict.details = [Reason("SLOW_KILL", "slow", {"time_to_kill_ms": 12000.0})]
    r.metrics.time_to_kill_ms = 12000.0
    r.events = [Event(t_ns=5, kind="signal", pid=3, sender_pid=9, sender_comm="earlyoom",
                      signal=15, source="tracefs")]
    r.series = {"t_ns": [1.0, 2.0], "mem_available_kib": [100.0, 50.0]}
    r.victims = [VictimOutcome(instance="hog", pid=3, cgroup="workload/hog", died=True,
                               killed_by="killer", activity={"allocated_mib": 800.0})]
    r.bystanders = [BystanderOutcome(instance="b", pid=4, survived=True, worst_stall_ms=3.5)]
    r.t0_ns = 1
    return r


def test_round_trip(tmp_path: Path) -> None:
    r = sample()
    path = tmp_path / "r.json"
    r.write(path)
    again = Result.read(path)
    assert again == r
    # the series skip asdict's walk, and the file holds the same data as with it; the
    # series are one compact line, the rest indented
    text = path.read_text()
    assert json.loads(text) == json.loads(json.dumps(dataclasses.asdict(r)))
    assert '"series": {"mem_available_kib":[100.0,50.0],"t_ns":[1.0,2.0]}' in text
    assert '\n "scenario": "spike",\n' in text
    raw = json.loads(path.read_text())
    # the public schema names that reports and other tools read
    assert raw["schema"] == 1 and raw["scenario"] == "spike"
    assert raw["killer"]["name"] == "earlyoom" and raw["killer"]["version"]
    assert raw["kernel"]["release"] and raw["testbed"]["kind"] == "vm"
    assert raw["testbed"]["accel"] == "tcg"
    assert raw["verdict"]["passed"] is False and raw["verdict"]["reasons"] == ["SLOW_KILL"]
    assert raw["metrics"]["time_to_kill_ms"] == 12000.0
    assert isinstance(raw["events"], list) and isinstance(raw["series"], dict)


def test_truncated_result_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    sample().write(path)
    path.write_text(path.read_text()[:100])
    with pytest.raises(SpecError):
        Result.read(path)


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    write_atomic(path, "old")

    with pytest.raises(TypeError):
        write_atomic(path, 42)  # type: ignore[arg-type]
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
