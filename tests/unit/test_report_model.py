"""The report's model: percentiles, cells, columns, page paths."""

from __future__ import annotations

import pytest

from chaos.report import model, paths
from chaos.report.samples import sample_result
from chaos.report.stats import Spread, percentile
from chaos.report.store import Loaded, verdict_of
from chaos.result import Result


def _loaded(result: Result) -> Loaded:
    verdict, judged = verdict_of(result)
    return Loaded(result, verdict, judged)


def test_percentiles_interpolate_between_closest_ranks() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile(range(1, 21), 95) == pytest.approx(19.05)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    assert percentile([None, float("nan"), 3.0, float("inf")], 50) == 3.0
    assert Spread.of([100, 200, None, 300, 400]) == Spread(250.0, 385.0, 4)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_cells_hold_pass_rates_percentiles_and_reason_counts() -> None:
    runs = [sample_result(run_id=f"n{i}", ttk_ms=ttk, started_ns=i,
                          fail=("SLOW_KILL",) if ttk > 450 else ())
            for i, ttk in enumerate([300.0, 400.0, 500.0, 600.0])]
    runs.append(sample_result(run_id="n9", scenario="file_hog", ttk_ms=None, judged=False))
    matrix = model.build([_loaded(r) for r in runs])
    (column,) = matrix.columns
    cell = matrix.cell("earlyoom", column)
    assert cell is not None
    assert (cell.passed, cell.total) == (2, 5)
    assert cell.failed
    assert cell.phases.time_to_kill == Spread(450.0, 585.0, 4)
    assert cell.phases.teardown.p50 == 60.0
    assert dict(cell.reasons) == {"SLOW_KILL": 2, "NO_KILL": 1}
    assert cell.reasons[0] == ("SLOW_KILL", 2)  # most frequent first
    assert [g.scenario for g in cell.scenarios] == ["anon_hog", "file_hog"]
    hog = cell.scenarios[0]
    assert (hog.passed, hog.total, hog.phases.detect.p50) == (2, 4, 390.0)
    assert cell.link == "6.1.0-27-amd64/earlyoom.html#" + column.anchor


def test_columns_split_by_testbed_and_sort_like_versions() -> None:
    runs = [sample_result(release=rel, accel=accel, killer=k, started_ns=i)
            for i, (rel, accel, k) in enumerate([
                ("6.12.57+deb12-amd64", "tcg", "oomd"), ("6.1.0-9-amd64", "kvm", "earlyoom"),
                ("6.1.0-27-amd64", "tcg", "earlyoom"), ("6.1.0-27-amd64", "kvm", "oomd")])]
    matrix = model.build([_loaded(r) for r in runs])
    assert [(c.release, c.accel) for c in matrix.columns] == [
        ("6.1.0-9-amd64", "kvm"), ("6.1.0-27-amd64", "kvm"), ("6.1.0-27-amd64", "tcg"),
        ("6.12.57+deb12-amd64", "tcg")]
    assert matrix.killers == ("earlyoom", "oomd")
    assert matrix.cell("oomd", matrix.columns[0]) is None
    pages = {p.path: p for p in matrix.pages}
    assert set(pages) == {"6.1.0-9-amd64/earlyoom.html", "6.1.0-27-amd64/earlyoom.html",
                          "6.1.0-27-amd64/oomd.html", "6.12.57+deb12-amd64/oomd.html"}


@pytest.mark.parametrize("name", ["../../etc/passwd", "<script>alert(1)</script>", "a/b", "a_b",
                                  "index.html", "..", "", "exec:/usr/bin/x --y", "é"])
def test_path_components_are_safe_and_distinct(name: str) -> None:
    part = paths.component(name)
    assert part and "/" not in part and part not in (".", "..", "index.html")
    assert all(c.isascii() and (c.isalnum() or c in "._+~-") for c in part)
    assert paths.component(name) == part  # stable
    assert paths.component("a/b") != paths.component("a_b")
