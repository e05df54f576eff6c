"""Fixtures shared by the unit tests that start real children and cgroups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from owned import Spawn, private_cgroup2, spawner


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    yield from spawner()


@pytest.fixture
def cg2() -> Iterator[Path]:
    yield from private_cgroup2()
