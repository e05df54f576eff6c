"""``chaos``: run | report | testbed | kernels | doctor | sweep.

Bad input gets one line on stderr and exit status 2, before anything starts.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos import kernels

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"chaos: {message}", file=sys.stderr)
    return EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"chaos: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


# -- chaos testbed boot -----------------------------------------------------------------------
def _cmd_testbed_boot(args: argparse.Namespace) -> int:
    from chaos.state import RunRecord, new_run_id, sweep
    from chaos.testbeds.vm import TestbedError, VmConfig, boot
    from chaos.testbeds.vm_runner import GUEST_ATTEMPTS, never_started

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _fail("testbed boot: no command given (chaos testbed boot --kernel 6.12 -- CMD...)")
    try:
        from chaos.testbeds.vm import qemu_binary

        qemu_binary()
        kernel = kernels.get(args.kernel)
    except (kernels.KernelError, TestbedError) as exc:
        return _fail(str(exc))
    sweep()
    run_id = new_run_id()
    record = RunRecord.open(run_id)
    cfg = VmConfig(kernel=kernel, memory_mib=args.memory, cpus=args.cpus,
                   swap_mib=args.swap, boot_timeout_s=args.boot_timeout)
    try:
        for attempt in range(1, GUEST_ATTEMPTS + 1):
            with tempfile.TemporaryDirectory(prefix="chaos-boot-") as tmp:
                run = boot(cfg, command, Path(tmp), deadline_s=args.timeout, record=record,
                           name=f"chaos-{run_id}")
            why = never_started(run)
            if not why or attempt == GUEST_ATTEMPTS:
                break
            print(f"chaos: the guest never came up ({why}); the command did not run: "
                  "booting a fresh guest", file=sys.stderr)
    except TestbedError as exc:
        return _fail(str(exc))
    finally:
        record.close()
    sys.stdout.write(run.stdout)
    sys.stderr.write(run.stderr)
    if run.exit_status is None:
        tail = "\n".join(run.console.strip().splitlines()[-20:])
        print(f"chaos: {run.failure}\n--- console (last lines) ---\n{tail}", file=sys.stderr)
        if run.post_mortem:
            print(f"--- {run.post_mortem.rstrip()}", file=sys.stderr)
        return 1
    print(f"chaos: exit status {run.exit_status} (kernel {kernel.release}, {run.accel}, "
          f"guest up in {(run.boot_ms or 0) / 1000:.1f} s, {run.wall_s:.1f} s in all)",
          file=sys.stderr)
    return run.exit_status


def _add_testbed(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("testbed", help="boot throwaway testbeds")
    tsub = p.add_subparsers(dest="testbed_cmd", required=True)
    b = tsub.add_parser("boot", help="run one command in a throwaway VM")
    b.add_argument("--kernel", default=kernels.DEFAULT_KERNEL)
    b.add_argument("--memory", type=int, default=1024, help="MiB")
    b.add_argument("--cpus", type=int, default=2)
    b.add_argument("--swap", type=int, default=0, help="MiB of zram swap")
    b.add_argument("--timeout", type=float, default=300.0, help="seconds for the command")
    b.add_argument("--boot-timeout", type=float, default=90.0, help="seconds to come up")
    b.add_argument("command", nargs=argparse.REMAINDER)
    b.set_defaults(func=_cmd_testbed_boot)


# -- chaos run --------------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    import pytest

    from chaos.settings import SettingsError, resolve

    cli = {"killer": args.killer, "kernel": args.kernel, "testbed": args.testbed,
           "runtime": args.runtime, "results_dir": args.results_dir, "repeat": args.repeat,
           "slo": args.slo, "vm_memory": args.vm_memory, "swap": args.swap,
           "vm_silence": args.vm_silence}
    try:
        settings = resolve(cli, Path.cwd())
    except SettingsError as exc:
        return _fail(str(exc))
    run_id = os.environ.get("CHAOS_RUN_ID")
    if not run_id:
        from chaos.state import new_run_id

        run_id = new_run_id()
    env_before = os.environ.get("CHAOS_RUN_ID")
    os.environ["CHAOS_RUN_ID"] = run_id
    argv = [str(Path(__file__).parent), "-p", "chaos.plugin", "-p", "no:cacheprovider",
            "-q", "-rfE", "--results-dir", settings.results_dir,
            # chaos is imported before pytest starts here: nothing to rewrite, nothing to warn
            "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for k in args.killer:
        argv += ["--killer", k]
    for k in args.kernel:
        argv += ["--kernel", k]
    for r in args.runtime:
        argv += ["--runtime", r]
    for s in args.slo:
        argv += ["--slo", s]
    if args.testbed:
        argv += ["--testbed", args.testbed]
    if args.repeat:
        argv += ["--repeat", str(args.repeat)]
    if args.vm_memory:
        argv += ["--vm-memory", str(args.vm_memory)]
    if args.swap is not None:
        argv += ["--swap", str(args.swap)]
    if args.vm_silence is not None:
        argv += ["--vm-silence", str(args.vm_silence)]
    if args.quick:
        argv += ["-m", "smoke"]
    if args.select:
        argv += ["-k", args.select]
    try:
        status = pytest.main(argv)
    finally:
        if env_before is None:
            os.environ.pop("CHAOS_RUN_ID", None)
    run_dir = Path(settings.results_dir) / run_id
    out = Path(args.output)
    rendered = _render_report([run_dir], out)
    print(f"chaos: results in {run_dir}; report: {rendered}")
    if status in (0, 1):  # 1 = some scenario failed its verdict: that is a finding
        return 0 if status == 0 or not args.strict else 1
    return int(status)


def _render_report(inputs: Sequence[Path], out: Path) -> Path:
    from chaos.report import render

    render(list(inputs), out)
    return out / "index.html"


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the scenario matrix, then write the report")
    p.add_argument("--killer", action="append", default=[])
    p.add_argument("--kernel", action="append", default=[])
    p.add_argument("--runtime", action="append", default=[])
    p.add_argument("--testbed", choices=("vm", "local"))
    p.add_argument("--slo", action="append", default=[])
    p.add_argument("--repeat", type=int)
    p.add_argument("--vm-memory", type=int)
    p.add_argument("--swap", type=int)
    p.add_argument("--vm-silence", type=int, metavar="S",
                   help="a guest whose agent is silent S seconds is TESTBED_HUNG at once")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--quick", action="store_true", help="only the smoke selection")
    p.add_argument("-k", dest="select", help="pytest -k expression, e.g. throttle")
    p.add_argument("-o", "--output", default="reports", help="report directory")
    p.add_argument("--strict", action="store_true", help="exit 1 if any verdict failed")
    p.set_defaults(func=_cmd_run)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from chaos.state import sweep

    for line in sweep():
        print(f"removed {line}")
    return 0


# Modules that add their own sub-commands through ``add_cli(subparsers)``, imported lazily.
SUBCOMMAND_MODULES = ("chaos.kernels", "chaos.report", "chaos.doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="chaos", description="chaos test suite for userspace OOM killers")
    sub: Any = parser.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    _add_run(sub)
    _add_testbed(sub)
    for dotted in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(dotted)
        except ModuleNotFoundError as exc:
            if exc.name != dotted:
                raise
            continue
        module.add_cli(sub)
    s = sub.add_parser("sweep", help="remove what killed runs left behind")
    s.set_defaults(func=_cmd_sweep)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
