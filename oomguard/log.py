"""JSON-lines event log: one os.write per line, so a test harness can tail it safely."""

from __future__ import annotations

import json
import os
import time


class JsonLog:
    """Writes events as JSON lines to an fd opened once (file with O_APPEND, or stdout).

    Each line is a single write() so lines from the main loop and the watchdog
    thread never interleave; no lock is taken because a stuck writer must not
    block the watchdog's kill.
    """

    def __init__(self, fd: int, owned: bool) -> None:
        self.fd = fd
        self.owned = owned

    @classmethod
    def open(cls, target: str) -> JsonLog:
        if target == "-":
            return cls(1, owned=False)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return cls(os.open(target, flags, 0o644), owned=True)

    def emit(self, event: str, /, **fields: object) -> None:
        """One line: t_ns (monotonic, or the caller's own timestamp), event, then fields."""
        t_ns = fields.pop("t_ns", None)
        record: dict[str, object] = {
            "t_ns": t_ns if isinstance(t_ns, int) else time.monotonic_ns(),
            "event": event,
        }
        record.update(fields)
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        data = line.encode()
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # logging must never take the killer down

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
