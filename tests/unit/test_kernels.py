"""Unit tests for chaos.kernels: pure logic on synthetic packages, ELF files and bzImages.

Nothing here talks to apt or the network: the functions that do are monkeypatched.
Real packages are exercised in tests/integration/test_kernels_fetch.py.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import multiprocessing
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from chaos import kernels, skips
from chaos.kernels import Kernel, KernelError

# --------------------------------------------------------------------------- builders


def make_elf(sections: dict[str, bytes], big_endian: bool = False) -> bytes:
    """A minimal ELF64 relocatable file holding *sections* plus .shstrtab."""
    e = ">" if big_endian else "<"
    names = [*sections, ".shstrtab"]
    shstrtab = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    name_off = {n: shstrtab.index(b"\0" + n.encode() + b"\0") + 1 for n in names}
    blobs = [*sections.values(), shstrtab]
    body = b""
    offsets = []
    for blob in blobs:
        offsets.append(64 + len(body))
        body += blob
    body += b"\0" * (-len(body) % 8)
    shoff = 64 + len(body)
    ident = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + bytes(9)
    ehdr = ident + struct.pack(
        e + "HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, len(blobs) + 1,
        len(blobs),
    )
    shdrs = struct.pack(e + "IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    for name, blob, off in zip(names, blobs, offsets, strict=True):
        sh_type = 3 if name == ".shstrtab" else 1
        shdrs += struct.pack(e + "IIQQQQIIQQ", name_off[name], sh_type, 0, 0, off, len(blob),
                             0, 0, 1, 0)
    return ehdr + body + shdrs


def make_ko(name: str, depends: str = "", release: str = "6.99.0-test") -> bytes:
    info = f"license=GPL\0depends={depends}\0name={name}\0vermagic={release} SMP mod_unload \0"
    return make_elf({".text": b"\xc3", ".modinfo": info.encode() + b"\0\0"})


def make_bzimage(version: str = "6.99.0-test (me@host) #1 SMP PREEMPT") -> bytes:
    """Just enough of a bzImage: setup header with a kernel_version pointer."""
    data = bytearray(8192)
    data[0x1F1] = 7  # setup_sects: setup code is 8 * 512 bytes
    data[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", data, 0x206, 0x020F)
    struct.pack_into("<H", data, 0x20E, 0x300)
    raw = version.encode() + b"\0"
    data[0x500 : 0x500 + len(raw)] = raw
    return bytes(data)


def write_modules(root: Path, modules: dict[str, bytes], builtin: Sequence[str] = ()) -> Path:
    """A lib/modules/<release> tree: file names (with suffix) -> content."""
    root.mkdir(parents=True, exist_ok=True)
    for fname, data in modules.items():
        path = root / "kernel" / "drivers" / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "modules.builtin").write_text("".join(f"kernel/misc/{b}.ko\n" for b in builtin))
    return root


def fake_entry(tmp_path: Path, modules: dict[str, bytes], builtin: Sequence[str] = ()) -> Kernel:
    """A package-style cache entry (boot/ + lib/modules/) without going through fetch."""
    release = "6.99.0-test"
    entry = tmp_path / "kernels" / "linux-image-6.99.0-test"
    (entry / "boot").mkdir(parents=True)
    vmlinuz = entry / "boot" / f"vmlinuz-{release}"
    vmlinuz.write_bytes(make_bzimage())
    mdir = write_modules(entry / "lib" / "modules" / release, modules, builtin)
    return Kernel("6.99", release, "linux-image-6.99.0-test", vmlinuz, mdir)


# --------------------------------------------------------------------------- resolve

APT_NAMES = (
    "linux-image-6.1.0-9-amd64",
    "linux-image-6.1.0-47-amd64",
    "linux-image-6.1.0-47-amd64-dbg",
    "linux-image-6.1.0-47-amd64-unsigned",
    "linux-image-6.1.0-47-rt-amd64",
    "linux-image-6.1.0-48-amd64",  # listed but no candidate
    "linux-image-6.1.0-47-cloud-amd64",
    "linux-image-6.12-amd64",  # metapackage: never an alias target
    "linux-image-6.12.99+deb12-amd64",
    "linux-image-6.12.117+deb12-amd64",
    "linux-image-6.12.117+deb12-amd64-dbg",
    "linux-image-6.12.117+deb12-rt-amd64",
    "linux-image-6.12.115+deb12-cloud-amd64",
)
NO_CANDIDATE = {"linux-image-6.1.0-48-amd64"}


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Fake apt with APT_NAMES, an empty cache; returns the mutable name list."""
    names = list(APT_NAMES)
    monkeypatch.setenv("CHAOS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_package_names", lambda: tuple(names))

    def candidates(pkgs: Sequence[str]) -> dict[str, str | None]:
        return {p: (None if p in NO_CANDIDATE or p not in names else "1.0") for p in pkgs}

    monkeypatch.setattr(kernels, "_candidate_versions", candidates)
    return names


