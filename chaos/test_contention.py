"""Scenarios that take from the killer what it needs to act: CPU, and memory in softirq."""

from __future__ import annotations

from chaos.plugin import CaseRunner


def test_irq_storm(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("irq_storm"))


def test_nic_storm(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("nic_storm"))


def test_cpu_starve(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("cpu_starve"))


def test_mixed(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("mixed"))
