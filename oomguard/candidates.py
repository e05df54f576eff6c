"""Sample candidates from /proc (process mode) or cgroup v2 directories (cgroup mode).

Each source keeps per-candidate readers across refreshes: with the `pread_fds`
guard those hold open fds, so a refresh is mostly pread() calls.
"""

from __future__ import annotations

import errno
import glob
import os
from collections.abc import Callable, Iterator

from .kfile import KFile
from .policy import Candidate

PAGE = os.sysconf("SC_PAGE_SIZE")
PF_KTHREAD = 0x00200000
_GONE = (ProcessLookupError, FileNotFoundError)
# The small-page share of a candidate's memory (what decides an at-once reap) is read on
# the tick at most this often, from this size up (smaller, the ratio is noise), and
# trusted for this long.
SHARE_EVERY_NS = 1_000_000_000
SHARE_MIN_BYTES = 16 << 20
SHARE_STALE_NS = 3_000_000_000


class ProcStat:
    """Fields of /proc/<pid>/stat we need: comm, flags, starttime, rss."""

    __slots__ = ("comm", "flags", "starttime", "rss_pages")

    def __init__(self, data: bytes) -> None:
        lp, rp = data.index(b"("), data.rindex(b")")
        self.comm = data[lp + 1 : rp].decode(errors="replace")
        rest = data[rp + 2 :].split()  # rest[0] is field 3 (state)
        self.flags = int(rest[6])
        self.starttime = int(rest[19])
        self.rss_pages = int(rest[21])


def read_int(kf: KFile) -> int:
    return int(kf.read(64).split()[0])


class _Proc:
    __slots__ = ("pid", "stat", "adj", "score", "starttime", "comm", "last_size")

    def __init__(self, pid: int, keep: bool, want_score: bool) -> None:
        self.pid = pid
        base = f"/proc/{pid}"
        self.stat = KFile(f"{base}/stat", keep)
        self.adj: KFile | None = None
        self.score: KFile | None = None
        try:
            self.adj = KFile(f"{base}/oom_score_adj", keep)
            self.score = KFile(f"{base}/oom_score", keep) if want_score else None
        except OSError:
            self.close()
            raise
        self.starttime = -1
        self.comm = ""
        self.last_size = -1

    def close(self) -> None:
        for kf in (self.stat, self.adj, self.score):
            if kf is not None:
                kf.close()


