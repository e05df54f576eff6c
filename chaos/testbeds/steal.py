"""How long the host kept a guest's vCPUs waiting: steal, which a guest cannot see itself.

A vCPU thread that is runnable on the host but not running stops the guest's CPU while
the guest's clock goes on, so everything the guest times in that window (a victim's
teardown, a killer's poll) looks slower than the guest's own work was. Under KVM a guest
reads that from its steal clock; under emulation nothing tells it. The host side reads
each vCPU thread's ``schedstat`` (time on a CPU, time waiting on a run queue) while qemu
runs, and maps its clock onto the guest's through the agent's heartbeat, which carries
the guest's CLOCK_MONOTONIC and is stamped with the host's time when it is written.

Sampling is a thread in the host process; the arithmetic is pure, so the report can
recompute from the raw record kept in the result.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path

from chaos.probes.phases import effective_t0
from chaos.procname import set_thread_name
from chaos.result import Result

EVERY_S = 0.02
# qemu names its vCPU threads "CPU <n>/TCG" or "CPU <n>/KVM" with -name ...,debug-threads=on
VCPU_PREFIX = "CPU "


@dataclass
class VcpuWait:
    """Cumulative run-queue wait (ms) of each vCPU thread, sampled on the host's clock,
    and (guest ns, host ns) pairs from the heartbeat for mapping the clocks."""

    t_ns: list[int] = field(default_factory=list)  # host CLOCK_MONOTONIC
    wait_ms: dict[str, list[float]] = field(default_factory=dict)  # "cpu0": cumulative
    run_ms: dict[str, list[float]] = field(default_factory=dict)
    clock_pairs: list[tuple[int, int]] = field(default_factory=list)

    def guest_minus_host_ns(self) -> int | None:
        """Offset from host to guest clock: the heartbeat's guest time was read before the
        write that stamped the file, so every pair overestimates host-minus-guest; the
        smallest is the closest (a few ms under emulation)."""
        if not self.clock_pairs:
            return None
        return -min(host - guest for guest, host in self.clock_pairs)

    def on_guest_clock(self) -> dict[str, list[float]] | None:
        """The raw record for a result: ``t_ns`` on the guest's clock, then per vCPU
        ``<cpu>_wait_ms`` and ``<cpu>_run_ms``; None without a clock mapping."""
        offset = self.guest_minus_host_ns()
        if offset is None or not self.t_ns:
            return None
        out: dict[str, list[float]] = {"t_ns": [float(t + offset) for t in self.t_ns]}
        for cpu in sorted(self.wait_ms):
            out[f"{cpu}_wait_ms"] = self.wait_ms[cpu]
            out[f"{cpu}_run_ms"] = self.run_ms[cpu]
        return out

    def steal_pct(self) -> float | None:
        """Share of the vCPUs' wanted time (run + wait) spent waiting, over the whole run."""
        run = sum(v[-1] - v[0] for v in self.run_ms.values() if v)
        wait = sum(v[-1] - v[0] for v in self.wait_ms.values() if v)
        return round(100 * wait / (run + wait), 1) if run + wait > 0 else None


def _at(ts: list[float], values: list[float], t: float) -> float:
    """A cumulative counter at ``t``, linear between samples, clamped at the ends."""
    i = bisect_left(ts, t)
    if i <= 0:
        return values[0]
    if i >= len(ts):
        return values[-1]
    t0, t1 = ts[i - 1], ts[i]
    f = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
    return values[i - 1] + f * (values[i] - values[i - 1])


def wait_between(raw: dict[str, list[float]], start_ns: int, end_ns: int) -> float | None:
    """vCPU wait (ms, summed over vCPUs) between two guest instants; None if the record
    does not cover them."""
    ts = raw.get("t_ns") or []
    if not ts or start_ns < ts[0] or end_ns > ts[-1] or end_ns < start_ns:
        return None
    total = 0.0
    for key, values in raw.items():
        if key.endswith("_wait_ms") and len(values) == len(ts):
            total += _at(ts, values, end_ns) - _at(ts, values, start_ns)
    return round(total, 3)


