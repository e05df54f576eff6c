"""The smoke matrix, run the way a user runs it, checked for what the *suite* guarantees.

`pytest chaos -m smoke` runs every killer against one scenario per family of
trouble on the default kernel. Its scenario tests fail when a killer fails —
those are findings about the killers (oomd losing the race to the kernel OOM
killer is one), not defects of the suite. This test runs that matrix in a
subprocess and asserts what must hold whatever the killers do: every cell
produced a complete result (no testbed error), the stored verdict is the one
the raw record implies, every reason carries evidence, the killer's version
was captured, the pytest outcome of each cell agrees with its verdict, and the
report renders every cell.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from chaos import catalogue, kernels
from chaos.plugin import default_killers
from chaos.result import Result
from chaos.skips import skip_unless_qemu, skip_unless_root
from chaos.verdict import REASONS, judge

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.long
def test_smoke_matrix_produces_complete_results(tmp_path: Path) -> None:
    skip_unless_root()
    skip_unless_qemu()
    results = tmp_path / "results"
    report = tmp_path / "report"
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "CHAOS_RUN_ID": "smoke"}
    env.pop("PYTEST_XDIST_WORKER", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "chaos"), "-m", "smoke", "-p", "no:xdist",
         "-p", "no:cacheprovider", "-q", "--results-dir", str(results), f"--junitxml={junit}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    assert out.returncode in (0, 1), out.stdout[-3000:] + out.stderr[-2000:]  # 1 = findings
    smoke = [e.name for e in catalogue.CATALOGUE.values() if e.smoke]
    killers = default_killers()
    files = sorted((results / "smoke").glob("*.json"))
    got = [Result.read(f) for f in files]
    assert sorted((r.scenario, r.killer.name) for r in got) == sorted(
        (s, k) for s in smoke for k in killers)
    outcomes = {case.get("name"): case.find("failure") is None
                for case in ElementTree.parse(junit).getroot().iter("testcase")}
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
        assert outcomes[test_id] == r.verdict.passed, test_id
    summary = subprocess.run([sys.executable, "-m", "chaos.cli", "report", str(results), "-o",
                              str(report)], capture_output=True, text=True, timeout=600)
    assert summary.returncode == 0, summary.stderr
    index = (report / "index.html").read_text()
    for k in killers:
        assert k in index
    failed = [r for r in got if not r.verdict.passed]
    for r in failed:  # failures are shown with their reason codes
        assert any(code in index for code in r.verdict.reasons)
    print(json.dumps({f"{r.scenario}/{r.killer.name}": r.verdict.reasons for r in got},
                     indent=1))