@pytest.mark.parametrize(
    ("spec", "package"),
    [
        ("6.1", "linux-image-6.1.0-47-amd64"),  # -48 has no candidate, -9 is older
        ("6.12", "linux-image-6.12.117+deb12-amd64"),  # numeric, not string, order
        ("6.1-rt", "linux-image-6.1.0-47-rt-amd64"),
        ("6.12-rt", "linux-image-6.12.117+deb12-rt-amd64"),
        ("6.1-cloud", "linux-image-6.1.0-47-cloud-amd64"),
        ("6.12-cloud", "linux-image-6.12.115+deb12-cloud-amd64"),
        ("linux-image-6.12.99+deb12-amd64", "linux-image-6.12.99+deb12-amd64"),
        ("6.12.99+deb12-amd64", "linux-image-6.12.99+deb12-amd64"),  # a `uname -r`
        (" 6.12 ", "linux-image-6.12.117+deb12-amd64"),
    ],
)
def test_resolve(apt: list[str], spec: str, package: str) -> None:
    assert kernels.resolve(spec) == package


@pytest.mark.parametrize("spec", ["5.10", "6.12-dbg", "bogus", "linux-image-6.12-amd64-dbg2", ""])
def test_resolve_unknown_is_one_line_listing_aliases(apt: list[str], spec: str) -> None:
    with pytest.raises(KernelError) as info:
        kernels.resolve(spec)
    message = str(info.value)
    assert "\n" not in message
    assert "unknown kernel" in message
    for alias in kernels.ALIASES:
        assert alias in message
    assert "linux-image-6.12.117+deb12-amd64" in message  # an example exact name
    assert "PATH_TO_BZIMAGE" in message


def test_resolve_listed_package_without_candidate(apt: list[str]) -> None:
    with pytest.raises(KernelError, match="apt-get update"):
        kernels.resolve("linux-image-6.1.0-48-amd64")


def test_resolve_alias_without_any_candidate(apt: list[str]) -> None:
    apt[:] = ["linux-image-6.1.0-48-amd64"]
    with pytest.raises(KernelError, match="can download none.*apt-get update"):
        kernels.resolve("6.1")


def test_resolve_without_apt_lists_says_update(apt: list[str]) -> None:
    apt.clear()
    with pytest.raises(KernelError, match="run apt-get update"):
        kernels.resolve("6.12")


def test_resolve_uses_cache_when_apt_knows_nothing(apt: list[str], tmp_path: Path) -> None:
    apt.clear()
    entry = kernels.cache_dir() / "kernels" / "linux-image-6.12.50+deb12-amd64"
    entry.mkdir(parents=True)
    (entry / kernels.MANIFEST).write_text("{}")
    assert kernels.resolve("6.12") == "linux-image-6.12.50+deb12-amd64"
    assert kernels.available()[1] == ("6.12", "linux-image-6.12.50+deb12-amd64", True)


