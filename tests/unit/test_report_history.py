"""History: trends over earlier nights and regressions flagged on the index."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from chaos.report import render
from chaos.report.samples import sample_result


class _Tags(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.data.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.data).split())


def _night(root: Path, name: str, ttks: dict[str, list[float | None]],
           fail: dict[str, int] | None = None) -> Path:
    """One night's results: scenario -> time-to-kill per repeat; fail: scenario -> repeats."""
    directory = root / name
    for scenario, values in ttks.items():
        for i, ttk in enumerate(values):
            failing = i < (fail or {}).get(scenario, 0)
            sample_result(scenario=scenario, run_id=name, started_ns=i, ttk_ms=ttk,
                          fail=("KERNEL_OOM_FIRST",) if failing else ()
                          ).write(directory / f"{scenario}-{i}.json")
    return directory


@pytest.mark.parametrize("before, after, flagged", [
    (300.0, 450.0, True),  # +50 %, +150 ms
    (300.0, 380.0, False),  # +27 % but only +80 ms
    (1000.0, 1200.0, False),  # +200 ms but only +20 %
    (1000.0, 1300.0, True),  # +30 %, +300 ms
    (450.0, 300.0, False),  # faster
])
def test_slower_time_to_kill_is_a_regression_only_past_both_thresholds(
        tmp_path: Path, before: float, after: float, flagged: bool) -> None:
    old = _night(tmp_path, "2026-11-24", {"hog": [before] * 3})
    now = _night(tmp_path, "2026-11-25", {"hog": [after] * 3})
    summary = render([now], tmp_path / "out", history=[old])
    assert [(r.kind, r.before, r.after) for r in summary.regressions] == \
        ([("time_to_kill", before, after)] if flagged else [])
    index = _Tags(summary.index.read_text())
    assert ("Regressions (1)" in index.text) is flagged
    assert ("▲ regression" in index.text) is flagged


def test_a_verdict_flip_is_flagged_on_the_index_with_a_link(tmp_path: Path) -> None:
    old = _night(tmp_path, "2026-11-24", {"hog": [300.0] * 3, "steady": [300.0] * 2})
    now = _night(tmp_path, "2026-11-25", {"hog": [300.0] * 3, "steady": [300.0] * 2},
                 fail={"hog": 1})
    summary = render([now], tmp_path / "out", history=[old])
    assert [(r.scenario, r.kind, r.before, round(r.after, 3)) for r in summary.regressions] == [
        ("hog", "verdict", 1.0, 0.667)]
    index = _Tags(summary.index.read_text())
    assert "hog ▲ verdict pass → fail (pass rate 100 % → 67 %) 2026-11-24" in index.text
    links = [a["href"] for t, a in index.tags if t == "a" and "--hog" in (a.get("href") or "")]
    assert links == ["6.1.0-27-amd64/earlyoom.html#tb-vm-tcg--hog"]


def test_a_scenario_failing_before_and_now_is_no_flip(tmp_path: Path) -> None:
    old = _night(tmp_path, "a", {"hog": [300.0] * 2}, fail={"hog": 1})
    now = _night(tmp_path, "b", {"hog": [300.0] * 2}, fail={"hog": 2})
    assert render([now], tmp_path / "out", history=[old]).regressions == ()


def test_the_latest_earlier_night_is_the_baseline(tmp_path: Path) -> None:
    older = _night(tmp_path, "1", {"hog": [100.0]})
    newer = _night(tmp_path, "2", {"hog": [400.0]})
    now = _night(tmp_path, "3", {"hog": [420.0]})
    assert render([now], tmp_path / "out", history=[older, newer]).regressions == ()
    flagged = render([now], tmp_path / "out2", history=[newer, older]).regressions
    assert [(r.baseline, r.before) for r in flagged] == [("1", 100.0)]


def test_detail_page_has_trend_sparklines_per_scenario(tmp_path: Path) -> None:
    nights = [_night(tmp_path, f"2026-11-2{i}", {"hog": [300.0 + 50 * i] * 2}) for i in range(3)]
    missing = _night(tmp_path, "2026-11-23", {"other": [300.0]})
    now = _night(tmp_path, "now", {"hog": [500.0] * 2})
    summary = render([now], tmp_path / "out", history=[*nights, missing])
    page = _Tags((tmp_path / "out" / "6.1.0-27-amd64" / "earlyoom.html").read_text())
    sparks = [a for t, a in page.tags if t == "svg" and a.get("class") == "spark"]
    assert len(sparks) == 2
    label = sparks[0]["aria-label"] or ""
    assert label == ("time-to-kill p50: 2026-11-20: 300 ms; 2026-11-21: 350 ms; "
                     "2026-11-22: 400 ms; 2026-11-23: –; this report: 500 ms")
    assert (sparks[1]["aria-label"] or "").endswith("this report: 1")
    assert summary.regressions == ()  # 400 -> 500 ms is +25 %, not more


def test_history_that_contains_the_current_results_is_not_counted_twice(tmp_path: Path) -> None:
    now = _night(tmp_path, "now", {"hog": [300.0]})
    summary = render([now], tmp_path / "out", history=[now])
    page = _Tags((tmp_path / "out" / "6.1.0-27-amd64" / "earlyoom.html").read_text())
    assert not [a for t, a in page.tags if t == "svg" and a.get("class") == "spark"]
    assert summary.regressions == ()
    assert "earlier night" not in _Tags(summary.index.read_text()).text
