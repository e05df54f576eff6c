"""The stressor image, built offline: an empty root plus the host's own userspace, read-only.

No registry is reachable from the testbeds, and the stressors are this
package's Python modules, so the image carries nothing: it is imported from
an empty tar, and every container bind-mounts the host's /usr, /lib*, /bin,
/etc, the Python installation and this source tree read-only. The
image is tagged with a hash of those inputs and rebuilt only when they change
(a different Python, a moved checkout, a new schema here).

With a registry, build ``docker/Dockerfile`` instead and name it in
``CHAOS_DOCKER_IMAGE``: then no host paths are mounted.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import tarfile
from pathlib import Path
from typing import Any

import chaos

REPOSITORY = "chaos-stressor"
SCHEMA = "1"
IMAGE_ENV = "CHAOS_DOCKER_IMAGE"
# Not /sbin: docker mounts its init at /sbin/docker-init (merged-usr hosts have
# everything from sbin in /usr/sbin anyway).
HOST_PATHS = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc")


def source_root() -> Path:
    return Path(chaos.__file__).resolve().parent.parent


def bind_paths() -> list[str]:
    """Host paths the containers see read-only, outermost only, existing only."""
    wanted = [*HOST_PATHS, os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix),
              str(source_root())]
    out: list[str] = []
    for p in sorted({w for w in wanted if os.path.exists(w)}, key=len):
        real = os.path.realpath(p)
        if any(real == o or real.startswith(o.rstrip("/") + "/") for o in out if o != p):
            if p not in HOST_PATHS:
                continue
        out.append(p)
    return sorted(out)


def empty_tar() -> bytes:
    """A reproducible empty root: one directory entry with a fixed mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("tmp")
        info.type = tarfile.DIRTYPE
        info.mode = 0o1777
        info.mtime = 0
        tar.addfile(info)
    return buf.getvalue()


def input_hash() -> str:
    h = hashlib.sha256(SCHEMA.encode())
    h.update(empty_tar())
    for p in bind_paths():
        h.update(p.encode() + b"\0")
    h.update(sys.version.encode())
    return h.hexdigest()


def ensure(client: Any) -> tuple[str, bool]:
    """The image to run (built now if its inputs changed) and whether host paths are mounted."""
    named = os.environ.get(IMAGE_ENV, "")
    if named:
        client.images.get(named)  # raises ImageNotFound: pull or build it first
        return named, False
    digest = input_hash()
    tag = f"{REPOSITORY}:{digest[:16]}"
    try:
        client.images.get(tag)
        return tag, True
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound
        pass
    client.api.import_image_from_data(empty_tar(), repository=REPOSITORY, tag=digest[:16],
                                      changes=[f"LABEL chaos.inputs={digest}",
                                               "ENV PYTHONDONTWRITEBYTECODE=1"])
    return tag, True