def test_available(apt: list[str]) -> None:
    rows = kernels.available()
    assert [r[0] for r in rows] == list(kernels.ALIASES)
    assert rows[0] == ("6.1", "linux-image-6.1.0-47-amd64", False)
    apt[:] = [n for n in apt if "rt" not in n]
    assert dict((a, p) for a, p, _ in kernels.available())["6.1-rt"] == ""


def test_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHAOS_CACHE", str(tmp_path))
    assert kernels.cache_dir() == tmp_path
    monkeypatch.delenv("CHAOS_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert kernels.cache_dir() == tmp_path / ".cache" / "chaos"


def test_label() -> None:
    p = Path("/x")
    assert Kernel("6.12", "6.12.117+deb12-amd64", "linux-image-x", p, p).label == "6.12"
    assert Kernel("6.1-rt", "6.1.0-56-rt-amd64", "linux-image-x", p, p).label == "6.1-rt"
    exact = Kernel("linux-image-6.12.115+deb12-amd64", "6.12.115+deb12-amd64", "x", p, p)
    assert exact.label == "6.12.115+deb12-amd64"
    assert Kernel("/b/bzImage", "6.13.0-rc1+", "local:/b/bzImage", p, None).label == (
        "local-6.13.0-rc1+"
    )


def test_error_is_one_line() -> None:
    assert str(KernelError("a\n  b\tc ")) == "a b c"


# --------------------------------------------------------------------------- ELF / modinfo


@pytest.mark.parametrize("big_endian", [False, True])
def test_elf_section(big_endian: bool) -> None:
    data = make_elf({".text": b"\x90\x90", ".modinfo": b"a=1\0"}, big_endian)
    assert kernels.elf_section(data, ".modinfo") == b"a=1\0"
    assert kernels.elf_section(data, ".text") == b"\x90\x90"
    assert kernels.elf_section(data, ".data") is None


def test_elf_section_rejects_garbage() -> None:
    with pytest.raises(KernelError, match="not an ELF"):
        kernels.elf_section(b"MZ\0\0" + bytes(60), ".modinfo")
    elf32 = b"\x7fELF\x01\x01\x01" + bytes(57)
    with pytest.raises(KernelError, match="64-bit"):
        kernels.elf_section(elf32, ".modinfo")
    data = make_elf({".modinfo": b"a=1\0"})
    with pytest.raises(KernelError, match="truncated"):
        kernels.elf_section(data[:-40], ".modinfo")  # section headers cut off


def test_read_modinfo(tmp_path: Path) -> None:
    ko = tmp_path / "m.ko"
    ko.write_bytes(make_elf({".modinfo": b"alias=a\0alias=b\0depends=x,y\0\0\0name=m\0"}))
    assert kernels.read_modinfo(ko) == {
        "alias": ["a", "b"], "depends": ["x,y"], "name": ["m"],
    }
    ko.write_bytes(make_elf({".text": b"\xc3"}))
    with pytest.raises(KernelError, match="no .modinfo"):
        kernels.read_modinfo(ko)


# --------------------------------------------------------------------------- module order


def names(paths: Sequence[Path]) -> list[str]:
    return [p.name for p in paths]


def test_testbed_modules_order(tmp_path: Path) -> None:
    kernel = fake_entry(tmp_path, {
        "a.ko": make_ko("a"),
        "b.ko.xz": lzma.compress(make_ko("b", "a")),
        "c-d.ko.gz": gzip.compress(make_ko("c_d", "b,a")),
        "f.ko": make_ko("f", "e"),  # e is built in
        "g.ko": make_ko("g", "a"),
        "unused.ko": make_ko("unused"),
    }, builtin=["e"])
    mods = kernels.testbed_modules(kernel, wanted=("c-d", "f", "e"), optional=("zram", "g"))
    assert names(mods) == ["a.ko", "b.ko", "c_d.ko", "f.ko", "g.ko"]
    cache = kernel.vmlinuz.parent.parent / kernels.TESTBED_MODULES_DIR
    assert mods[1].parent == cache and mods[2].parent == cache  # decompressed copies
    assert kernel.modules_dir is not None
    assert mods[0] == kernel.modules_dir / "kernel" / "drivers" / "a.ko"  # plain: as is
    for m in mods:
        assert m.read_bytes()[:4] == b"\x7fELF"
    assert kernels.read_modinfo(mods[2])["depends"] == ["b,a"]
    # Second call reuses the copies.
    before = mods[1].stat().st_mtime_ns
    assert kernels.testbed_modules(kernel, ("c_d", "f"), ("g",)) == mods
    assert mods[1].stat().st_mtime_ns == before


def test_testbed_modules_missing_and_cycle(tmp_path: Path) -> None:
    kernel = fake_entry(tmp_path, {
        "a.ko": make_ko("a", "gone"),
        "x.ko": make_ko("x", "y"),
        "y.ko": make_ko("y", "x"),
    })
    with pytest.raises(KernelError, match="module nothere is neither"):
        kernels.testbed_modules(kernel, ("nothere",), ())
    with pytest.raises(KernelError, match=r"module gone \(needed by a\)"):
        kernels.testbed_modules(kernel, ("a",), ())
    with pytest.raises(KernelError, match="cycle: x -> y -> x"):
        kernels.testbed_modules(kernel, ("x",), ())


def test_testbed_modules_without_modules_dir(tmp_path: Path) -> None:
    kernel = Kernel("/k", "6.99", "local:/k", tmp_path / "bzImage", None)
    assert kernels.testbed_modules(kernel, (), ("zram",)) == []
    with pytest.raises(KernelError, match="no modules directory"):
        kernels.testbed_modules(kernel)


def test_testbed_modules_zstd(tmp_path: Path) -> None:
    skips.skip_unless_binary("zstd", "zstd")
    raw = make_ko("z")
    packed = subprocess.run(["zstd", "-q", "-c"], input=raw, capture_output=True, check=True)
    kernel = fake_entry(tmp_path, {"z.ko.zst": packed.stdout})
    (mod,) = kernels.testbed_modules(kernel, ("z",), ())
    assert mod.read_bytes() == raw


def test_testbed_modules_zstd_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kernel = fake_entry(tmp_path, {"z.ko.zst": b"\x28\xb5\x2f\xfd"})
    monkeypatch.setattr(kernels.shutil, "which", lambda name: None)
    with pytest.raises(KernelError, match="zstd"):
        kernels.testbed_modules(kernel, ("z",), ())


def test_testbed_modules_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_CACHE", str(tmp_path / "cache"))
    mdir = write_modules(tmp_path / "build", {"b.ko.xz": lzma.compress(make_ko("b"))})
    kernel = Kernel("/k", "6.99", "local:/k", tmp_path / "bzImage", mdir)
    (mod,) = kernels.testbed_modules(kernel, ("b",), ())
    assert mod.is_relative_to(tmp_path / "cache" / "kernels")


# --------------------------------------------------------------------------- bzImage / local


def test_bzimage_release(tmp_path: Path) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(make_bzimage("6.13.0-rc1-mine+ (me@box) #3 SMP"))
    assert kernels.bzimage_release(image) == "6.13.0-rc1-mine+"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x7fELF" + bytes(4000), "ELF vmlinux"),
        (bytes(100), "not a bzImage"),
        (make_bzimage()[:0x300], "no kernel version"),  # cut before the string
        (make_bzimage("")[:0x210] + bytes(0x2000), "empty|no kernel version"),
    ],
)
def test_bzimage_release_rejects(tmp_path: Path, data: bytes, match: str) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(data)
    with pytest.raises(KernelError, match=match):
        kernels.bzimage_release(image)


