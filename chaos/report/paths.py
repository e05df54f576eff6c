"""File names of the report's pages: safe, stable, collision-free.

Kernel releases and killer names come from result files, so they may hold
anything (``exec:/usr/bin/x --y``, ``../../etc``, ``<script>``). A path
component keeps only ``[A-Za-z0-9._+~-]`` (Debian releases such as
``6.12.57+deb12-amd64`` stay readable); any name that had to change (or that
would clash with a page at the top of the report) gets a short hash of the
original, so two different names never share a file.
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._+~-]+")
_RESERVED = frozenset({"index.html", "glossary.html", "", ".", ".."})
_MAX = 80

INDEX = "index.html"
GLOSSARY = "glossary.html"


def component(name: str) -> str:
    """One safe path component for ``name`` (deterministic, injective in practice)."""
    safe = _UNSAFE.sub("_", name).strip("._")[:_MAX]
    if safe == name and name.lower() not in _RESERVED:
        return safe
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{safe or 'x'}-{digest}"


def detail_page(release: str, killer: str) -> str:
    """The detail page of one killer on one kernel release, relative to the report root."""
    return f"{component(release or 'unknown-kernel')}/{component(killer or 'unknown')}.html"


def to_root(page: str) -> str:
    """The relative prefix from ``page`` back to the report root ('' or '../')."""
    return "../" * page.count("/")
