"""The pytest plugin: options, markers, the killer x kernel x runtime matrix, fixtures.

Scenario tests take the ``chaos_case`` fixture; the plugin parametrises them
over the matrix with readable ids (``test_spike[kernel-6.12-cgroup]``) and
gives them a session that sweeps leftovers first and stores every result.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chaos import catalogue, targets
from chaos.result import Result
from chaos.scenario import KillerSpec, Scenario
from chaos.session import Session, TestbedChoice
from chaos.settings import Settings, SettingsError, resolve
from chaos.skips import not_applicable, skip_or_fail, skip_unless_qemu, skip_unless_root
from chaos.state import new_run_id

MARKERS = {
    "integration": "boots real VMs or runs real daemons (slow)",
    "browser": "drives a real headless browser",
    "smoke": "the CI-sized selection: every killer x every stressor family on one kernel",
    "scenario": "a scenario from the catalogue, run on the killer x kernel x runtime matrix",
}

SETTINGS_KEY = pytest.StashKey[Settings]()
SESSION_KEY = pytest.StashKey[Session]()
OWNS_RUN_ID_KEY = pytest.StashKey[bool]()


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(OWNS_RUN_ID_KEY, False):
        os.environ.pop("CHAOS_RUN_ID", None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    """On the controller: every worker's results, counted, and where they are."""
    if os.environ.get("PYTEST_XDIST_WORKER") or SETTINGS_KEY not in config.stash:
        return
    run_dir = Path(config.stash[SETTINGS_KEY].results_dir) / os.environ.get("CHAOS_RUN_ID", "?")
    files = sorted(run_dir.glob("*.json"))
    if not files:
        return
    verdicts: dict[str, int] = {}
    for f in files:
        try:
            r = Result.read(f)
        except (OSError, ValueError):
            verdicts["unreadable"] = verdicts.get("unreadable", 0) + 1
            continue
        key = "passed" if r.verdict.passed else ",".join(r.verdict.reasons) or "failed"
        verdicts[key] = verdicts.get(key, 0) + 1
    terminalreporter.section("chaos results")
    terminalreporter.write_line(f"{len(files)} scenario results in {run_dir}: "
                                + ", ".join(f"{k} {n}" for k, n in sorted(verdicts.items())))
    terminalreporter.write_line(f"render them: chaos report {run_dir} -o reports/")


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("chaos", "chaos: userspace OOM killer scenarios")
    g.addoption("--killer", action="append", default=[],
                help="killer target to test (repeatable; default: every installed one + kernel)")
    g.addoption("--kernel", action="append", default=[],
                help="kernel for VM testbeds: 6.1, 6.12, 6.12-rt, ..., a linux-image-* package, "
                     "or PATH_TO_BZIMAGE[:MODULES_DIR] (repeatable)")
    g.addoption("--testbed", choices=("vm", "local"), default=None, help="where scenarios run")
    g.addoption("--runtime", action="append", default=[], help="cgroup or docker (repeatable)")
    g.addoption("--vm-memory", type=int, default=None, help="guest memory, MiB (default 1024)")
    g.addoption("--swap", type=int, default=None, help="zram swap in the guest, MiB (default 0)")
    g.addoption("--vm-silence", type=int, default=None,
                help="a guest whose agent is silent this many seconds is TESTBED_HUNG at once "
                     "(default 0: only at the scenario's deadline)")
    g.addoption("--slo", action="append", default=[], help="override an SLO: NAME=VALUE")
    g.addoption("--results-dir", default=None, help="where result files go (default results/)")
    g.addoption("--repeat", type=int, default=None, help="run each scenario N times")
    g.addoption("--allow-host-pressure", action="store_true", default=None,
                help="local testbed: allow global memory pressure (dedicated runners only)")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM behaves like Ctrl-C: pytest unwinds and every teardown runs at once."""
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    if not os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("CHAOS_RUN_ID"):
        # One run id for the controller and every xdist worker (they inherit it), so
        # all results of this invocation land in one directory.
        os.environ["CHAOS_RUN_ID"] = new_run_id()
        config.stash[OWNS_RUN_ID_KEY] = True
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    for entry in catalogue.CATALOGUE.values():
        config.addinivalue_line("markers", f"{entry.name}: scenario - {entry.description}")
    cli = {
        "killer": config.getoption("--killer"), "kernel": config.getoption("--kernel"),
        "testbed": config.getoption("--testbed"), "runtime": config.getoption("--runtime"),
        "vm_memory": config.getoption("--vm-memory"), "swap": config.getoption("--swap"),
        "vm_silence": config.getoption("--vm-silence"),
        "slo": config.getoption("--slo"), "results_dir": config.getoption("--results-dir"),
        "repeat": config.getoption("--repeat"),
        "allow_host_pressure": config.getoption("--allow-host-pressure"),
    }
    try:
        settings = resolve(cli, Path(str(config.rootpath)))
        for name in settings.killer:
            targets.load(KillerSpec(name=name))
    except (SettingsError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS_KEY] = settings


def default_killers() -> list[str]:
    """Every registered killer that is installed here, plus the kernel baseline."""
    found = ["kernel"]
    for name in targets.names():
        if name == "kernel":
            continue
        try:
            targets.load(KillerSpec(name=name)).check()
        except Exception:
            continue
        found.append(name)
    return found


@dataclass(frozen=True)
class Case:
    """One cell of the matrix: which killer, on which kernel, with which runtime."""

    killer: str
    kernel: str
    runtime: str
    repeat: int = 0

    @property
    def id(self) -> str:
        label = self.kernel
        if "/" in label:
            label = "local-" + Path(label.split(":")[0]).name
        base = f"{self.killer}-{label}-{self.runtime}"
        return base + (f"-r{self.repeat}" if self.repeat else "")


def _killer_label(name: str) -> str:
    return name.split("=", 1)[0] if name.startswith("exec:") else name


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chaos_case" not in metafunc.fixturenames:
        return
    s = metafunc.config.stash[SETTINGS_KEY]
    killers = list(s.killer) or default_killers()
    kernel_list = list(s.kernel) if s.testbed == "vm" else ["host"]
    cases = [Case(k, kern, rt, rep) for k in killers for kern in kernel_list
             for rt in s.runtime for rep in range(s.repeat)]
    ids = [Case(_killer_label(c.killer), c.kernel, c.runtime, c.repeat).id for c in cases]
    metafunc.parametrize("chaos_case", cases, ids=ids, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Scenario tests get the marker of their scenario name and 'scenario'."""
    for item in items:
        if "chaos_case" in getattr(item, "fixturenames", ()):
            name = item.originalname if isinstance(item, pytest.Function) else item.name
            scenario = name.removeprefix("test_")
            if scenario in catalogue.CATALOGUE:
                item.add_marker(getattr(pytest.mark, scenario))
                if catalogue.CATALOGUE[scenario].smoke:
                    item.add_marker(pytest.mark.smoke)
            item.add_marker(pytest.mark.scenario)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def chaos_settings(pytestconfig: pytest.Config) -> Settings:
    return pytestconfig.stash[SETTINGS_KEY]