class ProcessSource:
    """Processes: the configured pids, or every user-space process except pid 1 and us."""

    def __init__(self, pids: tuple[int, ...], keep: bool, want_score: bool) -> None:
        self.pids = pids
        self.keep = keep
        self.want_score = want_score
        self.procs: dict[int, _Proc] = {}
        self.proc_fd = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if keep else -1
        self.self_pid = os.getpid()

    def _pids(self) -> Iterator[int]:
        if self.pids:
            yield from self.pids
            return
        names = os.listdir(self.proc_fd) if self.proc_fd >= 0 else os.listdir("/proc")
        for name in names:
            if name.isdigit():
                yield int(name)

    def _open(self, pid: int) -> _Proc | None:
        try:
            return _Proc(pid, self.keep, self.want_score)
        except _GONE:
            return None
        except OSError as e:
            if e.errno != errno.EMFILE or not self.keep:
                return None
            try:  # out of fds: this one is read the naive way
                return _Proc(pid, False, self.want_score)
            except OSError:
                return None

    def refresh(self, discover: bool = True) -> list[Candidate]:
        """``discover=False``: re-read the processes already known, list no new ones (the
        danger path; discovery is the tick's job)."""
        out: list[Candidate] = []
        seen: set[int] = set()
        for pid in self._pids() if discover else list(self.procs):
            if pid == self.self_pid or pid == 1:
                continue
            seen.add(pid)
            p = self.procs.get(pid)
            if p is None:
                p = self._open(pid)
                if p is None:
                    continue
                self.procs[pid] = p
            c = self._sample(p)
            if c is None:
                p.close()
                del self.procs[pid]
                seen.discard(pid)
            elif c.size > 0:  # kernel threads and zombies have nothing to give back
                out.append(c)
        for pid in [pid for pid in self.procs if pid not in seen]:
            self.procs.pop(pid).close()
        return out

    def _sample(self, p: _Proc) -> Candidate | None:
        try:
            data = p.stat.read(1024)
            if not data:
                return None
            st = ProcStat(data)
            adj = read_int(p.adj) if p.adj is not None else 0
            score = read_int(p.score) if p.score is not None else 0
        except (OSError, ValueError, IndexError):
            return None  # exited (ESRCH on a held fd) or vanished
        if st.flags & PF_KTHREAD:
            return None
        if p.starttime != st.starttime:  # new process (or pid reused): forget history
            p.starttime, p.last_size = st.starttime, -1
        size = st.rss_pages * PAGE
        growth = 0 if p.last_size < 0 else size - p.last_size
        p.last_size = size
        p.comm = st.comm
        return Candidate(
            key=f"pid:{p.pid}",
            name=st.comm,
            pid=p.pid,
            size=size,
            growth=growth,
            oom_score=score,
            oom_score_adj=adj,
            starttime=st.starttime,
        )

    def still_same(self, pid: int, starttime: int) -> bool:
        """Is pid still the process sampled at starttime? A held stat fd answers without a
        path walk: it reads only while that very process lives."""
        p = self.procs.get(pid)
        if p is None or p.stat.fd < 0:
            return same_process(pid, starttime)
        try:
            data = p.stat.read(1024)
            return bool(data) and ProcStat(data).starttime == starttime
        except (OSError, ValueError, IndexError):
            return False

    def close(self) -> None:
        for p in self.procs.values():
            p.close()
        self.procs.clear()
        if self.proc_fd >= 0:
            os.close(self.proc_fd)
            self.proc_fd = -1


class _Cgroup:
    __slots__ = ("path", "current", "min", "low", "events", "kill", "procs", "stat",
                 "mstat", "last_size", "last_current", "share", "share_ns")

    def __init__(self, path: str, keep: bool) -> None:
        self.path = path
        self.events = KFile.maybe(f"{path}/cgroup.events", keep)
        self.current = KFile.maybe(f"{path}/memory.current", keep)
        self.min = KFile.maybe(f"{path}/memory.min", keep)
        self.low = KFile.maybe(f"{path}/memory.low", keep)
        self.kill = KFile.maybe(f"{path}/cgroup.kill", keep, write=True)
        self.procs = KFile.maybe(f"{path}/cgroup.procs", keep)
        self.stat = KFile.maybe(f"{path}/cgroup.stat", keep)
        self.mstat = KFile.maybe(f"{path}/memory.stat", keep)
        self.last_size = -1
        self.last_current = 0  # memory.current at the last read
        self.share: float | None = None  # of memory.current, anonymous in small pages
        self.share_ns = 0  # when the share was read

    def close(self) -> None:
        for kf in (self.events, self.current, self.min, self.low, self.kill, self.procs,
                   self.stat, self.mstat):
            if kf is not None:
                kf.close()


def populated(events: KFile) -> bool:
    """cgroup.events says 'populated 1' while any task lives in the subtree."""
    data = events.read(256)
    i = data.find(b"populated ")
    return i < 0 or data[i + 10 : i + 11] != b"0"


def _protected_bytes(cg: _Cgroup) -> int:
    best = 0
    for kf in (cg.min, cg.low):
        if kf is None:
            continue
        text = kf.read(64).strip()
        if text and text != b"max":
            best = max(best, int(text))
        elif text == b"max":
            return 2**63
    return best


