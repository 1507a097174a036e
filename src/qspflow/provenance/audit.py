"""The audit's comparison and its reports: the outputs a bundle holds against those a re-run made.

An audit passes when at least one file was compared and every file is identical byte for byte; an
audit that compared nothing proves nothing, so it fails. The reports carry only what they are given
(`meta`) and the files' relative paths and hashes — no times, hosts or absolute paths of their own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path, PurePosixPath

from qspflow.provenance.manifest import STATUSES, FileCheck, check_files, tree_files

__all__ = ["FileCheck", "audit_json", "audit_markdown", "compare", "passed"]

IGNORED = ".snakemake_timestamp"  # Snakemake's marker in directory outputs, written at run time
LISTED_IDENTICAL = 50  # more identical files than this are counted per folder in the Markdown report


def compare(expected: Mapping[str, str], rebuilt_root: Path, scope: Sequence[str]) -> list[FileCheck]:
    """The files under the `scope` folders (e.g. "results/") of `expected` (path → sha256; entries outside
    the scope are left out, so a whole manifest can be given) against the rebuilt tree; sorted by path."""
    rebuilt_root = Path(rebuilt_root)
    folders = [folder.strip("/") for folder in scope]

    def in_scope(path: str) -> bool:
        return PurePosixPath(path).name != IGNORED and any(path.startswith(folder + "/") for folder in folders)

    present = [path for folder in folders for path in tree_files(rebuilt_root, folder) if in_scope(path)]
    return check_files(rebuilt_root, {p: h for p, h in expected.items() if in_scope(p)}, present)


def passed(checks: Sequence[FileCheck]) -> bool:
    """At least one file compared, and all of them identical."""
    return bool(checks) and all(check.status == "identical" for check in checks)


def _counts(checks: Sequence[FileCheck]) -> dict[str, int]:
    found = Counter(check.status for check in checks)
    return {status: found[status] for status in STATUSES}


def audit_json(checks: Sequence[FileCheck], meta: Mapping[str, object]) -> str:
    """The audit as JSON: `passed`, `summary` (files per status), `files` (every check) and `meta`."""
    report = {"passed": passed(checks), "summary": _counts(checks), "meta": dict(meta),
              "files": [asdict(check) for check in sorted(checks, key=lambda check: check.path)]}
    return json.dumps(report, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _code(text: str) -> str:
    """`text` as inline code that is safe in a Markdown table cell (pipes escaped, backticks fenced)."""
    fence, pad = ("``", " ") if "`" in text else ("`", "")
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _short(digest: str | None) -> str:
    return _code(digest[:12]) if digest else "—"


def _verdict(checks: Sequence[FileCheck]) -> str:
    if not checks:
        return "FAILED (no files were compared)"
    if passed(checks):
        return f"PASSED (all {len(checks)} files identical)"
    counts = ", ".join(f"{n} {status}" for status, n in _counts(checks).items() if status != "identical")
    return f"FAILED ({counts}; {_counts(checks)['identical']} of {len(checks)} files identical)"


def audit_markdown(checks: Sequence[FileCheck], meta: Mapping[str, object]) -> str:
    """The audit for a reader: the verdict, the audit's facts (`meta`), every file that is not identical,
    then the identical ones (counted per folder when there are many)."""
    order = {status: rank for rank, status in enumerate(STATUSES)}
    checks = sorted(checks, key=lambda check: (order[check.status], check.path))
    differing = [check for check in checks if check.status != "identical"]
    identical = [check for check in checks if check.status == "identical"]
    lines = [f"# Reproducibility audit: {_verdict(checks)}", ""]
    for key, value in sorted(meta.items()):
        shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
        lines.append(f"- {key}: {shown}")
    lines.append("")
    if differing:
        lines += ["## Files that are not identical", "", "Hashes are SHA-256, first 12 hex digits.", "",
                  "| Status | File | Expected | Rebuilt |", "|---|---|---|---|"]
        lines += [f"| {c.status} | {_code(c.path)} | {_short(c.expected)} | {_short(c.actual)} |" for c in differing]
        lines.append("")
    if identical and len(identical) <= LISTED_IDENTICAL:
        lines += ["## Identical files", "", "| File | SHA-256 (first 12) |", "|---|---|"]
        lines += [f"| {_code(c.path)} | {_short(c.actual)} |" for c in identical]
        lines.append("")
    elif identical:
        per_folder = Counter("/".join(c.path.split("/")[:-1][:2]) or "." for c in identical)
        lines += ["## Identical files", "", "| Folder | Files |", "|---|---:|"]
        lines += [f"| {_code(folder)} | {n} |" for folder, n in sorted(per_folder.items())]
        lines.append("")
    return "\n".join(lines)
