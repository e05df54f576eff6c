"""Bystander: a small workload that must survive; it measures its own worst stall.

It holds ``rss_mib`` of touched anonymous memory and beats every
``interval_ms``; the worst gap between beats beyond the interval is its stall.
On SIGTERM it prints one JSON line with its numbers and exits 0, so a
bystander that did not get to print was killed. SIGUSR1 starts the window
that counts: the harness starts bystanders while the killer starts up, and
sends it when the stressors start, so the killer's start-up is not a stall.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import signal
import sys
import time

from chaos.procname import set_process_name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bystander")
    ap.add_argument("--rss-mib", type=int, default=16)
    ap.add_argument("--interval-ms", type=int, default=10)
    a = ap.parse_args(argv)
    set_process_name(os.environ.get("CHAOS_INSTANCE", "bystander"))
    held = None
    if a.rss_mib > 0:
        held = mmap.mmap(-1, a.rss_mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        held.write(b"\x42" * (a.rss_mib << 20))
    stop = False
    window_asked = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    def on_window(signum: int, frame: object) -> None:
        nonlocal window_asked
        window_asked = True  # the loop resets; a handler between its bytecodes could not

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGUSR1, on_window)
    interval = a.interval_ms / 1000.0
    worst = 0.0
    beats = 0
    window_t_ns = time.monotonic_ns()
    last = time.monotonic()  # before "ready": a stall right after it still counts
    print(json.dumps({"event": "ready", "t_ns": window_t_ns}), flush=True)
    while not stop:
        time.sleep(interval)
        now = time.monotonic()
        worst = max(worst, now - last - interval)
        last = now
        beats += 1
        if window_asked:
            window_asked, worst, window_t_ns = False, 0.0, time.monotonic_ns()
        if held is not None and beats % 100 == 0:
            held[beats % len(held)] = 1  # keep the memory in use
    print(json.dumps({"event": "done", "worst_stall_ms": round(worst * 1000, 3),
                      "beats": beats, "window_t_ns": window_t_ns,
                      "t_ns": time.monotonic_ns()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
