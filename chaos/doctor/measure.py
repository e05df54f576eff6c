"""Measuring this machine for ``chaos doctor``: read-only, quick, no VM unless asked.

The slow parts (apt for kernels, each killer's --version, the Docker ping) run side
by side, so the whole stays well under 10 s.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from chaos.doctor.checks import PSI_PATH, QEMU
from chaos.doctor.kconfig import find_kconfig, kconfig_gaps
from chaos.doctor.model import Facts, KernelFact, KillerFact, Plan

if TYPE_CHECKING:
    from chaos.kernels import Kernel

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DELAYACCT_PATH = Path("/proc/sys/kernel/task_delayacct")
TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
# Used only when chaos.targets has no UNSUPPORTED table of its own.
UNSUPPORTED_FALLBACK = {
    "systemd-oomd": "needs systemd as PID 1; the testbeds boot a minimal init",
    "lmkd": "Android's lmkd needs Android's init and properties; no distribution package",
}


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def meminfo_kib(text: str, key: str) -> int:
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name == key:
            return int(rest.split()[0])
    return 0


def elf_is_static(data: bytes) -> bool:
    """True unless an ELF64 little-endian program header asks for an interpreter."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return False
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        if off + 4 > len(data):
            return False
        if struct.unpack_from("<I", data, off)[0] == 3:  # PT_INTERP
            return False
    return True


def tracefs_state(mounts: str, filesystems: str, euid: int) -> str:
    mounted = {line.split()[1] for line in mounts.splitlines() if len(line.split()) > 2
               and line.split()[2] == "tracefs"}
    if any(str(d) in mounted for d in TRACEFS_DIRS):
        return "mounted"
    known = any(line.split()[-1:] == ["tracefs"] for line in filesystems.splitlines())
    if known and euid == 0 and TRACEFS_DIRS[0].is_dir():
        return "mountable"
    return "absent"


def _busybox() -> tuple[str, bool]:
    path = next((c for c in BUSYBOX_CANDIDATES if os.path.exists(c)), None) \
        or shutil.which("busybox")
    if not path:
        return "", True
    try:
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
    except OSError:
        return path, False
    return path, elf_is_static(head)


def _docker() -> tuple[str, str]:
    """(engine version, problem): a ping with a short timeout through the Docker SDK."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return str(client.version().get("Version", "?")), ""
        finally:
            client.close()
    except Exception as exc:  # the SDK raises many kinds; all mean "no engine"
        text = " ".join(str(exc).split()) or type(exc).__name__
        if "FileNotFoundError" in text or "No such file" in text:
            return "", "not running: no socket"
        return "", text[:160]


def _killers(selected: Sequence[str]) -> tuple[tuple[KillerFact, ...], tuple[tuple[str, str], ...]]:
    from chaos import targets
    from chaos.scenario import KillerSpec

    facts: list[KillerFact] = []
    for name in dict.fromkeys([*targets.names(), *selected]):
        try:
            target = targets.load(KillerSpec(name=name))
            target.check()
        except Exception as exc:  # plugins may raise anything; the plugin skips on any
            facts.append(KillerFact(name, " ".join(str(exc).split()) or type(exc).__name__))
            continue
        facts.append(KillerFact(name, "", target.version()))
    table = getattr(targets, "UNSUPPORTED", UNSUPPORTED_FALLBACK)
    return tuple(facts), tuple((n, str(why)) for n, why in table.items())


def _kernels(selected: Sequence[str]) -> tuple[tuple[KernelFact, ...], tuple[str, ...]]:
    from chaos import kernels

    if not selected:
        return (), ()
    try:
        rows = kernels.available()
    except kernels.KernelError:
        rows = []
    cached = tuple(dict.fromkeys(p for _, p, c in rows if c and p))
    by_alias = {a: (p, c) for a, p, c in rows if a}
    facts: list[KernelFact] = []
    for spec in selected:
        try:
            if "/" in spec:
                fact = _audited(KernelFact(spec, "", True), kernels.local_kernel(spec))
            elif spec in by_alias:
                package, is_cached = by_alias[spec]
                problem = "" if package else f"apt cannot resolve kernel {spec}"
                fact = KernelFact(spec, package, is_cached, problem)
            else:
                package = kernels.resolve(spec)
                fact = KernelFact(spec, package, package in cached)
            if fact.cached and "/" not in spec and not fact.problem:
                fact = _audited(fact, kernels.get(spec))  # cached: verified, not downloaded
        except kernels.KernelError as exc:
            fact = KernelFact(spec, problem=str(exc))
        facts.append(fact)
    return tuple(facts), cached


def _audited(fact: KernelFact, kernel: Kernel) -> KernelFact:
    package = kernel.release if kernel.is_local else fact.package
    config = find_kconfig(kernel)
    if config is None:
        return dataclasses.replace(fact, package=package)
    missing, optional = kconfig_gaps(config.read_text(errors="replace"),
                                     kernel.modules_dir is not None)
    problem = (f"{config} lacks {', '.join(missing)} (docs/testing-your-kernel.md)"
               if missing else fact.problem)
    return dataclasses.replace(fact, package=package, problem=problem, config=str(config),
                               missing=missing, optional_missing=optional)


def _remembered_accel(release: str, qemu_version: str) -> str:
    """The KVM probe's remembered answer, read the way chaos.testbeds.vm.resolve_accel keys it."""
    from chaos.kernels import cache_dir

    try:
        known = json.loads((cache_dir() / "accel.json").read_text())
    except (OSError, ValueError):
        return ""
    return str(known.get(f"{platform.release()}|{qemu_version}|{release}", ""))


