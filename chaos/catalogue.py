"""The scenario catalogue: named scenarios, each for what it breaks.

A builder turns a killer spec and a runtime into a complete Scenario; the
plugin crosses each entry with killer x kernel x runtime. Names double as
pytest markers, so ``-m throttle`` and ``-k throttle`` select the same tests.

Every scenario has one victim: an anonymous-memory hog in ``workload/hog``
that a good killer must kill. The other stressors make the trouble the
scenario is named for and are not expected to die (killing them is
WRONG_VICTIM or OVERKILL). Sizes are for the default 1 GiB guest; the hog
asks for more than any guest has, so without a kill the kernel OOM killer
acts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chaos.scenario import (
    BystanderSpec,
    DangerSpec,
    KillerSpec,
    Params,
    Scenario,
    StressorSpec,
)


@dataclass(frozen=True)
class Entry:
    name: str
    description: str
    family: str  # the kind of trouble; the smoke selection takes one entry per family
    build: Callable[[KillerSpec, str], Scenario]  # (killer, runtime) -> scenario
    smoke: bool = False  # the family's representative in the CI-sized selection
    vm_only: bool = False  # needs what only the VM testbed has (a NIC the host can flood)


def hog(runtime: str, rate_mib_s: float = 0.0, **extra: float | int) -> StressorSpec:
    """The victim: an anonymous-memory hog asking for more than the guest has."""
    params: Params = {"size_mib": 8192, "rate_mib_s": rate_mib_s, "chunk_mib": 8}
    params.update(extra)
    return StressorSpec(name="anon_hog", instance="hog", cgroup="workload/hog", params=params,
                        runtime=runtime)


def trouble(name: str, instance: str, runtime: str, **params: float | int | str) -> StressorSpec:
    """A stressor that makes the trouble but is not the victim."""
    return StressorSpec(name=name, instance=instance, cgroup=f"workload/{instance}",
                        params=dict(params), victim=False, runtime=runtime)


def scenario(name: str, killer: KillerSpec, *stressors: StressorSpec, deadline_s: float = 90.0,
             danger_pct: float = 10.0) -> Scenario:
    return Scenario(id=name, run_id="unset", killer=killer, stressors=stressors,
                    bystanders=(BystanderSpec(),),
                    danger=DangerSpec(mem_available_pct=danger_pct), deadline_s=deadline_s)


def spike(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    return scenario("spike", killer, hog(runtime), deadline_s=60.0)


def ramp(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    return scenario("ramp", killer, hog(runtime, rate_mib_s=200.0))


def slow_leak(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    return scenario("slow_leak", killer, hog(runtime, rate_mib_s=40.0), deadline_s=120.0)


def many_hogs(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    return scenario("many_hogs", killer, hog(runtime, rate_mib_s=0.0, count=8))


def throttle(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """Dirty page cache written faster than writeback: reclaim and writeback throttling."""
    return scenario("throttle", killer,
                    trouble("page_cache", "dirty", runtime, mode="dirty", size_mib=2048),
                    hog(runtime, rate_mib_s=150.0))


def pagecache(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """A clean file set re-read faster than RAM can cache it: reclaim churns the cache."""
    return scenario("pagecache", killer,
                    trouble("page_cache", "flood", runtime, mode="clean", size_mib=1536),
                    hog(runtime, rate_mib_s=150.0))


def evict(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """Long page-cache churn, then a slow hog: whatever of the killer's own file pages
    (code, libraries) it did not touch lately is evicted before it must act.

    The hog waits 45 s so the file set is written and being re-read first (writing
    it takes ~40 s under emulation; a `pagecache` run reaches danger while it is
    still being written there)."""
    return scenario("evict", killer,
                    trouble("page_cache", "flood", runtime, mode="clean", size_mib=768),
                    hog(runtime, rate_mib_s=40.0, start_delay_s=45.0), deadline_s=180.0)


def pageout(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """The killer's own pages reclaimed every second (process_madvise), then a hog: a killer
    that did not lock its memory reads it back while it should act. The page-out runs
    under the cgroup runtime whatever the scenario's: it needs the killer's pids."""
    return scenario("pageout", killer,
                    trouble("pageout", "pageout", "cgroup", target="killer", every_s=1.0),
                    hog(runtime, rate_mib_s=150.0, start_delay_s=10.0))


def irq_storm(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """UDP into sockets that never read: kernel memory taken in softirq context."""
    return scenario("irq_storm", killer,
                    trouble("udp_storm", "storm", runtime, sockets=8, rcvbuf_mib=64,
                            udp_mem_mib=512),
                    hog(runtime, rate_mib_s=150.0))


def nic_storm(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """The host floods the guest's NIC: device interrupts and NAPI allocate (VM only)."""
    return scenario("nic_storm", killer,
                    trouble("udp_storm", "storm", runtime, source="external", sockets=8,
                            rcvbuf_mib=64, udp_mem_mib=512, rate_mib_s=20.0),
                    hog(runtime, rate_mib_s=150.0))


