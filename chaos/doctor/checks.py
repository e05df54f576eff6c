"""The checks: pure functions from measured facts to records, and the runs that would not run.

Each takes a Facts record (and the plan), never the machine, so every branch is
tested with fake facts. ``cell_problem`` mirrors chaos.plugin's skips, in their order.
"""

from __future__ import annotations

from chaos.doctor.kconfig import KCONFIG_OPTIONAL, kconfig_fix
from chaos.doctor.model import Cell, Check, Diagnosis, Facts, KillerFact, Plan

QEMU = "qemu-system-x86_64"
PSI_PATH = "/proc/pressure/memory"
# Host memory a run needs beyond the guest or the arena: qemu itself, the harness, page cache.
HEADROOM_MIB = 512
# Killers whose target refuses a cgroup v1 layout (they act on cgroup2 files only).
NEEDS_CGROUP2 = frozenset({"oomd"})
KILLER_FIX = {
    "earlyoom": "apt-get install earlyoom",
    "oomd": "apt-get install oomd",
    "nohang": "apt-get install nohang",
    "oomguard": ".venv/bin/pip install -e .",
}
ROOT_REASON = "needs root (cgroups, tracefs, qemu virtfs)"


def check_root(f: Facts) -> Check:
    if f.euid == 0:
        return Check("root", True, "running as root")
    return Check("root", False, f"running as uid {f.euid}: every scenario is skipped "
                 f"({ROOT_REASON})", "sudo -E .venv/bin/chaos ...")


def check_qemu(f: Facts) -> Check:
    if f.qemu:
        return Check("qemu", True, f"{f.qemu}: {f.qemu_version or 'version unknown'}")
    return Check("qemu", False, f"{QEMU} is not installed", "apt-get install qemu-system-x86")


def check_busybox(f: Facts) -> Check:
    if not f.busybox:
        return Check("busybox", False, "busybox is not installed (the guest's initramfs needs it)",
                     "apt-get install busybox-static")
    if not f.busybox_static:
        return Check("busybox", False, f"{f.busybox} is dynamically linked: it cannot run in "
                     "the guest's initramfs", "apt-get install busybox-static")
    return Check("busybox", True, f"{f.busybox} (static)")


def check_kvm(f: Facts) -> Check:
    slow = "timings are not comparable with bare metal"
    if f.accel == "kvm":
        return Check("kvm", True, f"KVM ({f.accel_how})", required=False)
    if f.accel == "tcg":
        fix = ""
        if f.kvm_device == "absent":
            fix = "enable VT-x/AMD-V in the firmware, then modprobe kvm_intel (or kvm_amd)"
        elif f.kvm_device == "no access":
            fix = "run as root (or add the user to group kvm)"
        return Check("kvm", False, f"software emulation only ({f.accel_how}): {slow}", fix,
                     required=False)
    return Check("kvm", False, f"not probed; /dev/kvm {f.kvm_device} ({f.accel_how})",
                 "chaos doctor --probe-kvm", required=False)


def check_cgroup(f: Facts, testbed: str) -> Check:
    host = (f"cgroup2 with memory at {f.cgroup2_memory}" if f.cgroup2_memory else
            "cgroup v1 memory controller" if f.cgroup1_memory else "no memory controller")
    if testbed == "vm":
        extra = ("; --testbed local would use a cgroup v1 arena"
                 if not f.cgroup2_memory and f.cgroup1_memory else "")
        return Check("cgroup", True, f"the guest mounts its own cgroup2 with the memory "
                     f"controller (host: {host}{extra})", required=False, info=True)
    if f.cgroup2_memory:
        return Check("cgroup", True, host)
    fix = "boot the host with systemd.unified_cgroup_hierarchy=1, or use --testbed vm"
    if f.cgroup1_memory:
        needs = ", ".join(sorted(NEEDS_CGROUP2))
        return Check("cgroup", False, "no cgroup2 memory controller: the local testbed uses a "
                     "cgroup v1 memory arena (no per-arena PSI; the danger line reads the "
                     f"arena's usage); killers that need cgroup2 ({needs}) cannot run", fix,
                     required=False)
    return Check("cgroup", False, "no memory cgroup controller (v2 or v1) on this host", fix)


def check_psi(f: Facts, testbed: str) -> Check:
    if testbed == "vm":
        return Check("psi", True, "the guest boots with psi=1 (host: "
                     f"{'present' if f.psi else 'absent'})", required=False, info=True)
    if f.psi:
        return Check("psi", True, f"{PSI_PATH} present")
    return Check("psi", False, f"{PSI_PATH} is missing: no memory pressure in the timeline",
                 "add psi=1 to the kernel command line (kernel built with CONFIG_PSI=y)")


