"""The main loop: apply guards, arm triggers, then detect -> decide -> kill -> follow."""

from __future__ import annotations

import gc
import os
import threading
import time

from . import __version__, libc
from . import guards as G
from .candidates import CgroupSource, CgroupVeto, ProcessSource
from .config import Config
from .detect import ArmError, Detector, MemFloor, Trigger
from .kfile import KFile
from .kill import (
    KillError,
    Victim,
    hasten,
    kill_cgroup,
    kill_process,
    mrelease,
    pin_rest,
    wait_gone,
)
from .log import JsonLog, RateLimited
from .policy import Candidate, Decision, Rules, rank
from .reap_plan import reap_plan
from .second_reaper import SecondReaper
from .watchdog import Handle, Watchdog

MAX_VETOES = 8  # re-selections after a cgroup turns out to hold something protected
LOG_CANDIDATES = 20  # candidates listed per decision line (the count is always given)
GC_EVERY_NS = 60 * 1_000_000_000  # calm-time garbage collection while the collector is off
LATE_NS = 10_000_000  # a wake-up or refresh later/longer than this is logged ("late")
HASTEN_PRIORITY = 1  # a victim's exit: over every normal task, under oomguard's threads
REAP2_WAIT_S = 5  # for the second reaper, once the main thread's reap is done


class StartError(Exception):
    """The daemon could not get ready (one line; exit 2)."""


