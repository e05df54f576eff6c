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
