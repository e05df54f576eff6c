"""Loads the chaos pytest plugin (also registered as a pytest11 entry point); the `long` mark."""

import pytest

pytest_plugins = ["chaos.plugin"]


def pytest_configure(config: pytest.Config) -> None:
    # here, not in tests/integration: unit tests import integration modules' pure helpers
    config.addinivalue_line("markers", "long: runs for many minutes; started first")
