"""``exec:NAME=COMMAND``: any killer without an adapter, started as given.

Ready when its output contains ``ready_pattern`` (option), or else when it has
stayed alive for ``ready_after_s`` (option, default 1 s). In COMMAND, the
placeholders {workload}, {killer}, {bystanders} and {workdir} are replaced by
the scenario's paths, so a command can point the killer at the right cgroups.
"""

from __future__ import annotations

import re
import shlex
import shutil

from chaos.scenario import KillerSpec, Scenario, SpecError
from chaos.targets.base import Launch, Layout, Target, TargetError

EXEC_RE = re.compile(r"^exec:(?P<name>[A-Za-z0-9_.-]+)=(?P<command>.+)$", re.S)


class ExecTarget(Target):
    name = "exec"

    def __init__(self, label: str, argv: list[str],
                 options: dict[str, str | int | float | bool] | None = None) -> None:
        super().__init__(options)
        self.label = label
        self.argv = argv
        self.binary = argv[0]

    @classmethod
    def from_spec(cls, spec: KillerSpec) -> ExecTarget:
        m = EXEC_RE.match(spec.name)
        if not m:
            raise SpecError(f"killer {spec.name!r}: expected exec:NAME=COMMAND")
        try:
            argv = list(spec.command) or shlex.split(m["command"])
        except ValueError as exc:
            raise SpecError(f"killer {spec.name!r}: cannot parse command: {exc}") from None
        if not argv:
            raise SpecError(f"killer {spec.name!r}: empty command")
        return cls(m["name"], argv, spec.options)

    def check(self) -> None:
        if shutil.which(self.argv[0]) is None:
            raise TargetError(f"killer exec:{self.label}: {self.argv[0]} not found")

    def version(self) -> str:
        return str(self.options.get("version", ""))

    def launch(self, scenario: Scenario, layout: Layout) -> Launch | None:
        subs = {"workload": str(layout.workload), "killer": str(layout.killer),
                "bystanders": str(layout.bystanders), "workdir": str(layout.workdir)}
        argv = [a.format(**subs) if "{" in a else a for a in self.argv]
        pattern = str(self.options.get("ready_pattern", ""))
        after = float(self.options.get("ready_after_s", 0 if pattern else 1.0))
        return Launch(argv=argv, ready_pattern=pattern, ready_after_s=after)
