"""Stressors: one module per kind of trouble, looked up by name.

The registry maps names to dotted module paths and imports lazily (the
pytest-testinfra model), so a scenario that uses one stressor does not pay for
the others. Each module provides:

- ``Params``: a frozen dataclass of its parameters with defaults;
- ``parse(raw: dict) -> Params``: validation, raising SpecError with one line;
- ``command(params) -> list[str]``: argv that runs it (inside its cgroup/container);
- ``main(argv)``: the workload itself, printing JSON progress lines on stdout.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from chaos.scenario import Params, SpecError

REGISTRY: dict[str, str] = {
    "anon_hog": "chaos.stressors.anon_hog",
}


def load(name: str) -> ModuleType:
    try:
        dotted = REGISTRY[name]
    except KeyError:
        raise SpecError(
            f"unknown stressor {name!r} (available: {', '.join(sorted(REGISTRY))})") from None
    return importlib.import_module(dotted)


def parse(name: str, raw: Params) -> Any:
    return load(name).parse(raw)


def command(name: str, raw: Params) -> list[str]:
    module = load(name)
    return list(module.command(module.parse(raw)))
