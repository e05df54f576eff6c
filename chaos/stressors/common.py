"""Helpers shared by stressor modules: typed parameter parsing and progress lines."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

from chaos.procname import set_process_name
from chaos.scenario import Params, SpecError, typed_params

P = TypeVar("P")


def parse_params(cls: type[P], raw: Params, stressor: str) -> P:
    """Build the stressor's parameter dataclass, coercing numbers; one-line errors."""
    return typed_params(cls, raw, f"stressor {stressor}", "parameter")


def progress(**fields: float | int | str) -> None:
    """One JSON line on stdout; the agent keeps the last one as the stressor's activity."""
    fields.setdefault("t_ns", time.monotonic_ns())
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


MiB = 1 << 20
PAGE = 4096


def require(ok: bool, stressor: str, message: str) -> None:
    """Raise the one-line SpecError every stressor uses for a bad parameter."""
    if not ok:
        raise SpecError(f"stressor {stressor}: {message}")


def check_target(target: str, stressor: str) -> None:
    """A stressor acting on another scenario cgroup: below the root, never the harness."""
    require(bool(target) and ".." not in target.split("/") and not target.startswith("/"),
            stressor, f"target must be a cgroup below the scenario root, got {target!r}")
    require(target.split("/")[0] != "harness", stressor, "the harness cannot be a target")


def existing_target(cgroup_root: Path, target: str, stressor: str) -> Path:
    """The target cgroup of ``prepare``, which must exist before the stressor starts."""
    path = cgroup_root / target
    if not (path / "cgroup.procs").exists():
        raise SpecError(f"stressor {stressor}: target cgroup {target!r} does not exist")
    return path


def subtree_ids(cgroup: Path, listing: str = "cgroup.procs") -> list[int]:
    """Pids (``cgroup.procs``) or tids (``cgroup.threads``) of a cgroup and all below it."""
    ids: list[int] = []
    for d in [cgroup, *[Path(r) / n for r, ds, _ in os.walk(cgroup) for n in ds]]:
        try:
            ids += [int(t) for t in (d / listing).read_text().split()]
        except OSError:
            continue  # removed meanwhile
    return ids


def check_rate(stressor: str, size_mib: float, rate_mib_s: float) -> None:
    require(size_mib > 0, stressor, f"size_mib must be > 0, got {size_mib:g}")
    require(rate_mib_s >= 0, stressor, f"rate_mib_s must be >= 0 (0 = as fast as possible), "
            f"got {rate_mib_s:g}")


class Reporter:
    """Progress lines at most every ``every_s`` (plus the ones forced), with elapsed time."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.start = time.monotonic()
        self.every_s = every_s
        self.last = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def tick(self, event: str, force: bool = False, **fields: float | int | str) -> None:
        self.emit(event, fields, force)

    def emit(self, event: str, fields: dict[str, float | int | str] | dict[str, float],
             force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            self.last = now
            progress(event=event, elapsed_s=round(now - self.start, 3), **fields)


class Pacer:
    """Sleeps so ``done`` units never run ahead of ``rate`` units per second (0: no pacing)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()

    def wait(self, done: float) -> None:
        if self.rate > 0:
            due = self.start + done / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def fill_block(seed: int, size: int = MiB) -> bytes:
    """Reproducible page content: a constant pattern for seed 0, else seeded random bytes.

    Random content keeps zram/KSM from shrinking the memory a stressor is meant to hold.
    """
    if seed == 0:
        return b"\x5a" * size
    import random

    return random.Random(seed).randbytes(size)


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children."""
    t = os.times()
    return round(t.user + t.system + t.children_user + t.children_system, 3)


def until(duration_s: float) -> float:
    """The monotonic deadline for ``duration_s`` (0 = effectively never)."""
    return time.monotonic() + (duration_s if duration_s > 0 else 10 * 365 * 86400)


def scratch_dir(kind: str) -> str:
    """The directory the runtime prepared for this stressor (``CHAOS_DIR``)."""
    path = os.environ.get("CHAOS_DIR", "")
    if not path:
        raise SystemExit(f"no CHAOS_DIR: this stressor needs a {kind} directory from its runtime")
    return path


@dataclasses.dataclass(frozen=True)
class Needs:
    """What a stressor asks of its runtime beyond a cgroup (checked before anything starts)."""

    directory: str = ""  # "block": page cache on a real block device; "tmpfs": shmem
    dir_mib: int = 0  # room that directory must have
    caps: tuple[str, ...] = ()  # Linux capabilities it needs inside a container
    host_network: bool = False  # must see the testbed's network devices
    flood_ports: tuple[int, ...] = ()  # ports the VM testbed's host floods into its NIC
    flood_mib_s: float = 0.0  # how fast the host floods them
    target_cgroup: str = ""  # a scenario cgroup it acts on (relative to the scenario root)
    host_pids: bool = False  # acts on the target's processes by pid: the testbed's pid namespace
    cpu_controller: bool = False  # writes the target's cpu.max: the cgroup v2 cpu controller
    thp: bool = False  # transparent huge pages must be available (always or madvise)

    @property
    def flood_nic(self) -> bool:
        """The VM's host->guest flood NIC must be up."""
        return bool(self.flood_ports)


def argv_for(module: str, params: object) -> list[str]:
    """``python -m MODULE --field value ...`` for every field of a params dataclass."""
    argv = [sys.executable, "-m", module]
    for f in dataclasses.fields(params):  # type: ignore[arg-type]
        value = getattr(params, f.name)
        flag = "--" + f.name.replace("_", "-")
        argv += [flag, json.dumps(value) if isinstance(value, bool) else str(value)]
    return argv


# Set by the launcher for a stressor started ahead of time (``Launcher.stage``): the
# process imports and parses, then waits for one byte on stdin before any work.
GATE_ENV = "CHAOS_GATE"
GO = b"g"


def wait_for_go() -> bool:
    """Block until the launcher says go; False if it closed stdin instead (the run ended
    before the stressors started), in which case the stressor does nothing."""
    return sys.stdin.buffer.read(1) == GO


def main_for(cls: type[P], parse: Any, run: Any, argv: list[str] | None, prog: str) -> int:
    """The ``main`` of a stressor: flags from the dataclass, the same validation, then run."""
    import argparse

    set_process_name(os.environ.get("CHAOS_INSTANCE", ""))
    ap = argparse.ArgumentParser(prog=prog)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        ap.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None)
    ns = vars(ap.parse_args(argv))
    raw: dict[str, Any] = {}
    for key, text in ns.items():
        if text is None:
            continue
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError:
            raw[key] = text
    try:
        params = parse(raw)
    except SpecError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if os.environ.pop(GATE_ENV, "") == "stdin" and not wait_for_go():
        return 0  # (popped: whatever the stressor execs must not wait for a go too)
    run(params)
    return 0
