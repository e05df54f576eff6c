"""Naming a process, with nothing imported: the bystander's start-up imports only this."""

from __future__ import annotations


def set_process_name(name: str) -> None:
    """Name the process (comm) after its instance, so killers' name patterns can match it.

    Every stressor is otherwise a ``python3``, indistinguishable from the harness and
    the bystanders to a killer that prefers or avoids processes by name (earlyoom).
    Called from the main thread, /proc/self/comm is the process's name (as PR_SET_NAME).
    """
    if not name:
        return
    with open("/proc/self/comm", "w") as f:
        f.write(name.encode()[:15].decode(errors="ignore"))


def set_thread_name(name: str) -> None:
    """Name the calling thread (its own comm), so a trace or ``ps -L`` tells the harness's
    threads apart: which of them took a CPU from a dying victim, say. The process's name
    (the main thread's) is unchanged."""
    try:
        with open("/proc/thread-self/comm", "w") as f:
            f.write(name.encode()[:15].decode(errors="ignore"))
    except OSError:
        pass


def thread_cpu_s() -> dict[str, float]:
    """CPU time (s) of this process's live threads so far, summed by thread name, and of
    those gone (the process's total minus the live ones): what the harness itself cost."""
    import os

    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                run_ns = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        out[comm] = out.get(comm, 0.0) + run_ns / 1e9
    times = os.times()  # the whole process, threads gone included (clock ticks)
    gone = times.user + times.system - sum(out.values())
    if gone > 0.01:
        out["(threads gone)"] = gone
    return out
