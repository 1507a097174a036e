"""The project image: bin/container-build builds envs/Containerfile with podman from a debootstrap'd Debian 12
and the pip lock; `qspflow audit --cores 1` run inside it by bin/container-run, without network, rebuilds the
small example's submission bundle made on this host with `--cores 2` (every step of the graph) into
byte-identical outputs and package, and records the image and the lock's hash. One rebuild shows both that
the image reproduces the host and that one core reproduces two: a second rebuild on the host with one core
cost CI a further run of the small example (≈ 10 min on a 2-core machine)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tarfile

import pytest

from .conftest import ROOT
from .small import installed, reference_run

pytestmark = [pytest.mark.slow, pytest.mark.container]

BUNDLE = "package/example-submission.tar.gz"


@pytest.fixture(scope="module")
def image() -> str:
    """The project image, built (or brought up to date from podman's layer cache) by bin/container-build."""
    reason = installed("podman", "runc", "debootstrap")
    if reason:
        pytest.skip(reason)
    proc = subprocess.run([str(ROOT / "bin/container-build")], cwd=ROOT, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stdout.strip().splitlines()[-1]


def test_the_audit_inside_the_image_rebuilds_the_host_bundle_byte_for_byte_with_one_core(image: str, tmp_path_factory) -> None:
    reference = reference_run(tmp_path_factory)
    work = tmp_path_factory.mktemp("container")
    shutil.copy2(reference / BUNDLE, work / "example-submission.tar.gz")
    proc = subprocess.run(
        [
            str(ROOT / "bin/container-run"),
            "--image",
            image,
            "qspflow",
            "audit",
            "example-submission.tar.gz",
            "--out",
            "audit",
            "--cores",
            "1",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    report = json.loads((work / "audit/audit.json").read_text())
    failed = [f for f in report["files"] if f["status"] != "identical"]
    assert proc.returncode == 0 and report["passed"], (failed, proc.stdout[-3000:], proc.stderr[-3000:])
    assert report["summary"]["identical"] == len(report["files"]) > 50
    assert {"package/example-submission.tar.gz", "package/MANIFEST.sha256"} <= {f["path"] for f in report["files"]}
    with tarfile.open(work / "example-submission.tar.gz") as archive:
        assert all(m.mtime == 0 and m.uid == 0 for m in archive.getmembers())

    # The audit records the environment it rebuilt in: this image and the lock it was made from.
    image_id = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True, check=True
    ).stdout.strip()
    meta = report["meta"]
    assert meta["image"] == image and meta["image_id"] == image_id, meta
    assert meta["lock_sha256"] == hashlib.sha256((ROOT / "envs/requirements.lock").read_bytes()).hexdigest()
