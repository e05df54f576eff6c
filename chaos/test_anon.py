"""Anonymous-memory scenarios: a hog that must be killed, a bystander that must live.

Each test runs on every cell of the killer x kernel x runtime matrix and
passes only if the verdict passes (the evidence is shown when it does not).
"""

from __future__ import annotations

from chaos.plugin import CaseRunner


def test_spike(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("spike"))


def test_ramp(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("ramp"))


def test_slow_leak(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("slow_leak"))


def test_many_hogs(chaos_case: CaseRunner) -> None:
    chaos_case.check(chaos_case.run("many_hogs"))