def read_schedstat(fd: int) -> tuple[int, int] | None:
    """(ns on a CPU, ns waiting on a run queue) of one thread, from its schedstat held
    open (a pread: 50 times a second, beside the vCPUs on the same host cores); None
    once the thread is gone."""
    try:
        run, wait = os.pread(fd, 128, 0).split()[:2]
        return int(run), int(wait)
    except (OSError, ValueError):
        return None


class VcpuSampler:
    """Samples a qemu process's vCPU threads until stopped; a context manager."""

    def __init__(self, qemu_pid: int, cpus: int, heartbeat: Path | None,
                 every_s: float = EVERY_S) -> None:
        self.pid, self.cpus, self.heartbeat, self.every_s = qemu_pid, cpus, heartbeat, every_s
        self.record = VcpuWait()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-vcpu-wait", daemon=True)
        self._vcpus: dict[str, int] = {}  # "cpu0" -> its schedstat, held open
        self._beat_seen = b""

    def start(self) -> VcpuSampler:
        self._thread.start()
        return self

    def __enter__(self) -> VcpuSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> VcpuWait:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if not self._thread.is_alive():
            for fd in self._vcpus.values():
                os.close(fd)
            self._vcpus.clear()
        return self.record

    def _find_vcpus(self) -> None:
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if comm.startswith(VCPU_PREFIX):  # "CPU 1/TCG"
                cpu = "cpu" + comm[len(VCPU_PREFIX):].split("/")[0]
                if cpu in self._vcpus:
                    continue
                try:
                    self._vcpus[cpu] = os.open(f"/proc/{self.pid}/task/{tid}/schedstat",
                                               os.O_RDONLY)
                except OSError:
                    continue

    def _loop(self) -> None:
        set_thread_name("chaos-vcpu-wait")
        rec = self.record
        while not self._stop.wait(self.every_s):
            if len(self._vcpus) < self.cpus:
                self._find_vcpus()
                if len(self._vcpus) < self.cpus:
                    continue
                for cpu in self._vcpus:
                    rec.wait_ms[cpu], rec.run_ms[cpu] = [], []
            now = time.monotonic_ns()
            stats = {cpu: read_schedstat(fd) for cpu, fd in self._vcpus.items()}
            if any(s is None for s in stats.values()):
                break  # qemu is gone
            rec.t_ns.append(now)
            for cpu, s in stats.items():
                assert s is not None
                rec.run_ms[cpu].append(round(s[0] / 1e6, 3))
                rec.wait_ms[cpu].append(round(s[1] / 1e6, 3))
            self._read_beat()

    def _read_beat(self) -> None:
        """One clock pair per heartbeat, if the file was not rewritten while read."""
        if self.heartbeat is None:
            return
        try:
            before = os.stat(self.heartbeat).st_mtime_ns
            text = self.heartbeat.read_bytes()
            after = os.stat(self.heartbeat).st_mtime_ns
        except OSError:
            return
        if before != after or text == self._beat_seen:
            return
        try:
            guest_ns = int(text.split()[1])
        except (IndexError, ValueError):
            return
        self._beat_seen = text
        host_ns = after - time.clock_gettime_ns(time.CLOCK_REALTIME) + time.monotonic_ns()
        self.record.clock_pairs.append((guest_ns, host_ns))


def fill_steal(result: Result, wait: VcpuWait) -> None:
    """Put the host's view into a guest's result: the whole run's steal share, the raw
    record, and the steal inside the kill window and the teardown."""
    result.testbed.vcpu_steal_pct = wait.steal_pct()
    raw = wait.on_guest_clock()
    if raw is None:
        return
    result.testbed.vcpu_wait = raw
    m = result.metrics
    t0 = effective_t0(result.t0_ns, [v for v in result.victims if v.expected and v.died])
    if t0 is None or m.time_to_kill_ms is None:
        return
    gone = t0 + int(m.time_to_kill_ms * 1e6)
    m.vcpu_steal_in_window_ms = wait_between(raw, t0, gone)
    if m.detect_ms is not None:
        m.vcpu_steal_teardown_ms = wait_between(raw, t0 + int(m.detect_ms * 1e6), gone)