class CgroupSource:
    """cgroup v2 directories matching the configured globs; size = memory.current above
    memory.min/memory.low protection."""

    def __init__(self, patterns: tuple[str, ...], keep: bool, want_score: bool) -> None:
        self.patterns = patterns
        self.keep = keep
        self.want_score = want_score
        self.cgroups: dict[str, _Cgroup] = {}

    def _paths(self) -> list[str]:
        found: set[str] = set()
        for pat in self.patterns:
            found.update(children(pat[:-2]) if _parent_star(pat) else
                         (p.rstrip("/") for p in glob.glob(pat) if os.path.isdir(p)))
        return sorted(found)

    def refresh(self, discover: bool = True) -> list[Candidate]:
        """``discover=False``: re-read the cgroups already known, no glob (the danger path;
        in a guest the glob took 2.7 ms, reading two cgroups 0.06 ms)."""
        out: list[Candidate] = []
        paths = self._paths() if discover else list(self.cgroups)
        for gone in set(self.cgroups) - set(paths):
            self.cgroups.pop(gone).close()
        for path in paths:
            cg = self.cgroups.get(path)
            if cg is None:
                try:
                    cg = self.cgroups[path] = _Cgroup(path, self.keep)
                except OSError:
                    continue
            try:
                c = self._sample(cg)
            except (OSError, ValueError):
                self.cgroups.pop(path).close()  # removed under us; rediscovered next time
                continue
            if c is not None:
                out.append(c)
        return out

    def _sample(self, cg: _Cgroup) -> Candidate | None:
        if cg.events is not None and not populated(cg.events):
            cg.last_size = -1
            return None
        current = read_int(cg.current) if cg.current is not None else 0
        cg.last_current = current
        size = max(0, current - _protected_bytes(cg))
        growth = 0 if cg.last_size < 0 else size - cg.last_size
        cg.last_size = size
        score = (
            max((oom_score(pid) for pid in self.members(cg.path)), default=0)
            if self.want_score else 0
        )
        return Candidate(key=cg.path, name=cg.path, size=size, growth=growth, oom_score=score)

    def members(self, path: str) -> list[int]:
        """members(path), from the cgroup's held cgroup.procs when it has no descendants
        (its cgroup.stat says so): the decision and the kill read it, and a path walk
        there is what the pread_fds guard is for. A cgroup with children is walked."""
        cg = self.cgroups.get(path)
        try:
            if cg is not None and cg.procs and cg.stat and not descendants(cg.stat):
                return [int(x) for x in cg.procs.read_all().split()]
        except (OSError, ValueError):
            pass  # removed under us, or unreadable: the walk says what is there
        return members(path)

    def kill_file(self, path: str) -> KFile | None:
        cg = self.cgroups.get(path)
        return cg.kill if cg is not None else None

    def small_anon_bytes(self, path: str) -> int | None:
        """Anonymous memory in small pages (memory.stat anon - anon_thp), or None."""
        cg = self.cgroups.get(path)
        if cg is None or cg.mstat is None:
            return None
        try:
            return small_anon(cg.mstat.read_all())
        except OSError:
            return None

    def note_small_share(self, path: str, now: int) -> None:
        """Read (at most once a second) the share of the cgroup's memory that is anonymous
        in small pages, beside the memory.current just read. A kill then decides on an
        at-once reap from it, so nothing is read between its signal and the reap."""
        cg = self.cgroups.get(path)
        if (cg is None or cg.mstat is None or now - cg.share_ns < SHARE_EVERY_NS
                or cg.last_current < SHARE_MIN_BYTES):
            return
        try:
            small = small_anon(cg.mstat.read_all())
        except OSError:
            return
        if small is not None:
            cg.share, cg.share_ns = min(1.0, small / cg.last_current), now

    def small_anon_estimate(self, path: str, now: int) -> int | None:
        """The cgroup's small-page anonymous memory now: its recent share times its last
        memory.current; None without a share read in the last SHARE_STALE_NS."""
        cg = self.cgroups.get(path)
        if cg is None or cg.share is None or now - cg.share_ns > SHARE_STALE_NS:
            return None
        return int(cg.share * cg.last_current)

    def events_file(self, path: str) -> KFile | None:
        cg = self.cgroups.get(path)
        return cg.events if cg is not None else None

    def close(self) -> None:
        for cg in self.cgroups.values():
            cg.close()
        self.cgroups.clear()


