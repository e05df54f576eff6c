"""Scenario specs: what one run asks a testbed to do.

A spec is the only thing the agent receives, so it must be complete and
serialisable: dataclasses here, JSON on the wire. Parameters of individual
stressors and killers are kept as a flat mapping of scalars at this boundary;
the stressor or target module owning them parses that into its own typed
dataclass and validates it (see ``chaos.stressors`` and ``chaos.targets``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

SPEC_SCHEMA = 1

Scalar = str | int | float | bool
Params = dict[str, Scalar]

_CGROUP_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.:=+-]+$")


class SpecError(ValueError):
    """A scenario spec is malformed; the message is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(text: str) -> str:
    """User-supplied strings inside an error message must not break it into lines."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


@dataclass(frozen=True)
class StressorSpec:
    """One containerised workload that creates one kind of trouble."""

    name: str  # registry name, e.g. "anon_hog"
    instance: str  # unique within the scenario, e.g. "hog"
    cgroup: str  # relative to the scenario root, e.g. "workload/hog"
    params: Params = field(default_factory=dict)
    victim: bool = True  # the scenario expects this one to die
    runtime: str = "cgroup"  # "cgroup" or "docker"


@dataclass(frozen=True)
class BystanderSpec:
    """A workload that must survive; its heartbeat stalls are measured."""

    instance: str = "bystander"
    cgroup: str = "bystanders/b0"
    rss_mib: int = 16
    interval_ms: int = 10


@dataclass(frozen=True)
class KillerSpec:
    """Which userspace OOM killer runs (``kernel`` = none) and its options."""

    name: str = "kernel"
    options: Params = field(default_factory=dict)
    command: tuple[str, ...] = ()  # only for exec: targets


@dataclass(frozen=True)
class DangerSpec:
    """When the testbed is 'in danger': the zero of every timeline.

    Danger is the first sample at which available memory falls under
    ``mem_available_pct`` percent of the total *or* the memory PSI ``some``
    stall over the last ``psi_window_ms`` exceeds ``psi_some_pct`` percent.
    In an arena (memory-limited cgroup) 'available' means limit - usage.
    """

    mem_available_pct: float = 10.0
    psi_some_pct: float = 0.0  # 0 disables the PSI half of the definition
    psi_window_ms: int = 1000


@dataclass(frozen=True)
class Slo:
    """Thresholds a verdict is judged against; overridable per run."""

    time_to_kill_ms: float = 10_000.0
    reclaim_stall_ms: float = 100.0
    bystander_stall_ms: float = 5_000.0
    run_delay_ms: float = 1_000.0


@dataclass(frozen=True)
class TestbedInfo:
    """Where the scenario runs; filled by the host before the agent starts."""

    __test__ = False  # not a pytest test class

    kind: str = "vm"  # "vm" or "local"
    accel: str = "none"  # "kvm", "tcg" or "none" (local)
    memory_mib: int = 1024
    cpus: int = 2
    swap_mib: int = 0
    arena_mib: int = 0  # local testbed: the memory-limited cgroup's size; 0 = global


@dataclass(frozen=True)
class Scenario:
    """Everything the agent needs to run one scenario and nothing else."""

    id: str
    run_id: str
    killer: KillerSpec
    stressors: tuple[StressorSpec, ...]
    bystanders: tuple[BystanderSpec, ...] = (BystanderSpec(),)
    danger: DangerSpec = field(default_factory=DangerSpec)
    slo: Slo = field(default_factory=Slo)
    testbed: TestbedInfo = field(default_factory=TestbedInfo)
    deadline_s: float = 120.0
    settle_s: float = 2.0  # how long to watch recovery after the victim is gone
    sample_hz: int = 50
    expected_killer: str = ""  # who should kill: "" = the scenario's killer
    schema: int = SPEC_SCHEMA

    def validate(self) -> None:
        """Raise SpecError with one clear line if the spec cannot run."""
        if not self.id:
            raise SpecError("scenario id is empty")
        if not _NAME_RE.match(self.run_id):
            raise SpecError(f"run id {self.run_id!r} has characters other than [A-Za-z0-9_.:=+-]")
        if not self.stressors:
            raise SpecError(f"scenario {self.id}: no stressors")
        if not any(s.victim for s in self.stressors):
            raise SpecError(f"scenario {self.id}: no stressor is marked as the victim")
        seen: set[str] = set()
        for s in self.stressors:
            _check_instance(self.id, s.instance, s.cgroup, seen)
            if s.runtime not in ("cgroup", "docker"):
                raise SpecError(f"stressor {s.instance}: unknown runtime {s.runtime!r} "
                                "(available: cgroup, docker)")
        for b in self.bystanders:
            _check_instance(self.id, b.instance, b.cgroup, seen)
            if b.rss_mib < 0 or b.interval_ms <= 0:
                raise SpecError(f"bystander {b.instance}: rss_mib must be >= 0 and "
                                "interval_ms > 0")
        if not 0 < self.danger.mem_available_pct < 100:
            raise SpecError("danger.mem_available_pct must be between 0 and 100")
        if self.deadline_s <= 0 or self.settle_s < 0:
            raise SpecError("deadline_s must be > 0 and settle_s >= 0")
        if not 1 <= self.sample_hz <= 1000:
            raise SpecError("sample_hz must be between 1 and 1000")
        if self.testbed.memory_mib < 128:
            raise SpecError("testbed memory must be at least 128 MiB")

    @property
    def victims(self) -> tuple[StressorSpec, ...]:
        return tuple(s for s in self.stressors if s.victim)

    @property
    def who_should_kill(self) -> str:
        return self.expected_killer or self.killer.name

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Scenario:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"scenario spec is not valid JSON: {exc}") from None
        return scenario_from_dict(raw)


def _check_instance(scenario_id: str, instance: str, cgroup: str, seen: set[str]) -> None:
    if not _NAME_RE.match(instance):
        raise SpecError(f"scenario {scenario_id}: bad instance name {instance!r}")
    if instance in seen:
        raise SpecError(f"scenario {scenario_id}: instance name {instance!r} used twice")
    seen.add(instance)
    if not _CGROUP_RE.match(cgroup) or ".." in cgroup.split("/"):
        raise SpecError(f"{instance}: bad cgroup path {cgroup!r}")


T = TypeVar("T")


def build(cls: type[T], raw: Any, where: str) -> T:
    """Construct dataclass ``cls`` from a JSON mapping, rejecting unknown keys."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: expected an object, got {type(raw).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, list):
            value = tuple(value)
        _check_type(value, hints[key], f"{where}.{key}")
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_type(value: Any, tp: Any, where: str) -> None:
    """Reject a JSON value that does not fit the field's annotation (one line)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        errors = []
        for alt in typing.get_args(tp):
            try:
                _check_type(value, alt, where)
                return
            except SpecError as exc:
                errors.append(exc)
        raise SpecError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__}")
    if tp is type(None):
        ok = value is None
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value))
    elif tp is str:
        ok = isinstance(value, str)
    elif origin is tuple:
        if not isinstance(value, tuple):
            ok = False
        else:
            (item, *_rest) = typing.get_args(tp)
            for i, v in enumerate(value):
                _check_type(v, item, f"{where}[{i}]")
            ok = True
    elif origin is dict or dataclasses.is_dataclass(tp):
        ok = True  # checked by the caller (params, nested specs)
    else:
        ok = True
    if not ok:
        raise SpecError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__}")


def _params(raw: Any, where: str) -> Params:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: params must be an object")
    for k, v in raw.items():
        if not isinstance(v, str | int | float | bool):
            raise SpecError(f"{where}: param {k!r} must be a scalar")
    return dict(raw)


def scenario_from_dict(raw: Any) -> Scenario:
    if not isinstance(raw, dict):
        raise SpecError("scenario spec must be a JSON object")
    raw = dict(raw)
    if raw.get("schema", SPEC_SCHEMA) != SPEC_SCHEMA:
        raise SpecError(f"scenario schema {raw.get('schema')!r} is not {SPEC_SCHEMA}")
    if "killer" not in raw or "stressors" not in raw:
        raise SpecError("scenario spec needs 'killer' and 'stressors'")
    killer_raw, stressors_raw = raw.pop("killer"), raw.pop("stressors")
    if not isinstance(killer_raw, dict):
        raise SpecError("'killer' must be an object")
    killer_raw = dict(killer_raw)
    killer_raw["options"] = _params(killer_raw.get("options", {}), "killer")
    killer = build(KillerSpec, killer_raw, "killer")
    if not isinstance(stressors_raw, list):
        raise SpecError("'stressors' must be a list")
    stressors = []
    for i, s in enumerate(stressors_raw):
        if not isinstance(s, dict):
            raise SpecError(f"stressors[{i}] must be an object")
        s = dict(s)
        s["params"] = _params(s.get("params", {}), f"stressors[{i}]")
        stressors.append(build(StressorSpec, s, f"stressors[{i}]"))
    raw["killer"] = killer
    raw["stressors"] = tuple(stressors)
    bystanders = raw.get("bystanders", [])
    if not isinstance(bystanders, list):
        raise SpecError("'bystanders' must be a list")
    raw["bystanders"] = tuple(
        build(BystanderSpec, b, f"bystanders[{i}]") for i, b in enumerate(bystanders))
    for key, cls in (("danger", DangerSpec), ("slo", Slo), ("testbed", TestbedInfo)):
        if key in raw:
            raw[key] = build(cls, raw[key], key)
    scenario = build(Scenario, raw, "scenario")
    scenario.validate()
    return scenario


P = TypeVar("P")


def typed_params(cls: type[P], raw: Params, owner: str, noun: str) -> P:
    """Flat scalar parameters -> ``cls`` (a dataclass), coercing numbers and booleans.

    Used for stressor parameters and killer options alike; unknown keys and values of
    the wrong type are refused with one line naming the owner ("stressor anon_hog").
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SpecError(f"{owner}: unknown {noun}(s) {', '.join(unknown)} "
                        f"(known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        kind = fields[key].type
        try:
            kwargs[key] = _coerce_scalar(kind, value)
        except (TypeError, ValueError):
            raise SpecError(f"{owner}: {noun} {key}={value!r} is not a valid {kind}") from None
    return cls(**kwargs)


def _coerce_scalar(kind: object, value: object) -> object:
    if kind in ("bool", bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no",
                                                        "on", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if kind in ("int", int):
        number = float(value)  # type: ignore[arg-type]
        if number != int(number):
            raise ValueError
        return int(number)
    if kind in ("float", float):
        return float(value)  # type: ignore[arg-type]
    return str(value)
