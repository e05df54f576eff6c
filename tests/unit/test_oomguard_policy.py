"""oomguard victim selection on fake candidate tables (pure logic, no I/O)."""

from __future__ import annotations

from oomguard.policy import Candidate, Rules, exclusion, matches, rank

MIB = 1 << 20


def proc(
    pid: int, comm: str, size: int, growth: int = 0, score: int = 0, adj: int = 0
) -> Candidate:
    return Candidate(f"pid:{pid}", comm, pid, size * MIB, growth * MIB, score, adj)


def cg(path: str, size: int, growth: int = 0) -> Candidate:
    return Candidate(path, path, 0, size * MIB, growth * MIB)


PROCS = [
    proc(100, "postgres", 900, growth=1, score=300),
    proc(200, "chrome", 600, growth=50, score=800),
    proc(300, "hog", 700, growth=20, score=500),
]


def chosen(cands: list[Candidate], rules: Rules) -> str:
    d = rank(cands, rules)
    return d.chosen.cand.key if d.chosen else ""


def test_select_size_growth_oom_score() -> None:
    assert chosen(PROCS, Rules(select="size")) == "pid:100"
    assert chosen(PROCS, Rules(select="growth")) == "pid:200"
    assert chosen(PROCS, Rules(select="oom_score")) == "pid:200"


def test_ties_fall_back_to_size_then_key() -> None:
    flat = [proc(11, "a", 10), proc(12, "b", 30), proc(13, "c", 30)]
    assert chosen(flat, Rules(select="growth")) == "pid:12"
    assert [r.cand.key for r in rank(flat, Rules()).ranked] == ["pid:12", "pid:13", "pid:11"]


def test_prefer_beats_size_and_avoid_goes_last() -> None:
    assert chosen(PROCS, Rules(prefer=("chrom*",))) == "pid:200"
    d = rank(PROCS, Rules(avoid=("postgres",)))
    assert d.chosen is not None and d.chosen.cand.key == "pid:300"
    assert [r.tier for r in d.ranked] == ["normal", "normal", "avoid"]
    only_avoided = rank(PROCS[:1], Rules(avoid=("postgres",)))
    assert only_avoided.chosen is not None
    assert "only avoided candidates left" in only_avoided.reason
    preferred = rank(PROCS, Rules(prefer=("hog",), avoid=("hog",)))
    assert preferred.chosen is not None and preferred.chosen.tier == "prefer"
    assert "preferred by 'hog'" in preferred.reason


def test_protect_patterns_pids_self_init_and_adj() -> None:
    rules = Rules(protect=("postgres",), protect_pids=frozenset({200}), self_pid=300)
    d = rank(PROCS, rules)
    assert d.chosen is None
    assert {r.cand.key: r.excluded for r in d.excluded} == {
        "pid:100": "protect:postgres",
        "pid:200": "protect_pids",
        "pid:300": "self",
    }
    assert "no eligible candidate (3 excluded)" == d.reason
    assert exclusion(proc(1, "init", 5), Rules()) == "init"
    assert exclusion(proc(7, "sshd", 5, adj=-1000), Rules()) == "oom_score_adj=-1000"
    assert exclusion(proc(7, "sshd", 5, adj=-999), Rules()) == ""


def test_cgroup_patterns_match_path_or_last_component() -> None:
    groups = [
        cg("/sys/fs/cgroup/chaos/workload/db", 900),
        cg("/sys/fs/cgroup/chaos/workload/hog", 500, growth=40),
        cg("/sys/fs/cgroup/chaos/workload/batch", 700),
    ]
    assert matches(["db"], groups[0].name) == "db"
    assert matches(["*/workload/d?"], groups[0].name) == "*/workload/d?"
    assert matches(["workload"], groups[0].name) == ""
    assert chosen(groups, Rules(protect=("db",))) == groups[2].key
    assert chosen(groups, Rules(select="growth")) == groups[1].key
    assert chosen(groups, Rules(prefer=("*/b*",))) == groups[2].key
    # pid-based exclusions never apply to a cgroup row (pid 0)
    assert chosen(groups, Rules(self_pid=0, protect_pids=frozenset({0}))) == groups[0].key


def test_extra_vetoes_from_outside_the_pure_function() -> None:
    groups = [cg("/cg/a", 900), cg("/cg/b", 100)]
    d = rank(groups, Rules(), {"/cg/a": "contains protected pid 42"})
    assert d.chosen is not None and d.chosen.cand.key == "/cg/b"
    assert d.excluded[0].excluded == "contains protected pid 42"


def test_decision_logs_sizes_and_reason() -> None:
    d = rank(PROCS, Rules(select="size"))
    assert d.reason == f"select=size: highest size ({900 * MIB}) of 3 normal candidate(s)"
    assert d.chosen is not None
    row = d.chosen.as_log()
    assert row == {
        "id": "pid:100",
        "name": "postgres",
        "size": 900 * MIB,
        "growth": MIB,
        "oom_score": 300,
        "pid": 100,
        "tier": "normal",
    }
    assert rank([], Rules()).chosen is None
