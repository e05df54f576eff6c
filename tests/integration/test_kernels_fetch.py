"""chaos.kernels against real Debian packages: apt download, unpack, verify, module order.

The session fixtures fetch into the normal cache (``$CHAOS_CACHE`` or ~/.cache/chaos),
so later runs and the VM testbed reuse the downloads. The repair test works on its own
cache so it never damages a kernel another xdist worker may be booting.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import time
from pathlib import Path

import pytest

from chaos import kernels, skips
from chaos.kernels import Kernel, KernelError

pytestmark = pytest.mark.integration


def need_apt() -> None:
    skips.require(
        shutil.which("apt-get") is not None and shutil.which("dpkg-deb") is not None,
        "Debian kernel packages need apt-get and dpkg-deb (a Debian host)",
    )


@pytest.fixture(autouse=True)
def _apt_required() -> None:
    need_apt()

# Measured by booting these kernels (see /work/shared/ENVIRONMENT.md); the code derives
# the order from .modinfo, these lists only check that it matches what really booted.
BOOTED_ORDER = {
    "6.1": [
        "virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio",
        "virtio_pci", "9pnet", "9pnet_virtio", "netfs", "fscache", "9p", "overlay",
    ],
    "6.12": ["netfs", "9pnet", "9pnet_virtio", "9p", "overlay"],
}


@pytest.fixture(scope="session")
def k612() -> Kernel:
    need_apt()  # session fixtures run before the autouse check
    return kernels.fetch("6.12")


@pytest.fixture(scope="session")
def k61() -> Kernel:
    need_apt()
    return kernels.fetch("6.1")


@pytest.fixture(params=["6.1", "6.12"])
def kernel(request: pytest.FixtureRequest) -> Kernel:
    fixture = {"6.1": "k61", "6.12": "k612"}[request.param]
    result: Kernel = request.getfixturevalue(fixture)
    return result


def stem(path: Path) -> str:
    return path.name.removesuffix(".ko")


def test_fetched_entry(kernel: Kernel) -> None:
    assert kernel.label == kernel.name
    assert kernel.package == kernels.resolve(kernel.name)
    assert kernel.package == f"linux-image-{kernel.release}"
    assert kernel.release.startswith(kernel.name + ".")
    assert kernels.bzimage_release(kernel.vmlinuz) == kernel.release
    assert kernel.modules_dir is not None
    assert kernel.modules_dir.name == kernel.release
    assert (kernel.modules_dir / "modules.builtin").is_file()
    manifest = json.loads((kernel.vmlinuz.parent.parent / kernels.MANIFEST).read_text())
    assert {"package", "release", "version", "deb_sha256", "vmlinuz_sha256"} <= set(manifest)
    assert manifest["release"] == kernel.release


def test_fetch_again_is_quick(kernel: Kernel) -> None:
    start = time.monotonic()
    again = kernels.fetch(kernel.name)
    assert again == kernel
    assert time.monotonic() - start < 10


def test_module_order_follows_modinfo(kernel: Kernel) -> None:
    """Each module comes after everything it depends on; built-ins are left out."""
    assert kernel.modules_dir is not None
    mods = kernels.testbed_modules(kernel)
    order = [stem(m) for m in mods]
    assert len(set(order)) == len(order)
    builtin = kernels._builtin_modules(kernel.modules_dir)
    for position, mod in enumerate(mods):
        info = kernels.read_modinfo(mod)
        assert info["name"] == [stem(mod)]
        assert info["vermagic"][0].split()[0] == kernel.release
        for dep in filter(None, info["depends"][0].split(",")):
            assert dep in builtin or order.index(dep) < position, (stem(mod), dep)
        header = mod.read_bytes()[:18]
        assert header[:4] == b"\x7fELF" and struct.unpack_from("<H", header, 16)[0] == 1
    assert {"9p", "9pnet_virtio", "overlay"} <= set(order)
    assert "zram" in order  # the optional one is present in both packages


def test_module_order_matches_booted(kernel: Kernel) -> None:
    order = [stem(m) for m in kernels.testbed_modules(kernel, optional=())]
    assert order == BOOTED_ORDER[kernel.name]


def test_612_modules_are_decompressed_into_the_entry(k612: Kernel) -> None:
    entry = k612.vmlinuz.parent.parent
    for mod in kernels.testbed_modules(k612):
        assert mod.parent == entry / kernels.TESTBED_MODULES_DIR


def test_local_build_from_fetched_files(k612: Kernel) -> None:
    """A real bzImage read as a local build: same release, modules dir found."""
    local = kernels.get(f"{k612.vmlinuz}:{k612.modules_dir}")
    assert local.release == k612.release
    assert local.modules_dir == k612.modules_dir
    assert local.label == f"local-{k612.release}"
    assert [m.name for m in kernels.testbed_modules(local)] == [
        m.name for m in kernels.testbed_modules(k612)
    ]


def test_unknown_version_lists_aliases() -> None:
    with pytest.raises(KernelError) as info:
        kernels.get("5.10")
    message = str(info.value)
    assert "\n" not in message
    assert all(alias in message for alias in kernels.ALIASES)


def test_available_lists_every_alias() -> None:
    rows = kernels.available()
    assert [r[0] for r in rows[: len(kernels.ALIASES)]] == list(kernels.ALIASES)
    assert all(package.startswith("linux-image-") for _, package, _ in rows)


def test_cli_fetch(k612: Kernel, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="chaos")
    kernels.add_cli(parser.add_subparsers())
    args = parser.parse_args(["kernels", "fetch", "6.12"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert f"release  {k612.release}" in out and str(k612.vmlinuz) in out


def test_corrupt_entry_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Truncated vmlinuz -> the entry is deleted and downloaded again (a real download)."""
    monkeypatch.setenv("CHAOS_CACHE", str(tmp_path))
    kernel = kernels.fetch("6.12")
    assert kernel.vmlinuz.is_relative_to(tmp_path)
    good = kernels._sha256_file(kernel.vmlinuz)
    with kernel.vmlinuz.open("r+b") as f:
        f.truncate(4096)
    repaired = kernels.fetch("6.12")
    assert repaired == kernel
    assert kernels._sha256_file(repaired.vmlinuz) == good
    assert kernels.bzimage_release(repaired.vmlinuz) == kernel.release
