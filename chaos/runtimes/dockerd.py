"""A private Docker engine for a testbed that has none (the VM guests).

Started by the agent only when a scenario uses the docker runtime, inside
the harness cgroup (so it is protected like the harness and is not workload),
with everything on tmpfs and nothing touching the network: vfs storage,
``--iptables=false --bridge=none``, cgroupfs driver. It dies with the agent
(parent-death signal) and its containers are removed before it stops.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from chaos.procs import Child, spawn
from chaos.scenario import SpecError

ROOT = Path("/run/chaos-docker")
SOCKET = ROOT / "docker.sock"
API_VERSION = "1.41"  # Debian 12's engine (20.10); pinned: auto-detection needs a live daemon
START_TIMEOUT_S = 240.0  # measured ~4.5 s idle, ~15-30 s on a loaded host under emulation
# Every later call: a healthy engine answers a create/wait/remove in well under 5 s even in
# an emulated guest under pressure; no answer in this long is an engine that stopped.
CALL_TIMEOUT_S = 30.0
CALL_TIMEOUT_ENV = "CHAOS_DOCKER_CALL_TIMEOUT_S"  # overrides it (passed into VM guests)


def call_timeout_s() -> float:
    """The engine-call deadline: ``CHAOS_DOCKER_CALL_TIMEOUT_S`` or 30 s. A shorter one finds
    a stopped engine sooner (CI's frozen-engine test); a longer one suits a host so loaded
    that a healthy engine is slower than 30 s."""
    raw = os.environ.get(CALL_TIMEOUT_ENV, "")
    if not raw:
        return CALL_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 3600.0:
        raise SpecError(f"{CALL_TIMEOUT_ENV} must be seconds in 1..3600, got {raw!r}")
    return value


def argv(root: Path = ROOT) -> list[str]:
    return ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "dockerd.pid"), "-H", f"unix://{root / 'docker.sock'}",
            "--storage-driver", "vfs", "--iptables=false", "--ip6tables=false",
            "--bridge=none", "--userland-proxy=false", "--exec-opt",
            "native.cgroupdriver=cgroupfs", "--log-level", "warn"]


def client(socket: Path, timeout_s: float = 0.0) -> Any:
    import docker

    return docker.DockerClient(base_url=f"unix://{socket}", version=API_VERSION,
                               timeout=int(timeout_s or call_timeout_s()))


class PrivateDaemon:
    """dockerd (and the containerd it starts) for one agent run."""

    def __init__(self, cgroup: Path | None, log: Path) -> None:
        self.cgroup = cgroup
        self.log = log
        self.child: Child | None = None
        self.start_s = 0.0

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Any:
        """Start the engine and wait for it to answer. One more start if it exits at
        start-up: on a loaded emulated host dockerd has given up on its own containerd
        ("timeout waiting for containerd to start"), which then came up fine."""
        ROOT.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        self.child = spawn("dockerd", argv(), self.cgroup, log_path=self.log)
        deadline = t0 + timeout_s
        retried = False
        while time.monotonic() < deadline:
            if self.child.popen.poll() is not None:
                self.child.drain()  # its last words, read by another thread
                said = " | ".join(list(self.child.lines)[-3:])
                self.child.close()
                if retried:
                    self.child = None
                    raise SpecError("dockerd exited at start-up (twice): " + said)
                retried = True
                self.child = spawn("dockerd", argv(), self.cgroup, log_path=self.log)
                continue
            if SOCKET.exists():
                try:
                    c = client(SOCKET)
                    c.ping()
                    self.start_s = round(time.monotonic() - t0, 3)
                    return c
                except Exception:  # noqa: BLE001 - not up yet, whatever the error
                    pass
            time.sleep(0.1)
        self.stop()
        raise SpecError(f"dockerd did not answer within {timeout_s:.0f} s")

    def stop(self, grace_s: float = 15.0) -> None:
        if self.child is not None:
            self.child.stop(grace_s=grace_s)
            self.child.close()
            self.child = None
