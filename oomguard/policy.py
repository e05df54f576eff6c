"""Victim selection: pure logic over a table of candidates (no I/O, so it is easy to test)."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TIERS = ("prefer", "normal", "avoid")


@dataclass(slots=True)
class Candidate:
    """Something killable: a cgroup (pid 0) or a process, with its latest sample."""

    key: str  # cgroup path, or "pid:<n>"
    name: str  # what prefer/avoid/protect match: cgroup path or process comm
    pid: int = 0
    size: int = 0  # bytes: memory.current above protection, or RSS
    growth: int = 0  # bytes since the previous refresh (0 when first seen)
    oom_score: int = 0
    oom_score_adj: int = 0
    starttime: int = 0  # process start (clock ticks), guards against pid reuse

    def as_log(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.key, "name": self.name, "size": self.size}
        out["growth"] = self.growth
        out["oom_score"] = self.oom_score
        if self.pid:
            out["pid"] = self.pid
        return out


@dataclass(frozen=True, slots=True)
class Rules:
    select: str = "size"
    prefer: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    protect: tuple[str, ...] = ()
    protect_pids: frozenset[int] = frozenset()
    self_pid: int = 0


@dataclass(slots=True)
class Ranked:
    cand: Candidate
    tier: str = "normal"
    excluded: str = ""  # why it may never be chosen ("" = eligible)

    def as_log(self) -> dict[str, object]:
        out = self.cand.as_log()
        out["excluded" if self.excluded else "tier"] = self.excluded or self.tier
        return out


@dataclass(slots=True)
class Decision:
    chosen: Ranked | None
    ranked: list[Ranked]  # eligible candidates, best first
    excluded: list[Ranked]
    reason: str


def matches(patterns: Iterable[str], name: str) -> str:
    """The first glob matching the name or its last path component, else ''."""
    base = name.rsplit("/", 1)[-1]
    for pat in patterns:
        if fnmatch.fnmatchcase(name, pat) or fnmatch.fnmatchcase(base, pat):
            return pat
    return ""


def exclusion(c: Candidate, rules: Rules) -> str:
    """Why a candidate may never be killed, or '' if it may."""
    if c.pid:
        if c.pid == rules.self_pid:
            return "self"
        if c.pid == 1:
            return "init"
        if c.pid in rules.protect_pids:
            return "protect_pids"
        if c.oom_score_adj == -1000:
            return "oom_score_adj=-1000"
    pat = matches(rules.protect, c.name)
    return f"protect:{pat}" if pat else ""


def tier(c: Candidate, rules: Rules) -> str:
    if matches(rules.prefer, c.name):
        return "prefer"
    if matches(rules.avoid, c.name):
        return "avoid"
    return "normal"


def metric(c: Candidate, select: str) -> int:
    if select == "growth":
        return c.growth
    if select == "oom_score":
        return c.oom_score
    return c.size


def rank(
    cands: Iterable[Candidate], rules: Rules, extra: Mapping[str, str] | None = None
) -> Decision:
    """Order candidates: tier (prefer, normal, avoid), then the select metric, then size.

    `extra` maps candidate keys to exclusion reasons found outside this pure
    function (e.g. a cgroup that holds a protected pid).
    """
    eligible: list[Ranked] = []
    excluded: list[Ranked] = []
    for c in cands:
        why = exclusion(c, rules) or (extra or {}).get(c.key, "")
        if why:
            excluded.append(Ranked(c, excluded=why))
        else:
            eligible.append(Ranked(c, tier(c, rules)))
    eligible.sort(
        key=lambda r: (
            TIERS.index(r.tier),
            -metric(r.cand, rules.select),
            -r.cand.size,
            r.cand.key,
        )
    )
    if not eligible:
        return Decision(None, [], excluded, f"no eligible candidate ({len(excluded)} excluded)")
    best = eligible[0]
    peers = sum(1 for r in eligible if r.tier == best.tier)
    what = {"size": "size", "growth": "growth", "oom_score": "oom_score"}[rules.select]
    reason = (
        f"select={rules.select}: highest {what} ({metric(best.cand, rules.select)}) "
        f"of {peers} {best.tier} candidate(s)"
    )
    if best.tier == "prefer":
        reason += f"; preferred by '{matches(rules.prefer, best.cand.name)}'"
    elif best.tier == "avoid":
        reason += "; only avoided candidates left"
    return Decision(best, eligible, excluded, reason)