def _accel(kernel: KernelFact | None, qemu_version: str, device: str,
           probe: bool) -> tuple[str, str]:
    forced = os.environ.get("CHAOS_ACCEL", "")
    if forced in ("kvm", "tcg"):
        return forced, "forced by CHAOS_ACCEL"
    if device != "present":
        return "tcg", f"/dev/kvm {device}"
    if kernel is None:
        return "", "no kernel selected"
    if kernel.problem:
        return "", f"kernel {kernel.spec} cannot be used"
    if not kernel.cached:
        return "", f"kernel {kernel.spec} is not cached: chaos kernels fetch {kernel.spec}"
    from chaos import kernels
    from chaos.testbeds import vm

    k = kernels.get(kernel.spec)  # cached: verified, not downloaded
    known = _remembered_accel(k.release, qemu_version)
    if known:
        return known, f"remembered probe with {k.release}"
    if not probe:
        return "", "no remembered probe"
    return vm.resolve_accel(vm.VmConfig(kernel=k)), f"probed now with {k.release}"


def gather(plan: Plan, probe_kvm: bool = False) -> Facts:
    """Measure this machine. Changes nothing, boots nothing unless ``probe_kvm``.

    The slow parts (apt for the kernels, each killer's --version, the Docker ping) run
    side by side: they wait on other processes, and the whole must stay well under 10 s.
    """
    from concurrent.futures import ThreadPoolExecutor

    from chaos.cgroupfs import V1_MEMORY_ROOT, v2_memory_root

    euid = os.geteuid()
    qemu = shutil.which(QEMU) or ""
    if not os.path.exists("/dev/kvm"):
        device = "absent"
    elif not os.access("/dev/kvm", os.R_OK | os.W_OK):
        device = "no access"
    else:
        device = "present"
    with ThreadPoolExecutor(max_workers=4) as pool:
        killers_f = pool.submit(_killers, plan.killers)
        docker_f = pool.submit(_docker)
        version_f = pool.submit(_qemu_version, qemu)
        kernels_f = pool.submit(_kernels, plan.kernels if plan.testbed == "vm" else ())
        busybox, static = _busybox()
        v2 = v2_memory_root()
        meminfo = _read(Path("/proc/meminfo")) or ""
        delayacct = _read(DELAYACCT_PATH)
        tracefs = tracefs_state(_read(Path("/proc/mounts")) or "",
                                _read(Path("/proc/filesystems")) or "", euid)
        killers, unsupported = killers_f.result()
        engine, problem = docker_f.result()
        qemu_version = version_f.result()
        kernel_facts, cached = kernels_f.result()
    accel, accel_how = "", ""
    if plan.testbed == "vm":
        first = kernel_facts[0] if kernel_facts else None
        accel, accel_how = _accel(first, qemu_version, device, probe_kvm)
    return Facts(
        euid=euid, qemu=qemu, qemu_version=qemu_version, busybox=busybox,
        busybox_static=static, kvm_device=device, accel=accel, accel_how=accel_how,
        cgroup2_memory=str(v2) if v2 else "",
        cgroup1_memory=(V1_MEMORY_ROOT / "cgroup.procs").exists(), psi=Path(PSI_PATH).exists(),
        tracefs=tracefs, delayacct=delayacct.strip() if delayacct is not None else None,
        docker_engine=engine, docker_problem=problem, dockerd=shutil.which("dockerd") or "",
        docker_runtime=_docker_runtime(plan.testbed),
        killers=killers, unsupported=unsupported,
        swap_kib=meminfo_kib(meminfo, "SwapTotal"),
        mem_available_kib=meminfo_kib(meminfo, "MemAvailable"),
        kernels=kernel_facts, cached_kernels=cached,
    )


def _docker_runtime(testbed: str) -> str | None:
    """What the docker runtime itself says about this testbed (None: no such runtime yet)."""
    try:
        from chaos.runtimes.docker import engine_available
    except ImportError:
        return None
    return engine_available(testbed)


def _qemu_version(path: str) -> str:
    if not path:
        return ""
    from chaos.targets.base import first_line

    return first_line([path, "--version"])
