"""benchmarks/killers.py's tables from kept results: the names of rows, and the #7 column."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import benchmark_script
import pytest

from chaos.report.samples import sample_result


@pytest.fixture(scope="module")
def killers() -> ModuleType:
    return benchmark_script.load("killers")


def test_a_row_is_named_by_its_killer_and_options(killers: ModuleType) -> None:
    assert killers.label("earlyoom", {}) == "earlyoom"
    assert killers.label("oomguard", {"reap_after_ms": 0, "guard_mlockall": False}) == (
        "oomguard -mlockall reap_after_ms=0")
    assert killers.label("oomguard", {"guard_realtime": True}) == "oomguard guard_realtime=True"


def test_kept_results_re_render_with_the_names_a_live_run_prints(
        killers: ModuleType, tmp_path: Path) -> None:
    runs = [("oomguard", {"guard_watchdog": False}, 30.0), ("oomguard", {"guard_watchdog": False},
            40.0), ("earlyoom", {}, 100.0), ("oomd", {}, 70.0), ("oomd", {}, 90.0)]
    for n, (killer, options, ttk) in enumerate(runs, 1):
        r = sample_result(scenario="spike", run_id=f"s.{n}", killer=killer, ttk_ms=ttk)
        r.spec["killer"] = {"name": killer, "options": options}
        r.write(tmp_path / "run" / f"s.{n}--spike.json")
    rows = killers.from_dirs([tmp_path / "run"])
    assert [(r.killer, len(r.results)) for r in rows] == [
        ("oomguard -watchdog", 2), ("earlyoom", 1), ("oomd", 2)]
    half = killers.halves(rows).splitlines()[-1].split()
    # oomguard's p50 35 against oomd's 80: 35 <= 40
    assert half[:6] == ["spike", "35", "80", "(oomd)", "40", "yes"]


def test_a_kill_before_danger_is_counted_apart_from_the_races(
        killers: ModuleType, tmp_path: Path) -> None:
    """oomd's two runs never reached danger (t0 None): their 20 ms are teardowns, not
    races, so the race column compares against earlyoom and the last one against oomd."""
    runs = [("oomguard", 30.0, True), ("oomguard", 40.0, True), ("earlyoom", 100.0, True),
            ("oomd", 20.0, False), ("oomd", 20.0, False), ("oomd", 300.0, True)]
    for n, (killer, ttk, danger) in enumerate(runs, 1):
        r = sample_result(scenario="pagecache", run_id=f"s.{n}", killer=killer, ttk_ms=ttk)
        r.spec["killer"] = {"name": killer, "options": {}}
        if not danger:
            r.t0_ns = None
        r.write(tmp_path / "run" / f"s.{n}--pagecache.json")
    rows = killers.from_dirs([tmp_path / "run"])
    assert [len(killers.raced(r.results)) for r in rows] == [2, 1, 1]
    assert [len(killers.pre_empted(r.results)) for r in rows] == [0, 0, 2]
    line = killers.halves(rows).splitlines()[-1]
    cells = [c.strip() for c in line.split("  ") if c.strip()]
    # races: 35 against earlyoom's 100 (oomd's one race took 300); with the pre-emptions
    # oomd's p50 is 20, and 35 > 10
    assert cells == ["pagecache", "35", "100 (earlyoom)", "50", "yes",
                     "oomd 2 of 3 before danger", "20 (oomd): no"]


def test_another_killers_failed_runs_are_not_times_to_beat(
        killers: ModuleType, tmp_path: Path) -> None:
    """oomd's 14 ms kill that also took a bystander (OVERKILL) and a kill the kernel made
    first (KERNEL_OOM_FIRST, the kernel's 2 s) are left out: its one passed run, 300 ms,
    is oomd's time. When no other killer passed, the row says so."""
    runs = [("evict", "oomguard", 100.0, ()), ("evict", "earlyoom", 700.0, ()),
            ("evict", "oomd", 14.0, ("OVERKILL",)),
            ("evict", "oomd", 2000.0, ("KERNEL_OOM_FIRST",)), ("evict", "oomd", 300.0, ()),
            ("mixed", "oomguard", 50.0, ()), ("mixed", "earlyoom", 1800.0, ("KILLER_STARVED",))]
    for n, (scenario, killer, ttk, fail) in enumerate(runs, 1):
        r = sample_result(scenario=scenario, run_id=f"s.{n}", killer=killer, ttk_ms=ttk,
                          fail=fail)
        r.spec["killer"] = {"name": killer, "options": {}}
        r.write(tmp_path / "run" / f"s.{n}--{scenario}.json")
    lines = killers.halves(killers.from_dirs([tmp_path / "run"])).splitlines()
    evict, mixed = ([c.strip() for c in line.split("  ") if c.strip()] for line in lines[2:])
    assert evict == ["evict", "100", "300 (oomd)", "150", "yes", "oomd 2 of 3 failed",
                     "300 (oomd): yes"]
    assert mixed == ["mixed", "50", "-", "-", "no other killer passed",
                     "earlyoom 1 of 1 failed", "-"]


def test_runs_go_in_rounds_every_cell_once_a_round(killers: ModuleType) -> None:
    configs: list[tuple[str, dict[str, object]]] = [("oomguard", {}), ("earlyoom", {})]
    order = [(n, s, k) for n, s, k, _ in killers.run_order(["spike", "shmem"], configs, 2)]
    assert order == [(1, "spike", "oomguard"), (1, "spike", "earlyoom"),
                     (1, "shmem", "oomguard"), (1, "shmem", "earlyoom"),
                     (2, "spike", "oomguard"), (2, "spike", "earlyoom"),
                     (2, "shmem", "oomguard"), (2, "shmem", "earlyoom")]


@pytest.mark.parametrize(("scenarios", "configs", "said"), [
    (["spike", "nope"], [("earlyoom", {})], "unknown scenario 'nope'"),
    (["spike"], [("earlyoom", {}), ("nokiller", {})], "unknown killer 'nokiller'"),
    (["spike"], [("oomguard", {"reap_after_ms": "x"})], "reap_after_ms='x' is not a valid int"),
])
def test_a_bad_cell_is_one_line_before_any_run(
        killers: ModuleType, scenarios: list[str], configs: list[tuple[str, dict[str, object]]],
        said: str) -> None:
    bad = killers.preflight(scenarios, configs)
    assert bad is not None and said in bad and "\n" not in bad
    assert killers.preflight(["spike", "shmem"], [("oomguard", {}), ("earlyoom", {})]) is None


def test_the_script_refuses_a_bad_cell_before_it_fetches_a_kernel(
        killers: ModuleType, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def no_fetch(spec: str) -> None:
        raise AssertionError(f"kernel {spec} fetched before the cells were checked")

    monkeypatch.setattr(killers.kernels, "get", no_fetch)
    monkeypatch.setattr(sys, "argv", ["killers.py", "--scenario", "spike", "--scenario", "nope"])
    assert killers.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("killers.py: unknown scenario 'nope'") and err.count("\n") == 1
    monkeypatch.setattr(sys, "argv", ["killers.py", "--repeat", "0"])
    assert killers.main() == 2
    assert capsys.readouterr().err == "killers.py: --repeat must be at least 1\n"
