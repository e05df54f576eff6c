"""Helpers shared by stressor modules: typed parameter parsing and progress lines."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from typing import Any, TypeVar

from chaos.scenario import Params, SpecError

P = TypeVar("P")


def parse_params(cls: type[P], raw: Params, stressor: str) -> P:
    """Build the stressor's parameter dataclass, coercing numbers; one-line errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SpecError(f"stressor {stressor}: unknown parameter(s) {', '.join(unknown)} "
                        f"(known: {', '.join(fields)})")
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        kind = fields[key].type
        try:
            if kind in ("int", int):
                if isinstance(value, bool) or float(value) != int(float(value)):
                    raise ValueError
                kwargs[key] = int(float(value))
            elif kind in ("float", float):
                if isinstance(value, bool):
                    raise ValueError
                kwargs[key] = float(value)
            elif kind in ("bool", bool):
                if not isinstance(value, bool):
                    raise ValueError
                kwargs[key] = value
            else:
                kwargs[key] = str(value)
        except (TypeError, ValueError):
            raise SpecError(f"stressor {stressor}: parameter {key}={value!r} is not a "
                            f"valid {kind}") from None
    return cls(**kwargs)


def progress(**fields: float | int | str) -> None:
    """One JSON line on stdout; the agent keeps the last one as the stressor's activity."""
    fields.setdefault("t_ns", time.monotonic_ns())
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()