def test_local_kernel(tmp_path: Path) -> None:
    image = tmp_path / "arch" / "bzImage"
    image.parent.mkdir()
    image.write_bytes(make_bzimage())
    alone = kernels.get(str(image))
    assert (alone.release, alone.modules_dir) == ("6.99.0-test", None)
    assert alone.package == f"local:{image}" and alone.vmlinuz == image
    assert alone.label == "local-6.99.0-test"
    mdir = write_modules(tmp_path / "inst" / "lib" / "modules" / "6.99.0-test", {})
    for given in (mdir, mdir.parent, tmp_path / "inst"):  # any of the usual spellings
        assert kernels.get(f"{image}:{given}").modules_dir == mdir
    other = write_modules(tmp_path / "lib" / "modules" / "6.98", {})
    with pytest.raises(KernelError, match="are for 6.98"):
        kernels.local_kernel(f"{image}:{other}")
    with pytest.raises(KernelError, match="does not exist"):
        kernels.get(str(tmp_path / "nope" / "bzImage"))
    with pytest.raises(KernelError, match="does not exist"):
        kernels.get(f"{image}:{tmp_path / 'nomods'}")


# --------------------------------------------------------------------------- fetch (fake apt)

PKG = "linux-image-6.99.1+deb12-amd64"
REL = "6.99.1+deb12-amd64"


