"""Stressors and runtimes without a testbed: params, validation, commands, bookkeeping."""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import struct
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from chaos import runtimes, stressors
from chaos.runtimes import dirs, docker, guest, image, netflood
from chaos.runtimes.base import Limits, make_plan, split_limits
from chaos.scenario import KillerSpec, Scenario, SpecError, StressorSpec, TestbedInfo
from chaos.skips import skip_or_fail
from chaos.stressors.common import Pacer, argv_for, fill_block, main_for

VM = TestbedInfo(kind="vm", memory_mib=1024, cpus=2)


@pytest.mark.parametrize("name", sorted(stressors.REGISTRY))
def test_every_stressor_has_defaults_and_a_command(name: str) -> None:
    params = stressors.parse(name, {})
    argv = stressors.command(name, {})
    assert argv[1:3] == ["-m", stressors.REGISTRY[name]]
    module = stressors.load(name)
    seen: dict[str, Any] = {}
    assert main_for(type(params), lambda raw: seen.update(raw) or module.parse(raw),
                    lambda p: seen.update(parsed=p), argv[3:], name) == 0
    assert seen["parsed"] == params  # the command line carries every parameter, unchanged


@pytest.mark.parametrize("name, raw, message", [
    ("anon_hog", {"size_mib": -1}, "size_mib must be > 0"),
    ("anon_hog", {"rate_mib_s": -5}, "rate_mib_s must be >= 0"),
    ("anon_hog", {"count": 0}, "count must be 1..512"),
    ("anon_hog", {"size_mib": 4, "count": 8}, "at least 1 MiB"),
    ("anon_hog", {"size_mib": "big"}, "is not a valid int"),
    ("page_cache", {"mode": "murky"}, "mode must be one of clean, dirty"),
    ("page_cache", {"size_mib": 0}, "size_mib must be > 0"),
    ("page_cache", {"rate_mib_s": -1}, "rate_mib_s must be >= 0"),
    ("udp_storm", {"source": "mars"}, "source must be one of loopback, external"),
    ("udp_storm", {"port_base": 65530, "sockets": 10}, "outside 1024..65535"),
    ("udp_storm", {"packet_bytes": 70000}, "packet_bytes must be 64..65000"),
    ("cpu_starve", {"target": "../etc"}, "target must be a cgroup below the scenario root"),
    ("cpu_starve", {"target": "harness"}, "the harness cannot be a target"),
    ("cpu_starve", {"quota_pct": 0.5}, "1 ms minimum quota"),
    ("cpu_starve", {"policy": "fifo"}, "policy must be one of"),
    ("shmem_hog", {"size_mib": -3}, "size_mib must be > 0"),
    ("mlock_hog", {"chunk_mib": 0}, "chunk_mib must be 1..256"),
    ("fork_storm", {"count": 0}, "count must be 1..100000"),
    ("fork_storm", {"rate_per_s": -1}, "rate_per_s must be >= 0"),
    ("thp_compact", {"size_mib": 3}, "multiple of 2"),
    ("thp_compact", {"colour": "red"}, "unknown parameter(s) colour"),
    ("pageout", {"target": "/sys"}, "target must be a cgroup below the scenario root"),
    ("pageout", {"target": "harness/x"}, "the harness cannot be a target"),
    ("pageout", {"every_s": 0}, "every_s must be 0.05..3600"),
    ("pageout", {"advice": "dontneed"}, "advice must be one of pageout, cold"),
])
def test_bad_params_are_one_clear_error(name: str, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as err:
        stressors.parse(name, raw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unknown_stressor_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match="unknown stressor 'nope' .*page_cache.*udp_storm"):
        stressors.load("nope")


def test_limits_are_split_off_the_stressor_params() -> None:
    limits, own = split_limits({"size_mib": 10, "memory_max_mib": 256, "cpu_pct": 50}, "x")
    assert limits == Limits(memory_max_mib=256, cpu_pct=50.0) and own == {"size_mib": 10}
    assert limits.any() and not Limits().any()


@pytest.mark.parametrize("raw, message", [
    ({"memory_max_mib": -1}, "memory_max_mib must be >= 0"),
    ({"memory_max_mib": 100, "memory_high_mib": 200}, "memory_high_mib (200) is above"),
    ({"cpu_pct": 0.5}, "1 ms minimum"),
    ({"pids_max": "lots"}, "is not a valid int"),
])
def test_bad_limits(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as err:
        split_limits(raw, "hog")
    assert message in str(err.value)


def _spec(name: str = "anon_hog", runtime: str = "cgroup", **params: Any) -> StressorSpec:
    return StressorSpec(name=name, instance="s", cgroup="workload/s", params=params,
                        runtime=runtime)


@pytest.mark.parametrize("spec, testbed, message", [
    (_spec(memory_max_mib=2048), VM, "more than the testbed has (1024 MiB)"),
    (_spec(cpu_pct=300), VM, "more than the testbed's 2 CPUs can give"),
    (_spec("udp_storm", source="external"), TestbedInfo(kind="local"), "needs the VM testbed"),
    (_spec("nope"), VM, "unknown stressor 'nope'"),
    (_spec("pageout", runtime="docker"), VM, "which runtime docker hides from it"),
])
def test_limits_the_testbed_cannot_satisfy(spec: StressorSpec, testbed: TestbedInfo,
                                           message: str) -> None:
    with pytest.raises(SpecError) as err:
        make_plan(spec, testbed)
    assert message in str(err.value)


def test_plan_carries_needs_and_argv() -> None:
    plan = make_plan(_spec("page_cache", mode="dirty", size_mib=512, memory_max_mib=300), VM)
    assert plan.needs.directory == "block" and plan.needs.dir_mib >= 512
    assert plan.limits.memory_max_mib == 300
    assert "--mode" in plan.argv and "dirty" in plan.argv and "--memory-max-mib" not in plan.argv
    assert make_plan(_spec("mlock_hog"), VM).needs.caps == ("IPC_LOCK",)
    assert make_plan(_spec("cpu_starve"), VM).needs.target_cgroup == "killer"
    assert make_plan(_spec("pageout"), VM).needs.host_pids
    ext = make_plan(_spec("udp_storm", source="external"), VM).needs
    assert ext.flood_nic and ext.host_network and ext.caps == ("NET_ADMIN",)


def test_scenario_validation_before_a_testbed_boots() -> None:
    good = Scenario(id="x", run_id="r", killer=KillerSpec(), stressors=(_spec(size_mib=10),),
                    testbed=VM)
    runtimes.validate(good)
    bad = dataclasses.replace(good, stressors=(_spec(size_mib=10, memory_high_mib=-1),))
    with pytest.raises(SpecError, match="memory_high_mib must be >= 0"):
        runtimes.validate(bad)


def test_argv_for_writes_booleans_as_json() -> None:
    @dataclasses.dataclass(frozen=True)
    class P:
        flag: bool = True
        n: int = 3

    assert argv_for("m", P())[3:] == ["--flag", "true", "--n", "3"]


def test_fill_block_is_reproducible() -> None:
    assert fill_block(0, 4096) == b"\x5a" * 4096
    assert fill_block(7, 4096) == fill_block(7, 4096) != fill_block(8, 4096)


def test_pacer_holds_a_rate() -> None:
    import time

    pacer = Pacer(100.0)  # units per second
    t0 = time.monotonic()
    for done in range(1, 11):
        pacer.wait(done)
    assert 0.08 <= time.monotonic() - t0 < 0.5


def test_stressor_main_refuses_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    from chaos.stressors import anon_hog

    assert anon_hog.main(["--size-mib", "-4"]) == 2
    assert "size_mib must be > 0" in capsys.readouterr().err


# -- docker runtime bookkeeping ------------------------------------------------------------------
class FakeContainer:
    def __init__(self, code: int, oom: bool) -> None:
        self.calls: list[str] = []
        self.attrs = {"State": {"ExitCode": code, "OOMKilled": oom}}

    def wait(self, timeout: float = 0) -> dict[str, int]:
        self.calls.append("wait")
        return {"StatusCode": int(self.attrs["State"]["ExitCode"])}

    def reload(self) -> None:
        self.calls.append("reload")

    def kill(self, signal: str = "SIGKILL") -> None:
        self.calls.append("kill")

    def remove(self, force: bool = False) -> None:
        self.calls.append("remove")

    def logs(self, **kw: Any) -> Any:
        return iter([b'{"event": "start"}\n{"event": "alloc", "allocated_mib": 5', b'}\n'])


@pytest.mark.parametrize("code, oom, signal_, exit_code", [
    (137, True, 9, None), (137, False, 9, None), (143, False, 15, None), (0, False, None, 0),
    (2, False, None, 2),
])
def test_container_exit_is_read_before_removal(code: int, oom: bool, signal_: int | None,
                                               exit_code: int | None) -> None:
    import os

    fake = FakeContainer(code, oom)
    h = docker.ContainerHandle(name="hog", container=fake, pidfd=os.eventfd(1),
                               stressor_pid=123456789, start_ms=12.5)
    h.start_reader()
    h.stop(grace_s=0)
    assert fake.calls.index("reload") < fake.calls.index("remove")
    assert h.exit_signal == signal_ and h.exit_code == exit_code and h.oom_killed == oom
    data = h.last_json()
    assert data["allocated_mib"] == 5 and data["container_exit_code"] == code
    assert data["container_oom_killed"] == int(oom) and data["container_start_ms"] == 12.5
    h.close()


def test_an_engine_that_stops_answering_is_asked_nothing_more() -> None:
    import requests

    calls: list[str] = []

    def silent() -> None:
        calls.append("silent")
        raise requests.exceptions.ReadTimeout("read timed out")

    engine = docker.Engine(timeout_s=7)
    assert engine.call("pinging", lambda: 42) == 42
    with pytest.raises(docker.EngineUnresponsive, match="waiting got no answer within 7 s"):
        engine.call("waiting", silent)
    with pytest.raises(docker.EngineUnresponsive, match="waiting"):
        engine.call("removing", lambda: calls.append("remove"))
    assert calls == ["silent"]


def test_container_names_are_docker_safe() -> None:
    assert docker.container_name("20261126T000000-abc.gw0.3", "hog:1") == \
        "chaos-20261126T000000-abc.gw0.3-hog_1"


def test_docker_sweep_without_an_engine_is_empty(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setattr(docker, "DEFAULT_SOCKET", tmp_path / "none.sock")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert docker.sweep({"r"}) == []
    assert "no Docker engine" in docker.engine_available("local")


def test_image_inputs_are_reproducible() -> None:
    assert image.empty_tar() == image.empty_tar()
    with tarfile.open(fileobj=io.BytesIO(image.empty_tar())) as tar:
        assert [m.name for m in tar.getmembers()] == ["tmp"]
    assert image.input_hash() == image.input_hash()
    binds = image.bind_paths()
    assert "/usr" in binds and str(image.source_root()) in binds


# -- the VM's devices and the host flood ----------------------------------------------------------
def test_flood_frame_is_valid_ipv4_udp_to_the_guest() -> None:
    f = netflood.frame(47001, b"x" * 100)
    assert f[:6] == bytes.fromhex(guest.FLOOD_MAC.replace(":", "")) and f[12:14] == b"\x08\x00"
    ip = f[14:34]
    assert netflood._checksum(ip) == 0  # a valid header sums to 0xffff
    assert socket.inet_ntoa(ip[16:20]) == guest.FLOOD_GUEST_IP
    sport, dport, length, _ = struct.unpack("!HHHH", f[34:42])
    assert dport == 47001 and length == 108 and len(f) == 14 + 20 + 108


def flood_into_qemu(share: Path, deadline_s: float) -> tuple[netflood.HostFlood, socket.socket]:
    """A started host flood and the socket standing in for qemu's end of the NIC."""
    prefix = str(share / "f")
    qemu = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    qemu.bind(prefix + ".qemu")
    flood = netflood.HostFlood(prefix, share, range(47000, 47002), rate_mib_s=1.0,
                               deadline_s=deadline_s)
    flood.start()
    return flood, qemu


def test_host_flood_waits_for_go_and_sends_to_qemu(tmp_path: Path) -> None:
    flood, qemu = flood_into_qemu(tmp_path, deadline_s=5)
    qemu.settimeout(0.3)
    with pytest.raises(TimeoutError):
        qemu.recv(2048)  # nothing before flood.go
    (tmp_path / netflood.GO).write_text("go")
    qemu.settimeout(3)
    first = qemu.recv(65536)
    assert first[:6] == bytes.fromhex(guest.FLOOD_MAC.replace(":", ""))
    assert len(first) == 14 + guest.FLOOD_MTU  # full frames at the MTU the guest sets
    (tmp_path / netflood.STOP).write_text("stop")
    flood.join(5)
    assert not flood.is_alive() and flood.sent >= 1
    qemu.close()


def test_host_flood_still_answers_a_go_that_comes_after_its_deadline(tmp_path: Path) -> None:
    """A second boot (after a guest that faulted before starting) asks late: the flood's
    deadline counts from the go, and the wait for it lasts until stop()."""
    flood, qemu = flood_into_qemu(tmp_path, deadline_s=0.3)
    time.sleep(0.6)  # past the deadline, still waiting
    assert flood.is_alive()
    (tmp_path / netflood.GO).write_text("go")
    qemu.settimeout(3)
    assert qemu.recv(2048)
    flood.join(5)  # the flood itself is bounded by the deadline
    assert not flood.is_alive() and flood.sent >= 1 and 0 < flood.flood_s < 2
    qemu.close()
    idle = netflood.HostFlood(str(tmp_path / "g"), tmp_path / "none", range(47000, 47001))
    idle.start()
    idle.stop()  # no go ever: stop() ends the wait
    assert not idle.is_alive()


def test_guest_env_without_devices(tmp_path: Path) -> None:
    from chaos.kernels import Kernel

    k = Kernel("x", "1.0", "p", tmp_path / "vmlinuz", None)
    env = guest.host_side_env(k, 0, False, tmp_path, "/share")
    assert env == {guest.SCRATCH_ENV: "0", guest.FLOOD_ENV: "0", guest.SHARE_ENV: "/share",
                   guest.SCRATCH_EXT4_ENV: "0"}


def test_scratch_image_is_sparse_and_already_ext4(tmp_path: Path) -> None:
    """Made on the host (mkfs.ext4 on a file), so the guest only mounts it."""
    image = tmp_path / "scratch.img"
    if not guest.make_scratch_image(image, 256):
        skip_or_fail("no mkfs.ext4 on this host (e2fsprogs)")
    assert image.stat().st_size == 256 << 20
    assert image.stat().st_blocks * 512 < 16 << 20  # sparse: metadata only
    with open(image, "rb") as f:
        f.seek(1024 + 0x38)  # the superblock's s_magic
        assert f.read(2) == b"\x53\xef"


def test_scratch_image_without_mkfs_is_left_to_the_guest(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guest.shutil, "which", lambda *a, **k: None)
    image = tmp_path / "scratch.img"
    assert not guest.make_scratch_image(image, 64)
    assert image.stat().st_size == 64 << 20


def test_dirs_sweep_touches_only_run_named_directories(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setattr(dirs, "LOCAL_BLOCK_ROOT", tmp_path)
    monkeypatch.setattr(dirs, "TMPFS_ROOT", tmp_path / "no-tmpfs")
    dead = tmp_path / "chaos-20260101T000000-aaaaaa.1-hog"
    live = tmp_path / "chaos-20260101T000000-bbbbbb.1-hog"
    other = tmp_path / "chaos-explore"
    for d in (dead, live, other):
        d.mkdir()
    removed = dirs.sweep({"20260101T000000-bbbbbb"})
    assert removed == [f"stressor directory {dead}"]
    assert not dead.exists() and live.exists() and other.exists()


def test_dirs_check_refuses_a_missing_scratch_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(guest.MODULES_ENV, "/nonexistent")
    monkeypatch.setenv(guest.SCRATCH_ENV, "100")
    with pytest.raises(SpecError, match="scratch disk has 100 MiB"):
        dirs.check("block", 500)
    dirs.check("block", 50)


# -- what the testbed itself can give (checked inside it, before set-up) -------------------------
def _scenario(*specs: StressorSpec, kind: str = "local") -> Scenario:
    return Scenario(id="x", run_id="r", killer=KillerSpec(), stressors=specs,
                    testbed=TestbedInfo(kind=kind, memory_mib=1024, cpus=2))


def test_launcher_refuses_v2_limits_on_a_v1_testbed(monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos.runtimes import launcher

    monkeypatch.setattr(launcher, "v2_memory_root", lambda: None)
    with pytest.raises(SpecError, match="cpu_pct and pids_max need cgroup v2"):
        launcher.check(_scenario(_spec(size_mib=10, cpu_pct=50)))
    launcher.check(_scenario(_spec(size_mib=10, memory_max_mib=100)))  # memory.max: v1 too


def test_launcher_refuses_docker_without_an_engine(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    from chaos.runtimes import launcher

    monkeypatch.setattr(docker, "DEFAULT_SOCKET", tmp_path / "none.sock")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    with pytest.raises(SpecError, match="stressor s: runtime docker: no Docker engine"):
        launcher.check(_scenario(_spec(size_mib=10, runtime="docker")))


def test_launcher_refuses_an_external_flood_without_the_nic(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos.runtimes import launcher

    monkeypatch.delenv(guest.FLOOD_ENV, raising=False)
    with pytest.raises(SpecError, match="needs the VM's flood NIC"):
        launcher.check(_scenario(_spec("udp_storm", source="external"), kind="vm"))


def test_private_dockerd_that_exits_at_start_up_is_started_once_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pure retry logic, with a stand-in `dockerd` that always exits: two starts, one
    line naming both."""
    from chaos.runtimes import dockerd

    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "dockerd"
    fake.write_text(f"#!/bin/sh\necho started >> {tmp_path / 'starts'}\n"
                    "echo 'failed to start containerd: timeout waiting for containerd'\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setattr(dockerd, "ROOT", tmp_path / "root")
    monkeypatch.setattr(dockerd, "SOCKET", tmp_path / "root" / "docker.sock")
    d = dockerd.PrivateDaemon(None, tmp_path / "dockerd.log")
    with pytest.raises(SpecError) as exc:
        d.start(timeout_s=20)
    assert (tmp_path / "starts").read_text().count("started") == 2
    assert str(exc.value).startswith("dockerd exited at start-up (twice): ")
    assert "timeout waiting for containerd" in str(exc.value)
    assert d.child is None


def test_engine_call_deadline_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos.runtimes import dockerd
    from chaos.testbeds.vm import ENV_PASSTHROUGH

    monkeypatch.delenv(dockerd.CALL_TIMEOUT_ENV, raising=False)
    assert docker.Engine().timeout_s == dockerd.CALL_TIMEOUT_S
    monkeypatch.setenv(dockerd.CALL_TIMEOUT_ENV, "12")
    assert docker.Engine().timeout_s == 12.0
    assert dockerd.CALL_TIMEOUT_ENV in ENV_PASSTHROUGH  # a VM run's guest gets it too


@pytest.mark.parametrize("raw", ["soon", "0", "-5", "nan", "86400"])
def test_a_bad_engine_call_deadline_is_one_line_before_set_up(
        raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos.runtimes import dockerd, launcher

    monkeypatch.setenv(dockerd.CALL_TIMEOUT_ENV, raw)
    monkeypatch.setattr(launcher, "engine_available", lambda kind: "")
    spec = _spec("anon_hog", "docker", size_mib=64)
    with pytest.raises(SpecError, match=f"CHAOS_DOCKER_CALL_TIMEOUT_S must be seconds in "
                                        f"1..3600, got '{raw}'"):
        launcher.check(_scenario(spec, kind="vm"))
