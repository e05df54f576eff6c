"""The control row: no userspace killer; the kernel OOM killer is expected to act."""

from __future__ import annotations

import platform

from chaos.scenario import Scenario
from chaos.targets.base import Launch, Layout, Target


class KernelTarget(Target):
    name = "kernel"

    def version(self) -> str:
        return platform.release()

    def launch(self, scenario: Scenario, layout: Layout) -> Launch | None:
        return None
