"""Page-out: a named cgroup's (the killer's) memory pushed out again and again.

Long pressure makes the kernel reclaim whatever a process did not touch lately; a
killer whose code and heap were reclaimed must read them back (major faults,
allocations, perhaps direct reclaim) at the moment it has to act. This stressor
makes that happen on purpose and on time: every ``every_s`` it asks the kernel,
with ``process_madvise(MADV_PAGEOUT)`` (Linux 5.10+), to reclaim each mapping of
every process in the target cgroup. Clean file pages are dropped; anonymous
pages go to swap if the testbed has some (``--swap``). The kernel refuses
locked mappings (``mlockall``) and special ones with EINVAL: those are the
``refused`` bytes, the evidence of a killer that protected itself. Pages shared
with other processes are left alone by the kernel.

Needs CAP_SYS_NICE and ptrace-read access to the target, and the testbed's pid
namespace: it runs only under the ``cgroup`` runtime.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.scenario import Params
from chaos.stressors.common import (
    MiB,
    Needs,
    Reporter,
    argv_for,
    check_target,
    existing_target,
    main_for,
    parse_params,
    require,
    subtree_ids,
    until,
)

NAME = "pageout"
ADVICE = {"pageout": 21, "cold": 20}  # MADV_PAGEOUT, MADV_COLD
SYS_PROCESS_MADVISE = {"alpha": 550}.get(platform.machine(), 440)
SPECIAL = ("[vsyscall]", "[vvar]", "[vdso]", "[vvar_vclock]")


@dataclass(frozen=True)
class PageoutParams:
    target: str = "killer"  # cgroup whose processes are paged out, relative to the scenario root
    every_s: float = 1.0  # one pass over every mapping of every process, this often
    advice: str = "pageout"  # pageout = reclaim now; cold = only move to the inactive list
    duration_s: float = 0.0  # 0 = until stopped


def parse(raw: Params) -> PageoutParams:
    p = parse_params(PageoutParams, raw, NAME)
    check_target(p.target, NAME)
    require(0.05 <= p.every_s <= 3600, NAME, f"every_s must be 0.05..3600, got {p.every_s:g}")
    require(p.advice in ADVICE, NAME, f"advice must be one of {', '.join(ADVICE)}")
    require(p.duration_s >= 0, NAME, "duration_s must be >= 0")
    return p


def needs(p: PageoutParams) -> Needs:
    return Needs(target_cgroup=p.target, host_pids=True)


def prepare(p: PageoutParams, cgroup_root: Path) -> dict[str, str]:
    target = existing_target(cgroup_root, p.target, NAME)
    return {"CHAOS_TARGET_CGROUP": str(target)}


def command(p: PageoutParams) -> list[str]:
    return argv_for("chaos.stressors.pageout", p)


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def process_madvise(pidfd: int, start: int, length: int, advice: int) -> int:
    """Bytes advised, or -errno."""
    iov = _Iovec(start, length)
    ret = _libc.syscall(ctypes.c_long(SYS_PROCESS_MADVISE), ctypes.c_int(pidfd),
                        ctypes.byref(iov), ctypes.c_size_t(1), ctypes.c_int(advice),
                        ctypes.c_uint(0))
    return int(ret) if ret >= 0 else -ctypes.get_errno()


def mappings(pid: int) -> list[tuple[int, int]]:
    """(start, length) of each mapping but the kernel's own (vdso and friends)."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[5] in SPECIAL:
            continue
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        out.append((lo, hi - lo))
    return out


@dataclass
class Tally:
    """One pass: what the kernel took advice on, what it refused, and why."""

    tasks: int = 0
    advised: int = 0  # bytes
    refused: int = 0  # bytes in mappings the kernel would not touch (locked, special)
    errors: dict[str, int] = field(default_factory=dict)  # errno name -> count

    def error(self, code: int) -> None:
        name = errno.errorcode.get(code, str(code))
        self.errors[name] = self.errors.get(name, 0) + 1


def page_out(pid: int, advice: int, tally: Tally) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return  # gone
    try:
        ranges = mappings(pid)
        tally.tasks += 1
        for start, length in ranges:  # one call each: a refused mapping ends a batch
            ret = process_madvise(fd, start, length, advice)
            if ret >= 0:
                tally.advised += ret
            elif ret == -errno.EINVAL:
                tally.refused += length
            else:
                tally.error(-ret)
                if ret in (-errno.ENOSYS, -errno.EPERM, -errno.ESRCH):
                    break
    except OSError:
        pass  # exited while we read its maps
    finally:
        os.close(fd)


def resident(pids: list[int]) -> dict[str, float]:
    """The target's RssAnon, RssFile and VmSwap, summed (MiB)."""
    keys = {"RssAnon": "target_rss_anon_mib", "RssFile": "target_rss_file_mib",
            "VmSwap": "target_swap_mib"}
    out = dict.fromkeys(keys.values(), 0.0)
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in keys:
                out[keys[key]] += int(value.split()[0]) / 1024
    return {k: round(v, 1) for k, v in out.items()}


def run(p: PageoutParams) -> None:
    target = Path(os.environ.get("CHAOS_TARGET_CGROUP", ""))
    if not (target / "cgroup.procs").exists():
        raise SystemExit(f"stressor {NAME}: target cgroup {str(target)!r} is not visible")
    me = os.getpid()
    end = until(p.duration_s)
    rep = Reporter(0.0)
    passes, advised, refused = 0, 0, 0
    rep.tick("start", force=True)
    while time.monotonic() < end:
        t = time.monotonic()
        tally = Tally()
        pids = [pid for pid in subtree_ids(target) if pid != me]
        for pid in pids:
            page_out(pid, ADVICE[p.advice], tally)
        passes += 1
        advised += tally.advised
        refused += tally.refused
        fields: dict[str, float | int | str] = {
            "passes": passes, "tasks": tally.tasks,
            "advised_mib": round(advised / MiB, 1), "refused_mib": round(refused / MiB, 1),
            "pass_ms": round((time.monotonic() - t) * 1000, 1), **resident(pids)}
        if tally.errors:
            fields["errors"] = ",".join(f"{k}:{n}" for k, n in sorted(tally.errors.items()))
        rep.tick("paging_out", force=True, **fields)
        time.sleep(max(0.0, t + p.every_s - time.monotonic()))
    rep.tick("done", force=True, passes=passes)


def main(argv: list[str] | None = None) -> int:
    return main_for(PageoutParams, parse, run, argv, NAME)


if __name__ == "__main__":
    sys.exit(main())
