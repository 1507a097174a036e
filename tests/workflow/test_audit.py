"""`qspflow audit` on the host: from the small example's bundle alone (made with `--cores 2`, every step of the
graph), a second clean run with `--cores 1` gives byte-identical outputs and the same bundle bytes. The full
example's bundle is verified and tampered with in test_example.py; this rebuild takes the small one, as the
container test does inside the image, because a second run of the full example cost CI seven minutes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .small import reference_run

pytestmark = pytest.mark.slow

BUNDLE = Path("package/example-submission.tar.gz")
QSPFLOW = str(Path(sys.executable).with_name("qspflow"))


def test_the_audit_rebuilds_the_bundle_bit_for_bit_with_one_core(tmp_path_factory) -> None:
    reference = reference_run(tmp_path_factory)
    work = tmp_path_factory.mktemp("audit")
    bundle = work / BUNDLE.name
    shutil.copyfile(reference / BUNDLE, bundle)
    audit = subprocess.run([QSPFLOW, "audit", str(bundle), "--cores", "1"], cwd=work, capture_output=True, text=True,
                           timeout=3600, check=False)
    folder = work / "example-submission-audit"
    said = audit.stdout + audit.stderr + (folder / "audit.md").read_text(encoding="utf-8")
    assert audit.returncode == 0, said
    report = json.loads((folder / "audit.json").read_text(encoding="utf-8"))
    assert report["passed"] and report["summary"]["identical"] == len(report["files"]) > 50
    assert {"package/example-submission.tar.gz", "package/MANIFEST.sha256"} <= {f["path"] for f in report["files"]}
    with tarfile.open(bundle) as archive:
        assert all(m.mtime == 0 and m.uid == 0 for m in archive.getmembers())
