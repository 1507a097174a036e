"""The run environment the audit records: the lock's SHA-256 and the container image podman names."""

from __future__ import annotations

import hashlib
from pathlib import Path

from qspflow.provenance.environment import container_image, run_environment

# What rootful podman 4.3 writes into a container's /run/.containerenv
CONTAINERENV = """engine="podman-4.3.1"
name="audit"
id="5f1c0ffee"
image="localhost/qspflow:0123456789ab"
imageid="9d3a7e1c2b4f"
rootless=0
"""


def test_the_image_and_its_id_are_read_from_the_containerenv_file(tmp_path: Path) -> None:
    (tmp_path / "containerenv").write_text(CONTAINERENV)
    assert container_image(tmp_path / "containerenv") == {
        "image": "localhost/qspflow:0123456789ab",
        "image_id": "9d3a7e1c2b4f",
    }
    assert container_image(tmp_path / "absent") == {}


def test_an_unprivileged_container_is_named_by_the_variables_bin_container_run_sets(tmp_path: Path) -> None:
    (tmp_path / "containerenv").write_text("")  # what podman writes into an unprivileged container
    environ = {"QSPFLOW_IMAGE": "localhost/qspflow:0123456789ab", "QSPFLOW_IMAGE_ID": "9d3a7e1c2b4f"}
    assert container_image(tmp_path / "containerenv", environ) == {
        "image": "localhost/qspflow:0123456789ab",
        "image_id": "9d3a7e1c2b4f",
    }
    assert container_image(tmp_path / "absent", environ) == {}  # not in a container: the variables do not count


def test_the_run_environment_holds_the_sha256_of_the_lock(tmp_path: Path) -> None:
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs/requirements.lock").write_bytes(b"numpy==2.4.6\n")
    found = run_environment(tmp_path, containerenv=tmp_path / "absent", environ={})
    assert found == {"lock_sha256": hashlib.sha256(b"numpy==2.4.6\n").hexdigest()}
