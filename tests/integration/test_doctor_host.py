"""``chaos doctor`` on this very machine: what it reports must match what is measured here.

Each assertion compares one line of the real command's output with the same fact
read independently (shutil.which, /proc, /sys), so a doctor that guesses or reports
a stale fact fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from chaos import kernels, targets
from chaos.scenario import KillerSpec
from chaos.skips import skip_or_fail

pytestmark = pytest.mark.integration

QUICK_S = 10.0


def doctor(*args: str) -> tuple[int, str, float]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "chaos.cli", "doctor", *args],
                         capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, out.stdout, time.monotonic() - t0


def measured(testbed: str) -> dict[str, Any]:
    status, stdout, elapsed = doctor("--testbed", testbed, "--json")
    data = json.loads(stdout)
    data["_status"], data["_elapsed"] = status, elapsed
    return data


@pytest.fixture(scope="module")
def vm_report() -> dict[str, Any]:
    return measured("vm")


@pytest.fixture(scope="module")
def local_report() -> dict[str, Any]:
    return measured("local")


@pytest.fixture(params=["vm_report", "local_report"])
def report(request: pytest.FixtureRequest) -> dict[str, Any]:
    data: dict[str, Any] = request.getfixturevalue(request.param)
    return data


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def test_quick_and_exit_status_says_whether_a_run_is_valid(report: dict[str, Any]) -> None:
    assert report["_elapsed"] < QUICK_S
    missing = [c for c in report["checks"] if c["required"] and not c["ok"]]
    expect_valid = not missing and not report["runs"]["not_run"]
    assert report["valid"] is expect_valid
    assert report["_status"] == (0 if expect_valid else 1)


def test_root(report: dict[str, Any]) -> None:
    assert by_name(report)["root"]["ok"] is (os.geteuid() == 0)


def test_killers_match_what_is_installed(report: dict[str, Any]) -> None:
    checks = by_name(report)
    for name in targets.names():
        target = targets.load(KillerSpec(name=name))
        binary = getattr(target, "binary", None)
        if binary:
            assert checks[f"killer {name}"]["ok"] is (shutil.which(binary) is not None), name
    for name in getattr(targets, "UNSUPPORTED", {}):
        assert checks[f"killer {name}"]["status"] == "info"
        assert checks[f"killer {name}"]["detail"].startswith("unsupported: ")


def test_the_matrix_uses_the_plugins_default_killers(report: dict[str, Any]) -> None:
    from chaos.plugin import default_killers

    assert report["killers"] == default_killers()


def test_memory_and_swap(report: dict[str, Any]) -> None:
    memory = by_name(report)["memory"]
    reported = int(memory["detail"].split("MemAvailable ")[1].split()[0])
    now = meminfo_kib("MemAvailable") // 1024
    assert abs(reported - now) <= max(256, now // 10)
    swap = by_name(report)["swap"]["detail"]
    if report["plan"]["testbed"] == "local":
        assert (swap == "none") is (meminfo_kib("SwapTotal") == 0)


def test_vm_testbed_facts(vm_report: dict[str, Any]) -> None:
    report = vm_report
    checks = by_name(report)
    assert checks["qemu"]["ok"] is (shutil.which("qemu-system-x86_64") is not None)
    has_busybox = any(os.path.exists(p) for p in ("/bin/busybox", "/usr/bin/busybox")) \
        or shutil.which("busybox") is not None
    assert (checks["busybox"]["detail"] != "busybox is not installed (the guest's initramfs "
            "needs it)") is has_busybox
    kvm = checks["kvm"]["detail"]
    if kvm.startswith("not probed"):
        state = "absent" if not os.path.exists("/dev/kvm") else (
            "present" if os.access("/dev/kvm", os.R_OK | os.W_OK) else "no access")
        assert kvm.startswith(f"not probed; /dev/kvm {state}")
    default = report["plan"]["kernels"][0]
    cached = {a: c for a, _, c in kernels.available()}
    if default in cached:
        assert checks[f"kernel {default}"]["ok"] is cached[default]
    for name in ("cgroup", "psi", "tracefs", "delayacct"):
        assert checks[name]["status"] == "info"  # the guest has its own


def test_local_testbed_facts(local_report: dict[str, Any]) -> None:
    report = local_report
    checks = by_name(report)
    assert checks["psi"]["ok"] is Path("/proc/pressure/memory").exists()
    delayacct = Path("/proc/sys/kernel/task_delayacct").read_text().strip()
    assert checks["delayacct"]["ok"] is (delayacct == "1")
    v2_memory = any("memory" in _read(Path(root) / "cgroup.controllers").split()
                    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"))
    assert checks["cgroup"]["ok"] is v2_memory
    if not v2_memory and Path("/sys/fs/cgroup/memory/cgroup.procs").exists():
        assert "cgroup v1 memory arena" in checks["cgroup"]["detail"]
        oomd = [c for c in report["runs"]["not_run"] if c["killer"] == "oomd"]
        assert "oomd" not in report["killers"] or oomd


def test_text_output_agrees_with_json(report: dict[str, Any]) -> None:
    status, text, _ = doctor("--testbed", report["plan"]["testbed"])
    assert status == report["_status"]
    for c in report["checks"]:
        assert c["name"] in text
        if c["fix"] and not c["ok"]:
            assert f"fix: {c['fix']}" in text
    assert ("a run would be valid" in text) is report["valid"]


def test_debian_kernels_have_every_option_the_testbed_needs() -> None:
    """The option names doctor audits exist, with these values, in real Debian configs."""
    from chaos.doctor.kconfig import KCONFIG_MODULAR, kconfig_gaps

    configs = sorted((kernels.cache_dir() / "kernels").glob("linux-image-*/boot/config-*"))
    if not configs:
        skip_or_fail("no Debian kernel in the cache (chaos kernels fetch 6.12)")
    for config in configs:
        text = config.read_text()
        assert kconfig_gaps(text, has_modules=True) == ((), ()), config
        # Debian builds 9p and overlay as modules: without the modules tree they are missing.
        required, _ = kconfig_gaps(text, has_modules=False)
        assert set(required) <= KCONFIG_MODULAR and "CONFIG_9P_FS" in required, config


def test_bad_usage() -> None:
    status, _, _ = doctor("--testbed", "cloud")
    assert status == 2


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
