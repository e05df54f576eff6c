"""Starting a scenario's stressors: plan, cgroup and limits, directories, prepare, runtime.

The agent owns one ``Launcher`` per run. ``check`` refuses, before anything
starts, what this testbed cannot give (no Docker engine, no block-backed
scratch space, no THP, no cpu controller, ...). ``stage`` starts what can wait
at a gate while the killer starts; ``start`` lets it go, or does the rest in a
fixed order, and returns a Child-like handle; ``close`` undoes it all
(containers, private engine, tmpfs mounts), and runs on every exit path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from chaos import stressors
from chaos.cgroupfs import CgroupTree, v2_memory_root
from chaos.procs import Child
from chaos.runtimes import dirs, dockerd, guest
from chaos.runtimes.base import Handle, Plan, Site, apply_limits, make_plan
from chaos.runtimes.cgroup import CgroupRuntime
from chaos.runtimes.docker import DockerRuntime, engine_available
from chaos.scenario import Scenario, SpecError, StressorSpec
from chaos.stressors.common import GO
from chaos.stressors.thp_compact import thp_mode

TARGET_IN_CONTAINER = "/chaos-target"  # where a container sees the cgroup it acts on


def check(scenario: Scenario) -> list[Plan]:
    """Static checks plus what this testbed has; run inside the testbed, before set-up."""
    plans = [make_plan(st, scenario.testbed) for st in scenario.stressors]
    v2 = v2_memory_root()
    for plan in plans:
        where = f"stressor {plan.spec.instance}"
        needs = plan.needs
        if plan.spec.runtime == "docker":
            why = engine_available(scenario.testbed.kind)
            if why:
                raise SpecError(f"{where}: runtime docker: {why}")
            dockerd.call_timeout_s()  # a bad override fails here, before any set-up
        try:
            dirs.check(needs.directory, needs.dir_mib)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        if needs.thp and thp_mode() not in ("always", "madvise"):
            raise SpecError(f"{where}: transparent huge pages are {thp_mode()!r} here")
        lim = plan.limits
        if v2 is None and (lim.memory_high_mib or lim.cpu_pct or lim.pids_max):
            raise SpecError(f"{where}: memory_high_mib, cpu_pct and pids_max need cgroup v2 "
                            "(this testbed has only the v1 memory controller)")
        if needs.cpu_controller or lim.cpu_pct:
            if v2 is None or "cpu" not in (v2 / "cgroup.controllers").read_text().split():
                raise SpecError(f"{where}: needs the cgroup v2 cpu controller")
        if needs.flood_nic and not guest.flood_attached():
            raise SpecError(f"{where}: an external flood needs the VM's flood NIC "
                            "(VmConfig.flood_socket)")
    return plans


def scope(instance: str) -> str:
    """A stressor's cgroup, relative to the scenario tree (its container nests below it)."""
    return f"arena/workload/{instance}"


