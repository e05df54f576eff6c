"""Killer options: the scenario's flat scalar mapping -> a target's own typed dataclass.

Unknown keys and wrong types are refused with one line naming the killer, before
anything starts (the same contract as stressor parameters).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from chaos.scenario import Params, SpecError

OptionsT = TypeVar("OptionsT")


def parse_options(cls: type[OptionsT], raw: Params, killer: str) -> OptionsT:
    """Build ``cls`` from ``raw``, coercing numbers; SpecError (one line) on bad input."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SpecError(f"killer {killer}: unknown option(s) {', '.join(unknown)} "
                        f"(known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        kind = fields[key].type
        try:
            kwargs[key] = _coerce(kind, value)
        except (TypeError, ValueError):
            raise SpecError(f"killer {killer}: option {key}={value!r} is not a valid "
                            f"{kind}") from None
    return cls(**kwargs)


def _coerce(kind: object, value: object) -> object:
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
