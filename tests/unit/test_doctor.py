"""chaos doctor's judgement on fake facts, and the nightly workflow and shell example.

The checks are pure functions of a Facts record, so each one is exercised here with
the inputs that matter and nothing measured. The last part checks that the nightly
workflow parses and that every ``chaos`` command line in it and in the plain-shell
example is accepted by the real argument parser.
"""

from __future__ import annotations

import json
import re
import shlex
import struct
import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from chaos import cli, doctor
from chaos.doctor import checks, kconfig, measure, model, output
from chaos.doctor.model import Facts, KernelFact, KillerFact, Plan
from chaos.settings import resolve
from chaos.skips import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"
SHELL_EXAMPLE = ROOT / "ci-examples" / "nightly.sh"

GOOD = Facts(
    euid=0, qemu="/usr/bin/qemu-system-x86_64", qemu_version="QEMU emulator version 7.2",
    busybox="/bin/busybox", busybox_static=True, kvm_device="present", accel="kvm",
    accel_how="remembered probe with 6.12.1", cgroup2_memory="/sys/fs/cgroup",
    cgroup1_memory=False, psi=True, tracefs="mounted", delayacct="1",
    docker_engine="20.10.24", dockerd="/usr/sbin/dockerd",
    killers=(KillerFact("earlyoom", "", "earlyoom v1.7"), KillerFact("kernel", "", "6.18"),
             KillerFact("oomd", "", "v0.5.0")),
    unsupported=(("lmkd", "needs Android's init"),),
    swap_kib=0, mem_available_kib=8 << 20,
    kernels=(KernelFact("6.12", "linux-image-6.12.1-amd64", True),),
    cached_kernels=("linux-image-6.12.1-amd64",),
)
VM = Plan(testbed="vm", kernels=("6.12",), scenarios=("spike", "ramp"))
LOCAL = replace(VM, testbed="local")


def check(d: model.Diagnosis, name: str) -> model.Check:
    found = [c for c in d.checks if c.name == name]
    assert len(found) == 1, [c.name for c in d.checks]
    return found[0]


# -- the whole diagnosis ---------------------------------------------------------------------
@pytest.mark.parametrize("plan", [VM, LOCAL], ids=["vm", "local"])
def test_a_ready_machine_is_valid(plan: Plan) -> None:
    d = checks.diagnose(GOOD, plan)
    assert d.valid, [c for c in d.checks if not c.ok]
    assert d.not_run == ()
    assert d.killers == ("kernel", "earlyoom", "oomd")
    assert d.cells_total == 2 * 3 * 1 * 1


def test_not_root_skips_every_run() -> None:
    d = checks.diagnose(replace(GOOD, euid=1000), VM)
    assert check(d, "root").status == "MISSING"
    assert not d.valid
    assert len(d.not_run) == d.cells_total
    assert {(c.outcome, c.reason) for c in d.not_run} == {("skip", checks.ROOT_REASON)}


def test_qemu_missing_skips_vm_runs_only() -> None:
    facts = replace(GOOD, qemu="")
    vm = checks.diagnose(facts, VM)
    assert check(vm, "qemu").fix == "apt-get install qemu-system-x86"
    assert {c.outcome for c in vm.not_run} == {"skip"} and len(vm.not_run) == vm.cells_total
    local = checks.diagnose(facts, LOCAL)
    assert local.valid
    assert "qemu" not in [c.name for c in local.checks]


def test_dynamic_busybox_fails_vm_runs() -> None:
    d = checks.diagnose(replace(GOOD, busybox_static=False), VM)
    assert check(d, "busybox").status == "MISSING"
    assert "busybox-static" in check(d, "busybox").fix
    assert {c.outcome for c in d.not_run} == {"fail"}


def test_missing_busybox_skips_like_the_plugin() -> None:
    d = checks.diagnose(replace(GOOD, busybox=""), VM)
    assert {c.reason for c in d.not_run} == {
        "busybox is not installed (apt-get install busybox-static)"}


