"""Testbeds: where a scenario runs. ``vm`` (qemu, one guest per scenario) or ``local``.

Registry of dotted paths, imported lazily (the pytest-testinfra model).
Each module provides ``run(scenario, workdir, record, ...) -> Result``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.result import Result
    from chaos.scenario import Scenario

REGISTRY: dict[str, str] = {
    "vm": "chaos.testbeds.vm_runner",
    "local": "chaos.testbeds.local",
}


def unfinished(scenario: Scenario, error: str) -> Result:
    """The result of a run whose agent wrote none: no measurements, but the cell it was
    (scenario, killer) and why, so a report files the failure under the right killer."""
    from chaos.result import KillerInfo, Result

    return Result(scenario=scenario.id, run_id=scenario.run_id,
                  spec=dataclasses.asdict(scenario), killer=KillerInfo(name=scenario.killer.name),
                  error=error)