@pytest.fixture(scope="session")
def chaos_session(chaos_settings: Settings) -> Iterator[Session]:
    run_id = os.environ.get("CHAOS_RUN_ID") or None
    kw = {"run_id": run_id} if run_id else {}
    with Session(results_dir=Path(chaos_settings.results_dir),
                 slo_overrides=chaos_settings.slo_overrides, **kw) as session:  # type: ignore[arg-type]
        yield session


def show_progress(config: pytest.Config, text: str) -> None:
    """A progress line on the terminal while a scenario runs, also without ``-s``.

    Output capture is suspended for the write; an xdist worker writes to its own
    stderr, which xdist leaves on the terminal, prefixed with the worker id.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    line = f"[chaos{' ' + worker if worker else ''}] {text}"
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.getplugin("terminalreporter")
    if capman is None:
        return
    with capman.global_and_fixture_disabled():
        if reporter is not None and not worker:
            if reporter._tw.width_of_current_line:  # the last cell's "." or "F"
                reporter._tw.line()  # ends that line, or it reads as this cell's result
            reporter.write_line(line)
        else:
            (sys.__stderr__ or sys.stderr).write(line + "\n")
            (sys.__stderr__ or sys.stderr).flush()


class CaseRunner:
    """What a scenario test uses: run a scenario for its matrix cell, check the verdict."""

    def __init__(self, case: Case, session: Session, settings: Settings,
                 config: pytest.Config) -> None:
        self.config = config
        self.case = case
        self.session = session
        self.settings = settings

    @property
    def killer(self) -> KillerSpec:
        return KillerSpec(name=self.case.killer)

    def testbed(self) -> TestbedChoice:
        s = self.settings
        return TestbedChoice(kind=s.testbed, kernel=self.case.kernel, memory_mib=s.vm_memory,
                             cpus=s.vm_cpus, swap_mib=s.swap, arena_mib=s.arena,
                             allow_host_pressure=s.allow_host_pressure,
                             silence_s=float(s.vm_silence))

    def build(self, name: str) -> Scenario:
        return catalogue.get(name).build(self.killer, self.case.runtime)

    def run(self, scenario: Scenario | str) -> Result:
        if isinstance(scenario, str):
            if catalogue.get(scenario).vm_only and self.settings.testbed != "vm":
                not_applicable(f"{scenario} needs the VM testbed, this run uses "
                               f"{self.settings.testbed}")
            scenario = self.build(scenario)
        t0 = time.monotonic()

        label = f"{scenario.id}[{self.case.id}]"

        def progress(text: str) -> None:
            show_progress(self.config, f"{label}: {text} ({time.monotonic() - t0:.0f} s)")

        progress("starting a VM" if self.settings.testbed == "vm" else "starting")

        return self.session.run(scenario, self.testbed(), on_progress=progress)

    def check(self, result: Result) -> None:
        """Fail with the evidence when the verdict did not pass."""
        if result.verdict.passed:
            return
        pytest.fail(explain(result), pytrace=False)


def explain(result: Result) -> str:
    m = result.metrics
    lines = [f"{result.scenario} on {result.kernel.release} ({result.testbed.kind}/"
             f"{result.testbed.accel}) with {result.killer.name}: "
             + ", ".join(result.verdict.reasons)]
    for d in result.verdict.details:
        lines.append(f"  {d.code}: {d.message}")
    lines.append(f"  phases: detect={m.detect_ms} ms teardown={m.teardown_ms} ms "
                 f"time_to_kill={m.time_to_kill_ms} ms recover={m.recover_ms} ms")
    for v in result.victims:
        lines.append(f"  victim {v.instance} pid {v.pid}: died={v.died} killed_by={v.killed_by!r}"
                     f" signal={v.exit_signal}")
    for b in result.bystanders:
        lines.append(f"  bystander {b.instance}: survived={b.survived} "
                     f"worst_stall={b.worst_stall_ms} ms")
    lines.append(f"  result: {result.logs.get('result_path', '?')}")
    if result.error:
        console = result.logs.get("console", "").strip().splitlines()[-15:]
        lines.append("  console (last lines):")
        lines += [f"    {c}" for c in console]
    return "\n".join(lines)


@pytest.fixture
def chaos_case(request: pytest.FixtureRequest, chaos_session: Session,
               chaos_settings: Settings) -> CaseRunner:
    case: Case = request.param
    skip_unless_root()
    if chaos_settings.testbed == "vm":
        skip_unless_qemu()
    try:
        targets.load(KillerSpec(name=case.killer)).check()
    except Exception as exc:
        skip_or_fail(str(exc))
    return CaseRunner(case, chaos_session, chaos_settings, request.config)
