"""The agent: runs one Scenario inside a testbed and writes its Result.

It is the only code that runs inside the testbed. Everything it needs arrives
in the spec; everything it learned leaves in the result file. Order of work:
cgroups -> probes -> bystanders spawned -> killer (ready-check) -> bystanders ready ->
stressors -> wait for the victim's death, the deadline, or a hang -> teardown -> result.
Teardown runs on every path, including SIGTERM/SIGINT.

Usage: python -m chaos.agent --spec spec.json --out result.json [--workdir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import select
import signal
import sys
import threading
import time
import traceback
from contextlib import ExitStack
from pathlib import Path

from chaos import targets
from chaos.cgroupfs import CgroupTree, GroupPids
from chaos.probes.attribution import attribute, exit_times
from chaos.probes.killer import KillerProbe
from chaos.probes.phases import (
    Episode,
    cpu_split,
    fill_phases,
    fill_reclaim,
    reclaim_after_signal_ms,
    reclaim_episodes,
    victim_gone_ns,
)
from chaos.probes.sampler import ArenaSource, Sampler
from chaos.probes.tracing import TraceRecord, TraceSession, TracingError, clock_skew_ns
from chaos.procname import set_process_name, set_thread_name
from chaos.procs import Child, protect_self, spawn, thread_cpu_s
from chaos.result import (
    BystanderOutcome,
    Event,
    KernelInfo,
    KillerInfo,
    Metrics,
    Result,
    TestbedResult,
    VictimOutcome,
)
from chaos.scenario import Scenario, SpecError
from chaos.targets.base import Layout, Target, TargetError, tail

HARNESS_MEMORY_MIN = 96 << 20
KILLER_LOG_LINES = 20_000  # of a killer's output kept, each stamped with when it was read
SCENARIO_EVENTS = ("signal/signal_generate", "oom/mark_victim", "sched/sched_process_exit")
FATAL_SIGNALS = "sig == 9 || sig == 15 || sig == 6 || sig == 2"  # signal_generate's filter
# the victims' reclaim passes: is a slow teardown the victim finishing one (see phases.py)
VICTIM_EVENTS = ("vmscan/mm_vmscan_direct_reclaim_begin", "vmscan/mm_vmscan_direct_reclaim_end",
                 "vmscan/mm_vmscan_memcg_reclaim_begin", "vmscan/mm_vmscan_memcg_reclaim_end",
                 "sched/sched_switch")
KILLER_EVENTS = ("vmscan/mm_vmscan_direct_reclaim_begin", "vmscan/mm_vmscan_direct_reclaim_end",
                 "vmscan/mm_vmscan_memcg_reclaim_begin", "vmscan/mm_vmscan_memcg_reclaim_end",
                 "vmscan/mm_vmscan_throttled")


class Interrupted(Exception):
    pass


def _on_signal(signum: int, frame: object) -> None:
    raise Interrupted(f"agent received signal {signum}")


def ns_to_ms(ns: float) -> float:
    return round(ns / 1e6, 3)


class Run:
    """State of one scenario run inside the testbed."""

    def __init__(self, scenario: Scenario, workdir: Path, heartbeat: Path | None = None) -> None:
        self.s = scenario
        self.workdir = workdir
        self.heartbeat = heartbeat
        self.result = Result(scenario=scenario.id, run_id=scenario.run_id,
                             spec=dataclasses.asdict(scenario))
        self.tree: CgroupTree | None = None
        self.sampler: Sampler | None = None
        self.trace: TraceSession | None = None
        self.killer_trace: TraceSession | None = None
        self.victim_trace: TraceSession | None = None
        self.victim_traced: set[int] = set()
        self.target: Target = targets.load(scenario.killer)
        self.killer: Child | None = None
        self.killer_stopped = False  # its log has been taken (once)
        self.victims: list[tuple[Child, str, str]] = []  # child, instance, stressor name
        self.staged: set[str] = set()  # instances started ahead (Launcher.stage)
        self.bystanders: list[Child] = []
        self.killer_tids: set[int] = set()
        # instance -> every pid seen in its scope: a stressor of several processes (hogs
        # with count > 1, docker-init and its child) dies as a group, killed member by member
        self.group_pids: dict[str, set[int]] = {}
        self.group_watch: dict[str, GroupPids] = {}
        self.episodes: list[Episode] = []
        self.killer_probe: KillerProbe | None = None
        self.clock_mark: tuple[int, int] | None = None
        self.events: list[Event] = []
        self.vmstat_oom_start = 0

    # -- set-up -------------------------------------------------------------------------------
    def check(self) -> None:
        """Everything that can be refused is refused here, before anything starts."""
        self.s.validate()
        from chaos.runtimes import launcher  # params, limits, and what this testbed can give

        launcher.check(self.s)
        tb = self.s.testbed
        if tb.kind == "local" and tb.arena_mib == 0 and os.environ.get(
                "CHAOS_ALLOW_HOST_PRESSURE") != "1":
            raise SpecError("local testbed without an arena needs --allow-host-pressure")
        self.target.check()

    def setup(self, stack: ExitStack) -> None:
        s = self.s
        r = self.result
        r.started_ns = time.monotonic_ns()
        r.kernel = KernelInfo(release=platform.release(),
                              cmdline=_read("/proc/cmdline").strip())
        r.testbed = TestbedResult(kind=s.testbed.kind, accel=s.testbed.accel,
                                  memory_mib=_mem_total_mib(), cpus=os.cpu_count() or 0,
                                  swap_mib=_swap_total_mib(), arena_mib=s.testbed.arena_mib,
                                  host=platform.node())
        r.system = _system_info()
        r.system["harness_protection"] = ",".join(protect_self())
        if self.heartbeat is not None:
            # Started after protect_self, so it runs with the harness's priority: when the
            # harness cannot run, it falls silent too. (Since 6.12 the fair server gives
            # SCHED_OTHER tasks a slice even under real-time spinners that starve the
            # harness's SCHED_FIFO threads, so a heartbeat started before kept beating.)
            start_heartbeat(self.heartbeat)
        self.tree = CgroupTree.create(f"chaos-{s.run_id}")
        stack.callback(self.tree.destroy)
        tree = self.tree
        for rel in ("harness", "killer", "arena/workload", "arena/bystanders"):
            tree.make(rel)
        if tree.version == 2:
            tree.write("harness", "memory.min", str(HARNESS_MEMORY_MIN))
            tree.add_pid("harness", os.getpid())
            # Leave the tree before it is killed and removed (runs before tree.destroy).
            stack.callback(lambda: (tree.root.parent / "cgroup.procs").write_text(
                str(os.getpid())))
        arena: ArenaSource | None = None
        if s.testbed.arena_mib:
            tree.set_memory_max("arena", s.testbed.arena_mib << 20)
            arena = ArenaSource(tree.path("arena") / tree.v1_name("memory.current"),
                                s.testbed.arena_mib << 20)
        psi = Path("/proc/pressure/memory")
        if arena is not None and tree.version == 2:
            psi = tree.path("arena") / "memory.pressure"
        self.layout = Layout(cgroup_root=tree.root, cgroup_version=tree.version,
                             workdir=self.workdir, harness_pids=(os.getpid(),))
        try:
            self.trace = self._start_trace(stack, "", SCENARIO_EVENTS, buffer_kb=8192,
                                           filters={"signal/signal_generate": FATAL_SIGNALS})
            self.clock_mark = self.trace.mark(f"chaos-clock {s.run_id}")
        except (TracingError, OSError) as exc:
            self._event(time.monotonic_ns(), "warning", detail=f"no tracing: {exc}")
        self.sampler = Sampler(s.sample_hz, s.deadline_s + s.settle_s + 30, s.danger, psi, arena,
                               on_danger=lambda t: None)
        self.vmstat_oom_start = _vmstat("oom_kill")
        self.sampler.start()
        stack.callback(self.sampler.stop)
        self.kmsg = _Kmsg()
        stack.callback(self.kmsg.close)

    def _start_trace(self, stack: ExitStack, suffix: str, events: tuple[str, ...],
                     buffer_kb: int, pids: tuple[int, ...] = (),
                     filters: dict[str, str] | None = None) -> TraceSession:
        """A tracefs instance of this run, removed when the run ends; a VM's are only
        stopped, since the guest is thrown away (TraceSession.throwaway)."""
        session = TraceSession(f"chaos-{self.s.run_id}{suffix}", events, filters=filters or {},
                               pids=pids, buffer_kb=buffer_kb,
                               throwaway=self.s.testbed.kind == "vm").start()
        stack.callback(session.remove)
        return session

    def start_killer(self, stack: ExitStack) -> None:
        r = self.result
        r.killer = KillerInfo(name=self.s.killer.name, version=self.target.version())
        self.killer_launch = launch = self.target.launch(self.s, self.layout)
        if launch is None:
            return
        if launch.config_text:
            launch.config_path = launch.config_path or self.workdir / "killer.conf"
            launch.config_path.write_text(launch.config_text)
            r.killer.config = launch.config_text
            self.target.validate(launch)
        env = {**os.environ, **launch.env}
        try:
            # its lines are stamped as the reader thread reads them: no file and no
            # second thread polling it, each a SCHED_FIFO cost beside the victims
            self.killer = spawn("killer", launch.argv, self.layout.killer, env=env,
                                ready_pattern=launch.ready_pattern or "\0never",
                                stamp_lines=KILLER_LOG_LINES)
        except OSError as exc:
            raise TargetError(f"killer {self.s.killer.name}: cannot start {launch.argv[0]}: "
                              f"{exc.strerror or exc}") from None
        stack.callback(self._stop_killer)
        self.killer_spawned = time.monotonic()
        r.killer.pids = [self.killer.pid]
        try:
            self.killer_trace = self._start_trace(stack, "-killer", KILLER_EVENTS,
                                                  pids=(self.killer.pid,), buffer_kb=4096)
        except (TracingError, OSError):
            self.killer_trace = None

    def wait_killer_ready(self) -> None:
        """Ready on evidence (a line, or alive long enough); one line with its log if not."""
        if self.killer is None:
            return
        launch = self.killer_launch
        assert launch is not None
        name = self.s.killer.name
        t_start = self.killer_spawned
        deadline = t_start + launch.ready_timeout_s
        while time.monotonic() < deadline:
            if self.killer.popen.poll() is not None:
                self.killer.stop(grace_s=0)  # reaps it and drains its last lines
                raise TargetError(f"killer {name} exited at start-up "
                                  f"(status {self.killer.returncode}): "
                                  f"{tail(self.killer.output())}")
            if launch.ready_pattern:
                if self.killer.ready.wait(0.05):
                    break
            elif time.monotonic() - t_start >= launch.ready_after_s:
                break
            else:
                time.sleep(0.05)
        else:
            raise TargetError(f"killer {name} not ready within {launch.ready_timeout_s:.0f} s "
                              f"(waiting for {launch.ready_pattern!r}): "
                              f"{tail(self.killer.output())}")
        self._track_killer_tids()
        # When it was ready, not when this noticed: the bystanders were awaited meanwhile.
        if launch.ready_pattern:
            ready_ns = self.killer.ready_t_ns or time.monotonic_ns()
        else:
            ready_ns = int((t_start + launch.ready_after_s) * 1e9)
        self._event(ready_ns, "killer_ready", pid=self.killer.pid)

    def spawn_bystanders(self, stack: ExitStack) -> None:
        """Before the killer: their interpreters start while it does (~2 s a run saved
        under emulation). What counts as a stall starts with the stressors."""
        for b in self.s.bystanders:
            cg = self.tree.make(f"arena/bystanders/{b.instance}") if self.tree else None
            child = spawn(b.instance, [sys.executable, "-m", "chaos.probes.bystander",
                                       "--rss-mib", str(b.rss_mib),
                                       "--interval-ms", str(b.interval_ms)],
                          cg, ready_pattern='"ready"')
            self.bystanders.append(child)
            stack.callback(child.stop)

    def await_bystanders(self) -> None:
        for child in self.bystanders:
            if not child.ready.wait(60):
                raise TargetError(f"bystander {child.name} did not start: {child.output()}")

    def open_bystander_windows(self) -> None:
        for child in self.bystanders:
            child.popen.send_signal(signal.SIGUSR1)  # their stall window opens now

    def stage_stressors(self, stack: ExitStack) -> None:
        """While the killer starts: the stressors that can wait at a gate start their
        interpreters now (~2 s a run under emulation), after the bystanders' (started
        together, in a guest whose files come over 9p, each start took longer). They do
        nothing until ``start_stressors``, which is when they count as started."""
        from chaos.runtimes.base import Site
        from chaos.runtimes.launcher import Launcher

        assert self.tree is not None
        self.launcher = Launcher(Site(self.s.run_id, self.tree, self.workdir, self.s.testbed))
        stack.callback(self.launcher.close)  # after every stop below: containers, engine, dirs
        for st in self.s.stressors:
            child = self.launcher.stage(st)
            if child is not None:
                stack.callback(child.stop)

    def start_stressors(self, stack: ExitStack) -> None:
        from typing import cast

        launch = self.launcher
        for st in self.s.stressors:
            staged = st.instance in launch.staged
            handle = launch.start(st)
            if staged:
                self.staged.add(st.instance)
            else:
                stack.callback(handle.stop)
            # A Child, or a Child-like container handle (chaos.runtimes.base.Handle).
            self.victims.append((cast(Child, handle), st.instance, st.name))
            how = "staged before the killer, " if staged else ""
            self._event(time.monotonic_ns(), "stressor_start", pid=handle.pid, comm=st.instance,
                        detail=f"{st.name} ({st.runtime}, {how}"
                               f"{launch.start_ms[st.instance]:.0f} ms to start)")
        self.victim_traced = {c.pid for c, _, _ in self.victims}
        if self.victim_traced:  # never without pids: an empty filter traces every task
            try:
                # A small ring: only its end (the signal to the exit) is read, and reading
                # and parsing 30 000 switches cost a guest under emulation 3-5 s a run.
                self.victim_trace = self._start_trace(
                    stack, "-victims", VICTIM_EVENTS,
                    pids=tuple(sorted(self.victim_traced)), buffer_kb=128)
            except (TracingError, OSError):
                self.victim_trace = None

    # -- waiting ------------------------------------------------------------------------------
    def wait(self) -> None:
        s = self.s
        assert self.sampler is not None
        deadline = time.monotonic() + s.deadline_s
        expected = {c.pid for c, inst, _ in self.victims
                    if next(x for x in s.stressors if x.instance == inst).victim}
        watched: dict[int, Child] = {}
        poller = select.poll()
        for child in [c for c, _, _ in self.victims] + self.bystanders + (
                [self.killer] if self.killer else []):
            poller.register(child.pidfd, select.POLLIN)
            watched[child.pidfd] = child
        last_tids = last_progress = 0.0
        started = time.monotonic()
        while time.monotonic() < deadline:
            if time.monotonic() - last_progress >= 1.0:
                self._progress(time.monotonic() - started)
                last_progress = time.monotonic()
            for fd, _ in poller.poll(50):
                t = time.monotonic_ns()
                child = watched.pop(fd)
                poller.unregister(fd)
                child.reap(t)
                if child is self.killer:
                    self.result.killer.exited = True
                    self.result.killer.exit_status = child.returncode
                    self._event(t, "killer_exit", pid=child.pid, detail=f"rc={child.returncode}")
                else:
                    self._event(t, "exit", pid=child.pid, comm=child.name,
                                signal=child.exit_signal or 0, source="pidfd",
                                detail=f"rc={child.returncode}")
            if time.monotonic() - last_tids > 0.1:
                self._track_killer_tids()
                self._track_group_pids()
                last_tids = time.monotonic()
            if expected and all(not c.alive() for c, _, _ in self.victims if c.pid in expected):
                gone = max(c.exit_t_ns or 0 for c, _, _ in self.victims if c.pid in expected)
                self.sampler.victim_gone_t_ns = gone
                self._settle(min(deadline, time.monotonic() + s.settle_s))
                return

    def _progress(self, elapsed: float) -> None:
        """One line for the host to show the user: phase, pressure, elapsed."""
        sp = self.sampler
        if sp is None or not sp.n:
            return
        i = sp.n - 1
        avail = 100.0 * sp.cols["mem_available_kib"][i] / max(1.0, sp.mem_total_kib)
        phase = "in danger" if sp.danger_t_ns is not None else "pressing"
        print(f"chaos-agent: progress {phase}, MemAvailable {avail:.0f}%, PSI some "
              f"{sp.cols['psi_some_pct'][i]:.0f}%, {elapsed:.0f} s", flush=True)

    def _settle(self, until: float) -> None:
        assert self.sampler is not None
        while time.monotonic() < until and self.sampler.recovered_t_ns is None:
            time.sleep(0.05)

    def _track_killer_tids(self) -> None:
        """The killer's threads so far (the killer probe keeps the full set)."""
        if self.killer_probe is not None:
            self.killer_tids |= self.killer_probe.tids()
        elif self.killer is not None and self.tree is not None:
            for pid in self.tree.pids("killer"):
                try:
                    self.killer_tids.update(int(t) for t in os.listdir(f"/proc/{pid}/task"))
                except OSError:
                    continue

    def _track_group_pids(self) -> None:
        from chaos.runtimes.launcher import scope

        if self.tree is None:
            return
        for child, instance, _ in self.victims:
            group = self.group_pids.setdefault(instance, {child.pid})
            if child.alive():
                watch = self.group_watch.get(instance)
                if watch is None:
                    watch = self.group_watch[instance] = GroupPids(self.tree, scope(instance))
                group.update(watch.pids())
        if self.victim_trace is not None:  # members forked before the filter was written
            new = set().union(*self.group_pids.values()) - self.victim_traced
            self.victim_traced |= new
            try:
                self.victim_trace.add_pids(sorted(new))
            except OSError as exc:  # one died meanwhile, say: a diagnostic costs no run
                self._event(time.monotonic_ns(), "warning",
                            detail=f"victim trace: pids {sorted(new)}: {exc.strerror or exc}")

    def start_killer_probe(self, stack: ExitStack) -> None:
        """Watch the killer's threads: stacks, delay accounting, run delay, throttling."""
        if self.killer is None:
            return
        self.killer_probe = KillerProbe(self.layout.killer, hz=self.s.sample_hz).start()
        stack.callback(self.killer_probe.stop)
        if self.killer_probe.taskstats_error:
            self._event(time.monotonic_ns(), "warning",
                        detail=f"no taskstats: {self.killer_probe.taskstats_error}")

    # -- teardown and the result --------------------------------------------------------------
    def _stop_killer(self) -> None:
        """Stop the killer (once); keep its whole log, its side log and what they claim."""
        killer = self.killer
        if killer is None or killer.stamped is None or self.killer_stopped:
            return
        self.killer_stopped = True
        killer.stop()  # and its reader has read the last line
        lines = list(killer.stamped)
        text = "\n".join(line for _, line in lines)
        launch = self.killer_launch
        side = self.target.side_log(launch) if launch is not None else ""
        if side and launch is not None and launch.side_log is not None:
            text += f"\n--- {launch.side_log.name} ---\n{side}"
        self.result.killer.log = text[-200_000:]
        self.events.extend(self.target.log_events(lines))

    def finish(self) -> None:
        """Collect everything once all processes are stopped."""
        r = self.result
        s = self.s
        for watch in self.group_watch.values():
            watch.close()
        cpu = sorted(thread_cpu_s().items(), key=lambda kv: -kv[1])
        r.system["harness_cpu"] = ", ".join(f"{name} {sec:.2f} s" for name, sec in cpu)
        records: list[TraceRecord] = []
        if self.trace is not None:
            self.trace.stop()
            records = self.trace.records()
            dropped = self.trace.dropped()
            if dropped:
                self._event(time.monotonic_ns(), "warning", detail=f"tracefs dropped {dropped}")
            if self.trace.missing:
                r.system["trace_missing"] = ",".join(self.trace.missing)
        if self.clock_mark is not None:
            skew = clock_skew_ns(records, f"chaos-clock {s.run_id}", *self.clock_mark)
            if skew is not None:
                r.metrics.clock_skew_ms = round(skew / 1e6, 4)
        kernel_exit = exit_times(records)
        harness_tids = {int(t) for t in os.listdir("/proc/self/task")}
        for child, instance, name in self.victims:
            spec = next(x for x in s.stressors if x.instance == instance)
            died = child.exit_t_ns is not None
            group = self.group_pids.get(instance, set()) | {child.pid}
            att = attribute(group, records, self.killer_tids, harness_tids,
                            before_ns=child.exit_t_ns)
            outcome = VictimOutcome(instance=instance, pid=child.pid, cgroup=spec.cgroup,
                                    died=died, exit_t_ns=child.exit_t_ns if died else None,
                                    exit_signal=child.exit_signal if died else None,
                                    exit_code=child.exit_code if died else None,
                                    killed_by=att.killed_by if died else "",
                                    killer_comm=att.sender_comm, signal_t_ns=att.signal_t_ns,
                                    expected=spec.victim, stressor=name,
                                    activity=_activity(child),
                                    work_start_t_ns=getattr(child, "ready_t_ns", None),
                                    staged=instance in self.staged)
            if died and not att.killed_by and child.exit_signal:
                outcome.killed_by = "other"
            r.victims.append(outcome)
            if att.signal_t_ns is not None and died:
                self._event(att.signal_t_ns, "signal", pid=child.pid, comm=instance,
                            sender_pid=att.sender_pid, sender_comm=att.sender_comm,
                            signal=att.signal, source="tracefs", detail=att.killed_by)
            if att.mark_victim_t_ns is not None:
                self._event(att.mark_victim_t_ns, "mark_victim", pid=child.pid, comm=instance,
                            source="tracefs")
            if child.pid in kernel_exit and died:
                outcome.kernel_exit_t_ns = kernel_exit[child.pid]
                self._event(kernel_exit[child.pid], "exit", pid=child.pid, comm=instance,
                            source="tracefs")
        for child, b in zip(self.bystanders, s.bystanders, strict=True):
            done = child.last_json("done")
            survived = bool(done) and child.returncode == 0
            att = attribute({child.pid}, records, self.killer_tids, harness_tids,
                            before_ns=None if survived else child.exit_t_ns)
            stall = done.get("worst_stall_ms")
            r.bystanders.append(BystanderOutcome(
                instance=b.instance, pid=child.pid, survived=survived,
                worst_stall_ms=float(stall) if isinstance(stall, int | float) else None,
                beats=int(done.get("beats", 0) or 0),  # type: ignore[call-overload]
                killed_by="" if survived else att.killed_by))
        killer_records: list[TraceRecord] = []
        if self.killer_trace is not None:
            self.killer_trace.stop()
            killer_records = self.killer_trace.records()
        self._killer_evidence(killer_records)
        self._victim_teardown()
        self._metrics()
        for line in self.kmsg.read():
            r.logs.setdefault("kmsg", "")
            r.logs["kmsg"] += line + "\n"
        r.events = sorted(self.events, key=lambda e: e.t_ns)
        r.ended_ns = time.monotonic_ns()

    def _killer_evidence(self, records: list[TraceRecord]) -> None:
        """Reclaim episodes (tracepoints), stack samples, delay accounting, CPU starvation."""
        r = self.result
        m = r.metrics
        probe = self.killer_probe
        if probe is not None:
            probe.stop()
            self.killer_tids |= probe.tids()
            m.killer_reclaim_delay_ms = probe.reclaim_delay_ms()
            m.killer_run_delay_ms = probe.run_delay_ms()
            m.killer_throttled_ms = probe.throttled_ms()
            m.killer_major_faults = probe.major_faults()
            m.killer_stack_reclaim_samples = len(probe.stack_hits)
            for hit in probe.stack_hits[:2000]:
                self._event(hit.t_ns, "reclaim_stack", pid=hit.tid, source="stack",
                            detail=hit.frames)
        self.episodes = reclaim_episodes(records, self.killer_tids or None,
                                         end_of_trace_ns=time.monotonic_ns())
        for ep in self.episodes[:5000]:
            self._event(ep.begin_ns, "reclaim", pid=ep.tid, comm=ep.comm, source="tracefs",
                        detail=f"{ep.ms}")
        for rec in records:
            if rec.event == "mm_vmscan_throttled":
                self._event(rec.t_ns, "throttled", pid=rec.pid, comm=rec.comm, source="tracefs",
                            detail=rec.fields.get("reason", ""))

    def _victim_teardown(self) -> None:
        """Where the killed victims' teardown went: the rest of a reclaim pass under way at
        the signal, and, for the victim gone last, running vs waiting for a CPU vs asleep."""
        if self.victim_trace is None:
            return
        self.victim_trace.stop()
        records = self.victim_trace.records()
        episodes = reclaim_episodes(records, None, end_of_trace_ns=time.monotonic_ns())
        m = self.result.metrics
        last_gone = 0
        for v in self.result.victims:
            gone = victim_gone_ns(v)
            if not (v.expected and v.died and v.signal_t_ns is not None and gone):
                continue
            tids = self.group_pids.get(v.instance, set()) | {v.pid}
            mine = [e for e in episodes if e.tid in tids]
            after = reclaim_after_signal_ms(mine, v.signal_t_ns)
            m.victim_reclaim_after_signal_ms = max(m.victim_reclaim_after_signal_ms or 0.0,
                                                   after)
            for e in (e for e in mine if e.under_way_at(v.signal_t_ns)):
                self._event(e.begin_ns, "victim_reclaim", pid=e.tid, comm=e.comm,
                            source="tracefs",
                            detail=f"{e.ms} ms, {after} ms of it after the signal")
            if gone > last_gone:
                last_gone = gone
                split = cpu_split(records, v.pid, v.signal_t_ns, gone)
                m.victim_teardown_on_cpu_ms = split.on_cpu_ms
                m.victim_teardown_runnable_ms = split.runnable_ms
                m.victim_teardown_blocked_ms = split.blocked_ms
                m.victim_teardown_preempted_by = split.preempted_by

    def _metrics(self) -> None:
        r = self.result
        m: Metrics = r.metrics
        sampler = self.sampler
        recovered = None
        if sampler is not None:
            r.series = sampler.series()
            m.samples = sampler.n
            m.samples_missed = sampler.missed
            if sampler.n > 1:
                span = (sampler.cols["t_ns"][sampler.n - 1] - sampler.cols["t_ns"][0]) / 1e9
                m.sample_hz_achieved = round((sampler.n - 1) / span, 2) if span > 0 else 0.0
            r.t0_ns = sampler.danger_t_ns
            if r.t0_ns is not None:
                self._event(r.t0_ns, "danger", source="sampler",
                            detail=f"MemAvailable < {self.s.danger.mem_available_pct}%")
            recovered = sampler.recovered_t_ns
            if recovered is not None:
                self._event(recovered, "recovered", source="sampler")
        m.oom_kill_delta = _vmstat("oom_kill") - self.vmstat_oom_start
        t0 = fill_phases(m, r.t0_ns, r.victims, recovered)
        if sampler is not None and t0 is not None:
            gone = [v.exit_t_ns for v in r.victims if v.expected and v.exit_t_ns]
            w_start = t0 - 1_000_000_000
            w_end = (max(gone) if gone else r.ended_ns or time.monotonic_ns()) + 1_000_000_000
            m.samples_missed_in_window = sampler.missed_between(w_start, w_end)
            m.samples_expected_in_window = int((w_end - w_start) / sampler.period_ns)
        signals = [v.signal_t_ns for v in r.victims if v.expected and v.signal_t_ns]
        if t0 is not None:
            window_end = min(signals) if signals else r.ended_ns or time.monotonic_ns()
            fill_reclaim(m, self.episodes, (t0, window_end))
            m.killer_window_ms = ns_to_ms(window_end - t0)
            if self.killer_probe is not None:
                m.killer_run_delay_in_window_ms, m.killer_throttled_in_window_ms = (
                    self.killer_probe.starved_in(t0, window_end))
                m.killer_major_faults_in_window = self.killer_probe.major_faults_around(
                    t0, window_end)
        else:
            fill_reclaim(m, self.episodes, None)
        stalls = [b.worst_stall_ms for b in r.bystanders if b.worst_stall_ms is not None]
        m.bystander_worst_stall_ms = max(stalls) if stalls else None

    def _event(self, t_ns: int, kind: str, **kw: object) -> None:
        self.events.append(Event(t_ns=t_ns, kind=kind, **kw))  # type: ignore[arg-type]


