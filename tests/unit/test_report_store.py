"""The results store: discovery, unreadable files, merge without loss or duplication."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.report.samples import sample_result
from chaos.report.store import identity, load, verdict_of
from chaos.result import Result


def _write(result: Result, path: Path) -> Path:
    result.write(path)
    return path


def test_directories_are_searched_recursively_and_other_json_is_ignored(tmp_path: Path) -> None:
    _write(sample_result(run_id="a"), tmp_path / "r1" / "x" / "result.json")
    _write(sample_result(run_id="b"), tmp_path / "r2" / "result.json")
    (tmp_path / "r2" / "spec.json").write_text(json.dumps({"schema": 1, "id": "s"}))
    (tmp_path / "r2" / "notes.txt").write_text("not json")
    store = load([tmp_path])
    assert [r.result.run_id for r in store.results] == ["a", "b"]
    assert store.unreadable == []


def test_truncated_and_invalid_files_are_named_and_the_rest_is_kept(tmp_path: Path) -> None:
    good = _write(sample_result(run_id="good"), tmp_path / "good.json")
    text = good.read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    bad_type = json.loads(text)
    bad_type["metrics"]["time_to_kill_ms"] = "fast"
    (tmp_path / "typed.json").write_text(json.dumps(bad_type))
    wrong_schema = json.loads(text)
    wrong_schema["schema"] = 99
    (tmp_path / "future.json").write_text(json.dumps(wrong_schema))
    store = load([tmp_path, tmp_path / "missing.json"])
    assert [r.result.run_id for r in store.results] == ["good"]
    problems = {Path(u.path).name: u.problem for u in store.unreadable}
    assert set(problems) == {"cut.json", "typed.json", "future.json", "missing.json"}
    assert problems["cut.json"].startswith("truncated JSON")
    assert "metrics.time_to_kill_ms" in problems["typed.json"]
    assert "schema" in problems["future.json"]


def test_an_explicit_file_that_is_not_a_result_is_named(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text("[1, 2, 3]")
    store = load([other])
    assert not store.results
    assert [u.problem for u in store.unreadable] == [
        "not a result file (no 'schema' and 'scenario')"]


def test_null_samples_in_a_series_are_accepted(tmp_path: Path) -> None:
    raw = json.loads(sample_result().to_json())
    raw["series"]["mem_available_kib"][10] = None
    (tmp_path / "r.json").write_text(json.dumps(raw))
    store = load([tmp_path])
    assert len(store.results) == 1 and not store.unreadable


def test_merging_the_same_bundle_twice_changes_nothing(tmp_path: Path) -> None:
    for i in range(3):
        _write(sample_result(run_id=f"r{i}", started_ns=i), tmp_path / "a" / f"{i}.json")
    copy = tmp_path / "b"
    copy.mkdir()
    for f in (tmp_path / "a").iterdir():
        (copy / f.name).write_text(f.read_text())
    once = load([tmp_path / "a"])
    twice = load([tmp_path / "a", tmp_path / "a", copy, tmp_path / "a" / "0.json"])
    assert [r.result.to_json() for r in once.results] == \
        [r.result.to_json() for r in twice.results]
    assert twice.conflicts == [] and twice.unreadable == []


def test_results_of_many_runners_are_merged_without_loss(tmp_path: Path) -> None:
    # Same run and scenario on two hosts, and two repeats on one host: all distinct.
    a = sample_result(host="runner-1", started_ns=1)
    b = sample_result(host="runner-2", started_ns=1)
    c = sample_result(host="runner-1", started_ns=2)
    _write(a, tmp_path / "h1" / "a.json")
    _write(b, tmp_path / "h2" / "a.json")
    _write(c, tmp_path / "h1" / "c.json")
    store = load([tmp_path / "h2", tmp_path / "h1"])
    assert [r.identity for r in store.results] == sorted([identity(a), identity(b), identity(c)])


def test_conflicting_copies_are_reported_and_resolved_independently_of_order(
        tmp_path: Path) -> None:
    full = sample_result()
    partial = sample_result()
    partial.logs = {}
    _write(full, tmp_path / "x" / "r.json")
    _write(partial, tmp_path / "y" / "r.json")
    one = load([tmp_path / "x", tmp_path / "y"])
    other = load([tmp_path / "y", tmp_path / "x"])
    assert one.conflicts == other.conflicts == [identity(full)]
    assert one.results[0].result.to_json() == other.results[0].result.to_json() \
        == full.to_json()


def test_a_result_without_a_verdict_is_judged(tmp_path: Path) -> None:
    unjudged = sample_result(ttk_ms=None, judged=False)  # never killed
    verdict, judged = verdict_of(unjudged)
    assert judged and not verdict.passed and verdict.reasons == ["NO_KILL"]
    stored = sample_result(fail=("SLOW_KILL",))
    verdict, judged = verdict_of(stored)
    assert not judged and verdict.reasons == ["SLOW_KILL"]


def test_a_result_that_cannot_be_judged_is_named(tmp_path: Path) -> None:
    raw = json.loads(sample_result(judged=False).to_json())
    raw["spec"]["slo"] = {"time_to_kill_ms": "soon"}
    (tmp_path / "odd.json").write_text(json.dumps(raw))
    store = load([tmp_path])
    assert not store.results
    assert [Path(u.path).name for u in store.unreadable] == ["odd.json"]


@pytest.mark.parametrize("tail", ['0.', '-', '1e', 'tr', 'fals', 'n'])
def test_a_file_cut_inside_its_last_value_is_truncated(tail: str, tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_text('{"schema": 1, "a": [1.5, ' + tail)
    store = load([tmp_path / "cut.json"])
    assert store.unreadable[0].problem.startswith("truncated JSON"), store.unreadable


def test_a_whole_but_broken_file_is_not_called_truncated(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"schema": 1, "a": [1.5, x]}\n')
    store = load([tmp_path / "bad.json"])
    assert store.unreadable[0].problem.startswith("not valid JSON"), store.unreadable
