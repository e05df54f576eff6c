"""Bad input on the command line: one line on stderr, exit status 2, nothing started."""

from __future__ import annotations

import subprocess
import sys

import pytest


def chaos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chaos.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["kernels", "fetch", "4.19"], "4.19"),
    (["testbed", "boot", "--kernel", "9.99", "--", "true"], "9.99"),
    (["testbed", "boot", "--kernel", "/nonexistent/bzImage", "--", "true"], "/nonexistent"),
    (["testbed", "boot", "--"], "no command given"),
    (["run", "--testbed", "cloud"], "invalid choice"),
    (["run", "--slo", "nope=1"], "NAME one of"),
    (["run", "--kernel", "4.19"], "unknown kernel"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_one_line_exit_2(args: list[str], message: str) -> None:
    out = chaos(*args)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("chaos: ") and message in lines[0]
    assert "Traceback" not in out.stderr
