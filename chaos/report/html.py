"""The report's pages as text: index.html, glossary.html and one page per killer x kernel.

Everything goes through Jinja with autoescaping on; the only unescaped inserts
are the constant style sheet and SVG built by ``svg`` (itself escaped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
from markupsafe import Markup

from chaos.probes.phases import victim_gone_ns
from chaos.report import glossary, paths, svg
from chaos.report import timeline as timeline_mod
from chaos.report.history import History, Regression
from chaos.report.markup import el, join
from chaos.report.model import Cell, DetailPage, Matrix, ScenarioKey
from chaos.report.store import Identity, Loaded, Unreadable
from chaos.report.templates import CSS, TEMPLATES
from chaos.result import Result
from chaos.verdict import REASONS

LOG_LIMIT = 1 << 20  # characters of one log shown on a page (its tail)


@dataclass(frozen=True)
class Inputs:
    """Everything a page may show; the pages are a pure function of this."""

    results: Sequence[Loaded]
    unreadable: Sequence[Unreadable]
    conflicts: Sequence[Identity]
    matrix: Matrix
    history: History


def ms(value: float | int | None) -> str:
    if value is None or isinstance(value, bool):
        return "–"
    v = float(value)
    if v != v or v in (float("inf"), float("-inf")):
        return "–"
    return f"{v:,.0f} ms" if abs(v) >= 10 else f"{v:.1f} ms"


def pct(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.0f} %"


def evidence(value: float | int | str | None) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "null" if value is None else str(value)


def rel_seconds(t_ns: int | None, result: Result) -> str:
    if t_ns is None:
        return "–"
    zero = result.t0_ns if result.t0_ns is not None else result.started_ns
    return f"{(t_ns - zero) / 1e9:+.3f}"


def system_info(result: Result) -> list[tuple[str, str]]:
    k, t, x = result.kernel, result.testbed, result.killer
    rows = [
        ("kernel", k.release), ("kernel package", k.package), ("kernel cmdline", k.cmdline),
        ("testbed", f"{t.kind} · accelerator {t.accel}"), ("host", t.host),
        ("memory", f"{t.memory_mib} MiB"), ("swap", f"{t.swap_mib} MiB"),
        ("arena", f"{t.arena_mib} MiB" if t.arena_mib else "none (global pressure)"),
        ("cpus", str(t.cpus)), ("boot", ms(t.boot_ms)),
        ("vCPU steal", "" if t.vcpu_steal_pct is None else
         f"{t.vcpu_steal_pct:g}% of the vCPUs' time went waiting for a host CPU"),
        ("killer", f"{x.name} {x.version}".strip()),
        ("killer pids", ", ".join(str(p) for p in x.pids)),
        ("killer exited", f"yes (status {x.exit_status})" if x.exited else "no"),
        ("suite revision", result.suite_revision),
        ("started_ns / ended_ns / t0_ns", f"{result.started_ns} / {result.ended_ns} / "
                                          f"{result.t0_ns}"),
    ]
    rows += [(f"system: {key}", result.system[key]) for key in sorted(result.system)]
    return [(key, value) for key, value in rows if value]


def logs(result: Result) -> list[tuple[str, str]]:
    out = [(name, result.logs[name]) for name in sorted(result.logs)]
    if result.killer.log:
        out.append((f"killer output ({result.killer.name})", result.killer.log))
    return out


def tail(text: str) -> str:
    if len(text) <= LOG_LIMIT:
        return text
    return f"[… first {len(text) - LOG_LIMIT} characters not shown; see the result file]\n" \
        + text[-LOG_LIMIT:]


def regression_text(r: Regression) -> str:
    if r.kind == "verdict":
        return f"verdict pass → fail (pass rate {pct(r.before)} → {pct(r.after)})"
    worse = (r.after / r.before - 1) * 100 if r.before else float("inf")
    return f"time-to-kill p50 {ms(r.before)} → {ms(r.after)} (+{worse:.0f} %)"


def _environment(data: Inputs) -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.DictLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    history = data.history
    cells = {(c.killer, c.column): c for c in data.matrix.cells.values()}

    def regression_link(r: Regression) -> str:
        cell = cells[(r.key[0], r.key[1])]
        group = next(g for g in cell.scenarios if g.scenario == r.key[2])
        return f"{cell.page}#{group.anchor}"

    def cell_regressed(cell: Cell) -> bool:
        return any(r.key[0] == cell.killer and r.key[1] == cell.column
                   for r in history.regressions)

    def trend(key: ScenarioKey) -> Markup:
        points = history.trends.get(key, ())
        labels = list(history.labels)
        ttk = svg.sparkline([p.ttk_p50 if p else None for p in points], labels,
                            "time-to-kill p50", unit=" ms")
        rates = svg.sparkline([p.pass_rate if p else None for p in points], labels,
                              "pass rate", fixed=(0.0, 1.0))
        return join([el("span", {"class": "spark-row"}, el("span", {"class": "spark-label"},
                                                          "p50"), ttk),
                     el("span", {"class": "spark-row"}, el("span", {"class": "spark-label"},
                                                          "pass"), rates)])

    env.filters.update({
        "ms": ms, "pct": pct, "evidence": evidence, "rel": rel_seconds,
        "gone_ns": victim_gone_ns,
        "system_info": system_info, "logs": logs, "tail": tail,
        "line_count": lambda text: text.count("\n") + (0 if text.endswith("\n") else 1),
        "plural": lambda n: "" if n == 1 else "s",
        "code_anchor": code_anchor,
        "reason_text": lambda code: REASONS.get(code, "(a code this version does not know)"),
        "counted": lambda codes: [(c, 1) for c in codes],
        "timeline": timeline_mod.build,
        "chart": svg.timeline_chart,
        "trend": trend, "regression_text": regression_text,
        "regression_link": regression_link, "cell_regressed": cell_regressed,
    })
    return env


def code_anchor(code: str) -> str:
    return paths.component(code)


def _footer(data: Inputs) -> str:
    n = len(data.results)
    text = f"{n} result{'s' if n != 1 else ''}"
    bad = len(data.unreadable)
    if bad:
        text += f" ({bad} unreadable input{'s' if bad != 1 else ''})"
    nights = len(data.history.labels) - 1
    if nights:
        text += f" and {nights} earlier night{'s' if nights != 1 else ''}"
    return text


def render_pages(data: Inputs) -> dict[str, str]:
    """Every page of the report: relative path -> HTML text."""
    env = _environment(data)
    common = {"css": Markup(CSS), "footer": _footer(data), "history": data.history}
    runs = sorted({r.result.run_id for r in data.results})
    hosts = sorted({r.result.testbed.host for r in data.results})
    pages = {
        paths.INDEX: env.get_template("index").render(
            common, title="Reliability of userspace OOM killers", root="",
            results=data.results, runs=runs, hosts=hosts, matrix=data.matrix,
            regressions=data.history.regressions, unreadable=data.unreadable,
            conflicts=data.conflicts),
        paths.GLOSSARY: env.get_template("glossary").render(
            common, title="Glossary", root="", terms=glossary.terms(),
            reasons=glossary.reasons(), chart_help=glossary.CHART_HELP,
            example=svg.timeline_chart(glossary.example_timeline(), "example timeline")),
    }
    for page in data.matrix.pages:
        pages[page.path] = _detail(env, common, page)
    return pages


def _detail(env: jinja2.Environment, common: dict[str, object], page: DetailPage) -> str:
    title = f"{page.killer or '(unknown killer)'} on {page.release or '(unknown kernel)'}"
    return env.get_template("detail").render(common, title=title, root=paths.to_root(page.path),
                                             page=page)
