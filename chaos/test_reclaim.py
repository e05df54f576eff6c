"""Scenarios where reclaim itself is the trouble: page-cache floods, throttling, compaction,
the killer's own pages taken away."""

from __future__ import annotations

from chaos.plugin import CaseRunner


def test_throttle(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("throttle"))


def test_pagecache(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("pagecache"))


def test_evict(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("evict"))


def test_pageout(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("pageout"))


def test_thp(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("thp"))
