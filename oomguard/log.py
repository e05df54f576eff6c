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


class RateLimited:
    """One event kind at most once per ``every_ns`` for each value of its ``key`` field;
    the next line that goes out says how many were left out (``skipped``). A fork storm
    makes every refresh slow, and a ``late`` line per tick would drown the decisions."""

    def __init__(self, log: JsonLog, event: str, key: str,
                 every_ns: int = 1_000_000_000) -> None:
        self.log, self.event, self.key, self.every_ns = log, event, key, every_ns
        self.last: dict[object, int] = {}
        self.skipped: dict[object, int] = {}

    def emit(self, now_ns: int, **fields: object) -> bool:
        value = fields[self.key]
        last = self.last.get(value)
        if last is not None and now_ns - last < self.every_ns:
            self.skipped[value] = self.skipped.get(value, 0) + 1
            return False
        self.last[value] = now_ns
        skipped = self.skipped.pop(value, 0)
        if skipped:
            fields["skipped"] = skipped
        self.log.emit(self.event, **fields)
        return True
