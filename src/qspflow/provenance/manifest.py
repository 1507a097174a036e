"""The manifest: one `<sha256>  <path>` line per file, sorted, exactly as `sha256sum -c` reads it.

Paths are POSIX and relative to the folder the manifest describes, and safe to join under it on any
system (no absolute path, no `.`/`..`/empty part, no backslash or control character — sha256sum would
escape those, and no tool should have to). Only regular files are hashed; symlinks are never followed,
so a manifest cannot vouch for bytes that live outside its folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from qspflow.errors import AuditError
from qspflow.io import read_user_text

STATUSES = ("identical", "different", "missing", "unexpected")
SAFE_PATH = "a relative POSIX path inside the folder (no '.', '..' or empty part, no backslash or control character)"
LINE_FORMAT = "'<64 lowercase hex digits><two spaces><path>'"

_UNSAFE_CHAR = re.compile(r"[\\\x00-\x1f\x7f]")
_LINE = re.compile(r"([0-9a-f]{64})  (.*)")


@dataclass(frozen=True)
class FileCheck:
    """One file's verdict (`status` one of `STATUSES`); a hash is None where there is no regular file."""

    path: str
    status: str
    expected: str | None
    actual: str | None


def safe_relpath(relpath: str) -> bool:
    """True when `relpath` names an entry inside a folder, the same way on every system."""
    return bool(relpath) and not _UNSAFE_CHAR.search(relpath) \
        and all(part not in ("", ".", "..") for part in relpath.split("/"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The file's SHA-256 as hex, read in chunks (bundles and results can be large)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _lstat(root: Path, relpath: str) -> os.stat_result | None:
    """The entry at `relpath` under `root` if every folder on the way is a real folder (no symlink), else None."""
    parts = relpath.split("/")
    try:
        for depth in range(1, len(parts)):
            if not stat.S_ISDIR(os.lstat(root.joinpath(*parts[:depth])).st_mode):
                return None
        return os.lstat(root / relpath)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _kind(st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    return "a folder" if stat.S_ISDIR(st.st_mode) else "a special file"


def regular_file(root: Path, relpath: str) -> Path:
    """`root / relpath`, checked to be a safe path to a regular file reached without symlinks."""
    if not safe_relpath(relpath):
        raise AuditError(root, expected=SAFE_PATH, found=relpath)
    st = _lstat(root, relpath)
    if st is None:
        raise AuditError(root / relpath, expected="a regular file", message="it does not exist")
    if not stat.S_ISREG(st.st_mode):
        raise AuditError(root / relpath, expected="a regular file", found=_kind(st))
    return root / relpath


def manifest_text(root: Path, relpaths: Iterable[str]) -> str:
    """The manifest of the files `relpaths` under `root`, sorted and each listed once."""
    root = Path(root)
    # sorted() orders by code point, which is the byte order of the UTF-8 paths (and of `LC_ALL=C sort`)
    return "".join(f"{sha256_file(regular_file(root, rel))}  {rel}\n" for rel in sorted(set(relpaths)))


def read_manifest(path: str | os.PathLike[str]) -> dict[str, str]:
    """A manifest's entries, path → sha256; a malformed, unsafe or repeated line raises `AuditError` naming it."""
    text = read_user_text(path, AuditError)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the final newline
    entries: dict[str, str] = {}
    first: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        match = _LINE.fullmatch(line)
        if match is None:
            shown = line if len(line) <= 100 else line[:97] + "..."
            raise AuditError(path, line=number, expected=LINE_FORMAT, found=shown)
        digest, relpath = match.groups()
        if not safe_relpath(relpath):
            raise AuditError(path, line=number, expected=SAFE_PATH, found=relpath)
        if relpath in first:
            raise AuditError(path, line=number, expected="each path listed once", found=relpath,
                             message=f"already on line {first[relpath]}")
        entries[relpath], first[relpath] = digest, number
    return entries


def tree_files(root: Path, folder: str = "") -> list[str]:
    """Every entry under `root / folder` that is not a folder (symlinks included, never followed), as sorted
    paths relative to `root`."""
    top = root / folder if folder else root
    if folder and (top.is_symlink() or not top.is_dir()):
        return [folder] if os.path.lexists(top) else []
    found = []
    for dirpath, dirnames, filenames in os.walk(top):  # does not descend into symlinked folders, so list them
        here = Path(dirpath)
        found += [(here / name).relative_to(root).as_posix() for name in filenames]
        found += [(here / name).relative_to(root).as_posix() for name in dirnames if (here / name).is_symlink()]
    return sorted(found)


def check_file(root: Path, relpath: str, expected: str | None) -> FileCheck:
    """One file under `root` against its expected hash (None: a file nobody expected)."""
    st = _lstat(root, relpath)
    actual = sha256_file(root / relpath) if st is not None and stat.S_ISREG(st.st_mode) else None
    if expected is None:
        return FileCheck(relpath, "unexpected", None, actual)
    status = "missing" if st is None else "identical" if actual == expected else "different"
    return FileCheck(relpath, status, expected, actual)


def check_files(root: Path, entries: Mapping[str, str], present: Iterable[str]) -> list[FileCheck]:
    """`entries` (path → sha256) checked under `root`, plus an "unexpected" check for each `present` path
    they do not list; sorted by path."""
    for relpath in entries:
        if not safe_relpath(relpath):
            raise AuditError(root, expected=SAFE_PATH, found=relpath)
    checks = [check_file(root, rel, digest) for rel, digest in entries.items()]
    checks += [check_file(root, rel, None) for rel in set(present) if rel not in entries]
    return sorted(checks, key=lambda check: check.path)


def verify(root: Path, entries: Mapping[str, str], *, ignore: Collection[str] = ()) -> list[FileCheck]:
    """Every file the manifest `entries` list, and every other file under `root` (except `ignore`, e.g. the
    manifest itself), checked: identical, different, missing or unexpected."""
    root = Path(root)
    return check_files(root, entries, [rel for rel in tree_files(root) if rel not in ignore])
