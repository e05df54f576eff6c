"""The host side of the external UDP storm: raw frames into the VM's flood NIC.

The NIC's backend is a unix datagram socket pair (qemu ``-netdev dgram``), so
the host sends Ethernet frames straight into the guest's virtio-net device:
nothing touches the host's network stack or any address but the guest's own
(``FLOOD_GUEST_IP`` on a private /24 that exists only inside the guest). The
guest's receive path runs in device interrupt and NAPI (softirq) context.

The flood waits for ``flood.go`` in the VM's shared directory (written by the
guest when its sockets are ready) and ends at ``flood.stop``, its deadline,
or ``stop()``; it paces itself (host CPU is shared with the guest's vCPUs).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from chaos.runtimes.guest import FLOOD_GUEST_IP, FLOOD_HOST_IP, FLOOD_MAC, FLOOD_MTU

GO, STOP = "flood.go", "flood.stop"
HOST_MAC = bytes.fromhex("525400c0ffee")
IPV4_HEADER, UDP_HEADER = 20, 8
PAYLOAD_BYTES = FLOOD_MTU - IPV4_HEADER - UDP_HEADER  # a full frame at the guest's MTU


def _checksum(header: bytes) -> int:
    total = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(port: int, payload: bytes) -> bytes:
    """Ethernet + IPv4 + UDP to ``FLOOD_GUEST_IP:port`` (UDP checksum 0: allowed on IPv4)."""
    udp_len = UDP_HEADER + len(payload)
    udp = struct.pack("!HHHH", 40000, port, udp_len, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, IPV4_HEADER + udp_len, 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(FLOOD_HOST_IP), socket.inet_aton(FLOOD_GUEST_IP))
    ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
    dst = bytes.fromhex(FLOOD_MAC.replace(":", ""))
    return dst + HOST_MAC + b"\x08\x00" + ip + udp + payload


class HostFlood(threading.Thread):
    """Floods ``ports`` of the guest at ``rate_mib_s`` while the guest asks for it."""

    def __init__(self, prefix: str, share: Path, ports: Sequence[int], rate_mib_s: float = 20.0,
                 payload_bytes: int = PAYLOAD_BYTES, deadline_s: float = 600.0) -> None:
        super().__init__(name="chaos-host-flood", daemon=True)
        self.prefix, self.share, self.ports = prefix, share, ports
        self.rate_mib_s, self.deadline_s = rate_mib_s, deadline_s
        self.frames = [frame(p, os.urandom(payload_bytes)) for p in ports]
        self.sent = self.dropped = 0
        self.sent_bytes = 0
        self.flood_s = 0.0
        self.halt = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        Path(prefix + ".host").unlink(missing_ok=True)
        self.sock.bind(prefix + ".host")
        self.sock.setblocking(False)

    def run(self) -> None:
        """Wait for the guest's go (until stopped: the runner's finally stops it, and a
        second boot after a faulted first one may ask late), then flood for at most
        deadline_s or until the guest says stop."""
        try:
            while not self.halt.is_set():
                if (self.share / GO).exists():
                    self._flood(time.monotonic() + self.deadline_s)
                    return
                time.sleep(0.05)
        finally:
            self.sock.close()
            Path(self.prefix + ".host").unlink(missing_ok=True)

    def _flood(self, end: float) -> None:
        t0 = time.monotonic()
        target = self.prefix + ".qemu"
        i = 0
        while not self.halt.is_set() and time.monotonic() < end:
            if i % 256 == 0 and (self.share / STOP).exists():
                break
            f = self.frames[i % len(self.frames)]
            i += 1
            try:
                self.sock.sendto(f, target)
                self.sent += 1
                self.sent_bytes += len(f)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ECONNREFUSED,
                                     errno.ENOENT):
                    raise
                self.dropped += 1
                time.sleep(0.001)
            due = t0 + self.sent_bytes / (self.rate_mib_s * (1 << 20))
            delay = due - time.monotonic()
            if delay > 0.002:
                time.sleep(delay)
        self.flood_s = round(time.monotonic() - t0, 3)

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=10)
