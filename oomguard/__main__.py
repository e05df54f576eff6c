"""Command line: `oomguard --config FILE`, `--check-config FILE`, `--version`.

Exit codes: 0 stopped cleanly (or config OK), 2 refused to start (config,
privileges, a trigger that cannot be armed), 1 crashed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from . import __version__
from .config import Config, ConfigError, load
from .daemon import Daemon, StartError
from .guards import missing_privileges
from .log import JsonLog


def _say(msg: str) -> None:
    print("oomguard: " + " ".join(msg.split("\n")), file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oomguard", description="guarded userspace OOM killer")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config", metavar="FILE", help="run with this TOML config")
    g.add_argument("--check-config", metavar="FILE", help="validate FILE and exit")
    g.add_argument("--version", action="version", version=f"oomguard {__version__}")
    return p


def _reexec_with_malloc(cfg: Config) -> None:
    """prefault_heap: route Python's small objects through glibc malloc too (PYTHONMALLOC
    must be set before the interpreter starts), so the pre-grown, never-trimmed heap
    serves them instead of fresh mmap'd arenas. Same pid; only when run as a program."""
    if not cfg.guards.prefault_heap or "PYTHONMALLOC" in os.environ:
        return
    env = dict(os.environ, PYTHONMALLOC="malloc")
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.check_config:
        try:
            load(args.check_config)
        except ConfigError as e:
            _say(str(e))
            return 2
        print(f"{args.check_config}: OK")
        return 0
    try:
        cfg = load(args.config)
    except ConfigError as e:
        _say(str(e))
        return 2
    why = missing_privileges(cfg)
    if why:
        _say(why)
        return 2
    if argv is None:
        _reexec_with_malloc(cfg)
    try:
        log = JsonLog.open(cfg.log)
    except OSError as e:
        _say(f"cannot open log {cfg.log}: {e.strerror}")
        return 2
    daemon = Daemon(cfg, log)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: daemon.stop(signal.Signals(signum).name))
    try:
        daemon.start()
    except StartError as e:
        log.emit("error", where="start", error=str(e))
        _say(str(e))
        daemon.close()
        log.close()
        return 2
    try:
        return daemon.run()
    finally:
        daemon.close()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