def cpu_starve(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """The killer's cgroup under a 2% CPU quota with CPU hogs on every CPU."""
    return scenario("cpu_starve", killer,
                    trouble("cpu_starve", "cpuhog", runtime, target="killer", quota_pct=2.0),
                    hog(runtime, rate_mib_s=150.0))


def shmem(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """tmpfs memory that killing a process does not give back, plus the hog."""
    return scenario("shmem", killer,
                    trouble("shmem_hog", "tmpfs", runtime, size_mib=256),
                    hog(runtime, rate_mib_s=150.0))


def mlock(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """Unreclaimable mlocked memory shrinks what reclaim can work with."""
    return scenario("mlock", killer,
                    trouble("mlock_hog", "locked", runtime, size_mib=256),
                    hog(runtime, rate_mib_s=150.0))


def fork_storm(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """Thousands of small processes: no single big victim to find."""
    s = StressorSpec(name="fork_storm", instance="forks", cgroup="workload/forks",
                     params={"count": 4000, "child_kib": 512}, runtime=runtime)
    # Each child is a small Python process (~1 MiB): the guest runs out long before 4000.
    return scenario("fork_storm", killer, s)


def thp(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """Fragmented memory and huge-page demand: direct compaction on the allocation path."""
    return scenario("thp", killer,
                    trouble("thp_compact", "thp", runtime, size_mib=256, fragment_mib=256),
                    hog(runtime, rate_mib_s=150.0))


def mixed(killer: KillerSpec, runtime: str = "cgroup") -> Scenario:
    """Several troubles at once: dirty page cache, a UDP storm and a starved killer."""
    return scenario("mixed", killer,
                    trouble("page_cache", "dirty", runtime, mode="dirty", size_mib=2048),
                    trouble("udp_storm", "storm", runtime, sockets=4, rcvbuf_mib=32),
                    trouble("cpu_starve", "cpuhog", runtime, target="killer", quota_pct=5.0),
                    hog(runtime, rate_mib_s=150.0))


CATALOGUE: dict[str, Entry] = {e.name: e for e in (
    Entry("spike", "an anonymous-memory hog allocating as fast as it can", "anon", spike,
          smoke=True),
    Entry("ramp", "an anonymous-memory hog growing at a steady 200 MiB/s", "anon", ramp),
    Entry("slow_leak", "an anonymous-memory hog leaking 40 MiB/s", "anon", slow_leak),
    Entry("many_hogs", "eight hog processes in one cgroup", "anon", many_hogs),
    Entry("throttle", "direct-reclaim and writeback throttling from a dirty page-cache flood",
          "pagecache", throttle, smoke=True),
    Entry("pagecache", "a clean page-cache flood churning reclaim", "pagecache", pagecache),
    Entry("evict", "a slow hog under long page-cache churn that evicts the killer's pages",
          "pagecache", evict),
    Entry("pageout", "the killer's own memory paged out every second, then a hog",
          "pageout", pageout),
    Entry("irq_storm", "a UDP storm allocating kernel memory in softirq context", "irq",
          irq_storm, smoke=True),
    Entry("nic_storm", "a flood from the host into the guest's NIC, allocated by device "
          "interrupts", "irq", nic_storm, vm_only=True),
    Entry("cpu_starve", "the killer under a tiny CPU quota with CPU hogs", "cpu", cpu_starve,
          smoke=True),
    Entry("shmem", "tmpfs memory that a kill does not free", "unreclaimable", shmem,
          smoke=True),
    Entry("mlock", "mlocked memory that reclaim cannot touch", "unreclaimable", mlock),
    Entry("fork_storm", "thousands of small processes", "fork", fork_storm),
    Entry("thp", "huge-page demand on fragmented memory", "thp", thp),
    Entry("mixed", "dirty page cache, a UDP storm and a starved killer at once", "mixed", mixed),
)}


def get(name: str) -> Entry:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r} (available: {', '.join(CATALOGUE)})") from None
