"""A tiny element builder for inline SVG: every text and attribute value is escaped.

Tag and attribute names come from this package's code only and are checked;
values and text may come from result files and are always escaped, unless they
are already ``Markup`` built here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from markupsafe import Markup, escape

AttrValue = str | int | float | None

_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9:-]*$")


def num(value: float) -> str:
    """A coordinate: at most two decimals, no trailing zeros, never '-0'."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite coordinate: {value}")
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def el(tag: str, attrs: Mapping[str, AttrValue] | None = None, *children: str | Markup) -> Markup:
    if not _NAME.match(tag):
        raise ValueError(f"bad tag name {tag!r}")
    parts = [f"<{tag}"]
    for name, value in (attrs or {}).items():
        if value is None:
            continue
        if not _NAME.match(name) or name.lower().startswith("on"):
            raise ValueError(f"bad attribute name {name!r}")
        shown = num(value) if isinstance(value, float) else str(value)
        parts.append(f' {name}="{escape(shown)}"')
    inner = "".join(str(escape(c)) for c in children)
    parts.append(f">{inner}</{tag}>")
    return Markup("".join(parts))


def join(items: list[Markup]) -> Markup:
    return Markup("").join(items)
