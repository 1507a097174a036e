"""Logging for rule scripts and the CLI: user errors as one line, bugs with their traceback."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

from qspflow.errors import QspflowError

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def to_rule_log(path: str | os.PathLike[str]) -> Iterator[logging.Logger]:
    """Send a rule script's logging to its `log:` file; turn a `QspflowError` into exit status 2.

    The error's one-line message goes to the log and to stderr (Snakemake shows it), so the
    user sees what to fix without reading a traceback. Log lines carry no timestamps.
    """
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logger = logging.getLogger("qspflow")
    try:
        yield logger
    except QspflowError as err:
        logger.error("%s", err)
        print(f"qspflow: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception:
        logger.exception("internal error (a bug in qspflow; please report it with this log)")
        raise
    finally:
        root.removeHandler(handler)
        handler.close()
