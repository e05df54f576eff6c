"""HTML reliability reports: results store, merge, model, charts and pages.

``render(inputs, out_dir, history)`` writes ``index.html`` (the killer x kernel
matrix), ``<kernel>/<killer>.html`` (every scenario with its evidence and
timeline charts) and ``glossary.html`` into one self-contained directory: no
scripts, no external fetches, inline CSS and SVG. ``add_cli`` adds
``chaos report`` to the suite's command line.
"""

from __future__ import annotations

from chaos.report.cli import add_cli
from chaos.report.pipeline import ReportSummary, render

__all__ = ["ReportSummary", "add_cli", "render"]
