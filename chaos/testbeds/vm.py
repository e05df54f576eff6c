"""The VM testbed: one throwaway qemu guest per command, on a chosen kernel.

The guest boots the kernel with our initramfs, uses the host's root
filesystem read-only (under a tmpfs overlay) as its userspace, and exchanges
files with the host through one writable shared directory. KVM is used only
where it really boots (probed once per host/qemu/kernel and remembered);
otherwise software emulation. A guest that does not come up, hangs, or
panics is killed at its deadline and reported as such with its console log;
no guest outlives the process that started it (parent-death signal, plus the
run registry's sweep).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos.kernels import Kernel, cache_dir
from chaos.procs import set_pdeathsig
from chaos.state import RunRecord, state_dir
from chaos.testbeds import initramfs, postmortem
from chaos.testbeds.steal import VcpuSampler, VcpuWait

QEMU = "qemu-system-x86_64"
ENV_PASSTHROUGH = ("PYTHONPATH", "VIRTUAL_ENV", "CHAOS_REQUIRE_ALL", "CHAOS_ALLOW_HOST_PRESSURE",
                   "CHAOS_DOCKER_CALL_TIMEOUT_S")
CONSOLE_TAIL = 60_000
PROGRESS_PREFIX = "chaos-agent: progress "
# After the command's exit status is on the host, how long the guest may take to power
# off before qemu is killed: nothing it does then (sync of its own disks, device
# shutdown: ~1 s under emulation) is kept, and the VM slot is held meanwhile.
POWEROFF_GRACE_S = 0.3


class TestbedError(RuntimeError):
    """The testbed could not be used; str() is one line for the user."""

    __test__ = False

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console


@dataclass(frozen=True)
class VmConfig:
    kernel: Kernel
    memory_mib: int = 1024
    cpus: int = 2
    swap_mib: int = 0
    accel: str = "auto"  # auto | kvm | tcg
    boot_timeout_s: float = 90.0
    # For stressors (chaos.runtimes.guest): a sparse scratch disk (real page cache and
    # writeback; costs nothing until written) and, if a socket path prefix is given, a NIC
    # whose other end is that unix datagram socket, for host->guest floods.
    scratch_mib: int = 4096
    scratch_write_mib_s: int = 24  # a slow disk, so a dirty flood outruns writeback
    flood_socket: str = ""


@dataclass
class VmRun:
    """What happened to one guest."""

    exit_status: int | None  # of the command; None if it never finished
    stdout: str
    stderr: str
    console: str
    accel: str
    boot_ms: float | None  # qemu start -> stage 2 running in the guest
    wall_s: float
    hung: bool = False
    panicked: bool = False
    failure: str = ""  # one line when the guest failed (hung, panic, never came up)
    pid: int = 0  # of the qemu process (gone by the time this is returned)
    # Host-side milestones, ms after qemu started: first console output, init's root
    # ready, stage 2 running, and the first time ``watch_for`` appeared on stdout.
    milestones: dict[str, float] = field(default_factory=dict)
    # the host's view of the vCPU threads: how long they waited for a host CPU
    vcpu_wait: VcpuWait = field(default_factory=VcpuWait)
    qemu_signal: int = 0  # the signal qemu itself died of, if one did (not its guest)
    post_mortem: str = ""  # a hung guest's registers and its answer to an NMI (postmortem)


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise TestbedError(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    return path


def qemu_version() -> str:
    out = subprocess.run([qemu_binary(), "--version"], capture_output=True, text=True, timeout=10)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def _stage2(argv: Sequence[str], env: dict[str, str], cwd: str) -> str:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
    share = initramfs.SHARE_MOUNT
    return f"""#!/bin/sh
