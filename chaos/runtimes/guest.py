"""Devices the VM testbed attaches for stressors, brought up inside the guest on demand.

The VM has a sparse scratch disk (virtio-blk, serial ``chaos-scratch``) and,
when asked, a flood NIC (virtio-net, fixed MAC) whose other end is a unix
datagram socket on the host. Their drivers and ext4 are modules of the guest
kernel, loaded only when a stressor needs them (no boot-time cost for the
rest): the host's kernel cache is visible in the guest over 9p, and
``CHAOS_GUEST_MODULES`` (written by the VM testbed) lists what to insmod.

Why a disk at all: the guest's root is an overlay on tmpfs, and tmpfs pages
are shmem. Only a filesystem on a block device gives real page cache, dirty
pages and writeback (with virtio interrupts completing it).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

from chaos.kernels import Kernel, KernelError, testbed_modules
from chaos.scenario import SpecError

MODULES_ENV = "CHAOS_GUEST_MODULES"  # the list of modules to insmod, in order (guest path)
MODULE_LIST = "stressor-modules.list"
GUEST_MODULES = ("virtio_blk", "ext4", "virtio_net")
OPTIONAL_MODULES = ("crc32c_generic",)  # ext4 asks the crypto API for crc32c at mount
SCRATCH_ENV = "CHAOS_GUEST_SCRATCH_MIB"  # size of the attached scratch disk
SCRATCH_EXT4_ENV = "CHAOS_GUEST_SCRATCH_EXT4"  # "1" when the host already made its ext4
MKFS_EXT4 = ("mkfs.ext4", "-q", "-F", "-O", "^metadata_csum", "-E",
             "lazy_itable_init=1,lazy_journal_init=1")
FLOOD_ENV = "CHAOS_GUEST_FLOOD"  # "1" when the flood NIC is attached
SHARE_ENV = "CHAOS_GUEST_SHARE"  # the directory shared with the host (flood.go / flood.stop)
SCRATCH_SERIAL = "chaos-scratch"
SCRATCH_MOUNT = Path("/run/chaos-scratch")
FLOOD_MAC = "52:54:00:c4:a0:5e"
FLOOD_GUEST_IP = "10.213.0.2"
FLOOD_HOST_IP = "10.213.0.1"
# Jumbo frames: an emulated guest pays per frame (an interrupt, a NAPI poll, an skb). At
# 1500 bytes a 20 MiB/s flood took a 6.12 guest's CPUs (the hog grew at 0.2-5 MiB/s and
# danger never came in 3 of 6 runs); at 9000 the guest took the whole flood and danger
# came in all 6 (3 at 20 MiB/s, 3 at 10; docs/measurements.md). Memory is charged to the
# sockets by the byte either way.
FLOOD_MTU = 9000
LOCK = Path("/run/chaos-guest.lock")


def in_guest() -> bool:
    return bool(os.environ.get(MODULES_ENV))


def scratch_mib() -> int:
    """Size of the scratch disk the VM testbed attached (0: none)."""
    try:
        return int(os.environ.get(SCRATCH_ENV, "0"))
    except ValueError:
        return 0


def flood_attached() -> bool:
    return os.environ.get(FLOOD_ENV) == "1"


def host_side_env(kernel: Kernel, scratch_mib: int, flood: bool, share: Path,
                  share_in_guest: str, scratch_ext4: bool = False) -> dict[str, str]:
    """Run by the VM testbed on the host: the guest's environment, and its module list.

    Resolving module dependencies means reading every module's ``.modinfo``; over 9p
    under emulation that walk takes tens of seconds, on the host milliseconds. So the
    host writes the ordered list of (decompressed) modules, the guest only insmods it.
    """
    env = {SCRATCH_ENV: str(scratch_mib), FLOOD_ENV: "1" if flood else "0",
           SHARE_ENV: share_in_guest, SCRATCH_EXT4_ENV: "1" if scratch_ext4 else "0"}
    if kernel.modules_dir is not None and (scratch_mib or flood):
        try:
            files = testbed_modules(kernel, wanted=GUEST_MODULES, optional=OPTIONAL_MODULES)
        except KernelError:
            return env  # the guest says so when a stressor asks for them
        (share / MODULE_LIST).write_text("".join(f"{f}\n" for f in files))
        env[MODULES_ENV] = f"{share_in_guest}/{MODULE_LIST}"
    return env


def make_scratch_image(image: Path, mib: int) -> bool:
    """Run on the host: the scratch disk's sparse image, with its ext4 made here when the
    host has mkfs.ext4 (10 ms here; 2.8 s in an emulated guest). False: the guest makes it."""
    with open(image, "wb") as f:
        f.truncate(mib << 20)
    mkfs = shutil.which(MKFS_EXT4[0], path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
    if mkfs is None:
        return False
    try:
        out = subprocess.run([mkfs, *MKFS_EXT4[1:], str(image)], capture_output=True,
                             timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def load_modules() -> None:
    """insmod the listed modules (dependencies first) that are not loaded yet."""
    try:
        files = [Path(x) for x in Path(os.environ[MODULES_ENV]).read_text().split()]
    except (KeyError, OSError):
        raise SpecError("no module list for this guest: its devices need virtio_blk, ext4 "
                        "and virtio_net from the guest kernel's package") from None
    for ko in files:
        if Path("/sys/module", ko.name.removesuffix(".ko")).exists():
            continue
        out = subprocess.run(["busybox", "insmod", str(ko)], capture_output=True, text=True,
                             timeout=60)
        if out.returncode != 0 and "File exists" not in out.stderr:
            raise SpecError(f"insmod {ko.name} failed: {out.stderr.strip()}")


def ask_host_flood(start: bool) -> None:
    """Tell the host to start (``flood.go``) or stop (``flood.stop``) flooding the NIC."""
    share = os.environ.get(SHARE_ENV, "")
    if not share:
        raise SpecError("this guest has no shared directory to ask the host for a flood")
    Path(share, "flood.go" if start else "flood.stop").write_text("1")


def _wait_for(check: object, what: str, timeout_s: float = 30.0) -> Path:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        found = check() if callable(check) else None
        if found:
            return Path(found)
        time.sleep(0.05)
    raise SpecError(f"{what} did not appear within {timeout_s:.0f} s")


def _scratch_disk() -> str | None:
    for dev in Path("/sys/block").glob("vd*"):
        try:
            if (dev / "serial").read_text().strip() == SCRATCH_SERIAL:
                return f"/dev/{dev.name}"
        except OSError:
            continue
    return None


def scratch() -> Path:
    """The scratch disk's ext4, mounted once per guest (made first if the host could not);
    returns its mount point."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.ismount(SCRATCH_MOUNT):
            return SCRATCH_MOUNT
        if not scratch_mib():
            raise SpecError("this VM has no scratch disk (page-cache floods need one)")
        load_modules()
        disk = _wait_for(_scratch_disk, "the scratch disk")
        mkfs = [] if os.environ.get(SCRATCH_EXT4_ENV) == "1" else [[*MKFS_EXT4, str(disk)]]
        for argv in [*mkfs, ["mount", "-t", "ext4", "-o", "noatime", str(disk),
                             str(SCRATCH_MOUNT)]]:
            SCRATCH_MOUNT.mkdir(parents=True, exist_ok=True)
            out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            if out.returncode != 0:
                raise SpecError(f"{argv[0]} {disk} failed: {out.stderr.strip()}")
        return SCRATCH_MOUNT


def _flood_iface() -> str | None:
    for dev in Path("/sys/class/net").iterdir():
        try:
            if (dev / "address").read_text().strip() == FLOOD_MAC:
                return dev.name
        except OSError:
            continue
    return None


def flood_nic() -> str:
    """Bring the flood NIC up with ``FLOOD_GUEST_IP``; returns the interface name."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not flood_attached():
            raise SpecError("this VM has no flood NIC (boot it with VmConfig(flood_socket=...))")
        load_modules()
        iface = _wait_for(_flood_iface, "the flood NIC").name
        addrs = subprocess.run(["ip", "-o", "addr", "show", "dev", iface], capture_output=True,
                               text=True, timeout=30).stdout
        cmds = [["ip", "link", "set", iface, "mtu", str(FLOOD_MTU), "up"]]
        if FLOOD_GUEST_IP not in addrs:
            cmds.insert(0, ["ip", "addr", "add", f"{FLOOD_GUEST_IP}/24", "dev", iface])
        for argv in cmds:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if out.returncode != 0:
                raise SpecError(f"{' '.join(argv)} failed: {out.stderr.strip()}")
        return iface
