"""Kernels for VM testbeds: Debian kernel packages fetched into a cache, or a local build.

A scenario names its kernel by alias ("6.12", "6.1-rt"), by exact Debian package, or
as a local build ``PATH_TO_BZIMAGE[:MODULES_DIR]``. Packages are downloaded with
``apt-get download`` (never installed), checked against the SHA256 apt publishes and
unpacked into ``<cache>/kernels/<package>/``. An entry counts only once its manifest
exists (written last, atomically), so an interrupted fetch is repaired by the next one.
Concurrent fetches (pytest-xdist workers) serialise on one ``flock`` per package.

The guest needs a few modules (virtio, 9p, overlay) before it can mount the host's root,
and Debian's packages ship no ``modules.dep``: :func:`testbed_modules` orders them from
each module's own ``.modinfo`` ``depends=`` field, read with a small ELF64 reader.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ALIASES",
    "DEFAULT_KERNEL",
    "Kernel",
    "KernelError",
    "add_cli",
    "available",
    "bzimage_release",
    "cache_dir",
    "elf_section",
    "fetch",
    "get",
    "local_kernel",
    "read_modinfo",
    "resolve",
    "testbed_modules",
]

log = logging.getLogger(__name__)

ALIASES: tuple[str, ...] = ("6.1", "6.12", "6.1-rt", "6.12-rt", "6.1-cloud", "6.12-cloud")
DEFAULT_KERNEL = "6.12"

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1
TESTBED_MODULES_DIR = "testbed-modules"
LOCAL_PREFIX = "local:"
LOCAL_SYNTAX = "PATH_TO_BZIMAGE[:MODULES_DIR]"

_PREFIX = "linux-image-"
_ARCH = "amd64"  # the VM testbed runs qemu-system-x86_64
# "6.12", "6.1-rt", "6.12-cloud": a series plus an optional flavour.
_ALIAS_RE = re.compile(r"^(\d+\.\d+)(?:-(rt|cloud))?$")
_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
_APT_TIMEOUT = 120.0
_DOWNLOAD_TIMEOUT = 1800.0


class KernelError(Exception):
    """A kernel cannot be resolved, fetched or used; ``str()`` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


