"""User-facing errors: each names the file, the place in it and what was expected.

A `QspflowError` is the only kind of failure the CLI and the rule logs show as one line
without a traceback; anything else is a bug in qspflow.
"""

from __future__ import annotations

from os import PathLike


class QspflowError(Exception):
    """A failure caused by user input (a file, a config key), described for the user.

    The message reads `FILE, row R, column 'C': expected E, found 'F'` (parts that do not
    apply are left out), or `FILE, key 'K': …` for config and YAML keys.
    """

    def __init__(
        self,
        source: str | PathLike[str] | None,
        *,
        row: int | None = None,
        column: str | None = None,
        key: str | None = None,
        element: str | None = None,
        line: int | None = None,
        col: int | None = None,
        expected: str | None = None,
        found: object = None,
        message: str | None = None,
    ) -> None:
        self.source = None if source is None else str(source)
        self.row = row
        self.column = column
        self.key = key
        self.element = element
        self.line = line
        self.col = col
        self.expected = expected
        self.found = found
        self.detail = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = [self.source] if self.source else []
        if self.line is not None:
            where.append(f"line {self.line}" + (f", column {self.col}" if self.col is not None else ""))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.key is not None:
            where.append(f"key '{self.key}'")
        if self.element is not None:
            where.append(f"element '{self.element}'")
        what = []
        if self.expected is not None:
            what.append(f"expected {self.expected}")
        if self.found is not None:
            what.append(f"found '{self.found}'")
        if self.detail:
            what.append(self.detail)
        return ", ".join(where) + (": " if where and what else "") + ", ".join(what)


class DataError(QspflowError):
    """Measurement, experiment or binarized-data tables that do not meet the contract."""


class ConfigError(QspflowError):
    """A study configuration key that is unknown, missing or out of range."""


class NetworkError(QspflowError):
    """Boolean networks and PKNs: syntax errors, unknown nodes, inconsistent edges."""


class ModelError(QspflowError):
    """ODE models, SBML and PySB: unsupported elements, undefined symbols."""


class PetabError(QspflowError):
    """PEtab problems that fail the linter or reference unknown ids."""


class SolverError(QspflowError):
    """A numerical solver that is missing or not set up."""


class OutputError(QspflowError):
    """An output path that qspflow may not write (it holds a user's files) or cannot write (permissions)."""


class AuditError(QspflowError):
    """A submission bundle or manifest that cannot be read, unpacked safely or verified."""
