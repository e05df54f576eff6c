"""oomguard config: the documented example parses; every error is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from oomguard.__main__ import main
from oomguard.config import Config, ConfigError, Guards, PsiTrigger, load, parse

EXAMPLE = """
interval_ms = 100
log = "/var/log/oomguard.jsonl"
[detect]
psi = [{ file = "/proc/pressure/memory", kind = "some", stall_ms = 50, window_ms = 500 }]
mem_available_min_pct = 10
[policy]
cgroups = ["/sys/fs/cgroup/chaos/workload/*"]
select = "size"          # size | growth | oom_score
prefer = []
avoid = []
protect = []
protect_pids = []
kill_timeout_ms = 5000
[guards]
mlockall = true
prefault_heap = true
heap_mib = 8
pread_fds = true
oom_score_adj = true
realtime = true
realtime_priority = 50
cgroup = "/sys/fs/cgroup/chaos/killer"
memory_min_mib = 64
cpu_weight = 10000
watchdog = true
watchdog_deadline_ms = 500
kernel_reserve = false
kernel_reserve_prctl = [0, 0]
"""

MINIMAL = "[detect]\nmem_available_min_pct = 5\n"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "oomguard.toml"
    path.write_text(text)
    return str(path)


def test_example_from_the_issue_parses(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, EXAMPLE))
    assert cfg.interval_ms == 100
    assert cfg.log == "/var/log/oomguard.jsonl"
    assert cfg.detect.psi == (PsiTrigger("/proc/pressure/memory", "some", 50_000, 500_000),)
    assert cfg.detect.psi[0].spec() == b"some 50000 500000\0"
    assert cfg.detect.mem_available_min_pct == 10
    assert cfg.policy.cgroups == ("/sys/fs/cgroup/chaos/workload/*",)
    assert cfg.policy.mode == "cgroup"
    assert cfg.guards.cgroup == "/sys/fs/cgroup/chaos/killer"
    assert cfg.guards.realtime_priority == 50
    assert cfg.guards.enabled()["kernel_reserve"] is False


def test_defaults_are_the_guarded_configuration() -> None:
    cfg = parse({"detect": {"mem_available_min_mib": 256}})
    assert cfg == Config(
        detect=cfg.detect, guards=Guards(), path=""
    )  # every other section at its default
    assert cfg.log == "-"
    assert cfg.policy.mode == "process"
    assert cfg.policy.select == "size"
    assert cfg.policy.kill_timeout_ms == 5000
    assert cfg.policy.hasten_victim is True
    assert cfg.detect.meminfo == "/proc/meminfo"
    on = cfg.guards.enabled()
    assert on == {
        "mlockall": True,
        "prefault_heap": True,
        "pread_fds": True,
        "oom_score_adj": True,
        "realtime": True,
        "cgroup": False,
        "watchdog": True,
        "kernel_reserve": False,
    }


def test_fractional_psi_times_and_guards_off() -> None:
    cfg = parse(
        {
            "detect": {
                "psi": [
                    {
                        "file": "/x/memory.pressure",
                        "kind": "full",
                        "stall_ms": 0.5,
                        "window_ms": 2000,
                    }
                ]
            },
            "guards": {
                "cgroup": False,
                "watchdog": False,
                "kernel_reserve": True,
                "kernel_reserve_prctl": [77, 1],
            },
        }
    )
    assert cfg.detect.psi[0] == PsiTrigger("/x/memory.pressure", "full", 500, 2_000_000)
    assert cfg.guards.cgroup == ""
    assert cfg.guards.kernel_reserve_prctl == (77, 1)


ERRORS = [
    ("unknown top-level key", "intervall_ms = 5\n" + MINIMAL, "unknown key 'intervall_ms'"),
    (
        "unknown key in table",
        "[detect]\nmem_available_min_pct = 5\nfoo = 1\n",
        "unknown key 'foo' in [detect]",
    ),
    (
        "unknown key in psi item",
        '[detect]\npsi = [{file="/proc/pressure/memory", stall_ms=5, window_ms=500, x=1}]\n',
        "unknown key 'x' in [detect.psi[0]]",
    ),
    ("unknown section", MINIMAL + "[gaurds]\nmlockall = true\n", "unknown key 'gaurds'"),
    (
        "string for int",
        'interval_ms = "100"\n' + MINIMAL,
        "interval_ms: expected integer, got string",
    ),
    (
        "bool for int",
        "interval_ms = true\n" + MINIMAL,
        "interval_ms: expected integer, got boolean",
    ),
    (
        "int for bool",
        MINIMAL + "[guards]\nmlockall = 1\n",
        "guards.mlockall: expected boolean, got integer",
    ),
    (
        "string for bool",
        MINIMAL + '[policy]\nhasten_victim = "yes"\n',
        "policy.hasten_victim: expected boolean, got string",
    ),
    ("table expected", "detect = 3\n", "detect: expected a table, got integer"),
    (
        "list expected",
        MINIMAL + '[policy]\ncgroups = "/sys/fs/cgroup/x"\n',
        "policy.cgroups: expected array, got string",
    ),
    (
        "stall above window",
        '[detect]\npsi = [{file="/proc/pressure/memory", stall_ms=600, window_ms=500}]\n',
        "detect.psi[0].stall_ms: 600 must be > 0 and <= window_ms (500)",
    ),
    (
        "zero stall",
        '[detect]\npsi = [{file="/proc/pressure/memory", stall_ms=0, window_ms=500}]\n',
        "detect.psi[0].stall_ms: 0 must be > 0",
    ),
    (
        "window too short",
        '[detect]\npsi = [{file="/proc/pressure/memory", stall_ms=10, window_ms=100}]\n',
        "detect.psi[0].window_ms: 100 must be between 500 and 10000",
    ),
    (
        "psi without file",
        "[detect]\npsi = [{stall_ms=10, window_ms=500}]\n",
        "detect.psi[0]: missing key 'file'",
    ),
    (
        "psi bad kind",
        '[detect]\npsi = [{file="/proc/pressure/memory", kind="most", stall_ms=1, '
        "window_ms=500}]\n",
        "detect.psi[0].kind: 'most' is not one of some, full",
    ),
    (
        "pct above 100",
        "[detect]\nmem_available_min_pct = 101\n",
        "detect.mem_available_min_pct: 101 must be > 0 and <= 100",
    ),
    ("pct zero", "[detect]\nmem_available_min_pct = 0\n", "must be > 0 and <= 100"),
    (
        "mib zero",
        "[detect]\nmem_available_min_mib = 0\n",
        "detect.mem_available_min_mib: 0 is out of range",
    ),
    (
        "negative fill rate",
        "[detect]\nmem_available_min_mib = 64\nfloor_fill_rate_mib_s = -1\n",
        "detect.floor_fill_rate_mib_s: -1 is out of range",
    ),
    ("no trigger", "[detect]\n", "[detect]: no trigger configured"),
    ("no detect at all", "interval_ms = 100\n", "[detect]: no trigger configured"),
    (
        "bad select",
        MINIMAL + '[policy]\nselect = "biggest"\n',
        "policy.select: 'biggest' is not one of size, growth, oom_score",
    ),
    (
        "relative cgroup glob",
        MINIMAL + '[policy]\ncgroups = ["workload/*"]\n',
        "policy.cgroups[0]: 'workload/*' must be an absolute path",
    ),
    (
        "cgroups and pids",
        MINIMAL + '[policy]\ncgroups = ["/a/*"]\npids = [5]\n',
        "[policy]: set either cgroups or pids, not both",
    ),
    (
        "beside without a second reaper",
        MINIMAL + "[policy]\nsecond_reaper = false\nreap_beside_exit = true\n",
        "[policy]: reap_beside_exit = true needs second_reaper = true",
    ),
    (
        "negative pid",
        MINIMAL + "[policy]\nprotect_pids = [-1]\n",
        "policy.protect_pids[0]: -1 is out of range",
    ),
    ("interval too small", "interval_ms = 1\n" + MINIMAL, "interval_ms: 1 is out of range"),
    (
        "rt priority",
        MINIMAL + "[guards]\nrealtime_priority = 0\n",
        "guards.realtime_priority: 0 is out of range [1, 99]",
    ),
    (
        "watchdog deadline",
        "interval_ms = 400\n" + MINIMAL + "[guards]\nwatchdog_deadline_ms = 500\n",
        "guards.watchdog_deadline_ms: 500 must be at least 2 * interval_ms (800)",
    ),
    (
        "cgroup true",
        MINIMAL + "[guards]\ncgroup = true\n",
        "guards.cgroup: expected a cgroup directory path or false, got true",
    ),
    (
        "reserve without prctl",
        MINIMAL + "[guards]\nkernel_reserve = true\n",
        "guards.kernel_reserve_prctl: kernel_reserve is on but the prctl option is 0",
    ),
    (
        "prctl pair length",
        MINIMAL + "[guards]\nkernel_reserve_prctl = [1]\n",
        "guards.kernel_reserve_prctl: expected [option, arg], got 1 numbers",
    ),
    ("empty log", 'log = ""\n' + MINIMAL, "log: must be a file path or '-' for stdout"),
    ("invalid toml", "interval_ms = = 3\n", "invalid TOML"),
]


@pytest.mark.parametrize(("text", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_config_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith(path + ": ")
    assert message in line


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config: No such file or directory"):
        load(str(tmp_path / "nope.toml"))


def test_check_config_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, EXAMPLE)
    assert main(["--check-config", good]) == 0
    assert capsys.readouterr().out == f"{good}: OK\n"

    bad = write(tmp_path, "[detect]\nmem_available_min_pct = 200\n")
    assert main(["--check-config", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("oomguard: " + bad + ": detect.mem_available_min_pct: 200")

    assert main(["--check-config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read config" in capsys.readouterr().err


def test_config_errors_stop_the_daemon_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.jsonl"
    bad = write(tmp_path, f'log = "{log}"\n[detect]\nmem_available_min_pct = 5\nbogus = 1\n')
    assert main(["--config", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'bogus' in [detect]" in err
    assert not log.exists()


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import oomguard

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"oomguard {oomguard.__version__}"


def test_psi_as_array_of_tables(tmp_path: Path) -> None:
    text = (
        "[[detect.psi]]\nfile = '/proc/pressure/memory'\nstall_ms = 100\nwindow_ms = 2000\n"
        "[[detect.psi]]\nfile = '/sys/fs/cgroup/w/memory.pressure'\nkind = 'full'\n"
        "stall_ms = 20\nwindow_ms = 1000\n"
    )
    cfg = load(write(tmp_path, text))
    assert [t.spec() for t in cfg.detect.psi] == [
        b"some 100000 2000000\0",
        b"full 20000 1000000\0",
    ]
