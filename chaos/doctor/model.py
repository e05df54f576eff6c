"""What ``chaos doctor`` measures (facts), what it plans (the run), and what it concludes.

Facts are plain records so the judging in ``chaos.doctor.checks`` can be tested with
fake ones; ``chaos.doctor.measure`` fills them in on a real machine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KillerFact:
    name: str
    problem: str = ""  # "" = Target.check() passed: installed and runnable here
    version: str = ""


@dataclass(frozen=True)
class KernelFact:
    spec: str  # as selected: alias, package or PATH_TO_BZIMAGE[:MODULES_DIR]
    package: str = ""  # what it resolves to ("" when it does not)
    cached: bool = False  # ready to boot without a download (a local build always is)
    problem: str = ""  # why it cannot be used at all
    config: str = ""  # the kernel's .config, when one was found beside it
    missing: tuple[str, ...] = ()  # required options the config lacks
    optional_missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    """Everything the checks look at; measured by chaos.doctor.measure, faked in tests."""

    euid: int = 0
    qemu: str = ""  # path, "" when not installed
    qemu_version: str = ""
    busybox: str = ""
    busybox_static: bool = True
    kvm_device: str = "absent"  # absent | no access | present
    accel: str = ""  # kvm | tcg | "" (unknown without a probe)
    accel_how: str = ""  # how that answer was found, or why there is none
    cgroup2_memory: str = ""  # cgroup2 mount with the memory controller
    cgroup1_memory: bool = False
    psi: bool = True
    tracefs: str = "mounted"  # mounted | mountable | absent
    delayacct: str | None = "1"  # kernel.task_delayacct; None: the sysctl does not exist
    docker_engine: str = ""  # engine version when it answered a ping
    docker_problem: str = ""
    dockerd: str = ""
    docker_runtime: str | None = None  # chaos.runtimes' own answer: "" usable, else why not
    killers: tuple[KillerFact, ...] = ()
    unsupported: tuple[tuple[str, str], ...] = ()
    swap_kib: int = 0
    mem_available_kib: int = 0
    kernels: tuple[KernelFact, ...] = ()  # the selected kernels (VM testbed)
    cached_kernels: tuple[str, ...] = ()  # every package in the kernel cache


@dataclass(frozen=True)
class Plan:
    """What ``chaos run`` would run with the same settings."""

    testbed: str = "vm"
    killers: tuple[str, ...] = ()  # empty = every installed killer plus kernel
    kernels: tuple[str, ...] = ("6.12",)
    runtimes: tuple[str, ...] = ("cgroup",)
    scenarios: tuple[str, ...] = ()
    vm_memory_mib: int = 1024
    arena_mib: int = 512
    allow_host_pressure: bool = False
    min_free_global_mib: int = 2048


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # a command that fixes it
    required: bool = True  # not ok makes a run invalid (else it is a warning)
    info: bool = False  # a fact worth knowing, not something to fix

    @property
    def status(self) -> str:
        if self.info:
            return "info"
        return "ok" if self.ok else ("MISSING" if self.required else "warn")


@dataclass(frozen=True)
class Cell:
    """One run of the matrix that would not happen as asked."""

    scenario: str
    killer: str
    kernel: str
    runtime: str
    outcome: str  # skip | fail
    reason: str


@dataclass(frozen=True)
class Diagnosis:
    plan: Plan
    checks: tuple[Check, ...]
    killers: tuple[str, ...]  # the killers the matrix would use
    cells_total: int
    not_run: tuple[Cell, ...]

    @property
    def valid(self) -> bool:
        return not self.not_run and all(c.ok or not c.required for c in self.checks)
