"""Every killer target, for real, in a VM, beyond the smoke matrix's cells.

Each real killer's own run of `spike` (its default config, no swap) is a cell of the
smoke matrix, and tests/integration/test_smoke_matrix.py checks it: the result must
name the killer as the killer from the kernel's evidence (tracefs signal_generate from
one of the killer's threads), carry its version and its log, and the log must tell
the same story. Here: configurations the matrix does not run (oomd told to act early,
oomd's default config with zram swap, a killer given as a bare command, a killer that
refuses its flags), and a compliance test of every registered target's contract on
this host (no VM).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chaos import catalogue, targets
from chaos.kernels import Kernel
from chaos.result import Result
from chaos.scenario import KillerSpec, Params
from chaos.session import Session, TestbedChoice
from chaos.skips import skip_or_fail, skip_unless_binary
from chaos.targets.base import Layout, TargetError
from tests.integration.checks import (
    check_killer_killed,
    check_oomd_default_config,
)
from tests.integration.conftest import Record

pytestmark = pytest.mark.integration


def run_spike(session: Session, kernel: Kernel, name: str, options: Params | None = None,
              swap_mib: int = 0) -> Result:
    scenario = catalogue.spike(KillerSpec(name=name, options=options or {}))
    return session.run(scenario, TestbedChoice(kind="vm", kernel=kernel.package,
                                               swap_mib=swap_mib))


def test_oomd_kills_when_told_to_act_early(default_kernel: Kernel, session: Session,
                                           record: Record) -> None:
    """workload_above=200M makes oomd act long before the kernel could."""
    skip_unless_binary("oomd", "oomd")
    result = run_spike(session, default_kernel, "oomd", {"workload_above": "200M"})
    check_killer_killed(result, "oomd", record, comm="oomd")
    assert '"threshold": "200M"' in result.killer.config
    assert any("Killed" in e.detail for e in result.events if e.kind == "killer_log")


def test_oomd_default_config_with_zram_swap(default_kernel: Kernel, session: Session,
                                            record: Record) -> None:
    """A record, not a race to win: the target must work; who killed is the finding.
    (Without swap it is the smoke matrix's spike/oomd cell.)"""
    swap_mib = 256
    skip_unless_binary("oomd", "oomd")
    result = run_spike(session, default_kernel, "oomd", swap_mib=swap_mib)
    assert result.testbed.swap_mib >= swap_mib * 0.9
    check_oomd_default_config(result, record)


def test_killer_that_exits_at_startup_is_a_testbed_error(default_kernel: Kernel,
                                                         session: Session) -> None:
    """A real killer given a flag it refuses: one line naming it, with its own last words."""
    skip_unless_binary("earlyoom", "earlyoom")
    result = run_spike(session, default_kernel, "earlyoom", {"extra": "--no-such-flag"})
    print(f"\n{result.error}")
    assert result.error.startswith("TESTBED_ERROR: killer earlyoom exited at start-up"), \
        result.error
    assert "\n" not in result.error
    assert "no-such-flag" in result.error or "unrecognized" in result.error, result.error
    assert result.verdict.reasons == ["TESTBED_ERROR"]
    assert result.killer.log, "the killer's output must be kept"
    assert result.victims == [], "no stressor may start once the killer failed"


# -- compliance: every registered target's contract, on this host -----------------------------
@pytest.mark.parametrize("name", targets.names())
def test_target_compliance(name: str, tmp_path: Path) -> None:
    target = targets.load(KillerSpec(name=name))
    try:
        target.check()
    except TargetError as exc:
        skip_or_fail(str(exc))
    assert target.version(), f"{name}: no version"
    layout = Layout(cgroup_root=Path("/sys/fs/cgroup/chaos-compliance.1"), cgroup_version=2,
                    workdir=tmp_path, harness_pids=(1234,))
    launch = target.launch(catalogue.spike(KillerSpec(name=name)), layout)
    if name == "kernel":
        assert launch is None
        return
    assert launch is not None and launch.argv, f"{name}: no argv"
    assert shutil.which(launch.argv[0]), f"{name}: {launch.argv[0]} cannot be found"
    assert launch.ready_pattern or launch.ready_after_s > 0, f"{name}: no readiness evidence"
    assert 0 < launch.ready_timeout_s <= 120
    if not launch.config_text:
        return
    assert launch.config_path is not None and launch.config_path.parent == tmp_path
    assert str(launch.config_path) in launch.argv, f"{name}: argv does not use its config"
    launch.config_path.write_text(launch.config_text)
    target.validate(launch)
    launch.config_path.write_text("this is { not a config\n")
    with pytest.raises(TargetError) as refused:
        target.validate(launch)
    assert str(refused.value).startswith(f"killer {name}: ") and "\n" not in str(refused.value)
