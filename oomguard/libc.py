"""The few libc calls Python's stdlib lacks (mlockall, mallopt, prctl, process_mrelease,
sched_getcpu).

Each returns 0 or an errno value instead of raising, so callers can log and go on.
"""

from __future__ import annotations

import ctypes
import platform

MCL_CURRENT = 1
MCL_FUTURE = 2
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4
M_ARENA_MAX = -8
# process_mrelease: 448 on x86_64 and on every arch using the generic syscall table.
SYS_PROCESS_MRELEASE = {"alpha": 558}.get(platform.machine(), 448)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.mlockall.argtypes = [ctypes.c_int]
_libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.sched_getcpu.restype = ctypes.c_int


def _result(ret: int) -> int:
    return ctypes.get_errno() if ret < 0 else 0


def mlockall(flags: int = MCL_CURRENT | MCL_FUTURE) -> int:
    ctypes.set_errno(0)
    return _result(_libc.mlockall(flags))


def mallopt(param: int, value: int) -> bool:
    """glibc returns 1 on success, 0 on error (no errno)."""
    return bool(_libc.mallopt(param, value))


def prctl(option: int, arg: int) -> int:
    ctypes.set_errno(0)
    ret = _libc.prctl(
        ctypes.c_int(option),
        ctypes.c_ulong(arg & 0xFFFFFFFFFFFFFFFF),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
        ctypes.c_ulong(0),
    )
    return _result(ret)


def process_mrelease(pidfd: int) -> int:
    """Reap a dying process's memory now, from our context (Linux 5.15+)."""
    ctypes.set_errno(0)
    ret = _libc.syscall(ctypes.c_long(SYS_PROCESS_MRELEASE), ctypes.c_int(pidfd), ctypes.c_uint(0))
    return _result(ret)


def sched_getcpu() -> int:
    """The CPU this thread runs on now, or -1."""
    return int(_libc.sched_getcpu())
