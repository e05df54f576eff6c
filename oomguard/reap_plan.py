"""When a killed victim's memory is reaped (process_mrelease), decided from its size.

On 6.1 anonymous mappings are not THP-aligned: a hog's exit frees ~36 000 small pages
one by one, and a reap beside it at once took `spike` from 127 to 82 ms and `pagecache`
from 91 to 62 (p50, 4 runs each). On 6.12 the same hog is all huge pages, which its
exit frees fast, and a reap only contended: such a victim gets ``reap_after_ms`` to free
its own memory first. Two reaps at once with the victim held on oomguard's CPU from
before its signal (``second_reaper``) need the size known before the kill: the hold
starts before the signal.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Policy
from .guards import MIB


@dataclass(frozen=True, slots=True)
class ReapPlan:
    how: str  # "together": two reaps, victim held | "at_once": one, beside it | "later"
    after_ns: int = 0  # "later": how long the victim may free its own memory first


def reap_plan(policy: Policy, small_anon: int | None, before_kill: bool) -> ReapPlan:
    """The plan for a victim with ``small_anon`` bytes of anonymous memory in small pages
    (None: not known). ``before_kill``: the size is a tick's estimate, read before the
    signal, so the victim can still be held for two reaps."""
    many = small_anon is not None and small_anon > policy.reap_at_once_mib * MIB
    if policy.reap_at_once_mib and many:
        together = before_kill and policy.second_reaper
        return ReapPlan("together" if together else "at_once")
    return ReapPlan("later", policy.reap_after_ms * 1_000_000)
