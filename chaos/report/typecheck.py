"""Check that a loaded result really has the types its dataclasses declare.

``Result.read`` rejects unknown fields but trusts the values; a report must not
crash (or mis-plot) because one file says ``"time_to_kill_ms": "fast"``. The
check walks the dataclass type hints, so it follows the schema by itself.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from chaos.result import Result


class WrongType(ValueError):
    """A field of a result does not have its declared type; the message names it."""


def check_result(result: Result) -> None:
    """Raise WrongType naming the first field whose value has the wrong type."""
    _check(result, Result, "result")


@functools.cache
def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check(value: Any, hint: Any, where: str) -> None:
    if hint is Any:
        return
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, hint):
            raise WrongType(f"{where}: expected an object")
        for name, sub in _hints(hint).items():
            _check(getattr(value, name), sub, f"{where}.{name}")
        return
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                _check(value, arg, where)
            except WrongType:
                continue
            return
        raise WrongType(f"{where}: {_shown(value)} is not {_name(hint)}")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise WrongType(f"{where}: expected a list, got {_shown(value)}")
        item = args[0] if args else Any
        if item is float:  # columnar series: null marks a missed sample
            item = float | None
        for i, v in enumerate(value):
            _check(v, item, f"{where}[{i}]")
        return
    if origin is dict:
        if not isinstance(value, dict):
            raise WrongType(f"{where}: expected an object, got {_shown(value)}")
        key_t, val_t = args if args else (Any, Any)
        for k, v in value.items():
            _check(k, key_t, f"{where} key")
            _check(v, val_t, f"{where}[{k!r}]")
        return
    if hint is type(None):
        if value is not None:
            raise WrongType(f"{where}: expected null, got {_shown(value)}")
        return
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise WrongType(f"{where}: expected a number, got {_shown(value)}")
        return
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise WrongType(f"{where}: expected an integer, got {_shown(value)}")
        return
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise WrongType(f"{where}: expected {hint.__name__}, got {_shown(value)}")
        return
    raise WrongType(f"{where}: cannot check type {_name(hint)}")  # pragma: no cover


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
