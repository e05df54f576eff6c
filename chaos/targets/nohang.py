"""nohang (0.2): a complete config rendered per scenario, checked with ``--check``.

nohang refuses a config that lacks any key, so every key is written here: the
danger line becomes the soft (SIGTERM) memory threshold and half of it the hard
(SIGKILL) one; swap thresholds of 100 % make it act whatever the swap. The
workload's cgroups get a badness bonus, the harness's and bystanders' a malus
(``@BADNESS_ADJ_RE_CGROUP_V2``). Output is unbuffered so its lines carry time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chaos.result import Event
from chaos.scenario import Params, Scenario, SpecError
from chaos.targets.base import (
    Launch,
    Layout,
    Target,
    first_line,
    killer_event,
    run_checker,
)
from chaos.targets.options import parse_options
from chaos.targets.scope import cgroup_regex, scope

READY = "Monitoring has started!"
_VICTIM = re.compile(r"PID: (?P<pid>\d+), Name: (?P<comm>.*), badness: (?P<b>-?\d+)")
_SENDING = re.compile(r"Sending (?P<sig>SIG[A-Z]+) to the victim")
_RESULT = re.compile(r"OK; total response time: .*|The victim died in .*|"
                     r"The victim doesn't respond.*|Selected process died before.*|"
                     r"Cannot send a signal.*|The victim became a zombie.*")
SIGNALS = {"SIGTERM": 15, "SIGKILL": 9}

# Keys nohang requires that the suite has no opinion on: its packaged defaults.
FIXED = {
    "zram_checking_enabled": "False",
    "psi_path": "/proc/pressure/memory",
    "psi_metrics": "some_avg10",
    "psi_excess_duration": "5",
    "psi_post_action_delay": "15",
    "fill_rate_mem": "6000",
    "fill_rate_swap": "2000",
    "fill_rate_zram": "4000",
    "post_action_gui_notifications": "False",
    "hide_corrective_action_type": "False",
    "low_memory_warnings_enabled": "False",
    "warning_exe": "",
    "warning_threshold_min_mem": "20 %",
    "warning_threshold_min_swap": "25 %",
    "warning_threshold_max_zram": "45 %",
    "warning_threshold_max_psi": "100",
    "min_post_warning_delay": "60",
    "env_cache_time": "300",
    "soft_threshold_max_zram": "55 %",
    "hard_threshold_max_zram": "60 %",
    "ignore_positive_oom_score_adj": "False",
    "post_kill_exe": "",
    "min_badness": "1",
    "post_zombie_delay": "0.1",
    "victim_cache_time": "10",
    "exe_timeout": "20",
    "print_config_at_startup": "False",
    "print_mem_check_results": "False",
    "min_mem_report_interval": "60",
    "print_proc_table": "False",
    "extra_table_info": "None",
    "print_victim_status": "True",
    "print_victim_cmdline": "False",
    "max_victim_ancestry_depth": "3",
    "print_statistics": "True",
    "debug_psi": "False",
    "debug_gui_notifications": "False",
    "debug_sleep": "False",
    "debug_threading": "False",
    "separate_log": "False",
}


@dataclass(frozen=True)
class NohangOptions:
    mem_pct: float = 0.0  # soft threshold (SIGTERM), % of RAM; 0 = the scenario's danger line
    kill_mem_pct: float = 0.0  # hard threshold (SIGKILL); 0 = half of mem_pct
    swap_pct: float = 100.0  # free swap must also be under this %: 100 = ignore swap
    psi: bool = False  # also act on memory PSI (some avg10)
    psi_soft: float = 40.0
    psi_hard: float = 90.0
    min_sleep: float = 0.1  # seconds between checks when memory is short ...
    max_sleep: float = 1.0  # ... and when it is plentiful
    max_soft_exit_time: float = 5.0  # seconds a SIGTERMed victim gets before SIGKILL
    post_soft_action_delay: float = 3.0
    prefer_adj: int = 300  # badness bonus for the workload's cgroups
    avoid_adj: int = -1000  # badness malus for the harness, killer and bystanders


class NohangTarget(Target):
    name = "nohang"
    binary = "nohang"

    def __init__(self, options: Params | None = None) -> None:
        super().__init__(options)
        self.opts = parse_options(NohangOptions, self.options, self.name)
        o = self.opts
        if not 0 <= o.mem_pct <= 50 or not 0 <= o.kill_mem_pct <= 50:
            raise SpecError("killer nohang: mem_pct and kill_mem_pct must be between 0 and 50 "
                            "(nohang refuses more than half of RAM)")
        if not 0 <= o.swap_pct <= 100:
            raise SpecError(f"killer nohang: swap_pct must be between 0 and 100, got {o.swap_pct}")
        if not 0.01 <= o.min_sleep <= o.max_sleep:
            raise SpecError("killer nohang: need 0.01 <= min_sleep <= max_sleep")
        if o.post_soft_action_delay < 0.1:
            raise SpecError("killer nohang: post_soft_action_delay must be >= 0.1")

    def version(self) -> str:
        line = first_line(["nohang", "--version"])
        if line and "unknown" not in line:
            return line
        # The Debian package ships no version file; ask the package manager instead.
        pkg = first_line(["dpkg-query", "-W", "-f", "${Version}", "nohang"])
        return f"nohang {pkg}" if pkg else line

    def config(self, scenario: Scenario, layout: Layout) -> str:
        o = self.opts
        soft = o.mem_pct or scenario.danger.mem_available_pct
        hard = o.kill_mem_pct or soft / 2
        values = dict(FIXED)
        values.update({
            "psi_checking_enabled": str(o.psi),
            "soft_threshold_max_psi": f"{o.psi_soft:g}",
            "hard_threshold_max_psi": f"{o.psi_hard:g}",
            "soft_threshold_min_mem": f"{soft:g} %",
            "hard_threshold_min_mem": f"{hard:g} %",
            "soft_threshold_min_swap": f"{o.swap_pct:g} %",
            "hard_threshold_min_swap": f"{o.swap_pct:g} %",
            "min_sleep": f"{o.min_sleep:g}",
            "max_sleep": f"{o.max_sleep:g}",
            "max_soft_exit_time": f"{o.max_soft_exit_time:g}",
            "post_soft_action_delay": f"{o.post_soft_action_delay:g}",
        })
        lines = [f"# nohang config rendered by chaos for {scenario.id} ({scenario.run_id})"]
        lines += [f"{k} = {v}".rstrip() for k, v in values.items()]
        sc = scope(scenario, layout)
        for adj, paths in ((o.prefer_adj, sc.victims), (o.avoid_adj, (*sc.protected,
                                                                      *sc.spared))):
            regex = cgroup_regex(layout, paths)
            if regex and adj:
                lines.append(f"@BADNESS_ADJ_RE_CGROUP_V2 {adj} /// {regex}")
        return "\n".join(lines) + "\n"

    def launch(self, scenario: Scenario, layout: Layout) -> Launch:
        path = layout.workdir / "nohang.conf"
        return Launch(argv=["nohang", "--monitor", "--config", str(path)],
                      config_text=self.config(scenario, layout), config_path=path,
                      ready_pattern=READY,
                      env={"PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore"})

    def validate(self, launch: Launch) -> None:
        assert launch.config_path is not None
        run_checker(self.name, ["nohang", "--check", "--config", str(launch.config_path)],
                    ok="config is OK")

    def parse_line(self, line: str) -> Event | None:
        if m := _VICTIM.search(line):
            return killer_event(line.strip(), pid=int(m["pid"]), comm=m["comm"])
        if m := _SENDING.search(line):
            return killer_event(line.strip(), signal=SIGNALS.get(m["sig"], 0))
        if _RESULT.search(line):
            return killer_event(line.strip())
        return None
