"""Files kept open and re-read: whole contents past one chunk, from an offset, gone files."""

from __future__ import annotations

import os
import time
from pathlib import Path

from chaos.procfiles import CHUNK, open_ro, pread_all, reread


def test_pread_all_reads_past_one_chunk_and_from_an_offset(tmp_path: Path) -> None:
    f = tmp_path / "big"
    data = os.urandom(3 * CHUNK + 123)
    f.write_bytes(data)
    fd = open_ro(f)
    assert fd is not None
    try:
        assert pread_all(fd) == data
        assert pread_all(fd, CHUNK + 7) == data[CHUNK + 7:]
        with open(f, "ab") as out:  # grows: the same fd sees the new end
            out.write(b"more")
        assert reread(fd) == data + b"more"
    finally:
        os.close(fd)


def test_a_proc_file_reread_gives_current_contents() -> None:
    fd = open_ro(f"/proc/{os.getpid()}/task/{os.getpid()}/schedstat")
    assert fd is not None
    try:
        first = reread(fd)
        assert first
        again: bytes | None = first
        for _ in range(50):  # the kernel adds run time at a tick or a switch, not per read:
            sum(range(200_000))  # burn a little CPU, then sleep (a switch), then look
            time.sleep(0.001)
            again = reread(fd)
            if again and int(again.split()[0]) > int(first.split()[0]):
                break
        assert again and int(again.split()[0]) > int(first.split()[0])
    finally:
        os.close(fd)


def test_missing_files_are_none(tmp_path: Path) -> None:
    assert open_ro(tmp_path / "absent") is None
    assert reread(None) is None
