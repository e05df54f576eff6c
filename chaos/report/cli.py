"""`chaos report RESULTS... -o OUT [--history DIR...]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from chaos.report.pipeline import render


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand; its ``func(args)`` returns the exit status."""
    parser = subparsers.add_parser(
        "report", help="render HTML reliability reports from result files",
        description="Render the killer x kernel matrix, one page per killer on each kernel, "
                    "and a glossary into OUT, from result JSON files or directories of them. "
                    "Unreadable files are named on stderr and listed in the report.")
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS",
                        help="result .json files, or directories searched recursively")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUT",
                        help="directory to write the report into (created if needed)")
    parser.add_argument("--history", nargs="+", action="extend", type=Path, default=[],
                        metavar="DIR",
                        help="earlier nights' result directories, oldest first (one per "
                             "night), for trends and regressions")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = render(args.results, args.out, args.history)
    print(f"chaos report: {summary.results} result{'s' if summary.results != 1 else ''}, "
          f"{len(summary.unreadable)} unreadable, {len(summary.regressions)} "
          f"regression{'s' if len(summary.regressions) != 1 else ''} -> {summary.index}")
    return 0 if summary.results else 1
