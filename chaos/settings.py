"""Run settings, from one documented precedence.

Highest first: command-line options, then ``CHAOS_*`` environment variables,
then ``[tool.chaos]`` in pyproject.toml (or ``[chaos]`` in chaos.ini), then
defaults. The same Settings drive the pytest plugin and ``chaos run``.
"""

from __future__ import annotations

import configparser
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from chaos import kernels
from chaos.scenario import Slo, one_line


class SettingsError(ValueError):
    """A setting is invalid; str() is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


@dataclass(frozen=True)
class Settings:
    killer: tuple[str, ...] = ()  # empty = every installed killer plus kernel
    kernel: tuple[str, ...] = (kernels.DEFAULT_KERNEL,)
    testbed: str = "vm"
    runtime: tuple[str, ...] = ("cgroup",)
    vm_memory: int = 1024  # MiB
    vm_cpus: int = 2
    swap: int = 0  # MiB of zram swap in the VM
    # s; a guest whose agent's heartbeat is silent this long is TESTBED_HUNG at once
    # (0: only at the scenario's deadline plus margin, so a guest that comes back keeps its run)
    vm_silence: int = 0
    arena: int = 0  # MiB, local testbed; 0 = default arena
    slo: tuple[tuple[str, float], ...] = ()
    results_dir: str = "results"
    repeat: int = 1
    allow_host_pressure: bool = False

    @property
    def slo_overrides(self) -> dict[str, float]:
        return dict(self.slo)


LIST_FIELDS = {"killer", "kernel", "runtime", "slo"}
ENV_PREFIX = "CHAOS_"


def _coerce(name: str, value: Any) -> Any:
    """Turn a raw setting (string, list or scalar) into the field's type; one-line errors."""
    if name in LIST_FIELDS:
        items = value if isinstance(value, list | tuple) else [
            v for v in str(value).replace(",", " ").split() if v]
        if name == "slo":
            return tuple(_slo_item(str(i)) for i in items)
        return tuple(str(i) for i in items)
    default = getattr(Settings(), name)
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError
            return text in ("1", "true", "yes")
        if isinstance(default, int):
            return int(str(value))
        return str(value)
    except ValueError:
        raise SettingsError(f"setting {name}: {value!r} is not a valid "
                            f"{type(default).__name__}") from None


def _slo_item(text: str) -> tuple[str, float]:
    key, sep, raw = text.partition("=")
    known = [f.name for f in fields(Slo)]
    if not sep or key not in known:
        raise SettingsError(f"--slo {text!r}: expected NAME=VALUE with NAME one of "
                            f"{', '.join(known)}")
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"--slo {text!r}: {raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"--slo {text!r}: must be > 0")
    return key, value


def from_file(rootdir: Path) -> dict[str, Any]:
    pyproject = rootdir / "pyproject.toml"
    if pyproject.exists():
        try:
            data = tomllib.loads(pyproject.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{pyproject}: {exc}") from None
        section = data.get("tool", {}).get("chaos", {})
        if section:
            return dict(section)
    ini = rootdir / "chaos.ini"
    if ini.exists():
        cp = configparser.ConfigParser()
        cp.read(ini)
        if cp.has_section("chaos"):
            return dict(cp.items("chaos"))
    return {}


def from_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for f in fields(Settings):
        key = ENV_PREFIX + f.name.upper()
        if key in env and env[key] != "":
            out[f.name] = env[key]
    return out


def resolve(cli: dict[str, Any], rootdir: Path | None = None,
            environ: dict[str, str] | None = None) -> Settings:
    """Merge file < env < cli (None/empty CLI values mean 'not given') and validate."""
    merged: dict[str, Any] = {}
    layers = [from_file(rootdir) if rootdir else {}, from_env(environ),
              {k: v for k, v in cli.items() if v not in (None, [], ())}]
    known = {f.name for f in fields(Settings)}
    for layer in layers:
        for key, value in layer.items():
            key = key.replace("-", "_")
            if key not in known:
                raise SettingsError(f"unknown setting {key!r} (known: {', '.join(sorted(known))})")
            merged[key] = _coerce(key, value)
    s = Settings(**merged)
    validate(s)
    return s


def validate(s: Settings) -> None:
    if s.testbed not in ("vm", "local"):
        raise SettingsError(f"--testbed {s.testbed!r}: expected vm or local")
    for r in s.runtime:
        if r not in ("cgroup", "docker"):
            raise SettingsError(f"--runtime {r!r}: expected cgroup or docker")
    if not 256 <= s.vm_memory <= 65536:
        raise SettingsError(f"--vm-memory {s.vm_memory}: expected 256..65536 MiB")
    if not 1 <= s.vm_cpus <= 64:
        raise SettingsError(f"--vm-cpus {s.vm_cpus}: expected 1..64")
    if s.vm_silence != 0 and not 5 <= s.vm_silence <= 3600:
        # the heartbeat is once a second; a loaded emulated guest can miss a few
        raise SettingsError(f"--vm-silence {s.vm_silence}: expected 0 (off) or 5..3600 s")
    if s.swap < 0 or s.arena < 0:
        raise SettingsError("--swap and --arena must be >= 0")
    if not 1 <= s.repeat <= 1000:
        raise SettingsError(f"--repeat {s.repeat}: expected 1..1000")
    if not s.kernel:
        raise SettingsError("no kernel given")
    for k in s.kernel:
        if "/" not in k and k not in kernels.ALIASES and not k.startswith("linux-image-"):
            raise SettingsError(f"unknown kernel {k!r} (available: {', '.join(kernels.ALIASES)}, "
                                "a linux-image-* package, or PATH_TO_BZIMAGE[:MODULES_DIR])")
