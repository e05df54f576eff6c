"""What every runtime shares: resource limits, a validated plan, and the handle it returns.

A stressor's params carry, besides its own fields, the runtime limits below
(``memory_max_mib``, ...): the spec keeps one flat mapping of scalars, and
the limits mean the same under every runtime, so they are split off here and
applied to the stressor's own cgroup (``arena/workload/<instance>``) either
way; the docker runtime also gives them to the container.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chaos import stressors
from chaos.cgroupfs import CgroupTree
from chaos.scenario import Params, Scenario, SpecError, StressorSpec, TestbedInfo
from chaos.stressors.common import Needs, parse_params


@dataclass(frozen=True)
class Limits:
    """cgroup limits of one stressor; 0 = none of its own."""

    memory_max_mib: int = 0  # memory.max: the kernel OOM-kills inside it past this
    memory_high_mib: int = 0  # memory.high: throttled (reclaim) past this
    cpu_pct: float = 0.0  # cpu.max quota, percent of one CPU
    pids_max: int = 0  # pids.max

    def any(self) -> bool:
        return any(getattr(self, f.name) for f in dataclasses.fields(self))


LIMIT_KEYS = frozenset(f.name for f in dataclasses.fields(Limits))
CPU_PERIOD_US = 100_000


def split_limits(raw: Params, where: str) -> tuple[Limits, Params]:
    """(the runtime limits, the stressor's own params) of one stressor's params."""
    limits = parse_params(Limits, {k: v for k, v in raw.items() if k in LIMIT_KEYS}, where)
    for f in dataclasses.fields(limits):
        if getattr(limits, f.name) < 0:
            raise SpecError(f"stressor {where}: {f.name} must be >= 0")
    if limits.memory_max_mib and limits.memory_high_mib > limits.memory_max_mib:
        raise SpecError(f"stressor {where}: memory_high_mib ({limits.memory_high_mib}) is above "
                        f"memory_max_mib ({limits.memory_max_mib})")
    if limits.cpu_pct and limits.cpu_pct * CPU_PERIOD_US / 100 < 1000:
        raise SpecError(f"stressor {where}: cpu_pct {limits.cpu_pct:g} is under cpu.max's "
                        "1 ms minimum per 100 ms period (1%)")
    return limits, {k: v for k, v in raw.items() if k not in LIMIT_KEYS}


@dataclass(frozen=True)
class Plan:
    """One stressor, validated and ready to start: nothing about it can still be refused."""

    spec: StressorSpec
    params: Any  # the stressor module's own params dataclass
    limits: Limits
    needs: Needs
    argv: tuple[str, ...]


def make_plan(spec: StressorSpec, testbed: TestbedInfo) -> Plan:
    """Parse and check one stressor against what the testbed can give (static facts only)."""
    limits, own = split_limits(spec.params, spec.name)
    module = stressors.load(spec.name)
    params = module.parse(own)
    needs = stressors.needs(spec.name, params)
    if limits.memory_max_mib > testbed.memory_mib:
        raise SpecError(f"stressor {spec.instance}: memory_max_mib {limits.memory_max_mib} is "
                        f"more than the testbed has ({testbed.memory_mib} MiB)")
    if limits.cpu_pct > 100 * testbed.cpus:
        raise SpecError(f"stressor {spec.instance}: cpu_pct {limits.cpu_pct:g} is more than the "
                        f"testbed's {testbed.cpus} CPUs can give ({100 * testbed.cpus}%)")
    if needs.flood_nic and testbed.kind != "vm":
        raise SpecError(f"stressor {spec.instance}: an external flood needs the VM testbed "
                        "(its host floods the guest's NIC)")
    if needs.host_pids and spec.runtime != "cgroup":
        raise SpecError(f"stressor {spec.instance}: acts on the testbed's processes by pid, "
                        f"which runtime {spec.runtime} hides from it (use runtime cgroup)")
    return Plan(spec=spec, params=params, limits=limits, needs=needs,
                argv=tuple(module.command(params)))


def validate(scenario: Scenario) -> list[Plan]:
    """Every stressor of a scenario, planned; the first problem raises one SpecError."""
    return [make_plan(st, scenario.testbed) for st in scenario.stressors]


def apply_limits(tree: CgroupTree, rel: str, limits: Limits) -> None:
    """Write the limits into the stressor's own cgroup (v1 arenas: memory only)."""
    if limits.memory_max_mib:
        tree.set_memory_max(rel, limits.memory_max_mib << 20)
    if tree.version != 2:
        if limits.memory_high_mib or limits.cpu_pct or limits.pids_max:
            raise SpecError("memory_high_mib, cpu_pct and pids_max need cgroup v2")
        return
    if limits.memory_high_mib:
        tree.write(rel, "memory.high", str(limits.memory_high_mib << 20))
    if limits.cpu_pct:
        tree.write(rel, "cpu.max", f"{int(limits.cpu_pct * CPU_PERIOD_US / 100)} {CPU_PERIOD_US}")
    if limits.pids_max:
        tree.write(rel, "pids.max", str(limits.pids_max))


@dataclass
class Site:
    """Where the stressors of one scenario run: its cgroup tree, run id and scratch space."""

    run_id: str
    tree: CgroupTree
    workdir: Path
    testbed: TestbedInfo


class Handle(Protocol):
    """What the agent needs of a started stressor: ``chaos.procs.Child`` is one."""

    name: str
    pidfd: int
    exit_t_ns: int | None
    returncode: int | None
    stopped_by_harness: bool
    lines: deque[str]

    @property
    def pid(self) -> int: ...

    @property
    def exit_signal(self) -> int | None: ...

    @property
    def exit_code(self) -> int | None: ...

    def alive(self) -> bool: ...

    def reap(self, t_ns: int | None = None) -> None: ...

    def signal(self, sig: int) -> None: ...

    def stop(self, grace_s: float = 3.0) -> None: ...

    def output(self) -> str: ...

    def last_json(self, event: str | None = None) -> dict[str, object]: ...

    def close(self) -> None: ...
