"""Danger detection: PSI triggers (kernel-pushed events) and a MemAvailable floor (polled)."""

from __future__ import annotations

import errno
import os
import select
import time
from dataclasses import dataclass, field

from .config import Detect, PsiTrigger
from .kfile import KFile


class ArmError(Exception):
    """A trigger could not be armed; the daemon refuses to start (one line)."""


@dataclass(slots=True)
class Trigger:
    """One reason to act now: which source fired, with the values that made it fire."""

    source: str  # "psi" | "floor"
    fields: dict[str, object] = field(default_factory=dict)
    seen_ns: int = field(default_factory=time.monotonic_ns)  # logged later, after the choice


def parse_pressure(data: bytes) -> dict[str, float]:
    """'some avg10=1.00 ... total=5' lines -> {'some_avg10': 1.0, ..., 'some_total': 5.0}."""
    out: dict[str, float] = {}
    for line in data.split(b"\n"):
        parts = line.split()
        if not parts:
            continue
        kind = parts[0].decode()
        for part in parts[1:]:
            name, _, value = part.partition(b"=")
            try:
                out[f"{kind}_{name.decode()}"] = float(value)
            except ValueError:
                continue
    return out


def parse_meminfo(data: bytes) -> tuple[int, int]:
    """(MemAvailable, MemTotal) in KiB, found by position: no dict, few allocations."""
    return _field(data, b"MemAvailable:"), _field(data, b"MemTotal:")


def _field(data: bytes, name: bytes) -> int:
    i = data.find(name)
    if i < 0:
        raise ValueError(f"{name.decode()} missing from meminfo")
    j = data.find(b"kB", i)
    return int(data[i + len(name) : j if j > 0 else None])


class PsiWatch:
    """A PSI trigger fd (O_RDWR|O_NONBLOCK, spec written once) plus a reader for its values."""

    def __init__(self, trig: PsiTrigger, keep: bool) -> None:
        self.trig = trig
        self.keep = keep
        self.fd = -1
        self.values: KFile | None = None

    def arm(self) -> int:
        try:
            self.fd = os.open(self.trig.file, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            os.write(self.fd, self.trig.spec())
        except OSError as e:
            hint = ""
            if e.errno == errno.EINVAL and self.trig.window_us % 2_000_000:
                hint = " (without CAP_SYS_RESOURCE the window must be a multiple of 2000 ms)"
            raise ArmError(
                f"cannot arm psi trigger '{self.trig.spec()[:-1].decode()}' on "
                f"{self.trig.file}: {e.strerror}{hint}"
            ) from None
        self.values = KFile(self.trig.file, self.keep)
        return self.fd

    def fired(self) -> Trigger:
        fields: dict[str, object] = {
            "file": self.trig.file,
            "kind": self.trig.kind,
            "stall_us": self.trig.stall_us,
            "window_us": self.trig.window_us,
        }
        if self.values is not None:
            try:
                fields.update(parse_pressure(self.values.read()))
            except OSError as e:
                fields["read_error"] = e.strerror
        return Trigger("psi", fields)

    def close(self) -> None:
        if self.values is not None:
            self.values.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class MemFloor:
    """MemAvailable below a floor; MemTotal is read once, MemAvailable every check."""

    def __init__(self, det: Detect, keep: bool) -> None:
        self.meminfo = KFile(det.meminfo, keep)
        _, self.total_kib = parse_meminfo(self.meminfo.read())
        floors = [0]
        if det.mem_available_min_pct is not None:
            floors.append(int(self.total_kib * det.mem_available_min_pct / 100))
        if det.mem_available_min_mib is not None:
            floors.append(det.mem_available_min_mib * 1024)
        self.floor_kib = max(floors)  # either floor triggers: the higher one wins
        self.rate_kib_per_ms = det.floor_fill_rate_mib_s * 1024 / 1000
        self.headroom_kib = 0

    def check(self) -> Trigger | None:
        avail, _ = parse_meminfo(self.meminfo.read())
        self.headroom_kib = avail - self.floor_kib
        if avail >= self.floor_kib:
            return None
        return Trigger(
            "floor",
            {
                "mem_available_kib": avail,
                "mem_total_kib": self.total_kib,
                "floor_kib": self.floor_kib,
            },
        )

    def next_check_ms(self, interval_ms: int) -> int:
        """How long until the next check: as long as memory filling at the configured rate
        would take to use up the headroom, clamped to [1 ms, interval_ms]."""
        if self.rate_kib_per_ms <= 0:
            return interval_ms
        return max(1, min(interval_ms, int(self.headroom_kib / self.rate_kib_per_ms)))

    def close(self) -> None:
        self.meminfo.close()


class Detector:
    """Owns the poll set: PSI fds for POLLPRI; the caller's timeout drives floor checks."""

    def __init__(self, det: Detect, keep: bool) -> None:
        self.det = det
        self.keep = keep
        self.watches: dict[int, PsiWatch] = {}
        self.floor: MemFloor | None = None
        self.poller = select.poll()
        self.broken: list[str] = []

    def arm(self) -> None:
        """Open everything; raises ArmError (one line) if a trigger cannot be armed."""
        if self.det.mem_available_min_pct is not None or self.det.mem_available_min_mib:
            try:
                self.floor = MemFloor(self.det, self.keep)
            except (OSError, ValueError) as e:
                raise ArmError(f"cannot read {self.det.meminfo}: {_why(e)}") from None
        for trig in self.det.psi:
            w = PsiWatch(trig, self.keep)
            fd = w.arm()
            self.watches[fd] = w
            self.poller.register(fd, select.POLLPRI)

    def wait(self, timeout_ms: int) -> list[Trigger]:
        """Block up to timeout_ms for PSI events; returns the triggers that fired."""
        out: list[Trigger] = []
        for fd, ev in self.poller.poll(timeout_ms):
            w = self.watches.get(fd)
            if w is None:
                continue
            if ev & (select.POLLERR | select.POLLNVAL):
                # The monitored cgroup went away, or the kernel dropped the trigger.
                self.poller.unregister(fd)
                self.broken.append(w.trig.file)
                del self.watches[fd]
                w.close()
            elif ev & select.POLLPRI:
                out.append(w.fired())
        return out

    def drain(self) -> None:
        """Consume PSI events that piled up while a kill was in flight (they are stale)."""
        if self.watches:
            self.poller.poll(0)

    def check_floor(self) -> Trigger | None:
        return self.floor.check() if self.floor is not None else None

    def next_floor_ms(self, interval_ms: int) -> int:
        return self.floor.next_check_ms(interval_ms) if self.floor is not None else interval_ms

    def armed(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = [
            {"source": "psi", "file": w.trig.file, "spec": w.trig.spec()[:-1].decode()}
            for w in self.watches.values()
        ]
        if self.floor is not None:
            out.append(
                {
                    "source": "floor",
                    "file": self.det.meminfo,
                    "floor_kib": self.floor.floor_kib,
                    "mem_total_kib": self.floor.total_kib,
                }
            )
        return out

    def close(self) -> None:
        for w in self.watches.values():
            w.close()
        self.watches.clear()
        if self.floor is not None:
            self.floor.close()


def _why(e: Exception) -> str:
    return (e.strerror or str(e)) if isinstance(e, OSError) else str(e)
