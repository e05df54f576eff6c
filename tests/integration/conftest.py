"""Shared fixtures for integration tests: real kernels, real VMs, real processes."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos import kernels
from chaos.kernels import Kernel
from chaos.session import Session
from chaos.skips import skip_or_fail, skip_unless_qemu, skip_unless_root

VM_KERNELS = ("6.1", "6.12")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Long tests first, so with `-n 2 --dist worksteal` the other worker takes the rest.

    (Collected last, the 15-minute smoke matrix started when the other worker was
    nearly done, and CI waited for it alone.)
    """
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def kernel_cache() -> dict[str, Kernel]:
    return {}


def get_kernel(spec: str, cache: dict[str, Kernel]) -> Kernel:
    skip_unless_root()
    skip_unless_qemu()
    if spec not in cache:
        try:
            cache[spec] = kernels.get(spec)
        except kernels.KernelError as exc:
            skip_or_fail(f"kernel {spec} unavailable: {exc}")
    return cache[spec]


@pytest.fixture(params=VM_KERNELS)
def vm_kernel(request: pytest.FixtureRequest, kernel_cache: dict[str, Kernel]) -> Kernel:
    return get_kernel(request.param, kernel_cache)


@pytest.fixture
def default_kernel(kernel_cache: dict[str, Kernel]) -> Kernel:
    return get_kernel(kernels.DEFAULT_KERNEL, kernel_cache)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    with Session(results_dir=tmp_path / "results") as s:
        yield s


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A directory that every xdist worker of this pytest run sees."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's directory, above the workers' own
    path = base / name
    path.mkdir(exist_ok=True)
    return path


def once(root: Path, name: str, produce: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``produce()`` once per run, whichever worker asks first; the others wait and read it.

    For guests that serve many tests: a VM boot is the scarce thing in CI (one slot on a
    2-core host). If ``produce`` raises, nothing is kept and the next caller tries again.
    """
    shared = root / f"{name}.json"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held while the first caller produces it
        if not shared.exists():
            tmp = shared.with_suffix(".tmp")
            tmp.write_text(json.dumps(produce()))
            tmp.rename(shared)
    data: dict[str, Any] = json.loads(shared.read_text())
    return data


Record = Callable[[str, object], None]


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Record:
    """Keep a measured fact with the test's report (junit properties, -rA, plugins)."""
    return lambda name, value: request.node.user_properties.append((name, value))