Downloader = Callable[[str, Path, Path], tuple[str, str]]


def fake_download(counter: Path, delay: float = 0.0) -> Downloader:
    """Stands in for apt-get download + dpkg-deb -x; counts its calls in a file."""

    def download(package: str, workdir: Path, tree: Path) -> tuple[str, str]:
        with counter.open("a") as f:
            f.write(package + "\n")
        time.sleep(delay)
        (tree / "boot").mkdir(parents=True)
        (tree / "boot" / f"vmlinuz-{REL}").write_bytes(make_bzimage(f"{REL} (x) #1"))
        write_modules(tree / "lib" / "modules" / REL, {"a.ko": make_ko("a")})
        return "6.99.1-1", "ab" * 32

    return download


@pytest.fixture
def fake_apt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Fake apt that knows PKG; returns the file counting downloads."""
    monkeypatch.setenv("CHAOS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(kernels, "_package_names", lambda: (PKG,))
    monkeypatch.setattr(kernels, "_candidate_versions", lambda pkgs: dict.fromkeys(pkgs, "1"))
    counter = tmp_path / "downloads"
    counter.touch()
    monkeypatch.setattr(kernels, "_download_tree", fake_download(counter))
    return counter


def downloads(counter: Path) -> int:
    return len(counter.read_text().splitlines())


def test_fetch_is_idempotent(fake_apt: Path) -> None:
    k = kernels.fetch("6.99")
    assert (k.name, k.package, k.release, k.label) == ("6.99", PKG, REL, "6.99")
    entry = kernels.cache_dir() / "kernels" / PKG
    assert k.vmlinuz == entry / "boot" / f"vmlinuz-{REL}"
    assert k.modules_dir == entry / "lib" / "modules" / REL
    manifest = json.loads((entry / kernels.MANIFEST).read_text())
    assert manifest["package"] == PKG and manifest["release"] == REL
    assert manifest["version"] == "6.99.1-1" and manifest["deb_sha256"] == "ab" * 32
    assert len(manifest["vmlinuz_sha256"]) == 64
    assert kernels.fetch(PKG) == Kernel(PKG, REL, PKG, k.vmlinuz, k.modules_dir)
    assert downloads(fake_apt) == 1
    assert not [p for p in entry.parent.iterdir() if p.name.startswith(".staging")]


@pytest.mark.parametrize("damage", ["truncate", "no-manifest", "bad-manifest", "no-vmlinuz"])
def test_fetch_repairs_damaged_entry(fake_apt: Path, damage: str) -> None:
    k = kernels.fetch("6.99")
    good = k.vmlinuz.read_bytes()
    manifest = k.vmlinuz.parent.parent / kernels.MANIFEST
    (k.vmlinuz.parent.parent / "junk").write_text("left over")
    if damage == "truncate":
        with k.vmlinuz.open("r+b") as f:
            f.truncate(100)
    elif damage == "no-manifest":  # an interrupted fetch
        manifest.unlink()
    elif damage == "bad-manifest":
        manifest.write_text("{not json")
    else:
        k.vmlinuz.unlink()
    assert kernels.fetch("6.99") == k
    assert k.vmlinuz.read_bytes() == good
    assert not (k.vmlinuz.parent.parent / "junk").exists()  # the old entry was deleted
    assert downloads(fake_apt) == 2


def test_fetch_clears_stale_staging(fake_apt: Path) -> None:
    stale = kernels.cache_dir() / "kernels" / f".staging-{PKG}-dead"
    stale.mkdir(parents=True)
    kernels.fetch("6.99")
    assert not stale.exists()


def test_fetch_failure_leaves_no_entry(fake_apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(package: str, workdir: Path, tree: Path) -> tuple[str, str]:
        (tree / "boot").mkdir(parents=True)
        raise KernelError("network down")

    monkeypatch.setattr(kernels, "_download_tree", broken)
    with pytest.raises(KernelError, match="network down"):
        kernels.fetch("6.99")
    assert [p.name for p in (kernels.cache_dir() / "kernels").iterdir()] == [f".{PKG}.lock"]


def _fetch_in_child(spec: str) -> None:
    kernels.fetch(spec)


def test_concurrent_fetches_download_once(fake_apt: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_download_tree", fake_download(fake_apt, delay=0.5))
    ctx = multiprocessing.get_context("fork")  # children inherit the monkeypatches
    procs = [ctx.Process(target=_fetch_in_child, args=("6.99",)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert downloads(fake_apt) == 1
    assert kernels.fetch("6.99").release == REL


# --------------------------------------------------------------------------- download step


def fake_run(stdout: str = "", stderr: str = "", rc: int = 0, deb: bytes | None = None) -> (
    Callable[..., subprocess.CompletedProcess[str]]
):
    def run(cmd: Sequence[str], *, cwd: Path | None = None, timeout: float = 0) -> (
        subprocess.CompletedProcess[str]
    ):
        if cmd[:2] == ["apt-get", "download"] and deb is not None and cwd is not None:
            (cwd / "linux-image_1_amd64.deb").write_bytes(deb)
        return subprocess.CompletedProcess(list(cmd), rc, stdout, stderr)

    return run


@pytest.fixture
def one_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernels, "_candidate_versions", lambda pkgs: dict.fromkeys(pkgs, "1"))
    monkeypatch.setattr(kernels, "_deb_sha256", lambda pkg, ver: "0" * 64)


def test_download_missing_lists(
    one_version: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    err = "W: something\nE: Unable to locate package linux-image-6.99\n"
    monkeypatch.setattr(kernels, "_run", fake_run(stderr=err, rc=100))
    with pytest.raises(KernelError) as info:
        kernels._download_tree(PKG, tmp_path, tmp_path / "tree")
    assert "\n" not in str(info.value)
    assert "Unable to locate package" in str(info.value)
    assert "run apt-get update" in str(info.value)


def test_download_hash_mismatch(
    one_version: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(kernels, "_run", fake_run(deb=b"not the real thing"))
    with pytest.raises(KernelError, match="sha256 .* apt expects 0000"):
        kernels._download_tree(PKG, tmp_path, tmp_path / "tree")


def test_missing_tool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(KernelError, match="apt-cache not found"):
        kernels._run(["apt-cache", "policy"])


# --------------------------------------------------------------------------- CLI


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="chaos")
    kernels.add_cli(parser.add_subparsers())
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_cli_list(fake_apt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kernels.fetch(PKG)
    assert run_cli(["kernels", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["ALIAS", "PACKAGE", "CACHED"]
    assert out[1].split()[0] == "6.1" and "apt-get update" in out[1]
    assert out[-1].split() == ["-", PKG, "yes"]


def test_cli_fetch(fake_apt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["kernels", "fetch", "6.99"]) == 0
    out = capsys.readouterr().out
    assert f"release  {REL}\n" in out and f"vmlinuz-{REL}\n" in out


def test_cli_error(fake_apt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["kernels", "fetch", "5.10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chaos: unknown kernel '5.10'") and err.count("\n") == 1
    assert run_cli(["kernels"]) == 2
