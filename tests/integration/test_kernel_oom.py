"""The walking skeleton, measured: the kernel alone against an anon hog, in real VMs.

Asserts facts the kernel recorded: the hog died of SIGKILL, the OOM killer
marked it (tracefs), the oom_kill counter moved, the bystander lived, and
time-to-kill is positive and finite; the timeline was sampled at >= 20 Hz.
"""

from __future__ import annotations

import math

import pytest

from chaos import catalogue
from chaos.kernels import Kernel
from chaos.result import Result
from chaos.scenario import KillerSpec
from chaos.session import Session, TestbedChoice

pytestmark = pytest.mark.integration


def check_kernel_kill(result: Result) -> None:
    assert not result.error, result.error + result.logs.get("console", "")[-2000:]
    (hog,) = result.victims
    assert hog.died and hog.exit_signal == 9
    assert hog.killed_by == "kernel"
    assert any(e.kind == "mark_victim" and e.pid == hog.pid for e in result.events)
    assert result.metrics.oom_kill_delta >= 1
    assert hog.activity["allocated_mib"] > 100  # it really allocated
    (by,) = result.bystanders
    assert by.survived and by.beats > 10
    ttk = result.metrics.time_to_kill_ms
    assert ttk is not None and math.isfinite(ttk) and ttk > 0
    assert result.t0_ns is not None
    assert result.metrics.sample_hz_achieved >= 20
    n = len(result.series["t_ns"])
    assert n > 20 and all(len(v) == n for v in result.series.values())
    assert min(result.series["mem_available_kib"]) < max(result.series["mem_available_kib"]) / 2
    assert result.verdict.passed, result.verdict


def test_kernel_kills_anon_hog_in_vm(vm_kernel: Kernel, session: Session) -> None:
    scenario = catalogue.spike(KillerSpec(name="kernel"))
    result = session.run(scenario, TestbedChoice(kind="vm", kernel=vm_kernel.package))
    check_kernel_kill(result)
    assert result.kernel.release == vm_kernel.release
    assert result.testbed.kind == "vm" and result.testbed.accel in ("kvm", "tcg")
    assert 900 <= result.testbed.memory_mib <= 1024
    assert result.killer.name == "kernel"
    stored = Result.read(session.result_path(result))
    assert stored.verdict == result.verdict and stored.kernel.package == vm_kernel.package


def test_kernel_kills_anon_hog_in_local_arena(session: Session) -> None:
    """The local testbed without the opt-in: the pressure stays inside a memory-limited cgroup."""
    from chaos.skips import skip_unless_root

    skip_unless_root()
    result = session.run(catalogue.spike(KillerSpec(name="kernel")),
                         TestbedChoice(kind="local", arena_mib=384))
    check_kernel_kill(result)
    assert result.testbed.kind == "local" and result.testbed.arena_mib == 384
    assert "CONSTRAINT_MEMCG" in result.logs.get("kmsg", "")
