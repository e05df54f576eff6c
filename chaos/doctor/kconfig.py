"""Kernel config options the VM testbed needs, and how to read a kernel's config.

One table, used by ``chaos doctor`` to audit a kernel you built and by
docs/testing-your-kernel.md, whose option names are checked against real Debian
configs by the integration tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.kernels import Kernel

# Kernel options the VM testbed needs (docs/testing-your-kernel.md explains each); "m" is
# enough for MODULAR ones when the kernel comes with its modules directory.
KCONFIG_REQUIRED = {
    "CONFIG_BLK_DEV_INITRD": "the guest starts from an initramfs",
    "CONFIG_BINFMT_SCRIPT": "its /init is a shell script",
    "CONFIG_DEVTMPFS": "/dev in the guest",
    "CONFIG_TMPFS": "the writable layer over the host's root, /tmp",
    "CONFIG_SERIAL_8250_CONSOLE": "console=ttyS0: the console log",
    "CONFIG_MAGIC_SYSRQ": "the guest powers itself off with sysrq",
    "CONFIG_VIRTIO_PCI": "the shared directories are virtio-pci devices",
    "CONFIG_NET_9P": "the host's root and the run's directory are shared over 9p",
    "CONFIG_NET_9P_VIRTIO": "9p over virtio",
    "CONFIG_9P_FS": "9p file system",
    "CONFIG_OVERLAY_FS": "tmpfs overlay on the read-only host root",
    "CONFIG_CGROUPS": "cgroup2",
    "CONFIG_MEMCG": "cgroup2's memory controller: workload, killer, harness cgroups",
    "CONFIG_PSI": "memory pressure (/proc/pressure/memory, memory.pressure)",
    "CONFIG_TRACING": "tracefs: who signalled whom, OOM victims, exits, reclaim",
    "CONFIG_EVENT_TRACING": "the tracepoints themselves",
    "CONFIG_TASKSTATS": "delay accounting is read over taskstats",
    "CONFIG_TASK_DELAY_ACCT": "the killer's reclaim delay",
}
KCONFIG_OPTIONAL = {
    "CONFIG_ZRAM": "swap in the guest (--swap)",
    "CONFIG_STACKTRACE": "/proc/PID/stack samples of the killer",
    "CONFIG_SCHED_INFO": "the killer's run delay (waiting for a CPU)",
    "CONFIG_VIRTIO_BLK": "the scratch disk of page-cache and writeback stressors",
    "CONFIG_EXT4_FS": "the scratch disk's file system",
    "CONFIG_VIRTIO_NET": "the flood NIC of network stressors",
}
KCONFIG_MODULAR = frozenset({"CONFIG_VIRTIO_PCI", "CONFIG_NET_9P", "CONFIG_NET_9P_VIRTIO",
                             "CONFIG_9P_FS", "CONFIG_OVERLAY_FS", "CONFIG_ZRAM",
                             "CONFIG_VIRTIO_BLK", "CONFIG_EXT4_FS", "CONFIG_VIRTIO_NET"})
# Options that are selected, not set: what to turn on instead.
KCONFIG_ENABLE = {"CONFIG_TRACING": "FTRACE -e ENABLE_DEFAULT_TRACERS",
                  "CONFIG_EVENT_TRACING": "FTRACE -e ENABLE_DEFAULT_TRACERS"}


def kconfig_gaps(text: str, has_modules: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) options a kernel config lacks for the VM testbed."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.startswith("CONFIG_"):
            values[key] = value.strip()

    def has(option: str) -> bool:
        value = values.get(option)
        return value == "y" or (value == "m" and has_modules and option in KCONFIG_MODULAR)

    return (tuple(o for o in KCONFIG_REQUIRED if not has(o)),
            tuple(o for o in KCONFIG_OPTIONAL if not has(o)))


def kconfig_fix(options: Sequence[str]) -> str:
    flags = dict.fromkeys(KCONFIG_ENABLE.get(o, o.removeprefix("CONFIG_")) for o in options)
    return ("in the kernel tree: scripts/config " + " ".join(f"-e {f}" for f in flags)
            + " && make olddefconfig && make")


def find_kconfig(kernel: Kernel) -> Path | None:
    """The kernel's config: beside a packaged vmlinuz, or at the top of a build tree."""
    image = kernel.vmlinuz
    candidates = [image.parent / f"config-{kernel.release}"]
    if image.parent.name == "boot" and image.parent.parent.name == "x86":
        candidates.append(image.parents[3] / ".config")  # <tree>/arch/x86/boot/bzImage
    if kernel.modules_dir is not None:
        candidates.append(kernel.modules_dir / "build" / ".config")
    candidates.append(image.parent / ".config")
    return next((c for c in candidates if c.is_file()), None)