# -- KVM ---------------------------------------------------------------------------------------
def test_emulation_is_a_warning_not_an_invalid_run() -> None:
    d = checks.diagnose(replace(GOOD, accel="tcg", kvm_device="absent",
                                accel_how="/dev/kvm absent"), VM)
    kvm = check(d, "kvm")
    assert kvm.status == "warn" and "not comparable" in kvm.detail
    assert "kvm_intel" in kvm.fix
    assert d.valid


def test_unprobed_kvm_points_at_the_probe() -> None:
    d = checks.diagnose(replace(GOOD, accel="", accel_how="no remembered probe"), VM)
    kvm = check(d, "kvm")
    assert kvm.detail.startswith("not probed; /dev/kvm present")
    assert kvm.fix == "chaos doctor --probe-kvm"


def test_accel_forced_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_ACCEL", "tcg")
    assert measure._accel(None, "", "present", probe=False) == ("tcg", "forced by CHAOS_ACCEL")


def test_accel_without_a_usable_device_is_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAOS_ACCEL", raising=False)
    assert measure._accel(None, "", "absent", probe=False) == ("tcg", "/dev/kvm absent")


def test_accel_is_not_probed_for_a_kernel_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHAOS_ACCEL", raising=False)
    accel, how = measure._accel(KernelFact("6.12", "linux-image-6.12", False), "", "present",
                               probe=True)
    assert accel == "" and "chaos kernels fetch 6.12" in how


