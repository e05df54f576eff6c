"""The smoke matrix, run the way a user runs it, checked for what the *suite* guarantees.

`pytest chaos -m smoke` runs every killer against one scenario per family of
trouble on the default kernel. Its scenario tests fail when a killer fails —
those are findings about the killers (oomd losing the race to the kernel OOM
killer is one), not defects of the suite. The matrix runs once per pytest run
(in a subprocess, whichever xdist worker asks first) and the tests below read it:
every cell produced a complete result (no testbed error), the stored verdict is the
one the raw record implies, every reason carries evidence, the killer's version
was captured, the pytest outcome of each cell agrees with its verdict, and the
report renders every cell. Each real killer's `spike` cell is also its adapter's
end-to-end test (a VM run costs ~25 s of CI's one VM slot; it is not run twice).

CI runs a cover of the matrix, not all of it: every killer on `spike`, and every other
smoke scenario once, each with a different killer (``OTHER_CELLS``): 9 guests instead
of 25, ~8 minutes of CI's one VM slot less. A cell's result comes from the same code
whatever the killer; the whole matrix is the main job (`./bootstrap.sh main`), and
``CHAOS_SMOKE_MATRIX=full`` runs all of it here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from chaos import catalogue, kernels
from chaos.plugin import default_killers
from chaos.result import Result
from chaos.skips import skip_unless_binary, skip_unless_qemu, skip_unless_root
from chaos.verdict import REASONS, judge
from tests.integration.checks import (
    check_kernel_kill,
    check_killer_killed,
    check_oomd_default_config,
)
from tests.integration.conftest import Record, once, shared_dir

pytestmark = [pytest.mark.integration, pytest.mark.long]
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Matrix:
    """What one run of `pytest chaos -m smoke` left: its results, and each cell's outcome."""

    results_dir: Path
    results: list[Result]
    outcomes: dict[str, bool]  # junit test name -> passed

    def cell(self, scenario: str, killer: str) -> Result:
        found = [r for r in self.results if (r.scenario, r.killer.name) == (scenario, killer)]
        assert len(found) == 1, f"{scenario}/{killer}: {len(found)} results"
        return found[0]


# Each adapter test reads its killer's spike cell; run on their own (`pytest -k oomguard`),
# they need only those cells, not the whole matrix.
ADAPTER_TESTS = {
    "test_kernel_kills_the_spike_hog": "kernel",
    "test_earlyoom_kills_the_spike_hog": "earlyoom",
    "test_nohang_kills_the_spike_hog": "nohang",
    "test_oomguard_kills_the_spike_hog": "oomguard",
    "test_oomd_default_config_without_swap": "oomd",
}


# Each smoke scenario other than `spike` and the killer that runs it in CI's cover. Chosen
# to spread: our own killer under CPU starvation (its realtime guard), oomd on shmem (a
# finding so far: the report's failure rows are checked too).
OTHER_CELLS = {"cpu_starve": "oomguard", "throttle": "earlyoom", "shmem": "oomd",
               "irq_storm": "nohang"}
FULL = os.environ.get("CHAOS_SMOKE_MATRIX", "") == "full"


def cover(smoke: list[str], killers: list[str]) -> list[tuple[str, str]]:
    """CI's cells: every killer on `spike`, every other smoke scenario once (its killer in
    OTHER_CELLS, the kernel where that killer is not installed)."""
    missing = [s for s in smoke if s != "spike" and s not in OTHER_CELLS]
    assert not missing, f"give {missing} a killer in OTHER_CELLS"
    cells = [("spike", k) for k in killers]
    for s in smoke:
        if s != "spike":
            cells.append((s, OTHER_CELLS[s] if OTHER_CELLS[s] in killers else "kernel"))
    return sorted(cells)


def select(cells: list[tuple[str, str]]) -> str:
    """A pytest -k expression for these cells (the killer is in each test's id)."""
    return " or ".join(f"(test_{s} and {k})" for s, k in cells)


def wanted() -> list[tuple[str, str]]:
    smoke = [e.name for e in catalogue.CATALOGUE.values() if e.smoke]
    killers = default_killers()
    return sorted((s, k) for s in smoke for k in killers) if FULL else cover(smoke, killers)


def cells_wanted(selected: list[str]) -> list[str]:
    """The killers whose spike cells the selected tests of this module read, or [] when
    every wanted cell is (any other test of the module is selected): see ``wanted()``."""
    if any(name not in ADAPTER_TESTS for name in selected):
        return []
    return sorted({ADAPTER_TESTS[name] for name in selected})


