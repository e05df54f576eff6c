"""The progress lines a matrix run prints, as a newcomer reads them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CELLS = '''
import pytest
from chaos.plugin import show_progress

@pytest.mark.parametrize("cell", ["one", "two", "three"])
def test_cell(request, cell):
    show_progress(request.config, f"{cell}: starting a VM")
    show_progress(request.config, f"{cell}: pressing")
    assert cell != "two"
'''


def test_a_cells_result_is_not_printed_on_the_next_cells_line(tmp_path: Path) -> None:
    """pytest writes a cell's "." or "F" with no newline; the next cell's first progress
    line must not follow it on the same line ("F[chaos] three: ..." reads as three's
    failure, when it was two's)."""
    (tmp_path / "test_cells.py").write_text(CELLS)
    # a plain terminal run, also when this suite runs under xdist (a worker's progress
    # goes to its stderr instead)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "test_cells.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=env).stdout
    lines = out.splitlines()
    assert "[chaos] one: starting a VM" in lines, out
    assert not [x for x in lines if x[:1] in ".F" and "[chaos]" in x], out
    two = lines.index("[chaos] two: pressing")
    assert lines[two + 1] == "F" and lines[two + 2] == "[chaos] three: starting a VM", out