def _parent_star(pattern: str) -> bool:
    """'DIR/*' with no wildcard in DIR: every child of one directory (the usual config)."""
    return pattern.endswith("/*") and not any(c in pattern[:-2] for c in "*?[")


def children(parent: str) -> list[str]:
    """The sub-directories of parent, as glob('parent/*') with isdir() lists them (hidden
    names left out), from one scandir: the directory entries' types need no stat each. A
    cgroup has a few dozen files beside its children; in an emulated guest the glob
    took 2.16 ms, this 0.27 ms, every tick."""
    try:
        with os.scandir(parent) as it:
            return [e.path for e in it if not e.name.startswith(".") and e.is_dir()]
    except OSError:
        return []


def small_anon(memory_stat: bytes) -> int | None:
    """anon - anon_thp from a memory.stat: what a victim frees page by page in its exit."""
    fields: dict[bytes, int] = {}
    for line in memory_stat.splitlines():
        key, _, value = line.partition(b" ")
        if key in (b"anon", b"anon_thp"):
            fields[key] = int(value)
    if b"anon" not in fields:
        return None
    return max(0, fields[b"anon"] - fields.get(b"anon_thp", 0))


def descendants(stat: KFile) -> int:
    """nr_descendants from a cgroup.stat: live child cgroups, at any depth."""
    data = stat.read(512)
    i = data.find(b"nr_descendants ")
    return int(data[i + 15 :].split(None, 1)[0]) if i >= 0 else 1  # unknown: walk


def members(path: str) -> list[int]:
    """Every pid in a cgroup subtree (cgroup.procs of each descendant)."""
    pids: list[int] = []
    for root, _dirs, _files in os.walk(path):
        try:
            with open(f"{root}/cgroup.procs", "rb") as f:
                pids.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return pids


def _read_proc_int(pid: int, name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def oom_score(pid: int) -> int:
    return _read_proc_int(pid, "oom_score") or 0


def oom_score_adj(pid: int) -> int | None:
    return _read_proc_int(pid, "oom_score_adj")


class CgroupVeto:
    """Why killing a whole cgroup would hit something protected, or ''.

    Each member's oom_score_adj is read once and remembered per cgroup: reading it
    for all 400 tasks of a fork storm at decision time took ~60 ms in an emulated
    guest, right when the kill was due. The main loop scans its top candidate at
    every tick, so a decision reads only the tasks that appeared since. (A pid
    reused within a tick by a process set to -1000 would be missed.)
    """

    def __init__(self, protect_pids: frozenset[int], self_pid: int,
                 lister: Callable[[str], list[int]]) -> None:
        self.protect_pids = protect_pids
        self.self_pid = self_pid
        self.lister = lister  # a cgroup's pids (CgroupSource.members: from held fds)
        self.adj: dict[str, dict[int, int | None]] = {}  # cgroup -> pid -> oom_score_adj

    def why(self, path: str) -> str:
        known = self.adj.get(path, {})
        seen: dict[int, int | None] = {}
        self.adj[path] = seen  # only the current members: exited pids drop out
        for pid in self.lister(path):
            if pid == self.self_pid:
                return "contains oomguard itself"
            if pid in self.protect_pids:
                return f"contains protected pid {pid}"
            adj = seen[pid] = known[pid] if pid in known else oom_score_adj(pid)
            if adj == -1000:
                return f"contains pid {pid} with oom_score_adj=-1000"
        return ""

    def forget(self, keep: set[str]) -> None:
        self.adj = {k: v for k, v in self.adj.items() if k in keep}


def same_process(pid: int, starttime: int) -> bool:
    """True if pid still names the process we sampled (guards against pid reuse)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return ProcStat(f.read()).starttime == starttime
    except (OSError, ValueError, IndexError):
        return False