class Launcher:
    """Starts stressors for one run and undoes everything it did at ``close``."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.cgroup = CgroupRuntime(site)
        self.docker: DockerRuntime | None = None
        self.undo: list[Callable[[], None]] = []
        self.start_ms: dict[str, float] = {}
        self.staged: dict[str, Child] = {}  # instance -> process waiting for its go
        self.flooding = False  # the host was asked to flood the NIC and not yet to stop
        self.plans: dict[str, Plan] = {}  # instance -> its plan, made once

    def plan(self, spec: StressorSpec) -> Plan:
        if spec.instance not in self.plans:
            self.plans[spec.instance] = make_plan(spec, self.site.testbed)
        return self.plans[spec.instance]

    def stage(self, spec: StressorSpec) -> Child | None:
        """Start a stressor's process ahead of its time, held before any work, so that its
        interpreter's start-up (~2 s in an emulated guest) overlaps the killer's; ``start``
        lets it go. Only a ``cgroup``-runtime stressor that needs nothing done at go time
        (no ``prepare`` hook, no flood NIC) is staged; None for the others."""
        plan = self.plan(spec)
        if (spec.runtime != "cgroup" or plan.needs.flood_nic
                or stressors.has_prepare(spec.name)):
            return None
        cg, env, _ = self._scope(plan)
        t0 = time.monotonic()
        child = self.cgroup.start(plan, cg, env, gated=True)
        self.start_ms[spec.instance] = round((time.monotonic() - t0) * 1000, 1)
        self.staged[spec.instance] = child
        return child

    def start(self, spec: StressorSpec) -> Handle:
        """Let a staged stressor go, or start one from scratch."""
        staged = self.staged.pop(spec.instance, None)
        if staged is not None:
            _go(staged)
            return staged
        site = self.site
        plan = self.plan(spec)
        cg, env, mounts = self._scope(plan)
        if plan.needs.flood_nic:
            guest.flood_nic()
        env.update(stressors.prepare(spec.name, plan.params, site.tree.root))
        t0 = time.monotonic()
        if spec.runtime == "docker":
            if plan.needs.target_cgroup:  # a container has its own /sys/fs/cgroup
                target = site.tree.path(plan.needs.target_cgroup)
                mounts.append((target, TARGET_IN_CONTAINER, "ro"))
                env["CHAOS_TARGET_CGROUP"] = TARGET_IN_CONTAINER
            if self.docker is None:
                self.docker = DockerRuntime(site)
            handle: Handle = self.docker.start(plan, cg, env, tuple(mounts))
            self.start_ms[spec.instance] = getattr(handle, "start_ms", 0.0)
        else:
            handle = self.cgroup.start(plan, cg, env)
            self.start_ms[spec.instance] = round((time.monotonic() - t0) * 1000, 1)
        if plan.needs.flood_nic:  # its sockets are bound: flood now
            self.ask_flood()
        return handle

    def ask_flood(self) -> None:
        """Ask the host to flood the NIC, once a run however many stressors need it; the
        stop is asked at close at the latest."""
        if not self.flooding:
            guest.ask_host_flood(start=True)
            self.flooding = True
            self.undo.append(self.stop_flood)

    def stop_flood(self) -> None:
        """Ask the host to stop flooding the NIC, once the measured run is over: under a
        flood every frame still costs the guest a softirq, and its teardown (stopping the
        stressors, reading traces) took 16 s in a nic_storm run, 3 s once it was stopped."""
        if self.flooding:
            self.flooding = False
            guest.ask_host_flood(start=False)

    def _scope(self, plan: Plan) -> tuple[Path, dict[str, str], list[tuple[Path, str, str]]]:
        """The stressor's cgroup with its limits, and its directory; both undone at close
        (the cgroup killed first). Returns (the cgroup, env, mounts for a container)."""
        site, spec = self.site, plan.spec
        rel = scope(spec.instance)
        cg = site.tree.make(rel)
        apply_limits(site.tree, rel, plan.limits)
        env: dict[str, str] = {"CHAOS_INSTANCE": spec.instance}  # its process name (comm)
        mounts: list[tuple[Path, str, str]] = []  # for a container: host, inside, mode
        if plan.needs.directory:
            path, remove = dirs.provide(plan.needs.directory, plan.needs.dir_mib, site.run_id,
                                        spec.instance)
            self.undo.append(remove)
            env["CHAOS_DIR"] = str(path)
            mounts.append((path, str(path), "rw"))
        self.undo.append(lambda: _kill_scope(site.tree, rel))
        return cg, env, mounts

    def close(self) -> None:
        """Undo in reverse: scopes, directories; then containers and a private engine."""
        for fn in reversed(self.undo):
            try:
                fn()
            except (OSError, SpecError):
                pass
        self.undo.clear()
        if self.docker is not None:
            self.docker.close()


def _go(child: Child) -> None:
    """Release a staged stressor. One that already died is left to the caller's watch."""
    assert child.popen.stdin is not None
    try:
        child.popen.stdin.write(GO)
        child.popen.stdin.close()
    except OSError:
        pass


def _kill_scope(tree: CgroupTree, rel: str) -> None:
    if tree.path(rel).exists():
        tree.kill(rel)
