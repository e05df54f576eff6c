"""benchmarks/killers.py's tables from kept results: the names of rows, and the #7 column."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from chaos.report.samples import sample_result

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "killers.py"


@pytest.fixture(scope="module")
def killers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_killers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


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
