"""Per-thread delay accounting through the kernel's taskstats genetlink interface.

``freepages_delay_total`` is the time a task spent in direct reclaim (the kernel
accounts it around try_to_free_pages); ``cpu_delay_total`` is time spent
runnable but waiting for a CPU; ``compact_delay_total`` (version >= 11) is
time in direct compaction. Needs ``delayacct`` on the kernel command line or
``kernel.task_delayacct=1`` (the VM testbed boots with it).
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
TASKSTATS_CMD_GET = 1
TASKSTATS_CMD_ATTR_PID = 1
TASKSTATS_TYPE_PID = 1
TASKSTATS_TYPE_STATS = 3
TASKSTATS_TYPE_AGGR_PID = 4

# Offsets into struct taskstats (include/uapi/linux/taskstats.h, x86_64 alignment).
OFF_VERSION = 0
OFF_CPU_COUNT, OFF_CPU_DELAY = 16, 24
OFF_FREEPAGES_COUNT, OFF_FREEPAGES_DELAY = 312, 320
OFF_THRASHING_COUNT, OFF_THRASHING_DELAY = 328, 336
OFF_COMPACT_COUNT, OFF_COMPACT_DELAY = 352, 360


@dataclass(frozen=True)
class Delays:
    """Cumulative delays of one thread, nanoseconds."""

    version: int
    cpu_count: int
    cpu_delay_ns: int
    reclaim_count: int
    reclaim_delay_ns: int
    thrashing_delay_ns: int
    compact_count: int
    compact_delay_ns: int


class TaskstatsError(OSError):
    pass


def _attr(kind: int, payload: bytes) -> bytes:
    body = struct.pack("=HH", 4 + len(payload), kind) + payload
    return body + b"\0" * (-len(body) % 4)


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, i)
        if length < 4:
            break
        out[kind & 0x3FFF] = data[i + 4:i + length]
        i += (length + 3) & ~3
    return out


class Taskstats:
    """A genetlink socket asking the kernel for one thread's delays at a time."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.sock.settimeout(1.0)
        self.seq = 0
        self.family = self._family_id()

    def _request(self, msg_type: int, cmd: int, attrs: bytes) -> bytes:
        self.seq += 1
        genl = struct.pack("=BBH", cmd, 1, 0)
        header = struct.pack("=IHHII", 16 + len(genl) + len(attrs), msg_type, NLM_F_REQUEST,
                             self.seq, os.getpid())
        self.sock.send(header + genl + attrs)
        reply = self.sock.recv(65536)
        length, rtype = struct.unpack_from("=IH", reply, 0)
        if rtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", reply, 16)
            raise TaskstatsError(-err, os.strerror(-err) if err else "netlink error")
        return reply[16 + 4:length]

    def _family_id(self) -> int:
        payload = self._request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                                _attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"))
        fid = _attrs(payload).get(CTRL_ATTR_FAMILY_ID)
        if fid is None:
            raise TaskstatsError(0, "no TASKSTATS genetlink family")
        return int(struct.unpack_from("=H", fid)[0])

    def delays(self, tid: int) -> Delays | None:
        """Delays of thread ``tid``, or None if it is gone."""
        try:
            payload = self._request(self.family, TASKSTATS_CMD_GET,
                                    _attr(TASKSTATS_CMD_ATTR_PID, struct.pack("=I", tid)))
        except (TaskstatsError, TimeoutError):
            return None
        aggr = _attrs(payload).get(TASKSTATS_TYPE_AGGR_PID)
        if aggr is None:
            return None
        stats = _attrs(aggr).get(TASKSTATS_TYPE_STATS)
        if stats is None:
            return None
        return parse(stats)

    def close(self) -> None:
        self.sock.close()


def parse(stats: bytes) -> Delays:
    def u64(off: int) -> int:
        return int(struct.unpack_from("=Q", stats, off)[0]) if len(stats) >= off + 8 else 0

    version = int(struct.unpack_from("=H", stats, OFF_VERSION)[0])
    return Delays(version=version, cpu_count=u64(OFF_CPU_COUNT), cpu_delay_ns=u64(OFF_CPU_DELAY),
                  reclaim_count=u64(OFF_FREEPAGES_COUNT),
                  reclaim_delay_ns=u64(OFF_FREEPAGES_DELAY),
                  thrashing_delay_ns=u64(OFF_THRASHING_DELAY),
                  compact_count=u64(OFF_COMPACT_COUNT) if version >= 11 else 0,
                  compact_delay_ns=u64(OFF_COMPACT_DELAY) if version >= 11 else 0)
