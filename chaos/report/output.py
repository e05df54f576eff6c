"""Write the report's pages into one publishable directory.

Pages are written atomically as UTF-8, readable by everyone (the directory is
meant to be served as is). A manifest of the files written lets the next
render into the same directory remove pages that no longer exist (a killer
dropped from the matrix) without touching anything it did not write.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

MANIFEST = ".chaos-report-files"


def write_pages(out_dir: Path, pages: Mapping[str, str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_dir, set(pages))
    written: list[Path] = []
    for rel in sorted(pages):
        path = out_dir / _checked(rel)
        _write(path, pages[rel].encode("utf-8"))
        written.append(path)
    _write(out_dir / MANIFEST, "".join(f"{rel}\n" for rel in sorted(pages)).encode("utf-8"))
    return written


def _checked(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part in ("", ".", "..") for part in p.parts):
        raise ValueError(f"page path {rel!r} escapes the report directory")
    return p


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    try:
        previous = (out_dir / MANIFEST).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for rel in previous:
        if rel in keep:
            continue
        try:
            path = out_dir / _checked(rel)
        except ValueError:
            continue
        if path.is_file() and not path.is_symlink():
            path.unlink()
            parent = path.parent
            while parent != out_dir and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
