"""Skips that say why, and a switch that turns them into failures (the drgn model).

Elsewhere a missing dependency skips with a reason; with CHAOS_REQUIRE_ALL=1
(set by .ci/run) the same condition fails, so CI cannot pass while measuring
nothing.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def require_all() -> bool:
    return os.environ.get("CHAOS_REQUIRE_ALL", "") not in ("", "0")


def skip_or_fail(reason: str) -> NoReturn:
    if require_all():
        pytest.fail(f"required but missing (CHAOS_REQUIRE_ALL=1): {reason}", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")


def not_applicable(reason: str) -> NoReturn:
    """A combination that cannot exist (a VM-only scenario on the local testbed): always a
    skip, even with CHAOS_REQUIRE_ALL, because nothing is missing. Never for a dependency."""
    pytest.skip(f"not applicable: {reason}")
    raise AssertionError("unreachable")


def require(condition: bool, reason: str) -> None:
    if not condition:
        skip_or_fail(reason)


def skip_unless_root() -> None:
    require(os.geteuid() == 0, "needs root (cgroups, tracefs, qemu virtfs)")


def skip_unless_qemu() -> None:
    require(shutil.which("qemu-system-x86_64") is not None,
            "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)")
    require(shutil.which("busybox") is not None or os.path.exists("/bin/busybox"),
            "busybox is not installed (apt-get install busybox-static)")


def skip_unless_binary(name: str, package: str) -> None:
    require(shutil.which(name) is not None, f"{name} is not installed (apt-get install {package})")
