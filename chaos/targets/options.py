"""Killer options: the scenario's flat scalar mapping -> a target's own typed dataclass.

Unknown keys and wrong types are refused with one line naming the killer, before
anything starts (the same contract as stressor parameters).
"""

from __future__ import annotations

from typing import TypeVar

from chaos.scenario import Params, typed_params

OptionsT = TypeVar("OptionsT")


def parse_options(cls: type[OptionsT], raw: Params, killer: str) -> OptionsT:
    """Build ``cls`` from ``raw``, coercing numbers; SpecError (one line) on bad input."""
    return typed_params(cls, raw, f"killer {killer}", "option")