class Daemon:
    def __init__(self, cfg: Config, log: JsonLog) -> None:
        self.cfg = cfg
        self.log = log
        p, g = cfg.policy, cfg.guards
        self.keep = g.pread_fds
        self.rules = Rules(
            select=p.select,
            prefer=p.prefer,
            avoid=p.avoid,
            protect=p.protect,
            protect_pids=frozenset(p.protect_pids),
            self_pid=os.getpid(),
        )
        self.interval_ns = cfg.interval_ms * 1_000_000
        self.veto: CgroupVeto | None = None  # cgroup mode: built with its source
        self.detector = Detector(cfg.detect, self.keep)
        self.source: ProcessSource | CgroupSource | None = None
        self.kill_lock = threading.Lock()
        self.wd: Watchdog | None = None
        self.wd_key: tuple[str, int] | None = None
        self.results: dict[str, G.GuardResult] = {}
        self.cands: list[Candidate] = []
        self.read_ns = 0  # when self.cands were read: a decision logs it
        self.decision: Decision | None = None
        self.cooldown_until = 0
        self.quiet = False  # "no_candidate" already logged for this danger episode
        self.late = RateLimited(log, "late", key="step")  # at most once a second per step
        self.failed: dict[str, tuple[int, str]] = {}  # key -> (skip until ns, why)
        self.stopping = False
        self.stop_reason = "exit"
        self.last_gc = time.monotonic_ns()
        self.next_floor = 0  # the floor is checked on its own, adaptive cadence
        self.schedstat: KFile | None = None
        self.queued_ns = 0  # the main thread's run delay at its last wake-up
        self.keeper: G.RealtimeKeeper | None = None
        self.wd_floor: MemFloor | None = None  # the watchdog's own read of the floor
        self.reaper2: SecondReaper | None = None  # reaps beside the main thread, at once
        # a victim's priority once hastened: never above oomguard itself (without its
        # realtime guard, only the CPU move); None: hasten_victim is off
        self.hasten_priority = ((HASTEN_PRIORITY if cfg.guards.realtime else 0)
                                if cfg.policy.hasten_victim else None)

    # -- start -------------------------------------------------------------------------

    def _guard(self, result: G.GuardResult) -> None:
        self.results[result.name] = result
        self.log.emit("guard", **result.as_log())

    def start(self) -> None:
        """Apply every enabled guard, arm triggers, warm the hot path; then log 'ready'."""
        cfg, g = self.cfg, self.cfg.guards
        self.log.emit(
            "start",
            version=__version__,
            pid=os.getpid(),
            config=cfg.path,
            mode=cfg.policy.mode,
            select=cfg.policy.select,
            guards=g.enabled(),
            allocator=os.environ.get("PYTHONMALLOC", "pymalloc"),
        )
        if g.cgroup:  # first, so everything allocated below is charged to the protected cgroup
            self._guard(G.apply_cgroup(g))
        if g.oom_score_adj:
            self._guard(G.apply_oom_score_adj())
        if g.prefault_heap:
            self._guard(G.prepare_heap(g.heap_mib))
        nofile = G.raise_nofile() if self.keep else ""
        want_score = cfg.policy.select == "oom_score"
        try:
            if cfg.policy.cgroups:
                self.source = CgroupSource(cfg.policy.cgroups, self.keep, want_score)
                self.veto = CgroupVeto(self.rules.protect_pids, self.rules.self_pid,
                                       self.source.members)
            else:
                self.source = ProcessSource(cfg.policy.pids, self.keep, want_score)
            self.detector.arm()
        except ArmError as e:
            raise StartError(str(e)) from None
        except OSError as e:
            raise StartError(f"cannot open candidate sources: {e.strerror}") from None
        if g.realtime:
            self.keeper = G.RealtimeKeeper(g.realtime_priority)
            self.keeper.add(threading.get_native_id())
        # this thread's run delay: a late wake-up says whether it waited for a CPU
        self.schedstat = KFile.maybe("/proc/thread-self/schedstat", self.keep)
        if g.watchdog:
            if self.detector.floor is not None and g.watchdog_needs_danger:
                try:
                    self.wd_floor = MemFloor(cfg.detect, self.keep)  # its own fd and buffer
                except (OSError, ValueError) as e:
                    raise StartError(f"cannot read {cfg.detect.meminfo}: {e}") from None
            self.wd = Watchdog(g.watchdog_deadline_ms, self.log, self.kill_lock,
                               in_danger=self._wd_in_danger if self.wd_floor else None,
                               keeper=self.keeper, hasten_priority=self.hasten_priority)
        self._refresh()  # runs the hot path once, so its code and data are resident
        try:
            self.detector.check_floor()
        except (OSError, ValueError) as e:
            raise StartError(f"cannot read {cfg.detect.meminfo}: {e}") from None
        if self.keep:
            held = len(os.listdir("/proc/self/fd"))
            self._guard(G.GuardResult("pread_fds", "applied", f"{held} fds held; {nofile}"))
        if g.mlockall:
            self._guard(G.apply_mlockall())
        if g.realtime:  # before the watchdog thread starts (it claims the policy itself)
            self._guard(G.apply_realtime(g.realtime_priority))
            assert self.keeper is not None
            self.keeper.active = self.results["realtime"].status == "applied"
        if g.kernel_reserve:
            self._guard(G.apply_kernel_reserve(*g.kernel_reserve_prctl))
        if self.wd is not None:
            self.wd.start()
            self._guard(
                G.GuardResult("watchdog", "applied", f"deadline {g.watchdog_deadline_ms} ms")
            )
        if self._reap_at_once_on() and cfg.policy.second_reaper:
            self.reaper2 = SecondReaper(self.hasten_priority, self.keeper,
                                        beside=cfg.policy.reap_beside_exit)
            self.reaper2.start()
        if g.prefault_heap:
            G.freeze_gc()
        statuses = {
            name: (self.results[name].status if name in self.results else "off")
            for name in g.enabled()
        }
        self.log.emit(
            "ready",
            pid=os.getpid(),
            guards=statuses,
            triggers=self.detector.armed(),
            candidates=len(self.cands),
        )

    # -- loop --------------------------------------------------------------------------

    def beat(self) -> None:
        if self.wd is not None:
            self.wd.beat()

    def run(self) -> int:
        next_tick = 0
        while not self.stopping:
            try:
                next_tick = self._iterate(next_tick)
            except Exception as e:  # a bug in one step must not end the killer
                self.log.emit("error", where="loop", error=repr(e))
                time.sleep(self.cfg.interval_ms / 1000)
                next_tick = 0
        return 0

    def _iterate(self, next_tick: int) -> int:
        """One wake-up: PSI events, the floor (checked sooner near it), or the tick
        (candidates refreshed); then act if in danger."""
        self.beat()
        if self.wd is not None and self.wd.fired is not None:
            self._follow_watchdog()
        now = time.monotonic_ns()
        wake = min(next_tick, self.next_floor)
        timeout_ms = max(0, -(-(wake - now) // 1_000_000))
        triggers = self.detector.wait(timeout_ms)
        for path in self.detector.broken:
            self.log.emit("error", where="psi", file=path, error="trigger fd reported POLLERR")
        self.detector.broken.clear()
        now = time.monotonic_ns()
        queued, self.queued_ns = self.queued_ns, self._run_delay_ns()
        if not triggers and wake and now - wake > LATE_NS:  # (0: the first wake-up)
            # timeout 0: the last iteration itself overran; queued: of that time, how long
            # this thread was ready but not on a CPU (-1: not known)
            self.late.emit(now, step="wake", by_ms=round((now - wake) / 1e6, 3),
                           timeout_ms=timeout_ms,
                           queued_ms=round((self.queued_ns - queued) / 1e6, 3)
                           if queued and self.queued_ns else -1)
        tick = now >= next_tick
        if tick:
            next_tick = now + self.interval_ns
            self._keep_realtime()
            # warm_top: the top candidate's memory.stat, mostly
            for step, work in (("refresh", self._refresh), ("warm_top", self._warm_top)):
                began = time.monotonic_ns()
                work()
                took = time.monotonic_ns() - began
                if took > LATE_NS:
                    self.late.emit(now, step=step, by_ms=round(took / 1e6, 3))
        if tick or now >= self.next_floor:
            floor = self._check_floor()
            self.next_floor = now + self.detector.next_floor_ms(self.cfg.interval_ms) * 1_000_000
            if floor is not None:
                triggers.append(floor)
            elif tick and not triggers:
                self.quiet = False  # a calm tick ends the danger episode
                self._maybe_collect(now)
        if triggers and now >= self.cooldown_until and not self.stopping:
            if not tick:  # choose from sizes read now, not at the last tick; the candidates
                self._refresh(discover=False)  # themselves are the tick's (no glob here)
            self._act(triggers)
        return next_tick

    def _run_delay_ns(self) -> int:
        """The main thread's total time ready to run but not running (0: not known)."""
        if self.schedstat is None:
            return 0
        try:
            return int(self.schedstat.read().split()[1])
        except (OSError, ValueError, IndexError):
            return 0

    def _warm_top(self) -> None:
        """The tick's work for the top cgroup candidate beyond choosing it (the choice has
        just read its new members, so its kill finds them known): drop what the veto knew
        of cgroups gone, and read the small-page share of its memory that decides an
        at-once reap."""
        top = self.decision.chosen.cand if self.decision and self.decision.chosen else None
        if top is None or top.pid:
            return
        if self.veto is not None:
            self.veto.forget({c.key for c in self.cands})  # of cgroups no longer there
        if self._reap_at_once_on():
            assert isinstance(self.source, CgroupSource)
            self.source.note_small_share(top.key, time.monotonic_ns())

    def _wd_in_danger(self) -> bool:
        """Called from the watchdog thread: MemAvailable under the floor right now."""
        assert self.wd_floor is not None
        return self.wd_floor.check() is not None

    def _keep_realtime(self) -> None:
        if self.keeper is not None:
            for fixed in self.keeper.check():
                self.log.emit("guard", guard="realtime", status="reapplied", detail=fixed,
                              by="main")

    def _maybe_collect(self, now: int) -> None:
        """With the collector off (prefault_heap), collect stray cycles now and then, only
        when calm; frozen start-up objects are not scanned."""
        if not gc.isenabled() and now - self.last_gc >= GC_EVERY_NS:
            self.last_gc = now
            gc.collect()

    def _check_floor(self) -> Trigger | None:
        try:
            return self.detector.check_floor()
        except (OSError, ValueError) as e:
            self.log.emit("error", where="floor", error=str(e))
            return None

    def _refresh(self, discover: bool = True) -> None:
        """Read the candidates (``discover``: look for new ones too) and, on the tick, rank
        them for the watchdog. On the danger path (discover=False) _act ranks them itself,
        and the watchdog is re-pointed after the kill."""
        assert self.source is not None
        try:
            self.cands = self.source.refresh(discover)
            self.read_ns = time.monotonic_ns()
        except OSError as e:
            self.log.emit("error", where="refresh", error=str(e))
            return
        if not discover:
            return
        # as a kill would choose (vetoes too): the watchdog fires at this one, unchecked
        self.decision = self._choose()
        if self.wd is not None:
            self._retarget(self.decision)

    def _retarget(self, d: Decision) -> None:
        """Keep the watchdog's preallocated handle pointing at the current top candidate."""
        assert self.wd is not None
        if self.cfg.policy.dry_run:
            return  # dry run: the watchdog has nothing to fire at either
        top = d.chosen.cand if d.chosen is not None else None
        key = (top.key, top.starttime) if top is not None else None
        if key == self.wd_key:
            return
        self.wd_key = key
        handle = None
        if top is not None:
            try:
                handle = self._handle(top)
            except OSError as e:
                self.log.emit("error", where="watchdog_target", target=top.key, error=str(e))
        self.wd.set_target(handle)

    def _handle(self, c: Candidate) -> Handle | None:
        if c.pid:
            fd = os.pidfd_open(c.pid)
            if not self._still_same(c):
                os.close(fd)
                return None
            return Handle("process", c.key, pid=c.pid, fd=fd)
        assert isinstance(self.source, CgroupSource)
        kf = self.source.kill_file(c.key)
        fd = -1
        if kf is not None:
            fd = os.dup(kf.fd) if kf.fd >= 0 else os.open(kf.path, os.O_WRONLY | os.O_CLOEXEC)
        return Handle("cgroup", c.key, fd=fd, path=c.key)

    def _still_same(self, c: Candidate) -> bool:
        assert isinstance(self.source, ProcessSource)
        return self.source.still_same(c.pid, c.starttime)

    # -- act ---------------------------------------------------------------------------

    def _choose(self) -> Decision:
        """Rank, then veto cgroups that would take a protected pid with them, and anything
        whose kill just failed; re-rank until the best one survives."""
        now = time.monotonic_ns()
        self.failed = {k: v for k, v in self.failed.items() if v[0] > now}
        vetoes = {key: why for key, (_, why) in self.failed.items()}
        d = rank(self.cands, self.rules, vetoes)
        for _ in range(MAX_VETOES):
            if d.chosen is None or d.chosen.cand.pid or self.veto is None:
                break
            why = self.veto.why(d.chosen.cand.key)
            if not why:
                break
            vetoes[d.chosen.cand.key] = why
            d = rank(self.cands, self.rules, vetoes)
        return d

    def _act(self, triggers: list[Trigger]) -> None:
        with self.kill_lock:
            if self.wd is not None and self.wd.fired is not None:
                return  # the watchdog got there first; followed next iteration
            d = self._choose()
            decided_ns = time.monotonic_ns()
            if d.chosen is None and self.quiet:
                return  # still nothing to kill: said so once for this episode
            if d.chosen is None:
                self._log_choice(triggers, d, decided_ns)
                self.quiet = True
                return
            self.quiet = False
            chosen = d.chosen.cand
            if self.cfg.policy.dry_run:
                self._log_choice(triggers, d, decided_ns)
                pause = max(self.cfg.policy.cooldown_ms, self.cfg.policy.kill_timeout_ms)
                self.cooldown_until = time.monotonic_ns() + pause * 1_000_000
                return
            early = self._small_anon_early(chosen)
            together = reap_plan(self.cfg.policy, early, before_kill=True).how == "together"
            here = libc.sched_getcpu() if together else -1
            try:
                victim = self._kill(chosen, here)
            except (KillError, OSError) as e:
                self._log_choice(triggers, d, decided_ns)
                self.log.emit("error", where="kill", target=chosen.key, error=str(e))
                # Skip it for a while, so the next trigger picks someone else.
                until = time.monotonic_ns() + self.cfg.policy.kill_timeout_ms * 1_000_000
                self.failed[chosen.key] = (until, f"kill failed: {e}")
                return
            small: int | None = early
            reaped: tuple[dict[str, str], int] | None
            split: dict[str, object]
            if together:
                reaped, split = self._reap_together(victim, here)
                self._pin_rest(victim)
                reap_after_ns = 0
            else:
                pinned_ns = time.monotonic_ns()
                self._pin_rest(victim)
                self._hasten(victim)
                hastened_ns = time.monotonic_ns()
                if small is None:
                    small = self._small_anon(victim)
                read_ns = time.monotonic_ns()
                reap_after_ns = reap_plan(self.cfg.policy, small, before_kill=False).after_ns
                reaped = None if reap_after_ns else (mrelease(victim), time.monotonic_ns())
                # where the time between the signal and an at-once reap went
                split = {"pinned_ms": round((pinned_ns - victim.sent_ns) / 1e6, 3),
                         "hasten_ms": round((hastened_ns - pinned_ns) / 1e6, 3),
                         "stat_read_ms": round((read_ns - hastened_ns) / 1e6, 3)}
            self._log_choice(triggers, d, decided_ns)
            self._log_signal(victim)
            gone = 0
            if reap_after_ns:
                gone = wait_gone(victim, reap_after_ns, self._step_ms(), self.beat)
                if not gone:
                    reaped = (mrelease(victim), time.monotonic_ns())
            if reaped is not None:
                extra = {} if small is None else {
                    "small_anon_mib": round(small / G.MIB, 1),
                    "small_anon_read": "before" if early is not None else "after", **split}
                self.log.emit("mrelease", target=victim.label, results=reaped[0],
                              after_ms=round((reaped[1] - victim.sent_ns) / 1e6, 3), **extra)
            self._wait(victim, gone)

    def _reap_together(self, victim: Victim, here: int
                       ) -> tuple[tuple[dict[str, str], int], dict[str, object]]:
        """The at-once reap, decided before the kill so that nothing stands between the
        signal and it: the victim, held on this CPU (``here``) since before its signal, is
        reaped here and by the second reaper beside, which then lets it go. Returns this
        reap's (results, end ns) and the second's fields for the log line."""
        assert self.reaper2 is not None
        r2 = self.reaper2
        r2.go(victim, here)
        reaped = (mrelease(victim), time.monotonic_ns())
        if not r2.wait(REAP2_WAIT_S):
            self.log.emit("error", where="reap2", target=victim.label,
                          error=f"not done within {REAP2_WAIT_S} s")
            return reaped, {}
        return reaped, {"second_results": r2.results,
                        "second_after_ms": round((r2.reaped_ns - victim.sent_ns) / 1e6, 3),
                        "released_ms": round((r2.released_ns - victim.sent_ns) / 1e6, 3)}

    def _pin_rest(self, victim: Victim) -> None:
        if isinstance(self.source, CgroupSource):
            pin_rest(victim, self.source.members)

    def _hasten(self, victim: Victim) -> None:
        if self.hasten_priority is not None:
            hasten(victim, self.hasten_priority)

    def _reap_at_once_on(self) -> bool:
        p = self.cfg.policy
        return bool(p.reap_at_once_mib and p.reap_after_ms) and isinstance(self.source,
                                                                           CgroupSource)

    def _small_anon_early(self, c: Candidate) -> int | None:
        """A cgroup candidate's anonymous memory in small pages, estimated before its kill
        from the share read on a recent tick; None: read it after the signal instead."""
        if c.pid or not self._reap_at_once_on():
            return None
        assert isinstance(self.source, CgroupSource)
        return self.source.small_anon_estimate(c.key, time.monotonic_ns())

    def _small_anon(self, victim: Victim) -> int | None:
        """A cgroup victim's anonymous memory in small pages, read after its signal (not
        at all when it could not change when the reap comes)."""
        if victim.kind != "cgroup" or not self._reap_at_once_on():
            return None
        assert isinstance(self.source, CgroupSource)
        return self.source.small_anon_bytes(victim.label)

    def _log_choice(self, triggers: list[Trigger], d: Decision, decided_ns: int) -> None:
        """The triggers and the decision, stamped with when it was made. Written after the
        kill, not before it: the decision's line (JSON of the first candidates) cost
        milliseconds under emulation, between the danger and the signal."""
        for t in triggers:
            self.log.emit("trigger", t_ns=decided_ns, source=t.source, seen_ns=t.seen_ns,
                          **t.fields)
        shown = [r.as_log() for r in (d.ranked + d.excluded)[:LOG_CANDIDATES]]
        if d.chosen is None:
            self.log.emit("no_candidate", t_ns=decided_ns, reason=d.reason, candidates=shown)
            return
        self.log.emit(
            "decision",
            t_ns=decided_ns,
            triggers=[t.source for t in triggers],
            select=self.rules.select,
            chosen=d.chosen.as_log(),
            reason=d.reason,
            count=len(d.ranked) + len(d.excluded),
            candidates=shown,
            dry_run=self.cfg.policy.dry_run,
            read_ns=self.read_ns,
        )

    def _kill(self, c: Candidate, hold_on: int = -1) -> Victim:
        """``hold_on``: keep a cgroup's tasks on this CPU (oomguard's) from before the kill
        until the second reaper lets them go, so both reaps find their memory."""
        if c.pid:
            return kill_process(c.pid, lambda: self._still_same(c))
        assert isinstance(self.source, CgroupSource)
        return kill_cgroup(c.key, self.source.kill_file(c.key), self.source.events_file(c.key),
                           leader_grace_ms=self.cfg.policy.leader_first_ms,
                           lister=self.source.members, hold_on=hold_on)

    def _log_signal(self, v: Victim) -> None:
        self.log.emit(
            "signal",
            target=v.label,
            kind=v.kind,
            method=v.method,
            signal="SIGKILL",
            sent_ns=v.sent_ns,
            source=v.source,
            pids=sorted(v.pidfds),
            errors=v.errors,
            **({"hastened": v.hastened} if v.hastened else {}),
            **({"before_ms": v.before_ms} if v.before_ms else {}),
        )

    def _follow_watchdog(self) -> None:
        assert self.wd is not None
        with self.kill_lock:
            victim, self.wd.fired = self.wd.fired, None
            if victim is None:
                return
            if victim.kind == "cgroup" and isinstance(self.source, CgroupSource):
                victim.events = self.source.events_file(victim.label) or KFile.maybe(
                    f"{victim.label}/cgroup.events", False
                )
            self._wait(victim)

    def _step_ms(self) -> int:
        return max(1, min(self.cfg.interval_ms, 50))

    def _wait(self, victim: Victim, gone: int = 0) -> None:
        """One kill at a time: follow this victim until gone (or timeout) before the next;
        ``gone``: it was already seen gone then."""
        timeout_ns = self.cfg.policy.kill_timeout_ms * 1_000_000
        gone = gone or wait_gone(victim, timeout_ns, self._step_ms(), self.beat)
        if gone:
            self.log.emit(
                "exit",
                t_ns=gone,
                target=victim.label,
                after_ns=gone - victim.sent_ns,
                after_ms=round((gone - victim.sent_ns) / 1e6, 3),
                source=victim.source,
            )
        else:
            self.log.emit(
                "kill_timeout",
                target=victim.label,
                timeout_ms=self.cfg.policy.kill_timeout_ms,
                source=victim.source,
            )
        victim.close()
        self.detector.drain()  # PSI events raised before the exit are stale now
        self.cooldown_until = time.monotonic_ns() + self.cfg.policy.cooldown_ms * 1_000_000
        self.wd_key = None  # re-point the watchdog after the next refresh
        self._refresh()

    def stop(self, reason: str) -> None:
        self.stopping = True
        self.stop_reason = reason

    def close(self) -> None:
        if self.wd is not None:
            self.wd.stop()
        if self.reaper2 is not None:
            self.reaper2.stop()
        if self.wd_floor is not None:
            self.wd_floor.close()
        if self.schedstat is not None:
            self.schedstat.close()
        self.detector.close()
        if self.source is not None:
            self.source.close()
        self.log.emit("stop", reason=self.stop_reason)
