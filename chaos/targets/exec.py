"""``exec:NAME=COMMAND``: any killer without an adapter, started as given.

Ready when its output contains ``ready_pattern`` (option), or else when it has
stayed alive for ``ready_after_s`` (option, default 1 s). In COMMAND, the
placeholders {workload}, {killer}, {bystanders}, {harness}, {cgroup_root} and
{workdir} are replaced by the scenario's paths, so a command can point the killer
at the right cgroups; any other braces are left alone (regexes keep theirs).
"""

from __future__ import annotations

import re
import shlex
import shutil
from dataclasses import dataclass

from chaos.scenario import KillerSpec, Params, Scenario, SpecError
from chaos.targets.base import Launch, Layout, Target, TargetError
from chaos.targets.options import parse_options

EXEC_RE = re.compile(r"^exec:(?P<name>[A-Za-z0-9_.-]+)=(?P<command>.*)$", re.S)
USAGE = "expected exec:NAME=COMMAND (NAME of letters, digits, '_', '.', '-')"


@dataclass(frozen=True)
class ExecOptions:
    ready_pattern: str = ""  # ready when a line of its output contains this
    ready_after_s: float = -1.0  # ... or when alive this long (default 0 with a pattern, else 1)
    ready_timeout_s: float = 30.0
    version: str = ""  # what to record as its version (nothing is run to find out)


class ExecTarget(Target):
    name = "exec"

    def __init__(self, label: str, argv: list[str], options: Params | None = None) -> None:
        super().__init__(options)
        self.label = label
        self.argv = argv
        self.binary = argv[0]
        self.opts = parse_options(ExecOptions, self.options, f"exec:{label}")
        if self.opts.ready_timeout_s <= 0:
            raise SpecError(f"killer exec:{label}: ready_timeout_s must be > 0")

    @classmethod
    def from_spec(cls, spec: KillerSpec) -> ExecTarget:
        m = EXEC_RE.match(spec.name)
        if not m:
            raise SpecError(f"killer {spec.name!r}: {USAGE}")
        try:
            argv = list(spec.command) or shlex.split(m["command"])
        except ValueError as exc:
            raise SpecError(f"killer {spec.name!r}: cannot parse command: {exc}") from None
        if not argv:
            raise SpecError(f"killer {spec.name!r}: empty command; {USAGE}")
        return cls(m["name"], argv, spec.options)

    def check(self) -> None:
        if shutil.which(self.argv[0]) is None:
            raise TargetError(f"killer exec:{self.label}: {self.argv[0]} not found")

    def version(self) -> str:
        return self.opts.version

    def launch(self, scenario: Scenario, layout: Layout) -> Launch:
        subs = {"workload": layout.workload, "killer": layout.killer,
                "bystanders": layout.bystanders, "harness": layout.harness,
                "cgroup_root": layout.cgroup_root, "workdir": layout.workdir}
        argv = []
        for arg in self.argv:
            for key, path in subs.items():
                arg = arg.replace("{" + key + "}", str(path))
            argv.append(arg)
        o = self.opts
        after = o.ready_after_s if o.ready_after_s >= 0 else (0.0 if o.ready_pattern else 1.0)
        return Launch(argv=argv, ready_pattern=o.ready_pattern, ready_after_s=after,
                      ready_timeout_s=o.ready_timeout_s)