def check_tracefs(f: Facts, testbed: str) -> Check:
    if testbed == "vm":
        return Check("tracefs", True, f"the guest mounts its own (host: {f.tracefs})",
                     required=False, info=True)
    if f.tracefs == "mounted":
        return Check("tracefs", True, "mounted")
    if f.tracefs == "mountable":
        return Check("tracefs", True, "not mounted; the agent mounts it "
                     "(mount -t tracefs nodev /sys/kernel/tracing)")
    return Check("tracefs", False, "no tracefs: no kernel evidence of who killed whom",
                 "a kernel built with CONFIG_FTRACE=y and CONFIG_EVENT_TRACING=y")


def check_delayacct(f: Facts, testbed: str) -> Check:
    if testbed == "vm":
        return Check("delayacct", True, "the guest boots with delayacct "
                     f"(host: kernel.task_delayacct={f.delayacct})", required=False, info=True)
    if f.delayacct == "1":
        return Check("delayacct", True, "kernel.task_delayacct=1")
    if f.delayacct is None:
        return Check("delayacct", False, "no kernel.task_delayacct: the killer's reclaim delay "
                     "is not measured", "a kernel built with CONFIG_TASK_DELAY_ACCT=y")
    return Check("delayacct", False, f"kernel.task_delayacct={f.delayacct}: the killer's reclaim "
                 "delay would read 0", "sysctl -w kernel.task_delayacct=1")


def check_docker(f: Facts, testbed: str, needed: bool) -> Check:
    scope = "" if needed else " (only --runtime docker needs it)"
    engine = (f"engine {f.docker_engine} answers" if f.docker_engine else
              f"no engine answers ({f.docker_problem or 'no reply'})")
    if testbed == "vm":  # the guest starts its own dockerd from the host's filesystem
        if f.dockerd:
            return Check("docker", True, f"{f.dockerd} (the guest starts it); host {engine}",
                         required=needed)
        return Check("docker", False, f"dockerd is not installed{scope}",
                     "apt-get install docker.io", required=needed)
    if f.docker_engine:
        return Check("docker", True, engine, required=needed)
    fix = ("dockerd --data-root /var/lib/docker &  (or: systemctl start docker)" if f.dockerd
           else "apt-get install docker.io")
    return Check("docker", False, f"{engine}{scope}", fix, required=needed)


def check_killer(k: KillerFact, required: bool) -> Check:
    name = f"killer {k.name}"
    if k.name == "kernel":
        return Check(name, True, "no userspace killer: the kernel's own OOM killer (baseline)")
    if not k.problem:
        return Check(name, True, k.version or "installed (version unknown)")
    why = "" if required else " (not selected)"
    return Check(name, False, k.problem + why, KILLER_FIX.get(k.name, ""), required=required)


def check_unsupported(name: str, reason: str) -> Check:
    return Check(f"killer {name}", False, f"unsupported: {reason}", required=False, info=True)


def check_swap(f: Facts, testbed: str) -> Check:
    mib = f.swap_kib // 1024
    if testbed == "vm":
        detail = f"host {mib} MiB, not used: the guest's swap is zram of --swap MiB (default 0)"
    elif mib:
        detail = f"{mib} MiB: the arena can swap, so timings differ from a swapless host"
    else:
        detail = "none"
    return Check("swap", True, detail, required=False, info=True)


def memory_needed_mib(plan: Plan) -> tuple[int, str]:
    if plan.testbed == "vm":
        return plan.vm_memory_mib + HEADROOM_MIB, f"a {plan.vm_memory_mib} MiB guest"
    if plan.allow_host_pressure:
        return plan.min_free_global_mib, "global pressure (--allow-host-pressure)"
    return plan.arena_mib + HEADROOM_MIB, f"a {plan.arena_mib} MiB arena"


def check_memory(f: Facts, plan: Plan) -> Check:
    need, what = memory_needed_mib(plan)
    have = f.mem_available_kib // 1024
    detail = f"MemAvailable {have} MiB; {what} needs {need} MiB"
    if have >= need:
        return Check("memory", True, detail)
    return Check("memory", False, detail + " (per run at a time)",
                 "stop what uses the memory, or lower --vm-memory / the arena")


