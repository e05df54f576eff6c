"""The sampler's parsing of /proc/meminfo and /proc/vmstat."""

from __future__ import annotations

import re

from chaos.probes.sampler import MEMINFO_KEYS, VMSTAT_KEYS, Sampler, field_values, needles
from chaos.scenario import DangerSpec

MEMINFO = b"""MemTotal:        1004000 kB
MemFree:          500000 kB
MemAvailable:     600000 kB
Cached:            70000 kB
SwapCached:            0 kB
Mlocked:              12 kB
SwapFree:              7 kB"""


def test_field_values_takes_whole_keys_at_line_starts() -> None:
    got = field_values(MEMINFO, needles(MEMINFO_KEYS, b":"))
    assert got == {"mem_total_kib": 1004000.0, "mem_available_kib": 600000.0,
                   "cached_kib": 70000.0, "mlocked_kib": 12.0, "swap_free_kib": 7.0}
    # "Cached" is not "SwapCached"; the first line has no newline before it, the last
    # none after it; keys not in the text are left out
    vm = b"nr_free_pages 5\npgscan_direct 11\nxpgscan_kswapd 9\npgscan_kswapd 3"
    keys = needles({b"pgscan_direct": "d", b"pgscan_kswapd": "k", b"oom_kill": "o",
                    b"nr_free_pages": "f"}, b" ")
    assert field_values(vm, keys) == {"f": 5.0, "d": 11.0, "k": 3.0}


def test_the_sampler_reads_what_a_regex_reads_from_this_hosts_files() -> None:
    sampler = Sampler(50, 1, DangerSpec())
    meminfo = open("/proc/meminfo", "rb").read()
    want = {MEMINFO_KEYS[k]: float(v) for k, v in re.findall(
        rb"^(" + b"|".join(MEMINFO_KEYS) + rb"):\s+(\d+)", meminfo, re.M)}
    assert set(sampler._read_meminfo()) == set(want)
    assert sampler.mem_total_kib == want["mem_total_kib"]
    vmstat = open("/proc/vmstat", "rb").read()
    stalls = re.findall(rb"^allocstall_\w+ (\d+)$", vmstat, re.M)
    assert stalls, "this kernel has no allocstall counters"
    got = sampler._read_vmstat()
    assert set(got) == {*VMSTAT_KEYS, "allocstall"}
    assert got["allocstall"] >= sum(float(v) for v in stalls)  # counters only grow
    sampler.sample_once()
    assert sampler.n == 1 and sampler.cols["mem_available_kib"][0] > 0
