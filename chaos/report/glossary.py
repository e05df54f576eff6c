"""The words a report uses, defined once; glossary.html is rendered from here.

Danger is defined by ``chaos.scenario.DangerSpec`` and the reason codes by
``chaos.verdict.REASONS``: both are read from there, never restated.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass

from chaos.report.history import SLOWER_MIN_MS, SLOWER_RATIO
from chaos.report.timeline import Marker, Series, Span, Timeline
from chaos.scenario import DangerSpec
from chaos.verdict import REASONS


@dataclass(frozen=True)
class Term:
    anchor: str
    word: str
    text: str


def danger_text() -> str:
    """DangerSpec's docstring as plain prose (reStructuredText marks removed)."""
    text = inspect.cleandoc(DangerSpec.__doc__ or "").replace("\n", " ")
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return " ".join(re.sub(r"\*([^*\s][^*]*)\*", r"\1", text).split())


TERMS: tuple[Term, ...] = (
    Term("danger", "danger", ""),  # filled from DangerSpec in terms()
    Term("detect", "detect",
         "From danger to the moment the fatal signal was sent (metrics.detect_ms)."),
    Term("teardown", "teardown",
         "From the fatal signal to the moment the victim was gone (metrics.teardown_ms): "
         "how long the kernel took to tear the process down and free its memory. Where "
         "traced, it is split by the victim's context switches into on CPU (mostly the "
         "kernel freeing its pages), waiting for a CPU, and asleep; 'in reclaim' is the "
         "part it spent finishing a reclaim pass that was under way when the signal came "
         "(the kernel acts on the signal only when the pass returns). 'behind' names the "
         "tasks that took its CPU when it was preempted, with the wait after each; 'vCPU "
         "time the host took' is how long the host kept the guest's vCPUs waiting for a "
         "host CPU in the teardown (summed over vCPUs; the guest counts that as on a CPU)."),
    Term("exit-at", "exit at, collected at",
         "In a run's victim table: 'exit at' is when the kernel recorded the victim's exit "
         "(sched:sched_process_exit, after its memory was released), the end of its "
         "time-to-kill; 'collected at' is when its pidfd said it had exited and the "
         "harness collected it. In between: the rest of its exit (closing its files, "
         "handing its children to a new parent, its other threads) and the harness's own "
         "delay (metrics.exit_lag_ms, the largest over the victims); time-to-kill does not "
         "count it."),
    Term("recover", "recover",
         "From the victim gone to memory and pressure back to normal (metrics.recover_ms)."),
    Term("time-to-kill", "time-to-kill",
         "detect + teardown: from danger to the victim gone (metrics.time_to_kill_ms). "
         "The matrix shows its p50 and p95 over every run in a cell."),
    Term("pass-rate", "pass rate",
         "The share of runs whose verdict passed. A verdict fails with one or more reason "
         "codes; a result file without a verdict is judged by chaos.verdict when the report "
         "is rendered (marked 'judged by the report')."),
    Term("percentiles", "p50, p95",
         "Percentiles over repeats, linear between closest ranks (numpy's default): p50 of "
         "1, 2, 3, 4 ms is 2.5 ms. Runs without a value (no kill) are left out and counted "
         "separately (n)."),
    Term("testbed", "testbed and accelerator",
         "Where a run happened: vm (a qemu guest booting the kernel) or local (this machine); "
         "the accelerator is kvm, tcg (software emulation) or none. Timings under tcg are "
         "slower and are never pooled with others: each is a column of its own."),
    Term("regression", "regression",
         "Compared with the latest earlier night (--history) that ran the same scenario on the "
         "same column: a verdict flip (every run passed then, one fails now), or time-to-kill "
         f"p50 worse by more than {round((SLOWER_RATIO - 1) * 100)} % and by more than "
         f"{SLOWER_MIN_MS:.0f} ms."),
)


def terms() -> tuple[Term, ...]:
    return tuple(Term(t.anchor, t.word, danger_text()) if t.anchor == "danger" else t
                 for t in TERMS)


def reasons() -> tuple[tuple[str, str], ...]:
    return tuple(REASONS.items())


CHART_HELP: tuple[tuple[str, str], ...] = (
    ("x axis", "Seconds relative to danger (t0): negative is before the trouble began. "
               "A run that never reached danger is drawn from its first sample instead, "
               "and says so under the axis."),
    ("panels", "One panel per unit: memory series (*_kib, drawn in MiB), pressure "
               "(psi_*, *_pct, in percent), and one panel for any other sampled quantity. "
               "Every numeric series in the result is drawn; gaps are missed samples."),
    ("shaded spans", "Orange: the killer inside direct reclaim or its throttling "
                     "('reclaim' events with a duration, or reclaim_begin/reclaim_end pairs). "
                     "Grey: a bystander's heartbeat stalled. Hover for the evidence."),
    ("vertical lines", "Orange dashed: danger. Red: the kill signal was sent. Black dotted: the "
                       "victim exited. Purple: the kernel OOM killer killed. Hover a line for "
                       "the pid, signal and sender."),
    ("reading it", "A good run: memory falls, the red line follows danger closely, the victim "
                   "exits right after, memory comes back. Orange spans between danger and the "
                   "red line mean the killer itself was stuck reclaiming when it should have "
                   "been killing; a purple line before the red one means the kernel won."),
)


def example_timeline() -> Timeline:
    """A small synthetic run for the glossary's chart: 4 s at 10 Hz."""
    xs = [i / 10 - 1.0 for i in range(41)]
    mem = tuple((x, 900.0 - 260 * (x + 1) if x < 0.6 else 500.0 + 150 * (x - 0.6))
                for x in xs)
    psi = tuple((x, 40.0 * max(0.0, 1 - abs(x - 0.5) / 0.8)) for x in xs)
    return Timeline(
        origin="danger (t0)",
        series=(Series("mem_available_kib", "memory", mem),
                Series("psi_some_avg10", "percent", psi)),
        spans=(Span("reclaim", 0.1, 0.35, "reclaim, pid 42 (killer), duration_ms=250"),),
        markers=(Marker("danger", 0.0, "danger"), Marker("signal", 0.45, "SIGKILL to the hog"),
                 Marker("exit", 0.6, "the hog exited")),
        x_min=-1.0, x_max=3.0)