def test_accel_reads_the_remembered_probe(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    import platform

    from chaos import kernels
    from chaos.kernels import Kernel

    monkeypatch.delenv("CHAOS_ACCEL", raising=False)
    monkeypatch.setenv("CHAOS_CACHE", str(tmp_path))
    fake = Kernel("6.12", "6.12.1-amd64", "linux-image-6.12.1-amd64", tmp_path / "vmlinuz", None)
    monkeypatch.setattr(kernels, "get", lambda spec: fake)
    key = f"{platform.release()}|QEMU 7.2|6.12.1-amd64"
    (tmp_path / "accel.json").write_text(json.dumps({key: "kvm"}))
    cached = KernelFact("6.12", fake.package, True)
    assert measure._accel(cached, "QEMU 7.2", "present", probe=False) == (
        "kvm", "remembered probe with 6.12.1-amd64")
    # Another qemu: nothing remembered, and no probe without --probe-kvm.
    assert measure._accel(cached, "QEMU 8.0", "present", probe=False) == (
        "", "no remembered probe")


# -- cgroups, PSI, tracefs, delay accounting -----------------------------------------------------
def test_cgroup_v1_host() -> None:
    v1 = replace(GOOD, cgroup2_memory="", cgroup1_memory=True)
    vm = checks.diagnose(v1, VM)
    assert check(vm, "cgroup").status == "info"
    assert "cgroup v1 arena" in check(vm, "cgroup").detail
    assert vm.valid
    local = checks.diagnose(v1, LOCAL)
    cg = check(local, "cgroup")
    assert cg.status == "warn" and "cgroup v1 memory arena" in cg.detail
    assert [(c.killer, c.outcome) for c in local.not_run] == [("oomd", "fail")] * 2
    assert not local.valid


def test_no_memory_controller_at_all() -> None:
    d = checks.diagnose(replace(GOOD, cgroup2_memory="", cgroup1_memory=False), LOCAL)
    assert check(d, "cgroup").status == "MISSING"


@pytest.mark.parametrize("facts, name, fix", [
    (replace(GOOD, psi=False), "psi", "psi=1"),
    (replace(GOOD, tracefs="absent"), "tracefs", "CONFIG_FTRACE"),
    (replace(GOOD, delayacct="0"), "delayacct", "sysctl -w kernel.task_delayacct=1"),
    (replace(GOOD, delayacct=None), "delayacct", "CONFIG_TASK_DELAY_ACCT"),
])
def test_host_facts_matter_only_on_the_local_testbed(facts: Facts, name: str, fix: str) -> None:
    local = checks.diagnose(facts, LOCAL)
    assert check(local, name).status == "MISSING"
    assert fix in check(local, name).fix
    assert not local.valid
    vm = checks.diagnose(facts, VM)
    assert check(vm, name).status == "info"
    assert vm.valid


def test_tracefs_that_the_agent_can_mount_is_fine() -> None:
    d = checks.diagnose(replace(GOOD, tracefs="mountable"), LOCAL)
    assert check(d, "tracefs").ok and "the agent mounts it" in check(d, "tracefs").detail


# -- Docker ------------------------------------------------------------------------------------
def test_docker_needed_only_for_the_docker_runtime() -> None:
    no_engine = replace(GOOD, docker_engine="", docker_problem="not running: no socket")
    local = checks.diagnose(no_engine, LOCAL)
    assert check(local, "docker").status == "warn"
    assert local.valid
    docker = checks.diagnose(no_engine, replace(LOCAL, runtimes=("cgroup", "docker")))
    assert check(docker, "docker").status == "MISSING"
    assert "dockerd" in check(docker, "docker").fix
    assert {c.runtime for c in docker.not_run} == {"docker"}


def test_vm_testbed_needs_dockerd_not_a_host_engine() -> None:
    facts = replace(GOOD, docker_engine="", docker_problem="not running")
    assert checks.diagnose(facts, replace(VM, runtimes=("docker",))).valid
    facts = replace(facts, dockerd="")
    d = checks.diagnose(facts, replace(VM, runtimes=("docker",)))
    assert check(d, "docker").fix == "apt-get install docker.io"
    assert not d.valid


def test_the_docker_runtimes_own_answer_wins() -> None:
    why = "no Docker engine at /var/run/docker.sock (start dockerd, as .ci/run does)"
    d = checks.diagnose(replace(GOOD, docker_runtime=why), replace(LOCAL, runtimes=("docker",)))
    assert {(c.outcome, c.reason) for c in d.not_run} == {("fail", why)}
    assert checks.diagnose(replace(GOOD, docker_runtime=""),
                           replace(LOCAL, runtimes=("docker",))).valid


# -- killers -----------------------------------------------------------------------------------
def test_missing_killer_drops_out_of_the_default_matrix_and_is_required() -> None:
    facts = replace(GOOD, killers=(KillerFact("earlyoom", "earlyoom is not installed"),
                                   KillerFact("kernel", "", "6.18")))
    d = checks.diagnose(facts, VM)
    assert d.killers == ("kernel",)
    killer = check(d, "killer earlyoom")
    assert killer.status == "MISSING" and killer.fix == "apt-get install earlyoom"
    assert not d.valid


def test_explicit_missing_killer_is_skipped_like_the_plugin() -> None:
    facts = replace(GOOD, killers=(*GOOD.killers, KillerFact("nohang", "nohang not found")))
    d = checks.diagnose(facts, replace(VM, killers=("nohang",)))
    assert {(c.killer, c.outcome, c.reason) for c in d.not_run} == {
        ("nohang", "skip", "nohang not found")}
    # Killers not selected are only a warning.
    d = checks.diagnose(facts, replace(VM, killers=("earlyoom",)))
    assert check(d, "killer nohang").status == "warn"
    assert d.valid


def test_unsupported_killers_are_listed_with_their_reason() -> None:
    d = checks.diagnose(GOOD, VM)
    lmkd = check(d, "killer lmkd")
    assert lmkd.status == "info" and "needs Android's init" in lmkd.detail
    assert d.valid


def test_unsupported_table_comes_from_the_registry() -> None:
    from chaos import targets

    _, unsupported = measure._killers(())
    expected = getattr(targets, "UNSUPPORTED", measure.UNSUPPORTED_FALLBACK)
    assert dict(unsupported) == expected
    assert {"systemd-oomd", "lmkd"} <= set(dict(unsupported))


# -- memory, swap, kernels ---------------------------------------------------------------------
def test_memory_for_a_guest_and_for_an_arena() -> None:
    low = replace(GOOD, mem_available_kib=1200 * 1024)
    vm = checks.diagnose(low, VM)
    assert check(vm, "memory").status == "MISSING"
    assert "1536 MiB" in check(vm, "memory").detail
    assert checks.diagnose(low, LOCAL).valid  # 512 MiB arena + headroom fits in 1200 MiB
    global_pressure = replace(LOCAL, allow_host_pressure=True, min_free_global_mib=2048)
    assert check(checks.diagnose(low, global_pressure), "memory").status == "MISSING"


def test_swap_is_information() -> None:
    d = checks.diagnose(replace(GOOD, swap_kib=4 << 20), LOCAL)
    assert check(d, "swap").status == "info" and "4096 MiB" in check(d, "swap").detail


def test_kernel_not_cached_is_fetched_by_the_run() -> None:
    facts = replace(GOOD, kernels=(KernelFact("6.12-rt", "linux-image-6.12.1-rt-amd64", False),))
    d = checks.diagnose(facts, replace(VM, kernels=("6.12-rt",)))
    k = check(d, "kernel 6.12-rt")
    assert k.status == "warn" and k.fix == "chaos kernels fetch 6.12-rt"
    assert d.valid


def test_unusable_kernel_fails_its_runs() -> None:
    bad = KernelFact("/no/bzImage", problem="local kernel /no/bzImage does not exist")
    facts = replace(GOOD, kernels=(GOOD.kernels[0], bad))
    d = checks.diagnose(facts, replace(VM, kernels=("6.12", "/no/bzImage")))
    assert check(d, "kernel /no/bzImage").status == "MISSING"
    assert {c.kernel for c in d.not_run} == {"/no/bzImage"}
    assert {c.outcome for c in d.not_run} == {"fail"}
    assert d.cells_total == 2 * 3 * 2


# -- kernel configs ----------------------------------------------------------------------------
FULL_CONFIG = "".join(f"{o}=y\n" for o in (*kconfig.KCONFIG_REQUIRED, *kconfig.KCONFIG_OPTIONAL))


def test_kconfig_complete() -> None:
    assert kconfig.kconfig_gaps(FULL_CONFIG, has_modules=False) == ((), ())


def test_kconfig_modules_count_only_with_a_modules_dir() -> None:
    text = FULL_CONFIG.replace("CONFIG_9P_FS=y", "CONFIG_9P_FS=m").replace(
        "CONFIG_PSI=y", "CONFIG_PSI=m")
    assert kconfig.kconfig_gaps(text, has_modules=True) == (("CONFIG_PSI",), ())
    assert kconfig.kconfig_gaps(text, has_modules=False) == (("CONFIG_9P_FS", "CONFIG_PSI"), ())


def test_kconfig_missing_and_not_set() -> None:
    text = FULL_CONFIG.replace("CONFIG_ZRAM=y", "# CONFIG_ZRAM is not set").replace(
        "CONFIG_TASK_DELAY_ACCT=y\n", "")
    assert kconfig.kconfig_gaps(text, has_modules=True) == (("CONFIG_TASK_DELAY_ACCT",),
                                                           ("CONFIG_ZRAM",))


def test_kconfig_fix_turns_on_what_selects_tracing() -> None:
    fix = kconfig.kconfig_fix(["CONFIG_9P_FS", "CONFIG_TRACING", "CONFIG_EVENT_TRACING"])
    assert fix == ("in the kernel tree: scripts/config -e 9P_FS -e FTRACE -e "
                   "ENABLE_DEFAULT_TRACERS && make olddefconfig && make")


def test_find_kconfig(tmp_path: Path) -> None:
    from chaos.kernels import Kernel

    tree = tmp_path / "linux"
    image = tree / "arch" / "x86" / "boot" / "bzImage"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"")
    kernel = Kernel(str(image), "6.13.0", f"local:{image}", image, None)
    assert kconfig.find_kconfig(kernel) is None
    (tree / ".config").write_text(FULL_CONFIG)
    assert kconfig.find_kconfig(kernel) == tree / ".config"
    packaged = tmp_path / "boot" / "vmlinuz-6.1.0-1-amd64"
    packaged.parent.mkdir()
    packaged.write_bytes(b"")
    (packaged.parent / "config-6.1.0-1-amd64").write_text(FULL_CONFIG)
    deb = Kernel("6.1", "6.1.0-1-amd64", "linux-image-6.1.0-1-amd64", packaged, None)
    assert kconfig.find_kconfig(deb) == packaged.parent / "config-6.1.0-1-amd64"


