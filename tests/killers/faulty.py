"""A deliberately faulty userspace OOM killer, one fault per --mode, for verdict tests.

Run by the suite as an ``exec:`` target inside the testbed. It watches
MemAvailable and, once it falls under --line percent, behaves per mode:

  healthy     kill the largest workload cgroup at once (cgroup.kill)
  never       do nothing
  late        wait --delay-s, then kill like healthy
  bystander   kill the bystanders instead of the workload
  everything  kill the workload and the bystanders
  allocating  allocate and touch --alloc-mib per poll (a killer that faults under pressure),
              and kill only after --delay-s
  exits       exit with status 3 as soon as the danger line is crossed
  starved     put itself under cpu.max --cpu-max and spin (a CPU-bound loop), kill late
  stops-harness  SIGSTOP the chaos agent (its ancestor) for --stop-s, SIGCONT it, then kill:
              the harness is blind around danger, whatever the host's speed
  stops-engine  SIGSTOP the guest's private Docker engine (its pid file), then kill: the
              engine stops answering in the middle of the run

It prints "ready" once armed, and one line per action.
"""

from __future__ import annotations

import argparse
import mmap
import os
import signal
import sys
import time
from pathlib import Path


def mem_available_pct() -> float:
    total = avail = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1])
        elif line.startswith("MemAvailable:"):
            avail = int(line.split()[1])
    return 100.0 * avail / total if total else 100.0


def largest_cgroup(parent: Path) -> Path | None:
    best, size = None, -1
    for child in parent.iterdir():
        current = child / "memory.current"
        if current.exists() and int(current.read_text()) > size:
            best, size = child, int(current.read_text())
    return best


def agent_pid() -> int:
    """The nearest ancestor named chaos-agent (the exec: target may sit under a shell)."""
    pid = os.getppid()
    while pid > 1:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "chaos-agent":
            return pid
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    raise SystemExit("faulty: no chaos-agent ancestor")


def kill(cgroup: Path, what: str) -> None:
    (cgroup / "cgroup.kill").write_text("1")
    print(f"killed {what} {cgroup}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", required=True)
    ap.add_argument("--workload", type=Path, required=True)
    ap.add_argument("--bystanders", type=Path, required=True)
    ap.add_argument("--killer", type=Path, required=True)
    ap.add_argument("--line", type=float, default=10.0)
    ap.add_argument("--delay-s", type=float, default=3.0)
    ap.add_argument("--alloc-mib", type=int, default=8)
    ap.add_argument("--cpu-max", default="1000 100000")
    ap.add_argument("--stop-s", type=float, default=3.0)
    a = ap.parse_args()
    if a.mode == "starved":
        (a.killer / "cpu.max").write_text(a.cpu_max)
    print("ready", flush=True)
    danger_at = None
    held: list[mmap.mmap] = []
    while True:
        if a.mode == "starved":
            end = time.monotonic() + 0.05
            while time.monotonic() < end:  # a CPU-bound detection loop
                pass
        else:
            time.sleep(0.01)
        if a.mode == "allocating":
            m = mmap.mmap(-1, a.alloc_mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            m.write(b"\1" * (a.alloc_mib << 20))
            held.append(m)
            if len(held) > 4:
                held.pop(0).close()
        if danger_at is None and mem_available_pct() < a.line:
            danger_at = time.monotonic()
            print(f"danger at {danger_at:.3f}", flush=True)
        if danger_at is None:
            continue
        waited = time.monotonic() - danger_at
        if a.mode == "never":
            continue
        if a.mode == "exits":
            print("exiting under pressure", flush=True)
            return 3
        if a.mode == "stops-harness":
            agent = agent_pid()
            os.kill(agent, signal.SIGSTOP)
            time.sleep(a.stop_s)
            os.kill(agent, signal.SIGCONT)
            print(f"stopped the agent {agent} for {a.stop_s} s", flush=True)
        if a.mode == "stops-engine":
            engine = int(Path("/run/chaos-docker/dockerd.pid").read_text())
            os.kill(engine, signal.SIGSTOP)
            print(f"stopped the Docker engine {engine}", flush=True)
        if a.mode in ("late", "allocating", "starved") and waited < a.delay_s:
            continue
        if a.mode in ("bystander", "everything"):
            for b in list(a.bystanders.iterdir()):
                if b.is_dir():
                    kill(b, "bystander")
        if a.mode != "bystander":
            victim = largest_cgroup(a.workload)
            if victim is not None:
                kill(victim, "workload")
        while True:  # one kill per run: stay alive, idle
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
