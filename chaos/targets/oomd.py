"""oomd (facebookincubator, 0.5): a JSON config per scenario, checked before use.

One ruleset: any of the detector groups fires (system memory PSI over
``pressure_pct``, system memory use over ``memory_pct`` of the total, or, when
``workload_above`` is set, the workload cgroup over that size) ->
``kill_by_memory_size_or_growth`` over the scenario's workload cgroups. oomd's
own runtime files stay in the workdir (``--runtime-dir``) and its kill log goes to
a file there (``--kmsg-override``) that is kept with its output.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.result import Event
from chaos.scenario import Params, Scenario, SpecError
from chaos.targets.base import Launch, Layout, Target, TargetError, killer_event, run_checker
from chaos.targets.options import parse_options

READY = "Running oomd"
_SIZE_RE = re.compile(r"^\d+(\.\d+)?[KMGT]?$|^\d+(\.\d+)?%$")
_PICKED = re.compile(r'Picked "(?P<cg>[^"]+)" \((?P<mb>\d+)MB\)')
_KILLED = re.compile(r"Killed (?P<n>\d+): (?P<pids>.*)")
_PID = re.compile(r"(?P<pid>\d+)\((?P<comm>[^)]*)\)")
_KILL_LOG = re.compile(r"oomd kill: .*")
_TRYING = re.compile(r"Trying to kill (?P<cg>\S+)")
_FIRED = re.compile(r"DetectorGroup=.* has fired|returned CONTINUE|Caught exception.*")


@dataclass(frozen=True)
class OomdOptions:
    interval: int = 1  # --interval, seconds between event-loop ticks
    pressure_pct: float = 10.0  # pressure_above "/": memory PSI (10 s avg) over this; 0 = off
    memory_pct: float = 0.0  # memory_above "/": use over this % of RAM; 0 = 100 - danger line
    workload_above: str = ""  # memory_above on the workload cgroup, e.g. "200M"; "" = off
    duration: int = 0  # seconds a detector must hold before it fires
    post_action_delay: int = 15  # seconds the ruleset pauses after a kill (oomd's default)
    dry: bool = False


class OomdTarget(Target):
    name = "oomd"
    binary = "oomd"

    def __init__(self, options: Params | None = None) -> None:
        super().__init__(options)
        self.opts = parse_options(OomdOptions, self.options, self.name)
        o = self.opts
        if o.interval < 1:
            raise SpecError(f"killer oomd: interval must be >= 1 s, got {o.interval}")
        if not 0 <= o.pressure_pct <= 100 or not 0 <= o.memory_pct <= 100:
            raise SpecError("killer oomd: pressure_pct and memory_pct must be between 0 and 100")
        if o.workload_above and not _SIZE_RE.match(o.workload_above):
            raise SpecError(f"killer oomd: workload_above {o.workload_above!r} is not a size "
                            "like 200M, 1.5G or 30%")
        if o.duration < 0 or o.post_action_delay < 0:
            raise SpecError("killer oomd: duration and post_action_delay must be >= 0")

    def config(self, scenario: Scenario, layout: Layout) -> dict[str, Any]:
        """The oomd config for this scenario, as JSON data."""
        o = self.opts
        memory_pct = o.memory_pct or 100 - scenario.danger.mem_available_pct
        workload = layout.relative(layout.workload)
        duration = str(o.duration)
        groups: list[list[Any]] = []
        if o.pressure_pct:
            groups.append(["system memory pressure", _plugin(
                "pressure_above", cgroup="/", resource="memory",
                threshold=f"{o.pressure_pct:g}", duration=duration)])
        groups.append(["system memory use", _plugin(
            "memory_above", cgroup="/", threshold=f"{memory_pct:g}%", duration=duration)])
        if o.workload_above:
            groups.append(["workload memory use", _plugin(
                "memory_above", cgroup=workload, threshold=o.workload_above, duration=duration)])
        action = _plugin("kill_by_memory_size_or_growth", cgroup=f"{workload}/*",
                         post_action_delay=str(o.post_action_delay),
                         dry="true" if o.dry else "false")
        return {"rulesets": [{"name": f"chaos {scenario.run_id}", "detectors": groups,
                              "actions": [action]}]}

    def paths(self, layout: Layout) -> tuple[Path, Path, Path]:
        """Config file, runtime directory, kill log."""
        return (layout.workdir / "oomd.json", layout.workdir / "oomd-run",
                layout.workdir / "oomd-kills.log")

    def launch(self, scenario: Scenario, layout: Layout) -> Launch:
        if layout.cgroup_version != 2:
            raise TargetError("killer oomd: needs cgroup v2 with the memory controller "
                              f"(this testbed has v{layout.cgroup_version})")
        conf, runtime, kills = self.paths(layout)
        runtime.mkdir(parents=True, exist_ok=True)
        argv = ["oomd", "--config", str(conf), "--interval", str(self.opts.interval),
                "--cgroup-fs", str(layout.cgroup_mount), "--runtime-dir", str(runtime),
                "--kmsg-override", str(kills)]
        return Launch(argv=argv, config_text=json.dumps(self.config(scenario, layout), indent=2),
                      config_path=conf, ready_pattern=READY, side_log=kills)

    def validate(self, launch: Launch) -> None:
        assert launch.config_path is not None
        argv = launch.argv
        runtime = argv[argv.index("--runtime-dir") + 1]
        kills = argv[argv.index("--kmsg-override") + 1]
        run_checker(self.name, ["oomd", "--check-config", str(launch.config_path),
                                "--runtime-dir", runtime, "--kmsg-override", kills])

    def parse_line(self, line: str) -> Event | None:
        if m := _KILLED.search(line):
            pids = _PID.findall(m["pids"])
            pid, comm = (int(pids[0][0]), pids[0][1]) if pids else (0, "")
            return killer_event(line.strip(), pid=pid, comm=comm, signal=9)
        if any(r.search(line) for r in (_PICKED, _TRYING, _KILL_LOG, _FIRED)):
            return killer_event(line.strip())
        return None


def _plugin(name: str, **args: str) -> dict[str, Any]:
    return {"name": name, "args": args}
