"""Boot-to-agent-ready time and whole-scenario wall time of the VM testbed.

Prints a table; not a test. For each kernel and each usable accelerator
(software emulation always; KVM only where a guest really boots under it):
  console  qemu start -> first console output
  stage2   qemu start -> the guest's userspace runs (overlay root mounted)
  agent    qemu start -> the agent has imported and read its spec
  scenario wall time of the `spike` scenario with the kernel baseline
Medians (and max) over --runs boots. Run it on an otherwise idle machine:
emulated vCPUs are host threads.

    python benchmarks/boot.py --kernel 6.1 --kernel 6.12 --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chaos import catalogue, kernels
from chaos.scenario import KillerSpec
from chaos.session import Session, TestbedChoice
from chaos.testbeds.vm import VmConfig, boot, probe_kvm

AGENT_PROBE = [sys.executable, "-c",
               "import chaos.agent, sys; print('chaos-agent: start', flush=True)"]


def median_max(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values) / 1000:.2f} s (max {max(values) / 1000:.2f})"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", action="append", default=[])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-scenario", action="store_true")
    a = ap.parse_args()
    rows: list[tuple[str, ...]] = []
    for spec in a.kernel or [kernels.DEFAULT_KERNEL]:
        kernel = kernels.get(spec)
        accels = ["tcg"]
        if Path("/dev/kvm").exists() and probe_kvm(VmConfig(kernel=kernel)) == "kvm":
            accels.append("kvm")
        for accel in accels:
            ms: dict[str, list[float]] = {"console": [], "stage2": [], "marker": []}
            for _ in range(a.runs):
                with tempfile.TemporaryDirectory() as tmp:
                    run = boot(VmConfig(kernel=kernel), AGENT_PROBE, Path(tmp), 120, accel=accel,
                               watch_for="chaos-agent: start")
                for k in ms:
                    if k in run.milestones:
                        ms[k].append(run.milestones[k])
            walls: list[float] = []
            if not a.no_scenario:
                with tempfile.TemporaryDirectory() as tmp, Session(Path(tmp)) as session:
                    for _ in range(a.runs):
                        t = time.monotonic()
                        session.run(catalogue.spike(KillerSpec(name="kernel")),
                                    TestbedChoice(kind="vm", kernel=kernel.package))
                        walls.append((time.monotonic() - t) * 1000)
            rows.append((kernel.release, accel, median_max(ms["console"]),
                         median_max(ms["stage2"]), median_max(ms["marker"]), median_max(walls)))
    header = ("kernel", "accel", "console", "stage2", "agent ready", "spike scenario")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