HELPER_LOGS = ("dockerd.log",)  # daemons the agent started for the run, not the killer


def _attach_helper_logs(r: Result, workdir: Path, tail_bytes: int = 16384) -> None:
    """On an error, the last part of each helper daemon's log goes into the result."""
    for name in HELPER_LOGS:
        try:
            with (workdir / name).open("rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - tail_bytes))
                r.logs[name.removesuffix(".log")] = f.read().decode(errors="replace")
        except OSError:
            continue


def run(scenario: Scenario, out: Path, workdir: Path, heartbeat: Path | None = None) -> Result:
    """Run the scenario; always writes a result (with ``error`` set if the run failed)."""
    workdir.mkdir(parents=True, exist_ok=True)
    run_ = Run(scenario, workdir, heartbeat)
    r = run_.result
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with ExitStack() as stack:
            run_.setup(stack)
            run_.spawn_bystanders(stack)
            run_.start_killer(stack)
            run_.await_bystanders()
            run_.stage_stressors(stack)
            run_.wait_killer_ready()
            run_.start_killer_probe(stack)
            run_.open_bystander_windows()
            run_.start_stressors(stack)
            run_.wait()
            run_.launcher.stop_flood()
            for child, _, _ in run_.victims:  # stop the workload before the bystanders
                child.stop(grace_s=0.5)
            for child in run_.bystanders:
                child.stop(grace_s=5)
            run_._stop_killer()
            run_.finish()
    except (Interrupted, TargetError, SpecError, OSError) as exc:
        r.error = f"TESTBED_ERROR: {exc}"
        r.logs["agent"] = traceback.format_exc()
    except Exception as exc:  # the result must still be written
        r.error = f"TESTBED_ERROR: agent crashed: {exc!r}"
        r.logs["agent"] = traceback.format_exc()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if r.error:
        _attach_helper_logs(r, workdir)
    r.write(out)
    return r


def _activity(child: Child) -> dict[str, float]:
    data = child.last_json()
    return {k: float(v) for k, v in data.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and k != "t_ns"}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _meminfo_kib(key: str) -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _mem_total_mib() -> int:
    return _meminfo_kib("MemTotal") // 1024


def _swap_total_mib() -> int:
    return _meminfo_kib("SwapTotal") // 1024


def _vmstat(key: str) -> int:
    for line in _read("/proc/vmstat").splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v)
    return 0


