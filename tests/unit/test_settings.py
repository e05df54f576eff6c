"""Settings precedence (cli > env > file > default) and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.settings import SettingsError, resolve


def test_precedence(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.chaos]\nkernel = ["6.1"]\nvm_memory = 2048\nrepeat = 3\n')
    s = resolve({}, tmp_path, environ={})
    assert s.kernel == ("6.1",) and s.vm_memory == 2048 and s.repeat == 3
    s = resolve({}, tmp_path, environ={"CHAOS_VM_MEMORY": "512", "CHAOS_KERNEL": "6.12,6.1"})
    assert s.vm_memory == 512 and s.kernel == ("6.12", "6.1")
    s = resolve({"vm_memory": 768, "kernel": []}, tmp_path, environ={"CHAOS_VM_MEMORY": "512"})
    assert s.vm_memory == 768 and s.kernel == ("6.1",)


def test_vm_silence_is_off_unless_asked(tmp_path: Path) -> None:
    assert resolve({}, tmp_path, environ={}).vm_silence == 0
    assert resolve({}, tmp_path, environ={"CHAOS_VM_SILENCE": "30"}).vm_silence == 30
    cli_wins = resolve({"vm_silence": 15}, tmp_path, environ={"CHAOS_VM_SILENCE": "30"})
    assert cli_wins.vm_silence == 15


def test_ini_file(tmp_path: Path) -> None:
    (tmp_path / "chaos.ini").write_text("[chaos]\ntestbed = local\nslo = time_to_kill_ms=500\n")
    s = resolve({}, tmp_path, environ={})
    assert s.testbed == "local" and s.slo_overrides == {"time_to_kill_ms": 500.0}


@pytest.mark.parametrize("cli, message", [
    ({"testbed": "cloud"}, "expected vm or local"),
    ({"runtime": ["lxc"]}, "expected cgroup or docker"),
    ({"vm_memory": 10}, "256..65536"),
    ({"slo": ["nope=1"]}, "NAME one of"),
    ({"slo": ["time_to_kill_ms=fast"]}, "not a number"),
    ({"slo": ["time_to_kill_ms=-1"]}, "must be > 0"),
    ({"kernel": ["5.10"]}, "unknown kernel '5.10'"),
    ({"repeat": 0}, "expected 1..1000"),
    ({"vm_silence": 2}, "expected 0 (off) or 5..3600 s"),
    ({"vm_silence": -1}, "expected 0 (off) or 5..3600 s"),
    ({"bogus": 1}, "unknown setting"),
])
def test_bad_settings(cli: dict[str, object], message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        resolve(cli, tmp_path, environ={})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_bad_env_value(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not a valid int"):
        resolve({}, tmp_path, environ={"CHAOS_VM_MEMORY": "lots"})
