"""Canonical, atomic file output: the same content always gives the same bytes.

Tables are TSV with a header, `\\n` line endings and floats written by `format_float`;
every write goes to a temporary file in the target folder and is renamed into place,
so a crash never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from qspflow.errors import DataError

FLOAT_FORMAT = ".10g"
EXACT_FORMAT = ".17g"  # floats that are read back (start points, optima, parameter values) round-trip exactly


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
