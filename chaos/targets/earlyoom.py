"""earlyoom: flags from the scenario (thresholds, prefer/avoid, priority); kill lines parsed.

earlyoom has no config file: the danger line becomes ``-m`` (SIGTERM under it,
SIGKILL under half of it); ``-s 100,100`` makes it act whatever the swap, so with
or without swap it answers the same danger. It matches ``--prefer``/``--avoid``
against process names (comm), built from the scenario's instance names.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from chaos.result import Event
from chaos.scenario import Params, Scenario, SpecError
from chaos.targets.base import Launch, Layout, Target, killer_event
from chaos.targets.options import parse_options
from chaos.targets.scope import name_regex, scope

READY = "sending SIGTERM when mem <="
_SEND = re.compile(r'sending (?P<sig>SIG[A-Z]+) to process (?P<pid>\d+) uid \d+ "(?P<comm>[^"]*)"'
                   r"(?P<rest>.*)")
_ESCALATE = re.compile(r"escalating to SIGKILL after (?P<s>[\d.]+) seconds")
_EXITED = re.compile(r"process exited after (?P<s>[\d.]+) seconds")
_FAILED = re.compile(r"kill failed: .*|Could not find a process to kill.*")
SIGNALS = {"SIGTERM": 15, "SIGKILL": 9}


@dataclass(frozen=True)
class EarlyoomOptions:
    mem_pct: float = 0.0  # SIGTERM under this % available (0 = the scenario's danger line)
    kill_mem_pct: float = 0.0  # SIGKILL under this % (0 = half of mem_pct, earlyoom's default)
    swap_pct: float = 100.0  # free swap must also be under this %: 100 = ignore swap
    report_s: int = 1  # -r: memory report interval (its heartbeat in the log)
    prefer: str = ""  # regex; "" = the victims' instance names
    avoid: str = ""  # regex; "" = the harness and bystanders
    priority: bool = True  # -p: niceness -20 and oom_score_adj -100 for earlyoom itself
    extra: str = ""  # more flags, shell-quoted


class EarlyoomTarget(Target):
    name = "earlyoom"
    binary = "earlyoom"
    version_args = ("-v",)

    def __init__(self, options: Params | None = None) -> None:
        super().__init__(options)
        self.opts = parse_options(EarlyoomOptions, self.options, self.name)
        o = self.opts
        for key, value in (("mem_pct", o.mem_pct), ("kill_mem_pct", o.kill_mem_pct),
                           ("swap_pct", o.swap_pct)):
            if not 0 <= value <= 100:
                raise SpecError(f"killer earlyoom: {key} must be between 0 and 100, got {value}")
        if o.report_s < 0:
            raise SpecError(f"killer earlyoom: report_s must be >= 0, got {o.report_s}")
        try:
            self.extra = shlex.split(o.extra)
        except ValueError as exc:
            raise SpecError(f"killer earlyoom: cannot parse extra flags: {exc}") from None

    def flags(self, scenario: Scenario, layout: Layout) -> list[str]:
        o = self.opts
        mem = o.mem_pct or scenario.danger.mem_available_pct
        kill = o.kill_mem_pct or mem / 2
        sc = scope(scenario, layout)
        prefer = o.prefer or name_regex(sc.victim_names)
        avoid = o.avoid or name_regex(sc.protected_names)
        argv = ["-m", f"{mem:g},{kill:g}", "-s", f"{o.swap_pct:g},{o.swap_pct:g}",
                "-r", str(o.report_s)]
        if o.priority:
            argv.append("-p")
        if prefer:
            argv += ["--prefer", prefer]
        if avoid:
            argv += ["--avoid", avoid]
        return argv + self.extra

    def launch(self, scenario: Scenario, layout: Layout) -> Launch:
        return Launch(argv=["earlyoom", *self.flags(scenario, layout)], ready_pattern=READY)

    def parse_line(self, line: str) -> Event | None:
        if m := _SEND.search(line):
            return killer_event(line.strip(), pid=int(m["pid"]), comm=m["comm"],
                                signal=SIGNALS.get(m["sig"], 0))
        if _ESCALATE.search(line) or _EXITED.search(line) or _FAILED.search(line):
            return killer_event(line.strip())
        return None
