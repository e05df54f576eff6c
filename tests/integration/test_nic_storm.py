"""The catalogue's nic_storm in a real VM: the host floods the guest's NIC during the run.

Facts: the host sent frames, the storm's sockets in the guest queued them while
nothing in the guest sent a packet (so the guest's device interrupts and NAPI
did the allocating), and the hog was still killed.
"""

from __future__ import annotations

import pytest

from chaos import catalogue
from chaos.kernels import Kernel
from chaos.scenario import KillerSpec
from chaos.session import Session, TestbedChoice

pytestmark = pytest.mark.integration


def test_nic_storm_is_flooded_by_the_host(default_kernel: Kernel, session: Session) -> None:
    scenario = catalogue.get("nic_storm").build(KillerSpec(name="kernel"), "cgroup")
    r = session.run(scenario, TestbedChoice(kind="vm", kernel=default_kernel.package))
    assert not r.error, r.error + r.logs.get("console", "")[-1500:]
    sent_mib = float(r.system["host_flood"].split(" MiB", 1)[0])
    assert sent_mib > 10, r.system["host_flood"]
    storm = next(v for v in r.victims if v.instance == "storm")
    assert storm.activity["packets_sent"] == 0
    assert storm.activity["queued_kib"] > 10 * 1024, storm.activity
    hog = next(v for v in r.victims if v.instance == "hog")
    assert hog.died and hog.killed_by == "kernel"