def test_local_build_lacking_options_fails_its_runs() -> None:
    bad = KernelFact("/src/linux/arch/x86/boot/bzImage", "6.13.0", True,
                     "/src/linux/.config lacks CONFIG_9P_FS", "/src/linux/.config",
                     ("CONFIG_9P_FS",))
    d = checks.diagnose(replace(GOOD, kernels=(bad,)), replace(VM, kernels=(bad.spec,)))
    k = check(d, f"kernel {bad.spec}")
    assert k.status == "MISSING" and "scripts/config -e 9P_FS" in k.fix
    assert {c.outcome for c in d.not_run} == {"fail"}


def test_local_build_without_zram_is_a_warning() -> None:
    fine = KernelFact("/k/bzImage", "6.13.0", True, config="/k/.config",
                      optional_missing=("CONFIG_ZRAM",))
    d = checks.diagnose(replace(GOOD, kernels=(fine,)), replace(VM, kernels=(fine.spec,)))
    assert check(d, "kernel /k/bzImage").ok
    assert "every option" in check(d, "kernel /k/bzImage").detail
    assert check(d, "kernel /k/bzImage options").status == "warn"
    assert d.valid


# -- parsing what the machine says -------------------------------------------------------------
def _elf(interp: bool) -> bytes:
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x20, 64)  # program headers right after the ELF header
    struct.pack_into("<HH", header, 0x36, 56, 2)
    load = struct.pack("<I", 1) + bytes(52)
    second = struct.pack("<I", 3 if interp else 4) + bytes(52)
    return bytes(header) + load + second


