"""The ``docker`` runtime: each stressor is a container (Docker SDK).

- Limits: the container gets ``mem_limit``/``nano_cpus``/``pids_limit``, and its
  cgroup parent is the stressor's own cgroup (``arena/workload/<instance>``),
  which holds the same limits, so the scenario's tree contains it.
- Identity: labels ``chaos.run=<run id>``, ``chaos.instance``, ``chaos.stressor``;
  ``sweep`` removes containers of runs that are gone.
- ``init=True`` (docker-init/tini as PID 1): the stressor is an ordinary
  process that dies of SIGTERM like it does under the cgroup runtime (a PID 1
  ignores signals it has no handler for). The handle's pid is the stressor's.
- Exit: the exit code and ``OOMKilled`` are read *before* the container is
  removed, and it is removed by us, never ``remove=True`` (which races with
  wait/inspect). ``OOMKilled`` means the kernel OOM killer acted; a userspace
  killer's SIGKILL is exit 137 with ``OOMKilled=false``.
- An engine that stops answering: every call has a deadline (``Engine``); the first
  call that gets no answer ends the run as an error, and no further call is made
  (each would wait out its own deadline), so teardown stays bounded.
"""

from __future__ import annotations

import collections
import os
import re
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chaos.cgroupfs import remove_tree
from chaos.procs import ExitInfo, last_json
from chaos.runtimes import dockerd, image
from chaos.runtimes.base import Plan, Site
from chaos.scenario import SpecError

LABEL_RUN = "chaos.run"
DEFAULT_SOCKET = Path("/var/run/docker.sock")
CGROUP_ROOT = Path("/sys/fs/cgroup")
RUN_ID_RE = re.compile(r"^chaos-\d{8}T\d{6}-[0-9a-f]{6}")  # chaos-<chaos.state.new_run_id()>
T = TypeVar("T")


class EngineUnresponsive(OSError):
    """The Docker engine stopped answering: the run is an error, not a verdict."""


@dataclass
class Engine:
    """Calls to one Docker engine, each with a deadline (the client's timeout).

    After the first call that gets no answer, every later call fails at once:
    each would otherwise wait out its own deadline, and a teardown of several
    calls would take minutes.
    """

    timeout_s: float = field(default_factory=dockerd.call_timeout_s)
    silent: str = ""  # what went unanswered, once it has happened

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        import requests

        if self.silent:
            raise EngineUnresponsive(self.silent)
        try:
            return fn(*args, **kwargs)
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError) as exc:
            self.silent = (f"the Docker engine stopped answering: {what} got no answer within "
                           f"{self.timeout_s:.0f} s ({type(exc).__name__})")
            raise EngineUnresponsive(self.silent) from None


def container_name(run_id: str, instance: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", f"chaos-{run_id}-{instance}")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@dataclass
class ContainerHandle(ExitInfo):
    """A running stressor container, shaped like ``chaos.procs.Child`` for the agent."""

    name: str
    container: Any
    pidfd: int
    stressor_pid: int
    start_ms: float  # create() call to the stressor process running
    engine: Engine = field(default_factory=Engine)
    lines: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=400))
    exit_t_ns: int | None = None
    returncode: int | None = None
    stopped_by_harness: bool = False
    oom_killed: bool = False
    container_exit_code: int | None = None
    removed: bool = False
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.stressor_pid

    def start_reader(self) -> None:
        def read() -> None:
            pending = b""
            try:
                for chunk in self.container.logs(stream=True, follow=True):
                    pending += chunk
                    *done, pending = pending.split(b"\n")
                    self.lines.extend(x.decode(errors="replace") for x in done)
            except Exception:  # noqa: BLE001 - the stream ends with the container
                pass
            if pending:
                self.lines.append(pending.decode(errors="replace"))

        self._reader = threading.Thread(target=read, name=f"logs-{self.name}", daemon=True)
        self._reader.start()

    def output(self) -> str:
        return "\n".join(self.lines)

    def last_json(self, event: str | None = None) -> dict[str, object]:
        data = last_json(self.lines, event)
        if event is None:
            data["container_start_ms"] = self.start_ms
            if self.container_exit_code is not None:
                data["container_exit_code"] = self.container_exit_code
                data["container_oom_killed"] = int(self.oom_killed)
        return data

    def _exited(self) -> bool:
        return bool(select.select([self.pidfd], [], [], 0)[0])

    def alive(self) -> bool:
        return self.exit_t_ns is None and not self._exited()

    def _collect(self) -> None:
        """Exit code and OOMKilled from the engine, once the container has stopped."""
        if self.container_exit_code is not None:
            return
        engine = self.engine
        try:
            engine.call("waiting for the container", self.container.wait,
                        timeout=engine.timeout_s)
            engine.call("inspecting the container", self.container.reload)
            state = self.container.attrs["State"]
        except Exception:  # noqa: BLE001 - engine gone: the exit stays unknown
            return
        code = int(state.get("ExitCode", 0))
        self.container_exit_code = code
        self.oom_killed = bool(state.get("OOMKilled"))
        # docker-init exits 128+N when its child died of signal N, like a shell.
        self.returncode = -(code - 128) if 128 < code < 160 else code

    def reap(self, t_ns: int | None = None) -> None:
        if self.exit_t_ns is None:
            self.exit_t_ns = t_ns or time.monotonic_ns()
        self._collect()

    def signal(self, sig: int) -> None:
        if not self._exited():
            try:
                signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                pass

    def stop(self, grace_s: float = 3.0) -> None:
        """SIGTERM, SIGKILL after ``grace_s``; read the exit, then remove the container."""
        if self.removed:
            return
        if self.exit_t_ns is None and not self._exited():
            self.stopped_by_harness = True
        self.signal(signal.SIGTERM)
        select.select([self.pidfd], [], [], grace_s)
        if not self._exited():
            self.signal(signal.SIGKILL)
        try:  # docker-init too, if the stressor is gone and it is not
            self.engine.call("killing the container", self.container.kill)
        except Exception:  # noqa: BLE001 - already stopped
            pass
        self._collect()
        if self.exit_t_ns is None and not self.stopped_by_harness:
            self.exit_t_ns = time.monotonic_ns()
        if self._reader:
            self._reader.join(timeout=5)
        try:
            self.engine.call("removing the container", self.container.remove, force=True)
        except Exception:  # noqa: BLE001 - gone already, or no engine; sweep covers the rest
            pass
        self.removed = True



