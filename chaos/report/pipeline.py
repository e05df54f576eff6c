"""render(): result files in, a publishable report directory out.

The report is a pure function of the result files: no clock, no host state,
every collection sorted, so the same inputs give byte-identical pages.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from chaos.report import history as history_mod
from chaos.report import model, output
from chaos.report.history import Night, Regression
from chaos.report.html import Inputs, render_pages
from chaos.report.store import Unreadable, load


@dataclass(frozen=True)
class ReportSummary:
    out_dir: Path
    index: Path
    pages: tuple[Path, ...]  # every file written, index and glossary included
    results: int  # distinct results rendered
    unreadable: tuple[Unreadable, ...]  # inputs (and history files) that were skipped
    conflicts: int  # identities claimed by differing files
    regressions: tuple[Regression, ...]


def render(inputs: Sequence[Path], out_dir: Path, history: Sequence[Path] = (),
           stderr: TextIO | None = None) -> ReportSummary:
    """Render the report of ``inputs`` (files or directories) into ``out_dir``.

    Each unreadable input is named in one warning line on stderr, listed on the
    index, and skipped; everything else is rendered.
    """
    err = stderr if stderr is not None else sys.stderr
    store = load([Path(p) for p in inputs])
    nights: list[Night] = []
    unreadable = list(store.unreadable)
    for directory in history:
        night = load([Path(directory)])
        nights.append(Night(_night_label(Path(directory)), tuple(night.results)))
        unreadable += [Unreadable(u.path, f"{u.problem} (history)") for u in night.unreadable]
    unreadable = sorted(set(unreadable), key=lambda u: (u.path, u.problem))
    matrix = model.build(store.results)
    trends = history_mod.build(nights, matrix, store.results)
    pages = render_pages(Inputs(store.results, unreadable, store.conflicts, matrix, trends))
    written = output.write_pages(Path(out_dir), pages)
    for u in unreadable:
        print(f"chaos report: warning: skipped unreadable {_printable(u.path)}: "
              f"{_printable(u.problem)}", file=err)
    return ReportSummary(Path(out_dir), Path(out_dir) / "index.html", tuple(written),
                         len(store.results), tuple(unreadable), len(store.conflicts),
                         trends.regressions)


def _night_label(directory: Path) -> str:
    return directory.name or str(directory)


def _printable(text: str) -> str:
    """One line, whatever the file name holds."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
