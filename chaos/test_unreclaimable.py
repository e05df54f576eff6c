"""Scenarios with memory that killing or reclaim cannot give back, and process storms."""

from __future__ import annotations

from chaos.plugin import CaseRunner


def test_shmem(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("shmem"))


def test_mlock(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("mlock"))


def test_fork_storm(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("fork_storm"))
