"""Thread names and the harness's own CPU, on real threads of this process."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from chaos.procname import set_thread_name
from chaos.procs import thread_cpu_s


def burn(name: str, then: threading.Event | None = None) -> None:
    set_thread_name(name)
    for _ in range(200):
        hashlib.sha256(bytes(1 << 20)).digest()
    if then is not None:
        then.wait()


def thread_names() -> set[str]:
    names = set()
    for task in Path("/proc/self/task").iterdir():
        try:
            names.add((task / "comm").read_text().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return names


def test_a_named_thread_is_named_and_its_cpu_counted_by_name() -> None:
    release = threading.Event()
    alive = threading.Thread(target=burn, args=("chaos-test-busy", release))
    gone = threading.Thread(target=burn, args=("chaos-test-gone",))
    alive.start()
    gone.start()
    gone.join()
    try:
        for _ in range(200):  # join() returns a moment before the OS thread is gone
            names = thread_names()
            if "chaos-test-gone" not in names:
                break
            time.sleep(0.01)
        assert "chaos-test-busy" in names and "chaos-test-gone" not in names
        cpu = thread_cpu_s()
        assert cpu["chaos-test-busy"] > 0.02, cpu
        assert cpu.get("(threads gone)", 0.0) > 0.02, cpu  # an exited thread still counts
    finally:
        release.set()
        alive.join()
    # the process keeps its own name
    assert Path("/proc/self/comm").read_text().strip() != "chaos-test-busy"
