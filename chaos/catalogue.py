"""The scenario catalogue: named scenarios, each for one kind of trouble.

A builder turns a killer spec into a complete Scenario; the plugin crosses
each entry with killer x kernel x runtime. Names double as pytest markers,
so ``-m spike`` and ``-k spike`` select the same tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chaos.scenario import BystanderSpec, DangerSpec, KillerSpec, Scenario, StressorSpec


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    family: str  # stressor family, for the smoke selection
    build: Callable[[KillerSpec, str], Scenario]  # (killer, runtime) -> scenario
    smoke: bool = False  # the family's representative in the CI-sized selection


def _anon(killer: KillerSpec, runtime: str, name: str, rate: float, deadline: float) -> Scenario:
    return Scenario(
        id=name, run_id="unset", killer=killer,
        stressors=(StressorSpec(name="anon_hog", instance="hog", cgroup="workload/hog",
                                params={"size_mib": 8192, "rate_mib_s": rate, "chunk_mib": 8},
                                runtime=runtime),),
        bystanders=(BystanderSpec(),),
        danger=DangerSpec(mem_available_pct=10.0),
        deadline_s=deadline,
    )


def spike(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    return _anon(killer, runtime, "spike", rate=0.0, deadline=60.0)


def ramp(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    return _anon(killer, runtime, "ramp", rate=200.0, deadline=90.0)


CATALOGUE: dict[str, Entry] = {
    "spike": Entry("spike", "an anonymous-memory hog allocating as fast as it can", "anon", spike,
                   smoke=True),
    "ramp": Entry("ramp", "an anonymous-memory hog growing at a steady 200 MiB/s", "anon", ramp),
}


def get(name: str) -> Entry:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r} (available: {', '.join(CATALOGUE)})") from None
