"""vCPU steal: the arithmetic on a record, and the sampler on real threads of this host."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.result import Result, VictimOutcome
from chaos.skips import skip_or_fail
from chaos.testbeds.steal import VcpuSampler, VcpuWait, fill_steal, wait_between

MS = 1_000_000


def record() -> VcpuWait:
    """Two vCPUs sampled every 10 ms on a host clock 5 s behind the guest's; cpu0 waits
    1 ms per 10 ms throughout, cpu1 only between 100 and 200 ms (all of it)."""
    w = VcpuWait()
    w.t_ns = [1_000 * MS + i * 10 * MS for i in range(31)]
    w.wait_ms = {"cpu0": [float(i) for i in range(31)],
                 "cpu1": [float(min(max(0, i * 10 - 100), 100)) for i in range(31)]}
    w.run_ms = {"cpu0": [9.0 * i for i in range(31)],
                "cpu1": [10.0 * i - w.wait_ms["cpu1"][i] for i in range(31)]}
    w.clock_pairs = [(6_000 * MS, 1_003 * MS), (6_100 * MS, 1_100 * MS + MS // 2),
                     (6_200 * MS, 1_210 * MS)]
    return w


def test_the_smallest_heartbeat_delay_maps_the_clocks() -> None:
    w = record()
    assert w.guest_minus_host_ns() == 5_000 * MS - MS // 2
    raw = w.on_guest_clock()
    assert raw is not None
    assert raw["t_ns"][0] == 1_000 * MS + 5_000 * MS - MS // 2
    assert raw["cpu1_wait_ms"] == w.wait_ms["cpu1"]


def test_no_heartbeat_no_mapping() -> None:
    w = record()
    w.clock_pairs = []
    assert w.on_guest_clock() is None
    assert w.steal_pct() is not None  # the whole run's share needs no mapping


def test_wait_between_interpolates_and_sums_the_vcpus() -> None:
    raw = {"t_ns": [0.0, 10 * MS, 20 * MS], "cpu0_wait_ms": [0.0, 1.0, 2.0],
           "cpu1_wait_ms": [0.0, 10.0, 10.0], "cpu0_run_ms": [0.0, 9.0, 18.0]}
    assert wait_between(raw, 0, 20 * MS) == 12.0
    assert wait_between(raw, 5 * MS, 15 * MS) == 1.0 + 5.0
    assert wait_between(raw, 12 * MS, 18 * MS) == pytest.approx(0.6)
    assert wait_between(raw, -1, 10 * MS) is None  # not covered: no number rather than a guess
    assert wait_between(raw, 0, 21 * MS) is None
    assert wait_between({}, 0, 1) is None


def test_steal_share_of_the_wanted_time() -> None:
    # cpu0: 30 ms waited, 270 ran; cpu1: 100 waited, 200 ran -> 130 / 600
    assert record().steal_pct() == pytest.approx(21.7)


def test_fill_steal_puts_the_window_and_the_teardown_into_the_result() -> None:
    w = record()
    offset = w.guest_minus_host_ns()
    assert offset is not None
    r = Result(scenario="spike", run_id="x")
    r.t0_ns = 1_050 * MS + offset  # danger at host 50 ms in
    r.metrics.time_to_kill_ms = 200.0  # gone at host 250 ms
    r.metrics.detect_ms = 100.0  # signal at host 150 ms
    fill_steal(r, w)
    assert r.testbed.vcpu_steal_pct == pytest.approx(21.7)
    assert set(r.testbed.vcpu_wait) == {"t_ns", "cpu0_wait_ms", "cpu1_wait_ms",
                                        "cpu0_run_ms", "cpu1_run_ms"}
    assert r.metrics.vcpu_steal_in_window_ms == pytest.approx(20.0 + 100.0)
    assert r.metrics.vcpu_steal_teardown_ms == pytest.approx(10.0 + 50.0)
    again = Result.from_json(r.to_json())  # the raw record survives, so a report can redo it
    assert again.testbed.vcpu_wait == r.testbed.vcpu_wait


def test_a_run_without_danger_keeps_the_record_but_no_window() -> None:
    r = Result(scenario="spike", run_id="x")
    fill_steal(r, record())
    assert r.testbed.vcpu_wait and r.metrics.vcpu_steal_in_window_ms is None


SPINNERS = r"""
import ctypes, hashlib, os, sys, threading, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
libc = ctypes.CDLL(None)
data = bytes(4 << 20)
def spin(name):
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME, as qemu names its vCPU threads
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        hashlib.sha256(data).digest()  # hashes without the GIL: all three stay runnable
threads = [threading.Thread(target=spin, args=(f"CPU {i}/TEST",)) for i in range(3)]
for t in threads: t.start()
print("go", flush=True)
for t in threads: t.join()
"""


def test_the_sampler_sees_threads_wait_for_a_cpu(tmp_path: Path) -> None:
    """Three spinning "vCPU" threads on one host CPU: each runs about a third of the time
    and waits the rest, and the sampler reads that from the kernel's schedstat."""
    if not os.path.exists(f"/proc/{os.getpid()}/schedstat"):
        skip_or_fail("this kernel has no schedstat (CONFIG_SCHED_INFO)")
    beat = tmp_path / "heartbeat"
    proc = subprocess.Popen([sys.executable, "-c", SPINNERS, "1.5"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"go\n"
        with VcpuSampler(proc.pid, cpus=3, heartbeat=beat, every_s=0.01) as sampler:
            for n in range(1, 4):
                beat.write_text(f"{n} {time.monotonic_ns()}\n")
                time.sleep(0.3)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    w = sampler.record
    assert set(w.wait_ms) == {"cpu0", "cpu1", "cpu2"}
    assert len(w.t_ns) > 20
    share = w.steal_pct()
    # three threads on one CPU run at most a third of the time each, so each waits at
    # least two thirds (less the sampling's edges); anything else on that CPU (another
    # test worker, a guest) only adds to the wait, so there is no upper bound but 100
    assert share is not None and 55 < share < 99, share
    # the heartbeat carried this host's own clock: the mapping is (nearly) the identity;
    # file times are coarse (one jiffy), hence the tolerance
    offset = w.guest_minus_host_ns()
    assert offset is not None and abs(offset) < 20 * MS, offset
    assert len(w.clock_pairs) == 3


def test_a_kill_before_danger_measures_from_the_signal() -> None:
    """A killer that acts before the danger line: t0 is the fatal signal, as in
    fill_phases (the result's t0_ns stays None)."""
    w = record()
    offset = w.guest_minus_host_ns()
    assert offset is not None
    r = Result(scenario="spike", run_id="x")
    r.victims = [VictimOutcome(instance="hog", pid=7, cgroup="w/hog", died=True,
                               signal_t_ns=1_100 * MS + offset)]  # host 100 ms in
    r.metrics.time_to_kill_ms = 100.0  # gone at host 200 ms
    r.metrics.detect_ms = 0.0
    fill_steal(r, w)
    assert r.metrics.vcpu_steal_in_window_ms == pytest.approx(10.0 + 100.0)
    assert r.metrics.vcpu_steal_teardown_ms == r.metrics.vcpu_steal_in_window_ms
