"""The ``cgroup`` runtime: the stressor is a plain process in its own cgroup v2 scope.

No daemon: the agent starts the process (``chaos.procs.spawn``: scheduling
and oom_score_adj reset, parent-death signal) directly in
``arena/workload/<instance>``, whose limits the launcher has already written.
The handle is the ``Child`` itself; whatever the stressor forks (many hogs, a
fork storm) is killed with the scope (``cgroup.kill``) by the launcher.
"""

from __future__ import annotations

import os
from pathlib import Path

from chaos.procs import Child, spawn
from chaos.runtimes.base import Plan, Site
from chaos.stressors.common import GATE_ENV

READY = '"event": "start"'  # every stressor's first progress line


class CgroupRuntime:
    name = "cgroup"

    def __init__(self, site: Site) -> None:
        self.site = site

    def start(self, plan: Plan, cgroup: Path, env: dict[str, str], gated: bool = False) -> Child:
        """``gated``: the process starts and imports, then waits for ``Launcher.go``."""
        full = {**os.environ, **env, **({GATE_ENV: "stdin"} if gated else {})}
        return spawn(plan.spec.instance, plan.argv, cgroup, env=full, ready_pattern=READY,
                     stdin_pipe=gated)

    def close(self) -> None:
        pass
