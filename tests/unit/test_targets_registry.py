"""The killer registry: built-ins, entry points, exec specs, unsupported killers, bad input.

Every refusal is one line that names the killer, raised before anything starts.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from chaos import catalogue, targets
from chaos.scenario import KillerSpec, SpecError
from chaos.targets.base import Layout, Target, TargetError, run_checker, tail
from chaos.targets.exec import ExecTarget
from chaos.targets.options import parse_options

LAYOUT = Layout(cgroup_root=Path("/sys/fs/cgroup/chaos-r1.2"), cgroup_version=2,
                workdir=Path("/tmp/chaos-agent"), harness_pids=(42,))


def one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


# -- the registry -----------------------------------------------------------------------------
def test_every_builtin_killer_is_registered_and_loads() -> None:
    assert {"kernel", "earlyoom", "oomd", "nohang", "oomguard"} <= set(targets.REGISTRY)
    for name in targets.REGISTRY:
        target = targets.load(KillerSpec(name=name))
        assert isinstance(target, Target) and target.name == name


def test_unknown_killer_lists_what_exists() -> None:
    with pytest.raises(SpecError) as exc:
        targets.load(KillerSpec(name="oom-be-gone"))
    text = one_line(exc)
    assert "unknown killer 'oom-be-gone'" in text and "earlyoom" in text and "exec:" in text


@pytest.mark.parametrize("name", sorted(targets.UNSUPPORTED))
def test_unsupported_killers_say_why(name: str) -> None:
    with pytest.raises(SpecError) as exc:
        targets.load(KillerSpec(name=name))
    text = one_line(exc)
    assert f"killer {name} cannot run in these testbeds" in text
    assert targets.UNSUPPORTED[name] in text


def test_unsupported_table_names_systemd_oomd_and_lmkd() -> None:
    assert "PID 1" in targets.UNSUPPORTED["systemd-oomd"]
    assert "exec:" in targets.UNSUPPORTED["lmkd"]


def test_unknown_option_is_refused_at_load() -> None:
    with pytest.raises(SpecError) as exc:
        targets.load(KillerSpec(name="earlyoom", options={"mem_percent": 5}))
    assert "killer earlyoom: unknown option(s) mem_percent" in one_line(exc)


@pytest.mark.parametrize("name, options, message", [
    ("earlyoom", {"mem_pct": "lots"}, "option mem_pct='lots' is not a valid float"),
    ("earlyoom", {"mem_pct": 150}, "mem_pct must be between 0 and 100"),
    ("earlyoom", {"extra": "'unclosed"}, "cannot parse extra flags"),
    ("oomd", {"interval": 0}, "interval must be >= 1 s"),
    ("oomd", {"interval": 1.5}, "option interval=1.5 is not a valid int"),
    ("oomd", {"workload_above": "big"}, "is not a size"),
    ("nohang", {"mem_pct": 60}, "between 0 and 50"),
    ("nohang", {"min_sleep": 2, "max_sleep": 1}, "min_sleep <= max_sleep"),
    ("oomguard", {"select": "random"}, "select must be one of"),
    ("oomguard", {"guard_mlockall": "perhaps"}, "option guard_mlockall='perhaps' is not a "
                                                 "valid bool"),
])
def test_bad_options_get_one_line(name: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError) as exc:
        targets.load(KillerSpec(name=name, options=options))  # type: ignore[arg-type]
    assert message in one_line(exc)


def test_options_coerce_strings_from_the_command_line() -> None:
    from chaos.targets.oomguard import OomguardOptions

    o = parse_options(OomguardOptions, {"guard_mlockall": "false", "interval_ms": "50",
                                        "mem_pct": "7.5"}, "oomguard")
    assert o.guard_mlockall is False and o.interval_ms == 50 and o.mem_pct == 7.5


# -- the entry-point group --------------------------------------------------------------------
def plugin_dist(tmp_path: Path, value: str) -> Path:
    """A tiny installed distribution that adds killer 'fake' through chaos.targets."""
    (tmp_path / "fake_killer_mod.py").write_text(textwrap.dedent('''
        from chaos.targets.base import Launch, Target

        class FakeTarget(Target):
            name = "fake"

            def launch(self, scenario, layout):
                return Launch(argv=["fake-killer", str(layout.workload)], ready_after_s=0.5)

        NotATarget = object
    '''))
    info = tmp_path / "fake_killer-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-killer\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[chaos.targets]\nfake = {value}\n")
    return tmp_path


def test_entry_point_adds_a_killer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_dist(tmp_path, "fake_killer_mod:FakeTarget")))
    monkeypatch.delitem(sys.modules, "fake_killer_mod", raising=False)
    assert "fake" in targets.names()
    target = targets.load(KillerSpec(name="fake", options={"x": 1}))
    assert type(target).__name__ == "FakeTarget" and target.options == {"x": 1}
    launch = target.launch(catalogue.spike(KillerSpec(name="fake")), LAYOUT)
    assert launch is not None
    assert launch.argv == ["fake-killer", "/sys/fs/cgroup/chaos-r1.2/arena/workload"]


@pytest.mark.parametrize("value, message", [
    ("fake_killer_mod:NotATarget", "is not a chaos Target"),
    ("fake_killer_mod:Missing", "cannot load fake_killer_mod:Missing"),
    ("no_such_module_xyz:Thing", "cannot load no_such_module_xyz:Thing"),
])
def test_broken_entry_point_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        value: str, message: str) -> None:
    monkeypatch.syspath_prepend(str(plugin_dist(tmp_path, value)))
    monkeypatch.delitem(sys.modules, "fake_killer_mod", raising=False)
    with pytest.raises(SpecError) as exc:
        targets.load(KillerSpec(name="fake"))
    text = one_line(exc)
    assert text.startswith("killer fake: ") and message in text


# -- exec: ------------------------------------------------------------------------------------
def test_exec_spec_parses_command_and_options() -> None:
    t = targets.load(KillerSpec(name="exec:earlyoom-raw=earlyoom -m 10 -r 1",
                                options={"ready_after_s": 2, "version": "1.7"}))
    assert isinstance(t, ExecTarget)
    assert t.label == "earlyoom-raw" and t.argv == ["earlyoom", "-m", "10", "-r", "1"]
    launch = t.launch(catalogue.spike(KillerSpec(name="x")), LAYOUT)
    assert launch.ready_after_s == 2 and launch.ready_pattern == ""
    assert t.version() == "1.7"


def test_exec_placeholders_are_replaced_and_other_braces_kept() -> None:
    t = targets.load(KillerSpec(name="exec:k=killer --cg {workload} --protect {bystanders} "
                                     "--log {workdir}/k.log --re 'a{2}' {unknown}"))
    launch = t.launch(catalogue.spike(KillerSpec(name="x")), LAYOUT)
    assert launch is not None
    assert launch.argv == ["killer", "--cg", "/sys/fs/cgroup/chaos-r1.2/arena/workload",
                           "--protect", "/sys/fs/cgroup/chaos-r1.2/arena/bystanders",
                           "--log", "/tmp/chaos-agent/k.log", "--re", "a{2}", "{unknown}"]


def test_exec_ready_pattern_means_no_wait() -> None:
    t = targets.load(KillerSpec(name="exec:k=killer", options={"ready_pattern": "armed"}))
    launch = t.launch(catalogue.spike(KillerSpec(name="x")), LAYOUT)
    assert launch is not None and launch.ready_pattern == "armed" and launch.ready_after_s == 0


def test_exec_command_tuple_overrides_the_name() -> None:
    t = targets.load(KillerSpec(name="exec:k=ignored", command=("sh", "-c", "echo a b")))
    assert isinstance(t, ExecTarget) and t.argv == ["sh", "-c", "echo a b"]


@pytest.mark.parametrize("name, message", [
    ("exec:", "expected exec:NAME=COMMAND"),
    ("exec:noequals", "expected exec:NAME=COMMAND"),
    ("exec:=earlyoom", "expected exec:NAME=COMMAND"),
    ("exec:bad name=earlyoom", "expected exec:NAME=COMMAND"),
    ("exec:k=", "empty command"),
    ("exec:k=   ", "empty command"),
    ("exec:k=earlyoom 'unclosed", "cannot parse command: No closing quotation"),
])
def test_unparsable_exec_specs_get_one_line(name: str, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        targets.load(KillerSpec(name=name))
    assert message in one_line(exc)


def test_exec_bad_option_names_the_killer() -> None:
    with pytest.raises(SpecError) as exc:
        targets.load(KillerSpec(name="exec:k=true", options={"ready": "x"}))
    assert "killer exec:k: unknown option(s) ready" in one_line(exc)


# -- missing binaries and checkers ------------------------------------------------------------
def test_missing_binary_is_one_line() -> None:
    t = targets.load(KillerSpec(name="exec:ghost=/nonexistent/killer --x"))
    with pytest.raises(TargetError) as exc:
        t.check()
    assert one_line(exc) == "killer exec:ghost: /nonexistent/killer not found"


@pytest.mark.parametrize("name", ["earlyoom", "oomd", "nohang"])
def test_missing_packaged_killer_is_one_line(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chaos.targets.base.shutil.which", lambda _name: None)
    t = targets.load(KillerSpec(name=name))
    with pytest.raises(TargetError) as exc:
        t.check()
    assert one_line(exc) == f"killer {name}: {name} is not installed"
    assert t.version() == "" or name == "nohang"


def test_missing_oomguard_package_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("chaos.targets.oomguard.importlib.util.find_spec", lambda _n: None)
    with pytest.raises(TargetError) as exc:
        targets.load(KillerSpec(name="oomguard")).check()
    assert "oomguard package is not installed" in one_line(exc)


def test_checker_failure_carries_its_last_words(tmp_path: Path) -> None:
    with pytest.raises(TargetError) as exc:
        run_checker("k", [sys.executable, "-c",
                          "import sys; print('line one'); print('bad key: x', file=sys.stderr); "
                          "sys.exit(3)"])
    text = one_line(exc)
    assert text.startswith("killer k: config rejected by ") and "(status 3)" in text
    assert "line one | bad key: x" in text


def test_checker_wants_its_ok_word() -> None:
    run_checker("k", [sys.executable, "-c", "print('config is OK')"], ok="config is OK")
    with pytest.raises(TargetError):
        run_checker("k", [sys.executable, "-c", "print('hmm')"], ok="config is OK")


def test_checker_that_cannot_run_is_one_line() -> None:
    with pytest.raises(TargetError) as exc:
        run_checker("k", ["/nonexistent/checker"])
    assert "killer k: cannot check its config" in one_line(exc)


def test_tail_joins_the_last_lines_and_bounds_them() -> None:
    assert tail("a\n\nb\nc\n", lines=2) == "b | c"
    assert tail("") == "(no output)"
    assert len(tail("x" * 5000)) <= 603
