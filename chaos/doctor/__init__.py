"""``chaos doctor``: would a run on this machine be valid, and if not, what fixes it.

Facts are gathered once, cheaply and without changing anything on the host (no VM
boot unless ``--probe-kvm``; ``measure``), then judged by pure functions into small
records (``checks``): a check (ok, detail, the command that fixes it) and the runs of
the scenario matrix that would be skipped or fail. Judging is separate from measuring
so it can be tested with fake facts. Exit status: 0 a run would be valid, 1 something
is missing or some runs would skip or fail, 2 bad usage.

Only the standard library is imported here: the CLI imports this package on every
``chaos`` command.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaos.doctor.model import Facts, Plan

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def gather(plan: Plan, probe_kvm: bool = False) -> Facts:
    """Measure this machine (see chaos.doctor.measure)."""
    from chaos.doctor import measure

    return measure.gather(plan, probe_kvm)


def plan_from(args: argparse.Namespace) -> Plan:
    """The run ``chaos run`` would do with these options, env and config (SettingsError)."""
    from chaos import catalogue
    from chaos.doctor.model import Plan
    from chaos.settings import resolve
    from chaos.testbeds.local import DEFAULT_ARENA_MIB, MIN_FREE_FOR_GLOBAL_MIB

    s = resolve({"testbed": args.testbed, "kernel": args.kernel, "killer": args.killer,
                 "runtime": args.runtime, "vm_memory": args.vm_memory}, Path.cwd())
    return Plan(testbed=s.testbed, killers=s.killer, kernels=s.kernel, runtimes=s.runtime,
                scenarios=tuple(catalogue.CATALOGUE), vm_memory_mib=s.vm_memory,
                arena_mib=s.arena or DEFAULT_ARENA_MIB, allow_host_pressure=s.allow_host_pressure,
                min_free_global_mib=MIN_FREE_FOR_GLOBAL_MIB)


def _identity() -> dict[str, str]:
    from chaos.session import suite_revision

    return {"host": platform.node(), "host_kernel": platform.release(),
            "suite_revision": suite_revision()}


def _usage(message: str) -> int:
    print(f"chaos: doctor: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from chaos.doctor.checks import diagnose
    from chaos.doctor.output import render_text, to_json
    from chaos.scenario import SpecError
    from chaos.settings import SettingsError

    t0 = time.monotonic()
    try:
        plan = plan_from(args)
        if plan.killers:
            from chaos import targets
            from chaos.scenario import KillerSpec

            for name in plan.killers:
                targets.load(KillerSpec(name=name))  # unknown names are bad usage, as in run
    except (SettingsError, SpecError) as exc:
        return _usage(str(exc))
    facts = gather(plan, probe_kvm=args.probe_kvm)
    d = diagnose(facts, plan)
    identity = _identity()
    if args.json:
        print(json.dumps(to_json(d, identity, time.monotonic() - t0), indent=1))
    else:
        header = (f"chaos doctor: testbed {plan.testbed} on {identity['host']} "
                  f"(kernel {identity['host_kernel']}, suite {identity['suite_revision']})")
        sys.stdout.write(render_text(d, header))
    return EXIT_VALID if d.valid else EXIT_INVALID


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``chaos doctor``; its ``func(args)`` returns the exit status."""
    p = subparsers.add_parser(
        "doctor", help="check this machine for everything a run needs",
        description="Check this machine for everything a run with the same options needs, "
                    "print what is missing with the command that fixes it and which runs "
                    "would be skipped or fail. Exit 0: a run would be valid; 1: it would not; "
                    "2: bad usage. Changes nothing; boots no VM unless --probe-kvm.")
    p.add_argument("--testbed", choices=("vm", "local"))
    p.add_argument("--kernel", action="append", default=[], help="as for chaos run (repeatable)")
    p.add_argument("--killer", action="append", default=[], help="as for chaos run (repeatable)")
    p.add_argument("--runtime", action="append", default=[], help="cgroup or docker (repeatable)")
    p.add_argument("--vm-memory", type=int, help="guest memory, MiB")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--probe-kvm", action="store_true",
                   help="boot a tiny guest under KVM if no earlier probe is remembered")
    func: Callable[[argparse.Namespace], int] = run
    p.set_defaults(func=func)
