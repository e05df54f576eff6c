"""The catalogue: every entry builds a valid scenario for every killer, and has a test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from chaos import catalogue, stressors, targets
from chaos.scenario import KillerSpec, Scenario

SCENARIO_TESTS = Path(catalogue.__file__).parent


def test_functions() -> set[str]:
    names: set[str] = set()
    for f in SCENARIO_TESTS.glob("test_*.py"):
        tree = ast.parse(f.read_text())
        names |= {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    return names


test_functions.__test__ = False  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(catalogue.CATALOGUE))
@pytest.mark.parametrize("killer", sorted(targets.names()))
def test_every_entry_builds_a_valid_scenario(name: str, killer: str) -> None:
    for runtime in ("cgroup", "docker"):
        s = catalogue.get(name).build(KillerSpec(name=killer), runtime)
        s.validate()
        assert s.id == name and len(s.victims) == 1
        assert Scenario.from_json(s.to_json()) == s
        for st in s.stressors:
            params = stressors.parse(st.name, st.params)
            # one that acts on the killer by pid needs the testbed's pid namespace
            assert st.runtime == ("cgroup" if stressors.needs(st.name, params).host_pids
                                  else runtime)


def test_every_entry_has_a_scenario_test() -> None:
    assert {f"test_{n}" for n in catalogue.CATALOGUE} <= test_functions()


def test_smoke_takes_one_entry_per_chosen_family() -> None:
    smoke = [e for e in catalogue.CATALOGUE.values() if e.smoke]
    families = [e.family for e in smoke]
    assert len(families) == len(set(families)) and "anon" in families


def test_names_do_not_contain_each_other() -> None:
    """-k NAME must select exactly one scenario's tests."""
    names = list(catalogue.CATALOGUE)
    for a in names:
        assert not [b for b in names if a != b and a in b], a


def test_an_external_storm_gets_a_host_flood_on_its_ports(tmp_path: Path) -> None:
    from chaos.stressors.udp_storm import HOST_FLOOD_MIB_S
    from chaos.testbeds.vm_runner import host_flood

    assert host_flood(catalogue.get("irq_storm").build(KillerSpec("kernel"), "cgroup"),
                      tmp_path, tmp_path) is None
    nic = catalogue.get("nic_storm").build(KillerSpec("kernel"), "cgroup")
    flood = host_flood(nic, tmp_path, tmp_path)
    assert flood is not None
    try:
        assert list(flood.ports) == list(range(47000, 47008))
        assert flood.rate_mib_s == HOST_FLOOD_MIB_S == 20.0
        assert flood.prefix == str(tmp_path / "flood")
        assert not flood.is_alive()  # nothing is sent before the guest writes flood.go
    finally:
        flood.sock.close()
        Path(flood.prefix + ".host").unlink()
    assert catalogue.get("nic_storm").vm_only and not catalogue.get("irq_storm").vm_only
