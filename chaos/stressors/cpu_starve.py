"""CPU-quota starvation: a named cgroup (the killer's) squeezed while CPU hogs compete.

``prepare`` runs in the agent before the hogs start, because the target is
not the stressor's own cgroup: it writes the target's ``cpu.max`` (a tiny
quota) and moves every task in it to SCHED_IDLE (or nice 19). Then ``hogs``
busy loops take the CPUs. The target's ``cpu.stat`` ``throttled_usec`` and
its tasks' run delay (``/proc/PID/schedstat``) are the evidence; the hogs
report the CPU time they took and, where the target cgroup is visible to them
(``CHAOS_TARGET_CGROUP``), its throttling as they saw it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.procs import set_pdeathsig
from chaos.scenario import Params, SpecError
from chaos.stressors.common import (
    Needs,
    Reporter,
    argv_for,
    check_target,
    cpu_seconds,
    existing_target,
    main_for,
    parse_params,
    require,
    subtree_ids,
    until,
)

NAME = "cpu_starve"
POLICIES = ("idle", "batch", "nice", "none")


@dataclass(frozen=True)
class CpuStarveParams:
    target: str = "killer"  # cgroup to starve, relative to the scenario root
    quota_pct: float = 2.0  # its cpu.max quota, % of one CPU; 0 = leave cpu.max alone
    period_us: int = 100_000
    policy: str = "idle"  # idle = SCHED_IDLE, batch = SCHED_BATCH + nice 19, nice = nice 19
    hogs: int = 0  # busy loops; 0 = one per CPU
    duration_s: float = 0.0  # 0 = until stopped


def parse(raw: Params) -> CpuStarveParams:
    p = parse_params(CpuStarveParams, raw, NAME)
    check_target(p.target, NAME)
    require(0 <= p.quota_pct <= 100 * 1024, NAME, f"quota_pct must be >= 0, got {p.quota_pct:g}")
    require(1000 <= p.period_us <= 1_000_000, NAME,
            f"period_us must be 1000..1000000, got {p.period_us}")
    require(p.quota_pct == 0 or p.quota_pct * p.period_us / 100 >= 1000, NAME,
            "quota_pct * period_us is under cpu.max's 1 ms minimum quota")
    require(p.policy in POLICIES, NAME, f"policy must be one of {', '.join(POLICIES)}")
    require(0 <= p.hogs <= 256, NAME, f"hogs must be 0..256, got {p.hogs}")
    require(p.duration_s >= 0, NAME, "duration_s must be >= 0")
    return p


def needs(p: CpuStarveParams) -> Needs:
    return Needs(target_cgroup=p.target, cpu_controller=True)


def prepare(p: CpuStarveParams, cgroup_root: Path) -> dict[str, str]:
    """Squeeze the target: its cpu.max and its tasks' scheduling policy."""
    target = existing_target(cgroup_root, p.target, NAME)
    if p.quota_pct:
        quota = int(p.quota_pct * p.period_us / 100)
        try:
            (target / "cpu.max").write_text(f"{quota} {p.period_us}")
        except OSError as exc:
            raise SpecError(f"stressor {NAME}: cannot set cpu.max of {p.target}: "
                            f"{exc.strerror} (cpu controller missing?)") from None
    for tid in subtree_ids(target, "cgroup.threads"):
        _deprioritise(tid, p.policy)
    return {"CHAOS_TARGET_CGROUP": str(target)}


def _deprioritise(tid: int, policy: str) -> None:
    try:
        if policy == "idle":
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        elif policy == "batch":
            os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
        if policy in ("batch", "nice"):
            os.setpriority(os.PRIO_PROCESS, tid, 19)
    except OSError:
        pass  # the task is gone


def command(p: CpuStarveParams) -> list[str]:
    return argv_for("chaos.stressors.cpu_starve", p)


def _busy(end: float) -> None:
    set_pdeathsig(signal.SIGKILL)
    x = 0
    while time.monotonic() < end:
        for _ in range(100_000):
            x += 1
    os._exit(0)


def throttled(cgroup: str) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        for line in Path(cgroup, "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key in ("usage_usec", "nr_throttled", "throttled_usec"):
                out[f"target_{key}"] = float(value)
    except (OSError, ValueError):
        pass
    return out


def run(p: CpuStarveParams) -> None:
    n = p.hogs or len(os.sched_getaffinity(0))
    end = until(p.duration_s)
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            _busy(end)
        pids.append(pid)
    rep = Reporter(0.25)
    rep.tick("start", force=True, hogs=n)
    target = os.environ.get("CHAOS_TARGET_CGROUP", "")
    alive = set(pids)
    while alive:
        pid, _ = os.waitpid(-1, os.WNOHANG)
        if pid:
            alive.discard(pid)
            continue
        fields = {"hogs_cpu_s": _children_cpu(alive) + cpu_seconds(),
                  **(throttled(target) if target else {})}
        rep.emit("hogging", fields)
        time.sleep(0.05)
    rep.tick("done", force=True, hogs_cpu_s=cpu_seconds())


def _children_cpu(pids: set[int]) -> float:
    """CPU seconds of running children (utime + stime from /proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return round(total, 3)


def main(argv: list[str] | None = None) -> int:
    return main_for(CpuStarveParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
