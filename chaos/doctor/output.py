"""What ``chaos doctor`` prints: aligned lines with their fixes, or one JSON document."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from chaos.doctor.model import Cell, Diagnosis

SCHEMA = 1
NAME_WIDTH = 20  # longer check names (a kernel given by path) push their detail right


def _names(values: Sequence[str]) -> str:
    return ", ".join(dict.fromkeys(values))


def render_text(d: Diagnosis, header: str) -> str:
    lines = [header, ""]
    width = min(NAME_WIDTH, max(len(c.name) for c in d.checks))
    for c in d.checks:
        lines.append(f"  {c.status:<7} {c.name:<{width}}  {c.detail}")
        if c.fix and not c.ok:
            lines.append(f"  {'':<7} {'':<{width}}  fix: {c.fix}")
    lines.append("")
    if d.not_run:
        lines.append(f"Runs that would not happen as asked ({len(d.not_run)} of "
                     f"{d.cells_total}):")
        groups: dict[tuple[str, str], list[Cell]] = {}
        for cell in d.not_run:
            groups.setdefault((cell.outcome, cell.reason), []).append(cell)
        for (outcome, reason), cells in groups.items():
            lines.append(f"  {outcome}  {len(cells)}: {reason}")
            lines.append(f"        scenarios {_names([c.scenario for c in cells])}; killers "
                         f"{_names([c.killer for c in cells])}; kernels "
                         f"{_names([c.kernel for c in cells])}; runtimes "
                         f"{_names([c.runtime for c in cells])}")
    else:
        lines.append(f"All {d.cells_total} runs of the matrix would run "
                     f"(killers: {', '.join(d.killers)}).")
    missing = sum(1 for c in d.checks if c.required and not c.ok)
    warnings = sum(1 for c in d.checks if c.status == "warn")
    if d.valid:
        lines.append(f"chaos doctor: a run would be valid ({warnings} warning"
                     f"{'s' if warnings != 1 else ''}).")
    else:
        lines.append(f"chaos doctor: a run would NOT be valid: {missing} required check"
                     f"{'s' if missing != 1 else ''} failed, {len(d.not_run)} of "
                     f"{d.cells_total} runs would skip or fail.")
    return "\n".join(lines) + "\n"


def to_json(d: Diagnosis, identity: dict[str, str], elapsed_s: float) -> dict[str, Any]:
    return {
        "schema": SCHEMA, "valid": d.valid, **identity,
        "plan": dataclasses.asdict(d.plan), "killers": list(d.killers),
        "checks": [{**dataclasses.asdict(c), "status": c.status} for c in d.checks],
        "runs": {"total": d.cells_total, "not_run": [dataclasses.asdict(c) for c in d.not_run]},
        "elapsed_s": round(elapsed_s, 2),
    }
