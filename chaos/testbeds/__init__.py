"""Testbeds: where a scenario runs. ``vm`` (qemu, one guest per scenario) or ``local``.

Registry of dotted paths, imported lazily (the pytest-testinfra model).
Each module provides ``run(scenario, workdir, record, ...) -> Result``.
"""

from __future__ import annotations

REGISTRY: dict[str, str] = {
    "vm": "chaos.testbeds.vm_runner",
    "local": "chaos.testbeds.local",
}
