"""Interrupt-like allocation storm: UDP into sockets that never read.

Each socket gets a receive buffer forced far past ``rmem_max``
(``SO_RCVBUFFORCE``), so every datagram that arrives stays queued as kernel
memory charged to the socket, allocated while the stack runs in softirq
context, not by any user process: the receiving process's RSS stays flat
while ``/proc/net/sockstat`` UDP ``mem`` grows.

Sources: ``loopback`` (this process also sends, to 127.0.0.1) or
``external`` (it only holds the sockets, bound on all addresses; the VM
testbed's host floods the guest's virtio-net device, so real device
interrupts and NAPI do the allocating). Global ``net.ipv4.udp_mem`` still
caps the total; the agent raises it when ``udp_mem_mib`` asks (``prepare``).
"""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.scenario import Params
from chaos.stressors.common import (
    MiB,
    Needs,
    Pacer,
    Reporter,
    argv_for,
    cpu_seconds,
    main_for,
    parse_params,
    require,
    until,
)

NAME = "udp_storm"
SOURCES = ("loopback", "external")
HOST_FLOOD_MIB_S = 20.0  # external, rate 0: the host's CPUs also run the guest's vCPUs
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
PAGE = 4096


@dataclass(frozen=True)
class UdpStormParams:
    source: str = "loopback"
    sockets: int = 8
    port_base: int = 47000
    rcvbuf_mib: int = 256  # forced receive buffer per socket
    packet_bytes: int = 16384  # loopback datagram payload
    # loopback: the send rate, 0 = as fast as possible; external: the host's flood rate,
    # 0 = HOST_FLOOD_MIB_S
    rate_mib_s: float = 0.0
    duration_s: float = 0.0  # 0 = until stopped
    udp_mem_mib: int = 0  # raise net.ipv4.udp_mem to this (testbed-wide); 0 = leave it


def parse(raw: Params) -> UdpStormParams:
    p = parse_params(UdpStormParams, raw, NAME)
    require(p.source in SOURCES, NAME, f"source must be one of {', '.join(SOURCES)}, "
            f"got {p.source!r}")
    require(1 <= p.sockets <= 1024, NAME, f"sockets must be 1..1024, got {p.sockets}")
    require(1024 <= p.port_base and p.port_base + p.sockets <= 65535, NAME,
            f"ports {p.port_base}..{p.port_base + p.sockets - 1} are outside 1024..65535")
    require(1 <= p.rcvbuf_mib <= 1023, NAME, f"rcvbuf_mib must be 1..1023, got {p.rcvbuf_mib}")
    require(64 <= p.packet_bytes <= 65000, NAME,
            f"packet_bytes must be 64..65000, got {p.packet_bytes}")
    require(p.rate_mib_s >= 0, NAME, f"rate_mib_s must be >= 0, got {p.rate_mib_s:g}")
    require(p.duration_s >= 0 and p.udp_mem_mib >= 0, NAME,
            "duration_s and udp_mem_mib must be >= 0")
    return p


def needs(p: UdpStormParams) -> Needs:
    if p.source != "external":
        return Needs(caps=("NET_ADMIN",))
    return Needs(caps=("NET_ADMIN",), host_network=True,
                 flood_ports=tuple(range(p.port_base, p.port_base + p.sockets)),
                 flood_mib_s=p.rate_mib_s or HOST_FLOOD_MIB_S)


def prepare(p: UdpStormParams, cgroup_root: Path) -> dict[str, str]:
    """Testbed-wide: loopback up (a fresh guest has it down), ``udp_mem`` raised if asked.

    The default ``net.ipv4.udp_mem`` caps all UDP queues near RAM/16.
    """
    flags = Path("/sys/class/net/lo/flags")
    if p.source == "loopback" and flags.exists() and not int(flags.read_text(), 16) & 1:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=False, capture_output=True,
                       timeout=30)
    if p.udp_mem_mib:
        pages = p.udp_mem_mib * MiB // PAGE
        Path("/proc/sys/net/ipv4/udp_mem").write_text(f"{pages} {pages} {pages}\n")
    return {}


def command(p: UdpStormParams) -> list[str]:
    return argv_for("chaos.stressors.udp_storm", p)


def udp_mem_pages() -> int:
    """Pages queued by all UDP sockets (``/proc/net/sockstat``, line ``UDP: ... mem N``)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("UDP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1])
    return 0


def rcvbuf_errors() -> int:
    """Datagrams the kernel dropped for full receive buffers (``Udp: RcvbufErrors``)."""
    lines = [ln.split() for ln in Path("/proc/net/snmp").read_text().splitlines()
             if ln.startswith("Udp:")]
    if len(lines) == 2 and "RcvbufErrors" in lines[0]:
        return int(lines[1][lines[0].index("RcvbufErrors")])
    return 0


def queued_bytes(ports: set[int]) -> int:
    """Receive-queue bytes of our sockets (``rx_queue`` in ``/proc/net/udp``)."""
    total = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        cols = line.split()
        port = int(cols[1].split(":")[1], 16)
        if port in ports:
            total += int(cols[4].split(":")[1], 16)
    return total


def open_sockets(p: UdpStormParams) -> tuple[list[socket.socket], int]:
    host = "127.0.0.1" if p.source == "loopback" else "0.0.0.0"
    socks: list[socket.socket] = []
    forced = 0
    for i in range(p.sockets):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, p.rcvbuf_mib * MiB)
            forced += 1
        except PermissionError:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, p.rcvbuf_mib * MiB)
        s.bind((host, p.port_base + i))
        socks.append(s)
    return socks, forced


def run(p: UdpStormParams) -> None:
    socks, forced = open_sockets(p)
    ports = {p.port_base + i for i in range(p.sockets)}
    rep = Reporter(0.2)
    rep.tick("start", force=True, source=p.source, sockets=p.sockets, forced=forced,
             rcvbuf=socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    end = until(p.duration_s)
    sent = errors = 0
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    payload = b"\xa5" * p.packet_bytes
    pacer = Pacer(p.rate_mib_s)

    def report(force: bool = False) -> None:
        if force or time.monotonic() - rep.last >= rep.every_s:
            rep.tick("storm", force=True, packets_sent=sent,
                     sent_mib=round(sent * p.packet_bytes / MiB, 3), send_errors=errors,
                     queued_kib=queued_bytes(ports) // 1024, rcvbuf_errors=rcvbuf_errors(),
                     udp_mem_kib=udp_mem_pages() * 4, cpu_s=cpu_seconds())

    while time.monotonic() < end:
        if p.source == "external":
            report()
            time.sleep(0.2)
            continue
        for port in sorted(ports):
            try:
                sender.sendto(payload, ("127.0.0.1", port))
                sent += 1
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.ENOBUFS, errno.ENOMEM):
                    raise
                errors += 1
                time.sleep(0.001)
        pacer.wait(sent * p.packet_bytes / MiB)
        report()
    report(force=True)
    for s in socks:
        s.close()


def main(argv: list[str] | None = None) -> int:
    return main_for(UdpStormParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())

