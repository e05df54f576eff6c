"""What a killer target is: how the agent configures, starts, and reads a killer.

A target never decides who killed whom (the kernel's evidence does, see
``chaos.probes.attribution``); it only knows its own killer: binary, version,
configuration for this scenario, readiness evidence, and its log format.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from chaos.result import Event
from chaos.scenario import Scenario


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


class Target:
    """Base class; subclasses set ``name`` and ``binary`` and override what differs."""

    name = "base"
    binary: str | None = None
    version_args: tuple[str, ...] = ("--version",)

    def __init__(self, options: dict[str, str | int | float | bool] | None = None) -> None:
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
        try:
            out = subprocess.run([path, *self.version_args], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        text = (out.stdout or out.stderr).strip().splitlines()
        return text[0] if text else ""

    def launch(self, scenario: Scenario, layout: Layout) -> Launch | None:
        """The process to start, or None when there is no userspace killer."""
        raise NotImplementedError

    def parse_log(self, text: str) -> list[Event]:
        """Supporting evidence from the killer's own log (never used for attribution)."""
        return []