def _system_info() -> dict[str, str]:
    info = {"uname": " ".join(platform.uname()), "python": platform.python_version(),
            "mem_total_kib": str(_meminfo_kib("MemTotal")),
            "swap_total_kib": str(_meminfo_kib("SwapTotal")),
            "thp": _read("/sys/kernel/mm/transparent_hugepage/enabled").strip(),
            "psi": "yes" if Path("/proc/pressure/memory").exists() else "no",
            "delayacct": _read("/proc/sys/kernel/task_delayacct").strip()}
    return info


class _Kmsg:
    """The kernel log from the start of the run (read without blocking at the end)."""

    def __init__(self) -> None:
        try:
            self.fd: int | None = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:
            self.fd = None

    def read(self) -> list[str]:
        lines: list[str] = []
        while self.fd is not None and len(lines) < 5000:
            try:
                rec = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except OSError:  # EPIPE: overwritten records; keep reading
                continue
            if not rec:
                break
            head, _, msg = rec.decode(errors="replace").partition(";")
            fields = head.split(",")
            ts = f"[{int(fields[2]) / 1e6:12.6f}] " if len(fields) > 2 else ""
            lines.append(ts + msg.split("\n", 1)[0])
        return lines

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def start_heartbeat(path: Path, every_s: float = 1.0) -> threading.Thread:
    """Rewrite ``path`` every ``every_s``: the testbed's host side can tell a guest that
    stopped answering (no CPU for the agent, a frozen kernel) from one that is busy.
    The thread inherits the calling thread's scheduling policy."""
    def beat() -> None:
        set_thread_name("chaos-heartbeat")
        n = 0
        while True:
            n += 1
            try:
                path.write_text(f"{n} {time.monotonic_ns()}\n")
            except OSError:
                pass  # the host side sees the silence; nothing to do here
            time.sleep(every_s)

    t = threading.Thread(target=beat, name="chaos-heartbeat", daemon=True)
    t.start()
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chaos.agent")
    ap.add_argument("--spec", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/chaos-agent"))
    ap.add_argument("--heartbeat", type=Path, default=None,
                    help="a file to rewrite every second while the agent runs")
    a = ap.parse_args(argv)
    set_process_name("chaos-agent")  # killers that avoid by name (earlyoom) see the harness
    try:
        scenario = Scenario.from_json(a.spec.read_text())
        Run(scenario, a.workdir).check()
    except (SpecError, TargetError, OSError) as exc:
        print(f"chaos.agent: {exc}", file=sys.stderr)
        return 2
    print(f"chaos-agent: start {scenario.id}", flush=True)
    result = run(scenario, a.out, a.workdir, a.heartbeat)
    print(f"chaos-agent: done {scenario.id} error={result.error!r}", flush=True)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "chaos-agent"
    sys.exit(main())