def test_elf_is_static() -> None:
    assert measure.elf_is_static(_elf(interp=False))
    assert not measure.elf_is_static(_elf(interp=True))
    assert not measure.elf_is_static(b"#!/bin/sh\n")


def test_tracefs_state() -> None:
    mounts = "nodev /sys/kernel/tracing tracefs rw,relatime 0 0\n"
    assert measure.tracefs_state(mounts, "", 0) == "mounted"
    assert measure.tracefs_state("proc /proc proc rw 0 0\n", "nodev\tproc\n", 0) == "absent"


def test_meminfo() -> None:
    text = "MemTotal:       24000000 kB\nMemAvailable:   1234 kB\nSwapTotal: 0 kB\n"
    assert measure.meminfo_kib(text, "MemAvailable") == 1234
    assert measure.meminfo_kib(text, "Nope") == 0


# -- output and exit status --------------------------------------------------------------------
def test_text_names_the_fix_and_groups_the_runs() -> None:
    facts = replace(GOOD, delayacct="0", cgroup2_memory="", cgroup1_memory=True)
    text = output.render_text(checks.diagnose(facts, LOCAL), "header")
    assert "fix: sysctl -w kernel.task_delayacct=1" in text
    assert "fail  2: killer oomd needs cgroup v2" in text
    assert "scenarios spike, ramp; killers oomd; kernels host" in text
    assert "would NOT be valid" in text


def test_json_is_complete() -> None:
    d = checks.diagnose(replace(GOOD, euid=1000), VM)
    data = json.loads(json.dumps(output.to_json(d, {"host": "h"}, 1.0)))
    assert data["valid"] is False and data["host"] == "h"
    assert {"name", "ok", "detail", "fix", "required", "status"} <= set(data["checks"][0])
    assert data["runs"]["total"] == 6 and len(data["runs"]["not_run"]) == 6


