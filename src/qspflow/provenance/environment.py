"""The software environment a run used, for the audit's record: the SHA-256 of the pip lock that made it
and, when the run is inside a container, the image it ran from: its name and id as podman writes them
into `/run/.containerenv` (privileged containers only) or as `bin/container-run` gives them
(`QSPFLOW_IMAGE`, `QSPFLOW_IMAGE_ID`). These differ between a host and a container while the outputs
must not, so they go into the audit's report, not into the study's outputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from qspflow.provenance.manifest import sha256_file

LOCK = "envs/requirements.lock"
CONTAINERENV = Path("/run/.containerenv")


def container_image(containerenv: Path = CONTAINERENV, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """{"image": name, "image_id": id} of the container this process runs in; empty outside one (or when
    neither the engine nor the environment says)."""
    try:
        text = containerenv.read_text(encoding="utf-8")
    except OSError:
        return {}
    found = dict(re.findall(r'^(image|imageid)="([^"]*)"$', text, re.M))
    named = {
        "image": found.get("image") or environ.get("QSPFLOW_IMAGE"),
        "image_id": found.get("imageid") or environ.get("QSPFLOW_IMAGE_ID"),
    }
    return {key: value for key, value in named.items() if value}


def run_environment(
    workdir: Path, containerenv: Path = CONTAINERENV, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The lock's SHA-256 (`lock_sha256`, when `workdir` has one) and the container image, if any."""
    lock = Path(workdir) / LOCK
    found = {"lock_sha256": sha256_file(lock)} if lock.is_file() else {}
    return found | container_image(containerenv, environ)
