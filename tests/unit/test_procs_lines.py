"""A child's output lines are read while its reader thread still appends to them."""

from __future__ import annotations

import collections
import json
import threading

from chaos.procs import last_json


def test_last_json_picks_the_last_line_of_the_event() -> None:
    lines = collections.deque(["starting", '{"event": "alloc", "mib": 1}', "{not json",
                               '{"event": "holding", "mib": 2}', '{"event": "alloc", "mib": 3}'])
    assert last_json(lines) == {"event": "alloc", "mib": 3}
    assert last_json(lines, "holding") == {"event": "holding", "mib": 2}
    assert last_json(lines, "done") == {}


def test_last_json_while_the_reader_appends() -> None:
    """The agent asks a running stressor for its last progress line while the reader
    thread appends; iterating the live deque raised 'deque mutated during iteration'."""
    lines: collections.deque[str] = collections.deque(maxlen=2000)
    stop = threading.Event()

    def reader() -> None:
        i = 0
        while not stop.is_set():
            lines.append(json.dumps({"event": "alloc", "i": i}))
            lines.append("a line that is not JSON")
            i += 1

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(100):  # an event never printed: every line is looked at
            assert last_json(lines, "done") == {}
    finally:
        stop.set()
        t.join()
