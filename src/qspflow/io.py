"""Canonical, atomic file output, and the output contract of the `qspflow` command.

Tables are TSV with a header, `\\n` line endings and floats written by `format_float`;
every write goes to a temporary file in the target folder and is renamed into place,
so a crash never leaves a half-written output behind.

The output contract (`output_folder`): a command writes into a folder it owns — one it created, or
one that holds its marker file `.qspflow-output` listing the files it wrote there — and replaces only
those files. It refuses a file at the folder's path, and a non-empty folder it does not own unless
`force` is given (then it still touches only the files it writes). Everything is written into a
staging folder first and moved into place only when the command has succeeded, so an error leaves
the folder as it was.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import yaml

from qspflow.errors import DataError, OutputError, QspflowError

FLOAT_FORMAT = ".10g"
EXACT_FORMAT = ".17g"  # floats that are read back (start points, optima, parameter values) round-trip exactly


def read_user_text(path: str | os.PathLike[str], error: type[QspflowError], place: str = "line") -> str:
    """A user's text file (UTF-8, with or without a byte-order mark), or `error` naming the file and the
    `place` (`line` or `row`: the line number) of what makes it unreadable: a missing file, UTF-16, a
    byte that is not UTF-8, a NUL byte (a binary file)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise error(path, message=f"cannot read the file ({_reason(err)})") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(path, expected="UTF-8 text", found="a UTF-16 byte-order mark", message="save the file as UTF-8")
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as some Windows editors write, is not text
    except UnicodeDecodeError as err:
        raise error(path, **{place: raw.count(b"\n", 0, err.start) + 1}, expected="UTF-8 text",
                    found=f"byte 0x{raw[err.start]:02x} at offset {err.start}") from None
    if "\0" in text:  # valid UTF-8, but not a text file
        before = text[:text.index("\0")].replace("\r\n", "\n").replace("\r", "\n")
        raise error(path, **{place: before.count("\n") + 1}, expected="text", found="a NUL byte")
    return text


def parse_user_yaml(text: str, path: str | os.PathLike[str], error: type[QspflowError]) -> object:
    """A user's YAML file (already read as `text`) as plain data, or `error` naming the file, the line
    and column and what is wrong; tags such as `!!python/object` are refused (safe loading), by name."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = {"line": mark.line + 1, "col": mark.column + 1} if mark else {}
        tag = re.search(r"the tag '([^']+)'", exc.problem or "")
        if isinstance(exc, yaml.constructor.ConstructorError) and tag:
            raise error(path, **where, expected="plain YAML data (no tags)",
                        found=tag.group(1).replace("tag:yaml.org,2002:", "!!")) from None
        raise error(path, **where, expected="valid YAML", message=f"PyYAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise error(path, expected="valid YAML", message=" ".join(str(exc).split())) from None


def format_float(x: float, fmt: str = FLOAT_FORMAT) -> str:
    """One float as canonical text: NaN as empty (a missing value), no negative zero."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if x == 0:
        return "0"
    return format(x, fmt)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def replace_folder(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Put folder `new` at `target` by renames; an existing `target` folder is moved aside, then deleted."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return
    # A folder cannot be renamed onto a non-empty one: move the old one into an empty temp folder first.
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / target.name)
    os.replace(new, target)
    shutil.rmtree(old)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder beside `path`; if the block succeeds it replaces `path` whole,
    otherwise it is removed and `path` is left as it was."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp makes it private; an output folder is an ordinary one
        replace_folder(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_bytes(data: bytes, path: str | os.PathLike[str]) -> None:
    """Write `data` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write `text` with `\\n` line endings, atomically."""
    write_bytes(text.encode("utf-8"), path)


def table_text(frame: pd.DataFrame, float_format: str = FLOAT_FORMAT) -> str:
    """A DataFrame as canonical TSV text (header, no index, floats by `format_float`)."""
    lines = ["\t".join(str(c) for c in frame.columns)]
    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_float_dtype(series):
            columns.append([format_float(v, float_format) for v in series.tolist()])
        else:
            columns.append(["" if pd.isna(v) else str(v) for v in series.tolist()])
    lines.extend("\t".join(row) for row in zip(*columns))
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str], float_format: str = FLOAT_FORMAT) -> None:
    """Write a DataFrame as canonical TSV, atomically."""
    write_text(table_text(frame, float_format), path)


