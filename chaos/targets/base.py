"""What a killer target is: how the agent configures, starts, and reads a killer.

A target never decides who killed whom (the kernel's evidence does, see
``chaos.probes.attribution``); it only knows its own killer: binary, version,
configuration for this scenario, readiness evidence, and its log format.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos.result import Event
from chaos.scenario import Params, Scenario


class TargetError(RuntimeError):
    """A killer cannot run; the message is one line for the user."""


@dataclass(frozen=True)
class Layout:
    """Where things are inside the testbed for this scenario."""

    cgroup_root: Path  # the scenario's cgroup tree, e.g. /sys/fs/cgroup/chaos-<run>
    cgroup_version: int
    workdir: Path  # scratch directory for configs and logs
    harness_pids: tuple[int, ...] = ()

    def cgroup(self, rel: str) -> Path:
        return self.cgroup_root / rel

    @property
    def workload(self) -> Path:
        return self.cgroup("arena/workload")

    @property
    def bystanders(self) -> Path:
        return self.cgroup("arena/bystanders")

    @property
    def killer(self) -> Path:
        return self.cgroup("killer")

    @property
    def harness(self) -> Path:
        return self.cgroup("harness")

    @property
    def cgroup_mount(self) -> Path:
        """The cgroup2 mount the tree lives in (killers want paths relative to it)."""
        return self.cgroup_root.parent

    def relative(self, path: Path) -> str:
        """``path`` relative to the cgroup mount, e.g. ``chaos-<run>/arena/workload``."""
        return str(path.relative_to(self.cgroup_mount))


@dataclass
class Launch:
    """How to start the killer: argv, its config file, when it counts as ready."""

    argv: list[str]
    config_text: str = ""
    config_path: Path | None = None
    ready_pattern: str = ""  # ready when this appears in its output ...
    ready_after_s: float = 0.0  # ... or, with no pattern, when alive this long
    ready_timeout_s: float = 30.0
    env: dict[str, str] = field(default_factory=dict)
    side_log: Path | None = None  # a second log the killer writes (e.g. oomd's kill log)


class Target:
    """Base class; subclasses set ``name`` and ``binary`` and override what differs."""

    name = "base"
    binary: str | None = None
    version_args: tuple[str, ...] = ("--version",)

    def __init__(self, options: Params | None = None) -> None:
        self.options = dict(options or {})

    def check(self) -> None:
        """Raise TargetError unless the killer can run here."""
        if self.binary and shutil.which(self.binary) is None:
            raise TargetError(f"killer {self.name}: {self.binary} is not installed")

    def version(self) -> str:
        if not self.binary:
            return ""
        path = shutil.which(self.binary)
        if path is None:
            return ""
        return first_line([path, *self.version_args])

    def launch(self, scenario: Scenario, layout: Layout) -> Launch | None:
        """The process to start, or None when there is no userspace killer."""
        raise NotImplementedError

    def validate(self, launch: Launch) -> None:
        """Check the written config with the killer's own checker; TargetError if bad."""

    def side_log(self, launch: Launch) -> str:
        """Text of the killer's second log, if it has one (kept with its output)."""
        if launch.side_log is None:
            return ""
        try:
            return launch.side_log.read_text(errors="replace")
        except OSError:
            return ""

    def parse_line(self, line: str) -> Event | None:
        """One known log line -> a supporting event (t_ns 0 unless the line has a time)."""
        return None

    def parse_log(self, text: str) -> list[Event]:
        """Supporting evidence from the killer's own log (never used for attribution)."""
        return [e for e in map(self.parse_line, text.splitlines()) if e is not None]

    def log_events(self, lines: Iterable[tuple[int, str]]) -> list[Event]:
        """Parse lines stamped with their arrival time; a time in the line itself wins."""
        out: list[Event] = []
        for t_ns, line in lines:
            event = self.parse_line(line)
            if event is not None:
                if not event.t_ns:
                    event.t_ns = t_ns
                out.append(event)
        return out


def killer_event(detail: str, pid: int = 0, signal: int = 0, t_ns: int = 0,
                 comm: str = "") -> Event:
    """A supporting event read from a killer's log."""
    return Event(t_ns=t_ns, kind="killer_log", pid=pid, comm=comm, signal=signal,
                 source="killer-log", detail=detail)


def first_line(argv: Sequence[str], timeout_s: float = 10) -> str:
    """First line a command prints (stdout, else stderr); '' if it cannot run."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout.strip() or out.stderr.strip()).splitlines()
    return text[0].strip() if text else ""


def run_checker(killer: str, argv: Sequence[str], ok: str = "",
                timeout_s: float = 30) -> None:
    """Run a killer's config checker; TargetError (one line, its last words) unless it
    exits 0 and, if ``ok`` is given, prints it."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TargetError(f"killer {killer}: cannot check its config: {exc}") from None
    text = out.stdout + out.stderr
    if out.returncode == 0 and (not ok or ok in text):
        return
    raise TargetError(f"killer {killer}: config rejected by {Path(argv[0]).name} "
                      f"(status {out.returncode}): {tail(text)}")


def tail(text: str, lines: int = 5, width: int = 600) -> str:
    """The last non-empty lines of a log, joined into one line."""
    kept = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    joined = " | ".join(kept) or "(no output)"
    return joined if len(joined) <= width else "..." + joined[-width:]
