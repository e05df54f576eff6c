"""Charts as inline SVG: the timeline of one run and trend sparklines.

No scripts, no external references: every chart is static markup built with
``markup.el``, so every label taken from a result is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from chaos.report.markup import el, join, num
from chaos.report.timeline import MARKER_LABELS, SPAN_LABELS, Series, Timeline

WIDTH = 960
LEFT, RIGHT = 70, 20
PLOT_W = WIDTH - LEFT - RIGHT
PANEL_GAP = 26
AXIS_H = 40
LEGEND_ROW = 20
PALETTE = ("#2563eb", "#0d9488", "#7c3aed", "#b45309", "#db2777", "#475569", "#15803d",
           "#0891b2")
MARKER_STYLE = {  # colour, dash pattern
    "danger": ("#ea580c", "6 3"),
    "signal": ("#dc2626", ""),
    "exit": ("#111827", "2 2"),
    "oom_kill": ("#9333ea", "8 3 2 3"),
}
SPAN_FILL = {"reclaim": "#f59e0b", "stall": "#64748b"}
PANEL_TITLES = {"memory": "memory (MiB)", "percent": "pressure (%)"}


@dataclass(frozen=True)
class _Panel:
    title: str
    series: tuple[tuple[Series, str], ...]  # with colour
    top: float
    height: float
    y_min: float
    y_max: float
    ticks: tuple[float, ...]

    def y(self, value: float) -> float:
        span = self.y_max - self.y_min or 1.0
        return self.top + self.height - (value - self.y_min) / span * self.height


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[float, float, tuple[float, ...]]:
    """Round axis bounds and tick values covering [lo, hi]."""
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    stop = math.ceil(hi / step - 1e-9) * step
    n = int(round((stop - start) / step))
    return start, stop, tuple(round(start + i * step, 10) for i in range(n + 1))


def tick_label(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _panels(timeline: Timeline, top: float) -> list[_Panel]:
    groups: dict[str, list[Series]] = {}
    for s in timeline.series:
        groups.setdefault(s.panel, []).append(s)
    order = sorted(groups, key=lambda p: ({"memory": 0, "percent": 1}.get(p, 2), p))
    colours = {s.name: PALETTE[i % len(PALETTE)] for i, s in enumerate(timeline.series)}
    panels: list[_Panel] = []
    for name in order:
        values = [v for s in groups[name] for _, v in s.points if v is not None]
        lo, hi = min(values), max(values)
        if name in ("memory", "percent"):
            lo = min(lo, 0.0)
        if name == "percent":
            hi = max(hi, 1.0)
        y_min, y_max, ticks = nice_ticks(lo, hi, 4)
        height = 150.0 if name == "memory" else 110.0 if name == "percent" else 90.0
        panels.append(_Panel(PANEL_TITLES.get(name, name),
                             tuple((s, colours[s.name]) for s in groups[name]),
                             top, height, y_min, y_max, ticks))
        top += height + PANEL_GAP
    return panels


def _path(points: Sequence[tuple[float, float | None]], x_of: _XMap, panel: _Panel) -> str:
    """Path data, thinned to at most a first/min/max/last per pixel column."""
    commands: list[str] = []
    pen_down = False
    bucket: list[tuple[float, float]] = []
    bucket_px: int | None = None

    def flush() -> None:
        nonlocal pen_down
        if not bucket:
            return
        keep = {0, len(bucket) - 1,
                min(range(len(bucket)), key=lambda i: bucket[i][1]),
                max(range(len(bucket)), key=lambda i: bucket[i][1])}
        for i in sorted(keep):
            x, y = bucket[i]
            commands.append(f"{'L' if pen_down else 'M'}{num(x)} {num(y)}")
            pen_down = True
        bucket.clear()

    for xs, ys in points:
        if ys is None:
            flush()
            pen_down = False
            continue
        x, y = x_of(xs), panel.y(ys)
        if int(x) != bucket_px:
            flush()
            bucket_px = int(x)
        bucket.append((x, y))
    flush()
    return "".join(commands)


class _XMap:
    def __init__(self, x_min: float, x_max: float) -> None:
        self.x_min, self.x_max = x_min, x_max

    def __call__(self, x: float) -> float:
        return LEFT + (x - self.x_min) / (self.x_max - self.x_min) * PLOT_W


def timeline_chart(timeline: Timeline, title: str) -> Markup:
    """The timeline of one run: panels of series sharing an x axis, spans and markers."""
    if timeline.empty:
        return Markup("")
    legend = _legend_items(timeline)
    rows = math.ceil(len(legend) / 4)
    top = 12 + rows * LEGEND_ROW + 8
    panels = _panels(timeline, top)
    x_min, x_max, x_ticks = nice_ticks(timeline.x_min, timeline.x_max, 9)
    x_of = _XMap(x_min, x_max)
    plot_top = top
    plot_bottom = (panels[-1].top + panels[-1].height) if panels else top + 60
    height = plot_bottom + AXIS_H
    parts: list[Markup] = [el("title", None, title)]
    parts.append(_legend(legend))
    if not panels:
        parts.append(el("text", {"x": LEFT + 4, "y": top + 30, "class": "note"},
                        "no sampled series in this result"))
    for panel in panels:
        parts.append(_panel_frame(panel))
    for span in timeline.spans:
        x0, x1 = x_of(span.start), x_of(max(span.end, span.start))
        parts.append(el("rect", {
            "x": x0, "y": float(plot_top), "width": max(x1 - x0, 1.5),
            "height": plot_bottom - plot_top, "fill": SPAN_FILL[span.kind],
            "fill-opacity": "0.28", "class": f"span span-{span.kind}"},
            el("title", None, f"{SPAN_LABELS[span.kind]}: {span.start:.3f} s to "
                              f"{span.end:.3f} s{' (no end seen)' if span.open else ''}; "
                              f"{span.label}")))
    for panel in panels:
        for series, colour in panel.series:
            data = _path(series.points, x_of, panel)
            if data:
                parts.append(el("path", {"d": data, "fill": "none", "stroke": colour,
                                         "stroke-width": "1.6", "class": "series"},
                                el("title", None, series.name)))
    for marker in timeline.markers:
        colour, dash = MARKER_STYLE[marker.kind]
        x = x_of(marker.x)
        parts.append(el("line", {
            "x1": x, "x2": x, "y1": float(plot_top - 4), "y2": plot_bottom,
            "stroke": colour, "stroke-width": "1.8", "stroke-dasharray": dash or None,
            "class": f"marker marker-{marker.kind}"},
            el("title", None, f"{MARKER_LABELS[marker.kind]} at {marker.x:.3f} s: "
                              f"{marker.label}")))
    parts.append(_x_axis(x_ticks, x_of, plot_bottom, timeline.origin))
    return el("svg", {"viewBox": f"0 0 {WIDTH} {num(height)}", "width": WIDTH,
                      "height": num(height), "role": "img", "aria-label": title,
                      "class": "timeline", "preserveAspectRatio": "xMinYMin meet"},
              join(parts))


def _panel_frame(panel: _Panel) -> Markup:
    parts = [el("rect", {"x": LEFT, "y": panel.top, "width": PLOT_W, "height": panel.height,
                         "class": "frame"})]
    for t in panel.ticks:
        y = panel.y(t)
        parts.append(el("line", {"x1": LEFT, "x2": LEFT + PLOT_W, "y1": y, "y2": y,
                                 "class": "grid"}))
        parts.append(el("text", {"x": LEFT - 6, "y": y + 4, "class": "tick",
                                 "text-anchor": "end"}, tick_label(t)))
    parts.append(el("text", {"x": LEFT + 6, "y": panel.top + 14, "class": "panel-title"},
                    panel.title))
    return join(parts)


def _x_axis(ticks: Sequence[float], x_of: _XMap, y: float, origin: str) -> Markup:
    parts: list[Markup] = []
    for t in ticks:
        x = x_of(t)
        parts.append(el("line", {"x1": x, "x2": x, "y1": y, "y2": y + 5, "class": "axis"}))
        parts.append(el("text", {"x": x, "y": y + 18, "class": "tick", "text-anchor": "middle"},
                        tick_label(t)))
    parts.append(el("text", {"x": LEFT + PLOT_W / 2, "y": y + 34, "class": "axis-title",
                             "text-anchor": "middle"}, f"seconds since {origin}"))
    return join(parts)


def _legend_items(timeline: Timeline) -> list[tuple[str, str, str]]:
    """(kind, colour or marker/span kind, label) for everything drawn."""
    items = [("series", PALETTE[i % len(PALETTE)], s.name)
             for i, s in enumerate(timeline.series)]
    for kind in sorted({s.kind for s in timeline.spans}):
        items.append(("span", kind, SPAN_LABELS[kind]))
    for kind in MARKER_STYLE:
        if any(m.kind == kind for m in timeline.markers):
            items.append(("marker", kind, MARKER_LABELS[kind]))
    return items


def _legend(items: Sequence[tuple[str, str, str]]) -> Markup:
    parts: list[Markup] = []
    col_w = PLOT_W / 4
    for i, (kind, style, label) in enumerate(items):
        x = LEFT + (i % 4) * col_w
        y = 12 + (i // 4) * LEGEND_ROW + 8
        if kind == "series":
            swatch = el("line", {"x1": x, "x2": x + 22, "y1": y - 4, "y2": y - 4,
                                 "stroke": style, "stroke-width": "3"})
        elif kind == "span":
            swatch = el("rect", {"x": x, "y": y - 11, "width": 22, "height": 12,
                                 "fill": SPAN_FILL[style], "fill-opacity": "0.35"})
        else:
            colour, dash = MARKER_STYLE[style]
            swatch = el("line", {"x1": x + 11, "x2": x + 11, "y1": y - 13, "y2": y + 3,
                                 "stroke": colour, "stroke-width": "2",
                                 "stroke-dasharray": dash or None})
        text = label if len(label) <= 28 else label[:27] + "…"
        parts.append(el("g", {"class": "legend-item"}, swatch,
                        el("text", {"x": x + 28, "y": y, "class": "legend"}, text,
                           el("title", None, label))))
    return el("g", {"class": "legend"}, join(parts))


def sparkline(values: Sequence[float | None], labels: Sequence[str], title: str,
              fixed: tuple[float, float] | None = None, unit: str = "") -> Markup:
    """A small trend line; None is a night without data (a gap). The last point is now."""
    width, height, pad = 120.0, 26.0, 3.0
    known = [v for v in values if v is not None and math.isfinite(v)]
    described = "; ".join(f"{label}: {'–' if v is None else f'{v:,.4g}{unit}'}"
                          for label, v in zip(labels, values, strict=True))
    if not known:
        return Markup("")
    lo, hi = fixed if fixed else (min(known), max(known))
    if hi - lo < 1e-12:
        lo, hi = lo - 1, hi + 1
    n = len(values)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (i / (n - 1) if n > 1 else 0.5) * (width - 2 * pad)
        return x, height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)

    segments: list[str] = []
    pen = False
    dots: list[Markup] = []
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            pen = False
            continue
        x, y = xy(i, v)
        segments.append(f"{'L' if pen else 'M'}{num(x)} {num(y)}")
        pen = True
        dots.append(el("circle", {"cx": x, "cy": y, "r": 2.6 if i == n - 1 else 1.6,
                                  "class": "now" if i == n - 1 else "then"}))
    return el("svg", {"viewBox": f"0 0 {num(width)} {num(height)}", "width": num(width),
                      "height": num(height), "role": "img", "aria-label": f"{title}: {described}",
                      "class": "spark"},
              el("title", None, f"{title}: {described}"),
              el("path", {"d": "".join(segments), "fill": "none", "class": "spark-line"}),
              join(dots))