def check_kernels(f: Facts) -> list[Check]:
    out: list[Check] = []
    for k in f.kernels:
        name = f"kernel {k.spec}"
        if k.missing:
            out.append(Check(name, False, k.problem, kconfig_fix(k.missing)))
        elif k.problem:
            fix = "" if "/" in k.spec else "apt-get update"
            out.append(Check(name, False, k.problem, fix))
        elif "/" in k.spec:
            checked = (f"config {k.config}: every option the testbed needs" if k.config else
                       "no kernel config found beside it: options not checked")
            out.append(Check(name, True, f"local build {k.package} ({checked})"))
        elif k.cached:
            out.append(Check(name, True, f"{k.package} (cached)"))
        else:
            out.append(Check(name, False, f"{k.package} is not cached: the run downloads it "
                             "first (apt and the network)", f"chaos kernels fetch {k.spec}",
                             required=False))
        if k.optional_missing and not k.missing:
            lacks = ", ".join(f"{o} ({KCONFIG_OPTIONAL[o]})" for o in k.optional_missing)
            out.append(Check(f"{name} options", False, f"lacks {lacks}",
                             kconfig_fix(k.optional_missing), required=False))
    cached = ", ".join(f.cached_kernels) or "none"
    out.append(Check("kernel cache", True, cached, required=False, info=True))
    return out


def matrix_killers(f: Facts, plan: Plan) -> tuple[str, ...]:
    """The killers the run would use (mirrors chaos.plugin.default_killers)."""
    if plan.killers:
        return plan.killers
    return ("kernel", *(k.name for k in f.killers if k.name != "kernel" and not k.problem))


def cell_problem(f: Facts, plan: Plan, killer: str, kernel: str,
                 runtime: str) -> tuple[str, str] | None:
    """(outcome, reason) for a run that would not happen as asked, else None.

    The skips mirror chaos.plugin's chaos_case fixture, in its order; the failures
    are what the testbed would then refuse.
    """
    if f.euid != 0:
        return "skip", ROOT_REASON
    if plan.testbed == "vm":
        if not f.qemu:
            return "skip", f"{QEMU} is not installed (apt-get install qemu-system-x86)"
        if not f.busybox:
            return "skip", "busybox is not installed (apt-get install busybox-static)"
    problems = {k.name: k.problem for k in f.killers}
    if problems.get(killer):
        return "skip", problems[killer]
    if plan.testbed == "vm":
        if not f.busybox_static:
            return "fail", f"{f.busybox} is dynamically linked: the guest's init cannot start"
        kernel_problem = {k.spec: k.problem for k in f.kernels}.get(kernel)
        if kernel_problem:
            return "fail", kernel_problem
    elif killer in NEEDS_CGROUP2 and not f.cgroup2_memory:
        return "fail", f"killer {killer} needs cgroup v2 with the memory controller; this host's " \
                       "local arena is cgroup v1"
    if runtime == "docker" and f.docker_runtime is not None:
        if f.docker_runtime:
            return "fail", f.docker_runtime
    elif runtime == "docker":
        if plan.testbed == "vm" and not f.dockerd:
            return "fail", "dockerd is not installed (apt-get install docker.io)"
        if plan.testbed == "local" and not f.docker_engine:
            return "fail", f"no Docker engine answers ({f.docker_problem or 'no reply'})"
    return None


def diagnose(f: Facts, plan: Plan) -> Diagnosis:
    killers = matrix_killers(f, plan)
    vm = plan.testbed == "vm"
    checks: list[Check] = [check_root(f)]
    if vm:
        checks += [check_qemu(f), check_busybox(f), check_kvm(f)]
    checks += [check_cgroup(f, plan.testbed), check_psi(f, plan.testbed),
               check_tracefs(f, plan.testbed), check_delayacct(f, plan.testbed),
               check_docker(f, plan.testbed, "docker" in plan.runtimes)]
    # Every registered killer is required when the selection is the default one: a missing
    # one would silently drop out of the matrix.
    checks += [check_killer(k, not plan.killers or k.name in plan.killers) for k in f.killers]
    checks += [check_unsupported(name, why) for name, why in f.unsupported]
    checks += [check_swap(f, plan.testbed), check_memory(f, plan)]
    if vm:
        checks += check_kernels(f)
    kernel_list = plan.kernels if vm else ("host",)
    not_run: list[Cell] = []
    total = 0
    for scenario in plan.scenarios:
        for killer in killers:
            for kernel in kernel_list:
                for runtime in plan.runtimes:
                    total += 1
                    problem = cell_problem(f, plan, killer, kernel, runtime)
                    if problem is not None:
                        not_run.append(Cell(scenario, killer, kernel, runtime, *problem))
    return Diagnosis(plan, tuple(checks), killers, total, tuple(not_run))
