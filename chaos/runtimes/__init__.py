"""Runtimes: how a stressor is contained. ``cgroup`` (a plain cgroup v2 scope) or ``docker``.

One module each (``cgroup.py``, ``docker.py``; the Docker SDK is imported only
when a container is started). The same stressor module runs under both;
``chaos.runtimes.launcher`` turns a StressorSpec into a running, Child-like
handle, and ``sweep`` removes what a killed run left (containers labelled
``chaos.run``, tmpfs mounts, directories, v1 cgroup copies).
"""

from __future__ import annotations

from chaos.scenario import Scenario

NAMES = ("cgroup", "docker")
DEFAULT_IN_VM = "cgroup"  # docker costs seconds per container under emulation (benchmark)


def validate(scenario: Scenario) -> None:
    """Host-side, before a testbed boots: every stressor's params and limits (SpecError)."""
    from chaos.runtimes.base import validate as _validate

    _validate(scenario)


def sweep(live_runs: set[str]) -> list[str]:
    """Remove leftovers of runs that are not live: containers, tmpfs mounts, directories."""
    from chaos.runtimes import dirs, docker

    return docker.sweep(live_runs) + dirs.sweep(live_runs)
