"""Shared fixtures for integration tests: real kernels, real VMs, real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos import kernels
from chaos.kernels import Kernel
from chaos.session import Session
from chaos.skips import skip_or_fail, skip_unless_qemu, skip_unless_root

VM_KERNELS = ("6.1", "6.12")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "long: runs for many minutes; started first")


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
