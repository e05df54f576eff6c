"""Small kernel files read on the hot path: a held fd and pread, or the naive open-each-time.

The `pread_fds` guard decides which: holding the fd means the hot path does not
allocate a file object, resolve a path or take dentry locks while memory is short.
"""

from __future__ import annotations

import os

READ_SIZE = 8192


class KFile:
    """One file under /proc or /sys, read (or written) the same way every time."""

    __slots__ = ("path", "fd", "flags")

    def __init__(self, path: str, keep: bool, write: bool = False) -> None:
        self.path = path
        self.flags = (os.O_WRONLY if write else os.O_RDONLY) | os.O_CLOEXEC
        self.fd = os.open(path, self.flags) if keep else -1

    @classmethod
    def from_fd(cls, path: str, fd: int) -> KFile:
        """Wrap an fd someone else owns (do not close() the result)."""
        kf = cls.__new__(cls)
        kf.path, kf.fd, kf.flags = path, fd, 0
        return kf

    @classmethod
    def maybe(cls, path: str, keep: bool, write: bool = False) -> KFile | None:
        """Like the constructor, but None when the file does not exist (optional interface)."""
        try:
            kf = cls(path, keep, write)
        except FileNotFoundError:
            return None
        if not keep and not os.path.exists(path):
            return None
        return kf

    def read(self, size: int = READ_SIZE) -> bytes:
        if self.fd >= 0:
            return os.pread(self.fd, size, 0)
        with open(self.path, "rb") as f:  # naive daemon: path walk + file object each time
            return f.read(size)

    def read_all(self) -> bytes:
        """The whole file, however long (a cgroup.procs of thousands of pids)."""
        if self.fd < 0:
            with open(self.path, "rb") as f:
                return f.read()
        data = b""
        while chunk := os.pread(self.fd, READ_SIZE, len(data)):
            data += chunk
        return data

    def write(self, data: bytes) -> None:
        if self.fd >= 0:
            os.write(self.fd, data)
            return
        with open(self.path, "wb", buffering=0) as f:
            f.write(data)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)