def read_table(path: str | os.PathLike[str], required: Sequence[str] = ()) -> pd.DataFrame:
    """A TSV that qspflow wrote (header, tab-separated; empty cells are NaN), checked to have the
    `required` columns; a missing file or column raises `DataError` naming it."""
    try:
        frame = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])
    except FileNotFoundError as exc:
        raise DataError(path, expected="a TSV file", message="it does not exist") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, expected="a tab-separated table with a header",
                        message=str(exc).splitlines()[0]) from exc
    for column in required:
        if column not in frame.columns:
            raise DataError(path, column=column, expected="this column")
    return frame


MARKER = ".qspflow-output"  # in an output folder: the files qspflow wrote there, one per line


def _owned(folder: Path) -> list[str] | None:
    """The files qspflow wrote into `folder` (its marker's list), or None when it is not a qspflow folder."""
    marker = folder / MARKER
    if not marker.is_file():
        return None
    return [line for line in marker.read_text(encoding="utf-8").splitlines() if line]


def _written(staging: Path) -> list[str]:
    return sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())


def _reason(exc: OSError) -> str:
    return (exc.strerror or str(exc)).lower()


def check_output_folder(path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """`path` can take a command's outputs under the output contract; raises `OutputError` if not."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, expected="a folder for the outputs", message="a file is in the way (not replaced)")
    if folder.is_dir() and not force and _owned(folder) is None and any(folder.iterdir()):
        raise OutputError(folder, expected="an empty folder or one that qspflow wrote",
                          message="it holds other files (give another --out, or --force to write beside them)")
    probe = folder if folder.is_dir() else next((p for p in folder.parents if p.exists()), Path("."))
    if not probe.is_dir():
        raise OutputError(folder, expected="a folder path", message=f"'{probe}' on the way is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(probe, expected="a folder you may write to", message="permission denied")
    return folder


@contextlib.contextmanager
def output_folder(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a staging folder for a command's outputs; on success move them into `path` under the
    output contract (see the module docstring). On any error nothing in `path` changes."""
    folder = check_output_folder(path, force=force)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # removed again if left empty
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".qspflow-staging.", dir=folder))
    except OSError as exc:
        raise OutputError(folder, expected="a folder qspflow can create and write", message=_reason(exc)) from exc
    try:
        yield staging
        _commit(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for p in created:
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()


def _commit(staging: Path, folder: Path) -> None:
    """Move the staged outputs into `folder`, drop this command's stale files, rewrite the marker."""
    new = _written(staging)
    for name in new:
        if (folder / name).is_dir():
            raise OutputError(folder / name, expected="a file path for this output",
                              message="a folder is in the way (not replaced)")
        parent = next((p for p in (folder / name).parents if p != folder and p.exists() and not p.is_dir()), None)
        if parent is not None and folder in parent.parents:
            raise OutputError(parent, expected="a folder for the outputs under it",
                              message="a file is in the way (not replaced)")
    try:
        for name in new:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, folder / name)
        for name in sorted(set(_owned(folder) or ()) - set(new)):
            (folder / name).unlink(missing_ok=True)  # this command's own output of an earlier run
        write_text("".join(f"{name}\n" for name in new), folder / MARKER)
    except OSError as exc:
        raise OutputError(exc.filename or folder, expected="a writable output path", message=_reason(exc)) from exc


@contextlib.contextmanager
def output_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a staging path for a command's single output file; on success it replaces `path`.

    A folder at `path` is refused; an existing file at `path` is the user's explicit choice and replaced."""
    target = Path(path)
    if target.is_dir():
        raise OutputError(target, expected="a file path for the output", message="it is a folder (not replaced)")
    try:
        with atomic_path(target) as staged:
            yield staged
    except OSError as exc:  # named by the path the user gave, not the temporary file beside it
        raise OutputError(target, expected="a writable output path", message=_reason(exc)) from exc
