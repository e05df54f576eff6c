"""Each adapter renders the scenario's intent into its killer's own terms.

Flags and configs are checked against what the killers accept: oomguard's config
goes through oomguard's own parser, nohang's through its key list, oomd's through
its plugin names and cgroup paths relative to the cgroup mount.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chaos import catalogue, targets
from chaos.scenario import BystanderSpec, DangerSpec, KillerSpec, Scenario, StressorSpec
from chaos.targets.base import Launch, Layout, TargetError
from chaos.targets.earlyoom import EarlyoomTarget
from chaos.targets.nohang import FIXED, NohangTarget
from chaos.targets.oomd import OomdTarget
from chaos.targets.oomguard import GUARDS, OomguardTarget
from chaos.targets.scope import cgroup_regex, name_regex
from oomguard.config import Config

RUN = "20261126T0101-ab12.3"
LAYOUT = Layout(cgroup_root=Path(f"/sys/fs/cgroup/chaos-{RUN}"), cgroup_version=2,
                workdir=Path("/tmp/chaos-agent"), harness_pids=(42,))


def scenario(killer: str = "x", danger: float = 10.0, **options: object) -> Scenario:
    s = catalogue.spike(KillerSpec(name=killer, options=options))  # type: ignore[arg-type]
    return replace(s, run_id=RUN, danger=DangerSpec(mem_available_pct=danger))


def two_stressors() -> Scenario:
    s = scenario()
    extra = StressorSpec(name="anon_hog", instance="steady", cgroup="workload/steady",
                         victim=False)
    return replace(s, stressors=(*s.stressors, extra),
                   bystanders=(BystanderSpec(), BystanderSpec(instance="db",
                                                              cgroup="bystanders/db")))


def launch_of(name: str, s: Scenario | None = None, **options: object) -> Launch:
    t = targets.load(KillerSpec(name=name, options=options))  # type: ignore[arg-type]
    launch = t.launch(s or scenario(), LAYOUT)
    assert launch is not None
    return launch


# -- scope helpers ----------------------------------------------------------------------------
def test_regexes_match_exactly_what_they_name() -> None:
    rx = re.compile(name_regex(("hog", "a.b+")))
    assert rx.match("hog") and rx.match("a.b+")
    assert not rx.match("hogs") and not rx.match("axb+")
    assert name_regex(()) == ""
    cg = re.compile(cgroup_regex(LAYOUT, (LAYOUT.workload / "hog",)))
    assert cg.search(f"/chaos-{RUN}/arena/workload/hog")
    assert cg.search(f"/chaos-{RUN}/arena/workload/hog/inner")
    assert not cg.search(f"/chaos-{RUN}/arena/workload/hogger")
    assert not cg.search(f"/chaos-{RUN}Xarena/workload/hog")


# -- earlyoom ---------------------------------------------------------------------------------
def test_earlyoom_flags_follow_the_danger_line() -> None:
    launch = launch_of("earlyoom", scenario(danger=12))
    assert launch.argv[:8] == ["earlyoom", "-m", "12,6", "-s", "100,100", "-r", "1", "-p"]
    assert launch.argv[launch.argv.index("--prefer") + 1] == "^(hog)$"
    assert launch.argv[launch.argv.index("--avoid") + 1] == "^(chaos-agent|bystander)$"
    assert launch.ready_pattern == "sending SIGTERM when mem <="
    assert not launch.config_text


def test_earlyoom_options_override_everything() -> None:
    t = EarlyoomTarget({"mem_pct": 5, "kill_mem_pct": 1, "swap_pct": 20, "report_s": 0,
                        "priority": False, "prefer": "^big$", "avoid": "^sshd$",
                        "extra": "-g --dryrun"})
    argv = t.flags(scenario(), LAYOUT)
    assert argv == ["-m", "5,1", "-s", "20,20", "-r", "0", "--prefer", "^big$",
                    "--avoid", "^sshd$", "-g", "--dryrun"]


def test_earlyoom_spares_non_victims_and_every_bystander() -> None:
    argv = EarlyoomTarget().flags(two_stressors(), LAYOUT)
    assert argv[argv.index("--prefer") + 1] == "^(hog)$"
    assert argv[argv.index("--avoid") + 1] == "^(chaos-agent|bystander|db)$"


# -- oomd -------------------------------------------------------------------------------------
def test_oomd_config_watches_the_system_and_kills_in_the_workload() -> None:
    launch = launch_of("oomd", scenario(danger=15))
    conf = json.loads(launch.config_text)
    (ruleset,) = conf["rulesets"]
    groups = {g[0]: g[1] for g in ruleset["detectors"]}
    assert groups["system memory pressure"] == {
        "name": "pressure_above",
        "args": {"cgroup": "/", "resource": "memory", "threshold": "10", "duration": "0"}}
    assert groups["system memory use"]["args"]["threshold"] == "85%"
    assert "workload memory use" not in groups
    (action,) = ruleset["actions"]
    assert action["name"] == "kill_by_memory_size_or_growth"
    assert action["args"]["cgroup"] == f"chaos-{RUN}/arena/workload/*"
    assert all(isinstance(v, str) for v in action["args"].values())  # oomd wants strings


def test_oomd_argv_keeps_its_files_in_the_workdir() -> None:
    launch = launch_of("oomd", interval=2)
    argv = launch.argv
    assert argv[0] == "oomd" and launch.ready_pattern == "Running oomd"
    assert argv[argv.index("--config") + 1] == "/tmp/chaos-agent/oomd.json"
    assert launch.config_path == Path("/tmp/chaos-agent/oomd.json")
    assert argv[argv.index("--interval") + 1] == "2"
    assert argv[argv.index("--cgroup-fs") + 1] == "/sys/fs/cgroup"
    assert argv[argv.index("--runtime-dir") + 1] == "/tmp/chaos-agent/oomd-run"
    assert argv[argv.index("--kmsg-override") + 1] == "/tmp/chaos-agent/oomd-kills.log"
    assert launch.side_log == Path("/tmp/chaos-agent/oomd-kills.log")


def test_oomd_early_trigger_and_no_pressure_detector(tmp_path: Path) -> None:
    layout = replace(LAYOUT, workdir=tmp_path)
    t = OomdTarget({"workload_above": "200M", "pressure_pct": 0, "duration": 2, "dry": True})
    conf = t.config(scenario(), layout)
    groups = {g[0]: g[1] for g in conf["rulesets"][0]["detectors"]}
    assert set(groups) == {"system memory use", "workload memory use"}
    assert groups["workload memory use"]["args"] == {
        "cgroup": f"chaos-{RUN}/arena/workload", "threshold": "200M", "duration": "2"}
    assert conf["rulesets"][0]["actions"][0]["args"]["dry"] == "true"


@pytest.mark.parametrize("target", [OomdTarget(), OomguardTarget()], ids=["oomd", "oomguard"])
def test_cgroup2_killers_refuse_cgroup_v1(target: OomdTarget | OomguardTarget) -> None:
    with pytest.raises(TargetError) as exc:
        target.launch(scenario(), replace(LAYOUT, cgroup_version=1))
    assert "needs cgroup v2" in str(exc.value) and "\n" not in str(exc.value)


# -- nohang -----------------------------------------------------------------------------------
NOHANG_KEYS = {"psi_checking_enabled", "soft_threshold_max_psi", "hard_threshold_max_psi",
               "soft_threshold_min_mem", "hard_threshold_min_mem", "soft_threshold_min_swap",
               "hard_threshold_min_swap", "min_sleep", "max_sleep", "max_soft_exit_time",
               "post_soft_action_delay"}


def nohang_values(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "@")):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_nohang_config_has_every_key_once() -> None:
    text = launch_of("nohang").config_text
    keys = [ln.partition("=")[0].strip() for ln in text.splitlines()
            if ln and not ln.startswith(("#", "@"))]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(FIXED) | NOHANG_KEYS


def test_nohang_thresholds_follow_the_danger_line() -> None:
    values = nohang_values(launch_of("nohang", scenario(danger=8)).config_text)
    assert values["soft_threshold_min_mem"] == "8 %"
    assert values["hard_threshold_min_mem"] == "4 %"
    assert values["soft_threshold_min_swap"] == "100 %"
    assert values["psi_checking_enabled"] == "False"


def test_nohang_prefers_the_workload_and_spares_the_rest() -> None:
    text = NohangTarget().config(two_stressors(), LAYOUT)
    adj = [ln.split() for ln in text.splitlines() if ln.startswith("@BADNESS_ADJ_RE_CGROUP_V2")]
    assert [a[1] for a in adj] == ["300", "-1000"]
    prefer, avoid = (re.compile(a[3]) for a in adj)
    base = f"/chaos-{RUN}"
    assert prefer.search(f"{base}/arena/workload/hog")
    assert not prefer.search(f"{base}/arena/workload/steady")
    for cg in ("harness", "killer", "arena/bystanders/bystander", "arena/bystanders/db",
               "arena/workload/steady"):
        assert avoid.search(f"{base}/{cg}"), cg
    assert not avoid.search(f"{base}/arena/workload/hog")


def test_nohang_runs_unbuffered_with_its_config() -> None:
    launch = launch_of("nohang")
    assert launch.argv == ["nohang", "--monitor", "--config", "/tmp/chaos-agent/nohang.conf"]
    assert launch.env["PYTHONUNBUFFERED"] == "1"
    assert launch.ready_pattern == "Monitoring has started!"


# -- oomguard ---------------------------------------------------------------------------------
def oomguard_config(s: Scenario | None = None, /,
                    **options: object) -> tuple[Config, dict[str, Any]]:
    from oomguard.config import parse

    text = OomguardTarget(options).config(s or scenario(), LAYOUT)  # type: ignore[arg-type]
    return parse(tomllib.loads(text)), tomllib.loads(text)


def test_oomguard_config_is_valid_for_oomguard_itself() -> None:
    cfg, raw = oomguard_config()
    assert cfg.log == "-" and cfg.interval_ms == 100
    assert cfg.detect.mem_available_min_pct == 10
    assert cfg.policy.cgroups == (f"/sys/fs/cgroup/chaos-{RUN}/arena/workload/*",)
    assert cfg.policy.prefer == (f"/sys/fs/cgroup/chaos-{RUN}/arena/workload/hog",)
    assert f"/sys/fs/cgroup/chaos-{RUN}/harness" in cfg.policy.protect
    assert f"/sys/fs/cgroup/chaos-{RUN}/arena/bystanders/bystander" in cfg.policy.protect
    assert cfg.policy.protect_pids == (42,)
    assert cfg.guards.cgroup == f"/sys/fs/cgroup/chaos-{RUN}/killer"


def test_oomguard_all_guards_on_by_default() -> None:
    cfg, _ = oomguard_config()
    enabled = cfg.guards.enabled()
    assert all(enabled[g] for g in GUARDS), enabled


@pytest.mark.parametrize("guard", GUARDS)
def test_oomguard_each_guard_switches_off_alone(guard: str) -> None:
    cfg, _ = oomguard_config(**{f"guard_{guard}": "false"})
    enabled = cfg.guards.enabled()
    assert enabled[guard] is False
    assert all(enabled[g] for g in GUARDS if g != guard)


def test_oomguard_psi_trigger_and_selection() -> None:
    cfg, _ = oomguard_config(psi_stall_ms=150, psi_window_ms=1000, select="growth", mem_pct=5,
                             dry_run=True)
    (trig,) = cfg.detect.psi
    assert trig.file == "/proc/pressure/memory" and trig.stall_us == 150_000
    assert cfg.policy.select == "growth" and cfg.policy.dry_run
    assert cfg.detect.mem_available_min_pct == 5


def test_oomguard_spares_non_victim_stressors() -> None:
    cfg, _ = oomguard_config(two_stressors())
    assert cfg.policy.avoid == (f"/sys/fs/cgroup/chaos-{RUN}/arena/workload/steady",)
    assert f"/sys/fs/cgroup/chaos-{RUN}/arena/bystanders/db" in cfg.policy.protect


def test_oomguard_launch_uses_the_suites_interpreter() -> None:
    import sys

    launch = launch_of("oomguard")
    assert launch.argv == [sys.executable, "-m", "oomguard", "--config",
                           "/tmp/chaos-agent/oomguard.toml"]
    assert launch.ready_pattern == '"event":"ready"'


def test_oomguard_is_checked_and_versioned_in_process(tmp_path: Path) -> None:
    """No extra interpreter starts: the daemon's own parser and package version."""
    from oomguard import __version__

    t = OomguardTarget()
    assert t.version() == f"oomguard {__version__}"
    bad = tmp_path / "bad.toml"
    bad.write_text("interval_ms = 5\n[detect]\nmem_available_min_pct = 10\n")
    with pytest.raises(TargetError) as exc:
        t.validate(Launch(argv=[], config_path=bad))
    assert str(exc.value).startswith("killer oomguard: config rejected: ")
    assert "interval_ms" in str(exc.value) and "\n" not in str(exc.value)
    good = tmp_path / "good.toml"
    good.write_text(OomguardTarget().config(scenario(), LAYOUT))
    t.validate(Launch(argv=[], config_path=good))


def test_oomguard_prefault_heap_sets_the_allocator_at_launch() -> None:
    assert launch_of("oomguard").env == {"PYTHONMALLOC": "malloc"}
    off = OomguardTarget({"guard_prefault_heap": False}).launch(scenario(), LAYOUT)
    assert off is not None and off.env == {}
