"""Killer targets, looked up by name.

Built-in targets are a registry of dotted paths imported lazily; other
packages add theirs through the ``chaos.targets`` entry-point group; and
``exec:NAME=COMMAND`` runs any killer with no code at all. Killers that cannot
run in these testbeds at all are listed in UNSUPPORTED, with the reason.
"""

from __future__ import annotations

import importlib

from chaos.scenario import KillerSpec, SpecError
from chaos.targets.base import Launch, Layout, Target, TargetError

__all__ = ["Launch", "Layout", "Target", "TargetError", "REGISTRY", "UNSUPPORTED", "names",
           "load"]

REGISTRY: dict[str, str] = {
    "kernel": "chaos.targets.kernel:KernelTarget",
    "earlyoom": "chaos.targets.earlyoom:EarlyoomTarget",
    "oomd": "chaos.targets.oomd:OomdTarget",
    "nohang": "chaos.targets.nohang:NohangTarget",
    "oomguard": "chaos.targets.oomguard:OomguardTarget",
}
ENTRY_POINT_GROUP = "chaos.targets"

# Killers people ask about that cannot run here; `chaos doctor` and the docs print these.
UNSUPPORTED: dict[str, str] = {
    "systemd-oomd": "needs systemd as PID 1 (it is managed through systemd units and D-Bus); "
                    "the testbeds boot a minimal init, so it cannot run there",
    "lmkd": "Android's low memory killer daemon has no Linux distribution package and needs "
            "Android's init and properties; run a build you supply with exec:lmkd=COMMAND",
}


def _plugins() -> dict[str, str]:
    from importlib import metadata  # slow to import (seconds under emulation): only when asked

    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    return sorted({*REGISTRY, *_plugins()})


def _import(name: str, dotted: str) -> type[Target]:
    module, _, attr = dotted.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"killer {name}: cannot load {dotted}: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Target)):
        raise SpecError(f"killer {name}: {dotted} is not a chaos Target")
    return cls


def load(spec: KillerSpec) -> Target:
    """The Target for a killer spec; unknown or unsupported names fail with one line."""
    if spec.name.startswith("exec:"):
        from chaos.targets.exec import ExecTarget

        return ExecTarget.from_spec(spec)
    dotted = REGISTRY.get(spec.name) or _plugins().get(spec.name)
    if dotted is None:
        if spec.name in UNSUPPORTED:
            raise SpecError(f"killer {spec.name} cannot run in these testbeds: "
                            f"{UNSUPPORTED[spec.name]}")
        raise SpecError(f"unknown killer {spec.name!r} (available: {', '.join(names())}, "
                        "exec:NAME=COMMAND)")
    return _import(spec.name, dotted)(spec.options)

