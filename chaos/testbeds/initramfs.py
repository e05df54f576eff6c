"""The guest's initramfs: busybox, the modules a testbed needs, and an /init script.

The init script mounts the host's root read-only over 9p under a tmpfs
overlay, mounts the run's shared directory writable at /chaos-share, fresh
proc/sys/dev/run, cgroup2 and tracefs, optionally turns on zram swap, and
hands over to the run's stage-2 script. The archive is written in the
``newc`` cpio format by hand (no external tool) and cached per kernel.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from chaos.kernels import Kernel, testbed_modules

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
SHARE_MOUNT = "/chaos-share"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "chaos-init: FAILED: $*" > /dev/console; echo o > /proc/sysrq-trigger; sleep 10; }
for m in $(cat /modules.list); do
  insmod /modules/$m || echo "chaos-init: insmod $m failed" > /dev/console
done
SWAP_MIB=0
for arg in $(cat /proc/cmdline); do
  case "$arg" in chaos.swap_mib=*) SWAP_MIB="${arg#chaos.swap_mib=}";; esac
done
mkdir -p /host /upper /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host \
  || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/host,upperdir=/upper/u,workdir=/upper/w /newroot \
  || fail "cannot mount the overlay root"
mkdir -p /newroot@SHARE@
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 chaosshare /newroot@SHARE@ \
  || fail "cannot mount the shared directory"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mount -t tmpfs -o mode=0755 run /newroot/run
# /tmp is left to the overlay (its writes land in the tmpfs upper layer): a fresh tmpfs
# there would hide a checkout or virtualenv that lives under the host's /tmp.
mount -t cgroup2 -o nsdelegate cgroup2 /newroot/sys/fs/cgroup || fail "no cgroup2"
mount -t tracefs tracefs /newroot/sys/kernel/tracing || echo "chaos-init: no tracefs" > /dev/console
if [ "$SWAP_MIB" -gt 0 ]; then
  if [ -e /sys/block/zram0 ]; then
    echo "${SWAP_MIB}M" > /sys/block/zram0/disksize && mkswap /dev/zram0 > /dev/null \
      && swapon /dev/zram0 || echo "chaos-init: zram swap failed" > /dev/console
  else
    echo "chaos-init: no zram in this kernel" > /dev/console
  fi
fi
echo "chaos-init: root ready" > /dev/console
exec switch_root /newroot /bin/sh @SHARE@/stage2.sh
""".replace("@SHARE@", SHARE_MOUNT)


def find_busybox() -> Path:
    for c in BUSYBOX_CANDIDATES:
        p = Path(c)
        if p.exists():
            return p
    raise FileNotFoundError("busybox is not installed (apt-get install busybox-static)")


class _Newc:
    """Minimal writer for the cpio 'newc' format the kernel unpacks."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"") -> None:
        name_b = name.encode() + b"\0"
        header = "070701" + "".join(f"{v:08X}" for v in (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name_b), 0))
        self.ino += 1
        blob = header.encode() + name_b
        blob += b"\0" * (-len(blob) % 4)
        blob += data + b"\0" * (-len(data) % 4)
        self.parts.append(blob)

    def dir(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, stat.S_IFREG | mode, data)

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        out = b"".join(self.parts)
        return out + b"\0" * (-len(out) % 512)


def build(kernel: Kernel, cache: Path) -> Path:
    """Build (or reuse) the initramfs for ``kernel``; returns its path."""
    modules = testbed_modules(kernel) if kernel.modules_dir else []
    busybox = find_busybox()
    h = hashlib.sha256(INIT.encode())
    h.update(busybox.read_bytes())
    for m in modules:
        h.update(m.name.encode())
        h.update(str(m.stat().st_size).encode())
    out = cache / f"initramfs-{kernel.release}-{h.hexdigest()[:16]}.cpio"
    if out.exists():
        return out
    a = _Newc()
    for d in ("bin", "dev", "proc", "sys", "modules", "host", "upper", "newroot"):
        a.dir(d)
    a.file("bin/busybox", busybox.read_bytes(), 0o755)
    a.file("init", INIT.encode(), 0o755)
    a.file("modules.list", "".join(m.name + "\n" for m in modules).encode())
    for m in modules:
        a.file(f"modules/{m.name}", m.read_bytes())
    cache.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(a.finish())
    os.replace(tmp, out)
    for old in cache.glob(f"initramfs-{kernel.release}-*.cpio"):
        if old != out:
            old.unlink(missing_ok=True)
    return out


def have_busybox() -> bool:
    return any(Path(c).exists() for c in BUSYBOX_CANDIDATES) or shutil.which("busybox") is not None
