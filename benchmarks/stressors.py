"""Stressor benchmark: start-up cost per runtime, and achieved versus requested rates.

Boots one VM per runtime (the default kernel, software emulation where KVM does
not boot) and runs ``chaos.stressors.signature`` cases in it: a tiny stressor
started several times (runtime start-up: to the process running, and to its
first progress line), then anonymous-memory ramps at several rates (achieved
rate as the stressor saw it and as AnonPages grew). Prints two tables.

Usage: python benchmarks/stressors.py [--kernel 6.12] [--runtime cgroup --runtime docker]
       [--starts 5] [--rate 20 --rate 50 --rate 100 --rate 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from chaos import kernels
from chaos.testbeds.vm import VmConfig, boot


def run_guest(kernel: kernels.Kernel, runtime: str, cases: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chaos-bench-", dir="/var/tmp") as tmp:
        share = Path(tmp)
        argv = [sys.executable, "-m", "chaos.stressors.signature", "--runtime", runtime,
                "--out", "/chaos-share/bench.json"]
        for c in cases:
            argv += ["--case", c]
        vm = boot(VmConfig(kernel=kernel), argv, share, 1800, name=f"chaos-bench-{runtime}")
        out = share / "bench.json"
        data: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {"cases": []}
        data["accel"], data["boot_ms"], data["failure"] = vm.accel, vm.boot_ms, vm.failure
        return data


def _slope_mib_s(case: dict[str, Any]) -> float:
    s = case["samples"]
    if len(s) < 2:
        return 0.0
    grown_mib = (s[-1]["meminfo.AnonPages"] - s[0]["meminfo.AnonPages"]) / 1024
    return grown_mib / (s[-1]["t"] - s[0]["t"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/stressors.py")
    ap.add_argument("--kernel", default=kernels.DEFAULT_KERNEL)
    ap.add_argument("--runtime", action="append", default=[])
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--rate", action="append", type=float, default=[])
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    a = ap.parse_args(argv)
    kernel = kernels.get(a.kernel)
    rates = a.rate or [20.0, 50.0, 100.0, 0.0]
    results = {}
    for runtime in a.runtime or ["cgroup", "docker"]:
        cases = [f"startup#{i}" for i in range(a.starts)] + [f"anon_rate:{r:g}" for r in rates]
        results[runtime] = run_guest(kernel, runtime, cases)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    print(f"kernel {kernel.release}, 1 GiB / 2 vCPU guest")
    print(f"\n{'runtime':8} {'accel':5} {'engine s':>8} {'image s':>7} {'start ms p50':>12} "
          f"{'max':>7} {'first line ms p50':>17} {'max':>7}  errors")
    for runtime, data in results.items():
        starts = [c for c in data["cases"] if c["case"].startswith("startup") and not c["error"]]
        st = [c["start_ms"] for c in starts] or [0.0]
        ready = [c["ready_ms"] for c in starts] or [0.0]
        errors = [c["error"][:60] for c in data["cases"] if c["error"]] + (
            [data["failure"]] if data.get("failure") else [])
        print(f"{runtime:8} {data.get('accel', '?'):5} {data.get('engine_start_s', 0):8.1f} "
              f"{data.get('image_s', 0):7.1f} {statistics.median(st):12.0f} {max(st):7.0f} "
              f"{statistics.median(ready):17.0f} {max(ready):7.0f}  {'; '.join(errors) or '-'}")
    print(f"\n{'runtime':8} {'requested MiB/s':>15} {'achieved (stressor)':>19} "
          f"{'achieved (AnonPages)':>20} {'ratio':>6}")
    for runtime, data in results.items():
        for c in data["cases"]:
            if not c["case"].startswith("anon_rate:") or c["error"]:
                continue
            want = c["params"]["rate_mib_s"]
            act = c["activity"]
            got = act.get("allocated_mib", 0) / max(act.get("elapsed_s", 0), 1e-3)
            kern = _slope_mib_s(c)
            ratio = f"{got / want:6.2f}" if want else "     -"
            print(f"{runtime:8} {want or 'max':>15} {got:19.1f} {kern:20.1f} {ratio}")
    print("\nrecommended default runtime in VMs: cgroup (no engine to start; the docker "
          "runtime pays the engine once and the container start-up for every stressor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
