"""Timeline extraction and its SVG chart."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from chaos.report import svg, timeline
from chaos.report.samples import sample_result
from chaos.result import Event


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(markup: str) -> _Elements:
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    return parser


@pytest.mark.parametrize("detail, seconds", [
    ("duration_ms=12.5", 0.0125), ("duration=3ms", 0.003), ("took 250 us", 0.00025),
    ("pid 42 duration_ns=5000000", 0.005), ("stalled for 1.5s", 1.5), ("dur: 7", 0.007),
    ("order=0 nr_reclaimed=32", None), ("", None)])
def test_durations_are_read_from_event_details(detail: str, seconds: float | None) -> None:
    got = timeline.duration_s(detail)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


def test_a_realistic_run_becomes_series_spans_and_markers_relative_to_danger() -> None:
    result = sample_result(ttk_ms=420.0, teardown_ms=60.0, reclaim_ms=(12.0, 30.0))
    assert len(result.series["t_ns"]) == 500  # 50 Hz for 10 s
    tl = timeline.build(result)
    assert tl.origin.startswith("danger")
    assert [(s.name, s.panel) for s in tl.series] == [
        ("mem_available_kib", "memory"), ("psi_full_avg10", "percent"),
        ("psi_some_avg10", "percent")]
    mem = tl.series[0]
    assert mem.points[0][0] == pytest.approx(-4.0)  # danger 4 s after the first sample
    assert mem.points[0][1] == pytest.approx(1024 * 0.8, abs=3)  # MiB
    assert [(s.kind, round(s.end - s.start, 4)) for s in tl.spans] == [
        ("reclaim", 0.012), ("reclaim", 0.03)]
    assert tl.spans[0].start == pytest.approx(0.04)
    kinds = {m.kind: m.x for m in tl.markers}
    assert kinds["danger"] == 0.0
    assert kinds["signal"] == pytest.approx(0.36)
    assert kinds["exit"] == pytest.approx(0.42)
    assert tl.x_min == pytest.approx(-4.0) and tl.x_max == pytest.approx(5.98)


def test_begin_end_pairs_and_stalls_become_spans() -> None:
    result = sample_result(reclaim_ms=())
    t0 = result.t0_ns
    assert t0 is not None
    result.events += [
        Event(t0 + 100_000_000, "reclaim_begin", pid=7),
        Event(t0 + 150_000_000, "reclaim_begin", pid=8),
        Event(t0 + 300_000_000, "reclaim_end", pid=7),
        Event(t0 + 200_000_000, "bystander_stall", pid=9, detail="stalled 80 ms"),
    ]
    tl = timeline.build(result)
    spans = [(s.kind, round(s.start, 3), round(s.end, 3), s.open) for s in tl.spans]
    assert ("reclaim", 0.1, 0.3, False) in spans
    assert ("stall", 0.2, 0.28, False) in spans
    assert ("reclaim", 0.15, round(tl.x_max, 3), True) in spans  # pid 8 never ended


def test_a_run_without_danger_is_drawn_from_its_first_sample() -> None:
    result = sample_result(ttk_ms=None)
    result.t0_ns = None
    tl = timeline.build(result)
    assert "first sample" in tl.origin
    assert tl.series[0].points[0][0] == 0.0
    assert all(m.kind != "danger" for m in tl.markers)


def test_any_numeric_series_is_plotted_with_a_legend_entry() -> None:
    result = sample_result()
    n = len(result.series["t_ns"])
    result.series = {"t_ns": result.series["t_ns"], "mem_available_kib": [5e5] * n,
                     "psi_some_pct": [3.0] * n, "psi_full_pct": [1.0] * n,
                     "pgscan_direct": [float(i) for i in range(n)]}
    chart = str(svg.timeline_chart(timeline.build(result), "t"))
    parsed = _parse(chart)
    text = " ".join(parsed.text)
    for name in ("mem_available_kib", "psi_some_pct", "psi_full_pct", "pgscan_direct",
                 "memory (MiB)", "pressure (%)", "seconds since danger"):
        assert name in text
    paths = [a for tag, a in parsed.elements if tag == "path" and a.get("class") == "series"]
    assert len(paths) == 4 and all((a.get("d") or "").startswith("M") for a in paths)
    lines = {a.get("class") for tag, a in parsed.elements if tag == "line"}
    assert {"marker marker-danger", "marker marker-signal", "marker marker-exit"} <= lines
    assert any(tag == "rect" and a.get("class") == "span span-reclaim"
               for tag, a in parsed.elements)


def test_long_series_are_thinned_but_keep_their_extremes() -> None:
    result = sample_result(hz=1000, seconds=10.0)
    n = len(result.series["t_ns"])
    spike = [1.0] * n
    spike[n // 2 + 1] = 90.0
    result.series = {"t_ns": result.series["t_ns"], "psi_some_avg10": spike}
    chart = str(svg.timeline_chart(timeline.build(result), "t"))
    d = next(a["d"] for tag, a in _parse(chart).elements
             if tag == "path" and a.get("class") == "series" and a.get("d"))
    assert d is not None
    assert d.count("L") < 4 * svg.PLOT_W  # not 10000 points
    ys = [float(c.split()[1]) for c in d.replace("M", "L").split("L") if c]
    assert max(ys) - min(ys) > 50  # the spike survived the thinning


def test_chart_text_from_results_is_escaped() -> None:
    result = sample_result()
    n = len(result.series["t_ns"])
    result.series["<script>alert(1)</script>"] = [1.0] * n
    result.events.append(Event(result.t0_ns or 0, "signal", comm='"><script>x</script>',
                               detail="</title><script>alert(2)</script>"))
    chart = str(svg.timeline_chart(timeline.build(result), 'run "<b>"'))
    parsed = _parse(chart)
    assert "script" not in {tag for tag, _ in parsed.elements}
    assert "<script>" not in chart
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in chart


def test_zoom_is_offered_when_the_kill_is_a_sliver_of_the_run() -> None:
    tl = timeline.build(sample_result(ttk_ms=400.0))
    close = tl.zoom()
    assert close is not None
    assert close.x_min < 0 < 0.4 < close.x_max < 2
    assert any(m.kind == "exit" for m in close.markers)
    assert timeline.build(sample_result(ttk_ms=None)).zoom() is None


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    lo, hi, ticks = svg.nice_ticks(-4.0, 5.98, 9)
    assert lo <= -4.0 and hi >= 5.98
    assert ticks[0] == lo and ticks[-1] == hi
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1 and steps.pop() in (1.0, 2.0, 2.5)


def test_sparkline_has_a_gap_for_missing_nights_and_describes_itself() -> None:
    spark = str(svg.sparkline([100.0, None, 300.0], ["mon", "tue", "now"], "ttk", unit=" ms"))
    parsed = _parse(spark)
    d = next(a["d"] for tag, a in parsed.elements if tag == "path")
    assert d is not None and d.count("M") == 2
    assert "tue: –" in " ".join(parsed.text)
    assert str(svg.sparkline([None, None], ["a", "b"], "x")) == ""