def _run_matrix(root: Path, killers: list[str]) -> dict[str, Any]:
    env = {**os.environ, "CHAOS_RUN_ID": "smoke"}
    env.pop("PYTEST_XDIST_WORKER", None)
    only = (["-k", "test_spike", *(f"--killer={k}" for k in killers)] if killers
            else [] if FULL else ["-k", select(wanted())])
    out = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "chaos"), "-m", "smoke", "-p", "no:xdist",
         "-p", "no:cacheprovider", "-q", "--results-dir", str(root / "results"),
         f"--junitxml={root / 'junit.xml'}", *only],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    return {"returncode": out.returncode, "tail": out.stdout[-3000:] + out.stderr[-2000:]}


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Matrix:
    skip_unless_root()
    skip_unless_qemu()
    killers = cells_wanted([item.originalname for item in request.session.items
                            if isinstance(item, pytest.Function)
                            and item.module is request.module])
    label = "-".join(["smoke-matrix", *killers])
    root = shared_dir(tmp_path_factory, label)
    ran = once(root, "matrix", lambda: _run_matrix(root, killers))
    assert ran["returncode"] in (0, 1), ran["tail"]  # 1 = findings about the killers
    results = [Result.read(f) for f in sorted((root / "results" / "smoke").glob("*.json"))]
    outcomes = {case.get("name", ""): case.find("failure") is None
                for case in ElementTree.parse(root / "junit.xml").getroot().iter("testcase")}
    return Matrix(root / "results", results, outcomes)


def test_smoke_matrix_produces_complete_results(matrix: Matrix, tmp_path: Path) -> None:
    killers = default_killers()
    got = matrix.results
    assert sorted((r.scenario, r.killer.name) for r in got) == wanted()
    for r in got:
        cell = f"{r.scenario}/{r.killer.name}"
        assert not r.error, f"{cell}: {r.error}"
        assert r.kernel.release and r.testbed.accel in ("kvm", "tcg"), cell
        assert r.killer.version, cell
        assert r.series["t_ns"] and r.events, cell
        assert r.verdict == judge(r), cell
        for d in r.verdict.details:
            assert d.code in REASONS and d.evidence, f"{cell}: {d.code} without evidence"
        assert r.suite_revision and r.config_hash, cell
        # the cell's pytest outcome agrees with its verdict
        test_id = f"test_{r.scenario}[{r.killer.name}-{kernels.DEFAULT_KERNEL}-cgroup]"
        assert matrix.outcomes[test_id] == r.verdict.passed, test_id
    report = tmp_path / "report"
    summary = subprocess.run([sys.executable, "-m", "chaos.cli", "report",
                              str(matrix.results_dir), "-o", str(report)],
                             capture_output=True, text=True, timeout=600)
    assert summary.returncode == 0, summary.stderr
    index = (report / "index.html").read_text()
    for k in killers:
        assert k in index
    failed = [r for r in got if not r.verdict.passed]
    for r in failed:  # failures are shown with their reason codes
        assert any(code in index for code in r.verdict.reasons)
    print(json.dumps({f"{r.scenario}/{r.killer.name}": r.verdict.reasons for r in got},
                     indent=1))


# -- each real killer's adapter, end to end, on its spike cell ---------------------------------
def test_kernel_kills_the_spike_hog(matrix: Matrix) -> None:
    r = matrix.cell("spike", "kernel")
    check_kernel_kill(r)
    assert r.kernel.release == kernels.get(kernels.DEFAULT_KERNEL).release
    assert r.testbed.kind == "vm" and 900 <= r.testbed.memory_mib <= 1024


def test_earlyoom_kills_the_spike_hog(matrix: Matrix, record: Record) -> None:
    skip_unless_binary("earlyoom", "earlyoom")
    r = matrix.cell("spike", "earlyoom")
    check_killer_killed(r, "earlyoom", record, comm="earlyoom")
    assert r.killer.version.startswith("earlyoom v")
    sent = [e for e in r.events if e.kind == "killer_log" and e.pid == r.victims[0].pid]
    assert sent and sent[0].signal in (9, 15), "earlyoom's 'sending SIG...' line was not parsed"


def test_nohang_kills_the_spike_hog(matrix: Matrix, record: Record) -> None:
    skip_unless_binary("nohang", "nohang")
    r = matrix.cell("spike", "nohang")
    check_killer_killed(r, "nohang", record)
    assert "soft_threshold_min_mem = 10 %" in r.killer.config


def test_oomguard_kills_the_spike_hog(matrix: Matrix, record: Record) -> None:
    if importlib.util.find_spec("oomguard") is None:
        pytest.xfail("the oomguard package is missing: its adapter cannot be tested yet")
    r = matrix.cell("spike", "oomguard")
    check_killer_killed(r, "oomguard", record)
    assert '"event":"ready"' in r.killer.log
    assert "[guards]" in r.killer.config
    # the kept signal line: the hog pinned by its pidfd and its exit hastened
    (sig,) = [json.loads(e.detail) for e in r.events
              if e.kind == "killer_log" and '"event":"signal"' in e.detail]
    assert sig["pids"] == [r.victims[0].pid], sig
    assert sig["hastened"] == {str(r.victims[0].pid): "ok"}, sig


def test_oomd_default_config_without_swap(matrix: Matrix, record: Record) -> None:
    skip_unless_binary("oomd", "oomd")
    r = matrix.cell("spike", "oomd")
    assert r.testbed.swap_mib == 0
    check_oomd_default_config(r, record)
