"""Stressors: one module per kind of trouble, looked up by name.

The registry maps names to dotted module paths and imports lazily (the
pytest-testinfra model), so a scenario that uses one stressor does not pay for
the others. Each module provides:

- ``Params``: a frozen dataclass of its parameters with defaults;
- ``parse(raw: dict) -> Params``: validation, raising SpecError with one line;
- ``command(params) -> list[str]``: argv that runs it (inside its cgroup/container);
- ``main(argv)``: the workload itself, printing JSON progress lines on stdout;

and optionally ``needs(params) -> Needs`` (what its runtime must provide) and
``prepare(params, cgroup_root) -> env`` (testbed-side set-up the agent runs
before it starts, e.g. squeezing another cgroup's CPU quota).
Runtime limits (``memory_max_mib``, ...) are split off the params first by
``chaos.runtimes``; the same module runs unchanged under every runtime.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from chaos.scenario import Params, SpecError
from chaos.stressors.common import Needs

REGISTRY: dict[str, str] = {
    "anon_hog": "chaos.stressors.anon_hog",
    "page_cache": "chaos.stressors.page_cache",
    "udp_storm": "chaos.stressors.udp_storm",
    "cpu_starve": "chaos.stressors.cpu_starve",
    "shmem_hog": "chaos.stressors.shmem_hog",
    "mlock_hog": "chaos.stressors.mlock_hog",
    "fork_storm": "chaos.stressors.fork_storm",
    "thp_compact": "chaos.stressors.thp_compact",
    "pageout": "chaos.stressors.pageout",
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


def needs(name: str, params: Any) -> Needs:
    module = load(name)
    return module.needs(params) if hasattr(module, "needs") else Needs()


def prepare(name: str, params: Any, cgroup_root: Path) -> dict[str, str]:
    module = load(name)
    return dict(module.prepare(params, cgroup_root)) if hasattr(module, "prepare") else {}


def has_prepare(name: str) -> bool:
    """Whether the stressor acts on the testbed at its start (so it cannot start early)."""
    return hasattr(load(name), "prepare")
