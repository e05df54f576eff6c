"""Killers side by side on the same trouble, and oomguard's guards ablated one by one.

Prints tables; not a test. Every run is a real scenario in a real VM; the
results are kept (--results-dir) so `chaos report` can render them.

    python benchmarks/killers.py --kernel 6.12 --scenario spike --scenario throttle \\
        --killer oomguard --killer earlyoom --killer oomd --repeat 3
    python benchmarks/killers.py --ablation --scenario spike --scenario cpu_starve

Columns: pass = verdicts passed / runs; flake = share of runs whose verdict differs
from the most common one (10 repeats of a healthy scenario: the stability check);
ttk = time-to-kill p50 (p95) in ms over the runs where the victim died (danger to
victim gone); early = runs in which the victim was signalled before the danger line (or
danger never came): their ttk is the victim's teardown alone, not a race from danger;
detect = its first part, danger to the fatal signal (the killer's own
share; the rest is the victim's exit, the kernel's work);
teardown cpu / wait / reclaim / steal = that exit's p50s from the victim's context switches:
on a CPU (the kernel freeing its pages), runnable but waiting for a CPU, and the rest of a
reclaim pass under way at the signal (the kernel acts on the signal after it); then the
vCPU time the host took away during it, summed over vCPUs (chaos.testbeds.steal: time a
guest counts as on a CPU includes it); waited behind = the two tasks that took the victim's
CPU when it was preempted in its teardown, with the mean ms it then waited (per run);
who = who killed the victim (killer/kernel/-);
reclaim = the killer's direct-reclaim episodes summed over runs (tracepoints)
and their total ms; majflt = the killer's major page faults after ready, summed over
runs (its own pages evicted and read back), and how many of them fell around danger;
reasons = the failure codes seen. Percentiles are the report's (chaos.report.stats).
Then, per scenario, oomguard's ttk p50 against half the best other killer's (issue #7),
each over the runs that reached the danger line, the other killers' over the runs they
passed; runs in which a killer killed before danger ever came (a pre-emption: its ttk
is then a teardown alone) are counted apart, and the last column answers again with
them counted too.
Runs go in rounds (every scenario and killer once, then again), so a slow hour of
the host falls on every killer alike. --from DIR re-renders both tables from kept
results, without running anything.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from chaos import catalogue, kernels, targets
from chaos.probes.phases import acted_before_danger
from chaos.report.stats import Spread
from chaos.report.store import load
from chaos.result import Result
from chaos.scenario import KillerSpec, Params, SpecError
from chaos.session import Session, TestbedChoice
from chaos.targets.oomguard import GUARDS


def p50(values: list[float | None]) -> str:
    return _ms(Spread.of(values).p50)


def p50_p95(values: list[float | None]) -> str:
    s = Spread.of(values)
    return "-" if s.p50 is None or s.p95 is None else f"{s.p50:.0f} ({s.p95:.0f})"


@dataclass
class Row:
    scenario: str
    killer: str
    results: list[Result] = field(default_factory=list)

    def results_ttk(self) -> list[float | None]:
        return [r.metrics.time_to_kill_ms for r in self.results]

    def cells(self) -> tuple[str, ...]:
        rs = self.results
        passed = sum(r.verdict.passed for r in rs)
        ttk_s = p50_p95(self.results_ttk())
        detect_s = p50_p95([r.metrics.detect_ms for r in rs])
        teardown_s = " / ".join(p50([getattr(r.metrics, k) for r in rs]) for k in (
            "victim_teardown_on_cpu_ms", "victim_teardown_runnable_ms",
            "victim_reclaim_after_signal_ms", "vcpu_steal_teardown_ms"))
        behind: Counter[str] = Counter()
        for r in rs:
            behind.update(r.metrics.victim_teardown_preempted_by)
        behind_s = ", ".join(f"{comm} {ms / len(rs):.0f}" for comm, ms in behind.most_common(2))
        who = Counter(v.killed_by or "-" for r in rs for v in r.victims if v.expected)
        episodes = sum(r.metrics.killer_reclaim_episodes for r in rs)
        reclaim_ms = sum(r.metrics.killer_reclaim_total_ms for r in rs)
        majflt = sum(r.metrics.killer_major_faults for r in rs)
        majflt_window = sum(r.metrics.killer_major_faults_in_window for r in rs)
        reasons = Counter(c for r in rs for c in r.verdict.reasons)
        verdicts = Counter(",".join(r.verdict.reasons) or "PASS" for r in rs)
        flake = 1 - verdicts.most_common(1)[0][1] / len(rs) if rs else 0.0
        early = sum(acted_before_danger(r.t0_ns, r.victims) for r in rs)
        return (self.scenario, self.killer, f"{passed}/{len(rs)}", f"{flake:.0%}", ttk_s,
                str(early), detect_s,
                teardown_s, behind_s or "-",
                ",".join(f"{k}:{n}" for k, n in sorted(who.items())),
                f"{episodes} / {reclaim_ms:.0f} ms", f"{majflt} / {majflt_window}",
                ",".join(f"{k}:{n}" for k, n in sorted(reasons.items())) or "-")


def table(rows: list[Row]) -> str:
    header = ("scenario", "killer", "pass", "flake", "ttk p50 (p95) ms", "early",
              "detect p50 (p95) ms", "teardown cpu / wait / reclaim / steal", "waited behind",
              "who killed",
              "killer reclaim", "majflt / near danger",
              "reasons")
    return columns(header, [r.cells() for r in rows])


def columns(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = [header, *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def raced(results: list[Result]) -> list[Result]:
    """The runs in which the danger line was reached: only these time a race from danger.
    In the others the killer killed while the testbed was still above the line (oomd's
    `memory_above` counts page cache as used on `pagecache`), so danger never came and the
    suite's time-to-kill falls back to the victim's teardown alone."""
    return [r for r in results if r.t0_ns is not None]


def pre_empted(results: list[Result]) -> list[Result]:
    """The runs in which the victim was killed and danger never came."""
    return [r for r in results if r.t0_ns is None and r.metrics.time_to_kill_ms is not None]


def halves(rows: list[Row]) -> str:
    """Per scenario: is oomguard's ttk p50 at most half the best other killer's (issue #7)?

    The other killers' times count only from runs they passed: where the kernel killed
    first (KERNEL_OOM_FIRST) the time is the kernel's, and where a killer also killed a
    bystander (OVERKILL) its early kill is not one to beat. oomguard's count from all its
    runs. Both sides count only runs that reached danger (`raced`). Runs in which another
    killer pre-empted danger are counted in their own column, and the last column
    gives the answer with their teardown-only times counted too, so either reading
    can be checked."""
    out: list[tuple[str, ...]] = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        ours = [r for r in rows if r.scenario == scenario and r.killer.startswith("oomguard")]
        others = [r for r in rows
                  if r.scenario == scenario and not r.killer.startswith("oomguard")]
        if len(ours) != 1 or not others:
            continue
        mine = _p50(raced(ours[0].results))
        best = _best([(_p50(raced(passed(r.results))), r) for r in others])
        strict = _best([(_p50(passed(r.results)), r) for r in others])
        left_out = [note for r in others if (note := _left_out(r))]
        if best is None and strict is None:
            out.append((scenario, _ms(mine), "-", "-", "no other killer passed",
                        ", ".join(left_out), "-"))
            continue
        out.append((scenario, _ms(mine), _named(best), _ms(best and best[0] / 2),
                    _meets(mine, best), ", ".join(left_out) or "-",
                    f"{_named(strict)}: {_meets(_p50(ours[0].results), strict)}"))
    header = ("scenario", "oomguard ttk p50", "best other p50", "half", "oomguard <= half",
              "others' runs left out", "counting no-danger runs too")
    return columns(header, out)


def passed(results: list[Result]) -> list[Result]:
    return [r for r in results if r.verdict.passed]


def _left_out(row: Row) -> str:
    """Which of another killer's runs the race reading leaves out, and why."""
    n = len(row.results)
    failed = n - len(passed(row.results))
    early = len(pre_empted(passed(row.results)))
    parts = ([f"{failed} of {n} failed"] if failed else []) + (
        [f"{early} of {n} before danger"] if early else [])
    return f"{row.killer} {', '.join(parts)}" if parts else ""


def _p50(results: list[Result]) -> float | None:
    """ttk p50 of some of a row's runs (Row.results_ttk is all of them)."""
    return Spread.of([r.metrics.time_to_kill_ms for r in results]).p50


def _best(timed: list[tuple[float | None, Row]]) -> tuple[float, Row] | None:
    known = [(p50, r) for p50, r in timed if p50 is not None]
    return min(known, key=lambda pair: pair[0]) if known else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _named(best: tuple[float, Row] | None) -> str:
    return "-" if best is None else f"{best[0]:.0f} ({best[1].killer})"


def _meets(mine: float | None, best: tuple[float, Row] | None) -> str:
    return "-" if mine is None or best is None else ("yes" if mine <= best[0] / 2 else "no")


def _run_order(run_id: str) -> tuple[str, int]:
    """A session numbers its runs SESSION.N, N counting up."""
    session, _, n = run_id.rpartition(".")
    return session, int(n) if n.isdigit() else 0


def label(killer: str, options: Params) -> str:
    """A row's name from its killer and options, the same for a live run and a re-render:
    a guard turned off is "-guard", any other option "key=value"."""
    parts = [f"-{k.removeprefix('guard_')}" if k.startswith("guard_") and v is False
             else f"{k}={v}" for k, v in sorted(options.items())]
    return " ".join([killer, *parts])


def run_order(scenarios: list[str], configs: list[tuple[str, Params]],
              repeat: int) -> list[tuple[int, str, str, Params]]:
    """(round, scenario, killer, options) in the order they run: round by round, every
    scenario and killer once a round. This host's speed drifts by the hour (one
    killer's p50 moved 24-83 ms between batches), so a killer's runs are spread over
    the batch rather than run back to back, where a slow hour would fall on one side."""
    return [(n, name, killer, options) for n in range(1, repeat + 1)
            for name in scenarios for killer, options in configs]


def preflight(scenarios: list[str], configs: list[tuple[str, Params]]) -> str | None:
    """The first bad cell as one line (an unknown scenario or killer, a bad option), or
    None: checked before the first run, since in rounds a bad cell would come up only
    after the others had run."""
    for name in scenarios:
        for killer, options in configs:
            try:
                spec = KillerSpec(killer, options)
                catalogue.get(name).build(spec, "cgroup").validate()
                targets.load(spec)
            except (KeyError, SpecError) as exc:
                return str(exc).strip("'\"")
    return None


def from_dirs(dirs: list[Path]) -> list[Row]:
    """Rows from kept results (the report's loader): one per scenario and killer (with
    its options), in the order they ran."""
    store = load(dirs)
    for bad in store.unreadable:
        print(f"killers.py: skipped {bad.path}: {bad.problem}", file=sys.stderr)
    rows: dict[tuple[str, str], Row] = {}
    for r in sorted((x.result for x in store.results), key=lambda r: _run_order(r.run_id)):
        killer = r.spec.get("killer", {})
        name = label(killer.get("name", "?"), killer.get("options", {}))
        rows.setdefault((r.scenario, name), Row(r.scenario, name)).results.append(r)
    return list(rows.values())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kernel", default=kernels.DEFAULT_KERNEL)
    ap.add_argument("--scenario", action="append", default=[])
    ap.add_argument("--killer", action="append", default=[])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ablation", action="store_true",
                    help="oomguard with every guard on, then each guard off in turn")
    ap.add_argument("--guard", action="append", default=[], choices=GUARDS,
                    help="with --ablation: only these guards are turned off in turn")
    ap.add_argument("--swap", type=int, default=0, metavar="MIB",
                    help="zram swap in the guest (anonymous pages can then be evicted too)")
    ap.add_argument("--oomguard-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an OomguardOptions field for every oomguard run, e.g. reap_after_ms=500")
    ap.add_argument("--results-dir", type=Path, default=Path("results/benchmarks"))
    ap.add_argument("--from", dest="from_dirs", action="append", default=[], type=Path,
                    metavar="DIR", help="print the tables from the results kept in DIR "
                    "(a run directory; repeatable) instead of running")
    a = ap.parse_args()
    if a.from_dirs:
        missing = [str(d) for d in a.from_dirs if not d.is_dir()]
        if missing:
            print(f"killers.py: no such results directory: {', '.join(missing)}",
                  file=sys.stderr)
            return 2
        kept = from_dirs(a.from_dirs)
        print(table(kept))
        print()
        print(halves(kept))
        return 0
    extra: Params = {}
    for item in a.oomguard_option:
        key, _, value = item.partition("=")
        extra[key] = int(value) if value.isdigit() else value
    if a.ablation:
        configs: list[tuple[str, Params]] = [("oomguard", extra)]
        configs += [("oomguard", {**extra, f"guard_{g}": False}) for g in (a.guard or GUARDS)]
    else:
        configs = [(k, extra if k == "oomguard" else {})
                   for k in (a.killer or ["oomguard", "earlyoom", "oomd"])]
    if a.repeat < 1:
        print("killers.py: --repeat must be at least 1", file=sys.stderr)
        return 2
    scenarios = a.scenario or ["spike"]
    bad = preflight(scenarios, configs)
    if bad:
        print(f"killers.py: {bad}", file=sys.stderr)
        return 2
    kernel = kernels.get(a.kernel)
    rows = {(name, label(killer, options)): Row(name, label(killer, options))
            for name in scenarios for killer, options in configs}
    with Session(results_dir=a.results_dir) as session:
        for n, name, killer, options in run_order(scenarios, configs, a.repeat):
            row = rows[(name, label(killer, options))]
            scenario = catalogue.get(name).build(KillerSpec(killer, options), "cgroup")
            r = session.run(scenario, TestbedChoice(kind="vm", kernel=kernel.package,
                                                      swap_mib=a.swap))
            row.results.append(r)
            print(f"# round {n} {name} {row.killer}: {'pass' if r.verdict.passed else 'FAIL'} "
                  f"{','.join(r.verdict.reasons)} ttk={r.metrics.time_to_kill_ms}",
                  file=sys.stderr, flush=True)
        print(f"kernel {kernel.release}, results in {session.run_dir}")
    print(table(list(rows.values())))
    print()
    print(halves(list(rows.values())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
