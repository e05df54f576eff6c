"""Parse and validate the TOML config; every problem is one line, before anything starts."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

SELECT_MODES = ("size", "growth", "oom_score")
PSI_KINDS = ("some", "full")
# The kernel's own limits for PSI trigger windows (kernel/sched/psi.c).
PSI_WINDOW_MIN_MS = 500
PSI_WINDOW_MAX_MS = 10_000

T = TypeVar("T")


class ConfigError(Exception):
    """A config problem; str() is a single line naming the file and key."""


@dataclass(frozen=True, slots=True)
class PsiTrigger:
    """One PSI trigger: `kind stall_us window_us` written to `file`."""

    file: str
    kind: str = "some"
    stall_us: int = 0
    window_us: int = 0

    def spec(self) -> bytes:
        # The kernel overwrites the last byte written with NUL, so send one.
        return f"{self.kind} {self.stall_us} {self.window_us}".encode() + b"\0"


@dataclass(frozen=True, slots=True)
class Detect:
    psi: tuple[PsiTrigger, ...] = ()
    mem_available_min_pct: float | None = None
    mem_available_min_mib: int | None = None
    meminfo: str = "/proc/meminfo"
    # The floor is checked sooner the closer MemAvailable is to it: after the time memory
    # filling at this rate would take to reach it (at least 1 ms, at most interval_ms).
    # 0 = every interval_ms. earlyoom uses the same idea with 6000 MiB/s.
    floor_fill_rate_mib_s: int = 6000


@dataclass(frozen=True, slots=True)
class Policy:
    cgroups: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    select: str = "size"
    prefer: tuple[str, ...] = ()
    avoid: tuple[str, ...] = ()
    protect: tuple[str, ...] = ()
    protect_pids: tuple[int, ...] = ()
    kill_timeout_ms: int = 5000
    cooldown_ms: int = 0
    dry_run: bool = False
    # cgroup mode: SIGKILL the group's first-listed process and give it this long to
    # exit before cgroup.kill takes the rest (0 = everything at once)
    leader_first_ms: int = 20
    # process_mrelease a victim still there this long after its signal (0 = at once):
    # a victim that can run frees its own memory, and a reap beside it only contends
    reap_after_ms: int = 50
    # cgroup mode: reap at once all the same when the victim holds more than this many MiB
    # of anonymous memory in small pages (memory.stat anon - anon_thp; 0 = never): freeing
    # those takes the victim itself long, and a reap beside it shares the work
    reap_at_once_mib: int = 64
    # such an at-once reap by two threads, the victim held on oomguard's CPU until both are
    # done (false: by the main thread alone, beside the victim's own exit, hastened)
    second_reaper: bool = True
    # with second_reaper: that thread lets the held victim go as soon as the main thread's
    # reap has its memory, and reaps itself only while the victim's own exit cannot run
    # (below it in priority): the exit and the main reap free the memory side by side
    reap_beside_exit: bool = False
    # right after the signal, move the victim's tasks off the CPU oomguard reaps on and
    # give them SCHED_FIFO priority 1, so their exit waits for nobody
    hasten_victim: bool = True

    @property
    def mode(self) -> str:
        return "cgroup" if self.cgroups else "process"


@dataclass(frozen=True, slots=True)
class Guards:
    mlockall: bool = True
    prefault_heap: bool = True
    heap_mib: int = 8
    pread_fds: bool = True
    oom_score_adj: bool = True
    realtime: bool = True
    realtime_priority: int = 50
    cgroup: str = ""
    memory_min_mib: int = 64
    cpu_weight: int = 10000
    watchdog: bool = True
    watchdog_deadline_ms: int = 500
    # Fire only when the MemAvailable floor (read by the watchdog itself) says danger; a main
    # loop late for another reason (starved of CPU) is then logged, not acted on.
    watchdog_needs_danger: bool = True
    kernel_reserve: bool = False
    kernel_reserve_prctl: tuple[int, int] = (0, 0)

    def enabled(self) -> dict[str, bool]:
        """Which switchable guards are on, by name (the ablation axes)."""
        return {
            "mlockall": self.mlockall,
            "prefault_heap": self.prefault_heap,
            "pread_fds": self.pread_fds,
            "oom_score_adj": self.oom_score_adj,
            "realtime": self.realtime,
            "cgroup": bool(self.cgroup),
            "watchdog": self.watchdog,
            "kernel_reserve": self.kernel_reserve,
        }


@dataclass(frozen=True, slots=True)
class Config:
    interval_ms: int = 100
    log: str = "-"
    detect: Detect = field(default_factory=Detect)
    policy: Policy = field(default_factory=Policy)
    guards: Guards = field(default_factory=Guards)
    path: str = ""


class _Table:
    """A TOML table being consumed: typed getters, then a check for leftover keys."""

    def __init__(self, data: Mapping[str, object], where: str) -> None:
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, conv: Callable[[object, str], T], default: T) -> T:
        self.seen.add(key)
        if key not in self.data:
            return default
        return conv(self.data[key], self._key(key))

    def table(self, key: str) -> _Table:
        self.seen.add(key)
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self._key(key)}: expected a table, got {_tname(value)}")
        return _Table(value, self._key(key))

    def done(self) -> None:
        extra = sorted(set(self.data) - self.seen)
        if extra:
            where = f" in [{self.where}]" if self.where else ""
            raise ConfigError(f"unknown key '{extra[0]}'{where}")


def _tname(value: object) -> str:
    names = {bool: "boolean", int: "integer", float: "float", str: "string", list: "array"}
    return "table" if isinstance(value, dict) else names.get(type(value), type(value).__name__)


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected boolean, got {_tname(value)}")
    return value


def _int(lo: int, hi: int) -> Callable[[object, str], int]:
    def conv(value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected integer, got {_tname(value)}")
        if not lo <= value <= hi:
            raise ConfigError(f"{key}: {value} is out of range [{lo}, {hi}]")
        return value

    return conv


def _num(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: expected number, got {_tname(value)}")
    return float(value)


def _str(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected string, got {_tname(value)}")
    return value


def _list(item: Callable[[object, str], T]) -> Callable[[object, str], tuple[T, ...]]:
    def conv(value: object, key: str) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected array, got {_tname(value)}")
        return tuple(item(v, f"{key}[{i}]") for i, v in enumerate(value))

    return conv


def _choice(*choices: str) -> Callable[[object, str], str]:
    def conv(value: object, key: str) -> str:
        text = _str(value, key)
        if text not in choices:
            raise ConfigError(f"{key}: '{text}' is not one of {', '.join(choices)}")
        return text

    return conv


def _abs_path(value: object, key: str) -> str:
    text = _str(value, key)
    if not os.path.isabs(text):
        raise ConfigError(f"{key}: '{text}' must be an absolute path")
    return text


_PID = _int(1, 2**22)


def _psi(value: object, key: str) -> PsiTrigger:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table, got {_tname(value)}")
    t = _Table(value, key)
    if "file" not in value:
        raise ConfigError(f"{key}: missing key 'file'")
    path = t.get("file", _abs_path, "")
    kind = t.get("kind", _choice(*PSI_KINDS), "some")
    stall_ms = t.get("stall_ms", _num, 0.0)
    window_ms = t.get("window_ms", _num, 0.0)
    t.done()
    if not PSI_WINDOW_MIN_MS <= window_ms <= PSI_WINDOW_MAX_MS:
        raise ConfigError(
            f"{key}.window_ms: {window_ms:g} must be between {PSI_WINDOW_MIN_MS} and "
            f"{PSI_WINDOW_MAX_MS} (kernel limits)"
        )
    if not 0 < stall_ms <= window_ms:
        raise ConfigError(
            f"{key}.stall_ms: {stall_ms:g} must be > 0 and <= window_ms ({window_ms:g})"
        )
    return PsiTrigger(path, kind, round(stall_ms * 1000), round(window_ms * 1000))


def _detect(t: _Table) -> Detect:
    none: tuple[PsiTrigger, ...] = ()
    psi = t.get("psi", _list(_psi), none)
    pct = t.get("mem_available_min_pct", _num, -1.0)
    mib = t.get("mem_available_min_mib", _int(1, 2**31), 0)
    meminfo = t.get("meminfo", _abs_path, "/proc/meminfo")
    rate = t.get("floor_fill_rate_mib_s", _int(0, 1_000_000), 6000)
    t.done()
    if pct != -1.0 and not 0 < pct <= 100:
        raise ConfigError(f"{t.where}.mem_available_min_pct: {pct:g} must be > 0 and <= 100")
    if not psi and pct == -1.0 and not mib:
        raise ConfigError(
            f"[{t.where}]: no trigger configured (set psi, mem_available_min_pct "
            "or mem_available_min_mib)"
        )
    return Detect(psi, None if pct == -1.0 else pct, mib or None, meminfo, rate)


def _policy(t: _Table) -> Policy:
    strs = _list(_str)
    p = Policy(
        cgroups=t.get("cgroups", _list(_abs_path), ()),
        pids=t.get("pids", _list(_PID), ()),
        select=t.get("select", _choice(*SELECT_MODES), "size"),
        prefer=t.get("prefer", strs, ()),
        avoid=t.get("avoid", strs, ()),
        protect=t.get("protect", strs, ()),
        protect_pids=t.get("protect_pids", _list(_PID), ()),
        kill_timeout_ms=t.get("kill_timeout_ms", _int(10, 600_000), 5000),
        cooldown_ms=t.get("cooldown_ms", _int(0, 600_000), 0),
        dry_run=t.get("dry_run", _bool, False),
        leader_first_ms=t.get("leader_first_ms", _int(0, 1000), 20),
        reap_after_ms=t.get("reap_after_ms", _int(0, 600_000), 50),
        reap_at_once_mib=t.get("reap_at_once_mib", _int(0, 1 << 30), 64),
        second_reaper=t.get("second_reaper", _bool, True),
        reap_beside_exit=t.get("reap_beside_exit", _bool, False),
        hasten_victim=t.get("hasten_victim", _bool, True),
    )
    t.done()
    if p.cgroups and p.pids:
        raise ConfigError(f"[{t.where}]: set either cgroups or pids, not both")
    if p.reap_beside_exit and not p.second_reaper:
        raise ConfigError(f"[{t.where}]: reap_beside_exit = true needs second_reaper = true")
    return p


def _cgroup_guard(value: object, key: str) -> str:
    if value is False:
        return ""
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a cgroup directory path or false, got true")
    return "" if value == "" else _abs_path(value, key)


def _guards(t: _Table, interval_ms: int) -> Guards:
    g = Guards(
        mlockall=t.get("mlockall", _bool, True),
        prefault_heap=t.get("prefault_heap", _bool, True),
        heap_mib=t.get("heap_mib", _int(0, 4096), 8),
        pread_fds=t.get("pread_fds", _bool, True),
        oom_score_adj=t.get("oom_score_adj", _bool, True),
        realtime=t.get("realtime", _bool, True),
        realtime_priority=t.get("realtime_priority", _int(1, 99), 50),
        cgroup=t.get("cgroup", _cgroup_guard, ""),
        memory_min_mib=t.get("memory_min_mib", _int(0, 2**31), 64),
        cpu_weight=t.get("cpu_weight", _int(1, 10000), 10000),
        watchdog=t.get("watchdog", _bool, True),
        watchdog_deadline_ms=t.get("watchdog_deadline_ms", _int(1, 600_000), 500),
        watchdog_needs_danger=t.get("watchdog_needs_danger", _bool, True),
        kernel_reserve=t.get("kernel_reserve", _bool, False),
        kernel_reserve_prctl=t.get("kernel_reserve_prctl", _prctl_pair, (0, 0)),
    )
    t.done()
    if g.watchdog and g.watchdog_deadline_ms < 2 * interval_ms:
        raise ConfigError(
            f"{t.where}.watchdog_deadline_ms: {g.watchdog_deadline_ms} must be at least "
            f"2 * interval_ms ({2 * interval_ms})"
        )
    if g.kernel_reserve and g.kernel_reserve_prctl[0] <= 0:
        raise ConfigError(
            f"{t.where}.kernel_reserve_prctl: kernel_reserve is on but the prctl option is "
            f"{g.kernel_reserve_prctl[0]} (set [option, arg] for your kernel)"
        )
    return g


def _prctl_pair(value: object, key: str) -> tuple[int, int]:
    pair = _list(_int(-(2**63), 2**64 - 1))(value, key)
    if len(pair) != 2:
        raise ConfigError(f"{key}: expected [option, arg], got {len(pair)} numbers")
    if not 0 <= pair[0] < 2**31:
        raise ConfigError(f"{key}[0]: prctl option {pair[0]} is out of range [0, {2**31 - 1}]")
    return pair[0], pair[1]


def parse(data: Mapping[str, object], path: str = "") -> Config:
    """Build a Config from already-parsed TOML; raises ConfigError (one line)."""
    top = _Table(data, "")
    interval_ms = top.get("interval_ms", _int(10, 60_000), 100)
    log = top.get("log", _str, "-")
    if not log:
        raise ConfigError("log: must be a file path or '-' for stdout")
    detect = _detect(top.table("detect"))
    policy = _policy(top.table("policy"))
    guards = _guards(top.table("guards"), interval_ms)
    top.done()
    return Config(interval_ms, log, detect, policy, guards, path)


def load(path: str) -> Config:
    """Read and validate a config file; every error names the file, as one line."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 ({e.reason})") from None
    try:
        return parse(data, path)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
