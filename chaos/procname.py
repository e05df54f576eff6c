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

