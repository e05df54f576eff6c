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
