"""oomguard's at-once reap, in a real 6.1 guest, where a hog's memory is partly in small
pages (its anonymous mappings are not THP-aligned) and its exit frees them one by one.

The reap is decided before the kill (from the small-page share read on a tick), the hog
is held on oomguard's CPU from before its signal, reaped by the main thread and by a
second thread beside it, then hastened onto its other CPU. Asserted from oomguard's kept
log lines: both reaps found the memory still attached (``ok``, not ``ESRCH``) and the
hog was hastened after them.
"""

from __future__ import annotations

import json

import pytest

from chaos import catalogue
from chaos.kernels import Kernel
from chaos.result import Result
from chaos.scenario import KillerSpec
from chaos.session import Session, TestbedChoice
from tests.integration.checks import check_killer_killed, explain
from tests.integration.conftest import Record, get_kernel

pytestmark = pytest.mark.integration


def kept(result: Result, event: str) -> dict[str, object]:
    (line,) = [json.loads(e.detail) for e in result.events
               if e.kind == "killer_log" and f'"event":"{event}"' in e.detail]
    return dict(line)


def test_oomguard_reaps_a_small_page_hog_at_once_on_6_1(
        kernel_cache: dict[str, Kernel], session: Session, record: Record) -> None:
    kernel = get_kernel("6.1", kernel_cache)
    result = session.run(catalogue.spike(KillerSpec(name="oomguard")),
                         TestbedChoice(kind="vm", kernel=kernel.package))
    check_killer_killed(result, "oomguard", record)
    pid = str(result.victims[0].pid)
    reap, sig = kept(result, "mrelease"), kept(result, "signal")
    record("mrelease", json.dumps(reap))
    assert reap["small_anon_read"] == "before", explain(result)
    assert float(str(reap["small_anon_mib"])) > 64, reap
    # held: its memory was still attached for both reaps
    assert reap["results"] == reap["second_results"] == {pid: "ok"}, reap
    assert float(str(reap["released_ms"])) >= float(str(reap["second_after_ms"])), reap
    assert sig["hastened"] == {pid: "ok"}, sig
