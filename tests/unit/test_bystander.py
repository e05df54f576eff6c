"""The bystander measures its worst stall, and only from the window the harness opens.

Real processes on the host (1 MiB each): a stall is made by stopping the process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def start() -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "chaos.probes.bystander", "--rss-mib", "1",
                          "--interval-ms", "10"], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "CHAOS_INSTANCE": "bystander-test"})
    assert p.stdout is not None
    ready = json.loads(p.stdout.readline())
    assert ready["event"] == "ready"
    return p


def stall(p: subprocess.Popen[str], seconds: float) -> None:
    p.send_signal(signal.SIGSTOP)
    time.sleep(seconds)
    p.send_signal(signal.SIGCONT)
    time.sleep(0.1)


def done(p: subprocess.Popen[str]) -> dict[str, float]:
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=10)
    assert p.returncode == 0
    line: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    assert line["event"] == "done"
    return line


@pytest.fixture
def bystander() -> object:
    p = start()
    yield p
    if p.poll() is None:
        p.kill()
        p.wait()


def test_a_stall_is_measured(bystander: subprocess.Popen[str]) -> None:
    stall(bystander, 0.4)
    assert done(bystander)["worst_stall_ms"] >= 300


def test_a_stall_before_the_window_opens_does_not_count(
        bystander: subprocess.Popen[str]) -> None:
    stall(bystander, 0.4)
    asked = time.monotonic_ns()
    bystander.send_signal(signal.SIGUSR1)
    time.sleep(0.2)
    line = done(bystander)
    assert line["worst_stall_ms"] < 300
    assert line["window_t_ns"] >= asked


def test_it_is_named_after_its_instance(bystander: subprocess.Popen[str]) -> None:
    """Killers that prefer or avoid by name (earlyoom) must see it as itself, not python3."""
    with open(f"/proc/{bystander.pid}/comm") as f:
        assert f.read().strip() == "bystander-test"