def engine_available(kind: str) -> str:
    """'' if the docker runtime can run on this testbed, else why not (one line)."""
    if DEFAULT_SOCKET.exists() or os.environ.get("DOCKER_HOST"):
        return ""
    if kind == "vm":
        from shutil import which

        return "" if which("dockerd") else "dockerd is not installed (apt-get install docker.io)"
    return f"no Docker engine at {DEFAULT_SOCKET} (start dockerd, as .ci/run does)"


class DockerRuntime:
    name = "docker"

    def __init__(self, site: Site) -> None:
        self.site = site
        self.client: Any = None
        self.daemon: dockerd.PrivateDaemon | None = None
        self.image = ""
        self.mount_host = True
        self.engine_start_s = 0.0
        self.image_s = 0.0
        self.engine = Engine()

    def connect(self) -> Any:
        if self.client is not None:
            return self.client
        if DEFAULT_SOCKET.exists() or os.environ.get("DOCKER_HOST"):
            import docker

            self.client = docker.from_env(timeout=int(self.engine.timeout_s))
        elif self.site.testbed.kind == "vm":
            harness = self.site.tree.path("harness") if self.site.tree.version == 2 else None
            self.daemon = dockerd.PrivateDaemon(harness, self.site.workdir / "dockerd.log")
            self.client = self.daemon.start()
            self.engine_start_s = self.daemon.start_s
        else:
            raise SpecError(engine_available(self.site.testbed.kind))
        t0 = time.monotonic()
        self.image, self.mount_host = self.engine.call("preparing the stressor image",
                                                       image.ensure, self.client)
        self.image_s = round(time.monotonic() - t0, 3)
        return self.client

    def _cgroup_parent(self, cgroup: Path) -> str:
        mount = self.site.tree.root.parent
        return "/" + str(cgroup.relative_to(mount))

    def start(self, plan: Plan, cgroup: Path, env: dict[str, str],
              mounts: tuple[tuple[Path, str, str], ...] = ()) -> ContainerHandle:
        """Start one stressor container; ``mounts`` are (host path, container path, mode)."""
        client = self.connect()
        spec, limits = plan.spec, plan.limits
        volumes: dict[str, dict[str, str]] = {}
        if self.mount_host:
            volumes.update({p: {"bind": p, "mode": "ro"} for p in image.bind_paths()})
        volumes.update({str(host): {"bind": inside, "mode": mode}
                        for host, inside, mode in mounts})
        kwargs: dict[str, Any] = {}
        if limits.memory_max_mib:
            kwargs["mem_limit"] = limits.memory_max_mib << 20
            kwargs["memswap_limit"] = limits.memory_max_mib << 20
        if limits.cpu_pct:
            kwargs["nano_cpus"] = int(limits.cpu_pct / 100 * 1e9)
        if limits.pids_max:
            kwargs["pids_limit"] = limits.pids_max
        t0 = time.monotonic()
        engine = self.engine
        container = engine.call(
            "creating the container", client.containers.create,
            self.image, list(plan.argv), name=container_name(self.site.run_id, spec.instance),
            labels={LABEL_RUN: self.site.run_id, "chaos.instance": spec.instance,
                    "chaos.stressor": spec.name},
            environment={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            volumes=volumes, init=True, working_dir="/", cgroup_parent=self._cgroup_parent(cgroup),
            network_mode="host" if plan.needs.host_network else "none",
            cap_add=list(plan.needs.caps) or None, detach=True, **kwargs)
        try:
            engine.call("starting the container", container.start)
            engine.call("inspecting the container", container.reload)
            init_pid = int(container.attrs["State"]["Pid"])
            pid = self._stressor_pid(init_pid)
            start_ms = round((time.monotonic() - t0) * 1000, 1)
            try:
                pidfd = os.pidfd_open(pid)
            except ProcessLookupError:  # already gone: an fd that polls readable at once
                pidfd = os.eventfd(1)
        except BaseException:
            if not engine.silent:
                container.remove(force=True)
            raise
        handle = ContainerHandle(name=spec.instance, container=container, pidfd=pidfd,
                                 stressor_pid=pid, start_ms=start_ms, engine=engine)
        handle.start_reader()
        return handle

    @staticmethod
    def _stressor_pid(init_pid: int, timeout_s: float = 30.0) -> int:
        """docker-init's child (the stressor); docker-init itself if it never forks one."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            kids = _children(init_pid)
            if kids:
                return kids[0]
            if not Path(f"/proc/{init_pid}").exists():
                break
            time.sleep(0.01)
        return init_pid

    def close(self) -> None:
        """Remove any container of this run still there, then stop a private engine.

        Raises EngineUnresponsive (after undoing what it can) if the engine stopped
        answering at any point of the run: its containers are left to the sweep.
        """
        silent = self.engine.silent
        if self.client is not None and not silent:
            try:
                self.engine.call("listing containers", remove_containers, self.client,
                                 lambda run: run == self.site.run_id)
            except EngineUnresponsive:
                silent = self.engine.silent
        if self.daemon is not None:
            self.daemon.stop(grace_s=1.0 if silent else 15.0)
            self.daemon = None
        if self.site.tree.version == 1:
            for d in v1_copies(self.site.tree.root.name):
                remove_tree(d, 5.0, 1)
        if silent:
            raise EngineUnresponsive(silent)


def v1_hierarchies() -> list[Path]:
    """The v1 hierarchies other than memory (none on a cgroup v2 host)."""
    if not (CGROUP_ROOT / "memory" / "cgroup.procs").exists():
        return []  # not a v1 host: /sys/fs/cgroup/<name> is the scenario tree itself
    seen: set[str] = set()
    out = []
    for h in sorted(CGROUP_ROOT.iterdir()):
        real = os.path.realpath(h)
        if h.name not in ("memory", "unified") and real not in seen and h.is_dir():
            seen.add(real)
            out.append(h)
    return out


def v1_copies(name: str) -> list[Path]:
    """The parents docker's cgroupfs driver made for ``name`` in the *other* v1 hierarchies.

    On a cgroup v1 host, a container whose cgroup parent is our memory tree gets that path
    in every hierarchy (cpu, pids, ...); only the memory one is the agent's to remove.
    """
    return [h / name for h in v1_hierarchies() if (h / name).is_dir()]


def remove_containers(client: Any, doomed: Any) -> list[str]:
    removed = []
    for c in client.containers.list(all=True, filters={"label": LABEL_RUN}):
        run = c.labels.get(LABEL_RUN, "")
        if doomed(run):
            try:
                c.remove(force=True)
                removed.append(f"container {c.name} (run {run})")
            except Exception:  # noqa: BLE001 - raced with its own removal
                continue
    return removed


def sweep(live_runs: set[str]) -> list[str]:
    """Remove containers labelled with a run that is no longer live (no engine: nothing)."""
    if not (DEFAULT_SOCKET.exists() or os.environ.get("DOCKER_HOST")):
        return []
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
    except Exception:  # noqa: BLE001 - no engine answering: nothing of ours can be there
        return []
    removed = remove_containers(client, lambda run: not any(run.startswith(r) for r in live_runs))
    for h in v1_hierarchies():
        for d in h.iterdir():
            if RUN_ID_RE.match(d.name) and not any(d.name.startswith(f"chaos-{r}")
                                                   for r in live_runs):
                try:
                    remove_tree(d, 5.0, 1)
                    removed.append(f"cgroup {d}")
                except (OSError, RuntimeError):
                    continue
    return removed
