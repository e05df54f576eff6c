"""oomguard, our own guarded killer: a TOML config per scenario, every guard switchable.

The workload's cgroups are the candidates, the victims are preferred, the harness,
killer and bystanders protected, and the killer's own cgroup is the one the agent
gave it. Every guard is on unless a killer option turns it off
(``guard_mlockall=false``), so the suite can run an ablation one guard at a time.
It runs under the suite's own interpreter (``python -m oomguard``), logs JSON lines
to stdout, and says ``"event":"ready"`` once every guard is applied.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from chaos.result import Event
from chaos.scenario import Params, Scenario, SpecError
from chaos.targets.base import (
    Launch,
    Layout,
    Target,
    TargetError,
    killer_event,
)
from chaos.targets.options import parse_options
from chaos.targets.scope import scope

READY = '"event":"ready"'
# Kept with the result. `mrelease` says whether the reap found the victim's memory (ok)
# or came after its exit had taken it (ESRCH): the reap's timing is what #7 tunes.
# `late` (at most one a second per step) says where a main loop that the watchdog had
# to cover for spent its time.
LOGGED = ("decision", "signal", "mrelease", "exit", "kill_timeout", "no_candidate", "error",
          "watchdog", "watchdog_waived", "trigger", "late")
SELECT = ("size", "growth", "oom_score")


@dataclass(frozen=True)
class OomguardOptions:
    interval_ms: int = 100
    mem_pct: float = 0.0  # act under this % MemAvailable; 0 = the scenario's danger line
    psi_stall_ms: float = 0.0  # PSI trigger on memory 'some' (0 = off) ...
    psi_window_ms: float = 1000.0  # ... over this window
    select: str = "size"
    kill_timeout_ms: int = 5000
    leader_first_ms: int = 20  # 0 = the whole group at once
    reap_after_ms: int = 50  # process_mrelease a victim still there this long after (0 = at once)
    reap_at_once_mib: int = 64  # ... but at once if it holds more small-page anon than this
    second_reaper: bool = True  # such a reap by two threads, the victim held until both end
    reap_beside_exit: bool = False  # ... the victim let go once the main reap has its memory
    hasten_victim: bool = True  # the victim's exit at SCHED_FIFO 1, off the reaping CPU
    dry_run: bool = False
    guard_mlockall: bool = True
    guard_prefault_heap: bool = True
    guard_pread_fds: bool = True
    guard_oom_score_adj: bool = True
    guard_realtime: bool = True
    guard_cgroup: bool = True
    guard_watchdog: bool = True


GUARDS = tuple(f.name.removeprefix("guard_") for f in fields(OomguardOptions)
               if f.name.startswith("guard_"))


class OomguardTarget(Target):
    name = "oomguard"

    def __init__(self, options: Params | None = None) -> None:
        super().__init__(options)
        self.opts = parse_options(OomguardOptions, self.options, self.name)
        o = self.opts
        if o.select not in SELECT:
            raise SpecError(f"killer oomguard: select must be one of {', '.join(SELECT)}, "
                            f"got {o.select!r}")
        if not 0 <= o.mem_pct <= 100:
            raise SpecError(f"killer oomguard: mem_pct must be between 0 and 100, got {o.mem_pct}")

    @staticmethod
    def command() -> list[str]:
        return [sys.executable, "-m", "oomguard"]

    def check(self) -> None:
        if importlib.util.find_spec("oomguard") is None:
            raise TargetError("killer oomguard: the oomguard package is not installed "
                              "(pip install -e . in the suite's virtualenv)")

    def version(self) -> str:
        """Read in this interpreter, which runs the daemon too: each extra interpreter
        start costs ~2.5 s in an emulated guest (three of them made oomguard ~7 s
        slower to get ready than earlyoom)."""
        try:
            from oomguard import __version__
        except ImportError:
            return ""
        return f"oomguard {__version__}"

    def config(self, scenario: Scenario, layout: Layout) -> str:
        o = self.opts
        sc = scope(scenario, layout)
        mem = o.mem_pct or scenario.danger.mem_available_pct
        out = [f"# oomguard config rendered by chaos for {scenario.id} ({scenario.run_id})",
               f"interval_ms = {o.interval_ms}", 'log = "-"', "", "[detect]",
               f"mem_available_min_pct = {mem:g}"]
        if o.psi_stall_ms:
            out.append(f"psi = [{{ file = {_s('/proc/pressure/memory')}, kind = \"some\", "
                       f"stall_ms = {o.psi_stall_ms:g}, window_ms = {o.psi_window_ms:g} }}]")
        out += ["", "[policy]",
                f"cgroups = {_list([str(layout.workload / '*')])}",
                f"select = {_s(o.select)}",
                f"prefer = {_list([str(p) for p in sc.victims])}",
                f"avoid = {_list([str(p) for p in sc.spared])}",
                f"protect = {_list([str(p) for p in sc.protected])}",
                f"protect_pids = [{', '.join(str(p) for p in layout.harness_pids)}]",
                f"kill_timeout_ms = {o.kill_timeout_ms}",
                f"leader_first_ms = {o.leader_first_ms}",
                f"reap_after_ms = {o.reap_after_ms}",
                f"reap_at_once_mib = {o.reap_at_once_mib}",
                f"second_reaper = {_b(o.second_reaper)}",
                f"reap_beside_exit = {_b(o.reap_beside_exit)}",
                f"hasten_victim = {_b(o.hasten_victim)}",
                f"dry_run = {_b(o.dry_run)}", "", "[guards]"]
        for guard in GUARDS:
            on = bool(getattr(o, f"guard_{guard}"))
            if guard == "cgroup":
                out.append(f"cgroup = {_s(str(layout.killer)) if on else 'false'}")
            else:
                out.append(f"{guard} = {_b(on)}")
        return "\n".join(out) + "\n"

    def launch(self, scenario: Scenario, layout: Layout) -> Launch:
        if layout.cgroup_version != 2:
            raise TargetError("killer oomguard: its cgroup mode needs cgroup v2 (memory.current, "
                              f"cgroup.kill); this testbed has v{layout.cgroup_version}")
        path = layout.workdir / "oomguard.toml"
        # prefault_heap wants glibc malloc for small objects; set here, the daemon does
        # not re-execute itself to set it (one interpreter start fewer).
        env = {"PYTHONMALLOC": "malloc"} if self.opts.guard_prefault_heap else {}
        return Launch(argv=[*self.command(), "--config", str(path)],
                      config_text=self.config(scenario, layout), config_path=path,
                      ready_pattern=READY, env=env)

    def validate(self, launch: Launch) -> None:
        """The daemon's own parser, in this interpreter (what `--check-config` runs)."""
        assert launch.config_path is not None
        from oomguard.config import ConfigError, load

        try:
            load(str(launch.config_path))
        except ConfigError as exc:
            raise TargetError(f"killer oomguard: config rejected: {exc}") from None

    def parse_line(self, line: str) -> Event | None:
        if not line.startswith("{"):
            return None
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(rec, dict) or rec.get("event") not in LOGGED:
            return None
        t_ns = rec.get("sent_ns") if rec.get("event") == "signal" else rec.get("t_ns")
        pids = rec.get("pids") or []
        pid = pids[0] if isinstance(pids, list) and pids and isinstance(pids[0], int) else 0
        target = str(rec.get("target", ""))
        return killer_event(line.strip(), pid=pid, t_ns=t_ns if isinstance(t_ns, int) else 0,
                            signal=9 if rec.get("event") == "signal" else 0,
                            comm=Path(target).name if target else "")


def _s(text: str) -> str:
    return json.dumps(text)  # a TOML basic string: JSON's escapes are valid TOML


def _b(on: bool) -> str:
    return "true" if on else "false"


def _list(items: list[str]) -> str:
    return "[" + ", ".join(_s(i) for i in items) + "]"
