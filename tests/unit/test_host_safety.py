"""Host safety: global pressure on this machine needs the opt-in and enough free memory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chaos import catalogue
from chaos.scenario import KillerSpec, Scenario, SpecError, TestbedInfo
from chaos.testbeds import local


def scenario(arena_mib: int) -> Scenario:
    s = catalogue.spike(KillerSpec())
    return replace(s, testbed=TestbedInfo(kind="local", arena_mib=arena_mib))


def test_arena_needs_no_opt_in() -> None:
    local.check_host_pressure_allowed(scenario(512), allow=False)


def test_global_pressure_refused_without_opt_in() -> None:
    with pytest.raises(SpecError, match="--allow-host-pressure"):
        local.check_host_pressure_allowed(scenario(0), allow=False)


def test_global_pressure_refused_without_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "MIN_FREE_FOR_GLOBAL_MIB", 10**9)
    with pytest.raises(SpecError, match="global pressure needs at least"):
        local.check_host_pressure_allowed(scenario(0), allow=True)


def test_agent_refuses_global_pressure_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: the agent checks again, before it creates anything."""
    from chaos.agent import Run

    monkeypatch.delenv("CHAOS_ALLOW_HOST_PRESSURE", raising=False)
    with pytest.raises(SpecError, match="--allow-host-pressure"):
        Run(scenario(0), workdir=Path("/nonexistent")).check()
