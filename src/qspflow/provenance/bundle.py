"""The submission bundle: a deterministic `.tar.gz` of a study's files, and its safe unpacking.

The same files give the same archive bytes on any machine with the same zlib: members are sorted and
nothing of the writer's machine goes in (no times, owners or umask; of the mode only the owner's
execute bit). Unpacking reads every header first and refuses, before writing anything, any member that
is not a plain file or folder inside the bundle's single top folder; since member paths are relative,
without `..` and the archive holds no links, every member lands inside the destination.
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from qspflow.errors import AuditError
from qspflow.io import atomic_folder, output_file
from qspflow.provenance.manifest import regular_file, safe_relpath, sha256_file

GZIP_LEVEL = 9
MEMBER_PATH = "member paths inside one top folder (relative, no '.' or '..' part, no backslash or control character)"
_SPECIAL = {tarfile.SYMTYPE: "a symbolic link", tarfile.LNKTYPE: "a hard link", tarfile.CHRTYPE: "a character device",
            tarfile.BLKTYPE: "a block device", tarfile.FIFOTYPE: "a FIFO (named pipe)"}


def _header(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise AuditError(path, expected="a readable file", message=_reason(exc)) from None
    with handle:
        st = os.fstat(handle.fileno())
        tar.addfile(_header(name, tarfile.REGTYPE, 0o755 if st.st_mode & stat.S_IXUSR else 0o644, st.st_size), handle)


def write_bundle(root: Path, relpaths: Sequence[str], dest: Path, prefix: str) -> str:
    """Archive the files `relpaths` under `root` as `prefix/relpath` into `dest` (atomically); returns the
    archive's SHA-256. Same files, same bytes (see the module docstring)."""
    root = Path(root)
    if not safe_relpath(prefix) or "/" in prefix:
        raise AuditError(dest, expected="a folder name (one path part) as the bundle's top folder", found=prefix)
    files = {f"{prefix}/{rel}": regular_file(root, rel) for rel in set(relpaths)}
    folders = {prefix} | {str(p) for name in files for p in PurePosixPath(name).parents if str(p) != "."}
    # sorting by parts puts each folder before its contents and keeps a folder's members together
    with output_file(dest) as staged, open(staged, "wb") as raw, \
            gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0, compresslevel=GZIP_LEVEL) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
        for name in sorted(folders | files.keys(), key=lambda member: member.split("/")):
            if name in folders:
                tar.addfile(_header(name, tarfile.DIRTYPE, 0o755))
            else:
                _add_file(tar, name, files[name])
    return sha256_file(dest)


def _read_headers(archive: Path) -> list[tarfile.TarInfo]:
    """All member headers of `archive`; a damaged or foreign file raises `AuditError` naming it."""
    try:
        with gzip.open(archive) as stream:  # the whole stream once: truncation and CRC errors show here
            while stream.read(1 << 20):
                pass
        with tarfile.open(archive, mode="r:gz") as tar:
            return tar.getmembers()
    except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
        message = _reason(exc) if isinstance(exc, OSError) else str(exc)
        raise AuditError(archive, expected="a gzip-compressed tar archive", message=message) from None


def _top_folder(archive: Path, members: Sequence[tarfile.TarInfo]) -> str:
    """The single top folder of `members`, or `AuditError` naming the first member that may not be unpacked."""
    if not members:
        raise AuditError(archive, expected="a top folder with the bundle's files", found="an empty archive")
    top = members[0].name.split("/")[0]
    names, files = set(), set()
    for member in members:
        name = member.name
        if not safe_relpath(name):
            raise AuditError(archive, expected=MEMBER_PATH, found=name)
        if not (member.isreg() or member.isdir()):
            kind = _SPECIAL.get(member.type, f"a special member of type {member.type!r}")
            raise AuditError(archive, expected="only regular files and folders", found=name, message=kind)
        parts = name.split("/")
        if parts[0] != top or (member.isreg() and len(parts) == 1):
            raise AuditError(archive, expected=f"every member inside the one top folder '{top}'", found=name)
        if name in names:
            raise AuditError(archive, expected="each member once", found=name, message="it is listed twice")
        names.add(name)
        if member.isreg():
            files.add(name)
    for name in sorted(names):
        under = next((str(p) for p in PurePosixPath(name).parents if str(p) in files), None)
        if under is not None:
            raise AuditError(archive, expected="files only at the end of member paths", found=name,
                             message=f"'{under}' is a file")
    return top


def safe_extract(archive: Path, dest: Path) -> Path:
    """Unpack the bundle `archive` into `dest` (new or an empty folder) after checking every member (see the
    module docstring); returns its top folder inside `dest`. Files get mode 0o644 or 0o755, folders 0o755."""
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AuditError(dest, expected="a new or empty folder to unpack into",
                         found="a folder with files" if dest.is_dir() else "a file")
    members = _read_headers(archive)
    top = _top_folder(archive, members)
    try:
        with atomic_folder(dest) as staging, tarfile.open(archive, mode="r:gz") as tar:
            # nothing appears at `dest` unless all of it unpacks; only the members checked above are read
            for member in members:
                target = staging / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as source, open(target, "xb") as out:
                    shutil.copyfileobj(source, out)
                target.chmod(0o755 if member.mode & stat.S_IXUSR else 0o644)
            for folder in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
                folder.chmod(0o755)
    except OSError as exc:
        raise AuditError(dest, expected="a folder the bundle can be unpacked into", message=_reason(exc)) from None
    return dest / top