@pytest.mark.parametrize("facts, status", [(GOOD, 0), (replace(GOOD, euid=1000), 1)])
def test_exit_status(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                     facts: Facts, status: int) -> None:
    monkeypatch.setattr(doctor, "gather", lambda plan, probe_kvm=False: facts)
    args = cli.build_parser().parse_args(["doctor", "--testbed", "vm", "--kernel", "6.12"])
    assert args.func(args) == status
    assert "chaos doctor: a run would" in capsys.readouterr().out


def test_bad_usage_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = cli.build_parser().parse_args(["doctor", "--kernel", "4.19"])
    assert args.func(args) == 2
    assert "unknown kernel" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["doctor", "--testbed", "cloud"])
    assert exc.value.code == 2


def test_matrix_killers_mirror_the_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    from chaos import plugin

    facts = replace(GOOD, killers=(KillerFact("earlyoom", "", "v1"), KillerFact("kernel"),
                                   KillerFact("oomd", "oomd is not installed")))
    monkeypatch.setattr(plugin.targets, "names", lambda: ["earlyoom", "kernel", "oomd"])

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def check(self) -> None:
            if self.name == "oomd":
                raise RuntimeError("oomd is not installed")

    monkeypatch.setattr(plugin.targets, "load", lambda spec: Fake(spec.name))
    assert list(checks.matrix_killers(facts, VM)) == plugin.default_killers()


# -- the nightly workflow and the shell example ------------------------------------------------
# Values for what the CI fills in, so that each command line can be parsed as the shell would.
SAMPLES = {
    '${SELECT:+-k "$SELECT"}': "-k spike", '${select:+-k "$select"}': "-k spike",
    '"${nights[@]}"': "history/nights/2026-11-25/", "${{ matrix.kernel }}": "6.12",
}
VARIABLES = {"KERNEL": "6.12", "kernel": "6.12-rt", "BUNDLE": "/w/bundle",
             "bundle": "/w/bundle", "bundles": "/w/bundles", "out": "/w/out"}


def chaos_commands(script: str) -> list[list[str]]:
    """Every line of a shell script that runs ``chaos``, as the words chaos receives."""
    joined = re.sub(r"\\\n\s*", " ", script)
    out: list[list[str]] = []
    starts = re.compile(r"(?:^|&&|\|\||;|\bthen\b|\bdo\b|!)\s*(?=chaos\s)")
    for whole in joined.splitlines():
        found = starts.search(whole.strip())
        if found is None or whole.strip().startswith("#"):
            continue
        line = whole.strip()[found.end():]
        for raw, value in SAMPLES.items():
            line = line.replace(raw, value)
        line = re.sub(r"\$\{?(\w+)\}?", lambda m: VARIABLES[m.group(1)], line)
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for word in lexer:
            if word and set(word) <= set("|&;<>()"):
                if words and words[-1].isdigit() and word.startswith(">"):
                    words.pop()  # "2>&1": the 2 belongs to the redirection
                break
            words.append(word)
        out.append(words[1:])
    return out


def workflow_scripts() -> list[str]:
    data = _yaml().safe_load(WORKFLOW.read_text())
    return [step["run"] for job in data["jobs"].values() for step in job.get("steps", [])
            if "run" in step]


def _yaml() -> types.ModuleType:
    try:
        import yaml
    except ImportError:
        skip_or_fail("PyYAML is not installed (pip install pyyaml): cannot parse the workflow")
        raise
    return yaml