@dataclass(frozen=True)
class Kernel:
    """A kernel ready to boot: its image and (when it has one) its modules tree."""

    name: str  # what the user asked for: alias, package name or local spec
    release: str  # `uname -r` of this kernel
    package: str  # Debian package name, or "local:/path/to/bzImage"
    vmlinuz: Path
    modules_dir: Path | None  # .../lib/modules/<release>; None for a local build without

    @property
    def is_local(self) -> bool:
        return self.package.startswith(LOCAL_PREFIX)

    @property
    def label(self) -> str:
        """Short, stable name for test ids and reports."""
        if self.is_local:
            return f"local-{self.release}"
        if _ALIAS_RE.match(self.name):
            return self.name
        return self.release  # an exact package was asked for: be exact


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """``$CHAOS_CACHE`` or ``~/.cache/chaos``: shared by every run on this machine."""
    env = os.environ.get("CHAOS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "chaos"


def _kernels_dir() -> Path:
    return cache_dir() / "kernels"


def _cached_packages() -> set[str]:
    """Packages with a manifest in the cache (verified only when fetched)."""
    root = _kernels_dir()
    if not root.is_dir():
        return set()
    return {
        p.name
        for p in root.iterdir()
        if not p.name.startswith(".") and (p / MANIFEST).is_file()
    }


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive ``flock`` on *path*: one fetcher per package across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- apt


def _run(
    cmd: Sequence[str], *, cwd: Path | None = None, timeout: float = _APT_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run a tool, turning "not installed" and timeouts into one-line KernelErrors."""
    env = {**os.environ, "LC_ALL": "C"}  # apt's messages are parsed
    try:
        return subprocess.run(
            list(cmd), cwd=cwd, env=env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
    except FileNotFoundError:
        raise KernelError(
            f"{cmd[0]} not found: Debian kernel packages need apt and dpkg;"
            f" use a local build {LOCAL_SYNTAX} instead"
        ) from None
    except subprocess.TimeoutExpired:
        raise KernelError(f"{' '.join(cmd)} did not finish within {timeout:.0f} s") from None


def _last_error(stderr: str) -> str:
    errors = [ln for ln in stderr.splitlines() if ln.startswith("E:")]
    lines = errors or [ln for ln in stderr.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else "no error message"


_candidate_cache: dict[str, str | None] = {}


@functools.lru_cache(maxsize=1)
def _package_names() -> tuple[str, ...]:
    """All ``linux-image-*`` names apt knows (candidate or not); () without apt.

    Cached per process: each call costs about half a second.
    """
    try:
        proc = _run(["apt-cache", "pkgnames", _PREFIX])
    except KernelError:
        return ()
    return tuple(sorted(set(proc.stdout.split()))) if proc.returncode == 0 else ()


def _candidate_versions(names: Sequence[str]) -> dict[str, str | None]:
    """Candidate version per package (None: apt lists the name but cannot install it).

    One ``apt-cache policy`` call for all names not seen yet, because each call costs
    about half a second.
    """
    missing = [n for n in names if n not in _candidate_cache]
    if missing:
        for n in missing:
            _candidate_cache[n] = None
        try:
            output = _run(["apt-cache", "policy", *missing]).stdout
        except KernelError:
            output = ""
        current = ""
        for line in output.splitlines():
            if line and not line[0].isspace() and line.endswith(":"):
                current = line[:-1]
            elif current in _candidate_cache and line.strip().startswith("Candidate:"):
                version = line.split(":", 1)[1].strip()
                _candidate_cache[current] = None if version == "(none)" else version
    return {n: _candidate_cache[n] for n in names}


def _deb_sha256(package: str, version: str) -> str:
    """The SHA256 apt's (signed) index publishes for this exact package version."""
    proc = _run(["apt-cache", "show", f"{package}={version}"])
    for line in proc.stdout.splitlines():
        if line.startswith("SHA256:"):
            return line.split(":", 1)[1].strip().lower()
    raise KernelError(f"apt reports no SHA256 for {package}={version}: run apt-get update")


# --------------------------------------------------------------------------- resolve


def _version_key(package: str) -> tuple[int, ...]:
    """Numeric sort key, so 6.12.117 sorts after 6.12.99 and 6.1.0-56 after 6.1.0-9."""
    return tuple(int(n) for n in re.findall(r"\d+", package))


def _alias_pattern(alias: str) -> re.Pattern[str] | None:
    """Packages an alias may stand for, e.g. 6.1 -> linux-image-6.1.0-NN-amd64."""
    m = _ALIAS_RE.match(alias)
    if not m:
        return None
    series, flavour = m.groups()
    flav = f"{flavour}-" if flavour else ""
    # 6.1.0-56-rt-amd64 (bookworm's own kernel) or 6.12.117+deb12-rt-amd64 (backport);
    # "$" leaves out the -dbg and -unsigned packages.
    return re.compile(
        rf"^{_PREFIX}{re.escape(series)}\.(\d+)(?:-\d+|\+deb\d+)-{flav}{_ARCH}$"
    )


def _newest(alias: str, names: Sequence[str]) -> list[str]:
    pattern = _alias_pattern(alias)
    if pattern is None:
        return []
    return sorted((n for n in names if pattern.match(n)), key=_version_key, reverse=True)


def _unknown(spec: str, names: Sequence[str]) -> KernelError:
    examples = [m[0] for m in (_newest(a, names) for a in ("6.12", "6.1")) if m]
    example = f"an exact package such as {' or '.join(examples)}, " if examples else ""
    return KernelError(
        f"unknown kernel {spec!r}: use one of {', '.join(ALIASES)}, {example}"
        f"or a local build {LOCAL_SYNTAX}"
    )


def resolve(spec: str) -> str:
    """Alias, exact package name or release string -> exact package name.

    An alias means the newest package of that series and flavour that apt can download
    (or that is already cached, so a machine without apt lists still works).
    """
    spec = spec.strip()
    cached = _cached_packages()
    names = sorted(set(_package_names()) | cached)
    if not names:
        raise KernelError(
            "apt knows no linux-image packages: run apt-get update"
            f" (or use a local build {LOCAL_SYNTAX})"
        )
    if _ALIAS_RE.match(spec):
        matches = _newest(spec, names)
        if not matches:
            raise _unknown(spec, names)
        if matches[0] in cached:
            return matches[0]
        candidates = _candidate_versions([m for m in matches if m not in cached])
        for m in matches:
            if m in cached or candidates.get(m):
                return m
        raise KernelError(
            f"apt lists {len(matches)} packages for kernel {spec!r} but can download none"
            f" (newest {matches[0]}): run apt-get update"
        )
    package = spec if spec.startswith(_PREFIX) else _PREFIX + spec  # accept `uname -r`
    if package in cached:
        return package
    if package in names:
        if _candidate_versions([package]).get(package):
            return package
        raise KernelError(f"apt lists {package} but cannot download it: run apt-get update")
    raise _unknown(spec, names)


def available() -> list[tuple[str, str, bool]]:
    """(alias, package, cached?) per alias, then cached packages no alias points at.

    An alias apt cannot resolve shows an empty package.
    """
    cached = _cached_packages()
    names = sorted(set(_package_names()) | cached)
    # One apt-cache call for every alias instead of one each.
    _candidate_versions([n for a in ALIASES for n in _newest(a, names) if n not in cached])
    rows: list[tuple[str, str, bool]] = []
    for alias in ALIASES:
        try:
            package = resolve(alias)
        except KernelError:
            package = ""
        rows.append((alias, package, package in cached))
    shown = {r[1] for r in rows}
    rows.extend(("", p, True) for p in sorted(cached - shown, key=_version_key))
    return rows


# --------------------------------------------------------------------------- fetch


def _entry_kernel(spec: str, package: str, entry: Path) -> Kernel | None:
    """The cached kernel if its entry is complete and intact, else None."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
        release = str(manifest["release"])
        vmlinuz = entry / str(manifest["vmlinuz"])
        modules_dir = entry / str(manifest["modules_dir"])
        expected = str(manifest["vmlinuz_sha256"])
        ok = manifest["package"] == package and modules_dir.is_dir()
        ok = ok and vmlinuz.is_file() and _sha256_file(vmlinuz) == expected
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("kernel cache entry %s is unreadable (%s): fetching again", entry, e)
        return None
    if not ok:
        log.warning("kernel cache entry %s is damaged: fetching again", entry)
        return None
    return Kernel(spec, release, package, vmlinuz, modules_dir)


def _download_tree(package: str, workdir: Path, tree: Path) -> tuple[str, str]:
    """Download *package* into *workdir*, verify it, unpack into *tree*.

    Returns (version, sha256 of the .deb). The .deb itself is not kept.
    """
    version = _candidate_versions([package]).get(package)
    if not version:
        raise KernelError(f"apt cannot download {package}: run apt-get update")
    expected = _deb_sha256(package, version)
    cmd = ["apt-get", "download", "-q"]
    if os.geteuid() == 0:  # root: skip the _apt sandbox (and its harmless warning)
        cmd += ["-o", "APT::Sandbox::User=root"]
    proc = _run([*cmd, f"{package}={version}"], cwd=workdir, timeout=_DOWNLOAD_TIMEOUT)
    debs = sorted(workdir.glob("*.deb"))
    if proc.returncode != 0 or len(debs) != 1:
        err = _last_error(proc.stderr)
        hint = ""
        if any(s in err for s in ("Unable to locate", "candidate", "not found", "404")):
            hint = ": apt lists are missing or stale, run apt-get update"
        raise KernelError(f"apt-get download {package}={version} failed ({err}){hint}")
    deb = debs[0]
    actual = _sha256_file(deb)
    if actual != expected:
        raise KernelError(
            f"{deb.name} has sha256 {actual}, apt expects {expected}:"
            " run apt-get update and fetch again"
        )
    proc = _run(["dpkg-deb", "-x", str(deb), str(tree)], timeout=_DOWNLOAD_TIMEOUT)
    if proc.returncode != 0:
        raise KernelError(f"dpkg-deb -x {deb.name} failed: {_last_error(proc.stderr)}")
    deb.unlink()
    return version, actual


def _find_release(tree: Path, package: str) -> tuple[str, Path, Path]:
    """(release, vmlinuz, modules_dir) of an unpacked kernel package."""
    dirs = [d for base in ("lib/modules", "usr/lib/modules") if (tree / base).is_dir()
            for d in (tree / base).iterdir() if d.is_dir()]
    if len(dirs) != 1:
        raise KernelError(f"{package} holds {len(dirs)} module trees, expected exactly one")
    release = dirs[0].name
    vmlinuz = tree / "boot" / f"vmlinuz-{release}"
    if not vmlinuz.is_file():
        raise KernelError(f"{package} has no boot/vmlinuz-{release}")
    header = bzimage_release(vmlinuz)
    if header != release:
        raise KernelError(f"{package}: vmlinuz says release {header}, modules say {release}")
    return release, vmlinuz, dirs[0]


def fetch(spec: str) -> Kernel:
    """Resolve *spec*, download and unpack the package once, return the cached kernel."""
    package = resolve(spec)
    root = _kernels_dir()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / package
    with _locked(root / f".{package}.lock"):
        kernel = _entry_kernel(spec, package, entry)
        if kernel is not None:
            return kernel
        # Holding the lock, nothing else works on this package: clear leftovers.
        for stale in root.glob(f".staging-{package}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if entry.exists():
            shutil.rmtree(entry)
        staging = Path(tempfile.mkdtemp(prefix=f".staging-{package}-", dir=root))
        try:
            tree = staging / "tree"
            version, deb_sha256 = _download_tree(package, staging, tree)
            release, vmlinuz, modules_dir = _find_release(tree, package)
            manifest = {
                "schema": MANIFEST_SCHEMA,
                "package": package,
                "release": release,
                "version": version,
                "deb_sha256": deb_sha256,
                "vmlinuz": str(vmlinuz.relative_to(tree)),
                "vmlinuz_sha256": _sha256_file(vmlinuz),
                "modules_dir": str(modules_dir.relative_to(tree)),
            }
            os.rename(tree, entry)
            _write_atomic(entry / MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        kernel = _entry_kernel(spec, package, entry)
        if kernel is None:
            raise KernelError(f"kernel cache entry {entry} failed verification right after fetch")
        return kernel


# --------------------------------------------------------------------------- local builds


def bzimage_release(path: Path) -> str:
    """`uname -r` of a bzImage, from the version string its setup header points at.

    Reading the image (not a file name) lets a patched or renamed build be tested.
    """
    try:
        with path.open("rb") as f:
            head = f.read(0x1000)
            setup_sects = head[0x1F1] if len(head) > 0x1F1 else 0
            head += f.read(max(0, ((setup_sects or 4) + 1) * 512 - len(head)))
    except OSError as e:
        raise KernelError(f"cannot read kernel image {path}: {e.strerror}") from None
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        hint = ""
        if head[:4] == b"\x7fELF":
            hint = " (that is an ELF vmlinux; boot arch/x86/boot/bzImage)"
        raise KernelError(f"{path} is not a bzImage: no setup header{hint}")
    (protocol,) = struct.unpack_from("<H", head, 0x206)
    (pointer,) = struct.unpack_from("<H", head, 0x20E)
    start = pointer + 0x200
    if protocol < 0x200 or pointer == 0 or start >= len(head):
        raise KernelError(f"{path}: the bzImage setup header has no kernel version string")
    end = head.find(b"\0", start)
    words = head[start : end if end >= 0 else len(head)].decode(errors="replace").split()
    if not words:
        raise KernelError(f"{path}: the bzImage kernel version string is empty")
    return words[0]


def _split_local(spec: str) -> tuple[str, str | None]:
    if os.path.exists(spec) or ":" not in spec:
        return spec, None
    image, _, modules = spec.rpartition(":")
    return image, modules or None


def _local_modules_dir(given: Path, release: str) -> Path:
    """Accept lib/modules/<release>, lib/modules, an INSTALL_MOD_PATH, or a build tree."""
    for cand in (given / "lib" / "modules" / release, given / release, given):
        if (cand / "modules.builtin").is_file() or (cand / "kernel").is_dir():
            if cand.parent.name == "modules" and cand.name != release:
                raise KernelError(
                    f"modules in {cand} are for {cand.name}, the bzImage is {release}"
                )
            return cand
    raise KernelError(f"{given} holds no modules for {release} (no modules.builtin)")


def local_kernel(spec: str) -> Kernel:
    """A kernel you built: ``PATH_TO_BZIMAGE[:MODULES_DIR]``."""
    image_s, modules_s = _split_local(spec)
    image = Path(image_s).expanduser()
    if not image.is_file():
        raise KernelError(f"local kernel {image} does not exist (expected {LOCAL_SYNTAX})")
    release = bzimage_release(image)
    modules_dir = None
    if modules_s is not None:
        given = Path(modules_s).expanduser()
        if not given.is_dir():
            raise KernelError(f"modules directory {given} does not exist")
        modules_dir = _local_modules_dir(given, release).resolve()
    image = image.resolve()
    return Kernel(spec, release, f"{LOCAL_PREFIX}{image}", image, modules_dir)


def get(spec: str) -> Kernel:
    """Main entry: a path (contains "/") is a local build, anything else is fetched."""
    if "/" in spec:
        return local_kernel(spec)
    return fetch(spec)


# --------------------------------------------------------------------------- modules

_SHT_NOBITS = 8
_SHDR = "IIQQQQIIQQ"  # name type flags addr offset size link info addralign entsize


def elf_section(data: bytes, name: str, what: str = "module") -> bytes | None:
    """Contents of section *name* of an ELF64 file (None if absent)."""
    if data[:4] != b"\x7fELF":
        raise KernelError(f"{what} is not an ELF file")
    if data[4] != 2 or data[5] not in (1, 2):
        raise KernelError(f"{what} is not a 64-bit ELF file")
    end = "<" if data[5] == 1 else ">"
    try:
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        if shoff == 0:
            return None
        if shentsize < struct.calcsize(_SHDR):
            raise KernelError(f"{what}: bad ELF section header size {shentsize}")

        def header(i: int) -> tuple[int, ...]:
            return struct.unpack_from(end + _SHDR, data, shoff + i * shentsize)

        if shnum == 0:  # more than 0xff00 sections: the count lives in section 0
            shnum = header(0)[5]
        if shstrndx == 0xFFFF:
            shstrndx = header(0)[6]
        strtab = header(shstrndx)
        names = data[strtab[4] : strtab[4] + strtab[5]]
        wanted = name.encode()
        for i in range(shnum):
            sh = header(i)
            if names[sh[0] : names.find(b"\0", sh[0])] != wanted:
                continue
            if sh[1] == _SHT_NOBITS:
                return b""
            if sh[4] + sh[5] > len(data):
                raise KernelError(f"{what} is truncated (section {name} past the end)")
            return data[sh[4] : sh[4] + sh[5]]
    except struct.error:
        raise KernelError(f"{what} is truncated (ELF headers past the end)") from None
    return None


def read_modinfo(path: Path) -> dict[str, list[str]]:
    """The ``key=value`` strings of an uncompressed module's ``.modinfo`` section."""
    section = elf_section(path.read_bytes(), ".modinfo", what=str(path))
    if section is None:
        raise KernelError(f"{path} has no .modinfo section: not a kernel module")
    info: dict[str, list[str]] = {}
    for raw in section.split(b"\0"):
        key, sep, value = raw.decode(errors="replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info


def _module_name(filename: str) -> str:
    for suffix in _MODULE_SUFFIXES[::-1]:  # longest first
        if filename.endswith(suffix):
            filename = filename[: -len(suffix)]
            break
    return filename.replace("-", "_")


def _module_index(modules_dir: Path) -> dict[str, Path]:
    """Module name -> file; depmod's rule: updates/ wins over kernel/."""
    index: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(modules_dir):
        dirnames[:] = sorted(d for d in dirnames if d != TESTBED_MODULES_DIR)
        for fn in sorted(filenames):
            if fn.endswith(_MODULE_SUFFIXES):
                path = Path(dirpath) / fn
                name = _module_name(fn)
                if name not in index or "updates" in path.relative_to(modules_dir).parts:
                    index[name] = path
    return index


def _builtin_modules(modules_dir: Path) -> set[str]:
    path = modules_dir / "modules.builtin"
    if not path.is_file():
        return set()
    return {_module_name(Path(ln.strip()).name) for ln in path.read_text().split() if ln}


def _module_cache(kernel: Kernel) -> Path:
    """Where decompressed modules go: beside the package's cache entry, or per local build."""
    if not kernel.is_local:
        return kernel.vmlinuz.parent.parent / TESTBED_MODULES_DIR
    tag = hashlib.sha256(str(kernel.modules_dir).encode()).hexdigest()[:12]
    return _kernels_dir() / ".local" / f"{kernel.release}-{tag}" / TESTBED_MODULES_DIR


def _decompress(path: Path) -> bytes:
    name = path.name
    if name.endswith(".ko.xz"):
        return lzma.decompress(path.read_bytes())
    if name.endswith(".ko.gz"):
        return gzip.decompress(path.read_bytes())
    zstd = shutil.which("zstd")
    if zstd is None:
        raise KernelError(f"{name} is zstd-compressed and zstd is missing: apt-get install zstd")
    proc = subprocess.run([zstd, "-dcq", str(path)], capture_output=True, check=False)
    if proc.returncode != 0:
        raise KernelError(f"zstd cannot decompress {path}: {proc.stderr.decode().strip()}")
    return proc.stdout


def _uncompressed(path: Path, out_dir: Path) -> Path:
    """The module as a plain .ko: busybox insmod cannot read compressed ones."""
    if path.name.endswith(".ko"):
        return path
    dest = out_dir / f"{_module_name(path.name)}.ko"
    if not dest.is_file():
        try:
            data = _decompress(path)
        except (lzma.LZMAError, OSError, EOFError) as e:
            raise KernelError(f"cannot decompress {path}: {e}") from None
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_atomic(dest, data)  # concurrent workers each write a whole file
    return dest


def testbed_modules(
    kernel: Kernel,
    wanted: Sequence[str] = ("virtio_pci", "9pnet_virtio", "9p", "overlay"),
    optional: Sequence[str] = ("zram",),
) -> list[Path]:
    """Uncompressed .ko files to insmod, in order, for *wanted* and *optional* modules.

    Dependencies come first (from each module's ``depends=``); built-in modules are
    left out; a missing optional module is left out, a missing wanted one is an error.
    """
    if kernel.modules_dir is None:
        if not wanted:
            return []
        raise KernelError(
            f"kernel {kernel.label} has no modules directory but needs {', '.join(wanted)}:"
            f" give it as {LOCAL_SYNTAX}"
        )
    modules_dir = kernel.modules_dir
    index = _module_index(modules_dir)
    builtin = _builtin_modules(modules_dir)
    out_dir = _module_cache(kernel)
    order: list[Path] = []
    done: dict[str, bool] = {}  # False while visiting (cycle check), True when ordered

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in builtin or done.get(name):
            return
        if name in done:
            raise KernelError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        path = index.get(name)
        if path is None:
            needed = f" (needed by {chain[-1]})" if chain else ""
            raise KernelError(
                f"module {name}{needed} is neither in {modules_dir} nor built into"
                f" {kernel.release}"
            )
        done[name] = False
        ko = _uncompressed(path, out_dir)
        depends = ",".join(read_modinfo(ko).get("depends", []))
        for dep in depends.split(","):
            if dep.strip():
                visit(dep.strip().replace("-", "_"), (*chain, name))
        done[name] = True
        order.append(ko)

    for raw in wanted:
        visit(raw.replace("-", "_"), ())
    for raw in optional:
        name = raw.replace("-", "_")
        if name in index:
            visit(name, ())
    return order


# --------------------------------------------------------------------------- CLI


def _cli(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """KernelError -> "chaos: <message>" on stderr and exit status 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except KernelError as e:
            print(f"chaos: {e}", file=sys.stderr)
            return 2

    return run


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("ALIAS", "PACKAGE", "CACHED")]
    rows += [(a or "-", p or "(none: run apt-get update)", "yes" if c else "no")
             for a, p, c in available()]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for a, p, c in rows:
        print(f"{a:<{w0}}  {p:<{w1}}  {c}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    kernel = fetch(args.version)
    print(f"release  {kernel.release}")
    print(f"vmlinuz  {kernel.vmlinuz}")
    return 0


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``chaos kernels list`` and ``chaos kernels fetch VERSION``."""
    parser = subparsers.add_parser("kernels", help="list and fetch kernels for VM testbeds")

    def usage(args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=usage)
    sub = parser.add_subparsers(dest="kernels_command", metavar="COMMAND")
    p_list = sub.add_parser("list", help="aliases, the package each resolves to, cached?")
    p_list.set_defaults(func=_cli(_cmd_list))
    p_fetch = sub.add_parser("fetch", help="download and unpack a kernel into the cache")
    p_fetch.add_argument(
        "version", metavar="VERSION",
        help=f"alias ({', '.join(ALIASES)}) or exact package name",
    )
    p_fetch.set_defaults(func=_cli(_cmd_fetch))