export PATH={shlex.quote(_guest_path())}
export HOME=/root PYTHONDONTWRITEBYTECODE=1 LANG=C.UTF-8
{exports}cat /proc/uptime > {share}/ready
cd {shlex.quote(cwd)} 2>/dev/null || cd /
{shlex.join(argv)} > {share}/stdout 2> {share}/stderr < /dev/null
echo $? > {share}/exit_status.tmp && mv {share}/exit_status.tmp {share}/exit_status
sync
echo o > /proc/sysrq-trigger
sleep 30
"""


def _guest_path() -> str:
    venv_bin = str(Path(sys.executable).parent)
    return f"{venv_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _cmdline(cfg: VmConfig) -> str:
    return " ".join([
        "console=ttyS0", "rdinit=/init", "panic=-1", "psi=1", "delayacct", "loglevel=5",
        "tsc=reliable", "mitigations=off", "systemd.unified_cgroup_hierarchy=1",
        *postmortem.KERNEL_ARGS, f"chaos.swap_mib={cfg.swap_mib}",
    ])


def qemu_argv(cfg: VmConfig, initrd: Path, share: Path, console: Path, accel: str,
              name: str) -> list[str]:
    if accel == "kvm":
        accel_args = ["-accel", "kvm", "-cpu", "host"]
    else:
        accel_args = ["-accel", "tcg,thread=multi", "-cpu", "max"]
    return [
        qemu_binary(), "-name", f"{name},debug-threads=on", *accel_args,
        "-m", str(cfg.memory_mib), "-smp", str(cfg.cpus),
        "-kernel", str(cfg.kernel.vmlinuz), "-initrd", str(initrd), "-append", _cmdline(cfg),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", f"file:{console}", *postmortem.QEMU_ARGS,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap",
        "-virtfs", f"local,path={share},mount_tag=chaosshare,security_model=none",
        *_stressor_devices(cfg, share),
    ]


SCRATCH_IMAGE = "scratch.img"


def _stressor_devices(cfg: VmConfig, share: Path) -> list[str]:
    """The scratch disk and the flood NIC that chaos.runtimes.guest brings up on demand."""
    from chaos.runtimes.guest import FLOOD_MAC, SCRATCH_SERIAL

    out: list[str] = []
    if cfg.scratch_mib:
        image = share / SCRATCH_IMAGE
        out += ["-drive", f"file={image},if=none,id=scratch,format=raw,aio=threads,"
                          f"cache={_direct_or_writeback(image)},"
                          f"throttling.bps-write={cfg.scratch_write_mib_s << 20}",
                "-device", f"virtio-blk-pci,drive=scratch,serial={SCRATCH_SERIAL}"]
    if cfg.flood_socket:
        out += ["-netdev", f"dgram,id=flood,local.type=unix,local.path={cfg.flood_socket}.qemu,"
                           f"remote.type=unix,remote.path={cfg.flood_socket}.host",
                "-device", f"virtio-net-pci,netdev=flood,mac={FLOOD_MAC}"]
    return out


def _direct_or_writeback(image: Path) -> str:
    """cache=none (O_DIRECT: no host page cache, real device speed) where the host fs allows."""
    try:
        os.close(os.open(image, os.O_RDONLY | os.O_DIRECT))
        return "none"
    except OSError:
        return "writeback"


def _guest_env(cfg: VmConfig, share: Path, scratch_ext4: bool) -> dict[str, str]:
    """What chaos.runtimes.guest needs to know about this guest's kernel and devices."""
    from chaos.runtimes import guest

    return guest.host_side_env(cfg.kernel, cfg.scratch_mib, bool(cfg.flood_socket), share,
                               initramfs.SHARE_MOUNT, scratch_ext4)


def _tail(path: Path, end: int | None = None) -> str:
    """The console's last CONSOLE_TAIL bytes (before ``end``, if given)."""
    try:
        data = path.read_bytes()[:end]
    except OSError:
        return ""
    return data[-CONSOLE_TAIL:].decode(errors="replace")


def _panicked(console: str) -> bool:
    return "Kernel panic" in console or "end Kernel panic" in console


