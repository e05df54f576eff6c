"""The walking skeleton, measured: the kernel alone against an anon hog, in real VMs.

On the default kernel the same run is the smoke matrix's spike/kernel cell, checked
there. Asserts facts the kernel recorded: the hog died of SIGKILL, the OOM killer
marked it (tracefs), the oom_kill counter moved, the bystander lived, and
time-to-kill is positive and finite; the timeline was sampled at >= 20 Hz.
"""

from __future__ import annotations

import pytest

from chaos import catalogue, kernels
from chaos.kernels import Kernel
from chaos.result import Result
from chaos.scenario import KillerSpec
from chaos.session import Session, TestbedChoice
from tests.integration.checks import check_kernel_kill
from tests.integration.conftest import VM_KERNELS, get_kernel

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("spec", [k for k in VM_KERNELS if k != kernels.DEFAULT_KERNEL])
def test_kernel_kills_anon_hog_in_vm(spec: str, kernel_cache: dict[str, Kernel],
                                     session: Session) -> None:
    """On the other kernels; on the default one this is the smoke matrix's spike/kernel cell."""
    vm_kernel = get_kernel(spec, kernel_cache)
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
