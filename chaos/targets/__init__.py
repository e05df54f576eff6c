"""Killer targets, looked up by name.

Built-in targets are a registry of dotted paths imported lazily; other
packages add theirs through the ``chaos.targets`` entry-point group; and
``exec:NAME=COMMAND`` runs any killer with no code at all.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from chaos.scenario import KillerSpec, SpecError
from chaos.targets.base import Layout, Target, TargetError

__all__ = ["Layout", "Target", "TargetError", "REGISTRY", "names", "load"]

REGISTRY: dict[str, str] = {
    "kernel": "chaos.targets.kernel:KernelTarget",
}
ENTRY_POINT_GROUP = "chaos.targets"


def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted({*REGISTRY, *_plugins()})


def _import(dotted: str) -> type[Target]:
    module, _, attr = dotted.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise SpecError(f"{dotted} is not a chaos Target")
    return cls


def load(spec: KillerSpec) -> Target:
    """The Target for a killer spec; unknown names fail with one line."""
    if spec.name.startswith("exec:"):
        from chaos.targets.exec import ExecTarget

        return ExecTarget.from_spec(spec)
    dotted = REGISTRY.get(spec.name) or _plugins().get(spec.name)
    if dotted is None:
        raise SpecError(f"unknown killer {spec.name!r} (available: {', '.join(names())}, "
                        "exec:NAME=COMMAND)")
    return _import(dotted)(spec.options)
