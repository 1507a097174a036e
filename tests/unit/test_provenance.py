"""Provenance: manifests that `sha256sum -c` accepts, deterministic bundles, safe unpacking, audit reports."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from qspflow.errors import AuditError, QspflowError
from qspflow.provenance.audit import audit_json, audit_markdown, compare, passed
from qspflow.provenance.bundle import safe_extract, write_bundle
from qspflow.provenance.manifest import FileCheck, manifest_text, read_manifest, sha256_file, verify

MANIFEST = "MANIFEST.sha256"
FILES = {
    "data/measurements.tsv": b"time\tvalue\n0\t1.5\n",
    "results/demo/estimates.tsv": b"parameter\tvalue\nk1\t0.25\n",
    "results/demo/plots/fit.svg": b"<svg/>\n" * 40_000,  # more than one read chunk
    "bin/run.sh": b"#!/bin/sh\necho run\n",
    "na\u00efve name.txt": b"spaces and a non-ASCII letter in the name\n",
    "z.txt": b"",
}


def make_tree(root: Path, mtime: int = 1_700_000_000) -> Path:
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        os.utime(root / rel, (mtime, mtime))
    (root / "bin/run.sh").chmod(0o750)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "study")


def statuses(checks: list[FileCheck]) -> dict[str, str]:
    return {c.path: c.status for c in checks if c.status != "identical"}


# ------------------------------------------------------------------------------------------ manifest


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs GNU sha256sum")
def test_manifest_is_accepted_by_sha256sum_and_rejected_after_tampering(tree):
    (tree / MANIFEST).write_text(manifest_text(tree, [*FILES, *reversed(FILES)]), encoding="utf-8")
    ok = subprocess.run(["sha256sum", "--check", "--strict", MANIFEST], cwd=tree, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(": OK\n") == len(FILES)  # each file once, though listed twice
    (tree / "results/demo/estimates.tsv").write_bytes(b"parameter\tvalue\nk1\t0.26\n")
    bad = subprocess.run(["sha256sum", "--check", "--quiet", MANIFEST], cwd=tree, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout == "results/demo/estimates.tsv: FAILED\n"


def test_manifest_lines_are_sorted_by_utf8_bytes_with_independent_hashes(tree):
    lines = manifest_text(tree, FILES).splitlines()
    paths = [line.split("  ", 1)[1] for line in lines]
    assert paths == sorted(FILES, key=lambda p: p.encode("utf-8"))
    for line in lines:
        digest, rel = line.split("  ", 1)
        assert digest == hashlib.sha256(FILES[rel]).hexdigest() == sha256_file(tree / rel)
    assert sha256_file(tree / "z.txt") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("relpath", ["/etc/passwd", "../x", "data/../data/measurements.tsv", "data\\x",
                                     "bad\nname", "./z.txt", "data//measurements.tsv", ""])
def test_manifest_refuses_unsafe_paths(tree, relpath):
    with pytest.raises(AuditError, match="expected a relative POSIX path") as err:
        manifest_text(tree, ["z.txt", relpath])
    assert f"found '{relpath}'" in str(err.value)


def test_manifest_refuses_what_is_not_a_regular_file(tree):
    (tree / "link.txt").symlink_to(tree / "z.txt")
    (tree / "linked").symlink_to(tree / "data")
    cases = {"link.txt": "found 'a symbolic link'", "data": "found 'a folder'", "nothere.txt": "does not exist",
             "linked/measurements.tsv": "does not exist"}  # reached through a symlinked folder
    for rel, found in cases.items():
        with pytest.raises(AuditError, match="expected a regular file") as err:
            manifest_text(tree, [rel])
        assert str(tree / rel) in str(err.value) and found in str(err.value)


def test_read_manifest_round_trips(tree):
    (tree / MANIFEST).write_text(manifest_text(tree, FILES), encoding="utf-8")
    assert read_manifest(tree / MANIFEST) == {rel: hashlib.sha256(data).hexdigest() for rel, data in FILES.items()}


H = "ab" * 32


@pytest.mark.parametrize(("line", "expected"), [
    (f"{H[:-1]}  a.txt", "expected '<64 lowercase hex digits><two spaces><path>', found"),
    (f"{H} a.txt", "expected '<64 lowercase hex digits>"),
    (f"{H} *a.txt", "expected '<64 lowercase hex digits>"),
    (f"{H.upper()}  a.txt", "expected '<64 lowercase hex digits>"),
    (f"{H}  ", "expected a relative POSIX path"),
    (f"{H}  a.txt\r", "expected a relative POSIX path"),
    (f"{H}  ../a.txt", "expected a relative POSIX path inside the folder (no '.', '..' or empty part"),
    (f"{H}  /abs.txt", "expected a relative POSIX path"),
    ("", "expected '<64 lowercase hex digits>"),
    (f"{H}  first.txt", "expected each path listed once, found 'first.txt', already on line 1"),
])
def test_read_manifest_names_the_line_of_a_malformed_entry(tmp_path, line, expected):
    path = tmp_path / MANIFEST
    path.write_bytes(f"{H}  first.txt\n{line}\n{H}  last.txt\n".encode())
    with pytest.raises(AuditError) as err:
        read_manifest(path)
    assert str(err.value).startswith(f"{path}, line 2: ") and expected in str(err.value)


def test_verify_names_exactly_the_tampered_files(tree):
    (tree / MANIFEST).write_text(manifest_text(tree, FILES), encoding="utf-8")
    entries = read_manifest(tree / MANIFEST)
    checks = verify(tree, entries, ignore={MANIFEST})
    assert [c.path for c in checks] == sorted(FILES) and passed(checks)

    data = bytearray((tree / "results/demo/plots/fit.svg").read_bytes())
    data[100_000] ^= 0x01  # one bit of one byte, deep in the second read chunk
    (tree / "results/demo/plots/fit.svg").write_bytes(bytes(data))
    (tree / "data/measurements.tsv").unlink()
    (tree / "results/demo/extra.tsv").write_text("new\n")
    assert statuses(verify(tree, entries, ignore={MANIFEST})) == {
        "results/demo/plots/fit.svg": "different", "data/measurements.tsv": "missing",
        "results/demo/extra.tsv": "unexpected"}
    changed = next(c for c in verify(tree, entries, ignore={MANIFEST}) if c.status == "different")
    assert changed.expected == hashlib.sha256(FILES[changed.path]).hexdigest()
    assert changed.actual == hashlib.sha256(bytes(data)).hexdigest()


def test_verify_never_follows_symlinks(tree, tmp_path):
    entries = {rel: hashlib.sha256(data).hexdigest() for rel, data in FILES.items()}
    outside = make_tree(tmp_path / "outside")
    (tree / "z.txt").unlink()
    (tree / "z.txt").symlink_to(outside / "z.txt")  # same bytes, but not a file of this folder
    (tree / "more").symlink_to(outside / "results")  # a folder link: itself unexpected, its content unseen
    checks = {c.path: c for c in verify(tree, entries)}
    assert statuses(list(checks.values())) == {"z.txt": "different", "more": "unexpected"}
    assert checks["z.txt"].actual is None and checks["more"].actual is None


# -------------------------------------------------------------------------------------------- bundle


def test_bundle_bytes_do_not_depend_on_mtimes_or_umask(tmp_path):
    first = make_tree(tmp_path / "one", mtime=1_000_000_000)
    old = os.umask(0o077)  # files 0o600, folders 0o700 in the second tree
    try:
        second = make_tree(tmp_path / "two", mtime=1_700_000_000)
        (second / "bin/run.sh").chmod(0o700)
        digest_two = write_bundle(second, sorted(FILES), tmp_path / "two.tar.gz", "demo-submission")
    finally:
        os.umask(old)
    digest_one = write_bundle(first, list(reversed(FILES)), tmp_path / "one.tar.gz", "demo-submission")
    one, two = (tmp_path / "one.tar.gz").read_bytes(), (tmp_path / "two.tar.gz").read_bytes()
    assert one == two and digest_one == digest_two == hashlib.sha256(one).hexdigest()
    assert one[3] == 0 and one[4:8] == b"\0\0\0\0"  # gzip header: no file name, no time
    with tarfile.open(tmp_path / "one.tar.gz") as tar:
        members = tar.getmembers()
    assert [(m.name, m.type, oct(m.mode)) for m in members] == [
        ("demo-submission", tarfile.DIRTYPE, "0o755"),
        ("demo-submission/bin", tarfile.DIRTYPE, "0o755"),
        ("demo-submission/bin/run.sh", tarfile.REGTYPE, "0o755"),
        ("demo-submission/data", tarfile.DIRTYPE, "0o755"),
        ("demo-submission/data/measurements.tsv", tarfile.REGTYPE, "0o644"),
        ("demo-submission/na\u00efve name.txt", tarfile.REGTYPE, "0o644"),
        ("demo-submission/results", tarfile.DIRTYPE, "0o755"),
        ("demo-submission/results/demo", tarfile.DIRTYPE, "0o755"),
        ("demo-submission/results/demo/estimates.tsv", tarfile.REGTYPE, "0o644"),
        ("demo-submission/results/demo/plots", tarfile.DIRTYPE, "0o755"),
        ("demo-submission/results/demo/plots/fit.svg", tarfile.REGTYPE, "0o644"),
        ("demo-submission/z.txt", tarfile.REGTYPE, "0o644"),
    ]
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}


def test_write_bundle_failure_leaves_no_archive(tree, tmp_path, monkeypatch):
    dest = tmp_path / "out" / "bundle.tar.gz"
    dest.parent.mkdir()
    with pytest.raises(AuditError, match="expected a regular file"):
        write_bundle(tree, ["z.txt", "results/gone.tsv"], dest, "demo-submission")
    with pytest.raises(AuditError, match="expected a folder name"):
        write_bundle(tree, ["z.txt"], dest, "a/b")
    assert os.listdir(dest.parent) == []
    dest.write_bytes(b"the previous bundle")
    calls = []
    addfile = tarfile.TarFile.addfile

    def disk_full_at_the_fifth_member(self, *args):
        calls.append(args[0].name)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        return addfile(self, *args)

    monkeypatch.setattr(tarfile.TarFile, "addfile", disk_full_at_the_fifth_member)
    with pytest.raises(QspflowError, match="bundle.tar.gz: expected a writable output path, no space left on device"):
        write_bundle(tree, sorted(FILES), dest, "demo-submission")
    assert os.listdir(dest.parent) == ["bundle.tar.gz"] and dest.read_bytes() == b"the previous bundle"


def test_bundle_round_trip_verifies_identical(tree, tmp_path):
    (tree / MANIFEST).write_text(manifest_text(tree, FILES), encoding="utf-8")
    write_bundle(tree, [*FILES, MANIFEST], tmp_path / "b.tar.gz", "demo-submission")
    (tmp_path / "empty").mkdir()
    top = safe_extract(tmp_path / "b.tar.gz", tmp_path / "empty")
    assert top == tmp_path / "empty" / "demo-submission"
    checks = verify(top, read_manifest(top / MANIFEST), ignore={MANIFEST})
    assert passed(checks) and len(checks) == len(FILES)
    assert (top / "bin/run.sh").stat().st_mode & 0o777 == 0o755
    assert (top / "z.txt").stat().st_mode & 0o777 == 0o644
    assert (top / "results/demo").stat().st_mode & 0o777 == 0o755


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x\n", **fields) -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(data) if kind == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data if kind == tarfile.REGTYPE else None


EVIL = {
    "absolute path": ([_member("/etc/cron.d/evil")], "/etc/cron.d/evil"),
    "parent folder": ([_member("../x")], "../x"),
    "parent inside": ([_member("a/../../x")], "a/../../x"),
    "symlink": ([_member("top/link", tarfile.SYMTYPE, linkname="/etc/passwd")], "top/link', a symbolic link"),
    "hard link": ([_member("top/hard", tarfile.LNKTYPE, linkname="top/ok.txt")], "top/hard', a hard link"),
    "char device": ([_member("top/null", tarfile.CHRTYPE, devmajor=1, devminor=3)], "top/null', a character device"),
    "fifo": ([_member("top/pipe", tarfile.FIFOTYPE)], "top/pipe', a FIFO"),
    "two top folders": ([_member("other/y")], "inside the one top folder 'top', found 'other/y'"),
    "file at the top": ([_member("loose.txt")], "inside the one top folder 'top', found 'loose.txt'"),
    "duplicate": ([_member("top/ok.txt", data=b"second\n")], "found 'top/ok.txt', it is listed twice"),
    "file as folder": ([_member("top/ok.txt/y")], "found 'top/ok.txt/y', 'top/ok.txt' is a file"),
}


@pytest.mark.parametrize("kind", EVIL)
@pytest.mark.parametrize("dest_exists", [False, True])
def test_safe_extract_refuses_unsafe_members_before_writing(tmp_path, kind, dest_exists):
    members, named = EVIL[kind]
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in [_member("top/ok.txt"), *members]:  # a harmless member first
            tar.addfile(info, None if data is None else io.BytesIO(data))
    dest = tmp_path / "dest"
    if dest_exists:
        dest.mkdir()
    with pytest.raises(AuditError) as err:
        safe_extract(archive, dest)
    assert str(err.value).startswith(f"{archive}: expected ") and named in str(err.value)
    assert sorted(os.listdir(tmp_path)) == (["dest", "evil.tar.gz"] if dest_exists else ["evil.tar.gz"])
    assert not dest_exists or os.listdir(dest) == []


def _good_bundle(tree: Path, path: Path) -> bytes:
    write_bundle(tree, list(FILES), path, "demo-submission")
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["empty", "text", "gzip of text", "truncated", "cut tar", "flipped byte"])
def test_safe_extract_names_a_damaged_archive(tree, tmp_path, damage):
    good = _good_bundle(tree, tmp_path / "good.tar.gz")
    tar_bytes = gzip.decompress(good)
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes({
        "empty": b"",
        "text": b"not an archive\n",
        "gzip of text": gzip.compress(b"hello, not a tar file\n" * 100),
        "truncated": good[: len(good) // 2],
        "cut tar": gzip.compress(tar_bytes[:1536 + 300]),  # ends inside the third member's data
        "flipped byte": good[:-6] + bytes([good[-6] ^ 0xFF]) + good[-5:],  # in the CRC-32 of the gzip trailer
    }[damage])
    with pytest.raises(AuditError, match="expected a gzip-compressed tar archive") as err:
        safe_extract(archive, tmp_path / "dest")
    assert str(err.value).startswith(str(archive))
    assert not (tmp_path / "dest").exists()


def test_safe_extract_wants_a_new_or_empty_destination(tree, tmp_path):
    _good_bundle(tree, tmp_path / "b.tar.gz")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine\n")
    (tmp_path / "file").write_text("mine\n")
    for dest, found in [(tmp_path / "full", "a folder with files"), (tmp_path / "file", "a file")]:
        with pytest.raises(AuditError, match=f"expected a new or empty folder to unpack into, found '{found}'"):
            safe_extract(tmp_path / "b.tar.gz", dest)
    assert os.listdir(tmp_path / "full") == ["keep.txt"]
    with pytest.raises(AuditError, match="no such file"):
        safe_extract(tmp_path / "absent.tar.gz", tmp_path / "new")


# --------------------------------------------------------------------------------------------- audit


def rebuilt_checks(tree: Path, tmp_path: Path) -> list[FileCheck]:
    expected = {rel: hashlib.sha256(data).hexdigest() for rel, data in FILES.items()}
    rebuilt = make_tree(tmp_path / "rebuilt")
    (rebuilt / "results/demo/estimates.tsv").write_bytes(b"parameter\tvalue\nk1\t0.2500001\n")
    (rebuilt / "results/demo/plots/fit.svg").unlink()
    (rebuilt / "results/demo/new|odd.tsv").write_text("x\n")
    (rebuilt / "results/demo/plots/.snakemake_timestamp").write_text("")
    (rebuilt / "logs").mkdir()
    (rebuilt / "logs/run.log").write_text("outside the scope\n")
    (rebuilt / "data/measurements.tsv").write_text("changed input, outside the scope\n")
    return compare(expected, rebuilt, ["results/"])


def test_compare_reports_each_status_within_the_scope(tree, tmp_path):
    checks = rebuilt_checks(tree, tmp_path)
    assert [(c.path, c.status) for c in checks] == [
        ("results/demo/estimates.tsv", "different"),
        ("results/demo/new|odd.tsv", "unexpected"),
        ("results/demo/plots/fit.svg", "missing"),
    ]
    assert checks[1].actual == hashlib.sha256(b"x\n").hexdigest() and checks[2].actual is None


def test_audit_json_counts_and_lists_every_file(tree, tmp_path):
    checks = rebuilt_checks(tree, tmp_path) + [FileCheck("results/ok.tsv", "identical", H, H)]
    report = json.loads(audit_json(checks, {"bundle": "demo-submission.tar.gz", "cores": 2}))
    assert report["passed"] is False
    assert report["summary"] == {"identical": 1, "different": 1, "missing": 1, "unexpected": 1}
    assert [f["path"] for f in report["files"]] == sorted(c.path for c in checks)
    assert report["meta"] == {"bundle": "demo-submission.tar.gz", "cores": 2}
    assert json.loads(audit_json(checks[-1:], {}))["passed"] is True
    assert json.loads(audit_json([], {}))["passed"] is False  # nothing compared proves nothing
    assert audit_json(checks, {"b": 1, "a": 2}) == audit_json(list(reversed(checks)), {"a": 2, "b": 1})


def test_audit_markdown_names_every_differing_file_first(tree, tmp_path):
    identical = [FileCheck(f"results/demo/table{i:02d}.tsv", "identical", H, H) for i in range(60)]
    checks = identical + rebuilt_checks(tree, tmp_path)
    meta = {"bundle": "demo-submission.tar.gz", "bundle_sha256": H, "cores": 2, "qspflow": "0.1.0"}
    text = audit_markdown(checks, meta)
    assert text.splitlines()[0] == ("# Reproducibility audit: FAILED (1 different, 1 missing, 1 unexpected; "
                                    "60 of 63 files identical)")
    short = hashlib.sha256(FILES["results/demo/estimates.tsv"]).hexdigest()[:12]
    assert text.index(f"| different | `results/demo/estimates.tsv` | `{short}` |") < text.index("| missing | `results/demo/plots/fit.svg` |") \
        < text.index("| unexpected | `results/demo/new\\|odd.tsv` | — |") < text.index("## Identical files")
    assert "| `results/demo` | 60 |" in text and "table00" not in text  # many identical files: counted
    assert f"- bundle_sha256: {H}" in text and "- cores: 2" in text and str(tmp_path) not in text
    few = audit_markdown(identical[:3], meta)
    assert few.startswith("# Reproducibility audit: PASSED (all 3 files identical)\n")
    assert "| `results/demo/table02.tsv` | `ababababab" in few