@contextlib.contextmanager
def vm_slot(cpus: int, on_wait: Callable[[str], None] | None = None) -> Iterator[int]:
    """Hold one of the host's VM slots for the life of a guest.

    Emulated vCPUs are host threads: more busy vCPUs than host cores and every
    guest's clock runs while its CPUs don't, which shows up as missed samples and
    invented run delay. So guests share the host by slots (host cores // guest CPUs,
    at least one; CHAOS_VM_SLOTS overrides), across processes and xdist workers.
    With CHAOS_VM_SLOT_LOG set, each use appends a JSON line (who, wait, held) to
    that file: the slot is what CI's wall time is made of.
    """
    default = max(1, (os.cpu_count() or 1) // max(1, cpus))
    slots = max(1, int(os.environ.get("CHAOS_VM_SLOTS", default)))
    lock_dir = state_dir() / ".vm-slots"  # dot: not a run, never swept
    lock_dir.mkdir(parents=True, exist_ok=True)
    files = [open(lock_dir / f"slot{i}", "w") for i in range(slots)]  # noqa: SIM115
    asked = time.monotonic()
    try:
        while True:
            for i, f in enumerate(files):
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                got = time.monotonic()
                try:
                    yield i
                finally:
                    _log_slot_use(i, got - asked, time.monotonic() - got)
                return
            if on_wait is not None:
                on_wait(f"waiting for a free VM slot ({slots} on this host)")
                on_wait = None  # say it once
            time.sleep(0.1)
    finally:
        for f in files:
            f.close()


def _log_slot_use(slot: int, wait_s: float, held_s: float) -> None:
    path = os.environ.get("CHAOS_VM_SLOT_LOG")
    if not path:
        return
    line = json.dumps({"slot": slot, "wait_s": round(wait_s, 2), "held_s": round(held_s, 2),
                       "who": os.environ.get("PYTEST_CURRENT_TEST", " ".join(sys.argv)),
                       "pid": os.getpid(), "end": round(time.time(), 1)})
    try:
        with open(path, "a") as f:  # one short append per guest: lines do not interleave
            f.write(line + "\n")
    except OSError as exc:  # a diagnostic: it must not cost the guest's result
        print(f"chaos: CHAOS_VM_SLOT_LOG {path}: {exc.strerror or exc}", file=sys.stderr)


HEARTBEAT = "heartbeat"  # in the shared directory; the command rewrites it to say it lives


def boot(cfg: VmConfig, argv: Sequence[str], share: Path, deadline_s: float,
         record: RunRecord | None = None, accel: str | None = None, name: str = "chaos-vm",
         on_progress: Callable[[str], None] | None = None, watch_for: str = "",
         silence_s: float = 0.0) -> VmRun:
    """Boot a guest, run ``argv`` in it, return what happened. Never hangs past the deadline.

    With ``silence_s``, a guest whose command has started its heartbeat (the file
    HEARTBEAT in the shared directory) and then not rewritten it for that long is hung
    as well: found in seconds rather than at the deadline."""
    accel = accel or resolve_accel(cfg)
    precompile()
    with vm_slot(cfg.cpus, on_progress):
        return _boot(cfg, argv, share, deadline_s, record, accel, name, on_progress, watch_for,
                     silence_s)


_precompiled = False


def precompile() -> None:
    """Write the bytecode of the packages guests import (chaos, oomguard), once per process.

    A guest sees the host's files read-only, so what has no up-to-date ``__pycache__``
    (a fresh clone, PYTHONDONTWRITEBYTECODE, an edited module) was compiled again by
    every Python process of every guest: ~0.4 s of the agent's start under emulation.
    Up-to-date files are skipped; a tree we cannot write is left as it is."""
    global _precompiled
    if _precompiled:
        return
    _precompiled = True
    import compileall
    import importlib.util

    for name in ("chaos", "oomguard"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            compileall.compile_dir(Path(spec.origin).parent, quiet=2)  # quiet=2: no output


def _silent_for(heartbeat: Path) -> float:
    """Seconds since the guest last rewrote its heartbeat; 0 before the first beat."""
    try:
        return max(0.0, time.time() - heartbeat.stat().st_mtime)
    except OSError:
        return 0.0


def _boot(cfg: VmConfig, argv: Sequence[str], share: Path, deadline_s: float,
          record: RunRecord | None, accel: str, name: str,
          on_progress: Callable[[str], None] | None, watch_for: str,
          silence_s: float) -> VmRun:
    share.mkdir(parents=True, exist_ok=True)
    for stale in ("ready", "stdout", "stderr", "exit_status", HEARTBEAT):
        (share / stale).unlink(missing_ok=True)
    from chaos.runtimes import guest

    ext4 = bool(cfg.scratch_mib) and guest.make_scratch_image(share / SCRATCH_IMAGE,
                                                               cfg.scratch_mib)
    env = {k: os.environ[k] for k in ENV_PASSTHROUGH if k in os.environ}
    env.update(_guest_env(cfg, share, ext4))
    (share / "stage2.sh").write_text(_stage2(argv, env, os.getcwd()))
    console = share / "console.log"
    console.unlink(missing_ok=True)
    initrd = initramfs.build(cfg.kernel, cache_dir() / "initramfs")
    cmd = qemu_argv(cfg, initrd, share, console, accel, name)
    t0 = time.monotonic()
    # stdin: qemu's monitor, asked only if the guest hangs (postmortem)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=set_pdeathsig)
    if record is not None:
        record.add_process(proc.pid, f"qemu {name}")
    boot_ms: float | None = None
    hung = False
    failure = ""
    done_at: float | None = None  # when the command's exit status reached the host
    milestones: dict[str, float] = {}
    watcher = _Milestones(console, share / "stdout", watch_for, milestones, t0, on_progress)
    sampler = VcpuSampler(proc.pid, cfg.cpus, share / HEARTBEAT).start()
    try:
        while True:
            rc = proc.poll()
            now = time.monotonic()
            watcher.poll(now)
            if boot_ms is None and (share / "ready").exists():
                milestones["stage2"] = round((now - t0) * 1000, 1)
                boot_ms = round((now - t0) * 1000, 1)
                if on_progress:
                    on_progress(f"guest up in {boot_ms / 1000:.1f} s")
            if rc is not None:
                break
            if done_at is None and (share / "exit_status").exists():
                done_at = now
                milestones["exit_status"] = round((now - t0) * 1000, 1)
            if done_at is not None and now - done_at > POWEROFF_GRACE_S:
                break  # the command is done and its files are on the host: qemu is killed
            if boot_ms is None and now - t0 > cfg.boot_timeout_s:
                failure = (f"guest did not come up within {cfg.boot_timeout_s:.0f} s "
                           f"(kernel {cfg.kernel.release}, {accel})")
                hung = True
                break
            up_s = boot_ms / 1000 if boot_ms is not None else cfg.boot_timeout_s
            if now - t0 > up_s + deadline_s:  # the deadline runs from the guest coming up
                failure = f"guest still running at its deadline ({deadline_s:.0f} s)"
                hung = True
                break
            if silence_s and _silent_for(share / HEARTBEAT) > silence_s:
                failure = f"guest stopped answering (no heartbeat for {silence_s:.0f} s)"
                hung = True
                break
            time.sleep(0.02)
    finally:
        sampler.stop()
        console_end = postmortem.size(console)  # what the guest said before any NMI
        post = ""
        if hung and proc.poll() is None:
            pm, qemu_out = postmortem.ask(proc, console, console_end)
            post = pm.text()
        else:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            qemu_out = proc.communicate(timeout=30)[0].decode(errors="replace")
        qemu_out = postmortem.qemu_messages(qemu_out)
        if record is not None:
            record.remove_process(proc.pid)
        (share / SCRATCH_IMAGE).unlink(missing_ok=True)
        if cfg.flood_socket:  # qemu binds its end of the flood NIC and leaves it behind
            Path(cfg.flood_socket + ".qemu").unlink(missing_ok=True)
    wall = time.monotonic() - t0
    console_text = _tail(console, console_end if post else None)
    status_file = share / "exit_status"
    status = int(status_file.read_text().strip()) if status_file.exists() else None
    panicked = _panicked(console_text)
    if status is None and not failure:
        if panicked:
            failure = "guest kernel panicked"
        elif proc.returncode not in (0, None):
            failure = f"qemu exited with status {proc.returncode}: {qemu_out.strip()[-300:]}"
        else:
            failure = "guest stopped before the command finished"
    return VmRun(exit_status=status, stdout=_read(share / "stdout"), stderr=_read(share / "stderr"),
                 console=console_text + ("\n[qemu] " + qemu_out if qemu_out.strip() else ""),
                 accel=accel, boot_ms=boot_ms, wall_s=round(wall, 3), hung=hung,
                 panicked=panicked, failure=failure, pid=proc.pid, milestones=milestones,
                 vcpu_wait=sampler.record, post_mortem=post,
                 qemu_signal=-proc.returncode if proc.returncode and proc.returncode < 0 else 0)


class _Milestones:
    """Watches the console and stdout files (appended by the guest) for milestone lines."""

    def __init__(self, console: Path, stdout: Path, watch_for: str,
                 out: dict[str, float], t0: float,
                 on_progress: Callable[[str], None] | None = None) -> None:
        self.console, self.stdout, self.watch_for = console, stdout, watch_for
        self.out, self.t0 = out, t0
        self.console_seen = 0
        self.stdout_seen = 0
        self.on_progress = on_progress
        self.next_check = 0.0

    def poll(self, now: float) -> None:
        ms = round((now - self.t0) * 1000, 1)
        if "root_ready" not in self.out:
            try:
                size = self.console.stat().st_size
            except OSError:
                size = 0
            if size and "console" not in self.out:
                self.out["console"] = ms
            if size > self.console_seen:
                with open(self.console, "rb") as f:
                    f.seek(max(0, self.console_seen - 64))
                    chunk = f.read()
                self.console_seen = size
                if b"chaos-init: root ready" in chunk:
                    self.out["root_ready"] = ms
        if now < self.next_check:
            return
        self.next_check = now + 0.25
        try:
            with open(self.stdout, "rb") as f:
                f.seek(self.stdout_seen)
                chunk = f.read()
        except OSError:
            return
        cut = chunk.rfind(b"\n") + 1
        self.stdout_seen += cut
        for line in chunk[:cut].decode(errors="replace").splitlines():
            if self.watch_for and "marker" not in self.out and self.watch_for in line:
                self.out["marker"] = ms
            if self.on_progress and line.startswith(PROGRESS_PREFIX):
                self.on_progress(line[len(PROGRESS_PREFIX):])


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


# -- accelerator ------------------------------------------------------------------------------
def _accel_cache() -> Path:
    return cache_dir() / "accel.json"


def resolve_accel(cfg: VmConfig) -> str:
    """``kvm`` if a guest really boots under KVM here (probed once, remembered), else ``tcg``."""
    forced = os.environ.get("CHAOS_ACCEL", cfg.accel)
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    key = f"{platform.release()}|{qemu_version()}|{cfg.kernel.release}"
    try:
        known = json.loads(_accel_cache().read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return str(known[key])
    answer = probe_kvm(cfg)
    known[key] = answer
    _accel_cache().parent.mkdir(parents=True, exist_ok=True)
    tmp = _accel_cache().with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(known, indent=1))
    os.replace(tmp, _accel_cache())
    return answer


def probe_kvm(cfg: VmConfig, timeout_s: float = 12.0) -> str:
    """Boot ``true`` under KVM with a short timeout; nested KVM here often hangs at boot."""
    share = cache_dir() / "kvm-probe" / str(os.getpid())
    try:
        probe_cfg = VmConfig(kernel=cfg.kernel, memory_mib=256, cpus=1, boot_timeout_s=timeout_s)
        run = boot(probe_cfg, ["true"], share, deadline_s=5, accel="kvm", name="chaos-kvm-probe")
        return "kvm" if run.exit_status == 0 else "tcg"
    finally:
        shutil.rmtree(share, ignore_errors=True)
