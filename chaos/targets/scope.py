"""Who a killer may kill and who it must spare, in the terms killers understand.

Every adapter renders the same intent from here (cgroup paths for oomd, nohang and
oomguard; process-name regexes for earlyoom), so the scenario says it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from chaos.scenario import Scenario
from chaos.targets.base import Layout

HARNESS_COMMS = ("chaos-agent",)


@dataclass(frozen=True)
class Scope:
    victims: tuple[Path, ...]  # cgroups of the stressors the scenario expects to die
    spared: tuple[Path, ...]  # workload cgroups that should live (non-victim stressors)
    protected: tuple[Path, ...]  # harness, killer, bystanders: never
    victim_names: tuple[str, ...]  # instance names (= process names if a stressor sets comm)
    protected_names: tuple[str, ...]


def scope(scenario: Scenario, layout: Layout) -> Scope:
    victims = tuple(layout.workload / s.instance for s in scenario.stressors if s.victim)
    spared = tuple(layout.workload / s.instance for s in scenario.stressors if not s.victim)
    bystanders = tuple(layout.bystanders / b.instance for b in scenario.bystanders)
    return Scope(
        victims=victims, spared=spared,
        protected=(layout.harness, layout.killer, *bystanders),
        victim_names=tuple(s.instance for s in scenario.stressors if s.victim),
        protected_names=(*HARNESS_COMMS, *(b.instance for b in scenario.bystanders)),
    )


_ERE_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\])")


def ere_escape(text: str) -> str:
    """Escape for POSIX extended regexes (earlyoom's regcomp) and Python's alike."""
    return _ERE_SPECIAL.sub(r"\\\1", text)


def name_regex(names: tuple[str, ...]) -> str:
    """An anchored regex matching exactly these names ('' for none)."""
    if not names:
        return ""
    return "^(" + "|".join(ere_escape(n) for n in names) + ")$"


def cgroup_regex(layout: Layout, paths: tuple[Path, ...]) -> str:
    """A regex for these cgroups (and their children) as /proc/PID/cgroup shows them."""
    if not paths:
        return ""
    rels = "|".join(ere_escape("/" + layout.relative(p)) for p in paths)
    return f"^({rels})(/|$)"