def test_workflow_shape() -> None:
    yaml = _yaml()
    data = yaml.safe_load(WORKFLOW.read_text())
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["schedule"][0]["cron"]
    assert "workflow_dispatch" in triggers
    run, report = data["jobs"]["run"], data["jobs"]["report"]
    assert {"runner", "kernel"} <= set(run["strategy"]["matrix"])
    assert run["strategy"]["fail-fast"] is False
    assert "self-hosted" in run["runs-on"] and "${{ matrix.runner }}" in run["runs-on"]
    uses = [s.get("uses", "") for s in run["steps"]]
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    upload = next(s for s in run["steps"] if s.get("uses", "").startswith("actions/upload-"))
    assert upload["if"] == "always()"
    assert report["needs"] == "run" and report["if"] == "always()"
    report_text = "\n".join(s.get("run", "") for s in report["steps"])
    assert "chaos report" in report_text and "--history" in report_text
    assert any(s.get("uses", "").startswith("actions/upload-pages-artifact@")
               for s in report["steps"])
    assert "actions/deploy-pages@" in data["jobs"]["pages"]["steps"][0]["uses"]
    # The default kernels of the matrix are kernels chaos accepts ("host" = local testbed).
    default = re.search(r"'(\[.*?\])'", run["strategy"]["matrix"]["kernel"])
    assert default is not None
    for kernel in json.loads(default.group(1)):
        if kernel != "host":
            resolve({"kernel": [kernel]}, None, environ={})


def test_workflow_scripts_are_valid_bash(tmp_path: Path) -> None:
    for i, script in enumerate(workflow_scripts()):
        path = tmp_path / f"step{i}.sh"
        path.write_text(re.sub(r"\$\{\{[^}]*\}\}", "X", script))
        out = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, (script, out.stderr)
    out = subprocess.run(["bash", "-n", str(SHELL_EXAMPLE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("source", ["workflow", "shell example"])
def test_every_chaos_command_line_is_accepted(source: str) -> None:
    if source == "workflow":
        commands = [c for script in workflow_scripts() for c in chaos_commands(script)]
    else:
        commands = chaos_commands(SHELL_EXAMPLE.read_text())
    assert {c[0] for c in commands} >= ({"doctor", "run", "kernels"} if source == "workflow"
                                        else {"doctor", "run", "kernels", "report"})
    parser = cli.build_parser()
    for words in commands:
        args = parser.parse_args(words)  # exits 2 on anything it does not accept
        if args.cmd in ("run", "doctor"):
            given = {"kernel": args.kernel, "testbed": args.testbed, "killer": args.killer,
                     "runtime": args.runtime}
            resolve(given, None, environ={})  # SettingsError on a bad kernel or testbed
    if source == "workflow":
        report = [c for script in workflow_scripts() for c in chaos_commands(script)
                  if c[0] == "report"]
        assert report and all("--history" in c or "-o" in c for c in report)


def test_shell_example_report_keeps_the_history(tmp_path: Path) -> None:
    """Two nights through ``nightly.sh report``: the second report has the first as history."""
    from chaos.report.samples import sample_result

    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "CHAOS_HISTORY_NIGHTS": "5"}
    for night, fail in (("2026-11-25", ()), ("2026-11-26", ("NO_KILL",))):
        bundles = tmp_path / night / "bundles" / "runner-1"
        sample_result(run_id=f"n-{night}", fail=fail).write(bundles / "results" / "r.json")
        (bundles / "doctor.json").write_text("{}")  # not a result: ignored by the report
        out = subprocess.run(
            ["bash", str(SHELL_EXAMPLE), "report", str(tmp_path / night / "bundles"),
             str(tmp_path / "history"), str(tmp_path / night / "report")],
            env={**env, "CHAOS_NIGHT": night}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "history" / "nights").iterdir()) == [
        "2026-11-25", "2026-11-26"]
    assert "1 regression" in out.stdout, out.stdout
    assert (tmp_path / "2026-11-26" / "report" / "index.html").is_file()


def test_shell_example_usage() -> None:
    out = subprocess.run(["bash", str(SHELL_EXAMPLE)], capture_output=True, text=True)
    assert out.returncode == 2 and "nightly.sh run KERNEL BUNDLE_DIR" in out.stderr
